# ruff: noqa: E501  (verbatim wire frames read best on one line)
"""Power.Trade as the venue's own clients see it (issue #13): the simulator's documented forms,
the adapter against each form where the material is ambiguous, and the official Python client's
message shapes replayed (tests/venues/powertrade/samples/official_python_client.jsonl)."""

from __future__ import annotations

import time
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
import trio.testing

from framework.errors import FetchError, OrderNotFound
from framework.events import OrderStatus, OrderType, Side
from framework.model import Order
from framework.sim.server import SimApp, WsConnection, serve
from framework.venues.powertrade.decode import Decoder
from framework.venues.powertrade.entities import fetch_entities
from framework.venues.powertrade.execution import PowerTradeExecution
from framework.venues.powertrade.sim import PowerTradeSimulator, _Client
from tests.helpers import HANG_GUARD_S, config, running, session, until
from tests.venues.powertrade.test_sim import FakeConn, logged_in, messages, order, send

D = Decimal
S = OrderStatus
SYMBOL = "BTC-USD"
SAMPLES = Path(__file__).parent / "samples"


# --- the simulator's documented forms ------------------------------------------------------------


async def test_the_server_heartbeats_only_an_idle_client(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """[DOC] a heartbeat after each 5 s without any client message; a client that talks is
    never sent one; [INF] a silent client stays connected by default."""
    sim = PowerTradeSimulator.build(1)
    client = _Client(FakeConn(), last_recv=trio.current_time())  # type: ignore[arg-type]
    sim.add_client(client)

    def beats() -> int:
        return sum(1 for k, _ in messages(client) if k == "heartbeat")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sim._timers)
        await trio.sleep(4.9)
        assert beats() == 0
        await trio.sleep(0.3)
        assert beats() == 1
        await trio.sleep(5)
        assert beats() == 2
        # a client that sends something every 4 s is never idle long enough
        for _ in range(5):
            await trio.sleep(4)
            client.last_recv = trio.current_time()
        assert beats() == 2 and not client.conn.closed
        nursery.cancel_scope.cancel()


async def test_recv_window_ends_a_resting_order_and_without_it_one_cycle() -> None:
    clock = [time.time_ns()]
    sim = PowerTradeSimulator.build(1, clock_ns=lambda: clock[0])
    _, client = await logged_in_on(sim)
    bid = sim.engine.best_bid(SYMBOL)
    send(
        sim, client, "new_order", **order("w2", price=str(bid - 100), recv_window="2"), user_tag="a"
    )
    send(sim, client, "new_order", **order("w0", price=str(bid - 100)), user_tag="b")
    start = len(client.conn.frames)
    clock[0] += 601 * 10**9  # one 10-minute cycle
    sim.expire(trio.current_time())
    ended = [
        (b["client_order_id"], b["reason"])
        for k, b in messages(client, start)
        if k == "cancel_order"
    ]
    assert ended == [("w0", "recv_window_expired")]  # [INF] one cycle without recv_window
    clock[0] += 600 * 10**9
    sim.expire(trio.current_time())
    ended = [
        (b["client_order_id"], b["reason"])
        for k, b in messages(client, start)
        if k == "cancel_order"
    ]
    assert ended[-1] == ("w2", "recv_window_expired")
    assert sim.engine.orders(owner="sim-api-key", open_only=True) == []


async def logged_in_on(sim: PowerTradeSimulator) -> tuple[PowerTradeSimulator, _Client]:
    from framework.venues.powertrade.auth import make_token
    from framework.venues.powertrade.sim import SIM_API_KEY, sim_private_key_pem

    client = _Client(FakeConn())  # type: ignore[arg-type]
    sim.add_client(client)
    token = make_token(SIM_API_KEY, sim_private_key_pem())
    (reply,) = send(sim, client, "authenticate", credentials_secret=token, user_tag="a")
    assert reply[1]["error_code"] == "0"
    return sim, client


