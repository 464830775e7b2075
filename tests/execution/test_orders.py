"""OrderManager: ids, write-ahead intent, refusals, the transition table, fills, UNKNOWN and back.

Every test runs the manager inside a nursery on trio's MockClock (`autojump_clock`): time passes
only when every task is blocked, so timeouts fire at once and nothing waits for real.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal as D
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from trio.testing import MockClock

from framework.errors import OrderNotFound, OrderRefused
from framework.events import (
    ExecutionReport,
    OrderAccepted,
    OrderCancelled,
    OrderCancelRequested,
    OrderEvent,
    OrderFill,
    OrderFilled,
    OrderModified,
    OrderModifyRejected,
    OrderPartiallyFilled,
    OrderRejected,
    OrderStatus,
    OrderSubmitted,
    OrderType,
    OrderUnknown,
    Side,
    TimeInForce,
)
from framework.execution.journal import Journal
from framework.execution.orders import TRANSITIONS, ClientOrderIds, OrderHandle, OrderManager
from framework.model import Instrument, Order
from framework.strategy import Strategy
from framework.venue import ExecutionClient

S = OrderStatus
VENUE, SYM = "paxos", "BTCUSD"
INSTRUMENT = Instrument(
    VENUE,
    SYM,
    "BTC",
    "USD",
    tick=D("0.25"),
    lot=D("0.001"),
    min_qty=D("0.002"),
    max_qty=D("100"),
    min_notional=D("1"),
)
# virtual seconds (MockClock): a guard against a hang, never a synchronisation
HANG_GUARD_S = 600

Submit = Callable[[Order], Awaitable[ExecutionReport | None]]


def report(order: Order | str, **kw: Any) -> ExecutionReport:
    coid = order if isinstance(order, str) else order.client_order_id
    return ExecutionReport(VENUE, coid, **kw)


class FakeClient(ExecutionClient):
    """Records every call; each behaviour is a replaceable coroutine function."""

    venue = VENUE

    def __init__(self, max_len: int = 32) -> None:
        self.client_order_id_max_len = max_len
        self.calls: list[tuple[str, str]] = []
        self.on_submit: Submit = self.accept
        self.on_cancel: Submit = self.cancelled
        self.on_query: Submit = self.unknown

    @staticmethod
    async def accept(order: Order) -> ExecutionReport | None:
        return report(order, status=S.ACCEPTED, venue_order_id=f"v-{order.client_order_id}")

    @staticmethod
    async def cancelled(order: Order) -> ExecutionReport | None:
        return report(order, status=S.CANCELLED)

    @staticmethod
    async def unknown(order: Order) -> ExecutionReport | None:
        return None

    @staticmethod
    async def no_answer(order: Order) -> ExecutionReport | None:
        return None

    async def submit(self, order: Order) -> ExecutionReport | None:
        self.calls.append(("submit", order.client_order_id))
        return await self.on_submit(order)

    async def cancel(self, order: Order) -> ExecutionReport | None:
        self.calls.append(("cancel", order.client_order_id))
        return await self.on_cancel(order)

    async def cancel_all(self, symbol: str | None = None) -> None:
        self.calls.append(("cancel_all", symbol or ""))

    async def query_order(self, order: Order) -> ExecutionReport | None:
        self.calls.append(("query", order.client_order_id))
        return await self.on_query(order)

    def calls_for(self, coid: str) -> list[str]:
        return [what for what, c in self.calls if c == coid]


class Recorder:
    """The manager's `publish`: keeps events, and lets a test wait for a condition on them."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self._waiters: list[tuple[Callable[[], bool], trio.Event]] = []

    def __call__(self, event: Any) -> None:
        self.events.append(event)
        for predicate, done in self._waiters:
            if predicate():
                done.set()

    async def until(self, predicate: Callable[[], bool]) -> None:
        if predicate():
            return
        done = trio.Event()
        self._waiters.append((predicate, done))
        with trio.fail_after(HANG_GUARD_S):
            await done.wait()

    async def until_status(self, order: Order | OrderHandle, status: OrderStatus) -> None:
        target = order.order if isinstance(order, OrderHandle) else order
        await self.until(lambda: target.status is status)

    def of(self, coid: str) -> list[OrderEvent]:
        return [e for e in self.events if e.client_order_id == coid]

    def types(self, coid: str) -> list[type]:
        return [type(e) for e in self.of(coid)]


class Harness:
    def __init__(self, journal: Journal, client: FakeClient | None, timeout_s: float) -> None:
        self.journal = journal
        self.client = client or FakeClient()
        self.events = Recorder()
        ticks = itertools.count(1_000)
        self.om = OrderManager(
            journal,
            self.events,
            request_timeout_s=timeout_s,
            reconcile_interval_s=2.0,
            clock_ns=lambda: next(ticks),
        )
        self.om.add_client(VENUE, self.client)
        self.om.add_instruments({SYM: INSTRUMENT})

    def buy(self, qty: str = "1", price: str | None = "100", **kw: Any) -> OrderHandle:
        return self.om.submit(
            venue=kw.pop("venue", VENUE),
            symbol=kw.pop("symbol", SYM),
            side=Side.BUY,
            quantity=D(qty),
            price=None if price is None else D(price),
            strategy="t",
            **kw,
        )

    async def accepted(self, qty: str = "1", price: str = "100") -> Order:
        handle = self.buy(qty, price)
        await self.events.until_status(handle, S.ACCEPTED)
        return handle.order


async def done(handle: OrderHandle) -> Order:
    """`handle.done()`, failing (in virtual time) instead of hanging if it never finishes."""
    with trio.fail_after(HANG_GUARD_S):
        return await handle.done()


