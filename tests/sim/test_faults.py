"""The shared fault layer (framework/sim/faults.py) on a bare SimApp over real loopback sockets."""

from __future__ import annotations

import math
import re
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import httpx
import orjson
import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from framework.sim.faults import PRESETS, FaultPlan
from framework.sim.server import HttpRequest, HttpResponse, SimApp, WsConnection, serve

GUARD = 20
ROOT = Path(__file__).resolve().parents[2]


class Feed:
    """A SimApp with one WS route whose connections the test feeds, and one HTTP route."""

    def __init__(self, plan: FaultPlan) -> None:
        self.app = SimApp()
        self.app.faults = plan
        self.conns: list[WsConnection] = []
        self.connected = trio.Event()
        self.handled = 0
        self.handled_event = trio.Event()
        self.app.ws("/feed")(self._feed)
        self.app.http("GET", "/thing")(self._thing)
        self.port = 0

    async def _feed(self, conn: WsConnection) -> None:
        self.conns.append(conn)
        self.connected.set()
        await trio.sleep_forever()

    def _thing(self, request: HttpRequest) -> HttpResponse:
        self.handled += 1
        self.handled_event.set()
        return HttpResponse(200, b'{"ok":true}')

    async def start(self, nursery: trio.Nursery) -> None:
        self.port = await nursery.start(partial(serve, self.app))

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/feed"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


FRAMES = [orjson.dumps({"n": i}).decode() for i in range(6)]


async def _exchange(plan: FaultPlan, frames: list[str] = FRAMES, **ws_kw: object) -> list[str]:
    """Send `frames` through the fault layer, then a closing marker; what the client got."""
    got, closed = await _exchange_until_closed(plan, frames, **ws_kw)
    assert closed is None, closed
    return got


async def _exchange_until_closed(
    plan: FaultPlan, frames: list[str] = FRAMES, **ws_kw: object
) -> tuple[list[str], ConnectionClosed | None]:
    got: list[str] = []
    closed = None
    async with trio.open_nursery() as nursery:
        feed = Feed(plan)
        await feed.start(nursery)
        with trio.fail_after(GUARD):
            async with open_websocket_url(feed.ws_url, **ws_kw) as ws:
                await feed.connected.wait()
                conn = feed.conns[0]
                for frame in frames:
                    conn.enqueue(frame)
                plan.enabled = False
                conn.enqueue("END")
                try:
                    while (message := await ws.get_message()) != "END":
                        got.append(message)
                except ConnectionClosed as exc:
                    closed = exc
        nursery.cancel_scope.cancel()
    return got, closed


async def test_scripted_drop_duplicate_and_reorder_change_the_stream_exactly() -> None:
    plan = FaultPlan(1)
    plan.once("drop", "/feed", after=1)  # the second frame
    plan.once("duplicate", "/feed", after=2)  # the fourth (three frames reach this rule first)
    plan.once("reorder", match=lambda text: text == FRAMES[4])  # sent after the next one
    got = await _exchange(plan)
    assert got == [FRAMES[0], FRAMES[2], FRAMES[3], FRAMES[3], FRAMES[5], FRAMES[4]]
    assert plan.counts == {"drop": 1, "duplicate": 1, "reorder": 1}


async def test_random_rule_with_a_match_only_touches_the_frames_it_accepts() -> None:
    plan = FaultPlan(1)
    odd = {FRAMES[1], FRAMES[3], FRAMES[5]}
    rule = plan.add("drop", 1.0, "/feed", match=lambda text: text in odd)
    got = await _exchange(plan)
    assert got == [FRAMES[0], FRAMES[2], FRAMES[4]]
    assert rule.fired == 3 and plan.counts == {"drop": 3}


async def test_reorder_of_the_last_queued_frame_is_not_held_back() -> None:
    plan = FaultPlan(1)
    plan.once("reorder")
    async with trio.open_nursery() as nursery:
        feed = Feed(plan)
        await feed.start(nursery)
        with trio.fail_after(GUARD):
            async with open_websocket_url(feed.ws_url) as ws:
                await feed.connected.wait()
                feed.conns[0].enqueue(FRAMES[0])
                # nothing queued behind it: it goes out rather than wait for a frame that may
                # never come
                assert await ws.get_message() == FRAMES[0]
        nursery.cancel_scope.cancel()
    assert plan.counts == {"reorder": 1}


