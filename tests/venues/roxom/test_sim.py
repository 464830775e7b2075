"""The Roxom simulator speaks the documented protocol: signed handshake and REST, subscriptions,
the documented error codes, and perpetual positions with margin and PnL.

Test keys are generated here at run time; none is stored in the repository.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from functools import partial
from pathlib import Path

import httpx
import orjson
import pytest
import trio
from trio_websocket import ConnectionRejected, open_websocket_url

from framework.events import Side
from framework.venues.roxom.auth import (
    HmacSigner,
    RsaSigner,
    canonical_body,
    canonical_query,
    new_private_key_pem,
    rest_message,
    verify_rsa,
)
from framework.venues.roxom.sim import RoxomSimulator
from framework.venues.roxom.sim.account import SimAccount

D = Decimal
SAMPLES = (Path(__file__).parent / "samples" / "roxom.jsonl").read_text().splitlines()


@asynccontextmanager
async def serving(**kwargs) -> AsyncIterator[RoxomSimulator]:
    sim = RoxomSimulator.build(9, ["US500-BTC", "GOLD-BTC", "OIL-BTC"], **kwargs)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(sim.run, port=0, market_rate_hz=None))
        try:
            yield sim
        finally:
            nursery.cancel_scope.cancel()


def signer(sim: RoxomSimulator) -> RsaSigner:
    return RsaSigner(sim.api_key, sim.private_key_pem)


async def frames(ws, n: int) -> list[dict]:
    with trio.fail_after(10):
        return [orjson.loads(await ws.get_message()) for _ in range(n)]


def test_signing_strings() -> None:
    assert rest_message("get", "/api/v1/orders", canonical_query({"symbol": "X", "a": "1"})) == (
        "GET:/api/v1/orders?a=1&symbol=X"
    )
    body = canonical_body({"qty": "1", "side": "buy", "postOnly": True, "px": None})
    assert body == "postOnly=true&qty=1&side=buy"  # sorted, nulls left out
    assert rest_message("POST", "/api/v1/orders", "", body) == f"POST:/api/v1/orders:{body}"
    assert rest_message("POST", "/api/v1/orders/1/cancel") == "POST:/api/v1/orders/1/cancel"


def test_rsa_signature_verifies_only_with_the_matching_key() -> None:
    pem = new_private_key_pem()
    assert pem.startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8
    from framework.venues.roxom.auth import public_key_pem

    sig = RsaSigner("k", pem).sign("GET:/ws")
    assert verify_rsa(public_key_pem(pem), "GET:/ws", sig)
    assert not verify_rsa(public_key_pem(pem), "GET:/wss", sig)
    assert not verify_rsa(public_key_pem(new_private_key_pem()), "GET:/ws", sig)
    assert not verify_rsa(public_key_pem(pem), "GET:/ws", "not base64!")


async def test_handshake_without_credentials_is_refused() -> None:
    async with serving() as sim:
        with pytest.raises(ConnectionRejected) as refused:
            async with open_websocket_url(f"{sim.ws_url}/ws"):
                pass
        assert refused.value.status_code == 401


async def test_bad_signature_is_refused_before_the_upgrade() -> None:
    """[DOC] "Authentication is done before connection upgrade." (default)"""
    async with serving() as sim:
        headers = list(RsaSigner(sim.api_key, new_private_key_pem()).ws_headers().items())
        with pytest.raises(ConnectionRejected) as refused:
            async with open_websocket_url(
                f"{sim.ws_url}/ws", extra_headers=[(k.encode(), v.encode()) for k, v in headers]
            ):
                pass
        assert refused.value.status_code == 401


async def test_bad_signature_gets_error_600010_then_a_close_as_an_option() -> None:
    async with serving() as sim:
        sim.auth_error_in_band = True
        headers = list(RsaSigner(sim.api_key, new_private_key_pem()).ws_headers().items())
        async with open_websocket_url(
            f"{sim.ws_url}/ws", extra_headers=[(k.encode(), v.encode()) for k, v in headers]
        ) as ws:
            (error,) = await frames(ws, 1)
            assert error["event"] == "error" and error["code"] == "600010"
            assert error["msg"] == "Authentication failed" and error["connId"]


@asynccontextmanager
async def connected(sim: RoxomSimulator, sign=None):
    headers = (sign or signer(sim)).ws_headers()
    async with open_websocket_url(
        f"{sim.ws_url}/ws", extra_headers=[(k.encode(), v.encode()) for k, v in headers.items()]
    ) as ws:
        yield ws


async def test_documented_subscribe_messages_are_acked_with_initial_data() -> None:
    async with serving() as sim, connected(sim) as ws:
        await ws.send_message(SAMPLES[0])  # line 1: level1 US500-BTC + GOLD-BTC
        got = await frames(ws, 4)
        assert [f.get("event") or f.get("topic") for f in got] == [
            "subscribe",
            "level1.US500-BTC",
            "subscribe",
            "level1.GOLD-BTC",
        ]
        assert got[0]["arg"] == {"channel": "level1", "symbol": "US500-BTC"}
        assert type(got[1]["createdTime"]) is int and got[1]["createdTime"] > 2**53
        await ws.send_message(SAMPLES[3])  # line 4: depth, including USDT-BTC (not listed)
        got = await frames(ws, 5)
        assert got[1]["topic"] == "depth.US500-BTC" and got[1]["type"] == "snapshot"
        assert got[3]["topic"] == "depth.GOLD-BTC"
        assert got[4]["event"] == "error" and got[4]["code"] == "60015"
        for n in (12, 14):  # balance, positions: private channels take no symbol
            await ws.send_message(SAMPLES[n - 1])
        got = await frames(ws, 3)
        assert got[0]["event"] == "subscribe" and got[1]["type"] == "balance"
        assert got[1]["data"]["balanceAfter"] == "1" and got[2]["event"] == "subscribe"


async def test_ws_error_codes() -> None:
    async with serving() as sim, connected(sim) as ws:
        await ws.send_message("{nope")
        await ws.send_message('{"op":"subscribe","args":[{"channel":"candles","symbol":"X"}]}')
        await ws.send_message('{"op":"dance","args":[]}')
        codes = [f["code"] for f in await frames(ws, 3)]
        assert codes == ["60017", "60014", "60017"]
        many = [{"channel": "trade", "symbol": s} for s in ("US500-BTC", "GOLD-BTC", "OIL-BTC")]
        await ws.send_message(orjson.dumps({"op": "subscribe", "args": many}).decode())
        assert all(f["event"] == "subscribe" for f in await frames(ws, 3))


async def test_subscription_limit() -> None:
    async with serving() as sim, connected(sim) as ws:
        sim.max_subscriptions = 2
        await ws.send_message(SAMPLES[2])  # line 3: three subscriptions
        got = await frames(ws, 4)  # ack, level1 snapshot, ack, error
        assert got[-1]["code"] == "60016"


async def test_account_events_reach_every_connection_unsubscribed() -> None:
    async with serving() as sim, connected(sim) as a, connected(sim) as b:
        await a.send_message('{"op":"subscribe","args":[{"channel":"orders"}]}')
        assert (await frames(a, 1))[0]["event"] == "subscribe"
        # a REST order: its events go to both connections
        async with httpx.AsyncClient(base_url=sim.http_url) as http:
            body = {"symbol": "GOLD-BTC", "instType": "perpetual", "side": "buy",
                    "orderType": "market", "qty": "0.002", "clientOrderId": "c1"}  # fmt: skip
            msg = rest_message("POST", "/api/v1/orders", "", canonical_body(body))
            r = await http.post("/api/v1/orders", json=body, headers=signer(sim).headers(msg))
            assert r.status_code == 200, r.text
            assert r.json()["error"] is False
        for ws in (a, b):
            kinds = [(f["type"], f["data"].get("status") if f["type"] == "order" else None)
                     for f in await frames(ws, 4)]  # fmt: skip
            assert kinds == [
                ("order", "pendingsubmit"),
                ("order", "filled"),
                ("balance", None),
                ("position", None),
            ]


async def test_rest_refuses_bad_signatures_with_the_documented_error_body() -> None:
    async with serving() as sim, httpx.AsyncClient(base_url=sim.http_url) as http:
        body = {"symbol": "GOLD-BTC", "side": "buy", "orderType": "market", "qty": "1"}
        unsigned = await http.post("/api/v1/orders", json=body)
        assert unsigned.status_code == 401
        error = unsigned.json()
        assert error["error"]["code"] == 401 and error["error"]["message"]
        assert error["timestamp"] and error["requestId"]
        # signed for another body: refused
        msg = rest_message("POST", "/api/v1/orders", "", canonical_body({**body, "qty": "2"}))
        tampered = await http.post("/api/v1/orders", json=body, headers=signer(sim).headers(msg))
        assert tampered.status_code == 401
        # the older HMAC scheme is checked too
        hmac_bad = HmacSigner(sim.api_key, "wrong").headers("")
        assert (await http.get("/api/v1/orders", headers=hmac_bad)).status_code == 401
        hmac_ok = HmacSigner(sim.api_key, sim.hmac_secret).headers("")
        listed = await http.get("/api/v1/orders?instType=perpetual", headers=hmac_ok)
        assert listed.status_code == 200
        assert listed.json() == {"error": False, "data": {"orders": []}}  # [DOC] the list form
        assert sim.orders == {}


async def test_rest_validation_errors() -> None:
    async with serving() as sim, httpx.AsyncClient(base_url=sim.http_url) as http:
        s = signer(sim)

        async def post(body: dict) -> dict:
            msg = rest_message("POST", "/api/v1/orders", "", canonical_body(body))
            r = await http.post("/api/v1/orders", json=body, headers=s.headers(msg))
            assert r.status_code == 400
            return r.json()["error"]

        base = {"symbol": "GOLD-BTC", "side": "buy", "orderType": "limit", "qty": "0.01"}
        bid = sim.engine.best_bid("GOLD-BTC")
        assert (await post({**base, "symbol": "MOON-BTC", "px": "1"}))["message"] == (
            "Market not available"
        )
        assert (await post({**base, "qty": "0.0105", "px": str(bid)}))["message"] == (
            "Invalid quantity"
        )
        assert (await post({**base, "px": "0.000894101"}))["message"] == "Invalid price"
        assert (await post({**base, "qty": "0.001", "px": "0.00000001"}))["message"] == (
            "Order value too small"
        )
        assert (await post({**base, "qty": "100000", "px": str(bid)}))["message"] == (
            "Insufficient balance"
        )
        missing = await http.post(
            "/api/v1/orders/nope/cancel",
            headers=s.headers(rest_message("POST", "/api/v1/orders/nope/cancel")),
        )
        assert missing.status_code == 404


def test_account_position_flip_margin_and_pnl() -> None:
    account = SimAccount("a", D(1))
    account.on_fill("X", Side.BUY, D(2), D("0.004"), D("0.000001"), 1)
    pos = account.positions["X"]
    assert (pos.size, pos.avg_entry) == (D(2), D("0.004"))
    assert account.initial_margin(pos) == D("0.0008")
    assert account.liquidation_price(pos) == D("0.004") * (1 - (D("0.1") - D("0.005")))
    settled = account.on_fill("X", Side.SELL, D(3), D("0.005"), D(0), 2)
    assert settled.after - settled.before == D("0.002")  # 2 x 0.001 realized
    assert (pos.size, pos.avg_entry, pos.realized) == (D(-1), D("0.005"), D("0.002"))
    assert account.unrealized(pos, D("0.004")) == D("0.001")  # short gains as price falls
    assert account.balance == D(1) - D("0.000001") + D("0.002")


def test_order_history_is_bounded_like_the_engines() -> None:
    sim = RoxomSimulator.build(9, ["US500-BTC"])
    sim.engine.limit_history(5, sim.engine.fill_history_limit)
    bid = sim.engine.best_bid("US500-BTC")
    assert bid is not None
    tick = D("0.00000001")

    def create(i: int, coid: str, *, stop: bool = False) -> str:
        body = {"symbol": "US500-BTC", "side": "buy", "qty": "1", "clientOrderId": coid}
        if stop:  # waits for a trade at its trigger, which never comes here
            body |= {"orderType": "stop", "triggerPx": str(bid + 1000 * tick)}
        else:
            body |= {"orderType": "limit", "px": str(bid - (100 + i) * tick)}
        return sim.new_order(body)["orderId"]

    # a still-working old order stops the trim: nothing finished after it goes either
    working = create(99, "old")
    ids = [create(i, f"x{i}") for i in range(6)]
    for order_id in ids:
        sim.cancel_order(order_id)
    assert list(sim.orders) == [working, *ids]
    sim.cancel_order(working)

    # finished: only the newest `history_limit` records stay, and the indexes follow them
    ids = []
    for i in range(12):
        # order 10 reuses order 6's client order id: forgetting order 6 must keep it
        ids.append(create(i, "c6" if i == 10 else f"c{i}", stop=i % 3 == 0))
        sim.cancel_order(ids[-1])
    assert list(sim.orders) == ids[7:]
    assert set(sim.orders.client_ids()) == {"c7", "c8", "c9", "c6", "c11"}
    assert all(sim.orders.by_client(o.client_order_id) is o for o in sim.orders.values())
    kept = {o.engine_id for o in sim.orders.values() if o.engine_id is not None}
    assert set(sim.orders.engine_ids()) == kept and len(kept) == 4  # 9 is a stop, never sent
    assert sim.stops() == []


def test_fill_ids_are_bounded_by_the_engines_fill_history() -> None:
    from framework.venues.roxom.chaos import _fill_id

    sim = RoxomSimulator.build(9, ["US500-BTC"])
    sim.engine.limit_history(orders=100, fills=3)
    for _ in range(6):
        body = {"symbol": "US500-BTC", "side": "buy", "orderType": "market", "qty": "0.002"}
        sim.new_order(body)
    fills = sim.engine.fills(owner=sim.engine_owner)
    assert len(fills) == 3 and all(f.taker_owner == sim.engine_owner for f in fills)
    assert list(sim.fill_ids) == [f.trade_id for f in fills]
    assert all(_fill_id(sim, f) for f in fills)  # what chaos.py looks up is still there