@asynccontextmanager
async def running(
    journal: Journal | None = None, *, client: FakeClient | None = None, timeout_s: float = 5.0
) -> AsyncIterator[Harness]:
    h = Harness(journal or Journal(":memory:"), client, timeout_s)
    async with trio.open_nursery() as nursery:
        await nursery.start(h.om.run)
        try:
            yield h
        finally:
            nursery.cancel_scope.cancel()


# --- client order ids -----------------------------------------------------------------------------


def test_client_order_ids_unique_and_bounded() -> None:
    ids = ClientOrderIds()
    full = [ids.next(32) for _ in range(500)]
    assert len(set(full)) == 500
    assert all(c.startswith("br") and len(c) <= 32 for c in full)
    short = [ids.next(10) for _ in range(2_000)]
    assert len(set(short)) == 2_000
    assert all(len(c) <= 10 for c in short)
    # two generators (two processes) do not collide either
    other = ClientOrderIds()
    assert not {other.next(32) for _ in range(500)} & set(full)


async def test_submitted_ids_unique_and_within_client_limit(autojump_clock: MockClock) -> None:
    async with running(client=FakeClient(max_len=12)) as h:
        handles = [h.buy() for _ in range(100)]
        coids = [x.client_order_id for x in handles]
        assert len(set(coids)) == 100
        assert all(len(c) <= 12 for c in coids)
        await h.events.until(lambda: all(x.status is S.ACCEPTED for x in handles))
        assert sorted(c for what, c in h.client.calls if what == "submit") == sorted(coids)


# --- write-ahead intent ---------------------------------------------------------------------------


async def test_request_leaves_only_once_its_intent_is_on_disk(autojump_clock: MockClock) -> None:
    disk = trio.Event()
    waited: list[int] = []

    async def durable(intent: int) -> None:
        await disk.wait()
        waited.append(intent)

    async with running() as h:
        h.journal.durable = durable  # type: ignore[method-assign]
        first, second = h.buy("0.5", "100.25"), h.buy("0.5", "100.00")
        await trio.testing.wait_all_tasks_blocked()
        assert h.client.calls == []  # journaled, not yet durable: nothing has left
        assert first.status is S.PENDING and second.status is S.PENDING
        disk.set()
        await h.events.until(lambda: first.status is S.ACCEPTED and second.status is S.ACCEPTED)
        assert sorted(waited) == [1, 2]
        assert sorted(c for what, c in h.client.calls if what == "submit") == sorted(
            [first.client_order_id, second.client_order_id]
        )


async def test_an_intent_the_disk_refuses_never_leaves(autojump_clock: MockClock) -> None:
    async def durable(intent: int) -> None:
        raise OSError(5, "Input/output error")

    async with running() as h:
        h.journal.durable = durable  # type: ignore[method-assign]
        handle = h.buy("0.5", "100.25")
        await h.events.until_status(handle, S.REJECTED)
        assert "journal fsync failed" in handle.order.reason
        assert h.client.calls == []
        # the manager carries on: the next order is sent once the disk is back
        del h.journal.durable
        ok = h.buy("0.5", "100.00")
        await h.events.until_status(ok, S.ACCEPTED)


async def test_submit_reaches_the_client_in_one_step_of_its_task(
    autojump_clock: MockClock,
) -> None:
    # from the strategy's buy() to the venue client, the spawned send task runs once: no
    # scheduler pass in between lets other runnable tasks (a session's backlog) go first
    steps: Counter[trio.lowlevel.Task] = Counter()

    class Steps(trio.abc.Instrument):
        def before_task_step(self, task: trio.lowlevel.Task) -> None:
            steps[task] += 1

    seen: list[int] = []

    async def submit(order: Order) -> ExecutionReport | None:
        seen.append(steps[trio.lowlevel.current_task()])
        return await FakeClient.accept(order)

    async with running() as h:
        h.client.on_submit = submit
        trio.lowlevel.add_instrument(Steps())
        handle = h.buy("0.5", "100.25")
        await h.events.until_status(handle, S.ACCEPTED)
    assert seen == [1]


async def test_intent_journaled_before_the_client_sees_the_order(autojump_clock: MockClock) -> None:
    seen: dict[str, Order | None] = {}

    async def submit(order: Order) -> ExecutionReport | None:
        seen[order.client_order_id] = h.journal.load(order.client_order_id)
        return await FakeClient.accept(order)

    async with running() as h:
        h.client.on_submit = submit
        handle = h.buy("0.5", "100.25")
        coid = handle.client_order_id
        # committed synchronously, before submit() returns to the strategy
        intent = h.journal.load(coid)
        assert intent is not None
        assert intent.status is S.PENDING
        assert h.client.calls == []
        await h.events.until_status(handle, S.ACCEPTED)
        journaled = seen[coid]
        assert journaled is not None
        assert journaled.quantity == D("0.5")
        assert journaled.price == D("100.25")
        assert journaled.strategy == "t"
        assert journaled.status is S.SUBMITTED
        final = h.journal.load(coid)
        assert final is not None
        assert final.status is S.ACCEPTED
        assert final.venue_order_id == f"v-{coid}"


