"""Pre-trade refusals: an order that breaks its instrument's or venue's rules never leaves."""

from __future__ import annotations

from decimal import Decimal as D
from types import SimpleNamespace
from typing import Any

import pytest
import trio
import trio.testing
from trio.testing import MockClock

from framework.events import (
    ExecutionReport,
    OrderRejected,
    OrderType,
    Side,
    TimeInForce,
)
from framework.execution.journal import Journal
from framework.model import Order
from framework.strategy import Strategy
from tests.execution.harness import (
    SYM,
    VENUE,
    FakeClient,
    Harness,
    S,
    running,
)

# --- refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"venue": "nowhere"}, "takes no orders"),
        ({"qty": "0"}, "quantity must be positive"),
        ({"qty": "-1"}, "quantity must be positive"),
        ({"price": None}, "limit order needs a price"),
        ({"price": "0"}, "price must be positive"),
        ({"price": "100.1"}, "not a multiple of tick"),
        ({"qty": "1.0005"}, "not a multiple of lot"),
        ({"qty": "0.001"}, "below minimum"),
        ({"qty": "101"}, "above maximum"),
        ({"symbol": "DOGEUSD"}, "unknown symbol"),
        ({"type": OrderType.MARKET, "price": None, "post_only": True}, "post-only"),
        ({"tif": TimeInForce.GTD}, "expire_at_ns"),
        ({"qty": "0.002", "price": "0.25"}, "notional below minimum"),
    ],
)
async def test_refusals_never_reach_the_client(
    kw: dict[str, Any], reason: str, autojump_clock: MockClock
) -> None:
    async with running() as h:
        qty = kw.pop("qty", "1")
        price = kw.pop("price", "100")
        handle = h.buy(qty, price, **kw)
        assert handle.status is S.REJECTED
        assert handle.order.reason is not None
        assert reason in handle.order.reason
        with trio.fail_after(1):
            assert await handle.done() is handle.order  # already final
        await trio.testing.wait_all_tasks_blocked()
        assert h.client.calls == []
        assert h.journal.load(handle.client_order_id) is None
        (event,) = h.events.of(handle.client_order_id)
        assert isinstance(event, OrderRejected)
        assert reason in event.reason
        assert h.om.counts["refused"] == 1
        assert h.om.counts["submitted"] == 0


class StopClient(FakeClient):
    """A venue that takes stop orders too."""

    order_types = frozenset(OrderType)


STOP = {"type": OrderType.STOP_MARKET, "price": None, "stop_price": D("100")}


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        # the venue lists no stop types (FakeClient keeps the default LIMIT / MARKET)
        ({**STOP, "client": FakeClient()}, "does not take STOP_MARKET orders"),
        (
            {**STOP, "type": OrderType.STOP_LIMIT, "price": "101", "client": FakeClient()},
            "does not take STOP_LIMIT orders",
        ),
        ({"stop_price": D("100")}, "LIMIT order takes no stop_price"),
        ({"type": OrderType.MARKET, "price": None, "stop_price": D("100")}, "takes no stop_price"),
        ({**STOP, "stop_price": None}, "stop order needs a stop_price"),
        ({**STOP, "stop_price": D("0")}, "stop_price must be positive"),
        ({**STOP, "stop_price": D("-100")}, "stop_price must be positive"),
        ({**STOP, "stop_price": D("NaN")}, "stop_price must be a finite Decimal"),
        ({**STOP, "stop_price": D("Infinity")}, "stop_price must be a finite Decimal"),
        ({**STOP, "stop_price": 100.0}, "stop_price must be a finite Decimal"),
        ({**STOP, "stop_price": D("100.1")}, "stop_price 100.1 is not a multiple of tick"),
        ({**STOP, "type": OrderType.STOP_LIMIT}, "stop-limit order needs a price"),
        ({**STOP, "type": OrderType.STOP_LIMIT, "price": "0"}, "price must be positive"),
        ({**STOP, "price": "100", "post_only": True}, "post-only needs a limit order"),
        (
            {**STOP, "type": OrderType.STOP_LIMIT, "price": "100", "post_only": True},
            "post-only needs a limit order",
        ),
        # a stop market's notional is estimated at its trigger
        ({**STOP, "qty": "0.002", "stop_price": D("0.25")}, "notional below minimum"),
    ],
)
async def test_stop_refusals_never_reach_the_client(
    kw: dict[str, Any], reason: str, autojump_clock: MockClock
) -> None:
    client = kw.pop("client", None) or StopClient()
    async with running(client=client) as h:
        handle = h.buy(kw.pop("qty", "1"), kw.pop("price", "100"), **kw)
        assert handle.status is S.REJECTED
        assert reason in (handle.order.reason or "")
        await trio.testing.wait_all_tasks_blocked()
        assert h.client.calls == []
        assert h.journal.load(handle.client_order_id) is None
        (event,) = h.events.of(handle.client_order_id)
        assert isinstance(event, OrderRejected) and reason in event.reason


