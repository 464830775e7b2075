"""Open Trade request/answer without a socket. [DOC] no published answer carries a `requestId`
and none names a GET's category, so commands go one at a time behind a PING barrier; answers are
the published forms (the CREATE answer in the GET form without an event, the MODIFY answer as a
GET frame, the cancel `OrderUpdate` naming the order or not) or the order's own update; fill
sizes missing from an `Order` item come from TRADES_HISTORY."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson
import pytest
import trio
import trio.testing

from framework.errors import NotConnected, OrderRefused, RequestTimeout
from framework.events import ExecutionReport, OrderStatus, OrderType, Side
from framework.model import Order
from framework.venues.opentrade.execution import OpenTradeExecution
from framework.venues.opentrade.fills import UNLISTED_TRIES
from framework.venues.opentrade.private import PrivateStream

SYM = "BTC/USD"
TP = "TRADE_PRIVATE"
D = Decimal


class _Tokens:
    fetched = trio.Event()

    async def token(self) -> str:
        return "jwt"

    def invalidate(self) -> None:
        pass

    def seconds_to_refresh(self) -> float | None:
        return None


Responder = Callable[[dict[str, Any]], list[dict[str, Any]]]


class _Conn:
    """Answers each PING with a PONG, and each command with what `respond` returns (fed to the
    stream as the venue would send it, after the command)."""

    def __init__(self, stream: PrivateStream, respond: Responder) -> None:
        self.stream = stream
        self.respond = respond
        self.sent: list[dict[str, Any]] = []
        self.before_pong: list[dict[str, Any]] = []  # stale frames queued ahead of the next PONG
        self.closed: tuple[int, str] | None = None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = (code, reason)

    async def send(self, message: dict[str, Any]) -> None:
        if message.get("command") == "PING":
            for frame in self.before_pong:
                _feed(self.stream, frame)
            self.before_pong = []
            _feed(self.stream, {"event": "PONG", "channel": "PING"})
            return
        self.sent.append(message)
        for frame in self.respond(message):
            _feed(self.stream, frame)


def _client(respond: Responder) -> tuple[PrivateStream, OpenTradeExecution, _Conn, list]:
    stream = PrivateStream("wss://ot.invalid/exchange/ws", _Tokens(), [SYM], [])  # type: ignore[arg-type]
    events: list = []
    stream.emit = events.append
    conn = _Conn(stream, respond)
    stream.requests.connected(conn)
    stream.conn = conn  # type: ignore[assignment]
    stream.ready.set()
    return stream, OpenTradeExecution(stream, timeout_s=5), conn, events


def _order(coid: str = "c1", qty: str = "0.01") -> Order:
    return Order(coid, "opentrade", SYM, Side.BUY, OrderType.LIMIT, D(qty), D(100))


def _feed(stream: PrivateStream, message: dict[str, Any]) -> None:
    stream.decode(orjson.dumps(message), 1)


def _item(coid: str, status: str, **extra: Any) -> dict[str, Any]:
    return {"class": "Order", "orderId": coid, "exchOrderId": "77", "globalInstrumentCd": SYM,
            "direction": "BUY", "orderType": "LIMIT", "orderStatus": status, "price": 100.0,
            "filledPrice": 0.0, "amount": 0.01, **extra}  # fmt: skip


def _answer(*items: dict[str, Any], event: bool = False) -> dict[str, Any]:
    frame: dict[str, Any] = {"command": "GET", "channel": TP, "data": list(items)}
    return {**frame, "event": "GET"} if event else frame


def _update(*items: dict[str, Any]) -> dict[str, Any]:
    return {"command": "SUBSCRIBE", "event": "UPDATE", "channel": TP, "data": list(items)}


def _trades(*fills: tuple[str, str, str]) -> dict[str, Any]:
    """A TRADES_HISTORY answer: one `Order` item per fill (coid, size, price)."""
    items = [{"class": "Order", "clientOrderId": coid, "exchangeOrderId": "77",
              "globalInstrumentCd": SYM, "direction": "BUY", "orderType": "LIMIT",
              "orderStatus": "PARTIALLY_FILLED", "amount": float(size),
              "filledPrice": float(price)} for coid, size, price in fills]  # fmt: skip
    return _answer(*items, event=True)


def _category(message: dict[str, Any]) -> str | None:
    for arg in message.get("channelArgs") or []:
        if arg["name"] == "category":
            return arg["value"]
    return None


ACK = {"command": "CREATE", "event": "ACK", "channel": TP}
CANCEL_ACK = {"class": "OrderUpdate", "clientId": 100141, "requestType": "SMART",
              "tradeSide": "BUY", "instrumentCd": SYM, "exchangeOrderId": None,
              "clientOrderId": None, "transactionId": 1668897424879,
              "orderRequestStatus": "CANCELLED", "message": "",
              "key": "100141:BTC/USD:352908720"}  # fmt: skip


async def test_create_is_answered_by_the_published_get_form_and_the_answer_is_not_news(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stream, client, conn, events = _client(
        lambda msg: [ACK, _answer(_item("c1", "NEW")), _update(_item("c1", "NEW"))]
    )
    report = await client.submit(_order())
    assert report is not None and report.client_order_id == "c1" and report.status is None
    assert conn.sent[0]["command"] == "CREATE"
    # the answer resolved the CREATE; only the update was decoded as news
    assert [e.client_order_id for e in events] == ["c1"]
    assert stream.correlator.in_flight() == 0


async def test_create_is_answered_by_the_orders_update_when_no_answer_form_comes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    _stream, client, _, events = _client(lambda msg: [ACK, _update(_item("c1", "ACTIVE"))])
    report = await client.submit(_order())
    assert report is not None and report.status is OrderStatus.ACCEPTED
    assert [e.status for e in events] == [OrderStatus.ACCEPTED]  # still reported


@pytest.mark.parametrize(
    "error",
    [
        {"command": "CREATE", "event": "ERROR", "channel": TP, "message": "no"},
        {"event": "ERROR", "channel": TP, "message": "no"},  # [INF] fields undocumented
    ],
)
async def test_an_error_refusing_a_create_is_that_orders_and_creates_go_one_at_a_time(
    autojump_clock: trio.testing.MockClock, error: dict[str, Any]
) -> None:
    answers = {"c1": [error], "c2": [ACK, _answer(_item("c2", "NEW"))]}
    _stream, client, conn, _ = _client(lambda msg: answers[msg["data"][0]["clientOrderId"]])
    outcome: dict[str, object] = {}

    async def submit(coid: str) -> None:
        try:
            outcome[coid] = (await client.submit(_order(coid))).client_order_id  # type: ignore[union-attr]
        except OrderRefused as exc:
            outcome[coid] = exc.reason

    async with trio.open_nursery() as nursery:
        nursery.start_soon(submit, "c1")
        nursery.start_soon(submit, "c2")
    assert outcome == {"c1": "no", "c2": "c2"}
    assert len(conn.sent) == 2


async def test_a_stale_error_before_the_barrier_refuses_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A duplicated or late ERROR of an earlier command arrives before this command's PONG:
    it answers nothing, and the CREATE gets its own answer."""
    stream, client, conn, _ = _client(lambda msg: [ACK, _answer(_item("c1", "NEW"))])
    conn.before_pong = [{"command": "CREATE", "event": "ERROR", "channel": TP, "message": "old"}]
    report = await client.submit(_order())
    assert report is not None and report.client_order_id == "c1"
    assert stream.errors == ["CREATE TRADE_PRIVATE: old"]


