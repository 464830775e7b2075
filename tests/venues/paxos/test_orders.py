"""Order lifecycle against the Paxos simulator: REST v2 over loopback, fills from /executions.

Sandbox mode (real order entry) with the embedded or a standalone simulator. The crowd is
stopped (rate 0); the test trades against our orders from another account directly on the
simulator's matching engine, so every outcome is deterministic.
"""

from __future__ import annotations

from decimal import Decimal
from functools import partial
from pathlib import Path

import httpx
import trio

from framework.engine import Engine
from framework.events import (
    OrderAccepted,
    OrderEvent,
    OrderFilled,
    OrderPartiallyFilled,
    OrderRejected,
    OrderStatus,
    OrderSubmitted,
    Side,
)
from framework.venues.paxos.client import PaxosExecution
from framework.venues.paxos.sim import PaxosSimulator
from tests.helpers import HANG_GUARD_S, config, running, until

D = Decimal
S = OrderStatus


def sandbox(seed: int = 7, **extra: object) -> dict:
    return {
        "paxos": {
            "endpoint": "sim",
            "sim_seed": seed,
            "sim_rate_hz": 0,
            "markets": ["BTCUSD"],
            "trades": False,
            "poll_interval_s": 0.02,
            # a probe soon after a one-off injected 429 (the documented default is 30 s; the
            # 5-minute window itself is tested with a MockClock in test_throttle.py)
            "throttle_probe_s": 0.05,
            **extra,
        }
    }


def cfg(**extra: object):
    return config(
        sandbox(**extra),
        botrun={"mode": "sandbox"},
        risk={
            "max_order_notional": "1000000000",
            "max_position": "1000",
            "max_orders_per_second": 1000,
            # a loopback simulator holds no request: "not found" settles after 0.3 s
            "not_found_grace_s": 0.3,
        },
    )


def events_of(engine: Engine, coid: str) -> list[OrderEvent]:
    seen: list[OrderEvent] = []
    engine.bus.subscribe(
        OrderEvent, lambda e: seen.append(e) if e.client_order_id == coid else None, owner="t"
    )
    return seen


async def synced(engine: Engine) -> None:
    await until(engine, lambda: engine.book("paxos", "BTCUSD").is_synced, "book synced")


def sim_of(engine: Engine) -> PaxosSimulator:
    return engine.simulators["paxos"].simulator


async def test_accept_partial_fill_then_filled(tmp_path: Path) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await synced(engine)
        sim = sim_of(engine)
        best_ask = sim.engine.best_ask("BTCUSD")
        ask_size = sim.engine.book("BTCUSD", 1)[1][0][1]
        qty = ask_size + D("0.005")
        handle = engine.orders.submit(
            venue="paxos", symbol="BTCUSD", side=Side.BUY, quantity=qty, price=best_ask
        )
        seen = events_of(engine, handle.client_order_id)
        # takes the whole best ask, rests the remainder as the new best bid
        await until(engine, lambda: handle.status is S.PARTIALLY_FILLED, "partial")
        assert handle.order.filled_qty == ask_size
        # another participant sells into our remainder
        sim.engine.submit(
            "other", "BTCUSD", Side.SELL, "LIMIT", D("0.005"), price=best_ask, tif="IOC"
        )
        order = await _done(handle)
        assert order.status is S.FILLED and order.filled_qty == qty
        assert order.avg_price == best_ask
        kinds = [type(e) for e in seen]
        assert kinds[0] is OrderSubmitted and kinds[-1] is OrderFilled
        fills = [e for e in seen if isinstance(e, OrderPartiallyFilled | OrderFilled)]
        assert sum(f.quantity for f in fills) == qty
        assert len({f.fill_id for f in fills}) == len(fills)  # execution ids, each once


