"""`Strategy`: what users subclass, and `StrategyContext`: all a strategy may ask of its run.

Handlers are plain methods called synchronously from the task that received the data; override
the ones you need. Actions (`buy`, `sell`, `cancel`, ...) return at once; an order's outcome
arrives through the order handlers, or can be awaited with `await handle.done()` from async code
(`self.spawn` runs a coroutine in the runner's nursery).

A strategy talks to its run only through the `StrategyContext` it is attached to (`attach`):
the engine gives it one, a backtest the same, and another runtime (e.g. one over a message bus)
can give it its own without the strategy changing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any, Protocol

import structlog

from framework.data.book import OrderBook
from framework.events import (
    Balance,
    BookDelta,
    BookSnapshot,
    BookStatus,
    OrderAccepted,
    OrderCancelled,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderModified,
    OrderModifyRejected,
    OrderPartiallyFilled,
    OrderRejected,
    OrderType,
    OrderUnknown,
    Position,
    PublicTrade,
    Side,
    Ticker,
    TimeInForce,
    TopOfBook,
    VenueStatus,
)
from framework.execution.checks import venue_price
from framework.execution.handle import OrderHandle
from framework.model import Instrument, Order
from framework.venue import Capabilities


class StrategyContext(Protocol):
    """What one strategy may ask of the run it is attached to (one context per strategy: orders
    it submits, handlers it subscribes, timers and tasks it starts are its own)."""

    # the run's L2 books by (venue, symbol), live: read on nearly every book event, so a mapping
    # the strategy keeps rather than a call per read
    books: Mapping[tuple[str, str], OrderBook]

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
        """Send an order for this strategy (risk-checked and journaled first)."""

    def cancel(self, client_order_id: str) -> bool: ...
    def cancel_all(self, venue: str | None, symbol: str | None) -> int: ...
    def modify(
        self, client_order_id: str, *, price: Decimal | None, quantity: Decimal | None
    ) -> bool: ...
    def order(self, client_order_id: str) -> Order | None:
        """Any order the run knows by its client order id."""

    def open_orders(self, venue: str | None, symbol: str | None) -> list[Order]:
        """This strategy's open orders."""

    def position(self, venue: str, symbol: str) -> Decimal: ...
    def balance(self, venue: str, asset: str) -> Balance | None: ...
    def instrument(self, venue: str, symbol: str) -> Instrument | None: ...
    def capabilities(self, venue: str) -> Capabilities:
        """What the venue takes (its package's declaration; permissive if it declares none)."""

    def venue_client(self, venue: str) -> Any:
        """The venue's execution client, for venue-specific actions."""

    def markets(self) -> dict[str, list[str]]:
        """The configured venues (in config order) and their markets."""

    def subscribe(
        self,
        event_type: type,
        handler: Callable[[Any], None],
        *,
        venue: str | None = None,
        symbol: str | None = None,
    ) -> None: ...
    def every(self, seconds: float, callback: Callable[[], None]) -> None:
        """Call `callback` every `seconds` until the run winds down; a raise is logged."""

    def spawn(self, fn: Callable[[], Awaitable[Any]]) -> None:
        """Run `fn()` alongside the handlers; a raise is logged, the run goes on."""

    def stop(self) -> None:
        """Ask the run to end (shutdown, then `on_stop`)."""

    def bind_log(self, logger: Any) -> Any:
        """The strategy's logger with what the run adds to every line."""


_DETACHED: Mapping[tuple[str, str], OrderBook] = {}


