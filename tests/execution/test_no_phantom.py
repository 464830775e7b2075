"""Issue #15 in the core: unreadable numbers are never booked, "not found" is not "never
arrived", working orders are re-checked, a truncated journal is refused."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from framework.errors import ConfigError
from framework.events import OrderRejected, OrderUnknown
from framework.execution.journal import MARKER_SUFFIX, Journal
from framework.model import Order
from tests.execution.harness import FakeClient, S, report, running

BAD_NUMBERS = [
    {"fill_id": "f1", "fill_qty": D("1E+400"), "fill_price": D("100")},
    {"fill_id": "f1", "fill_qty": D("NaN"), "fill_price": D("100")},
    {"fill_id": "f1", "fill_qty": D("-0.5"), "fill_price": D("100")},
    {"fill_id": "f1", "fill_qty": D("0.5"), "fill_price": D("100"), "fee": D("NaN")},
    {"fill_id": "f1", "fill_qty": D("0.5"), "fill_price": D("-100")},
    {"fill_id": "f1", "fill_qty": D("0.5"), "fill_price": D("sNaN")},
    {"fill_id": "f1", "fill_qty": D("1.5"), "fill_price": D("100")},  # above the quantity
    {"cum_qty": D("1000"), "avg_price": D("100")},  # cumulative above the quantity
    {"cum_qty": D("0.5"), "avg_price": D("Infinity")},
    {"cum_qty": D("-1")},
    {"fill_id": "f1", "fill_qty": 0.5, "fill_price": D("100")},  # a float slipped through
]


@pytest.mark.parametrize("numbers", BAD_NUMBERS, ids=[str(n) for n in range(len(BAD_NUMBERS))])
async def test_an_unreadable_report_is_not_booked_and_the_order_is_queried(
    autojump_clock: MockClock, numbers: dict[str, Any]
) -> None:
    async with running() as h:
        order = await h.accepted("1", "100")
        good = report(order, fill_id="f9", fill_qty=D("0.5"), fill_price=D("100"))

        async def query(o: Order) -> Any:
            return good

        h.client.on_query = query
        h.om.on_execution(report(order, **numbers))
        assert order.filled_qty == 0 and order.fill_ids == set()  # nothing booked
        assert h.journal.fill_ids(order.client_order_id) == set()
        assert h.om.counts["unreadable_reports"] == 1
        # the venue is asked instead, and its readable answer is booked
        await h.events.until(lambda: order.filled_qty == D("0.5"))
        assert ("query", order.client_order_id) in h.client.calls


@pytest.mark.parametrize("end", [S.FILLED, S.CANCELLED])
async def test_an_end_after_an_unreadable_report_waits_for_the_requery(
    autojump_clock: MockClock, end: S
) -> None:
    """A fill that could not be read, then the order's end (a FILLED with no fill, a cancel):
    the end is not final before the venue is asked, so the fill is not buried under it."""
    async with running() as h:
        order = await h.accepted("1", "100")

        async def query(o: Order) -> Any:
            return report(o, status=S.CANCELLED, cum_qty=D("0.5"), avg_price=D("100"))

        h.client.on_query = query
        h.om.on_execution(report(order, fill_id="f1", fill_qty=D("1E+400"), fill_price=D("100")))
        h.om.on_execution(report(order, status=end))  # the end arrives before the query
        assert order.is_open and h.om.counts["ends_held_for_requery"] == 1
        await h.events.until(lambda: order.status is S.CANCELLED)
        assert order.filled_qty == D("0.5")


async def test_an_unreadable_fill_of_an_ended_order_is_asked_for_again(
    autojump_clock: MockClock,
) -> None:
    """The venue's answer about fills we never saw, for an order already ended (cancelled
    with a fill we missed), carries an unreadable number: the fill is not lost with it; the
    venue is asked again until its answer reads."""
    async with running() as h:
        order = await h.accepted("1", "100")
        h.om.on_execution(report(order, status=S.CANCELLED))
        assert order.status is S.CANCELLED
        answered = trio.Event()

        async def query(o: Order) -> Any:
            answered.set()
            return report(o, fill_id="f1", fill_qty=D("0.3"), fill_price=D("100"))

        h.client.on_query = query
        h.om.on_execution(report(order, fill_id="f1", fill_qty=D("NaN"), fill_price=D("100")))
        assert order.filled_qty == 0 and h.om.counts["unreadable_reports"] == 1
        await h.events.until(lambda: order.filled_qty == D("0.3"))
        assert answered.is_set() and order.status is S.CANCELLED
        assert h.om.counts["ended_rechecked"] == 1 and not h.om._recheck_ended


async def test_a_late_create_is_kept_unknown_then_found(autojump_clock: MockClock) -> None:
    """ "Not found" answers keep the order UNKNOWN, asked with backoff, for the grace; the
    create lands late and the order is tracked: never REJECTED on the way."""
    async with running() as h:
        h.om.not_found_grace_s = 60.0
        landed: list[bool] = []

        async def lost(o: Order) -> Any:
            raise TimeoutError("no answer")

        async def query(o: Order) -> Any:
            if len([c for c in h.client.calls if c[0] == "query"]) < 5:
                return None
            landed.append(True)
            return report(o, status=S.ACCEPTED, venue_order_id="v1")

        h.client.on_submit = lost
        h.client.on_query = query
        handle = h.buy("1", "100")
        await h.events.until(lambda: handle.status is S.ACCEPTED)
        coid = handle.client_order_id
        assert not any(isinstance(e, OrderRejected) for e in h.events.of(coid))
        assert h.om.counts["not_found_waiting"] == 4 and landed


async def test_not_found_past_the_grace_is_rejected_then_asked_again_and_revived(
    autojump_clock: MockClock,
) -> None:
    async with running() as h:
        h.om.not_found_grace_s = 10.0
        venue_has_it = False

        async def lost(o: Order) -> Any:
            raise TimeoutError("no answer")

        async def query(o: Order) -> Any:
            return report(o, status=S.ACCEPTED, venue_order_id="v1") if venue_has_it else None

        h.client.on_submit = lost
        h.client.on_query = query
        handle = h.buy("1", "100")
        await h.events.until(lambda: handle.status is S.REJECTED)
        assert "not found at venue" in (handle.order.reason or "")
        assert h.om.counts["not_found_waiting"] >= 1  # asked more than once first
        venue_has_it = True  # ... and then it lands after all
        await h.events.until(lambda: handle.order.status is S.ACCEPTED)
        assert h.om.counts["revived"] == 1
        assert handle.order in h.om.open_orders()


async def test_working_orders_are_rechecked_periodically(autojump_clock: MockClock) -> None:
    """A lost order update cannot leave a filled order "working": it is asked for."""
    async with running() as h:
        h.om.working_check_interval_s = 30.0
        order = await h.accepted("1", "100")

        async def query(o: Order) -> Any:
            return report(o, status=S.FILLED, cum_qty=D("1"), avg_price=D("100"))

        h.client.on_query = query
        await h.events.until(lambda: order.status is S.FILLED)
        assert order.filled_qty == 1 and h.om.counts["working_checks"] >= 1


async def test_a_failed_query_keeps_a_working_order_as_it_was_and_asks_again(
    autojump_clock: MockClock,
) -> None:
    """A query that fails says nothing about the order: an ACCEPTED order with a fill stays
    PARTIALLY_FILLED (never thrown back to UNKNOWN), and is asked again until the venue
    answers."""
    async with running() as h:
        h.om.working_check_interval_s = 30.0
        order = await h.accepted("1", "100")
        h.om.on_execution(report(order, fill_id="f1", fill_qty=D("0.4"), fill_price=D("100")))
        assert order.status is S.PARTIALLY_FILLED
        failures = 0
        failed_twice = trio.Event()

        async def query(o: Order) -> Any:
            nonlocal failures
            if failures < 2:
                failures += 1
                if failures == 2:
                    failed_twice.set()
                raise TimeoutError("no answer")
            return report(o, status=S.FILLED, cum_qty=D("1"), avg_price=D("100"))

        h.client.on_query = query
        with trio.fail_after(600):
            await failed_twice.wait()
        assert order.status is S.PARTIALLY_FILLED and order.filled_qty == D("0.4")
        assert h.om.counts["reconcile_errors"] == 2 and h.om.counts["unknown"] == 0
        await h.events.until(lambda: order.status is S.FILLED)
        assert order.filled_qty == 1
        assert not any(isinstance(e, OrderUnknown) for e in h.events.of(order.client_order_id))


async def test_a_forgotten_order_that_traded_is_never_rejected(autojump_clock: MockClock) -> None:
    """The venue no longer knows an order that has fills: it did arrive, so it is never
    REJECTED ("never arrived"); it is kept UNKNOWN and asked for through the grace, then ended
    CANCELLED with its fills, and asked again later (revived if the venue knows it after all)."""
    async with running() as h:
        h.om.not_found_grace_s = 10.0
        order = await h.accepted("1", "100")
        h.om.on_execution(report(order, fill_id="f1", fill_qty=D("0.4"), fill_price=D("100")))
        venue_has_it = False

        async def query(o: Order) -> Any:
            if not venue_has_it:
                return None
            return report(o, status=S.CANCELLED, cum_qty=D("0.6"), avg_price=D("100"))

        h.client.on_query = query
        h.om._requery.add(order.client_order_id)  # as after a skipped order frame
        await h.events.until(lambda: order.status is S.CANCELLED)
        events = h.events.of(order.client_order_id)
        assert not any(isinstance(e, OrderRejected) for e in events)
        assert order.filled_qty == D("0.4") and "0.4 filled" in (order.reason or "")
        assert h.om.counts["not_found_waiting"] >= 1 and h.om.counts["not_found_with_fills"] == 1
        venue_has_it = True  # a later answer: more was filled than we knew
        await h.events.until(lambda: order.filled_qty == D("0.6"))
        await h.events.until(lambda: order.status is S.CANCELLED)
        assert h.om.counts["revived"] == 1 and h.om.state_counts() == {"CANCELLED": 1}


async def test_a_forgotten_order_the_venue_acknowledged_ends_cancelled_not_rejected(
    autojump_clock: MockClock,
) -> None:
    """No fills, but the venue gave the order its id (it acknowledged it): when the venue no
    longer knows it, it ended there; REJECTED would say it never arrived."""
    async with running() as h:
        h.om.not_found_grace_s = 10.0
        order = await h.accepted("1", "100")
        assert order.venue_order_id is not None
        h.client.on_query = FakeClient.unknown
        h.om._requery.add(order.client_order_id)  # as after a skipped order frame
        await h.events.until(lambda: order.status is S.CANCELLED)
        assert not any(isinstance(e, OrderRejected) for e in h.events.of(order.client_order_id))
        assert order.filled_qty == 0 and "inferred" in (order.reason or "")
        assert h.om.counts["not_found_acked"] == 1


# --- a truncated journal --------------------------------------------------------------------------


def _order(coid: str = "c1") -> Order:
    from framework.events import OrderType, Side

    return Order(
        client_order_id=coid,
        venue="v",
        symbol="S",
        side=Side.BUY,
        type=OrderType.LIMIT,
        quantity=D(1),
        price=D(1),
    )


@pytest.mark.parametrize("how", ["zero bytes", "deleted", "emptied"])
def test_a_journal_that_held_orders_and_is_now_empty_is_refused(tmp_path: Path, how: str) -> None:
    path = tmp_path / "journal.sqlite"
    journal = Journal(path)
    journal.record_intent(_order())
    journal.close()
    assert Path(str(path) + MARKER_SUFFIX).exists()
    for extra in ("-wal", "-shm"):
        Path(str(path) + extra).unlink(missing_ok=True)
    if how == "zero bytes":
        path.write_bytes(b"")
    elif how == "deleted":
        path.unlink()
    else:
        path.unlink()
        Journal(path, accept_empty=True).close()  # a valid but empty database in its place
    with pytest.raises(ConfigError, match="accept-empty-journal"):
        Journal(path)
    accepted = Journal(path, accept_empty=True)  # told: start as new
    assert accepted.load_open() == []
    accepted.close()


def test_a_new_journal_and_a_reopened_one_start_without_complaint(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    Journal(path).close()  # never held an order: no marker, reopening is fine
    Journal(path).close()
    journal = Journal(path)
    journal.record_intent(_order())
    journal.close()
    reopened = Journal(path)
    assert reopened.load("c1") is not None
    reopened.close()
