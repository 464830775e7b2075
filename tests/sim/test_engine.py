from __future__ import annotations

import itertools
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.events import OrderType, Side, TimeInForce
from framework.sim import engine as engine_mod
from framework.sim.engine import POST_ONLY_REASON, EngineListener, MatchingEngine, SimFill, SimOrder

BUY, SELL = Side.BUY, Side.SELL
SYM = "BTC-USD"


class Recorder(EngineListener):
    """Keeps every callback in order, and rebuilds the books from on_level alone."""

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.levels: dict[str, dict[tuple[Side, D], D]] = {}

    def on_level(self, symbol: str, side: Side, price: D, size: D) -> None:
        self.events.append(("level", symbol, side, price, size))
        book = self.levels.setdefault(symbol, {})
        if size == 0:
            del book[(side, price)]  # KeyError if a level is reported gone that never existed
        else:
            book[(side, price)] = size

    def on_trade(self, fill: SimFill) -> None:
        self.events.append(("trade", fill))

    def on_order(self, order: SimOrder) -> None:
        self.events.append(("order", order))

    def replayed_book(self, symbol: str) -> tuple[list, list]:
        book = self.levels.get(symbol, {})
        bids = sorted(((p, s) for (side, p), s in book.items() if side is BUY), reverse=True)
        asks = sorted((p, s) for (side, p), s in book.items() if side is SELL)
        return bids, asks

    def kinds(self) -> list[str]:
        return [e[0] for e in self.events]


def make_engine(tick: str = "0.5", lot: str = "0.01") -> tuple[MatchingEngine, Recorder]:
    clock = itertools.count(1000)
    engine = MatchingEngine(clock_ns=lambda: next(clock))
    engine.add_symbol(SYM, D(tick), D(lot))
    recorder = Recorder()
    engine.add_listener(recorder)
    return engine, recorder


def limit(engine: MatchingEngine, owner: str, side: Side, qty: str, price: str, **kw) -> SimOrder:
    return engine.submit(owner, SYM, side, "LIMIT", D(qty), D(price), **kw)


# --- matching ----------------------------------------------------------------------------------


def test_price_time_priority() -> None:
    engine, _ = make_engine()
    first = limit(engine, "a", SELL, "1", "101")
    second = limit(engine, "b", SELL, "1", "101")
    better = limit(engine, "c", SELL, "1", "100.5")  # later, but a better price

    taker = limit(engine, "t", BUY, "3", "101")

    makers = [f.maker_order_id for f in engine.fills()]
    assert makers == [better.order_id, first.order_id, second.order_id]
    assert [f.price for f in engine.fills()] == [D("100.5"), D("101"), D("101")]
    assert taker.status == "FILLED"
    assert all(f.taker_order_id == taker.order_id and f.aggressor is BUY for f in engine.fills())


def test_partial_fills_and_avg_price() -> None:
    engine, _ = make_engine()
    cheap = limit(engine, "a", SELL, "1", "100")
    dear = limit(engine, "a", SELL, "2", "101")

    taker = limit(engine, "t", BUY, "2", "101")

    assert (taker.status, taker.filled, taker.avg_price) == ("FILLED", D(2), D("100.5"))
    assert (cheap.status, cheap.filled, cheap.avg_price) == ("FILLED", D(1), D(100))
    assert (dear.status, dear.filled, dear.remaining, dear.avg_price) == ("OPEN", 1, 1, 101)
    assert engine.book(SYM) == ([], [(D(101), D(1))])

    # A GTC limit that cannot fill completely rests the remainder at its price.
    rester = limit(engine, "t", BUY, "3", "101")
    assert (rester.status, rester.filled, rester.remaining) == ("OPEN", D(1), D(2))
    assert rester.avg_price == D(101)
    assert engine.book(SYM) == ([(D(101), D(2))], [])


def test_ioc_remainder_is_cancelled() -> None:
    engine, _ = make_engine()
    limit(engine, "a", SELL, "1", "100")

    ioc = limit(engine, "t", BUY, "3", "100", tif="IOC")

    assert (ioc.status, ioc.filled, ioc.remaining) == ("CANCELLED", D(1), D(2))
    assert engine.book(SYM) == ([], [])
    assert engine.orders(open_only=True) == []


