"""framework.sim.server over real loopback sockets: routing, fault injection, WebSocket plumbing."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import orjson
import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from framework.sim.server import (
    TRUTH_PATH,
    HttpRequest,
    HttpResponse,
    SimApp,
    WsConnection,
    add_truth_hook,
    json_response,
    serve,
)


def _app(queue_size: int = 100) -> tuple[SimApp, dict[str, WsConnection]]:
    """An app with a few routes; `live` holds the server side of the latest WebSocket per route."""
    app = SimApp(ws_queue_size=queue_size)
    live: dict[str, WsConnection] = {}

    @app.http("GET", "/things/{thing_id}")
    async def get_thing(req: HttpRequest, thing_id: str) -> HttpResponse:
        return json_response(200, {"id": thing_id, "q": req.query, "price": Decimal("1E-8")})

    @app.http("GET", "/things/special")
    def get_special(req: HttpRequest) -> HttpResponse:  # sync handler; more literal route wins
        return json_response(200, {"special": True})

    @app.http("POST", "/things/{thing_id}")
    async def post_thing(req: HttpRequest, thing_id: str) -> HttpResponse:
        if req.headers.get("content-type", "").startswith("application/json"):
            return json_response(201, {"id": thing_id, "json": req.json()})
        return json_response(201, {"id": thing_id, "form": req.form()})

    @app.http("GET", "/boom")
    async def boom(req: HttpRequest) -> HttpResponse:
        raise RuntimeError("handler bug")

    @app.ws("/echo")
    async def echo(conn: WsConnection) -> None:
        live["echo"] = conn
        while (text := await conn.receive_text()) is not None:
            if text == "bye":
                await conn.send_text("closing")
                await conn.close(4000, "asked to")
                return
            await conn.send_text(f"echo:{text}")

    @app.ws("/push/{name}")
    async def push(conn: WsConnection, name: str) -> None:
        live["push"] = conn
        conn.enqueue(f"hello {name}")
        await trio.sleep_forever()

    @app.ws("/private", authorize=lambda h: None if h.get("x-key") == "k" else 403)
    async def private(conn: WsConnection) -> None:
        await conn.send_text("welcome")
        await trio.sleep_forever()

    return app, live


@pytest.fixture
async def server(
    nursery: trio.Nursery,
) -> AsyncIterator[tuple[SimApp, dict[str, WsConnection], int]]:
    app, live = _app()
    port = await nursery.start(serve, app)
    yield app, live, port


async def test_http_routes_params_query_and_bodies(server) -> None:
    _, _, port = server
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        r = await http.get("/things/abc", params=[("a", "1"), ("a", "2"), ("range.begin", "")])
        assert r.status_code == 200
        # Decimal is serialised without exponent notation
        assert r.json() == {
            "id": "abc",
            "q": {"a": ["1", "2"], "range.begin": [""]},
            "price": "0.00000001",
        }
        assert (await http.get("/things/special")).json() == {"special": True}
        r = await http.post("/things/x1", json={"k": [1, 2]})
        assert (r.status_code, r.json()) == (201, {"id": "x1", "json": {"k": [1, 2]}})
        r = await http.post("/things/x2", data={"grant_type": "client_credentials", "s": "a b"})
        assert r.json() == {"id": "x2", "form": {"grant_type": "client_credentials", "s": "a b"}}
        r = await http.get("/nowhere")
        assert r.status_code == 404 and r.headers["content-type"] == "application/json"
        assert (await http.delete("/things/abc")).status_code == 405
        assert (await http.get("/boom")).status_code == 500


async def test_truth_hook_answers_loopback_peers_only(nursery: trio.Nursery) -> None:
    app = SimApp()
    truth = {"orders": [{"client_order_id": "c1", "status": "open", "open": True}], "fills": []}
    add_truth_hook(app, lambda: truth)
    port = await nursery.start(serve, app)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        r = await http.get(TRUTH_PATH)
        assert (r.status_code, r.json()) == (200, truth)
    # the simulator-only test hook refuses anyone else (simulators bind loopback anyway)
    remote = HttpRequest("GET", TRUTH_PATH, {}, {}, client="10.1.2.3")
    assert (await app._respond(remote)).status == 403


async def test_inject_http_error_counts_and_prefix(server) -> None:
    app, _, port = server
    app.inject_http_error("/things", 503, count=2)
    app.inject_http_error("/other", 429, body={"why": "slow down"})
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        statuses = [(await http.get("/things/a")).status_code for _ in range(3)]
        assert statuses == [503, 503, 200]
        r = await http.get("/other/thing")
        assert (r.status_code, r.json()) == (429, {"why": "slow down"})
        assert (await http.get("/other/thing")).status_code == 404  # fault used up; no route


async def test_ws_echo_send_receive_and_graceful_close(server) -> None:
    _, live, port = server
    with trio.fail_after(10):
        async with open_websocket_url(f"ws://127.0.0.1:{port}/echo") as ws:
            await ws.send_message("one")
            assert await ws.get_message() == "echo:one"
            assert live["echo"].enqueued == 1
            await ws.send_message("bye")
            # frames queued before the close are delivered first
            assert await ws.get_message() == "closing"
            with pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
            assert closed.value.reason.code == 4000
            assert closed.value.reason.reason == "asked to"


async def test_ws_path_params_enqueue_and_counter(server) -> None:
    _, live, port = server
    with trio.fail_after(10):
        async with open_websocket_url(f"ws://127.0.0.1:{port}/push/bob?x=1") as ws:
            assert await ws.get_message() == "hello bob"
            conn = live["push"]
            assert conn.query == {"x": ["1"]} and conn.path == "/push/bob"
            for i in range(5):
                assert conn.enqueue(f"n{i}")
            received = [await ws.get_message() for _ in range(conn.enqueued - 1)]
            assert received == [f"n{i}" for i in range(5)]


async def test_ws_authorize_refuses_upgrade(server) -> None:
    _, _, port = server
    with trio.fail_after(10):
        with pytest.raises(ConnectionRejected) as refused:
            async with open_websocket_url(f"ws://127.0.0.1:{port}/private"):
                pass
        assert refused.value.status_code == 403
        headers = [("x-key", "k")]
        async with open_websocket_url(
            f"ws://127.0.0.1:{port}/private", extra_headers=headers
        ) as ws:
            assert await ws.get_message() == "welcome"


async def test_ws_unknown_route_404_then_fallback(server) -> None:
    app, _, port = server
    with trio.fail_after(10):
        with pytest.raises(ConnectionRejected) as refused:
            async with open_websocket_url(f"ws://127.0.0.1:{port}/nope"):
                pass
        assert refused.value.status_code == 404

        async def fallback(conn: WsConnection) -> None:
            await conn.send_text(orjson.dumps({"error": "Not Found", "path": conn.path}).decode())

        app.ws_fallback = fallback
        async with open_websocket_url(f"ws://127.0.0.1:{port}/nope") as ws:
            assert orjson.loads(await ws.get_message()) == {"error": "Not Found", "path": "/nope"}
            with pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
            assert closed.value.reason.code == 1000  # the fallback returned: normal close


async def test_ws_slow_consumer_is_closed_1008(nursery: trio.Nursery) -> None:
    app, live = _app(queue_size=4)
    port = await nursery.start(serve, app)
    with trio.fail_after(10):
        async with open_websocket_url(f"ws://127.0.0.1:{port}/push/slow") as ws:
            assert await ws.get_message() == "hello slow"
            conn = live["push"]
            # Synchronous enqueues: the writer cannot drain in between, so the queue overflows
            # (the writer may already hold one frame), and nothing is accepted after that.
            accepted = [conn.enqueue(str(i)) for i in range(10)]
            first_refused = accepted.index(False)
            assert first_refused in (4, 5) and not any(accepted[first_refused:])
            assert conn.closed
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await ws.get_message()
            assert closed.value.reason.code == 1008
            assert closed.value.reason.reason == "slow consumer"


async def test_close_all_ws_and_abort_all_ws(server) -> None:
    app, live, port = server
    with trio.fail_after(10):
        async with open_websocket_url(f"ws://127.0.0.1:{port}/push/a") as ws:
            await ws.get_message()
            assert app.ws_connections == [live["push"]]
            app.close_all_ws()
            with pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
            assert closed.value.reason.code == 1012
        async with open_websocket_url(f"ws://127.0.0.1:{port}/push/b") as ws:
            await ws.get_message()
            app.abort_all_ws()
            with pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
            # no close frame came: the client reports an abnormal closure
            assert closed.value.reason.code == 1006
            assert live["push"].enqueue("late") is False


async def test_observe_sees_frames_and_requests_at_the_transport_edge(server) -> None:
    app, _, port = server
    seen: list[tuple[str, str, str, int]] = []
    app.observe = lambda path, direction, text, ns: seen.append((path, direction, text, ns))
    start = time.monotonic_ns()
    with trio.fail_after(10):
        async with open_websocket_url(f"ws://127.0.0.1:{port}/push/ann") as ws:
            assert await ws.get_message() == "hello ann"  # an enqueued (sync) frame
        async with open_websocket_url(f"ws://127.0.0.1:{port}/echo") as ws:
            await ws.send_message("ping")
            # the handler takes "ping" after it is observed, and the reply is observed before it
            # is written: both are recorded by the time the client has the reply
            assert await ws.get_message() == "echo:ping"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            assert (await http.post("/things/x1", json={"k": 1})).status_code == 201
    end = time.monotonic_ns()
    assert [entry[:3] for entry in seen] == [
        ("/push/ann", "out", "hello ann"),
        ("/echo", "in", "ping"),
        ("/echo", "out", "echo:ping"),
        ("/things/x1", "http", "POST"),
    ]
    stamps = [entry[3] for entry in seen]
    assert start <= stamps[0] and stamps == sorted(stamps) and stamps[-1] <= end  # one clock
