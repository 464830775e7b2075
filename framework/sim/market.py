"""A seeded random crowd that keeps one engine symbol alive: resting liquidity, cancels, trades.

Everything random comes from one `random.Random(seed)`, and prices are kept as integer tick
counts, so the same seed on a fresh engine gives the same book and the same fills.
"""

from __future__ import annotations

import random
from decimal import Decimal

import trio

from framework.events import Side
from framework.sim.engine import IOC, LIMIT, MARKET, OPEN, MatchingEngine

CROWD = "crowd"

# A side with fewer levels than this is re-seeded, so takers always find something to hit.
MIN_LEVELS = 3
# Action mix of `step()`: add a limit order below P_ADD, cancel below P_CANCEL, else take.
P_ADD = 0.55
P_CANCEL = 0.85
# How far (in ticks) a crowd IOC limit reaches past the best opposite price.
TAKE_REACH_TICKS = 2
# Adds outnumber removals in the mix above, so the crowd caps its resting orders (per side and
# level) and cancels instead of adding at the cap; otherwise the book would grow without bound.
ORDERS_PER_LEVEL = 2


class SyntheticMarket:
    """Seeded random crowd on one MatchingEngine symbol: deterministic for a seed."""

    def __init__(
        self,
        engine: MatchingEngine,
        symbol: str,
        *,
        seed: int,
        mid: Decimal,
        tick: Decimal,
        lot: Decimal,
        levels: int = 20,
        max_qty_lots: int = 100,
    ) -> None:
        if mid <= 0 or levels < 1 or max_qty_lots < 1:
            raise ValueError("mid must be positive; levels and max_qty_lots at least 1")
        engine.add_symbol(symbol, tick, lot)  # no-op if the venue already added it identically
        self._engine = engine
        self._symbol = symbol
        self._tick = tick
        self._lot = lot
        self._levels = levels
        self._max_qty_lots = max_qty_lots
        self._rng = random.Random(seed)
        self._mid = max(1, int((mid / tick).to_integral_value()))  # in ticks
        # Crowd orders that may still rest. Orders filled by takers are pruned lazily on cancel.
        self._live: list[str] = []

    @property
    def mid(self) -> Decimal:
        """The crowd's current reference price."""
        return self._price(self._mid)

    def seed_book(self) -> None:
        """Place `levels` crowd limit orders on each side, one tick apart, around mid."""
        self._seed_side(Side.BUY)
        self._seed_side(Side.SELL)

    def step(self) -> None:
        """One random action of the crowd (see module constants for the mix)."""
        self._walk_mid()
        roll = self._rng.random()
        if roll < P_ADD and not self._at_capacity():
            self._add_limit()
        elif roll < P_CANCEL:
            self._cancel_one()
        else:
            self._take()
        for side in (Side.BUY, Side.SELL):
            if len(self._side_levels(side)) < MIN_LEVELS:
                self._seed_side(side)

    def steps(self, n: int) -> None:
        for _ in range(n):
            self.step()

    async def run(self, rate_hz: float) -> None:
        """Step forever at `rate_hz` steps per second."""
        if rate_hz <= 0:
            raise ValueError("rate_hz must be positive")
        period = 1 / rate_hz
        while True:
            self.step()
            await trio.sleep(period)

    # --- actions -----------------------------------------------------------------------------

    def _walk_mid(self) -> None:
        # Random walk, but kept between the best bid and ask so that new orders "near mid"
        # follow the book after takers moved it.
        mid = self._mid + self._rng.choice((-1, 0, 1))
        bid, ask = self._best_ticks(Side.BUY), self._best_ticks(Side.SELL)
        if bid is not None:
            mid = max(mid, bid)
        if ask is not None:
            mid = min(mid, ask)
        self._mid = max(1, mid)

    def _add_limit(self) -> None:
        side = self._rng.choice((Side.BUY, Side.SELL))
        # Offset 0 puts the order at mid, which is inside the spread when the spread is wide.
        offset = self._rng.randint(0, self._levels)
        ticks = self._mid - offset if side is Side.BUY else self._mid + offset
        self._rest(side, ticks)

    def _cancel_one(self) -> None:
        while self._live:
            index = self._rng.randrange(len(self._live))
            order_id = self._live[index]
            # Swap-remove keeps this O(1); list order only matters for determinism, not time.
            self._live[index] = self._live[-1]
            self._live.pop()
            if self._is_open(order_id):
                self._engine.cancel(order_id)
                return

    def _take(self) -> None:
        side = self._rng.choice((Side.BUY, Side.SELL))
        quantity = self._quantity()
        if self._rng.random() < 0.5:
            self._engine.submit(CROWD, self._symbol, side, MARKET, quantity)
            return
        best = self._best_ticks(side.opposite)
        if best is None:
            return
        reach = self._rng.randint(0, TAKE_REACH_TICKS)
        ticks = best + reach if side is Side.BUY else max(1, best - reach)
        self._engine.submit(CROWD, self._symbol, side, LIMIT, quantity, self._price(ticks), IOC)

    def _seed_side(self, side: Side) -> None:
        for i in range(1, self._levels + 1):
            self._rest(side, self._mid - i if side is Side.BUY else self._mid + i)

    def _rest(self, side: Side, ticks: int) -> None:
        """Place a crowd GTC limit at `ticks`, pulled back so that it never takes liquidity."""
        opposite = self._best_ticks(side.opposite)
        if opposite is not None:
            ticks = min(ticks, opposite - 1) if side is Side.BUY else max(ticks, opposite + 1)
        if ticks < 1:
            return
        order = self._engine.submit(
            CROWD, self._symbol, side, LIMIT, self._quantity(), self._price(ticks)
        )
        if order.status == OPEN:
            self._live.append(order.order_id)

    def _at_capacity(self) -> bool:
        cap = 2 * self._levels * ORDERS_PER_LEVEL
        if len(self._live) > cap:
            self._live = [oid for oid in self._live if self._is_open(oid)]  # prune the filled
        return len(self._live) > cap

    # --- helpers -----------------------------------------------------------------------------

    def _is_open(self, order_id: str) -> bool:
        order = self._engine.order(order_id)
        return order is not None and order.status == OPEN

    def _quantity(self) -> Decimal:
        return self._rng.randint(1, self._max_qty_lots) * self._lot

    def _price(self, ticks: int) -> Decimal:
        return ticks * self._tick

    def _best_ticks(self, side: Side) -> int | None:
        best = (
            self._engine.best_bid(self._symbol)
            if side is Side.BUY
            else self._engine.best_ask(self._symbol)
        )
        return None if best is None else int(best / self._tick)

    def _side_levels(self, side: Side) -> list[tuple[Decimal, Decimal]]:
        bids, asks = self._engine.book(self._symbol, MIN_LEVELS)
        return bids if side is Side.BUY else asks
