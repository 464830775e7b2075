"""The Paxos simulator over real loopback sockets: OAuth, public WS, SOR WS and REST v2.

Synchronisation never sleeps: a client is caught up once it has received as many frames as the
server side of its connection has queued (`WsConnection.enqueued`).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from decimal import Decimal
from functools import partial
from typing import Any

import httpx
import orjson
import pytest
import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    WebSocketConnection,
    open_websocket_url,
)

from framework.events import Side
from framework.sim.server import WsConnection
from framework.venues.paxos.sim import (
    READ_ORDER,
    READ_PROFILE,
    SOR_SCOPE,
    WRITE_ORDER,
    PaxosSimulator,
    execution_id,
    match_number,
    parse_iso_ns,
)
from tests.venues.paxos.spec_check import check_response, validate

ALL_SCOPES = f"{SOR_SCOPE} {WRITE_ORDER} {READ_ORDER} {READ_PROFILE}"
PLAIN_NUMBER = re.compile(r"(0|[1-9]\d*)(\.\d*[1-9])?")  # no exponent, no trailing zeros
ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
ISO_NS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z")
PROBLEM = "https://developer.paxos.com/docs/v2/problems/"
GUARD_S = 10  # against hangs only

Book = dict[Decimal, Decimal]


# --- fixtures and helpers ------------------------------------------------------------------------


@pytest.fixture
async def sim(nursery: trio.Nursery) -> PaxosSimulator:
    simulator = PaxosSimulator.build(
        seed=7, heartbeat_s=0.01, stablecoin_period_s=0.01, snapshot_fragment_levels=7
    )
    # no crowd loop: the book only changes when a test says so
    await nursery.start(partial(simulator.run, market_rate_hz=None))
    return simulator


async def _token(sim: PaxosSimulator, scope: str = ALL_SCOPES) -> str:
    async with httpx.AsyncClient(base_url=sim.http_url) as http:
        r = await http.post(
            "/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "sim-client",
                "client_secret": "sim-secret",
                "scope": scope,
            },
        )
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


@pytest.fixture
async def api(sim: PaxosSimulator) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {await _token(sim)}"}
    hooks = {"response": [check_response]}  # every REST body against the published schema
    async with httpx.AsyncClient(base_url=sim.http_url, headers=headers, event_hooks=hooks) as http:
        yield http


class Feed:
    """A client WebSocket that counts what it received, to catch up with the server exactly."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self.received = 0

    async def next(self) -> Any:
        frame = await self.ws.get_message()
        self.received += 1
        return orjson.loads(frame)

    async def send(self, obj: Any) -> None:
        await self.ws.send_message(orjson.dumps(obj).decode())

    async def drain(self, conn: WsConnection) -> list[Any]:
        """Everything the server queued for this connection that we have not read yet."""
        return [await self.next() for _ in range(conn.enqueued - self.received)]


def _server_conn(sim: PaxosSimulator, path: str) -> WsConnection:
    (conn,) = [c for c in sim.app.ws_connections if c.path == path]
    return conn


def _book(levels: list[dict[str, str]]) -> Book:
    return {Decimal(level["price"]): Decimal(level["amount"]) for level in levels}


def _apply(book: Book, price: str, amount: str) -> None:
    if Decimal(amount) == 0:
        del book[Decimal(price)]
    else:
        book[Decimal(price)] = Decimal(amount)


def _engine_book(sim: PaxosSimulator, market: str) -> tuple[Book, Book]:
    bids, asks = sim.engine.book(market)
    return dict(bids), dict(asks)


def _assert_plain(*values: str) -> None:
    for value in values:
        assert PLAIN_NUMBER.fullmatch(value), value


def _cross(sim: PaxosSimulator, market: str = "BTCUSD", qty: str = "0.001") -> None:
    """A crowd market buy: at least one public trade and some level changes."""
    sim.engine.submit("someone", market, Side.BUY, "MARKET", Decimal(qty))


# --- OAuth ---------------------------------------------------------------------------------------


async def test_token_issue_and_refusals(sim: PaxosSimulator) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": "sim-client",
        "client_secret": "sim-secret",
    }
    async with httpx.AsyncClient(base_url=sim.http_url) as http:
        r = await http.post("/oauth2/token", data={**form, "scope": f"{SOR_SCOPE} {READ_ORDER}"})
        assert r.status_code == 200
        body = r.json()
        assert set(body) == {"access_token", "expires_in", "token_type", "scope"}
        assert body["expires_in"] == 3600 and body["token_type"] == "bearer"
        assert body["scope"] == f"{SOR_SCOPE} {READ_ORDER}"
        assert len(body["access_token"]) >= 32

        r = await http.post("/oauth2/token", data={**form, "client_secret": "wrong"})
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"
        r = await http.post("/oauth2/token", data={**form, "scope": "exchange:everything"})
        assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
        r = await http.post("/oauth2/token", data={**form, "grant_type": "password"})
        assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
        # HTTP Basic client authentication works too
        r = await http.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=("sim-client", "sim-secret"),
        )
        assert r.status_code == 200 and set(r.json()["scope"].split()) == set(ALL_SCOPES.split())


