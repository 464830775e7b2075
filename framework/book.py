"""L2 order book on Decimal prices, with a sync state a strategy can trust.

The book is only readable while SYNCED: best bid/ask and depth raise `BookNotSynced` otherwise,
so a strategy cannot mistake a half-built or gapped book for a good one. Snapshot fragments are
accumulated until the final one; deltas that arrive before the snapshot are buffered (bounded)
and, where the venue timestamps both, replayed only if newer than the snapshot.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from decimal import Decimal
from itertools import islice

from sortedcontainers import SortedDict

from framework.events import BookDelta, BookSnapshot, BookState, Level

_ZERO = Decimal(0)
# SortedDict is a dict whose keys are also kept in a sorted list; changing the size of an
# existing level only needs the dict part, which the C method does without Python overhead
_dict_set = dict.__setitem__


class BookNotSynced(RuntimeError):
    """Raised when a strategy reads a book that is not SYNCED."""


class OrderBook:
    """Aggregated price levels for one venue symbol."""

    __slots__ = (
        "_asks",
        "_best_ask",
        "_best_bid",
        "_bids",
        "_fragments",
        "_lost_until",
        "_pending",
        "buffer_limit",
        "last_update_ns",
        "state",
        "symbol",
        "unsync_reason",
        "venue",
    )

    def __init__(self, venue: str, symbol: str, *, buffer_limit: int = 10_000) -> None:
        self.venue = venue
        self.symbol = symbol
        # price -> size, ascending on both sides; the best prices are cached so the hot path
        # (apply a level, check crossing, read the top) never walks the sorted structure
        self._bids: SortedDict = SortedDict()
        self._asks: SortedDict = SortedDict()
        self._best_bid: Decimal | None = None
        self._best_ask: Decimal | None = None
        self._fragments: list[BookSnapshot] = []
        self._pending: list[BookDelta] = []
        self._lost_until = 0
        self.buffer_limit = buffer_limit
        self.state = BookState.UNSYNCED
        self.unsync_reason = "no snapshot yet"
        self.last_update_ns = 0

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
        self.state = BookState.SYNCED
        self.unsync_reason = ""
        return True

    def apply_delta(self, delta: BookDelta) -> bool:
        """Apply a delta. True if the book is SYNCED afterwards and the delta was applied."""
        if self.state is BookState.UNSYNCED:
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
        self.state = BookState.SYNCED
        self._set_levels(delta.bids, delta.asks)
        self.last_update_ns = delta.recv_ns
        if self._crossed():
            self.mark_unsynced("crossed book")
            return False
        return True

    def _set_levels(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        side = self._bids
        for price, size in bids:
            if size > _ZERO:
                if price in side:
                    _dict_set(side, price, size)  # existing level: no re-sorting needed
                else:
                    side[price] = size
                    if self._best_bid is None or price > self._best_bid:
                        self._best_bid = price
            elif side.pop(price, None) is not None and price == self._best_bid:
                self._best_bid = side.peekitem(-1)[0] if side else None
        side = self._asks
        for price, size in asks:
            if size > _ZERO:
                if price in side:
                    _dict_set(side, price, size)
                else:
                    side[price] = size
                    if self._best_ask is None or price < self._best_ask:
                        self._best_ask = price
            elif side.pop(price, None) is not None and price == self._best_ask:
                self._best_ask = side.peekitem(0)[0] if side else None

    def _crossed(self) -> bool:
        bid, ask = self._best_bid, self._best_ask
        return bid is not None and ask is not None and bid >= ask

    def _clear(self) -> None:
        self._bids.clear()
        self._asks.clear()
        self._best_bid = self._best_ask = None

    # --- sync state ----------------------------------------------------------------------------

    def mark_unsynced(self, reason: str) -> None:
        """Forget everything: the next snapshot rebuilds the book."""
        self.state = BookState.UNSYNCED
        self.unsync_reason = reason
        self._clear()
        self._fragments = []
        self._pending = []
        self._lost_until = 0

    def mark_stale(self, reason: str) -> None:
        """Keep the levels but refuse reads until fresh data confirms them."""
        if self.state is BookState.SYNCED:
            self.state = BookState.STALE
            self.unsync_reason = reason

    def mark_fresh(self) -> None:
        if self.state is BookState.STALE:
            self.state = BookState.SYNCED
            self.unsync_reason = ""

    @property
    def is_synced(self) -> bool:
        return self.state is BookState.SYNCED

    def age_ns(self, now_ns: int | None = None) -> int:
        """Nanoseconds since the last applied update (monotonic clock)."""
        return (now_ns if now_ns is not None else time.monotonic_ns()) - self.last_update_ns

    # --- reading (strategies) ------------------------------------------------------------------

    def _check(self) -> None:
        if self.state is not BookState.SYNCED:
            raise BookNotSynced(
                f"{self.venue} {self.symbol} book is {self.state.value}: {self.unsync_reason}"
            )

    def best_bid(self) -> Level | None:
        if self.state is not BookState.SYNCED:
            self._check()
        price = self._best_bid
        return None if price is None else (price, self._bids[price])

    def best_ask(self) -> Level | None:
        if self.state is not BookState.SYNCED:
            self._check()
        price = self._best_ask
        return None if price is None else (price, self._asks[price])

    def mid(self) -> Decimal | None:
        bid, ask = self.best_bid(), self.best_ask()
        if bid is None or ask is None:
            return None
        return (bid[0] + ask[0]) / 2

    def bids(self, depth: int | None = None) -> list[Level]:
        """Bid levels, best first."""
        self._check()
        items = reversed(self._bids.items())
        return list(islice(items, depth) if depth else items)

    def asks(self, depth: int | None = None) -> list[Level]:
        """Ask levels, best first."""
        self._check()
        return list(self._asks.items()[:depth] if depth else self._asks.items())

    def size_at(self, side_is_bid: bool, price: Decimal) -> Decimal:
        self._check()
        return (self._bids if side_is_bid else self._asks).get(price, _ZERO)

    def levels_unchecked(self) -> tuple[list[Level], list[Level]]:
        """Both sides regardless of state, for diagnostics and tests."""
        return list(reversed(self._bids.items())), list(self._asks.items())
