"""Framing and pre-send validation of Power.Trade requests (no socket)."""

from __future__ import annotations

import time
from decimal import Decimal

import jwt
import orjson
import pytest
import trio
import trio.testing

from framework.errors import AuthError, OrderRefused, RequestTimeout
from framework.events import OrderStatus, OrderType, Side, TimeInForce
from framework.model import Order
from framework.venues.powertrade.auth import make_token, new_key_pair
from framework.venues.powertrade.client import PowerTradeStream, frame
from framework.venues.powertrade.entities import EntityRules
from framework.venues.powertrade.execution import PowerTradeExecution, order_body, pt_num

D = Decimal
RULES = EntityRules("BTC-USD", "4", "active", "BTC", "USD", D("0.0001"), D(100), D("0.00001"),
                    D(100_000_000), D("0.0001"), D("0.1"), ("spot",))  # fmt: skip


def order(**kw: object) -> Order:
    base = {"client_order_id": "c1", "venue": "powertrade", "symbol": "BTC-USD", "side": Side.BUY,
            "type": OrderType.LIMIT, "quantity": D("0.0100"), "price": D("1E+4")}  # fmt: skip
    return Order(**{**base, **kw})  # type: ignore[arg-type]


def test_new_order_body_is_all_strings_in_plain_decimal_notation() -> None:
    body = order_body(order(), RULES, now_us_=1670249000000001)
    # [CODE] whole numbers carry a decimal point ("825" fails, "825.0" succeeds); recv_window
    # "144" as every official client sends it
    assert body == {"market_id": "0", "side": "buy", "type": "LIMIT", "time_in_force": "GTC",
                    "quantity": "0.01", "price": "10000.0", "client_order_id": "c1",
                    "timestamp": "1670249000000001", "symbol": "BTC-USD",
                    "recv_window": "144"}  # fmt: skip
    assert order_body(order(), RULES, recv_window="4")["recv_window"] == "4"
    text = frame("new_order", {**body, "user_tag": "req-42"})
    assert list(orjson.loads(text)) == ["new_order"] and "E+" not in text
    with pytest.raises(TypeError, match="strings only"):
        frame("new_order", {"price": D(1)})


@pytest.mark.parametrize(
    "kw, reason",
    [
        ({"quantity": D("0.00015")}, "not a multiple"),
        ({"quantity": D(101)}, "above maximum 100"),
        ({"price": D("10000.05")}, "multiple of 0.1"),
        ({"quantity": D(99), "price": D(2_000_000)}, "order value"),
        ({"type": OrderType.MARKET, "price": None, "tif": TimeInForce.GTC}, "must be IOC"),
        ({"tif": TimeInForce.FOK}, "no FOK"),
        ({"post_only": True}, "post-only"),
        ({"tif": TimeInForce.GTD, "expire_at_ns": 1}, "expire time"),
        ({"symbol": "DOGE-USD"}, "unknown symbol"),
    ],
)
def test_bad_orders_are_refused_before_they_leave(kw: dict, reason: str) -> None:
    rules = None if kw.get("symbol") == "DOGE-USD" else RULES
    with pytest.raises(OrderRefused, match=reason):
        order_body(order(**kw), rules)


