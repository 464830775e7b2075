"""The composition root: the parts of a run wired together, and the live engine around them.

`Core` builds the parts every run has — the bus, the market-data router and its books
(framework.data.router), the portfolio, the journal and order manager, risk — wires them, and
gives each strategy a `StrategyContext` over them. `Engine` composes a `Core` with the configured
venues (simulators, sessions, execution clients) and supervises them in one trio nursery; the
backtest (framework.tools.backtest) composes a `Core` with a recording instead. Neither names a
venue: the Venue objects come with the config (`Config.venue_impls`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog
import trio

from framework.config import Config
from framework.data.book import OrderBook
from framework.data.bus import Bus
from framework.data.router import MarketDataRouter
from framework.errors import ConfigError
from framework.events import (
    Balance,
    BookDelta,
    BookSnapshot,
    ExecutionReport,
    OrderEvent,
    OrderFill,
    OrderType,
    PublicTrade,
    Side,
    TimeInForce,
    VenueState,
    VenueStatus,
)
from framework.execution.handle import OrderHandle
from framework.execution.journal import Journal
from framework.execution.manager import OrderManager
from framework.execution.paper import PaperBroker
from framework.logs import register_secret
from framework.model import Instrument, Order
from framework.portfolio import Portfolio
from framework.risk import RiskManager
from framework.strategy import Strategy
from framework.transport.session import WsSession, is_loopback
from framework.venue import Capabilities, ExecutionClient, SimHandle, Stream, VenueRuntime

log = structlog.get_logger("botrun.runner")


class StrategyStartError(Exception):
    """A strategy's `on_start` raised: the run does not start (exit code 4)."""

    def __init__(self, strategy: str, exc: BaseException) -> None:
        super().__init__(f"strategy {strategy}: on_start raised {type(exc).__name__}: {exc}")
        self.strategy = strategy


class HandlerFailed(Exception):
    """A handler raised under `--fail-fast` (exit code 4)."""


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


