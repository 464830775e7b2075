"""The order manager's test harness: a recording fake client, an event recorder, a running
manager on trio's MockClock (`autojump_clock`): time passes only when every task is blocked, so
timeouts fire at once and nothing waits for real."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal as D
from typing import Any

import trio
import trio.testing

from framework.events import (
    ExecutionReport,
    OrderEvent,
    OrderStatus,
    Side,
)
from framework.execution.handle import OrderHandle
from framework.execution.journal import Journal
from framework.execution.manager import OrderManager
from framework.model import Instrument, Order
from framework.venue import ExecutionClient

S = OrderStatus
VENUE, SYM = "paxos", "BTCUSD"
INSTRUMENT = Instrument(
    VENUE,
    SYM,
    "BTC",
    "USD",
    tick=D("0.25"),
    lot=D("0.001"),
    min_qty=D("0.002"),
    max_qty=D("100"),
    min_notional=D("1"),
)
# virtual seconds (MockClock): a guard against a hang, never a synchronisation
HANG_GUARD_S = 600

Submit = Callable[[Order], Awaitable[ExecutionReport | None]]


def report(order: Order | str, **kw: Any) -> ExecutionReport:
    coid = order if isinstance(order, str) else order.client_order_id
    return ExecutionReport(VENUE, coid, **kw)


class FakeClient(ExecutionClient):
    """Records every call; each behaviour is a replaceable coroutine function."""

    venue = VENUE

    def __init__(self, max_len: int = 32) -> None:
        self.client_order_id_max_len = max_len
        self.calls: list[tuple[str, str]] = []
        self.on_submit: Submit = self.accept
        self.on_cancel: Submit = self.cancelled
        self.on_query: Submit = self.unknown
        self.listings = 0
        self.on_list: Callable[[], Awaitable[list[ExecutionReport]]] = self.nothing_listed
        self.on_cancel_all: Callable[[str | None], Awaitable[None]] = self.bulk_noop

    @staticmethod
    async def accept(order: Order) -> ExecutionReport | None:
        return report(order, status=S.ACCEPTED, venue_order_id=f"v-{order.client_order_id}")

    @staticmethod
    async def cancelled(order: Order) -> ExecutionReport | None:
        return report(order, status=S.CANCELLED)

    @staticmethod
    async def unknown(order: Order) -> ExecutionReport | None:
        return None

    @staticmethod
    async def nothing_listed() -> list[ExecutionReport]:
        return []

    @staticmethod
    async def bulk_noop(symbol: str | None) -> None:
        return None

    @staticmethod
    async def no_answer(order: Order) -> ExecutionReport | None:
        return None

    async def submit(self, order: Order) -> ExecutionReport | None:
        self.calls.append(("submit", order.client_order_id))
        return await self.on_submit(order)

    async def cancel(self, order: Order) -> ExecutionReport | None:
        self.calls.append(("cancel", order.client_order_id))
        return await self.on_cancel(order)

    async def cancel_all(self, symbol: str | None = None) -> None:
        self.calls.append(("cancel_all", symbol or ""))
        await self.on_cancel_all(symbol)

    async def list_open_orders(self) -> list[ExecutionReport]:
        self.listings += 1
        return await self.on_list()

    async def query_order(self, order: Order) -> ExecutionReport | None:
        self.calls.append(("query", order.client_order_id))
        return await self.on_query(order)

    def calls_for(self, coid: str) -> list[str]:
        return [what for what, c in self.calls if c == coid]


class Recorder:
    """The manager's `publish`: keeps events, and lets a test wait for a condition on them."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self._waiters: list[tuple[Callable[[], bool], trio.Event]] = []

    def __call__(self, event: Any) -> None:
        self.events.append(event)
        for predicate, done in self._waiters:
            if predicate():
                done.set()

    async def until(self, predicate: Callable[[], bool]) -> None:
        if predicate():
            return
        done = trio.Event()
        self._waiters.append((predicate, done))
        with trio.fail_after(HANG_GUARD_S):
            await done.wait()

    async def until_status(self, order: Order | OrderHandle, status: OrderStatus) -> None:
        target = order.order if isinstance(order, OrderHandle) else order
        await self.until(lambda: target.status is status)

    def of(self, coid: str) -> list[OrderEvent]:
        return [e for e in self.events if e.client_order_id == coid]

    def types(self, coid: str) -> list[type]:
        return [type(e) for e in self.of(coid)]


class Harness:
    def __init__(self, journal: Journal, client: FakeClient | None, timeout_s: float) -> None:
        self.journal = journal
        self.client = client or FakeClient()
        self.events = Recorder()
        ticks = itertools.count(1_000)
        self.om = OrderManager(
            journal,
            self.events,
            request_timeout_s=timeout_s,
            reconcile_interval_s=2.0,
            clock_ns=lambda: next(ticks),
        )
        self.om.add_client(VENUE, self.client)
        self.om.add_instruments({SYM: INSTRUMENT})

    def buy(self, qty: str = "1", price: str | None = "100", **kw: Any) -> OrderHandle:
        return self.om.submit(
            venue=kw.pop("venue", VENUE),
            symbol=kw.pop("symbol", SYM),
            side=Side.BUY,
            quantity=D(qty),
            price=None if price is None else D(price),
            strategy="t",
            **kw,
        )

    async def accepted(self, qty: str = "1", price: str = "100") -> Order:
        handle = self.buy(qty, price)
        await self.events.until_status(handle, S.ACCEPTED)
        return handle.order


async def done(handle: OrderHandle) -> Order:
    """`handle.done()`, failing (in virtual time) instead of hanging if it never finishes."""
    with trio.fail_after(HANG_GUARD_S):
        return await handle.done()


@asynccontextmanager
async def running(
    journal: Journal | None = None, *, client: FakeClient | None = None, timeout_s: float = 5.0
) -> AsyncIterator[Harness]:
    h = Harness(journal or Journal(":memory:"), client, timeout_s)
    async with trio.open_nursery() as nursery:
        await nursery.start(h.om.run)
        try:
            yield h
        finally:
            nursery.cancel_scope.cancel()
