"""Power.Trade private-stream decoding: our orders' lifecycle (accepted, rejected, executions,
cancels) becomes `ExecutionReport`s, and account messages become `Balance`/`Position` events, as
a mixin of `decode.Decoder`."""

from __future__ import annotations

import time
from typing import Any

from framework.errors import FrameError
from framework.events import Balance, ExecutionReport, OrderStatus, Position
from framework.transport.wire import dec
from framework.venues.powertrade.decode_frames import (
    _LIQUIDITY,
    _ZERO,
    EXPIRED_REASONS,
    VENUE,
    _opt_dec,
    is_cancel_refusal,
    opt_ts,
    rows,
    text,
)


class PrivateDecoding:
    """Our orders and account; mixed into `Decoder`, whose hooks (`emit`, `on_end`, `on_fill`)
    it uses."""

    # --- our orders ----------------------------------------------------------------------------

    def _order_accepted(self, body: dict[str, Any], recv_ns: int) -> None:
        if self._own_rfq(body, recv_ns, "accepted"):
            return
        self.emit(
            ExecutionReport(
                VENUE,
                text(body, "client_order_id"),
                status=OrderStatus.ACCEPTED,
                venue_order_id=text(body, "order_id"),
                venue_ts=opt_ts(body, "utc_timestamp"),
            )
        )

    def _order_rejected(self, body: dict[str, Any], recv_ns: int) -> None:
        reason = str(body.get("reason", "rejected"))
        if self._own_rfq(body, recv_ns, "rejected", reason):
            return
        self.emit(
            ExecutionReport(
                VENUE,
                text(body, "client_order_id"),
                status=OrderStatus.REJECTED,
                reason=reason,
                venue_ts=opt_ts(body, "utc_timestamp"),
            )
        )

    def _execution(self, body: dict[str, Any], recv_ns: int) -> None:
        state = body.get("order_state")
        if state not in ("partial_fill", "filled"):
            raise FrameError(f"order_state: unexpected {state!r}")
        flag = body.get("liquidity_flag")
        liquidity = _LIQUIDITY.get(flag) if type(flag) is str else None
        if flag is not None and liquidity is None:
            raise FrameError(f"liquidity_flag: unexpected {flag!r}")
        coid = body.get("client_order_id")
        report = ExecutionReport(
            VENUE,
            coid if type(coid) is str else "",
            status=OrderStatus.FILLED if state == "filled" else None,
            venue_order_id=text(body, "order_id"),
            fill_id=text(body, "trade_id"),
            fill_price=dec(body.get("executed_price"), "executed_price"),
            fill_qty=dec(body.get("executed_quantity"), "executed_quantity"),
            liquidity=liquidity,
            venue_ts=opt_ts(body, "utc_timestamp"),
        )
        if state == "filled" and report.client_order_id:
            self.on_end(report.client_order_id, None)
        self.emit(report)
        self.on_fill()

    def _cancel_order(self, body: dict[str, Any], recv_ns: int) -> None:
        reason = str(body.get("reason", ""))
        tag = body.get("user_tag")
        if not is_cancel_refusal(reason) and not self._own_rfq(body, recv_ns, "cancelled", reason):
            # [INF] the venue's own end of a GTD/DAY order says "expired"
            status = OrderStatus.EXPIRED if reason in EXPIRED_REASONS else OrderStatus.CANCELLED
            report = ExecutionReport(
                VENUE,
                text(body, "client_order_id"),
                status=status,
                venue_order_id=body.get("order_id") or None,
                reason=reason,
                venue_ts=opt_ts(body, "utc_timestamp"),
            )
            # [DOC] `filled_quantity` is the order's cumulative fill: more than we heard of means
            # executions we never saw (lost with a connection); the hook fetches them
            raw = body.get("filled_quantity")
            filled = _opt_dec(raw)
            if raw is not None and (filled is None or filled < 0):
                # unreadable: the venue told us how much it filled and we cannot read it, so
                # the order's fills are checked as if it had filled completely (asked unless
                # every unit is booked), never taken as "nothing filled"
                self.on_end(report.client_order_id, None)
            elif filled is not None and filled > 0:
                self.on_end(report.client_order_id, filled)
            self.emit(report)
        if type(tag) is str and tag:
            self.on_reply(tag, "cancel_order", body)

    # --- account -------------------------------------------------------------------------------

    def _balances(self, body: dict[str, Any], recv_ns: int) -> None:
        now = time.time_ns()
        for row in rows(body, "balances"):
            self.emit(
                Balance(
                    VENUE,
                    text(row, "symbol"),
                    dec(row.get("available_balance", "0"), "available_balance"),
                    dec(row.get("reserved_balance", "0"), "reserved_balance"),
                    opt_ts(row, "timestamp") or now,
                )
            )
        self._reply(body, recv_ns)

    def _positions(self, body: dict[str, Any], recv_ns: int) -> None:
        now = time.time_ns()
        for row in rows(body, "positions"):
            size = dec(row.get("size"), "size")
            side = row.get("side")
            if side in ("sell", "short") and size > 0:
                size = -size
            upnl = row.get("upnl")
            self.emit(
                Position(
                    VENUE,
                    text(row, "symbol"),
                    size,
                    dec(row.get("average_entry_price", "0"), "average_entry_price"),
                    _ZERO,
                    dec(upnl, "upnl") if upnl is not None else None,
                    now,
                )
            )
        self._reply(body, recv_ns)
