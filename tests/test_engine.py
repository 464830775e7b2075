"""Engine wiring: the kill switch on a loss breach, strategy isolation, handler routing."""

from __future__ import annotations

from decimal import Decimal

from framework.events import (
    BookSnapshot,
    BookStatus,
    OrderEvent,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    VenueStatus,
)
from framework.strategy import Strategy
from tests.helpers import config, running, until

S = OrderStatus


def paper(**risk: object):
    return config(
        {
            "paxos": {
                "endpoint": "sim",
                "sim_seed": 2,
                "sim_rate_hz": 0,
                "markets": ["BTCUSD"],
                "trades": False,
            }
        },
        risk={"max_order_notional": "1000000", "max_position": "10", **risk},
        paper={"taker_fee_rate": "0.001", "latency_ms": 1},
    )


async def test_loss_breach_engages_kill_switch_cancels_all_and_refuses_new_orders() -> None:
    async with running(paper(max_loss="0.01")) as engine:
        book = engine.book("paxos", "BTCUSD")
        await until(engine, lambda: book.is_synced, "synced")
        bid = book.best_bid()[0]
        resting = engine.orders.submit(
            venue="paxos",
            symbol="BTCUSD",
            side=Side.BUY,
            quantity=Decimal("0.001"),
            price=bid - 100,
        )
        await until(engine, lambda: resting.status is S.ACCEPTED, "resting")
        # a taker fill pays a fee: realized PnL goes below -max_loss
        taker = engine.orders.submit(
            venue="paxos",
            symbol="BTCUSD",
            side=Side.BUY,
            quantity=Decimal("0.001"),
            type=OrderType.MARKET,
            tif=TimeInForce.IOC,
        )
        await until(engine, lambda: resting.status is S.CANCELLED, "cancelled by kill switch")
        assert taker.status is S.FILLED
        assert engine.risk.halted and "max_loss" in engine.risk.halted
        refused = engine.orders.submit(
            venue="paxos",
            symbol="BTCUSD",
            side=Side.BUY,
            quantity=Decimal("0.001"),
            price=bid - 100,
        )
        assert refused.status is S.REJECTED and "kill switch" in refused.order.reason


class Raiser(Strategy):
    def on_start(self) -> None:
        self.books = 0

    def on_book(self, event) -> None:
        self.books += 1
        raise RuntimeError("strategy bug")


class Counter(Strategy):
    def on_start(self) -> None:
        self.books = 0

    def on_book(self, event) -> None:
        self.books += 1


async def test_a_raising_strategy_is_isolated_and_others_keep_receiving() -> None:
    bad, good = Raiser(), Counter()
    async with running(paper(), [bad, good]) as engine:
        await until(engine, lambda: good.books >= 1, "books flowing")
        sim = engine.simulators["paxos"].simulator
        sim.markets["BTCUSD"].steps(30)
        await until(engine, lambda: good.books >= 10, "more books")
        assert bad.books >= 10 and engine.bus.handler_errors["Raiser"] == bad.books
        assert all(s.counts["bad_frames"] == 0 for s in engine.sessions)


class Mine(Strategy):
    name = "mine"

    def on_start(self) -> None:
        self.events: list[OrderEvent] = []

    def on_order(self, event: OrderEvent) -> None:
        self.events.append(event)


async def test_strategies_only_see_their_own_order_events() -> None:
    mine, other = Mine(), Mine()
    other.name = "other"
    async with running(paper(), [mine, other]) as engine:
        book = engine.book("paxos", "BTCUSD")
        await until(engine, lambda: book.is_synced, "synced")
        handle = mine.buy("paxos", "BTCUSD", Decimal("0.001"), book.best_bid()[0] - 10)
        await until(engine, lambda: handle.status is S.ACCEPTED, "accepted")
        assert {e.client_order_id for e in mine.events} == {handle.client_order_id}
        assert other.events == []


def test_summary_prints_money_to_the_cent_without_negative_zero() -> None:
    from framework.tools.summary import format_summary

    summary = {
        "mode": "paper",
        "events": {"paxos": 3},
        "orders": {"FILLED": 1},
        "fills": 1,
        "positions": [
            {
                "venue": "paxos",
                "symbol": "BTCUSD",
                "quantity": Decimal("0.1"),
                "avg_price": Decimal("60000.125"),
                "realized_pnl": Decimal("-1.005"),
                "unrealized_pnl": Decimal("-0.001"),
                "mark": None,
            }
        ],
        "sessions": {},
        "handler_errors": {},
    }
    line = format_summary(summary).splitlines()[4]
    assert "realized -1.00" in line and "unrealized 0.00" in line and "-0.00" not in line


async def test_a_snapshot_on_a_synced_book_updates_it_without_status_news() -> None:
    async with running(paper()) as engine:
        book = engine.book("paxos", "BTCUSD")
        await until(engine, lambda: book.is_synced, "synced")
        (session,) = [s for s in engine.sessions if "BTCUSD" in s.stream.books()]
        news: list[object] = []
        snapshots: list[BookSnapshot] = []
        engine.bus.subscribe(BookStatus, news.append, owner="t")
        engine.bus.subscribe(VenueStatus, news.append, owner="t")
        engine.bus.subscribe(BookSnapshot, snapshots.append, owner="t")
        bids = ((Decimal("100"), Decimal("1")),)
        asks = ((Decimal("101"), Decimal("2")),)
        for size in ("1", "3"):  # a venue refreshing the whole book, as Open Trade does
            bids = ((Decimal("100"), Decimal(size)),)
            engine.on_event(
                BookSnapshot("paxos", "BTCUSD", bids, asks, None, 0, session.stream.epoch)
            )
        assert len(snapshots) == 2 and book.bids() == [(Decimal("100"), Decimal("3"))]
        assert news == []  # still SYNCED: strategies hear of a change only
        book.mark_unsynced("test")
        engine.on_event(BookSnapshot("paxos", "BTCUSD", bids, asks, None, 0, session.stream.epoch))
        assert [type(e) for e in news] == [BookStatus, VenueStatus]
