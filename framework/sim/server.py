"""A tiny ASGI toolkit for the venue simulators, served by Hypercorn's trio worker.

Each simulator is one `SimApp` on one loopback port: plain HTTP routes and WebSocket routes with
`{name}` path parameters. WebSocket output goes through a bounded per-connection queue so that
synchronous engine callbacks can push frames (`WsConnection.enqueue`) without awaiting; a client
that lets the queue fill up is disconnected as a slow consumer, as real venues do.

Fault injection shared by every simulator: forced HTTP errors (`SimApp.inject_http_error`), and
closing (`close_all_ws`) or abruptly dropping (`abort_all_ws`) every live WebSocket; and a seeded,
scriptable `FaultPlan` (framework/sim/faults.py) set as `SimApp.faults`.

`SimApp.observe` lets a benchmark stamp frames and requests at the transport edge.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from decimal import Decimal
from functools import partial
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import attrs
import orjson
import structlog
import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

from framework.sim.messages import HttpRequest, HttpResponse, Pause, Swap

if TYPE_CHECKING:
    from framework.sim.faults import FaultPlan

log = structlog.get_logger("botrun.sim.server")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
# handler(request, **path_params) -> HttpResponse, sync or async
HttpHandler = Callable[..., Any]
# async handler(conn, **path_params); the connection closes when it returns
WsHandler = Callable[..., Awaitable[None]]
# authorize(headers) -> HTTP status refusing the upgrade, or None to accept
Authorize = Callable[[dict[str, str]], int | None]
ErrorResponse = Callable[[int, str], Any]
# observe(path, direction, text, monotonic_ns): see `SimApp.observe`
Observer = Callable[[str, str, str, int], None]

SLOW_CONSUMER = 1008
DEFAULT_WS_QUEUE = 10_000
# How long a server-initiated close waits for the peer's close reply before dropping TCP.
_CLOSE_REPLY_WAIT_S = 2.0


# --- HTTP ----------------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")  # never exponent notation
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(obj: Any) -> bytes:
    """orjson with Decimal as a plain (non-exponent) string."""
    return orjson.dumps(obj, default=_json_default)


def json_response(
    status: int, obj: Any, content_type: str = "application/json", **headers: str
) -> HttpResponse:
    return HttpResponse(status=status, body=dumps(obj), content_type=content_type, headers=headers)


def _default_error(status: int, detail: str) -> HttpResponse:
    return json_response(status, {"error": _phrase(status), "detail": detail})


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


# --- simulator-only test hook -------------------------------------------------------------------

# `GET /sim/orders`: the simulated account's orders and fills, for tests that check a client
# against the venue's truth from outside a standalone simulator process (tests/crash_harness.py).
# A simulator-only test hook: no adapter uses it, and it answers loopback peers only.
TRUTH_PATH = "/sim/orders"
_LOOPBACK = frozenset({"127.0.0.1", "::1", ""})


def add_truth_hook(app: SimApp, truth: Callable[[], dict[str, Any]]) -> None:
    """Serve `truth()` -> {"orders": [{client_order_id, status, open, filled}],
    "fills": [{fill_id, client_order_id, quantity}]} at `TRUTH_PATH` (loopback peers only)."""

    def handler(request: HttpRequest) -> HttpResponse:
        if request.client not in _LOOPBACK:
            return json_response(403, {"error": "simulator test hook: loopback only"})
        return json_response(200, truth())

    app.http("GET", TRUTH_PATH)(handler)


# --- routing -------------------------------------------------------------------------------------


_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@attrs.frozen(slots=True)
class _Route:
    pattern: str
    regex: re.Pattern[str]
    params: int
    handler: Callable[..., Any]
    method: str = ""  # HTTP only
    authorize: Authorize | None = None  # WS only


def _compile(pattern: str) -> tuple[re.Pattern[str], int]:
    parts: list[str] = []
    pos = 0
    for match in _PARAM.finditer(pattern):
        parts.append(re.escape(pattern[pos : match.start()]))
        parts.append(f"(?P<{match.group(1)}>[^/]+)")
        pos = match.end()
    parts.append(re.escape(pattern[pos:]))
    return re.compile("".join(parts) + r"\Z"), pattern.count("{")


def _match(routes: list[_Route], path: str) -> list[tuple[_Route, dict[str, str]]]:
    """All routes matching `path`, the most literal first (fewest parameters), then by age."""
    found = [(r, m.groupdict()) for r in routes if (m := r.regex.match(path)) is not None]
    found.sort(key=lambda item: item[0].params)  # stable: registration order breaks ties
    return found


@attrs.define(slots=True)
class _Fault:
    path_prefix: str
    status: int
    remaining: int
    body: dict[str, Any] | None


# --- WebSocket -----------------------------------------------------------------------------------


@attrs.frozen(slots=True)
class _CloseCmd:
    code: int
    reason: str


class WsConnection:
    """One accepted WebSocket. Frames are queued, in order, whether sent sync or async."""

    def __init__(
        self,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        asgi_receive: Receive,
        asgi_send: Send,
        queue_size: int,
    ) -> None:
        self.path = path
        self.query = query
        self.headers = headers
        self.closed = False
        # Frames accepted into the outbound queue since the connection opened: a test knows a
        # client is caught up once it has received this many frames.
        self.enqueued = 0
        self.peer_port: int | None = None  # the client's port: which client this is
        self._asgi_receive = asgi_receive
        self._asgi_send = asgi_send
        self._out_send, self._out_recv = trio.open_memory_channel[str | _CloseCmd | Pause | Swap](
            queue_size
        )
        self.faults: FaultPlan | None = None  # set by SimApp
        self.observe: Observer | None = None  # set by SimApp
        # set by a handler: binary frames from the peer go here instead of the text queue
        self.on_binary: Callable[[bytes], None] | None = None
        # Inbound is unbounded so that a handler that never reads cannot stall the reader (which
        # must keep reading to notice the peer going away).
        self._in_send, self._in_recv = trio.open_memory_channel[str](math.inf)
        self._scope = trio.CancelScope()
        self._final: _CloseCmd | None = None  # close frame to send once the I/O tasks stopped
        self._abort = False
        self._peer_gone = False
        self._close_sent = False

    # --- public API ------------------------------------------------------------------------

    def enqueue(self, text: str) -> bool:
        """Queue a frame without waiting. A full queue closes the connection (1008)."""
        if self.closed:
            return False
        if self.faults is not None and self.faults.enabled:
            return self.faults.on_frame(self, text)
        return self._put(text)

    def _put(self, item: str | Pause | Swap) -> bool:
        if self.closed:
            return False
        try:
            self._out_send.send_nowait(item)
        except trio.WouldBlock:
            log.warning("ws slow consumer", path=self.path)
            self._close_now(SLOW_CONSUMER, "slow consumer")
            return False
        if not isinstance(item, Pause):
            self.enqueued += 1
        return True

    async def send_text(self, text: str) -> None:
        """Queue a frame, waiting for room (no slow-consumer check). Dropped once closed."""
        if self.closed:
            return
        await self._out_send.send(text)
        self.enqueued += 1

    async def receive_text(self) -> str | None:
        """Next text frame from the peer; None once the connection is closed."""
        try:
            return await self._in_recv.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            return None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Graceful close: frames queued before the close are sent first.

        If the queue is full (a peer not reading), the queued frames are dropped instead of
        waiting for a peer that may never read.
        """
        if self.closed:
            return
        self.closed = True
        try:
            self._out_send.send_nowait(_CloseCmd(code, reason))
        except trio.WouldBlock:
            self._close_now(code, reason, force=True)

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (fault injection)."""
        if self._peer_gone:
            return
        self.closed = True
        self._abort = True
        self._scope.cancel()

    # --- internals -------------------------------------------------------------------------

    def _close_now(self, code: int, reason: str, force: bool = False) -> None:
        """Close at once, dropping queued frames (sync: for callbacks and fault injection)."""
        if self._peer_gone or self._final is not None or (self.closed and not force):
            return
        self.closed = True
        self._final = _CloseCmd(code, reason)
        self._scope.cancel()

    async def _run(self, handler: WsHandler, params: dict[str, str]) -> None:
        with self._scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._reader)
                nursery.start_soon(self._writer)
                nursery.start_soon(self._run_handler, handler, params)
        self.closed = True
        self._in_send.close()
        if self._peer_gone:
            return
        if self._abort:
            await self._drop_transport()
            return
        if not self._close_sent:
            final = self._final or _CloseCmd(1000, "")
            await self._asgi_send(
                {"type": "websocket.close", "code": final.code, "reason": final.reason}
            )
        # Give the peer a moment to answer the close handshake; hypercorn drops TCP on return.
        with trio.move_on_after(_CLOSE_REPLY_WAIT_S):
            while (await self._asgi_receive())["type"] != "websocket.disconnect":
                pass

    async def _run_handler(self, handler: WsHandler, params: dict[str, str]) -> None:
        try:
            await handler(self, **params)
        except Exception:
            log.exception("ws handler failed", path=self.path)
            self._close_now(1011, "internal error")
            return
        await self.close()  # a handler that returns ends the connection normally

    async def _reader(self) -> None:
        while True:
            message = await self._asgi_receive()
            kind = message["type"]
            if kind == "websocket.receive":
                text = message.get("text")
                if text is None:
                    data = message.get("bytes") or b""
                    if self.on_binary is not None:
                        # a venue that answers binary frames itself (e.g. with an error)
                        self.on_binary(data)
                        continue
                    text = data.decode("utf-8", "replace")
                if self.observe is not None:
                    self.observe(self.path, "in", text, time.monotonic_ns())
                self._in_send.send_nowait(text)
            elif kind == "websocket.disconnect":
                self._peer_gone = True
                self.closed = True
                self._in_send.close()
                self._scope.cancel()
                return

    async def _writer(self) -> None:
        carry: str | _CloseCmd | Pause | Swap | None = None
        while True:
            if carry is not None:
                item, carry = carry, None
            else:
                try:
                    item = await self._out_recv.receive()
                except trio.EndOfChannel:
                    return
            if isinstance(item, Pause):
                await trio.sleep(item.seconds)
                continue
            if isinstance(item, Swap):
                # reordered: the frame queued behind this one goes first (if one is waiting)
                with contextlib.suppress(trio.WouldBlock):
                    carry = self._out_recv.receive_nowait()
                if isinstance(carry, str):
                    await self._send_frame(carry)
                    carry = None
                await self._send_frame(item.text)
                continue
            if isinstance(item, _CloseCmd):
                await self._asgi_send(
                    {"type": "websocket.close", "code": item.code, "reason": item.reason}
                )
                self._close_sent = True
                self._scope.cancel()
                return
            if self.observe is not None:  # inline, not `_send_frame`: the hot path
                self.observe(self.path, "out", item, time.monotonic_ns())
            await self._asgi_send({"type": "websocket.send", "text": item})

    async def _send_frame(self, text: str) -> None:
        if self.observe is not None:
            self.observe(self.path, "out", text, time.monotonic_ns())
        await self._asgi_send({"type": "websocket.send", "text": text})

    async def _drop_transport(self) -> None:
        # ASGI has no "abort": reach hypercorn's stream behind the `send` callable and report the
        # stream closed, which makes hypercorn close the TCP connection without a close frame.
        # If hypercorn's internals ever change, fall back to an abnormal (1011) close.
        ws_stream = getattr(self._asgi_send, "__self__", None)
        stream_send = getattr(ws_stream, "send", None)
        stream_id = getattr(ws_stream, "stream_id", None)
        if stream_send is None or stream_id is None:
            await self._asgi_send({"type": "websocket.close", "code": 1011, "reason": "aborted"})
            return
        from hypercorn.protocol.events import StreamClosed

        async with _connection_send_lock(stream_send):
            await stream_send(StreamClosed(stream_id=stream_id))


@asynccontextmanager
async def _connection_send_lock(stream_send: Any) -> AsyncIterator[None]:
    """Hold hypercorn's per-connection send lock (if it can be reached) while a stream is
    reported closed. Closing the connection shuts the socket's sending side outside that lock,
    across a checkpoint; a frame the client sends meanwhile (a ping to answer: an aborted
    client is still talking) makes the reading task send too, and trio refuses the second
    sender with BusyResourceError, which escapes hypercorn and ends the whole simulator. With
    the lock held, that answer waits and then finds the socket closed (which hypercorn
    handles)."""
    protocol = getattr(stream_send, "__self__", None)  # hypercorn's H11Protocol
    server = getattr(getattr(protocol, "send", None), "__self__", None)  # its TCPServer
    lock = getattr(server, "send_lock", None)
    if lock is None:
        yield
        return
    async with lock:
        yield


def fan_out(connections: Iterable[WsConnection], frame: str) -> None:
    """Queue one frame on each connection (sync: for engine callbacks)."""
    for conn in list(connections):  # enqueue may close (slow consumer) and the set may shrink
        conn.enqueue(frame)


# --- the app -------------------------------------------------------------------------------------


class SimApp:
    """ASGI app: HTTP and WebSocket routes plus fault injection."""

    def __init__(
        self,
        *,
        ws_queue_size: int = DEFAULT_WS_QUEUE,
        error_response: ErrorResponse = _default_error,
    ) -> None:
        self._http_routes: list[_Route] = []
        self._ws_routes: list[_Route] = []
        self._faults: list[_Fault] = []
        self._ws_queue_size = ws_queue_size
        # How 404/405/500 and injected errors look on the wire (a venue sets its own format).
        self.error_response = error_response
        # Accepted when no WebSocket route matches; None refuses the upgrade with 404.
        self.ws_fallback: WsHandler | None = None
        self.ws_connections: list[WsConnection] = []
        # accepted upgrades per path, over the app's life (tests match client epochs to them)
        self.ws_accepted: dict[str, int] = {}
        self._fault_plan: FaultPlan | None = None
        # venue-specific faults the simulator can perform on an HTTP request, by kind
        # (e.g. "token_expiry": revoke every token); fired by the fault plan's rules
        self.fault_actions: dict[str, Callable[[], None]] = {}
        # Transport-edge observer, for benchmarks that time a round trip from a frame leaving the
        # simulator to the reply arriving, without the simulator's own handler work inside the
        # figure. Called synchronously with (path, direction, text, time.monotonic_ns()):
        # "out" as a WebSocket frame is handed to the ASGI send, "in" as one is taken from the
        # ASGI receive, "http" (text = the method) once an HTTP request's body is in, before
        # routing. Set it before clients connect; None (the default) costs one attribute test.
        self.observe: Observer | None = None
        # where held requests (`http_hold`) are handled, beside the connections (set by `serve`)
        self._background: trio.Nursery | None = None
        self.held = 0  # requests held (`http_hold`)
        self.held_applied = 0  # ... and handled after their hold

    @property
    def faults(self) -> FaultPlan | None:
        return self._fault_plan

    @faults.setter
    def faults(self, plan: FaultPlan | None) -> None:
        """Attach (or with None remove) a fault plan; live connections follow it at once."""
        self._fault_plan = plan
        for conn in self.ws_connections:
            conn.faults = plan

    # --- registration ----------------------------------------------------------------------

    def http(self, method: str, pattern: str) -> Callable[[HttpHandler], HttpHandler]:
        def register(handler: HttpHandler) -> HttpHandler:
            regex, params = _compile(pattern)
            self._http_routes.append(_Route(pattern, regex, params, handler, method.upper()))
            return handler

        return register

    def ws(
        self, pattern: str, authorize: Authorize | None = None
    ) -> Callable[[WsHandler], WsHandler]:
        def register(handler: WsHandler) -> WsHandler:
            regex, params = _compile(pattern)
            self._ws_routes.append(_Route(pattern, regex, params, handler, authorize=authorize))
            return handler

        return register

    # --- fault injection -------------------------------------------------------------------

    def inject_http_error(
        self, path_prefix: str, status: int, count: int = 1, body: dict[str, Any] | None = None
    ) -> None:
        """The next `count` HTTP requests whose path starts with `path_prefix` get `status`."""
        self._faults.append(_Fault(path_prefix, status, count, body))

    def close_all_ws(self, code: int = 1012) -> None:
        """Close every live WebSocket with `code` (default 1012 service restart)."""
        for conn in list(self.ws_connections):
            conn._close_now(code, "")

    def abort_all_ws(self) -> None:
        """Drop every live WebSocket's TCP connection without a close frame."""
        for conn in list(self.ws_connections):
            conn.abort()

    # --- ASGI ------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "lifespan":
            await _lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        if self.observe is not None:
            self.observe(scope["path"], "http", scope["method"].upper(), time.monotonic_ns())
        request = HttpRequest(
            method=scope["method"].upper(),
            path=scope["path"],
            query=_query(scope),
            headers=_headers(scope),
            body=b"".join(chunks),
            raw_query=scope.get("query_string", b"").decode("latin-1"),
            client=str((scope.get("client") or ("",))[0]),
        )
        response = await self._respond(request)
        if response.reset:
            await _drop_http(send)
            return
        headers = [(b"content-type", response.content_type.encode())]
        headers += [(k.lower().encode(), v.encode()) for k, v in response.headers.items()]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})

    async def _respond(self, request: HttpRequest) -> HttpResponse:
        plan = self._fault_plan
        if plan is None or not plan.enabled:
            return await self._route(request)
        injected = await plan.before_http(self, request)
        if injected is not None:
            return injected
        hold = plan.hold_for(request)
        if hold is not None:
            return await self._held(request, hold)
        return await plan.after_http(self, request, await self._route(request))

    async def _held(self, request: HttpRequest, seconds: float) -> HttpResponse:
        """Handle `request` after `seconds`, whether or not its client is still there (a request
        stuck in a gateway reaches the venue late): the handling runs in the server's own
        nursery, so a client that hangs up does not cancel it."""
        self.held += 1
        done = trio.Event()
        result: list[HttpResponse] = []

        async def later() -> None:
            await trio.sleep(seconds)
            result.append(await self._route(request))
            self.held_applied += 1
            log.info("held request applied", path=request.path, held_s=seconds)
            done.set()

        if self._background is None:
            with trio.CancelScope(shield=True):
                await later()
        else:
            self._background.start_soon(later)
            await done.wait()
        return result[0]

    async def _route(self, request: HttpRequest) -> HttpResponse:
        fault = self._take_fault(request.path)
        if fault is not None:
            if fault.body is not None:
                return json_response(fault.status, fault.body)
            return self.error_response(fault.status, "injected fault")
        matches = _match(self._http_routes, request.path)
        if not matches:
            return self.error_response(404, f"no route for {request.path}")
        for route, params in matches:
            if route.method == request.method:
                try:
                    result = route.handler(request, **params)
                    if inspect.isawaitable(result):
                        result = await result
                except Exception:
                    log.exception("http handler failed", path=request.path)
                    return self.error_response(500, "internal error")
                return result
        return self.error_response(405, f"{request.method} not allowed on {request.path}")

    def _take_fault(self, path: str) -> _Fault | None:
        for fault in self._faults:
            if path.startswith(fault.path_prefix):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        headers = _headers(scope)
        path = scope["path"]
        plan = self._fault_plan
        if plan is not None and plan.enabled:
            refusal = plan.on_handshake(path)
            if refusal is not None:
                await _refuse(send, refusal)
                return
        matches = _match(self._ws_routes, path)
        handler: WsHandler
        params: dict[str, str] = {}
        if matches:
            route, params = matches[0]
            handler = route.handler
            refusal = route.authorize(headers) if route.authorize is not None else None
            if refusal is not None:
                await _refuse(send, refusal)
                return
        elif self.ws_fallback is not None:
            handler = self.ws_fallback
        else:
            await _refuse(send, 404)
            return
        await send({"type": "websocket.accept"})
        conn = WsConnection(path, _query(scope), headers, receive, send, self._ws_queue_size)
        client = scope.get("client")
        conn.peer_port = client[1] if client else None
        conn.faults = self._fault_plan
        conn.observe = self.observe
        self.ws_accepted[path] = self.ws_accepted.get(path, 0) + 1
        self.ws_connections.append(conn)
        try:
            await conn._run(handler, params)
        finally:
            self.ws_connections.remove(conn)