async def test_sor_upgrade_needs_valid_token_with_scope(sim: PaxosSimulator) -> None:
    async def handshake_status(token: str | None) -> int:
        headers = [] if token is None else [("Authorization", f"Bearer {token}")]
        try:
            async with open_websocket_url(f"{sim.ws_url}/", extra_headers=headers):
                return 101
        except ConnectionRejected as refused:
            return refused.status_code

    with trio.fail_after(GUARD_S):
        assert await handshake_status(None) == 403
        assert await handshake_status("not-a-token") == 403
        assert await handshake_status(await _token(sim, WRITE_ORDER)) == 403  # lacks SOR scope
        good = await _token(sim, SOR_SCOPE)
        assert await handshake_status(good) == 101
        sim.token_ttl_s = 0  # issued already expired
        assert await handshake_status(await _token(sim, SOR_SCOPE)) == 403
        sim.revoke_all_tokens()
        assert await handshake_status(good) == 403


# --- public WebSocket ----------------------------------------------------------------------------


async def _read_snapshot(feed: Feed) -> tuple[str, Book, Book, list[bool]]:
    bids: Book = {}
    asks: Book = {}
    finals: list[bool] = []
    while True:
        frame = await feed.next()
        assert frame["type"] == "SNAPSHOT"
        assert set(frame) == {"type", "market", "bids", "asks", "final_snapshot"}
        for level in frame["bids"] + frame["asks"]:
            _assert_plain(level["price"], level["amount"])
        bids.update(_book(frame["bids"]))
        asks.update(_book(frame["asks"]))
        finals.append(frame["final_snapshot"])
        if frame["final_snapshot"] is True:
            return frame["market"], bids, asks, finals


def _apply_public(books: dict[str, tuple[Book, Book]], frames: list[dict[str, Any]]) -> int:
    removals = 0
    for frame in frames:
        assert set(frame) == {"type", "market", "side", "price", "amount"}
        assert frame["type"] == "UPDATE" and frame["side"] in ("BUY", "SELL")
        _assert_plain(frame["price"], frame["amount"])
        bids, asks = books[frame["market"]]
        _apply(bids if frame["side"] == "BUY" else asks, frame["price"], frame["amount"])
        removals += frame["amount"] == "0"
    return removals


async def test_public_snapshot_fragments_then_updates_rebuild_the_book(
    sim: PaxosSimulator, api: httpx.AsyncClient
) -> None:
    with trio.fail_after(GUARD_S):
        async with open_websocket_url(f"{sim.ws_url}/marketdata/BTCUSD") as ws:
            feed = Feed(ws)
            market, bids, asks, finals = await _read_snapshot(feed)
            # 20 crowd levels a side in fragments of 7: 7 + 7 + 6, final only on the last
            assert market == "BTCUSD" and finals == [False, False, True]
            assert (bids, asks) == _engine_book(sim, "BTCUSD")
            conn = _server_conn(sim, "/marketdata/BTCUSD")

            sim.markets["BTCUSD"].steps(300)
            sim.markets["ETHUSD"].steps(50)  # another market: not on this feed
            r = await api.post(
                "/v2/profiles/sim-profile/orders",
                json={
                    "side": "BUY",
                    "market": "BTCUSD",
                    "type": "LIMIT",
                    "price": "50000",
                    "base_amount": "0.5",
                },
            )
            assert r.status_code == 200
            frames = await feed.drain(conn)
            assert {f["market"] for f in frames} == {"BTCUSD"}
            assert _apply_public({"BTCUSD": (bids, asks)}, frames) > 0  # some levels went away
            assert (bids, asks) == _engine_book(sim, "BTCUSD")
            assert bids[Decimal(50000)] == Decimal("0.5")


async def test_public_all_markets_feed(sim: PaxosSimulator) -> None:
    with trio.fail_after(GUARD_S):
        async with open_websocket_url(f"{sim.ws_url}/marketdata") as ws:
            feed = Feed(ws)
            books = {}
            for _ in range(2):
                market, bids, asks, _ = await _read_snapshot(feed)
                books[market] = (bids, asks)
            assert set(books) == {"BTCUSD", "ETHUSD"}
            conn = _server_conn(sim, "/marketdata")
            for crowd in sim.markets.values():
                crowd.steps(200)
            _apply_public(books, await feed.drain(conn))
            for market, book in books.items():
                assert book == _engine_book(sim, market)


