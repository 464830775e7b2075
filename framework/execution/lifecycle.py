"""The order lifecycle: every order of the session, its checked transitions, and its fills.

Every order goes PENDING (intent journaled) → SUBMITTED (request leaving) → whatever the venue
says. Transitions are checked against a table: an impossible one is logged, counted and not
applied; real-world ones (a fill after a cancel request, a cancel overtaking the accept) are in
the table. Fills are de-duplicated by venue fill id, in memory and by the journal's primary key;
a venue that reports only cumulative quantities has its fills derived here, once for all venues.

`OrderLifecycle` holds the session's orders and applies what venues say about them
(`on_execution`); the requests that change them live in `manager.OrderManager`, the road back
from UNKNOWN in `reconcile`.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter, deque
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import attrs
import structlog
import trio

from framework.events import (
    ExecutionReport,
    OrderAccepted,
    OrderCancelled,
    OrderCancelRequested,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderModified,
    OrderPartiallyFilled,
    OrderRejected,
    OrderStatus,
    OrderSubmitted,
    OrderUnknown,
    VenueState,
    VenueStatus,
)
from framework.execution.handle import OrderHandle
from framework.execution.journal import Journal
from framework.latency import LatencyStats
from framework.model import Instrument, Order
from framework.venue import ExecutionClient

log = structlog.get_logger("botrun.orders")

S = OrderStatus
_ZERO = Decimal(0)
# what a failing journal raises (a full disk, an I/O error, a database that went away)
JOURNAL_ERRORS = (OSError, sqlite3.Error)


class JournalFailure(RuntimeError):
    """The journal could not write: trading was halted (the one line a run exits with)."""


# no quantity, price or fee a venue reports is this large: beyond it a number is corrupt
NUMBER_LIMIT = Decimal("1e15")
_EXCERPT = 240


def _snapshot(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """A queued write keeps the order as it was then (`update` writes the row's state at that
    moment; later writes queue behind it)."""
    return tuple(attrs.evolve(a) if isinstance(a, Order) else a for a in args)


def report_problem(report: ExecutionReport, order: Order) -> str | None:
    """Why the numbers of `report` about `order` cannot be booked, or None if they can.

    Every number is finite, below NUMBER_LIMIT in size, and of the right sign (quantities and
    prices positive, cumulative amounts not negative; a fee may be a rebate); a fill or a
    cumulative quantity never exceeds the order's quantity (the report's own, after a modify)."""
    fields = {
        "fill_qty": report.fill_qty,
        "fill_price": report.fill_price,
        "fee": report.fee,
        "cum_qty": report.cum_qty,
        "avg_price": report.avg_price,
        "price": report.price,
        "quantity": report.quantity,
    }
    for name, value in fields.items():
        if value is None:
            continue
        if not isinstance(value, Decimal | int) or isinstance(value, bool):
            return f"{name} is {type(value).__name__}, not a Decimal"
        value = Decimal(value)
        if not value.is_finite():
            return f"{name} is {value}"
        if abs(value) >= NUMBER_LIMIT:
            return f"{name} {value} out of range"
        if name == "fee":
            continue
        if name in ("cum_qty", "avg_price"):
            if value < 0:
                return f"{name} {value} is negative"
        elif value <= 0:
            return f"{name} {value} is not positive"
    # a report's own quantity counts only up to what the order is or a modify asked for: a
    # corrupted quantity must not make a corrupted fill look in range
    allowed = max(order.quantity, order.modify_quantity or order.quantity)
    if report.quantity is not None and report.quantity > allowed:
        return f"quantity {report.quantity} above the order's {allowed}"
    total = report.quantity if report.quantity is not None else order.quantity
    if report.cum_qty is not None and report.cum_qty > total:
        return f"cum_qty {report.cum_qty} above the order quantity {total}"
    if (
        report.fill_qty is not None
        and report.fill_id not in order.fill_ids
        and order.filled_qty + report.fill_qty > total
    ):
        return (
            f"fill {report.fill_qty} on top of {order.filled_qty} exceeds the order quantity"
            f" {total}"
        )
    return None


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


# an order the venue is working (a cancel may be sent for it)
_WORKING = frozenset({S.ACCEPTED, S.PARTIALLY_FILLED})


class OrderLifecycle:
    """The session's orders and what venues say about them (no requests are sent from here)."""

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
        self.clients: dict[str, ExecutionClient] = {}
        self.instruments: dict[tuple[str, str], Instrument] = {}
        self.orders: dict[str, Order] = {}
        self.handles: dict[str, OrderHandle] = {}
        self.counts: Counter[str] = Counter()
        self.risk: Any = None  # framework.risk.RiskManager, set by the engine
        self._by_venue_id: dict[tuple[str, str], str] = {}
        self._open: dict[str, Order] = {}  # working orders (not terminal), in submit order
        # terminal orders kept in memory for late reports; older ones live only in the journal
        self.retain_terminal = 2_000
        self._retired: deque[str] = deque()
        self.final_states: Counter[str] = Counter()
        self._locks: dict[str, trio.Lock] = {}
        self._reconcile_wakeup = trio.Event()
        # submit -> send -> ack histograms per venue (monotonic; a backtest sets its own clock)
        self.latency = LatencyStats()
        self.mono_ns: Callable[[], int] = time.monotonic_ns
        self._submit_ns: dict[str, int] = {}
        self._sent_ns: dict[str, int] = {}
        self._submitting: set[str] = set()  # submits not yet answered (or failed) in this run
        # orders whose report could not be read: the reconciliation loop asks the venue
        self._requery: set[str] = set()
        # ended orders one of whose reports could not be read: asked once more for their fills
        self._recheck_ended: set[str] = set()
        # working orders whose query failed: asked again next round, their state kept
        self._query_retry: set[str] = set()
        # orders finalised REJECTED because the venue kept saying "not found": asked once more
        # at the monotonic time given (a create held in a gateway may still land), and revived
        # if the venue then knows them
        self._inferred: dict[str, float] = {}
        # "not found" answers per order: (monotonic time of the first, how many)
        self._not_found: dict[str, tuple[float, int]] = {}
        # monotonic time each submit left in this process (the delivery delay counts from it)
        self._sent_at: dict[str, float] = {}
        # when an UNKNOWN order is next asked for (backoff), monotonic
        self._next_ask: dict[str, float] = {}
        # journal writes that failed, retried in order (a venue report is never dropped: it is
        # applied in memory at once and written when the disk takes it)
        self._journal_backlog: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        # set when a journal write failed: trading halts (no new orders, open ones cancelled)
        self.halted: str | None = None
        self._halt = trio.Event()

    def open_orders(self, venue: str | None = None, symbol: str | None = None) -> list[Order]:
        # from the open index, not every order of the session: risk checks call this per order
        return [
            o
            for o in self._open.values()
            if venue in (None, o.venue) and symbol in (None, o.symbol)
        ]

    def find(self, venue: str, client_order_id: str, venue_order_id: str | None) -> Order | None:
        """The order a venue names, by our client order id or else by its venue order id."""
        order = self.orders.get(client_order_id) if client_order_id else None
        if order is None and venue_order_id is not None:
            coid = self._by_venue_id.get((venue, venue_order_id))
            order = self.orders.get(coid) if coid else None
        return order

    def _lock(self, order: Order) -> trio.Lock:
        coid = order.client_order_id
        lock = self._locks.get(coid)
        if lock is None:
            lock = trio.Lock()
            if coid in self._open:  # a finished order's lock is dropped by `_finished`: keep none
                self._locks[coid] = lock
        return lock

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
        order = self.find(report.venue, report.client_order_id, report.venue_order_id)
        if order is None:
            self.counts["reports_for_unknown_orders"] += 1
            log.warning(
                "report for an order this session does not know",
                venue=report.venue,
                client_order_id=report.client_order_id,
            )
            return
        if order.status.is_terminal and order.client_order_id in self._inferred:
            self._revive(order)
        problem = report_problem(report, order)
        if problem is not None:
            self._unreadable(order, report, problem)
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
        if status.is_terminal and order.client_order_id in self._requery:
            # part of what the venue said about this order could not be read (a fill among
            # it, perhaps): an end is believed only from an answer read whole, so the order
            # stays open until the re-query answers (else a FILLED with no fills, or a cancel
            # that buries a fill, would be final)
            self.counts["ends_held_for_requery"] += 1
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

    def _revive(self, order: Order) -> None:
        """An order we concluded never arrived turns out to be at the venue: track it again."""
        self._inferred.pop(order.client_order_id, None)
        self.counts["revived"] += 1
        log.warning(
            "order concluded never-arrived is at the venue after all; tracking it again",
            venue=order.venue,
            symbol=order.symbol,
            client_order_id=order.client_order_id,
        )
        self.final_states[order.status.value] -= 1  # REJECTED, or CANCELLED if it had fills
        order.status = S.UNKNOWN
        order.reason = "reached the venue late"
        self._open[order.client_order_id] = order
        self.orders[order.client_order_id] = order
        self._touch(order)
        self.publish(self._event(order, OrderUnknown, reason=order.reason))

    def _unreadable(self, order: Order, report: ExecutionReport, problem: str) -> None:
        """A report whose numbers cannot be true: never booked; the venue is asked instead."""
        self.counts["unreadable_reports"] += 1
        log.warning(
            "unreadable execution report not booked; querying the venue",
            venue=order.venue,
            symbol=order.symbol,
            client_order_id=order.client_order_id,
            problem=problem,
            excerpt=repr(report)[:_EXCERPT],
        )
        if order.is_open:
            self._requery.add(order.client_order_id)
        else:
            # about an order already ended (a fill of the venue's answer to "what did you fill
            # that we never saw?"): the end stands, but the venue is asked again for its fills
            self._recheck_ended.add(order.client_order_id)
        self._reconcile_wakeup.set()

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
        # False: the journal has this fill already (a duplicate); None: the write is queued
        # behind a failing disk, and the fill (new by the in-memory ids) is applied now
        if (
            self._journal_write(
                self.journal.record_fill,
                order.venue,
                fill_id,
                order.client_order_id,
                price,
                qty,
                report.fee,
                ts,
            )
            is False
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
        self._journal_write(self.journal.update, order)
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
        prior = order.status
        order.status = status
        if reason:
            order.reason = reason
        self._touch(order)
        if prior is S.UNKNOWN and order.cancel_wanted and status in _WORKING:
            # a cancel whose outcome was unknown (transport error, timeout) and the order is
            # found working: the strategy's cancel still stands (a cancel is safe to repeat)
            self.counts["cancels_resent"] += 1
            self._resend_cancel(order)
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

    def _resend_cancel(self, order: Order) -> None:
        """Send the strategy's cancel again (the order manager does; nothing is sent here)."""

    def _touch(self, order: Order) -> None:
        order.updated_ns = self.clock_ns()
        self._journal_write(self.journal.update, order)

    # --- journal failures ------------------------------------------------------------------------

    def _journal_write(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Write through the journal; a failure queues the write (retried in order) and halts
        trading. Returns what `fn` returned, or None if the write is queued."""
        if self._journal_backlog:
            self._journal_backlog.append((fn, _snapshot(args)))
            return None
        try:
            return fn(*args)
        except JOURNAL_ERRORS as exc:
            self._journal_backlog.append((fn, _snapshot(args)))
            self.journal_failed(exc)
            return None

    def journal_failed(self, exc: BaseException) -> None:
        """A journal write failed. This is not a bad venue frame: nothing the venue said is
        dropped (it is applied in memory and its write retried), but trading halts in order:
        no new order, every open one cancelled, strategies told, and the run then ends."""
        self.counts["journal_errors"] += 1
        if self.halted is not None:
            return
        self.halted = f"journal write failed: {type(exc).__name__}: {exc}"
        log.error("journal write failed; halting trading", error=self.halted)
        if self.risk is not None and not getattr(self.risk, "halted", None):
            self.risk.halted = self.halted
        for venue in sorted(self.clients):
            self.publish(
                VenueStatus(venue, VenueState.HALTED, 0, reason=self.halted, stream="orders")
            )
        self._halt.set()

    def flush_journal_backlog(self) -> bool:
        """Write what the journal refused, in order; True once nothing is left."""
        while self._journal_backlog:
            fn, args = self._journal_backlog[0]
            try:
                fn(*args)
            except sqlite3.IntegrityError:
                pass  # a fill already written: what the primary key is for
            except JOURNAL_ERRORS as exc:
                self.counts["journal_errors"] += 1
                log.warning("journal still failing", error=f"{type(exc).__name__}: {exc}")
                return False
            self._journal_backlog.popleft()
        return True

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
        self._sent_at.pop(order.client_order_id, None)
        self._not_found.pop(order.client_order_id, None)
        self._next_ask.pop(order.client_order_id, None)
        self._requery.discard(order.client_order_id)
        self._query_retry.discard(order.client_order_id)
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