async def test_submit_events_in_order_and_journal_records_intent_first(tmp_path: Path) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await synced(engine)
        sim = sim_of(engine)
        seen: list[OrderEvent] = []
        engine.bus.subscribe(OrderEvent, seen.append, owner="t")
        price = sim.engine.best_bid("BTCUSD") - 40 * D("0.25")
        handle = engine.orders.submit(
            venue="paxos", symbol="BTCUSD", side=Side.BUY, quantity=D("0.01"), price=price
        )
        # recorded before anything was sent
        assert engine.journal.load(handle.client_order_id).status is S.PENDING
        await until(engine, lambda: handle.status is S.ACCEPTED, "accepted")
        assert [type(e) for e in seen] == [OrderSubmitted, OrderAccepted]
        assert engine.journal.load(handle.client_order_id).venue_order_id is not None
        assert engine.orders.cancel(handle.client_order_id)
        order = await _done(handle)
        assert order.status is S.CANCELLED
        (venue_order,) = [o for o in sim.engine.orders(owner="sim-profile")]
        assert venue_order.status == "CANCELLED"


async def test_venue_rejection_carries_the_venue_reason(tmp_path: Path) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await synced(engine)
        rejected: list[OrderRejected] = []
        engine.bus.subscribe(OrderRejected, rejected.append, owner="t")
        price = sim_of(engine).engine.best_bid("BTCUSD") - 40 * D("0.25")
        # far more than the simulated account holds
        handle = engine.orders.submit(
            venue="paxos", symbol="BTCUSD", side=Side.BUY, quantity=D("500"), price=price
        )
        order = await _done(handle)
        assert order.status is S.REJECTED
        assert "insufficient-funds" in (order.reason or "")
        assert rejected and "insufficient-funds" in rejected[0].reason


async def test_bad_request_refused_before_it_leaves(tmp_path: Path) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await synced(engine)
        sim = sim_of(engine)
        handle = engine.orders.submit(
            venue="paxos", symbol="BTCUSD", side=Side.BUY, quantity=D("0.01"), price=D("60000.10")
        )
        assert handle.status is S.REJECTED and "tick" in (handle.order.reason or "")
        handle = engine.orders.submit(
            venue="paxos",
            symbol="BTCUSD",
            side=Side.BUY,
            quantity=D("0.000000001"),
            price=D("60000"),
        )
        assert handle.status is S.REJECTED and "lot" in (handle.order.reason or "")
        assert sim.engine.orders(owner="sim-profile") == []
        assert engine.journal.load(handle.client_order_id) is None


async def test_cancel_racing_a_fill_ends_filled_with_each_fill_once(tmp_path: Path) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await synced(engine)
        sim = sim_of(engine)
        price = sim.engine.best_ask("BTCUSD") + 40 * D("0.25")
        handle = engine.orders.submit(
            venue="paxos", symbol="BTCUSD", side=Side.SELL, quantity=D("0.01"), price=price
        )
        await until(engine, lambda: handle.status is S.ACCEPTED, "accepted")
        # the fill happens at the venue; our cancel leaves before we have heard of it
        engine_orders = sim.engine.orders(owner="sim-profile", open_only=True)
        sim.engine.submit("other", "BTCUSD", Side.BUY, "LIMIT", D("100"), price=price, tif="IOC")
        assert engine_orders[0].status == "FILLED"
        engine.orders.cancel(handle.client_order_id)
        order = await _done(handle)
        assert order.status is S.FILLED and order.filled_qty == D("0.01")
        assert len(order.fill_ids) == 1
        assert engine.portfolio.position("paxos", "BTCUSD") == D("-0.01")


