"""L2 order book on Decimal prices, with a sync state a strategy can trust.

The book is only readable while SYNCED: best bid/ask and depth raise `BookNotSynced` otherwise,
so a strategy cannot mistake a half-built or gapped book for a good one. Snapshot fragments are
accumulated until the final one; deltas that arrive before the snapshot are buffered (bounded)
and, where the venue timestamps both, replayed only if newer than the snapshot.
"""

from __future__ import annotations

import time
from bisect import bisect_left, insort
from collections.abc import Iterable
from decimal import Decimal

from framework.errors import BookNotSynced
from framework.events import BookDelta, BookSnapshot, BookState, Level

_ZERO = Decimal(0)
# module constants: reading an Enum member off its class costs ~90 ns on Python 3.11, and the
# hot path checks the state several times per delta
_SYNCED, _STALE, _UNSYNCED = BookState.SYNCED, BookState.STALE, BookState.UNSYNCED


class OrderBook:
    """Aggregated price levels for one venue symbol."""

    __slots__ = (
        "_ask_prices",
        "_asks",
        "_bid_prices",
        "_bids",
        "_fragments",
        "_lost_until",
        "_pending",
        "buffer_limit",
        "deltas",
        "last_update_ns",
        "state",
        "symbol",
        "unsync_reason",
        "venue",
    )

    def __init__(self, venue: str, symbol: str, *, buffer_limit: int = 10_000) -> None:
        self.venue = venue
        self.symbol = symbol
        # Each side is a dict price -> size and the list of its prices in ascending order
        # (best bid last, best ask first). A size change touches only the dict; a new or removed
        # level is one C bisect and a memmove in the list. Measured against SortedDict (whose
        # insert and remove run in Python): half the cost per delta (bench/throughput.py).
        self._bids: dict[Decimal, Decimal] = {}
        self._asks: dict[Decimal, Decimal] = {}
        self._bid_prices: list[Decimal] = []
        self._ask_prices: list[Decimal] = []
        self._fragments: list[BookSnapshot] = []
        self._pending: list[BookDelta] = []
        self._lost_until = 0
        self.buffer_limit = buffer_limit
        self.state = _UNSYNCED
        self.unsync_reason = "no snapshot yet"
        self.last_update_ns = 0
        # deltas the market-data router handed this book (its `event_counts` adds them up)
        self.deltas = 0

    # --- applying venue data -----------------------------------------------------------------

    def apply_snapshot(self, snap: BookSnapshot) -> bool:
        """Apply a snapshot (or a fragment of one). True once the book is SYNCED by it."""
        if not snap.final:
            self._fragments.append(snap)
            return False
        parts = [*self._fragments, snap]
        self._fragments = []
        self._clear()
        for part in parts:
            self._set_levels(part.bids, part.asks)
        self.last_update_ns = snap.recv_ns
        pending, self._pending = self._pending, []
        lost_until, self._lost_until = self._lost_until, 0
        if lost_until and (snap.venue_ts is None or snap.venue_ts < lost_until):
            self.mark_unsynced("pre-snapshot buffer overflowed")
            return False
        for delta in pending:
            # Only deltas strictly newer than the snapshot are not yet in it. Without venue
            # timestamps there is no way to tell, and replaying is the lesser evil only if
            # the venue guarantees ordering, so untimed buffered deltas are dropped.
            if (
                snap.venue_ts is not None
                and delta.venue_ts is not None
                and (delta.venue_ts > snap.venue_ts)
            ):
                self._set_levels(delta.bids, delta.asks)
        if self._crossed():
            self.mark_unsynced("crossed after snapshot")
            return False
        self.state = _SYNCED
        self.unsync_reason = ""
        return True

    def apply_delta(self, delta: BookDelta) -> bool:
        """Apply a delta. True if the book is SYNCED afterwards and the delta was applied."""
        if self.state is _UNSYNCED:
            if len(self._pending) >= self.buffer_limit:
                # Dropping silently would let a later snapshot replay an incomplete tail; remember
                # how far we lost data so an older snapshot is refused.
                self._lost_until = max(
                    self._lost_until, delta.venue_ts or 0, *(d.venue_ts or 0 for d in self._pending)
                )
                self._pending = []
            self._pending.append(delta)
            return False
        # A STALE book is still consistent (no frame was lost, the feed was only quiet):
        # a delta both updates it and proves the feed alive again.
        self.state = _SYNCED
        self.last_update_ns = delta.recv_ns
        # `_set_levels`, inlined: this runs for every delta, and a call costs what the rest of
        # a one-level delta does
        added = False
        side, prices = self._bids, self._bid_prices
        for price, size in delta.bids:
            if size > _ZERO:
                if price not in side:
                    insort(prices, price)
                    added = True
                side[price] = size
            elif side.pop(price, None) is not None:
                del prices[bisect_left(prices, price)]
        side, prices = self._asks, self._ask_prices
        for price, size in delta.asks:
            if size > _ZERO:
                if price not in side:
                    insort(prices, price)
                    added = True
                side[price] = size
            elif side.pop(price, None) is not None:
                del prices[bisect_left(prices, price)]
        # Only a new level can cross the book: a SYNCED (or STALE) book is never crossed (a
        # snapshot or delta that crosses it unsyncs it), and a size change or a removal leaves
        # the best prices where they were or further apart
        if added:
            bids, asks = self._bid_prices, self._ask_prices
            if bids and asks and bids[-1] >= asks[0]:
                self.mark_unsynced("crossed book")
                return False
        return True

    def _set_levels(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        side, prices = self._bids, self._bid_prices
        for price, size in bids:
            if size > _ZERO:
                if price not in side:
                    insort(prices, price)
                side[price] = size
            elif side.pop(price, None) is not None:
                del prices[bisect_left(prices, price)]
        side, prices = self._asks, self._ask_prices
        for price, size in asks:
            if size > _ZERO:
                if price not in side:
                    insort(prices, price)
                side[price] = size
            elif side.pop(price, None) is not None:
                del prices[bisect_left(prices, price)]

    def _crossed(self) -> bool:
        bids, asks = self._bid_prices, self._ask_prices
        return bool(bids) and bool(asks) and bids[-1] >= asks[0]

    def _clear(self) -> None:
        self._bids.clear()
        self._asks.clear()
        self._bid_prices.clear()
        self._ask_prices.clear()

    # --- sync state ----------------------------------------------------------------------------

    def mark_unsynced(self, reason: str) -> None:
        """Forget everything: the next snapshot rebuilds the book."""
        self.state = _UNSYNCED
        self.unsync_reason = reason
        self._clear()
        self._fragments = []
        self._pending = []
        self._lost_until = 0

    def mark_stale(self, reason: str) -> None:
        """Keep the levels but refuse reads until fresh data confirms them."""
        if self.state is _SYNCED:
            self.state = _STALE
            self.unsync_reason = reason

    def mark_fresh(self) -> None:
        if self.state is _STALE:
            self.state = _SYNCED
            self.unsync_reason = ""

    @property
    def is_synced(self) -> bool:
        return self.state is _SYNCED

    def age_ns(self, now_ns: int | None = None) -> int:
        """Nanoseconds since the last applied update (monotonic clock)."""
        return (now_ns if now_ns is not None else time.monotonic_ns()) - self.last_update_ns

    # --- reading (strategies) ------------------------------------------------------------------

    def _check(self) -> None:
        if self.state is not _SYNCED:
            raise BookNotSynced(
                f"{self.venue} {self.symbol} book is {self.state.value}: {self.unsync_reason}"
            )

    def best_bid(self) -> Level | None:
        if self.state is not _SYNCED:
            self._check()
        prices = self._bid_prices
        if not prices:
            return None
        price = prices[-1]
        return price, self._bids[price]

    def best_ask(self) -> Level | None:
        if self.state is not _SYNCED:
            self._check()
        prices = self._ask_prices
        if not prices:
            return None
        price = prices[0]
        return price, self._asks[price]

    def mid(self) -> Decimal | None:
        bid, ask = self.best_bid(), self.best_ask()
        if bid is None or ask is None:
            return None
        return (bid[0] + ask[0]) / 2

    def bids(self, depth: int | None = None) -> list[Level]:
        """Bid levels, best first."""
        self._check()
        return self._side(self._bids, self._bid_prices, True, depth)

    def asks(self, depth: int | None = None) -> list[Level]:
        """Ask levels, best first."""
        self._check()
        return self._side(self._asks, self._ask_prices, False, depth)

    @staticmethod
    def _side(
        side: dict[Decimal, Decimal], prices: list[Decimal], descending: bool, depth: int | None
    ) -> list[Level]:
        if descending:
            chosen = prices[: -depth - 1 : -1] if depth else prices[::-1]
        else:
            chosen = prices[:depth] if depth else prices
        return [(p, side[p]) for p in chosen]

    def size_at(self, side_is_bid: bool, price: Decimal) -> Decimal:
        self._check()
        return (self._bids if side_is_bid else self._asks).get(price, _ZERO)

    def levels_unchecked(self) -> tuple[list[Level], list[Level]]:
        """Both sides regardless of state, for diagnostics and tests."""
        return (
            self._side(self._bids, self._bid_prices, True, None),
            self._side(self._asks, self._ask_prices, False, None),
        )
