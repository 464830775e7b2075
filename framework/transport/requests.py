"""Request/reply correlation over one supervised WebSocket: the mechanism no venue writes again.

Venues answer requests in different ways: some echo a request id (`requestId`) or a user tag
(`user_tag`), some answer an order request with the order's own lifecycle message (naming only
its client order id), some echo nothing at all, so the replies to one kind of request on one
channel come back in the order the requests went out. A request is therefore registered under a
*set of keys*, each standing for one way a reply may name it:

- its identity, the first key: a request id the venue may echo (unique while in flight);
- any further keys, shared by requests in flight: e.g. `("client_order_id", coid)` for the
  order's lifecycle message, `("command", "GET", channel)` for replies that name only what was
  asked. Several requests under one shared key are answered oldest first.

The stream's decoder hands each message that may be a reply to `resolve(key, reply)` for each key
the message carries; the first matching message resolves the request (and only that one: it is
then forgotten under all its keys). A request is forgotten however it ends: replied, timed out
(`RequestTimeout`: its outcome is unknown, the order manager marks it UNKNOWN and queries),
cancelled, or failed while sending.

`RequestChannel` puts this over the stream's current connection (the session supervises the
socket; the stream hands each new connection to `connected`, which fails the requests of the old
one: their replies will never come).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import trio
from trio_websocket import ConnectionClosed

from framework.errors import ConnectionLost, NotConnected, RequestTimeout

Key = Hashable


class _Lost:
    """The reply given to requests whose connection went away."""

    def __repr__(self) -> str:
        return "LOST"


LOST: Any = _Lost()


class _Pending:
    __slots__ = ("event", "keys", "reply")

    def __init__(self, keys: tuple[Key, ...]) -> None:
        self.keys = keys
        self.event = trio.Event()
        self.reply: Any = None


class Correlator:
    """Requests in flight by key; replies resolve them (out of order, or oldest first per key)."""

    def __init__(self, prefix: str = "", max_len: int = 64) -> None:
        self._pending: dict[Key, _Pending] = {}  # identity -> request
        self._by_key: dict[Key, list[_Pending]] = {}  # any key -> unanswered requests, oldest first
        self._ids = itertools.count(1)
        self._prefix = prefix
        self._max_len = max_len
        self.counts: Counter[str] = Counter()

    def new_id(self) -> str:
        rid = f"{self._prefix}{next(self._ids)}"
        return rid[-self._max_len :]

    def register(self, request_id: Key, *keys: Key) -> None:
        """Register a request by its identity and any further keys a reply may name it by."""
        if request_id in self._pending:
            raise ValueError(f"request id {request_id!r} already in flight")
        pending = _Pending((request_id, *dict.fromkeys(k for k in keys if k != request_id)))
        self._pending[request_id] = pending
        for key in pending.keys:
            self._by_key.setdefault(key, []).append(pending)

    @contextmanager
    def expect(self, request_id: Key, *keys: Key) -> Iterator[None]:
        """Register the request for the block, and forget it however the block ends: a request
        cancelled or failed while being sent must not stay pending for the connection's life."""
        self.register(request_id, *keys)
        try:
            yield
        finally:
            self._forget(request_id)

    def waiting(self, key: Key) -> bool:
        """Would a message naming `key` answer a request? (Cheap: for lifecycle messages.)"""
        return key in self._by_key

    def resolve(self, key: Key, reply: Any) -> bool:
        """Deliver a reply to the oldest unanswered request under `key`; False if there is none
        (an unsolicited or late reply: the caller handles the message as it would otherwise)."""
        waiters = self._by_key.get(key)
        if not waiters:
            self.counts["unmatched"] += 1
            return False
        pending = waiters[0]
        pending.reply = reply
        pending.event.set()
        self._unlist(pending)  # answered: no later message may answer it again
        return True

    def resolve_first(self, keys: Iterable[Key], reply: Any) -> bool:
        """Resolve by the first of `keys` that some request waits for; False if none does
        (not counted as unmatched: most lifecycle messages answer nothing)."""
        for key in keys:
            if key in self._by_key:
                return self.resolve(key, reply)
        return False

    async def wait(self, request_id: Key, timeout_s: float) -> Any:
        pending = self._pending.get(request_id)
        if pending is None:
            raise KeyError(request_id)
        try:
            with trio.move_on_after(timeout_s):
                await pending.event.wait()
            if not pending.event.is_set():
                self.counts["timeouts"] += 1
                raise RequestTimeout(f"no reply to request {request_id} in {timeout_s}s")
            return pending.reply
        finally:
            self._forget(request_id)

    def fail_all(self, reason: Any) -> None:
        """The connection is gone: wake every waiter with `reason` as its reply."""
        for pending in list(self._pending.values()):
            if not pending.event.is_set():
                pending.reply = reason
                pending.event.set()
                self._unlist(pending)

    def in_flight(self) -> int:
        return len(self._pending)

    def _forget(self, request_id: Key) -> None:
        pending = self._pending.pop(request_id, None)
        if pending is not None:
            self._unlist(pending)

    def _unlist(self, pending: _Pending) -> None:
        for key in pending.keys:
            waiters = self._by_key.get(key)
            if waiters is None:
                continue
            try:
                waiters.remove(pending)
            except ValueError:
                continue
            if not waiters:
                del self._by_key[key]