# --- refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"venue": "nowhere"}, "takes no orders"),
        ({"qty": "0"}, "quantity must be positive"),
        ({"qty": "-1"}, "quantity must be positive"),
        ({"price": None}, "limit order needs a price"),
        ({"price": "0"}, "price must be positive"),
        ({"price": "100.1"}, "not a multiple of tick"),
        ({"qty": "1.0005"}, "not a multiple of lot"),
        ({"qty": "0.001"}, "below minimum"),
        ({"qty": "101"}, "above maximum"),
        ({"symbol": "DOGEUSD"}, "unknown symbol"),
        ({"type": OrderType.MARKET, "price": None, "post_only": True}, "post-only"),
        ({"tif": TimeInForce.GTD}, "expire_at_ns"),
        ({"qty": "0.002", "price": "0.25"}, "notional below minimum"),
    ],
)
async def test_refusals_never_reach_the_client(
    kw: dict[str, Any], reason: str, autojump_clock: MockClock
) -> None:
    async with running() as h:
        qty = kw.pop("qty", "1")
        price = kw.pop("price", "100")
        handle = h.buy(qty, price, **kw)
        assert handle.status is S.REJECTED
        assert handle.order.reason is not None
        assert reason in handle.order.reason
        with trio.fail_after(1):
            assert await handle.done() is handle.order  # already final
        await trio.testing.wait_all_tasks_blocked()
        assert h.client.calls == []
        assert h.journal.load(handle.client_order_id) is None
        (event,) = h.events.of(handle.client_order_id)
        assert isinstance(event, OrderRejected)
        assert reason in event.reason
        assert h.om.counts["refused"] == 1
        assert h.om.counts["submitted"] == 0


class StopClient(FakeClient):
    """A venue that takes stop orders too."""

    order_types = frozenset(OrderType)


STOP = {"type": OrderType.STOP_MARKET, "price": None, "stop_price": D("100")}


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        # the venue lists no stop types (FakeClient keeps the default LIMIT / MARKET)
        ({**STOP, "client": FakeClient()}, "does not take STOP_MARKET orders"),
        (
            {**STOP, "type": OrderType.STOP_LIMIT, "price": "101", "client": FakeClient()},
            "does not take STOP_LIMIT orders",
        ),
        ({"stop_price": D("100")}, "LIMIT order takes no stop_price"),
        ({"type": OrderType.MARKET, "price": None, "stop_price": D("100")}, "takes no stop_price"),
        ({**STOP, "stop_price": None}, "stop order needs a stop_price"),
        ({**STOP, "stop_price": D("0")}, "stop_price must be positive"),
        ({**STOP, "stop_price": D("-100")}, "stop_price must be positive"),
        ({**STOP, "stop_price": D("NaN")}, "stop_price must be a finite Decimal"),
        ({**STOP, "stop_price": D("Infinity")}, "stop_price must be a finite Decimal"),
        ({**STOP, "stop_price": 100.0}, "stop_price must be a finite Decimal"),
        ({**STOP, "stop_price": D("100.1")}, "stop_price 100.1 is not a multiple of tick"),
        ({**STOP, "type": OrderType.STOP_LIMIT}, "stop-limit order needs a price"),
        ({**STOP, "type": OrderType.STOP_LIMIT, "price": "0"}, "price must be positive"),
        ({**STOP, "price": "100", "post_only": True}, "post-only needs a limit order"),
        (
            {**STOP, "type": OrderType.STOP_LIMIT, "price": "100", "post_only": True},
            "post-only needs a limit order",
        ),
        # a stop market's notional is estimated at its trigger
        ({**STOP, "qty": "0.002", "stop_price": D("0.25")}, "notional below minimum"),
    ],
)
async def test_stop_refusals_never_reach_the_client(
    kw: dict[str, Any], reason: str, autojump_clock: MockClock
) -> None:
    client = kw.pop("client", None) or StopClient()
    async with running(client=client) as h:
        handle = h.buy(kw.pop("qty", "1"), kw.pop("price", "100"), **kw)
        assert handle.status is S.REJECTED
        assert reason in (handle.order.reason or "")
        await trio.testing.wait_all_tasks_blocked()
        assert h.client.calls == []
        assert h.journal.load(handle.client_order_id) is None
        (event,) = h.events.of(handle.client_order_id)
        assert isinstance(event, OrderRejected) and reason in event.reason


@pytest.mark.parametrize(
    ("kind", "price"), [(OrderType.STOP_MARKET, None), (OrderType.STOP_LIMIT, "101")]
)
async def test_stop_order_reaches_a_venue_that_takes_it_with_its_trigger_journaled(
    kind: OrderType, price: str | None, autojump_clock: MockClock
) -> None:
    seen: list[Order] = []

    async def submit(order: Order) -> ExecutionReport | None:
        seen.append(order)
        return await FakeClient.accept(order)

    async with running(client=StopClient()) as h:
        h.client.on_submit = submit
        handle = h.buy("1", price, type=kind, stop_price=D("100.25"))
        await h.events.until_status(handle, S.ACCEPTED)
        (sent,) = seen
        assert (sent.type, sent.stop_price) == (kind, D("100.25"))
        assert sent.price == (None if price is None else D(price))
        journaled = h.journal.load(handle.client_order_id)
        assert journaled is not None
        assert (journaled.type, journaled.stop_price) == (kind, D("100.25"))


async def test_strategy_buy_and_sell_with_stop_price_place_stop_orders(
    autojump_clock: MockClock,
) -> None:
    async with running(client=StopClient()) as h:
        strategy = Strategy()
        strategy._ctx = SimpleNamespace(  # type: ignore[assignment]
            submit=lambda **kw: h.om.submit(strategy=strategy.name, **kw)
        )
        stop_market = strategy.buy(VENUE, SYM, D("1"), stop_price=D("101"))
        stop_limit = strategy.sell(VENUE, SYM, D("1"), D("98"), stop_price=D("99"))
        market = strategy.buy(VENUE, SYM, D("1"))
        handles = (stop_market, stop_limit, market)
        await h.events.until(lambda: all(x.status is S.ACCEPTED for x in handles))
        assert all(h.client.calls_for(x.client_order_id) == ["submit"] for x in handles)
        got = [(x.order.type, x.order.price, x.order.stop_price, x.order.tif) for x in handles]
        assert got == [
            # a stop's GTC covers its wait for the trigger (a plain market order is IOC)
            (OrderType.STOP_MARKET, None, D("101"), TimeInForce.GTC),
            (OrderType.STOP_LIMIT, D("98"), D("99"), TimeInForce.GTC),
            (OrderType.MARKET, None, None, TimeInForce.IOC),
        ]
        assert all(x.order.strategy == strategy.name for x in (stop_market, stop_limit))


