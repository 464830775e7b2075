# ruff: noqa: E501  (verbatim wire frames read best on one line)
"""The L3 book, aggregated to L2, equals the simulator's engine book: across seeds, reconnects and
bad input from the venue (over a real socket)."""

from __future__ import annotations

from decimal import Decimal
from functools import partial

import orjson
import pytest
import trio

from framework.engine import Engine
from framework.sim.faults import FaultPlan, Rule
from framework.testing import chaos, server_connection
from framework.venues.powertrade.client import PowerTradeStream
from framework.venues.powertrade.sim import PowerTradeSimulator
from tests.helpers import HANG_GUARD_S, config, drain, running, session, until

MARKETS = ["BTC-USD", "ETH-USD"]


def cfg(seed: int, **extra: str):
    venue = {"endpoint": "sim", "sim_seed": seed, "sim_rate_hz": 0, "markets": MARKETS,
             "sim_rfq_rate_hz": 0, "account_interval_s": 3600, **extra}  # fmt: skip
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


async def test_an_l3_gap_unsyncs_the_book_and_a_reconnect_repairs_it() -> None:
    """[CODE] the venue refuses a repeated subscribe ("add subscription failed, already
    subscribed", no snapshot) and documents no unsubscribe: the resync is a new connection."""
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
        assert sess.counts["resyncs"] == 1 and sess.epoch == epoch + 1  # a new connection


async def test_bad_frames_are_skipped_and_nothing_is_lost() -> None:
    async with running(cfg(5)) as engine:
        await synced(engine)
        sess = session(engine, "powertrade")
        epoch = sess.epoch
        sim = sim_of(engine)
        for raw in [
            "garbage",
            '{"trade": {"symbol": "BTC-USD", "price": 1.5, "quantity": "1", "trade_id": "t"}}',
            '{"mystery": {}}',
            '{"command_response": {"error_code": "12", "error_text": "boom", "user_tag": "nobody"}}',
        ]:
            sim.broadcast_raw(raw)
        # a skipped frame may have been a book update: the books resync (issue #15, item 7); on
        # Power.Trade a resync is a new connection, so the frames queued behind the first bad
        # one go with the old connection
        await until(engine, lambda: sess.counts["bad_frames"] >= 1, "a bad frame seen")
        await until(engine, lambda: sess.epoch > epoch, "reconnected to resync")
        await synced(engine)
        await assert_equal_after_changes(engine, 200)
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


async def test_a_caller_given_synthetic_market_is_listed_and_its_book_synced() -> None:
    """`build(markets={symbol: (mid, tick)})` serves that market: the real adapter, given only
    `markets` and `sim_url`, finds it in the venue's rules and keeps its book equal to the
    simulator's (how bench/scale.py spreads many markets over the venues)."""
    symbol = "X007-USD"
    sim = PowerTradeSimulator.build(6, markets={symbol: (Decimal(107), Decimal("0.01"))})
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(sim.run, market_rate_hz=None))
        venue = {"sim_url": sim.http_url, "markets": [symbol], "sim_rfq_rate_hz": 0,
                 "account_interval_s": 3600}  # fmt: skip
        async with running(config({"powertrade": venue}), journal_path=":memory:") as engine:
            inst = engine.orders.instruments[("powertrade", symbol)]
            assert (inst.base, inst.quote, inst.tick) == ("X007", "USD", Decimal("0.01"))
            book = engine.book("powertrade", symbol)
            await until(engine, lambda: book.is_synced, "synced")
            sess = session(engine, "powertrade")
            sim.crowds[symbol].steps(300)
            conn = server_connection(sess, sim.app)
            assert conn is not None
            with trio.fail_after(HANG_GUARD_S):
                await sess.wait_frames(conn.enqueued)
            bids, asks = sim.engine.book(symbol)
            assert bids and asks and Decimal(100) < bids[0][0] < Decimal(114)
            assert book.is_synced and book.levels_unchecked() == (bids, asks)
            assert sess.counts["bad_frames"] == 0
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    "raw",
    [
        # a book frame the decoder recognises as bad (#15 item 7)
        '{"order_added": {"market_id": "0", "symbol": "BTC-USD", "side": "up", "order_id": "x"}}',
        # a book message it does not understand, for a synced symbol
        '{"order_moved": {"market_id": "0", "symbol": "BTC-USD", "order_id": "x"}}',
        # a deltas instruction it does not know
        '{"deltas": {"symbol": "BTC-USD", "buy": {"add_order": [{"price": "1.0"}]}}}',
    ],
)
async def test_a_book_frame_it_cannot_apply_unsyncs_and_the_book_comes_back(raw: str) -> None:
    async with running(cfg(8)) as engine:
        await synced(engine)
        sess = session(engine, "powertrade")
        epoch = sess.epoch
        book = engine.book("powertrade", "BTC-USD")
        sim_of(engine).broadcast_raw(raw)
        await until(engine, lambda: not book.is_synced, "unsynced, not skipped")
        await until(engine, lambda: book.is_synced and sess.epoch > epoch, "back by reconnect")
        await assert_equal_after_changes(engine, 200)


async def test_snap_with_deltas_keeps_the_book_equal_to_the_venues() -> None:
    """The venue's own connector's form: a snapshot, then price-level `deltas` per interval."""
    async with running(cfg(9, book_type="snap_with_deltas", book_interval_ms="100")) as engine:
        await synced(engine)
        sess = session(engine, "powertrade")
        sim = sim_of(engine)
        for _ in range(5):
            for crowd in sim.crowds.values():
                crowd.steps(60)
            # the next `deltas` (within one interval) brings the book level for level
            for symbol in MARKETS:
                book = engine.book("powertrade", symbol)
                await until(
                    engine,
                    lambda b=book, s=symbol: (
                        b.is_synced and b.levels_unchecked() == sim.engine.book(s)
                    ),
                    "equal after deltas",
                )
        assert sess.counts["bad_frames"] == 0
        assert sess.stream.decoder.counts["deltas"] > 0
        assert sess.stream.decoder.counts["order_added"] == 0  # level messages only
