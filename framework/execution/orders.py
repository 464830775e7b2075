"""Order manager: client order ids, the checked lifecycle, fills, and the road back from UNKNOWN.

Every order goes PENDING (intent journaled) → SUBMITTED (request leaving) → whatever the venue
says. Transitions are checked against a table: an impossible one is logged, counted and not
applied; real-world ones (a fill after a cancel request, a cancel overtaking the accept) are in
the table. Fills are de-duplicated by venue fill id, in memory and by the journal's primary key.
A request that times out or fails in transport leaves the order UNKNOWN; reconciliation asks the
venue until it knows.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import structlog
import trio

from framework.errors import OrderNotFound, OrderRefused
from framework.events import (
    ExecutionReport,
    OrderAccepted,
    OrderCancelled,
    OrderCancelRequested,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderModified,
    OrderModifyRejected,
    OrderPartiallyFilled,
    OrderRejected,
    OrderStatus,
    OrderSubmitted,
    OrderType,
    OrderUnknown,
    Side,
    TimeInForce,
)
from framework.execution.journal import Journal
from framework.latency import LatencyStats
from framework.model import Instrument, Order
from framework.venue import ExecutionClient

log = structlog.get_logger("botrun.orders")

S = OrderStatus
_ZERO = Decimal(0)
_STOPS = frozenset({OrderType.STOP_MARKET, OrderType.STOP_LIMIT})

# from -> allowed targets. UNKNOWN may resolve to anything; terminal states go nowhere.
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.PENDING: frozenset({S.SUBMITTED, S.REJECTED, S.UNKNOWN, S.CANCELLED}),
    S.SUBMITTED: frozenset(
        {
            S.ACCEPTED,
            S.PARTIALLY_FILLED,
            S.FILLED,
            S.REJECTED,
            S.CANCEL_REQUESTED,
            S.CANCELLED,
            S.EXPIRED,
            S.UNKNOWN,
        }
    ),
    S.ACCEPTED: frozenset(
        {S.PARTIALLY_FILLED, S.FILLED, S.CANCEL_REQUESTED, S.CANCELLED, S.EXPIRED, S.UNKNOWN}
    ),
    S.PARTIALLY_FILLED: frozenset(
        {S.PARTIALLY_FILLED, S.FILLED, S.CANCEL_REQUESTED, S.CANCELLED, S.EXPIRED, S.UNKNOWN}
    ),
    # a fill may still arrive after we asked to cancel; a refused cancel returns to working
    S.CANCEL_REQUESTED: frozenset(
        {S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.EXPIRED, S.ACCEPTED, S.UNKNOWN}
    ),
    S.UNKNOWN: frozenset(
        {
            S.SUBMITTED,
            S.ACCEPTED,
            S.PARTIALLY_FILLED,
            S.FILLED,
            S.CANCEL_REQUESTED,
            S.CANCELLED,
            S.REJECTED,
            S.EXPIRED,
        }
    ),
    S.FILLED: frozenset(),
    S.CANCELLED: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
}

_EVENT_FOR: dict[OrderStatus, type[OrderEvent]] = {
    S.SUBMITTED: OrderSubmitted,
    S.ACCEPTED: OrderAccepted,
    S.REJECTED: OrderRejected,
    S.CANCEL_REQUESTED: OrderCancelRequested,
    S.CANCELLED: OrderCancelled,
    S.EXPIRED: OrderExpired,
    S.UNKNOWN: OrderUnknown,
}

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


class OrderManager:
    def __init__(
        self,
        journal: Journal,
        publish: Callable[[Any], None],
        *,
        request_timeout_s: float = 10.0,
        reconcile_interval_s: float = 2.0,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.journal = journal
        self.publish = publish
        self.request_timeout_s = request_timeout_s
        self.reconcile_interval_s = reconcile_interval_s
        self.clock_ns = clock_ns
        self.ids = ClientOrderIds()
        self.clients: dict[str, ExecutionClient] = {}
        self.instruments: dict[tuple[str, str], Instrument] = {}
        self.orders: dict[str, Order] = {}
        self.handles: dict[str, OrderHandle] = {}
        self.counts: Counter[str] = Counter()
        self.risk: Any = None  # framework.risk.RiskManager, set by the runner
        self._by_venue_id: dict[tuple[str, str], str] = {}
        self._open: dict[str, Order] = {}  # working orders (not terminal), in submit order
        # terminal orders kept in memory for late reports; older ones live only in the journal
        self.retain_terminal = 2_000
        self._retired: deque[str] = deque()
        self.final_states: Counter[str] = Counter()
        self._locks: dict[str, trio.Lock] = {}
        self._nursery: trio.Nursery | None = None
        self._reconcile_wakeup = trio.Event()
        # submit -> send -> ack histograms per venue (monotonic; a backtest sets its own clock)
        self.latency = LatencyStats()
        self.mono_ns: Callable[[], int] = time.monotonic_ns
        self._submit_ns: dict[str, int] = {}
        self._sent_ns: dict[str, int] = {}
        self._submitting: set[str] = set()  # submits not yet answered (or failed) in this run

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
            await trio.sleep_forever()

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
    ) -> OrderHandle:
        now = self.clock_ns()
        client = self.clients.get(venue)
        max_len = client.client_order_id_max_len if client else 32
        order = Order(
            client_order_id=self.ids.next(max_len),
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
        intent = self.journal.record_intent(order)
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
        self._nursery_spawn(self._send_cancel, order)
        return True

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
        self._nursery_spawn(self._send_modify, order, price, quantity)
        return True

    def _modify_refusal(
        self, order: Order | None, price: Decimal | None, quantity: Decimal | None
    ) -> str | None:
        if order is None or not order.is_open:
            return "no such working order"
        if order.cancel_pending or order.status is S.CANCEL_REQUESTED:
            return "a cancel is in flight"
        if price is None and quantity is None:
            return "nothing to change"
        if price is not None and price <= 0:
            return "price must be positive"
        if quantity is not None and quantity <= order.filled_qty:
            return f"quantity must stay above the filled {order.filled_qty}"
        inst = self.instruments.get((order.venue, order.symbol))
        if inst is not None and price is not None and inst.tick and price % inst.tick != 0:
            return f"price {price} is not a multiple of tick {inst.tick}"
        if inst is not None and quantity is not None and inst.lot and quantity % inst.lot != 0:
            return f"quantity {quantity} is not a multiple of lot {inst.lot}"
        return None

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

    def cancel_all(self, venue: str | None = None, symbol: str | None = None) -> int:
        n = 0
        for order in self.open_orders(venue, symbol):
            n += self.cancel(order.client_order_id)
        return n

    def open_orders(self, venue: str | None = None, symbol: str | None = None) -> list[Order]:
        # from the open index, not every order of the session: risk checks call this per order
        return [
            o
            for o in self._open.values()
            if venue in (None, o.venue) and symbol in (None, o.symbol)
        ]

    def _refusal(self, order: Order, client: ExecutionClient | None) -> str | None:
        if client is None:
            return f"venue {order.venue!r} takes no orders in this session"
        if order.type not in client.order_types:
            return f"{order.venue} does not take {order.type.value} orders"
        if not isinstance(order.quantity, Decimal) or not order.quantity.is_finite():
            return "quantity must be a finite Decimal"
        if order.quantity <= 0:
            return "quantity must be positive"
        if order.type in _STOPS:
            if order.stop_price is None:
                return "stop order needs a stop_price"
            if not isinstance(order.stop_price, Decimal) or not order.stop_price.is_finite():
                return "stop_price must be a finite Decimal"
            if order.stop_price <= 0:
                return "stop_price must be positive"
        elif order.stop_price is not None:
            return f"a {order.type.value} order takes no stop_price (use STOP_MARKET / STOP_LIMIT)"
        if order.type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            if order.price is None:
                kind = "limit" if order.type is OrderType.LIMIT else "stop-limit"
                return f"{kind} order needs a price"
            if not isinstance(order.price, Decimal) or not order.price.is_finite():
                return "price must be a finite Decimal"
            if order.price <= 0:
                return "price must be positive"
        if order.post_only and order.type is not OrderType.LIMIT:
            return "post-only needs a limit order"
        if order.tif is TimeInForce.GTD and order.expire_at_ns is None:
            return "GTD order needs expire_at_ns"
        inst = self.instruments.get((order.venue, order.symbol))
        if inst is None:
            return f"unknown symbol {order.symbol!r} on {order.venue}"
        if inst.lot and order.quantity % inst.lot != 0:
            return f"quantity {order.quantity} is not a multiple of lot {inst.lot}"
        if inst.min_qty is not None and order.quantity < inst.min_qty:
            return f"quantity {order.quantity} below minimum {inst.min_qty}"
        if inst.max_qty is not None and order.quantity > inst.max_qty:
            return f"quantity {order.quantity} above maximum {inst.max_qty}"
        if order.price is not None and inst.tick and order.price % inst.tick != 0:
            return f"price {order.price} is not a multiple of tick {inst.tick}"
        if order.stop_price is not None and inst.tick and order.stop_price % inst.tick != 0:
            return f"stop_price {order.stop_price} is not a multiple of tick {inst.tick}"
        # a stop market's notional is estimated at its trigger
        priced = order.price if order.price is not None else order.stop_price
        if (
            inst.min_notional is not None
            and priced is not None
            and priced * order.quantity < inst.min_notional
        ):
            return f"notional below minimum {inst.min_notional}"
        if self.risk is not None:
            return self.risk.check(order)
        return None

    # --- requests --------------------------------------------------------------------------------

    def _nursery_spawn(self, fn: Callable[..., Any], *args: Any) -> None:
        if self._nursery is None:
            raise RuntimeError("OrderManager.run() is not running")
        self._nursery.start_soon(fn, *args)

    def _lock(self, order: Order) -> trio.Lock:
        coid = order.client_order_id
        lock = self._locks.get(coid)
        if lock is None:
            lock = trio.Lock()
            if coid in self._open:  # a finished order's lock is dropped by `_finished`: keep none
                self._locks[coid] = lock
        return lock

    async def _send_submit(self, order: Order, intent: int) -> None:
        try:
            try:
                await self.journal.durable(intent)  # nothing leaves before its intent is on disk
            except OSError as exc:
                # the disk refused: the intent may not survive a power loss, so it never leaves
                if order.status is S.PENDING:
                    self._transition(order, S.REJECTED, reason=f"journal fsync failed: {exc}")
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
            if order.status is not S.UNKNOWN:
                self._transition(order, S.CANCEL_REQUESTED)
            try:
                with trio.fail_after(self.request_timeout_s):
                    report = await client.cancel(order)
            except (OrderRefused, OrderNotFound) as exc:
                # the venue would not cancel (already filled, cancelled...): ask what it is
                order.cancel_pending = False
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

    def _stamp_ack(self, order: Order) -> None:
        sent = self._sent_ns.pop(order.client_order_id, None)
        if sent is not None:
            self.latency.hist(order.venue, "send_to_ack").record(self.mono_ns() - sent)

    def _to_unknown(self, order: Order, reason: str) -> None:
        self.counts["unknown"] += 1
        self._transition(order, S.UNKNOWN, reason=reason)
        self._reconcile_wakeup.set()

    # --- venue side ------------------------------------------------------------------------------

    def on_execution(self, report: ExecutionReport) -> None:
        """Apply what a venue said about one of our orders."""
        order = self.orders.get(report.client_order_id)
        if order is None and report.venue_order_id is not None:
            coid = self._by_venue_id.get((report.venue, report.venue_order_id))
            order = self.orders.get(coid) if coid else None
        if order is None:
            self.counts["reports_for_unknown_orders"] += 1
            log.warning(
                "report for an order this session does not know",
                venue=report.venue,
                client_order_id=report.client_order_id,
            )
            return
        if self._sent_ns:
            self._stamp_ack(order)
        if report.venue_order_id and order.venue_order_id != report.venue_order_id:
            order.venue_order_id = report.venue_order_id
            self._by_venue_id[(order.venue, report.venue_order_id)] = order.client_order_id
        self._apply_amendment(order, report)
        self._apply_fill(order, report)
        status = report.status
        if status is None:
            return
        if status in (S.ACCEPTED, S.PARTIALLY_FILLED):
            if order.filled_qty >= order.quantity:
                return  # the fill already completed it
            if order.status is S.CANCEL_REQUESTED and not report.cancel_rejected:
                return  # "working" news older than our cancel; only a refusal undoes it
            if order.filled_qty > 0:
                status = S.PARTIALLY_FILLED
        if status is order.status:
            return
        self._transition(order, status, reason=report.reason)

    def _apply_amendment(self, order: Order, report: ExecutionReport) -> None:
        price = report.price if report.price is not None else order.price
        quantity = report.quantity if report.quantity is not None else order.quantity
        if (price, quantity) == (order.price, order.quantity):
            return
        order.price, order.quantity = price, quantity
        self._touch(order)
        self.publish(self._event(order, OrderModified, price=price, quantity=quantity))

    def _apply_fill(self, order: Order, report: ExecutionReport) -> None:
        qty, price, fill_id = report.fill_qty, report.fill_price, report.fill_id
        if qty is None and report.cum_qty is not None:
            # the venue reports cumulative quantity only: the fill is the increase
            qty = report.cum_qty - order.filled_qty
            if qty <= 0:
                return
            if report.avg_price is not None and report.avg_price > 0:
                price = (
                    report.cum_qty * report.avg_price - order.filled_qty * order.avg_price
                ) / qty
            # ids are unique per venue in the journal, so the derived one names its order
            fill_id = fill_id or f"cum:{order.client_order_id}:{report.cum_qty.normalize()}"
        if qty is None or qty <= 0:
            return
        if price is None:
            price = order.price or _ZERO
        fill_id = fill_id or f"{order.client_order_id}:{order.filled_qty + qty}"
        if fill_id in order.fill_ids:
            self.counts["duplicate_fills"] += 1
            return
        ts = self.clock_ns()
        if not self.journal.record_fill(
            order.venue, fill_id, order.client_order_id, price, qty, report.fee, ts
        ):
            self.counts["duplicate_fills"] += 1
            order.fill_ids.add(fill_id)
            return
        order.fill_ids.add(fill_id)
        if order.status.is_terminal:
            log.warning(
                "fill after terminal state",
                venue=order.venue,
                client_order_id=order.client_order_id,
                status=order.status.value,
            )
            self.counts["late_fills"] += 1
        new_filled = order.filled_qty + qty
        order.avg_price = (order.avg_price * order.filled_qty + price * qty) / new_filled
        order.filled_qty = new_filled
        order.fees += report.fee
        order.updated_ns = ts
        full = new_filled >= order.quantity
        if full and not order.status.is_terminal:
            order.status = S.FILLED
        elif order.status in (S.SUBMITTED, S.ACCEPTED, S.UNKNOWN):
            order.status = S.PARTIALLY_FILLED
        self.journal.update(order)
        self.counts["fills"] += 1
        cls = OrderFilled if full else OrderPartiallyFilled
        self.publish(
            cls(
                venue=order.venue,
                symbol=order.symbol,
                client_order_id=order.client_order_id,
                venue_order_id=order.venue_order_id,
                status=order.status,
                ts_ns=ts,
                fill_id=fill_id,
                side=order.side,
                price=price,
                quantity=qty,
                fee=report.fee,
                fee_asset=report.fee_asset,
                liquidity=report.liquidity,
                cum_qty=order.filled_qty,
                avg_price=order.avg_price,
            )
        )
        if order.status.is_terminal:
            self._finished(order)

    def _transition(self, order: Order, status: OrderStatus, *, reason: str | None = None) -> bool:
        if status not in TRANSITIONS[order.status]:
            self.counts["impossible_transitions"] += 1
            log.warning(
                "impossible transition not applied",
                venue=order.venue,
                symbol=order.symbol,
                client_order_id=order.client_order_id,
                frm=order.status.value,
                to=status.value,
            )
            return False
        order.status = status
        if reason:
            order.reason = reason
        self._touch(order)
        cls = _EVENT_FOR.get(status)
        if cls is not None:
            extra = (
                {"reason": reason or ""}
                if cls in (OrderRejected, OrderCancelled, OrderUnknown)
                else {}
            )
            self.publish(self._event(order, cls, **extra))
        elif status is S.FILLED:
            log.info(
                "venue says filled",
                venue=order.venue,
                client_order_id=order.client_order_id,
                filled=str(order.filled_qty),
            )
        if status.is_terminal:
            self._finished(order)
        return True

    def _touch(self, order: Order) -> None:
        order.updated_ns = self.clock_ns()
        self.journal.update(order)

    def _event(self, order: Order, cls: type[OrderEvent], **extra: Any) -> OrderEvent:
        return cls(
            venue=order.venue,
            symbol=order.symbol,
            client_order_id=order.client_order_id,
            venue_order_id=order.venue_order_id,
            status=order.status,
            ts_ns=order.updated_ns,
            **extra,
        )

    def _finished(self, order: Order) -> None:
        if self._open.pop(order.client_order_id, None) is None:
            return  # already finished (a late fill on a terminal order)
        self._locks.pop(order.client_order_id, None)
        self._submit_ns.pop(order.client_order_id, None)
        self._sent_ns.pop(order.client_order_id, None)
        self._retire(order)

    def _retire(self, order: Order) -> None:
        """A terminal order: wake its waiters, count it, and keep only the recent ones in memory
        (the journal has them all) so a long session does not grow without bound."""
        handle = self.handles.get(order.client_order_id)
        if handle is not None:
            handle._finish()
        self.final_states[order.status.value] += 1
        self._retired.append(order.client_order_id)
        if len(self._retired) > self.retain_terminal:
            old = self.orders.pop(self._retired.popleft(), None)
            if old is not None:
                self.handles.pop(old.client_order_id, None)
                if old.venue_order_id:
                    self._by_venue_id.pop((old.venue, old.venue_order_id), None)

    def state_counts(self) -> dict[str, int]:
        """Orders of this session by state: final states (also of retired orders) and working."""
        counts = Counter(self.final_states)
        counts.update(o.status.value for o in self._open.values())
        return dict(counts)

    # --- reconciliation --------------------------------------------------------------------------

    def restore(self, venue: str) -> list[Order]:
        """Load this venue's open orders from the journal (on start)."""
        restored = self.journal.load_open(venue)
        for order in restored:
            self.orders[order.client_order_id] = order
            self._open[order.client_order_id] = order
            self.handles[order.client_order_id] = OrderHandle(order)
            if order.venue_order_id:
                self._by_venue_id[(venue, order.venue_order_id)] = order.client_order_id
        return restored

    async def reconcile_venue(self, venue: str) -> None:
        """Ask the venue about every open order we hold for it (start, reconnect).

        An order whose submit is still on its way is left to that request: asked now, the venue
        would not know it yet, and "not found" would wrongly conclude it never arrived.
        """
        for order in self.open_orders(venue):
            if order.client_order_id in self._submitting:
                continue
            async with self._lock(order):
                if order.is_open:
                    await self._reconcile(order)

    async def _reconcile(self, order: Order) -> None:
        client = self.clients.get(order.venue)
        if client is None:
            return
        try:
            with trio.fail_after(self.request_timeout_s):
                report = await client.query_order(order)
        except Exception as exc:
            self.counts["reconcile_errors"] += 1
            log.warning(
                "reconciliation failed; will retry",
                venue=order.venue,
                client_order_id=order.client_order_id,
                error=f"{type(exc).__name__}: {exc}",
            )
            if order.status is not S.UNKNOWN:
                self._to_unknown(order, f"reconcile: {exc}")
            return
        self.counts["reconciled"] += 1
        if report is not None:
            self.on_execution(report)
        elif order.status in (S.PENDING, S.SUBMITTED, S.UNKNOWN):
            # The venue has never seen it: the request did not arrive (crash before send,
            # lost in transport). Not resent: the strategy decides whether it still wants it.
            self._transition(order, S.REJECTED, reason="not found at venue (request never arrived)")
        else:
            self._transition(order, S.UNKNOWN, reason="venue no longer knows this order")

    async def _reconcile_loop(self) -> None:
        while True:
            with trio.move_on_after(self.reconcile_interval_s):
                await self._reconcile_wakeup.wait()
            self._reconcile_wakeup = trio.Event()
            for order in [o for o in self._open.values() if o.status is S.UNKNOWN]:
                async with self._lock(order):
                    if order.status is S.UNKNOWN:
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
