"""The road back to the venue's truth: restore from the journal, ask the venue, find orphans.

On start (after the journal is restored) and after a reconnect of a stream that carries order
events, every open order we hold is asked for (`query_order`), and the venue's whole list of
working orders (`list_open_orders`) is compared with what we know: an order working there that
neither this session nor its journal knows is an orphan (a lost journal, a crash between the
venue's accept and our bookkeeping, another process on the account). Each orphan is logged and
published as a `VenueStatus` (state ORPHAN_ORDERS) and, with `risk.cancel_orphans`, cancelled.
Orders that stay UNKNOWN are asked for again by a loop until the venue answers.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import structlog
import trio

from framework.events import (
    ExecutionReport,
    OrderStatus,
    OrderType,
    Side,
    VenueState,
    VenueStatus,
)
from framework.execution.handle import OrderHandle
from framework.execution.lifecycle import OrderLifecycle
from framework.model import Order

log = structlog.get_logger("botrun.orders")

S = OrderStatus


class Reconciling(OrderLifecycle):
    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.orphans: dict[str, list[ExecutionReport]] = {}
        self._orphan_scan_due: set[str] = set()  # venues whose listing failed: asked again
        self._last_working_check = 0.0
        # ask the venue about an UNKNOWN order at most this often once it said "not found"
        self.max_ask_interval_s = 10.0
        # risk settings set on this manager directly (tests, the chaos kit) win over the config
        self._overrides: dict[str, float] = {}

    def _risk_setting(self, name: str, default: float) -> float:
        """A `risk.<name>` value as set on this manager, else as configured, else `default`."""
        override = self._overrides.get(name)
        if override is not None:
            return override
        return float(getattr(getattr(self.risk, "cfg", None), name, default))

    @property
    def not_found_grace_s(self) -> float:
        """`risk.not_found_grace_s`: how long a "not found" order is kept UNKNOWN."""
        return self._risk_setting("not_found_grace_s", 90.0)

    @not_found_grace_s.setter
    def not_found_grace_s(self, value: float) -> None:
        self._overrides["not_found_grace_s"] = value

    @property
    def working_check_interval_s(self) -> float:
        """`risk.working_check_interval_s`: how often working orders are asked about."""
        return self._risk_setting("working_check_interval_s", 30.0)

    @working_check_interval_s.setter
    def working_check_interval_s(self, value: float) -> None:
        self._overrides["working_check_interval_s"] = value

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
        """Ask the venue about every open order we hold for it, then look for orphans there
        (start, reconnect).

        An order whose submit is still on its way is left to that request: asked now, the venue
        would not know it yet, and "not found" would wrongly conclude it never arrived.
        """
        for order in self.open_orders(venue):
            if order.client_order_id in self._submitting:
                continue
            async with self._lock(order):
                if order.is_open:
                    await self._reconcile(order)
        await self.reconcile_orphans(venue)

    async def _ask(self, order: Order, failed: str) -> ExecutionReport | Exception | None:
        """The venue's answer about `order` (None: not found); a failure is counted, logged as
        `failed`, and returned for the caller to retry. Only for venues with a client."""
        try:
            with trio.fail_after(self.request_timeout_s):
                return await self.clients[order.venue].query_order(order)
        except Exception as exc:
            self.counts["reconcile_errors"] += 1
            log.warning(
                failed,
                venue=order.venue,
                client_order_id=order.client_order_id,
                error=f"{type(exc).__name__}: {exc}",
            )
            return exc

    async def _reconcile(self, order: Order) -> None:
        if order.venue not in self.clients:
            return
        report = await self._ask(order, "reconciliation failed; will retry")
        if isinstance(report, Exception):
            if order.status in (S.PENDING, S.SUBMITTED):
                # no answer to the request yet and none to the query: the outcome is unknown
                self._to_unknown(order, f"reconcile: {report}")
            elif order.status is not S.UNKNOWN:
                # a failed query says nothing about the order: an ACCEPTED (or partly filled,
                # or cancel-requested) order keeps what the venue last told us, and is asked
                # again on the next round rather than thrown back to UNKNOWN (not `_requery`:
                # nothing it said was unreadable, so its reports are believed meanwhile)
                self._query_retry.add(order.client_order_id)
            return
        self.counts["reconciled"] += 1
        coid = order.client_order_id
        if report is not None:
            self._not_found.pop(coid, None)
            self._next_ask.pop(coid, None)
            self.on_execution(report)
        elif order.status in (S.PENDING, S.SUBMITTED, S.UNKNOWN):
            self._not_found_answer(order)
        else:
            self._transition(order, S.UNKNOWN, reason="venue no longer knows this order")

    def _not_found_answer(self, order: Order) -> None:
        """The venue says it has never seen the order. It may yet: a request held in a gateway
        lands after our timeout. So the order stays UNKNOWN, asked again with backoff, until
        it was asked at least twice and `not_found_grace_s` passed since its request left;
        only then is it finalised REJECTED (CANCELLED if it has fills or a venue order id: it did
        arrive), and even then asked once more later."""
        coid = order.client_order_id
        now = trio.current_time()
        first, n = self._not_found.get(coid, (now, 0))
        n += 1
        self._not_found[coid] = (first, n)
        since = self._sent_at.get(coid, first)
        grace = self.not_found_grace_s
        if n < 2 or now - since < grace:
            self.counts["not_found_waiting"] += 1
            # backoff, but never past the end of the grace (then the next answer settles it)
            delay = min(
                self.max_ask_interval_s,
                self.reconcile_interval_s * 2 ** (n - 1),
                max(0.0, since + grace - now),
            )
            self._next_ask[coid] = now + delay
            if order.status is not S.UNKNOWN:
                self._to_unknown(order, "not found at venue yet; the request may still land")
            return
        self._not_found.pop(coid, None)
        self._next_ask.pop(coid, None)
        self._sent_at.pop(coid, None)
        if order.filled_qty > 0 or order.venue_order_id is not None:
            # it did arrive (it traded, or the venue gave it an id): the venue has forgotten an
            # order that ended. Its fills stand; its end is inferred as a cancel (never
            # "rejected", which would say the venue never had it), and it is asked about again
            # later like any inferred end
            self.counts["not_found_with_fills" if order.filled_qty else "not_found_acked"] += 1
            self._transition(
                order,
                S.CANCELLED,
                reason=(
                    f"not found at venue for {now - since:.0f}s with {order.filled_qty} filled"
                    f" (venue order id {order.venue_order_id}; ended at the venue; inferred)"
                ),
            )
        else:
            # Not resent: the strategy decides whether it still wants it.
            self._transition(
                order,
                S.REJECTED,
                reason=f"not found at venue for {now - since:.0f}s (request never arrived)",
            )
        self._inferred[coid] = now + max(grace, self.reconcile_interval_s)

    async def _reconcile_loop(self) -> None:
        while True:
            with trio.move_on_after(self.reconcile_interval_s):
                await self._reconcile_wakeup.wait()
            self._reconcile_wakeup = trio.Event()
            try:
                await self._reconcile_round()
            except Exception as exc:
                # a background loop never dies: say so, back off, go on
                self.counts["reconcile_loop_errors"] += 1
                log.exception("reconciliation round failed; retrying", error=repr(exc)[:200])
                await trio.sleep(self.reconcile_interval_s)

    async def _reconcile_round(self) -> None:
        now = trio.current_time()
        due_check = 0 < self.working_check_interval_s <= now - self._last_working_check
        if due_check:
            self._last_working_check = now
        requery, self._requery = self._requery, set()
        retry, self._query_retry = self._query_retry, set()
        for order in list(self._open.values()):
            coid = order.client_order_id
            if order.status is S.UNKNOWN:
                if self._next_ask.get(coid, 0.0) > now and coid not in requery:
                    continue
            elif coid in self._submitting or not (due_check or coid in requery or coid in retry):
                if coid in requery:
                    self._requery.add(coid)  # its create is still on its way: next round
                if coid in retry:
                    self._query_retry.add(coid)
                continue
            async with self._lock(order):
                if order.is_open and (order.status is S.UNKNOWN or coid not in self._submitting):
                    if due_check:
                        self.counts["working_checks"] += 1
                    await self._reconcile(order)
        for coid, due in list(self._inferred.items()):
            if due > now:
                continue
            del self._inferred[coid]
            order = self.orders.get(coid)
            if order is not None and order.status in (S.REJECTED, S.CANCELLED):
                await self._requery_inferred(order)
        for coid in sorted(self._recheck_ended):
            self._recheck_ended.discard(coid)
            order = self.orders.get(coid)
            if order is not None and order.status.is_terminal:
                await self._recheck_fills(order)
        for venue in sorted(self._orphan_scan_due):
            await self.reconcile_orphans(venue)

    async def _recheck_fills(self, order: Order) -> None:
        """Ask about an ended order one of whose reports could not be read: a fill in it is
        booked (as a fill after the end) once the venue's answer reads; asked until it does."""
        if order.venue not in self.clients:
            return
        report = await self._ask(order, "re-check of an ended order failed; will retry")
        if isinstance(report, Exception):
            self._recheck_ended.add(order.client_order_id)
            return
        self.counts["ended_rechecked"] += 1
        if report is not None:
            self.on_execution(report)

    async def _requery_inferred(self, order: Order) -> None:
        """Ask once more about an order finalised as never arrived (it may have landed)."""
        if order.venue not in self.clients:
            return
        report = await self._ask(order, "re-query of a never-arrived order failed; will retry")
        if isinstance(report, Exception):
            self._inferred[order.client_order_id] = trio.current_time() + self.reconcile_interval_s
            return
        self.counts["inferred_requeried"] += 1
        if report is not None:
            self._inferred[order.client_order_id] = 0.0  # `on_execution` revives it
            self.on_execution(report)

    # --- orphans ---------------------------------------------------------------------------------

    @property
    def cancel_orphans(self) -> bool:
        """`risk.cancel_orphans` of the engine's risk config (no risk manager: cancel)."""
        cfg = getattr(self.risk, "cfg", None)
        return bool(getattr(cfg, "cancel_orphans", True))

    async def reconcile_orphans(self, venue: str) -> list[ExecutionReport]:
        """Orders working at `venue` that neither this session nor its journal knows: logged,
        published, and cancelled if `risk.cancel_orphans`. Returns them."""
        client = self.clients.get(venue)
        if client is None:
            return []
        try:
            with trio.fail_after(self.request_timeout_s):
                listed = await client.list_open_orders()
        except NotImplementedError as exc:
            log.info(
                "venue cannot list its open orders; orphans not looked for",
                venue=venue,
                why=str(exc),
            )
            return []
        except Exception as exc:
            # e.g. a venue whose orders travel on a stream that is not up yet (at start): the
            # reconciliation loop asks again until the venue answers
            self.counts["orphan_scan_errors"] += 1
            self._orphan_scan_due.add(venue)
            log.info(
                "open-order listing failed; will retry",
                venue=venue,
                error=f"{type(exc).__name__}: {exc}",
            )
            return []
        self._orphan_scan_due.discard(venue)
        orphans = [r for r in listed if self._is_orphan(venue, r)]
        # the last scan's findings, for a strategy that attaches after start-up reconciliation
        self.orphans[venue] = orphans
        cancel = self.cancel_orphans
        for report in orphans:
            self.counts["orphans"] += 1
            what = _describe(report)
            log.warning(
                "orphan order at the venue",
                venue=venue,
                symbol=report.symbol,
                client_order_id=report.client_order_id or None,
                venue_order_id=report.venue_order_id,
                order=what,
                action="cancel" if cancel else "report only",
            )
            outcome = await self._cancel_orphan(venue, report) if cancel else "left working"
            # published once the action is done, so whoever sees it sees the outcome
            self.publish(
                VenueStatus(
                    venue, VenueState.ORPHAN_ORDERS, 0, reason=f"{what}: {outcome}", stream="orders"
                )
            )
        return orphans

    def _is_orphan(self, venue: str, report: ExecutionReport) -> bool:
        if self.find(venue, report.client_order_id, report.venue_order_id) is not None:
            return False
        if report.client_order_id and self.journal.load(report.client_order_id) is not None:
            return False  # ours, from an earlier session (the journal holds every intent)
        # listed without our id while a submit of ours on that market is unanswered: it may be
        # that very order (its venue id is not known yet); the next scan decides
        return bool(report.client_order_id) or not any(
            self.orders[c].venue == venue and self.orders[c].symbol == report.symbol
            for c in self._submitting
            if c in self.orders
        )

    async def _cancel_orphan(self, venue: str, report: ExecutionReport) -> str:
        client = self.clients[venue]
        # not one of ours: a stand-in carrying what the venue listed, never tracked or journaled
        order = Order(
            client_order_id=report.client_order_id,
            venue=venue,
            symbol=report.symbol or "",
            side=report.side or Side.BUY,
            type=OrderType.LIMIT if report.price is not None else OrderType.MARKET,
            quantity=report.quantity if report.quantity is not None else Decimal(0),
            price=report.price,
            status=report.status or S.ACCEPTED,
            venue_order_id=report.venue_order_id,
            filled_qty=report.cum_qty or Decimal(0),
        )
        try:
            with trio.fail_after(self.request_timeout_s):
                await client.cancel(order)
        except Exception as exc:
            self.counts["orphan_cancel_errors"] += 1
            error = f"{type(exc).__name__}: {exc}"
            log.warning(
                "orphan order not cancelled",
                venue=venue,
                client_order_id=order.client_order_id or None,
                venue_order_id=order.venue_order_id,
                error=error,
            )
            return f"cancel failed: {error}"
        self.counts["orphans_cancelled"] += 1
        return "cancelled"


def _describe(report: ExecutionReport) -> str:
    side = report.side.value if report.side is not None else "?"
    price = "market" if report.price is None else str(report.price)
    ids = ", ".join(
        f"{name} {value}"
        for name, value in (("id", report.client_order_id), ("venue id", report.venue_order_id))
        if value
    )
    filled = f", filled {report.cum_qty}" if report.cum_qty else ""
    return f"{report.symbol} {side} {report.quantity} @ {price} ({ids}){filled}"