class _SlowVenue:
    """A venue that answers each message one second after the one before, in order: a PING
    with a PONG, a command with `respond`; `stale` frames go out just before the PONG of the
    `stale_at`-th PING (the late answer to some earlier command)."""

    def __init__(self, stream: PrivateStream, respond: Responder) -> None:
        self.stream, self.respond = stream, respond
        self.inbox: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.stale: list[dict[str, Any]] = []
        self.stale_at = 1
        self.pings = 0
        self.arrived = trio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        self.inbox.append(message)
        self.arrived.set()

    async def serve(self) -> None:
        while True:
            while not self.inbox:
                self.arrived = trio.Event()
                await self.arrived.wait()
            message = self.inbox.pop(0)
            await trio.sleep(1)
            if message.get("command") == "PING":
                self.pings += 1
                if self.pings == self.stale_at:
                    for frame in self.stale:
                        _feed(self.stream, frame)
                _feed(self.stream, {"event": "PONG", "channel": "PING"})
            else:
                self.sent.append(message)
                for frame in self.respond(message):
                    _feed(self.stream, frame)


async def test_a_heartbeats_pong_does_not_open_a_commands_barrier(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A heartbeat PING's PONG still on its way when a command's barrier PING leaves: the barrier
    waits for its own PONG, so a late ERROR of an earlier command, which the venue sends between
    the two PONGs, refuses nothing (PONGs answer PINGs in order; counting them is the only way to
    tell them apart)."""
    stream, client, _, _ = _client(lambda msg: [ACK, _answer(_item("c1", "NEW"))])
    venue = _SlowVenue(stream, lambda msg: [ACK, _answer(_item("c1", "NEW"))])
    stream.requests.connected(venue)  # type: ignore[arg-type]
    stream.conn = venue  # type: ignore[assignment]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(venue.serve)
        await stream.send_heartbeat(venue)  # type: ignore[arg-type]
        # between the heartbeat's PONG and the barrier's
        venue.stale = [{"command": "CREATE", "event": "ERROR", "channel": TP, "message": "old"}]
        venue.stale_at = 2
        report = await client.submit(_order())
        nursery.cancel_scope.cancel()
    assert report is not None and report.client_order_id == "c1"
    assert stream.errors == ["CREATE TRADE_PRIVATE: old"]
    assert [m["command"] for m in venue.sent] == ["CREATE"]


async def test_a_lost_pong_costs_one_command_not_every_later_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A PING whose PONG never comes: the command behind it does not leave (NotConnected, not
    sent), and the next command's barrier waits only for its own PONG."""
    _, client, conn, _ = _client(
        lambda msg: [ACK, _answer(_item(msg["data"][0]["clientOrderId"], "NEW"))]
    )
    lost = True
    real_send = conn.send

    async def send(message: dict[str, Any]) -> None:
        nonlocal lost
        if message.get("command") == "PING" and lost:
            lost = False  # this PING's PONG is lost
            return
        await real_send(message)

    conn.send = send  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await client.submit(_order("c1"))
    assert conn.sent == []  # the CREATE never left
    report = await client.submit(_order("c2"))
    assert report is not None and report.client_order_id == "c2"
    assert [m["command"] for m in conn.sent] == ["CREATE"]


async def test_an_unanswered_command_ends_the_connection_so_its_late_answer_answers_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A CREATE with no answer in time is UNKNOWN (RequestTimeout). Its answer may still come
    after a later command's barrier and would be taken for that one's: the connection is ended,
    and no command goes out on it."""
    stream, client, conn, _ = _client(lambda msg: [])
    with pytest.raises(RequestTimeout):
        await client.submit(_order("c1"))
    assert conn.closed is not None and stream.counts["fenced"] == 1
    assert stream.conn is None and not stream.ready.is_set()
    with pytest.raises(OrderRefused, match="not ready"):  # until the session reconnects
        await client.submit(_order("c2"))
    assert [m["data"][0]["clientOrderId"] for m in conn.sent] == ["c1"]  # c2 never left
    with pytest.raises(NotConnected):  # a query too: nothing goes out on the ended connection
        await stream.request({"command": "GET", "channel": TP}, timeout_s=5)


async def test_a_command_the_caller_gave_up_on_ends_the_connection_too(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The order manager's deadline (it covers the barrier too) may come before the stream's
    own: the unanswered command's connection is ended all the same."""
    stream, client, conn, _ = _client(lambda msg: [])
    with pytest.raises(trio.TooSlowError), trio.fail_after(1):  # the stream waits 5 s
        await client.submit(_order("c1"))
    assert conn.closed is not None and stream.counts["fenced"] == 1
    assert stream.conn is None


async def test_a_create_is_never_sent_twice_even_after_an_auth_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    error = {"command": "CREATE", "event": "ERROR", "channel": TP,
             "message": "invalid signature: token expired"}  # fmt: skip
    stream, client, conn, _ = _client(lambda msg: [error])
    with pytest.raises(OrderRefused, match="token expired"):
        await client.submit(_order())
    assert len(conn.sent) == 1 and stream.reauth.is_set()


@pytest.mark.parametrize("names_order", [False, True])
async def test_the_cancel_acknowledgement_ends_the_order_with_its_partial_fill_booked(
    autojump_clock: trio.testing.MockClock, names_order: bool
) -> None:
    """[CODE] the published `OrderUpdate` has null ids (answers the CANCEL in flight); an
    option names the order. Either ends it, with the fills TRADES_HISTORY lists summed."""
    ack = {**CANCEL_ACK, "clientOrderId": "c1" if names_order else None}

    def respond(msg: dict[str, Any]) -> list[dict[str, Any]]:
        if msg["command"] == "CANCEL":
            return [{"command": "CANCEL", "event": "ACK", "channel": TP}, _update(ack)]
        assert _category(msg) == "TRADES_HISTORY"
        return [_trades(("c1", "0.003", "100"), ("other", "0.5", "1"), ("c1", "0.001", "99"))]

    _, client, conn, _ = _client(respond)
    report = await client.cancel(_order())
    assert report is not None and report.status is OrderStatus.CANCELLED
    assert report.cum_qty == D("0.004") and report.fill_id == "c1:cum:0.004"
    assert report.avg_price == (D("0.003") * 100 + D("0.001") * 99) / D("0.004")
    assert [m["command"] for m in conn.sent] == ["CANCEL", "GET"]


async def test_the_cancelled_order_in_the_answer_form_ends_it_too(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cancelled = {**_item("c1", "CANCELLED"), "filledAmount": 0.002}  # size on the item: used

    def respond(msg: dict[str, Any]) -> list[dict[str, Any]]:
        assert msg["command"] == "CANCEL"
        return [_answer(cancelled)]

    stream, client, conn, _ = _client(respond)
    report = await client.cancel(_order())
    assert report is not None and report.status is OrderStatus.CANCELLED
    assert report.cum_qty == D("0.002")
    assert len(conn.sent) == 1  # sized by the item: no TRADES_HISTORY asked
    assert stream.correlator.in_flight() == 0


async def test_a_partial_fill_update_waits_for_its_size_and_the_cancel_waits_behind_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def respond(msg: dict[str, Any]) -> list[dict[str, Any]]:
        assert _category(msg) == "TRADES_HISTORY"
        return [_trades(("c1", "0.004", "100"))]

    stream, client, _conn, events = _client(respond)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.run)
        _feed(stream, _update(_item("c1", "PARTIALLY_FILLED")))
        _feed(stream, _update(_item("c1", "CANCELLED")))
        assert events == []  # neither booked before the size is known
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert [(e.status, e.cum_qty) for e in events] == [
        (OrderStatus.PARTIALLY_FILLED, D("0.004")),
        (OrderStatus.CANCELLED, D("0.004")),
    ]
    assert all(isinstance(e, ExecutionReport) for e in events)


async def test_a_partial_fill_the_history_does_not_list_yet_is_asked_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """[INF] when the venue writes its trade history is not shown: a PARTIALLY_FILLED whose
    fill TRADES_HISTORY does not list yet is not booked as a fill of nothing; it is asked again
    until the history lists it."""
    answers = [_trades(), _trades(), _trades(("c1", "0.004", "100"))]

    def respond(msg: dict[str, Any]) -> list[dict[str, Any]]:
        assert _category(msg) == "TRADES_HISTORY"
        return [answers.pop(0) if answers else _trades(("c1", "0.004", "100"))]

    stream, client, conn, events = _client(respond)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.run)
        _feed(stream, _update(_item("c1", "PARTIALLY_FILLED")))
        _feed(stream, _update(_item("c1", "CANCELLED")))
        while len(events) < 2:
            await trio.sleep(0.1)  # the mock clock's: the sizer's backoff passes at once
        nursery.cancel_scope.cancel()
    assert [(e.status, e.cum_qty) for e in events] == [
        (OrderStatus.PARTIALLY_FILLED, D("0.004")),
        (OrderStatus.CANCELLED, D("0.004")),
    ]
    assert len(conn.sent) == 4  # two empty answers, then one per report


