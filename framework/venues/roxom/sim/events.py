"""Roxom account events: own fills (fees, positions, balance) and order, balance and position
events to every authenticated connection."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from framework.sim.engine import (
    CANCELLED,
    FILLED,
    OPEN,
    POST_ONLY_REASON,
    REJECTED,
    SimFill,
    SimOrder,
)
from framework.sim.server import (
    fan_out,
)
from framework.venues.roxom.sim.account import SimPosition
from framework.venues.roxom.sim.common import FINAL, RoxOrder, _text, px, qty


class AccountEvents:
    """The account's side of the engine's callbacks, and the views its events carry."""

    def on_trade(self, fill: SimFill) -> None:
        self._last_px[fill.symbol] = fill.price
        self._aggregates.setdefault(fill.taker_order_id, []).append(fill)
        maker = self.orders.by_engine(fill.maker_order_id)
        if maker is not None:
            self._own_fill(maker, fill, True)
        taker = self._own(fill.taker_order_id, fill.taker_owner)
        if taker is not None:
            self._own_fill(taker, fill, False)
        if self._stops:
            self._check_stops(fill.symbol, fill.price)

    def on_order(self, order: SimOrder) -> None:
        fills = self._aggregates.pop(order.order_id, None)
        if fills:
            self._trade_aggregate(order.symbol, fills)
        own = self._own(order.order_id, order.owner)
        if own is None:
            return
        status = own.status
        if order.status == OPEN:
            status = "submitted" if own.executed == 0 else "partiallyfilled"
        elif order.status == FILLED:
            status = "filled"
        elif order.status == CANCELLED:
            status = "partiallyfilledcancelled" if own.executed > 0 else "cancelled"
        elif order.status == REJECTED:
            # [DOC] a post-only order that would cross is cancelled, not rejected
            status = "cancelled" if order.reject_reason == POST_ONLY_REASON else "rejected"
            own.reason = order.reject_reason
        merged = own.order_id in self._merged
        self._merged.discard(own.order_id)
        if status != own.status and own.status not in FINAL:
            own.status = status
            self._order_event(own)
        elif merged:
            self._order_event(own)

    # --- own orders, positions, balance --------------------------------------------------------

    def _own(self, engine_id: str, owner: str) -> RoxOrder | None:
        """Our order behind an engine id; binds the order being submitted to its new id."""
        order = self.orders.by_engine(engine_id)
        submitting = self._submitting
        if (
            order is None
            and owner == self.engine_owner
            and submitting is not None
            and submitting.engine_id is None
        ):
            # the engine reports a submit's matches before `submit` returns the id
            order = submitting
            order.engine_id = engine_id
            self.orders.bind_engine(engine_id, order)
        return order

    def _own_fill(self, order: RoxOrder, fill: SimFill, maker: bool) -> None:
        notional = fill.price * fill.quantity
        fee = notional * self.fee_rates[maker]
        order.executed += fill.quantity
        order.notional += notional
        order.fees += fee
        order.fill_px, order.fill_fee = fill.price, fee
        self.fill_ids[fill.trade_id] = f"{order.order_id}:{order.executed.normalize():f}"
        self._forget_old_fills()
        order.status = "filled" if order.executed == order.size else "partiallyfilled"
        settlement = self.account.on_fill(
            fill.symbol, order.side, fill.quantity, fill.price, fee, fill.ts_ns
        )
        order.position_id = settlement.position.id
        if self.merge_fills:
            # option: the fills of one match (a taker sweeping levels) in one event, sent by
            # `on_order` (nothing promises one event per fill)
            self._merged.add(order.order_id)
        else:
            # [INF] default: one order event per fill
            self._order_event(order)
        self._account_event(
            "balance",
            {
                "accountId": self.owner,
                # [INF] exact amounts (fees can be below a satoshi)
                "balanceBefore": format(settlement.before, "f"),
                "balanceAfter": format(settlement.after, "f"),
                "amount": format(settlement.after - settlement.before, "f"),
                "unit": "btc",
                "updateType": "ordersettle",
                "timestamp": fill.ts_ns,
            },
        )
        self._account_event("position", [self._position_view(settlement.position)])

    def _order_event(self, order: RoxOrder) -> None:
        order.timestamp = self._clock_ns()
        self._account_event("order", self._order_view(order))

    def _account_event(self, kind: str, data: Any) -> None:
        # [DOC] account events go to every authenticated connection, subscribed or not
        if self.mute_account:
            return
        fan_out(self._account_conns, _text({"type": kind, "data": data}))

    def _order_view(self, order: RoxOrder) -> dict[str, Any]:
        """The `order` event. [DOC] two published forms: full, and short (no clientOrderId,
        side, fillPx, filledFees, ...); `short_events` sends the short one."""
        avg = order.notional / order.executed if order.executed else Decimal(0)
        view: dict[str, Any] = {
            "orderId": order.order_id,
            "accountId": self.owner,
            "symbol": order.symbol,
            "status": order.status,
            "remainingQty": qty(order.size - order.executed),
            "executedQty": qty(order.executed),
            # [INF] the docs show 8 decimals: the average is rounded to them
            "avgPx": px(avg),
        }
        if self.short_events:
            view["timestamp"] = order.timestamp
            return view
        fees = order.fees if self.cumulative_fees else order.fill_fee
        view.update(
            {
                "fillPx": None if order.fill_px is None else px(order.fill_px),
                # [INF] cumulative, like its neighbours (`fees_per_fill`: the latest fill's)
                "filledFees": None if order.fill_fee is None or fees is None else format(fees, "f"),
                "side": order.side.value.lower(),
                "orderType": order.order_type,
                "orderSize": qty(order.size),
                "limitPrice": None if order.limit_price is None else px(order.limit_price),
                "clientOrderId": order.client_order_id if self.echo_client_order_id else None,
                "entryPositionId": order.position_id,
                "exitPositionId": None,
                "reason": order.reason,
                "timestamp": order.timestamp,
            }
        )
        return view

    def _rest_view(self, order: RoxOrder, unit: str, *, listed: bool) -> dict[str, Any]:
        """[DOC] the REST order views: `GET /orders/{id}` and the list differ in names."""
        scale = Decimal(100_000_000) if unit == "sats" else Decimal(1)

        def price(value: Decimal | None) -> str | None:
            return None if value is None else qty((value * scale).normalize())

        stop = order.order_type in ("stop", "stoplimit")
        view: dict[str, Any] = {
            "id": order.order_id,
            "symbol": order.symbol,
            "instType": "perpetual",
            "accountId": self.owner,
            "orderType" if listed else "type": order.order_type,
            "timeInForce": order.tif,
            "side": order.side.value.lower(),
            "quantity" if listed else "qty": qty(order.size),
            "price" if listed else "px": price(order.limit_price),
            "triggerPx": price(order.trigger_price),
            "status": order.status,
            "clientOrderId": order.client_order_id if self.echo_client_order_id else None,
            # [DOC] ms in the GET example, ns in the list example
            "createdAt": order.created_ns if listed else order.created_ns // 1_000_000,
            "cancelAt": order.cancel_at_ms,
            "isTriggered": (order.status != "waitingtrigger") if stop else None,
            # [DOC example; INF reading] what remains
            "size": qty(order.size - order.executed),
            "unit": "sats" if unit == "sats" else "BTC",
        }
        if self.rest_amount_filled:
            view["amountFilled"] = qty(order.executed)  # the generated reference only
        return view

    def _position_view(self, pos: SimPosition) -> dict[str, Any]:
        mark = self._mid(pos.symbol)
        acct = self.account
        margin = acct.initial_margin(pos)
        liquidation = acct.liquidation_price(pos)
        return {
            "id": pos.id,
            "symbol": pos.symbol,
            "accountId": self.owner,
            "side": "long" if pos.size >= 0 else "short",
            "entryAmount": qty(pos.entry_amount),
            "exitAmount": qty(pos.exit_amount),
            "size": qty(abs(pos.size)),
            "tradeMode": "isolated",
            "openDate": pos.created_ns // 1_000_000,  # [DOC] ms, unlike updatedAt (ns)
            "closeDate": None if pos.closed_ns is None else pos.closed_ns // 1_000_000,
            "avgEntry": format(pos.avg_entry, "f"),
            "avgExit": None if pos.avg_exit is None else format(pos.avg_exit, "f"),
            "entryFees": format(pos.entry_fees, "f"),
            "exitFees": format(pos.exit_fees, "f"),
            "positionBalance": format(margin, "f"),
            "initialMargin": format(margin, "f"),
            "maintenanceMargin": format(margin / 2, "f"),
            "liquidationPrice": None if liquidation is None else format(liquidation, "f"),
            "leverage": format(acct.leverage, "f"),
            "unrealizedPnl": format(acct.unrealized(pos, mark), "f"),
            "realizedPnl": format(pos.realized, "f"),
            "markPrice": None if mark is None else px(mark),
            "status": pos.status,
            "updatedAt": pos.updated_ns,
            "createdAt": pos.created_ns,
        }
