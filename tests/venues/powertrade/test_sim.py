# ruff: noqa: E501  (verbatim wire frames read best on one line)
"""The Power.Trade simulator's protocol, driven request by request (no socket needed)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import trio

from framework.events import Side
from framework.venues.powertrade.auth import make_token, new_key_pair
from framework.venues.powertrade.sim import (
    RFQ_OWNER,
    RFQ_TTL_S,
    SIM_API_KEY,
    PowerTradeSimulator,
    _Client,
    sim_private_key_pem,
    wire,
)

D = Decimal


class FakeConn:
    def __init__(self) -> None:
        self.frames: list[str] = []
        self.closed = False

    def enqueue(self, text: str) -> bool:
        self.frames.append(text)
        return True

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = True


def sim_and_client(seed: int = 1) -> tuple[PowerTradeSimulator, _Client]:
    sim = PowerTradeSimulator.build(seed)
    client = _Client(FakeConn())  # type: ignore[arg-type]
    sim.add_client(client)
    return sim, client


def messages(client: _Client, start: int = 0) -> list[tuple[str, dict[str, Any]]]:
    return [next(iter(orjson.loads(f).items())) for f in client.conn.frames[start:]]


def send(
    sim: PowerTradeSimulator, client: _Client, kind: str, **body: Any
) -> list[tuple[str, dict]]:
    start = len(client.conn.frames)
    sim.handle(client, orjson.dumps({kind: body}).decode())
    return messages(client, start)


def order(
    coid: str, side: str = "buy", price: str = "50000.0", qty: str = "0.01", **extra: str
) -> dict:
    body = {"market_id": "0", "side": side, "type": "LIMIT", "time_in_force": "GTC",
            "quantity": qty, "price": price, "client_order_id": coid, "symbol": "BTC-USD"}  # fmt: skip
    return {**body, **extra}


async def logged_in() -> tuple[PowerTradeSimulator, _Client]:
    sim, client = sim_and_client()
    (reply,) = send(
        sim,
        client,
        "authenticate",
        credentials_secret=make_token(SIM_API_KEY, sim_private_key_pem()),
        user_tag="a",
    )
    assert reply == (
        "command_response",
        {"error_code": "0", "error_text": "success", "user_tag": "a"},
    )
    return sim, client


def test_wire_numbers_keep_a_decimal_point_and_never_use_exponents() -> None:
    assert [wire(D(x)) for x in ("0", "1", "1E+2", "0.10", "60000.1")] == [
        "0.0",
        "1.0",
        "100.0",
        "0.1",
        "60000.1",
    ]


async def test_a_token_signed_with_another_key_is_refused_with_code_10() -> None:
    sim, client = sim_and_client()
    other, _ = new_key_pair()
    (reply,) = send(
        sim, client, "authenticate", credentials_secret=make_token(SIM_API_KEY, other), user_tag="a"
    )
    assert reply[1]["error_code"] == "10" and not client.authenticated
    expired = make_token(SIM_API_KEY, sim_private_key_pem(), now_s=1_600_000_000)
    (reply,) = send(sim, client, "authenticate", credentials_secret=expired, user_tag="b")
    assert reply[1]["error_code"] == "10"


async def test_order_requests_need_a_login() -> None:
    sim, client = sim_and_client()
    for kind, body in [("new_order", order("c1")), ("cancel_order", {"client_order_id": "c1"}),
                       ("cancel_all_orders", {}), ("balances", {}), ("refresh_interest", {"order_id": "1"})]:  # fmt: skip
        (reply,) = send(sim, client, kind, **body, user_tag="t")
        assert reply[0] == "command_response" and reply[1]["error_code"] == "15", kind
    assert sim.engine.orders(owner=SIM_API_KEY) == []


async def test_non_string_scalars_are_refused_with_a_command_response() -> None:
    sim, client = await logged_in()
    body = order("c1")
    body["price"] = 50000.0
    (reply,) = send(sim, client, "new_order", **body, user_tag="t")
    # [DOC] the whole text, no detail suffix; only the user_tag names the request
    assert reply == (
        "command_response",
        {"error_code": "12", "error_text": "error parsing new order request", "user_tag": "t"},
    )
    (reply,) = send(
        sim, client, "subscribe", symbol="BTC-USD", market_id="0", interval=0, user_tag="u"
    )
    assert reply[1]["error_code"] == "12" and reply[1]["user_tag"] == "u"
    (reply,) = send(sim, client, "new_order", **order("c2"), user_tag="v", post=True)
    assert reply[1]["error_code"] == "12"
    assert sim.order("c1") is None and sim.order("c2") is None


async def test_malformed_and_unknown_requests_get_errors_not_crashes() -> None:
    sim, client = await logged_in()
    for raw in ["nope", "[]", '{"a": {}, "b": {}}', '{"new_order": "x"}']:
        start = len(client.conn.frames)
        sim.handle(client, raw)
        ((kind, body),) = messages(client, start)
        assert kind == "command_response" and body["error_code"] == "12", raw
    (reply,) = send(sim, client, "teleport", user_tag="t")
    assert reply[1]["error_code"] == "13"


async def test_new_order_lifecycle_messages() -> None:
    sim, client = await logged_in()
    price = sim.engine.best_bid("BTC-USD") + D("0.1")  # our bid becomes the best
    replies = send(sim, client, "new_order", **order("c1", price=wire(price)), user_tag="t1")
    # [CODE] the first answer is order_accepted, matched by client_order_id: no new_order /
    # pending_new echo, no user_tag
    assert [k for k, _ in replies] == ["order_accepted"]
    assert replies[0][1]["client_order_id"] == "c1" and "user_tag" not in replies[0][1]
    oid = replies[0][1]["order_id"]
    assert oid.isdigit()
    # a crowd sell takes half, then the rest
    sim.engine.submit("crowd", "BTC-USD", Side.SELL, "LIMIT", D("0.005"), price, tif="IOC")
    ((_, ex),) = [m for m in messages(client) if m[0] == "execution"]
    assert (ex["order_state"], ex["liquidity_flag"], ex["executed_quantity"]) == (
        "partial_fill",
        "added",
        "0.005",
    )
    replies = send(sim, client, "cancel_order", client_order_id="c1", user_tag="t2")
    assert replies == [
        (
            "cancel_order",
            {
                **replies[0][1],
                "reason": "user_cancelled",
                "filled_quantity": "0.005",
                "order_id": oid,
            },
        )
    ]
    assert sim.engine.order(oid).status == "CANCELLED"


async def test_duplicate_client_order_id_and_unknown_ids() -> None:
    sim, client = await logged_in()
    send(sim, client, "new_order", **order("c1"), user_tag="t1")
    (reply,) = send(sim, client, "new_order", **order("c1"), user_tag="t2")
    assert reply == (
        "command_response",
        {"error_code": "17", "error_text": "duplicate client_order_id c1", "user_tag": "t2"},
    )
    (reply,) = send(sim, client, "cancel_order", client_order_id="nope", user_tag="t3")
    assert reply[1]["reason"] == "exchange order_id or client_order_id not found in order cache"
    # no WebSocket order-details request exists ([CODE] the TS RequestName union has none)
    (reply,) = send(sim, client, "order_details_request", client_order_id="nope", user_tag="t4")
    assert reply[0] == "command_response" and reply[1]["error_code"] != "0"
    (reply,) = send(
        sim,
        client,
        "subscribe",
        symbol="DOGE-USD",
        market_id="0",
        type="snap_with_deltas",
        user_tag="t5",
    )
    assert reply[1]["error_code"] == "19"


async def test_business_rejects_are_the_first_answer() -> None:
    sim, client = await logged_in()
    replies = send(
        sim, client, "new_order", **order("big", qty="1000.0", price="1.0"), user_tag="t"
    )
    assert [k for k, _ in replies] == ["order_rejected"]
    assert replies[0][1]["reason"] == "quantity_greater_than_maximum_quantity"  # [CODE]
    assert "user_tag" not in replies[0][1]
    replies = send(sim, client, "new_order", **order("tick", price="50000.05"), user_tag="t2")
    assert replies[0][1]["reason"] == "invalid_price_step"


async def test_a_client_heartbeat_is_never_answered() -> None:
    """[INF, strong] two official clients answer every server heartbeat: answering theirs would
    loop (thousands a second)."""
    sim, client = sim_and_client()
    assert send(sim, client, "heartbeat", timestamp="1") == []


async def test_rfq_book_snapshot_updates_and_30_minute_expiry_unless_refreshed() -> None:
    sim, client = await logged_in()
    replies = send(sim, client, "register_for_rfqs", user_tag="r")
    assert replies[0][1]["error_code"] == "0"
    assert {
        b["symbol"] for k, b in replies[1:] if k == "snapshot" and b["market_id"] == "none"
    } == {"BTC-USD", "ETH-USD"}
    rfq_body = {**order("q1", price="0"), "market_id": "none"}
    replies = send(sim, client, "new_order", **rfq_body, user_tag="t")
    assert [k for k, _ in replies] == ["order_added", "order_accepted"]
    rfq_id = replies[0][1]["order_id"]
    assert replies[0][1]["market_id"] == "none"
    assert rfq_id.isdigit()  # [DOC] RFQ ids are numeric like firm ones ("29872771")
    crowd = sim.post_rfq(RFQ_OWNER, "ETH-USD", Side.SELL, D("0.5"))
    now = trio.current_time()
    (reply,) = send(sim, client, "refresh_interest", client_order_id="q1", user_tag="f")
    assert reply[1]["reason"] == "success" and reply[1]["order_id"] == ""  # [CODE] echo ""
    start = len(client.conn.frames)
    sim.expire(now + RFQ_TTL_S - 60)  # ours was refreshed; the crowd's short-lived one goes
    deleted = [b["order_id"] for k, b in messages(client, start) if k == "order_deleted"]
    assert deleted == [crowd.order_id]
    sim.expire(now + RFQ_TTL_S + 60)
    tail = messages(client, start)
    assert ("order_deleted", rfq_id) in [(k, b.get("order_id")) for k, b in tail]
    assert [b["reason"] for k, b in tail if k == "cancel_order"] == ["expired"]
    send(sim, client, "deregister_for_rfqs", user_tag="d")
    start = len(client.conn.frames)
    sim.post_rfq(RFQ_OWNER, "ETH-USD", Side.SELL, D("0.5"))
    assert messages(client, start) == []


async def test_an_answer_to_a_crowd_rfq_is_taken() -> None:
    sim, client = await logged_in()
    sim.post_rfq(RFQ_OWNER, "BTC-USD", Side.BUY, D("0.02"))
    inside = sim.engine.best_ask("BTC-USD") - D("0.1")  # improves on the book's best offer
    send(
        sim,
        client,
        "new_order",
        **order("ans", side="sell", price=wire(inside), qty="0.01"),
        user_tag="t",
    )
    assert sim.order("ans").state == "filled"
    assert not sim.rfqs()


async def test_held_entries_can_be_cancelled_before_they_reach_the_book() -> None:
    sim, client = await logged_in()
    sim.hold_entries = True
    replies = send(sim, client, "new_order", **order("h1"), user_tag="t")
    assert replies == []
    (reply,) = send(sim, client, "cancel_order", client_order_id="h1", user_tag="c")
    assert reply[1]["reason"] == "user_cancelled" and reply[1]["order_id"] == ""
    sim.release_entries()
    assert sim.engine.orders(owner=SIM_API_KEY) == []


async def test_l3_feed_matches_the_engine_book() -> None:
    sim, client = await logged_in()
    send(
        sim,
        client,
        "subscribe",
        symbol="BTC-USD",
        market_id="0",
        type="snap_full_updates",
        interval="0",
        user_tag="s",
    )
    sim.crowds["BTC-USD"].steps(300)
    levels: dict[Side, dict[Decimal, Decimal]] = {Side.BUY: {}, Side.SELL: {}}
    for side, price, size in sim.l3_orders("BTC-USD").values():
        levels[side][price] = levels[side].get(price, D(0)) + size
    bids, asks = sim.engine.book("BTC-USD")
    assert sorted(levels[Side.BUY].items(), reverse=True) == bids
    assert sorted(levels[Side.SELL].items()) == asks


async def test_order_history_is_bounded_like_the_engines() -> None:
    sim, client = await logged_in()
    sim.engine.limit_history(5, sim.engine.fill_history_limit)
    bid = sim.engine.best_bid("BTC-USD")
    # an old order still working is kept, and holds back the trim behind it
    send(sim, client, "new_order", **order("keep", price=wire(bid - 200)), user_tag="k")
    for i in range(12):
        send(sim, client, "new_order", **order(f"c{i}", price=wire(bid - 100 - i)), user_tag="t")
        send(sim, client, "cancel_order", client_order_id=f"c{i}", user_tag="x")
    assert len(sim.orders) == 13 and sim.order("keep").open
    assert len(sim.orders.engine_ids()) == 13
    send(sim, client, "cancel_order", client_order_id="keep", user_tag="x")
    send(sim, client, "new_order", **order("last", price=wire(bid - 100)), user_tag="t")
    assert list(sim.orders) == [f"c{i}" for i in range(8, 12)] + ["last"]
    assert {sim.orders.by_engine(e) for e in sim.orders.engine_ids()} == set(sim.orders.values())
    # a forgotten client order id is accepted again (the venue's memory is bounded too)
    replies = send(sim, client, "new_order", **order("c0", price=wire(bid - 100)), user_tag="t")
    assert [k for k, _ in replies] == ["order_accepted"]