def test_fok_is_all_or_nothing() -> None:
    engine, rec = make_engine()
    limit(engine, "a", SELL, "1", "100")
    limit(engine, "a", SELL, "1", "101")
    limit(engine, "a", SELL, "5", "102")
    before = engine.book(SYM)
    rec.events.clear()

    # 2 available at <= 101, 3 asked: nothing trades, even though 2 could.
    fok = limit(engine, "t", BUY, "3", "101", tif="FOK")

    assert (fok.status, fok.filled) == ("CANCELLED", D(0))
    assert engine.book(SYM) == before
    assert engine.fills() == []
    assert rec.kinds() == ["order"]

    whole = limit(engine, "t", BUY, "3", "102", tif="FOK")
    assert (whole.status, whole.filled, whole.avg_price) == ("FILLED", D(3), D(101))
    assert engine.book(SYM) == ([], [(D(102), D(4))])


def test_fok_market_order() -> None:
    engine, _ = make_engine()
    limit(engine, "a", SELL, "1", "100")
    too_big = engine.submit("t", SYM, BUY, "MARKET", D(2), tif="FOK")
    assert (too_big.status, too_big.filled) == ("CANCELLED", D(0))
    fits = engine.submit("t", SYM, BUY, "MARKET", D(1), tif="FOK")
    assert (fits.status, fits.filled) == ("FILLED", D(1))


def test_post_only_rejected_when_it_would_cross_and_rests_otherwise() -> None:
    engine, rec = make_engine()
    limit(engine, "a", SELL, "1", "100")
    rec.events.clear()

    crossing = limit(engine, "t", BUY, "1", "100", post_only=True)

    assert crossing.status == "REJECTED"
    assert crossing.reject_reason == POST_ONLY_REASON == "post-only order would take liquidity"
    assert engine.fills() == []
    assert rec.kinds() == ["order"]

    passive = limit(engine, "t", BUY, "1", "99.5", post_only=True)
    assert passive.status == "OPEN"
    assert engine.book(SYM) == ([(D("99.5"), D(1))], [(D(100), D(1))])


def test_market_order_walks_the_book() -> None:
    engine, _ = make_engine()
    limit(engine, "a", SELL, "1", "100")
    limit(engine, "a", SELL, "1", "100.5")
    limit(engine, "a", SELL, "2", "101")

    market = engine.submit("t", SYM, BUY, "MARKET", D("2.5"), price=D(1))

    assert market.price is None  # a market order has no limit, whatever was passed
    assert [(f.price, f.quantity) for f in engine.fills()] == [
        (D(100), D(1)),
        (D("100.5"), D(1)),
        (D(101), D("0.5")),
    ]
    assert (market.status, market.avg_price) == ("FILLED", D(251) / D("2.5"))
    assert engine.book(SYM) == ([], [(D(101), D("1.5"))])

    # More than the book holds: takes everything, the remainder is cancelled, nothing rests.
    big = engine.submit("t", SYM, BUY, "MARKET", D(5))
    assert (big.status, big.filled) == ("CANCELLED", D("1.5"))
    assert engine.book(SYM) == ([], [])

    empty = engine.submit("t", SYM, SELL, OrderType.MARKET, D(1))
    assert (empty.status, empty.filled) == ("CANCELLED", D(0))


def test_enum_type_and_tif_are_accepted() -> None:
    engine, _ = make_engine()
    order = engine.submit("t", SYM, BUY, OrderType.LIMIT, D(1), D(100), TimeInForce.IOC)
    assert (order.type, order.tif, order.status) == ("LIMIT", "IOC", "CANCELLED")


def test_callback_order_for_a_submit_that_matches_and_rests() -> None:
    engine, rec = make_engine()
    m1 = limit(engine, "a", SELL, "1", "100")
    m2 = limit(engine, "b", SELL, "1", "100")
    m3 = limit(engine, "c", SELL, "1", "100.5")
    rec.events.clear()

    taker = limit(engine, "t", BUY, "4", "100.5")

    ev = rec.events
    assert rec.kinds() == ["trade", "level", "order"] * 3 + ["level", "order"]
    assert [e[1].maker_order_id for e in ev if e[0] == "trade"] == [
        m1.order_id,
        m2.order_id,
        m3.order_id,
    ]
    assert ev[1] == ("level", SYM, SELL, D(100), D(1))
    assert ev[4] == ("level", SYM, SELL, D(100), D(0))
    assert ev[7] == ("level", SYM, SELL, D("100.5"), D(0))
    assert ev[9] == ("level", SYM, BUY, D("100.5"), D(1))
    assert [e[1].order_id for e in ev if e[0] == "order"] == [
        m1.order_id,
        m2.order_id,
        m3.order_id,
        taker.order_id,
    ]
    assert ev[-1][1].status == "OPEN" and ev[-1][1].filled == D(3)


