"""framework.data.l3book: order-by-order books aggregated into absolute-size L2 events."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.data.book import OrderBook
from framework.data.l3book import L3Book, L3Inconsistent
from framework.events import BookDelta, BookSnapshot, Side

D = Decimal
B, S = Side.BUY, Side.SELL
KW = {"venue_ts": None, "recv_ns": 1, "epoch": 1}


def synced(rows: list[tuple[str, Side, str, str]]) -> tuple[L3Book, BookSnapshot]:
    book = L3Book("v", "X")
    snap = book.snapshot([(i, s, D(p), D(q)) for i, s, p, q in rows], **KW)
    return book, snap


def test_snapshot_aggregates_orders_per_level_best_first() -> None:
    _, snap = synced(
        [("1", B, "10", "1"), ("2", B, "10", "2"), ("3", B, "11", "1"), ("4", S, "12", "5")]
    )
    assert snap.bids == ((D(11), D(1)), (D(10), D(3)))
    assert snap.asks == ((D(12), D(5)),)


def test_each_change_reports_the_absolute_size_of_the_level_it_touched() -> None:
    book, _ = synced([("1", B, "10", "1"), ("2", B, "10", "2")])
    delta = book.add("3", B, D(10), D("0.5"), **KW)
    assert isinstance(delta, BookDelta) and delta.bids == ((D(10), D("3.5")),)
    assert book.execute("1", executed=D("0.25"), **KW).bids == ((D(10), D("3.25")),)
    assert book.execute("1", remaining=D(0), **KW).bids == ((D(10), D("2.5")),)
    assert "1" not in book.orders
    assert book.delete("2", **KW).bids == ((D(10), D("0.5")),)
    assert book.delete("3", **KW).bids == ((D(10), D(0)),)  # level gone: size 0 removes it


def test_update_moves_an_order_under_a_new_id_and_reports_both_levels() -> None:
    book, _ = synced([("1", S, "12", "1"), ("2", S, "13", "1")])
    delta = book.update("1", "9", price=D(13), size=D(2), **KW)
    assert delta.asks == ((D(12), D(0)), (D(13), D(3)))
    assert book.orders == {"2": (S, D(13), D(1)), "9": (S, D(13), D(2))}


def test_an_update_reports_each_level_it_touched_once_in_ascending_price_order() -> None:
    book, _ = synced([("1", B, "10", "1"), ("2", B, "9", "1")])
    delta = book.update("1", "1", price=D(9), size=None, **KW)
    assert delta.bids == ((D(9), D(2)), (D(10), D(0))) and delta.asks == ()
    delta = book.update("1", "3", price=D("9.0"), size=D(3), **KW)  # the same level: once
    assert delta.bids == ((D(9), D(4)),) and book.levels(B) == [(D(9), D(4))]


@pytest.mark.parametrize(
    "change",
    [
        lambda b: b.delete("404", **KW),
        lambda b: b.execute("404", executed=D(1), **KW),
        lambda b: b.update("404", "405", price=None, size=D(1), **KW),
        lambda b: b.add("1", B, D(10), D(1), **KW),  # id already resting
        lambda b: b.execute("1", executed=D(5), **KW),  # more than it has
    ],
)
def test_a_gap_raises_and_leaves_the_book_unsynced_until_the_next_snapshot(change) -> None:
    book, _ = synced([("1", B, "10", "1")])
    with pytest.raises(L3Inconsistent):
        change(book)
    assert not book.synced and not book.orders
    assert book.add("7", B, D(10), D(1), **KW) is None  # ignored until a snapshot
    book.snapshot([("7", B, D(10), D(1))], **KW)
    assert book.synced


def test_changes_before_the_first_snapshot_are_ignored() -> None:
    book = L3Book("v", "X")
    assert book.add("1", B, D(10), D(1), **KW) is None
    assert book.delete("1", **KW) is None
    assert book.ignored == 2


ops = st.lists(
    st.tuples(
        st.sampled_from(["add", "del", "exec", "upd"]),
        st.integers(0, 15),
        st.sampled_from([B, S]),
        st.integers(1, 6),
        st.integers(1, 4),
    ),
    max_size=80,
)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_core_book_fed_by_l3_events_equals_a_naive_aggregation(steps) -> None:
    book = L3Book("v", "X")
    core = OrderBook("v", "X")
    core.apply_snapshot(book.snapshot([], **KW))
    truth: dict[str, tuple[Side, Decimal, Decimal]] = {}
    for op, n, side, price_ticks, qty in steps:
        oid = str(n)
        # bids below 10, asks above: the core book refuses a crossed book
        price = D(10 - price_ticks) if side is B else D(10 + price_ticks)
        if op == "add" and oid not in truth:
            truth[oid] = (side, price, D(qty))
            event = book.add(oid, side, price, D(qty), **KW)
        elif op == "del" and oid in truth:
            del truth[oid]
            event = book.delete(oid, **KW)
        elif op == "exec" and oid in truth:
            s, p, left = truth[oid]
            done = min(left, D(qty))
            truth[oid] = (s, p, left - done)
            if truth[oid][2] == 0:
                del truth[oid]
            event = book.execute(oid, executed=done, **KW)
        elif op == "upd" and oid in truth and oid + "u" not in truth:
            # (a venue never reuses a live order id, so neither does the generated feed)
            s, _, _ = truth.pop(oid)
            new_price = D(10 - price_ticks) if s is B else D(10 + price_ticks)
            truth[oid + "u"] = (s, new_price, D(qty))
            event = book.update(oid, oid + "u", price=new_price, size=D(qty), **KW)
        else:
            continue
        assert core.apply_delta(event)
    expected: dict[Side, dict[Decimal, Decimal]] = {B: {}, S: {}}
    for s, p, q in truth.values():
        expected[s][p] = expected[s].get(p, D(0)) + q
    bids, asks = core.levels_unchecked()
    assert bids == sorted(expected[B].items(), reverse=True)
    assert asks == sorted(expected[S].items())
    assert book.levels(B) == bids and book.levels(S) == asks
