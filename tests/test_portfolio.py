"""Portfolio: average-cost positions, realized PnL on reduction, flips, fees, unrealized PnL."""

from __future__ import annotations

import itertools
from decimal import Decimal as D

from framework.events import Balance, OrderFilled, OrderStatus, Position, Side
from framework.portfolio import Portfolio

VENUE, SYM = "paxos", "BTCUSD"
_ids = itertools.count()


def fill(side: Side, qty: str, price: str, fee: str = "0", symbol: str = SYM) -> OrderFilled:
    n = next(_ids)
    return OrderFilled(
        VENUE,
        symbol,
        f"c{n}",
        None,
        OrderStatus.FILLED,
        n,
        fill_id=f"f{n}",
        side=side,
        price=D(price),
        quantity=D(qty),
        fee=D(fee),
    )


def test_average_cost_when_adding() -> None:
    p = Portfolio()
    p.on_fill(fill(Side.BUY, "1", "100"))
    pos = p.on_fill(fill(Side.BUY, "3", "104"))
    assert p.position(VENUE, SYM) == D("4")
    assert p.avg_price(VENUE, SYM) == D("103")  # (100 + 312) / 4
    assert p.realized_pnl(VENUE, SYM) == 0
    assert (pos.quantity, pos.avg_price, pos.realized_pnl) == (D("4"), D("103"), D("0"))
    assert p.fill_count == 2


def test_short_average_cost() -> None:
    p = Portfolio()
    p.on_fill(fill(Side.SELL, "2", "100"))
    p.on_fill(fill(Side.SELL, "2", "110"))
    assert p.position(VENUE, SYM) == D("-4")
    assert p.avg_price(VENUE, SYM) == D("105")


def test_partial_close_realizes_pnl_and_keeps_average() -> None:
    p = Portfolio()
    p.on_fill(fill(Side.BUY, "4", "100"))
    pos = p.on_fill(fill(Side.SELL, "1", "110"))
    assert p.position(VENUE, SYM) == D("3")
    assert p.avg_price(VENUE, SYM) == D("100")
    assert p.realized_pnl(VENUE, SYM) == D("10")
    assert pos.realized_pnl == D("10")
    p.on_fill(fill(Side.SELL, "3", "95"))
    assert p.position(VENUE, SYM) == 0
    assert p.avg_price(VENUE, SYM) == 0
    assert p.realized_pnl(VENUE, SYM) == D("-5")  # 10 - 15


def test_short_close_realizes_with_the_right_sign() -> None:
    p = Portfolio()
    p.on_fill(fill(Side.SELL, "2", "100"))
    p.on_fill(fill(Side.BUY, "1", "90"))
    assert p.realized_pnl(VENUE, SYM) == D("10")
    p.on_fill(fill(Side.BUY, "1", "120"))
    assert p.realized_pnl(VENUE, SYM) == D("-10")
    assert p.position(VENUE, SYM) == 0


def test_flip_realizes_the_closed_part_and_opens_the_rest_at_the_fill_price() -> None:
    p = Portfolio()
    p.on_fill(fill(Side.BUY, "1", "100"))
    pos = p.on_fill(fill(Side.SELL, "3", "110"))
    assert p.position(VENUE, SYM) == D("-2")
    assert p.avg_price(VENUE, SYM) == D("110")
    assert p.realized_pnl(VENUE, SYM) == D("10")
    assert (pos.quantity, pos.avg_price) == (D("-2"), D("110"))
    # and back: close 2 short at 100 (+20), open 1 long at 100
    p.on_fill(fill(Side.BUY, "3", "100"))
    assert p.position(VENUE, SYM) == D("1")
    assert p.avg_price(VENUE, SYM) == D("100")
    assert p.realized_pnl(VENUE, SYM) == D("30")


def test_fees_reduce_realized_pnl() -> None:
    p = Portfolio()
    pos = p.on_fill(fill(Side.BUY, "1", "100", fee="0.25"))
    assert pos.realized_pnl == D("-0.25")
    assert p.avg_price(VENUE, SYM) == D("100")  # fees do not move the cost basis
    pos = p.on_fill(fill(Side.SELL, "1", "110", fee="0.5"))
    assert p.realized_pnl(VENUE, SYM) == D("9.25")
    assert pos.realized_pnl == D("9.25")


def test_unrealized_with_mark() -> None:
    p = Portfolio()
    assert p.unrealized_pnl(VENUE, SYM, D("100")) == 0  # no position at all
    p.on_fill(fill(Side.BUY, "2", "100"))
    assert p.unrealized_pnl(VENUE, SYM, D("105")) == D("10")
    assert p.unrealized_pnl(VENUE, SYM, D("95")) == D("-10")
    assert p.unrealized_pnl(VENUE, SYM, None) is None  # no mark: unknown, not zero
    p.on_fill(fill(Side.SELL, "4", "100"))  # now short 2 at 100
    assert p.unrealized_pnl(VENUE, SYM, D("90")) == D("20")
    assert p.unrealized_pnl(VENUE, SYM, D("110")) == D("-20")
    p.on_fill(fill(Side.BUY, "2", "100"))
    assert p.unrealized_pnl(VENUE, SYM, None) == 0  # flat


def test_symbols_are_independent() -> None:
    p = Portfolio()
    p.on_fill(fill(Side.BUY, "1", "100"))
    p.on_fill(fill(Side.SELL, "10", "5", symbol="ETHUSD"))
    assert p.position(VENUE, SYM) == D("1")
    assert p.position(VENUE, "ETHUSD") == D("-10")
    assert p.position("other", SYM) == 0
    assert p.symbols() == [(VENUE, SYM), (VENUE, "ETHUSD")]


def test_balances_and_venue_positions_are_stored_as_reported() -> None:
    p = Portfolio()
    p.on_balance(Balance(VENUE, "USD", D("10"), D("2"), 1))
    p.on_balance(Balance(VENUE, "USD", D("7"), D("1"), 2))
    assert p.balances[(VENUE, "USD")].total == D("8")
    vp = Position(VENUE, SYM, D("-1"), D("100"), D("0"), None, 3)
    p.on_venue_position(vp)
    assert p.venue_positions[(VENUE, SYM)] is vp
    assert p.position(VENUE, SYM) == 0  # our own fills are the position, not the venue's view


def test_total_pnl_and_summary_mark_at_the_price_source() -> None:
    marks = {(VENUE, SYM): D("110"), (VENUE, "ETHUSD"): None}
    p = Portfolio(mark=lambda v, s: marks[(v, s)])
    p.on_fill(fill(Side.BUY, "2", "100", fee="1"))
    p.on_fill(fill(Side.SELL, "1", "3000", symbol="ETHUSD"))
    # BTC: -1 fee realized, +20 unrealized at 110; ETH has no mark: its unrealized counts 0
    assert p.mark(VENUE, SYM) == D("110") and p.total_pnl() == D("19")
    rows = {r["symbol"]: r for r in p.summary()}
    assert rows[SYM]["unrealized_pnl"] == D("20") and rows[SYM]["mark"] == D("110")
    assert rows[SYM]["realized_pnl"] == D("-1") and rows[SYM]["quantity"] == D("2")
    assert rows["ETHUSD"]["unrealized_pnl"] is None and rows["ETHUSD"]["mark"] is None
    assert Portfolio().mark(VENUE, SYM) is None  # no price source