async def test_risk_refusal_is_a_rejection_with_its_reason(autojump_clock: MockClock) -> None:
    class NoRisk:
        def check(self, order: Order) -> str | None:
            return "kill switch engaged: test"

    async with running() as h:
        h.om.risk = NoRisk()
        handle = h.buy()
        assert handle.status is S.REJECTED
        assert handle.order.reason == "kill switch engaged: test"
        await trio.testing.wait_all_tasks_blocked()
        assert h.client.calls == []


def test_submit_needs_a_running_manager() -> None:
    h = Harness(Journal(":memory:"), None, 1.0)
    with pytest.raises(RuntimeError, match="not running"):
        h.buy()


# --- lifecycle and events -------------------------------------------------------------------------


async def test_events_published_in_lifecycle_order(autojump_clock: MockClock) -> None:
    async with running() as h:
        order = await h.accepted("1", "100")
        coid = order.client_order_id
        h.om.on_execution(report(order, fill_id="f1", fill_qty=D("0.4"), fill_price=D("100")))
        h.om.on_execution(
            report(order, status=S.FILLED, fill_id="f2", fill_qty=D("0.6"), fill_price=D("100"))
        )
        assert h.events.types(coid) == [
            OrderSubmitted,
            OrderAccepted,
            OrderPartiallyFilled,
            OrderFilled,
        ]
        statuses = [e.status for e in h.events.of(coid)]
        assert statuses == [S.SUBMITTED, S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED]
        assert all(e.venue_order_id == f"v-{coid}" for e in h.events.of(coid)[1:])
        assert h.om.counts["impossible_transitions"] == 0
        assert order not in h.om.open_orders()


async def test_report_found_by_venue_order_id(autojump_clock: MockClock) -> None:
    async with running() as h:
        order = await h.accepted()
        h.om.on_execution(
            ExecutionReport(
                VENUE, "", venue_order_id=f"v-{order.client_order_id}", status=S.CANCELLED
            )
        )
        assert order.status is S.CANCELLED
        h.om.on_execution(report("stranger", status=S.ACCEPTED))
        assert h.om.counts["reports_for_unknown_orders"] == 1


async def test_handle_done_returns_on_terminal_state(autojump_clock: MockClock) -> None:
    async with running() as h:
        handle = h.buy()
        finished: list[Order] = []

        async def wait_done() -> None:
            finished.append(await handle.done())

        with trio.fail_after(HANG_GUARD_S):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(wait_done)
                await h.events.until_status(handle, S.ACCEPTED)
                h.om.on_execution(
                    report(handle.order, fill_id="f1", fill_qty=D("0.5"), fill_price=D("100"))
                )
                await trio.testing.wait_all_tasks_blocked()
                assert finished == []  # working and partially filled are not final
                h.om.on_execution(
                    report(handle.order, fill_id="f2", fill_qty=D("0.5"), fill_price=D("100"))
                )
        assert finished == [handle.order]
        assert finished[0].status is S.FILLED


# --- the transition table -------------------------------------------------------------------------


def test_transition_table_terminal_states_are_final() -> None:
    for status in S:
        assert status in TRANSITIONS
        if status.is_terminal:
            assert TRANSITIONS[status] == frozenset()
        else:
            assert S.UNKNOWN in TRANSITIONS[status] or status is S.UNKNOWN
    assert S.FILLED in TRANSITIONS[S.CANCEL_REQUESTED]
    assert S.ACCEPTED in TRANSITIONS[S.CANCEL_REQUESTED]


@pytest.mark.parametrize(
    ("first", "late"),
    [
        # the venue said FILLED (no fill detail) and later claims the order works again
        (report("", status=S.FILLED), report("", status=S.ACCEPTED)),
        (report("", status=S.CANCELLED), report("", status=S.ACCEPTED)),
        (report("", status=S.CANCELLED), report("", status=S.EXPIRED)),
        (report("", status=S.EXPIRED), report("", status=S.CANCEL_REQUESTED)),
        (
            report("", status=S.FILLED, fill_id="f", fill_qty=D("1"), fill_price=D("100")),
            report("", status=S.CANCELLED),
        ),
    ],
)
async def test_impossible_transition_not_applied_and_counted(
    first: ExecutionReport, late: ExecutionReport, autojump_clock: MockClock
) -> None:
    async with running() as h:
        order = await h.accepted()
        coid = order.client_order_id
        h.om.on_execution(attrs.evolve(first, client_order_id=coid))
        settled = order.status
        assert settled.is_terminal
        n_events = len(h.events.of(coid))
        h.om.on_execution(attrs.evolve(late, client_order_id=coid))
        assert order.status is settled
        assert h.om.counts["impossible_transitions"] == 1
        assert len(h.events.of(coid)) == n_events  # nothing published for it
        journaled = h.journal.load(coid)
        assert journaled is not None
        assert journaled.status is settled


async def test_rejected_order_ignores_late_accept(autojump_clock: MockClock) -> None:
    async with running() as h:

        async def refuse(order: Order) -> ExecutionReport | None:
            raise OrderRefused("insufficient funds")

        h.client.on_submit = refuse
        handle = h.buy()
        await done(handle)
        h.om.on_execution(report(handle.order, status=S.ACCEPTED))
        assert handle.status is S.REJECTED
        assert h.om.counts["impossible_transitions"] == 1