async def test_lost_reply_goes_unknown_then_reconciles_to_the_venue_state(tmp_path: Path) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await synced(engine)
        client = engine.orders.clients["paxos"]
        assert isinstance(client, PaxosExecution)
        real_submit = client.submit

        async def reply_lost(order):  # the venue takes the order; its answer never arrives
            await real_submit(order)
            raise httpx.ReadTimeout("reply lost")

        client.submit = reply_lost  # type: ignore[method-assign]
        statuses: list[S] = []
        price = sim_of(engine).engine.best_bid("BTCUSD") - 40 * D("0.25")
        handle = engine.orders.submit(
            venue="paxos", symbol="BTCUSD", side=Side.BUY, quantity=D("0.01"), price=price
        )
        engine.bus.subscribe(OrderEvent, lambda e: statuses.append(e.status), owner="t")
        await until(engine, lambda: handle.status is S.ACCEPTED, "reconciled")
        assert S.UNKNOWN in statuses and statuses[-1] is S.ACCEPTED
        assert handle.order.venue_order_id is not None


async def test_5xx_on_create_never_reached_venue_reconciles_to_rejected(tmp_path: Path) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await synced(engine)
        sim = sim_of(engine)
        sim.app.inject_http_error("/v2/profiles/sim-profile/orders", 503, 1)
        price = sim.engine.best_bid("BTCUSD") - 40 * D("0.25")
        handle = engine.orders.submit(
            venue="paxos", symbol="BTCUSD", side=Side.BUY, quantity=D("0.01"), price=price
        )
        order = await _done(handle)
        assert order.status is S.REJECTED and "not found at venue" in (order.reason or "")
        assert engine.orders.counts["unknown"] == 1
        assert sim.engine.orders(owner="sim-profile") == []


async def test_a_create_that_meets_429_is_never_resent_and_is_reconciled(tmp_path: Path) -> None:
    """A POST create is not idempotent: a 429 surfaces (no retry), the order goes UNKNOWN and
    the query settles it. Had the create been resent, the second one would have landed."""
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await synced(engine)
        sim = sim_of(engine)
        sim.app.inject_http_error("/v2/profiles/sim-profile/orders", 429, 1)
        price = sim.engine.best_bid("BTCUSD") - 40 * D("0.25")
        handle = engine.orders.submit(
            venue="paxos", symbol="BTCUSD", side=Side.BUY, quantity=D("0.01"), price=price
        )
        await until(engine, lambda: handle.status is S.REJECTED, "reconciled after the 429")
        assert engine.orders.counts["unknown"] == 1
        assert "request never arrived" in (handle.order.reason or "")
        assert sim.engine.orders(owner="sim-profile") == []


async def test_a_cancel_by_id_that_meets_429_backs_off_and_succeeds(tmp_path: Path) -> None:
    """A 429 on a cancel is not retried into the throttle: the order goes UNKNOWN, a sparse
    probe reconciles it (still working), and the next cancel lands."""
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await synced(engine)
        sim = sim_of(engine)
        price = sim.engine.best_bid("BTCUSD") - 40 * D("0.25")
        handle = engine.orders.submit(
            venue="paxos", symbol="BTCUSD", side=Side.BUY, quantity=D("0.01"), price=price
        )
        await until(engine, lambda: handle.status is S.ACCEPTED, "accepted")
        venue_id = handle.order.venue_order_id
        sim.app.inject_http_error(f"/v2/profiles/sim-profile/orders/{venue_id}", 429, 1)
        assert engine.orders.cancel(handle.client_order_id)
        await until(engine, lambda: handle.status is S.UNKNOWN, "unknown after the 429")
        await until(engine, lambda: handle.status is S.ACCEPTED, "reconciled by a probe")
        assert engine.orders.clients["paxos"].throttle.opened == 1

        def cancelled() -> bool:
            # a reconcile query that met the throttle may have put the order UNKNOWN again
            # (the manager's rule for any failed query): cancel whenever it is known working
            if handle.status is S.ACCEPTED and not handle.order.cancel_pending:
                engine.orders.cancel(handle.client_order_id)
            return handle.status is S.CANCELLED

        await until(engine, cancelled, "cancelled once lifted")


