"""PaperBroker against a book built here: taking, resting, queue position, fees, refusals.

`submit` sleeps the configured latency, so every async test runs on the autojumping MockClock.
"""

from __future__ import annotations

import itertools
from decimal import Decimal as D
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from framework.data.book import OrderBook
from framework.errors import OrderNotFound, OrderRefused
from framework.events import (
    Balance,
    BookDelta,
    BookSnapshot,
    ExecutionReport,
    Liquidity,
    OrderAccepted,
    OrderFilled,
    OrderStatus,
    OrderType,
    PublicTrade,
    Side,
    TimeInForce,
)
from framework.execution.journal import Journal
from framework.execution.manager import OrderManager
from framework.execution.paper import PaperBroker, PaperConfig
from framework.model import Instrument, Order
from framework.venue import Capabilities

S = OrderStatus
VENUE, SYM = "paxos", "BTCUSD"
MAKER, TAKER = D("0.001"), D("0.002")
_ids = itertools.count()


class Ctx:
    """A fake ExecutionContext. Like the order manager, it applies fills to the shared Order:
    the broker reads `order.remaining` to know what is left."""

    def __init__(self) -> None:
        self.reports: list[ExecutionReport] = []
        self.published: list[Any] = []
        self.orders: dict[str, Order] = {}

    def on_report(self, report: ExecutionReport) -> None:
        self.reports.append(report)
        order = self.orders.get(report.client_order_id)
        if order is not None and report.fill_qty is not None:
            order.filled_qty += report.fill_qty

    def publish(self, event: object) -> None:
        self.published.append(event)

    def open_orders(self, venue: str) -> list[Order]:
        return [o for o in self.orders.values() if o.is_open]

    def fills(self, coid: str | None = None) -> list[tuple[D, D, Liquidity | None]]:
        return [
            (r.fill_price, r.fill_qty, r.liquidity)  # type: ignore[misc]
            for r in self.reports
            if r.fill_qty is not None and coid in (None, r.client_order_id)
        ]

    def statuses(self) -> list[tuple[OrderStatus, str | None]]:
        return [(r.status, r.reason) for r in self.reports if r.status is not None]


def levels(*pairs: tuple[str, str]) -> tuple[tuple[D, D], ...]:
    return tuple((D(p), D(s)) for p, s in pairs)


class Setup:
    def __init__(
        self,
        bids: tuple[tuple[D, D], ...] = levels(("99", "2"), ("98", "3")),
        asks: tuple[tuple[D, D], ...] = levels(("100", "1"), ("101", "2"), ("102", "5")),
        balances: dict[str, D] | None = None,
        capabilities: Capabilities | None = None,
        instrument: Instrument | None = None,
    ) -> None:
        self.book = OrderBook(VENUE, SYM)
        assert self.book.apply_snapshot(BookSnapshot(VENUE, SYM, bids, asks, None, 0, 1))
        self.ctx = Ctx()
        cfg = PaperConfig(
            maker_fee_rate=MAKER,
            taker_fee_rate=TAKER,
            latency_ms=5.0,
            balances=balances or {"USD": D("10000"), "BTC": D("1")},
        )
        self.broker = PaperBroker(
            VENUE,
            cfg,
            book=lambda s: self.book if s == SYM else None,
            instruments={SYM: instrument or Instrument(VENUE, SYM, "BTC", "USD")},
            capabilities=capabilities,
        )
        self.broker.bind(self.ctx)

    def order(
        self,
        side: Side,
        qty: str,
        price: str | None = None,
        *,
        tif: TimeInForce = TimeInForce.GTC,
        post_only: bool = False,
        stop: str | None = None,
    ) -> Order:
        if stop is None:
            kind = OrderType.MARKET if price is None else OrderType.LIMIT
        else:
            kind = OrderType.STOP_MARKET if price is None else OrderType.STOP_LIMIT
        o = Order(
            client_order_id=f"p{next(_ids)}",
            venue=VENUE,
            symbol=SYM,
            side=side,
            type=kind,
            quantity=D(qty),
            price=None if price is None else D(price),
            tif=tif,
            post_only=post_only,
            stop_price=None if stop is None else D(stop),
        )
        self.ctx.orders[o.client_order_id] = o
        return o

    def delta(
        self, bids: tuple[tuple[D, D], ...] = (), asks: tuple[tuple[D, D], ...] = ()
    ) -> BookDelta:
        d = BookDelta(VENUE, SYM, bids, asks, None, 0, 1)
        assert self.book.apply_delta(d)
        self.broker.on_book(d)
        return d

    def trade(self, price: str, size: str) -> None:
        self.broker.on_trade(PublicTrade(VENUE, SYM, D(price), D(size), None, None, None, 0, 1))