async def test_fill_after_cancel_requested_is_applied(autojump_clock: MockClock) -> None:
    release = trio.Event()

    async def slow_cancel(order: Order) -> ExecutionReport | None:
        await release.wait()
        return None  # the venue confirms asynchronously

    async with running() as h:
        order = await h.accepted("1", "100")
        coid = order.client_order_id
        h.client.on_cancel = slow_cancel
        assert h.om.cancel(coid)
        await h.events.until_status(order, S.CANCEL_REQUESTED)
        # working news older than our cancel does not undo it
        h.om.on_execution(report(order, status=S.ACCEPTED))
        assert order.status is S.CANCEL_REQUESTED
        h.om.on_execution(report(order, fill_id="f1", fill_qty=D("0.25"), fill_price=D("100")))
        assert order.filled_qty == D("0.25")
        assert order.status is S.CANCEL_REQUESTED
        release.set()
        h.om.on_execution(
            report(order, status=S.FILLED, fill_id="f2", fill_qty=D("0.75"), fill_price=D("100"))
        )
        assert order.status is S.FILLED
        assert order.filled_qty == D("1")
        assert h.events.types(coid)[-3:] == [
            OrderCancelRequested,
            OrderPartiallyFilled,
            OrderFilled,
        ]
        assert h.om.counts["impossible_transitions"] == 0


# --- fills ----------------------------------------------------------------------------------------


async def test_fill_deduplicated_by_fill_id(autojump_clock: MockClock) -> None:
    async with running() as h:
        order = await h.accepted("1", "100")
        fill = report(order, fill_id="f1", fill_qty=D("0.3"), fill_price=D("99.75"), fee=D("0.01"))
        h.om.on_execution(fill)
        h.om.on_execution(fill)
        assert order.filled_qty == D("0.3")
        assert order.fees == D("0.01")
        fills = [e for e in h.events.of(order.client_order_id) if isinstance(e, OrderFill)]
        assert len(fills) == 1
        assert h.om.counts["duplicate_fills"] == 1
        assert h.om.counts["fills"] == 1


async def test_fill_dedup_survives_restart_via_journal(
    tmp_path: Path, autojump_clock: MockClock
) -> None:
    path = tmp_path / "journal.sqlite"
    async with running(Journal(path)) as h:
        order = await h.accepted("1", "100")
        coid = order.client_order_id
        first = report(order, fill_id="f1", fill_qty=D("0.4"), fill_price=D("100"))
        h.om.on_execution(first)

    # a new process: a new manager on the same journal file
    events = Recorder()
    om = OrderManager(Journal(path), events)
    (restored,) = om.restore(VENUE)
    assert restored.client_order_id == coid
    assert restored.status is S.PARTIALLY_FILLED
    assert restored.filled_qty == D("0.4")
    assert restored.venue_order_id == f"v-{coid}"
    om.on_execution(first)  # the venue replays the fill after the reconnect
    assert restored.filled_qty == D("0.4")
    assert events.events == []
    # the database refuses it even if the in-memory set were lost
    restored.fill_ids.clear()
    om.on_execution(first)
    assert restored.filled_qty == D("0.4")
    assert events.events == []
    assert om.counts["duplicate_fills"] == 2
    # a new fill is applied, and a report by venue order id finds the restored order
    om.on_execution(
        ExecutionReport(
            VENUE,
            "",
            venue_order_id=f"v-{coid}",
            fill_id="f2",
            fill_qty=D("0.6"),
            fill_price=D("101"),
        )
    )
    assert restored.filled_qty == D("1")
    assert restored.status is S.FILLED
    assert restored.avg_price == D("100.6")
    assert [type(e) for e in events.events] == [OrderFilled]


async def test_cumulative_reports_derive_fills(autojump_clock: MockClock) -> None:
    async with running() as h:
        order = await h.accepted("1", "100")
        coid = order.client_order_id
        h.om.on_execution(
            report(order, status=S.PARTIALLY_FILLED, cum_qty=D("0.3"), avg_price=D("100"))
        )
        h.om.on_execution(
            report(order, status=S.PARTIALLY_FILLED, cum_qty=D("0.5"), avg_price=D("101"))
        )
        h.om.on_execution(
            report(order, status=S.PARTIALLY_FILLED, cum_qty=D("0.5"), avg_price=D("101"))
        )  # no change: no fill
        h.om.on_execution(report(order, status=S.FILLED, cum_qty=D("1"), avg_price=D("101.5")))
        fills = [e for e in h.events.of(coid) if isinstance(e, OrderFill)]
        assert [(f.quantity, f.price) for f in fills] == [
            (D("0.3"), D("100")),
            (D("0.2"), D("102.5")),  # (0.5 * 101 - 0.3 * 100) / 0.2
            (D("0.5"), D("102")),  # (1 * 101.5 - 0.5 * 101) / 0.5
        ]
        assert [type(f) for f in fills] == [OrderPartiallyFilled, OrderPartiallyFilled, OrderFilled]
        assert order.filled_qty == D("1")
        assert order.avg_price == D("101.5")
        assert order.status is S.FILLED
        assert h.om.counts["fills"] == 3


async def test_average_price_over_partial_fills(autojump_clock: MockClock) -> None:
    async with running() as h:
        order = await h.accepted("4", "110")
        coid = order.client_order_id
        for fid, qty, price in (("a", "1", "100"), ("b", "2", "103"), ("c", "1", "106")):
            h.om.on_execution(
                report(order, fill_id=fid, fill_qty=D(qty), fill_price=D(price), fee=D("0.5"))
            )
        fills = [e for e in h.events.of(coid) if isinstance(e, OrderFill)]
        assert [(f.cum_qty, f.avg_price) for f in fills] == [
            (D("1"), D("100")),
            (D("3"), D("102")),
            (D("4"), D("103")),
        ]
        assert all(f.side is Side.BUY for f in fills)
        assert order.avg_price == D("103")
        assert order.fees == D("1.5")
        assert order.status is S.FILLED
        journaled = h.journal.load(coid)
        assert journaled is not None
        assert (journaled.filled_qty, journaled.avg_price, journaled.fees) == (
            D("4"),
            D("103"),
            D("1.5"),
        )


