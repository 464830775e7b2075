"""Order-by-order (L3) books aggregated into the L2 events the core book applies.

Venues such as Power.Trade publish every resting order by id (`order_added`, `order_deleted`,
`order_executed`, ...). Strategies and the core `OrderBook` work on price levels, so an L3 decoder
keeps one `L3Book` per symbol: a map order id -> (side, price, size) plus the level totals, and
every change comes back as a `BookSnapshot` / `BookDelta` with the *absolute* size of each level
it touched (size 0 removes the level), which is exactly what
`framework.data.book.OrderBook` expects.

Consistency: an L3 feed is only right if no message was lost. A change that names an order the
book does not hold (or adds one it already holds) proves a gap; the book then raises
`L3Inconsistent` and stays unsynced until the next snapshot, so the decoder can invalidate the L2
book and ask for a fresh snapshot instead of publishing a wrong one. Changes that arrive before
the first snapshot are ignored: on one ordered connection the snapshot already contains them.

Deltas carry whatever `venue_ts` the caller gives; an L3 decoder should pass None unless its
venue's delta timestamps are strictly ordered with the snapshot's, because the core book replays
buffered deltas against a snapshot by `venue_ts`.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import NoReturn

from framework.errors import FrameError
from framework.events import BookDelta, BookSnapshot, Level, Side

_ZERO = Decimal(0)
_EMPTY: tuple[Level, ...] = ()
# module constants: reading an Enum member off its class costs ~90 ns on Python 3.11, and every
# change checks the side
_BUY = Side.BUY


class L3Inconsistent(FrameError):
    """The order-by-order feed contradicts the book (a message was lost): resync needed."""


class L3Book:
    """One symbol's orders by id, with aggregated level sizes per side.

    Hot path: every L3 message is one of `add`, `delete`, `execute` or `update`, each touching
    one level (two for an update that moves an order). Each checks the sync state and looks the
    order up inline, then builds the delta of the touched level directly: no set of touched
    levels to sort (a set of `(Side, Decimal)` tuples, sorted, cost more than the change itself).
    """

    __slots__ = ("_asks", "_bids", "ignored", "orders", "symbol", "synced", "venue")

    def __init__(self, venue: str, symbol: str) -> None:
        self.venue = venue
        self.symbol = symbol
        self.orders: dict[str, tuple[Side, Decimal, Decimal]] = {}
        # price -> total size of the orders resting there, one dict per side
        self._bids: dict[Decimal, Decimal] = {}
        self._asks: dict[Decimal, Decimal] = {}
        self.synced = False
        self.ignored = 0  # changes dropped because no snapshot had arrived yet

    # --- state -----------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything (reconnect, resync): the next snapshot rebuilds the book."""
        self.orders.clear()
        self._bids.clear()
        self._asks.clear()
        self.synced = False

    def levels(self, side: Side) -> list[Level]:
        """Aggregated levels of one side, best first."""
        is_bid = side is _BUY
        items = sorted((self._bids if is_bid else self._asks).items(), reverse=is_bid)
        return [(p, s) for p, s in items if s > _ZERO]

    # --- applying the feed -----------------------------------------------------------------------

    def snapshot(
        self,
        orders: Iterable[tuple[str, Side, Decimal, Decimal]],
        *,
        venue_ts: int | None,
        recv_ns: int,
        epoch: int,
    ) -> BookSnapshot:
        """Replace the book with `(order_id, side, price, size)` rows."""
        self.reset()
        for order_id, side, price, size in orders:
            if order_id in self.orders:
                raise FrameError(f"snapshot lists order {order_id} twice")
            self._put(order_id, side, price, size)
        self.synced = True
        return BookSnapshot(
            self.venue,
            self.symbol,
            tuple(self.levels(Side.BUY)),
            tuple(self.levels(Side.SELL)),
            venue_ts,
            recv_ns,
            epoch,
        )

    def add(
        self,
        order_id: str,
        side: Side,
        price: Decimal,
        size: Decimal,
        *,
        venue_ts: int | None,
        recv_ns: int,
        epoch: int,
    ) -> BookDelta | None:
        if not self.synced:
            self.ignored += 1
            return None
        if order_id in self.orders:
            self._gap(f"order {order_id} added twice")
        self._put(order_id, side, price, size)
        return self._delta(side, price, venue_ts, recv_ns, epoch)

    def delete(
        self, order_id: str, *, venue_ts: int | None, recv_ns: int, epoch: int
    ) -> BookDelta | None:
        if not self.synced:
            self.ignored += 1
            return None
        entry = self.orders.get(order_id)
        if entry is None:
            self._gap(f"unknown order {order_id}")
        side, price, _ = entry
        self._drop(order_id)
        return self._delta(side, price, venue_ts, recv_ns, epoch)

    def execute(
        self,
        order_id: str,
        *,
        executed: Decimal | None = None,
        remaining: Decimal | None = None,
        venue_ts: int | None,
        recv_ns: int,
        epoch: int,
    ) -> BookDelta | None:
        """An order traded: give its new `remaining` size, or the `executed` quantity."""
        if not self.synced:
            self.ignored += 1
            return None
        entry = self.orders.get(order_id)
        if entry is None:
            self._gap(f"unknown order {order_id}")
        side, price, size = entry
        if remaining is None:
            if executed is None:
                raise FrameError("execution without executed or remaining quantity")
            remaining = size - executed
            if remaining < _ZERO:
                self._gap(f"order {order_id} executed {executed} with only {size} left")
        self._drop(order_id)
        if remaining > _ZERO:
            self._put(order_id, side, price, remaining)
        return self._delta(side, price, venue_ts, recv_ns, epoch)

    def update(
        self,
        old_order_id: str,
        new_order_id: str,
        *,
        price: Decimal | None,
        size: Decimal | None,
        venue_ts: int | None,
        recv_ns: int,
        epoch: int,
    ) -> BookDelta | None:
        """An order was amended (possibly under a new id): new price and/or size."""
        if not self.synced:
            self.ignored += 1
            return None
        entry = self.orders.get(old_order_id)
        if entry is None:
            self._gap(f"unknown order {old_order_id}")
        side, old_price, old_size = entry
        if new_order_id != old_order_id and new_order_id in self.orders:
            self._gap(f"order {new_order_id} already in the book")
        self._drop(old_order_id)
        new_price = old_price if price is None else price
        new_size = old_size if size is None else size
        if new_size > _ZERO:
            self._put(new_order_id, side, new_price, new_size)
        if new_price == old_price:
            return self._delta(side, old_price, venue_ts, recv_ns, epoch)
        # the order moved: both levels, in ascending price order
        levels = self._bids if side is _BUY else self._asks
        low, high = (old_price, new_price) if old_price < new_price else (new_price, old_price)
        both = ((low, levels.get(low, _ZERO)), (high, levels.get(high, _ZERO)))
        if side is _BUY:
            return BookDelta(self.venue, self.symbol, both, _EMPTY, venue_ts, recv_ns, epoch)
        return BookDelta(self.venue, self.symbol, _EMPTY, both, venue_ts, recv_ns, epoch)

    # --- internals -------------------------------------------------------------------------------

    def _gap(self, reason: str) -> NoReturn:
        self.reset()
        raise L3Inconsistent(f"{self.symbol}: {reason}")

    def _put(self, order_id: str, side: Side, price: Decimal, size: Decimal) -> None:
        if price <= _ZERO or size <= _ZERO:
            raise FrameError(f"order {order_id}: price and size must be positive")
        self.orders[order_id] = (side, price, size)
        levels = self._bids if side is _BUY else self._asks
        levels[price] = levels.get(price, _ZERO) + size

    def _drop(self, order_id: str) -> None:
        side, price, size = self.orders.pop(order_id)
        levels = self._bids if side is _BUY else self._asks
        left = levels[price] - size
        if left > _ZERO:
            levels[price] = left
        else:
            del levels[price]

    def _delta(
        self, side: Side, price: Decimal, venue_ts: int | None, recv_ns: int, epoch: int
    ) -> BookDelta:
        """The one level a change touched, at its new absolute size (0: gone)."""
        if side is _BUY:
            level = ((price, self._bids.get(price, _ZERO)),)
            return BookDelta(self.venue, self.symbol, level, _EMPTY, venue_ts, recv_ns, epoch)
        level = ((price, self._asks.get(price, _ZERO)),)
        return BookDelta(self.venue, self.symbol, _EMPTY, level, venue_ts, recv_ns, epoch)
