"""What every venue simulator shares: seeded crowds on the engine, one loopback port, its loops.

A protocol simulator subclasses `LoopbackSimulator`, sets `app` (its SimApp) and `crowds`, and
lists its own timers (heartbeats, publishers, expiries) in `background()`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal
from functools import partial
from typing import TypeVar

import trio

from framework.sim.engine import MatchingEngine
from framework.sim.market import SyntheticMarket
from framework.sim.server import SimApp, serve

CrowdSpec = tuple[str, Decimal, Decimal, Decimal, int]  # symbol, mid, tick, lot, max lots
R = TypeVar("R")


def seed_crowds(
    engine: MatchingEngine, specs: Iterable[CrowdSpec], seed: int
) -> dict[str, SyntheticMarket]:
    """One seeded crowd per symbol, its book seeded; the same seed gives the same markets."""
    crowds = {}
    for index, (symbol, mid, tick, lot, max_lots) in enumerate(specs):
        crowd = SyntheticMarket(
            engine,
            symbol,
            seed=seed * 1000 + index,
            mid=Decimal(mid),
            tick=Decimal(tick),
            lot=Decimal(lot),
            max_qty_lots=max_lots,
        )
        crowd.seed_book()
        crowds[symbol] = crowd
    return crowds


def trim_history(
    records: dict[str, R],
    limit: int,
    *,
    working: Callable[[R], bool] = lambda record: False,
    forget: Callable[[R], None] = lambda record: None,
) -> None:
    """Keep a simulator's own records (oldest first) bounded, like the engine's history.

    The oldest finished records beyond `limit` go, and `forget` drops each from the simulator's
    other indexes. An oldest record still working stops the trim: a venue keeps every order it
    may still report on, and records stay in creation order (listings depend on it). Without
    `working`, the oldest simply go.
    """
    while len(records) > limit:
        key, oldest = next(iter(records.items()))
        if working(oldest):
            return
        del records[key]
        forget(oldest)


class LoopbackSimulator:
    app: SimApp
    crowds: dict[str, SyntheticMarket]
    port: int | None = None

    def background(self) -> list[Callable[[], Awaitable[None]]]:
        """The simulator's own loops, run beside the server."""
        return []

    async def run(
        self,
        *,
        port: int = 0,
        market_rate_hz: float | None = 20.0,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until cancelled: the app, the crowds (if a rate is given) and the loops."""
        async with trio.open_nursery() as nursery:
            self.port = await nursery.start(partial(serve, self.app, port=port))
            if market_rate_hz:
                for crowd in self.crowds.values():
                    nursery.start_soon(crowd.run, market_rate_hz)
            for loop in self.background():
                nursery.start_soon(loop)
            task_status.started(self.port)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"
