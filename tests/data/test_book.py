"""OrderBook: snapshot and deltas, fragments, pre-snapshot buffering, sync states."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.data.book import OrderBook
from framework.errors import BookNotSynced
from framework.events import BookDelta, BookSnapshot, BookState, Level

VENUE, SYM = "paxos", "BTCUSD"


def lv(*pairs: tuple[str, str]) -> tuple[Level, ...]:
    return tuple((D(p), D(s)) for p, s in pairs)


def snap(
    bids: tuple[Level, ...],
    asks: tuple[Level, ...],
    *,
    ts: int | None = 100,
    final: bool = True,
    recv_ns: int = 1,
) -> BookSnapshot:
    return BookSnapshot(VENUE, SYM, bids, asks, ts, recv_ns, 1, final)


def delta(
    bids: tuple[Level, ...] = (),
    asks: tuple[Level, ...] = (),
    *,
    ts: int | None = None,
    recv_ns: int = 2,
) -> BookDelta:
    return BookDelta(VENUE, SYM, bids, asks, ts, recv_ns, 1)


def synced_book() -> OrderBook:
    book = OrderBook(VENUE, SYM)
    assert book.apply_snapshot(snap(lv(("99", "1"), ("98", "2")), lv(("101", "3"), ("102", "4"))))
    return book


def read_everything(book: OrderBook) -> None:
    """Every read a strategy can make; each one must refuse an unsynced book."""
    for read in (
        book.best_bid,
        book.best_ask,
        book.mid,
        book.bids,
        book.asks,
        lambda: book.size_at(True, D("99")),
    ):
        with pytest.raises(BookNotSynced):
            read()


def test_snapshot_then_deltas_update_levels() -> None:
    book = synced_book()
    assert book.state is BookState.SYNCED
    assert book.best_bid() == (D("99"), D("1"))
    assert book.best_ask() == (D("101"), D("3"))
    assert book.mid() == D("100")

    assert book.apply_delta(delta(bids=lv(("99.5", "7")), asks=lv(("101", "0.5"))))
    assert book.best_bid() == (D("99.5"), D("7"))
    assert book.best_ask() == (D("101"), D("0.5"))
    assert book.bids() == [(D("99.5"), D("7")), (D("99"), D("1")), (D("98"), D("2"))]
    assert book.asks(1) == [(D("101"), D("0.5"))]
    assert book.size_at(True, D("98")) == D("2")
    assert book.size_at(False, D("102")) == D("4")
    assert book.last_update_ns == 2


def test_size_zero_removes_level() -> None:
    book = synced_book()
    assert book.apply_delta(delta(bids=lv(("99", "0")), asks=lv(("101", "0"))))
    assert book.best_bid() == (D("98"), D("2"))
    assert book.best_ask() == (D("102"), D("4"))
    assert book.size_at(True, D("99")) == 0
    # removing a level that does not exist is harmless
    assert book.apply_delta(delta(bids=lv(("50", "0"))))
    assert book.bids() == [(D("98"), D("2"))]


def test_snapshot_replaces_previous_levels() -> None:
    book = synced_book()
    assert book.apply_snapshot(snap(lv(("90", "1")), lv(("110", "1")), ts=200))
    assert book.bids() == [(D("90"), D("1"))]
    assert book.asks() == [(D("110"), D("1"))]


def test_multi_fragment_snapshot_accumulates_until_final() -> None:
    book = OrderBook(VENUE, SYM)
    assert not book.apply_snapshot(snap(lv(("99", "1")), lv(("101", "1")), final=False))
    assert book.state is BookState.UNSYNCED
    read_everything(book)
    assert not book.apply_snapshot(snap(lv(("98", "2")), lv(("102", "2")), final=False))
    assert book.state is BookState.UNSYNCED
    assert book.apply_snapshot(snap(lv(("97", "3")), lv(("103", "3")), final=True))
    assert book.state is BookState.SYNCED
    assert book.bids() == [(D("99"), D("1")), (D("98"), D("2")), (D("97"), D("3"))]
    assert book.asks() == [(D("101"), D("1")), (D("102"), D("2")), (D("103"), D("3"))]
    # the fragments were consumed: a later single snapshot does not resurrect them
    assert book.apply_snapshot(snap(lv(("90", "1")), lv(("110", "1"))))
    assert book.bids() == [(D("90"), D("1"))]


def test_unsynced_book_refuses_reads() -> None:
    book = OrderBook(VENUE, SYM)
    assert book.state is BookState.UNSYNCED
    read_everything(book)
    synced = synced_book()
    synced.mark_unsynced("gap")
    read_everything(synced)
    assert synced.unsync_reason == "gap"
    assert synced.levels_unchecked() == ([], [])


def test_stale_book_refuses_reads_but_keeps_levels() -> None:
    book = synced_book()
    book.mark_stale("feed silent")
    assert book.state is BookState.STALE
    read_everything(book)
    with pytest.raises(BookNotSynced, match="feed silent"):
        book.best_bid()
    assert book.levels_unchecked()[0] == [(D("99"), D("1")), (D("98"), D("2"))]
    book.mark_fresh()
    assert book.best_bid() == (D("99"), D("1"))


def test_mark_stale_does_not_touch_an_unsynced_book() -> None:
    book = OrderBook(VENUE, SYM)
    book.mark_stale("quiet")
    assert book.state is BookState.UNSYNCED
    book.mark_fresh()
    assert book.state is BookState.UNSYNCED


def test_stale_book_resyncs_on_delta() -> None:
    book = synced_book()
    book.mark_stale("feed silent")
    assert book.apply_delta(delta(bids=lv(("99", "5"))))
    assert book.state is BookState.SYNCED
    assert book.best_bid() == (D("99"), D("5"))
    assert book.best_ask() == (D("101"), D("3"))


@pytest.mark.parametrize(
    ("bids", "asks"),
    [
        (lv(("101", "1")), ()),  # bid at the best ask
        ((), lv(("98.5", "1"))),  # ask below the best bid
        (lv(("105", "1")), ()),  # bid through the book
    ],
)
def test_crossed_delta_marks_unsynced(bids: tuple[Level, ...], asks: tuple[Level, ...]) -> None:
    book = synced_book()
    assert not book.apply_delta(delta(bids=bids, asks=asks))
    assert book.state is BookState.UNSYNCED
    assert "crossed" in book.unsync_reason
    read_everything(book)


def test_crossed_snapshot_is_not_synced() -> None:
    book = OrderBook(VENUE, SYM)
    assert not book.apply_snapshot(snap(lv(("101", "1")), lv(("100", "1"))))
    assert book.state is BookState.UNSYNCED
    read_everything(book)


def test_deltas_before_snapshot_replayed_only_if_newer() -> None:
    book = OrderBook(VENUE, SYM)
    # older than the snapshot: already contained in it, must not be applied again
    assert not book.apply_delta(delta(bids=lv(("99", "50")), ts=90))
    # same timestamp as the snapshot: not strictly newer, also contained
    assert not book.apply_delta(delta(bids=lv(("98", "60")), ts=100))
    # newer: must be replayed on top of the snapshot
    assert not book.apply_delta(delta(asks=lv(("101", "9"), ("100.5", "1")), ts=110))
    # untimed: no way to tell, dropped
    assert not book.apply_delta(delta(bids=lv(("99.9", "1"))))
    assert book.state is BookState.UNSYNCED

    assert book.apply_snapshot(snap(lv(("99", "1"), ("98", "2")), lv(("101", "3")), ts=100))
    assert book.bids() == [(D("99"), D("1")), (D("98"), D("2"))]
    assert book.asks() == [(D("100.5"), D("1")), (D("101"), D("9"))]


def test_untimed_snapshot_drops_buffered_deltas() -> None:
    book = OrderBook(VENUE, SYM)
    book.apply_delta(delta(bids=lv(("99", "50")), ts=500))
    assert book.apply_snapshot(snap(lv(("99", "1")), lv(("101", "1")), ts=None))
    assert book.bids() == [(D("99"), D("1"))]


def test_buffer_is_emptied_by_the_snapshot() -> None:
    book = OrderBook(VENUE, SYM)
    book.apply_delta(delta(bids=lv(("99", "50")), ts=110))
    assert book.apply_snapshot(snap(lv(("99", "1")), lv(("101", "1")), ts=100))
    book.mark_unsynced("reconnect")
    assert book.apply_snapshot(snap(lv(("99", "2")), lv(("101", "1")), ts=50))
    # the ts=110 delta was consumed by the first snapshot, not replayed onto the second
    assert book.best_bid() == (D("99"), D("2"))


def test_buffer_overflow_older_than_snapshot_stays_unsynced() -> None:
    book = OrderBook(VENUE, SYM, buffer_limit=2)
    for ts in (10, 11, 12):  # the third overflows the buffer: data up to ts 12 is in doubt
        assert not book.apply_delta(delta(bids=lv(("99", str(ts))), ts=ts))
    assert not book.apply_snapshot(snap(lv(("99", "1")), lv(("101", "1")), ts=11))
    assert book.state is BookState.UNSYNCED
    assert "overflow" in book.unsync_reason
    read_everything(book)
    # a snapshot newer than everything lost is good
    assert book.apply_snapshot(snap(lv(("99", "1")), lv(("101", "1")), ts=13))
    assert book.best_bid() == (D("99"), D("1"))


def test_buffer_overflow_with_newer_snapshot_syncs_and_replays_tail() -> None:
    book = OrderBook(VENUE, SYM, buffer_limit=2)
    for ts in (10, 11, 12, 13):
        book.apply_delta(delta(bids=lv(("99", str(ts))), ts=ts))
    assert book.apply_snapshot(snap(lv(("99", "1")), lv(("101", "1")), ts=12))
    # only the delta newer than the snapshot (ts 13) is replayed
    assert book.best_bid() == (D("99"), D("13"))


def test_age_ns_counts_from_last_update() -> None:
    book = synced_book()
    book.apply_delta(delta(bids=lv(("99", "2")), recv_ns=1_000))
    assert book.age_ns(1_500) == 500


# --- property: deltas after a snapshot equal a dict model -----------------------------------------

# bids strictly below 100, asks strictly above: no update can cross the book
bid_prices = st.integers(min_value=900, max_value=999).map(lambda n: D(n) / 10)
ask_prices = st.integers(min_value=1001, max_value=1100).map(lambda n: D(n) / 10)
positive_sizes = st.integers(min_value=1, max_value=500).map(lambda n: D(n) / 100)
sizes = st.one_of(st.just(D(0)), positive_sizes)
# each inner list is one delta; a delta may touch both sides and repeat a price (last one wins)
updates = st.lists(
    st.lists(st.tuples(st.one_of(bid_prices, ask_prices), sizes), min_size=1, max_size=6),
    max_size=40,
)
initial = st.dictionaries(bid_prices, positive_sizes, max_size=10)
initial_asks = st.dictionaries(ask_prices, positive_sizes, max_size=10)


@settings(max_examples=100, deadline=None)
@given(initial, initial_asks, updates)
def test_deltas_match_dict_model(
    bids0: dict[D, D], asks0: dict[D, D], ops: list[list[tuple[D, D]]]
) -> None:
    book = OrderBook(VENUE, SYM)
    assert book.apply_snapshot(snap(tuple(bids0.items()), tuple(asks0.items())))
    model = {"bid": dict(bids0), "ask": dict(asks0)}
    for batch in ops:
        bids = tuple((p, q) for p, q in batch if p < 100)
        asks = tuple((p, q) for p, q in batch if p > 100)
        assert book.apply_delta(delta(bids=bids, asks=asks))
        for price, size in batch:
            side = model["bid"] if price < 100 else model["ask"]
            if size == 0:
                side.pop(price, None)
            else:
                side[price] = size
    want_bids = sorted(model["bid"].items(), key=lambda kv: -kv[0])
    want_asks = sorted(model["ask"].items())
    assert book.bids() == want_bids
    assert book.asks() == want_asks
    assert book.best_bid() == (want_bids[0] if want_bids else None)
    assert book.best_ask() == (want_asks[0] if want_asks else None)
    assert book.bids(3) == want_bids[:3]
    assert book.asks(3) == want_asks[:3]


# --- property: a delta unsyncs the book exactly when the book it leaves is crossed --------------

any_prices = st.integers(min_value=980, max_value=1020).map(lambda n: D(n) / 10)
crossing_updates = st.lists(
    st.tuples(
        st.lists(st.tuples(any_prices, sizes), max_size=3),
        st.lists(st.tuples(any_prices, sizes), max_size=3),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(initial, initial_asks, crossing_updates)
def test_delta_unsyncs_exactly_when_it_crosses_the_book(
    bids0: dict[D, D], asks0: dict[D, D], ops: list[tuple[list[Level], list[Level]]]
) -> None:
    # the book checks crossing only after a delta that adds a level (a size change or a
    # removal cannot cross a book that was not crossed): a model that checks after every
    # delta must agree on every step
    book = OrderBook(VENUE, SYM)
    assert book.apply_snapshot(snap(tuple(bids0.items()), tuple(asks0.items())))
    model = {"bid": dict(bids0), "ask": dict(asks0)}
    for bids, asks in ops:
        for name, levels in (("bid", bids), ("ask", asks)):
            for price, size in levels:
                if size > 0:
                    model[name][price] = size
                else:
                    model[name].pop(price, None)
        crossed = (
            bool(model["bid"]) and bool(model["ask"]) and (max(model["bid"]) >= min(model["ask"]))
        )
        assert book.apply_delta(delta(bids=tuple(bids), asks=tuple(asks))) is not crossed
        if crossed:
            assert book.state is BookState.UNSYNCED and "crossed" in book.unsync_reason
            return
        assert book.levels_unchecked() == (
            sorted(model["bid"].items(), reverse=True),
            sorted(model["ask"].items()),
        )