async def test_fill_without_price_uses_order_price_and_without_id_is_keyed_by_quantity(
    autojump_clock: MockClock,
) -> None:
    async with running() as h:
        order = await h.accepted("1", "100")
        h.om.on_execution(report(order, fill_qty=D("0.5")))
        h.om.on_execution(report(order, fill_qty=D("0.5")))
        assert order.filled_qty == D("1")
        assert order.avg_price == D("100")
        assert order.fill_ids == {f"{order.client_order_id}:0.5", f"{order.client_order_id}:1.0"}


# --- UNKNOWN and reconciliation -------------------------------------------------------------------


async def hang(order: Order) -> ExecutionReport | None:
    await trio.sleep_forever()
    raise AssertionError("unreachable")


async def test_submit_timeout_unknown_then_reconciled_to_accepted(
    autojump_clock: MockClock,
) -> None:
    async def venue_has_it(order: Order) -> ExecutionReport | None:
        return report(order, status=S.ACCEPTED, venue_order_id="v-late")

    async with running(timeout_s=0.5) as h:
        h.client.on_submit = hang
        h.client.on_query = venue_has_it
        handle = h.buy()
        coid = handle.client_order_id
        await h.events.until_status(handle, S.UNKNOWN)
        assert "TooSlowError" in (handle.order.reason or "")
        assert h.om.counts["unknown"] == 1
        await h.events.until_status(handle, S.ACCEPTED)
        assert handle.order.venue_order_id == "v-late"
        assert h.events.types(coid) == [OrderSubmitted, OrderUnknown, OrderAccepted]
        assert h.client.calls_for(coid) == ["submit", "query"]
        assert h.om.counts["reconciled"] == 1
        journaled = h.journal.load(coid)
        assert journaled is not None
        assert journaled.status is S.ACCEPTED


async def test_submit_timeout_then_not_found_is_rejected(autojump_clock: MockClock) -> None:
    async with running(timeout_s=0.5) as h:
        h.client.on_submit = hang
        h.client.on_query = FakeClient.unknown
        handle = h.buy()
        order = await done(handle)
        assert order.status is S.REJECTED
        assert order.reason is not None
        assert "not found" in order.reason
        assert h.events.types(order.client_order_id) == [
            OrderSubmitted,
            OrderUnknown,
            OrderRejected,
        ]


async def test_transport_error_unknown_then_reconciled_with_fills(
    autojump_clock: MockClock,
) -> None:
    async def broken(order: Order) -> ExecutionReport | None:
        raise ConnectionError("reset by peer")

    async def filled_there(order: Order) -> ExecutionReport | None:
        return report(order, status=S.FILLED, cum_qty=order.quantity, avg_price=D("99.5"))

    async with running() as h:
        h.client.on_submit = broken
        h.client.on_query = filled_there
        handle = h.buy("2", "100")
        order = await done(handle)
        assert order.status is S.FILLED
        assert order.filled_qty == D("2")
        assert order.avg_price == D("99.5")
        assert h.events.types(order.client_order_id) == [OrderSubmitted, OrderUnknown, OrderFilled]


async def test_reconnect_reconciliation_leaves_a_submit_in_flight_to_its_own_answer(
    autojump_clock: MockClock,
) -> None:
    # A reconnect asks the venue about open orders; one whose create is still on its way is not
    # known there yet, and "not found" must not turn it into "never arrived".
    arrived = trio.Event()
    release = trio.Event()

    async def slow_accept(order: Order) -> ExecutionReport | None:
        arrived.set()
        await release.wait()
        return await FakeClient.accept(order)

    async with running() as h:
        h.client.on_submit = slow_accept
        h.client.on_query = FakeClient.unknown  # the venue has not seen it yet
        pending = h.buy()  # its submit task has not run yet: still PENDING
        await h.om.reconcile_venue(VENUE)
        assert pending.status is S.PENDING
        await arrived.wait()
        assert pending.status is S.SUBMITTED
        await h.om.reconcile_venue(VENUE)
        assert pending.status is S.SUBMITTED
        release.set()
        await h.events.until_status(pending, S.ACCEPTED)
        assert h.client.calls_for(pending.client_order_id) == ["submit"]
        # once answered, the order is reconciled like any other
        await h.om.reconcile_venue(VENUE)
        assert h.client.calls_for(pending.client_order_id) == ["submit", "query"]


async def test_reconciliation_retries_until_the_venue_answers(autojump_clock: MockClock) -> None:
    failures = [TimeoutError("venue down"), ConnectionError("reset")]

    async def flaky(order: Order) -> ExecutionReport | None:
        if failures:
            raise failures.pop(0)
        return report(order, status=S.ACCEPTED)

    async with running(timeout_s=0.5) as h:
        h.client.on_submit = hang
        h.client.on_query = flaky
        handle = h.buy()
        await h.events.until_status(handle, S.ACCEPTED)
        assert h.client.calls_for(handle.client_order_id) == ["submit", "query", "query", "query"]
        assert h.om.counts["reconcile_errors"] == 2


async def test_order_refused_is_rejected_with_reason(autojump_clock: MockClock) -> None:
    async def refuse(order: Order) -> ExecutionReport | None:
        raise OrderRefused("insufficient funds")

    async with running() as h:
        h.client.on_submit = refuse
        order = await done(h.buy())
        assert order.status is S.REJECTED
        assert order.reason == "insufficient funds"
        events = h.events.of(order.client_order_id)
        assert [type(e) for e in events] == [OrderSubmitted, OrderRejected]
        rejected = events[-1]
        assert isinstance(rejected, OrderRejected)
        assert rejected.reason == "insufficient funds"
        assert h.om.counts["unknown"] == 0
        journaled = h.journal.load(order.client_order_id)
        assert journaled is not None
        assert (journaled.status, journaled.reason) == (S.REJECTED, "insufficient funds")