async def test_delay_keeps_order_and_malformed_frames_are_extra_and_never_json() -> None:
    plan = FaultPlan(7)
    plan.add("delay", 0.5, seconds=0.001)
    plan.add("malformed", 0.5)
    got = await _exchange(plan, FRAMES * 5)
    good = [m for m in got if m in FRAMES]
    assert good == FRAMES * 5  # nothing lost, order kept
    bad = [m for m in got if m not in FRAMES]
    assert len(bad) == plan.counts["malformed"] > 0
    for text in bad:
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(text)


async def test_same_seed_same_traffic_same_faults() -> None:
    def run(seed: int) -> list[str]:
        plan = FaultPlan(seed)
        for kind in ("drop", "duplicate", "malformed"):
            plan.add(kind, 0.2)
        out: list[str] = []

        class Conn:
            path = "/feed"

            def _put(self, item: object) -> bool:
                out.append(str(item))
                return True

        for i in range(200):
            plan.on_frame(Conn(), str(i))  # type: ignore[arg-type]
        return out

    assert run(3) == run(3)
    assert run(3) != run(4)


@pytest.mark.parametrize("code", [1001, 1011, 4000])
async def test_close_sends_the_code(code: int) -> None:
    plan = FaultPlan(1)
    plan.once("close", after=2, code=code)
    got, closed = await _exchange_until_closed(plan)
    assert closed is not None and closed.reason.code == code
    assert got == []  # an abrupt close: frames still queued go with the connection


async def test_abort_drops_tcp_without_a_close_frame() -> None:
    plan = FaultPlan(1)
    plan.once("abort", after=1)
    got, closed = await _exchange_until_closed(plan)
    assert closed is not None and closed.reason.code == 1006  # no close frame came
    assert got == []


async def test_oversized_frame_is_refused_by_a_client_with_a_limit() -> None:
    plan = FaultPlan(1)
    plan.once("oversized", after=1, bytes=5000)
    got, closed = await _exchange_until_closed(plan, max_message_size=4096)
    assert closed is not None and closed.reason.code == 1009  # message too big
    assert got == FRAMES[:1]


async def test_stall_keeps_the_socket_open_and_sends_nothing() -> None:
    plan = FaultPlan(1)
    plan.once("stall", seconds=math.inf)
    async with trio.open_nursery() as nursery:
        feed = Feed(plan)
        await feed.start(nursery)
        with trio.fail_after(GUARD):
            async with open_websocket_url(feed.ws_url) as ws:
                await feed.connected.wait()
                conn = feed.conns[0]
                for frame in FRAMES:
                    conn.enqueue(frame)
                await ws.ping()  # the connection is alive: the peer answers pings
                conn._close_now(1012, "")
                try:
                    got = await ws.get_message()
                except ConnectionClosed:
                    got = None
                assert got is None  # nothing was delivered before the close
        nursery.cancel_scope.cancel()
    assert conn.enqueued == len(FRAMES)


@pytest.mark.parametrize("status", [429, 503])
async def test_refused_handshake(status: int) -> None:
    plan = FaultPlan(1)
    plan.once("refuse", "/feed", status=status)
    async with trio.open_nursery() as nursery:
        feed = Feed(plan)
        await feed.start(nursery)
        with trio.fail_after(GUARD):
            with pytest.raises(ConnectionRejected) as info:
                async with open_websocket_url(feed.ws_url):
                    pass
            assert info.value.status_code == status
            async with open_websocket_url(feed.ws_url):  # the next attempt is let through
                await feed.connected.wait()
        nursery.cancel_scope.cancel()
    assert feed.app.ws_accepted == {"/feed": 1}


async def test_http_errors_lost_replies_and_venue_actions() -> None:
    plan = FaultPlan(1)
    plan.once("http_error", "/thing", status=429)
    plan.once("http_error", "/thing", status=502)
    plan.once("http_lost_reply", "/thing")
    expired: list[int] = []
    async with trio.open_nursery() as nursery:
        feed = Feed(plan)
        feed.app.fault_actions["token_expiry"] = lambda: expired.append(1)
        plan.once("token_expiry", "/thing", after=3)
        await feed.start(nursery)
        async with httpx.AsyncClient(base_url=feed.http_url) as client:
            first = await client.get("/thing")
            assert first.status_code == 429 and first.headers["retry-after"] == "0.05"
            assert (await client.get("/thing")).status_code == 502
            assert feed.handled == 0  # refused before the handler ran
            lost = await client.get("/thing")
            assert lost.status_code == 504 and feed.handled == 1  # done, but the reply was lost
            assert (await client.get("/thing")).status_code == 200
            assert expired == [1]
        nursery.cancel_scope.cancel()