async def test_public_unknown_market_or_path_says_not_found(sim: PaxosSimulator) -> None:
    with trio.fail_after(GUARD_S):
        for path in (
            "/marketdata/BADBAD",
            "/executiondata/BADBAD",
            "/nope",
            "/marketdata/stablecoin/EURCUSD",
        ):
            async with open_websocket_url(f"{sim.ws_url}{path}") as ws:
                assert orjson.loads(await ws.get_message()) == {"error": "Not Found"}
                with pytest.raises(ConnectionClosed):
                    await ws.get_message()


async def test_executiondata_replays_the_last_execution(sim: PaxosSimulator) -> None:
    with trio.fail_after(GUARD_S):
        _cross(sim, "ETHUSD")
        eth_last = sim.engine.fills(symbol="ETHUSD")[-1]
        async with open_websocket_url(f"{sim.ws_url}/executiondata") as ws:
            feed = Feed(ws)
            # the first frame is the last execution, even if old; BTCUSD has none to replay
            first = await feed.next()
            assert first["market"] == "ETHUSD"
            assert first["match_number"] == match_number(eth_last.trade_id)
            conn = _server_conn(sim, "/executiondata")
            assert conn.enqueued == 1
            _cross(sim)
            trades = await feed.drain(conn)
        fills = sim.engine.fills(symbol="BTCUSD")
        assert trades and len(trades) == len(fills)
        for trade, fill in zip(trades, fills, strict=True):
            assert set(trade) == {"market", "price", "amount", "executed_at", "match_number"}
            assert trade["market"] == "BTCUSD"
            assert (Decimal(trade["price"]), Decimal(trade["amount"])) == (
                fill.price,
                fill.quantity,
            )
            assert ISO_MS.fullmatch(trade["executed_at"])
            assert re.fullmatch(r"[0-9A-Z]{12}", trade["match_number"])
            assert trade["match_number"] == match_number(fill.trade_id)
        assert len({t["match_number"] for t in trades}) == len(trades)

        # a new connection (e.g. after a reconnect) gets the last execution again first
        async with open_websocket_url(f"{sim.ws_url}/executiondata/BTCUSD") as ws:
            feed = Feed(ws)
            assert await feed.next() == trades[-1]
            conn = _server_conn(sim, "/executiondata/BTCUSD")
            _cross(sim, "ETHUSD")  # another market: not on this feed
            _cross(sim)
            more = await feed.drain(conn)
        assert more and {t["market"] for t in more} == {"BTCUSD"}


async def test_stablecoin_feed(sim: PaxosSimulator) -> None:
    with trio.fail_after(GUARD_S):
        for path in ("/marketdata/stablecoin", "/marketdata/stablecoin/USDCUSD"):
            async with open_websocket_url(f"{sim.ws_url}{path}") as ws:
                frames = [orjson.loads(await ws.get_message()) for _ in range(2)]
            for frame in frames:
                assert set(frame) == {"market", "price", "timestamp"}
                assert frame["market"] == "USDCUSD"
                assert re.fullmatch(r"\d\.\d{4}", frame["price"])
                assert ISO_NS.fullmatch(frame["timestamp"])
            assert parse_iso_ns(frames[1]["timestamp"]) > parse_iso_ns(frames[0]["timestamp"])


# --- Smart Order Routing WebSocket ---------------------------------------------------------------


async def _sor(sim: PaxosSimulator) -> Any:
    """A connect context for the SOR socket with a fresh token."""
    headers = [("Authorization", f"Bearer {await _token(sim, SOR_SCOPE)}")]
    return open_websocket_url(f"{sim.ws_url}/", extra_headers=headers)


