"""UNKNOWN and back: reconciliation asks the venue until it knows."""

from __future__ import annotations

from decimal import Decimal as D

import trio
import trio.testing
from trio.testing import MockClock

from framework.errors import OrderRefused
from framework.events import (
    ExecutionReport,
    OrderAccepted,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    OrderUnknown,
)
from framework.model import Order
from tests.execution.harness import (
    VENUE,
    FakeClient,
    S,
    done,
    report,
    running,
)

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
