"""Paxos REST v2 reads beside orders: executions, balances (with what open orders lock), markets,
the public order book and recent executions."""

from __future__ import annotations

import uuid
from decimal import Decimal

from framework.events import Side
from framework.sim.engine import (
    OPEN,
    SimFill,
)
from framework.sim.server import (
    HttpRequest,
    HttpResponse,
    json_response,
)
from framework.venues.paxos.sim.common import (
    READ_ORDER,
    READ_PROFILE,
    RECENT_EXECUTIONS,
    _levels,
    _page,
    _paging,
    _Problem,
    _time_arg,
    assets_of,
    execution_id,
    iso_ms,
    match_number,
    problem,
    wire,
)


class AccountViews:
    """`/v2/executions`, `/v2/profiles/{profile_id}/balances`, `/v2/markets[...]`."""

    # --- REST: executions, balances, markets -----------------------------------------------

    def _list_executions(self, request: HttpRequest) -> HttpResponse:
        self._expire_due()
        try:
            self._require(request, READ_ORDER)
            offset, limit = _paging(request)
            begin = _time_arg(request, "range.begin")
            end = _time_arg(request, "range.end")
        except _Problem as refused:
            return refused.response
        profile, order_id = request.arg("profile_id"), request.arg("order_id")
        if profile is not None and profile != self.profile_id:
            # [INF] another profile's executions: an empty list (the same for GET /v2/orders)
            return json_response(200, {"items": [], "next_page_cursor": ""})
        items = []
        # [INF] newest first; range.begin is inclusive, range.end exclusive
        for fill in reversed(self.engine.fills(owner=self.profile_id)):
            if (begin is not None and fill.ts_ns < begin) or (
                end is not None and fill.ts_ns >= end
            ):
                continue
            for item in self._own_executions(fill):
                if order_id is None or item["order_id"] == order_id:
                    items.append(item)
        return json_response(200, _page(items, offset, limit))

    def _own_executions(self, fill: SimFill) -> list[dict[str, str]]:
        """Our side(s) of a fill."""
        # [INF] a self-trade gives two items (one per order) with the same execution_id
        # [INF] commission = notional x the Accounts fee rate (maker/taker), in the quote asset
        _, quote = assets_of(fill.symbol)
        notional = fill.price * fill.quantity
        roles = (
            (fill.taker_owner, fill.taker_order_id, fill.aggressor, self.accounts.fee_rate_taker),
            (
                fill.maker_owner,
                fill.maker_order_id,
                fill.aggressor.opposite,
                self.accounts.fee_rate_maker,
            ),
        )
        items = []
        for owner, engine_id, side, fee_rate in roles:
            if owner != self.profile_id:
                continue
            order = self.orders.by_engine(engine_id)
            is_maker = owner == fill.maker_owner and engine_id == fill.maker_order_id
            rebate = notional * self.maker_rebate_rate if is_maker else Decimal(0)
            items.append(
                {
                    # [DOC] a uint64 as a numeric string ("12422531")
                    "execution_id": execution_id(fill.trade_id),
                    # an order placed on the engine directly (not via REST) gets a stable id too
                    "order_id": order.id
                    if order
                    else str(uuid.uuid5(uuid.NAMESPACE_OID, engine_id)),
                    "executed_at": iso_ms(fill.ts_ns),
                    "market": fill.symbol,
                    "side": side.value,
                    "amount": wire(fill.quantity),
                    "price": wire(fill.price),
                    "commission": wire(notional * fee_rate),
                    "commission_asset": quote,
                    # [DOC] fiat only; [INF] non-zero for maker fills under a rebate schedule
                    "rebate": wire(rebate),
                    "rebate_asset": quote,
                    "gross_trade_amount": wire(notional),
                }
            )
        return items

    def _balances(self, request: HttpRequest, profile_id: str) -> HttpResponse:
        try:
            self._require(request, READ_PROFILE)
            self._require_profile(profile_id)
        except _Problem as refused:
            return refused.response
        wanted = set(request.query.get("assets", []))
        assets = sorted(set(self.accounts.balances(self.profile_id)) | set(self._locked()))
        items = []
        for asset in assets:
            if wanted and asset not in wanted:
                continue
            available, trading = self._balance(asset)
            items.append({"asset": asset, "available": wire(available), "trading": wire(trading)})
        return json_response(200, {"items": items})

    def _balance(self, asset: str) -> tuple[Decimal, Decimal]:
        """(available, trading) of one asset of our profile."""
        # [INF] trading = locked by our open orders; available = total - trading
        total = self.accounts.balances(self.profile_id).get(asset, Decimal(0))
        locked = self._locked().get(asset, Decimal(0))
        return total - locked, locked

    def _locked(self) -> dict[str, Decimal]:
        locked: dict[str, Decimal] = {}
        for order in list(self._maybe_open.values()):
            live = order.engine
            if live is None or live.status != OPEN or live.price is None:
                del self._maybe_open[order.id]
                continue
            base, quote = assets_of(order.market)
            if live.side is Side.BUY:
                locked[quote] = locked.get(quote, Decimal(0)) + live.remaining * live.price
            else:
                locked[base] = locked.get(base, Decimal(0)) + live.remaining
        return locked

    def _list_markets(self, request: HttpRequest) -> HttpResponse:
        markets = []
        for market in self.engine.symbols():
            base, quote = assets_of(market)
            tick = wire(self.engine.tick(market))
            markets.append(
                {"market": market, "base_asset": base, "quote_asset": quote, "tick_rate": tick}
            )
        return json_response(200, {"markets": markets})

    def _order_book(self, request: HttpRequest, market: str) -> HttpResponse:
        if market not in self.engine.symbols():
            # [INF] unknown market on the public market-data endpoints: 404 (about:blank)
            return problem(404, None, f"market not found: {market}")
        bids, asks = self.engine.book(market)
        return json_response(200, {"market": market, "asks": _levels(asks), "bids": _levels(bids)})

    def _recent_executions(self, request: HttpRequest, market: str) -> HttpResponse:
        if market not in self.engine.symbols():
            # [INF] unknown market on the public market-data endpoints: 404 (about:blank)
            return problem(404, None, f"market not found: {market}")
        fills = self.engine.fills(symbol=market)[-RECENT_EXECUTIONS:]
        # [INF] items shaped like /executiondata frames without `market`
        items = [
            {
                "match_number": match_number(f.trade_id),
                "price": wire(f.price),
                "amount": wire(f.quantity),
                "executed_at": iso_ms(f.ts_ns),
            }
            for f in reversed(fills)  # [INF] newest first
        ]
        return json_response(200, {"items": items})
