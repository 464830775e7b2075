# ruff: noqa: E501  (verbatim wire frames read best on one line)
"""The L3 book, aggregated to L2, equals the simulator's engine book: across seeds, reconnects and
bad input from the venue (over a real socket)."""

from __future__ import annotations

import orjson
import pytest
import trio

from framework.runner import Engine
from framework.sim.faults import FaultPlan, Rule
from framework.testing import chaos
from framework.venues.powertrade.client import PowerTradeStream
from framework.venues.powertrade.sim import PowerTradeSimulator
from tests.helpers import config, drain, running, session, until

MARKETS = ["BTC-USD", "ETH-USD"]


def cfg(seed: int):
    venue = {"endpoint": "sim", "sim_seed": seed, "sim_rate_hz": 0, "markets": MARKETS,
             "sim_rfq_rate_hz": 0, "account_interval_s": 3600}  # fmt: skip
    return config({"powertrade": venue})


def sim_of(engine: Engine) -> PowerTradeSimulator:
    return engine.simulators["powertrade"].simulator


async def synced(engine: Engine) -> None:
    await until(
        engine, lambda: all(engine.book("powertrade", s).is_synced for s in MARKETS), "synced"
    )


async def assert_equal_after_changes(engine: Engine, steps: int) -> None:
    sim = sim_of(engine)
    for crowd in sim.crowds.values():
        crowd.steps(steps)
    sess = session(engine, "powertrade")
    await drain(engine, sess)
    stream: PowerTradeStream = sess.stream  # type: ignore[assignment]
    for symbol in MARKETS:
        book = engine.book("powertrade", symbol)
        assert book.is_synced
        assert book.levels_unchecked() == sim.engine.book(symbol)
        # and order by order, not just in aggregate
        assert stream.decoder.books[symbol].orders == sim.l3_orders(symbol)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_book_equals_the_simulator_across_seeds_and_reconnects(seed: int) -> None:
    async with running(cfg(seed)) as engine:
        sess = session(engine, "powertrade")
        for fault in ("close", "abort", None):
            await synced(engine)
            await assert_equal_after_changes(engine, 400)
            if fault is None:
                break
            epoch = sess.epoch
            sim = sim_of(engine)
            sim.app.close_all_ws() if fault == "close" else sim.app.abort_all_ws()
            await until(engine, lambda e=epoch: sess.epoch > e, "reconnected")
        assert sess.counts["bad_frames"] == 0


async def test_an_l3_gap_unsyncs_the_book_and_a_resync_repairs_it() -> None:
    async with running(cfg(4)) as engine:
        await synced(engine)
        sess = session(engine, "powertrade")
        epoch = sess.epoch
        book = engine.book("powertrade", "BTC-USD")
        sim_of(engine).broadcast_raw(
            '{"order_deleted": {"market_id": "0", "symbol": "BTC-USD", "side": "buy", "order_id": "nope"}}'
        )
        await until(engine, lambda: not book.is_synced, "unsynced by the gap")
        await until(engine, lambda: book.is_synced, "resynced")
        await assert_equal_after_changes(engine, 200)
        assert sess.counts["resyncs"] == 1 and sess.epoch == epoch  # same connection


async def test_bad_frames_are_skipped_and_nothing_is_lost() -> None:
    async with running(cfg(5)) as engine:
        await synced(engine)
        sess = session(engine, "powertrade")
        epoch = sess.epoch
        sim = sim_of(engine)
        for raw in [
            "garbage",
            '{"order_added": {"market_id": "0", "symbol": "BTC-USD", "side": "up", "order_id": "x"}}',
            '{"trade": {"symbol": "BTC-USD", "price": 1.5, "quantity": "1", "trade_id": "t"}}',
            '{"mystery": {}}',
            '{"command_response": {"error_code": "12", "error_text": "boom", "user_tag": "nobody"}}',
        ]:
            sim.broadcast_raw(raw)
        await assert_equal_after_changes(engine, 200)
        assert sess.counts["bad_frames"] == 5 and sess.epoch == epoch
        with trio.fail_after(5):
            assert engine.book("powertrade", "ETH-USD").is_synced


async def test_repeated_partial_executions_never_leave_a_wrong_synced_book() -> None:
    """Every partial `order_executed` delivered twice (the duplicate fault): the book is true at
    every quiet moment, or flagged, never synced and wrong."""
    plan = FaultPlan(seed=1)
    holder: dict[str, PowerTradeSimulator] = {}

    def partial_execution(text: str) -> bool:
        if not text.startswith('{"order_executed"'):
            return False
        body = orjson.loads(text)["order_executed"]
        return body["order_id"] in holder["sim"].l3_orders(body["symbol"])  # the order rests on

    repeat = Rule("duplicate", rate=1.0, path="/", match=partial_execution)
    plan.rules.append(repeat)
    async with chaos("powertrade", seed=3, faults=plan) as run:
        holder["sim"] = run.sim
        await run.settle(synced=True)
        for _ in range(30):
            run.step(50)
            await run.settle()
            assert run.book_problems() == []
            await run.settle(synced=True)
        assert repeat.fired > 100
