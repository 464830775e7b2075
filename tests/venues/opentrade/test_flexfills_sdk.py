"""The published FlexFills SDK (Open Trade's API is FlexFills-compatible) against the simulator.

A real client, not ours: its own login (`get_auth_token`) and its own `FlexfillsApiClient`
(the PyPI package `FlexfillsApi`, installed by the test extra and loaded as published, see
`_published_sdk`), pointed at the simulator on 127.0.0.1. It opens one connection per command
and reads until the first frame that is not an `ACK` (GET, MODIFY, positions), or, after
subscribing, until a frame without an `event` (CREATE, CANCEL): the published answer forms. Every
call must return, with the answer the README publishes for it.

The simulator runs without the confirmation on connect: the Open Trade page promises one, the
SDK would take it for the answer to its first request (the sources conflict; the adapter
tolerates both, see test_orders.py).
"""

from __future__ import annotations

import asyncio
import http.client
import importlib.util
import json
import re
import types
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import trio

from framework.events import Side
from framework.venues.opentrade.sim import OpenTradeSimulator
from tests.helpers import HANG_GUARD_S

SYM = "BTC/USD"


def _published_sdk() -> types.ModuleType:
    """The FlexFills SDK as published (PyPI `FlexfillsApi` 0.2.0, in the test extra; source
    github.com/Flexfills-UI/Hermes), loaded from its installed source file. It is written for
    Python 3.12: four f-strings break a line inside their braces, which 3.11 cannot parse, so
    those lines are joined in memory before compiling. Nothing else is changed, and none of its
    code is kept in this repository."""
    package = importlib.util.find_spec("FlexfillsApi")  # locates it without importing it
    assert package is not None and package.origin is not None, "pip install -e '.[test]'"
    path = Path(package.origin).with_name("flexfillsapi.py")
    source = re.sub(r'(f"[^"\n]*\{)\n\s*', r"\1", path.read_text())
    module = types.ModuleType("flexfillsapi")
    module.__file__ = str(path)
    exec(compile(source, str(path), "exec"), module.__dict__)
    return module


sdk = _published_sdk()


def _plain_http(port: int) -> types.SimpleNamespace:
    """`http.client` as the SDK calls it, its HTTPS connection to the fixed host replaced by a
    plain one to the simulator (never anywhere but 127.0.0.1)."""

    def connect(host: str, context: Any = None) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", port)

    return types.SimpleNamespace(client=types.SimpleNamespace(HTTPSConnection=connect))


def _run_sdk(sim: OpenTradeSimulator, port: int, price: Decimal) -> dict[str, Any]:
    """The SDK's calls, in a thread (it blocks on its own asyncio loop)."""
    asyncio.set_event_loop(asyncio.new_event_loop())
    sdk.http = _plain_http(port)
    # the SDK's login: form username/password, then the token with `clientSecret` = password
    token = sdk.get_auth_token("sim-api", "sim-secret", is_test=True)
    client = sdk.FlexfillsApiClient(token, is_test=True)
    client._socket_url = f"ws://127.0.0.1:{port}/exchange/ws"
    client.ssl_context = None  # plain ws:// to the loopback simulator
    out: dict[str, Any] = {"token": token}
    out["balance"] = client.get_balance(["BTC", "USD"])
    out["instruments"] = client.get_instrument_list()
    order = {
        "globalInstrumentCd": SYM,
        "exchange": "FLEXFILLS",
        "clientOrderId": "sdk-1",
        "direction": "BUY",
        "orderType": "LIMIT",
        "timeInForce": "GTC",
        "price": str(price),
        "amount": "0.01",
    }
    out["create"] = client.create_order([order])
    exch_id = out["create"][0]["data"][0]["exchOrderId"]
    out["modify"] = client.modify_order(
        {"globalInstrumentCd": SYM, "orderId": "sdk-1", "exchangeOrderId": exch_id,
         "price": str(price - 1), "amount": "0.01"}
    )  # fmt: skip
    # another participant fills part of it: a position to ask for
    trio.from_thread.run_sync(
        lambda: sim.engine.submit(
            "other", SYM, Side.SELL, "LIMIT", Decimal("0.004"), price=price - 1, tif="IOC"
        )
    )
    out["open"] = client.get_open_orders_list([SYM])
    out["cancel"] = client.cancel_order([{**order, "price": str(price - 1)}])
    out["positions"] = client.get_trade_positions()
    return out


async def test_the_published_flexfills_sdk_gets_an_answer_to_every_call() -> None:
    sim = OpenTradeSimulator.build(3, connect_confirmation=False, username="sim-api",
                                   password="sim-secret")  # fmt: skip
    async with trio.open_nursery() as nursery:
        port = await nursery.start(partial(sim.run, port=0, market_rate_hz=None))
        bid = sim.engine.best_bid(SYM)
        assert bid is not None
        for crowd in sim.engine.orders(owner="crowd", symbol=SYM, open_only=True):
            if crowd.side is Side.BUY and crowd.price >= bid - 4:
                sim.engine.cancel(crowd.order_id)  # nothing between the seller and our order
        with trio.fail_after(HANG_GUARD_S):
            out = await trio.to_thread.run_sync(
                _run_sdk, sim, port, bid - 3, abandon_on_cancel=True
            )
        nursery.cancel_scope.cancel()
    assert sim.token_error(out["token"]) is None
    assert out["balance"]["event"] == "SNAPSHOT"
    assert SYM in {i["code"] for i in out["instruments"]["data"]}
    # CREATE: the published answer, the order in the GET form without an event
    (created,) = out["create"]
    assert created["command"] == "GET" and "event" not in created
    assert created["data"][0]["orderId"] == "sdk-1" and created["data"][0]["orderStatus"] == "NEW"
    assert sim.order("sdk-1").exchange_name == "FLEXFILLS"  # the SDK's `exchange` is kept
    # MODIFY on a connection that never subscribed: a GET frame with the order
    assert out["modify"]["event"] == "GET"
    assert out["modify"]["data"][0]["clientOrderId"] == "sdk-1"
    assert Decimal(str(out["modify"]["data"][0]["price"])) == bid - 4
    assert [o["orderId"] for o in out["open"]["data"]] == ["sdk-1"]
    # CANCEL: after the OrderUpdate, the cancelled order without an event (what the SDK awaits)
    (cancelled,) = out["cancel"]
    assert "event" not in cancelled and cancelled["data"][0]["orderStatus"] == "CANCELLED"
    assert not sim.order("sdk-1").is_open
    (position,) = out["positions"]["data"]
    assert out["positions"]["channel"] == "TRADE_POSITIONS"
    assert position["direction"] == "BUY" and Decimal(str(position["posVolume"])) == Decimal(
        "0.004"
    )
    json.dumps(out)  # plain JSON, as the SDK hands it to its users
