"""The composition root: the parts of a run wired together, and the live engine around them.

`Core` (framework.core) builds the parts every run has — the bus, the market-data router and its
books (framework.data.router), the portfolio, the journal and order manager, risk — wires them,
and gives each strategy a `StrategyContext` over them. `Engine` composes a `Core` with the
configured venues (simulators, sessions, execution clients) and supervises them in one trio
nursery; the backtest (framework.tools.backtest) composes a `Core` with a recording instead.
Neither names a venue: the Venue objects come with the config (`Config.venue_impls`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog
import trio

from framework.config import Config
from framework.core import Core
from framework.data.book import OrderBook
from framework.errors import ConfigError
from framework.execution.paper import PaperBroker
from framework.logs import register_secret
from framework.strategy import Strategy
from framework.transport.session import WsSession, is_loopback
from framework.venue import ExecutionClient, SimHandle, Stream, VenueRuntime

log = structlog.get_logger("botrun.runner")


class VenueUnreachable(Exception):
    """A venue could not be reached at start, after retries (exit code 5)."""


def _unreachable(exc: BaseException) -> bool:
    """A failure to reach the venue (worth a retry), not a refusal or a bug."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_unreachable(e) for e in exc.exceptions)
    import trio_websocket

    return isinstance(
        exc,
        httpx.TransportError
        | OSError
        | trio.BrokenResourceError
        | trio.TooSlowError
        | trio_websocket.HandshakeError,
    )


def http_client(base_url: str, *, timeout_s: float = 10.0) -> httpx.AsyncClient:
    """An httpx client; plain HTTP is refused for anything but loopback (TLS stays verified)."""
    parts = urlsplit(base_url)
    if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
        raise ValueError(f"refusing plain HTTP to non-loopback host {parts.hostname}")
    return httpx.AsyncClient(base_url=base_url, verify=True, timeout=timeout_s)


