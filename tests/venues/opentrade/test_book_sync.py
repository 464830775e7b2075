"""The book botrun holds equals the Open Trade simulator's book: across seeds and reconnects.

Real adapter against the simulator over loopback. The crowd is stepped by the test (rate 0); the
simulator publishes every subscribed book in full every 20 ms, changed or not.
"""

from __future__ import annotations

import pytest

from framework.events import BookDelta, BookSnapshot, BookState
from tests.helpers import config, running, session, until

MARKETS = ["BTC/USD", "ETH/USD"]


def opentrade(seed: int, **extra: object) -> dict:
    return {
        "opentrade": {
            "endpoint": "sim",
            "sim_seed": seed,
            "sim_rate_hz": 0,
            "markets": MARKETS,
            "trades": False,
            **extra,
        }
    }


def books_equal(engine, sim, levels: int = 20) -> bool:
    for market in MARKETS:
        book = engine.book("opentrade", market)
        if book.state is not BookState.SYNCED:
            return False
        bids, asks = sim.engine.book(market, levels)
        if book.bids() != bids or book.asks() != asks:
            return False
    return True


@pytest.mark.parametrize("seed", range(4))
async def test_book_equals_simulator_across_rounds_and_reconnects(seed: int) -> None:
    async with running(config(opentrade(seed))) as engine:
        sim = engine.simulators["opentrade"].simulator
        public = session(engine, "public")
        await until(engine, lambda: books_equal(engine, sim), "books synced")
        for round_ in range(5):
            for crowd in sim.markets.values():
                crowd.steps(150)
            await until(engine, lambda: books_equal(engine, sim), f"round {round_}")
            if round_ % 2 == 1:
                epoch = public.epoch
                sim.app.abort_all_ws() if round_ == 3 else sim.app.close_all_ws(1012)
                await until(engine, lambda e=epoch: public.epoch > e, "reconnected")
                for crowd in sim.markets.values():
                    crowd.steps(50)
                await until(engine, lambda: books_equal(engine, sim), "resynced after reconnect")
        assert public.counts["bad_frames"] == 0


async def test_unchanged_books_reach_strategies_once() -> None:
    async with running(config(opentrade(3, sim_rate_hz=0))) as engine:
        sim = engine.simulators["opentrade"].simulator
        public = session(engine, "public")
        snaps: list[BookSnapshot | BookDelta] = []
        engine.bus.subscribe(BookSnapshot, snaps.append, owner="t")
        engine.bus.subscribe(BookDelta, snaps.append, owner="t")
        await until(engine, lambda: books_equal(engine, sim), "synced")
        # paper mode: only the public stream connects (the account stream waits for a client)
        assert len([c for c in sim.app.ws_connections if not c.closed]) == 1
        # the 20 ms publisher keeps sending the same two books: wait for many more frames
        seen = len(snaps)
        target = public.epoch_frames + 20
        sim.publish_books()
        await public.wait_frames(target)
        assert len(snaps) == seen  # nothing changed, nothing emitted
        assert public.stream.decoder.unchanged_books >= 20
        sim.markets["BTC/USD"].steps(50)
        await until(engine, lambda: books_equal(engine, sim), "changed book applied")
        # news once, as the levels that moved (the book was already whole)
        assert [(type(s), s.symbol) for s in snaps[seen:]] == [(BookDelta, "BTC/USD")]


async def test_levels_are_configurable() -> None:
    async with running(config(opentrade(4, levels=3))) as engine:
        sim = engine.simulators["opentrade"].simulator
        await until(engine, lambda: books_equal(engine, sim, 3), "3 levels")
        assert len(engine.book("opentrade", "BTC/USD").bids()) == 3


async def test_bad_frames_are_skipped_and_the_book_stays_right() -> None:
    async with running(config(opentrade(5))) as engine:
        sim = engine.simulators["opentrade"].simulator
        public = session(engine, "public")
        await until(engine, lambda: books_equal(engine, sim), "synced")
        bad = public.counts["bad_frames"]
        sim.broadcast_raw("{nonsense")
        sim.broadcast_raw('{"event":"UPDATE","channel":"ORDER_BOOK_PUBLIC","data":[{"x":1}]}')
        sim.markets["ETH/USD"].steps(40)
        await until(engine, lambda: public.counts["bad_frames"] >= bad + 2, "bad frames counted")
        await until(engine, lambda: books_equal(engine, sim), "still equal")
        assert public.epoch == 1  # no reconnect for bad input