async def test_a_partial_fill_the_history_never_lists_goes_on_without_a_size(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The asking is bounded: the status goes on unsized (no fill booked from nothing), and the
    order's later reports are not held behind it for ever."""
    stream, client, conn, events = _client(lambda msg: [_trades()])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.run)
        _feed(stream, _update(_item("c1", "PARTIALLY_FILLED")))
        _feed(stream, _update(_item("c1", "CANCELLED")))
        while len(events) < 2:
            await trio.sleep(0.1)  # the mock clock's
        nursery.cancel_scope.cancel()
    assert [(e.status, e.cum_qty, e.fill_id) for e in events] == [
        (OrderStatus.PARTIALLY_FILLED, None, None),
        (OrderStatus.CANCELLED, D(0), None),
    ]
    assert len(conn.sent) == UNLISTED_TRIES + 1


async def test_a_trade_history_answer_is_never_taken_for_another_query(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An unclaimed GET answer (late or duplicated) is not decoded as order news: a trade
    history item's `amount` is a fill's size, not the order's."""
    stream, _, _, events = _client(lambda msg: [])
    _feed(stream, _trades(("c1", "0.004", "100")))
    _feed(stream, _answer(_item("c1", "ACTIVE")))
    assert events == [] and stream.counts["stale_replies"] == 2


async def test_the_connect_confirmation_is_tolerated(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stream, _, _, events = _client(lambda msg: [])
    _feed(stream, {"event": "CONNECTED"})
    assert events == [] and stream.decoder.notices == 1


async def test_a_get_is_answered_by_the_frame_after_its_barrier(
    autojump_clock: trio.testing.MockClock,
) -> None:
    positions = [{"class": "TradePosition", "direction": "BUY", "globalInstrumentCd": SYM,
                  "posVolume": 0.001}]  # fmt: skip
    stream, _, conn, _ = _client(
        lambda msg: [
            {"command": "GET", "event": "GET", "channel": msg["channel"], "data": positions}
        ]
    )
    conn.before_pong = [
        {"command": "GET", "event": "GET", "channel": "TRADE_POSITIONS", "data": []}
    ]
    reply = await stream.request({"command": "GET", "channel": "TRADE_POSITIONS"}, 5)
    assert reply["data"][0]["posVolume"] == D("0.001")


async def test_a_plain_ws_override_to_a_remote_host_is_refused_before_connecting() -> None:
    from framework.venues.opentrade.public import fetch_catalogue

    with pytest.raises(ValueError, match=r"unencrypted ws:// to non-loopback host example\.com"):
        await fetch_catalogue("ws://example.com/exchange/ws", 1.0)


# --- tokens -------------------------------------------------------------------------------------


def _token_http(*, post_token: int = 200) -> tuple[Any, list[str]]:
    """A venue's login and token endpoints (JWTs valid 60 s from wall time 1000)."""
    import httpx
    import jwt

    calls: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.method} {request.url.path}")
        if request.url.path == "/auth/login":
            return httpx.Response(200, headers={"set-cookie": "JSESSIONID=s1; Path=/"})
        if request.method == "POST" and post_token != 200:
            return httpx.Response(post_token)
        if request.method == "GET":
            assert request.url.params["clientSecret"] == "secret"
        token = jwt.encode({"sub": "api", "exp": 1060, "n": len(calls)}, "k" * 32)
        return httpx.Response(200, text=token)

    return httpx.AsyncClient(transport=httpx.MockTransport(handle), base_url="https://ot"), calls


async def test_the_documented_get_token_form_is_used_when_the_post_is_not_served() -> None:
    from framework.venues.opentrade.auth import TokenSource

    http, calls = _token_http(post_token=404)
    tokens = TokenSource(http, "user", "pw", "api", "secret", wall=lambda: 1000.0)
    assert (await tokens.token()).count(".") == 2
    assert calls == [
        "POST /auth/login",
        "POST /auth/auth/jwt/clients/api/token",
        "GET /auth/auth/jwt/client/api/token",
    ]


async def test_the_proactive_refresh_is_armed_from_the_first_token(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """No auth error ever: the first token (fetched when the stream connects) alone arms the
    refresh before its `exp`, which resubscribes with the new token."""
    from framework.venues.opentrade.auth import TokenSource

    http, _ = _token_http()
    tokens = TokenSource(http, "user", "pw", "api", "secret", wall=lambda: 1000.0)
    stream, client, conn, _ = _client(
        lambda msg: [{"command": "SUBSCRIBE", "event": "ACK", "channel": msg["channel"]}]
    )
    stream.tokens = client.tokens = tokens
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.run)
        await trio.testing.wait_all_tasks_blocked()
        first = await tokens.token()  # as the stream's connect does
        await trio.sleep(50)  # 60 s lifetime, refreshed 6 s (10 %) ahead of its end
        assert tokens.fetches == 1 and conn.sent == []
        await trio.sleep(5)
        assert tokens.fetches == 2 and client.counts["reauths"] == 1
        (resubscribe,) = conn.sent
        assert resubscribe["channel"] == TP and resubscribe["signature"] not in ("", first)
        nursery.cancel_scope.cancel()


async def test_a_subscribe_answered_by_a_get_frame_is_ready_and_a_stale_one_later_is_not(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """[DOC] the page shows the TRADE_PRIVATE subscribe answered by a GET frame (the active
    orders), where BALANCE shows an ACK: either makes the stream ready, once."""
    stream, _, conn, events = _client(lambda msg: [])
    stream.ready.clear()
    await stream.subscribe_private(conn, "jwt")  # type: ignore[arg-type]
    _feed(stream, _answer(_item("c9", "ACTIVE"), event=True))
    assert stream.ready.is_set() and events == []
    stream.ready.clear()  # e.g. an auth error killed the subscription
    _feed(stream, _answer(_item("c9", "ACTIVE"), event=True))  # a late duplicate
    assert not stream.ready.is_set()


async def test_a_cancels_trailing_answer_is_not_taken_for_the_next_gets(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The `OrderUpdate` answers the CANCEL; the order itself, in the CANCEL answer's GET form,
    comes only after the next command's PONG (a PONG can overtake a frame the venue holds back).
    That next command is the TRADES_HISTORY query sizing the cancel: the order's `amount` in the
    trailing answer is no fill, and the order ends CANCELLED with nothing filled (it was booked
    as a fill of the whole order before)."""
    update = {"command": "SUBSCRIBE", "event": "UPDATE", "channel": TP, "data": [
        {"class": "OrderUpdate", "instrumentCd": SYM, "clientOrderId": None,
         "exchangeOrderId": None, "orderRequestStatus": "CANCELLED"}]}  # fmt: skip
    trailing = _answer(_item("c1", "CANCELLED"))  # the CANCEL answer form: GET, no event

    def respond(msg: dict[str, Any]) -> list[dict[str, Any]]:
        if msg["command"] == "CANCEL":
            return [ACK, update]
        return [ACK, trailing, _trades()]  # the trailing answer, then the history (no fills)

    stream, client, _, _ = _client(respond)
    report = await client.cancel(_order("c1"))
    assert report is not None and report.status is OrderStatus.CANCELLED
    assert not report.cum_qty
    assert stream.counts["stale_replies"] == 1