async def test_whole_numbers_are_refused_in_the_strict_form_and_accepted_by_default() -> None:
    sim, client = await logged_in()
    assert [
        k
        for k, _ in send(
            sim, client, "new_order", **order("a", price="50000", qty="1"), user_tag="t"
        )
    ] == ["order_accepted"]
    sim = PowerTradeSimulator.build(1, whole_numbers=False)
    _, client = await logged_in_on(sim)
    (reply,) = send(sim, client, "new_order", **order("b", price="50000"), user_tag="t")
    assert reply == (
        "command_response",
        {"error_code": "12", "error_text": "error parsing new order request", "user_tag": "t"},
    )
    (reply,) = send(sim, client, "new_order", **order("c", qty="1"), user_tag="u")
    assert reply[1]["error_code"] == "12"
    (reply,) = send(sim, client, "new_order", **order("d", price="5E+4"), user_tag="v")
    assert reply[1]["error_code"] == "12"
    assert [
        k
        for k, _ in send(
            sim, client, "new_order", **order("e", price="50000.0", qty="1.0"), user_tag="w"
        )
    ] == ["order_accepted"]


async def test_a_repeated_subscribe_is_refused_without_a_snapshot() -> None:
    sim, client = await logged_in()
    sub = {"symbol": SYMBOL, "market_id": "0", "type": "snap_full_updates", "interval": "0"}
    assert [k for k, _ in send(sim, client, "subscribe", **sub, user_tag="s1")] == [
        "command_response",
        "snapshot",
    ]
    (reply,) = send(sim, client, "subscribe", **sub, user_tag="s2")
    assert reply[1]["error_text"] == "add subscription failed, already subscribed"
    assert reply[1]["error_code"] != "0" and reply[1]["user_tag"] == "s2"


async def test_snap_with_deltas_sends_price_levels_the_decoder_applies() -> None:
    sim, client = await logged_in()
    sub = {"symbol": SYMBOL, "market_id": "0", "type": "snap_with_deltas", "interval": "100"}
    replies = send(sim, client, "subscribe", **sub, user_tag="s1")
    events: list[Any] = []
    decoder = Decoder(events.append, lambda *a: False, {SYMBOL})
    decoder.decode(orjson.dumps({"snapshot": replies[1][1]}), 0)
    start = len(client.conn.frames)
    sim.crowds[SYMBOL].steps(200)
    sim._flush_deltas(trio.current_time() + 1)
    kinds = [k for k, _ in messages(client, start)]
    assert kinds and set(kinds) == {"deltas"}  # no order-level messages on this subscription
    for raw in client.conn.frames[start:]:
        decoder.decode(raw, 1)
    book = decoder.books[SYMBOL]
    assert book.synced
    assert (book.levels(Side.BUY), book.levels(Side.SELL)) == sim.engine.book(SYMBOL)


async def test_cancel_all_names_its_filter_and_order_messages_carry_no_user_tag() -> None:
    sim, client = await logged_in()
    bid = sim.engine.best_bid(SYMBOL)
    send(sim, client, "new_order", **order("k1", price=str(bid - 50)), user_tag="a")
    replies = send(sim, client, "cancel_all_orders", symbol=SYMBOL, user_tag="ca")
    kind, reply = replies[0]
    assert kind == "cancel_all_orders"
    assert {k for k in reply} == {
        "server_utc_timestamp",
        "timestamp",
        "user_tag",
        "reason",
        "results",
        "symbol",
        "tradeable_entity_id",
    }
    assert reply["results"] == [{"client_order_id": "k1", "order_state": "pending_cancel"}]
    assert replies[1][0] == "cancel_order" and replies[1][1]["reason"] == "user_cancelled"  # [CODE]


# --- the official client's message shapes, replayed ----------------------------------------------


def official_frames() -> list[dict[str, Any]]:
    rows = []
    for line in (SAMPLES / "official_python_client.jsonl").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            rows.append(orjson.loads(line))
    return rows


