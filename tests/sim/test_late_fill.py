"""The shared late-fill fault (framework/sim/faults.py): a trade that beats the cancel."""

from __future__ import annotations

from decimal import Decimal

from framework.events import Side
from framework.sim.engine import FILLED, LIMIT, OPEN, MatchingEngine
from framework.sim.faults import LATE_FILL_OWNER, FaultPlan, late_fill, roll_late_fill

D = Decimal


def book() -> MatchingEngine:
    engine = MatchingEngine()
    engine.add_symbol("X", D("0.5"), D("0.01"))
    engine.submit("crowd", "X", Side.BUY, LIMIT, D("1"), D("100.5"))  # a better price
    engine.submit("crowd", "X", Side.BUY, LIMIT, D("2"), D("100"))  # same price, earlier
    return engine


def test_takes_everything_ahead_and_the_fraction_rounded_down_to_a_lot() -> None:
    engine = book()
    mine = engine.submit("me", "X", Side.BUY, LIMIT, D("1.05"), D("100"))
    engine.submit("crowd", "X", Side.BUY, LIMIT, D("4"), D("100"))  # behind us: untouched
    late_fill(engine, mine, D("0.5"))
    assert mine.status == OPEN and mine.filled == D("0.52")  # 0.525 down to the 0.01 lot
    fills = engine.fills(owner=LATE_FILL_OWNER)
    assert sum(f.quantity for f in fills) == D("3.52")  # 1 + 2 ahead, then ours
    assert engine.book("X")[0] == [(D("100"), D("4.53"))]


def test_at_least_one_lot_and_at_most_the_order() -> None:
    engine = book()
    tiny = engine.submit("me", "X", Side.BUY, LIMIT, D("0.01"), D("100"))
    late_fill(engine, tiny, D("0.1"))  # a tenth of a lot is still one lot
    assert tiny.status == FILLED
    engine = book()
    whole = engine.submit("me", "X", Side.BUY, LIMIT, D("2"), D("100"))
    late_fill(engine, whole, D("1"))
    assert whole.status == FILLED and whole.filled == D("2")


def test_sell_side_counts_lower_asks_ahead() -> None:
    engine = MatchingEngine()
    engine.add_symbol("X", D("1"), D("1"))
    engine.submit("crowd", "X", Side.SELL, LIMIT, D("3"), D("99"))
    mine = engine.submit("me", "X", Side.SELL, LIMIT, D("4"), D("100"))
    late_fill(engine, mine, D("0.5"))
    assert mine.filled == D("2") and engine.book("X")[1] == [(D("100"), D("2"))]


def test_roll_reads_the_fraction_of_a_firing_rule_only() -> None:
    assert roll_late_fill(None, "/x") is None
    plan = FaultPlan(seed=1)
    assert roll_late_fill(plan, "/x") is None
    plan.once("late_fill", "/orders", fraction="0.25")
    assert roll_late_fill(plan, "/other") is None
    assert roll_late_fill(plan, "/orders/1") == D("0.25")
    assert roll_late_fill(plan, "/orders/1") is None  # spent
    plan.once("late_fill")
    assert roll_late_fill(plan, "/any") == D("0.5")  # the default fraction