class Strategy:
    """Base class. `params` holds the `[strategy.params]` table from config.toml."""

    name: str = ""

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        self.params: dict[str, Any] = dict(params or {})
        self.name = self.name or type(self).__name__
        self.log = structlog.get_logger("botrun.strategy").bind(strategy=self.name)
        self._ctx: StrategyContext | None = None
        self._books = _DETACHED

    # --- handlers (override) -----------------------------------------------------------------

    def on_start(self) -> None: ...
    def on_stop(self) -> None: ...
    def on_book(self, event: BookSnapshot | BookDelta) -> None: ...
    def on_top_of_book(self, event: TopOfBook) -> None: ...
    def on_ticker(self, event: Ticker) -> None: ...
    def on_trade(self, event: PublicTrade) -> None: ...
    def on_order(self, event: OrderEvent) -> None:
        """Every order event; the specific handlers below are called after it."""

    def on_accepted(self, event: OrderAccepted) -> None: ...
    def on_rejected(self, event: OrderRejected) -> None: ...
    def on_partial_fill(self, event: OrderPartiallyFilled) -> None: ...
    def on_filled(self, event: OrderFilled) -> None: ...
    def on_cancelled(self, event: OrderCancelled) -> None: ...
    def on_modified(self, event: OrderModified) -> None: ...
    def on_modify_rejected(self, event: OrderModifyRejected) -> None: ...
    def on_expired(self, event: OrderExpired) -> None: ...
    def on_unknown(self, event: OrderUnknown) -> None: ...
    def on_balance(self, event: Balance) -> None: ...
    def on_position(self, event: Position) -> None: ...
    def on_venue_status(self, event: VenueStatus) -> None: ...
    def on_book_status(self, event: BookStatus) -> None: ...
    def on_kill_switch(self, reason: str) -> None:
        """The kill switch engaged: new orders are refused, working ones are being cancelled
        (positions closed with `risk.flatten_on_kill`), and the run ends after this. A
        `VenueStatus` with state HALTED reaches `on_venue_status` too."""

    # --- attachment -----------------------------------------------------------------------------

    def attach(self, ctx: StrategyContext) -> None:
        """Connect to a run: every handler above is subscribed through `ctx`. Called by the
        runtime before `on_start`."""
        self._ctx = ctx
        self._books = ctx.books
        self.log = ctx.bind_log(self.log)
        sub = ctx.subscribe
        sub(BookSnapshot, self.on_book)
        sub(BookDelta, self.on_book)
        sub(TopOfBook, self.on_top_of_book)
        sub(Ticker, self.on_ticker)
        sub(PublicTrade, self.on_trade)
        sub(Balance, self.on_balance)
        sub(Position, self.on_position)
        sub(VenueStatus, self.on_venue_status)
        sub(BookStatus, self.on_book_status)
        specific: dict[type, Callable[[Any], None]] = {
            OrderAccepted: self.on_accepted,
            OrderRejected: self.on_rejected,
            OrderPartiallyFilled: self.on_partial_fill,
            OrderFilled: self.on_filled,
            OrderCancelled: self.on_cancelled,
            OrderModified: self.on_modified,
            OrderModifyRejected: self.on_modify_rejected,
            OrderExpired: self.on_expired,
            OrderUnknown: self.on_unknown,
        }
        owner = self.name

        def on_order(event: OrderEvent) -> None:
            # only this strategy's orders; the generic handler first, then the specific one
            order = ctx.order(event.client_order_id)
            if order is None or order.strategy != owner:
                return
            self.on_order(event)
            handler = specific.get(type(event))
            if handler is not None:
                handler(event)

        sub(OrderEvent, on_order)

    @property
    def ctx(self) -> StrategyContext:
        if self._ctx is None:
            raise RuntimeError("strategy is not attached to a running engine")
        return self._ctx

    # --- actions -------------------------------------------------------------------------------

    def buy(
        self,
        venue: str,
        symbol: str,
        quantity: Decimal,
        price: Decimal | None = None,
        *,
        tif: TimeInForce = TimeInForce.GTC,
        post_only: bool = False,
        expire_at_ns: int | None = None,
        stop_price: Decimal | None = None,
    ) -> OrderHandle:
        """Limit buy if `price` is given, else market buy; with `stop_price`, a stop-limit /
        stop-market buy that waits until the market trades at or through `stop_price`."""
        return self._order(
            Side.BUY, venue, symbol, quantity, price, tif, post_only, expire_at_ns, stop_price
        )

    def sell(
        self,
        venue: str,
        symbol: str,
        quantity: Decimal,
        price: Decimal | None = None,
        *,
        tif: TimeInForce = TimeInForce.GTC,
        post_only: bool = False,
        expire_at_ns: int | None = None,
        stop_price: Decimal | None = None,
    ) -> OrderHandle:
        """Limit sell if `price` is given, else market sell; with `stop_price`, a stop-limit /
        stop-market sell that waits until the market trades at or through `stop_price`."""
        return self._order(
            Side.SELL, venue, symbol, quantity, price, tif, post_only, expire_at_ns, stop_price
        )

    def _order(
        self,
        side: Side,
        venue: str,
        symbol: str,
        quantity: Decimal,
        price: Decimal | None,
        tif: TimeInForce,
        post_only: bool,
        expire_at_ns: int | None,
        stop_price: Decimal | None = None,
    ) -> OrderHandle:
        if stop_price is not None:
            # a stop's time in force covers its wait for the trigger: GTC stays GTC
            order_type = OrderType.STOP_LIMIT if price is not None else OrderType.STOP_MARKET
        else:
            order_type = OrderType.LIMIT if price is not None else OrderType.MARKET
        if order_type is OrderType.MARKET and tif is TimeInForce.GTC:
            tif = TimeInForce.IOC
        return self.ctx.submit(
            venue=venue,
            symbol=symbol,
            side=side,
            quantity=quantity,
            price=price,
            type=order_type,
            tif=tif,
            post_only=post_only,
            expire_at_ns=expire_at_ns,
            stop_price=stop_price,
        )

    def cancel(self, order: OrderHandle | Order | str) -> bool:
        coid = order if isinstance(order, str) else order.client_order_id
        return self.ctx.cancel(coid)

    def cancel_all(self, venue: str | None = None, symbol: str | None = None) -> int:
        return self.ctx.cancel_all(venue, symbol)

    def modify(
        self,
        order: OrderHandle | Order | str,
        *,
        price: Decimal | None = None,
        quantity: Decimal | None = None,
    ) -> bool:
        """Amend price and/or total quantity where the venue supports it (`on_modified` follows)."""
        coid = order if isinstance(order, str) else order.client_order_id
        return self.ctx.modify(coid, price=price, quantity=quantity)

    def on(
        self,
        event_type: type,
        handler: Callable[[Any], None],
        *,
        venue: str | None = None,
        symbol: str | None = None,
    ) -> None:
        """Subscribe a handler to any event type, including venue-specific ones (e.g. RFQs)."""
        self.ctx.subscribe(event_type, handler, venue=venue, symbol=symbol)

    def venue_client(self, venue: str) -> Any:
        """The venue's execution client, for venue-specific actions (e.g. posting an RFQ)."""
        return self.ctx.venue_client(venue)

    def every(self, seconds: float, callback: Callable[[], None]) -> None:
        """Call `callback` every `seconds` (a timer; runs in the runner's nursery)."""
        self.ctx.every(seconds, callback)

    def spawn(self, fn: Callable[[], Awaitable[Any]]) -> None:
        """Run an async function alongside the handlers (e.g. to await an order's outcome)."""
        self.ctx.spawn(fn)

    def stop(self) -> None:
        """End the run (as Ctrl-C would: orders cancelled if configured, then `on_stop`)."""
        self.ctx.stop()

    # --- read access ---------------------------------------------------------------------------

    def default_market(self) -> tuple[str, str]:
        """`params.venue`/`params.symbol`, else the first configured venue and its first market."""
        configured = self.ctx.markets()
        venue = self.params.get("venue") or next(iter(configured))
        markets = configured[venue]
        symbol = self.params.get("symbol") or (markets[0] if markets else "")
        return venue, symbol

    def instrument(self, venue: str, symbol: str) -> Instrument | None:
        """The venue catalogue's view of a symbol (tick, lot, limits)."""
        return self.ctx.instrument(venue, symbol)

    def capabilities(self, venue: str) -> Capabilities:
        """What `venue` takes (order types, time in force, post-only, modify, precision)."""
        return self.ctx.capabilities(venue)

    def venue_price(self, venue: str, symbol: str, price: Decimal, side: Side) -> Decimal:
        """`price` rounded to what `venue` keeps for `symbol` (tick, significant digits,
        decimals), away from the market for `side` (a bid down, an ask up)."""
        return venue_price(
            price, self.capabilities(venue), self.instrument(venue, symbol), passive_for=side
        )

    def book(self, venue: str, symbol: str) -> OrderBook:
        # called from nearly every book handler: one dict lookup on the context's live mapping
        book = self._books.get((venue, symbol))
        if book is None:
            self.ctx  # noqa: B018 - raises if not attached
            raise KeyError(f"no book for {venue} {symbol}; is the market configured?")
        return book

    def open_orders(self, venue: str | None = None, symbol: str | None = None) -> list[Order]:
        return self.ctx.open_orders(venue, symbol)

    def position(self, venue: str, symbol: str) -> Decimal:
        return self.ctx.position(venue, symbol)

    def balance(self, venue: str, asset: str) -> Balance | None:
        return self.ctx.balance(venue, asset)