async def test_delayed_acknowledgement_is_sent_after_the_work_is_done() -> None:
    plan = FaultPlan(1)
    plan.once("http_delay", "/thing", seconds=math.inf)
    answered = False
    async with trio.open_nursery() as nursery:
        feed = Feed(plan)
        await feed.start(nursery)

        async def ask() -> None:
            nonlocal answered
            async with httpx.AsyncClient(base_url=feed.http_url) as client:
                await client.get("/thing")
            answered = True

        nursery.start_soon(ask)
        with trio.fail_after(GUARD):
            await feed.handled_event.wait()
        assert feed.handled == 1 and not answered  # the venue acted; the ack is still held
        nursery.cancel_scope.cancel()


def test_parse_spec_presets_and_errors() -> None:
    plan = FaultPlan.parse("seed=9, drop=0.25@/marketdata, http_error=1")
    assert plan.seed == 9
    assert [(r.kind, r.rate, r.path) for r in plan.rules] == [
        ("drop", 0.25, "/marketdata"),
        ("http_error", 1.0, ""),
    ]
    assert {r.kind for r in FaultPlan.parse("chaos").rules} == set(PRESETS["chaos"])
    for bad, words in [
        ("explode=0.1", "unknown fault kind 'explode'"),
        ("drop=lots", "drop rate must be a number"),
        ("drop=2", "within [0, 1]"),
        ("seed=x", "seed must be an integer"),
        ("nonsense", "is not kind=rate"),
    ]:
        with pytest.raises(ValueError, match=re.escape(words)):
            FaultPlan.parse(bad)


def test_cli_rejects_a_bad_fault_spec() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "framework.tools.cli", "sim", "paxos", "--faults", "drop=often"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "--faults" in proc.stderr and "drop" in proc.stderr


