"""Power.Trade in the fault-tolerance tests, the soak and the test kit (see venues/chaos.py).

Everything travels on one WebSocket (books, RFQs, orders, account), on the simulator's `/`: the
book path is the order path, so frame faults on the book also hit order replies, and the
order-path faults below are frame rules on the order messages.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from framework.events import Side
from framework.sim.faults import FaultPlan, Rule
from framework.venues.chaos import ChaosCase
from framework.venues.powertrade.sim import ENGINE_OWNER, trade_id

_MARKETS = ("BTC-USD", "ETH-USD")
_PATH = "/"  # the one connection (and the start-up rules fetch, before any plan is attached)
# frames of our orders' lives (the simulator writes `{"<type>": {...}}`, type first)
# ([CODE] no `new_order` reply exists: a new_order's first answer is order_accepted/_rejected)
_ORDER_KINDS = ("order_accepted", "order_rejected", "execution", "cancel_order")
_ORDER_DETAILS = "/v1/api/order"  # [DOC] order details are REST


def _section(seed: int) -> dict[str, Any]:
    return {
        "endpoint": "sim",
        "sim_seed": seed,
        "sim_rate_hz": 0,  # the test moves the market
        "sim_rfq_rate_hz": 0,  # no synthetic RFQs on a timer: every frame comes from a step
        "markets": list(_MARKETS),
        "account_interval_s": 60.0,
        # a lost reply on a WebSocket is only noticed by its timeout: keep it short on loopback
        # (a late reply just makes the order UNKNOWN, which reconciliation resolves)
        "request_timeout_s": 1.0,
        # the simulator sees a request the instant it arrives (loopback, no order cache lag):
        # a few seconds stand in for the real venue's 300 s before "not found" is believed
        "not_found_grace_s": 3.0,
    }


def _kind(text: str) -> str:
    """The message type of a simulator frame (`{"kind":...`), without parsing it."""
    if not text.startswith('{"'):
        return ""
    end = text.find('"', 2)
    return text[2:end] if end > 0 else ""


def _body(text: str) -> dict[str, Any]:
    try:
        msg = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(msg, dict) or len(msg) != 1:
        return {}
    (body,) = msg.values()
    return body if isinstance(body, dict) else {}


def _is(*kinds: str) -> Any:
    return lambda text: _kind(text) in kinds


def _cancel_reply(text: str) -> bool:
    # the answer to our cancel (it carries our user_tag; unsolicited ends carry none)
    return _kind(text) == "cancel_order" and bool(_body(text).get("user_tag"))


def _add(plan: FaultPlan, kind: str, rate: float, match: Any, **params: Any) -> Rule:
    """A random rule on the frames `match` accepts, on the one connection path."""
    return plan.add(kind, min(rate, 1.0), _PATH, match=match, **params)


def _order_faults(plan: FaultPlan, scale: float) -> list[Rule]:
    # A WebSocket loses nothing in the middle of a connection; what the venue's side can do is
    # answer late, out of order ([DOC] "responses may come out of order"), or leave a request
    # unanswered after acting on it (a proxy restart): the client then only has its timeout.
    return [
        _add(plan, "drop", 0.08 * scale, _is("order_accepted")),
        _add(plan, "drop", 0.08 * scale, _cancel_reply),
        _add(plan, "delay", 0.05 * scale, _is(*_ORDER_KINDS), seconds=0.01),
        _add(plan, "reorder", 0.05 * scale, _is(*_ORDER_KINDS)),
    ]


def _lose_submit_reply(plan: FaultPlan) -> list[Rule]:
    # the next order_accepted: the new_order's only answer ([CODE]) never arrives, though the
    # venue has the order (a scripted rule fires on its first match)
    return [plan.once("drop", _PATH, match=_is("order_accepted"))]


def _reset_after_create(plan: FaultPlan) -> list[Rule]:
    # the venue has the order; the socket drops (no close frame) instead of its order_accepted
    return [plan.once("abort", _PATH, match=_is("order_accepted"))]


def _queries_fail(plan: FaultPlan) -> list[Rule]:
    # every REST order-details call fails (the venue has the order; we cannot ask)
    return [plan.add("http_error", 1.0, _ORDER_DETAILS, status=503)]


def _removes_level(text: str, symbol: str, side: Side, price: Decimal) -> bool:
    # L3: a level goes with the last order on it, so any order leaving it will do (dropping one of
    # several leaves that order behind as the ghost level). An `order_executed` here is taken for
    # a full one: the frame alone cannot tell, and a taker that empties the level makes it so.
    if _kind(text) not in ("order_deleted", "order_executed"):
        return False
    body = _body(text)
    if body.get("symbol") != symbol or body.get("market_id") != "0":
        return False
    if body.get("side") != ("buy" if side is Side.BUY else "sell"):
        return False
    try:
        return Decimal(body.get("price", "")) == price
    except (InvalidOperation, TypeError):
        return False


def _fill_id(sim: Any, fill: Any) -> str:
    return trade_id(fill)  # the venue trade id, which the client keeps as fill id


def _streams() -> dict[str, Any]:
    from framework.venues.powertrade.client import PowerTradeStream

    return {"powertrade": PowerTradeStream("ws://127.0.0.1:1", list(_MARKETS), login=None)}


_FIRM = '"market_id":"0","tradeable_entity_id":"4","symbol":"BTC-USD"'
_TS = '"server_utc_timestamp":"1700000000000000","utc_timestamp":"1700000000000000"'
# frames the simulator sends (the shapes of the reference's examples and real captures)
_SAMPLES = {
    "powertrade": (
        '{"snapshot":{"server_utc_timestamp":"1700000000000000",' + _FIRM + ","
        '"buy":[{"utc_timestamp":"1699999999000000","price":"59999.9","quantity":"0.5",'
        '"order_id":"101"},{"utc_timestamp":"1699999999000001","price":"59999.8",'
        '"quantity":"0.25","order_id":"102"}],'
        '"sell":[{"utc_timestamp":"1699999999000002","price":"60000.1","quantity":"1.0",'
        '"order_id":"103"}]}}',
        '{"order_added":{' + _TS + "," + _FIRM + ',"side":"buy","order_id":"104",'
        '"price":"59999.9","quantity":"0.1"}}',
        '{"order_executed":{' + _TS + "," + _FIRM + ',"side":"sell","order_id":"103",'
        '"price":"60000.1","quantity":"0.4"}}',
        '{"order_deleted":{' + _TS + "," + _FIRM + ',"side":"buy","order_id":"102",'
        '"price":"59999.8"}}',
        '{"order_updated":{' + _TS + "," + _FIRM + ',"side":"buy","old_order_id":"101",'
        '"new_order_id":"105","price":"59999.7","quantity":"0.5"}}',
        '{"trade":{' + _TS + "," + _FIRM + ',"trade_id":"7001","price":"60000.1",'
        '"quantity":"0.4","buy_display_order_id":"","sell_display_order_id":""}}',
        '{"snapshot":{"server_utc_timestamp":"1670228560424362","market_id":"none",'
        '"tradeable_entity_id":"484","symbol":"ETH-USD-PERPETUAL","buy":[{"utc_timestamp":'
        '"1669643400000098","price":"1301.28","quantity":"0.1","order_id":"8910362"}],"sell":[]}}',
        '{"order_added":{"server_utc_timestamp":"1660735105778297","utc_timestamp":'
        '"1660735105767221","market_id":"255","tradeable_entity_id":"2752@1/2771@1","symbol":'
        '"ETH-20220902-1500P@1/ETH-20220902-2000C@1","side":"sell","order_id":"29872771",'
        '"price":"0.0","quantity":"1.0"}}',
        '{"order_deleted":{"server_utc_timestamp":"1660735165811304","utc_timestamp":'
        '"1660735165807583","market_id":"255","tradeable_entity_id":"2752@1/2771@1","symbol":'
        '"ETH-20220902-1500P@1/ETH-20220902-2000C@1","side":"sell","order_id":"29872771"}}',
        '{"deltas":{"server_utc_timestamp":"1700000000000001",' + _FIRM + ","
        '"buy":{"add_price_level":[{"price":"59999.9","quantity":"0.7"}]},'
        '"sell":{"delete_price_level":"60000.1"}}}',
        '{"order_accepted":{"utc_timestamp":"1700000000000000",' + _FIRM + ',"type":"LIMIT",'
        '"order_id":"9553031","client_order_id":"br1","quantity":"1.0","price":"60000.0",'
        '"side":"buy"}}',
        '{"order_rejected":{"client_order_id":"br2","symbol":"BTC-USD","quantity":"1000.0",'
        '"price":"1.0","reason":"quantity_greater_than_maximum_quantity",'
        '"utc_timestamp":"1700000000000000"}}',
        '{"execution":{"server_utc_timestamp":"1700000000000000","tradeable_entity_id":"4",'
        '"symbol":"BTC-USD","order_id":"9553031","client_order_id":"br1","price":"60000.0",'
        '"side":"buy","order_state":"partial_fill","trade_id":"7002","executed_price":"60000.0",'
        '"executed_quantity":"0.5","liquidity_flag":"added","utc_timestamp":"1700000000000000"}}',
        '{"cancel_order":{' + _TS + ',"tradeable_entity_id":"4","symbol":"BTC-USD",'
        '"order_id":"9553031","client_order_id":"br1","filled_quantity":"0.5",'
        '"reason":"user_cancelled","user_tag":"bt1-8"}}',
        '{"command_response":{"error_code":"0","error_text":"success","user_tag":"bt1-9"}}',
        '{"heartbeat":{"server_utc_timestamp":"1660733618452901"}}',
        '{"balances_response":{"user_tag":"bt1-10","balances":[{"symbol":"USD",'
        '"cash_balance":"100.0","available_balance":"90.0","reserved_balance":"10.0",'
        '"withdrawable_balance":"90.0","timestamp":"1700000000000000"}]}}',
        '{"positions_response":{"user_tag":"bt1-11","positions":[{"symbol":"BTC-USD",'
        '"product_type":"spot","side":"buy","size":"0.5","average_entry_price":"60000.0",'
        '"mark_price":"60001.0","upnl":"0.5"}]}}',
    ),
}


CASE = ChaosCase(
    venue="powertrade",
    markets=_MARKETS,
    section=_section,
    book_stream="powertrade",
    book_path=_PATH,
    # the L3 feed has no sequence numbers or checksums: a lost or reordered message shows only
    # when a later one names an order the book does not hold (or the book crosses); a lost
    # deletion of the last order on a level, or a lost partial execution, is invisible
    detects_gaps=False,
    account=ENGINE_OWNER,
    venue_faults=("late_fill",),
    fill_id=_fill_id,
    # a multiple of both markets' quantity steps (BTC 0.0001, ETH 0.001)
    lot=Decimal("0.001"),
    removes_level=_removes_level,
    order_faults=_order_faults,
    lose_submit_reply=_lose_submit_reply,
    queries_fail=_queries_fail,
    reset_after_create=_reset_after_create,
    order_frames=_is(*_ORDER_KINDS),
    # an execution's fill; a cancel's cumulative fill (the accept's quantity and price are not
    # read: the order's own are kept)
    order_numbers=("executed_quantity", "executed_price", "filled_quantity"),
    streams=_streams,
    samples=_SAMPLES,
)