def test_on_order_carries_a_snapshot_per_event() -> None:
    engine, rec = make_engine()
    maker = limit(engine, "m", SELL, "3", "100")
    limit(engine, "t", BUY, "1", "100")
    limit(engine, "t", BUY, "2", "100")

    maker_states = [
        (e[1].filled, e[1].status)
        for e in rec.events
        if e[0] == "order" and e[1].order_id == maker.order_id
    ]
    assert maker_states == [(D(0), "OPEN"), (D(1), "OPEN"), (D(3), "FILLED")]
    assert maker.status == "FILLED"


def test_ids_are_deterministic_with_prefix() -> None:
    engine = MatchingEngine(clock_ns=lambda: 7, id_prefix="X")
    engine.add_symbol(SYM, D(1), D(1))
    a = engine.submit("a", SYM, SELL, "LIMIT", D(1), D(10))
    b = engine.submit("b", SYM, BUY, "LIMIT", D(1), D(10))
    assert (a.order_id, b.order_id) == ("X00000001", "X00000002")
    (fill,) = engine.fills()
    assert (fill.trade_id, fill.ts_ns) == ("T0000000001", 7)
    assert (b.created_ns, b.updated_ns) == (7, 7)


# --- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "reason_part"),
    [
        ({"price": D("100.25")}, "tick"),
        ({"quantity": D("0.015")}, "lot"),
        ({"symbol": "DOGE-USD"}, "unknown symbol"),
        ({"quantity": D(0)}, "positive"),
        ({"quantity": D(-1)}, "positive"),
        ({"price": None}, "requires a price"),
        ({"price": D(0)}, "positive"),
        ({"tif": "GTD"}, "time in force"),
        ({"type": "STOP"}, "order type"),
        ({"type": "MARKET", "post_only": True}, "post-only"),
    ],
)
def test_invalid_orders_are_rejected(kwargs: dict, reason_part: str) -> None:
    engine, rec = make_engine()
    limit(engine, "a", SELL, "1", "100")
    limit(engine, "a", BUY, "1", "99")
    before = engine.book(SYM)
    rec.events.clear()
    args = {"owner": "t", "symbol": SYM, "side": BUY, "type": "LIMIT", "quantity": D(1)}
    args["price"] = D(100)  # would trade if it were accepted
    args.update(kwargs)

    order = engine.submit(**args)

    assert order.status == "REJECTED"
    assert order.reject_reason is not None and reason_part in order.reject_reason
    assert engine.book(SYM) == before
    assert engine.fills() == []
    assert rec.kinds() == ["order"]
    assert rec.events[0][1].status == "REJECTED"
    assert engine.order(order.order_id) is order


# --- cancel and queries ------------------------------------------------------------------------


def test_cancel() -> None:
    engine, rec = make_engine()
    first = limit(engine, "a", SELL, "1", "100")
    second = limit(engine, "a", SELL, "2", "100")
    rec.events.clear()

    assert engine.cancel(first.order_id) is first
    assert first.status == "CANCELLED"
    assert rec.events == [("level", SYM, SELL, D(100), D(2)), ("order", rec.events[1][1])]
    assert rec.events[1][1].status == "CANCELLED"
    assert engine.book(SYM) == ([], [(D(100), D(2))])

    rec.events.clear()
    assert engine.cancel(first.order_id) is None  # twice
    assert engine.cancel("nope") is None  # unknown
    assert rec.events == []

    # The cancelled order lost its time priority: the next taker hits `second`.
    limit(engine, "t", BUY, "1", "100")
    assert engine.fills()[0].maker_order_id == second.order_id
    limit(engine, "t", BUY, "1", "100")
    assert second.status == "FILLED"
    assert engine.cancel(second.order_id) is None  # filled
    assert engine.book(SYM) == ([], [])


def test_cancel_partially_filled_order_removes_its_remainder() -> None:
    engine, rec = make_engine()
    maker = limit(engine, "m", BUY, "5", "99")
    engine.submit("t", SYM, SELL, "MARKET", D(2))
    rec.events.clear()
    engine.cancel(maker.order_id)
    assert rec.events[0] == ("level", SYM, BUY, D(99), D(0))
    assert (maker.status, maker.filled) == ("CANCELLED", D(2))
    assert engine.book(SYM) == ([], [])


def test_order_by_client_id_is_per_owner() -> None:
    engine, _ = make_engine()
    a = limit(engine, "alice", SELL, "1", "100", client_order_id="c1")
    b = limit(engine, "bob", SELL, "1", "100", client_order_id="c1")
    assert engine.order_by_client_id("alice", "c1") is a
    assert engine.order_by_client_id("bob", "c1") is b
    assert engine.order_by_client_id("alice", "c2") is None
    assert engine.order_by_client_id("carol", "c1") is None
    assert a.client_order_id == "c1"