async def final_state(s: Setup, o: Order) -> tuple[OrderStatus | None, D | None]:
    """What `query_order` answers about `o`: its status and cumulative fills."""
    report = await s.broker.query_order(o)
    assert report is not None
    assert report.venue_order_id == f"paper-{o.client_order_id}"
    return report.status, report.cum_qty


# --- taking ---------------------------------------------------------------------------------------


def with_manager(s: Setup, publish: Any) -> OrderManager:
    """The broker wired to a real OrderManager: reports go through the manager's bookkeeping."""
    om = OrderManager(Journal(":memory:"), publish)
    om.add_client(VENUE, s.broker)
    om.add_instruments({SYM: Instrument(VENUE, SYM, "BTC", "USD")})

    class ManagerCtx(Ctx):
        def on_report(self, report: ExecutionReport) -> None:
            self.reports.append(report)
            om.on_execution(report)

    s.ctx = ManagerCtx()
    s.broker.bind(s.ctx)
    return om


async def test_market_order_walks_levels_at_taker_fee(autojump_clock: MockClock) -> None:
    s = Setup()
    o = s.order(Side.BUY, "2.5")
    start = trio.current_time()
    assert await s.broker.submit(o) is None
    assert trio.current_time() - start == pytest.approx(0.005)  # the configured latency
    first = s.ctx.reports[0]
    assert (first.status, first.venue_order_id) == (S.ACCEPTED, f"paper-{o.client_order_id}")
    assert s.ctx.fills() == [
        (D("100"), D("1"), Liquidity.TAKER),
        (D("101"), D("1.5"), Liquidity.TAKER),
    ]
    fills = [r for r in s.ctx.reports if r.fill_qty is not None]
    assert [r.fee for r in fills] == [D("100") * TAKER, D("151.5") * TAKER]
    assert all(r.fee_asset == "USD" for r in fills)
    assert len({r.fill_id for r in fills}) == 2
    assert s.ctx.statuses() == [(S.ACCEPTED, None)]  # fully filled: no cancel of a remainder
    fees = D("251.5") * TAKER
    assert s.broker.balances == {"USD": D("10000") - D("251.5") - fees, "BTC": D("3.5")}
    last_balances = {b.asset: b.free for b in s.ctx.published if isinstance(b, Balance)}
    assert last_balances == s.broker.balances


async def test_market_order_larger_than_book_cancels_the_rest(autojump_clock: MockClock) -> None:
    s = Setup(balances={"USD": D("10000"), "BTC": D("6")})
    o = s.order(Side.SELL, "6")
    await s.broker.submit(o)
    assert s.ctx.fills() == [
        (D("99"), D("2"), Liquidity.TAKER),
        (D("98"), D("3"), Liquidity.TAKER),
    ]
    assert s.ctx.statuses()[-1] == (S.CANCELLED, "unfilled remainder of an immediate order")
    assert s.broker.balances["BTC"] == D("1")  # 5 of the 6 sold


async def test_limit_crossing_takes_up_to_its_price_then_rests(autojump_clock: MockClock) -> None:
    s = Setup()
    o = s.order(Side.BUY, "4", "101")
    await s.broker.submit(o)
    assert s.ctx.fills() == [
        (D("100"), D("1"), Liquidity.TAKER),
        (D("101"), D("2"), Liquidity.TAKER),
    ]
    assert s.ctx.statuses() == [(S.ACCEPTED, None)]
    assert o.remaining == D("1")
    resting = await s.broker.query_order(o)
    assert resting is not None
    assert (resting.status, resting.cum_qty) == (S.PARTIALLY_FILLED, D("3"))
    cancelled = await s.broker.cancel(o)
    assert cancelled is not None
    assert cancelled.status is S.CANCELLED
    assert await final_state(s, o) == (S.CANCELLED, D("3"))


