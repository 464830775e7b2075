"""Open Trade request/reply without a socket: replies that carry no `requestId` ([DOC] none of the
published ones do) still answer the right request: by command and channel in order, by the
order's own item, or (a cancel) by the instrument's oldest CANCEL."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest
import trio
import trio.testing

from framework.errors import OrderRefused
from framework.events import OrderType, Side
from framework.model import Order
from framework.venues.opentrade.client import OpenTradeExecution, PrivateStream

SYM = "BTC/USD"


class _Tokens:
    async def token(self) -> str:
        return "jwt"

    def invalidate(self) -> None:
        pass


class _Conn:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)


def _client() -> tuple[PrivateStream, OpenTradeExecution, _Conn, list]:
    stream = PrivateStream("wss://ot.invalid/exchange/ws", _Tokens(), [SYM], [])  # type: ignore[arg-type]
    events: list = []
    stream.emit = events.append
    conn = _Conn()
    stream.requests.connected(conn)
    stream.conn = conn  # type: ignore[assignment]
    stream.ready.set()
    return stream, OpenTradeExecution(stream, timeout_s=5), conn, events


def _order(coid: str = "c1") -> Order:
    return Order(coid, "opentrade", SYM, Side.BUY, OrderType.LIMIT, Decimal("0.01"), Decimal(100))


def _feed(stream: PrivateStream, message: dict[str, Any]) -> None:
    stream.decode(orjson.dumps(message), 1)


async def _sent(conn: _Conn, n: int) -> None:
    await trio.testing.wait_all_tasks_blocked()
    assert len(conn.sent) == n


async def test_create_is_answered_by_the_orders_own_item_and_it_is_still_reported(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stream, client, conn, events = _client()
    item = {"class": "Order", "orderId": "c1", "exchOrderId": "77", "globalInstrumentCd": SYM,
            "direction": "BUY", "orderType": "LIMIT", "orderStatus": "ACTIVE", "price": "100",
            "amount": "0.01"}  # fmt: skip
    update = {"command": "SUBSCRIBE", "event": "UPDATE", "channel": "TRADE_PRIVATE", "data": [item]}

    async def answer() -> None:
        await _sent(conn, 1)
        _feed(stream, update)  # no requestId, no ACK

    async with trio.open_nursery() as nursery:
        nursery.start_soon(answer)
        assert await client.submit(_order()) is None
    assert conn.sent[0]["command"] == "CREATE"
    assert [e.client_order_id for e in events] == ["c1"]  # the frame was decoded too
    assert stream.correlator.in_flight() == 0


async def test_an_error_without_request_id_answers_the_oldest_create(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stream, client, conn, _ = _client()
    outcome: dict[str, object] = {}

    async def submit(coid: str) -> None:
        try:
            outcome[coid] = await client.submit(_order(coid))
        except OrderRefused as exc:
            outcome[coid] = exc.reason

    error = {"command": "CREATE", "event": "ERROR", "channel": "TRADE_PRIVATE", "message": "no"}
    item = {"class": "Order", "orderId": "c2", "globalInstrumentCd": SYM, "orderStatus": "NEW"}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(submit, "c1")
        await _sent(conn, 1)
        nursery.start_soon(submit, "c2")
        await _sent(conn, 2)
        _feed(stream, error)  # the oldest CREATE's
        _feed(stream, {"event": "UPDATE", "channel": "TRADE_PRIVATE", "data": [item]})
    assert outcome == {"c1": "no", "c2": None}


async def test_a_cancel_ack_naming_no_order_answers_the_oldest_cancel_of_its_pair(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stream, client, conn, _ = _client()
    ack = {"class": "OrderUpdate", "clientId": 1, "instrumentCd": SYM, "exchangeOrderId": None,
           "clientOrderId": None, "orderRequestStatus": "CANCELLED", "message": ""}  # fmt: skip

    async def answer() -> None:
        await _sent(conn, 1)
        _feed(stream, {"event": "UPDATE", "channel": "TRADE_PRIVATE", "data": [ack]})

    async with trio.open_nursery() as nursery:
        nursery.start_soon(answer)
        assert await client.cancel(_order()) is None
    assert conn.sent[0]["command"] == "CANCEL" and stream.correlator.in_flight() == 0


async def test_a_get_without_request_id_is_answered_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stream, _, conn, _ = _client()
    got: list[object] = []

    async def get(n: int) -> None:
        reply = await stream.request({"command": "GET", "channel": "TRADE_POSITIONS"}, 5)
        got.append((n, reply["data"]))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(get, 1)
        await _sent(conn, 1)
        nursery.start_soon(get, 2)
        await _sent(conn, 2)
        for data in (["first"], ["second"]):
            _feed(stream, {"command": "GET", "channel": "TRADE_POSITIONS", "data": data})
    assert sorted(got) == [(1, ["first"]), (2, ["second"])]


async def test_a_plain_ws_override_to_a_remote_host_is_refused_before_connecting() -> None:
    from framework.venues.opentrade.client import fetch_catalogue

    with pytest.raises(ValueError, match=r"unencrypted ws:// to non-loopback host example\.com"):
        await fetch_catalogue("ws://example.com/exchange/ws", 1.0)