async def test_cli_standalone_simulator_injects_faults_and_reports_them() -> None:
    proc = await trio.lowlevel.open_process(
        [
            sys.executable,
            "-m",
            "framework.tools.cli",
            "sim",
            "paxos",
            "--rate",
            "0",
            "--faults",
            "seed=2,http_error=1@/v2/markets",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    out = b""
    with trio.fail_after(60):
        while b"\n" not in out:
            chunk = await proc.stdout.receive_some()
            assert chunk, "simulator exited before announcing its port"
            out += chunk
        url = re.search(rb"(http://127\.0\.0\.1:\d+)", out).group(1).decode()
        async with httpx.AsyncClient(base_url=url) as client:
            statuses = {(await client.get("/v2/markets")).status_code for _ in range(5)}
        assert statuses <= {429, 500, 502, 503, 504} and statuses
        proc.send_signal(signal.SIGTERM)
        while chunk := await proc.stdout.receive_some():
            out += chunk
        assert await proc.wait() == 0
    assert b"faults injected: http_error: 5" in out


# --- faults the built-in layer used to lack (issue #15) ------------------------------------------


async def test_corrupt_frame_replaces_the_frame_instead_of_adding_one() -> None:
    plan = FaultPlan(4)
    plan.once("corrupt_frame", "/feed", after=2)
    got = await _exchange(plan)
    assert len(got) == len(FRAMES)  # replaced: no frame added, none missing but the victim
    assert got[:2] + got[3:] == FRAMES[:2] + FRAMES[3:]
    assert got[2] != FRAMES[2]
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(got[2])


@pytest.mark.parametrize("form", ["1E+400", "NaN", "negative", "times1000"])
async def test_corrupt_number_changes_one_number_of_a_frame(form: str) -> None:
    plan = FaultPlan(2)
    frame = '{"type":"fill","qty":"0.5","id":"x7"}'
    plan.once("corrupt_number", "/feed", form=form)
    (got,) = await _exchange(plan, [frame])
    expected = {"1E+400": "1E+400", "NaN": "NaN", "negative": "-0.5", "times1000": "501.0"}[form]
    assert got == frame.replace('"0.5"', f'"{expected}"')


def test_corrupt_number_picks_only_the_named_keys_and_bare_numbers_too() -> None:
    plan = FaultPlan(1)
    rule = plan.once("corrupt_number", keys=["fee"], form="NaN")
    text = '{"price": 101.5, "fee": 0.25, "id": 7}'
    out = plan.corrupt_number(text, rule)
    assert out == '{"price": 101.5, "fee": NaN, "id": 7}'
    # nothing to corrupt: unchanged
    assert plan.corrupt_number('{"id": "a"}', rule) == '{"id": "a"}'


async def test_http_hold_applies_the_request_after_the_client_gave_up() -> None:
    plan = FaultPlan(1)
    plan.once("http_hold", "/thing", seconds=0.3)
    async with trio.open_nursery() as nursery:
        feed = Feed(plan)
        await feed.start(nursery)
        async with httpx.AsyncClient(base_url=feed.http_url, timeout=0.05) as client:
            with pytest.raises(httpx.TimeoutException):
                await client.get("/thing")
        assert feed.handled == 0 and feed.app.held == 1  # the client gave up; not there yet
        with trio.fail_after(GUARD):
            await feed.handled_event.wait()  # ... and then it reaches the venue
        assert feed.handled == 1 and feed.app.held_applied == 1
        nursery.cancel_scope.cancel()


async def test_http_error_after_the_venue_acted_junk_bodies_and_bad_retry_after() -> None:
    plan = FaultPlan(1)
    plan.once("http_error_after", "/thing", status=429, retry_after="1")
    plan.once("http_error_after", "/thing", status=503)
    plan.once("http_junk_body", "/thing", body=b"<html>oops</html>")
    plan.once("http_junk_body", "/thing", body=b"null")
    # refused before handling: after the four answers above
    plan.once("http_bad_retry_after", "/thing", retry_after="nan", after=4)
    plan.once("http_bad_retry_after", "/thing", retry_after="100000", after=4)
    plan.once("corrupt_number", "/number", form="1E+400")
    async with trio.open_nursery() as nursery:
        feed = Feed(plan)
        feed.app.http("GET", "/number")(lambda r: HttpResponse(200, b'{"qty":"2"}'))
        await feed.start(nursery)
        async with httpx.AsyncClient(base_url=feed.http_url) as client:
            first = await client.get("/thing")
            assert first.status_code == 429 and first.headers["retry-after"] == "1"
            assert feed.handled == 1  # the venue acted before the 429
            assert (await client.get("/thing")).status_code == 503 and feed.handled == 2
            html = await client.get("/thing")
            assert html.status_code == 200 and html.text == "<html>oops</html>"
            assert (await client.get("/thing")).content == b"null"
            assert feed.handled == 4
            nan = await client.get("/thing")
            assert nan.status_code == 429 and nan.headers["retry-after"] == "nan"
            huge = await client.get("/thing")
            assert huge.headers["retry-after"] == "100000" and feed.handled == 4  # not handled
            assert (await client.get("/number")).content == b'{"qty":"1E+400"}'
        nursery.cancel_scope.cancel()


async def test_http_reset_after_the_venue_acted_drops_the_connection_without_an_answer() -> None:
    plan = FaultPlan(1)
    plan.once("http_reset_after", "/thing")
    async with trio.open_nursery() as nursery:
        feed = Feed(plan)
        await feed.start(nursery)
        async with httpx.AsyncClient(base_url=feed.http_url) as client:
            # no status, no body: the connection is gone, as after a TCP reset
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get("/thing")
            assert feed.handled == 1  # ... after the venue acted
            again = await client.get("/thing")  # a new connection is answered as usual
            assert again.status_code == 200 and feed.handled == 2
        assert plan.counts["http_reset_after"] == 1
        nursery.cancel_scope.cancel()


def test_journal_disk_fails_for_n_writes_then_recovers(tmp_path: Path) -> None:
    import errno
    from decimal import Decimal

    from framework.events import OrderType, Side
    from framework.execution.journal import Journal
    from framework.model import Order

    plan = FaultPlan(1)
    plan.once("journal_enospc", times=2)
    journal = Journal(tmp_path / "j.sqlite")
    journal.fault = plan.journal_hook()
    order = Order(
        client_order_id="c1",
        venue="v",
        symbol="S",
        side=Side.BUY,
        type=OrderType.LIMIT,
        quantity=Decimal(1),
        price=Decimal(1),
    )
    for _ in range(2):
        with pytest.raises(OSError) as info:
            journal.record_intent(order)
        assert info.value.errno == errno.ENOSPC
    assert journal.load("c1") is None  # nothing written while the disk was full
    journal.record_intent(order)
    assert journal.load("c1") is not None and plan.counts["journal_enospc"] == 2
    journal.close()