async def _drop_http(send: Send) -> None:
    """Close the TCP connection of an HTTP request without answering it (a reset as the client
    sees it). As for a WebSocket abort, ASGI has no such message: reach hypercorn's stream behind
    `send` and report the stream closed before any response started, which makes hypercorn close
    the connection. Should its internals change, answer 502 instead (the reply is lost either
    way)."""
    http_stream = getattr(send, "__self__", None)
    stream_send = getattr(http_stream, "send", None)
    stream_id = getattr(http_stream, "stream_id", None)
    if stream_send is None or stream_id is None:
        body = b'{"error":"injected fault: connection reset"}'
        await send({"type": "http.response.start", "status": 502, "headers": []})
        await send({"type": "http.response.body", "body": body})
        return
    from hypercorn.protocol.events import StreamClosed

    async with _connection_send_lock(stream_send):
        await stream_send(StreamClosed(stream_id=stream_id))


async def _refuse(send: Send, status: int) -> None:
    """Refuse a WebSocket upgrade with an HTTP status (ASGI websocket.http.response extension)."""
    body = dumps({"error": _phrase(status)})
    await send(
        {
            "type": "websocket.http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "websocket.http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _query(scope: Scope) -> dict[str, list[str]]:
    raw = scope.get("query_string", b"").decode("latin-1")
    return parse_qs(raw, keep_blank_values=True)


def _headers(scope: Scope) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", []):
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


# --- serving -------------------------------------------------------------------------------------


async def serve(
    app: SimApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `app` until cancelled; `task_status.started(bound_port)` once listening."""
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None  # no access log: a market-data test makes thousands of requests
    config.errorlog = logging.getLogger("hypercorn.error")
    config.loglevel = "WARNING"
    config.graceful_timeout = 0.5
    async with trio.open_nursery() as nursery:
        app._background = nursery
        binds: list[str] = await nursery.start(partial(hypercorn_serve, app, config, mode="asgi"))
        task_status.started(int(binds[0].rsplit(":", 1)[1]))
