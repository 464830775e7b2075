"""The parts every run has, wired: `Core`, and the `StrategyContext` it gives each strategy.

`Core` builds the bus, the market-data router and its books (framework.data.router), the
portfolio, the journal and order manager, and risk, wires them, and gives each strategy an
`EngineContext` over them and each execution client an `_ExecutionContext`. It also holds the two
failures a run's strategies can cause (`StrategyStartError`, `HandlerFailed`). The live `Engine`
(framework.engine) and the backtest (framework.tools.backtest) each compose a `Core`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any

import structlog
import trio

from framework.config import Config
from framework.data.book import OrderBook
from framework.data.bus import Bus, Subscription
from framework.data.router import MarketDataRouter
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
from framework.model import Instrument, Order
from framework.portfolio import Portfolio
from framework.risk import RiskManager
from framework.strategy import Strategy
from framework.venue import Capabilities, ExecutionClient

log = structlog.get_logger("botrun.runner")


class StrategyStartError(Exception):
    """A strategy's `on_start` raised: the run does not start (exit code 4)."""

    def __init__(self, strategy: str, exc: BaseException) -> None:
        super().__init__(f"strategy {strategy}: on_start raised {type(exc).__name__}: {exc}")
        self.strategy = strategy


class HandlerFailed(Exception):
    """A handler raised under `--fail-fast` (exit code 4)."""


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
        # one subscription per market, paused while the broker has no order working there:
        # a market it has nothing to fill in costs no call per book event or trade
        bus = self.bus
        kinds = (
            (PublicTrade, client.on_trade),
            (BookDelta, client.on_book),
            (BookSnapshot, client.on_book),
        )
        subs: dict[str, list[Subscription]] = {}

        def subscribe(symbol: str) -> list[Subscription]:
            subs[symbol] = [
                bus.subscribe(kind, handler, venue=name, symbol=symbol, owner="paper")
                for kind, handler in kinds
            ]
            return subs[symbol]

        def watch(symbol: str, on: bool) -> None:
            found = subs.get(symbol)
            if found is None:
                # a market outside the instruments it was given: subscribed now, so after
                # whatever subscribed since
                if on:
                    subscribe(symbol)
                return
            for sub in found:
                if on:
                    bus.resume(sub)
                else:
                    bus.pause(sub)

        for symbol in instruments:
            for sub in subscribe(symbol):
                bus.pause(sub)
        client.watch = watch
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
                delay = 0.05
                with trio.move_on_after(5):
                    while self.orders.open_orders():
                        await trio.sleep(delay)
                        # a cancel that failed (a stream still connecting) or was refused goes
                        # again; an UNKNOWN order is asked about
                        self.orders.cancel_open_again()
                        delay = min(0.5, delay * 2)
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