def test_orders_and_fills_filters() -> None:
    engine, _ = make_engine()
    engine.add_symbol("ETH-USD", D("0.1"), D("0.1"))
    a1 = limit(engine, "a", SELL, "1", "100")
    a2 = limit(engine, "a", SELL, "1", "101")
    e1 = engine.submit("a", "ETH-USD", BUY, "LIMIT", D(1), D(10))
    b1 = limit(engine, "b", BUY, "1", "100")

    assert engine.orders() == [a1, a2, e1, b1]
    assert engine.orders(owner="a") == [a1, a2, e1]
    assert engine.orders(symbol="ETH-USD") == [e1]
    assert engine.orders(owner="a", open_only=True) == [a2, e1]
    assert engine.orders(owner="b", open_only=True) == []
    assert len(engine.fills()) == 1
    assert engine.fills(owner="a") == engine.fills(owner="b") == engine.fills(symbol=SYM)
    assert engine.fills(owner="c") == engine.fills(symbol="ETH-USD") == []


def test_book_depth_and_best_prices() -> None:
    engine, _ = make_engine()
    assert (engine.best_bid(SYM), engine.best_ask(SYM)) == (None, None)
    for price in ("99", "98", "97.5"):
        limit(engine, "a", BUY, "1", price)
    limit(engine, "a", BUY, "2", "98")
    for price in ("101", "100", "102"):
        limit(engine, "a", SELL, "1", price)

    assert engine.book(SYM) == (
        [(D(99), D(1)), (D(98), D(3)), (D("97.5"), D(1))],
        [(D(100), D(1)), (D(101), D(1)), (D(102), D(1))],
    )
    assert engine.book(SYM, depth=2) == (
        [(D(99), D(1)), (D(98), D(3))],
        [(D(100), D(1)), (D(101), D(1))],
    )
    assert (engine.best_bid(SYM), engine.best_ask(SYM)) == (D(99), D(100))


def test_symbols_tick_lot() -> None:
    engine, _ = make_engine()
    engine.add_symbol(SYM, D("0.5"), D("0.01"))  # same again: no-op
    assert engine.symbols() == [SYM]
    assert (engine.tick(SYM), engine.lot(SYM)) == (D("0.5"), D("0.01"))
    with pytest.raises(ValueError):
        engine.add_symbol(SYM, D(1), D("0.01"))
    with pytest.raises(ValueError):
        engine.add_symbol("X", D(0), D(1))


def test_self_trade_is_allowed() -> None:
    engine, _ = make_engine()
    limit(engine, "a", SELL, "1", "100")
    order = limit(engine, "a", BUY, "1", "100")
    assert order.status == "FILLED"
    assert engine.fills()[0].maker_owner == engine.fills()[0].taker_owner == "a"


def test_remove_listener() -> None:
    engine, rec = make_engine()
    engine.remove_listener(rec)
    limit(engine, "a", SELL, "1", "100")
    assert rec.events == []


def test_histories_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_mod, "FILL_HISTORY", 3)
    monkeypatch.setattr(engine_mod, "DONE_ORDER_HISTORY", 2)
    engine, _ = make_engine()
    resting = limit(engine, "a", BUY, "100", "90", client_order_id="rest")
    ids = [limit(engine, "t", SELL, "1", "90", client_order_id=f"c{i}").order_id for i in range(5)]

    assert len(engine.fills()) == 3
    assert [f.taker_order_id for f in engine.fills()] == ids[2:]
    # Only the two newest finished orders are remembered; open orders are always kept.
    assert engine.orders() == [resting, engine.order(ids[3]), engine.order(ids[4])]
    assert engine.order(ids[0]) is None
    assert engine.order_by_client_id("t", "c0") is None
    assert engine.order_by_client_id("t", "c4") is not None
    assert engine.order_by_client_id("a", "rest") is resting


def test_an_accounts_fills_outlive_a_busy_crowds() -> None:
    engine, _ = make_engine()
    engine.limit_history(orders=10, fills=3)
    limit(engine, "me", BUY, "1", "90")
    mine = limit(engine, "crowd", SELL, "1", "90")  # my one fill
    for _ in range(5):  # the crowd trades with itself after it
        limit(engine, "crowd", BUY, "1", "95")
        limit(engine, "crowd", SELL, "1", "95")

    assert mine.order_id not in [f.taker_order_id for f in engine.fills()]  # gone from "all"
    assert [f.taker_order_id for f in engine.fills(owner="me")] == [mine.order_id]
    assert len(engine.fills(owner="crowd")) == 3  # every owner's history is bounded