class Core:
    """The parts of one run, wired: bus, router (books), portfolio, journal, orders, risk."""

    def __init__(
        self,
        config: Config,
        *,
        journal_path: str,
        clock_ns: Callable[[], int] = time.time_ns,
        on_stop: Callable[[], None] = lambda: None,
    ) -> None:
        self.config = config
        self.mode = config.botrun.mode
        self.bus = Bus()
        self.router = MarketDataRouter(self.bus)
        self.portfolio = Portfolio(mark=self.router.mid)
        self.journal = Journal(journal_path, accept_empty=config.botrun.accept_empty_journal)
        self.orders = OrderManager(self.journal, self._publish_order_event, clock_ns=clock_ns)
        self.risk = RiskManager(
            config.risk,
            position=self.portfolio.position,
            open_orders=self.orders.open_orders,
            book=lambda v, s: self.router.books.get((v, s)),
            clock=trio.current_time,
            total_pnl=self.portfolio.total_pnl,
            on_kill=self._kill,
            capabilities=self.capabilities,
        )
        self.orders.risk = self.risk
        router = self.router
        router.on_execution = self.orders.on_execution
        router.on_balance = self.portfolio.on_balance
        router.on_position = self.portfolio.on_venue_position
        self.strategies: list[Strategy] = []
        self._on_stop = on_stop  # what a strategy's `stop()` does (the runtime ends the run)
        self._nursery: trio.Nursery | None = None
        # one cancel scope per timer task (a trio scope can be entered only once)
        self._timers: list[trio.CancelScope] = []
        self._timers_stopped = False
        # a strategy (or the kill switch, or `--fail-fast`) asked the run to end; a backtest
        # stops feeding frames when it is set
        self.stop_asked = False
        # why the run ended early, in order (kill switch, fail-fast, ...), for the summary
        self.halt_reasons: list[str] = []
        # `--fail-fast`: the first handler error stops the run; it is kept here to be raised
        self.fail_fast = config.botrun.fail_fast
        self.failure: BaseException | None = None
        self.bus.on_handler_error = self._handler_error
        # a handler taking longer than this blocks every feed: warned about with its name
        self.slow_handler_s = config.botrun.slow_handler_ms / 1000
        self.perf: Callable[[], float] = time.perf_counter
        self.slow_handlers: dict[str, int] = {}

    def capabilities(self, venue: str) -> Capabilities | None:
        """What venue `venue` takes (declared by its package), or None if it is not configured."""
        impl = self.config.venue_impls.get(venue)
        return impl.capabilities if impl is not None else None

    # --- halting -------------------------------------------------------------------------------

    def _kill(self) -> None:
        """The kill switch engaged (risk refuses new orders already): cancel every working order,
        tell the strategies, flatten if configured, and end the run."""
        reason = self.risk.kill_reason or "kill switch"
        self.halt_reasons.append(f"kill switch: {reason}")
        self.orders.cancel_all(bulk=True)
        for venue in self.config.venues:
            self.bus.publish(
                VenueStatus(venue, VenueState.HALTED, 0, reason=f"kill switch: {reason}")
            )
        for strategy in self.strategies:
            try:
                strategy.on_kill_switch(reason)
            except Exception:
                log.exception("on_kill_switch raised", strategy=strategy.name)
        if self.config.risk.flatten_on_kill:
            self.flatten()
        self.stop_requested()

    def flatten(self) -> int:
        """Close every open position with a market order (the kill switch lets these through);
        returns how many were sent."""
        sent = 0
        self.risk.flattening = True
        try:
            for venue, symbol in self.portfolio.symbols():
                qty = self.portfolio.position(venue, symbol)
                if qty == 0 or venue not in self.orders.clients:
                    continue
                handle = self.orders.submit(
                    venue=venue,
                    symbol=symbol,
                    side=Side.SELL if qty > 0 else Side.BUY,
                    quantity=abs(qty),
                    type=OrderType.MARKET,
                    tif=TimeInForce.IOC,
                    strategy="kill-switch",
                )
                log.warning(
                    "flattening",
                    venue=venue,
                    symbol=symbol,
                    quantity=str(qty),
                    client_order_id=handle.client_order_id,
                    refused=handle.order.reason,
                )
                sent += 1
        finally:
            self.risk.flattening = False
        return sent

    def _handler_error(self, owner: str, exc: BaseException) -> None:
        if self.fail_fast and self.failure is None:
            self.failure = HandlerFailed(
                f"strategy {owner}: handler raised {type(exc).__name__}: {exc}"
            )
            self.halt_reasons.append(f"--fail-fast: {self.failure}")
            self.stop_requested()

    def _timed(
        self, owner: str, handler: Callable[[Any], None], name: str | None = None
    ) -> Callable[[Any], None]:
        """`handler`, warned about (by name) when one call blocks the loop too long."""
        if getattr(handler, "__func__", None) is getattr(
            Strategy, getattr(handler, "__name__", ""), 0
        ):
            return handler  # the base class's empty handler: nothing to time on the hot path
        perf = self.perf
        limit = self.slow_handler_s
        name = name or getattr(handler, "__qualname__", repr(handler))

        def timed(event: Any) -> None:
            t0 = perf()
            try:
                handler(event)
            finally:
                took = perf() - t0
                if took > limit:
                    self._slow(owner, name, took)

        return timed

    def _slow(self, owner: str, name: str, took: float) -> None:
        n = self.slow_handlers.get(name, 0) + 1
        self.slow_handlers[name] = n
        if n <= 3 or str(n).rstrip("0") == "1":
            log.warning(
                "handler blocked the event loop",
                strategy=owner,
                handler=name,
                took_ms=round(took * 1000, 1),
                limit_ms=round(self.slow_handler_s * 1000, 1),
                times=n,
            )

    async def start(self, nursery: trio.Nursery) -> None:
        """Run the order manager in `nursery`; timers and strategy tasks run there too."""
        self._nursery = nursery
        await nursery.start(self.orders.run)

    # --- execution ---------------------------------------------------------------------------

    def paper_broker(self, name: str, instruments: dict[str, Any]) -> PaperBroker:
        """A paper broker for venue `name`, filling against this run's books and trades."""
        books = self.router.books
        client = PaperBroker(
            name,
            self.config.paper,
            book=lambda symbol, _v=name: books.get((_v, symbol)),
            instruments=instruments,
            capabilities=self.capabilities(name),
        )
        self.bus.subscribe(PublicTrade, client.on_trade, venue=name, owner="paper")
        self.bus.subscribe(BookDelta, client.on_book, venue=name, owner="paper")
        self.bus.subscribe(BookSnapshot, client.on_book, venue=name, owner="paper")
        return client

    def add_client(self, name: str, client: ExecutionClient) -> None:
        """Route venue `name`'s orders to `client` and start its background work."""
        assert self._nursery is not None, "start() first"
        self.orders.add_client(name, client)
        client.bind(_ExecutionContext(self))
        self._nursery.start_soon(client.run)

    def _publish_order_event(self, event: OrderEvent) -> None:
        if isinstance(event, OrderFill):
            position = self.portfolio.on_fill(event)
            self.bus.publish(event)
            self.bus.publish(position)
            self.risk.after_fill(position)
            return
        self.bus.publish(event)

    # --- strategies ----------------------------------------------------------------------------

    def attach(self, strategy: Strategy) -> None:
        """Give `strategy` its context (its handlers subscribe), then call its `on_start`."""
        self.strategies.append(strategy)
        strategy.attach(EngineContext(self, strategy.name))
        try:
            strategy.on_start()
        except Exception as exc:
            # a strategy that did not start must not idle for the whole run
            # one line here; the CLI prints the traceback with --debug
            log.error(
                "on_start raised; the run does not start",
                strategy=strategy.name,
                error=f"{type(exc).__name__}: {exc}",
            )
            raise StrategyStartError(strategy.name, exc) from exc

    def add_timer(self, owner: str, seconds: float, callback: Callable[[], None]) -> None:
        name = getattr(callback, "__qualname__", "timer")
        timed = self._timed(owner, lambda _: callback(), name)
        errors = 0

        async def tick() -> None:
            nonlocal errors
            while True:
                await trio.sleep(seconds)
                try:
                    timed(None)
                except Exception as exc:
                    errors += 1
                    self.bus.handler_errors[owner] += 1
                    if errors <= 3:
                        log.exception("timer raised; isolated", strategy=owner, timer=name)
                    elif str(errors).rstrip("0") == "1":
                        log.error("timer keeps raising", strategy=owner, timer=name, errors=errors)
                    self._handler_error(owner, exc)

        assert self._nursery is not None
        self._nursery.start_soon(self._in_timer_scope, tick)

    async def _in_timer_scope(self, fn: Callable[[], Awaitable[None]]) -> None:
        scope = trio.CancelScope()
        if self._timers_stopped:
            scope.cancel()
        self._timers.append(scope)
        with scope:
            await fn()

    def spawn(self, owner: str, fn: Callable[[], Awaitable[Any]]) -> None:
        async def guarded() -> None:
            try:
                await fn()
            except Exception:
                log.exception("strategy task raised; isolated", strategy=owner)

        assert self._nursery is not None
        self._nursery.start_soon(guarded)

    def stop_requested(self) -> None:
        self.stop_asked = True
        self._on_stop()

    # --- shutdown and summary ------------------------------------------------------------------

    async def shutdown(self) -> None:
        log.info("shutting down")
        # no new orders from timers or handlers while we wind down
        self._timers_stopped = True
        for scope in self._timers:
            scope.cancel()
        self.risk.halted = self.risk.halted or "shutting down"
        if self.config.risk.cancel_all_on_shutdown:
            n = self.orders.cancel_all(bulk=True)
            if n:
                with trio.move_on_after(5):
                    while self.orders.open_orders():
                        await trio.sleep(0.05)
        for strategy in self.strategies:
            try:
                strategy.on_stop()
            except Exception:
                log.exception("on_stop raised", strategy=strategy.name)

    def summary(self) -> dict[str, Any]:
        """The run's summary as data (framework.tools.summary formats it)."""
        positions = self.portfolio.summary()
        totals: dict[str, dict[str, Decimal]] = {}
        for p in positions:
            inst = self.orders.instruments.get((p["venue"], p["symbol"]))
            p["quote"] = inst.quote if inst else ""
            p["base"] = inst.base if inst else ""
            p["tick"] = inst.tick if inst else None
            p["lot"] = inst.lot if inst else None
            # PnL in different currencies is never added up: one total per quote currency
            t = totals.setdefault(p["quote"], {"realized_pnl": Decimal(0), "fees": Decimal(0)})
            t["realized_pnl"] += p["realized_pnl"]
            t["fees"] += p["fees"]
            t.setdefault("unrealized_pnl", Decimal(0))
            if p["unrealized_pnl"] is not None:
                t["unrealized_pnl"] += p["unrealized_pnl"]
            t["turnover"] = t.get("turnover", Decimal(0)) + p["turnover"]
        equity: dict[str, dict[str, Decimal]] = {}
        for (venue, asset), balance in sorted(self.portfolio.balances.items()):
            equity.setdefault(venue, {})[asset] = balance.total
        return {
            "mode": self.mode,
            "events": dict(self.router.event_counts),
            "orders": dict(self.orders.state_counts()),
            "fills": self.portfolio.fill_count,
            "positions": positions,
            "totals": totals,
            "balances": equity,
            "kill_switch": self.risk.kill_reason,
            "halt_reasons": list(self.halt_reasons),
            "slow_handlers": dict(self.slow_handlers),
            "sessions": {
                f"{s.venue}/{s.stream.name}": dict(s.counts) | {"frames": s.frames_received}
                for s in self.router.sessions
            },
            "handler_errors": dict(self.bus.handler_errors),
            "order_counts": dict(self.orders.counts),
            "latency": self.orders.latency.summary(),
        }


