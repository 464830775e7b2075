"""Power.Trade order entry: new orders (checks, GTD/DAY expiry), their lifecycle messages, cancels
(with the late-fill fault), cancel-all, order details, expiries."""

from __future__ import annotations

from typing import Any

import attrs

from framework.events import Side
from framework.sim.engine import (
    CANCELLED,
    GTC,
    IOC,
    LIMIT,
    MARKET,
    OPEN,
    REJECTED,
    SimOrder,
)
from framework.sim.faults import late_fill, roll_late_fill
from framework.venues.powertrade.decode_frames import FULLY_EXECUTED, NOT_FOUND
from framework.venues.powertrade.sim.common import (
    CYCLE_S,
    DUPLICATE_ID,
    INVALID_LEGS,
    MAX_LEGS,
    MULTI_LEG,
    PARSE_ERROR,
    RECV_WINDOW_EXPIRED,
    _Client,
    _decimal,
    _Order,
    _Refuse,
    _us,
    wire,
)

# [DOC] the text of a new_order that fails parsing ([INF] no detail suffix)
_PARSE_NEW_ORDER = "error parsing new order request"


class OrderEntry:
    """The account's firm orders, from `new_order` to their end."""

    def _own(self, engine_id: str) -> _Order | None:
        order = self.orders.by_engine(engine_id)
        if order is None:
            order = self.orders.own(self.engine, engine_id)  # while its submit is under way
            if order is not None:
                order.order_id = engine_id
        return order

    def _accepted(self, order: _Order) -> None:
        if order.state != "pending_new":
            return
        order.state = "accepted"
        fields = self._order_fields(order)
        if order.legs is not None and not self.multi_leg_order_id:
            del fields["order_id"]  # [CODE] see the `multi_leg_order_id` option
        self._to_owner("order_accepted", fields)

    def _own_order(self, sim_order: SimOrder) -> None:
        order = self._own(sim_order.order_id)
        if order is None:
            return
        if sim_order.status == REJECTED:
            if order.state == "pending_new":
                self._reject(order, sim_order.reject_reason or "rejected")
            return
        self._accepted(order)
        if sim_order.status == CANCELLED and order.open and not order.cancel_requested:
            # IOC / MARKET remainder: the order ends unsolicited
            self._ended(order, "cancelled", "ioc_remainder_cancelled")

    def _reject(self, order: _Order, reason: str) -> None:
        order.state, order.reason = "rejected", reason
        self._to_owner(
            "order_rejected",
            {
                "client_order_id": order.client_order_id,
                "symbol": order.symbol,
                **self._echoed(order),
                "reason": reason,
                "utc_timestamp": _us(self._clock_ns()),
            },
        )

    def _end_body(self, order: _Order, reason: str) -> dict[str, str]:
        now = _us(self._clock_ns())
        entity = self.markets[order.symbol].entity_id if order.symbol in self.markets else ""
        return {
            "server_utc_timestamp": now,
            "utc_timestamp": now,
            "tradeable_entity_id": entity,
            "symbol": order.symbol,
            "order_id": order.order_id,
            "client_order_id": order.client_order_id,
            "filled_quantity": wire(order.filled),
            "reason": reason,
        }

    def _ended(self, order: _Order, state: str, reason: str, tag: str = "") -> None:
        order.state, order.reason = state, reason
        body = self._end_body(order, reason)
        if tag:
            body["user_tag"] = tag
        self._to_owner("cancel_order", body)

    # --- orders --------------------------------------------------------------------------------

    def _new_order(self, client: _Client, body: dict[str, Any], tag: str) -> None:
        order = self._parse_order(body)
        self.orders.add(order)
        # [CODE] no `new_order` reply and no pending_new echo: the first message naming the
        # client_order_id is order_accepted / order_rejected (TS placeOrderWs)
        if self.ack_success:
            self._ok(client, tag)  # [INF] option: a success command_response first
        self._place(order)

    def _new_bulk_order(self, client: _Client, body: dict[str, Any], tag: str) -> None:
        """[CODE integration/ws/place-bulk-order.test.ts, cancel-all-orders.test.ts] one reply
        under the request's `user_tag` listing every order `pending_new` (no timestamp), then
        each order's own messages as for a single `new_order`.

        The reply lists every order of the request, even one whose client_order_id is already in
        use (the official test sends the same bulk twice and expects `pending_new` for all of
        it); [INF] such an order, or one that fails parsing, then gets the single new_order's
        refusal: a `command_response` under the order's `user_tag` (else the request's)."""
        orders = body.get("orders")
        if not isinstance(orders, list) or not orders:
            raise _Refuse(PARSE_ERROR, "error parsing new bulk order request")
        if not all(isinstance(o, dict) for o in orders):
            raise _Refuse(PARSE_ERROR, "error parsing new bulk order request")
        results = [
            {"client_order_id": str(o.get("client_order_id", "")), "order_state": "pending_new"}
            for o in orders
        ]
        self._send(client, "new_bulk_order", {"user_tag": tag, "results": results})
        for item in orders:
            item_tag = item.get("user_tag") or tag
            try:
                order = self._parse_order(item)
            except _Refuse as exc:
                self._send(client, "command_response", self._error(exc.code, exc.text, item_tag))
                continue
            self.orders.add(order)
            self._place(order)

    def _parse_order(self, body: dict[str, Any]) -> _Order:
        """The order a `new_order` body describes, or `_Refuse` (a command_response)."""
        coid = body.get("client_order_id", "")
        if not 1 <= len(coid.encode()) <= 32:
            raise _Refuse(PARSE_ERROR, _PARSE_NEW_ORDER)
        # a forgotten (trimmed) id is accepted again: the venue's memory is bounded too
        if coid in self.orders:
            raise _Refuse(DUPLICATE_ID, f"duplicate client_order_id {coid}")
        legs: list[dict[str, str]] | None = None
        if "legs" in body:
            symbol, legs = self._composite(body["legs"])
        else:
            symbol = self._symbol(body)
        market_id = body.get("market_id", "0")
        if market_id == "255":
            market_id = "none"  # [CODE] the Python client's comment: "Send 255 for indicative"
        if market_id not in ("0", "none"):
            raise _Refuse(PARSE_ERROR, _PARSE_NEW_ORDER)
        side = {"buy": Side.BUY, "sell": Side.SELL}.get(body.get("side", ""))
        kind = body.get("type", "")
        tif = body.get("time_in_force", "")
        if side is None or kind not in (LIMIT, MARKET) or tif not in ("GTC", "IOC", "DAY", "GTD"):
            raise _Refuse(PARSE_ERROR, "error parsing new order request")
        if not self.whole_numbers:
            # [CODE python/examples/place_orders.py] "price: "825" or quantity: "1" will fail"
            for field in ("quantity", "price"):
                value = body.get(field)
                if value is not None and ("." not in value or "e" in value.lower()):
                    raise _Refuse(PARSE_ERROR, _PARSE_NEW_ORDER)
        qty = _decimal(body.get("quantity"))
        price = _decimal(body.get("price")) if "price" in body else None
        window = body.get("recv_window")
        if window is not None and (not window.isdigit() or int(window) == 0):
            raise _Refuse(PARSE_ERROR, _PARSE_NEW_ORDER)  # [CODE] schema ^[0-9]+$
        now_ns = self._clock_ns()
        expire_ns = None
        if tif == "GTD":
            expire_us = body.get("expire_timestamp", "")
            if not expire_us.isdigit() or not (
                now_ns // 1000 - 5_000_000
                <= int(expire_us)
                <= now_ns // 1000 + 366 * 86_400_000_000
            ):
                raise _Refuse(PARSE_ERROR, "expire_time should be in range [now, +1 year]")
            expire_ns = int(expire_us) * 1000
        elif tif == "DAY":
            day = 86_400_000_000_000
            expire_ns = (now_ns // day + 1) * day  # [INF] DAY ends at the next 00:00 UTC
        order = _Order(coid, symbol, side, kind, tif, qty, price, market_id, now_ns, expire_ns)
        order.quantity_text = body["quantity"]
        if "legs" in body:
            order.legs = legs
            order.parse_reject = "" if legs is not None else INVALID_LEGS
        order.price_text = body.get("price")
        if kind != MARKET and market_id == "0":
            # [CODE] the order lives recv_window x 10 min; [INF] one cycle when it is missing
            cycles = int(window) if window is not None else 1
            order.window_ns = now_ns + cycles * CYCLE_S * 1_000_000_000
        return order

    def _place(self, order: _Order) -> None:
        """A parsed order's fate: rejected, posted as an RFQ, held, or entered."""
        reason = order.parse_reject or self._invalid(order)
        if reason is not None:
            self._reject(order, reason)
            return
        if order.market_id == "none":
            self._new_rfq(order)
        elif self.hold_entries:
            self._held.append(order)
        else:
            self._enter(order)

    def _composite(self, raw: Any) -> tuple[str, list[dict[str, str]] | None]:
        """The composite instrument of a `legs` list, entered on first use; ("", None) when the
        legs are invalid (a business reject, `invalid_legs`).

        [CODE `parser/getOrderRequest.ts`] a TS leg is `{"ratio", "sym", "tid"}`; the Python
        client and the schemas say `symbol` / `tradeable_entity_id`: both are read. [CODE
        integration/ws/place-multi-leg-order.test.ts] ratios may be negative ("-1", "-5"; the
        JSON schemas' `^[0-9]+$` says otherwise: the official tests win), legs must ascend by
        entity id and number at most 10. [DOC] the composite is named `SYM@1/SYM@-1`, its
        entity `117@1/336@-1`; [INF] it takes its first leg's quantity and value rules and the
        finest price step of its legs, and has no crowd (a book of the account's orders only).
        """
        if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_LEGS:
            return "", None
        parts: list[tuple[int, str, str]] = []
        for leg in raw:
            if not isinstance(leg, dict):
                return "", None
            name = leg.get("symbol") or leg.get("sym")
            tid = leg.get("tradeable_entity_id") or leg.get("tid")
            if name is None and tid is not None:
                name = self._entity.get(tid)
            market = self.markets.get(name) if isinstance(name, str) else None
            ratio = leg.get("ratio", "")
            if market is None or MULTI_LEG in market.tags or not market.entity_id.isdigit():
                return "", None
            if not isinstance(ratio, str) or not ratio.lstrip("-").isdigit() or int(ratio) == 0:
                return "", None
            parts.append((int(market.entity_id), str(name), str(int(ratio))))
        ids = [p[0] for p in parts]
        if ids != sorted(set(ids)):
            return "", None  # not ascending, or a leg twice
        symbol = "/".join(f"{name}@{ratio}" for _, name, ratio in parts)
        entity = "/".join(f"{eid}@{ratio}" for eid, _, ratio in parts)
        if symbol not in self.markets:
            first = self.markets[parts[0][1]]
            step = min(self.markets[name].price_step for _, name, _ in parts)
            self.markets[symbol] = attrs.evolve(
                first, entity_id=entity, price_step=step, tags=(MULTI_LEG,)
            )
            self._entity[entity] = symbol
            self._l3[symbol] = {}
            self.engine.add_symbol(symbol, step, first.qty_step)
        legs = [
            {"tradeable_entity_id": str(eid), "symbol": name, "ratio": ratio}
            for eid, name, ratio in parts
        ]
        return symbol, legs

    def _invalid(self, order: _Order) -> str | None:
        m = self.markets[order.symbol]
        if order.quantity <= 0 or order.quantity % m.qty_step != 0:
            return "invalid_quantity_step"
        if order.quantity < m.min_qty:
            return "quantity_less_than_minimum_quantity"
        if order.quantity > m.max_qty:
            return "quantity_greater_than_maximum_quantity"  # [DOC]
        if order.market_id == "none":
            return None  # an RFQ's price is indicative ("0.0" = none given)
        if order.type == MARKET:
            if order.tif != "IOC" or order.price is not None:
                return "market_order_must_be_ioc_without_price"
            return None
        if order.price is None or order.price <= 0 or order.price % m.price_step != 0:
            return "invalid_price_step"
        value = order.price * order.quantity
        if value < m.min_value:
            return "value_less_than_minimum_value"
        if value > m.max_value:
            return "value_greater_than_maximum_value"
        return None

    def _enter(self, order: _Order) -> None:
        # DAY / GTD rest like GTC on the engine; the simulator ends them at their expiry
        tif = IOC if order.tif == "IOC" else GTC
        sim_order = self.engine.submit(
            self.owner,
            order.symbol,
            order.side,
            order.type,
            order.quantity,
            order.price,
            tif=tif,
            client_order_id=order.client_order_id,
        )
        self._own(sim_order.order_id)
        self._accepted(order)
        if sim_order.status == OPEN:
            self._rfq_takers(order, sim_order)

    def _cancel_order(self, client: _Client, body: dict[str, Any], tag: str) -> None:
        order = self._find(body)
        if order is not None and order.open and order.market_id == "0" and order.order_id:
            self._maybe_late_fill(client, order)
        if order is None:
            rfq = self._find_rfq(body)
            if rfq is not None:
                self._remove_rfq(rfq)
                self._cancel_reply(client, body, tag, rfq.order_id, "user_cancelled")
                return
            self._cancel_reply(client, body, tag, body.get("order_id", ""), NOT_FOUND)
            return
        if not order.open:
            reason = FULLY_EXECUTED if order.state == "filled" else NOT_FOUND
            body_out = self._end_body(order, reason)
            body_out["user_tag"] = tag
            self._send(client, "cancel_order", body_out)
            return
        self._cancel(order, tag)

    def _maybe_late_fill(self, client: _Client, order: _Order) -> None:
        """Fault injection (`late_fill`): the cancel arrived, but a trade got there first."""
        faults = self.app.faults
        live = self.engine.order(order.order_id)
        if faults is None or live is None or live.status != OPEN or live.price is None:
            return
        fraction = roll_late_fill(faults, getattr(client.conn, "path", "/"))
        if fraction is not None:
            late_fill(self.engine, live, fraction)

    def _cancel(self, order: _Order, tag: str = "") -> None:
        order.cancel_requested = True
        if order.state == "pending_new":
            # a cancel that overtakes the entry: the order never reaches the book
            if order in self._held:
                self._held.remove(order)
        elif order.market_id == "none":
            rfq = next(
                (r for r in self._rfqs.values() if r.client_order_id == order.client_order_id), None
            )
            if rfq is not None:
                self._remove_rfq(rfq)
        else:
            self.engine.cancel(order.order_id)
        self._ended(order, "cancelled", "user_cancelled", tag)

    def _cancel_reply(
        self, client: _Client, body: dict[str, Any], tag: str, order_id: str, reason: str
    ) -> None:
        now = _us(self._clock_ns())
        self._send(
            client,
            "cancel_order",
            {
                "server_utc_timestamp": now,
                "utc_timestamp": now,
                "order_id": order_id,
                "client_order_id": body.get("client_order_id", ""),
                "filled_quantity": "0.0",
                "reason": reason,
                "user_tag": tag,
            },
        )

    def _find(self, body: dict[str, Any]) -> _Order | None:
        coid = body.get("client_order_id")
        if coid:
            return self.orders.get(coid)
        oid = body.get("order_id")
        return self.orders.by_engine(oid) if oid else None

    def _cancel_all(self, client: _Client, body: dict[str, Any], tag: str) -> None:
        reply = self._cancel_all_orders(body)
        targets = reply.pop("_targets")
        reply["user_tag"] = tag
        self._send(client, "cancel_all_orders", reply)
        for order in targets:
            self._cancel(order)

    def _cancel_all_orders(self, body: dict[str, Any]) -> dict[str, Any]:
        """[CODE integration/ws/cancel-all-orders.test.ts] the reply, with `symbol` and
        `tradeable_entity_id` when filtered by either; pending_new orders are included, and so
        are the account's RFQs ([CODE integration/ws/listen-to-rfqs.test.ts]: a REST cancel-all
        withdraws the RFQ, `order_deleted` on the RFQ feed)."""
        symbol = self._symbol(body) if "symbol" in body or "tradeable_entity_id" in body else None
        targets = [o for o in self.orders.values() if o.open and symbol in (None, o.symbol)]
        now = _us(self._clock_ns())
        reply: dict[str, Any] = {"server_utc_timestamp": now, "timestamp": now}
        if symbol is not None:
            reply["symbol"] = symbol
            reply["tradeable_entity_id"] = self.markets[symbol].entity_id
        reply["reason"] = "success"
        reply["results"] = [
            {"client_order_id": o.client_order_id, "order_state": "pending_cancel"} for o in targets
        ]
        reply["_targets"] = targets
        return reply

    def _order_fields(self, order: _Order) -> dict[str, Any]:
        """The order as every order message describes it."""
        return {
            "utc_timestamp": _us(self._clock_ns()),
            "market_id": order.market_id,
            "tradeable_entity_id": self.markets[order.symbol].entity_id,
            "symbol": order.symbol,
            "type": order.type,
            "order_id": order.order_id,
            "client_order_id": order.client_order_id,
            **self._echoed(order),
            "side": order.side.value.lower(),
            # [CODE `market-proxy/types.ts` MarketProxyOpenOrderRaw] a multi-leg order's legs
            **({"legs": order.legs} if order.legs is not None else {}),
        }

    @staticmethod
    def _echoed(order: _Order) -> dict[str, str]:
        """`quantity` and `price` as the request spelled them ([CODE]
        integration/rest/get-order-details.test.ts: "1" and "10000" back for "1" and "10000";
        [DOC] order_rejected example "1000000000"), where the venue's own numbers (fills, RFQ
        book rows, filled_quantity) are written "10.0". No price was sent (an RFQ, a MARKET
        order): [INF] no `price` key ([CODE] the TS client reads such an open order's price as
        NaN, integration/ws/place-bulk-order.test.ts)."""
        fields = {"quantity": order.quantity_text or wire(order.quantity)}
        if order.price_text is not None:
            fields["price"] = order.price_text
        elif order.price is not None:
            fields["price"] = wire(order.price)
        return fields

    def _order_view(self, order: _Order) -> dict[str, Any]:
        """[DOC order-details] the REST order-details body (also an openOrders row)."""
        cancelled = order.state == "cancelled"
        if order.state in ("pending_new", "accepted") or (cancelled and not order.filled):
            state = "accepted"  # [CODE] accepted | partial_fill | filled | rejected
        elif cancelled:
            state = "partial_fill"
        else:
            state = order.state
        return {
            **self._order_fields(order),
            "order_state": state,
            "cancel_state": "cancelled" if cancelled else "none",
            "executions": list(order.executions),
        }

    def _expire(self, now: float) -> None:
        now_ns = self._clock_ns()
        for order in list(self.orders.values()):
            if not order.open:
                continue
            if order.expire_ns is not None and order.expire_ns <= now_ns:
                reason = "expired"  # [INF] the end of a GTD / DAY order
            elif order.window_ns is not None and order.window_ns <= now_ns:
                reason = RECV_WINDOW_EXPIRED
            else:
                continue
            order.cancel_requested = True
            if order.order_id:
                self.engine.cancel(order.order_id)
            self._ended(order, "cancelled", reason)
        for rfq in list(self._rfqs.values()):
            if rfq.expires_at <= now:
                self._remove_rfq(rfq)
                own = self.orders.get(rfq.client_order_id or "")
                if own is not None and own.open:
                    self._ended(own, "cancelled", "expired")
