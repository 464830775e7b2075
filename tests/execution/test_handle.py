"""Client order ids and the handle a strategy holds."""

from __future__ import annotations

from decimal import Decimal as D

import trio
import trio.testing
from trio.testing import MockClock

from framework.execution.handle import ClientOrderIds
from framework.model import Order
from tests.execution.harness import (
    HANG_GUARD_S,
    FakeClient,
    S,
    report,
    running,
)

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