async def test_ioc_limit_takes_then_cancels_the_rest(autojump_clock: MockClock) -> None:
    s = Setup()
    o = s.order(Side.BUY, "4", "100", tif=TimeInForce.IOC)
    await s.broker.submit(o)
    assert s.ctx.fills() == [(D("100"), D("1"), Liquidity.TAKER)]
    assert s.ctx.statuses()[-1][0] is S.CANCELLED
    assert await final_state(s, o) == (S.CANCELLED, D("1"))


async def test_post_only_crossing_is_refused(autojump_clock: MockClock) -> None:
    s = Setup()
    o = s.order(Side.BUY, "1", "100", post_only=True)
    with pytest.raises(OrderRefused, match="post-only"):
        await s.broker.submit(o)
    assert s.ctx.reports == []
    assert await s.broker.query_order(o) is None  # refused: the venue never had it
    # not crossing: it rests
    o2 = s.order(Side.BUY, "1", "99.5", post_only=True)
    await s.broker.submit(o2)
    assert s.ctx.statuses() == [(S.ACCEPTED, None)]
    assert await final_state(s, o2) == (S.ACCEPTED, D("0"))


async def test_fok_not_fillable_cancels_without_fills(autojump_clock: MockClock) -> None:
    s = Setup()
    o = s.order(Side.BUY, "3.5", "101", tif=TimeInForce.FOK)  # only 3 at or below 101
    await s.broker.submit(o)
    assert s.ctx.fills() == []
    assert s.ctx.statuses() == [(S.ACCEPTED, None), (S.CANCELLED, "FOK not fully fillable")]
    assert await final_state(s, o) == (S.CANCELLED, D("0"))
    assert s.broker.balances == {"USD": D("10000"), "BTC": D("1")}


async def test_fok_fillable_fills_completely(autojump_clock: MockClock) -> None:
    s = Setup()
    o = s.order(Side.BUY, "3", "101", tif=TimeInForce.FOK)
    await s.broker.submit(o)
    assert sum(q for _, q, _ in s.ctx.fills()) == D("3")
    assert [st for st, _ in s.ctx.statuses()] == [S.ACCEPTED]


async def test_no_synced_book_refuses(autojump_clock: MockClock) -> None:
    s = Setup()
    s.book.mark_stale("quiet")
    with pytest.raises(OrderRefused, match="no synced book"):
        await s.broker.submit(s.order(Side.BUY, "1"))
    assert s.ctx.reports == []


# --- resting --------------------------------------------------------------------------------------


async def resting_buy(s: Setup, qty: str = "1", price: str = "99") -> Order:
    o = s.order(Side.BUY, qty, price)
    await s.broker.submit(o)
    assert s.ctx.fills(o.client_order_id) == []
    return o


async def test_trade_at_price_consumes_queue_ahead_first(autojump_clock: MockClock) -> None:
    s = Setup()
    o = await resting_buy(s)  # joins behind the 2 displayed at 99
    s.trade("99", "1.5")
    assert s.ctx.fills() == []  # 0.5 still ahead of us
    s.trade("99", "1")
    assert s.ctx.fills() == [(D("99"), D("0.5"), Liquidity.MAKER)]
    (fill,) = [r for r in s.ctx.reports if r.fill_qty is not None]
    assert fill.fee == D("99") * D("0.5") * MAKER
    s.trade("99", "5")
    assert s.ctx.fills()[-1] == (D("99"), D("0.5"), Liquidity.MAKER)
    assert o.remaining == 0
    # done, no longer resting; asked about it, the venue still says how it ended
    assert await final_state(s, o) == (S.FILLED, D("1"))
    s.trade("99", "5")
    assert len(s.ctx.fills()) == 2


async def test_trades_at_other_prices_do_not_fill(autojump_clock: MockClock) -> None:
    s = Setup()
    await resting_buy(s)
    s.trade("99.5", "10")  # above our bid: not ours
    s.trade("100", "10")
    assert s.ctx.fills() == []


