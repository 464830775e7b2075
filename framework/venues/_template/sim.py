"""Template venue: its simulator (REQUIRED: every venue ships one, a real server on loopback).

Built from the shared toolkit in framework/sim, so a simulator only writes its protocol:
- `MatchingEngine`: books, matching, order records and fills (framework/sim/engine.py);
- `seed_crowds`: a seeded synthetic market per symbol that trades on the engine;
- `SimApp` + `LoopbackSimulator`: HTTP and WebSocket routes on one loopback port, the fault
  plan (framework/sim/faults.py) applied to every frame and request for the chaos tests.
The simulator listens to the engine (`EngineListener`) and turns its changes into frames.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import trio

from framework.events import Side
from framework.sim.engine import LIMIT, OPEN, EngineListener, MatchingEngine, SimOrder
from framework.sim.loopback import LoopbackSimulator, seed_crowds
from framework.sim.server import HttpRequest, HttpResponse, SimApp, WsConnection, json_response

ACCOUNT = "sim-account"  # the engine owner our orders trade as
# symbol -> (mid, tick, lot, max lots per crowd order)
MARKETS = {"BTCUSD": ("60000", "0.5", "0.001", 20), "ETHUSD": ("3000", "0.05", "0.01", 20)}


def _levels(levels: list[tuple[Decimal, Decimal]]) -> list[list[str]]:
    return [[format(p, "f"), format(q, "f")] for p, q in levels]


def order_body(order: SimOrder) -> dict[str, Any]:
    return {
        "type": "order",
        "client_order_id": order.client_order_id,
        "order_id": order.order_id,
        "symbol": order.symbol,
        "status": order.status,
        "side": order.side.value,
        "price": format(order.price, "f") if order.price is not None else None,
        "quantity": format(order.quantity, "f"),
        "filled": format(order.filled, "f"),
        "avg_price": format(order.avg_price, "f"),
    }


class TemplateSimulator(LoopbackSimulator, EngineListener):
    def __init__(self, seed: int, markets: list[str]) -> None:
        self.engine = MatchingEngine()
        specs = [
            (m, Decimal(MARKETS[m][0]), *map(Decimal, MARKETS[m][1:3]), MARKETS[m][3])
            for m in markets
        ]
        self.crowds = seed_crowds(self.engine, specs, seed)
        self.engine.add_listener(self)
        self.subscribers: dict[str, set[WsConnection]] = {m: set() for m in markets}
        self.app = SimApp()
        self.app.http("GET", "/instruments")(self._instruments)
        self.app.http("POST", "/orders")(self._submit)
        self.app.http("GET", "/orders")(self._open_orders)
        self.app.http("GET", "/orders/{coid}")(self._query)
        self.app.http("DELETE", "/orders/{coid}")(self._cancel)
        self.app.ws("/ws")(self._ws)

    # --- introspection for tests (OPTIONAL, but better than reaching into private state) ---

    def book(self, symbol: str) -> tuple[list, list]:
        return self.engine.book(symbol)

    # --- engine -> frames -----------------------------------------------------------------

    def on_level(self, symbol: str, side: Side, price: Decimal, size: Decimal) -> None:
        side_key = "bids" if side is Side.BUY else "asks"
        delta = {"type": "delta", "symbol": symbol, "bids": [], "asks": []}
        delta[side_key] = _levels([(price, size)])
        self._fan_out(self.subscribers.get(symbol, ()), delta)

    def on_order(self, order: SimOrder) -> None:
        if order.owner == ACCOUNT:  # only our own orders are private frames
            self._fan_out(
                {c for subs in self.subscribers.values() for c in subs}, order_body(order)
            )

    @staticmethod
    def _fan_out(conns: Any, msg: dict[str, Any]) -> None:
        text = orjson.dumps(msg).decode()
        for conn in list(conns):  # enqueue may close a slow consumer (and shrink the set)
            conn.enqueue(text)

    def _snapshot(self, symbol: str) -> str:
        bids, asks = self.engine.book(symbol)
        msg = {"type": "snapshot", "symbol": symbol, "bids": _levels(bids), "asks": _levels(asks)}
        return orjson.dumps(msg).decode()

    # --- WebSocket ------------------------------------------------------------------------

    async def _ws(self, conn: WsConnection) -> None:
        mine: list[str] = []
        try:
            while (text := await conn.receive_text()) is not None:
                msg = orjson.loads(text)
                for symbol in msg.get("symbols", [msg.get("symbol")]):
                    if symbol not in self.subscribers:
                        continue
                    # snapshot and subscription with no await between: no change falls between
                    conn.enqueue(self._snapshot(symbol))
                    if msg.get("op") == "subscribe":
                        self.subscribers[symbol].add(conn)
                        mine.append(symbol)
        finally:
            for symbol in mine:
                self.subscribers[symbol].discard(conn)

    # --- REST -----------------------------------------------------------------------------

    def _instruments(self, request: HttpRequest) -> HttpResponse:
        rows = [{"symbol": s, "tick": t, "lot": lot} for s, (_, t, lot, _n) in MARKETS.items()]
        return json_response(200, rows)

    def _submit(self, request: HttpRequest) -> HttpResponse:
        body = request.json()
        symbol, coid = body.get("symbol"), body.get("client_order_id")
        if symbol not in self.subscribers or not coid:
            return json_response(400, {"error": "bad request", "detail": "unknown symbol"})
        if self.engine.order_by_client_id(ACCOUNT, coid) is not None:
            return json_response(400, {"error": "bad request", "detail": "duplicate id"})
        order = self.engine.submit(
            ACCOUNT,
            symbol,
            Side(body["side"]),
            LIMIT,
            Decimal(body["quantity"]),
            price=Decimal(body["price"]),
            client_order_id=coid,
        )
        return json_response(200, order_body(order))

    def _open_orders(self, request: HttpRequest) -> HttpResponse:
        orders = self.engine.orders(ACCOUNT, open_only=True)
        return json_response(200, {"orders": [order_body(o) for o in orders]})

    def _query(self, request: HttpRequest, coid: str) -> HttpResponse:
        order = self.engine.order_by_client_id(ACCOUNT, coid)
        if order is None:
            return json_response(404, {"error": "not found", "detail": coid})
        return json_response(200, order_body(order))

    def _cancel(self, request: HttpRequest, coid: str) -> HttpResponse:
        order = self.engine.order_by_client_id(ACCOUNT, coid)
        if order is None:
            return json_response(404, {"error": "not found", "detail": coid})
        if order.status != OPEN:
            return json_response(409, {"error": "conflict", "detail": "order is final"})
        return json_response(200, order_body(self.engine.cancel(order.order_id) or order))


async def serve_forever(sim: TemplateSimulator) -> None:
    """`python -m framework.venues._template.sim`: the simulator alone, on a free port."""
    async with trio.open_nursery() as nursery:
        port = await nursery.start(sim.run)
        print(f"template simulator on http://127.0.0.1:{port}")


if __name__ == "__main__":
    trio.run(serve_forever, TemplateSimulator(1, list(MARKETS)))