@pytest.mark.parametrize(
    ("kind", "price"), [(OrderType.STOP_MARKET, None), (OrderType.STOP_LIMIT, "101")]
)
async def test_stop_order_reaches_a_venue_that_takes_it_with_its_trigger_journaled(
    kind: OrderType, price: str | None, autojump_clock: MockClock
) -> None:
    seen: list[Order] = []

    async def submit(order: Order) -> ExecutionReport | None:
        seen.append(order)
        return await FakeClient.accept(order)

    async with running(client=StopClient()) as h:
        h.client.on_submit = submit
        handle = h.buy("1", price, type=kind, stop_price=D("100.25"))
        await h.events.until_status(handle, S.ACCEPTED)
        (sent,) = seen
        assert (sent.type, sent.stop_price) == (kind, D("100.25"))
        assert sent.price == (None if price is None else D(price))
        journaled = h.journal.load(handle.client_order_id)
        assert journaled is not None
        assert (journaled.type, journaled.stop_price) == (kind, D("100.25"))


async def test_strategy_buy_and_sell_with_stop_price_place_stop_orders(
    autojump_clock: MockClock,
) -> None:
    async with running(client=StopClient()) as h:
        strategy = Strategy()
        strategy._ctx = SimpleNamespace(  # type: ignore[assignment]
            submit=lambda **kw: h.om.submit(strategy=strategy.name, **kw)
        )
        stop_market = strategy.buy(VENUE, SYM, D("1"), stop_price=D("101"))
        stop_limit = strategy.sell(VENUE, SYM, D("1"), D("98"), stop_price=D("99"))
        market = strategy.buy(VENUE, SYM, D("1"))
        handles = (stop_market, stop_limit, market)
        await h.events.until(lambda: all(x.status is S.ACCEPTED for x in handles))
        assert all(h.client.calls_for(x.client_order_id) == ["submit"] for x in handles)
        got = [(x.order.type, x.order.price, x.order.stop_price, x.order.tif) for x in handles]
        assert got == [
            # a stop's GTC covers its wait for the trigger (a plain market order is IOC)
            (OrderType.STOP_MARKET, None, D("101"), TimeInForce.GTC),
            (OrderType.STOP_LIMIT, D("98"), D("99"), TimeInForce.GTC),
            (OrderType.MARKET, None, None, TimeInForce.IOC),
        ]
        assert all(x.order.strategy == strategy.name for x in (stop_market, stop_limit))


async def test_risk_refusal_is_a_rejection_with_its_reason(autojump_clock: MockClock) -> None:
    class NoRisk:
        def check(self, order: Order) -> str | None:
            return "kill switch engaged: test"

    async with running() as h:
        h.om.risk = NoRisk()
        handle = h.buy()
        assert handle.status is S.REJECTED
        assert handle.order.reason == "kill switch engaged: test"
        await trio.testing.wait_all_tasks_blocked()
        assert h.client.calls == []


def test_submit_needs_a_running_manager() -> None:
    h = Harness(Journal(":memory:"), None, 1.0)
    with pytest.raises(RuntimeError, match="not running"):
        h.buy()


# --- venue capabilities: declared once per venue, refused the same way in every mode ----------


def _cap_order(venue: str, **kw: Any) -> Order:
    fields: dict[str, Any] = {
        "client_order_id": "c1",
        "venue": venue,
        "symbol": "X",
        "side": Side.BUY,
        "type": OrderType.LIMIT,
        "quantity": D("0.01"),
        "price": D("100"),
    }
    fields.update(kw)
    return Order(**fields)


def _caps(venue: str) -> Any:
    from framework.venues import load_venue

    return load_venue(venue).capabilities


