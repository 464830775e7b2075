"""The market-data path: every event every stream decodes comes through `MarketDataRouter.on_event`.

The router owns the L2 books of the streams added to it, applies snapshots and deltas, asks the
owning session for a resync when a book breaks, tells strategies what state their books are in
(`BookStatus`, `VenueStatus`) and publishes everything to the bus. It hands what is not market
data to whoever composed it: execution reports, balances and venue positions go to the callbacks
set on it (the engine wires them to the order manager and the portfolio).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, Protocol

import structlog

from framework.data.book import OrderBook
from framework.data.bus import Bus, nothing
from framework.errors import BookNotSynced
from framework.events import (
    Balance,
    BookDelta,
    BookInvalidated,
    BookSnapshot,
    BookState,
    BookStatus,
    ExecutionReport,
    Position,
    VenueState,
    VenueStatus,
)
from framework.venue import Stream

log = structlog.get_logger("botrun.runner")
# Enum members as module constants for the per-delta path (class attribute reads of an Enum
# member cost ~90 ns on Python 3.11)
_SYNCED, _STALE, _UNSYNCED = BookState.SYNCED, BookState.STALE, BookState.UNSYNCED


class Feed(Protocol):
    """What the router needs of whatever drives a stream: a `WsSession`, or a replay's stand-in
    (the summary also reads `venue`, `counts` and `frames_received`)."""

    stream: Stream

    def request_resync(self, symbol: str) -> None: ...


def _ignore(_: Any) -> None:
    return None


class MarketDataRouter:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        # the bus's dispatchers by event type: the hot paths below call the one for their
        # event's type straight away (`Bus.routes`), which is what `bus.publish` does
        self._routes = bus.routes
        self.books: dict[tuple[str, str], OrderBook] = {}
        self.sessions: list[Any] = []  # the Feeds added, in order (the summary lists them)
        # events routed, by venue (`event_counts`): a book's deltas counted on the book (an
        # attribute increment, a fifth of a dict update: most events are deltas), the rest here.
        # A plain dict, not a Counter: incrementing a Counter (a dict subclass) costs ~100 ns
        # against ~35 for a dict
        self._counts: dict[str, int] = {}
        self._book_owner: dict[tuple[str, str], Feed] = {}
        # where what is not market data goes (set by the composition root)
        self.on_execution: Callable[[ExecutionReport], None] = _ignore
        self.on_balance: Callable[[Balance], None] = _ignore
        self.on_position: Callable[[Position], None] = _ignore

    # --- set-up and reads ----------------------------------------------------------------------

    def add_stream(self, stream: Stream, session: Feed) -> None:
        """Route a stream's events here and own its books, resynced through `session`."""
        stream.emit = self.on_event
        self.sessions.append(session)
        for symbol in stream.books():
            key = (stream.venue, symbol)
            self.books.setdefault(key, OrderBook(stream.venue, symbol))
            self._book_owner[key] = session

    @property
    def event_counts(self) -> dict[str, int]:
        """Events routed so far, by venue (a new dict each time)."""
        counts = dict(self._counts)
        for (venue, _symbol), book in self.books.items():
            if book.deltas:
                counts[venue] = counts.get(venue, 0) + book.deltas
        return counts

    def book(self, venue: str, symbol: str) -> OrderBook:
        book = self.books.get((venue, symbol))
        if book is None:
            raise KeyError(f"no book for {venue} {symbol}; is the market configured?")
        return book

    def mid(self, venue: str, symbol: str) -> Decimal | None:
        """The book's mid price; None if there is no book or it is not synced."""
        book = self.books.get((venue, symbol))
        if book is None:
            return None
        try:
            return book.mid()
        except BookNotSynced:
            return None

    # --- routing -------------------------------------------------------------------------------

    def on_event(self, event: Any) -> None:
        t = type(event)
        if t is BookDelta:
            # the hot path (most frames of every venue): kept inline
            book = self.books.get((event.venue, event.symbol))
            if book is not None:
                book.deltas += 1
                prior = book.state
                if book.apply_delta(event):
                    if prior is _STALE:
                        self._book_status(book, event.epoch)
                    dispatch = self._routes.get(t) or self.bus.route(t)
                    if dispatch is not nothing:
                        dispatch(event)
                elif prior is not _UNSYNCED:
                    self._book_status(book, event.epoch)
                    self.resync(book)
                return
        elif t is BookSnapshot:
            self._on_snapshot(event)
        elif t is ExecutionReport:
            self.on_execution(event)
            return
        elif t is BookInvalidated:
            self._on_invalidated(event)
        else:
            if t is Balance:
                self.on_balance(event)
            elif t is Position:
                self.on_position(event)
            dispatch = self._routes.get(t) or self.bus.route(t)
            if dispatch is not nothing:
                dispatch(event)
        counts = self._counts
        counts[event.venue] = counts.get(event.venue, 0) + 1

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
                self.venue_status(
                    VenueStatus(
                        snap.venue, VenueState.SYNCED, snap.epoch, stream=session.stream.name
                    )
                )
        elif snap.final:
            self._book_status(book, snap.epoch)
            self.resync(book)

    def _on_invalidated(self, event: BookInvalidated) -> None:
        book = self.books.get((event.venue, event.symbol))
        if book is None:
            return
        book.mark_unsynced(event.reason)
        self._book_status(book, event.epoch)
        self.resync(book)

    def resync(self, book: OrderBook) -> None:
        """Ask the session that owns `book` for a fresh snapshot."""
        session = self._book_owner.get((book.venue, book.symbol))
        if session is not None:
            session.request_resync(book.symbol)

    def _book_status(self, book: OrderBook, epoch: int) -> None:
        self.bus.publish(BookStatus(book.venue, book.symbol, book.state, book.unsync_reason, epoch))

    # --- what sessions report ------------------------------------------------------------------

    def books_lost(self, stream: Stream, reason: str) -> None:
        """The stream went silent ("stale") or its connection is gone: its books say so."""
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

    def venue_status(self, status: VenueStatus) -> None:
        log.info(
            "venue status",
            venue=status.venue,
            stream=status.stream,
            state=status.state.value,
            reason=status.reason,
        )
        self.bus.publish(status)
