"""The engine: one trio nursery supervising simulators, venue sessions, orders and strategies."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable
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
from framework.errors import BookNotSynced
from framework.events import (
    Balance,
    BookDelta,
    BookInvalidated,
    BookSnapshot,
    BookState,
    BookStatus,
    ExecutionReport,
    OrderAccepted,
    OrderCancelled,
    OrderEvent,
    OrderExpired,
    OrderFill,
    OrderFilled,
    OrderModified,
    OrderModifyRejected,
    OrderPartiallyFilled,
    OrderRejected,
    OrderUnknown,
    Position,
    PublicTrade,
    Ticker,
    TopOfBook,
    VenueState,
    VenueStatus,
)
from framework.execution.journal import Journal
from framework.execution.manager import OrderManager
from framework.execution.paper import PaperBroker
from framework.latency import format_latency
from framework.logs import register_secret
from framework.model import Order
from framework.portfolio import Portfolio
from framework.risk import RiskManager
from framework.strategy import Strategy
from framework.transport.session import WsSession, is_loopback
from framework.venue import SimHandle, Stream, VenueRuntime
from framework.venues import load_venue

log = structlog.get_logger("botrun.runner")
# Enum members as module constants for the per-delta path (class attribute reads of an Enum
# member cost ~90 ns on Python 3.11)
_SYNCED, _STALE, _UNSYNCED = BookState.SYNCED, BookState.STALE, BookState.UNSYNCED


def http_client(base_url: str, *, timeout_s: float = 10.0) -> httpx.AsyncClient:
    """An httpx client; plain HTTP is refused for anything but loopback (TLS stays verified)."""
    parts = urlsplit(base_url)
    if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
        raise ValueError(f"refusing plain HTTP to non-loopback host {parts.hostname}")
    return httpx.AsyncClient(base_url=base_url, verify=True, timeout=timeout_s)


class Engine:
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
        self.bus = Bus()
        self.portfolio = Portfolio()
        self.books: dict[tuple[str, str], OrderBook] = {}
        self.sessions: list[WsSession] = []
        self.simulators: dict[str, SimHandle] = {}
        self.runtimes: dict[str, VenueRuntime] = {}
        self.event_counts: Counter[str] = Counter()
        self.started = trio.Event()
        if journal_path is None:
            # paper orders never leave the process, so there is no venue truth to reconcile a
            # journal with after a restart: paper mode journals in memory
            journal_path = (
                ":memory:"
                if self.mode == "paper"
                else str(Path(config.botrun.journal_dir) / f"journal-{self.mode}.sqlite")
            )
        self.journal = Journal(journal_path)
        self.orders = OrderManager(self.journal, self._publish_order_event, clock_ns=clock_ns)
        # latency histograms (framework.latency): receive -> handled per stream's venue, and the
        # order manager's submit -> send -> ack; printed in the summary
        self.latency = self.orders.latency
        # optional raw-frame tap given to every session (`botrun record`)
        self.frame_tap: Callable[[Stream, str | bytes, int], None] | None = None
        self.risk = RiskManager(
            config.risk,
            position=self.portfolio.position,
            open_orders=self.orders.open_orders,
            book=lambda v, s: self.books.get((v, s)),
            clock=trio.current_time,
        )
        self.orders.risk = self.risk
        self._book_owner: dict[tuple[str, str], WsSession] = {}
        self._stream_session: dict[int, WsSession] = {}
        self._nursery: trio.Nursery | None = None
        self._stop = trio.Event()
        # one cancel scope per timer task (a trio scope can be entered only once)
        self._timers: list[trio.CancelScope] = []
        self._timers_stopped = False
        self.final_summary: dict[str, Any] | None = None

    # --- public ------------------------------------------------------------------------------

    def book(self, venue: str, symbol: str) -> OrderBook:
        book = self.books.get((venue, symbol))
        if book is None:
            raise KeyError(f"no book for {venue} {symbol}; is the market configured?")
        return book

    def stop(self) -> None:
        self._stop.set()

    async def run(self, duration_s: float | None = None) -> None:
        duration = self.config.botrun.duration_s if duration_s is None else duration_s
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self.orders.run)
            for name, vcfg in self.config.venues.items():
                await self._start_venue(name, vcfg, nursery)
            for strategy in self.strategies:
                self._attach(strategy)
            self.started.set()
            log.info("running", mode=self.mode, venues=list(self.config.venues))
            with trio.move_on_after(duration if duration and duration > 0 else float("inf")):
                await self._stop.wait()
            await self._shutdown()
            # taken while books and sessions are still up, so marks are live
            self.final_summary = self.summary()
            nursery.cancel_scope.cancel()
        self.journal.close()

    # --- start-up ------------------------------------------------------------------------------

    async def _start_venue(self, name: str, vcfg: Any, nursery: trio.Nursery) -> None:
        venue = load_venue(name)
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
        runtime = await venue.build(vcfg, sim, http_client)
        self.runtimes[name] = runtime
        self.orders.add_instruments(runtime.instruments)
        client = None
        if self.mode == "paper":
            client = self.paper_broker(name, runtime.instruments)
        elif runtime.execution is not None:
            client = runtime.execution
        if client is not None:
            self.orders.add_client(name, client)
            client.bind(_ExecutionContext(self))
            nursery.start_soon(client.run)
            self.orders.restore(name)
            await self.orders.reconcile_venue(name)
        for stream in runtime.streams:
            self._start_stream(stream, nursery)

    def paper_broker(self, name: str, instruments: dict[str, Any]) -> PaperBroker:
        """A paper broker for venue `name`, filling against this engine's books and trades."""
        client = PaperBroker(
            name,
            self.config.paper,
            book=lambda symbol, _v=name: self.books.get((_v, symbol)),
            instruments=instruments,
        )
        self.bus.subscribe(PublicTrade, client.on_trade, venue=name, owner="paper")
        self.bus.subscribe(BookDelta, client.on_book, venue=name, owner="paper")
        self.bus.subscribe(BookSnapshot, client.on_book, venue=name, owner="paper")
        return client

    def _start_stream(self, stream: Stream, nursery: trio.Nursery) -> None:
        session = WsSession(
            stream,
            on_status=self._on_venue_status,
            on_books_lost=self._books_lost,
            on_reconnected=self._reconnected,
        )
        session.tap = self.frame_tap
        session.latency = self.latency.hist(stream.venue, "recv_to_handled")
        self.add_stream(stream, session)
        nursery.start_soon(session.run)

    def add_stream(self, stream: Stream, session: Any) -> None:
        """Route a stream's events here and own its books (`session`: a WsSession or a replay's
        stand-in with `stream`, `venue`, `counts`, `frames_received`, `request_resync`)."""
        stream.emit = self.on_event
        self.sessions.append(session)
        self._stream_session[id(stream)] = session
        for symbol in stream.books():
            key = (stream.venue, symbol)
            self.books.setdefault(key, OrderBook(stream.venue, symbol))
            self._book_owner[key] = session

    def _attach(self, strategy: Strategy) -> None:
        strategy._engine = self
        owner = strategy.name
        sub = self.bus.subscribe
        sub(BookSnapshot, strategy.on_book, owner=owner)
        sub(BookDelta, strategy.on_book, owner=owner)
        sub(TopOfBook, strategy.on_top_of_book, owner=owner)
        sub(Ticker, strategy.on_ticker, owner=owner)
        sub(PublicTrade, strategy.on_trade, owner=owner)
        sub(Balance, strategy.on_balance, owner=owner)
        sub(Position, strategy.on_position, owner=owner)
        sub(VenueStatus, strategy.on_venue_status, owner=owner)
        sub(BookStatus, strategy.on_book_status, owner=owner)
        specific: dict[type, Callable[[Any], None]] = {
            OrderAccepted: strategy.on_accepted,
            OrderRejected: strategy.on_rejected,
            OrderPartiallyFilled: strategy.on_partial_fill,
            OrderFilled: strategy.on_filled,
            OrderCancelled: strategy.on_cancelled,
            OrderModified: strategy.on_modified,
            OrderModifyRejected: strategy.on_modify_rejected,
            OrderExpired: strategy.on_expired,
            OrderUnknown: strategy.on_unknown,
        }

        def on_order(event: OrderEvent) -> None:
            # only this strategy's orders; the generic handler first, then the specific one
            order = self.orders.orders.get(event.client_order_id)
            if order is None or order.strategy != owner:
                return
            strategy.on_order(event)
            handler = specific.get(type(event))
            if handler is not None:
                handler(event)

        sub(OrderEvent, on_order, owner=owner)
        try:
            strategy.on_start()
        except Exception:
            log.exception("on_start raised", strategy=owner)

    def add_timer(self, strategy: Strategy, seconds: float, callback: Callable[[], None]) -> None:
        async def tick() -> None:
            while True:
                await trio.sleep(seconds)
                try:
                    callback()
                except Exception:
                    log.exception("timer raised; isolated", strategy=strategy.name)

        assert self._nursery is not None
        self._nursery.start_soon(self._in_timer_scope, tick)

    async def _in_timer_scope(self, fn: Callable[[], Awaitable[None]]) -> None:
        scope = trio.CancelScope()
        if self._timers_stopped:
            scope.cancel()
        self._timers.append(scope)
        with scope:
            await fn()

    def spawn(self, strategy: Strategy, fn: Callable[[], Awaitable[Any]]) -> None:
        async def guarded() -> None:
            try:
                await fn()
            except Exception:
                log.exception("strategy task raised; isolated", strategy=strategy.name)

        assert self._nursery is not None
        self._nursery.start_soon(guarded)

    # --- routing: every event from every stream comes through here ---------------------------

    def on_event(self, event: Any) -> None:
        t = type(event)
        if t is BookDelta:
            # the hot path (most frames of every venue): kept inline
            book = self.books.get((event.venue, event.symbol))
            if book is not None:
                prior = book.state
                if book.apply_delta(event):
                    if prior is _STALE:
                        self._book_status(book, event.epoch)
                    self.bus.publish(event)
                elif prior is not _UNSYNCED:
                    self._book_status(book, event.epoch)
                    self._resync(book)
        elif t is BookSnapshot:
            self._on_snapshot(event)
        elif t is ExecutionReport:
            self.orders.on_execution(event)
            return
        elif t is BookInvalidated:
            self._on_invalidated(event)
        else:
            if t is Balance:
                self.portfolio.on_balance(event)
            elif t is Position:
                self.portfolio.on_venue_position(event)
            self.bus.publish(event)
        self.event_counts[event.venue] += 1

    def _on_snapshot(self, snap: BookSnapshot) -> None:
        book = self.books.get((snap.venue, snap.symbol))
        if book is None:
            return
        prior = book.state
        if book.apply_snapshot(snap):
            self.bus.publish(snap)
            if prior is _SYNCED:
                return  # a venue that refreshes whole books (Open Trade): news only on a change
            self._book_status(book, snap.epoch)
            session = self._book_owner.get((snap.venue, snap.symbol))
            if session is not None and all(
                self.books[(snap.venue, s)].is_synced for s in session.stream.books()
            ):
                self._on_venue_status(
                    VenueStatus(
                        snap.venue, VenueState.SYNCED, snap.epoch, stream=session.stream.name
                    )
                )
        elif snap.final:
            self._book_status(book, snap.epoch)
            self._resync(book)

    def _on_invalidated(self, event: BookInvalidated) -> None:
        book = self.books.get((event.venue, event.symbol))
        if book is None:
            return
        book.mark_unsynced(event.reason)
        self._book_status(book, event.epoch)
        self._resync(book)

    def _resync(self, book: OrderBook) -> None:
        session = self._book_owner.get((book.venue, book.symbol))
        if session is not None:
            session.request_resync(book.symbol)

    def _book_status(self, book: OrderBook, epoch: int) -> None:
        self.bus.publish(BookStatus(book.venue, book.symbol, book.state, book.unsync_reason, epoch))

    def _books_lost(self, stream: Stream, reason: str) -> None:
        for symbol in stream.books():
            book = self.books.get((stream.venue, symbol))
            if book is None:
                continue
            before = book.state
            if reason == "stale":
                book.mark_stale("feed silent")
            else:
                book.mark_unsynced(reason)
            if book.state is not before:
                self._book_status(book, stream.epoch)

    def _reconnected(self, stream: Stream) -> None:
        if stream.reconcile_on_reconnect and self._nursery is not None:
            # orders may have filled or been cancelled while we were away: ask, don't guess
            self._nursery.start_soon(self.orders.reconcile_venue, stream.venue)

    def _on_venue_status(self, status: VenueStatus) -> None:
        log.info(
            "venue status",
            venue=status.venue,
            stream=status.stream,
            state=status.state.value,
            reason=status.reason,
        )
        self.bus.publish(status)

    def _publish_order_event(self, event: OrderEvent) -> None:
        if isinstance(event, OrderFill):
            position = self.portfolio.on_fill(event)
            self.bus.publish(event)
            self.bus.publish(position)
            self._check_limits(position)
            return
        self.bus.publish(event)

    def _check_limits(self, position: Position) -> None:
        cfg = self.config.risk
        reason = None
        if abs(position.quantity) > cfg.max_position:
            reason = f"{position.venue} {position.symbol} position {position.quantity} above max"
        elif cfg.max_loss > 0 and self.total_pnl() < -cfg.max_loss:
            reason = f"loss above max_loss {cfg.max_loss}"
        if reason and self.risk.breach(reason):
            self.orders.cancel_all()

    # --- shutdown and summary ------------------------------------------------------------------

    async def _shutdown(self) -> None:
        log.info("shutting down")
        # no new orders from timers or handlers while we wind down
        self._timers_stopped = True
        for scope in self._timers:
            scope.cancel()
        self.risk.halted = "shutting down"
        if self.config.risk.cancel_all_on_shutdown:
            n = self.orders.cancel_all()
            if n:
                with trio.move_on_after(5):
                    while self.orders.open_orders():
                        await trio.sleep(0.05)
        for strategy in self.strategies:
            try:
                strategy.on_stop()
            except Exception:
                log.exception("on_stop raised", strategy=strategy.name)

    def mark(self, venue: str, symbol: str) -> Decimal | None:
        book = self.books.get((venue, symbol))
        if book is None:
            return None
        try:
            return book.mid()
        except BookNotSynced:
            return None

    def total_pnl(self) -> Decimal:
        total = Decimal(0)
        for venue, symbol in self.portfolio.symbols():
            total += self.portfolio.realized_pnl(venue, symbol)
            total += self.portfolio.unrealized_pnl(venue, symbol, self.mark(venue, symbol)) or 0
        return total

    def summary(self) -> dict[str, Any]:
        by_state = self.orders.state_counts()
        positions = []
        for venue, symbol in self.portfolio.symbols():
            mark = self.mark(venue, symbol)
            positions.append(
                {
                    "venue": venue,
                    "symbol": symbol,
                    "quantity": self.portfolio.position(venue, symbol),
                    "avg_price": self.portfolio.avg_price(venue, symbol),
                    "realized_pnl": self.portfolio.realized_pnl(venue, symbol),
                    "unrealized_pnl": self.portfolio.unrealized_pnl(venue, symbol, mark),
                    "mark": mark,
                }
            )
        return {
            "mode": self.mode,
            "events": dict(self.event_counts),
            "orders": dict(by_state),
            "fills": self.portfolio.fill_count,
            "positions": positions,
            "sessions": {
                f"{s.venue}/{s.stream.name}": dict(s.counts) | {"frames": s.frames_received}
                for s in self.sessions
            },
            "handler_errors": dict(self.bus.handler_errors),
            "order_counts": dict(self.orders.counts),
            "latency": self.latency.summary(),
        }


