# ruff: noqa: E501  (verbatim wire frames read best on one line)
"""Order lifecycle against the Power.Trade simulator over a real socket (WS order entry).

Sandbox mode, crowd stopped (rate 0): the test trades against our orders from the crowd directly
on the simulator's engine, so every outcome is deterministic.
"""

from __future__ import annotations

from decimal import Decimal
from functools import partial
from pathlib import Path

import attrs
import httpx
import pytest
import trio

from framework.engine import Engine
from framework.events import OrderEvent, OrderStatus, Side, TimeInForce, VenueState, VenueStatus
from framework.sim.faults import FaultPlan
from framework.venues.powertrade import PowerTradeConfig
from framework.venues.powertrade.client import PowerTradeStream
from framework.venues.powertrade.execution import PowerTradeExecution
from framework.venues.powertrade.sim import PowerTradeSimulator
from tests.helpers import HANG_GUARD_S, config, running, session, until

D = Decimal
S = OrderStatus
SYMBOL = "BTC-USD"


def cfg(**extra: object):
    venue = {"endpoint": "sim", "sim_seed": 5, "sim_rate_hz": 0, "markets": [SYMBOL],
             "sim_rfq_rate_hz": 0, "account_interval_s": 3600, **extra}  # fmt: skip
    return config(
        {"powertrade": venue},
        botrun={"mode": "sandbox"},
        risk={
            "max_order_notional": "1000000000000",
            "max_position": "1000",
            "max_orders_per_second": 1000,
        },
    )


def sim_of(engine: Engine) -> PowerTradeSimulator:
    return engine.simulators["powertrade"].simulator


def stream_of(engine: Engine) -> PowerTradeStream:
    return session(engine, "powertrade").stream  # type: ignore[return-value]


def statuses(engine: Engine, coid: str) -> list[str]:
    seen: list[str] = []
    engine.bus.subscribe(
        OrderEvent,
        lambda e: seen.append(type(e).__name__) if e.client_order_id == coid else None,
        owner="t",
    )
    return seen


async def ready(engine: Engine) -> None:
    await until(engine, lambda: engine.book("powertrade", SYMBOL).is_synced, "book synced")
    stream = stream_of(engine)
    with trio.fail_after(HANG_GUARD_S):
        assert await stream.wait_ready(HANG_GUARD_S)


def bid(engine: Engine, qty: str, *, ticks_inside: int = 1, **kw):
    """A buy that becomes the best bid (and does not cross)."""
    price = sim_of(engine).engine.best_bid(SYMBOL) + D("0.1") * ticks_inside
    return engine.orders.submit(
        venue="powertrade", symbol=SYMBOL, side=Side.BUY, quantity=D(qty), price=price, **kw
    )


def crowd_sells(engine: Engine, qty: str, price: Decimal) -> None:
    sim_of(engine).engine.submit("crowd", SYMBOL, Side.SELL, "LIMIT", D(qty), price, tif="IOC")


async def test_accept_partial_fill_fill(tmp_path: Path) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await ready(engine)
        h = bid(engine, "0.01")
        seen = statuses(engine, h.client_order_id)
        await until(engine, lambda: h.status is S.ACCEPTED, "accepted")
        order = h.order
        assert order.venue_order_id == sim_of(engine).order(h.client_order_id).order_id
        crowd_sells(engine, "0.004", order.price)
        await until(engine, lambda: h.status is S.PARTIALLY_FILLED, "partial")
        crowd_sells(engine, "0.006", order.price)
        with trio.fail_after(HANG_GUARD_S):
            await h.done()
        assert h.status is S.FILLED and order.filled_qty == D("0.01")
        assert seen == ["OrderSubmitted", "OrderAccepted", "OrderPartiallyFilled", "OrderFilled"]
        assert len(order.fill_ids) == 2 and order.avg_price == order.price
        # the fills moved the account: balances come back as events after fills
        await until(engine, lambda: engine.portfolio.balances.get(("powertrade", "BTC")) is not None
                    and engine.portfolio.balances[("powertrade", "BTC")].free == D("100.01"), "BTC balance")  # fmt: skip
        await until(
            engine, lambda: ("powertrade", SYMBOL) in engine.portfolio.venue_positions, "position"
        )
        assert engine.portfolio.venue_positions[("powertrade", SYMBOL)].quantity == D("0.01")


