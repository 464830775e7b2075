"""Roxom order views → execution reports, with the per-order state they need.

Roxom's order events carry cumulative `executedQty`, `avgPx` and (by [INF]) cumulative
`filledFees`; `fillPx` is only "the price of the most recent fill" [DOC]. Nothing promises one
event per fill, so a fill is priced from the change in `executedQty x avgPx`, with `fillPx` as
the exact price when it agrees (a single fill) within the rounding of `avgPx`. The REST views
carry no price at all: fills recovered from them are booked at the last known average (else the
limit price, else the touch), flagged in the log as estimated; the next event with `avgPx`
corrects the total.

Order events may arrive before the create's reply and without `clientOrderId` [DOC examples]:
while a create is in flight, an event for a venue id nobody knows yet is held (bounded, a few
seconds), and released once the reply links the id (or the hold expires: then the core matches
it by venue id if it can, else counts it).

Every number is validated (finite, in range, sign, cumulative <= order size) before anything is
booked; an unreadable event raises `FrameError`, and its order id (when readable) is queued for a
REST query instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import attrs
import structlog

from framework.errors import FrameError
from framework.events import ExecutionReport, OrderStatus, Side
from framework.transport.wire import dec
from framework.venues.roxom.instruments import QUOTE, VENUE

log = structlog.get_logger("botrun.roxom")

_ZERO = Decimal(0)
_HUGE = Decimal("1e30")  # no real size, price or fee comes near this
SATS_PER_BTC = Decimal(100_000_000)
# [INF] how long an event for an unknown venue id waits for its create's reply
HOLD_S = 5.0
MAX_HELD = 1_000
MAX_LINKED = 20_000

# [DOC set; mapping INF] Roxom order statuses → the core's lifecycle
STATUS: dict[str, OrderStatus] = {
    "pendingsubmit": OrderStatus.SUBMITTED,
    "submitted": OrderStatus.ACCEPTED,
    "waitingtrigger": OrderStatus.ACCEPTED,  # a stop resting until triggered is working
    "partiallyfilled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "pendingcancel": OrderStatus.CANCEL_REQUESTED,
    "cancelled": OrderStatus.CANCELLED,
    # the fills are applied from executedQty first; what is left was cancelled
    "partiallyfilledcancelled": OrderStatus.CANCELLED,
    "rejected": OrderStatus.REJECTED,
    # [INF] final, account restricted: the order no longer works (CANCELLED is reachable from
    # every working state, REJECTED only before acceptance)
    "inactive": OrderStatus.CANCELLED,
}


def number(
    data: dict[str, Any], name: str, *, positive: bool = False, signed: bool = False
) -> Decimal | None:
    """A field as a bounded finite Decimal (None if absent or null); FrameError otherwise."""
    value = data.get(name)
    if value is None:
        return None
    d = dec(value, name)
    if abs(d) >= _HUGE:
        raise FrameError(f"{name}: out of range: {str(value)[:20]!r}")
    if positive and d <= 0:
        raise FrameError(f"{name}: must be positive: {value!r}")
    if not signed and d < 0:
        raise FrameError(f"{name}: negative: {value!r}")
    return d


def _ulp(value: Any) -> Decimal:
    """Half a unit in the last place of a decimal text ("0.00432450" -> 5E-9)."""
    exponent = Decimal(str(value)).as_tuple().exponent
    return Decimal(5).scaleb(int(exponent) - 1) if isinstance(exponent, int) else _ZERO


@attrs.define(slots=True)
class Fills:
    """What has been booked of one order: cumulative size, notional and fees."""

    cum: Decimal = _ZERO
    notional: Decimal = _ZERO
    fees: Decimal = _ZERO
    fees_per_fill: bool = False  # switched on if the venue's filledFees ever decreases

    def average(self) -> Decimal | None:
        return self.notional / self.cum if self.cum > 0 else None


@attrs.define
class _Held:
    report: ExecutionReport
    deadline: float


class OrderTracker:
    """Shared by the stream (events) and the execution client (REST views, create replies)."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self.clock = clock or time.monotonic
        self.fills: dict[str, Fills] = {}
        self.inflight = 0  # creates sent and not answered
        # venue ids whose create reply (or REST view) we have, oldest first (bounded)
        self.linked: dict[str, None] = {}
        self.held: dict[str, list[_Held]] = {}
        self.suspect: set[str] = set()  # ids of unreadable events: asked for over REST
        self.deliver: Callable[[ExecutionReport], None] | None = None
        # the core's view of an order by venue id (filled qty, avg price), to seed `fills`
        self.seed: Callable[[str], tuple[Decimal, Decimal] | None] = lambda oid: None
        # whether the core already knows this venue id (an order restored from the journal)
        self.known: Callable[[str], bool] = lambda oid: False
        self.counts: dict[str, int] = {"held": 0, "released": 0, "expired": 0, "unreadable": 0}

    # --- events --------------------------------------------------------------------------------

    def event(self, data: Any) -> ExecutionReport | None:
        """An `order` event as a report, or None if it is held until its create is answered."""
        order_id = data.get("orderId") if type(data) is dict else None
        try:
            report = self._event(data)
        except FrameError:
            self.counts["unreadable"] += 1
            if type(order_id) is str and order_id:
                self.suspect.add(order_id)  # never booked: asked for over REST instead
            raise
        if (
            not report.client_order_id
            and report.venue_order_id not in self.linked
            and (self.inflight > 0 or report.venue_order_id in self.held)
            and not self.known(order_id)
        ):
            self._hold(report)
            return None
        return report

    def _event(self, data: Any) -> ExecutionReport:
        if type(data) is not dict:
            raise FrameError("order data is not an object")
        order_id = data.get("orderId")
        if type(order_id) is not str or not order_id:
            raise FrameError("order without orderId")
        raw_status = data.get("status")
        status = STATUS.get(raw_status) if type(raw_status) is str else None
        if status is None:
            raise FrameError(f"unknown order status {raw_status!r}")
        size = number(data, "orderSize", positive=True)
        cum = number(data, "executedQty")
        remaining = number(data, "remainingQty")
        avg = number(data, "avgPx")
        fill_px = number(data, "fillPx")
        fees = number(data, "filledFees", signed=True)  # [INF] a rebate would be negative
        if cum is not None and size is not None and cum > size:
            raise FrameError(f"executedQty {cum} above orderSize {size}")
        known = cum is not None and remaining is not None and size is not None
        if known and cum + remaining > size:  # type: ignore[operator]
            raise FrameError("executedQty + remainingQty above orderSize")
        fill_price = None
        fee = _ZERO
        state = self._state(order_id)
        if cum is not None and cum > state.cum:
            delta = cum - state.cum
            fill_price = self._price(data, state, cum, delta, avg, fill_px)
            fee = self._fee(order_id, state, fees)
            state.cum = cum
            if fill_price is not None:
                state.notional += fill_price * delta
        if status.is_terminal:
            # nothing more can be filled: a late copy of an event is ignored by the core anyway
            self.fills.pop(order_id, None)
        coid = data.get("clientOrderId")
        reason = data.get("reason")
        ts = data.get("timestamp")
        if ts is not None and type(ts) is not int:
            if not (type(ts) is str and ts.isascii() and ts.isdigit()):
                raise FrameError(f"timestamp: expected integer nanoseconds, got {ts!r}")
            ts = int(ts)
        return ExecutionReport(
            VENUE,
            coid if type(coid) is str else "",
            # pendingsubmit says nothing the core does not know (it sent the request), and a
            # late one would try to move a cancel-requested order back
            status=None if raw_status == "pendingsubmit" else status,
            venue_order_id=order_id,
            fill_id=f"{order_id}:{cum.normalize():f}" if cum else None,
            fill_price=fill_price,
            fee=fee,
            fee_asset=QUOTE,
            cum_qty=cum,
            reason=reason if type(reason) is str and reason else raw_status,
            venue_ts=ts,
        )

    def _price(
        self,
        data: dict[str, Any],
        state: Fills,
        cum: Decimal,
        delta: Decimal,
        avg: Decimal | None,
        fill_px: Decimal | None,
    ) -> Decimal | None:
        if avg is not None and avg > 0:
            estimate = (cum * avg - state.notional) / delta
            # what the rounding of avgPx alone can move the estimate by
            tolerance = _ulp(data["avgPx"]) * cum / delta
            if fill_px is not None and fill_px > 0 and abs(fill_px - estimate) <= tolerance:
                return fill_px  # one fill: its exact price
            if estimate <= 0:
                raise FrameError(f"avgPx {avg} inconsistent with the fills booked")
            return estimate
        if fill_px is not None and fill_px > 0:
            return fill_px  # no average (a third-party client saw events without prices)
        return None  # the core books the limit price

    def _fee(self, order_id: str, state: Fills, fees: Decimal | None) -> Decimal:
        if fees is None:
            return _ZERO
        if state.fees_per_fill:
            return fees
        if fees < state.fees:
            # [INF] cumulative reading refuted: the venue sends each fill's fee
            state.fees_per_fill = True
            log.warning(
                "filledFees decreased: reading it per fill from now on",
                venue=VENUE,
                venue_order_id=order_id,
                before=str(state.fees),
                now=str(fees),
            )
            return fees
        fee, state.fees = fees - state.fees, fees
        return fee

    def _state(self, order_id: str) -> Fills:
        state = self.fills.get(order_id)
        if state is None:
            seeded = self.seed(order_id)
            state = self.fills[order_id] = Fills()
            if seeded is not None:
                state.cum, avg = seeded
                state.notional = state.cum * avg
        return state

    # --- REST views ----------------------------------------------------------------------------

    @staticmethod
    def _view(view: Any) -> tuple[ExecutionReport, Decimal | None]:
        """A documented REST view (`GET` one: `qty`/`px`; list: `quantity`/`price`; the event
        form tolerated) as a report without a fill, and the filled quantity."""
        if type(view) is not dict:
            raise FrameError("order view is not an object")
        order_id = view.get("id") or view.get("orderId")
        if type(order_id) is not str or not order_id:
            raise FrameError("order view without id")
        raw_status = view.get("status")
        status = STATUS.get(raw_status) if type(raw_status) is str else None
        if status is None:
            raise FrameError(f"unknown order status {raw_status!r}")
        quantity = _first(view, "qty", "quantity", "orderSize", positive=True)
        remaining = _first(view, "size", "remainingQty")
        filled = _first(view, "amountFilled", "executedQty")
        if filled is None and quantity is not None and remaining is not None:
            filled = quantity - remaining  # [DOC examples; INF] `size` is what remains
        if filled is not None and (filled < 0 or (quantity is not None and filled > quantity)):
            raise FrameError(f"filled {filled} outside 0..{quantity}")
        price = _first(view, "px", "price", "limitPrice", positive=True)
        if price is not None and str(view.get("unit", "")).lower() == "sats":
            price /= SATS_PER_BTC  # [DOC] prices are in the view's unit
        coid = view.get("clientOrderId")
        side = str(view.get("side", "")).upper()
        symbol = view.get("symbol")
        report = ExecutionReport(
            VENUE,
            coid if type(coid) is str else "",
            status=status,
            venue_order_id=order_id,
            cum_qty=filled,
            reason=raw_status,
            price=price,
            quantity=quantity,
            symbol=symbol if type(symbol) is str else None,
            side=Side(side) if side in ("BUY", "SELL") else None,
        )
        return report, filled

    @classmethod
    def listed(cls, view: Any) -> ExecutionReport:
        """A list item for `list_open_orders` (what it is; never applied as a fill)."""
        return cls._view(view)[0]

    def rest(self, view: Any, fallback_price: Decimal | None = None) -> ExecutionReport:
        """A REST view as a report to apply. No REST view carries a fill price: what it shows
        filled beyond what events told is booked at the average known from the events, else
        the limit price, else `fallback_price`, and logged as estimated."""
        report, filled = self._view(view)
        order_id = report.venue_order_id or ""
        state = self._state(order_id)
        fill_price = None
        if filled is not None and filled > 0:
            if filled > state.cum:
                delta = filled - state.cum
                estimate = state.average() or report.price or fallback_price
                log.warning(
                    "fills recovered over REST: price estimated",
                    venue=VENUE,
                    venue_order_id=order_id,
                    qty=str(delta),
                    price=str(estimate),
                )
                state.cum = filled
                if estimate is not None:
                    state.notional += estimate * delta
            # the core books whatever it has not seen yet at the average of what the venue
            # filled (events it missed included)
            fill_price = state.average() or report.price or fallback_price
        self._link(order_id)
        self.suspect.discard(order_id)
        if report.status is not None and report.status.is_terminal:
            self.fills.pop(order_id, None)
        return attrs.evolve(
            report,
            fill_id=f"{order_id}:{filled.normalize():f}" if filled else None,
            fill_price=fill_price,
        )

    # --- holding events for an unanswered create -----------------------------------------------

    def _hold(self, report: ExecutionReport) -> None:
        oid = report.venue_order_id or ""
        if sum(len(v) for v in self.held.values()) >= MAX_HELD:
            self.release_expired(force=True)
        self.held.setdefault(oid, []).append(_Held(report, self.clock() + HOLD_S))
        self.counts["held"] += 1

    def link(self, order_id: str, client_order_id: str) -> list[ExecutionReport]:
        """The create's reply named `order_id`: the events held for it, now with our id."""
        self._link(order_id)
        held = self.held.pop(order_id, [])
        self.counts["released"] += len(held)
        return [attrs.evolve(h.report, client_order_id=client_order_id) for h in held]

    def _link(self, order_id: str) -> None:
        self.linked[order_id] = None
        if len(self.linked) > MAX_LINKED:
            del self.linked[next(iter(self.linked))]

    def release_expired(self, *, force: bool = False) -> list[ExecutionReport]:
        """Held events whose create never linked them (the core matches by venue id or counts
        them); `force`: all of them."""
        now = self.clock()
        out: list[ExecutionReport] = []
        for oid in list(self.held):
            items = self.held[oid]
            if force or items[0].deadline <= now:
                del self.held[oid]
                out.extend(h.report for h in items)
        self.counts["expired"] += len(out)
        if out and self.deliver is not None:
            for report in out:
                self.deliver(report)
        return out


def _first(view: dict[str, Any], *names: str, positive: bool = False) -> Decimal | None:
    for name in names:
        value = number(view, name, positive=positive)
        if value is not None:
            return value
    return None