class _ExecutionContext:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def on_report(self, report: ExecutionReport) -> None:
        self._engine.orders.on_execution(report)

    def publish(self, event: object) -> None:
        self._engine.on_event(event)

    def open_orders(self, venue: str) -> list[Order]:
        return self._engine.orders.open_orders(venue)

    def book(self, venue: str, symbol: str) -> OrderBook | None:
        return self._engine.books.get((venue, symbol))


def _money(value: Decimal) -> str:
    # adding zero turns a rounded-away negative (-0.00) into 0.00
    return f"{value.quantize(Decimal('0.01')) + 0:.2f}"


def format_summary(summary: dict[str, Any]) -> str:
    lines = [f"botrun summary ({summary['mode']} mode)"]
    events = ", ".join(f"{v}: {n}" for v, n in sorted(summary["events"].items())) or "none"
    lines.append(f"  events by venue: {events}")
    orders = ", ".join(f"{k.lower()}: {n}" for k, n in sorted(summary["orders"].items()))
    lines.append(f"  orders by state: {orders or 'none'}")
    lines.append(f"  fills: {summary['fills']}")
    for p in summary["positions"]:
        upnl = p["unrealized_pnl"]
        lines.append(
            f"  position {p['venue']} {p['symbol']}: {p['quantity']} @ {p['avg_price']:.2f}"
            f"  realized {_money(p['realized_pnl'])}"
            f"  unrealized {'n/a' if upnl is None else _money(upnl)}"
        )
    if not summary["positions"]:
        lines.append("  positions: none")
    for name, counts in sorted(summary["sessions"].items()):
        shown = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
        lines.append(f"  session {name}: {shown}")
    if summary["handler_errors"]:
        lines.append(f"  handler errors: {summary['handler_errors']}")
    lines.extend(format_latency(summary.get("latency") or {}))
    return "\n".join(lines)
