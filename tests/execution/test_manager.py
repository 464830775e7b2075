"""OrderManager requests: write-ahead intent, cancels, modify."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal as D

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
    OrderFilled,
    OrderModified,
    OrderModifyRejected,
    OrderSubmitted,
    OrderUnknown,
)
from framework.model import Order
from tests.execution.harness import (
    SYM,
    VENUE,
    FakeClient,
    S,
    done,
    report,
    running,
)

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
        h.om.exit_on_journal_failure = False
        h.journal.durable = durable  # type: ignore[method-assign]
        handle = h.buy("0.5", "100.25")
        await h.events.until_status(handle, S.REJECTED)
        assert "journal fsync failed" in handle.order.reason
        assert h.client.calls == []
        # a failing disk halts trading: the next order is refused before it leaves
        del h.journal.durable
        refused = h.buy("0.5", "100.00")
        assert refused.status is S.REJECTED and "trading halted" in refused.order.reason
        assert h.client.calls == [] and h.om.counts["journal_errors"] == 1


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


async def test_cancel_with_unknown_outcome_is_sent_again_when_the_order_is_found_working(
    autojump_clock: MockClock,
) -> None:
    """A cancel that met a transport error may not have reached the venue: when reconciliation
    then finds the order working, the strategy's cancel still stands and goes again (a cancel
    is safe to repeat). A cancel the venue refused is its answer: not repeated."""
    calls = 0

    async def broken_once(order: Order) -> ExecutionReport | None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("not connected: it did not leave")
        return report(order, status=S.CANCELLED)

    async def working(order: Order) -> ExecutionReport | None:
        return report(order, status=S.ACCEPTED)

    async with running() as h:
        order = await h.accepted()
        coid = order.client_order_id
        h.client.on_cancel = broken_once
        h.client.on_query = working
        assert h.om.cancel(coid)
        await h.events.until_status(order, S.CANCELLED)
        assert h.client.calls_for(coid) == ["submit", "cancel", "query", "cancel"]
        assert h.events.types(coid)[2:] == [
            OrderCancelRequested,
            OrderUnknown,
            OrderAccepted,
            OrderCancelRequested,
            OrderCancelled,
        ]
        assert h.om.counts["cancels_resent"] == 1


async def test_winding_down_cancels_again_only_what_no_cancel_is_waiting_for(
    autojump_clock: MockClock,
) -> None:
    """Each round of a shutdown or halt: a working order whose cancel was refused is cancelled
    again; one whose cancel the venue took (CANCEL_REQUESTED, the end still to come) is not
    sent another cancel every round."""

    async def refuse(order: Order) -> ExecutionReport | None:
        raise OrderRefused("busy")

    async with running() as h:
        waiting, refused = await h.accepted(), await h.accepted()
        h.client.on_cancel = FakeClient.no_answer  # the venue confirms later, on its stream
        assert h.om.cancel(waiting.client_order_id)
        await h.events.until_status(waiting, S.CANCEL_REQUESTED)
        h.client.on_cancel = refuse
        h.client.on_query = FakeClient.accept
        assert h.om.cancel(refused.client_order_id)
        coid = refused.client_order_id
        await h.events.until(lambda: OrderCancelRequested in h.events.types(coid))
        await trio.testing.wait_all_tasks_blocked()  # refused, then asked about: still working
        assert h.client.calls_for(refused.client_order_id) == ["submit", "cancel", "query"]
        assert refused.status is S.ACCEPTED and not waiting.cancel_pending
        h.client.on_cancel = FakeClient.cancelled
        for _ in range(3):
            h.om.cancel_open_again()
            await trio.testing.wait_all_tasks_blocked()
        assert refused.status is S.CANCELLED
        assert h.client.calls_for(waiting.client_order_id).count("cancel") == 1
        assert waiting.status is S.CANCEL_REQUESTED


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


# --- cancel everything: the venue's bulk cancel where it has one --------------------------------


async def test_cancel_all_sends_one_bulk_cancel_and_every_order_ends_cancelled(
    autojump_clock: MockClock,
) -> None:
    client = FakeClient()
    client.supports_cancel_all = True
    async with running(client=client) as h:
        orders = [await h.accepted() for _ in range(3)]
        release = trio.Event()

        async def slow_submit(order: Order) -> ExecutionReport | None:
            await release.wait()
            return await FakeClient.accept(order)

        client.on_submit = slow_submit
        in_flight = h.buy()
        await h.events.until_status(in_flight, S.SUBMITTED)

        async def bulk(symbol: str | None) -> None:
            # the venue reports the first order's end at once; the others' reports are late
            h.om.on_execution(report(orders[0], status=S.CANCELLED))

        async def venue_view(order: Order) -> ExecutionReport | None:
            return report(order, status=S.CANCELLED)

        client.on_cancel_all = bulk
        client.on_query = venue_view
        assert h.om.cancel_all(bulk=True) == 4
        for order in orders:
            await h.events.until_status(order, S.CANCELLED)
            assert OrderCancelRequested in h.events.types(order.client_order_id)
        assert [c for c in client.calls if c[0] == "cancel_all"] == [("cancel_all", "")]
        assert client.calls_for(orders[0].client_order_id) == ["submit"]
        for order in orders[1:]:
            assert client.calls_for(order.client_order_id) == ["submit", "query"]
        # the submit still in flight is cancelled on its own, once it lands
        release.set()
        assert (await done(in_flight)).status is S.CANCELLED
        assert client.calls_for(in_flight.client_order_id) == ["submit", "cancel"]
        assert h.om.counts["impossible_transitions"] == 0


async def test_cancel_all_without_a_bulk_cancel_goes_order_by_order(
    autojump_clock: MockClock,
) -> None:
    async with running() as h:
        orders = [await h.accepted() for _ in range(2)]
        assert h.om.cancel_all() == 2
        for order in orders:
            await h.events.until_status(order, S.CANCELLED)
            assert h.client.calls_for(order.client_order_id) == ["submit", "cancel"]
        assert all(what != "cancel_all" for what, _ in h.client.calls)


async def test_a_failed_bulk_cancel_falls_back_to_one_cancel_per_order(
    autojump_clock: MockClock,
) -> None:
    client = FakeClient()
    client.supports_cancel_all = True

    async def broken(symbol: str | None) -> None:
        raise ConnectionError("reset by peer")

    client.on_cancel_all = broken
    async with running(client=client) as h:
        orders = [await h.accepted() for _ in range(2)]
        assert h.om.cancel_all(VENUE, SYM, bulk=True) == 2
        for order in orders:
            await h.events.until_status(order, S.CANCELLED)
            assert client.calls_for(order.client_order_id) == ["submit", "cancel"]
        assert [c for c in client.calls if c[0] == "cancel_all"] == [("cancel_all", SYM)]
        assert h.om.counts["bulk_cancel_errors"] == 1
        assert h.om.counts["impossible_transitions"] == 0


async def test_a_strategys_cancel_all_never_uses_the_accounts_bulk_cancel(
    autojump_clock: MockClock,
) -> None:
    # a venue's bulk cancel ends every order of the account, tracked here or not: only the kill
    # switch and shutdown may send it
    client = FakeClient()
    client.supports_cancel_all = True
    async with running(client=client) as h:
        orders = [await h.accepted() for _ in range(2)]
        assert h.om.cancel_all(VENUE) == 2
        for order in orders:
            await h.events.until_status(order, S.CANCELLED)
            assert client.calls_for(order.client_order_id) == ["submit", "cancel"]
        assert all(what != "cancel_all" for what, _ in client.calls)
