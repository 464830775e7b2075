"""What a strategy holds for an order (`OrderHandle`) and where its client order id comes from."""

from __future__ import annotations

import itertools
import secrets
import time

import trio

from framework.events import OrderStatus
from framework.model import Order

_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(n: int) -> str:
    out = []
    while True:
        n, r = divmod(n, 36)
        out.append(_B36[r])
        if n == 0:
            return "".join(reversed(out))


class ClientOrderIds:
    """Unique ids: time (ms, base36) + a per-process counter + randomness, within a length limit."""

    def __init__(self, prefix: str = "br") -> None:
        self.prefix = prefix
        self._counter = itertools.count()
        self._salt = _base36(secrets.randbits(20)).rjust(4, "0")

    def next(self, max_len: int) -> str:
        body = f"{_base36(time.time_ns() // 1_000_000)}{self._salt}{_base36(next(self._counter))}"
        coid = f"{self.prefix}{body}"
        if len(coid) > max_len:
            coid = body[-max_len:]
        return coid


class OrderHandle:
    """What `Strategy.buy`/`sell` return at once. Await `done()` for the final state."""

    def __init__(self, order: Order) -> None:
        self.order = order
        self._done = trio.Event()
        if order.status.is_terminal:
            self._done.set()

    @property
    def client_order_id(self) -> str:
        return self.order.client_order_id

    @property
    def status(self) -> OrderStatus:
        return self.order.status

    async def done(self) -> Order:
        await self._done.wait()
        return self.order

    def _finish(self) -> None:
        self._done.set()

    def __repr__(self) -> str:
        return f"OrderHandle({self.order.client_order_id}, {self.order.status.value})"
