"""Paxos public trades and stablecoin prices end to end against the simulator."""

from __future__ import annotations

import math
from decimal import Decimal

import trio
import trio.testing

from framework.events import PublicTrade, Side, Ticker
from tests.helpers import config, drain, running, session, until


def paxos(**extra: object) -> dict:
    return {
        "paxos": {
            "endpoint": "sim",
            "sim_seed": 4,
            "sim_rate_hz": 0,
            "markets": ["BTCUSD"],
            **extra,
        }
    }


async def test_trades_are_not_repeated_after_a_reconnect_replays_the_last_one() -> None:
    async with running(config(paxos())) as engine:
        sim = engine.simulators["paxos"].simulator
        trades: list[PublicTrade] = []
        engine.bus.subscribe(PublicTrade, trades.append, owner="t")
        ex = session(engine, "executiondata")
        await until(engine, lambda: ex.epoch == 1, "connected")
        sim.engine.submit("other", "BTCUSD", Side.BUY, "MARKET", Decimal("0.001"))
        sim.engine.submit("other", "BTCUSD", Side.SELL, "MARKET", Decimal("0.002"))
        await drain(engine, ex)
        before = [t.trade_id for t in trades]
        assert len(before) == len(set(before)) >= 2
        sim.app.close_all_ws(1012)
        await until(engine, lambda: ex.epoch == 2, "reconnected")
        await drain(engine, ex)  # the replayed last execution arrived...
        assert ex.epoch_frames >= 1
        assert [t.trade_id for t in trades] == before  # ...and was not a new trade
        sim.engine.submit("other", "BTCUSD", Side.BUY, "MARKET", Decimal("0.001"))
        await drain(engine, ex)
        assert len(trades) > len(before)


async def test_stablecoin_prices_arrive_as_tickers() -> None:
    async with running(config(paxos(stablecoin_markets=["USDCUSD"]))) as engine:
        tickers: list[Ticker] = []
        engine.bus.subscribe(Ticker, tickers.append, owner="t")
        await until(engine, lambda: bool(tickers), "a stablecoin price")
        assert tickers[0].symbol == "USDCUSD"
        assert Decimal("0.99") < tickers[0].last < Decimal("1.01")
        assert tickers[0].venue_ts is not None


async def test_a_quiet_valid_book_stays_synced_and_connected_for_minutes(
    mock_clock: trio.testing.MockClock,
) -> None:
    """[DOC] Paxos public feeds send nothing while a market is idle and have no heartbeat:
    liveness is WebSocket ping/pong only. Minutes without a frame (the clock jumps 10 minutes
    at once; the old 30 s staleness rule flipped STALE and reconnected here) leave the book
    SYNCED on the same connection, and the SOR stream rests on ping/pong the same way."""
    from framework.venues.paxos.streams import PublicStream, SorStream

    assert PublicStream.stale_after_s == math.inf and PublicStream.ping_interval_s
    assert SorStream.stale_after_s == math.inf and SorStream.ping_interval_s
    async with running(config(paxos(trades=False))) as engine:
        await until(engine, lambda: engine.book("paxos", "BTCUSD").is_synced, "synced")
        md = session(engine, "marketdata")
        mock_clock.jump(600)
        await trio.testing.wait_all_tasks_blocked()
        assert md.counts["stale"] == 0 and md.epoch == 1
        assert engine.book("paxos", "BTCUSD").is_synced
