"""Paxos in the fault-tolerance tests, the soak and the test kit (see venues/chaos.py)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from framework.events import Side
from framework.sim.faults import FaultPlan, Rule
from framework.venues.chaos import ChaosCase

_ORDERS = "/v2/profiles/sim-profile/orders"  # POST create, GET/DELETE one order
_QUERY = "/v2/orders"  # GET by ref_ids: what reconciliation and the poller ask


def _section(seed: int) -> dict[str, Any]:
    return {
        "endpoint": "sim",
        "sim_seed": seed,
        "sim_rate_hz": 0,  # the test moves the market
        "markets": ["BTCUSD", "ETHUSD"],
        "trades": False,
        # ~33 order polls a second: under the documented 50/s five-minute average, so a long
        # soak is not throttled by the simulator's (truthful) rate limit
        "poll_interval_s": 0.03,
        "balance_interval_s": 60.0,
        # injected 429s are one-offs, not the venue's 5-minute throttle: a probe soon after
        # one finds the door open (the documented 30 s spacing is tested on its own)
        "throttle_probe_s": 0.05,
        # and their window is short: the venue's 300 s throttle is tested on its own (MockClock,
        # tests/venues/paxos/test_rest_client.py); here a 429 among other faults must not park
        # every reconciliation for five minutes of a test's wall time
        "throttle_s": 1.0,
    }


def _removes_level(text: str, symbol: str, side: Side, price: Decimal) -> bool:
    try:
        msg = orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return (
        isinstance(msg, dict)
        and msg.get("type") == "UPDATE"
        and msg.get("market") == symbol
        and msg.get("side") == side.value
        and msg.get("amount") == "0"
        and Decimal(msg.get("price", "0")) == price
    )


def _streams() -> dict[str, Any]:
    from framework.venues.paxos.streams import PublicStream, SorStream

    ws = "ws://127.0.0.1:1"
    markets = ["BTCUSD", "ETHUSD"]
    return {
        "marketdata": PublicStream(ws, "marketdata", markets),
        "executiondata": PublicStream(ws, "executiondata", markets),
        "stablecoin": PublicStream(ws, "marketdata/stablecoin", ["USDCUSD"]),
        "sor": SorStream(ws, None, markets, book=True, top_of_book=True, executions=True),  # type: ignore[arg-type]
    }


_SOR_BOOK = (
    '{"channel":"market_data","payload":{"market":"BTCUSD","type":"SNAPSHOT",'
    '"time":"2024-11-04T18:11:09.042391267Z","bids":[{"price":"100","amount":"1"}],'
    '"asks":[{"price":"101","amount":"2"}]}}'
)
_SAMPLES = {
    "marketdata": (
        '{"type":"SNAPSHOT","market":"BTCUSD","bids":[{"price":"100","amount":"1"}],'
        '"asks":[{"price":"101","amount":"2"}],"final_snapshot":true}',
        '{"type":"UPDATE","market":"BTCUSD","side":"BUY","price":"100.5","amount":"3"}',
        '{"type":"UPDATE","market":"BTCUSD","side":"SELL","price":"101","amount":"0"}',
    ),
    "executiondata": (
        '{"market":"BTCUSD","price":"100.5","amount":"0.1",'
        '"executed_at":"2023-03-13T18:46:53.386Z","match_number":"ABCDEF123456"}',
    ),
    "stablecoin": ('{"market":"USDCUSD","price":"1.0001","timestamp":"2024-11-04T18:11:09.042Z"}',),
    "sor": (
        _SOR_BOOK,
        _SOR_BOOK.replace("SNAPSHOT", "UPDATE").replace("042391267", "042391268"),
        '{"channel":"heartbeat","payload":{"timestamp":"2024-11-04T18:11:09.042391267Z"}}',
        '{"channel":"market_data.top_of_book","payload":{"market":"BTCUSD",'
        '"type":"TOP_OF_BOOK","timestamp":"2024-11-04T18:11:09.042391267Z",'
        '"bids":[{"price":"100","amount":"1"}],"asks":[{"price":"101","amount":"2"}]}}',
        '{"type":"subscribe","channels":[{"type":"heartbeat","success":true}]}',
    ),
}


def _lose_submit_reply(plan: FaultPlan) -> list[Rule]:
    return [plan.once("http_lost_reply", _ORDERS)]  # the next create is done, its answer lost


def _reset_after_create(plan: FaultPlan) -> list[Rule]:
    return [plan.once("http_reset_after", _ORDERS)]  # the next create is done, then a reset


def _queries_fail(plan: FaultPlan) -> list[Rule]:
    return [plan.add("http_error", 1.0, _QUERY, status=503)]


def _fill_id(sim: Any, fill: Any) -> str:
    from framework.venues.paxos.sim import execution_id

    return execution_id(fill.trade_id)  # [DOC] Paxos execution ids are numeric strings


def _standalone_truth(http_url: str) -> Any:
    """The venue's own order and execution queries (`GET /v2/orders`, `/v2/executions`)."""
    import httpx

    from framework.venues.chaos import VenueFill, VenueOrder

    with httpx.Client(base_url=http_url, timeout=10) as http:
        token = http.post(
            "/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "sim-client",
                "client_secret": "sim-secret",
                "scope": "exchange:read_order",
            },
        ).json()["access_token"]
        http.headers["authorization"] = f"Bearer {token}"

        def every(path: str) -> list[dict[str, Any]]:
            items: list[dict[str, Any]] = []
            cursor = ""
            while True:
                query = {"profile_id": "sim-profile", "limit": "1000"}
                if cursor:
                    query["page_cursor"] = cursor
                page = http.get(path, params=query).json()
                items += page["items"]
                cursor = page.get("next_page_cursor") or ""
                if not cursor:
                    return items

        raw_orders = every(_QUERY)
        executions = every("/v2/executions")
    refs = {o["id"]: o["ref_id"] for o in raw_orders}
    orders = [
        VenueOrder(
            o["ref_id"],
            o["status"],
            o["status"] not in ("FILLED", "CANCELLED", "REJECTED", "EXPIRED"),
            Decimal(o["amount_filled"]),
        )
        for o in raw_orders
    ]
    fills = [
        VenueFill(e["execution_id"], refs.get(e.get("order_id", ""), ""), Decimal(e["amount"]))
        for e in executions
    ]
    return orders, fills


CASE = ChaosCase(
    venue="paxos",
    fill_id=_fill_id,
    markets=("BTCUSD", "ETHUSD"),
    section=_section,
    book_stream="marketdata",
    book_path="/marketdata",
    # the public feed has no sequence numbers, no checksums and no timestamps: a lost or
    # reordered UPDATE is invisible unless it crosses the book
    detects_gaps=False,
    account="sim-profile",
    venue_faults=("token_expiry", "late_fill"),
    removes_level=_removes_level,
    lose_submit_reply=_lose_submit_reply,
    queries_fail=_queries_fail,
    reset_after_create=_reset_after_create,
    streams=_streams,
    samples=_SAMPLES,
    standalone_truth=_standalone_truth,
)
