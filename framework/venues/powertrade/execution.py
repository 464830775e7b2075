"""Power.Trade execution: orders, cancels, order status, account refresh and RFQ actions.

`PowerTradeExecution` sends orders through the stream's current connection; a
new_order is answered by the first lifecycle message naming its `client_order_id` ([CODE]
`order_accepted` / `order_rejected` carry no `user_tag`; an `execution` or `cancel_order` that
overtakes them implies acceptance), or by a `command_response` with its `user_tag` when it failed
parsing. The rest of an order's life arrives as `ExecutionReport`s from the decoder, which the core
routes to the order manager. Order details, open orders: REST (`GET /v1/api/order`, `openOrders`),
as the official clients call them. Also here: the order body and its checks against `EntityRules`.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx
import structlog
import trio

from framework.errors import FrameError, HttpProblem, NotConnected, OrderNotFound, OrderRefused
from framework.events import ExecutionReport, Liquidity, OrderStatus, OrderType, Side, TimeInForce
from framework.model import Order
from framework.transport.rest import request_json
from framework.transport.wire import dec, dec_str
from framework.venue import ExecutionClient
from framework.venues.powertrade.client import CANCELLED, LIFECYCLE, PowerTradeStream, now_us
from framework.venues.powertrade.decode_frames import (
    FULLY_EXECUTED,
    VENUE,
    is_cancel_refusal,
    text,
    ts_any,
)
from framework.venues.powertrade.entities import EntityRules
from framework.venues.powertrade.events import Rfq

if TYPE_CHECKING:
    from framework.execution.handle import OrderHandle
    from framework.strategy import Strategy

log = structlog.get_logger("botrun.powertrade")

_ZERO = Decimal(0)
_YEAR_US = 366 * 24 * 3600 * 1_000_000
_STATUS = {
    "pending_new": OrderStatus.SUBMITTED,
    "entered": OrderStatus.ACCEPTED,
    "accepted": OrderStatus.ACCEPTED,
    "partial_fill": OrderStatus.PARTIALLY_FILLED,
    "pending_cancel": OrderStatus.CANCEL_REQUESTED,
    "filled": OrderStatus.FILLED,
    "cancelled": OrderStatus.CANCELLED,
    "rejected": OrderStatus.REJECTED,
    "expired": OrderStatus.EXPIRED,
}


def pt_num(value: Decimal) -> str:
    """A price or quantity as the venue takes it: plain decimal notation that always carries a
    decimal point ("59900.0", "1.0", "0.00000001"), never exponent form. [CODE] the official
    Python example: `price: "825"` or `quantity: "1"` fail, `"825.0"` and `"1.0"` succeed."""
    if not value.is_finite():
        raise OrderRefused(f"not a finite number: {value}")
    text = dec_str(value)
    return text if "." in text else text + ".0"


# [CODE] every official client sends recv_window on every non-market order; Python and
# Hummingbot "144" (144 x 10 min = 1 day)
DEFAULT_RECV_WINDOW = "144"
# [CODE Hummingbot] "not found in order cache" proves nothing until the venue has had this long
# to see the order
NOT_FOUND_GRACE_S = 300.0
SIM_NOT_FOUND_GRACE_S = 5.0  # the simulator's cache has no lag (see PowerTradeConfig)


def order_body(
    order: Order,
    rules: EntityRules | None,
    *,
    now_us_: int | None = None,
    recv_window: str = DEFAULT_RECV_WINDOW,
) -> dict[str, Any]:
    """The `new_order` body, or OrderRefused before it leaves."""
    if rules is None:
        raise OrderRefused(f"unknown symbol {order.symbol!r} on powertrade")
    if rules.status != "active":
        raise OrderRefused(f"{order.symbol} is {rules.status}")
    if order.post_only:
        raise OrderRefused("powertrade has no post-only orders")  # [INF] none documented
    if order.tif is TimeInForce.FOK:
        raise OrderRefused("powertrade has no FOK time in force (GTC, IOC, DAY, GTD)")
    check_quantity(order.quantity, rules)
    body: dict[str, Any] = {
        "market_id": "0",
        "side": "buy" if order.side is Side.BUY else "sell",
        "type": order.type.value,
        "time_in_force": order.tif.value,
        "quantity": pt_num(order.quantity),
        "client_order_id": order.client_order_id,
        "timestamp": str(now_us_ if now_us_ is not None else time.time_ns() // 1000),
        "symbol": order.symbol,
    }
    if order.type is OrderType.MARKET:
        if order.tif is not TimeInForce.IOC:
            raise OrderRefused("powertrade MARKET orders must be IOC")
        if order.price is not None:
            raise OrderRefused("powertrade MARKET orders take no price")
    else:
        if order.price is None:
            raise OrderRefused("limit order needs a price")
        check_price(order.price, order.quantity, rules)
        body["price"] = pt_num(order.price)
        # [CODE] the order lives recv_window x 10 min: a "GTC" order ends then (the venue's
        # unsolicited cancel_order) and must be placed again by whoever wants it
        body["recv_window"] = recv_window
    if order.tif is TimeInForce.GTD:
        if order.expire_at_ns is None:
            raise OrderRefused("GTD order needs expire_at_ns")
        expire = order.expire_at_ns // 1000
        now = int(body["timestamp"])
        if not now <= expire <= now + _YEAR_US:
            raise OrderRefused("expire time should be in range [now, +1 year]")
        body["expire_timestamp"] = str(expire)
    return body


def check_quantity(quantity: Decimal, rules: EntityRules) -> None:
    if quantity % rules.qty_step != 0:
        raise OrderRefused(f"quantity {quantity} is not a multiple of {rules.qty_step}")
    if quantity < rules.min_qty:
        raise OrderRefused(f"quantity {quantity} below minimum {rules.min_qty}")
    if quantity > rules.max_qty:
        raise OrderRefused(f"quantity {quantity} above maximum {rules.max_qty}")


def check_price(price: Decimal, quantity: Decimal, rules: EntityRules) -> None:
    if price <= 0 or price % rules.price_step != 0:
        raise OrderRefused(f"price {price} is not a positive multiple of {rules.price_step}")
    value = price * quantity
    if value < rules.min_value:
        raise OrderRefused(f"order value {value} below minimum {rules.min_value}")
    if value > rules.max_value:
        raise OrderRefused(f"order value {value} above maximum {rules.max_value}")


# the order's own messages: the decoder reports them, so as a reply they say nothing more
_LIFECYCLE_KINDS = frozenset({"order_accepted", "order_rejected", "execution", "cancel_order"})


def _refusal(kind: str, body: dict[str, Any]) -> str | None:
    if kind == "command_response" and body.get("error_code") != "0":
        return f"error {body.get('error_code')}: {body.get('error_text', '')}"
    if body.get("order_state") == "rejected":
        return str(body.get("reason", "rejected"))
    return None


class PowerTradeExecution(ExecutionClient):
    """Orders, cancels, order status, account refresh and RFQ actions over the stream's socket."""

    client_order_id_max_len = 32  # [DOC] 1-32 bytes
    supports_cancel_all = True  # [DOC] cancel_all_orders

    def __init__(
        self,
        stream: PowerTradeStream,
        rules: dict[str, EntityRules],
        *,
        request_timeout_s: float = 10.0,
        account_interval_s: float = 10.0,
        rest: httpx.AsyncClient | None = None,
        login: Callable[[], str] | None = None,
        recv_window: str = DEFAULT_RECV_WINDOW,
        not_found_grace_s: float = NOT_FOUND_GRACE_S,
    ) -> None:
        if not recv_window.isdigit() or int(recv_window) <= 0:
            raise ValueError(f"recv_window must be a positive whole number, got {recv_window!r}")
        self.venue = VENUE
        self.stream = stream
        self.recv_window = recv_window
        self.not_found_grace_s = not_found_grace_s
        # the REST API on the same host (open orders); None where it is not served
        self.rest = rest
        self._rest_login = login
        self.rules = rules
        self.request_timeout_s = request_timeout_s
        self.account_interval_s = account_interval_s
        self._rfq_ids = itertools.count(1)
        # orders the venue ended, to check for fills we never heard of (see `_order_ended`)
        self._ended: dict[str, tuple[Order, Decimal | None]] = {}
        self._ended_wakeup = trio.Event()
        stream.end_hook = self._order_ended

    async def _request(
        self, kind: str, body: dict[str, Any], keys: tuple[tuple[str, str], ...] = ()
    ) -> tuple[str, dict[str, Any]]:
        if not await self.stream.wait_ready(self.request_timeout_s):
            raise NotConnected("powertrade: not logged in")
        return await self.stream.request(kind, body, self.request_timeout_s, keys)

    # --- ExecutionClient -----------------------------------------------------------------------

    async def submit(self, order: Order) -> ExecutionReport | None:
        body = order_body(order, self.rules.get(order.symbol), recv_window=self.recv_window)
        try:
            kind, reply = await self._request(
                "new_order", body, ((LIFECYCLE, order.client_order_id),)
            )
        except NotConnected as exc:
            raise OrderRefused(str(exc)) from None  # it never left
        if kind in _LIFECYCLE_KINDS:
            return None  # the decoder reported it (accepted, rejected, filled, ended)
        reason = _refusal(kind, reply)
        if reason is not None:
            raise OrderRefused(reason)
        return None  # pending_new: order_accepted / order_rejected follow

    async def cancel(self, order: Order) -> ExecutionReport | None:
        # [DOC] by client_order_id, or by order_id (an orphan listed without our id); a reply
        # naming only the order id cannot answer a cancel sent without one, so such a cancel
        # waits for its user_tag's command_response or times out into a query
        body = (
            {"client_order_id": order.client_order_id}
            if order.client_order_id or not order.venue_order_id
            else {"order_id": order.venue_order_id}
        )
        keys = ((CANCELLED, order.client_order_id),) if order.client_order_id else ()
        kind, reply = await self._request("cancel_order", body, keys)
        if kind == "command_response":
            if reply.get("error_code") == "0":
                return None
            raise OrderRefused(f"error {reply.get('error_code')}: {reply.get('error_text', '')}")
        reason = str(reply.get("reason", ""))
        if reason == FULLY_EXECUTED:
            raise OrderRefused(reason)
        if is_cancel_refusal(reason):
            raise OrderNotFound(reason)
        return None  # the decoder reported the cancel (reply or unsolicited end)

    async def cancel_all(self, symbol: str | None = None) -> None:
        body = {"symbol": symbol} if symbol else {}
        kind, reply = await self._request("cancel_all_orders", body)
        reason = _refusal(kind, reply)
        if reason is not None or reply.get("reason", "success") != "success":
            raise OrderRefused(reason or str(reply.get("reason")))

    async def query_order(self, order: Order) -> ExecutionReport | None:
        report = await self._query(order.client_order_id)
        if report is not None:
            return report
        # [DOC] "not found in order cache" does not prove the order never existed; [CODE]
        # Hummingbot believes it only once the order is 300 s old. Younger: not an answer (the
        # core keeps asking), so a live order is never turned REJECTED by a cache miss alone.
        age_s = (time.time_ns() - order.created_ns) / 1e9 if order.created_ns else float("inf")
        if age_s < self.not_found_grace_s:
            raise OrderNotFound(
                f"powertrade: {order.client_order_id} not in the order cache yet "
                f"({age_s:.0f}s old, believed after {self.not_found_grace_s:.0f}s)"
            )
        return None

    def _rest_headers(self) -> dict[str, str]:
        if self.rest is None or self._rest_login is None:
            raise NotImplementedError("powertrade: no REST API configured")
        # [DOC] the JWT in the `credentials_secret` header on every private call
        return {"credentials_secret": self._rest_login()}

    async def list_open_orders(self) -> list[ExecutionReport]:
        """[DOC] REST `GET /v1/api/openOrders` → `query_open_orders_response.open_orders`."""
        headers = self._rest_headers()
        assert self.rest is not None
        answer = await request_json(
            self.rest, "GET", "/v1/api/openOrders", venue=VENUE, headers=headers
        )
        body = answer.get("query_open_orders_response") if isinstance(answer, dict) else None
        rows = body.get("open_orders") if isinstance(body, dict) else None
        if not isinstance(rows, list):
            raise FrameError(f"openOrders: unexpected answer {str(answer)[:200]}")
        # [CODE TS integration/ws/place-bulk-order.test.ts] the list also holds the account's
        # RFQs (`market_id` "none"; "255" in older frames): not firm orders, so not listed here
        return [
            self._listed(row)
            for row in rows
            if isinstance(row, dict) and row.get("market_id") not in ("none", "255")
        ]

    @staticmethod
    def _listed(row: dict[str, Any]) -> ExecutionReport:
        """One `open_orders` row (the order-details fields: `executions` are its fills)."""
        if "filled_quantity" in row:
            filled = dec(row["filled_quantity"], "filled_quantity")
        else:
            executions = row.get("executions") or []
            filled = sum((dec(ex.get("executed_quantity"), "qty") for ex in executions), _ZERO)
        price = dec(row["price"], "price") if row.get("price") not in (None, "", "0") else None
        side = str(row.get("side", "")).upper()
        state = row.get("order_state")
        return ExecutionReport(
            VENUE,
            str(row.get("client_order_id") or ""),
            status=_STATUS.get(state, OrderStatus.ACCEPTED) if isinstance(state, str) else None,
            venue_order_id=str(row.get("order_id") or "") or None,
            cum_qty=filled,
            price=price,
            quantity=dec(row["quantity"], "quantity") if row.get("quantity") else None,
            symbol=row.get("symbol"),
            side=Side(side) if side in ("BUY", "SELL") else None,
        )

    async def _query(self, client_order_id: str) -> ExecutionReport | None:
        """[DOC order-details] REST `GET /v1/api/order?client_order_id=…` (the venue has no
        WebSocket order-details request). None: "not found in order cache" (see query_order).
        Fills come as `executions[]`, each with its trade id (the core de-duplicates them)."""
        headers = self._rest_headers()
        assert self.rest is not None
        answer = await request_json(
            self.rest,
            "GET",
            "/v1/api/order",
            venue=VENUE,
            headers=headers,
            params={"client_order_id": client_order_id},
        )
        reply = answer.get("query_order_response") if isinstance(answer, dict) else None
        if not isinstance(reply, dict):
            raise FrameError(f"order details: unexpected answer {str(answer)[:200]}")
        if reply.get("error") is not None:
            reason = str(reply.get("reason", ""))
            if "not found" in reason:
                return None
            raise FrameError(f"order details refused: {reason or reply}")
        return self._details(client_order_id, reply)

    def _details(self, client_order_id: str, reply: dict[str, Any]) -> ExecutionReport:
        state = reply.get("order_state")
        status = _STATUS.get(state) if isinstance(state, str) else None
        if status is None:
            raise FrameError(f"query_order_response: unknown order_state {state!r}")
        cancel_state = reply.get("cancel_state", "none")
        if cancel_state not in ("none", "cancelled", "pending_cancel"):
            raise FrameError(f"query_order_response: unknown cancel_state {cancel_state!r}")
        venue_id = reply.get("order_id") or None
        if venue_id is not None and type(venue_id) is not str:
            raise FrameError("query_order_response: order_id is not a string")
        fills = []
        executions = reply.get("executions") or []
        if not isinstance(executions, list):
            raise FrameError("query_order_response: executions is not a list")
        for ex in executions:
            if not isinstance(ex, dict):
                raise FrameError("query_order_response: an execution is not an object")
            flag = ex.get("liquidity_flag")
            price = dec(ex.get("executed_price"), "executed_price")
            qty = dec(ex.get("executed_quantity"), "executed_quantity")
            if price <= 0 or qty <= 0:
                raise FrameError("query_order_response: execution price and size must be > 0")
            fills.append(
                ExecutionReport(
                    VENUE,
                    client_order_id,
                    venue_order_id=venue_id,
                    fill_id=text(ex, "trade_id"),
                    fill_price=price,
                    fill_qty=qty,
                    liquidity={"added": Liquidity.MAKER, "taken": Liquidity.TAKER}.get(flag),
                    venue_ts=ts_any(ex, "utc_timestamp"),
                )
            )
        if self.ctx is not None:
            for report in fills:  # only once the whole reply parsed: none or all of them
                self.ctx.on_report(report)
        if status is OrderStatus.SUBMITTED:
            status = OrderStatus.ACCEPTED  # the venue has it
        if cancel_state == "cancelled" and status in (
            OrderStatus.ACCEPTED,
            OrderStatus.PARTIALLY_FILLED,
        ):
            status = OrderStatus.CANCELLED
        return ExecutionReport(
            VENUE,
            client_order_id,
            status=status,
            venue_order_id=venue_id,
            reason=str(reply.get("reason", "")) or None,
        )

    # --- fills we never heard of ---------------------------------------------------------------

    def _order_ended(self, client_order_id: str, venue_filled: Decimal | None) -> None:
        """The venue ended one of our working orders (called before the core applies it).

        `venue_filled` is the cumulative quantity the venue says it filled (`cancel_order`), or
        None when an execution filled it completely. If that is more than the fills we got, an
        `execution` went missing (lost with a connection, e.g. while the order's submit was in
        flight and reconnect reconciliation left it alone): `_check_ended` asks the venue for the
        order's executions, each named by its trade id, so the core counts each exactly once.
        """
        if self.ctx is None:
            return
        for order in self.ctx.open_orders(VENUE):
            if order.client_order_id == client_order_id:
                self._ended[client_order_id] = (order, venue_filled)
                self._ended_wakeup.set()
                return

    async def _check_ended(self) -> None:
        while True:
            await self._ended_wakeup.wait()
            self._ended_wakeup = trio.Event()
            for coid, (order, venue_filled) in list(self._ended.items()):
                # by now the core has applied the end (and the fill that came with it)
                expected = order.quantity if venue_filled is None else venue_filled
                if order.filled_qty >= expected:
                    self._ended.pop(coid, None)
                    continue
                log.warning(
                    "order ended with fills we never saw; asking for them",
                    venue=VENUE,
                    client_order_id=coid,
                    venue_filled=str(expected),
                    known=str(order.filled_qty),
                )
                try:
                    report = await self._query(coid)
                except (ConnectionError, TimeoutError, FrameError, HttpProblem) as exc:
                    log.warning("missing fills query failed", venue=VENUE, error=str(exc))
                    continue  # kept: asked again below
                self._ended.pop(coid, None)
                if report is not None and self.ctx is not None:
                    self.ctx.on_report(report)
            if self._ended:
                # a failed query: try again soon (the connection is being re-established)
                await trio.sleep(min(1.0, self.request_timeout_s))
                self._ended_wakeup.set()

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._check_ended)
            await self._account_loop()

    async def _account_loop(self) -> None:
        """Balances and positions: now, every `account_interval_s`, and soon after a fill."""
        while True:
            self.stream.fills_seen = trio.Event()
            try:
                await self.refresh_account()
            except (ConnectionError, TimeoutError, FrameError) as exc:
                log.warning("account refresh failed", venue=VENUE, error=str(exc))
            with trio.move_on_after(self.account_interval_s):
                await self.stream.fills_seen.wait()

    async def refresh_account(self) -> None:
        """Ask for balances and positions; the decoder publishes them as events."""
        await self._request("balances", {})
        await self._request("position_info", {})

    # --- RFQs ----------------------------------------------------------------------------------

    async def post_rfq(
        self, symbol: str, side: Side, quantity: Decimal, price: Decimal | None = None
    ) -> str:
        """Post an RFQ (an indicative order, `market_id "none"`); returns its client order id."""
        rules = self.rules.get(symbol)
        if rules is None:
            raise OrderRefused(f"unknown symbol {symbol!r} on powertrade")
        check_quantity(quantity, rules)
        coid = f"rfq{secrets.token_hex(6)}{next(self._rfq_ids)}"[:32]
        body: dict[str, Any] = {
            "market_id": "none",
            "side": "buy" if side is Side.BUY else "sell",
            "type": "LIMIT",
            "time_in_force": "GTC",
            "quantity": pt_num(quantity),
            "price": pt_num(price) if price is not None else "0.0",
            "client_order_id": coid,
            "recv_window": self.recv_window,
            "timestamp": now_us(),
            "symbol": symbol,
        }
        self.stream.own_rfqs.add(coid)
        try:
            kind, reply = await self._request("new_order", body, ((LIFECYCLE, coid),))
        except NotConnected as exc:
            self.stream.own_rfqs.discard(coid)
            raise OrderRefused(str(exc)) from None
        reason = _refusal(kind, reply)
        if kind == "order_rejected":
            reason = str(reply.get("reason", "rejected"))
        if reason is not None:
            self.stream.own_rfqs.discard(coid)
            raise OrderRefused(reason)
        return coid

    async def refresh_rfq(self, client_order_id: str) -> None:
        """Keep our RFQ alive ([DOC] indicative orders expire after 30 min unless refreshed)."""
        kind, reply = await self._request(
            "refresh_interest", {"client_order_id": client_order_id, "order_id": ""}
        )
        reason = _refusal(kind, reply)
        if reason is not None or reply.get("reason", "success") != "success":
            raise OrderRefused(reason or str(reply.get("reason")))

    async def cancel_rfq(self, client_order_id: str) -> None:
        kind, reply = await self._request(
            "cancel_order", {"client_order_id": client_order_id}, ((CANCELLED, client_order_id),)
        )
        reason = _refusal(kind, reply) or (
            str(reply.get("reason")) if is_cancel_refusal(str(reply.get("reason", ""))) else None
        )
        if reason is not None:
            raise OrderRefused(reason)

    def live_rfq(self, symbol: str, rfq_id: str) -> Rfq | None:
        return self.stream.decoder.rfq_books.get(symbol, {}).get(rfq_id)

    def answer_rfq(
        self,
        strategy: Strategy,
        rfq: Rfq,
        price: Decimal,
        quantity: Decimal | None = None,
        *,
        tif: TimeInForce = TimeInForce.GTC,
    ) -> OrderHandle:
        """Answer an RFQ with a firm order on the opposite side, through the core order manager
        (so it is validated, journaled and tracked like any order). Single-leg RFQs only."""
        if len(rfq.legs) != 1:
            raise OrderRefused("answering multi-leg RFQs is not supported")
        if self.live_rfq(rfq.symbol, rfq.rfq_id) is None:
            raise OrderRefused(f"RFQ {rfq.rfq_id} is no longer live")
        qty = rfq.quantity if quantity is None else quantity
        if qty <= 0 or qty > rfq.quantity:
            raise OrderRefused(f"answer quantity {qty} outside (0, {rfq.quantity}]")
        place = strategy.sell if rfq.side is Side.BUY else strategy.buy
        return place(VENUE, rfq.symbol, qty, price, tif=tif)
