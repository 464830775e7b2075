"""Power.Trade RFQs and the account: the RFQ book, the account's RFQs and their refresh, synthetic
requesters that take answers; balances and positions."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import trio

from framework.events import Side
from framework.sim.engine import (
    IOC,
    LIMIT,
    OPEN,
    SimOrder,
)
from framework.venues.powertrade.decode_frames import NOT_FOUND
from framework.venues.powertrade.sim.common import (
    _RUN,
    _ZERO,
    CROWD_RFQ_TTL_S,
    MULTI_LEG,
    PRODUCT_TYPES,
    RFQ_OWNER,
    RFQ_TTL_S,
    D,
    _Client,
    _Order,
    _Rfq,
    _text,
    _us,
    deliverable_ids,
    wire,
)


class RfqsAndAccount:
    """RFQ registration, the RFQ book and requesters; `balances` and `position_info`."""

    # --- account -------------------------------------------------------------------------------

    def _reserved(self) -> dict[str, Decimal]:
        reserved: dict[str, Decimal] = {}
        for order in self.orders.values():
            if not order.open or order.market_id != "0" or order.price is None:
                continue
            m = self.markets[order.symbol]
            left = order.quantity - order.filled
            if order.side is Side.BUY:
                reserved[m.quote] = reserved.get(m.quote, D(0)) + left * order.price
            else:
                reserved[m.base] = reserved.get(m.base, D(0)) + left
        return reserved

    def _balances(self, client: _Client, body: dict[str, Any], tag: str) -> None:
        # [INF] outer key balances_response, list under "balances"
        self._send(client, "balances_response", {"user_tag": tag, **self._balance_body()})

    def _balance_body(self) -> dict[str, Any]:
        return {"server_utc_timestamp": _us(self._clock_ns()), "balances": self._balance_rows()}

    def _deliverables(self) -> dict[str, str]:
        """Deliverable ids: the catalogue's (`deliverable_ids`), then any other asset the account
        holds (e.g. one seeded at start), by name."""
        return deliverable_ids(self.markets, sorted(self.accounts.balances(self.owner)))

    def _balance_rows(self) -> list[dict[str, str]]:
        """[CODE `market-proxy/types.ts` BalanceRaw; integration/rest/balance.test.ts] one row per
        asset: `deliverable_id`, `symbol`, the four balances, `timestamp`. [INF] every asset of
        the catalogue has a row, a zero one if never held ([CODE integration/ws/balances.test.ts]
        expects a row for each of the account's assets)."""
        reserved = self._reserved()
        held = self.accounts.balances(self.owner)
        ids = self._deliverables()
        now = _us(self._clock_ns())
        assets = {m.base for m in self.markets.values()} | {m.quote for m in self.markets.values()}
        rows = []
        for asset in sorted(assets | set(held)):
            cash = held.get(asset, D(0))
            locked = reserved.get(asset, D(0))
            rows.append(
                {
                    "deliverable_id": ids[asset],
                    "symbol": asset,
                    "cash_balance": wire(cash),
                    "available_balance": wire(cash - locked),
                    "reserved_balance": wire(locked),
                    "withdrawable_balance": wire(cash - locked),
                    "timestamp": now,
                }
            )
        return rows

    def _positions(self, client: _Client, body: dict[str, Any], tag: str) -> None:
        self._send(client, "positions_response", {"user_tag": tag, **self._position_body()})

    def _position_body(self) -> dict[str, Any]:
        """[CODE integration/ws/positions.test.ts] each row exactly: symbol, deliverable_id,
        product_type ("perpetual_future" for a perpetual), timestamp, margin_value, side, size,
        mark_price, average_entry_price, upnl."""
        now = _us(self._clock_ns())
        ids = self._deliverables()
        rows = []
        for symbol, m in self.markets.items():
            net, cost = D(0), D(0)
            for fill in self.engine.fills(owner=self.owner, symbol=symbol):
                buy = (fill.taker_owner == self.owner) == (fill.aggressor is Side.BUY)
                net += fill.quantity if buy else -fill.quantity
                cost += fill.price * fill.quantity if buy else -fill.price * fill.quantity
            if net == 0 or MULTI_LEG in m.tags:
                continue  # [INF] composites: their legs' positions are not simulated
            mark = self.crowds[symbol].mid if symbol in self.crowds else _ZERO
            avg = abs(cost / net)
            product = next((PRODUCT_TYPES[t] for t in m.tags if t in PRODUCT_TYPES), "spot")
            rows.append(
                {
                    "symbol": symbol,
                    # [INF] a spot position is in the base asset's deliverable
                    "deliverable_id": ids.get(symbol, ids.get(m.base, "")),
                    "product_type": product,
                    "timestamp": now,
                    "margin_value": "0.0",
                    "side": "buy" if net > 0 else "sell",
                    "size": wire(abs(net)),
                    "mark_price": wire(mark),
                    "average_entry_price": wire(avg),
                    "upnl": wire((mark - avg) * net),
                }
            )
        return {"server_utc_timestamp": now, "positions": rows}

    def _deliverable_body(self) -> dict[str, Any]:
        """[CODE `market-proxy/api/rest/deliverableInfoRest.ts`] `deliverables_response
        .deliverables`: `{symbol, deliverable_id}` per deliverable."""
        rows = [{"symbol": name, "deliverable_id": i} for name, i in self._deliverables().items()]
        return {"server_utc_timestamp": _us(self._clock_ns()), "deliverables": rows}

    def _trade_history(self, client: _Client, body: dict[str, Any], tag: str) -> None:
        """[CODE] `trade_history_request {trade_time}` → `trade_history_response.executions`."""
        since = body.get("trade_time", "0")
        since_us = int(since) if since.isdigit() else 0
        rows = []
        for order in self.orders.values():
            for ex in order.executions:
                if int(ex["utc_timestamp"]) >= since_us:
                    rows.append(
                        {
                            "tradeable_entity_id": self.markets[order.symbol].entity_id,
                            "utc_timestamp": ex["utc_timestamp"],
                            "executed_price": ex["executed_price"],
                            "executed_quantity": ex["executed_quantity"],
                            "side": order.side.value.lower(),
                            "order_id": order.order_id,
                            "trade_id": ex["trade_id"],
                            "client_order_id": order.client_order_id,
                        }
                    )
        self._send(
            client,
            "trade_history_response",
            {"server_utc_timestamp": _us(self._clock_ns()), "user_tag": tag, "executions": rows},
        )

    # --- RFQs ----------------------------------------------------------------------------------

    def _register_rfqs(self, client: _Client, body: dict[str, Any], tag: str) -> None:
        self._ok(client, tag)
        client.rfqs = True
        for symbol in self.markets:
            self._send(client, "snapshot", self._rfq_snapshot(symbol))

    def _deregister_rfqs(self, client: _Client, body: dict[str, Any], tag: str) -> None:
        client.rfqs = False
        self._ok(client, tag)

    def _rfq_snapshot(self, symbol: str) -> dict[str, Any]:
        rows: dict[Side, list[dict[str, str]]] = {Side.BUY: [], Side.SELL: []}
        for rfq in self._rfqs.values():
            if rfq.symbol == symbol:
                rows[rfq.side].append(
                    {"utc_timestamp": _us(rfq.created_ns), "price": wire(rfq.price),
                     "quantity": wire(rfq.quantity), "order_id": rfq.order_id}
                )  # fmt: skip
        return {
            "server_utc_timestamp": _us(self._clock_ns()),
            "market_id": "none",
            "tradeable_entity_id": self.markets[symbol].entity_id,
            "symbol": symbol,
            "buy": rows[Side.BUY],
            "sell": rows[Side.SELL],
        }

    def _rfq_message(self, kind: str, rfq: _Rfq, fields: dict[str, str]) -> None:
        now = _us(self._clock_ns())
        body = {
            "server_utc_timestamp": now,
            "utc_timestamp": now,
            "market_id": "none",
            "tradeable_entity_id": self.markets[rfq.symbol].entity_id,
            "symbol": rfq.symbol,
            "side": "buy" if rfq.side is Side.BUY else "sell",
            "order_id": rfq.order_id,
            **fields,
        }
        frame = _text(kind, body)
        for client in list(self._clients):
            if client.rfqs:
                self._send_raw(client, frame)

    def post_rfq(
        self,
        owner: str,
        symbol: str,
        side: Side,
        quantity: Decimal,
        price: Decimal = _ZERO,
        client_order_id: str | None = None,
    ) -> _Rfq:
        """Add an RFQ to the book (the account's, or a synthetic requester's)."""
        self._rfq_seq += 1
        rfq = _Rfq(
            # [DOC] RFQ order ids are numeric strings like firm ones ("29872771"); a "9" after
            # the run prefix keeps them apart from the engine's ids
            f"{_RUN}9{self._rfq_seq:09d}",
            symbol,
            side,
            price,
            quantity,
            owner,
            client_order_id,
            self._clock_ns(),
            trio.current_time() + (RFQ_TTL_S if owner == self.owner else CROWD_RFQ_TTL_S),
        )
        self._rfqs[rfq.order_id] = rfq
        self._rfq_message("order_added", rfq, {"price": wire(price), "quantity": wire(quantity)})
        return rfq

    def _new_rfq(self, order: _Order) -> None:
        rfq = self.post_rfq(
            self.owner, order.symbol, order.side, order.quantity, order.price or D(0),
            order.client_order_id,
        )  # fmt: skip
        order.order_id = rfq.order_id
        self._accepted(order)

    def _remove_rfq(self, rfq: _Rfq) -> None:
        if self._rfqs.pop(rfq.order_id, None) is not None:
            self._rfq_message("order_deleted", rfq, {})

    def _find_rfq(self, body: dict[str, Any]) -> _Rfq | None:
        oid, coid = body.get("order_id"), body.get("client_order_id")
        for rfq in self._rfqs.values():
            if (oid and rfq.order_id == oid) or (coid and rfq.client_order_id == coid):
                return rfq
        return None

    def _refresh_rfq(self, body: dict[str, Any]) -> bool:
        """Extend the account's RFQ named by `order_id` or `client_order_id`; False if none."""
        rfq = self._find_rfq(body)
        if rfq is None or rfq.owner != self.owner:
            return False
        rfq.expires_at = trio.current_time() + RFQ_TTL_S
        return True

    def _refresh_interest(self, client: _Client, body: dict[str, Any], tag: str) -> None:
        ok = self._refresh_rfq(body)
        # [CODE] the id not supplied is echoed as ""
        self._send(
            client,
            "refresh_interest",
            {
                "server_utc_timestamp": _us(self._clock_ns()),
                "user_tag": tag,
                "order_id": body.get("order_id", ""),
                "client_order_id": body.get("client_order_id", ""),
                "reason": "success" if ok else NOT_FOUND,
            },
        )

    def _rfq_takers(self, answer: _Order, sim_order: SimOrder) -> None:
        """[INF] a synthetic requester whose RFQ is answered by a firm order on the opposite side
        takes it at once (IOC at the answer's price) and withdraws its RFQ."""
        for rfq in list(self._rfqs.values()):
            if (
                rfq.owner == RFQ_OWNER
                and rfq.symbol == answer.symbol
                and rfq.side is answer.side.opposite
                and sim_order.status == OPEN
            ):
                qty = min(rfq.quantity, sim_order.remaining)
                self._remove_rfq(rfq)
                self.engine.submit(
                    RFQ_OWNER, rfq.symbol, rfq.side, LIMIT, qty, answer.price, tif=IOC
                )
                return

    async def _rfq_requesters(self) -> None:
        while True:
            await trio.sleep(1 / self.rfq_rate_hz)
            symbol = self._rng.choice(sorted(self.markets))
            m = self.markets[symbol]
            side = self._rng.choice((Side.BUY, Side.SELL))
            qty = m.qty_step * self._rng.randint(1, 20) * max(1, int(m.min_qty / m.qty_step))
            self.post_rfq(RFQ_OWNER, symbol, side, qty)