# [CODE python/protocol/server.py] the message types the official Python client parses; any
# other type makes it log "error parsing server message"
OFFICIAL_TYPES = {"command_response", "heartbeat", "snapshot", "order_added", "order_deleted",
                  "order_updated", "order_executed", "order_accepted", "execution",
                  "entities_and_rules_response", "positions_response"}  # fmt: skip


async def test_the_official_python_clients_requests_get_the_answers_it_waits_for() -> None:
    """Its frames verbatim (fresh token and ids substituted): authenticate → command_response
    "0"; entities; register_for_rfqs; orders with `user_tag: "not in use"` answered first by
    order_accepted (no `new_order` echo it cannot parse); positions; its heartbeat unanswered."""
    sim = PowerTradeSimulator.build(3)
    from framework.venues.powertrade.auth import make_token
    from framework.venues.powertrade.sim import SIM_API_KEY, sim_private_key_pem

    client = _Client(FakeConn())  # type: ignore[arg-type]
    sim.add_client(client)
    bid = sim.engine.best_bid(SYMBOL)
    for i, msg in enumerate(official_frames()):
        ((kind, body),) = msg.items()
        if kind == "authenticate":
            body["credentials_secret"] = make_token(SIM_API_KEY, sim_private_key_pem())
        if kind == "new_order":
            body["client_order_id"] = f"{body['client_order_id']}{i}"
            if body["market_id"] == "0":
                body["price"] = f"{bid - 10:.1f}"
        start = len(client.conn.frames)
        sim.handle(client, orjson.dumps({kind: body}).decode())
        replies = messages(client, start)
        if kind == "heartbeat":
            assert replies == []
        elif kind == "new_order":
            mine = [
                (k, b) for k, b in replies if b.get("client_order_id") == body["client_order_id"]
            ]
            assert mine and mine[0][0] == "order_accepted", replies
            assert not [k for k, _ in replies if k == "command_response"]
        else:
            assert replies and replies[0][1].get("user_tag") == body.get("user_tag"), replies
            if kind == "authenticate":
                assert replies[0][1]["error_code"] == "0"
        # every answer the official client gets on its order and RFQ flows it can parse
        assert {k for k, _ in replies} <= OFFICIAL_TYPES, replies
        for _, b in replies:
            assert all(isinstance(v, (str, list, dict)) for v in b.values())


# --- the adapter against each form ---------------------------------------------------------------


def cfg(**extra: object) -> Any:
    venue = {"endpoint": "sim", "sim_seed": 5, "sim_rate_hz": 0, "markets": [SYMBOL],
             "sim_rfq_rate_hz": 0, "account_interval_s": 3600, **extra}  # fmt: skip
    return config({"powertrade": venue}, botrun={"mode": "sandbox"},
                  risk={"max_order_notional": "1000000000000", "max_position": "1000",
                        "max_orders_per_second": 1000})  # fmt: skip


def sim_cfg(sim: PowerTradeSimulator) -> Any:
    venue = {"sim_url": sim.http_url, "markets": [SYMBOL], "sim_rfq_rate_hz": 0,
             "account_interval_s": 3600}  # fmt: skip
    return config({"powertrade": venue}, botrun={"mode": "sandbox"},
                  risk={"max_order_notional": "1000000000000", "max_position": "1000",
                        "max_orders_per_second": 1000})  # fmt: skip


