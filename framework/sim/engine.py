"""Price-time priority matching engine shared by the venue simulators.

One engine holds the order books of any number of symbols. Venue simulators register an
`EngineListener` and turn its callbacks into their own wire messages; clients rebuild the book from
`on_level` alone, so every change of an aggregate level size is reported, in the order it happened.

Callbacks are deferred until the engine's state is consistent again (after the whole submit or
cancel), then delivered in the order of the changes. A listener may therefore call back into the
engine (submit, cancel, read the book) from a callback; the events that causes are queued behind
the ones already pending. Each `on_order` carries a snapshot of the order at that event, so two
fills of the same order report two different states even though delivery is deferred.

Self-trade is allowed (simplest, and the crowd of `SyntheticMarket` trades with itself).
No I/O and no trio here.
"""

from __future__ import annotations

import collections
import itertools
import operator
import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

import attrs
from sortedcontainers import SortedDict

from framework.events import Side

LIMIT = "LIMIT"
MARKET = "MARKET"
GTC = "GTC"
IOC = "IOC"
FOK = "FOK"
OPEN = "OPEN"
FILLED = "FILLED"
CANCELLED = "CANCELLED"
REJECTED = "REJECTED"

POST_ONLY_REASON = "post-only order would take liquidity"

# History bounds: fills kept for `fills()` (in all, and again per owner), and finished (non-OPEN)
# orders kept for `order()`, `orders()` and `order_by_client_id()`. A simulator runs for hours.
FILL_HISTORY = 100_000
DONE_ORDER_HISTORY = 100_000

_ZERO = Decimal(0)

Levels = list[tuple[Decimal, Decimal]]


@attrs.define(slots=True)
class SimOrder:
    order_id: str
    owner: str
    symbol: str
    side: Side
    type: str
    price: Decimal | None
    quantity: Decimal
    filled: Decimal
    avg_price: Decimal
    tif: str
    post_only: bool
    status: str
    client_order_id: str | None
    created_ns: int
    updated_ns: int
    reject_reason: str | None = None

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled


@attrs.frozen(slots=True)
class SimFill:
    trade_id: str
    symbol: str
    price: Decimal
    quantity: Decimal
    aggressor: Side
    maker_order_id: str
    maker_owner: str
    taker_order_id: str
    taker_owner: str
    ts_ns: int


class EngineListener:
    """Base class for engine listeners: override the callbacks you need, the rest are no-ops."""

    def on_level(self, symbol: str, side: Side, price: Decimal, size: Decimal) -> None:
        """New aggregate size at `price`; 0 means the level is gone."""

    def on_trade(self, fill: SimFill) -> None:
        """A match between a resting (maker) and an incoming (taker) order."""

    def on_order(self, order: SimOrder) -> None:
        """Snapshot of an order after it changed (rested, filled, cancelled, rejected)."""


@attrs.define(slots=True)
class _Level:
    size: Decimal = _ZERO
    # dict keeps insertion order (time priority) and removes any order in O(1) on cancel.
    orders: dict[str, SimOrder] = attrs.Factory(dict)


def _bid_side() -> SortedDict:
    # Keyed by negated price so that, like the asks, index 0 is the best price.
    return SortedDict(operator.neg)


@attrs.define(slots=True)
class _Book:
    tick: Decimal
    lot: Decimal
    bids: SortedDict = attrs.Factory(_bid_side)
    asks: SortedDict = attrs.Factory(SortedDict)

    def side(self, side: Side) -> SortedDict:
        return self.bids if side is Side.BUY else self.asks


_Event = tuple[str, tuple[Any, ...]]