async def test_cancel_and_cancel_all(tmp_path: Path) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await ready(engine)
        a, b, c = bid(engine, "0.01"), bid(engine, "0.02", ticks_inside=0), bid(engine, "0.03")
        await until(engine, lambda: all(h.status is S.ACCEPTED for h in (a, b, c)), "accepted")
        engine.orders.cancel(a.client_order_id)
        with trio.fail_after(HANG_GUARD_S):
            await a.done()
        assert a.status is S.CANCELLED and a.order.reason == "user_cancelled"
        client: PowerTradeExecution = engine.orders.clients["powertrade"]  # type: ignore[assignment]
        with trio.fail_after(HANG_GUARD_S):
            await client.cancel_all(SYMBOL)
            await b.done()
            await c.done()
        assert b.status is S.CANCELLED and c.status is S.CANCELLED
        assert sim_of(engine).engine.orders(owner="sim-api-key", open_only=True) == []
        # a cancel of an order the venue already ended is refused, then reconciled
        assert not engine.orders.cancel(a.client_order_id)  # the core knows it is done


async def test_rejects_from_the_venue_and_refusals_before_sending(tmp_path: Path) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await ready(engine)
        sim = sim_of(engine)
        # above the max order value: refused by the adapter, never sent
        h = engine.orders.submit(
            venue="powertrade", symbol=SYMBOL, side=Side.BUY, quantity=D(99), price=D("2000000")
        )
        with trio.fail_after(HANG_GUARD_S):
            await h.done()
        assert h.status is S.REJECTED and "above maximum 100000000" in (h.order.reason or "")
        # FOK does not exist on Power.Trade
        h = bid(engine, "0.01", tif=TimeInForce.FOK)
        with trio.fail_after(HANG_GUARD_S):
            await h.done()
        assert h.status is S.REJECTED and "FOK" in (h.order.reason or "")
        # the quantity step (checked by the core from entities_and_rules)
        h = bid(engine, "0.00015")
        assert h.status is S.REJECTED and "multiple of lot" in (h.order.reason or "")
        assert sim.orders == {}
        # the venue tightened its rules after we loaded them: its order_rejected comes back
        sim.markets[SYMBOL] = attrs.evolve(sim.markets[SYMBOL], min_qty=D(1))
        h = bid(engine, "0.01")
        with trio.fail_after(HANG_GUARD_S):
            await h.done()
        assert h.status is S.REJECTED and h.order.reason == "quantity_less_than_minimum_quantity"


async def test_a_cancel_that_overtakes_pending_new(tmp_path: Path) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await ready(engine)
        sim = sim_of(engine)
        sim.hold_entries = True  # the venue acknowledges (pending_new) but has not entered it
        h = bid(engine, "0.01")
        seen = statuses(engine, h.client_order_id)
        engine.orders.cancel(h.client_order_id)  # before any order_accepted
        with trio.fail_after(HANG_GUARD_S):
            await h.done()
        assert h.status is S.CANCELLED and "OrderAccepted" not in seen
        sim.release_entries()
        assert sim.engine.orders(owner="sim-api-key") == []


async def test_fills_missed_while_disconnected_are_reconciled(tmp_path: Path) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await ready(engine)
        sim = sim_of(engine)
        h = bid(engine, "0.01")
        await until(engine, lambda: h.status is S.ACCEPTED, "accepted")
        sess = session(engine, "powertrade")
        epoch = sess.epoch
        # drop the socket, then the order fills while nobody listens
        sim.app.abort_all_ws()
        crowd_sells(engine, "0.01", h.order.price)
        with trio.fail_after(HANG_GUARD_S):
            await h.done()
        assert sess.epoch > epoch
        assert h.status is S.FILLED and h.order.filled_qty == D("0.01")
        assert h.order.fill_ids == {e["trade_id"] for e in sim.order(h.client_order_id).executions}
        assert stream_of(engine).logins >= 2  # logged in again on the new connection


