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
            for venue in sorted(self._orphan_scan_due):
                await self.reconcile_orphans(venue)

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