async def _crash_after(
    engine_scope: trio.CancelScope, send: bool, real_submit, manager, order
) -> None:
    """Stand-in for a process killed mid-request: after (or before) the POST, nothing more."""
    # a dead process hears nothing: without this the private stream's ACCEPTED can race the kill
    manager.on_execution = lambda report: None
    if send:
        await real_submit(order)
    engine_scope.cancel()
    await trio.sleep_forever()


async def _restart_cycle(tmp_path: Path, *, request_sent: bool) -> tuple[PaxosSimulator, Engine]:
    journal = str(tmp_path / "journal.sqlite")
    sim = PaxosSimulator.build(11)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(partial(sim.run, port=0, market_rate_hz=None))
        c = cfg(sim_url=f"http://127.0.0.1:{port}")
        # first life: dies between the journal write and the acknowledgement
        with trio.CancelScope() as scope:
            async with running(c, journal_path=journal) as first:
                await synced(first)
                client = first.orders.clients["paxos"]
                client.submit = partial(
                    _crash_after, scope, request_sent, client.submit, first.orders
                )
                price = sim.engine.best_bid("BTCUSD") - 40 * D("0.25")
                handle = first.orders.submit(
                    venue="paxos", symbol="BTCUSD", side=Side.BUY, quantity=D("0.01"), price=price
                )
                await trio.sleep_forever()
        coid = handle.client_order_id
        assert first.journal.load(coid).status is S.SUBMITTED
        # second life: same journal, same venue
        async with running(c, journal_path=journal) as second:
            order = second.orders.orders[coid]
            # ("not found" keeps it UNKNOWN for not_found_grace_s before concluding)
            await until(second, lambda: order.status not in (S.SUBMITTED, S.UNKNOWN), "reconciled")
        nursery.cancel_scope.cancel()
    return sim, second


async def test_killed_after_send_restarts_without_a_duplicate(tmp_path: Path) -> None:
    with trio.fail_after(HANG_GUARD_S):
        sim, second = await _restart_cycle(tmp_path, request_sent=True)
    venue_orders = sim.engine.orders(owner="sim-profile")
    assert len(venue_orders) == 1  # adopted, not sent again
    (order,) = second.orders.orders.values()
    assert order.status is S.ACCEPTED and order.venue_order_id is not None


async def test_killed_before_send_restarts_and_resolves_as_never_sent(tmp_path: Path) -> None:
    with trio.fail_after(HANG_GUARD_S):
        sim, second = await _restart_cycle(tmp_path, request_sent=False)
    assert sim.engine.orders(owner="sim-profile") == []
    (order,) = second.orders.orders.values()
    assert order.status is S.REJECTED and "never arrived" in (order.reason or "")


async def _done(handle):
    with trio.fail_after(HANG_GUARD_S):
        return await handle.done()


async def test_a_market_buy_goes_out_by_quote_amount_and_books_what_was_bought(
    tmp_path: Path,
) -> None:
    """[DOC] MARKET BUY is sized by quote_amount: the adapter converts the quantity with the
    synced book's best ask; the simulator (which refuses base_amount on a market buy) fills it
    and the fills booked are the venue's executions."""
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await synced(engine)
        sim = sim_of(engine)
        ask_price, ask_size = sim.engine.book("BTCUSD")[1][0]
        qty = (ask_size / 2).quantize(D("0.00000001"))  # within the best level
        handle = engine.orders.submit(
            venue="paxos", symbol="BTCUSD", side=Side.BUY, quantity=qty, type="MARKET"
        )
        order = await _done(handle)
        (placed,) = sim.orders.values()
        assert placed.quote_amount == (qty * ask_price).quantize(D("0.01"), rounding="ROUND_DOWN")
        assert placed.base_amount is None
        assert order.status is S.FILLED or order.status is S.CANCELLED
        bought = sum(f.quantity for f in sim.engine.fills(owner="sim-profile"))
        assert order.filled_qty == bought and 0 < bought <= qty