async def ready(engine: Any) -> None:
    await until(engine, lambda: engine.book("powertrade", SYMBOL).is_synced, "book synced")
    with trio.fail_after(HANG_GUARD_S):
        assert await session(engine, "powertrade").stream.wait_ready(HANG_GUARD_S)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "options",
    [{}, {"whole_numbers": False}, {"ack_success": True}],
    ids=["documented", "strict-numbers", "success-ack-first"],
)
async def test_orders_are_accepted_filled_and_cancelled_in_every_form(options: dict) -> None:
    sim = PowerTradeSimulator.build(7, **options)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(sim.run, market_rate_hz=None))
        async with running(sim_cfg(sim), journal_path=":memory:") as engine:
            await ready(engine)
            best = sim.engine.best_bid(SYMBOL)
            # a whole-number price and quantity: sent as "…0.0" and "1.0"
            price = (best // 1) + 1
            a = engine.orders.submit(
                venue="powertrade", symbol=SYMBOL, side=Side.BUY, quantity=D(1), price=price
            )
            b = engine.orders.submit(
                venue="powertrade",
                symbol=SYMBOL,
                side=Side.BUY,
                quantity=D("0.01"),
                price=best - 50,
            )
            await until(
                engine, lambda: a.status is S.ACCEPTED and b.status is S.ACCEPTED, "accepted"
            )
            sim.engine.submit("crowd", SYMBOL, Side.SELL, "LIMIT", D(1), price, tif="IOC")
            engine.orders.cancel(b.client_order_id)
            with trio.fail_after(HANG_GUARD_S):
                await a.done()
                await b.done()
            assert a.status is S.FILLED and a.order.filled_qty == D(1)
            assert b.status is S.CANCELLED
            assert sim.order(a.client_order_id).state == "filled"
            assert session(engine, "powertrade").counts["bad_frames"] == 0
        nursery.cancel_scope.cancel()


async def test_an_execution_before_order_accepted_implies_acceptance() -> None:
    """[DOC] order lifecycle messages carry the client_order_id; the first one answers the
    new_order, whatever it is: an execution that overtakes order_accepted fills the order, and
    the late order_accepted does not reopen it."""
    sim = PowerTradeSimulator.build(8)
    sim.hold_entries = True  # new_order gets no answer until released
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(sim.run, market_rate_hz=None))
        async with running(sim_cfg(sim), journal_path=":memory:") as engine:
            await ready(engine)
            h = engine.orders.submit(
                venue="powertrade", symbol=SYMBOL, side=Side.BUY, quantity=D("0.01"), price=D(100)
            )
            await until(engine, lambda: sim.order(h.client_order_id) is not None, "at the venue")
            coid = h.client_order_id
            sim.broadcast_raw(orjson.dumps({"execution": {
                "server_utc_timestamp": "1670249000000001", "utc_timestamp": "1670249000000001",
                "tradeable_entity_id": "4", "symbol": SYMBOL, "trade_id": "991", "order_id": "77",
                "client_order_id": coid, "executed_price": "100.0", "executed_quantity": "0.01",
                "liquidity_flag": "added", "price": "100.0", "side": "buy", "order_state": "filled"}}).decode())  # fmt: skip
            with trio.fail_after(HANG_GUARD_S):
                await h.done()
            assert h.status is S.FILLED and h.order.filled_qty == D("0.01")
            sim.broadcast_raw(orjson.dumps({"order_accepted": {
                "utc_timestamp": "1670249000000002", "market_id": "0", "tradeable_entity_id": "4", "symbol": SYMBOL,
                "type": "LIMIT", "order_id": "77", "client_order_id": coid, "quantity": "0.01", "price": "100.0"}}).decode())  # fmt: skip
            sim.release_entries()
            await until(
                engine, lambda: sim.order(coid).state == "accepted", "late accept at the venue"
            )
            assert h.status is S.FILLED
        nursery.cancel_scope.cancel()