async def test_trade_through_fills_at_our_price(autojump_clock: MockClock) -> None:
    s = Setup()
    o = await resting_buy(s, qty="1")
    s.trade("98.5", "0.4")  # printed below our bid: we would have been hit first
    assert s.ctx.fills() == [(D("99"), D("0.4"), Liquidity.MAKER)]
    s.trade("97", "3")
    assert s.ctx.fills()[-1] == (D("99"), D("0.6"), Liquidity.MAKER)
    assert o.remaining == 0


async def test_resting_sell_fills_on_trade_through(autojump_clock: MockClock) -> None:
    s = Setup()
    o = s.order(Side.SELL, "1", "100.5")
    await s.broker.submit(o)
    s.trade("100", "5")  # below our offer: not ours
    assert s.ctx.fills() == []
    s.trade("100.75", "0.25")
    assert s.ctx.fills() == [(D("100.5"), D("0.25"), Liquidity.MAKER)]


async def test_book_crossing_resting_order_fills_it(autojump_clock: MockClock) -> None:
    s = Setup()
    o = await resting_buy(s, qty="1")
    # the 99 bid goes and an ask appears at our price
    s.delta(bids=levels(("99", "0")), asks=levels(("99", "0.7")))
    assert s.ctx.fills() == [(D("99"), D("0.7"), Liquidity.MAKER)]
    assert o.remaining == D("0.3")
    assert await s.broker.query_order(o) is not None
    s.delta(asks=levels(("98.5", "2")))  # traded through: fills the rest at our price
    assert s.ctx.fills()[-1] == (D("99"), D("0.3"), Liquidity.MAKER)
    assert await final_state(s, o) == (S.FILLED, D("1"))


async def test_shrinking_level_moves_us_up_the_queue(autojump_clock: MockClock) -> None:
    s = Setup()
    await resting_buy(s)  # 2 ahead
    s.delta(bids=levels(("99", "0.5")))  # cancels ahead of us: at most 0.5 left ahead
    s.trade("99", "0.5")
    assert s.ctx.fills() == []
    s.trade("99", "0.3")
    assert s.ctx.fills() == [(D("99"), D("0.3"), Liquidity.MAKER)]


async def test_cancel_of_non_resting_order_raises(autojump_clock: MockClock) -> None:
    s = Setup()
    with pytest.raises(OrderNotFound):
        await s.broker.cancel(s.order(Side.BUY, "1", "99"))  # never submitted
    filled = s.order(Side.BUY, "1")
    await s.broker.submit(filled)
    with pytest.raises(OrderNotFound):
        await s.broker.cancel(filled)  # market order: never rested
    o = await resting_buy(s)
    await s.broker.cancel(o)
    with pytest.raises(OrderNotFound):
        await s.broker.cancel(o)  # cancelled already


async def test_cancel_all_reports_each_resting_order(autojump_clock: MockClock) -> None:
    s = Setup()
    a = await resting_buy(s)
    b = await resting_buy(s, price="98")
    await s.broker.cancel_all(SYM)
    cancelled = {r.client_order_id for r in s.ctx.reports if r.status is S.CANCELLED}
    assert cancelled == {a.client_order_id, b.client_order_id}
    assert await final_state(s, a) == (S.CANCELLED, D("0"))


# --- through the real order manager ---------------------------------------------------------------


async def test_paper_fills_reach_the_order_manager(autojump_clock: MockClock) -> None:
    s = Setup()
    events: list[Any] = []
    om = with_manager(s, events.append)
    async with trio.open_nursery() as nursery:
        await nursery.start(om.run)
        handle = om.submit(
            venue=VENUE, symbol=SYM, side=Side.BUY, quantity=D("2"), type=OrderType.MARKET
        )
        with trio.fail_after(60):
            order = await handle.done()
        nursery.cancel_scope.cancel()
    assert order.status is S.FILLED
    assert order.filled_qty == D("2")
    assert order.avg_price == D("100.5")  # 1 @ 100, 1 @ 101
    assert order.fees == (D("100") + D("101")) * TAKER
    assert isinstance(events[-1], OrderFilled)


