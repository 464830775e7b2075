"""The Paxos REST adapter against scripted venue answers (httpx.MockTransport) on a MockClock:
the 5-minute throttle shared by every request, paged executions, an unreadable execution
record, an order whose status runs ahead of its fills, junk bodies and bad Retry-After on the
poll, a NaN tick, market buys sized in quote currency."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from framework.errors import BookNotSynced, ConfigError, OrderRefused
from framework.events import (
    ExecutionReport,
    OrderStatus,
    OrderType,
    Side,
    VenueState,
    VenueStatus,
)
from framework.model import Order
from framework.venues.paxos import PaxosVenue
from framework.venues.paxos.client import PaxosExecution, market_buy_quote
from framework.venues.paxos.throttle import RestThrottle
from framework.venues.paxos.tokens import TokenSource

D = Decimal
VID = "f190b163-208f-4d73-8deb-4fb8b24add00"


class Ctx:
    """The order manager's side of the contract, recording what the client tells it."""

    def __init__(self, orders: list[Order], book: Any = None) -> None:
        self.orders = orders
        self.reports: list[ExecutionReport] = []
        self.events: list[object] = []
        self._book = book

    def on_report(self, report: ExecutionReport) -> None:
        self.reports.append(report)

    def publish(self, event: object) -> None:
        self.events.append(event)

    def open_orders(self, venue: str) -> list[Order]:
        return [o for o in self.orders if o.is_open]

    def book(self, venue: str, symbol: str) -> Any:
        return self._book


def _order(coid: str = "ref-1", **kw: Any) -> Order:
    fields: dict[str, Any] = dict(
        client_order_id=coid,
        venue="paxos",
        symbol="BTCUSD",
        side=Side.BUY,
        type=OrderType.LIMIT,
        quantity=D("1"),
        price=D("100"),
        status=OrderStatus.ACCEPTED,
        venue_order_id=VID,
    )
    fields.update(kw)
    return Order(**fields)


def _paxos_order(status: str, filled: str, ref: str = "ref-1") -> dict[str, Any]:
    return {
        "id": VID,
        "ref_id": ref,
        "status": status,
        "market": "BTCUSD",
        "side": "BUY",
        "type": "LIMIT",
        "price": "100",
        "base_amount": "1",
        "amount_filled": filled,
    }


def _execution(n: int, amount: str = "0.25", **extra: str) -> dict[str, Any]:
    return {
        "execution_id": str(n),
        "order_id": VID,
        "executed_at": "2022-08-01T21:01:27.217Z",
        "market": "BTCUSD",
        "side": "BUY",
        "amount": amount,
        "price": "100",
        "commission": "0.05",
        "commission_asset": "USD",
        "rebate": "0",
        "rebate_asset": "USD",
        **extra,
    }


Handler = Callable[[httpx.Request], httpx.Response]


def _client(handler: Handler, **kw: Any) -> tuple[PaxosExecution, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/oauth2/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        return handler(request)

    transport = httpx.MockTransport(record)
    rest = httpx.AsyncClient(transport=transport, base_url="https://paxos.test/v2/")
    oauth = httpx.AsyncClient(transport=transport, base_url="https://paxos.test")
    throttle = RestThrottle("paxos")
    tokens = TokenSource(oauth, "/oauth2/token", "id", "secret", ("s",), throttle=throttle)
    client = PaxosExecution(rest, tokens, "p", throttle=throttle, **kw)
    return client, seen


def _rest(seen: list[httpx.Request]) -> list[httpx.Request]:
    return [r for r in seen if r.url.path != "/oauth2/token"]


async def test_one_429_holds_every_request_for_five_minutes_with_sparse_probes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    answers = {"throttled": True}
    times: list[float] = []

    def venue(request: httpx.Request) -> httpx.Response:
        times.append(trio.current_time())
        if answers["throttled"]:
            body = {"type": "about:blank", "title": "Too Many Requests", "status": 429}
            return httpx.Response(429, json=body, headers={"retry-after": "nan"})
        if request.url.path.endswith("/balances"):
            return httpx.Response(200, json={"items": []})
        return httpx.Response(200, json={"items": [_paxos_order("OPEN", "0")]})

    client, seen = _client(venue, poll_interval_s=0.05, balance_interval_s=0.05)
    ctx = Ctx([_order()])
    client.bind(ctx)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.run)
        await trio.sleep(1)
        assert client.throttle.is_open()
        # a new order is refused before it leaves; nothing reaches the venue
        with pytest.raises(OrderRefused, match="throttled"):
            await client.submit(_order("ref-2", status=OrderStatus.PENDING))
        await trio.sleep(250)
        answers["throttled"] = False  # the venue's window ends at 300 s
        await trio.sleep(60)
        nursery.cancel_scope.cancel()
    sent = _rest(seen)
    # ~6000 polls at 0.05 s in those 5 minutes; into the throttle went only the first answers
    # (the two pollers start together) and one probe per 30 s, never hundreds of requests
    inside = [t for t in times if t - times[0] < 250]
    assert len(inside) <= 2 + 250 // 30
    assert client.throttle.opened == 1 and not client.throttle.is_open()
    states = [e.state for e in ctx.events if isinstance(e, VenueStatus)]
    assert states[0] is VenueState.THROTTLED and VenueState.CONNECTED in states
    # updates resumed: the poll reached the venue again after the window
    assert any(r.url.path.endswith("/orders") for r in sent[-5:])
    assert not any(r.method == "POST" and r.url.path.endswith("/orders") for r in sent)


