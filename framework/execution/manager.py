"""Order manager: submit, cancel and modify requests, each journaled before it leaves.

`OrderManager` is what strategies, risk and the engine call. It builds on `OrderLifecycle`
(the session's orders, their checked transitions and fills) and `Reconciling` (journal restore,
UNKNOWN resolution, orphans at the venue). A request that times out or fails in transport
leaves the order UNKNOWN; reconciliation asks the venue until it knows.

Cancelling everything (`cancel_all`: the kill switch, shutdown) uses the venue's own bulk cancel
where its client has one (`supports_cancel_all`): one request, the orders marked
CANCEL_REQUESTED meanwhile and followed to their end by their reports or, failing those, a
query. Elsewhere, and for orders whose submit has not been answered yet, it cancels order by
order.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import structlog
import trio

from framework.errors import OrderNotFound, OrderRefused
from framework.events import (
    ExecutionReport,
    OrderModifyRejected,
    OrderRejected,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from framework.execution.checks import modify_refusal, order_refusal
from framework.execution.handle import ClientOrderIds, OrderHandle
from framework.execution.journal import Journal
from framework.execution.lifecycle import JOURNAL_ERRORS, JournalFailure
from framework.execution.reconcile import Reconciling
from framework.model import Instrument, Order
from framework.venue import ExecutionClient

log = structlog.get_logger("botrun.orders")

S = OrderStatus


class OrderManager(Reconciling):
    def __init__(
        self,
        journal: Journal,
        publish: Callable[[Any], None],
        *,
        request_timeout_s: float = 10.0,
        reconcile_interval_s: float = 2.0,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        super().__init__(
            journal,
            publish,
            request_timeout_s=request_timeout_s,
            reconcile_interval_s=reconcile_interval_s,
            clock_ns=clock_ns,
        )
        self.ids = ClientOrderIds()
        self._nursery: trio.Nursery | None = None
        # after a journal failure: how long the halt waits for open orders to end, and whether
        # the run then ends with `JournalFailure` (a test inspecting the halted state turns it off)
        self.halt_timeout_s = 30.0
        self.exit_on_journal_failure = True

    # --- wiring ----------------------------------------------------------------------------------

    def add_client(self, venue: str, client: ExecutionClient) -> None:
        self.clients[venue] = client

    def add_instruments(self, instruments: dict[str, Instrument]) -> None:
        for inst in instruments.values():
            self.instruments[(inst.venue, inst.symbol)] = inst

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Owns the request tasks and the reconciliation loop."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._reconcile_loop)
            task_status.started()
            await self._halt.wait()
            await self._halt_in_order()
            await trio.sleep_forever()

    async def _halt_in_order(self) -> None:
        """The journal failed: cancel every open order, keep writing the backlog until the disk
        takes it, then end the run with one line (`JournalFailure`)."""
        n = self.cancel_all(bulk=True)
        log.error("trading halted; cancelling open orders", reason=self.halted, cancelling=n)
        delay = 0.05
        with trio.move_on_after(self.halt_timeout_s):
            while True:
                flushed = self.flush_journal_backlog()
                if flushed and not self._open:
                    break
                self.cancel_open_again()
                await trio.sleep(delay)
                delay = min(1.0, delay * 2)
        left = len(self._open)
        backlog = len(self._journal_backlog)
        self.counts["halts"] += 1
        log.error("trading halted", reason=self.halted, open_orders=left, unwritten_journal=backlog)
        if self.exit_on_journal_failure:
            raise JournalFailure(
                f"trading halted, {self.halted}; open orders left: {left},"
                f" journal writes not done: {backlog}"
            )

    # --- strategy side ---------------------------------------------------------------------------

    def submit(
        self,
        *,
        venue: str,
        symbol: str,
        side: Side,
        quantity: Decimal,
        price: Decimal | None = None,
        type: OrderType = OrderType.LIMIT,
        tif: TimeInForce = TimeInForce.GTC,
        post_only: bool = False,
        expire_at_ns: int | None = None,
        strategy: str = "",
        stop_price: Decimal | None = None,
        client_order_id: str | None = None,
    ) -> OrderHandle:
        """`client_order_id`: one chosen by the caller (a remote strategy's, so that a command
        delivered twice is recognised as one order); a fresh one otherwise."""
        now = self.clock_ns()
        client = self.clients.get(venue)
        max_len = client.client_order_id_max_len if client else 32
        order = Order(
            client_order_id=client_order_id or self.ids.next(max_len),
            venue=venue,
            symbol=symbol,
            side=Side(side),
            type=OrderType(type),
            quantity=quantity,
            price=price,
            tif=TimeInForce(tif),
            post_only=post_only,
            expire_at_ns=expire_at_ns,
            stop_price=stop_price,
            strategy=strategy,
            created_ns=now,
            updated_ns=now,
        )
        reason = self._refusal(order, client)
        if reason is None and self.halted is not None:
            reason = f"trading halted: {self.halted}"
        intent = 0
        if reason is None:
            try:
                intent = self.journal.record_intent(order)
            except JOURNAL_ERRORS as exc:
                # the intent is not on disk, so the order never leaves
                self.journal_failed(exc)
                # (`type` is this method's order-type parameter here)
                reason = f"journal write failed: {exc.__class__.__name__}: {exc}"
        handle = OrderHandle(order)
        self.orders[order.client_order_id] = order
        self.handles[order.client_order_id] = handle
        if reason is not None:
            # refused before it leaves: never journaled as an intent, never sent
            order.status = S.REJECTED
            order.reason = reason
            self.counts["refused"] += 1
            log.warning(
                "order refused",
                venue=venue,
                symbol=symbol,
                client_order_id=order.client_order_id,
                reason=reason,
            )
            self.publish(self._event(order, OrderRejected, reason=reason))
            self._retire(order)
            return handle
        self._open[order.client_order_id] = order
        self.counts["submitted"] += 1
        self._submit_ns[order.client_order_id] = self.mono_ns()
        self._submitting.add(order.client_order_id)
        self._nursery_spawn(self._send_submit, order, intent)
        return handle

    def cancel(self, client_order_id: str) -> bool:
        order = self.orders.get(client_order_id)
        if order is None or not order.is_open or order.cancel_pending:
            return False
        order.cancel_pending = True
        order.cancel_wanted = True
        self._nursery_spawn(self._send_cancel, order)
        return True

    def cancel_open_again(self) -> None:
        """A round of winding down (shutdown, halt): an UNKNOWN order is asked about, a working
        order whose cancel is not in flight (it failed, or the venue refused it) is cancelled
        again. A CANCEL_REQUESTED order waits for the venue (asked again, a cancel would only
        repeat itself every round)."""
        for order in self.open_orders():
            if order.status is S.UNKNOWN:
                self._reconcile_wakeup.set()
            elif not order.cancel_pending and order.status not in (S.PENDING, S.CANCEL_REQUESTED):
                self.cancel(order.client_order_id)

    def modify(
        self,
        client_order_id: str,
        *,
        price: Decimal | None = None,
        quantity: Decimal | None = None,
    ) -> bool:
        """Ask the venue to amend a working order; the order changes when the venue confirms."""
        order = self.orders.get(client_order_id)
        reason = self._modify_refusal(order, price, quantity)
        if reason is not None:
            log.warning("modify refused", client_order_id=client_order_id, reason=reason)
            self.counts["modify_refused"] += 1
            return False
        assert order is not None
        if quantity is not None:
            order.modify_quantity = quantity
        self._nursery_spawn(self._send_modify, order, price, quantity)
        return True

    def _modify_refusal(
        self, order: Order | None, price: Decimal | None, quantity: Decimal | None
    ) -> str | None:
        inst = None if order is None else self.instruments.get((order.venue, order.symbol))
        return modify_refusal(order, price, quantity, inst)

    async def _send_modify(
        self, order: Order, price: Decimal | None, quantity: Decimal | None
    ) -> None:
        client = self.clients[order.venue]
        async with self._lock(order):
            if not order.is_open:
                return
            try:
                with trio.fail_after(self.request_timeout_s):
                    report = await client.modify(order, price, quantity)
            except OrderRefused as exc:
                log.warning(
                    "modify refused",
                    venue=order.venue,
                    client_order_id=order.client_order_id,
                    reason=exc.reason,
                )
                self.counts["modify_refused"] += 1
                self.publish(self._event(order, OrderModifyRejected, reason=exc.reason))
                return
            except Exception as exc:
                self._to_unknown(order, f"modify: {type(exc).__name__}: {exc}")
                return
            if report is not None:
                self.on_execution(report)

    def cancel_all(
        self, venue: str | None = None, symbol: str | None = None, *, bulk: bool = False
    ) -> int:
        """Cancel every open order (of `venue`, of `symbol`); returns how many were asked for.

        With `bulk` (the kill switch, shutdown), per venue with a bulk cancel one request covers
        the orders the venue has heard of; an order whose submit is unanswered is cancelled on
        its own once the submit lands. A venue's bulk cancel also ends orders this process does
        not track (another process's, a manual one), so a strategy's own `cancel_all` never
        uses it: it cancels what it tracks, order by order.
        """
        n = 0
        by_venue: dict[str, list[Order]] = {}
        for order in self.open_orders(venue, symbol):
            client = self.clients.get(order.venue)
            if (
                bulk
                and client is not None
                and client.supports_cancel_all
                and not order.cancel_pending
                and order.status is not S.PENDING
                and order.client_order_id not in self._submitting
            ):
                by_venue.setdefault(order.venue, []).append(order)
            else:
                n += self.cancel(order.client_order_id)
        for name, orders in by_venue.items():
            for order in orders:
                order.cancel_pending = True
            self._nursery_spawn(self._send_cancel_all, name, symbol, orders)
            n += len(orders)
        return n

    def _refusal(self, order: Order, client: ExecutionClient | None) -> str | None:
        reason = order_refusal(order, client, self.instruments.get((order.venue, order.symbol)))
        if reason is None and self.risk is not None:
            return self.risk.check(order)
        return reason

    # --- requests --------------------------------------------------------------------------------

    def _resend_cancel(self, order: Order) -> None:
        if self._nursery is not None and self.cancel(order.client_order_id):
            log.info(
                "cancel sent again: its outcome was unknown and the order is working",
                venue=order.venue,
                client_order_id=order.client_order_id,
            )

    def _nursery_spawn(self, fn: Callable[..., Any], *args: Any) -> None:
        if self._nursery is None:
            raise RuntimeError("OrderManager.run() is not running")
        self._nursery.start_soon(fn, *args)

    async def _send_submit(self, order: Order, intent: int) -> None:
        try:
            try:
                await self.journal.durable(intent)  # nothing leaves before its intent is on disk
            except OSError as exc:
                # the disk refused: the intent may not survive a power loss, so it never leaves
                if order.status is S.PENDING:
                    self._transition(order, S.REJECTED, reason=f"journal fsync failed: {exc}")
                self.journal_failed(exc)
                return
            await self._submit_once(order)
        finally:
            self._submitting.discard(order.client_order_id)
        # a cancel asked for while the submit was in flight goes now, also when the submit's
        # outcome is UNKNOWN: the order may well be working at the venue
        if order.cancel_pending and order.is_open:
            await self._send_cancel(order)

    async def _submit_once(self, order: Order) -> None:
        client = self.clients[order.venue]
        async with _taken(self._lock(order)):
            if order.status is not S.PENDING:
                return  # settled before it left (cancelled while pending): never sent
            self._transition(order, S.SUBMITTED)
            report = None
            self._stamp_send(order)
            self._sent_at[order.client_order_id] = trio.current_time()
            try:
                with trio.fail_after(self.request_timeout_s):
                    report = await client.submit(order)
            except OrderRefused as exc:
                self._stamp_ack(order)
                self._transition(order, S.REJECTED, reason=exc.reason)
                return
            except Exception as exc:  # transport error, timeout: the venue may or may not have it
                self._to_unknown(order, f"submit: {type(exc).__name__}: {exc}")
            else:
                if report is not None:
                    self.on_execution(report)

    async def _send_cancel(self, order: Order) -> None:
        client = self.clients[order.venue]
        async with self._lock(order):
            if not order.cancel_pending or not order.is_open:
                return  # already sent (by the submit task, once it landed) or nothing to cancel
            if order.status is S.PENDING:
                # the submit has not left yet; `_send_submit` cancels once it lands
                return
            if order.status not in (S.UNKNOWN, S.CANCEL_REQUESTED):  # (a bulk cancel's fallback)
                self._transition(order, S.CANCEL_REQUESTED)
            try:
                with trio.fail_after(self.request_timeout_s):
                    report = await client.cancel(order)
            except (OrderRefused, OrderNotFound) as exc:
                # the venue would not cancel (already filled, cancelled...): ask what it is
                order.cancel_pending = False
                order.cancel_wanted = False  # the venue's answer settles it
                log.info(
                    "cancel refused; reconciling",
                    venue=order.venue,
                    client_order_id=order.client_order_id,
                    reason=str(exc),
                )
                if order.status is S.CANCEL_REQUESTED:
                    self.on_execution(
                        ExecutionReport(
                            order.venue,
                            order.client_order_id,
                            status=S.ACCEPTED,
                            reason=f"cancel refused: {exc}",
                            cancel_rejected=True,
                        )
                    )
                await self._reconcile(order)
                return
            except Exception as exc:
                order.cancel_pending = False
                self._to_unknown(order, f"cancel: {type(exc).__name__}: {exc}")
                return
            order.cancel_pending = False
            if report is not None:
                self.on_execution(report)

    def _stamp_send(self, order: Order) -> None:
        coid = order.client_order_id
        now = self.mono_ns()
        submitted = self._submit_ns.pop(coid, None)
        if submitted is not None:
            self.latency.hist(order.venue, "submit_to_send").record(now - submitted)
        self._sent_ns[coid] = now

    async def _send_cancel_all(self, venue: str, symbol: str | None, orders: list[Order]) -> None:
        client = self.clients[venue]
        for order in orders:
            if order.is_open and order.status not in (S.UNKNOWN, S.CANCEL_REQUESTED):
                self._transition(order, S.CANCEL_REQUESTED)
        self.counts["bulk_cancels"] += 1
        try:
            with trio.fail_after(self.request_timeout_s):
                await client.cancel_all(symbol)
        except Exception as exc:
            # refused, or an unknown outcome: one cancel per order settles either way
            self.counts["bulk_cancel_errors"] += 1
            log.warning(
                "bulk cancel failed; cancelling order by order",
                venue=venue,
                symbol=symbol,
                error=f"{type(exc).__name__}: {exc}",
            )
            for order in orders:
                order.cancel_pending = False
                self.cancel(order.client_order_id)
            return
        for order in orders:
            order.cancel_pending = False
        # each order's end comes with its own report; ask about those still open (a venue that
        # reports asynchronously may not have sent them yet: the query says where each stands)
        for order in orders:
            async with self._lock(order):
                if order.is_open:
                    await self._reconcile(order)


@asynccontextmanager
async def _taken(lock: trio.Lock) -> AsyncIterator[None]:
    """`async with lock`, without a scheduler pass when nobody holds it.

    trio's `Lock.acquire` always yields; on the submit path that lets every other runnable task
    (a session draining its backlog) run before the order leaves. The request that follows is
    the checkpoint.
    """
    try:
        lock.acquire_nowait()
    except trio.WouldBlock:
        await lock.acquire()
    try:
        yield
    finally:
        lock.release()
