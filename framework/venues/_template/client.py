"""Template venue: the connection and the order path (copy to `venues/<name>/client.py`).

- `TemplateStream`: one WebSocket (REQUIRED for market data). The core's `WsSession` connects,
  reconnects with backoff, watches for silence, keeps the books and resyncs them: a stream only
  says where to connect, what to send once connected, and how to decode (decode.py).
- `TemplateExecution`: an `ExecutionClient` (REQUIRED only if the venue takes orders) over the
  toy REST API `POST /orders`, `DELETE /orders/{id}`, `GET /orders/{id}` (client order ids).
  Return a report when the reply says what happened; raise `OrderRefused` for a definite
  refusal; let anything else propagate: the core marks the order UNKNOWN and reconciles it
  with `query_order`.
"""

from __future__ import annotations

from typing import Any

import httpx

from framework.errors import HttpProblem, OrderRefused
from framework.events import ExecutionReport, OrderType
from framework.model import Order
from framework.transport.rest import request_json
from framework.venue import Connection, ExecutionClient, Stream
from framework.venues._template.decode import VENUE, TemplateDecoder, order_report, price_text


class TemplateStream(TemplateDecoder, Stream):
    """Books for `symbols` and our order updates, on `{ws_base}/ws`."""

    name = "public"
    venue = VENUE
    # OPTIONAL tuning (defaults in framework.venue.Stream): silence before STALE, WS ping
    stale_after_s = 10.0
    # orders may have changed while we were away: the core reconciles after a reconnect
    reconcile_on_reconnect = True

    def __init__(self, ws_base: str, symbols: list[str]) -> None:
        Stream.__init__(self)
        TemplateDecoder.__init__(self)
        self.ws_base = ws_base
        self.symbols = symbols

    async def url(self) -> str:  # REQUIRED
        return f"{self.ws_base}/ws"

    async def on_connected(self, conn: Connection) -> None:  # OPTIONAL: auth, subscribe
        await conn.send({"op": "subscribe", "symbols": self.symbols})

    def books(self) -> list[str]:  # REQUIRED for a stream that carries books
        return list(self.symbols)

    async def resync(self, conn: Connection, symbol: str) -> bool:  # OPTIONAL
        # ask for a fresh snapshot without reconnecting (False: the core reconnects instead)
        await conn.send({"op": "snapshot", "symbol": symbol})
        return True


class TemplateExecution(ExecutionClient):
    venue = VENUE
    order_types = frozenset({OrderType.LIMIT})

    def __init__(self, rest: httpx.AsyncClient) -> None:
        self.rest = rest

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        return await request_json(self.rest, method, path, venue=VENUE, json=body)

    async def submit(self, order: Order) -> ExecutionReport | None:  # REQUIRED
        body = {
            "client_order_id": order.client_order_id,
            "symbol": order.symbol,
            "side": order.side.value,
            "quantity": price_text(order.quantity),
            "price": price_text(order.price) if order.price is not None else None,
        }
        try:
            return order_report(await self._call("POST", "/orders", body))
        except HttpProblem as exc:
            if exc.status == 400:
                raise OrderRefused(exc.detail) from None
            raise  # 5xx, 429 after retries: outcome unknown, reconciliation asks

    async def cancel(self, order: Order) -> ExecutionReport | None:  # REQUIRED
        try:
            return order_report(await self._call("DELETE", f"/orders/{order.client_order_id}"))
        except HttpProblem as exc:
            if exc.status == 409:  # already final: the order frame says how it ended
                return await self.query_order(order)
            raise

    async def query_order(self, order: Order) -> ExecutionReport | None:  # REQUIRED
        try:
            return order_report(await self._call("GET", f"/orders/{order.client_order_id}"))
        except HttpProblem as exc:
            if exc.status == 404:
                return None  # the venue never saw it
            raise

    async def list_open_orders(self) -> list[ExecutionReport]:  # REQUIRED
        # every order working at the venue, ours or not: reconciliation finds orphans with it
        answer = await self._call("GET", "/orders")
        return [order_report(o) for o in answer["orders"]]

    # OPTIONAL: `supports_cancel_all = True` and `cancel_all(symbol)` where the venue documents a
    # bulk cancel; without one (as here) the core cancels order by order