@pytest.mark.parametrize("end", ["cancelled", "cancelled-unreadable", "filled"])
async def test_an_order_ending_with_fills_we_never_saw_fetches_them(
    end: str, tmp_path: Path
) -> None:
    """The venue's end of an order says how much it filled (`cancel_order` filled_quantity, an
    `execution` in state filled): an execution we never got (lost with a connection) is asked
    for by trade id, not lost, and counted once."""
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await ready(engine)
        sim = sim_of(engine)
        h = bid(engine, "0.01")
        await until(engine, lambda: h.status is S.ACCEPTED, "accepted")
        plan = FaultPlan(1)
        lost = plan.once("drop", match=lambda text: text.startswith('{"execution"'))
        sim.app.faults = plan
        crowd_sells(engine, "0.004", h.order.price)  # its execution never reaches us
        assert lost.fired == 1 and h.order.filled_qty == 0
        if end.startswith("cancelled"):
            if end == "cancelled-unreadable":
                # the end's filled_quantity corrupted too (the soak found this pair)
                plan.once(
                    "corrupt_number",
                    match=lambda text: text.startswith('{"cancel_order"'),
                    keys=("filled_quantity",),
                    form="negative",
                )
            engine.orders.cancel(h.client_order_id)
        else:
            crowd_sells(engine, "0.006", h.order.price)
        with trio.fail_after(HANG_GUARD_S):
            await h.done()
        assert h.status is (S.FILLED if end == "filled" else S.CANCELLED)
        venue = sim.order(h.client_order_id)
        assert venue is not None and venue.filled > 0
        await until(engine, lambda: h.order.filled_qty == venue.filled, "missing fill fetched")
        assert h.order.fill_ids == {e["trade_id"] for e in venue.executions}
        assert engine.portfolio.position("powertrade", SYMBOL) == venue.filled


async def test_refused_login_backs_off_instead_of_spinning() -> None:
    sim = PowerTradeSimulator.build(3)
    sim.refuse_logins = True
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(sim.run, market_rate_hz=None))
        c = cfg(sim_url=sim.http_url)
        statuses_seen: list[VenueStatus] = []
        async with running(c, journal_path=":memory:") as engine:
            engine.bus.subscribe(VenueStatus, statuses_seen.append, owner="t")
            sess = session(engine, "powertrade")
            await until(engine, lambda: sess.counts["auth_errors"] >= 1, "login refused")
            assert sess.last_delay >= sess.auth_backoff_s
            assert any(
                "authentication refused" in s.reason
                for s in statuses_seen
                if s.state is VenueState.DISCONNECTED
            )
            assert stream_of(engine).errors[0].startswith("login refused: 10")
            # no order can go out without a login: refused at once, clearly
            h = engine.orders.submit(
                venue="powertrade", symbol=SYMBOL, side=Side.BUY, quantity=D("0.01"), price=D(1000)
            )
            with trio.fail_after(HANG_GUARD_S):
                await h.done()
            assert h.status is S.REJECTED and "not logged in" in (h.order.reason or "")
        nursery.cancel_scope.cancel()


def test_config_defaults() -> None:
    c = PowerTradeConfig()
    assert c.markets == ["BTC-USD"] and c.endpoint == "sim"


async def test_shutdown_cancels_with_one_cancel_all_orders(tmp_path: Path) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await ready(engine)
        handles = [bid(engine, "0.01"), bid(engine, "0.02", ticks_inside=0)]
        await until(engine, lambda: all(h.status is S.ACCEPTED for h in handles), "accepted")
        client: PowerTradeExecution = engine.orders.clients["powertrade"]  # type: ignore[assignment]
        assert client.supports_cancel_all
        sent: list[str] = []
        real_cancel = client.cancel

        async def counted(order):
            sent.append(order.client_order_id)
            return await real_cancel(order)

        client.cancel = counted  # type: ignore[method-assign]
        engine.stop()  # shutdown: cancel_all_on_shutdown
        with trio.fail_after(HANG_GUARD_S):
            for handle in handles:
                assert (await handle.done()).status is S.CANCELLED
        assert engine.orders.counts["bulk_cancels"] == 1
        assert sent == []  # no order-by-order cancel
        assert sim_of(engine).engine.orders(owner="sim-api-key", open_only=True) == []
        # the simulator serves no REST API: no open-order listing, so no orphan scan (not an error)
        assert engine.orders.counts["orphan_scan_errors"] == 0