def test_market_ioc_and_gtd_bodies() -> None:
    body = order_body(order(type=OrderType.MARKET, price=None, tif=TimeInForce.IOC), RULES)
    assert "price" not in body and body["time_in_force"] == "IOC"
    expire = time.time_ns() + 3_600_000_000_000
    body = order_body(order(tif=TimeInForce.GTD, expire_at_ns=expire), RULES)
    assert body["expire_timestamp"] == str(expire // 1000)


def test_login_token_is_es256_with_the_documented_claims() -> None:
    private, public = new_key_pair()
    token = make_token("key-1", private, now_s=1_700_000_000)
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    claims = jwt.decode(token, public, algorithms=["ES256"], options={"verify_exp": False})
    assert claims == {"sub": "key-1", "iat": 1_700_000_000, "exp": 1_700_000_030, "client": "api"}
    with pytest.raises(AuthError, match="cannot sign"):
        make_token("key-1", "not a pem")


# --- replies: by user_tag, or by the order's own lifecycle message (no socket) ------------------


class _Conn:
    def __init__(self) -> None:
        self.sent: list[dict] = []

    async def send(self, message: str) -> None:
        self.sent.append(orjson.loads(message))


def _logged_in() -> tuple[PowerTradeStream, PowerTradeExecution, _Conn, list]:
    stream = PowerTradeStream("wss://proxy.invalid", ["BTC-USD"], login=None, rfqs=False)
    events: list = []
    stream.emit = events.append
    conn = _Conn()
    stream.requests.connected(conn)
    stream.conn = conn  # type: ignore[assignment]
    stream.authenticated = True
    return stream, PowerTradeExecution(stream, {"BTC-USD": RULES}), conn, events


async def _answer_when_sent(stream: PowerTradeStream, conn: _Conn, message: dict) -> None:
    await trio.testing.wait_all_tasks_blocked()
    assert conn.sent, "the request was not sent"
    stream.decode(orjson.dumps(message), 1)


async def test_order_accepted_without_user_tag_answers_the_new_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """[DOC] `order_accepted` carries no `user_tag`: the order's own message is the reply."""
    stream, client, conn, events = _logged_in()
    accepted = {"order_accepted": {"client_order_id": "c1", "order_id": "9", "symbol": "BTC-USD"}}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_answer_when_sent, stream, conn, accepted)
        assert await client.submit(order()) is None
    assert conn.sent[0]["new_order"]["client_order_id"] == "c1"
    assert [(e.client_order_id, e.status) for e in events] == [("c1", OrderStatus.ACCEPTED)]
    assert stream.correlator.in_flight() == 0


async def test_order_rejected_answers_the_new_order_and_is_reported_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stream, client, conn, events = _logged_in()
    rejected = {"order_rejected": {"client_order_id": "c1", "reason": "quantity_too_big"}}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_answer_when_sent, stream, conn, rejected)
        # the decoder reports the rejection; the submit adds no second one
        assert await client.submit(order()) is None
    assert [(e.status, e.reason) for e in events] == [(OrderStatus.REJECTED, "quantity_too_big")]


async def test_a_command_response_by_user_tag_still_refuses(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stream, client, conn, _ = _logged_in()

    async def refuse() -> None:
        await trio.testing.wait_all_tasks_blocked()
        tag = conn.sent[0]["new_order"]["user_tag"]
        body = {"error_code": "12", "error_text": "error parsing", "user_tag": tag}
        stream.decode(orjson.dumps({"command_response": body}), 1)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(refuse)
        with pytest.raises(OrderRefused, match="error 12"):
            await client.submit(order())


async def test_cancel_order_naming_the_order_answers_its_cancel(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stream, client, conn, events = _logged_in()
    ended = {"cancel_order": {"client_order_id": "c1", "order_id": "9", "symbol": "BTC-USD",
                              "filled_quantity": "0.0", "reason": "user_cancelled"}}  # fmt: skip
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_answer_when_sent, stream, conn, ended)
        assert await client.cancel(order()) is None
    assert [(e.client_order_id, e.status) for e in events] == [("c1", OrderStatus.CANCELLED)]


async def test_an_execution_does_not_answer_a_cancel(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Only a `cancel_order` answers a cancel: a fill of the order is no reply to it."""
    stream, client, conn, events = _logged_in()
    fill = {"execution": {"client_order_id": "c1", "order_id": "9", "trade_id": "5",
                          "executed_price": "10000", "executed_quantity": "0.0050",
                          "order_state": "partial_fill"}}  # fmt: skip
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_answer_when_sent, stream, conn, fill)
        with pytest.raises(RequestTimeout):
            await client.cancel(order())
    assert events[0].fill_qty == D("0.005") and stream.correlator.in_flight() == 0


@pytest.mark.parametrize(
    "value, wire_text",
    [
        (D("59900"), "59900.0"),
        (D("1"), "1.0"),
        (D("1E+3"), "1000.0"),
        (D("1.50"), "1.5"),
        (D("0.00000001"), "0.00000001"),
        (D("1E-8"), "0.00000001"),
    ],
)
def test_prices_and_quantities_always_carry_a_point_and_never_an_exponent(
    value: D, wire_text: str
) -> None:
    assert pt_num(value) == wire_text