async def test_order_details_come_over_rest_and_a_cache_miss_is_not_a_rejection() -> None:
    async with running(cfg(), journal_path=":memory:") as engine:
        await ready(engine)
        client: PowerTradeExecution = engine.orders.clients["powertrade"]  # type: ignore[assignment]
        sim = engine.simulators["powertrade"].simulator
        best = sim.engine.best_bid(SYMBOL)
        h = engine.orders.submit(
            venue="powertrade",
            symbol=SYMBOL,
            side=Side.BUY,
            quantity=D("0.02"),
            price=best + D("0.1"),
        )
        await until(engine, lambda: h.status is S.ACCEPTED, "accepted")
        sim.engine.submit("crowd", SYMBOL, Side.SELL, "LIMIT", D("0.01"), h.order.price, tif="IOC")
        await until(engine, lambda: h.status is S.PARTIALLY_FILLED, "partial")
        with trio.fail_after(HANG_GUARD_S):
            report = await client.query_order(h.order)
        assert report is not None and report.status is S.PARTIALLY_FILLED
        assert report.venue_order_id == h.order.venue_order_id
        # an id the venue's cache does not hold: young, it proves nothing (asked again later)
        ghost = Order(
            "ghost1",
            "powertrade",
            SYMBOL,
            Side.BUY,
            OrderType.LIMIT,
            D("0.01"),
            D(100),
            created_ns=time.time_ns(),
        )
        with (
            trio.fail_after(HANG_GUARD_S),
            pytest.raises(OrderNotFound, match="not in the order cache yet"),
        ):
            await client.query_order(ghost)
        # old enough (Hummingbot's 300 s), it is the venue's positive answer
        old = Order("ghost2", "powertrade", SYMBOL, Side.BUY, OrderType.LIMIT, D("0.01"), D(100),
                    created_ns=time.time_ns() - 301 * 10**9)  # fmt: skip
        with trio.fail_after(HANG_GUARD_S):
            assert await client.query_order(old) is None
            listed = await client.list_open_orders()
        assert [r.client_order_id for r in listed] == [h.client_order_id]


async def test_a_quiet_book_stays_live_and_server_heartbeats_are_answered() -> None:
    """No market activity at all: the server's idle heartbeats are answered and the stream does
    not go STALE (liveness is the WebSocket ping, not data)."""
    async with running(cfg(rfqs=False), journal_path=":memory:") as engine:
        await ready(engine)
        sess = session(engine, "powertrade")
        stream = sess.stream
        with trio.fail_after(HANG_GUARD_S):
            while stream.heartbeats_answered < 2:  # type: ignore[attr-defined]
                await stream.heartbeat_answered.wait()  # type: ignore[attr-defined]
        assert sess.counts["stale"] == 0 and sess.epoch == 1


# --- start-up: the instrument list -----------------------------------------------------------------


async def test_a_big_instrument_list_is_read_and_a_reset_is_retried() -> None:
    """The venue lists every option: an entities_and_rules_response over 1 MiB is read whole;
    connections reset during the fetch are tried again with backoff."""
    symbols = [{"symbol": f"BTC-20231229-{i}C", "tradeable_entity_id": str(100 + i), "status": "active",
                "base_asset": "BTC", "quote_asset": "USD", "minimum_quantity": "0.01", "maximum_quantity": "100.0",
                "minimum_value": "0.00001", "maximum_value": "100000000.0", "quantity_step": "0.01",
                "price_step": "0.1", "tags": ["option"], "padding": "x" * 200} for i in range(4000)]  # fmt: skip
    app = SimApp()
    attempts = [0]

    async def handler(conn: WsConnection, **_: str) -> None:
        attempts[0] += 1
        raw = await conn.receive_text()
        if attempts[0] <= 2:
            conn.abort()  # a reset during the start-up fetch
            return
        tag = orjson.loads(raw)["entities_and_rules_request"]["user_tag"]
        body = {"server_utc_timestamp": "1", "user_tag": tag, "symbols": symbols}
        await conn.send_text(orjson.dumps({"entities_and_rules_response": body}).decode())

    app.ws("/")(handler)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(partial(serve, app))
        url = f"ws://127.0.0.1:{port}/"
        with trio.fail_after(HANG_GUARD_S):
            rules = await fetch_entities(url, 5.0, backoff_s=0.01)
        assert len(rules) == 4000 and attempts[0] == 3
        assert len(orjson.dumps(symbols)) > 1024 * 1024
        attempts[0] = -100  # every connection reset: it gives up, with the error
        with trio.fail_after(HANG_GUARD_S), pytest.raises(FetchError):
            await fetch_entities(url, 5.0, attempts=3, backoff_s=0.01)
        nursery.cancel_scope.cancel()