# --- cancels --------------------------------------------------------------------------------------


async def test_cancel_of_submitted_order_waits_for_the_submit(autojump_clock: MockClock) -> None:
    landed = trio.Event()
    release = trio.Event()

    async def slow_accept(order: Order) -> ExecutionReport | None:
        landed.set()
        await release.wait()
        return await FakeClient.accept(order)

    async with running() as h:
        h.client.on_submit = slow_accept
        h.client.on_cancel = FakeClient.no_answer  # the venue confirms asynchronously
        handle = h.buy()
        coid = handle.client_order_id
        await landed.wait()
        assert handle.status is S.SUBMITTED
        assert h.om.cancel(coid)
        assert not h.om.cancel(coid)  # already asked
        await trio.testing.wait_all_tasks_blocked()
        assert h.client.calls_for(coid) == ["submit"]  # not overtaking the submit
        release.set()
        await h.events.until_status(handle, S.CANCEL_REQUESTED)
        await trio.testing.wait_all_tasks_blocked()
        assert h.client.calls_for(coid) == ["submit", "cancel"]
        assert h.om.counts["impossible_transitions"] == 0
        h.om.on_execution(report(coid, status=S.CANCELLED))
        assert (await done(handle)).status is S.CANCELLED
        assert h.events.types(coid) == [
            OrderSubmitted,
            OrderAccepted,
            OrderCancelRequested,
            OrderCancelled,
        ]


async def test_cancel_of_pending_order_is_sent_once_after_the_submit(
    autojump_clock: MockClock,
) -> None:
    # submit and cancel tasks start in the same batch; trio orders a batch at random, so many
    # orders cover both orders of the two tasks
    async with running() as h:
        h.client.on_cancel = FakeClient.no_answer
        handles = []
        for _ in range(40):
            handle = h.buy()
            assert handle.status is S.PENDING
            assert h.om.cancel(handle.client_order_id)
            handles.append(handle)
        await h.events.until(lambda: all(x.status is S.CANCEL_REQUESTED for x in handles))
        await trio.testing.wait_all_tasks_blocked()
        for handle in handles:
            assert h.client.calls_for(handle.client_order_id) == ["submit", "cancel"]
        assert h.om.counts["impossible_transitions"] == 0


async def test_cancel_of_pending_order_that_the_venue_rejects_is_not_sent(
    autojump_clock: MockClock,
) -> None:
    async def refuse(order: Order) -> ExecutionReport | None:
        raise OrderRefused("no")

    async with running() as h:
        h.client.on_submit = refuse
        handle = h.buy()
        assert h.om.cancel(handle.client_order_id)
        await done(handle)
        await trio.testing.wait_all_tasks_blocked()
        assert h.client.calls_for(handle.client_order_id) == ["submit"]


@pytest.mark.parametrize("refusal", [OrderRefused("too late to cancel"), OrderNotFound("gone")])
async def test_cancel_refused_returns_to_working_then_reconciles(
    refusal: Exception, autojump_clock: MockClock
) -> None:
    async def refuse(order: Order) -> ExecutionReport | None:
        raise refusal

    async def filled_there(order: Order) -> ExecutionReport | None:
        return report(order, status=S.FILLED, cum_qty=order.quantity, avg_price=order.price)

    async with running() as h:
        order = await h.accepted("1", "100")
        coid = order.client_order_id
        h.client.on_cancel = refuse
        h.client.on_query = filled_there
        assert h.om.cancel(coid)
        await h.events.until_status(order, S.FILLED)
        assert h.events.types(coid) == [
            OrderSubmitted,
            OrderAccepted,
            OrderCancelRequested,
            OrderAccepted,
            OrderFilled,
        ]
        back = h.events.of(coid)[3]
        assert back.status is S.ACCEPTED
        assert h.client.calls_for(coid) == ["submit", "cancel", "query"]
        assert not order.cancel_pending
        assert h.om.counts["impossible_transitions"] == 0


async def test_cancel_refused_then_venue_still_working_allows_a_new_cancel(
    autojump_clock: MockClock,
) -> None:
    async def refuse(order: Order) -> ExecutionReport | None:
        raise OrderRefused("busy")

    queried = trio.Event()

    async def working(order: Order) -> ExecutionReport | None:
        queried.set()
        return report(order, status=S.ACCEPTED)

    async with running() as h:
        order = await h.accepted()
        coid = order.client_order_id
        h.client.on_cancel = refuse
        h.client.on_query = working
        assert h.om.cancel(coid)
        await queried.wait()
        await trio.testing.wait_all_tasks_blocked()
        assert order.status is S.ACCEPTED
        h.client.on_cancel = FakeClient.cancelled
        assert h.om.cancel(coid)
        assert (await done(h.om.handles[coid])).status is S.CANCELLED


async def test_cancel_transport_error_is_unknown_then_reconciled(autojump_clock: MockClock) -> None:
    async def broken(order: Order) -> ExecutionReport | None:
        raise ConnectionError("reset")

    async def cancelled_there(order: Order) -> ExecutionReport | None:
        return report(order, status=S.CANCELLED)

    async with running() as h:
        order = await h.accepted()
        coid = order.client_order_id
        h.client.on_cancel = broken
        h.client.on_query = cancelled_there
        assert h.om.cancel(coid)
        await h.events.until_status(order, S.CANCELLED)
        assert h.events.types(coid)[2:] == [OrderCancelRequested, OrderUnknown, OrderCancelled]