async def test_cancel_that_loses_the_race_with_the_last_fill_leaves_the_order_filled(
    autojump_clock: MockClock,
) -> None:
    # the cancel is on its way (paper latency) when a trade fills the resting order: the
    # broker refuses the cancel, the manager asks what became of the order, and the answer
    # must be FILLED (it was "never heard of it", which tried to turn FILLED into UNKNOWN)
    s = Setup()
    events: list[Any] = []
    om = with_manager(s, events.append)
    async with trio.open_nursery() as nursery:
        await nursery.start(om.run)
        handle = om.submit(venue=VENUE, symbol=SYM, side=Side.BUY, quantity=D("1"), price=D("99"))
        with trio.fail_after(60):
            while handle.order.status is not S.ACCEPTED:
                await trio.sleep(0.001)
        assert om.cancel(handle.client_order_id)
        await trio.sleep(0.001)  # the cancel has left; the broker is sleeping its latency
        s.trade("99", "5")  # 2 ahead of us, then our 1
        assert handle.order.status is S.FILLED
        with trio.fail_after(60):
            while om.counts["reconciled"] == 0:
                await trio.sleep(0.001)
        nursery.cancel_scope.cancel()
    assert handle.order.status is S.FILLED
    assert handle.order.filled_qty == D("1")
    assert om.counts["impossible_transitions"] == 0


async def test_rested_remainder_does_not_refill_against_liquidity_it_already_took(
    autojump_clock: MockClock,
) -> None:
    s = Setup()
    o = s.order(Side.BUY, "4", "101")
    await s.broker.submit(o)  # takes 1 @ 100 and 2 @ 101, rests 1 @ 101
    taken = len(s.ctx.fills())
    # an unrelated update: the asks it took are still displayed (paper fills never leave
    # the real feed), and must not fill it again
    s.delta(bids=levels(("99", "5")))
    assert len(s.ctx.fills()) == taken and o.remaining == D("1")
    # fresh liquidity at its price does: only the new part
    s.delta(asks=levels(("101", "2.5")))
    assert s.ctx.fills()[taken:] == [(D("101"), D("0.5"), Liquidity.MAKER)]
    assert o.remaining == D("0.5")


# --- stops ----------------------------------------------------------------------------------------


def test_paper_takes_every_order_type() -> None:
    assert Setup().broker.order_types == frozenset(OrderType)


async def test_stop_market_waits_for_a_trade_at_its_stop_then_takes(
    autojump_clock: MockClock,
) -> None:
    s = Setup()
    o = s.order(Side.BUY, "2", stop="101")
    await s.broker.submit(o)
    assert s.ctx.statuses() == [(S.ACCEPTED, None)]
    s.delta(asks=levels(("100", "3")))  # the book moving does not set it off: only trades do
    s.trade("100.75", "1")  # below its stop
    assert s.ctx.fills() == []
    waiting = await s.broker.query_order(o)
    assert waiting is not None and waiting.status is S.ACCEPTED
    s.trade("101", "0.5")  # at its stop: a market order now, walking the book as a taker
    assert s.ctx.fills() == [(D("100"), D("2"), Liquidity.TAKER)]
    (fill,) = [r for r in s.ctx.reports if r.fill_qty is not None]
    assert fill.fee == D("200") * TAKER
    assert s.ctx.statuses() == [(S.ACCEPTED, None)]  # filled whole: nothing left to cancel
    assert s.broker.balances == {"USD": D("10000") - D("200") - D("200") * TAKER, "BTC": D("3")}
    assert await final_state(s, o) == (S.FILLED, D("2"))
    s.trade("102", "5")
    assert len(s.ctx.fills()) == 1  # triggered once


async def test_sell_stop_market_triggers_through_its_stop_and_cancels_the_unfillable_rest(
    autojump_clock: MockClock,
) -> None:
    s = Setup(balances={"USD": D("10000"), "BTC": D("6")})
    o = s.order(Side.SELL, "6", stop="98.5")
    await s.broker.submit(o)
    s.trade("99", "1")  # above a sell stop: nothing
    s.trade("100", "1")
    assert s.ctx.fills() == []
    s.trade("98", "1")  # through it
    assert s.ctx.fills() == [
        (D("99"), D("2"), Liquidity.TAKER),
        (D("98"), D("3"), Liquidity.TAKER),
    ]
    assert s.ctx.statuses()[-1] == (S.CANCELLED, "unfilled remainder of an immediate order")


