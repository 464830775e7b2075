from __future__ import annotations

from decimal import Decimal as D

import pytest
import trio
import trio.testing

from framework.events import Side
from framework.sim import EngineListener, MatchingEngine, SimFill, SyntheticMarket
from framework.sim.market import CROWD, MIN_LEVELS, ORDERS_PER_LEVEL

SYM = "BTC-USD"
TICK = D("0.5")
LOT = D("0.001")


class LevelReplay(EngineListener):
    def __init__(self) -> None:
        self.levels: dict[tuple[Side, D], D] = {}
        self.trades: list[SimFill] = []

    def on_level(self, symbol: str, side: Side, price: D, size: D) -> None:
        if size == 0:
            del self.levels[(side, price)]
        else:
            self.levels[(side, price)] = size

    def on_trade(self, fill: SimFill) -> None:
        self.trades.append(fill)

    def book(self) -> tuple[list, list]:
        bids = sorted(((p, s) for (side, p), s in self.levels.items() if side is Side.BUY))
        asks = sorted((p, s) for (side, p), s in self.levels.items() if side is Side.SELL)
        return bids[::-1], asks


def make(seed: int, **kw) -> tuple[MatchingEngine, SyntheticMarket]:
    engine = MatchingEngine(clock_ns=lambda: 0)
    market = SyntheticMarket(engine, SYM, seed=seed, mid=D(30_000), tick=TICK, lot=LOT, **kw)
    return engine, market


def state(engine: MatchingEngine) -> tuple:
    return engine.book(SYM), engine.fills()


def test_seed_book_places_levels_around_mid() -> None:
    engine, market = make(1, levels=5)
    market.seed_book()
    bids, asks = engine.book(SYM)
    assert [p for p, _ in bids] == [D(30_000) - i * TICK for i in range(1, 6)]
    assert [p for p, _ in asks] == [D(30_000) + i * TICK for i in range(1, 6)]
    assert all(o.owner == CROWD for o in engine.orders())
    assert all(0 < s <= 100 * LOT and s % LOT == 0 for _, s in bids + asks)


def test_same_seed_is_deterministic_and_seeds_differ() -> None:
    results = []
    for seed in (7, 7, 8):
        engine, market = make(seed)
        market.seed_book()
        market.steps(1_500)
        results.append(state(engine))
    assert results[0] == results[1]
    assert results[0][1], "no trades happened"
    assert results[0][0] != results[2][0]
    assert results[0][1] != results[2][1]


def test_symbol_is_added_once_and_must_match() -> None:
    engine = MatchingEngine()
    engine.add_symbol(SYM, TICK, LOT)
    SyntheticMarket(engine, SYM, seed=1, mid=D(100), tick=TICK, lot=LOT)
    assert engine.symbols() == [SYM]
    with pytest.raises(ValueError):
        SyntheticMarket(engine, SYM, seed=1, mid=D(100), tick=D(1), lot=LOT)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_long_run_invariants(seed: int) -> None:
    engine, market = make(seed, levels=10, max_qty_lots=50)
    replay = LevelReplay()
    engine.add_listener(replay)
    market.seed_book()
    prices_seen: set[D] = set()

    for _ in range(5_000):
        market.step()
        bids, asks = engine.book(SYM)
        assert bids and asks
        assert bids[0][0] < asks[0][0], "book crossed"
        assert len(bids) >= MIN_LEVELS and len(asks) >= MIN_LEVELS
        prices_seen.add(bids[0][0])

    bids, asks = engine.book(SYM)
    assert replay.book() == (bids, asks)
    for price, size in bids + asks:
        assert price % TICK == 0 and price > 0
        assert size % LOT == 0 and size > 0
    fills = engine.fills()
    assert all(f.price % TICK == 0 and f.quantity % LOT == 0 for f in fills)
    # The crowd takes liquidity on both sides, and the price moves.
    assert {f.aggressor for f in fills} == {Side.BUY, Side.SELL}
    assert all(f.taker_owner == CROWD for f in fills)
    assert replay.trades == fills
    assert len(prices_seen) > 1
    # The crowd's resting orders stay bounded (cap plus at most one re-seeded side).
    assert len(engine.orders(open_only=True)) <= (2 * ORDERS_PER_LEVEL + 1) * 10 + 1
    # Cancels happen: some crowd orders end cancelled without any fill.
    assert any(o.status == "CANCELLED" and o.tif == "GTC" for o in engine.orders())


def test_crowd_trades_against_a_users_resting_order() -> None:
    engine, market = make(3, levels=5)
    market.seed_book()
    user = engine.submit("me", SYM, Side.BUY, "LIMIT", D("0.01"), D(30_000))  # inside the spread
    market.steps(2_000)
    assert user.filled > 0
    assert any(f.maker_owner == "me" for f in engine.fills(owner="me"))


def test_steps_reseed_an_empty_book() -> None:
    engine, market = make(4)
    market.step()  # no seed_book: both sides are seeded on demand
    bids, asks = engine.book(SYM)
    assert len(bids) >= MIN_LEVELS and len(asks) >= MIN_LEVELS


async def test_run_steps_at_the_given_rate(autojump_clock: trio.testing.MockClock) -> None:
    engine, market = make(5)
    market.seed_book()
    start = trio.current_time()

    with trio.move_on_after(9.9):
        await market.run(rate_hz=4)  # steps at t = 0, 0.25, ..., 9.75

    assert trio.current_time() - start == pytest.approx(9.9)
    reference, ref_market = make(5)
    ref_market.seed_book()
    ref_market.steps(40)
    assert state(engine) == state(reference)
    ref_market.step()
    assert state(engine) != state(reference)


async def test_run_rejects_non_positive_rate() -> None:
    _, market = make(6)
    with pytest.raises(ValueError):
        await market.run(0)
