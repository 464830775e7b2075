"""Paxos REST v2 order entry: create (checks, precision, funds, taker band), get, cancel, list."""

from __future__ import annotations

import uuid
from decimal import ROUND_DOWN, Decimal
from typing import Any

from framework.events import Side
from framework.sim.engine import (
    FOK,
    GTC,
    IOC,
    LIMIT,
    MARKET,
    OPEN,
)
from framework.sim.faults import late_fill, roll_late_fill
from framework.sim.parsing import missing_fields
from framework.sim.server import (
    HttpRequest,
    HttpResponse,
    json_response,
)
from framework.venues.paxos.sim.common import (
    AMOUNT_DECIMALS,
    ENGINE_LOT,
    READ_ORDER,
    TAKER_BAND,
    WRITE_ORDER,
    _amount,
    _bad_request,
    _fixed8,
    _json_object,
    _page,
    _paging,
    _PaxosOrder,
    _Problem,
    assets_of,
    iso_ms,
    problem,
    wire,
)


class OrderEntry:
    """`/v2/profiles/{profile_id}/orders[/{order_id}]` and `GET /v2/orders`."""

    # --- REST: orders ----------------------------------------------------------------------

    def _create_order(self, request: HttpRequest, profile_id: str) -> HttpResponse:
        try:
            self._require(request, WRITE_ORDER)
            self._require_profile(profile_id)
            order = self._new_order(_json_object(request))
        except _Problem as refused:
            return refused.response
        # [INF] the create response is the acknowledgement at submission: SUBMITTED, nothing
        # filled yet (as the doc example); GET shows the outcome.
        # [INF] HTTP 200 for a created order
        return json_response(200, self._order_json(order, acknowledged=True))

    def _new_order(self, body: dict[str, Any]) -> _PaxosOrder:
        ref_id = body.get("ref_id")
        if ref_id is not None and not isinstance(ref_id, str):
            raise _bad_request("ref_id must be a string")
        previous = self.orders.by_client(ref_id) if ref_id else None
        if previous is not None:
            existing = self._order_json(previous)
            raise _Problem(
                problem(
                    409,
                    "already-exists",
                    "order with this ref_id already exists",
                    {"existing": existing},
                )
            )
        missing = missing_fields(body, ("side", "market", "type"))
        if missing:
            raise _bad_request(f"missing required field(s): {', '.join(missing)}")
        side, market, kind = body["side"], body["market"], body["type"]
        if side not in ("BUY", "SELL"):
            raise _bad_request(f"invalid side {side!r}")
        if kind in ("STOP_MARKET", "STOP_LIMIT"):
            # [INF] stop orders are not simulated: refused as a bad request
            raise _bad_request(f"order type {kind} is not supported by the simulator")
        if kind not in (LIMIT, MARKET, "POST_ONLY_LIMIT"):
            raise _bad_request(f"invalid type {kind!r}")
        if market not in self.engine.symbols():
            raise _Problem(problem(403, "unavailable-market", f"market {market} is not available"))
        tif = body.get("time_in_force") or (IOC if kind == MARKET else GTC)
        if tif not in (GTC, IOC, FOK, "GTT"):
            raise _bad_request(f"invalid time_in_force {tif!r}")
        if kind == MARKET and tif != IOC:
            raise _bad_request("MARKET orders are IOC only")
        price = _amount(body, "price")
        base_amount = _amount(body, "base_amount")
        quote_amount = _amount(body, "quote_amount")
        order_side = Side(side)
        if kind == MARKET:
            price = None  # [INF] a price on a MARKET order is ignored
            if (base_amount is None) == (quote_amount is None):
                raise _bad_request("MARKET orders need exactly one of base_amount, quote_amount")
            if quote_amount is not None and order_side is Side.SELL:
                raise _bad_request("quote_amount is for MARKET buys only")
        else:
            if price is None or base_amount is None:
                raise _bad_request(f"{kind} orders need price and base_amount")
            if quote_amount is not None:
                raise _bad_request(f"quote_amount is not allowed on {kind} orders")
        self._check_precision(market, price, base_amount, quote_amount)
        quantity = (
            base_amount if base_amount is not None else self._base_for_quote(market, quote_amount)
        )
        self._check_funds(market, order_side, price, quantity, quote_amount)

        order = _PaxosOrder(
            # [INF] ids are random UUIDv4 strings, from the seeded generator (reproducible runs)
            id=str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
            ref_id=ref_id or None,
            market=market,
            side=order_side,
            type=kind,
            time_in_force=tif,
            price=price,
            base_amount=base_amount,
            quote_amount=quote_amount,
            created_ns=self._clock_ns(),
        )
        self.orders.add(order)
        if (
            kind == LIMIT
            and price is not None
            and self._outside_taker_band(market, order_side, price)
        ):
            # [INF] created, then rejected (Paxos does not say at which step it refuses)
            order.reject_reason = "taker limit price 15% or more from mid"
            return order
        order.engine = self.engine.submit(
            self.profile_id,
            market,
            order_side,
            MARKET if kind == MARKET else LIMIT,
            quantity,
            price,
            GTC if tif == "GTT" else tif,  # [INF] GTT is accepted and works as GTC (no expiry)
            post_only=kind == "POST_ONLY_LIMIT",
            client_order_id=order.ref_id,
        )
        self.orders.bind_engine(order.engine.order_id, order)
        if order.engine.status == OPEN:
            self._maybe_open[order.id] = order
        return order

    def _check_precision(
        self,
        market: str,
        price: Decimal | None,
        base_amount: Decimal | None,
        quote_amount: Decimal | None,
    ) -> None:
        tick = self.engine.tick(market)
        if price is not None and price % tick != 0:
            raise _Problem(problem(400, "exceed-precision", f"price must be a multiple of {tick}"))
        for name, value in (("base_amount", base_amount), ("quote_amount", quote_amount)):
            # [INF] quote amounts get the same 8 decimals as base amounts
            if value is not None and value % ENGINE_LOT != 0:
                detail = f"{name} has more than {AMOUNT_DECIMALS} decimals"
                raise _Problem(problem(400, "exceed-precision", detail))

    def _base_for_quote(self, market: str, quote_amount: Decimal | None) -> Decimal:
        """The base amount the asks give now for `quote_amount`, rounded down to 8 decimals."""
        # [INF] a quote-sized market buy is executed as a base-sized one, sized on the book
        assert quote_amount is not None
        _, asks = self.engine.book(market)
        left, base = quote_amount, Decimal(0)
        for price, size in asks:
            if price * size <= left:
                base += size
                left -= price * size
            else:
                base += (left / price).quantize(ENGINE_LOT, rounding=ROUND_DOWN)
                break
        return base

    def _check_funds(
        self,
        market: str,
        side: Side,
        price: Decimal | None,
        quantity: Decimal,
        quote_amount: Decimal | None,
    ) -> None:
        base, quote = assets_of(market)
        if side is Side.SELL:
            asset, needed = base, quantity
        elif quote_amount is not None:
            asset, needed = quote, quote_amount
        elif price is not None:
            asset, needed = quote, quantity * price
        else:
            asset, needed = quote, self._market_buy_cost(market, quantity)
        available, _ = self._balance(asset)
        if needed > available:
            raise _Problem(problem(403, "insufficient-funds", f"insufficient {asset} balance"))

    def _market_buy_cost(self, market: str, quantity: Decimal) -> Decimal:
        _, asks = self.engine.book(market)
        left, cost = quantity, Decimal(0)
        for price, size in asks:
            take = min(left, size)
            cost += take * price
            left -= take
            if left <= 0:
                break
        return cost

    def _outside_taker_band(self, market: str, side: Side, price: Decimal) -> bool:
        bid, ask = self.engine.best_bid(market), self.engine.best_ask(market)
        takes = (
            (ask is not None and price >= ask)
            if side is Side.BUY
            else (bid is not None and price <= bid)
        )
        if not takes:
            return False
        mid = (bid + ask) / 2 if bid is not None and ask is not None else (bid or ask)
        return mid is not None and abs(price - mid) >= TAKER_BAND * mid

    def _get_order(self, request: HttpRequest, profile_id: str, order_id: str) -> HttpResponse:
        try:
            self._require(request, READ_ORDER)
            self._require_profile(profile_id)
            order = self._find_order(order_id)
        except _Problem as refused:
            return refused.response
        return json_response(200, self._order_json(order))

    def _cancel_order(self, request: HttpRequest, profile_id: str, order_id: str) -> HttpResponse:
        try:
            self._require(request, WRITE_ORDER)
            self._require_profile(profile_id)
            order = self._find_order(order_id)
        except _Problem as refused:
            return refused.response
        fraction = roll_late_fill(self.app.faults, request.path)
        if fraction is not None and order.engine is not None and order.engine.status == OPEN:
            late_fill(self.engine, order.engine, fraction)
        if order.engine is None or self.engine.cancel(order.engine.order_id) is None:
            return problem(403, "order-not-cancellable", "order is not in cancellable state")
        return json_response(200, {})  # [DOC] acknowledges the request only

    def _find_order(self, order_id: str) -> _PaxosOrder:
        order = self.orders.get(order_id)
        if order is None:
            raise _Problem(problem(404, "not-found", "order not found"))
        return order

    def _list_orders(self, request: HttpRequest) -> HttpResponse:
        try:
            self._require(request, READ_ORDER)
            offset, limit = _paging(request)
        except _Problem as refused:
            return refused.response
        profile = request.arg("profile_id")
        market, status = request.arg("market"), request.arg("status")
        ref_ids = set(request.query.get("ref_ids", []))
        orders = [
            o
            for o in reversed(self.orders.values())  # [INF] newest first
            if (profile is None or profile == self.profile_id)
            and (market is None or o.market == market)
            and (status is None or o.status == status)
            and (not ref_ids or o.ref_id in ref_ids)
        ]
        return json_response(200, _page([self._order_json(o) for o in orders], offset, limit))

    def _order_json(self, order: _PaxosOrder, acknowledged: bool = False) -> dict[str, Any]:
        live = order.engine
        filled = Decimal(0) if acknowledged or live is None else live.filled
        average = Decimal(0) if acknowledged or live is None else live.avg_price
        return {
            "id": order.id,
            "profile_id": self.profile_id,
            "ref_id": order.ref_id or "",  # [INF] "" when the client sent none
            "status": "SUBMITTED" if acknowledged else order.status,
            "market": order.market,
            "side": order.side.value,
            "type": order.type,
            "price": "" if order.price is None else wire(order.price),
            "base_amount": "" if order.base_amount is None else wire(order.base_amount),
            "quote_amount": "" if order.quote_amount is None else wire(order.quote_amount),
            "amount_filled": _fixed8(filled),
            "volume_weighted_average_price": _fixed8(average),
            "time_in_force": order.time_in_force,
            "created_at": iso_ms(order.created_ns),
        }
