"""RiskManager: every limit refuses with a reason naming it; the kill switch halts everything."""

from __future__ import annotations

import itertools
from decimal import Decimal as D

import pytest

from framework.data.book import OrderBook
from framework.events import BookSnapshot, OrderType, Position, Side
from framework.model import Order
from framework.risk import RiskConfig, RiskManager

VENUE, SYM = "paxos", "BTCUSD"
_ids = itertools.count()


def order(
    side: Side = Side.BUY,
    qty: str = "1",
    price: str | None = "100",
    *,
    type: OrderType = OrderType.LIMIT,
    symbol: str = SYM,
    filled: str = "0",
) -> Order:
    return Order(
        client_order_id=f"o{next(_ids)}",
        venue=VENUE,
        symbol=symbol,
        side=side,
        type=type,
        quantity=D(qty),
        price=None if price is None else D(price),
        filled_qty=D(filled),
    )


class World:
    """What the risk manager asks about: position, open orders, books, time."""

    def __init__(self, **cfg: object) -> None:
        self.positions: dict[tuple[str, str], D] = {}
        self.open: list[Order] = []
        self.books: dict[tuple[str, str], OrderBook] = {}
        self.now = 0.0
        self.risk = RiskManager(
            RiskConfig(**cfg),  # type: ignore[arg-type]
            position=lambda v, s: self.positions.get((v, s), D(0)),
            open_orders=lambda v, s: [
                o for o in self.open if o.venue == v and (s is None or o.symbol == s)
            ],
            book=lambda v, s: self.books.get((v, s)),
            clock=lambda: self.now,
        )

    def synced_book(self, bid: str = "99", ask: str = "101") -> OrderBook:
        book = OrderBook(VENUE, SYM)
        assert book.apply_snapshot(
            BookSnapshot(VENUE, SYM, ((D(bid), D("5")),), ((D(ask), D("5")),), None, 0, 1)
        )
        self.books[(VENUE, SYM)] = book
        return book


def test_order_within_limits_passes() -> None:
    w = World()
    assert w.risk.check(order()) is None


def test_notional_limit() -> None:
    w = World(max_order_notional=D("1000"), max_position=D("100"))
    assert w.risk.check(order(qty="10", price="100")) is None  # exactly at the limit
    reason = w.risk.check(order(qty="10", price="100.01"))
    assert reason is not None
    assert "max_order_notional" in reason
    assert "1000.1" in reason  # the notional it would have


def test_position_limit_counts_current_position() -> None:
    w = World(max_position=D("1"))
    w.positions[(VENUE, SYM)] = D("0.8")
    reason = w.risk.check(order(Side.BUY, "0.3"))
    assert reason is not None
    assert "max_position" in reason
    assert "1.1" in reason
    # selling reduces it: allowed, even well beyond the flat point up to the limit
    assert w.risk.check(order(Side.SELL, "1.8")) is None
    reason = w.risk.check(order(Side.SELL, "1.9"))
    assert reason is not None
    assert "max_position" in reason


def test_position_limit_counts_open_orders_on_the_same_side() -> None:
    w = World(max_position=D("1"))
    w.open = [
        order(Side.BUY, "0.6"),
        order(Side.BUY, "0.5", filled="0.4"),  # 0.1 still open
        order(Side.SELL, "5"),  # the other side does not offset the worst case
        order(Side.BUY, "9", symbol="ETHUSD"),  # another symbol
    ]
    assert w.risk.check(order(Side.BUY, "0.3")) is None  # 0.6 + 0.1 + 0.3 = 1.0
    reason = w.risk.check(order(Side.BUY, "0.31"))
    assert reason is not None
    assert "max_position" in reason
    assert "1.01" in reason
    # open sells: 5 short in the worst case
    reason = w.risk.check(order(Side.SELL, "0.1"))
    assert reason is not None
    assert "-5.1" in reason


def test_open_orders_limit() -> None:
    w = World(max_open_orders=3, max_position=D("100"))
    w.open = [order(Side.BUY, "1", symbol="ETHUSD") for _ in range(2)]
    assert w.risk.check(order()) is None
    w.open.append(order(Side.SELL, "1", symbol="SOLUSD"))  # counted across the venue's symbols
    reason = w.risk.check(order())
    assert reason is not None
    assert "max_open_orders" in reason
    assert "3" in reason


def test_rate_limit_per_second_on_the_given_clock() -> None:
    w = World(max_orders_per_second=3)
    w.now = 100.0
    assert all(w.risk.check(order()) is None for _ in range(3))
    reason = w.risk.check(order())
    assert reason is not None
    assert "rate" in reason
    assert "max_orders_per_second 3" in reason
    w.now = 100.999
    assert w.risk.check(order()) is not None  # still within the same second
    w.now = 101.0
    assert w.risk.check(order()) is None  # a full second after the first three
    assert w.risk.check(order()) is None
    assert w.risk.check(order()) is None
    assert w.risk.check(order()) is not None


def test_refused_orders_do_not_use_up_the_rate() -> None:
    w = World(max_orders_per_second=2, max_order_notional=D("50"))
    for _ in range(5):
        assert w.risk.check(order(qty="1", price="100")) is not None  # notional refusals
    assert w.risk.check(order(qty="0.1")) is None
    assert w.risk.check(order(qty="0.1")) is None
    reason = w.risk.check(order(qty="0.1"))
    assert reason is not None
    assert "rate" in reason


def test_kill_switch_halts_everything() -> None:
    w = World()
    assert w.risk.breach("loss above max_loss 100")
    assert not w.risk.breach("another reason")  # first reason kept
    assert w.risk.halted == "loss above max_loss 100"
    reason = w.risk.check(order(qty="0.001"))
    assert reason is not None
    assert "kill switch" in reason
    assert "loss above max_loss 100" in reason
    assert w.risk.check(order(Side.SELL, "0.001")) is not None


