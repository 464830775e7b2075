"""Request/response correlation by id over one connection (WS venues with request ids).

A venue stream registers an id for the length of a request (`with correlator.expect(id):`) and
resolves it from its decoder when the reply arrives (replies may come out of order). The caller
awaits the reply with a timeout; a reply for an id nobody waits for is counted and returned to the
decoder to handle as unsolicited.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import trio

from framework.errors import RequestTimeout


class _Pending:
    __slots__ = ("event", "reply")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.reply: Any = None


class Correlator:
    def __init__(self, prefix: str = "", max_len: int = 64) -> None:
        self._pending: dict[str, _Pending] = {}
        self._ids = itertools.count(1)
        self._prefix = prefix
        self._max_len = max_len
        self.counts: Counter[str] = Counter()

    def new_id(self) -> str:
        rid = f"{self._prefix}{next(self._ids)}"
        return rid[-self._max_len :]

    def register(self, request_id: str) -> None:
        if request_id in self._pending:
            raise ValueError(f"request id {request_id!r} already in flight")
        self._pending[request_id] = _Pending()

    @contextmanager
    def expect(self, request_id: str) -> Iterator[None]:
        """Register `request_id` for the block, and forget it however the block ends: a request
        cancelled or failed while being sent must not stay pending for the connection's life."""
        self.register(request_id)
        try:
            yield
        finally:
            self._pending.pop(request_id, None)

    def resolve(self, request_id: str, reply: Any) -> bool:
        """Deliver a reply; False if nobody is waiting for this id (unsolicited or late)."""
        pending = self._pending.get(request_id)
        if pending is None or pending.event.is_set():
            self.counts["unmatched"] += 1
            return False
        pending.reply = reply
        pending.event.set()
        return True

    async def wait(self, request_id: str, timeout_s: float) -> Any:
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
            self._pending.pop(request_id, None)

    def fail_all(self, reason: Any) -> None:
        """The connection is gone: wake every waiter with `reason` as its reply."""
        for pending in self._pending.values():
            if not pending.event.is_set():
                pending.reply = reason
                pending.event.set()

    def in_flight(self) -> int:
        return len(self._pending)
