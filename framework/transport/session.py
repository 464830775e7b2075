"""Supervision of one venue WebSocket connection: the loop no venue writes again.

connect → authenticate/subscribe (the venue's `Stream.on_connected`) → read → decode → route,
with WS pings, the venue's heartbeat, a staleness watchdog, and reconnect with capped exponential
backoff and jitter. A reader task drains the socket into a bounded channel so that the socket
keeps being read (and pings answered) while a strategy is slow; if that channel overflows the
session does not drop frames silently: it reconnects, which unsyncs and resyncs its books.

Decode-to-handler runs in one task without awaiting: the hot path has no scheduler hop per event.
"""

from __future__ import annotations

import ipaddress
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import structlog
import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    HandshakeError,
    WebSocketConnection,
    open_websocket_url,
)

from framework.errors import AuthError, FrameError, HttpProblem
from framework.events import VenueState, VenueStatus
from framework.venue import Stream

log = structlog.get_logger("botrun.session")

_EXCERPT = 160


class Reconnect(Exception):
    """Raised inside a connection to end it and connect again."""


class Backoff:
    """Capped exponential backoff with jitter (half to full of the nominal delay)."""

    def __init__(self, base_s: float = 0.5, cap_s: float = 30.0, rng: random.Random | None = None):
        self.base_s = base_s
        self.cap_s = cap_s
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self, minimum_s: float = 0.0) -> float:
        # the exponent stops growing long after the cap is reached: 2**attempt as an int times
        # a float overflows once attempt passes ~1023 (a connection that keeps failing fast
        # for hours, or a soak's thousands of injected disconnects)
        nominal = min(self.cap_s, self.base_s * 2.0 ** min(self.attempt, 64))
        self.attempt += 1
        return max(minimum_s, nominal * self._rng.uniform(0.5, 1.0))

    def reset(self) -> None:
        self.attempt = 0


