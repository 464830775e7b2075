"""The Open Trade simulator on its own: HTTP login and JWT, the WS protocol, the venue's rules.

A raw client (httpx, trio-websocket) against a served simulator, no adapter involved.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from functools import partial
from typing import Any, cast

import httpx
import jwt
import orjson
import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from framework.events import Side
from framework.sim.server import HttpRequest
from framework.transport.wire import loads_decimal
from framework.venues.opentrade.sim import (
    MAX_LOGIN_SESSIONS,
    OpenTradeSimulator,
    WsSession,
    num,
)
from tests.helpers import HANG_GUARD_S

D = Decimal
SYM = "BTC/USD"


@asynccontextmanager
async def served(**kw: Any) -> AsyncIterator[OpenTradeSimulator]:
    sim = OpenTradeSimulator.build(3, **kw)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(sim.run, port=0, market_rate_hz=None))
        with trio.fail_after(HANG_GUARD_S):
            yield sim
        nursery.cancel_scope.cancel()


async def token_for(sim: OpenTradeSimulator) -> str:
    async with httpx.AsyncClient(base_url=sim.http_url) as http:
        login = await http.post(
            "/auth/login", data={"username": "sim-user", "password": "sim-password"}
        )
        cookie = f"JSESSIONID={login.cookies['JSESSIONID']}"
        http.cookies.clear()
        resp = await http.post(
            "/auth/auth/jwt/clients/sim-api/token",
            headers={"Cookie": cookie, "clientSecret": "sim-secret"},
            content=b"",
        )
        assert resp.status_code == 200
        return resp.text


class Client:
    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def send(self, msg: dict) -> None:
        await self.ws.send_message(json.dumps(msg))

    async def recv(self) -> dict:
        return loads_decimal(await self.ws.get_message())

    async def until(self, pred) -> dict:
        while True:
            msg = await self.recv()
            if pred(msg):
                return msg


@asynccontextmanager
async def ws(sim: OpenTradeSimulator, token: str | None = None) -> AsyncIterator[Client]:
    headers = [(b"Authorization", token.encode())] if token else []
    async with open_websocket_url(sim.ws_url + "/exchange/ws", extra_headers=headers) as conn:
        client = Client(conn)
        if sim.connect_confirmation:
            # [DOC] "upon connection, you'll receive a confirmation message" (the default)
            assert await client.recv() == {"event": "CONNECTED"}
        yield client


def sub(channel: str, name: str, value: str, token: str | None = None, rid: str = "1") -> dict:
    msg: dict = {
        "requestId": rid,
        "command": "SUBSCRIBE",
        "channel": channel,
        "channelArgs": [{"name": name, "value": value}],
    }
    if token:
        msg["signature"] = token
    return msg


def order_cmd(command: str, token: str, rid: str = "9", **item: Any) -> dict:
    return {
        "requestId": rid,
        "command": command,
        "signature": token,
        "channel": "TRADE_PRIVATE",
        "data": [{"class": "Order", "globalInstrumentCd": SYM, **item}],
    }


def test_numbers_are_written_like_the_venue_doubles() -> None:
    values = ("100", "0", "0.00100", "2.7886285699999998")
    text = orjson.dumps([num(D(v)) for v in values]).decode()
    assert text == "[100.0,0.0,0.001,2.7886285699999998]"


async def test_login_and_token_flow_and_refusals() -> None:
    async with served(token_ttl_s=600) as sim:
        token = await token_for(sim)
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["sub"] == "sim-api" and claims["exp"] > claims["iat"]
        assert sim.token_error(token) is None
        async with httpx.AsyncClient(base_url=sim.http_url) as http:
            bad = await http.post("/auth/login", data={"username": "sim-user", "password": "x"})
            assert bad.status_code == 401 and "JSESSIONID" not in bad.cookies
            no_session = await http.post(
                "/auth/auth/jwt/clients/sim-api/token", headers={"clientSecret": "sim-secret"}
            )
            assert no_session.status_code == 401
            login = await http.post(
                "/auth/login", data={"username": "sim-user", "password": "sim-password"}
            )
            cookie = f"JSESSIONID={login.cookies['JSESSIONID']}"
            http.cookies.clear()
            wrong = await http.post(
                "/auth/auth/jwt/clients/sim-api/token",
                headers={"Cookie": cookie, "clientSecret": "nope"},
            )
            assert wrong.status_code == 403
        sim.expire_tokens()
        assert "expired" in (sim.token_error(token) or "")
        assert "signature" in (sim.token_error("not.a.jwt") or "")


async def test_handshake_with_a_bad_token_is_refused() -> None:
    async with served() as sim:
        with pytest.raises(ConnectionRejected) as info:
            async with ws(sim, "garbage"):
                pass
        assert info.value.status_code == 401


async def test_ping_pong_and_the_two_minute_rule() -> None:
    async with served(ping_timeout_s=0.3) as sim, ws(sim) as client:
        await client.send({"command": "PING", "channel": "PING"})
        assert await client.recv() == {"event": "PONG", "channel": "PING"}
        # no further PING: the venue drops the connection
        with pytest.raises(ConnectionClosed) as info:
            await client.recv()
        assert info.value.reason.code == 1008


async def test_books_every_interval_full_and_sorted_with_levels() -> None:
    async with served() as sim, ws(sim) as client:
        await client.send(
            {
                "command": "SUBSCRIBE",
                "channel": "ORDER_BOOK_PUBLIC",
                "channelArgs": [
                    {"name": "instrument", "value": "[BTC/USD]"},
                    {"name": "levels", "value": "5"},
                ],
            }
        )
        ack = await client.recv()
        assert ack["event"] == "ACK" and ack["channel"] == "ORDER_BOOK_PUBLIC"
        first = await client.recv()
        again = await client.recv()  # unchanged, sent anyway
        book = first["data"][0]
        assert (
            first["event"] == "UPDATE" and book["class"] == "OrderBook" and len(book["bids"]) == 5
        )
        assert again["data"][0]["bids"] == book["bids"]
        bids, asks = sim.engine.book(SYM, 5)
        assert [tuple(level) for level in book["bids"]] == bids
        assert [tuple(level) for level in book["asks"]] == asks
        assert all(isinstance(p, Decimal) for p, _ in book["bids"])  # JSON numbers, not strings
        await client.send(
            sub("ORDER_BOOK_PUBLIC", "levels", "21")
            | {
                "channelArgs": [
                    {"name": "instrument", "value": "[BTC/USD]"},
                    {"name": "levels", "value": "21"},
                ]
            }
        )
        error = await client.until(lambda m: m.get("event") == "ERROR")
        # [DOC] no published reply carries the requestId
        assert "levels" in error["message"] and "requestId" not in error


async def test_private_channels_need_a_signature_and_orders_a_subscription() -> None:
    async with served() as sim:
        token = await token_for(sim)
        async with ws(sim, token) as client:
            await client.send(sub("BALANCE", "currency", "[BTC, USD]"))
            error = await client.recv()
            assert error["event"] == "ERROR" and "signature" in error["message"]
            # an order for an instrument not subscribed on TRADE_PRIVATE is rejected
            await client.send(
                order_cmd(
                    "CREATE",
                    token,
                    clientOrderId="c1",
                    direction="BUY",
                    orderType="LIMIT",
                    price="100",
                    amount="0.01",
                )
            )
            error = await client.recv()
            assert error["event"] == "ERROR" and "not subscribed" in error["message"]
            assert sim.order("c1") is None
            await client.send(sub("BALANCE", "currency", "[BTC, USD]", token, rid="b"))
            assert (await client.recv())["event"] == "ACK"
            snapshot = await client.recv()
            assert snapshot["event"] == "SNAPSHOT"
            assert {b["currencyCode"]: b["balance"] for b in snapshot["data"]} == {
                "BTC": D("100.0"),
                "USD": D("1000000.0"),
            }


async def test_order_flow_cancel_without_id_and_token_expiry() -> None:
    async with served() as sim:
        token = await token_for(sim)
        async with ws(sim, token) as client:
            await client.send(sub("TRADE_PRIVATE", "instrument", "[BTC/USD]", token))
            assert (await client.recv())["event"] == "ACK"
            assert (await client.recv())["data"] == []  # no active orders yet
            bid = sim.engine.best_bid(SYM)
            for n, coid in enumerate(("a", "b")):
                await client.send(
                    order_cmd(
                        "CREATE",
                        token,
                        rid=coid,
                        clientOrderId=coid,
                        direction="BUY",
                        orderType="LIMIT",
                        price=str(bid - n - 1),
                        amount="0.01",
                    )
                )
                assert (await client.recv()) == {
                    "command": "CREATE",
                    "event": "ACK",
                    "channel": "TRADE_PRIVATE",
                }
                # the published answer: the order in the GET form, without an event
                answer = await client.recv()
                assert answer["command"] == "GET" and "event" not in answer
                assert answer["data"][0]["orderId"] == coid
                assert "filledAmount" not in answer["data"][0]  # none published
                new = await client.recv()
                assert new["data"][0]["orderStatus"] == "NEW"
                assert isinstance(new["data"][0]["price"], str)  # as in the documented UPDATE
                active = await client.recv()
                assert active["data"][0]["orderStatus"] == "ACTIVE"
            await client.send(
                order_cmd("MODIFY", token, orderId="a", price=str(bid - 2), amount="0.02")
            )
            assert (await client.recv())["event"] == "ACK"
            # the published MODIFY answer: a GET frame with the order (history naming)
            answer = await client.until(lambda m: m.get("event") == "GET")
            modified = answer["data"][0]
            assert modified["clientOrderId"] == "a"
            assert modified["price"] == bid - 2 and modified["amount"] == D("0.02")
            # a CANCEL without any id cancels every order of the pair
            await client.send(order_cmd("CANCEL", token))
            assert (await client.recv())["event"] == "ACK"
            statuses = []
            while len(statuses) < 3:
                item = (await client.recv())["data"][0]
                statuses.append(item.get("orderStatus") or item["orderRequestStatus"])
            assert statuses == ["CANCELLED", "CANCELLED", "CANCELLED"]
            assert not any(o.is_open for o in (sim.order("a"), sim.order("b")))
            # GET history
            await client.send(
                {
                    "requestId": "g",
                    "command": "GET",
                    "channel": "TRADE_PRIVATE",
                    "signature": token,
                    "channelArgs": [
                        {"name": "category", "value": "ORDERS_HISTORY"},
                        {"name": "instrument", "value": "[BTC/USD]"},
                    ],
                }
            )
            history = await client.recv()
            assert history["event"] == "GET" and [o["clientOrderId"] for o in history["data"]] == [
                "a",
                "b",
            ]
            # the token expires: the next private update becomes one ERROR, then silence
            await client.send(
                order_cmd(
                    "CREATE",
                    token,
                    rid="c",
                    clientOrderId="c",
                    direction="BUY",
                    orderType="LIMIT",
                    price=str(bid - 5),
                    amount="0.01",
                )
            )
            await client.until(
                lambda m: m.get("data") and m["data"][0].get("orderStatus") == "ACTIVE"
            )
            sim.expire_tokens()
            sim.engine.submit("other", SYM, Side.SELL, "LIMIT", D("1"), price=bid - 5, tif="IOC")
            error = await client.recv()
            assert error["event"] == "ERROR" and "expired" in error["message"]
            await client.send(order_cmd("CANCEL", token, clientOrderId="c"))
            refused = await client.recv()
            assert refused["event"] == "ERROR" and "expired" in refused["message"]


# --- bounded memory: driven directly, no server -------------------------------------------------


class _Sink:
    """Stands in for a connection: keeps what the venue answers."""

    def __init__(self) -> None:
        self.frames: list[str] = []

    def enqueue(self, frame: str) -> None:
        self.frames.append(frame)


def _private_session() -> WsSession:
    """A WS session subscribed on TRADE_PRIVATE for SYM (never registered: no updates reach
    it, only the answers to its own commands)."""
    return WsSession(conn=cast(Any, _Sink()), orders={SYM})


def _create(sim: OpenTradeSimulator, session: WsSession, coid: str, price: Decimal) -> None:
    item = {
        "clientOrderId": coid,
        "direction": "BUY",
        "orderType": "LIMIT",
        "price": str(price),
        "amount": "0.01",
    }
    sim.create_order(session, item, SYM, lambda: None)


def test_order_history_is_bounded_like_the_engines() -> None:
    sim = OpenTradeSimulator.build(3)
    sim.engine.limit_history(5, sim.engine.fill_history_limit)
    session = _private_session()
    bid = sim.engine.best_bid(SYM)
    assert bid is not None

    def create_and_cancel(coid: str, n: int) -> None:
        _create(sim, session, coid, bid - 100 - n)
        order = sim.order(coid)
        assert order is not None and order.is_open and order.engine_id is not None
        sim.engine.cancel(order.engine_id)

    for i in range(12):
        create_and_cancel(f"c{i}", i)
    assert list(sim.orders) == [f"c{i}" for i in range(7, 12)]
    # a forgotten id is accepted again (the venue's memory is bounded too)
    create_and_cancel("c0", 0)
    assert list(sim.orders) == [*(f"c{i}" for i in range(8, 12)), "c0"]
    # a still-working old order is kept, and holds back the trim of what follows it
    _create(sim, session, "working", bid - 200)
    for i in range(12, 20):
        create_and_cancel(f"c{i}", i)
    working = sim.order("working")
    assert working is not None and working.is_open
    assert next(iter(sim.orders)) == "working" and len(sim.orders) == 9
    # once it is done, the next order trims back to the limit
    assert working.engine_id is not None
    sim.engine.cancel(working.engine_id)
    create_and_cancel("c20", 20)
    assert list(sim.orders) == [f"c{i}" for i in range(16, 21)]
    # and so are the engine order ids that find an order (21 orders were indexed)
    assert len(sim.orders.engine_ids()) <= 2 * len(sim.orders)


def test_modified_orders_forget_their_replaced_engine_ids() -> None:
    sim = OpenTradeSimulator.build(3)
    session = _private_session()
    bid = sim.engine.best_bid(SYM)
    assert bid is not None
    _create(sim, session, "m", bid - 100)
    for n in range(5):
        sim.modify_order({"clientOrderId": "m", "price": str(bid - 101 - n)}, SYM, lambda: None)
    order = sim.order("m")
    assert order is not None and order.is_open and order.price == bid - 105
    assert order.retired == set()  # each replaced engine order's cancel was its last event


def test_issuing_a_token_forgets_the_expired_ones() -> None:
    sim = OpenTradeSimulator.build(3)
    login = sim.login(
        HttpRequest("POST", "/auth/login", {}, {}, b"username=sim-user&password=sim-password")
    )
    cookie = login.headers["set-cookie"].split(";")[0]
    token_request = HttpRequest(
        "POST", "/", {}, {"cookie": cookie, "clientsecret": "sim-secret"}, b""
    )
    old = [sim.issue_token(token_request, "sim-api").body.decode() for _ in range(3)]
    assert sim.token_count() == 3
    sim.expire_tokens()
    new = sim.issue_token(token_request, "sim-api").body.decode()
    assert sim.token_count() == 1 and sim.token_error(new) is None
    # a forgotten token still reads as expired, as it did while remembered
    assert all("expired" in (sim.token_error(t) or "") for t in old)


def test_login_sessions_are_bounded() -> None:
    sim = OpenTradeSimulator.build(3)
    form = b"username=sim-user&password=sim-password"
    cookies = [
        sim.login(HttpRequest("POST", "/auth/login", {}, {}, form)).headers["set-cookie"]
        for _ in range(MAX_LOGIN_SESSIONS + 3)
    ]
    assert sim.login_session_count() == MAX_LOGIN_SESSIONS

    def token_status(set_cookie: str) -> int:
        headers = {"cookie": set_cookie.split(";")[0], "clientsecret": "sim-secret"}
        return sim.issue_token(HttpRequest("POST", "/", {}, headers, b""), "sim-api").status

    assert token_status(cookies[0]) == 401  # the oldest login is forgotten: log in again
    assert token_status(cookies[-1]) == 200


# --- precision, the published answer forms, the GET token endpoint (issue #13) --------------


@pytest.mark.parametrize(
    ("sent", "worked"),
    [
        # [DOC] "prices submitted with a precision larger than 7 will be cut by the API"
        ("123456.78", "123456.7"),
        ("60123.456", "60123.45"),
        # the document's own valid examples pass unchanged
        ("1234.567", "1234.567"),
        ("123.4567", "123.4567"),
        ("0.0001234567", "0.0001234567"),
    ],
)
def test_prices_are_cut_to_seven_significant_digits(sent: str, worked: str) -> None:
    sim = OpenTradeSimulator.build(3)
    session = _private_session()
    item = {"clientOrderId": "p", "direction": "SELL", "orderType": "LIMIT", "price": sent,
            "amount": "0.001"}  # fmt: skip
    sim.create_order(session, item, SYM, lambda: None)
    order = sim.order("p")
    assert order is not None and order.price == D(worked)
    answer = orjson.loads(session.conn.frames[0])
    assert answer["data"][0]["price"] == float(worked)  # reported at the price it works


def test_amounts_are_rounded_to_eight_decimals() -> None:
    sim = OpenTradeSimulator.build(3)
    session = _private_session()
    bid = sim.engine.best_bid(SYM)
    item = {"clientOrderId": "a", "direction": "BUY", "orderType": "LIMIT",
            "price": str(bid - 100), "amount": "0.123456789"}  # fmt: skip
    sim.create_order(session, item, SYM, lambda: None)
    order = sim.order("a")
    assert order is not None and order.amount == D("0.12345679")  # [DOC] rounded, half-up [INF]


async def test_the_documented_get_token_endpoint_serves_a_jwt_too() -> None:
    async with served() as sim, httpx.AsyncClient(base_url=sim.http_url) as http:
        login = await http.post(
            "/auth/login", data={"username": "sim-user", "password": "sim-password"}
        )
        cookie = f"JSESSIONID={login.cookies['JSESSIONID']}"
        http.cookies.clear()
        path = "/auth/auth/jwt/client/sim-api/token"
        resp = await http.get(
            path, params={"clientSecret": "sim-secret"}, headers={"Cookie": cookie}
        )
        assert resp.status_code == 200 and sim.token_error(resp.text) is None
        wrong = await http.get(path, params={"clientSecret": "no"}, headers={"Cookie": cookie})
        assert wrong.status_code == 403


async def test_trade_history_lists_each_fill_and_positions_answer_a_get() -> None:
    async with served() as sim:
        token = await token_for(sim)
        async with ws(sim, token) as client:
            await client.send(sub("TRADE_PRIVATE", "instrument", "[BTC/USD]", token))
            await client.until(lambda m: m.get("event") == "SNAPSHOT")
            bid = sim.engine.best_bid(SYM)
            price = bid - 3
            await client.send(
                order_cmd("CREATE", token, clientOrderId="f", direction="BUY",
                          orderType="LIMIT", price=str(price), amount="0.01")
            )  # fmt: skip
            await client.until(
                lambda m: m.get("data") and m["data"][0].get("orderStatus") == "ACTIVE"
            )
            for order in sim.engine.orders(owner="crowd", symbol=SYM, open_only=True):
                if order.side is Side.BUY and order.price >= price:
                    sim.engine.cancel(order.order_id)
            for size in ("0.003", "0.002"):
                sim.engine.submit("other", SYM, Side.SELL, "LIMIT", D(size), price=price, tif="IOC")
            update = await client.until(
                lambda m: m.get("data") and m["data"][0].get("orderStatus") == "PARTIALLY_FILLED"
            )
            assert "filledAmount" not in update["data"][0]  # [DOC] none published
            get = {"command": "GET", "channel": "TRADE_PRIVATE", "signature": token,
                   "channelArgs": [{"name": "category", "value": "TRADES_HISTORY"},
                                   {"name": "instrument", "value": "[BTC/USD]"}]}  # fmt: skip
            await client.send(get)
            history = await client.until(lambda m: m.get("event") == "GET")
            assert [(i["clientOrderId"], i["amount"]) for i in history["data"]] == [
                ("f", D("0.003")),
                ("f", D("0.002")),
            ]
            # [CODE] the SDK asks for positions with no signature (its handshake carried one)
            await client.send({"command": "GET", "channel": "TRADE_POSITIONS"})
            positions = await client.until(lambda m: m.get("channel") == "TRADE_POSITIONS")
            (position,) = positions["data"]
            assert position["class"] == "TradePosition" and position["direction"] == "BUY"
            assert position["posVolume"] == D("0.005")


async def test_the_cancel_answer_is_the_published_order_update_then_the_order() -> None:
    async with served() as sim:
        token = await token_for(sim)
        async with ws(sim, token) as client:
            await client.send(sub("TRADE_PRIVATE", "instrument", "[BTC/USD]", token))
            await client.until(lambda m: m.get("event") == "SNAPSHOT")
            await client.send(
                order_cmd("CREATE", token, clientOrderId="x", direction="BUY", orderType="LIMIT",
                          price=str(sim.engine.best_bid(SYM) - 3), amount="0.01")
            )  # fmt: skip
            await client.until(
                lambda m: m.get("data") and m["data"][0].get("orderStatus") == "ACTIVE"
            )
            await client.send(order_cmd("CANCEL", token, clientOrderId="x"))
            assert (await client.recv())["event"] == "ACK"
            update = await client.recv()
            assert update["event"] == "UPDATE" and update["data"][0]["class"] == "OrderUpdate"
            ack = update["data"][0]
            assert ack["orderRequestStatus"] == "CANCELLED" and ack["clientOrderId"] is None
            answer = await client.recv()  # [INF] what the SDK waits for: no event
            assert "event" not in answer and answer["data"][0]["orderStatus"] == "CANCELLED"
            assert not sim.order("x").is_open


def test_trade_history_lists_the_fills_of_orders_that_take_liquidity_at_once() -> None:
    # the engine reports a submit's matches before it returns the order's id: a CREATE, or a
    # MODIFY, that crosses at once must still list those fills (the adapter sizes from them)
    sim = OpenTradeSimulator.build(3)
    session = _private_session()
    for order in sim.engine.orders(owner="crowd", symbol=SYM, open_only=True):
        sim.engine.cancel(order.order_id)
    sim.engine.submit("other", SYM, Side.SELL, "LIMIT", D("0.004"), price=D(60000))
    _create(sim, session, "taker", D(60000))  # buys 0.004 of its 0.01 at once, rests the rest
    sim.engine.submit("other", SYM, Side.SELL, "LIMIT", D("0.003"), price=D(60010))
    sim.modify_order({"clientOrderId": "taker", "price": "60010"}, SYM, lambda: None)
    order = sim.order("taker")
    assert order is not None and order.filled == D("0.007")
    history = loads_decimal(orjson.dumps(sim._private_get({"category": "TRADES_HISTORY"})))
    assert [(i["clientOrderId"], i["amount"]) for i in history] == [
        ("taker", D("0.004")),
        ("taker", D("0.003")),
    ]