# what a closed or closing socket raises on send: the request did not leave
_SEND_FAILED = (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError, OSError)


class RequestChannel:
    """Requests and their replies over a stream's current (supervised) connection."""

    def __init__(self, venue: str, *, prefix: str = "", max_len: int = 64) -> None:
        self.venue = venue
        self.correlator = Correlator(prefix=prefix, max_len=max_len)
        self.conn: Any = None

    def new_id(self) -> str:
        return self.correlator.new_id()

    def connected(self, conn: Any) -> None:
        """A new connection: requests sent on the old one will never be answered."""
        self.correlator.fail_all(LOST)
        self.conn = conn

    def resolve(self, key: Key, reply: Any) -> bool:
        return self.correlator.resolve(key, reply)

    def resolve_first(self, keys: Iterable[Key], reply: Any) -> bool:
        return self.correlator.resolve_first(keys, reply)

    def waiting(self, key: Key) -> bool:
        return self.correlator.waiting(key)

    async def request(
        self,
        message: Any,
        *,
        request_id: Key,
        keys: Iterable[Key] = (),
        timeout_s: float,
        what: str = "request",
    ) -> Any:
        """Send `message` (which carries `request_id` where the venue takes one) and return the
        first reply under any of its keys.

        Raises `NotConnected` if it could not be sent (it did not leave), `ConnectionLost` if the
        connection was replaced before the reply, `RequestTimeout` if no reply came in time.
        """

        async def send(conn: Any) -> None:
            await conn.send(message)

        return await self.call(
            send, request_id=request_id, keys=keys, timeout_s=timeout_s, what=what
        )

    async def call(
        self,
        send: Callable[[Any], Awaitable[None]],
        *,
        request_id: Key,
        keys: Iterable[Key] = (),
        timeout_s: float,
        what: str = "request",
        conn: Any = None,
    ) -> Any:
        """`request` for a request that takes several messages: `send(conn)` sends them."""
        conn = self.conn if conn is None else conn
        if conn is None:
            raise NotConnected(f"{self.venue}: not connected")
        with self.correlator.expect(request_id, *keys):
            try:
                await send(conn)
            except _SEND_FAILED as exc:
                # a closed socket raises before writing: the request did not leave
                raise NotConnected(f"{self.venue}: send failed: {exc!r}") from None
            reply = await self.correlator.wait(request_id, timeout_s)
        if reply is LOST:
            raise ConnectionLost(f"{self.venue}: connection lost waiting for the {what} reply")
        return reply
