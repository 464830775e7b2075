"""Open Trade as its published frames and the FlexFills SDK show it (issue #13, Open Trade).

The simulator's default is the published form of every reply (shared/venues/opentrade.md):
no `requestId` echo, the CREATE reply a GET frame without `event`, the MODIFY reply a GET frame,
the cancel acknowledgement an `OrderUpdate` naming no order, ERRORs naming only their channel, no
filled amount in Order items, a confirmation frame on connect. Where the material is silent or
conflicts, a simulator option gives the other form, and the adapter is run against each.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from framework.engine import Engine
from framework.errors import FrameError, OrderRefused
from framework.events import OrderStatus, Side
from framework.transport.wire import loads_decimal
from framework.venues.opentrade import precision
from framework.venues.opentrade.client import OpenTradeExecution
from framework.venues.opentrade.decode import order_report
from framework.venues.opentrade.sim import OpenTradeSimulator, Refused
from tests.helpers import HANG_GUARD_S, config, running, until

D = Decimal
S = OrderStatus
SYM = "BTC/USD"
OTHER = "other"

# every wire form the adapter must work with: the published default, and one option each
FORMS: dict[str, dict[str, bool]] = {
    "published": {},
    "no-connect-confirmation": {"connect_confirmation": False},
    "request-id-echo": {"echo_request_id": True},
    "error-with-command": {"error_command": True},
    "order-command-acks": {"order_acks": True},
    "filled-amount-in-updates": {"fill_amounts": True},
    "cancelled-order-item-follows": {"cancel_order_item": True},
    "flexfills": {"connect_confirmation": False, "cancel_order_item": True},
}


def cfg(forms: dict[str, bool], **extra: object):
    venue = {
        "endpoint": "sim",
        "sim_seed": 7,
        "sim_rate_hz": 0,
        "markets": [SYM],
        "trades": False,
        "sim_forms": forms,
        **extra,
    }
    return config(
        {"opentrade": venue},
        botrun={"mode": "sandbox"},
        risk={
            "max_order_notional": "1000000000",
            "max_position": "1000",
            "max_orders_per_second": 1000,
        },
    )


def sim_of(engine: Engine) -> OpenTradeSimulator:
    return engine.simulators["opentrade"].simulator


async def ready(engine: Engine) -> OpenTradeExecution:
    client = engine.orders.clients["opentrade"]
    assert isinstance(client, OpenTradeExecution)
    await until(engine, lambda: engine.book("opentrade", SYM).is_synced, "book synced")
    with trio.fail_after(HANG_GUARD_S):
        await client.stream.ready.wait()
    return client


def buy(engine: Engine, qty: str, price: Decimal):
    return engine.orders.submit(
        venue="opentrade", symbol=SYM, side=Side.BUY, quantity=D(qty), price=price
    )


async def done(handle):
    with trio.fail_after(HANG_GUARD_S):
        return await handle.done()


def refuse_amount(sim: OpenTradeSimulator, amount: str) -> None:
    """The venue refuses CREATEs of this amount with an ERROR (a venue-side refusal)."""
    create = sim._create

    def refusing(session: Any, item: dict, symbol: str, ack: Any) -> None:
        if item.get("amount") == amount:
            raise Refused("amount refused by the venue")
        create(session, item, symbol, ack)

    sim._create = refusing  # type: ignore[method-assign]


@pytest.mark.parametrize("form", list(FORMS))
async def test_order_path_in_every_reply_form(form: str, tmp_path: Path) -> None:
    """CREATE answered without requestId, a refused CREATE attributed to its order, a partial
    fill whose size only the trade history gives, then the cancel acknowledgement ending the
    order with the filled quantity booked: in each wire form, nothing ends UNKNOWN."""
    async with running(cfg(FORMS[form]), journal_path=str(tmp_path / "j.sqlite")) as engine:
        client = await ready(engine)
        sim = sim_of(engine)
        bid = sim.engine.best_bid(SYM)
        assert bid is not None
        refuse_amount(sim, "0.0777")
        refused = buy(engine, "0.0777", bid - D("7"))
        handle = buy(engine, "0.01", bid + D("0.01"))
        assert (await done(refused)).status is S.REJECTED
        assert "refused by the venue" in (refused.order.reason or "")
        await until(engine, lambda: handle.status is S.ACCEPTED, "accepted")
        # a partial fill: published Order items carry no size (unless the option adds one)
        sim.engine.submit(OTHER, SYM, Side.SELL, "LIMIT", D("0.004"), price=bid + D("0.01"))
        await until(engine, lambda: handle.order.filled_qty == D("0.004"), "partial fill")
        assert handle.status is S.PARTIALLY_FILLED
        engine.orders.cancel(handle.client_order_id)
        order = await done(handle)
        assert order.status is S.CANCELLED and order.filled_qty == D("0.004")
        assert order.avg_price == bid + D("0.01")
        assert engine.portfolio.position("opentrade", SYM) == D("0.004")
        assert engine.orders.counts["unknown"] == 0
        if not FORMS[form].get("fill_amounts"):
            assert client.counts["recovered_fills"] >= 1  # the size came from TRADES_HISTORY
        if FORMS[form].get("connect_confirmation", True):
            assert client.stream.decoder.confirmations >= 1


async def test_fill_then_cancel_race_books_the_fill_once(tmp_path: Path) -> None:
    """Two partial fills land just before our cancel: both are booked once, then CANCELLED."""
    async with running(cfg({}), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await ready(engine)
        sim = sim_of(engine)
        bid = sim.engine.best_bid(SYM)
        handle = buy(engine, "0.01", bid + D("0.01"))
        await until(engine, lambda: handle.status is S.ACCEPTED, "accepted")
        sim.engine.submit(OTHER, SYM, Side.SELL, "LIMIT", D("0.002"), price=bid + D("0.01"))
        sim.engine.submit(OTHER, SYM, Side.SELL, "LIMIT", D("0.003"), price=bid + D("0.01"))
        engine.orders.cancel(handle.client_order_id)
        order = await done(handle)
        assert order.status is S.CANCELLED and order.filled_qty == D("0.005")
        assert engine.orders.counts["duplicate_fills"] == 0
        assert sim.order(handle.client_order_id).filled == D("0.005")


# --- precision --------------------------------------------------------------------------------


def test_prices_round_safely_for_the_side_and_refuse_what_the_venue_would_change() -> None:
    # [DOC] 7 significant digits, cut; the document's own examples are valid
    assert precision.venue_price(D("123456.78")) == D("123456.7")
    assert precision.venue_price(D("60123.456")) == D("60123.45")
    assert precision.venue_price(D("1234.567")) == D("1234.567")
    # a BUY rounds down, a SELL up: never more aggressive than asked
    assert precision.safe_price(D("123456.78"), Side.BUY) == D("123456.7")
    assert precision.safe_price(D("123456.78"), Side.SELL) == D("123456.8")
    assert precision.safe_price(D("9999999.5"), Side.SELL) == D("10000000")
    assert precision.is_exact_price(precision.safe_price(D("0.000123456789"), Side.SELL))
    with pytest.raises(OrderRefused):
        precision.check_price(D("123456.78"))
    assert precision.check_price(D("123456.7")) == D("123456.7")
    # [DOC] amounts: 8 decimals, rounded by the venue: refused here (a different size)
    assert precision.venue_amount(D("0.123456789")) == D("0.12345679")
    with pytest.raises(OrderRefused):
        precision.check_amount(D("0.123456789"))
    for bad in (D("NaN"), D("Infinity"), D("-1"), D(0)):
        with pytest.raises(OrderRefused):
            precision.safe_price(bad, Side.BUY)


async def test_a_price_the_venue_would_cut_never_leaves(tmp_path: Path) -> None:
    async with running(cfg({}), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await ready(engine)
        sim = sim_of(engine)
        # on the instrument's 0.01 tick, but 8 significant digits: the venue would cut it to
        # 100000.0, a more aggressive SELL
        handle = engine.orders.submit(
            venue="opentrade", symbol=SYM, side=Side.SELL, quantity=D("0.01"), price=D("100000.01")
        )
        order = await done(handle)
        assert order.status is S.REJECTED and "cut price" in (order.reason or "")
        assert sim.order(handle.client_order_id) is None


def test_simulator_cuts_prices_rounds_amounts_and_takes_the_documents_examples() -> None:
    # a market fine enough for the document's examples (no tick is published)
    sim = OpenTradeSimulator.build(3, markets={SYM: (D("60000"), D("0.0000000001"))})
    sent: list[str] = []
    from types import SimpleNamespace

    from framework.venues.opentrade.sim import WsSession

    session = WsSession(conn=SimpleNamespace(enqueue=sent.append, headers={}), orders={SYM})
    cases = [
        ("123456.78", "0.123456789", D("123456.7"), D("0.12345679")),
        ("60123.456", "0.01", D("60123.45"), D("0.01")),
        ("1234.567", "0.01", D("1234.567"), D("0.01")),
        ("0.0001234567", "0.01", D("0.0001234567"), D("0.01")),
    ]
    for n, (price, amount, worked_price, worked_amount) in enumerate(cases):
        item = {
            "clientOrderId": f"p{n}",
            "direction": "SELL" if n == 0 else "BUY",
            "orderType": "LIMIT",
            "price": price,
            "amount": amount,
        }
        sim.create_order(session, item, SYM, lambda: None)
        order = sim.order(f"p{n}")
        assert order is not None and (order.price, order.amount) == (worked_price, worked_amount)
    # the CREATE reply reports the price the venue works
    reply = loads_decimal(sent[0])
    assert "event" not in reply and reply["data"][0]["price"] == D("123456.7")


# --- fills: validation ---------------------------------------------------------------------------


def test_an_impossible_fill_size_is_unreadable_not_booked() -> None:
    item = {
        "class": "Order",
        "orderId": "x",
        "orderStatus": "PARTIALLY_FILLED",
        "amount": D("0.01"),
        "filledAmount": D("0.02"),
        "filledPrice": D("100"),
    }
    with pytest.raises(FrameError):
        order_report(item)
    with pytest.raises(FrameError):
        order_report(item | {"filledAmount": D("-0.001")})
    with pytest.raises(FrameError):
        order_report(item | {"filledAmount": D("0.001"), "filledPrice": D("-1")})
    # [DOC] no size: a positive filledPrice is kept as a hint, no quantity is booked
    report = order_report({k: v for k, v in item.items() if k != "filledAmount"})
    assert report.cum_qty is None and report.avg_price == D("100")


# --- auth ---------------------------------------------------------------------------------------


async def test_both_documented_token_endpoints_and_refresh_armed_from_the_first_token(
    tmp_path: Path,
) -> None:
    # a 7 s token: the refresh is due 5 s (the minimum margin) before it expires
    async with running(
        cfg({}, sim_token_ttl_s=7.0), journal_path=str(tmp_path / "j.sqlite")
    ) as engine:
        client = await ready(engine)
        sim = sim_of(engine)
        # [DOC] step 2 (b): GET .../jwt/client/{api_user}/token?clientSecret=...
        async with httpx.AsyncClient(base_url=sim.http_url) as http:
            login = await http.post(
                "/auth/login", data={"username": sim.username, "password": sim.password}
            )
            cookie = f"JSESSIONID={login.cookies['JSESSIONID']}"
            got = await http.get(
                f"/auth/auth/jwt/client/{sim.api_user}/token",
                params={"clientSecret": sim.api_secret},
                headers={"Cookie": cookie},
            )
            assert got.status_code == 200 and sim.token_error(got.text) is None
            wrong = await http.get(
                f"/auth/auth/jwt/client/{sim.api_user}/token",
                params={"clientSecret": "nope"},
                headers={"Cookie": cookie},
            )
            assert wrong.status_code == 403
        # the proactive refresh was armed by the first token: no auth error is needed
        await until(engine, lambda: client.counts["reauths"] >= 1, "proactive refresh")
        assert client.stream.auth_errors == 0
        bid = sim.engine.best_bid(SYM)
        handle = buy(engine, "0.01", bid - D("3"))
        await until(engine, lambda: handle.status is S.ACCEPTED, "accepted after refresh")


# --- the FlexFills SDK's messages, replayed as data ------------------------------------------
# Source: Flexfills-UI/Hermes FlexfillsApi/flexfillsapi.py (create_order, cancel_order,
# modify_order, get_trade_positions, _subscribe_and_send_message, _send_message,
# _validate_response, _validate_subscribe_response). The SDK opens one connection per command
# with `Authorization: <token>`; a CREATE / CANCEL returns on the first frame after its command
# whose `event` is missing or ERROR; a GET / MODIFY on the first frame that is not an ACK.


def _sdk_subscribe_reply_done(frame: dict) -> bool:
    event = frame.get("event")
    return event is None or event == "ERROR"


async def _token(sim: OpenTradeSimulator) -> str:
    async with httpx.AsyncClient(base_url=sim.http_url) as http:
        login = await http.post(
            "/auth/login", data={"username": sim.username, "password": sim.password}
        )
        resp = await http.post(
            f"/auth/auth/jwt/clients/{sim.api_user}/token",
            headers={
                "Cookie": f"JSESSIONID={login.cookies['JSESSIONID']}",
                "clientSecret": sim.api_secret,
            },
        )
        return resp.text


async def _sdk_send(sim: OpenTradeSimulator, token: str, messages: list[dict], done: Any) -> dict:
    """One SDK-style connection: send each message, return the frame `done` accepts after the
    last one (frames before it are skipped as the SDK skips them)."""
    headers = [(b"Authorization", token.encode())]
    async with open_websocket_url(sim.ws_url + "/exchange/ws", extra_headers=headers) as ws:
        for n, message in enumerate(messages):
            await ws.send_message(json.dumps(message))
            if n < len(messages) - 1:
                first = loads_decimal(await ws.get_message())
                assert first.get("event") != "ERROR"  # the SDK's check after its SUBSCRIBE
        with trio.fail_after(HANG_GUARD_S):
            while True:
                frame = loads_decimal(await ws.get_message())
                if done(frame):
                    return frame


@pytest.mark.parametrize("cancel_item", [False, True])
async def test_the_flexfills_sdk_message_shapes_get_their_replies(cancel_item: bool) -> None:
    sim = OpenTradeSimulator.build(5, connect_confirmation=False, cancel_order_item=cancel_item)
    async with trio.open_nursery() as nursery:
        await nursery.start(sim.run)
        token = await _token(sim)
        subscribe = {
            "command": "SUBSCRIBE",
            "signature": token,
            "channel": "TRADE_PRIVATE",
            "channelArgs": [{"name": "instrument", "value": "[BTC/USD]"}],
        }
        # create_order: every value str()'d, `exchange` required by the SDK
        order = {
            "globalInstrumentCd": "BTC/USD",
            "exchange": "OPENTRADE-SIM",
            "direction": "BUY",
            "orderType": "LIMIT",
            "amount": "0.001",
            "price": "50000.5",
            "clientOrderId": "sdk-1",
            "timeInForce": "GTC",
            "class": "Order",
        }
        create = {"command": "CREATE", "signature": token, "channel": "TRADE_PRIVATE"}
        reply = await _sdk_send(
            sim, token, [subscribe, create | {"data": [order]}], _sdk_subscribe_reply_done
        )
        assert reply == reply | {"command": "GET", "channel": "TRADE_PRIVATE"}
        assert "event" not in reply and reply["data"][0]["orderId"] == "sdk-1"
        assert sim.order("sdk-1").exchange_name == "OPENTRADE-SIM"
        # modify_order: a fresh connection that did not subscribe; orderId + exchangeOrderId
        modify = {
            "command": "MODIFY",
            "signature": token,
            "channel": "TRADE_PRIVATE",
            "data": [
                {
                    "class": "Order",
                    "globalInstrumentCd": "BTC/USD",
                    "orderId": "sdk-1",
                    "exchangeOrderId": str(reply["data"][0]["exchOrderId"]),
                    "price": "50001",
                    "amount": "0.002",
                }
            ],
        }
        modified = await _sdk_send(sim, token, [modify], lambda f: f.get("event") != "ACK")
        assert modified["event"] == "GET" and modified["data"][0]["clientOrderId"] == "sdk-1"
        assert modified["data"][0]["amount"] == D("0.002")
        # get_trade_positions: no signature; the handshake token authenticates it
        positions = await _sdk_send(
            sim,
            token,
            [{"command": "GET", "channel": "TRADE_POSITIONS"}],
            lambda f: f.get("event") != "ACK",
        )
        assert positions["event"] == "GET" and positions["channel"] == "TRADE_POSITIONS"
        # cancel_order: the SDK returns only on an event-less frame (or ERROR)
        cancel = {"command": "CANCEL", "signature": token, "channel": "TRADE_PRIVATE"}
        item = order | {"price": "50001"}
        if cancel_item:
            answer = await _sdk_send(
                sim, token, [subscribe, cancel | {"data": [item]}], _sdk_subscribe_reply_done
            )
            assert "event" not in answer and answer["data"][0]["orderStatus"] == "CANCELLED"
        else:
            # [CODE SDK README] the published acknowledgement is an UPDATE frame: the SDK's
            # loop would wait past it (reported as a source conflict); the adapter takes it
            answer = await _sdk_send(
                sim,
                token,
                [subscribe, cancel | {"data": [item]}],
                lambda f: f.get("event") == "UPDATE" and f["data"][0]["class"] == "OrderUpdate",
            )
            assert answer["data"][0]["clientOrderId"] is None
        assert not sim.order("sdk-1").is_open
        nursery.cancel_scope.cancel()
