"""The Paxos simulator as the venue documents itself (issue #14): the one-frame snapshot, GTT
rules, `ref_id` reuse by time, rebates, rate limits and the 5-minute throttle, TOP_OF_BOOK never
ahead of the book, and Paxos's own sample client agreeing with it at every point."""

from __future__ import annotations

from decimal import Decimal
from functools import partial

import httpx
import orjson
import pytest
import trio
from trio_websocket import open_websocket_url

from framework.events import Side
from framework.venues.paxos.sim import SOR_SCOPE, PaxosSimulator, execution_id
from framework.venues.paxos.sim.common import _Problem
from tests.venues.paxos.orderbook_manager import OrderBookManager
from tests.venues.paxos.spec_check import check_response

D = Decimal
GUARD_S = 10  # against hangs only
SEC = 1_000_000_000


class Clock:
    """The simulator's wall clock, moved by the test."""

    def __init__(self) -> None:
        self.ns = 1_700_000_000 * SEC

    def __call__(self) -> int:
        return self.ns


def _limit(price: str, *, ref_id: str | None = None, **extra: str) -> dict:
    body = {"side": "SELL", "market": "BTCUSD", "type": "LIMIT", "price": price}
    body["base_amount"] = "0.01"
    if ref_id:
        body["ref_id"] = ref_id
    return {**body, **extra}


def test_gtt_must_be_more_than_10_s_ahead_and_expires_as_cancelled() -> None:
    clock = Clock()
    sim = PaxosSimulator.build(3, clock_ns=clock)
    far = str(sim.engine.best_ask("BTCUSD") + 100)
    now_ms = clock.ns // 1_000_000
    for ahead_ms in (0, 5_000, 10_000):  # [DOC] "greater than 10 seconds", else rejected
        with pytest.raises(_Problem) as refused:
            sim.new_order(_limit(far, time_in_force="GTT", expiration_date=str(now_ms + ahead_ms)))
        assert refused.value.response.status == 400
        assert orjson.loads(refused.value.response.body)["type"] == "about:blank"
    with pytest.raises(_Problem):  # not 13 digits
        sim.new_order(_limit(far, time_in_force="GTT", expiration_date=str(clock.ns)))
    order = sim.new_order(_limit(far, time_in_force="GTT", expiration_date=str(now_ms + 10_001)))
    assert order.status == "OPEN"
    clock.ns += 10 * SEC
    sim._expire_due()
    assert order.status == "OPEN"  # not yet
    clock.ns += 2 * SEC
    sim._expire_due()
    assert order.status == "CANCELLED"  # [INF] no EXPIRED status exists
    assert sim.engine.best_ask("BTCUSD") < D(far)  # gone from the book
    assert sim._order_json(order)["expiration_date"].endswith("Z")


def test_ref_id_is_reusable_24_h_after_the_order_closed_never_by_count() -> None:
    clock = Clock()
    sim = PaxosSimulator.build(3, clock_ns=clock)
    sim.engine.limit_history(5, sim.engine.fill_history_limit)  # a short history
    far = str(sim.engine.best_ask("BTCUSD") + 100)
    first = sim.new_order(_limit(far, ref_id="keep"))
    for i in range(20):  # far more orders than the history keeps
        sim.new_order(_limit(far, ref_id=f"other-{i}"))
    with pytest.raises(_Problem) as dup:  # still open: 409
        sim.new_order(_limit(far, ref_id="keep"))
    assert dup.value.response.status == 409
    assert first.engine is not None
    sim.engine.cancel(first.engine.order_id)
    clock.ns += 23 * 3600 * SEC
    with pytest.raises(_Problem):  # closed 23 h ago: still taken
        sim.new_order(_limit(far, ref_id="keep"))
    clock.ns += 3600 * SEC + 1
    again = sim.new_order(_limit(far, ref_id="keep"))  # closed more than 24 h ago
    assert again.id != first.id and again.status == "OPEN"


async def _api(sim: PaxosSimulator) -> httpx.AsyncClient:
    hooks = {"response": [check_response]}
    async with httpx.AsyncClient(base_url=sim.http_url) as http:
        r = await http.post(
            "/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "sim-client",
                "client_secret": "sim-secret",
            },
        )
    headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    return httpx.AsyncClient(base_url=sim.http_url, headers=headers, event_hooks=hooks)


async def test_maker_rebate_is_reported_and_executions_page_by_cursor(
    nursery: trio.Nursery,
) -> None:
    sim = PaxosSimulator.build(5, maker_rebate_rate=D("0.0001"))
    await nursery.start(partial(sim.run, market_rate_hz=None))
    bid = sim.engine.best_bid("BTCUSD")
    order = sim.new_order(
        {"side": "BUY", "market": "BTCUSD", "type": "LIMIT", "price": str(bid + 1)}
        | {"base_amount": "0.03"}
    )
    for _ in range(3):  # three fills of our resting (maker) order
        sim.engine.submit("crowd", "BTCUSD", Side.SELL, "MARKET", D("0.01"))
    async with await _api(sim) as api:
        items, cursor, pages = [], "", 0
        while True:
            params = {"order_id": order.id, "limit": "1"} | (
                {"page_cursor": cursor} if cursor else {}
            )
            body = (await api.get("/v2/executions", params=params)).json()
            items += body["items"]
            cursor, pages = body["next_page_cursor"], pages + 1
            if not cursor:
                break
    assert pages == len(items) >= 3  # one execution a page, every page followed
    assert order.engine is not None
    maker_ids = {
        execution_id(f.trade_id)
        for f in sim.engine.fills(owner="sim-profile")
        if f.maker_order_id == order.engine.order_id
    }
    makers = 0
    for item in items:
        notional = D(item["price"]) * D(item["amount"])
        # [INF] a rebate on maker fills only (those at our limit price)
        maker = item["execution_id"] in maker_ids
        want = notional * D("0.0001") if maker else D(0)
        makers += maker
        assert D(item["rebate"]) == want
        assert item["rebate_asset"] == "USD" and D(item["gross_trade_amount"]) == notional
    assert makers >= 1


