# ruff: noqa: E501  (verbatim wire frames read best on one line)
"""The simulator answers what Power.Trade's official TypeScript client sends, as its integration
tests expect (github.com/Power-Trade/market-proxy-clients, `typescript/src/integration/**`; the
client under `typescript/src/market-proxy/**`). Each test names the official test it mirrors;
the frames are the ones the TS client builds (`parser/getOrderRequest.ts`: numbers as JS
`toString()` gives them, "10000" and "1", no `price` on an RFQ)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from framework.events import Side
from framework.sim.messages import HttpRequest, HttpResponse
from framework.venues.powertrade.auth import make_token
from framework.venues.powertrade.sim import (
    SIM_API_KEY,
    Market,
    PowerTradeSimulator,
    _Client,
    sim_private_key_pem,
)
from tests.venues.powertrade.test_schemas import errors
from tests.venues.powertrade.test_sim import FakeConn, messages, send

D = Decimal


def _market(eid: str, base: str, mid: str, tags: tuple[str, ...] = ("spot",)) -> Market:
    return Market(eid, base, "USD", D(mid), D("0.01"), D("0.01"), D("0.01"), D(100_000),
                  D("0.00001"), D(1_000_000_000), tags)  # fmt: skip


MARKETS = {
    "BTC-USD": _market("4", "BTC", "37000"),
    "PTF-USD": _market("6", "PTF", "0.5"),
    "AVAX-USD": _market("930", "AVAX", "10"),
    "BTC-USD-PERPETUAL": _market("932", "BTC", "37000", ("perpetual",)),
}


def quiet_sim(*quiet: str) -> PowerTradeSimulator:
    """A simulator on MARKETS whose `quiet` books hold no crowd orders (only the test's)."""
    sim = PowerTradeSimulator.build(3, markets=MARKETS)
    for symbol in quiet:
        sim.crowds.pop(symbol)
        for o in sim.engine.orders(open_only=True):
            if o.symbol == symbol:
                sim.engine.cancel(o.order_id)
    return sim


def login(sim: PowerTradeSimulator) -> _Client:
    client = _Client(FakeConn())  # type: ignore[arg-type]
    sim.add_client(client)
    token = make_token(SIM_API_KEY, sim_private_key_pem())
    ((kind, body),) = send(sim, client, "authenticate", credentials_secret=token, user_tag="a")
    assert (kind, body["error_code"]) == ("command_response", "0")
    return client


def ts_order(coid: str, symbol: str = "BTC-USD", **over: str) -> dict[str, str]:
    """A firm limit order as `getOrderRequest` builds it (activeCycles 1)."""
    body = {"market_id": "0", "side": "buy", "quantity": "1", "type": "LIMIT",
            "time_in_force": "GTC", "client_order_id": coid, "price": "10000",
            "recv_window": "1", "symbol": symbol}  # fmt: skip
    return {**body, **over}


def ts_rfq(coid: str, symbol: str, qty: str, side: str = "buy") -> dict[str, str]:
    """An RFQ as `getOrderRequest` builds it: `market_id` "none" and no `price`."""
    body = ts_order(coid, symbol, market_id="none", quantity=qty, side=side)
    del body["price"]
    return body


def rest(sim: PowerTradeSimulator, method: str, path: str, **query: str) -> Any:
    """A REST call with the TS client's `credentials_secret` header; the decoded JSON body."""
    headers = {"credentials_secret": make_token(SIM_API_KEY, sim_private_key_pem())}
    request = HttpRequest(method, path, {k: [v] for k, v in query.items()}, headers)
    handler = {
        ("GET", "/v1/api/openOrders"): sim._rest_open_orders,
        ("GET", "/v1/api/order"): sim._rest_order,
        ("DELETE", "/v1/api/allOrders"): sim._rest_cancel_all,
        ("GET", "/v1/api/balances"): sim._rest_balances,
        ("GET", "/v1/api/deliverableInfo"): sim._rest_deliverables,
        ("GET", "/v1/api/positions"): sim._rest_positions,
        ("POST", "/v1/api/refreshInterest"): sim._rest_refresh,
    }[(method, path)]
    response: HttpResponse = handler(request)
    assert response.status == 200
    return orjson.loads(response.body)


def kinds(frames: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [kind for kind, _ in frames]


async def test_bulk_order_reply_lists_every_order_pending_new_then_each_is_accepted() -> None:
    # integration/ws/place-bulk-order.test.ts: the same bulk is sent twice; the second reply
    # still lists all of it pending_new (exact keys: user_tag, results)
    sim = quiet_sim()
    client = login(sim)
    orders = [ts_order("b1"), ts_order("b2", "PTF-USD", quantity="1000", price="0.01")]
    frames = send(sim, client, "new_bulk_order", orders=orders, user_tag="bulk1")
    assert frames[0] == (
        "new_bulk_order",
        {"user_tag": "bulk1", "results": [
            {"client_order_id": "b1", "order_state": "pending_new"},
            {"client_order_id": "b2", "order_state": "pending_new"},
        ]},
    )  # fmt: skip
    assert kinds(frames[1:]) == ["order_accepted", "order_accepted"]
    assert [b["client_order_id"] for _, b in frames[1:]] == ["b1", "b2"]
    again = send(sim, client, "new_bulk_order", orders=orders, user_tag="bulk2")
    assert again[0][1]["results"] == frames[0][1]["results"]
    # [INF] a duplicate gets the single new_order's refusal under the request's user_tag
    assert [(k, b["user_tag"]) for k, b in again[1:]] == [("command_response", "bulk2")] * 2
    assert all(b["error_code"] != "0" for _, b in again[1:])
    rows = rest(sim, "GET", "/v1/api/openOrders")["query_open_orders_response"]["open_orders"]
    assert sorted(r["client_order_id"] for r in rows) == ["b1", "b2"]


async def test_order_messages_echo_quantity_and_price_as_sent() -> None:
    # integration/rest/get-order-details.test.ts: "1" and "10000" come back as sent
    sim = quiet_sim()
    client = login(sim)
    ((kind, accepted),) = send(sim, client, "new_order", **ts_order("d1"), user_tag="t")
    assert kind == "order_accepted"
    assert (accepted["quantity"], accepted["price"]) == ("1", "10000")
    for query in ({"order_id": accepted["order_id"]}, {"client_order_id": "d1"}):
        details = rest(sim, "GET", "/v1/api/order", **query)["query_order_response"]
        assert details == {
            "utc_timestamp": details["utc_timestamp"], "market_id": "0",
            "tradeable_entity_id": "4", "symbol": "BTC-USD", "type": "LIMIT",
            "order_id": accepted["order_id"], "client_order_id": "d1", "quantity": "1",
            "price": "10000", "side": "buy", "order_state": "accepted", "cancel_state": "none",
            "executions": [],
        }  # fmt: skip


async def test_self_match_executions_carry_the_sent_price_and_the_venue_written_fill() -> None:
    # integration/ws/order-execution.test.ts (AVAX-USD, entity 930, a book holding only ours)
    sim = quiet_sim("AVAX-USD")
    client = login(sim)
    base = {"price": "10", "quantity": "1"}
    send(sim, client, "new_order", **ts_order("m", "AVAX-USD", **base))
    frames = send(
        sim,
        client,
        "new_order",
        **ts_order("t1", "AVAX-USD", side="sell", price="10", quantity="0.1"),
    )
    frames += send(
        sim,
        client,
        "new_order",
        **ts_order("t2", "AVAX-USD", side="sell", price="10", quantity="0.05"),
    )
    executions = [b for k, b in frames if k == "execution"]
    common = {
        "executed_price": "10.0",
        "price": "10",
        "symbol": "AVAX-USD",
        "tradeable_entity_id": "930",
    }
    expected = [
        {
            **common,
            "executed_quantity": "0.1",
            "liquidity_flag": "added",
            "order_state": "partial_fill",
            "side": "buy",
            "client_order_id": "m",
        },
        {
            **common,
            "executed_quantity": "0.1",
            "liquidity_flag": "taken",
            "order_state": "filled",
            "side": "sell",
            "client_order_id": "t1",
        },
        {
            **common,
            "executed_quantity": "0.05",
            "liquidity_flag": "added",
            "order_state": "partial_fill",
            "side": "buy",
            "client_order_id": "m",
        },
        {
            **common,
            "executed_quantity": "0.05",
            "liquidity_flag": "taken",
            "order_state": "filled",
            "side": "sell",
            "client_order_id": "t2",
        },
    ]
    volatile = {"order_id", "trade_id", "server_utc_timestamp", "utc_timestamp"}
    for body in executions:
        assert set(body) == set(expected[0]) | volatile
    stable = [{k: v for k, v in b.items() if k not in volatile} for b in executions]
    assert sorted(stable, key=lambda d: sorted(d.items())) == sorted(
        expected, key=lambda d: sorted(d.items())
    )


async def test_rfqs_are_open_orders_and_cancel_all_withdraws_them() -> None:
    # integration/ws/place-bulk-order.test.ts (RFQs in openOrders, market_id "none", price NaN
    # in the TS client: no price key) and integration/ws/listen-to-rfqs.test.ts (REST
    # cancel-all → order_deleted on the RFQ feed; the book row says "10000.0" for "10000")
    sim = quiet_sim()
    listener = login(sim)
    send(sim, listener, "register_for_rfqs", user_tag="r")
    client = login(sim)
    ((kind, _),) = send(sim, client, "new_order", **ts_rfq("q1", "PTF-USD", "10000"), user_tag="t")
    assert kind == "order_accepted"
    (added,) = [b for k, b in messages(listener) if k == "order_added"]
    assert added == {
        "server_utc_timestamp": added["server_utc_timestamp"], "utc_timestamp": added["utc_timestamp"],
        "market_id": "none", "tradeable_entity_id": "6", "symbol": "PTF-USD", "side": "buy",
        "order_id": added["order_id"], "price": added["price"], "quantity": "10000.0",
    }  # fmt: skip
    rows = rest(sim, "GET", "/v1/api/openOrders")["query_open_orders_response"]["open_orders"]
    (row,) = rows
    assert (row["market_id"], row["order_state"], row["cancel_state"]) == (
        "none",
        "accepted",
        "none",
    )
    assert "price" not in row and "legs" not in row
    start = len(listener.conn.frames)
    reply = rest(sim, "DELETE", "/v1/api/allOrders")
    assert reply == {"cancel_all_orders_response": {
        "timestamp": reply["cancel_all_orders_response"]["timestamp"], "reason": "success",
        "results": [{"client_order_id": "q1", "order_state": "pending_cancel"}], "user_tag": "",
    }}  # fmt: skip
    deleted = [b for k, b in messages(listener, start) if k == "order_deleted"]
    assert [(b["market_id"], b["order_id"]) for b in deleted] == [("none", added["order_id"])]
    assert rest(sim, "GET", "/v1/api/openOrders")["query_open_orders_response"]["open_orders"] == []


async def test_ws_cancel_all_by_symbol_or_entity_names_both() -> None:
    # integration/ws/cancel-all-orders.test.ts: filtered by either, the reply has both
    sim = quiet_sim()
    client = login(sim)
    send(sim, client, "new_bulk_order", user_tag="b", orders=[
        ts_order("c1", price="1000"), ts_order("c2", price="2000"),
        ts_order("c3", "PTF-USD", quantity="1000", price="0.01"),
    ])  # fmt: skip
    frames = send(sim, client, "cancel_all_orders", tradeable_entity_id="4", user_tag="x")
    kind, reply = frames[0]
    assert kind == "cancel_all_orders"
    assert {k: v for k, v in reply.items() if not k.endswith("timestamp")} == {
        "user_tag": "x", "symbol": "BTC-USD", "tradeable_entity_id": "4", "reason": "success",
        "results": [{"client_order_id": "c1", "order_state": "pending_cancel"},
                    {"client_order_id": "c2", "order_state": "pending_cancel"}],
    }  # fmt: skip
    assert [(k, b["client_order_id"], b["reason"]) for k, b in frames[1:]] == [
        ("cancel_order", "c1", "user_cancelled"),
        ("cancel_order", "c2", "user_cancelled"),
    ]


async def test_positions_by_the_ts_request_name_with_deliverable_ids() -> None:
    # integration/ws/positions.test.ts and rest/positions.test.ts: `{"positions": {user_tag}}`,
    # a perpetual is "perpetual_future", its deliverable_id is deliverableInfo's
    sim = quiet_sim()
    client = login(sim)
    send(sim, client, "new_order", market_id="0", side="sell", quantity="0.1", type="MARKET",
         time_in_force="IOC", client_order_id="p1", symbol="BTC-USD-PERPETUAL", user_tag="t")  # fmt: skip
    ((kind, body),) = send(sim, client, "positions", user_tag="pos")
    assert (kind, body["user_tag"]) == ("positions_response", "pos")
    (row,) = [p for p in body["positions"] if p["symbol"] == "BTC-USD-PERPETUAL"]
    deliverables = rest(sim, "GET", "/v1/api/deliverableInfo")
    assert not errors(deliverables, "http-rest-interface/deliverables-response.json")
    ids = {
        d["symbol"]: d["deliverable_id"]
        for d in deliverables["deliverables_response"]["deliverables"]
    }
    assert set(row) == {"symbol", "deliverable_id", "product_type", "timestamp", "margin_value",
                        "side", "size", "mark_price", "average_entry_price", "upnl"}  # fmt: skip
    assert (row["deliverable_id"], row["product_type"]) == (
        ids["BTC-USD-PERPETUAL"],
        "perpetual_future",
    )
    assert (row["side"], row["size"]) == ("sell", "0.1")
    (rest_row,) = [p for p in rest(sim, "GET", "/v1/api/positions")["positions_response"]["positions"]
                   if p["symbol"] == "BTC-USD-PERPETUAL"]  # fmt: skip
    assert rest_row["deliverable_id"] == ids["BTC-USD-PERPETUAL"]


async def test_balances_rows_carry_deliverable_ids_and_rest_returns_the_rows_bare() -> None:
    # integration/rest/balance.test.ts (`balance_response` is the list; USD is deliverable "2")
    # and integration/ws/balances.test.ts (a row per asset of the account)
    sim = quiet_sim()
    sim.accounts.open(sim.owner, {"USD": D(5), "USD-REFERENCE": D(0)})
    client = login(sim)
    ((kind, body),) = send(sim, client, "balances", user_tag="bal")
    assert kind == "balances_response"
    assert body["user_tag"] == "bal"
    assert {b["symbol"] for b in body["balances"]} == {"BTC", "PTF", "AVAX", "USD", "USD-REFERENCE"}
    rows = rest(sim, "GET", "/v1/api/balances")["balance_response"]
    (usd,) = [r for r in rows if r["symbol"] == "USD"]
    assert usd == {"deliverable_id": "2", "symbol": "USD", "cash_balance": "5.0",
                   "available_balance": "5.0", "reserved_balance": "0.0",
                   "withdrawable_balance": "5.0", "timestamp": usd["timestamp"]}  # fmt: skip
    assert len({r["deliverable_id"] for r in rows}) == len(rows)


async def test_rest_refresh_interest_by_order_id_or_client_order_id() -> None:
    # integration/rest/refresh-rfq-interest.test.ts: the id not given comes back as ""
    sim = quiet_sim()
    client = login(sim)
    ((_, accepted),) = send(sim, client, "new_order", **ts_rfq("f1", "BTC-USD", "1"), user_tag="t")
    rfq = sim.rfq(accepted["order_id"])
    assert rfq is not None and rfq.side is Side.BUY
    by_id = rest(sim, "POST", "/v1/api/refreshInterest", order_id=accepted["order_id"])
    by_coid = rest(sim, "POST", "/v1/api/refreshInterest", client_order_id="f1")
    for reply, oid, coid in ((by_id, accepted["order_id"], ""), (by_coid, "", "f1")):
        assert not errors(reply, "http-rest-interface/orders/refresh-interest-response.json")
        body = reply["refresh_response"]
        assert body == {"order_id": oid, "client_order_id": coid, "timestamp": body["timestamp"],
                        "reason": "success"}  # fmt: skip


OPTIONS = {
    f"BTC-20991231-{30000 + 1000 * i}C": _market(str(2000 + i), "BTC", "1000", ("option",))
    for i in range(11)
}
OPT = sorted(OPTIONS, key=lambda s: int(OPTIONS[s].entity_id))


def option_sim(**options: Any) -> PowerTradeSimulator:
    return PowerTradeSimulator.build(3, markets={**MARKETS, **OPTIONS}, **options)


def multi_leg(coid: str, legs: list[dict[str, str]], **over: str) -> dict[str, Any]:
    """A multi-leg order as `getOrderRequest` builds it: legs `{ratio, sym}` (its `tid` is
    undefined when the test names symbols, so JSON drops it), no symbol."""
    body: dict[str, Any] = ts_order(coid, **over)
    del body["symbol"]
    return {**body, "legs": legs}


async def test_multi_leg_order_enters_a_composite_without_an_order_id_on_the_ws() -> None:
    # integration/ws/place-multi-leg-order.test.ts "Multi Leg Option order by symbols": the
    # TS result has no orderId, so the WS order_accepted carries no order_id by default
    sim = option_sim()
    client = login(sim)
    legs = [
        {"ratio": "1", "sym": OPT[0]},
        {"ratio": "-1", "sym": OPT[1]},
        {"ratio": "-1", "sym": OPT[2]},
    ]
    ((kind, accepted),) = send(sim, client, "new_order", **multi_leg("ml1", legs), user_tag="t")
    assert kind == "order_accepted" and "order_id" not in accepted
    composite = f"{OPT[0]}@1/{OPT[1]}@-1/{OPT[2]}@-1"
    assert (accepted["symbol"], accepted["tradeable_entity_id"]) == (
        composite,
        "2000@1/2001@-1/2002@-1",
    )
    assert accepted["legs"] == [
        {"tradeable_entity_id": "2000", "symbol": OPT[0], "ratio": "1"},
        {"tradeable_entity_id": "2001", "symbol": OPT[1], "ratio": "-1"},
        {"tradeable_entity_id": "2002", "symbol": OPT[2], "ratio": "-1"},
    ]
    (row,) = rest(sim, "GET", "/v1/api/openOrders")["query_open_orders_response"]["open_orders"]
    assert (row["symbol"], row["legs"], row["order_id"] != "") == (
        composite,
        accepted["legs"],
        True,
    )
    ((_, catalogue),) = send(sim, client, "entities_and_rules_request", user_tag="e")
    assert composite not in {s["symbol"] for s in catalogue["symbols"]}
    # the option: order_accepted names the order_id (as the REST reply always does)
    sim = option_sim(multi_leg_order_id=True)
    client = login(sim)
    ((_, accepted),) = send(sim, client, "new_order", **multi_leg("ml2", legs), user_tag="t")
    assert accepted["order_id"].isdigit()


async def test_multi_leg_rfq_by_entity_ids_goes_to_the_rfq_book_as_the_composite() -> None:
    # integration/ws/place-multi-leg-order.test.ts "Multi Leg RFQ order by te ids"; [DOC]
    # composite ids "117@1/336@-1" on RFQ book messages
    sim = option_sim()
    listener = login(sim)
    send(sim, listener, "register_for_rfqs", user_tag="r")
    client = login(sim)
    legs = [
        {"ratio": "1", "tid": "2003"},
        {"ratio": "-10", "tid": "2005"},
        {"ratio": "4", "tid": "2007"},
    ]
    order = multi_leg("mr1", legs, market_id="none", quantity="10")
    del order["price"]
    ((kind, _),) = send(sim, client, "new_order", **order, user_tag="t")
    assert kind == "order_accepted"
    (added,) = [b for k, b in messages(listener) if k == "order_added"]
    assert added["tradeable_entity_id"] == "2003@1/2005@-10/2007@4"
    assert added["symbol"] == f"{OPT[3]}@1/{OPT[5]}@-10/{OPT[7]}@4"


async def test_invalid_legs_are_a_business_reject() -> None:
    # integration/ws/place-multi-leg-order.test.ts "fails if te ids are not ordered" and
    # "fails if more than 10 legs": order_rejected, reason invalid_legs
    sim = option_sim()
    client = login(sim)
    unordered = [{"ratio": "1", "sym": OPT[1]}, {"ratio": "-1", "sym": OPT[0]}]
    eleven = [{"ratio": "1", "sym": s} for s in OPT]
    for coid, legs in (("bad1", unordered), ("bad2", eleven)):
        ((kind, body),) = send(sim, client, "new_order", **multi_leg(coid, legs), user_tag="t")
        assert (kind, body["client_order_id"], body["reason"]) == (
            "order_rejected",
            coid,
            "invalid_legs",
        )