async def test_stop_limit_triggers_takes_what_crosses_and_rests_the_rest(
    autojump_clock: MockClock,
) -> None:
    s = Setup()
    o = s.order(Side.BUY, "4", "101", stop="100.5")
    await s.broker.submit(o)
    assert s.ctx.fills() == [] and s.ctx.statuses() == [(S.ACCEPTED, None)]
    # triggers; the trigger itself (below the new bid) does not fill the rested remainder
    s.trade("100.5", "3")
    assert s.ctx.fills() == [
        (D("100"), D("1"), Liquidity.TAKER),
        (D("101"), D("2"), Liquidity.TAKER),
    ]
    assert o.remaining == D("1")
    resting = await s.broker.query_order(o)
    assert resting is not None and resting.status is S.PARTIALLY_FILLED
    s.trade("101", "0.4")  # now it rests as a limit order at 101, first in its queue
    assert s.ctx.fills()[-1] == (D("101"), D("0.4"), Liquidity.MAKER)
    cancelled = await s.broker.cancel(o)  # cancel after the trigger
    assert cancelled is not None and cancelled.status is S.CANCELLED
    assert await final_state(s, o) == (S.CANCELLED, D("3.4"))
    s.trade("100", "5")
    assert o.remaining == D("0.6")


async def test_stop_limit_that_does_not_cross_when_triggered_rests_as_a_maker(
    autojump_clock: MockClock,
) -> None:
    s = Setup()
    o = s.order(Side.SELL, "1", "99", stop="99.5")  # sell: triggers at or below 99.5
    await s.broker.submit(o)
    s.delta(bids=levels(("99", "0")), asks=levels(("99.5", "1")))  # no bid at or above 99 left
    s.trade("99.5", "1")  # triggers; above its price, yet it was no sell order when it printed
    assert s.ctx.fills() == []
    assert await s.broker.query_order(o) is not None
    s.trade("99", "1")  # trades at its price now fill it: nothing displayed ahead of it
    assert s.ctx.fills() == [(D("99"), D("1"), Liquidity.MAKER)]


async def test_stop_cancelled_before_its_trigger_never_fills(autojump_clock: MockClock) -> None:
    s = Setup()
    o = s.order(Side.BUY, "1", stop="101")
    await s.broker.submit(o)
    cancelled = await s.broker.cancel(o)
    assert cancelled is not None and cancelled.status is S.CANCELLED
    s.trade("105", "10")
    assert s.ctx.fills() == []
    with pytest.raises(OrderNotFound):
        await s.broker.cancel(o)
    # cancel_all reaches waiting stops too
    a = s.order(Side.SELL, "1", stop="90")
    await s.broker.submit(a)
    await s.broker.cancel_all(SYM)
    assert s.ctx.statuses()[-1] == (S.CANCELLED, None)
    assert s.ctx.reports[-1].client_order_id == a.client_order_id
    assert await final_state(s, a) == (S.CANCELLED, D("0"))


async def test_stop_stays_armed_while_the_book_is_not_synced(autojump_clock: MockClock) -> None:
    s = Setup()
    o = s.order(Side.BUY, "1", stop="101")
    await s.broker.submit(o)
    s.book.mark_stale("quiet")
    s.trade("101", "1")  # nothing trustworthy to fill against
    assert s.ctx.fills() == []
    assert await s.broker.query_order(o) is not None
    bids, asks = levels(("99", "2")), levels(("100", "1"))
    assert s.book.apply_snapshot(BookSnapshot(VENUE, SYM, bids, asks, None, 0, 2))
    s.trade("101.5", "1")
    assert s.ctx.fills() == [(D("100"), D("1"), Liquidity.TAKER)]