async def test_sor_requests_acks_and_error_codes(sim: PaxosSimulator) -> None:
    connect = await _sor(sim)
    with trio.fail_after(GUARD_S):
        async with connect as ws:
            feed = Feed(ws)
            await ws.send_message("{not json")
            assert await feed.next() == {"type": "error", "error": "MALFORMED_REQUEST"}
            await feed.send({"type": "dance"})
            assert await feed.next() == {"type": "error", "error": "UNKNOWN_ACTION"}

            await feed.send(
                {
                    "type": "subscribe",
                    "channels": [
                        {"type": "execution_data", "params": {"market": "BTCUSD"}},
                        {"type": "market_data", "params": {"market": "BADBAD"}},
                        {"type": "order_data", "params": {"market": "BTCUSD"}},
                        {"type": "heartbeat"},
                    ],
                }
            )
            assert await feed.next() == {
                "type": "subscribe",
                "channels": [
                    {"type": "execution_data", "params": {"market": "BTCUSD"}, "success": True},
                    {
                        "type": "market_data",
                        "params": {"market": "BADBAD"},
                        "success": False,
                        "error": "UNKNOWN_CHANNEL_PARAMS_CONFIGURATION",
                    },
                    {
                        "type": "order_data",
                        "params": {"market": "BTCUSD"},
                        "success": False,
                        "error": "UNKNOWN_CHANNEL",
                    },
                    {"type": "heartbeat", "success": True},
                ],
            }
            # heartbeats flow now; skip them while reading the answers below
            await feed.send(
                {
                    "type": "subscribe",
                    "channels": [{"type": "execution_data", "params": {"market": "BTCUSD"}}],
                }
            )
            assert await _next_reply(feed) == {
                "type": "subscribe",
                "channels": [
                    {
                        "type": "execution_data",
                        "params": {"market": "BTCUSD"},
                        "success": False,
                        "error": "NO_EFFECT_ACTION",
                    }
                ],
            }
            await feed.send({"type": "subscription_list"})
            assert await _next_reply(feed) == {
                "type": "subscription_list",
                "channels": [
                    {"type": "execution_data", "params": {"market": "BTCUSD"}},
                    {"type": "heartbeat"},
                ],
            }
            await feed.send(
                {
                    "type": "unsubscribe",
                    "channels": [
                        {"type": "execution_data", "params": {"market": "BTCUSD"}},
                        {"type": "market_data", "params": {"market": "ETHUSD"}},
                        {"type": "heartbeat"},
                    ],
                }
            )
            assert await _next_reply(feed) == {
                "type": "unsubscribe",
                "channels": [
                    {"type": "execution_data", "params": {"market": "BTCUSD"}, "success": True},
                    {
                        "type": "market_data",
                        "params": {"market": "ETHUSD"},
                        "success": False,
                        "error": "NO_EFFECT_ACTION",
                    },
                    {"type": "heartbeat", "success": True},
                ],
            }
            await feed.send({"type": "subscription_list"})
            assert await _next_reply(feed) == {"type": "subscription_list", "channels": []}
            await feed.send({"type": "subscribe", "channels": "market_data"})
            assert await _next_reply(feed) == {"type": "error", "error": "MALFORMED_REQUEST"}
            # one bad channel entry makes the whole request malformed: nothing is applied
            good = {"type": "execution_data", "params": {"market": "BTCUSD"}}
            await feed.send({"type": "subscribe", "channels": [good, "heartbeat"]})
            assert await _next_reply(feed) == {"type": "error", "error": "MALFORMED_REQUEST"}
            await feed.send({"type": "subscription_list"})
            assert await _next_reply(feed) == {"type": "subscription_list", "channels": []}


async def _next_reply(feed: Feed) -> Any:
    """Next frame that is not a heartbeat (checking the heartbeats on the way)."""
    while True:
        frame = await feed.next()
        if frame.get("channel") != "heartbeat":
            return frame
        assert set(frame["payload"]) == {"timestamp"}
        assert ISO_NS.fullmatch(frame["payload"]["timestamp"])


async def test_sor_market_data_update_before_snapshot_and_sync(sim: PaxosSimulator) -> None:
    connect = await _sor(sim)
    with trio.fail_after(GUARD_S):
        async with connect as ws:
            feed = Feed(ws)
            sim.markets["BTCUSD"].steps(20)  # before the subscription: not on this connection
            await feed.send(
                {
                    "type": "subscribe",
                    "channels": [{"type": "market_data", "params": {"market": "BTCUSD"}}],
                }
            )
            ack = await feed.next()
            assert ack["channels"] == [
                {"type": "market_data", "params": {"market": "BTCUSD"}, "success": True}
            ]
            conn = _server_conn(sim, "/")
            sim.markets["BTCUSD"].steps(300)
            frames = await feed.drain(conn)

        # the documented race: an UPDATE older than the SNAPSHOT arrives before it
        assert all(f["channel"] == "market_data" for f in frames)
        payloads = [f["payload"] for f in frames]
        assert payloads[0]["type"] == "UPDATE" and payloads[1]["type"] == "SNAPSHOT"
        assert all(p["type"] == "UPDATE" for p in payloads[2:]) and len(payloads) > 2
        for p in payloads:
            assert set(p) == {"market", "type", "time", "bids", "asks"} and p["market"] == "BTCUSD"
            assert ISO_NS.fullmatch(p["time"])
        times = [parse_iso_ns(p["time"]) for p in payloads]
        assert times[0] < times[1]
        assert times[1:] == sorted(set(times[1:]))  # strictly increasing from the snapshot on

        # the documented client algorithm rebuilds the engine's book exactly
        buffered: list[dict[str, Any]] = []
        bids: Book | None = None
        asks: Book = {}
        snapshot_ns = 0
        for p in payloads:
            if p["type"] == "SNAPSHOT":
                bids, asks, snapshot_ns = (
                    _book(p["bids"]),
                    _book(p["asks"]),
                    parse_iso_ns(p["time"]),
                )
                for update in buffered:
                    if parse_iso_ns(update["time"]) > snapshot_ns:
                        _apply_sor(bids, asks, update)
            elif bids is None:
                buffered.append(p)
            else:
                _apply_sor(bids, asks, p)
        assert (bids, asks) == _engine_book(sim, "BTCUSD")


