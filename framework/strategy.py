"""`Strategy`: what users subclass.

Handlers are plain methods called synchronously from the task that received the data; override
the ones you need. Actions (`buy`, `sell`, `cancel`, ...) return at once; an order's outcome
arrives through the order handlers, or can be awaited with `await handle.done()` from async code
(`self.spawn` runs a coroutine in the runner's nursery).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

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
from framework.execution.handle import OrderHandle
from framework.model import Instrument, Order

if TYPE_CHECKING:
    from framework.engine import Engine


class Strategy:
    """Base class. `params` holds the `[strategy.params]` table from config.toml."""

    name: str = ""

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        self.params: dict[str, Any] = dict(params or {})
        self.name = self.name or type(self).__name__
        self.log = structlog.get_logger("botrun.strategy").bind(strategy=self.name)
        self._engine: Engine | None = None

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

    # --- actions -------------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("strategy is not attached to a running engine")
        return self._engine

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
        return self.engine.orders.submit(
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
            strategy=self.name,
        )

    def cancel(self, order: OrderHandle | Order | str) -> bool:
        coid = order if isinstance(order, str) else order.client_order_id
        return self.engine.orders.cancel(coid)

    def cancel_all(self, venue: str | None = None, symbol: str | None = None) -> int:
        return self.engine.orders.cancel_all(venue, symbol)

    def modify(
        self,
        order: OrderHandle | Order | str,
        *,
        price: Decimal | None = None,
        quantity: Decimal | None = None,
    ) -> bool:
        """Amend price and/or total quantity where the venue supports it (`on_modified` follows)."""
        coid = order if isinstance(order, str) else order.client_order_id
        return self.engine.orders.modify(coid, price=price, quantity=quantity)

    def on(
        self,
        event_type: type,
        handler: Callable[[Any], None],
        *,
        venue: str | None = None,
        symbol: str | None = None,
    ) -> None:
        """Subscribe a handler to any event type, including venue-specific ones (e.g. RFQs)."""
        self.engine.bus.subscribe(event_type, handler, venue=venue, symbol=symbol, owner=self.name)

    def venue_client(self, venue: str) -> Any:
        """The venue's execution client, for venue-specific actions (e.g. posting an RFQ)."""
        return self.engine.orders.clients[venue]

    def every(self, seconds: float, callback: Callable[[], None]) -> None:
        """Call `callback` every `seconds` (a timer; runs in the runner's nursery)."""
        self.engine.add_timer(self, seconds, callback)

    def spawn(self, fn: Callable[[], Awaitable[Any]]) -> None:
        """Run an async function alongside the handlers (e.g. to await an order's outcome)."""
        self.engine.spawn(self, fn)

    # --- read access ---------------------------------------------------------------------------

    def default_market(self) -> tuple[str, str]:
        """`params.venue`/`params.symbol`, else the first configured venue and its first market."""
        venue = self.params.get("venue") or next(iter(self.engine.config.venues))
        markets = self.engine.config.venues[venue].markets
        symbol = self.params.get("symbol") or (markets[0] if markets else "")
        return venue, symbol

    def instrument(self, venue: str, symbol: str) -> Instrument | None:
        """The venue catalogue's view of a symbol (tick, lot, limits)."""
        return self.engine.orders.instruments.get((venue, symbol))

    def book(self, venue: str, symbol: str) -> OrderBook:
        # called from nearly every book handler: the engine's lookup, inlined
        engine = self._engine
        book = engine.books.get((venue, symbol)) if engine is not None else None
        return book if book is not None else self.engine.book(venue, symbol)

    def open_orders(self, venue: str | None = None, symbol: str | None = None) -> list[Order]:
        return [o for o in self.engine.orders.open_orders(venue, symbol) if o.strategy == self.name]

    def position(self, venue: str, symbol: str) -> Decimal:
        return self.engine.portfolio.position(venue, symbol)

    def balance(self, venue: str, asset: str) -> Balance | None:
        return self.engine.portfolio.balances.get((venue, asset))