async def test_paper_stop_limit_through_the_order_manager(autojump_clock: MockClock) -> None:
    s = Setup()
    accepted = trio.Event()

    def publish(event: Any) -> None:
        if isinstance(event, OrderAccepted):
            accepted.set()

    om = with_manager(s, publish)
    async with trio.open_nursery() as nursery:
        await nursery.start(om.run)
        handle = om.submit(
            venue=VENUE,
            symbol=SYM,
            side=Side.BUY,
            quantity=D("2"),
            price=D("100"),
            type=OrderType.STOP_LIMIT,
            stop_price=D("100"),
        )
        with trio.fail_after(60):
            await accepted.wait()
        assert handle.status is S.ACCEPTED and handle.order.filled_qty == 0
        s.trade("100", "1")
        assert handle.status is S.PARTIALLY_FILLED and handle.order.filled_qty == D("1")
        assert om.cancel(handle.client_order_id)
        with trio.fail_after(60):
            order = await handle.done()
        nursery.cancel_scope.cancel()
    assert order.status is S.CANCELLED and order.filled_qty == D("1")
    assert order.stop_price == D("100") and order.avg_price == D("100")


async def test_open_orders_listed_are_the_resting_orders_and_the_armed_stops(
    autojump_clock: MockClock,
) -> None:
    s = Setup()
    assert s.broker.supports_cancel_all
    a = await resting_buy(s)
    stop = s.order(Side.SELL, "1", stop="90")
    await s.broker.submit(stop)
    taken = s.order(Side.BUY, "1")  # a market order: filled at once, never listed
    await s.broker.submit(taken)
    listed = {r.client_order_id: r for r in await s.broker.list_open_orders()}
    assert set(listed) == {a.client_order_id, stop.client_order_id}
    mine = listed[a.client_order_id]
    assert (mine.symbol, mine.side, mine.price, mine.quantity) == (SYM, a.side, a.price, a.quantity)
    assert (mine.status, mine.cum_qty, mine.venue_order_id) == (
        S.ACCEPTED,
        D(0),
        f"paper-{a.client_order_id}",
    )
    assert listed[stop.client_order_id].side is Side.SELL
    await s.broker.cancel_all()
    assert await s.broker.list_open_orders() == []


# --- paper refuses what the venue refuses ------------------------------------------------------


def _venue_caps(name: str) -> Capabilities:
    from framework.venues import load_venue

    return load_venue(name).capabilities


async def test_post_only_is_refused_on_a_venue_without_post_only(autojump_clock: MockClock) -> None:
    s = Setup(capabilities=_venue_caps("powertrade"))
    with pytest.raises(OrderRefused, match="no post-only"):
        await s.broker.submit(s.order(Side.BUY, "0.1", "95", post_only=True))
    assert s.ctx.reports == []  # never accepted, never resting
    # the same order without post-only is taken, as the venue takes it
    await s.broker.submit(s.order(Side.BUY, "0.1", "95"))
    assert s.ctx.statuses() == [(S.ACCEPTED, None)]


async def test_modify_follows_the_venue(autojump_clock: MockClock) -> None:
    refuses = Setup(capabilities=_venue_caps("paxos"))
    o = refuses.order(Side.BUY, "0.1", "95")
    await refuses.broker.submit(o)
    with pytest.raises(OrderRefused, match="does not support modifying"):
        await refuses.broker.modify(o, D("96"), None)
    # Open Trade has MODIFY: paper amends the resting order
    takes = Setup(capabilities=_venue_caps("opentrade"))
    o = takes.order(Side.BUY, "0.1", "95")
    await takes.broker.submit(o)
    report = await takes.broker.modify(o, D("96"), D("0.2"))
    assert report is not None and (report.price, report.quantity) == (D("96"), D("0.2"))
    assert report.status is S.ACCEPTED


async def test_buying_more_than_the_quote_balance_is_refused(autojump_clock: MockClock) -> None:
    s = Setup(balances={"USD": D("10"), "BTC": D("0")})
    with pytest.raises(OrderRefused, match=r"insufficient funds: .* USD needed, 10 available"):
        await s.broker.submit(s.order(Side.BUY, "6"))  # ~600 USD of BTC with 10 USD
    with pytest.raises(OrderRefused, match="insufficient funds"):
        await s.broker.submit(s.order(Side.BUY, "1", "95"))
    assert s.broker.balances == {"USD": D("10"), "BTC": D("0")}
    assert s.ctx.fills() == []


