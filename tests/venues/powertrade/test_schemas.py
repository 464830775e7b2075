"""Every frame on the wire against Power.Trade's published JSON schemas.

`spec/market-proxy-schemas.json` holds the schemas verbatim from the venue's own client
repository (github.com/Power-Trade/market-proxy-clients, `python/json-schema/`; the commit is in
the file). That client validates each server message with them and drops what fails ("error
parsing server message"), so a simulator frame that fails here is one the venue's own client
would refuse; an adapter request that fails is one the venue documents differently.

The whole official client is run against the simulator by `official_client_check.py` beside this
file (not part of the suite: the client is not ours to vendor).
"""

from __future__ import annotations

import json
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import trio

from framework.events import OrderStatus, Side
from framework.strategy import Strategy
from framework.venues.powertrade.events import RfqAdded, RfqEvent, RfqSnapshot
from framework.venues.powertrade.execution import PowerTradeExecution
from framework.venues.powertrade.sim import (
    RFQ_OWNER,
    SIM_API_KEY,
    PowerTradeSimulator,
    sim_private_key_pem,
)
from tests.helpers import HANG_GUARD_S, config, running, until

D = Decimal
SYMBOL = "BTC-USD"
_BUNDLE = json.loads((Path(__file__).parent / "spec" / "market-proxy-schemas.json").read_text())
SCHEMAS: dict[str, dict[str, Any]] = _BUNDLE["schemas"]

# the message key each schema validates, by direction: what the venue sends and what it is sent
SERVER_SCHEMA = {
    "command_response": "common/command-response.json",
    "heartbeat": "common/heartbeat.json",
    "snapshot": "web-socket-interface/entities-and-rules/snapshot.json",
    "entities_and_rules_response": (
        "web-socket-interface/entities-and-rules/entities-and-rules-response.json"
    ),
    "order_accepted": "web-socket-interface/orders/order-accepted.json",
    "order_rejected": "web-socket-interface/orders/order-rejected.json",
    "order_added": "web-socket-interface/orders/order-added.json",
    "order_deleted": "web-socket-interface/orders/order-deleted.json",
    "order_updated": "web-socket-interface/orders/order-updated.json",
    "order_executed": "web-socket-interface/orders/order-executed.json",
    "execution": "web-socket-interface/orders/execution.json",
    "cancel_order": "web-socket-interface/orders/cancel-order.json",
    "positions_response": "web-socket-interface/positions/position-response.json",
    "trade_history_response": "web-socket-interface/trades/trade-history-response.json",
    "trade": "web-socket-interface/trades/trade.json",
}
CLIENT_SCHEMA = {
    "authenticate": "common/authenticate-request.json",
    "heartbeat": "common/heartbeat.json",
    "entities_and_rules_request": (
        "web-socket-interface/entities-and-rules/entities-and-rules-request.json"
    ),
    "subscribe": "web-socket-interface/entities-and-rules/subscribe.json",
    "new_order": "web-socket-interface/orders/new-order.json",
    "new_bulk_order": "web-socket-interface/orders/new-bulk-order.json",
    "cancel_order": "web-socket-interface/orders/cancel-order.json",
    "position_info": "web-socket-interface/positions/position-request.json",
    "register_for_rfqs": "web-socket-interface/rfq/register-for-rfq.json",
    "deregister_for_rfqs": "web-socket-interface/rfq/deregister-for-rfq.json",
    "refresh_interest": "web-socket-interface/rfq/refresh-interest.json",
    "trade_history_request": "web-socket-interface/trades/trade-history-request.json",
}
# Messages the venue documents but publishes no schema for: (direction, kind) → the source
UNSCHEMED = {
    ("in", "balances"): "[DOC] shared/venues/powertrade.md, Balances",
    ("out", "balances_response"): "[DOC] body fields; [INF] outer key balances_response",
    ("out", "refresh_interest"): "[CODE] TS client refreshRfqInterestWs: matched by id, no schema",
}
REST_SCHEMA = {
    "/v1/api/exchangeInfo": "http-rest-interface/entities-and-rules-response.json",
    "/v1/api/positions": "http-rest-interface/position-response.json",
    "/v1/api/time": "http-rest-interface/api-time.json",
    f"/v1/api/orderbook?symbol={SYMBOL}&depth=5": "http-rest-interface/orderbook-response.json",
    f"/v1/api/openOrders?symbol={SYMBOL}": (
        "http-rest-interface/orders/query-open-orders-response.json"
    ),
}


def errors(instance: Any, schema: str) -> list[jsonschema.ValidationError]:
    # the files name no known draft ("$schema": "http://json-schema.org/schema"); their keywords
    # are all draft 7, which is what the official client's jsonschema 4.10 falls back to as well
    found = jsonschema.Draft7Validator(SCHEMAS[schema]).iter_errors(instance)
    return [e for e in found if not _rfq_market_id(e)]


def _rfq_market_id(error: jsonschema.ValidationError) -> bool:
    """new-order.json's `market_id` pattern is digits only, yet an RFQ is `"market_id": "none"`
    in the venue's docs, in its Python client (`send_single_leg_rfq`) and in its TS client
    (`getOrderRequest.ts`): the schema is the odd one out, and the venue's material wins."""
    return list(error.absolute_path) == ["new_order", "market_id"] and error.instance == "none"


