"""The lifecycle: events in order, the transition table, fills (dedup, cumulative), retention."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing
from trio.testing import MockClock

from framework.errors import OrderRefused
from framework.events import (
    ExecutionReport,
    OrderAccepted,
    OrderCancelRequested,
    OrderFill,
    OrderFilled,
    OrderPartiallyFilled,
    OrderSubmitted,
    Side,
)
from framework.execution.journal import Journal
from framework.execution.lifecycle import TRANSITIONS
from framework.execution.manager import OrderManager
from framework.model import Order
from tests.execution.harness import (
    VENUE,
    Recorder,
    S,
    done,
    report,
    running,
)

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