class EngineContext:
    """One strategy's `StrategyContext` over a `Core`."""

    def __init__(self, core: Core, owner: str) -> None:
        self._core = core
        self._owner = owner
        self.books: Mapping[tuple[str, str], OrderBook] = core.router.books

    def submit(
        self,
        *,
        venue: str,
        symbol: str,
        side: Side,
        quantity: Decimal,
        price: Decimal | None,
        type: OrderType,
        tif: TimeInForce,
        post_only: bool,
        expire_at_ns: int | None,
        stop_price: Decimal | None,
    ) -> OrderHandle:
        return self._core.orders.submit(
            venue=venue,
            symbol=symbol,
            side=side,
            quantity=quantity,
            price=price,
            type=type,
            tif=tif,
            post_only=post_only,
            expire_at_ns=expire_at_ns,
            stop_price=stop_price,
            strategy=self._owner,
        )

    def cancel(self, client_order_id: str) -> bool:
        return self._core.orders.cancel(client_order_id)

    def cancel_all(self, venue: str | None, symbol: str | None) -> int:
        return self._core.orders.cancel_all(venue, symbol)

    def modify(
        self, client_order_id: str, *, price: Decimal | None, quantity: Decimal | None
    ) -> bool:
        return self._core.orders.modify(client_order_id, price=price, quantity=quantity)

    def order(self, client_order_id: str) -> Order | None:
        return self._core.orders.orders.get(client_order_id)

    def open_orders(self, venue: str | None, symbol: str | None) -> list[Order]:
        owner = self._owner
        return [o for o in self._core.orders.open_orders(venue, symbol) if o.strategy == owner]

    def position(self, venue: str, symbol: str) -> Decimal:
        return self._core.portfolio.position(venue, symbol)

    def balance(self, venue: str, asset: str) -> Balance | None:
        return self._core.portfolio.balances.get((venue, asset))

    def instrument(self, venue: str, symbol: str) -> Instrument | None:
        return self._core.orders.instruments.get((venue, symbol))

    def venue_client(self, venue: str) -> Any:
        return self._core.orders.clients[venue]

    def capabilities(self, venue: str) -> Capabilities:
        return self._core.capabilities(venue) or Capabilities()

    def markets(self) -> dict[str, list[str]]:
        return {name: list(v.markets) for name, v in self._core.config.venues.items()}

    def subscribe(
        self,
        event_type: type,
        handler: Callable[[Any], None],
        *,
        venue: str | None = None,
        symbol: str | None = None,
    ) -> None:
        timed = self._core._timed(self._owner, handler)
        self._core.bus.subscribe(event_type, timed, venue=venue, symbol=symbol, owner=self._owner)

    def every(self, seconds: float, callback: Callable[[], None]) -> None:
        self._core.add_timer(self._owner, seconds, callback)

    def spawn(self, fn: Callable[[], Awaitable[Any]]) -> None:
        self._core.spawn(self._owner, fn)

    def stop(self) -> None:
        self._core.stop_requested()

    def bind_log(self, logger: Any) -> Any:
        return logger.bind(mode=self._core.mode)


class _ExecutionContext:
    """What the order manager offers an execution client (framework.venue.ExecutionContext)."""

    def __init__(self, core: Core) -> None:
        self._core = core

    def on_report(self, report: ExecutionReport) -> None:
        self._core.orders.on_execution(report)

    def publish(self, event: object) -> None:
        self._core.router.on_event(event)

    def open_orders(self, venue: str) -> list[Order]:
        return self._core.orders.open_orders(venue)

    def book(self, venue: str, symbol: str) -> OrderBook | None:
        return self._core.router.books.get((venue, symbol))


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
        self.event_counts = core.router.event_counts
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
            self.orders.restore(name)
            await self.orders.reconcile_venue(name)
        for stream in runtime.streams:
            self._start_stream(stream, nursery)

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