async def test_selling_what_the_account_does_not_hold_is_refused(autojump_clock: MockClock) -> None:
    s = Setup(balances={"USD": D("10000"), "BTC": D("0")})
    with pytest.raises(OrderRefused, match=r"0\.5 BTC to deliver, 0 available"):
        await s.broker.submit(s.order(Side.SELL, "0.5"))
    assert s.ctx.fills() == []


async def test_open_orders_reserve_what_they_may_spend(autojump_clock: MockClock) -> None:
    s = Setup(balances={"USD": D("200"), "BTC": D("1")})
    # a resting bid at 95 for 1 reserves 95 (+ fee); another such bid does not fit in 200
    await s.broker.submit(s.order(Side.BUY, "1", "95"))
    await s.broker.submit(s.order(Side.BUY, "1", "90"))
    with pytest.raises(OrderRefused, match="insufficient funds"):
        await s.broker.submit(s.order(Side.BUY, "0.2", "90"))
    # and a resting ask reserves the base it would deliver
    await s.broker.submit(s.order(Side.SELL, "0.7", "110"))
    with pytest.raises(OrderRefused, match=r"0\.5 BTC to deliver, 0\.3 available"):
        await s.broker.submit(s.order(Side.SELL, "0.5", "111"))
    locked = [b for b in s.ctx.published if isinstance(b, Balance)]
    assert locked == []  # nothing filled yet: no balance event was due


async def test_margin_venue_checks_initial_margin_as_the_venue_does(
    autojump_clock: MockClock,
) -> None:
    # Roxom: perpetuals quoted in BTC at 10x; an order needs price x qty / 10 free
    s = Setup(
        balances={"BTC": D("10")},
        capabilities=_venue_caps("roxom"),
        instrument=Instrument(VENUE, SYM, "SPY", "BTC"),
    )
    with pytest.raises(
        OrderRefused, match=r"insufficient balance: margin 10\.50 BTC above free 10 "
    ):
        await s.broker.submit(s.order(Side.BUY, "1.05", "100"))  # 105 notional, 10.5 margin
    await s.broker.submit(s.order(Side.BUY, "0.5", "100"))  # takes 0.5 @ 100: 5 margin used
    assert s.ctx.fills() == [(D("100"), D("0.5"), Liquidity.TAKER)]
    # no base asset is bought on a perpetual: the wallet only pays the fee
    assert s.broker.balances == {"BTC": D("10") - D("50") * TAKER}
    with pytest.raises(OrderRefused, match="insufficient balance"):
        await s.broker.submit(s.order(Side.BUY, "0.6", "95"))  # 5.7 more margin, ~5 free
    # reducing the position needs no margin
    await s.broker.submit(s.order(Side.SELL, "0.5", "99"))
    assert s.ctx.fills()[-1] == (D("99"), D("0.5"), Liquidity.TAKER)
    realized = (D("99") - D("100")) * D("0.5")
    fees = (D("50") + D("49.5")) * TAKER
    assert s.broker.balances == {"BTC": D("10") + realized - fees}


async def test_the_broker_says_which_markets_it_has_orders_working_in(
    autojump_clock: MockClock,
) -> None:
    # whoever feeds it market data may stop while nothing works there (the core pauses its
    # bus subscriptions): asked for a market before an order works in it, let go of it when a
    # market event finds nothing working there
    s = Setup()
    calls: list[tuple[str, bool]] = []
    s.broker.watch = lambda symbol, on: calls.append((symbol, on))
    s.trade("99", "1")
    s.delta(bids=levels(("99", "2")))
    assert calls == []  # never asked for: nothing to let go
    o = await resting_buy(s)
    assert calls == [(SYM, True)]
    s.delta(bids=levels(("99", "3")))  # an order works: watched on
    assert calls == [(SYM, True)]
    await s.broker.cancel(o)
    s.delta(bids=levels(("99", "4")))
    assert calls == [(SYM, True), (SYM, False)]
    stop = s.order(Side.BUY, "1", stop="101")
    await s.broker.submit(stop)
    s.delta(bids=levels(("99", "5")))  # no resting order, but a stop waits for trades
    assert calls == [(SYM, True), (SYM, False), (SYM, True)]
    s.trade("101", "1")  # sets it off: it takes, nothing is left working
    s.trade("101", "1")
    assert calls[-1] == (SYM, False)