def test_market_order_without_book_refused() -> None:
    w = World()
    reason = w.risk.check(order(type=OrderType.MARKET, price=None))
    assert reason is not None
    assert "market order" in reason
    assert "book" in reason


@pytest.mark.parametrize("state", ["unsynced", "stale", "empty_side"])
def test_market_order_with_unusable_book_refused(state: str) -> None:
    w = World()
    book = w.synced_book()
    if state == "unsynced":
        book.mark_unsynced("gap")
    elif state == "stale":
        book.mark_stale("quiet")
    else:
        book.apply_snapshot(BookSnapshot(VENUE, SYM, ((D("99"), D("1")),), (), None, 0, 1))
    reason = w.risk.check(order(Side.BUY, type=OrderType.MARKET, price=None))
    assert reason is not None
    assert "no synced book" in reason


def test_market_order_notional_from_the_far_side_of_the_book() -> None:
    w = World(max_order_notional=D("1000"), max_position=D("100"))
    w.synced_book(bid="90", ask="110")
    # buy at the ask: 9 * 110 = 990 passes, 10 * 110 = 1100 does not
    assert w.risk.check(order(Side.BUY, "9", type=OrderType.MARKET, price=None)) is None
    reason = w.risk.check(order(Side.BUY, "10", type=OrderType.MARKET, price=None))
    assert reason is not None
    assert "1100" in reason
    # sell at the bid: 10 * 90 = 900 passes
    assert w.risk.check(order(Side.SELL, "10", type=OrderType.MARKET, price=None)) is None


def test_stop_notional_from_its_stop_or_limit_price_not_the_book() -> None:
    w = World(max_order_notional=D("1000"), max_position=D("100"))
    w.synced_book(bid="90", ask="110")  # 10 at the ask would be 1100
    stop = order(Side.BUY, "10", price=None, type=OrderType.STOP_MARKET)
    stop.stop_price = D("100")
    assert w.risk.check(stop) is None  # 10 * 100: at the limit
    stop.stop_price = D("100.01")
    reason = w.risk.check(stop)
    assert reason is not None and "1000.1" in reason
    # a stop-limit is priced at its limit, whatever its trigger
    stop_limit = order(Side.BUY, "10", price="101", type=OrderType.STOP_LIMIT)
    stop_limit.stop_price = D("50")
    reason = w.risk.check(stop_limit)
    assert reason is not None and "1010" in reason
    # no synced book needed for a stop market
    w.books.clear()
    stop.stop_price = D("99")
    assert w.risk.check(stop) is None


def position(qty: str) -> Position:
    return Position(VENUE, SYM, D(qty), D("100"), D(0), None, 0)


def test_a_fill_past_max_position_engages_the_kill_switch_once() -> None:
    kills: list[None] = []
    w = World(max_position=D("2"))
    w.risk = RiskManager(
        w.risk.cfg,
        position=lambda v, s: D(0),
        open_orders=lambda v, s: [],
        book=lambda v, s: None,
        clock=lambda: 0.0,
        on_kill=lambda: kills.append(None),
    )
    w.risk.after_fill(position("2"))  # at the limit: fine
    assert w.risk.halted is None and kills == []
    w.risk.after_fill(position("-2.1"))
    assert w.risk.halted and "position -2.1 above max" in w.risk.halted and len(kills) == 1
    w.risk.after_fill(position("-3"))  # already engaged: nothing more to cancel
    assert len(kills) == 1
    assert "kill switch engaged" in (w.risk.check(order()) or "")


def test_a_fill_that_takes_the_loss_past_max_loss_engages_the_kill_switch() -> None:
    pnl = [D("-0.5")]
    kills: list[None] = []
    risk = RiskManager(
        RiskConfig(max_loss=D("1")),
        position=lambda v, s: D(0),
        open_orders=lambda v, s: [],
        book=lambda v, s: None,
        clock=lambda: 0.0,
        total_pnl=lambda: pnl[0],
        on_kill=lambda: kills.append(None),
    )
    risk.after_fill(position("1"))
    assert risk.halted is None
    pnl[0] = D("-1.01")
    risk.after_fill(position("1"))
    assert risk.halted == "loss above max_loss 1" and len(kills) == 1


def test_venue_capabilities_are_checked_before_any_limit() -> None:
    from framework.venues import load_venue

    caps = {"powertrade": load_venue("powertrade").capabilities}
    risk = RiskManager(
        RiskConfig(),
        position=lambda v, s: D(0),
        open_orders=lambda v, s: [],
        book=lambda v, s: None,
        clock=lambda: 0.0,
        capabilities=caps.get,
    )
    o = order()
    o.venue, o.post_only = "powertrade", True
    assert risk.check(o) == (
        "powertrade has no post-only orders (quote a limit that does not cross instead)"
    )
    o.post_only = False
    assert risk.check(o) is None
    unknown = order()  # a venue with no declaration: nothing refused on its account
    assert risk.check(unknown) is None


def test_while_flattening_only_reducing_orders_pass_the_kill_switch() -> None:
    w = World()
    w.positions[(VENUE, SYM)] = D("2")
    assert w.risk.breach("test")
    w.risk.flattening = True
    assert w.risk.check(order(Side.SELL, "2")) is None  # closes the long
    assert "kill switch" in (w.risk.check(order(Side.SELL, "3")) or "")  # would flip it
    assert "kill switch" in (w.risk.check(order(Side.BUY, "1")) or "")  # adds to it
    w.risk.flattening = False
    assert "kill switch" in (w.risk.check(order(Side.SELL, "2")) or "")
    assert w.risk.kill_reason == "test"