def _apply_sor(bids: Book, asks: Book, update: dict[str, Any]) -> None:
    for level in update["bids"]:
        _apply(bids, level["price"], level["amount"])
    for level in update["asks"]:
        _apply(asks, level["price"], level["amount"])


async def test_sor_top_of_book_and_execution_data(sim: PaxosSimulator) -> None:
    connect = await _sor(sim)
    with trio.fail_after(GUARD_S):
        async with connect as ws:
            feed = Feed(ws)
            await feed.send(
                {
                    "type": "subscribe",
                    "channels": [
                        {"type": "market_data.top_of_book", "params": {"market": "ETHUSD"}},
                        {"type": "execution_data", "params": {"market": "ETHUSD"}},
                    ],
                }
            )
            ack = await feed.next()
            assert [c["success"] for c in ack["channels"]] == [True, True]
            conn = _server_conn(sim, "/")
            for _ in range(5):
                _cross(sim, "ETHUSD", "0.002")
            frames = await feed.drain(conn)

        tops = [f["payload"] for f in frames if f["channel"] == "market_data.top_of_book"]
        trades = [f["payload"] for f in frames if f["channel"] == "execution_data"]
        assert len(tops) >= 2  # the current top at once, then changes
        for top in tops:
            assert set(top) == {"market", "type", "timestamp", "bids", "asks"}
            assert top["type"] == "TOP_OF_BOOK" and ISO_NS.fullmatch(top["timestamp"])
            assert len(top["bids"]) == 1 and len(top["asks"]) == 1
        bids, asks = sim.engine.book("ETHUSD", 1)
        assert _book(tops[-1]["bids"]) == dict(bids) and _book(tops[-1]["asks"]) == dict(asks)
        fills = sim.engine.fills(symbol="ETHUSD")
        assert len(trades) == len(fills)
        for trade, fill in zip(trades, fills, strict=True):
            assert set(trade) == {"market", "price", "amount", "executed_at"}  # no match_number
            assert (Decimal(trade["price"]), Decimal(trade["amount"])) == (
                fill.price,
                fill.quantity,
            )
            assert parse_iso_ns(trade["executed_at"]) == fill.ts_ns


# --- REST v2 -------------------------------------------------------------------------------------

ORDERS = "/v2/profiles/sim-profile/orders"


