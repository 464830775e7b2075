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