async def test_one_breach_throttles_every_endpoint_for_five_minutes(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    # the documented limits scaled down: 50/s -> 0.01/s = 3 requests per 5 minutes
    sim = PaxosSimulator.build(5)
    await nursery.start(partial(sim.run, market_rate_hz=None))
    sim.limiter.scale = 1.0
    api = await _api(sim)  # (the token: before the limits shrink)
    sim.limiter.scale = 0.0002
    async with api:
        statuses = [(await api.get("/v2/markets")).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]  # the 4th breaches the 5-minute average
        body = (await api.get("/v2/orders")).json()  # another endpoint: throttled too
        assert body == {
            "type": "about:blank",
            "title": "Too Many Requests",
            "status": 429,
            "detail": "Too many requests",
        }
        await trio.sleep(299)
        assert (await api.get("/v2/orders")).status_code == 429  # not extended, not over
        await trio.sleep(1.5)
        assert (await api.get("/v2/orders")).status_code == 200
    assert sim.limiter.breaches == 1


async def test_public_snapshot_is_one_frame_with_final_snapshot_true(
    nursery: trio.Nursery,
) -> None:
    sim = PaxosSimulator.build(5)  # the documented default
    await nursery.start(partial(sim.run, market_rate_hz=None))
    bids, asks = sim.engine.book("BTCUSD")
    assert len(bids) > 1 and len(asks) > 1
    with trio.fail_after(GUARD_S):
        async with open_websocket_url(f"{sim.ws_url}/marketdata/BTCUSD") as ws:
            first = orjson.loads(await ws.get_message())
    assert first["type"] == "SNAPSHOT" and first["final_snapshot"] is True
    assert [(D(x["price"]), D(x["amount"])) for x in first["bids"]] == bids
    assert [(D(x["price"]), D(x["amount"])) for x in first["asks"]] == asks


async def test_paxos_sample_order_book_manager_agrees_with_top_of_book_at_every_point(
    nursery: trio.Nursery,
) -> None:
    """The guide's own client, fed the SOR stream while orders sweep several levels: at every
    TOP_OF_BOOK frame its book has the same top, and TOP_OF_BOOK comes after the UPDATEs."""
    sim = PaxosSimulator.build(9)
    await nursery.start(partial(sim.run, market_rate_hz=None))
    async with httpx.AsyncClient(base_url=sim.http_url) as http:
        token = (
            await http.post(
                "/oauth2/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": "sim-client",
                    "client_secret": "sim-secret",
                    "scope": SOR_SCOPE,
                },
            )
        ).json()["access_token"]
    manager = OrderBookManager()
    checked = 0
    with trio.fail_after(GUARD_S):
        async with open_websocket_url(
            f"{sim.ws_url}/", extra_headers=[("Authorization", f"Bearer {token}")]
        ) as ws:
            channels = [
                {"type": "market_data", "params": {"market": "BTCUSD"}},
                {"type": "market_data.top_of_book", "params": {"market": "BTCUSD"}},
            ]
            await ws.send_message(orjson.dumps({"type": "subscribe", "channels": channels}))
            received = 0

            async def read(n: int) -> None:
                nonlocal received, checked
                for _ in range(n):
                    message = orjson.loads(await ws.get_message())
                    received += 1
                    manager.handle_message(message)
                    if message.get("channel") == "market_data.top_of_book":
                        payload = message["payload"]
                        if "BTCUSD" not in manager.order_books:
                            continue  # the first TOB may precede the snapshot
                        top = manager.top("BTCUSD")
                        want = tuple(
                            (lv[0]["price"], lv[0]["amount"]) if lv else None
                            for lv in (payload["bids"], payload["asks"])
                        )
                        assert top == want, (top, want)
                        checked += 1

            (conn,) = [c for c in sim.app.ws_connections if c.path == "/"]
            while conn.enqueued == 0:
                await trio.sleep(0)
            await read(conn.enqueued)
            # sweeps over several levels on both sides, rests, cancels
            for i in range(12):
                side = Side.BUY if i % 2 else Side.SELL
                sim.engine.submit("crowd", "BTCUSD", side, "MARKET", D("0.008"))
                price = sim.engine.best_bid("BTCUSD") - 1 if i % 3 else None
                if price is not None:
                    resting = sim.engine.submit(
                        "crowd", "BTCUSD", Side.BUY, "LIMIT", D("0.005"), price
                    )
                    if i % 4 == 1:
                        sim.engine.cancel(resting.order_id)
                await read(conn.enqueued - received)
    assert checked >= 12
    bids, asks = sim.engine.book("BTCUSD")
    top = manager.top("BTCUSD")
    assert top[0] is not None and D(top[0][0]) == bids[0][0]
    assert top[1] is not None and D(top[1][0]) == asks[0][0]