GENERIC_TITLES = {  # [DOC] the OpenAPI examples' titles for `about:blank` problems
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _assert_problem(r: httpx.Response, status: int, slug: str | None = None) -> dict[str, Any]:
    """A documented problem: `about:blank` with the HTTP title (slug None), or the slug's type."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    validate("Problem", body)
    assert set(body) <= {"type", "title", "status", "detail", "meta"}
    assert body["status"] == status and isinstance(body["detail"], str) and body["detail"]
    if slug is None:
        assert (body["type"], body["title"]) == ("about:blank", GENERIC_TITLES[status])
        assert "meta" not in body
    else:
        assert body["type"] == PROBLEM + slug
    return body


async def test_rest_order_lifecycle(sim: PaxosSimulator, api: httpx.AsyncClient) -> None:
    order = {
        "side": "BUY",
        "market": "BTCUSD",
        "type": "LIMIT",
        "price": "59000.5",
        "base_amount": "0.25",
        "ref_id": "r-1",
    }
    r = await api.post(ORDERS, json=order)
    assert r.status_code == 200
    created = r.json()
    assert set(created) == {
        "id",
        "profile_id",
        "ref_id",
        "status",
        "market",
        "side",
        "type",
        "price",
        "base_amount",
        "quote_amount",
        "amount_filled",
        "volume_weighted_average_price",
        "time_in_force",
        "created_at",
        # [DOC] the rest of the `Order` schema (expiration_date only on GTT orders)
        "modified_at",
        "metadata",
        "stop_price",
        "is_triggered",
        "recipient_profile_id",
        "identity_id",
        "identity_account_id",
    }
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", created["id"]
    )
    assert created["status"] == "SUBMITTED" and created["profile_id"] == "sim-profile"
    assert (created["price"], created["base_amount"], created["quote_amount"]) == (
        "59000.5",
        "0.25",
        "0",  # [DOC] "0" when unused, as the published list example
    )
    assert created["amount_filled"] == "0.00000000" and created["time_in_force"] == "GTC"
    assert ISO_MS.fullmatch(created["created_at"])

    got = (await api.get(f"{ORDERS}/{created['id']}")).json()
    assert got == {**created, "status": "OPEN"}
    balances = {
        b["asset"]: b for b in (await api.get("/v2/profiles/sim-profile/balances")).json()["items"]
    }
    locked = Decimal("59000.5") * Decimal("0.25")
    assert Decimal(balances["USD"]["trading"]) == locked
    assert Decimal(balances["USD"]["available"]) == Decimal(1_000_000) - locked

    # duplicate ref_id: 409 with the existing order
    dup = _assert_problem(
        await api.post(ORDERS, json={**order, "price": "1"}), 409, "already-exists"
    )
    assert dup["meta"]["existing"]["id"] == created["id"]
    assert dup["title"] == "Already Exists"
    assert dup["detail"] == "order already exists with ref_id 'r-1'"
    # [DOC] meta.existing as the published example (partial order)
    assert set(dup["meta"]["existing"]) == {
        "id",
        "profile_id",
        "ref_id",
        "status",
        "side",
        "market",
        "quote_amount",
    }

    listed = (
        await api.get(
            "/v2/orders", params={"ref_ids": ["r-1", "nope"], "profile_id": "sim-profile"}
        )
    ).json()
    assert [o["id"] for o in listed["items"]] == [created["id"]] and listed[
        "next_page_cursor"
    ] == ""

    r = await api.delete(f"{ORDERS}/{created['id']}")
    assert (r.status_code, r.json()) == (200, {})
    assert (await api.get(f"{ORDERS}/{created['id']}")).json()["status"] == "CANCELLED"
    again = _assert_problem(await api.delete(f"{ORDERS}/{created['id']}"), 403)
    assert again["detail"] == "order is not in cancellable state"
    _assert_problem(await api.get(f"{ORDERS}/no-such-order"), 404)
    _assert_problem(await api.delete(f"{ORDERS}/no-such-order"), 404)
    balances = {
        b["asset"]: b
        for b in (
            await api.get("/v2/profiles/sim-profile/balances", params={"assets": "USD"})
        ).json()["items"]
    }
    assert list(balances) == ["USD"] and balances["USD"]["trading"] == "0"


async def test_rest_fills_partial_fill_and_executions(
    sim: PaxosSimulator, api: httpx.AsyncClient
) -> None:
    ask_price, ask_size = sim.engine.book("BTCUSD")[1][0]
    # crosses the best ask only: partially filled, the rest rests at ask_price and stays OPEN
    qty = ask_size + Decimal("0.5")
    r = await api.post(
        ORDERS,
        json={
            "side": "BUY",
            "market": "BTCUSD",
            "type": "LIMIT",
            "price": str(ask_price),
            "base_amount": str(qty),
        },
    )
    order_id = r.json()["id"]
    partial_order = (await api.get(f"{ORDERS}/{order_id}")).json()
    assert partial_order["status"] == "OPEN"
    assert Decimal(partial_order["amount_filled"]) == ask_size
    assert Decimal(partial_order["volume_weighted_average_price"]) == ask_price
    assert len(partial_order["amount_filled"].split(".")[1]) == 8

    # a market sell fully fills against our own bid and the crowd (self-trade is allowed)
    r = await api.post(
        ORDERS, json={"side": "SELL", "market": "BTCUSD", "type": "MARKET", "base_amount": "0.1"}
    )
    sell = (await api.get(f"{ORDERS}/{r.json()['id']}")).json()
    assert sell["status"] == "FILLED" and sell["time_in_force"] == "IOC" and sell["price"] == "0"

    r = await api.get("/v2/executions", params={"profile_id": "sim-profile", "order_id": order_id})
    executions = r.json()["items"]
    fills = sim.engine.fills(owner="sim-profile")
    assert {e["execution_id"] for e in executions} == {execution_id(f.trade_id) for f in fills}
    for e in executions:
        assert set(e) == {
            "execution_id",
            "order_id",
            "market",
            "side",
            "amount",
            "price",
            "commission",
            "commission_asset",
            "rebate",
            "rebate_asset",
            "gross_trade_amount",
            "executed_at",
        }
        assert e["execution_id"].isdigit()  # [DOC] uint64 as a numeric string
        assert (e["rebate"], e["rebate_asset"]) == ("0", "USD")  # no rebate schedule here
        assert e["order_id"] == order_id and e["side"] == "BUY" and e["commission_asset"] == "USD"
        assert ISO_MS.fullmatch(e["executed_at"])
    assert sum(Decimal(e["amount"]) for e in executions) == Decimal("0.1") + ask_size

    everything = (await api.get("/v2/executions", params={"limit": 1})).json()
    assert len(everything["items"]) == 1 and everything["next_page_cursor"] == "1"
    page2 = (await api.get("/v2/executions", params={"limit": 1000, "page_cursor": "1"})).json()
    assert page2["next_page_cursor"] == ""
    future = (
        await api.get("/v2/executions", params={"range.begin": "2999-01-01T00:00:00Z"})
    ).json()
    assert future["items"] == []

    # we bought ask_size from the crowd; the 0.1 we sold went to our own bid (nets to zero)
    balances = {
        b["asset"]: b for b in (await api.get("/v2/profiles/sim-profile/balances")).json()["items"]
    }
    btc, usd = balances["BTC"], balances["USD"]
    assert Decimal(btc["available"]) + Decimal(btc["trading"]) == 100 + ask_size
    assert Decimal(usd["available"]) + Decimal(usd["trading"]) == 1_000_000 - ask_size * ask_price
    assert Decimal(usd["trading"]) == Decimal("0.4") * ask_price  # the rest of our bid


async def test_rest_rejections_and_validation(sim: PaxosSimulator, api: httpx.AsyncClient) -> None:
    base = {
        "side": "BUY",
        "market": "BTCUSD",
        "type": "LIMIT",
        "price": "59000",
        "base_amount": "0.1",
    }
    _assert_problem(
        await api.post(ORDERS, json={**base, "market": "DOGEUSD"}), 403, "unavailable-market"
    )
    _assert_problem(
        await api.post(ORDERS, json={**base, "price": "59000.1"}), 400, "exceed-precision"
    )
    _assert_problem(
        await api.post(ORDERS, json={**base, "base_amount": "0.123456789"}), 400, "exceed-precision"
    )
    missing = {k: v for k, v in base.items() if k != "side"}
    assert "side" in _assert_problem(await api.post(ORDERS, json=missing), 400)["detail"]
    _assert_problem(await api.post(ORDERS, content=b"{oops"), 400)
    _assert_problem(
        await api.post(ORDERS, json={**base, "type": "MARKET", "time_in_force": "GTC"}),
        400,
    )
    _assert_problem(
        await api.post(ORDERS, json={**base, "base_amount": "100"}), 403, "insufficient-funds"
    )
    _assert_problem(
        await api.post(
            ORDERS, json={**base, "side": "SELL", "price": "70000", "base_amount": "101"}
        ),
        403,
        "insufficient-funds",
    )

    # a taker limit 15% or more from mid is created, then rejected, and trades nothing
    r = await api.post(ORDERS, json={**base, "price": "70000"})
    assert r.status_code == 200 and r.json()["status"] == "SUBMITTED"
    assert (await api.get(f"{ORDERS}/{r.json()['id']}")).json()["status"] == "REJECTED"
    # post-only that would take liquidity: rejected by the engine
    best_ask = sim.engine.best_ask("BTCUSD")
    r = await api.post(ORDERS, json={**base, "type": "POST_ONLY_LIMIT", "price": str(best_ask)})
    assert (await api.get(f"{ORDERS}/{r.json()['id']}")).json()["status"] == "REJECTED"
    assert sim.engine.fills(owner="sim-profile") == []
    _assert_problem(await api.delete(f"{ORDERS}/{r.json()['id']}"), 403)

    rejected = (
        await api.get("/v2/orders", params={"status": "REJECTED", "market": "BTCUSD"})
    ).json()
    assert len(rejected["items"]) == 2
    _assert_problem(await api.get("/v2/orders", params={"limit": 1001}), 400)


async def test_rest_market_buy_by_quote_amount_and_gtt(
    sim: PaxosSimulator, api: httpx.AsyncClient
) -> None:
    r = await api.post(
        ORDERS,
        json={"side": "BUY", "market": "ETHUSD", "type": "MARKET", "quote_amount": "25.5"},
    )
    assert r.status_code == 200
    created = r.json()
    assert (created["base_amount"], created["quote_amount"], created["time_in_force"]) == (
        "0",
        "25.5",
        "IOC",
    )
    bought = (await api.get(f"{ORDERS}/{created['id']}")).json()
    assert bought["status"] == "FILLED"
    spent = Decimal(bought["amount_filled"]) * Decimal(bought["volume_weighted_average_price"])
    assert Decimal("25.4") < spent <= Decimal("25.5")
    _assert_problem(
        await api.post(
            ORDERS,
            json={"side": "SELL", "market": "ETHUSD", "type": "MARKET", "quote_amount": "10"},
        ),
        400,
    )

    # [DOC] a market buy sized by base_amount is refused (400 about:blank)
    refused = _assert_problem(
        await api.post(
            ORDERS,
            json={"side": "BUY", "market": "ETHUSD", "type": "MARKET", "base_amount": "0.01"},
        ),
        400,
    )
    assert refused["detail"].startswith("base_amount invalid")
    _assert_problem(
        await api.post(
            ORDERS,
            json={
                "side": "BUY",
                "market": "ETHUSD",
                "type": "MARKET",
                "base_amount": "0.01",
                "quote_amount": "10",
            },
        ),
        400,
    )
    _assert_problem(
        await api.post(ORDERS, json={"side": "SELL", "market": "ETHUSD", "type": "MARKET"}), 400
    )

    # GTT far ahead rests with its expiration_date (RFC 3339 in the Order)
    body = {
        "side": "SELL",
        "market": "ETHUSD",
        "type": "LIMIT",
        "price": "3100",
        "base_amount": "1",
        "time_in_force": "GTT",
        "expiration_date": "4102444800000",
    }
    r = await api.post(ORDERS, json=body)
    resting = (await api.get(f"{ORDERS}/{r.json()['id']}")).json()
    assert (resting["status"], resting["time_in_force"]) == ("OPEN", "GTT")
    assert resting["expiration_date"] == "2100-01-01T00:00:00.000Z"
    eth = (await api.get("/v2/profiles/sim-profile/balances", params={"assets": "ETH"})).json()
    assert eth["items"][0]["trading"] == "1"


async def test_rest_auth(sim: PaxosSimulator) -> None:
    async with httpx.AsyncClient(base_url=sim.http_url) as http:
        _assert_problem(await http.get("/v2/orders"), 401)
        _assert_problem(
            await http.get("/v2/orders", headers={"Authorization": "Bearer nope"}),
            401,
        )
        read_only = {"Authorization": f"Bearer {await _token(sim, READ_ORDER)}"}
        assert (await http.get("/v2/orders", headers=read_only)).status_code == 200
        body = {
            "side": "BUY",
            "market": "BTCUSD",
            "type": "LIMIT",
            "price": "59000",
            "base_amount": "0.1",
        }
        _assert_problem(await http.post(ORDERS, json=body, headers=read_only), 403)
        _assert_problem(await http.get("/v2/profiles/sim-profile/balances", headers=read_only), 403)
        sim.revoke_all_tokens()
        _assert_problem(await http.get("/v2/orders", headers=read_only), 401)
        # market data needs no token
        assert (await http.get("/v2/markets")).status_code == 200


async def test_rest_market_data(sim: PaxosSimulator) -> None:
    _cross(sim)
    async with httpx.AsyncClient(base_url=sim.http_url) as http:
        markets = (await http.get("/v2/markets")).json()
        assert markets == {
            "markets": [
                {
                    "market": "BTCUSD",
                    "base_asset": "BTC",
                    "quote_asset": "USD",
                    "tick_rate": "0.25",
                },
                {
                    "market": "ETHUSD",
                    "base_asset": "ETH",
                    "quote_asset": "USD",
                    "tick_rate": "0.05",
                },
            ]
        }
        book = (await http.get("/v2/markets/BTCUSD/order-book")).json()
        assert list(book) == ["market", "asks", "bids"]
        assert (_book(book["bids"]), _book(book["asks"])) == _engine_book(sim, "BTCUSD")
        recent = (await http.get("/v2/markets/BTCUSD/recent-executions")).json()["items"]
        fills = sim.engine.fills(symbol="BTCUSD")
        assert [r["match_number"] for r in recent] == [
            match_number(f.trade_id) for f in reversed(fills)
        ]
        _assert_problem(await http.get("/v2/markets/NOPE/order-book"), 404)


async def test_inject_http_error(sim: PaxosSimulator, api: httpx.AsyncClient) -> None:
    sim.app.inject_http_error("/v2/orders", 503, count=2)
    _assert_problem(await api.get("/v2/orders"), 503)
    _assert_problem(await api.get("/v2/orders"), 503)
    assert (await api.get("/v2/orders")).status_code == 200
    sim.app.inject_http_error("/v2/profiles", 429, body={"title": "slow down"})
    r = await api.post(
        ORDERS,
        json={
            "side": "BUY",
            "market": "BTCUSD",
            "type": "LIMIT",
            "price": "59000",
            "base_amount": "0.1",
        },
    )
    assert (r.status_code, r.json()) == (429, {"title": "slow down"})
    assert sim.engine.orders(owner="sim-profile") == []  # the refused request did nothing


def test_order_history_is_bounded_like_the_engines() -> None:
    from framework.venues.paxos.sim import PaxosSimulator

    sim = PaxosSimulator.build(1)
    sim.engine.limit_history(5, sim.engine.fill_history_limit)
    bid = sim.engine.best_bid("BTCUSD")
    for i in range(12):
        order = sim.new_order(
            {
                "side": "BUY",
                "market": "BTCUSD",
                "type": "LIMIT",
                "base_amount": "0.001",
                "price": str(bid - 100 - i),
                "ref_id": f"r{i}",
            }
        )
        sim.engine.cancel(order.engine.order_id)
    assert len(sim.orders) == 5
    refs = set(sim.orders.client_ids())
    assert "r6" not in refs and refs == {f"r{i}" for i in range(7, 12)}
