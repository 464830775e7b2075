"""MarketDataRouter on its own: books, their status news, resyncs and what is not market data."""

from __future__ import annotations

from decimal import Decimal as D

from framework.data.bus import Bus
from framework.data.router import MarketDataRouter
from framework.events import (
    Balance,
    BookDelta,
    BookInvalidated,
    BookSnapshot,
    BookState,
    BookStatus,
    ExecutionReport,
    VenueState,
    VenueStatus,
)
from framework.venue import Stream

VENUE, SYM = "paxos", "BTCUSD"


class BookStream(Stream):
    name = "marketdata"
    venue = VENUE

    async def url(self) -> str:
        return "ws://127.0.0.1:9"

    def decode(self, frame: str | bytes, recv_ns: int) -> None:
        raise AssertionError("not fed frames")

    def books(self) -> list[str]:
        return [SYM]


class Feed:
    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.resyncs: list[str] = []

    def request_resync(self, symbol: str) -> None:
        self.resyncs.append(symbol)


def snap(bid: str = "100", ask: str = "101", size: str = "1") -> BookSnapshot:
    return BookSnapshot(VENUE, SYM, ((D(bid), D(size)),), ((D(ask), D("1")),), None, 0, 1)


def delta(bid: str, size: str) -> BookDelta:
    return BookDelta(VENUE, SYM, ((D(bid), D(size)),), (), None, 0, 1)


def routed() -> tuple[MarketDataRouter, Feed, list[object], BookStream]:
    bus = Bus()
    router = MarketDataRouter(bus)
    stream = BookStream()
    feed = Feed(stream)
    router.add_stream(stream, feed)
    seen: list[object] = []
    for kind in (BookSnapshot, BookDelta, BookStatus, VenueStatus, Balance):
        bus.subscribe(kind, seen.append, owner="strategy")
    return router, feed, seen, stream


def test_a_delta_before_the_snapshot_does_not_reach_strategies() -> None:
    router, feed, seen, stream = routed()
    assert stream.emit == router.on_event  # the stream emits straight into the router
    stream.emit(delta("99", "2"))
    assert seen == []
    assert router.book(VENUE, SYM).state is BookState.UNSYNCED
    assert feed.resyncs == []  # already unsynced: its snapshot is on its way, no second ask


def test_a_snapshot_syncs_the_book_and_says_so_once() -> None:
    router, _, seen, _ = routed()
    router.on_event(snap())
    book = router.book(VENUE, SYM)
    assert book.is_synced and book.best_bid() == (D("100"), D("1"))
    assert [type(e) for e in seen] == [BookSnapshot, BookStatus, VenueStatus]
    status, venue = seen[1], seen[2]
    assert isinstance(status, BookStatus) and status.state is BookState.SYNCED
    assert isinstance(venue, VenueStatus) and venue.state is VenueState.SYNCED
    seen.clear()
    router.on_event(delta("100", "3"))
    router.on_event(snap(size="4"))  # a whole-book refresh of a synced book: no status news
    assert [type(e) for e in seen] == [BookDelta, BookSnapshot]
    assert book.best_bid() == (D("100"), D("4"))
    assert router.event_counts[VENUE] == 3
    assert router.mid(VENUE, SYM) == D("100.5") and router.mid(VENUE, "ETHUSD") is None


def test_a_broken_book_tells_strategies_and_asks_its_feed_for_a_resync() -> None:
    router, feed, seen, stream = routed()
    router.on_event(snap())
    seen.clear()
    router.on_event(delta("102", "1"))  # crosses the 101 ask: the book cannot be right
    assert [type(e) for e in seen] == [BookStatus] and feed.resyncs == [SYM]
    router.on_event(snap())
    router.on_event(BookInvalidated(VENUE, SYM, "gap", 1))
    assert feed.resyncs == [SYM, SYM]
    assert router.book(VENUE, SYM).state is BookState.UNSYNCED
    router.on_event(snap())
    router.books_lost(stream, "stale")
    assert router.book(VENUE, SYM).state is BookState.STALE
    router.books_lost(stream, "disconnected")
    assert router.book(VENUE, SYM).state is BookState.UNSYNCED


def test_what_is_not_market_data_goes_to_its_owner() -> None:
    router, _, seen, _ = routed()
    reports: list[ExecutionReport] = []
    balances: list[Balance] = []
    router.on_execution = reports.append
    router.on_balance = balances.append
    report = ExecutionReport(VENUE, "c1")
    balance = Balance(VENUE, "USD", D("10"), D("0"), 0)
    router.on_event(report)
    router.on_event(balance)
    assert reports == [report]  # execution reports go to the order manager, not the bus
    assert balances == [balance] and seen == [balance]


def test_every_event_routed_is_counted_applied_or_not() -> None:
    router, _, _, _ = routed()
    router.on_event(delta("99", "2"))  # buffered: the book is not synced yet
    router.on_event(BookDelta(VENUE, "ETHUSD", ((D("1"), D("1")),), (), None, 0, 1))  # no book
    router.on_event(snap())
    router.on_event(delta("100", "3"))
    router.on_event(BookDelta("roxom", SYM, ((D("1"), D("1")),), (), None, 0, 1))
    assert router.event_counts == {VENUE: 4, "roxom": 1}
    counts = router.event_counts
    counts[VENUE] = 0  # a copy: the router's own counts are not the caller's to change
    assert router.event_counts[VENUE] == 4