class Connection:
    """The open socket as a stream sees it."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self._ws = ws

    async def send(self, message: Any) -> None:
        """Send a JSON message (dict/list) or a pre-encoded str."""
        text = message if isinstance(message, str) else orjson.dumps(message).decode()
        await self._ws.send_message(text)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self._ws.aclose(code, reason)


class WsSession:
    """Runs one `Stream` forever, reconnecting as needed."""

    def __init__(
        self,
        stream: Stream,
        *,
        on_status: Callable[[VenueStatus], None],
        on_books_lost: Callable[[Stream, str], None],
        on_reconnected: Callable[[Stream], None] = lambda stream: None,
        on_gap: Callable[[Stream], None] | None = None,
        queue_size: int = 10_000,
        backoff: Backoff | None = None,
        auth_backoff_s: float = 30.0,
    ) -> None:
        self.stream = stream
        self.venue = stream.venue
        self._on_status = on_status
        self._on_books_lost = on_books_lost
        self._on_reconnected = on_reconnected
        # a frame of this stream was skipped (unreadable): what it said about our orders is
        # lost, so they are asked for (`Stream.reconcile_on_reconnect` streams); by default the
        # same reconciliation as after a reconnect
        self._on_gap = on_gap or on_reconnected
        self.queue_size = queue_size
        self.backoff = backoff or Backoff()
        self.auth_backoff_s = auth_backoff_s
        self.epoch = 0
        self.state = VenueState.DISCONNECTED
        self.counts: Counter[str] = Counter()
        self.frames_received = 0  # over the session's life
        self.epoch_frames = 0  # on the current connection
        self.local_port: int | None = None  # of the current (or last) connection
        self._frame_waiters: list[tuple[int, trio.Event]] = []
        self.last_delay = 0.0
        self._retried_fresh_auth = False
        self._resync: set[str] = set()
        self._force_reconnect: str | None = None
        self._log = log.bind(venue=stream.venue, stream=stream.name)
        # a decoder that suspects a gap its book cannot see asks for a resync itself
        stream.request_resync = self.request_resync
        # optional raw-frame tap `tap(stream, frame, recv_ns)`, called before decode (recording);
        # when None the hot loop is exactly as without it
        self.tap: Callable[[Stream, str | bytes, int], None] | None = None
        # optional framework.latency.Histogram: frame received -> its handlers returned
        self.latency: Any = None

    # --- control from outside (router, tests) ----------------------------------------------------

    def request_resync(self, symbol: str) -> None:
        self._resync.add(symbol)

    def force_reconnect(self, reason: str) -> None:
        self._force_reconnect = reason

    async def wait_frames(self, n: int) -> None:
        """Wait until `n` frames of the current connection are processed (tests and tools)."""
        if self.epoch_frames >= n:
            return
        event = trio.Event()
        self._frame_waiters.append((n, event))
        await event.wait()

    # --- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            delay_floor = 0.0
            started = trio.current_time()
            try:
                await self._connect_once()
            except Exception as raw:
                exc = first_leaf(raw)
                if isinstance(exc, AuthError):
                    self.counts["auth_errors"] += 1
                    delay_floor = self._auth_refused(str(exc))
                elif isinstance(exc, ConnectionRejected):
                    self.counts["handshake_rejected"] += 1
                    if exc.status_code in (401, 403) and not self._retried_fresh_auth:
                        # a cached credential may have expired or been revoked: drop it and
                        # try once more at the normal pace before concluding we are refused
                        self._retried_fresh_auth = True
                        self.stream.on_auth_rejected()
                        self._log.warning(
                            "handshake refused; retrying with fresh credentials",
                            status=exc.status_code,
                        )
                    elif exc.status_code in (401, 403):
                        delay_floor = self._auth_refused(f"handshake HTTP {exc.status_code}")
                    else:
                        self._log.error("handshake refused", status=exc.status_code)
                elif isinstance(exc, _CONNECTION_ERRORS):
                    if isinstance(exc, ConnectionClosed) and _close_code(exc) == 1009:
                        # a frame above `Stream.max_message_size`: refused unread, reconnect
                        self.counts["oversized_frames"] += 1
                    self.counts["disconnects"] += 1
                    self._log.warning("connection ended", reason=_describe(exc))
                else:
                    raise
            finally:
                self._lost("disconnected")
            if trio.current_time() - started > 10.0:
                self.backoff.reset()
            delay = self.last_delay = self.backoff.next_delay(delay_floor)
            self.counts["reconnects"] += 1
            self._log.info("reconnecting", delay_s=round(delay, 3))
            await trio.sleep(delay)

    def _auth_refused(self, reason: str) -> float:
        """Credentials refused: retrying at once cannot help, so back off long and say so."""
        self._log.error(
            "authentication refused; backing off", reason=reason, delay_s=self.auth_backoff_s
        )
        self.stream.on_auth_rejected()
        self._on_status(
            VenueStatus(
                self.venue,
                VenueState.DISCONNECTED,
                self.epoch,
                reason=f"authentication refused: {reason}",
                stream=self.stream.name,
            )
        )
        return self.auth_backoff_s

    async def _connect_once(self) -> None:
        stream = self.stream
        url = await stream.url()
        _refuse_plain_remote(url)
        headers = [(k.encode(), v.encode()) for k, v in await stream.handshake_headers()]
        async with open_websocket_url(
            url,
            extra_headers=headers,
            max_message_size=stream.max_message_size,
            message_queue_size=1,
            # unlimited read size per receive: snapshots arrive in one gulp
            receive_buffer_size=None,
            connect_timeout=10,
        ) as ws:
            self.epoch += 1
            self.epoch_frames = 0
            local = ws.local
            # which connection is ours, for a test or a simulator that serves several per path
            self.local_port = getattr(local, "port", None)
            self._retried_fresh_auth = False
            stream.epoch = self.epoch
            self._resync.clear()
            self._force_reconnect = None
            self._set_state(VenueState.CONNECTED, "")
            conn = Connection(ws)
            send, recv = trio.open_memory_channel[tuple[Any, int]](self.queue_size)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._read, ws, send)
                if stream.ping_interval_s:
                    nursery.start_soon(self._ping, ws, stream.ping_interval_s)
                if stream.heartbeat_interval_s:
                    nursery.start_soon(self._heartbeat, conn, stream.heartbeat_interval_s)
                await stream.on_connected(conn)
                if self.epoch > 1:
                    self._on_reconnected(stream)
                await self._process(recv, conn)

    async def _read(self, ws: WebSocketConnection, send: trio.MemorySendChannel) -> None:
        while True:
            message = await ws.get_message()
            try:
                send.send_nowait((message, time.monotonic_ns()))
            except trio.WouldBlock:
                self.counts["queue_overflow"] += 1
                raise Reconnect("receive queue overflow: consumer too slow") from None

    async def _ping(self, ws: WebSocketConnection, interval: float) -> None:
        while True:
            await trio.sleep(interval)
            with trio.fail_after(interval):
                await ws.ping()

    async def _heartbeat(self, conn: Connection, interval: float) -> None:
        while True:
            await trio.sleep(interval)
            await self.stream.send_heartbeat(conn)

    async def _process(self, recv: trio.MemoryReceiveChannel, conn: Connection) -> None:
        stream = self.stream
        decode = stream.decode
        tap = self.tap
        if tap is not None:
            decode = _tapped(tap, stream, decode)
        latency = self.latency
        monotonic_ns = time.monotonic_ns
        stale_after = stream.stale_after_s
        stale = False
        while True:
            try:
                item = recv.receive_nowait()
            except trio.WouldBlock:
                # Only an empty queue costs an await; a backlog is drained without scheduling.
                item = None
                with trio.move_on_after(stale_after):
                    item = await recv.receive()
                if item is None:
                    if stale:
                        raise Reconnect(f"no data for {2 * stale_after:.0f}s") from None
                    stale = True
                    self.counts["stale"] += 1
                    self._set_state(VenueState.STALE, f"no data for {stale_after:.0f}s")
                    self._on_books_lost(stream, "stale")
                    continue
            if stale:
                stale = False
                self._set_state(VenueState.CONNECTED, "data resumed")
            frame, recv_ns = item
            self.frames_received += 1
            self.epoch_frames += 1
            try:
                decode(frame, recv_ns)
            except AuthError:
                raise  # the venue refused our credentials in-band: `run` backs off
            except FrameError as exc:
                self._bad_frame(frame, str(exc))
            except Exception as exc:
                # a decoder bug or a frame shape nobody foresaw: never take the session down
                self._bad_frame(frame, f"{type(exc).__name__}: {exc}")
            if latency is not None:
                latency.record(monotonic_ns() - recv_ns)
            if self._frame_waiters:
                self._wake_waiters()
            if self._force_reconnect is not None:
                raise Reconnect(self._force_reconnect)
            if self._resync:
                await self._do_resync(conn)

    async def _do_resync(self, conn: Any) -> None:
        symbols, self._resync = self._resync, set()
        for symbol in sorted(symbols):
            self.counts["resyncs"] += 1
            self._log.warning("book resync", symbol=symbol)
            if not await self.stream.resync(conn, symbol):
                raise Reconnect(f"resync {symbol}")

    def _bad_frame(self, frame: str | bytes, reason: str) -> None:
        """A frame the decoder refused. Whatever it said is lost: this stream's books may now be
        wrong (unsynced, told, resynced) and its order news missing (the orders are asked for).
        """
        self.counts["bad_frames"] += 1
        excerpt = (
            frame[:_EXCERPT]
            if isinstance(frame, str)
            else frame[:_EXCERPT].decode("utf-8", "replace")
        )
        self._log.warning("bad frame skipped", reason=reason, excerpt=excerpt)
        stream = self.stream
        books = stream.books()
        if books:
            self.counts["bad_frame_resyncs"] += 1
            self._on_books_lost(stream, f"bad frame: {reason}"[:200])
            self._resync.update(books)
        if stream.reconcile_on_reconnect:
            self.counts["order_frames_skipped"] += 1
            self._on_gap(stream)

    def _wake_waiters(self) -> None:
        keep = []
        for n, event in self._frame_waiters:
            if self.epoch_frames >= n:
                event.set()
            else:
                keep.append((n, event))
        self._frame_waiters = keep

    def _lost(self, reason: str) -> None:
        self._on_books_lost(self.stream, reason)
        self._set_state(VenueState.DISCONNECTED, reason)

    def _set_state(self, state: VenueState, reason: str) -> None:
        if state is self.state and state is VenueState.DISCONNECTED:
            return
        self.state = state
        self._on_status(
            VenueStatus(self.venue, state, self.epoch, reason=reason, stream=self.stream.name)
        )


def _refuse_plain_remote(url: str) -> None:
    require_tls(url)


def require_tls(url: str) -> None:
    """TLS for every real venue: unencrypted ws:// and http:// only to this machine (simulators).

    The one rule for sessions, start-up fetches (`framework.transport.fetch`) and endpoint
    selection (`framework.transport.endpoints`); raises ValueError before any connection.
    """
    parts = urlsplit(url)
    if parts.scheme in ("ws", "http") and not is_loopback(parts.hostname or ""):
        kind = "ws://" if parts.scheme == "ws" else "HTTP"
        raise ValueError(f"refusing unencrypted {kind} to non-loopback host {parts.hostname}")
    if parts.scheme not in ("ws", "wss", "http", "https"):
        raise ValueError(f"not a ws/wss/http/https URL: {url[:80]!r}")


_CONNECTION_ERRORS = (
    # a token endpoint that fails (5xx, timeouts) during a reconnect is a transient fault too
    HttpProblem,
    httpx.HTTPError,
    ConnectionClosed,
    HandshakeError,
    OSError,
    Reconnect,
    trio.TooSlowError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
)


def _tapped(
    tap: Callable[[Stream, str | bytes, int], None],
    stream: Stream,
    decode: Callable[[str | bytes, int], None],
) -> Callable[[str | bytes, int], None]:
    def tapped(frame: str | bytes, recv_ns: int) -> None:
        tap(stream, frame, recv_ns)
        decode(frame, recv_ns)

    return tapped


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def first_leaf(exc: BaseException) -> BaseException:
    """The first real exception inside (possibly nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup):
        leaves = [e for e in exc.exceptions if not isinstance(e, trio.Cancelled)]
        exc = (leaves or list(exc.exceptions))[0]
    return exc


def _close_code(exc: ConnectionClosed) -> int | None:
    reason = getattr(exc, "reason", None)
    return getattr(reason, "code", None)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionClosed):
        return f"closed: {exc.reason}"
    return f"{type(exc).__name__}: {exc}"
