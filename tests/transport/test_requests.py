"""Request/response correlation: out-of-order replies, timeouts, unsolicited replies, failures."""

from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock

from framework.errors import RequestTimeout
from framework.transport.requests import Correlator


async def test_out_of_order_replies_reach_their_own_waiters(autojump_clock: MockClock) -> None:
    c = Correlator(prefix="t")
    a, b = c.new_id(), c.new_id()
    assert (a, b) == ("t1", "t2")
    c.register(a)
    c.register(b)
    got: dict[str, object] = {}

    async def wait(rid: str) -> None:
        got[rid] = await c.wait(rid, 5)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait, a)
        nursery.start_soon(wait, b)
        await trio.testing.wait_all_tasks_blocked()
        assert c.resolve(b, "reply-b") and c.resolve(a, "reply-a")
    assert got == {"t1": "reply-a", "t2": "reply-b"}
    assert c.in_flight() == 0


async def test_timeout_raises_and_a_late_reply_is_unmatched(autojump_clock: MockClock) -> None:
    c = Correlator()
    rid = c.new_id()
    c.register(rid)
    with pytest.raises(RequestTimeout):
        await c.wait(rid, 1.0)
    assert c.counts["timeouts"] == 1 and c.in_flight() == 0
    assert not c.resolve(rid, "late") and c.counts["unmatched"] == 1


async def test_fail_all_wakes_every_waiter_with_the_reason(autojump_clock: MockClock) -> None:
    c = Correlator()
    ids = [c.new_id() for _ in range(3)]
    for rid in ids:
        c.register(rid)
    results: list[object] = []

    async def wait(rid: str) -> None:
        results.append(await c.wait(rid, 5))

    async with trio.open_nursery() as nursery:
        for rid in ids:
            nursery.start_soon(wait, rid)
        await trio.testing.wait_all_tasks_blocked()
        c.fail_all(ConnectionError("closed"))
    assert len(results) == 3 and all(isinstance(r, ConnectionError) for r in results)


def test_duplicate_registration_and_id_length() -> None:
    c = Correlator(prefix="x" * 70, max_len=64)
    rid = c.new_id()
    assert len(rid) == 64 and rid.endswith("1")
    c.register(rid)
    with pytest.raises(ValueError):
        c.register(rid)


async def test_a_request_cancelled_while_sending_is_forgotten(autojump_clock: MockClock) -> None:
    c = Correlator()
    rid = c.new_id()
    with trio.move_on_after(1):
        with c.expect(rid):
            assert c.in_flight() == 1
            await trio.sleep_forever()  # a send stuck on a full socket, then a timeout
    assert c.in_flight() == 0  # not pending for the rest of the connection's life
    assert not c.resolve(rid, "late") and c.counts["unmatched"] == 1


async def test_expect_then_wait_returns_the_reply(autojump_clock: MockClock) -> None:
    c = Correlator()
    rid = c.new_id()
    with c.expect(rid):
        assert c.resolve(rid, "reply")
        assert await c.wait(rid, 5) == "reply"
    assert c.in_flight() == 0
