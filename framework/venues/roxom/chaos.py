"""Roxom in the fault-tolerance tests, the soak and the test kit (see venues/chaos.py)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from framework.events import Side
from framework.sim.faults import FaultPlan, Rule
from framework.venues.chaos import ChaosCase
from framework.venues.roxom.sim import ENGINE_OWNER

_MARKETS = ("US500-BTC", "US100-BTC")
# POST create, GET list (by clientOrderId: what reconciliation asks when the create's answer was
# lost); GET/POST `/api/v1/orders/{id}[/cancel]` share the prefix
_ORDERS = "/api/v1/orders"


def _section(seed: int) -> dict[str, Any]:
    return {
        "endpoint": "sim",
        "sim_seed": seed,
        "sim_rate_hz": 0,  # the test moves the market
        "markets": list(_MARKETS),
        # with the ticker (a frame per symbol every second, from the simulator's timer): the
        # last frames of a (re)subscription are acks, which emit no event, and a test waiting
        # on bus events alone would otherwise not see the stream catch up
        "channels": ["depth", "trade", "ticker"],
    }


def _removes_level(text: str, symbol: str, side: Side, price: Decimal) -> bool:
    try:
        msg = orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(msg, dict) or msg.get("topic") != f"depth.{symbol}":
        return False
    data = msg.get("data")
    if msg.get("type") != "delta" or not isinstance(data, dict):
        return False
    for level in data.get("bid" if side is Side.BUY else "ask") or ():
        try:
            if Decimal(level[1]) == 0 and Decimal(level[0]) == price:
                return True
        except (InvalidOperation, IndexError, TypeError):
            continue
    return False


def _fill_id(sim: Any, fill: Any) -> str:
    # the client's fill id is `<orderId>:<executedQty after the fill>` (see decode.order_report)
    return sim.fill_ids[fill.trade_id]


def _streams() -> dict[str, Any]:
    from framework.venues.roxom.auth import HmacSigner
    from framework.venues.roxom.client import MARKET_CHANNELS, RoxomStream

    signer = HmacSigner("chaos-key", "chaos-secret")
    return {"ws": RoxomStream("ws://127.0.0.1:1", signer, list(_MARKETS), list(MARKET_CHANNELS))}


# frames the venue sends, from tests/venues/roxom/samples/roxom.jsonl (the doc examples)
_SAMPLES = {
    "ws": (
        '{"topic":"level1.US500-BTC","type":"snapshot","createdTime":1640995200000000000,'
        '"data":{"symbol":"US500-BTC","bid":["0.00432450","0.5"],"ask":["0.00432500","0.3"],'
        '"timestamp":1640995200000000000}}',
        '{"topic":"depth.GOLD-BTC","type":"snapshot","createdTime":1640995200000000000,'
        '"data":{"symbol":"GOLD-BTC","bid":[["0.00089410","89.25"],["0.00089400","50.00"]],'
        '"ask":[["0.00089430","156.75"],["0.00089440","203.00"]],'
        '"timestamp":1640995200000000000}}',
        '{"topic":"ticker.US500-BTC","type":"snapshot","createdTime":1640995200000000000,'
        '"data":{"symbol":"US500-BTC","lastPrice":"0.00432500","indexPrice":"0.00432450",'
        '"markPrice":"0.00432475","bestBid":"0.00432450","bestAsk":"0.00432500",'
        '"bestBidQty":"125.50","bestAskQty":"156.75","openInterest":"500.00",'
        '"openInterestValue":"2.16250000","fundingRate":"0.0001",'
        '"timestamp":1640995200000000000,"unit":"btc"}}',
        '{"type":"order","data":{"orderId":"01981061-787c-7fd0-b707-18fa252f0d0b",'
        '"accountId":"f2268d92-b3d8-48b1-8541-90dc250cd7e9","symbol":"GOLD-BTC",'
        '"status":"partiallyfilled","remainingQty":"0.50","executedQty":"0.50",'
        '"avgPx":"50125.50","fillPx":"50125.50","filledFees":"0.00002506","side":"buy",'
        '"orderType":"limit","orderSize":"1.00","limitPrice":"50200.00",'
        '"clientOrderId":"my-order-123","entryPositionId":"pos-uuid-entry",'
        '"exitPositionId":null,"reason":null,"timestamp":1752621480060801000}}',
        '{"type":"order","data":{"orderId":"01981061-787c-7fd0-b707-18fa252f0d0b",'
        '"accountId":"f2268d92-b3d8-48b1-8541-90dc250cd7e9","symbol":"GOLD-BTC",'
        '"status":"cancelled","remainingQty":"1.00","executedQty":"0.00",'
        '"avgPx":"0.00000000","timestamp":1752621480060801000}}',
        '{"type":"balance","data":{"accountId":"01234567-89ab-7def-8123-456789abcdef",'
        '"balanceBefore":"1.50000000","balanceAfter":"1.49950000","amount":"-0.00050000",'
        '"unit":"btc","updateType":"ordersettle","timestamp":1640995200000000000}}',
        '{"type":"position","data":[{"id":"pos-uuid","symbol":"US500-BTC",'
        '"accountId":"acct-uuid","side":"long","entryAmount":"1.000","exitAmount":"0.500",'
        '"size":"0.500","tradeMode":"isolated","openDate":1640995200000,"closeDate":null,'
        '"avgEntry":"50000.00","avgExit":null,"entryFees":"0.00100000","exitFees":null,'
        '"positionBalance":"0.05000000","initialMargin":"0.05000000",'
        '"maintenanceMargin":"0.00500000","liquidationPrice":"45000.00","leverage":"10.0",'
        '"unrealizedPnl":"0.00100000","realizedPnl":"0.00200000","markPrice":"52500.00",'
        '"status":"normal","updatedAt":1640995200000000000,"createdAt":1640995200000000000}]}',
        # not the in-band auth refusal (`{"event":"error","code":"600010",...}`): it raises
        # AuthError out of the session loop, which ends it before `wait_frames` is woken
    ),
}


def _lose_submit_reply(plan: FaultPlan) -> list[Rule]:
    return [plan.once("http_lost_reply", _ORDERS)]  # the next create is done, its answer lost


def _reset_after_create(plan: FaultPlan) -> list[Rule]:
    return [plan.once("http_reset_after", _ORDERS)]  # the next create is done, then a reset


def _queries_fail(plan: FaultPlan) -> list[Rule]:
    # create and list share the path: let the next request (the create) through, fail the rest
    return [plan.once("http_error", _ORDERS, after=1, times=1 << 30, status=503)]


CASE = ChaosCase(
    venue="roxom",
    # fill ids are derived from cumulative executedQty: fills missed while disconnected come
    # back merged from REST, so the soak compares each order's total, not fill by fill
    fills_by_id=False,
    markets=_MARKETS,
    section=_section,
    book_stream="ws",
    book_path="/ws",
    # depth frames carry timestamps but no sequence numbers or checksums: a lost or reordered
    # delta is invisible unless it crosses the book
    detects_gaps=False,
    account=ENGINE_OWNER,
    fill_id=_fill_id,
    lot=Decimal("0.001"),
    removes_level=_removes_level,
    lose_submit_reply=_lose_submit_reply,
    queries_fail=_queries_fail,
    reset_after_create=_reset_after_create,
    streams=_streams,
    samples=_SAMPLES,
)
