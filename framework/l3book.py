"""Order-by-order (L3) books aggregated into the L2 events the core book applies.

Venues such as Power.Trade publish every resting order by id (`order_added`, `order_deleted`,
`order_executed`, ...). Strategies and the core `OrderBook` work on price levels, so an L3 decoder
keeps one `L3Book` per symbol: a map order id -> (side, price, size) plus the level totals, and
every change comes back as a `BookSnapshot` / `BookDelta` with the *absolute* size of each level
it touched (size 0 removes the level), which is exactly what `framework.book.OrderBook` expects.

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

from framework.events import BookDelta, BookSnapshot, Level, Side
from framework.venue import FrameError

_ZERO = Decimal(0)
_EMPTY: tuple[Level, ...] = ()


class L3Inconsistent(FrameError):
    """The order-by-order feed contradicts the book (a message was lost): resync needed."""


class L3Book:
    """One symbol's orders by id, with aggregated level sizes per side."""

    __slots__ = ("_levels", "ignored", "orders", "symbol", "synced", "venue")

    def __init__(self, venue: str, symbol: str) -> None:
        self.venue = venue
        self.symbol = symbol
        self.orders: dict[str, tuple[Side, Decimal, Decimal]] = {}
        self._levels: dict[Side, dict[Decimal, Decimal]] = {Side.BUY: {}, Side.SELL: {}}
        self.synced = False
        self.ignored = 0  # changes dropped because no snapshot had arrived yet

    # --- state -----------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything (reconnect, resync): the next snapshot rebuilds the book."""
        self.orders.clear()
        self._levels[Side.BUY].clear()
        self._levels[Side.SELL].clear()
        self.synced = False

    def levels(self, side: Side) -> list[Level]:
        """Aggregated levels of one side, best first."""
        items = sorted(self._levels[side].items(), reverse=side is Side.BUY)
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
        if not self._ready():
            return None
        if order_id in self.orders:
            self._gap(f"order {order_id} added twice")
        self._put(order_id, side, price, size)
        return self._delta({(side, price)}, venue_ts, recv_ns, epoch)

    def delete(
        self, order_id: str, *, venue_ts: int | None, recv_ns: int, epoch: int
    ) -> BookDelta | None:
        if not self._ready():
            return None
        side, price, _ = self._known(order_id)
        self._drop(order_id)
        return self._delta({(side, price)}, venue_ts, recv_ns, epoch)

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
        if not self._ready():
            return None
        side, price, size = self._known(order_id)
        if remaining is None:
            if executed is None:
                raise FrameError("execution without executed or remaining quantity")
            remaining = size - executed
            if remaining < _ZERO:
                self._gap(f"order {order_id} executed {executed} with only {size} left")
        self._drop(order_id)
        if remaining > _ZERO:
            self._put(order_id, side, price, remaining)
        return self._delta({(side, price)}, venue_ts, recv_ns, epoch)

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
        if not self._ready():
            return None
        side, old_price, old_size = self._known(old_order_id)
        if new_order_id != old_order_id and new_order_id in self.orders:
            self._gap(f"order {new_order_id} already in the book")
        self._drop(old_order_id)
        new_price = old_price if price is None else price
        new_size = old_size if size is None else size
        if new_size > _ZERO:
            self._put(new_order_id, side, new_price, new_size)
        return self._delta({(side, old_price), (side, new_price)}, venue_ts, recv_ns, epoch)

    # --- internals -------------------------------------------------------------------------------

    def _ready(self) -> bool:
        if not self.synced:
            self.ignored += 1
            return False
        return True

    def _known(self, order_id: str) -> tuple[Side, Decimal, Decimal]:
        entry = self.orders.get(order_id)
        if entry is None:
            self._gap(f"unknown order {order_id}")
        assert entry is not None
        return entry

    def _gap(self, reason: str) -> None:
        self.reset()
        raise L3Inconsistent(f"{self.symbol}: {reason}")

    def _put(self, order_id: str, side: Side, price: Decimal, size: Decimal) -> None:
        if price <= _ZERO or size <= _ZERO:
            raise FrameError(f"order {order_id}: price and size must be positive")
        self.orders[order_id] = (side, price, size)
        levels = self._levels[side]
        levels[price] = levels.get(price, _ZERO) + size

    def _drop(self, order_id: str) -> None:
        side, price, size = self.orders.pop(order_id)
        levels = self._levels[side]
        left = levels[price] - size
        if left > _ZERO:
            levels[price] = left
        else:
            del levels[price]

    def _delta(
        self,
        touched: set[tuple[Side, Decimal]],
        venue_ts: int | None,
        recv_ns: int,
        epoch: int,
    ) -> BookDelta:
        bids: list[Level] = []
        asks: list[Level] = []
        for side, price in sorted(touched):
            level = (price, self._levels[side].get(price, _ZERO))
            (bids if side is Side.BUY else asks).append(level)
        return BookDelta(
            self.venue,
            self.symbol,
            tuple(bids) or _EMPTY,
            tuple(asks) or _EMPTY,
            venue_ts,
            recv_ns,
            epoch,
        )