class Wire:
    """The simulator's transport-edge observer: every WebSocket frame, both ways."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, str]] = []

    def __call__(self, path: str, direction: str, text: str, _ns: int) -> None:
        if direction != "http":  # REST requests are stamped too, as (path, "http", method)
            self.frames.append((direction, text))

    def failures(self) -> tuple[list[str], set[str], set[str]]:
        """Frames that fail their schema, and the message kinds seen each way."""
        bad: list[str] = []
        seen: dict[str, set[str]] = {"in": set(), "out": set()}
        for direction, text in self.frames:
            try:
                msg = json.loads(text)
            except ValueError:
                bad.append(f"{direction}: not JSON: {text[:300]!r}")
                continue
            (kind,) = msg
            seen[direction].add(kind)
            table = SERVER_SCHEMA if direction == "out" else CLIENT_SCHEMA
            if (direction, kind) in UNSCHEMED:
                continue
            if kind not in table:
                bad.append(f"{direction} {kind}: no published schema for this message: {text}")
                continue
            bad += [
                f"{direction} {kind}: {e.message}: {text[:300]}" for e in errors(msg, table[kind])
            ]
        return bad, seen["out"], seen["in"]


def sim_cfg(sim: PowerTradeSimulator) -> Any:
    venue = {"sim_url": sim.http_url, "markets": [SYMBOL], "account_interval_s": 3600}
    return config({"powertrade": venue}, botrun={"mode": "sandbox"},
                  risk={"max_order_notional": "1000000000000", "max_position": "1000",
                        "max_orders_per_second": 1000})  # fmt: skip


class Recorder(Strategy):
    def on_start(self) -> None:
        self.rfq_events: list[RfqEvent] = []
        self.on(RfqEvent, self.rfq_events.append, venue="powertrade")


async def test_every_frame_both_ways_matches_the_venues_published_schemas() -> None:
    """A session with orders accepted, filled, cancelled and refused, an RFQ answered and our own
    RFQ posted, refreshed and withdrawn: every frame the simulator sends validates against the
    schema the official client checks it with, and every request the adapter sends against the
    request schema of its kind."""
    sim = PowerTradeSimulator.build(11, rfq_rate_hz=0)
    wire = Wire()
    sim.app.observe = wire
    strategy = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(sim.run, market_rate_hz=None))
        async with running(sim_cfg(sim), [strategy], journal_path=":memory:") as engine:
            await until(engine, lambda: engine.book("powertrade", SYMBOL).is_synced, "book")
            await until(
                engine,
                lambda: any(isinstance(e, RfqSnapshot) for e in strategy.rfq_events),
                "RFQ snapshot",
            )
            bid = sim.engine.best_bid(SYMBOL)
            filled = engine.orders.submit(
                venue="powertrade", symbol=SYMBOL, side=Side.BUY, quantity=D("0.01"),
                price=bid + D("0.1"),
            )  # fmt: skip
            resting = engine.orders.submit(
                venue="powertrade", symbol=SYMBOL, side=Side.BUY, quantity=D("0.01"),
                price=bid - 100,
            )  # fmt: skip
            await until(
                engine,
                lambda: (
                    filled.status is OrderStatus.ACCEPTED and resting.status is OrderStatus.ACCEPTED
                ),
                "accepted",
            )
            sim.engine.submit("crowd", SYMBOL, Side.SELL, "LIMIT", D("0.01"), bid + D("0.1"),
                              tif="IOC")  # fmt: skip
            engine.orders.cancel(resting.client_order_id)
            with trio.fail_after(HANG_GUARD_S):
                await filled.done()
                await resting.done()
            assert filled.status is OrderStatus.FILLED
            assert resting.status is OrderStatus.CANCELLED
            client: PowerTradeExecution = strategy.venue_client("powertrade")  # type: ignore[assignment]
            posted = sim.post_rfq(RFQ_OWNER, SYMBOL, Side.BUY, D("0.02"))
            await until(
                engine,
                lambda: any(isinstance(e, RfqAdded) for e in strategy.rfq_events),
                "RFQ added",
            )
            (added,) = [e for e in strategy.rfq_events if isinstance(e, RfqAdded)]
            assert added.rfq.rfq_id == posted.order_id
            answer = client.answer_rfq(
                strategy, added.rfq, sim.engine.best_ask(SYMBOL) - D("0.1"), D("0.01")
            )
            with trio.fail_after(HANG_GUARD_S):
                await answer.done()
            coid = await client.post_rfq(SYMBOL, Side.SELL, D("0.05"))
            await until(engine, lambda: sim.order(coid) is not None, "own RFQ at the venue")
            await client.refresh_rfq(coid)
            await client.cancel_rfq(coid)
            await until(engine, lambda: sim.order(coid).state != "accepted", "own RFQ withdrawn")
        nursery.cancel_scope.cancel()
    bad, sent, received = wire.failures()
    assert bad == [], "\n".join(bad)
    # the session did cover what it claims to check (a silent observer would pass vacuously)
    assert {"command_response", "snapshot", "entities_and_rules_response", "order_accepted",
            "order_added", "order_deleted", "execution"} <= sent  # fmt: skip
    assert {"authenticate", "entities_and_rules_request", "subscribe", "new_order",
            "cancel_order", "register_for_rfqs", "refresh_interest"} <= received  # fmt: skip


async def test_rest_answers_match_the_venues_published_schemas() -> None:
    from framework.venues.powertrade.auth import make_token

    sim = PowerTradeSimulator.build(12, rfq_rate_hz=0)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(sim.run, market_rate_hz=None))
        headers = {"credentials_secret": make_token(SIM_API_KEY, sim_private_key_pem())}
        bad = []
        async with httpx.AsyncClient(base_url=sim.http_url, headers=headers) as http:
            for path, schema in REST_SCHEMA.items():
                answer = await http.get(path)
                assert answer.status_code == 200, (path, answer.text)
                bad += [
                    f"{path}: {e.message}: {answer.text[:300]}"
                    for e in errors(answer.json(), schema)
                ]
        nursery.cancel_scope.cancel()
    assert bad == [], "\n".join(bad)