@pytest.mark.parametrize(
    ("venue", "kw", "reason"),
    [
        # Power.Trade: no post-only field in new_order, no FOK, MARKET must be IOC
        ("powertrade", {"post_only": True}, "powertrade has no post-only orders"),
        ("powertrade", {"tif": TimeInForce.FOK}, "LIMIT orders take no FOK"),
        (
            "powertrade",
            {"type": OrderType.MARKET, "price": None, "tif": TimeInForce.FOK},
            "MARKET orders take no FOK (must be one of IOC)",
        ),
        ("powertrade", {"type": OrderType.STOP_MARKET, "price": None}, "does not take STOP_MARKET"),
        # Paxos: no DAY; stops only as sell stop-loss (and the adapter sends no stops)
        ("paxos", {"tif": TimeInForce.DAY}, "LIMIT orders take no DAY"),
        (
            "paxos",
            {"type": OrderType.STOP_LIMIT, "stop_price": D("99")},
            "does not take STOP_LIMIT",
        ),
        # Open Trade: 7 significant digits, 8 decimals
        ("opentrade", {"price": D("123456.78")}, "more than 7 significant digits"),
        ("opentrade", {"price": D("0.000000001")}, "more than 8 decimals"),
        ("opentrade", {"quantity": D("0.000000001")}, "quantity 1E-9 has more than 8 decimals"),
        # Roxom: gtc, ioc, gtd only
        ("roxom", {"tif": TimeInForce.FOK}, "LIMIT orders take no FOK"),
    ],
)
def test_capabilities_refuse_what_the_venue_refuses(
    venue: str, kw: dict[str, Any], reason: str
) -> None:
    from framework.execution.checks import capability_refusal

    refusal = capability_refusal(_cap_order(venue, **kw), _caps(venue))
    assert refusal is not None and reason in refusal, refusal


@pytest.mark.parametrize(
    ("venue", "kw"),
    [
        ("paxos", {"post_only": True}),
        ("paxos", {"type": OrderType.MARKET, "price": None, "tif": TimeInForce.IOC}),
        ("opentrade", {"post_only": True, "price": D("123456.7")}),
        ("opentrade", {"tif": TimeInForce.DAY}),
        ("powertrade", {"tif": TimeInForce.DAY}),
        ("roxom", {"type": OrderType.STOP_MARKET, "price": None, "stop_price": D("99")}),
        ("roxom", {"post_only": True, "tif": TimeInForce.GTD}),
    ],
)
def test_capabilities_let_through_what_the_venue_takes(venue: str, kw: dict[str, Any]) -> None:
    from framework.execution.checks import capability_refusal

    assert capability_refusal(_cap_order(venue, **kw), _caps(venue)) is None


def test_declared_capabilities_follow_the_references() -> None:
    assert not _caps("powertrade").post_only and not _caps("powertrade").modify
    assert _caps("opentrade").modify and _caps("opentrade").price_significant_digits == 7
    assert _caps("opentrade").price_max_decimals == 8
    assert _caps("paxos").market_buy_sizing == "quote"
    assert _caps("paxos").stop_market_sides == frozenset({Side.SELL})
    assert _caps("roxom").account == "margin" and _caps("roxom").post_only


def test_modify_is_refused_where_the_venue_has_none() -> None:
    from framework.execution.checks import modify_capability_refusal

    assert "does not support modifying" in modify_capability_refusal(
        "powertrade", D("1"), _caps("powertrade")
    )
    assert modify_capability_refusal("opentrade", D("1234.567"), _caps("opentrade")) is None
    assert "significant digits" in modify_capability_refusal(
        "opentrade", D("1234.5678"), _caps("opentrade")
    )


def test_venue_price_rounds_passively_to_what_the_venue_keeps() -> None:
    from framework.execution.checks import price_precision_refusal, venue_price
    from framework.model import Instrument

    ot = _caps("opentrade")
    inst = Instrument("opentrade", "BTC/USD", "BTC", "USD", tick=D("0.01"))
    bid = venue_price(D("123456.78"), ot, inst, passive_for=Side.BUY)
    ask = venue_price(D("123456.71"), ot, inst, passive_for=Side.SELL)
    assert (bid, ask) == (D("123456.7"), D("123456.8"))
    assert price_precision_refusal(bid, ot) is None and price_precision_refusal(ask, ot) is None
    px = _caps("paxos")
    assert venue_price(D("100.013"), px, inst, passive_for=Side.BUY) == D("100.01")
    assert venue_price(D("100.011"), px, inst, passive_for=Side.SELL) == D("100.02")
