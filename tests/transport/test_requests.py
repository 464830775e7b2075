"""Request/response correlation: out-of-order replies, timeouts, unsolicited replies, failures."""

from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock

from framework.errors import ConnectionLost, NotConnected, RequestTimeout
from framework.transport.requests import Correlator, RequestChannel


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


# --- matching by whatever the venue echoes (RequestChannel over one connection) ----------------


class FakeConn:
    """What a request is sent on; `fail` makes the send raise as a closed socket does."""

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[object] = []
        self.fail = fail

    async def send(self, message: object) -> None:
        if self.fail:
            raise trio.ClosedResourceError("closed")
        self.sent.append(message)


async def _ask(channel: RequestChannel, rid: str, keys: list, out: dict, timeout_s: float = 5):
    try:
        out[rid] = await channel.request(
            {"id": rid}, request_id=rid, keys=keys, timeout_s=timeout_s
        )
    except Exception as exc:
        out[rid] = exc


async def test_a_reply_may_name_its_request_by_id_tag_or_client_order_id(
    autojump_clock: MockClock,
) -> None:
    channel = RequestChannel("v")
    channel.connected(FakeConn())
    out: dict[str, object] = {}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_ask, channel, "r1", [("user_tag", "t1")], out)
        nursery.start_soon(_ask, channel, "r2", [("client_order_id", "c2")], out)
        nursery.start_soon(_ask, channel, "r3", [], out)
        await trio.testing.wait_all_tasks_blocked()
        assert channel.correlator.in_flight() == 3
        # out of order, each by a different key
        assert channel.resolve(("client_order_id", "c2"), "accepted c2")
        assert channel.resolve("r3", "echoed r3")
        assert channel.resolve(("user_tag", "t1"), "tagged t1")
    assert out == {"r1": "tagged t1", "r2": "accepted c2", "r3": "echoed r3"}
    assert channel.correlator.in_flight() == 0


async def test_the_first_matching_message_resolves_and_later_ones_match_nothing(
    autojump_clock: MockClock,
) -> None:
    """An order's lifecycle message answers its request; the tagged reply after it (or a
    second lifecycle message) answers nothing: a request is answered once, then forgotten
    under every key it had."""
    channel = RequestChannel("v")
    channel.connected(FakeConn())
    out: dict[str, object] = {}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_ask, channel, "t1", [("client_order_id", "c1")], out)
        await trio.testing.wait_all_tasks_blocked()
        assert channel.waiting(("client_order_id", "c1"))
        assert channel.resolve_first([("cancelled", "c1"), ("client_order_id", "c1")], "acc")
        assert not channel.waiting(("client_order_id", "c1"))
        assert not channel.resolve("t1", "tagged reply, too late")
        assert not channel.resolve_first([("client_order_id", "c1")], "execution")
    assert out == {"t1": "acc"}


async def test_replies_that_name_only_command_and_channel_answer_in_order(
    autojump_clock: MockClock,
) -> None:
    channel = RequestChannel("v")
    conn = FakeConn()
    channel.connected(conn)
    out: dict[str, object] = {}
    key = ("command", "GET", "TRADE_PRIVATE")
    async with trio.open_nursery() as nursery:
        for rid in ("g1", "g2", "g3"):
            nursery.start_soon(_ask, channel, rid, [key], out)
            await trio.testing.wait_all_tasks_blocked()  # sent in this order
        assert conn.sent == [{"id": "g1"}, {"id": "g2"}, {"id": "g3"}]
        assert channel.resolve("g2", "echoed g2")  # an echoed id still picks its own request
        assert channel.resolve(key, "first anonymous")
        assert channel.resolve(key, "second anonymous")
        assert not channel.resolve(key, "nobody left")
    assert out == {"g1": "first anonymous", "g2": "echoed g2", "g3": "second anonymous"}


async def test_no_reply_is_a_request_timeout_and_the_request_is_forgotten(
    autojump_clock: MockClock,
) -> None:
    channel = RequestChannel("v")
    channel.connected(FakeConn())
    with pytest.raises(RequestTimeout):
        await channel.request({}, request_id="r1", keys=[("client_order_id", "c1")], timeout_s=2)
    assert channel.correlator.in_flight() == 0 and not channel.waiting(("client_order_id", "c1"))


async def test_a_failed_send_did_not_leave_and_is_forgotten() -> None:
    channel = RequestChannel("v")
    with pytest.raises(NotConnected):  # no connection yet
        await channel.request({}, request_id="r0", timeout_s=1)
    channel.connected(FakeConn(fail=True))
    with pytest.raises(NotConnected):
        await channel.request({}, request_id="r1", keys=[("user_tag", "t")], timeout_s=1)
    assert channel.correlator.in_flight() == 0 and not channel.waiting(("user_tag", "t"))


async def test_a_request_cancelled_while_waiting_is_forgotten_under_every_key(
    autojump_clock: MockClock,
) -> None:
    channel = RequestChannel("v")
    channel.connected(FakeConn())
    with trio.move_on_after(1):
        await channel.request({}, request_id="r1", keys=[("client_order_id", "c")], timeout_s=9)
    assert channel.correlator.in_flight() == 0 and not channel.waiting(("client_order_id", "c"))


async def test_a_new_connection_fails_the_requests_of_the_old_one(
    autojump_clock: MockClock,
) -> None:
    channel = RequestChannel("v")
    channel.connected(FakeConn())
    out: dict[str, object] = {}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_ask, channel, "r1", [("user_tag", "t1")], out)
        await trio.testing.wait_all_tasks_blocked()
        channel.connected(FakeConn())
    assert isinstance(out["r1"], ConnectionLost)
    assert channel.correlator.in_flight() == 0 and not channel.waiting(("user_tag", "t1"))