class MatchingEngine:
    def __init__(self, clock_ns: Callable[[], int] = time.time_ns, id_prefix: str = "O") -> None:
        self._clock_ns = clock_ns
        self._id_prefix = id_prefix
        self._order_seq = itertools.count(1)
        self._trade_seq = itertools.count(1)
        self._books: dict[str, _Book] = {}
        self._listeners: list[EngineListener] = []
        self._orders: dict[str, SimOrder] = {}  # creation order
        self._by_client: dict[tuple[str, str], SimOrder] = {}
        self._notional: dict[str, Decimal] = {}  # sum(price * qty) per order, for exact avg_price
        self._done: collections.deque[str] = collections.deque()
        self._done_limit = DONE_ORDER_HISTORY
        self._fills: collections.deque[SimFill] = collections.deque(maxlen=FILL_HISTORY)
        # each owner's own fills, kept apart so that a busy crowd does not push an account's
        # executions out of the history it reconciles from (a venue keeps your fills)
        self._owner_fills: dict[str, collections.deque[SimFill]] = {}
        self._pending: collections.deque[_Event] = collections.deque()
        self._dispatching = False

    @property
    def clock_ns(self) -> Callable[[], int]:
        """The clock the engine stamps orders and fills with: simulators stamp their own alike."""
        return self._clock_ns

    @property
    def history_limit(self) -> int:
        """How many finished orders the engine remembers; simulators bound their records alike."""
        return self._done_limit

    @property
    def fill_history_limit(self) -> int:
        """How many fills the engine remembers in all, and per owner."""
        return self._fills.maxlen or 0

    def limit_history(self, orders: int, fills: int) -> None:
        """Lower (or raise) both history bounds, e.g. so a soak's memory plateaus early."""
        self._done_limit = orders
        self._fills = collections.deque(self._fills, maxlen=fills)
        for owner, own in self._owner_fills.items():
            self._owner_fills[owner] = collections.deque(own, maxlen=fills)

    # --- symbols and listeners --------------------------------------------------------------

    def add_symbol(self, symbol: str, tick: Decimal, lot: Decimal) -> None:
        """Add a book. Adding an existing symbol again is a no-op if tick and lot match."""
        if tick <= 0 or lot <= 0:
            raise ValueError(f"{symbol}: tick and lot must be positive")
        existing = self._books.get(symbol)
        if existing is not None:
            if (existing.tick, existing.lot) != (tick, lot):
                raise ValueError(
                    f"{symbol} already exists with tick {existing.tick} lot {existing.lot}"
                )
            return
        self._books[symbol] = _Book(tick=tick, lot=lot)

    def symbols(self) -> list[str]:
        return list(self._books)

    def tick(self, symbol: str) -> Decimal:
        return self._books[symbol].tick

    def lot(self, symbol: str) -> Decimal:
        return self._books[symbol].lot

    @property
    def settling(self) -> bool:
        """True while callbacks of one change are still queued behind the one being delivered:
        a listener that must act once per whole change (a top-of-book summary) waits for False."""
        return bool(self._pending)

    def add_listener(self, listener: EngineListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: EngineListener) -> None:
        self._listeners.remove(listener)

    # --- orders ------------------------------------------------------------------------------

    def submit(
        self,
        owner: str,
        symbol: str,
        side: Side,
        type: str,
        quantity: Decimal,
        price: Decimal | None = None,
        tif: str = GTC,
        post_only: bool = False,
        client_order_id: str | None = None,
    ) -> SimOrder:
        """Match an order against the book; rest, cancel or reject what is left.

        Returns the live order. Listeners get, in order: per match on_trade, on_level (maker
        level), on_order (maker); then on_level for a rested remainder; then on_order (taker).
        """
        now = self._clock_ns()
        type, tif = str(type), str(tif)  # accept OrderType / TimeInForce members too
        order = SimOrder(
            order_id=f"{self._id_prefix}{next(self._order_seq):08d}",
            owner=owner,
            symbol=symbol,
            side=Side(side),
            type=type,
            price=None if type == MARKET else price,
            quantity=quantity,
            filled=_ZERO,
            avg_price=_ZERO,
            tif=tif,
            post_only=post_only,
            status=OPEN,
            client_order_id=client_order_id,
            created_ns=now,
            updated_ns=now,
        )
        self._orders[order.order_id] = order
        if client_order_id is not None:
            # A reused client id points at the newest order; venue simulators that must refuse
            # duplicates check `order_by_client_id` before submitting.
            self._by_client[(owner, client_order_id)] = order

        events: list[_Event] = []
        self._execute(order, now, events)
        if order.status != OPEN:
            self._retire(order)
        events.append(("on_order", (attrs.evolve(order),)))
        self._emit(events)
        return order

    def cancel(self, order_id: str) -> SimOrder | None:
        """Cancel a resting order. None if the id is unknown or the order is no longer OPEN."""
        order = self._orders.get(order_id)
        if order is None or order.status != OPEN:
            return None
        book = self._books[order.symbol]
        price = order.price
        assert price is not None  # only LIMIT orders rest
        size = self._shrink_level(book.side(order.side), price, order.remaining, order.order_id)
        order.status = CANCELLED
        order.updated_ns = self._clock_ns()
        self._retire(order)
        self._emit(
            [
                ("on_level", (order.symbol, order.side, price, size)),
                ("on_order", (attrs.evolve(order),)),
            ]
        )
        return order

    def order(self, order_id: str) -> SimOrder | None:
        return self._orders.get(order_id)

    def order_by_client_id(self, owner: str, client_order_id: str) -> SimOrder | None:
        return self._by_client.get((owner, client_order_id))

    def orders(
        self, owner: str | None = None, symbol: str | None = None, open_only: bool = False
    ) -> list[SimOrder]:
        return [
            o
            for o in self._orders.values()
            if (owner is None or o.owner == owner)
            and (symbol is None or o.symbol == symbol)
            and (not open_only or o.status == OPEN)
        ]

    def fills(self, owner: str | None = None, symbol: str | None = None) -> list[SimFill]:
        source = self._fills if owner is None else self._owner_fills.get(owner, ())
        return [f for f in source if symbol is None or f.symbol == symbol]

    # --- book --------------------------------------------------------------------------------

    def book(self, symbol: str, depth: int | None = None) -> tuple[Levels, Levels]:
        """Aggregated levels: (bids best first = descending, asks best first = ascending)."""
        book = self._books[symbol]
        return _levels(book.bids, depth), _levels(book.asks, depth)

    def best_bid(self, symbol: str) -> Decimal | None:
        bids = self._books[symbol].bids
        return bids.peekitem(0)[0] if bids else None

    def best_ask(self, symbol: str) -> Decimal | None:
        asks = self._books[symbol].asks
        return asks.peekitem(0)[0] if asks else None

    # --- matching ----------------------------------------------------------------------------

    def _execute(self, order: SimOrder, now: int, events: list[_Event]) -> None:
        reason = self._invalid_reason(order)
        if reason is not None:
            order.status, order.reject_reason = REJECTED, reason
            return
        book = self._books[order.symbol]
        if order.post_only and self._crosses(book, order):
            order.status, order.reject_reason = REJECTED, POST_ONLY_REASON
        elif order.tif == FOK and not self._can_fill(book, order):
            order.status = CANCELLED  # all or nothing: nothing traded, book untouched
        else:
            self._match(book, order, now, events)
            self._finish_taker(book, order, events)

    def _invalid_reason(self, order: SimOrder) -> str | None:
        book = self._books.get(order.symbol)
        if book is None:
            return f"unknown symbol {order.symbol}"
        if order.type not in (LIMIT, MARKET):
            return f"unknown order type {order.type}"
        if order.tif not in (GTC, IOC, FOK):
            return f"unknown time in force {order.tif}"
        if order.quantity <= 0:
            return f"quantity {order.quantity} must be positive"
        if order.quantity % book.lot != 0:
            return f"quantity {order.quantity} is not a multiple of lot {book.lot}"
        if order.type == MARKET:
            # A market order always takes liquidity, so post-only makes no sense for it.
            return "post-only order must be a LIMIT order" if order.post_only else None
        if order.price is None:
            return "LIMIT order requires a price"
        if order.price <= 0:
            return f"price {order.price} must be positive"
        if order.price % book.tick != 0:
            return f"price {order.price} is not a multiple of tick {book.tick}"
        return None

    @staticmethod
    def _within_limit(order: SimOrder, level_price: Decimal) -> bool:
        """Whether `order` may trade at `level_price` (market orders take any price)."""
        if order.price is None:
            return True
        if order.side is Side.BUY:
            return level_price <= order.price
        return level_price >= order.price

    def _crosses(self, book: _Book, order: SimOrder) -> bool:
        opposite = book.side(order.side.opposite)
        return bool(opposite) and self._within_limit(order, opposite.peekitem(0)[0])

    def _can_fill(self, book: _Book, order: SimOrder) -> bool:
        available = _ZERO
        for price, level in book.side(order.side.opposite).items():
            if not self._within_limit(order, price):
                break
            available += level.size
            if available >= order.remaining:
                return True
        return False

    def _match(self, book: _Book, taker: SimOrder, now: int, events: list[_Event]) -> None:
        opposite = book.side(taker.side.opposite)
        while taker.remaining > 0 and opposite:
            price, level = opposite.peekitem(0)
            if not self._within_limit(taker, price):
                break
            maker = next(iter(level.orders.values()))  # oldest order at the best price
            qty = min(taker.remaining, maker.remaining)
            self._apply_fill(maker, price, qty, now)
            self._apply_fill(taker, price, qty, now)
            done = maker.remaining == 0
            size = self._shrink_level(opposite, price, qty, maker.order_id if done else None)
            if done:
                maker.status = FILLED
                self._retire(maker)
            fill = SimFill(
                trade_id=f"T{next(self._trade_seq):010d}",
                symbol=taker.symbol,
                price=price,
                quantity=qty,
                aggressor=taker.side,
                maker_order_id=maker.order_id,
                maker_owner=maker.owner,
                taker_order_id=taker.order_id,
                taker_owner=taker.owner,
                ts_ns=now,
            )
            self._fills.append(fill)
            self._own_fill(maker.owner, fill)
            if taker.owner != maker.owner:
                self._own_fill(taker.owner, fill)
            events.append(("on_trade", (fill,)))
            events.append(("on_level", (taker.symbol, maker.side, price, size)))
            events.append(("on_order", (attrs.evolve(maker),)))

    def _own_fill(self, owner: str, fill: SimFill) -> None:
        own = self._owner_fills.get(owner)
        if own is None:
            own = self._owner_fills[owner] = collections.deque(maxlen=self._fills.maxlen)
        own.append(fill)

    def _finish_taker(self, book: _Book, order: SimOrder, events: list[_Event]) -> None:
        """After matching: a GTC limit rests its remainder, anything else cancels it."""
        if order.remaining == 0:
            order.status = FILLED
        elif order.type == LIMIT and order.tif == GTC:
            assert order.price is not None
            side = book.side(order.side)
            level = side.get(order.price)
            if level is None:
                level = side[order.price] = _Level()
            level.orders[order.order_id] = order
            level.size += order.remaining
            events.append(("on_level", (order.symbol, order.side, order.price, level.size)))
        else:
            order.status = CANCELLED

    def _apply_fill(self, order: SimOrder, price: Decimal, qty: Decimal, now: int) -> None:
        notional = self._notional.get(order.order_id, _ZERO) + price * qty
        self._notional[order.order_id] = notional
        order.filled += qty
        order.avg_price = notional / order.filled
        order.updated_ns = now

    @staticmethod
    def _shrink_level(side: SortedDict, price: Decimal, qty: Decimal, drop: str | None) -> Decimal:
        """Take `qty` off the level at `price`, drop order `drop` from it; return the new size."""
        level = side[price]
        level.size -= qty
        if drop is not None:
            del level.orders[drop]
            if not level.orders:
                del side[price]
        return level.size

    def _retire(self, order: SimOrder) -> None:
        """Book-keeping for an order that left OPEN; forget the oldest finished orders."""
        self._notional.pop(order.order_id, None)
        self._done.append(order.order_id)
        if len(self._done) > self._done_limit:
            old = self._orders.pop(self._done.popleft())
            if old.client_order_id is not None:
                key = (old.owner, old.client_order_id)
                if self._by_client.get(key) is old:
                    del self._by_client[key]

    def _emit(self, events: Iterable[_Event]) -> None:
        # Events raised by a listener calling back into the engine are appended behind the
        # pending ones and delivered by the outermost call, so delivery follows state order.
        self._pending.extend(events)
        if self._dispatching:
            return
        self._dispatching = True
        try:
            while self._pending:
                name, args = self._pending.popleft()
                for listener in list(self._listeners):
                    getattr(listener, name)(*args)
        finally:
            self._dispatching = False


def _levels(side: SortedDict, depth: int | None) -> Levels:
    return [(price, level.size) for price, level in itertools.islice(side.items(), depth)]
