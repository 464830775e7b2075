"""UNKNOWN and back: reconciliation asks the venue until it knows."""

from __future__ import annotations

from decimal import Decimal as D
from types import SimpleNamespace
from typing import Any

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
    Side,
    VenueState,
    VenueStatus,
)
from framework.model import Order
from framework.risk import RiskConfig
from tests.execution.harness import (
    SYM,
    VENUE,
    FakeClient,
    Harness,
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


# --- orphans: working at the venue, unknown to this session and its journal ---------------------


def listed(coid: str, venue_id: str, **kw: Any) -> ExecutionReport:
    fields: dict[str, Any] = {
        "status": S.ACCEPTED,
        "venue_order_id": venue_id,
        "symbol": SYM,
        "side": Side.SELL,
        "price": D("101"),
        "quantity": D("2"),
        "cum_qty": D("0"),
    }
    fields.update(kw)
    return ExecutionReport(VENUE, coid, **fields)


def orphan_statuses(h: Harness) -> list[VenueStatus]:
    return [
        e
        for e in h.events.events
        if isinstance(e, VenueStatus) and e.state is VenueState.ORPHAN_ORDERS
    ]


async def test_orphans_at_the_venue_are_reported_and_cancelled(autojump_clock: MockClock) -> None:
    async with running() as h:
        # ours, working: listed by its venue id only (the venue gave no client order id)
        working = await h.accepted()
        # ours, from the journal only: finished and retired from memory, still listed
        h.om.retain_terminal = 0
        retired = await h.accepted()
        h.om.cancel(retired.client_order_id)
        await h.events.until_status(retired, S.CANCELLED)
        assert retired.client_order_id not in h.om.orders
        stranger = listed("stranger-1", "v-x")

        async def venue_lists() -> list[ExecutionReport]:
            return [
                listed("", working.venue_order_id or ""),
                listed(retired.client_order_id, "v-old"),
                stranger,
            ]

        h.client.on_list = venue_lists
        h.client.on_query = FakeClient.accept
        await h.om.reconcile_venue(VENUE)
        assert h.client.listings == 1
        assert h.client.calls_for("stranger-1") == ["cancel"]
        assert h.client.calls_for(working.client_order_id) == ["submit", "query"]
        assert working.status is S.ACCEPTED
        [status] = orphan_statuses(h)
        assert status.venue == VENUE
        assert "stranger-1" in status.reason and "v-x" in status.reason
        assert status.reason.endswith(": cancelled")
        assert (h.om.counts["orphans"], h.om.counts["orphans_cancelled"]) == (1, 1)


async def test_orphans_are_only_reported_when_cancel_orphans_is_off(
    autojump_clock: MockClock,
) -> None:
    async with running() as h:
        h.om.risk = SimpleNamespace(cfg=RiskConfig(cancel_orphans=False), check=lambda o: None)

        async def venue_lists() -> list[ExecutionReport]:
            return [listed("stranger-2", "v-y")]

        h.client.on_list = venue_lists
        found = await h.om.reconcile_orphans(VENUE)
        assert [r.client_order_id for r in found] == ["stranger-2"]
        assert h.client.calls_for("stranger-2") == []
        [status] = orphan_statuses(h)
        assert "stranger-2" in status.reason and "left working" in status.reason
        assert h.om.counts["orphans_cancelled"] == 0


async def test_an_order_listed_without_id_during_our_unanswered_submit_is_not_an_orphan(
    autojump_clock: MockClock,
) -> None:
    async with running() as h:
        h.client.on_submit = hang
        handle = h.buy()
        await h.events.until_status(handle, S.SUBMITTED)

        async def venue_lists() -> list[ExecutionReport]:
            return [listed("", "v-maybe-ours")]

        h.client.on_list = venue_lists
        assert await h.om.reconcile_orphans(VENUE) == []
        assert h.client.calls == [("submit", handle.client_order_id)]
        assert orphan_statuses(h) == []


async def test_a_failed_listing_is_counted_and_reconciliation_goes_on(
    autojump_clock: MockClock,
) -> None:
    async def broken() -> list[ExecutionReport]:
        raise ConnectionError("reset by peer")

    async with running() as h:
        order = await h.accepted()
        h.client.on_list = broken
        await h.om.reconcile_venue(VENUE)
        assert h.client.calls_for(order.client_order_id) == ["submit", "query"]
        assert h.om.counts["orphan_scan_errors"] == 1
        assert orphan_statuses(h) == []
        # asked again by the reconciliation loop until the venue answers

        async def venue_lists() -> list[ExecutionReport]:
            return [listed("stranger-3", "v-z")]

        h.client.on_list = venue_lists
        await h.events.until(lambda: bool(orphan_statuses(h)))
        assert h.client.listings == 2
        assert h.client.calls_for("stranger-3") == ["cancel"]
