"""Power.Trade REST API on the simulator's port: the endpoints the official clients call
(shared/venues/powertrade.md "Order details and other REST"; [CODE] TS `market-proxy/api/rest/*`,
Hummingbot). Private calls carry the JWT in the `credentials_secret` header."""

from __future__ import annotations

from typing import Any

from framework.sim.messages import HttpRequest, HttpResponse
from framework.sim.server import json_response
from framework.venues.powertrade.auth import verify_token
from framework.venues.powertrade.decode_frames import FULLY_EXECUTED
from framework.venues.powertrade.sim.common import _Order, _Refuse, _us, log, wire

# [DOC order-details] the REST spelling differs from the WS cancel's ("order id", "client order id")
REST_NOT_FOUND = "exchange order id or client order id not found in order cache"
# [DOC] code 14: the auth server rejected a REST call
REST_AUTH_FAILED = "14"


class RestApi:
    """`/v1/api/*` routes over the same state as the WebSocket."""

    def _rest_routes(self) -> None:
        http = self.app.http
        http("GET", "/v1/api/order")(self._rest_order)
        http("POST", "/v1/api/order")(self._rest_new_order)
        http("DELETE", "/v1/api/order")(self._rest_cancel)
        http("GET", "/v1/api/openOrders")(self._rest_open_orders)
        http("DELETE", "/v1/api/allOrders")(self._rest_cancel_all)
        http("GET", "/v1/api/positions")(self._rest_positions)
        http("GET", "/v1/api/balances")(self._rest_balances)
        http("GET", "/v1/api/balance")(self._rest_balances)  # [CODE] Hummingbot's spelling
        http("GET", "/v1/api/exchangeInfo")(self._rest_exchange_info)
        http("GET", "/v1/api/deliverableInfo")(self._rest_deliverables)
        http("POST", "/v1/api/refreshInterest")(self._rest_refresh)
        http("GET", "/v1/api/orderbook")(self._rest_orderbook)
        http("GET", "/v1/api/time")(self._rest_time)

    # --- helpers -------------------------------------------------------------------------------

    def _rest_denied(self, request: HttpRequest) -> HttpResponse | None:
        token = request.headers.get("credentials_secret", "")
        problem = (
            "logins refused"
            if self.refuse_logins
            else verify_token(token, self._public_key, self.api_key)
        )
        if problem is None:
            return None
        log.info("REST call refused", reason=problem, path=request.path)
        body = {
            "error_code": REST_AUTH_FAILED,
            "error_text": "auth server rejected the request, Unauthorized",
        }
        return json_response(401, {"command_response": body})  # [INF] HTTP status

    @staticmethod
    def _arg(request: HttpRequest, name: str) -> str | None:
        values = request.query.get(name)
        return values[-1] if values else None

    def _rest_find(self, request: HttpRequest) -> _Order | None:
        coid, oid = self._arg(request, "client_order_id"), self._arg(request, "order_id")
        if coid:
            return self.orders.get(coid)
        return self.orders.by_engine(oid) if oid else None

    # --- orders --------------------------------------------------------------------------------

    def _rest_order(self, request: HttpRequest) -> HttpResponse:
        denied = self._rest_denied(request)
        if denied is not None:
            return denied
        order = self._rest_find(request)
        if order is None or order.market_id != "0":
            body = {"error": "failed", "reason": REST_NOT_FOUND}
            return json_response(200, {"query_order_response": body})  # [INF] HTTP 200
        view = self._order_view(order)
        view["utc_timestamp"] = _us(self._clock_ns())
        return json_response(200, {"query_order_response": view})

    def _rest_new_order(self, request: HttpRequest) -> HttpResponse:
        """[CODE TS] JSON body `{"new_order": {...}}` → `order_accepted` | `order_rejected`."""
        denied = self._rest_denied(request)
        if denied is not None:
            return denied
        try:
            msg = request.json()
            body = msg["new_order"] if isinstance(msg, dict) else None
        except (ValueError, KeyError):
            body = None
        if not isinstance(body, dict):
            refusal = {"error_code": "12", "error_text": "error parsing new order request"}
            return json_response(400, {"command_response": refusal})
        captured: list[tuple[str, dict[str, Any]]] = []
        client = _RestClient(captured)
        try:
            self._new_order(client, body, str(body.get("user_tag", "")))
        except _Refuse as exc:
            refusal = {"error_code": exc.code, "error_text": exc.text}
            return json_response(400, {"command_response": refusal})
        order = self.orders.get(body.get("client_order_id", ""))
        if order is None or order.state == "rejected":
            reason = order.reason if order is not None else "rejected"
            reply = {"client_order_id": body.get("client_order_id", ""), "reason": reason,
                     "utc_timestamp": _us(self._clock_ns())}  # fmt: skip
            return json_response(200, {"order_rejected": reply})
        return json_response(200, {"order_accepted": self._order_fields(order)})

    def _rest_cancel(self, request: HttpRequest) -> HttpResponse:
        denied = self._rest_denied(request)
        if denied is not None:
            return denied
        order = self._rest_find(request)
        now = _us(self._clock_ns())
        if order is None or order.market_id != "0":
            reason = REST_NOT_FOUND
        elif not order.open:
            reason = FULLY_EXECUTED if order.state == "filled" else REST_NOT_FOUND
        else:
            self._cancel(order)
            reason = "user_cancelled"
        body = {
            "tradeable_entity_id": (
                self.markets[order.symbol].entity_id if order is not None else ""
            ),
            "symbol": order.symbol if order is not None else "",
            "order_id": (
                order.order_id if order is not None else (self._arg(request, "order_id") or "")
            ),
            "client_order_id": (
                order.client_order_id
                if order is not None
                else (self._arg(request, "client_order_id") or "")
            ),
            "timestamp": now,
            "filled_quantity": _wire_filled(order),
            "reason": reason,
        }
        return json_response(200, {"cancel_order_response": body})

    def _rest_open_orders(self, request: HttpRequest) -> HttpResponse:
        denied = self._rest_denied(request)
        if denied is not None:
            return denied
        # [CODE integration/ws/place-bulk-order.test.ts] the account's open RFQs are listed too
        # (`market_id` "none"), beside its firm orders
        rows = [self._order_view(o) for o in self.orders.values() if o.open]
        body = {"utc_timestamp": _us(self._clock_ns()), "open_orders": rows}
        return json_response(200, {"query_open_orders_response": body})

    def _rest_cancel_all(self, request: HttpRequest) -> HttpResponse:
        denied = self._rest_denied(request)
        if denied is not None:
            return denied
        filters = {k: v[-1] for k, v in request.query.items() if v}
        try:
            reply = self._cancel_all_orders(filters)
        except _Refuse as exc:
            refusal = {"error_code": exc.code, "error_text": exc.text}
            return json_response(400, {"command_response": refusal})
        targets = reply.pop("_targets")
        reply.pop("server_utc_timestamp", None)
        # [CODE integration/rest/cancel-all-orders.test.ts] the REST reply carries an empty
        # `user_tag` (shared/venues/powertrade.md lists only timestamp, reason, results)
        reply["user_tag"] = ""
        for order in targets:
            self._cancel(order)
        return json_response(200, {"cancel_all_orders_response": reply})

    # --- account and reference data ------------------------------------------------------------

    def _rest_positions(self, request: HttpRequest) -> HttpResponse:
        denied = self._rest_denied(request)
        if denied is not None:
            return denied
        return json_response(200, {"positions_response": self._position_body()})

    def _rest_balances(self, request: HttpRequest) -> HttpResponse:
        denied = self._rest_denied(request)
        if denied is not None:
            return denied
        # [CODE `market-proxy/api/rest/balanceRest.ts`, integration/rest/balance.test.ts] the
        # rows themselves are the value of `balance_response` (the WS reply wraps them in
        # `balances` beside `user_tag`)
        return json_response(200, {"balance_response": self._balance_rows()})

    def _rest_deliverables(self, request: HttpRequest) -> HttpResponse:
        # [INF] public like exchangeInfo (the TS client sends its token anyway)
        return json_response(200, {"deliverables_response": self._deliverable_body()})

    def _rest_refresh(self, request: HttpRequest) -> HttpResponse:
        """[CODE `market-proxy/api/rest/refreshRfqInterestRest.ts`,
        integration/rest/refresh-rfq-interest.test.ts] `POST /v1/api/refreshInterest?order_id=…`
        (or `client_order_id`) → `refresh_response {order_id, client_order_id, timestamp,
        reason}`, the id not given echoed as ""."""
        denied = self._rest_denied(request)
        if denied is not None:
            return denied
        oid = self._arg(request, "order_id") or ""
        coid = self._arg(request, "client_order_id") or ""
        ok = self._refresh_rfq({"order_id": oid, "client_order_id": coid})
        body = {
            "order_id": oid,
            "client_order_id": coid,
            "timestamp": _us(self._clock_ns()),
            "reason": "success" if ok else REST_NOT_FOUND,  # [INF] the REST spelling
        }
        return json_response(200, {"refresh_response": body})

    def _rest_exchange_info(self, request: HttpRequest) -> HttpResponse:
        return json_response(200, {"entities_and_rules_response": self._entities_body("")})

    def _rest_orderbook(self, request: HttpRequest) -> HttpResponse:
        symbol = self._arg(request, "symbol")
        if symbol not in self.markets:
            refusal = {"error_code": "19", "error_text": f"unknown symbol {symbol}"}  # [INF]
            return json_response(400, {"command_response": refusal})
        depth_arg = self._arg(request, "depth") or "10"
        depth = int(depth_arg) if depth_arg.isdigit() else 10
        bids, asks = self.engine.book(symbol)
        body = {
            "server_utc_timestamp": _us(self._clock_ns()),
            "symbol": symbol,
            "buy": [{"price": wire(p), "quantity": wire(q)} for p, q in bids[:depth]],
            "sell": [{"price": wire(p), "quantity": wire(q)} for p, q in asks[:depth]],
        }
        return json_response(200, {"orderbook_response": body})

    def _rest_time(self, request: HttpRequest) -> HttpResponse:
        return json_response(200, {"server_utc_timestamp": _us(self._clock_ns())})


def _wire_filled(order: _Order | None) -> str:
    return wire(order.filled) if order is not None else "0.0"


class _RestClient:
    """Stands in for a WebSocket client when a REST call runs the WS handler: what the handler
    would have sent the caller directly is kept (the lifecycle still goes to the WS sessions)."""

    authenticated = True
    last_sent = 0.0

    def __init__(self, captured: list[tuple[str, dict[str, Any]]]) -> None:
        self.captured = captured
        self.conn = self

    def enqueue(self, text: str) -> bool:
        self.captured.append(("raw", {"text": text}))
        return True