def test_listener_may_call_back_into_the_engine() -> None:
    """A listener that cancels on every trade must not corrupt the book or the level stream."""
    engine, rec = make_engine()

    class CancelOnTrade(EngineListener):
        order_id = ""

        def on_trade(self, fill: SimFill) -> None:
            engine.cancel(self.order_id)

    canceller = CancelOnTrade()
    engine.add_listener(canceller)
    later = Recorder()  # registered after the re-entrant listener: must see the same sequence
    engine.add_listener(later)
    victim = limit(engine, "v", BUY, "1", "90")
    canceller.order_id = victim.order_id
    limit(engine, "a", SELL, "1", "100")
    limit(engine, "a", SELL, "1", "100.5")

    engine.submit("t", SYM, BUY, "MARKET", D(2))

    assert victim.status == "CANCELLED"
    assert engine.book(SYM) == ([], [])
    assert rec.replayed_book(SYM) == engine.book(SYM)
    # The nested cancel's events come after everything the market order caused.
    assert rec.kinds()[-9:] == ["trade", "level", "order"] * 2 + ["order", "level", "order"]
    assert later.events == rec.events
    assert later.replayed_book(SYM) == engine.book(SYM)


# --- property: the on_level stream rebuilds the book -------------------------------------------

SYMBOLS = {"BTC-USD": (D("0.5"), D("0.01")), "ETH-USD": (D("0.01"), D(1))}

submits = st.tuples(
    st.just("submit"),
    st.sampled_from(["alice", "bob", "crowd"]),
    st.sampled_from([*SYMBOLS, "NOPE"]),
    st.sampled_from([BUY, SELL]),
    st.sampled_from(["LIMIT", "LIMIT", "LIMIT", "MARKET"]),
    st.sampled_from(["GTC", "GTC", "IOC", "FOK"]),
    st.sampled_from([False, False, False, True]),  # post_only
    st.integers(95, 105),  # price in ticks
    st.integers(-1, 6),  # quantity in lots; <= 0 is rejected
    st.sampled_from([False] * 9 + [True]),  # price off the tick grid
)
cancels = st.tuples(st.just("cancel"), st.integers(0, 1000))
operations = st.lists(st.one_of(submits, submits, cancels), max_size=80)


def _assert_consistent(engine: MatchingEngine, rec: Recorder) -> None:
    for symbol in SYMBOLS:
        bids, asks = engine.book(symbol)
        assert rec.replayed_book(symbol) == (bids, asks)
        if bids and asks:
            assert bids[0][0] < asks[0][0], "book left crossed"
        # Aggregated sizes equal the remaining quantity of the open orders at each price.
        expected: dict[tuple[Side, D], D] = {}
        for order in engine.orders(symbol=symbol, open_only=True):
            key = (order.side, order.price)
            expected[key] = expected.get(key, D(0)) + order.remaining
        assert rec.levels.get(symbol, {}) == expected


@settings(max_examples=60, deadline=None)
@given(ops=operations)
def test_on_level_replay_reproduces_the_book(ops: list[tuple]) -> None:
    engine = MatchingEngine(clock_ns=lambda: 0)
    for symbol, (tick, lot) in SYMBOLS.items():
        engine.add_symbol(symbol, tick, lot)
    rec = Recorder()
    engine.add_listener(rec)
    submitted: list[str] = []

    for op in ops:
        if op[0] == "cancel":
            order_id = submitted[op[1] % len(submitted)] if submitted else "unknown"
            target = engine.order(order_id)
            was_open = target is not None and target.status == "OPEN"
            assert (engine.cancel(order_id) is not None) == was_open
        else:
            _, owner, symbol, side, type_, tif, post_only, ticks, lots, off_grid = op
            tick, lot = SYMBOLS.get(symbol, (D(1), D(1)))
            price = ticks * tick + (tick / 2 if off_grid else 0)
            order = engine.submit(owner, symbol, side, type_, lots * lot, price, tif, post_only)
            submitted.append(order.order_id)
        _assert_consistent(engine, rec)

    # Every order's fills add up to its filled quantity and average price, and the last
    # on_order snapshot of each order is its final state.
    last_seen = {e[1].order_id: e[1] for e in rec.events if e[0] == "order"}
    for order in engine.orders():
        own = [f for f in engine.fills() if order.order_id in (f.maker_order_id, f.taker_order_id)]
        assert order.filled == sum((f.quantity for f in own), D(0))
        if own:
            notional = sum((f.price * f.quantity for f in own), D(0))
            assert order.avg_price == notional / order.filled
        assert order.status != "FILLED" or order.remaining == 0
        assert last_seen[order.order_id] == order