async def test_start_up_with_open_orders_does_not_hold_back_market_data(tmp_path: Path) -> None:
    """#15 item 9: the journal's open orders are asked for over REST at start-up, which needs
    no logged-in stream; market data starts at once (the WS query waited 10 s an order)."""
    sim = PowerTradeSimulator.build(9)
    journal = str(tmp_path / "j.sqlite")
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(sim.run, market_rate_hz=None))
        async with running(sim_cfg(sim), journal_path=journal) as engine:
            await ready(engine)
            best = sim.engine.best_bid(SYMBOL)
            handles = [
                engine.orders.submit(
                    venue="powertrade",
                    symbol=SYMBOL,
                    side=Side.BUY,
                    quantity=D("0.01"),
                    price=best - 10 - i,
                )
                for i in range(4)
            ]
            await until(engine, lambda: all(h.status is S.ACCEPTED for h in handles), "resting")
        # a new session on the same journal: four open orders to reconcile before streams start
        with trio.fail_after(HANG_GUARD_S / 2):
            async with running(sim_cfg(sim), journal_path=journal) as engine:
                await until(
                    engine, lambda: engine.book("powertrade", SYMBOL).is_synced, "book synced"
                )
                restored = [engine.orders.orders[h.client_order_id] for h in handles]
                assert all(o.status is S.ACCEPTED for o in restored)
        nursery.cancel_scope.cancel()


async def test_start_up_starts_streams_before_asking_about_journal_orders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Engine start order (#15 item 9): streams first, then the journal's open orders. A
    start-up query that is not answered (here: not before the book is synced) holds back
    neither the engine's start nor market data; once answered, the order is reconciled."""
    sim = PowerTradeSimulator.build(9)
    journal = str(tmp_path / "j.sqlite")
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(sim.run, market_rate_hz=None))
        async with running(sim_cfg(sim), journal_path=journal) as engine:
            await ready(engine)
            best = sim.engine.best_bid(SYMBOL)
            handles = [
                engine.orders.submit(
                    venue="powertrade",
                    symbol=SYMBOL,
                    side=Side.BUY,
                    quantity=D("0.01"),
                    price=best - 10 - i,
                )
                for i in range(2)
            ]
            await until(engine, lambda: all(h.status is S.ACCEPTED for h in handles), "resting")
        asked: list[str] = []
        released, answered = trio.Event(), trio.Event()
        real = PowerTradeExecution.query_order

        async def held_query(self: PowerTradeExecution, order: Order) -> Any:
            asked.append(order.client_order_id)
            await released.wait()  # the venue answers only once the test says so
            try:
                return await real(self, order)
            finally:
                answered.set()

        monkeypatch.setattr(PowerTradeExecution, "query_order", held_query)
        async with running(sim_cfg(sim), journal_path=journal) as engine:
            # the engine started and the book synced while the start-up query is unanswered
            await until(engine, lambda: engine.book("powertrade", SYMBOL).is_synced, "synced")
            assert asked and not answered.is_set() and not engine.reconciled.is_set()
            restored = [engine.orders.orders[h.client_order_id] for h in handles]
            assert all(o.status is S.ACCEPTED for o in restored)  # the journal's state, kept
            before = engine.orders.counts["reconciled"]
            released.set()
            with trio.fail_after(HANG_GUARD_S):
                await engine.reconciled.wait()
            assert engine.orders.counts["reconciled"] == before + len(handles)
            assert all(o.status is S.ACCEPTED for o in restored)
        nursery.cancel_scope.cancel()