async def test_throttle_counts_requests_inside_the_window(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The same, counted by time: within the 300 s window at most one probe per 30 s."""
    times: list[float] = []

    def venue(request: httpx.Request) -> httpx.Response:
        times.append(trio.current_time())
        return httpx.Response(429, json={"type": "about:blank", "status": 429})

    client, _ = _client(venue, poll_interval_s=0.01, balance_interval_s=0.01)
    client.bind(Ctx([_order()]))
    start = trio.current_time()
    with trio.move_on_after(299):
        await client.run()
    window = [t for t in times if t - start < 299]
    # the two pollers' first requests leave together; then one probe per 30 s
    assert 1 <= len(window) <= 2 + 299 // 30
    gaps = [b - a for a, b in itertools.pairwise(window[1:])]
    assert all(g >= 30 for g in gaps)


async def test_executions_are_paged_and_an_unreadable_one_is_asked_for_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bad = {"on": True}
    pages = {
        "": ([_execution(1), _execution(2)], "c1"),
        "c1": ([_execution(3)], "c2"),
        "c2": ([_execution(4)], ""),
    }

    def venue(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/executions"):
            items, cursor = pages[request.url.params.get("page_cursor", "")]
            items = list(items)
            if bad["on"] and request.url.params.get("page_cursor") == "c2":
                items = [_execution(4, amount="NaN")]
            return httpx.Response(200, json={"items": items, "next_page_cursor": cursor})
        return httpx.Response(200, json={"items": [_paxos_order("FILLED", "1.00000000")]})

    client, _ = _client(venue)
    ctx = Ctx([_order()])
    client.bind(ctx)
    first = await client.query_order(_order())
    fills = [r for r in ctx.reports if r.fill_id]
    assert [r.fill_id for r in fills] == ["1", "2", "3"]  # page 3's record was unreadable
    # the order says 1.0 filled, its readable executions 0.75: not FILLED yet, asked again
    assert first is not None and first.status is None
    assert client.counts["bad_executions"] == 1 and client.counts["fills_short"] == 1
    bad["on"] = False
    again = await client.query_order(_order())
    fills = [r for r in ctx.reports if r.fill_id]
    assert [r.fill_id for r in fills] == ["1", "2", "3", "4"]  # never lost, never doubled
    assert again is not None and again.status is OrderStatus.FILLED
    assert sum(r.fill_qty for r in fills) == D("1")


async def test_rebate_is_a_negative_fee(autojump_clock: trio.testing.MockClock) -> None:
    def venue(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/executions"):
            item = _execution(7, amount="1", commission="0", rebate="0.02")
            return httpx.Response(200, json={"items": [item], "next_page_cursor": ""})
        return httpx.Response(200, json={"items": [_paxos_order("FILLED", "1")]})

    client, _ = _client(venue)
    ctx = Ctx([_order()])
    client.bind(ctx)
    await client.query_order(_order())
    (fill,) = [r for r in ctx.reports if r.fill_id]
    assert (fill.fee, fill.fee_asset) == (D("-0.02"), "USD")


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>maintenance</html>"),
        httpx.Response(200, text="null"),
        httpx.Response(200, json={"items": None}),
        httpx.Response(200, json={"items": [_paxos_order("FILLED", "1", ref="someone-else")]}),
        httpx.Response(503, text="busy", headers={"retry-after": "nan"}),
        httpx.Response(503, text="busy", headers={"retry-after": "100000"}),
    ],
    ids=["html", "null", "items-null", "wrong-ref", "retry-after-nan", "retry-after-100000"],
)
async def test_junk_on_the_poll_never_kills_it_nor_stops_updates(
    autojump_clock: trio.testing.MockClock, response: httpx.Response
) -> None:
    state = {"junk": 3}

    def venue(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/balances"):
            return httpx.Response(200, json={"items": []})
        if request.url.path.endswith("/executions"):
            return httpx.Response(200, json={"items": [], "next_page_cursor": ""})
        if state["junk"]:
            state["junk"] -= 1
            return httpx.Response(
                response.status_code, content=response.content, headers=response.headers
            )
        return httpx.Response(200, json={"items": [_paxos_order("CANCELLED", "0")]})

    client, _ = _client(venue, poll_interval_s=0.5, balance_interval_s=60)
    ctx = Ctx([_order()])
    client.bind(ctx)
    with trio.move_on_after(120):
        await client.run()  # would raise if the loop died
    assert client.counts["loop_errors"] == 3
    assert any(r.status is OrderStatus.CANCELLED for r in ctx.reports)  # updates resumed
    assert any(
        isinstance(e, VenueStatus) and e.state is VenueState.STALE for e in ctx.events
    )  # the strategy was told


async def test_a_nan_tick_in_the_catalogue_is_refused() -> None:
    def venue(request: httpx.Request) -> httpx.Response:
        market = {"market": "BTCUSD", "base_asset": "BTC", "quote_asset": "USD"}
        return httpx.Response(200, json={"markets": [market | {"tick_rate": "NaN"}]})

    rest = httpx.AsyncClient(transport=httpx.MockTransport(venue), base_url="https://p.test/v2/")
    with pytest.raises(ConfigError, match="tick_rate"):
        await PaxosVenue._instruments(rest, ["BTCUSD"])


class _Book:
    def __init__(self, ask: Decimal | None, synced: bool = True) -> None:
        self.ask, self.synced = ask, synced

    def best_bid(self) -> None:
        return None

    def best_ask(self) -> tuple[Decimal, Decimal] | None:
        if not self.synced:
            raise BookNotSynced("BTCUSD")
        return None if self.ask is None else (self.ask, D(1))


async def test_a_market_buy_is_sent_by_quote_amount_from_the_synced_book(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bodies: list[bytes] = []

    def venue(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            bodies.append(request.content)
            return httpx.Response(200, json=_paxos_order("SUBMITTED", "0", ref="mb-1"))
        return httpx.Response(200, json={"items": [], "next_page_cursor": ""})

    market_buy = _order(
        "mb-1", type=OrderType.MARKET, price=None, quantity=D("0.5"), status=OrderStatus.PENDING
    )
    for book in (None, _Book(None), _Book(D("100"), synced=False)):
        client, seen = _client(venue)
        client.bind(Ctx([], book))
        with pytest.raises(OrderRefused, match="quote currency"):
            await client.submit(market_buy)
        assert _rest(seen) == []  # refused before anything left
    client, _ = _client(venue)
    client.bind(Ctx([], _Book(D("60000.25"))))
    await client.submit(market_buy)
    import orjson

    body = orjson.loads(bodies[-1])
    assert body["quote_amount"] == "30000.12" and "base_amount" not in body  # [DOC]
    assert market_buy_quote(D("0.00000001"), D("60000")) == D("0")
    sell = _order("ms-1", type=OrderType.MARKET, side=Side.SELL, price=None, quantity=D("0.5"))
    await client.submit(sell)
    body = orjson.loads(bodies[-1])
    assert body["base_amount"] == "0.5" and "quote_amount" not in body
