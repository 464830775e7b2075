# ruff: noqa: E501  (verbatim wire frames read best on one line)
"""RFQs end to end over a real socket: events to strategies, post / refresh / cancel our own, answer
one with a firm order, and the example responder strategy."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import trio

from framework.events import OrderStatus, Side
from framework.strategy import Strategy
from framework.tools.cli import load_strategy_class
from framework.venues.powertrade.events import (
    OwnRfqUpdate,
    RfqAdded,
    RfqEvent,
    RfqRemoved,
    RfqSnapshot,
)
from framework.venues.powertrade.execution import PowerTradeExecution
from framework.venues.powertrade.sim import RFQ_OWNER, PowerTradeSimulator
from tests.helpers import HANG_GUARD_S, config, running, session, until

D = Decimal
ROOT = Path(__file__).resolve().parents[3]


def cfg(**params: Any):
    venue = {"endpoint": "sim", "sim_seed": 9, "sim_rate_hz": 0, "markets": ["BTC-USD"],
             "sim_rfq_rate_hz": 0, "account_interval_s": 3600}  # fmt: skip
    return config(
        {"powertrade": venue},
        botrun={"mode": "sandbox"},
        risk={
            "max_order_notional": "1000000000",
            "max_position": "1000",
            "max_orders_per_second": 1000,
        },
        strategy={"params": params},
    )


class Recorder(Strategy):
    def on_start(self) -> None:
        self.rfq_events: list[RfqEvent] = []
        self.on(RfqEvent, self.rfq_events.append, venue="powertrade")


def sim_of(engine) -> PowerTradeSimulator:
    return engine.simulators["powertrade"].simulator


async def test_rfq_round_trip_answer_post_refresh_cancel() -> None:
    strategy = Recorder()
    async with running(cfg(), [strategy], journal_path=":memory:") as engine:
        await until(
            engine,
            lambda: any(isinstance(e, RfqSnapshot) for e in strategy.rfq_events),
            "RFQ snapshot",
        )
        sim = sim_of(engine)
        client: PowerTradeExecution = strategy.venue_client("powertrade")
        # someone asks to buy 0.02: we answer with a firm sell inside the spread; they take it
        posted = sim.post_rfq(RFQ_OWNER, "BTC-USD", Side.BUY, D("0.02"))
        await until(
            engine, lambda: any(isinstance(e, RfqAdded) for e in strategy.rfq_events), "RFQ added"
        )
        (added,) = [e for e in strategy.rfq_events if isinstance(e, RfqAdded)]
        rfq = added.rfq
        assert (rfq.rfq_id, rfq.side, rfq.quantity) == (posted.order_id, Side.BUY, D("0.02"))
        price = sim.engine.best_ask("BTC-USD") - D("0.1")
        handle = client.answer_rfq(strategy, rfq, price, D("0.01"))
        with trio.fail_after(HANG_GUARD_S):
            await handle.done()
        assert handle.status is OrderStatus.FILLED and handle.order.side is Side.SELL
        await until(
            engine,
            lambda: any(
                isinstance(e, RfqRemoved) and e.rfq_id == rfq.rfq_id for e in strategy.rfq_events
            ),
            "RFQ gone",
        )
        # our own RFQ: accepted, visible in the RFQ book, refreshed, then withdrawn
        coid = await client.post_rfq("BTC-USD", Side.SELL, D("0.05"))
        await until(
            engine,
            lambda: any(
                isinstance(e, OwnRfqUpdate) and e.state == "accepted" for e in strategy.rfq_events
            ),
            "own RFQ accepted",
        )
        ours = next(e for e in strategy.rfq_events if isinstance(e, OwnRfqUpdate))
        assert ours.client_order_id == coid and sim.rfq(ours.rfq_id).quantity == D("0.05")
        await until(
            engine, lambda: client.live_rfq("BTC-USD", ours.rfq_id) is not None, "own RFQ in book"
        )
        await client.refresh_rfq(coid)
        await client.cancel_rfq(coid)
        await until(
            engine,
            lambda: any(
                isinstance(e, OwnRfqUpdate) and e.state == "cancelled" for e in strategy.rfq_events
            ),
            "own RFQ cancelled",
        )
        assert sim.rfq(ours.rfq_id) is None
        # an RFQ that is gone cannot be answered
        try:
            client.answer_rfq(strategy, rfq, price)
        except Exception as exc:
            assert "no longer live" in str(exc)
        else:
            raise AssertionError("answered a dead RFQ")


async def test_rfq_book_is_resent_after_a_reconnect() -> None:
    strategy = Recorder()
    async with running(cfg(), [strategy], journal_path=":memory:") as engine:
        sess = session(engine, "powertrade")
        await until(
            engine,
            lambda: any(isinstance(e, RfqSnapshot) for e in strategy.rfq_events),
            "RFQ snapshot",
        )
        sim = sim_of(engine)
        posted = sim.post_rfq(RFQ_OWNER, "ETH-USD", Side.SELL, D("1.0"))
        epoch = sess.epoch
        sim.app.abort_all_ws()
        await until(
            engine,
            lambda: any(isinstance(e, RfqSnapshot) and e.epoch > epoch and [r.rfq_id for r in e.rfqs] == [posted.order_id]
                        for e in strategy.rfq_events),
            "RFQ snapshot on the new connection",
        )  # fmt: skip


async def test_the_example_rfq_responder_answers_and_gets_filled() -> None:
    cls = load_strategy_class(str(ROOT / "strategies" / "rfq_responder.py"))
    strategy = cls({"max_quantity": "0.01", "quote_ttl_s": 3600})
    async with running(cfg(), [strategy], journal_path=":memory:") as engine:
        await until(engine, lambda: engine.book("powertrade", "BTC-USD").is_synced, "synced")
        sim = sim_of(engine)
        sim.post_rfq(RFQ_OWNER, "BTC-USD", Side.SELL, D("0.03"))  # they sell: we bid
        sim.post_rfq(RFQ_OWNER, "ETH-USD", Side.SELL, D("1.0"))  # not our market: ignored
        await until(
            engine,
            lambda: engine.portfolio.position("powertrade", "BTC-USD") == D("0.01"),
            "filled",
        )
        orders = list(engine.orders.orders.values())
        assert [(o.side, o.status) for o in orders] == [(Side.BUY, OrderStatus.FILLED)]
        assert strategy.answered and len(strategy.answered) == 1
