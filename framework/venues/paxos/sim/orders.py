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
    GTT_MIN_NS,
    READ_ORDER,
    REF_ID_REUSE_NS,
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
        self._expire_due()
        ref_id = body.get("ref_id")
        if ref_id is not None and not isinstance(ref_id, str):
            raise _bad_request("ref_id must be a string")
        previous = self._ref_in_use(ref_id) if ref_id else None
        if previous is not None:
            # [DOC] 409 already-exists; `meta.existing` is the partial order of the sample
            existing = {
                k: v
                for k, v in self._order_json(previous).items()
                if k in ("id", "profile_id", "ref_id", "status", "side", "market", "quote_amount")
            }
            raise _Problem(
                problem(
                    409,
                    "already-exists",
                    f"order already exists with ref_id '{ref_id}'",
                    {"existing": existing},
                )
            )
        missing = missing_fields(body, ("side", "market", "type"))
        if missing:
            raise _bad_request(f"missing required field(s): {', '.join(missing)}")
        side, market, kind = body["side"], body["market"], body["type"]
        if side not in ("BUY", "SELL"):
            raise _bad_request(f"side invalid: {side!r}")
        if kind in ("STOP_MARKET", "STOP_LIMIT"):
            # [INF] stop orders are not simulated: refused as a bad request
            raise _bad_request(f"type invalid: {kind} is not supported by the simulator")
        if kind not in (LIMIT, MARKET, "POST_ONLY_LIMIT"):
            raise _bad_request(f"type invalid: {kind!r}")
        if market not in self.engine.symbols():
            raise _Problem(problem(403, "unavailable-market", f"market {market} is not available"))
        tif = body.get("time_in_force") or (IOC if kind == MARKET else GTC)
        if tif not in (GTC, IOC, FOK, "GTT"):
            raise _bad_request(f"time_in_force invalid: {tif!r}")
        if kind == MARKET and tif != IOC:
            raise _bad_request("time_in_force invalid: MARKET orders are IOC only")
        expires_ns = self._gtt_expiry(body, tif)
        price = _amount(body, "price")
        base_amount = _amount(body, "base_amount")
        quote_amount = _amount(body, "quote_amount")
        order_side = Side(side)
        if kind == MARKET:
            price = None  # [INF] a price on a MARKET order is ignored
            # [DOC] MARKET BUY: "set quote_amount to the dollar amount you want to spend";
            # MARKET SELL: base_amount "the exact amount to sell". [INF] detail texts
            if order_side is Side.BUY:
                if base_amount is not None:
                    raise _bad_request("base_amount invalid: market buy orders take quote_amount")
                if quote_amount is None:
                    raise _bad_request("quote_amount invalid: required for market buy orders")
            else:
                if quote_amount is not None:
                    raise _bad_request("quote_amount invalid: market sell orders take base_amount")
                if base_amount is None:
                    raise _bad_request("base_amount invalid: required for market sell orders")
        else:
            if price is None or base_amount is None:
                raise _bad_request(f"{kind} orders need price and base_amount")
            if quote_amount is not None:
                raise _bad_request(f"quote_amount invalid: not allowed on {kind} orders")
        self._check_precision(market, price, base_amount, quote_amount)
        quantity = (
            base_amount if base_amount is not None else self._base_for_quote(market, quote_amount)
        )
        self._check_funds(market, order_side, price, quantity, quote_amount)
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
        ):
            raise _bad_request("metadata invalid: must be an object of strings")

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
            expires_ns=expires_ns,
            metadata=dict(metadata),
        )
        self.orders.add(order)
        if order.ref_id:
            self._ref_ids[order.ref_id] = order
        if (
            kind == LIMIT
            and price is not None
            and self._outside_taker_band(market, order_side, price)
        ):
            # [INF] created, then rejected (Paxos does not say at which step it refuses)
            order.reject_reason = "taker limit price 15% or more from mid"
            return order
        if quantity <= 0:
            # [INF] a quote amount that buys nothing on the current asks (empty or too small)
            order.reject_reason = "quote_amount buys nothing at the current asks"
            return order
        order.engine = self.engine.submit(
            self.profile_id,
            market,
            order_side,
            MARKET if kind == MARKET else LIMIT,
            quantity,
            price,
            GTC if tif == "GTT" else tif,  # GTT rests as GTC until `_expire_due` cancels it
            post_only=kind == "POST_ONLY_LIMIT",
            client_order_id=order.ref_id,
        )
        self.orders.bind_engine(order.engine.order_id, order)
        order.created_ns = order.engine.created_ns  # one creation time in every view
        if order.engine.status == OPEN:
            self._maybe_open[order.id] = order
            if expires_ns is not None:
                self._gtt[order.id] = order
        return order

    def _gtt_expiry(self, body: dict[str, Any], tif: str) -> int | None:
        """[DOC] GTT: `expiration_date` is unix ms as a 13-digit string, and "GTT must be greater
        than 10 seconds after the order is placed, otherwise the order will be rejected"."""
        raw = body.get("expiration_date")
        if tif != "GTT":
            if raw not in (None, ""):
                raise _bad_request("expiration_date invalid: only for time_in_force GTT")
            return None
        if not isinstance(raw, str) or len(raw) != 13 or not raw.isdigit():
            raise _bad_request("expiration_date invalid: unix milliseconds, 13 digits")
        expires_ns = int(raw) * 1_000_000
        if expires_ns <= self._clock_ns() + GTT_MIN_NS:
            # [INF] a bad request; detail text
            raise _bad_request("expiration_date invalid: must be more than 10 seconds from now")
        return expires_ns

    def _expire_due(self) -> None:
        """Cancel GTT orders whose `expiration_date` has passed (status CANCELLED: Paxos has no
        EXPIRED status [INF]). Run before every REST answer and by a background loop."""
        if not self._gtt:
            return
        now = self._clock_ns()
        for order in list(self._gtt.values()):
            live = order.engine
            if live is None or live.status != OPEN:
                del self._gtt[order.id]
            elif order.expires_ns is not None and order.expires_ns <= now:
                self.engine.cancel(live.order_id)
                del self._gtt[order.id]

    def _ref_in_use(self, ref_id: str) -> _PaxosOrder | None:
        """The order holding `ref_id`: open, or closed less than 24 h ago. [DOC] "Can be reused
        if the order has been closed for more than 24 hours" (time-based, not history size)."""
        order = self._ref_ids.get(ref_id)
        if order is None:
            return None
        closed = self._closed_ns(order)
        if closed is not None and self._clock_ns() - closed > REF_ID_REUSE_NS:
            del self._ref_ids[ref_id]
            return None
        return order

    def _prune_ref_ids(self) -> None:
        now = self._clock_ns()
        for ref_id, order in list(self._ref_ids.items()):
            closed = self._closed_ns(order)
            if closed is not None and now - closed > REF_ID_REUSE_NS:
                del self._ref_ids[ref_id]

    @staticmethod
    def _closed_ns(order: _PaxosOrder) -> int | None:
        live = order.engine
        if live is None:
            return order.created_ns  # rejected at once
        return None if live.status == OPEN else live.updated_ns

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
            # [DOC] detail and meta as the published example
            detail = (
                f"insufficient {asset} funds in profile {self.profile_id}: "
                f"{wire(needed)} needed, {wire(available)} available"
            )
            meta = {
                "profile_id": self.profile_id,
                "asset": asset,
                "available": wire(available),
                "needed": wire(needed),
            }
            raise _Problem(problem(403, "insufficient-funds", detail, meta))

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
        self._expire_due()
        try:
            self._require(request, READ_ORDER)
            self._require_profile(profile_id)
            order = self._find_order(order_id)
        except _Problem as refused:
            return refused.response
        return json_response(200, self._order_json(order))

    def _cancel_order(self, request: HttpRequest, profile_id: str, order_id: str) -> HttpResponse:
        self._expire_due()
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
            return problem(403, None, "order is not in cancellable state")
        return json_response(200, {})  # [DOC] acknowledges the request only

    def _find_order(self, order_id: str) -> _PaxosOrder:
        order = self.orders.get(order_id)
        if order is None:
            raise _Problem(problem(404, None, f"order not found: {order_id}"))
        return order

    def _list_orders(self, request: HttpRequest) -> HttpResponse:
        self._expire_due()
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
        """[DOC] every field of the `Order` schema. Amounts unused by the order type are "0"
        (as the published list example: "price":"0","base_amount":"0" on a MARKET BUY)."""
        live = order.engine
        filled = Decimal(0) if acknowledged or live is None else live.filled
        average = Decimal(0) if acknowledged or live is None else live.avg_price
        modified = order.created_ns if acknowledged or live is None else live.updated_ns
        out: dict[str, Any] = {
            "id": order.id,
            "profile_id": self.profile_id,
            "ref_id": order.ref_id or "",  # [INF] "" when the client sent none
            "status": "SUBMITTED" if acknowledged else order.status,
            "market": order.market,
            "side": order.side.value,
            "type": order.type,
            "price": "0" if order.price is None else wire(order.price),
            "base_amount": "0" if order.base_amount is None else wire(order.base_amount),
            "quote_amount": "0" if order.quote_amount is None else wire(order.quote_amount),
            "metadata": dict(order.metadata),
            "created_at": iso_ms(order.created_ns),
            "modified_at": iso_ms(max(modified, order.created_ns)),
            "amount_filled": _fixed8(filled),
            "volume_weighted_average_price": _fixed8(average),
            "time_in_force": order.time_in_force,
            "stop_price": "0",  # [INF] no stop orders simulated
            "is_triggered": False,
            "recipient_profile_id": "",
            "identity_id": "",
            "identity_account_id": "",
        }
        if order.expires_ns is not None:
            out["expiration_date"] = iso_ms(order.expires_ns)  # RFC 3339 here [DOC]
        return out
