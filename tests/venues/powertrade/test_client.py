"""Framing and pre-send validation of Power.Trade requests (no socket)."""

from __future__ import annotations

import time
from decimal import Decimal

import jwt
import orjson
import pytest

from framework.errors import AuthError, OrderRefused
from framework.events import OrderType, Side, TimeInForce
from framework.model import Order
from framework.venues.powertrade.auth import make_token, new_key_pair
from framework.venues.powertrade.client import EntityRules, frame, order_body

D = Decimal
RULES = EntityRules("BTC-USD", "4", "active", "BTC", "USD", D("0.0001"), D(100), D("0.00001"),
                    D(100_000_000), D("0.0001"), D("0.1"), ("spot",))  # fmt: skip


def order(**kw: object) -> Order:
    base = {"client_order_id": "c1", "venue": "powertrade", "symbol": "BTC-USD", "side": Side.BUY,
            "type": OrderType.LIMIT, "quantity": D("0.0100"), "price": D("1E+4")}  # fmt: skip
    return Order(**{**base, **kw})  # type: ignore[arg-type]


def test_new_order_body_is_all_strings_in_plain_decimal_notation() -> None:
    body = order_body(order(), RULES, now_us_=1670249000000001)
    assert body == {"market_id": "0", "side": "buy", "type": "LIMIT", "time_in_force": "GTC",
                    "quantity": "0.01", "price": "10000", "client_order_id": "c1",
                    "timestamp": "1670249000000001", "symbol": "BTC-USD"}  # fmt: skip
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