# the reference's order-details row shape, as `GET /v1/api/openOrders` lists it
OPEN_ORDERS = {"query_open_orders_response": {"utc_timestamp": "1637596685110771", "open_orders": [
    {"utc_timestamp": "1637596685110771", "market_id": "0", "tradeable_entity_id": "7", "symbol": "BTC-USD", "type": "LIMIT",
     "order_id": "9553031", "client_order_id": "mine-1", "quantity": "0.002", "price": "64760.00", "side": "buy",
     "order_state": "partial_fill", "cancel_state": "none", "executions": [
         {"utc_timestamp": "1637596673102302000", "executed_price": "64760.00", "executed_quantity": "0.00050000", "trade_id": "2164967", "liquidity_flag": "added"}]},
    {"utc_timestamp": "1637596685110771", "market_id": "0", "tradeable_entity_id": "7", "symbol": "BTC-USD", "type": "LIMIT",
     "order_id": "9553032", "client_order_id": "", "quantity": "1.0", "price": "70000.0", "side": "sell",
     "order_state": "accepted", "cancel_state": "none", "executions": []},
]}}  # fmt: skip


async def test_open_orders_are_listed_over_the_rest_api() -> None:
    seen: list[httpx.Request] = []

    def venue(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=OPEN_ORDERS)

    stream = PowerTradeStream("ws://127.0.0.1:9/", [SYMBOL], login=None)
    rest = httpx.AsyncClient(base_url="https://proxy.test", transport=httpx.MockTransport(venue))
    client = PowerTradeExecution(stream, {}, rest=rest, login=lambda: "the-jwt")
    first, second = await client.list_open_orders()
    await rest.aclose()
    assert [(r.method, r.url.path, r.headers["credentials_secret"]) for r in seen] == [
        ("GET", "/v1/api/openOrders", "the-jwt")
    ]
    assert (first.client_order_id, first.venue_order_id, first.symbol, first.side) == (
        "mine-1", "9553031", SYMBOL, Side.BUY)  # fmt: skip
    assert (first.price, first.quantity, first.cum_qty, first.status) == (
        D("64760.00"), D("0.002"), D("0.0005"), S.PARTIALLY_FILLED)  # fmt: skip
    assert first.fill_qty is None and first.fill_id is None  # a listing, never a fill
    assert (second.client_order_id, second.venue_order_id, second.side, second.status) == (
        "", "9553032", Side.SELL, S.ACCEPTED)  # fmt: skip
    without_rest = PowerTradeExecution(stream, {})
    with pytest.raises(NotImplementedError):
        await without_rest.list_open_orders()


async def test_open_order_listing_leaves_out_the_accounts_rfqs() -> None:
    # [CODE TS integration/ws/place-bulk-order.test.ts] openOrders also lists the account's RFQs
    # (market_id "none", no price); they are no firm orders. "255": the older RFQ spelling
    firm = OPEN_ORDERS["query_open_orders_response"]["open_orders"][1]
    rfq = {**firm, "market_id": "none", "client_order_id": "rfq-1", "order_id": "77"}
    del rfq["price"]
    old_rfq = {**rfq, "market_id": "255", "client_order_id": "rfq-2", "order_id": "78"}
    listing = {
        "query_open_orders_response": {"utc_timestamp": "1", "open_orders": [rfq, firm, old_rfq]}
    }

    def venue(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=listing)

    stream = PowerTradeStream("ws://127.0.0.1:9/", [SYMBOL], login=None)
    rest = httpx.AsyncClient(base_url="https://proxy.test", transport=httpx.MockTransport(venue))
    client = PowerTradeExecution(stream, {}, rest=rest, login=lambda: "the-jwt")
    (only,) = await client.list_open_orders()
    await rest.aclose()
    assert only.venue_order_id == "9553032"
