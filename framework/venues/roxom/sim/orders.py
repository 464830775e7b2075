"""Roxom REST order entry: create (checks, margin), stops and their triggers, cancel (held or
not), cancel-all, get, list, GTD expiry."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import trio

from framework.events import Side
from framework.sim.engine import (
    GTC,
    IOC,
    LIMIT,
    MARKET,
)
from framework.sim.loopback import trim_history
from framework.sim.server import (
    HttpRequest,
    HttpResponse,
    json_response,
)
from framework.venues.roxom.auth import (
    canonical_body,
    rest_message,
)
from framework.venues.roxom.instruments import INST_TYPE, SPECS, band_refusal
from framework.venues.roxom.sim.common import FINAL, RoxOrder, _decimal, _Refused


class OrderEntry:
    """`/api/v1/orders...`: the account's orders from request to engine and back."""

    # --- REST ----------------------------------------------------------------------------------

    def _error_response(self, status: int, message: str, details: str | None = None) -> Any:
        body = {
            "error": {"code": status, "message": message, "details": details or message},
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "requestId": self._uuid(),
        }
        return json_response(status, body)

    def _ok(self, data: Any) -> HttpResponse:
        return json_response(200, {"data": data, "error": False})

    def _check_signature(self, request: HttpRequest, body: dict[str, Any] | None) -> None:
        # [DOC] "every parameter MUST be hashed as it's sent": the query exactly as received
        message = rest_message(
            request.method, request.path, request.raw_query, canonical_body(body)
        )
        if not self._signed(request.headers, message):
            raise _Refused(401, "Authentication failed", "missing or invalid API signature")

    def _handle(
        self,
        request: HttpRequest,
        action: Callable[[dict[str, Any]], Any],
        wrap: Callable[[Any], HttpResponse] | None = None,
    ) -> Any:
        try:
            body: dict[str, Any] = {}
            if request.body:
                try:
                    body = request.json()
                except ValueError:
                    raise _Refused(400, "Invalid request", "body is not JSON") from None
                if not isinstance(body, dict):
                    raise _Refused(400, "Invalid request", "body must be a JSON object")
            self._check_signature(request, body)
            return (wrap or self._ok)(action(body))
        except _Refused as refused:
            return self._error_response(refused.status, refused.message, refused.details)

    def _create(self, request: HttpRequest) -> Any:
        return self._handle(request, self._new_order)

    def _cancel(self, request: HttpRequest, order_id: str) -> Any:
        return self._handle(request, lambda body: self._cancel_order(order_id))

    def _cancel_all(self, request: HttpRequest) -> Any:
        def cancel_all(body: dict[str, Any]) -> dict[str, Any]:
            symbol = body.get("symbol")
            ids = []
            for order in list(self.orders.values()):
                if order.status not in FINAL and symbol in (None, order.symbol):
                    self._cancel_order(order.order_id)
                    ids.append(order.order_id)
            return {"cancelledOrderIds": ids}

        return self._handle(request, cancel_all)

    def _unit(self, request: HttpRequest) -> str:
        unit = (request.arg("unit") or "btc").lower()  # [DOC] default btc; any case
        if unit not in ("btc", "sats"):
            raise _Refused(400, "Invalid request", "unit must be btc or sats")
        return unit

    def _get(self, request: HttpRequest, order_id: str) -> Any:
        # [DOC] {"data":{"order":{...}}}: the GET view, never the event view
        return self._handle(
            request,
            lambda body: {
                "order": self._rest_view(self._find(order_id), self._unit(request), listed=False)
            },
            wrap=lambda data: json_response(200, {"data": data}),
        )

    def _list(self, request: HttpRequest) -> Any:
        def listing(body: dict[str, Any]) -> dict[str, Any]:
            if request.arg("instType") != INST_TYPE:
                raise _Refused(400, "Invalid request", "instType is required (perpetual)")
            unit = self._unit(request)
            symbol = request.arg("symbol") or None
            closed = request.arg("includeClosed") == "true"
            orders = [
                self._rest_view(o, unit, listed=True)
                for o in self.orders.values()
                if symbol in (None, o.symbol) and (closed or o.status not in FINAL)
            ]
            return {"orders": orders}

        # [DOC] {"error":false,"data":{"orders":[...]}}
        return self._handle(
            request, listing, wrap=lambda data: json_response(200, {"error": False, "data": data})
        )

    def _instruments(self, request: HttpRequest) -> HttpResponse:
        """[DOC] `GET /api/v1/market/instruments` with JSON numbers; [INF] in the requested
        unit (btc), unsigned (public market data)."""
        items = []
        for symbol in self.engine.symbols():
            spec = SPECS[symbol]
            fields = {
                "symbol": f'"{symbol}"',
                "baseAsset": f'"{spec.base}"',
                "quoteAsset": '"BTC"',
                "status": '"active"',
                "min_order_size": format(spec.step, "f"),
                "max_order_size": "1000000",
                "tickSize": format(spec.tick, "f"),
                "contractSize": "1",
                "makerFee": format(self.fee_rates[True], "f"),
                "takerFee": format(self.fee_rates[False], "f"),
                "maxLeverage": "100",
                "tradingHours": '"24/7"',
            }
            items.append("{" + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}")
        return HttpResponse(200, ('{"data":[' + ",".join(items) + "]}").encode())

    def _find(self, order_id: str) -> RoxOrder:
        order = self.orders.get(order_id)
        if order is None:
            raise _Refused(404, "Order not found", f"no order {order_id}")
        return order

    def _new_order(self, body: dict[str, Any]) -> dict[str, str]:
        symbol = body.get("symbol")
        if symbol not in self.engine.symbols():
            raise _Refused(400, "Market not available", f"unknown symbol {symbol!r}")
        if body.get("instType", INST_TYPE) != INST_TYPE:
            raise _Refused(400, "Invalid request", "instType must be perpetual")
        side = {"buy": Side.BUY, "sell": Side.SELL}.get(body.get("side"))  # type: ignore[arg-type]
        kind = body.get("orderType")
        tif = body.get("timeInForce") or "gtc"
        if side is None or kind not in ("market", "limit", "stop", "stoplimit"):
            raise _Refused(400, "Invalid request", "side or orderType invalid")
        if tif not in ("gtc", "ioc", "gtd"):
            raise _Refused(400, "Invalid request", f"timeInForce {tif!r} invalid")
        # [DOC] the text says btc/sats, the docs' own example sends "BTC": any case
        if str(body.get("unit", "btc")).lower() not in ("btc", "sats"):
            raise _Refused(400, "Invalid request", "unit must be btc or sats")
        size = _decimal(body, "qty")
        limit = _decimal(body, "px") if kind in ("limit", "stoplimit") else None
        trigger = _decimal(body, "triggerPx") if kind in ("stop", "stoplimit") else None
        cancel_at = body.get("cancelAt")
        # [DOC] cancelAt is an integer (ms)
        if cancel_at is not None and (type(cancel_at) is not int or cancel_at < 0):
            raise _Refused(400, "Invalid request", "cancelAt must be an integer (ms)")
        if tif == "gtd" and cancel_at is None:
            raise _Refused(400, "Invalid request", "gtd orders need cancelAt (ms)")
        coid = body.get("clientOrderId")
        if coid is not None and not isinstance(coid, str):
            raise _Refused(400, "Invalid request", "clientOrderId must be a string")
        existing = self.orders.by_client(coid) if coid else None
        if existing is not None and existing.status not in FINAL:
            # [INF] a client order id may be reused only once its order is final
            raise _Refused(400, "Duplicate clientOrderId", f"{coid} is in use")
        self._validate(symbol, side, size, limit, trigger)
        order = RoxOrder(
            order_id=self._uuid(),
            client_order_id=coid,
            symbol=symbol,
            side=side,
            order_type=kind,
            size=size,
            limit_price=limit,
            trigger_price=trigger,
            tif=tif,
            post_only=body.get("postOnly") is True,
            cancel_at_ms=cancel_at if tif == "gtd" else None,
            created_ns=self._clock_ns(),
        )
        self.orders.add(order)
        # [INF] every accepted order reports pendingsubmit first
        self._order_event(order)
        if kind in ("stop", "stoplimit"):
            order.status = "waitingtrigger"
            self._stops[order.order_id] = order
            self._order_event(order)
        else:
            self._to_engine(order)
        return {"orderId": order.order_id}

    def _forget_old_fills(self) -> None:
        # only fills still in the engine's history of our fills are looked up (chaos.py), and
        # that history has the same length: the oldest beyond it are gone from it already
        trim_history(self.fill_ids, self.engine.fill_history_limit)

    def _validate(
        self,
        symbol: str,
        side: Side,
        size: Decimal,
        limit: Decimal | None,
        trigger: Decimal | None,
    ) -> None:
        spec = SPECS.get(symbol)
        tick, step = self.engine.tick(symbol), self.engine.lot(symbol)
        if size % step != 0:
            raise _Refused(400, "Invalid quantity", f"qty must be a multiple of {step}")
        for name, value in (("px", limit), ("triggerPx", trigger)):
            if value is not None and value % tick != 0:
                raise _Refused(400, "Invalid price", f"{name} must be a multiple of {tick}")
        if limit is not None:
            refusal = band_refusal(
                side is Side.BUY, limit, self.engine.best_bid(symbol), self.engine.best_ask(symbol)
            )
            if refusal is not None:
                raise _Refused(400, "Price outside allowed range", refusal)
        reference = limit or trigger or self._reference(symbol, side)
        if reference is None:
            raise _Refused(400, "Market not available", "no price to execute against")
        if spec is not None and reference * size < spec.min_notional:
            raise _Refused(400, "Order value too small", f"minimum notional {spec.min_notional}")
        # [INF] an order needs its initial margin free (what positions and open orders use is
        # taken off the wallet balance)
        needed = reference * size / self.account.leverage
        free = self.account.balance - self.account.used_margin() - self._orders_margin()
        if needed > free:
            raise _Refused(400, "Insufficient balance", f"margin {needed} above free {free}")

    def _reference(self, symbol: str, side: Side) -> Decimal | None:
        return self.engine.best_ask(symbol) if side is Side.BUY else self.engine.best_bid(symbol)

    def _orders_margin(self) -> Decimal:
        total = Decimal(0)
        for order in self.orders.values():
            if order.status not in FINAL and order.limit_price is not None:
                left = order.size - order.executed
                total += left * order.limit_price / self.account.leverage
        return total

    def _to_engine(self, order: RoxOrder) -> None:
        is_market = order.order_type in ("market", "stop")
        previous, self._submitting = self._submitting, order
        try:
            engine_order = self.engine.submit(
                self.engine_owner,
                order.symbol,
                order.side,
                MARKET if is_market else LIMIT,
                order.size,
                None if is_market else order.limit_price,
                # [INF] gtd rests like gtc until its cancelAt; market orders never rest
                IOC if order.tif == "ioc" or is_market else GTC,
                post_only=order.post_only,
                client_order_id=order.client_order_id,
            )
        finally:
            self._submitting = previous
        if order.engine_id is None:
            # submitted from inside an engine callback (a stop triggering): its events are
            # delivered after this returns, so the id is known in time
            order.engine_id = engine_order.order_id
            self.orders.bind_engine(engine_order.order_id, order)

    def _check_stops(self, symbol: str, last: Decimal) -> None:
        # [INF] stops trigger on the last trade price reaching the trigger price
        for order in list(self._stops.values()):
            if order.symbol != symbol or order.trigger_price is None:
                continue
            hit = (
                last >= order.trigger_price
                if order.side is Side.BUY
                else (last <= order.trigger_price)
            )
            if hit:
                del self._stops[order.order_id]
                order.status = "submitted"
                self._order_event(order)
                self._to_engine(order)

    def _cancel_order(self, order_id: str) -> dict[str, bool]:
        order = self._find(order_id)
        if order.status in FINAL or order.status == "pendingcancel":
            raise _Refused(400, "Order not cancellable", f"order is {order.status}")
        order.status = "pendingcancel"
        self._order_event(order)
        if self.hold_cancels:
            self._held.append(order)  # [DOC] "a cancel can be delayed": the order may fill
        else:
            self._cancel_now(order)
        return {"success": True}

    def _cancel_now(self, order: RoxOrder, reason: str | None = None) -> None:
        if order.status in FINAL:
            return  # filled while the cancel waited
        if reason:
            order.reason = reason
        if self._stops.pop(order.order_id, None) is not None:
            order.status = "cancelled"
            self._order_event(order)
        elif order.engine_id is not None:
            self.engine.cancel(order.engine_id)  # its on_order reports the cancel

    async def _expiry_loop(self) -> None:
        while True:
            await trio.sleep(0.05)
            now_ms = self._clock_ns() // 1_000_000
            for order in list(self.orders.values()):
                if (
                    order.cancel_at_ms is not None
                    and order.cancel_at_ms <= now_ms
                    and order.status not in FINAL
                ):
                    self._cancel_now(order, "expired")  # [INF] gtd: cancelled at cancelAt