async def test_cancel_all_and_open_orders_filters(autojump_clock: MockClock) -> None:
    async with running() as h:
        h.client.on_cancel = FakeClient.no_answer
        a = await h.accepted()
        b = await h.accepted()
        assert set(h.om.open_orders(VENUE, SYM)) == {a, b}
        assert h.om.open_orders(VENUE, "ETHUSD") == []
        assert h.om.cancel_all(VENUE, "ETHUSD") == 0
        assert h.om.cancel_all(VENUE) == 2
        assert h.om.cancel_all(VENUE) == 0  # already asked
        await h.events.until(lambda: a.status is b.status is S.CANCEL_REQUESTED)
        assert not h.om.cancel("no-such-order")


# --- modify ---------------------------------------------------------------------------------------


class ModifyingClient(FakeClient):
    """Confirms an amendment the way a venue does: with the order's new working terms."""

    async def modify(
        self, order: Order, price: D | None, quantity: D | None
    ) -> ExecutionReport | None:
        self.calls.append(("modify", order.client_order_id))
        return report(order, price=price or order.price, quantity=quantity or order.quantity)


async def test_modify_applies_the_venue_confirmed_terms_and_journals_them(
    autojump_clock: MockClock,
) -> None:
    async with running(client=ModifyingClient()) as h:
        order = await h.accepted("1", "100")
        assert h.om.modify(order.client_order_id, price=D("99.5"), quantity=D("2"))
        await h.events.until(lambda: order.price == D("99.5"))
        assert order.quantity == D("2") and order.status is S.ACCEPTED
        (modified,) = [
            e for e in h.events.of(order.client_order_id) if isinstance(e, OrderModified)
        ]
        assert (modified.price, modified.quantity) == (D("99.5"), D("2"))
        stored = h.journal.load(order.client_order_id)
        assert (stored.price, stored.quantity) == (D("99.5"), D("2"))


async def test_modify_refused_before_it_leaves_with_bad_terms(autojump_clock: MockClock) -> None:
    async with running(client=ModifyingClient()) as h:
        order = await h.accepted("1", "100")
        order.filled_qty = D("0.5")
        assert not h.om.modify(order.client_order_id, quantity=D("0.5"))  # not above filled
        assert not h.om.modify(order.client_order_id, price=D("-1"))
        assert not h.om.modify(order.client_order_id)  # nothing to change
        assert not h.om.modify("no-such-order", price=D("1"))
        assert h.om.counts["modify_refused"] == 4
        assert "modify" not in h.client.calls_for(order.client_order_id)


async def test_modify_on_a_venue_without_it_is_refused_and_the_order_unchanged(
    autojump_clock: MockClock,
) -> None:
    async with running() as h:  # FakeClient keeps the base class's refusing `modify`
        order = await h.accepted("1", "100")
        assert h.om.modify(order.client_order_id, price=D("101"))
        await h.events.until(lambda: OrderModifyRejected in h.events.types(order.client_order_id))
        assert h.om.counts["modify_refused"] == 1
        assert order.price == D("100") and order.status is S.ACCEPTED
        (event,) = [
            e for e in h.events.of(order.client_order_id) if isinstance(e, OrderModifyRejected)
        ]
        assert "does not support" in event.reason


async def test_cumulative_fills_of_two_orders_to_the_same_amount_are_both_counted(
    autojump_clock: MockClock,
) -> None:
    # derived fill ids must be unique per venue (the journal's key), not just per order
    async with running() as h:
        first = await h.accepted("2", "100")
        second = await h.accepted("2", "100")
        for order in (first, second):
            h.om.on_execution(report(order, cum_qty=D("1"), avg_price=D("100")))
        assert first.filled_qty == second.filled_qty == D("1")
        assert h.om.counts["duplicate_fills"] == 0


async def test_cancel_requested_during_a_submit_that_ends_unknown_is_still_sent(
    autojump_clock: MockClock,
) -> None:
    client = FakeClient()
    release = trio.Event()

    async def fails_in_transport(order: Order) -> ExecutionReport | None:
        await release.wait()
        raise ConnectionError("reset by peer")

    client.on_submit = fails_in_transport
    client.on_query = FakeClient.accept  # the venue did get it
    async with running(client=client) as h:
        handle = h.buy()
        await h.events.until_status(handle, S.SUBMITTED)
        assert h.om.cancel(handle.client_order_id)  # while the submit is in flight
        release.set()
        order = await done(handle)
        assert order.status is S.CANCELLED
        assert h.client.calls_for(handle.client_order_id)[:2] == ["submit", "cancel"]


async def test_terminal_orders_beyond_the_retention_leave_memory_but_still_count(
    autojump_clock: MockClock,
) -> None:
    async with running() as h:
        h.om.retain_terminal = 2
        handles = [h.buy() for _ in range(4)]
        for handle in handles:
            await h.events.until_status(handle, S.ACCEPTED)
            h.om.cancel(handle.client_order_id)
            await done(handle)
        refused = h.buy(qty="0")
        assert refused.status is S.REJECTED
        # the two oldest cancelled orders were retired to the journal only
        assert set(h.om.orders) == {handles[3].client_order_id, refused.client_order_id}
        assert h.om.state_counts() == {"CANCELLED": 4, "REJECTED": 1}
        assert h.journal.load(handles[0].client_order_id).status is S.CANCELLED


async def test_a_cancel_that_finds_its_order_already_filled_leaves_no_lock(
    autojump_clock: MockClock,
) -> None:
    async with running() as h:
        order = await h.accepted("1", "100")
        coid = order.client_order_id
        assert h.om.cancel(coid)  # its task has not run yet
        h.om.on_execution(
            report(order, status=S.FILLED, fill_id="f1", fill_qty=D("1"), fill_price=D("100"))
        )
        await h.events.until(lambda: order.status is S.FILLED)
        await trio.testing.wait_all_tasks_blocked()
        assert h.client.calls_for(coid) == ["submit"]  # nothing left to cancel: not sent
        assert h.om._locks == {}  # one per working order only: a long session does not grow
