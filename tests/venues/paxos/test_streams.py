"""Paxos public trades and stablecoin prices end to end against the simulator."""

from __future__ import annotations

from decimal import Decimal

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