class Engine:
    """A live (or paper, or sandbox) run: a `Core`, the configured venues, one nursery."""

    def __init__(
        self,
        config: Config,
        strategies: list[Strategy],
        *,
        journal_path: str | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.config = config
        self.mode = config.botrun.mode
        self.strategies = strategies
        if journal_path is None:
            # paper orders never leave the process, so there is no venue truth to reconcile a
            # journal with after a restart: paper mode journals in memory
            journal_path = (
                ":memory:"
                if self.mode == "paper"
                else str(Path(config.botrun.journal_dir) / f"journal-{self.mode}.sqlite")
            )
        self.core = core = Core(
            config, journal_path=journal_path, clock_ns=clock_ns, on_stop=self.stop
        )
        # the parts, under the names tools and tests use
        self.bus = core.bus
        self.router = core.router
        self.books = core.router.books
        self.sessions = core.router.sessions
        self.on_event = core.router.on_event  # the streams' emit: no extra call layer per event
        self.portfolio = core.portfolio
        self.journal = core.journal
        self.orders = core.orders
        self.risk = core.risk
        # latency histograms (framework.latency): receive -> handled per stream's venue, and the
        # order manager's submit -> send -> ack; printed in the summary
        self.latency = core.orders.latency
        self.simulators: dict[str, SimHandle] = {}
        self.runtimes: dict[str, VenueRuntime] = {}
        # optional raw-frame tap given to every session (`botrun record`)
        self.frame_tap: Callable[[Stream, str | bytes, int], None] | None = None
        self.started = trio.Event()
        # set once every venue's start-up reconciliation (the journal's open orders asked for,
        # the venue's open orders scanned for orphans) has run; it runs after the streams start
        self.reconciled = trio.Event()
        self._reconciling = 0
        # set once the run has shut down and taken its final summary
        self.finished = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._stop = trio.Event()
        self.final_summary: dict[str, Any] | None = None

    # --- public ------------------------------------------------------------------------------

    def book(self, venue: str, symbol: str) -> OrderBook:
        return self.router.book(venue, symbol)

    def stop(self) -> None:
        self._stop.set()

    @property
    def event_counts(self) -> dict[str, int]:
        """Events routed so far, by venue (the router's)."""
        return self.router.event_counts

    def summary(self) -> dict[str, Any]:
        return self.core.summary()

    def paper_broker(self, name: str, instruments: dict[str, Any]) -> PaperBroker:
        return self.core.paper_broker(name, instruments)

    def add_stream(self, stream: Stream, session: Any) -> None:
        self.router.add_stream(stream, session)

    async def run(self, duration_s: float | None = None) -> None:
        duration = self.config.botrun.duration_s if duration_s is None else duration_s
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await self.core.start(nursery)
            for name, vcfg in self.config.venues.items():
                await self._start_venue(name, vcfg, nursery)
            for strategy in self.strategies:
                self._attach(strategy)
            self.started.set()
            if self._reconciling == 0:
                self.reconciled.set()
            log.info("running", mode=self.mode, venues=list(self.config.venues))
            with trio.move_on_after(duration if duration and duration > 0 else float("inf")):
                await self._stop.wait()
            await self.core.shutdown()
            # taken while books and sessions are still up, so marks are live
            self.final_summary = self.summary()
            nursery.cancel_scope.cancel()
        self.journal.close()
        self.finished.set()

    def _attach(self, strategy: Strategy) -> None:
        self.core.attach(strategy)

    # --- start-up ------------------------------------------------------------------------------

    async def _start_venue(self, name: str, vcfg: Any, nursery: trio.Nursery) -> None:
        venue = self.config.venue_impls.get(name)
        if venue is None:
            raise ConfigError(
                f"venues.{name}: no venue implementation on this config"
                " (build it with framework.venues.parse_config / load_config)"
            )
        for secret in venue.secrets(vcfg):
            register_secret(secret)
        sim = None
        if vcfg.endpoint == "sim" and vcfg.sim_url:
            parts = urlsplit(vcfg.sim_url)
            if not is_loopback(parts.hostname or ""):
                raise ValueError(f"venues.{name}.sim_url: simulators are loopback only")
            ws_url = vcfg.sim_url.replace("http://", "ws://", 1).rstrip("/")
            sim = SimHandle(parts.port or 80, vcfg.sim_url.rstrip("/"), ws_url, None)
        elif vcfg.endpoint == "sim":
            sim = await venue.start_simulator(vcfg, nursery)
            self.simulators[name] = sim
            log.info("embedded simulator serving", venue=name, port=sim.port)
        runtime = await self._build_with_retry(name, venue, vcfg, sim)
        self.runtimes[name] = runtime
        self.orders.add_instruments(runtime.instruments)
        client: ExecutionClient | None = None
        if self.mode == "paper":
            client = self.core.paper_broker(name, runtime.instruments)
        elif runtime.execution is not None:
            client = runtime.execution
        if client is not None:
            self.core.add_client(name, client)
            # restored before any stream starts, so that the first report about a journal
            # order finds it
            self.orders.restore(name)
        for stream in runtime.streams:
            self._start_stream(stream, nursery)
        if client is not None:
            # streams first, then the journal's open orders: market data does not wait for the
            # venue's answers about each of them (one unanswered query costs a request timeout,
            # and a venue whose order requests travel on a stream answers none before it is
            # up). Until answered, a restored order keeps its journal state; a query that fails
            # is asked again by the reconciliation loop, as is an orphan scan that failed
            self._reconciling += 1
            nursery.start_soon(self._reconcile_at_start, name)

    async def _reconcile_at_start(self, name: str) -> None:
        try:
            await self.orders.reconcile_venue(name)
        finally:
            self._reconciling -= 1
            if self._reconciling == 0 and self.started.is_set():
                self.reconciled.set()

    async def _build_with_retry(
        self, name: str, venue: Any, vcfg: Any, sim: SimHandle | None
    ) -> VenueRuntime:
        """`venue.build`, retried with backoff while the venue cannot be reached; then one
        `VenueUnreachable` naming the venue, its endpoint and what to check."""
        attempts = max(1, self.config.botrun.start_retries + 1)
        delay = self.config.botrun.start_backoff_s
        for attempt in range(1, attempts + 1):
            try:
                return await venue.build(vcfg, sim, http_client)
            except Exception as exc:
                if not _unreachable(exc):
                    raise
                leaf = exc
                while isinstance(leaf, BaseExceptionGroup):
                    leaf = leaf.exceptions[0]
                if attempt == attempts:
                    where = vcfg.sim_url or vcfg.endpoint
                    raise VenueUnreachable(
                        f"venue {name} unreachable at start ({where}) after {attempts} attempts:"
                        f" {type(leaf).__name__}: {leaf or 'no detail'}"
                        f" (check venues.{name}.endpoint / sim_url and the network)"
                    ) from exc
                log.warning(
                    "venue unreachable; retrying",
                    venue=name,
                    attempt=attempt,
                    retry_in_s=delay,
                    error=f"{type(leaf).__name__}: {leaf}",
                )
                await trio.sleep(delay)
                delay = min(delay * 2, 30.0)
        raise AssertionError("unreachable")

    def _start_stream(self, stream: Stream, nursery: trio.Nursery) -> None:
        router = self.router
        session = WsSession(
            stream,
            on_status=router.venue_status,
            on_books_lost=router.books_lost,
            on_reconnected=self._reconnected,
        )
        session.tap = self.frame_tap
        session.latency = self.latency.hist(stream.venue, "recv_to_handled")
        router.add_stream(stream, session)
        nursery.start_soon(session.run)

    def _reconnected(self, stream: Stream) -> None:
        if stream.reconcile_on_reconnect and self._nursery is not None:
            # orders may have filled or been cancelled while we were away: ask, don't guess
            self._nursery.start_soon(self.orders.reconcile_venue, stream.venue)
