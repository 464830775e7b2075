"""Order lifecycle against the Roxom simulator: signed REST in, WS order events back.

Sandbox mode (real order entry) against the embedded (or a standalone) simulator. The crowd is
stopped (rate 0); another account trades against our orders directly on the simulator's
matching engine, so every outcome is deterministic.
"""

from __future__ import annotations

import time
from decimal import Decimal
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio

from framework.engine import Engine
from framework.errors import OrderRefused
from framework.events import (
    Balance,
    OrderEvent,
    OrderFill,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from framework.venues.roxom.client import RoxomExecution
from framework.venues.roxom.sim import RoxomSimulator
from tests.helpers import HANG_GUARD_S, config, running, until

D = Decimal
S = OrderStatus
SYM = "US500-BTC"
TICK = D("0.00000001")


def cfg(**extra: object):
    venue = {"endpoint": "sim", "sim_seed": 7, "sim_rate_hz": 0, "markets": [SYM], **extra}
    return config(
        {"roxom": venue},
        botrun={"mode": "sandbox"},
        risk={"max_order_notional": "1000", "max_position": "100000"},
    )


def sim_of(engine: Engine) -> RoxomSimulator:
    return engine.simulators["roxom"].simulator


def submit(engine: Engine, side: Side, quantity: Decimal, price: Decimal | None = None, **kw):
    kind = OrderType.MARKET if price is None else OrderType.LIMIT
    return engine.orders.submit(
        venue="roxom", symbol=SYM, side=side, quantity=quantity, price=price, type=kind, **kw
    )


def events_of(engine: Engine, coid: str) -> list[OrderEvent]:
    seen: list[OrderEvent] = []
    engine.bus.subscribe(
        OrderEvent, lambda e: seen.append(e) if e.client_order_id == coid else None, owner="t"
    )
    return seen


async def synced(engine: Engine) -> None:
    await until(engine, lambda: engine.book("roxom", SYM).is_synced, "book synced")


async def done(handle):
    with trio.fail_after(HANG_GUARD_S):
        return await handle.done()


def away_bid(sim: RoxomSimulator) -> Decimal:
    """A buy price that rests well below the market (inside the venue's price band)."""
    return sim.engine.best_bid(SYM) - 500 * TICK


def inside_bid(sim: RoxomSimulator) -> Decimal:
    """A buy price alone at the top of the book (the seeded spread is two ticks)."""
    bid, ask = sim.engine.best_bid(SYM), sim.engine.best_ask(SYM)
    assert ask - bid > TICK
    return bid + TICK


def take_through(sim: RoxomSimulator, side: Side, price: Decimal) -> None:
    """Another account trades everything resting at `price` or better on the other side."""
    bids, asks = sim.engine.book(SYM)
    if side is Side.SELL:
        size = sum(s for p, s in bids if p >= price)
    else:
        size = sum(s for p, s in asks if p <= price)
    sim.engine.submit("other", SYM, side, "LIMIT", size, price=price, tif="IOC")


async def test_partial_then_filled_with_exact_fills_positions_and_balance(tmp_path: Path) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await synced(engine)
        sim = sim_of(engine)
        best_ask = sim.engine.best_ask(SYM)
        ask_size = sim.engine.book(SYM, 1)[1][0][1]
        qty = ask_size + D("0.005")
        handle = submit(engine, Side.BUY, qty, best_ask)
        seen = events_of(engine, handle.client_order_id)
        # takes the whole best ask, rests the rest as the new best bid
        await until(engine, lambda: handle.status is S.PARTIALLY_FILLED, "partial")
        assert handle.order.filled_qty == ask_size
        sim.engine.submit("other", SYM, Side.SELL, "LIMIT", D("0.005"), price=best_ask, tif="IOC")
        order = await done(handle)
        assert order.status is S.FILLED and order.filled_qty == qty and order.avg_price == best_ask
        fills = [e for e in seen if isinstance(e, OrderFill)]
        assert [f.quantity for f in fills] == [ask_size, D("0.005")]
        assert all(f.price == best_ask for f in fills)
        assert len({f.fill_id for f in fills}) == 2
        (venue_order,) = sim.orders.values()
        assert (
            venue_order.status == "filled" and venue_order.client_order_id == order.client_order_id
        )
        # fees exactly as the venue charged them (taker, then maker)
        assert sum(f.fee for f in fills) == venue_order.fees == order.fees
        # positions and balance agree with the fills, on both sides
        position = sim.account.positions[SYM]
        await until(
            engine,
            lambda: (
                engine.portfolio.venue_positions.get(("roxom", SYM)) is not None
                and engine.portfolio.venue_positions[("roxom", SYM)].quantity == position.size
            ),
            "venue position",
        )
        assert engine.portfolio.position("roxom", SYM) == position.size == qty
        venue_pos = engine.portfolio.venue_positions[("roxom", SYM)]
        assert venue_pos.avg_price == best_ask and venue_pos.leverage == D(10)
        assert venue_pos.liquidation_price is not None and venue_pos.liquidation_price < best_ask
        await until(
            engine,
            lambda: (
                engine.portfolio.balances.get(("roxom", "BTC")) is not None
                and engine.portfolio.balances[("roxom", "BTC")].free == sim.account.balance
            ),
            "balance",
        )
        assert sim.account.balance == D(1) - order.fees


async def test_closing_a_position_realizes_pnl_into_the_balance(tmp_path: Path) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await synced(engine)
        sim = sim_of(engine)
        price = inside_bid(sim)
        buy = submit(engine, Side.BUY, D("0.01"), price)
        await until(engine, lambda: buy.status is S.ACCEPTED, "bid rests")
        sim.engine.submit("other", SYM, Side.SELL, "LIMIT", D("0.01"), price=price, tif="IOC")
        await done(buy)
        higher = sim.engine.best_ask(SYM) + 5 * TICK
        sell = submit(engine, Side.SELL, D("0.01"), higher)
        await until(engine, lambda: sell.status is S.ACCEPTED, "ask rests")
        take_through(sim, Side.BUY, higher)
        await done(sell)
        fees = buy.order.fees + sell.order.fees
        pnl = (higher - price) * D("0.01")
        assert engine.portfolio.position("roxom", SYM) == 0
        assert engine.portfolio.realized_pnl("roxom", SYM) == pnl - fees
        await until(
            engine,
            lambda: engine.portfolio.balances[("roxom", "BTC")].free == D(1) + pnl - fees,
            "balance settles realized pnl minus fees",
        )
        await until(
            engine, lambda: engine.portfolio.venue_positions[("roxom", SYM)].quantity == 0, "flat"
        )
        assert sim.account.positions[SYM].realized == pnl


async def test_cancel_goes_through_pendingcancel(tmp_path: Path) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await synced(engine)
        sim = sim_of(engine)
        handle = submit(engine, Side.BUY, D("0.01"), away_bid(sim))
        seen = events_of(engine, handle.client_order_id)
        await until(engine, lambda: handle.status is S.ACCEPTED, "accepted")
        assert handle.order.venue_order_id in sim.orders
        assert engine.orders.cancel(handle.client_order_id)
        order = await done(handle)
        assert order.status is S.CANCELLED
        assert [e.status for e in seen][-2:] == [S.CANCEL_REQUESTED, S.CANCELLED]
        assert sim.orders[order.venue_order_id].status == "cancelled"


async def test_fill_while_the_cancel_is_pending_ends_partially_filled_cancelled(
    tmp_path: Path,
) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await synced(engine)
        sim = sim_of(engine)
        price = inside_bid(sim)
        handle = submit(engine, Side.BUY, D("0.02"), price)
        await until(engine, lambda: handle.status is S.ACCEPTED, "accepted")
        sim.hold_cancels = True  # [DOC] "a cancel can be delayed and the order can still fill"
        await engine.orders.clients["roxom"].cancel(handle.order)  # straight to the venue
        venue_order = sim.orders[handle.order.venue_order_id]
        assert venue_order.status == "pendingcancel"
        # the venue's pendingcancel event moves our order too
        await until(engine, lambda: handle.status is S.CANCEL_REQUESTED, "pendingcancel")
        sim.engine.submit("other", SYM, Side.SELL, "LIMIT", D("0.005"), price=price, tif="IOC")
        await until(engine, lambda: handle.order.filled_qty == D("0.005"), "fill during cancel")
        sim.release_cancels()
        order = await done(handle)
        assert order.status is S.CANCELLED and order.filled_qty == D("0.005")
        assert venue_order.status == "partiallyfilledcancelled"


async def test_ioc_remainder_is_cancelled_after_its_fill(tmp_path: Path) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await synced(engine)
        sim = sim_of(engine)
        best_ask = sim.engine.best_ask(SYM)
        ask_size = sim.engine.book(SYM, 1)[1][0][1]
        handle = submit(engine, Side.BUY, ask_size + D("0.01"), best_ask, tif=TimeInForce.IOC)
        order = await done(handle)
        assert order.status is S.CANCELLED and order.filled_qty == ask_size
        assert sim.orders[order.venue_order_id].status == "partiallyfilledcancelled"


async def test_market_order_fills_across_levels_at_exact_prices(tmp_path: Path) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await synced(engine)
        sim = sim_of(engine)
        (a1, s1), (a2, _) = sim.engine.book(SYM, 2)[1]
        handle = submit(engine, Side.BUY, s1 + D("0.001"), tif=TimeInForce.IOC)
        order = await done(handle)
        assert order.status is S.FILLED
        # one order event per venue fill: each priced by its own fillPx
        assert order.avg_price == (a1 * s1 + a2 * D("0.001")) / (s1 + D("0.001"))


async def test_crossing_post_only_is_cancelled(tmp_path: Path) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await synced(engine)
        sim = sim_of(engine)
        handle = submit(engine, Side.BUY, D("0.01"), sim.engine.best_ask(SYM), post_only=True)
        order = await done(handle)
        # [DOC] "crossing post-only orders are cancelled"
        assert order.status is S.CANCELLED and order.filled_qty == 0
        assert "post-only" in (order.reason or "")


async def test_venue_rejection_carries_the_venue_message(tmp_path: Path) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await synced(engine)
        sim = sim_of(engine)
        handle = submit(engine, Side.BUY, D("5000"), away_bid(sim))  # margin far above 1 BTC
        order = await done(handle)
        assert order.status is S.REJECTED
        assert (order.reason or "").startswith("Insufficient balance")
        assert sim.orders == {}


async def test_price_band_is_checked_before_sending_and_by_the_venue(tmp_path: Path) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await synced(engine)
        sim = sim_of(engine)
        high = (sim.engine.best_ask(SYM) * D("1.2")).quantize(TICK)
        handle = submit(engine, Side.BUY, D("0.01"), high)
        order = await done(handle)
        assert order.status is S.REJECTED
        assert (order.reason or "").startswith("Price outside allowed range")
        low = (sim.engine.best_bid(SYM) * D("0.8")).quantize(TICK)
        sell = await done(submit(engine, Side.SELL, D("0.01"), low))
        assert sell.status is S.REJECTED and "below best bid" in (sell.reason or "")
        assert sim.orders == {}  # never left
        # the venue enforces the same band
        client = engine.orders.clients["roxom"]
        assert isinstance(client, RoxomExecution)
        body = {"symbol": SYM, "side": "buy", "orderType": "limit", "qty": "0.01"}
        with pytest.raises(OrderRefused, match="Price outside allowed range"):
            await client.create({**body, "px": format(high, "f"), "instType": "perpetual"})


async def test_catalogue_rules_refuse_locally_and_the_venue_checks_the_rest(
    tmp_path: Path,
) -> None:
    """The tick comes from the venue's catalogue (`GET /api/v1/market/instruments`): refused
    before sending. The quantity step and the minimum notional are not in it: sent, and the
    venue's own refusal is the answer."""
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await synced(engine)
        sim = sim_of(engine)
        inst = engine.orders.instruments.get(("roxom", SYM))
        assert inst is not None
        assert inst.tick == TICK and inst.lot is None and inst.min_notional is None
        bid = away_bid(sim)
        off_tick = submit(engine, Side.BUY, D("0.01"), bid + D("0.000000001"))
        assert off_tick.status is S.REJECTED and "tick" in (off_tick.order.reason or "")
        off_step = await done(submit(engine, Side.BUY, D("0.0105"), bid))
        assert off_step.status is S.REJECTED and "multiple of" in (off_step.reason or "")
        tiny = await done(submit(engine, Side.BUY, D("0.001"), D("0.00010000")))
        assert tiny.status is S.REJECTED and "too small" in (tiny.reason or "")
        fok = await done(submit(engine, Side.BUY, D("0.01"), bid, tif=TimeInForce.FOK))
        assert fok.status is S.REJECTED and "FOK" in (fok.reason or "")
        assert sim.orders == {}


async def test_without_a_catalogue_nothing_is_refused_on_guessed_rules(tmp_path: Path) -> None:
    from framework.venues.roxom.instruments import INSTRUMENTS_PATH, fetch_instruments

    async with httpx.AsyncClient(base_url="http://127.0.0.1:9") as http:  # nothing listens
        instruments = await fetch_instruments(http, [SYM])
    inst = instruments[SYM]
    assert (inst.tick, inst.lot, inst.min_qty, inst.min_notional) == (None, None, None, None)
    assert INSTRUMENTS_PATH == "/api/v1/market/instruments"


async def test_gtd_order_expires_at_its_cancel_time(tmp_path: Path) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await synced(engine)
        sim = sim_of(engine)
        expire = time.time_ns() + 300_000_000
        handle = submit(engine, Side.BUY, D("0.01"), away_bid(sim), tif=TimeInForce.GTD,
                        expire_at_ns=expire)  # fmt: skip
        order = await done(handle)
        assert order.status is S.CANCELLED and order.reason == "expired"
        assert sim.orders[order.venue_order_id].cancel_at_ms == expire // 1_000_000


async def test_lost_reply_goes_unknown_then_reconciles(tmp_path: Path) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await synced(engine)
        sim = sim_of(engine)
        client = engine.orders.clients["roxom"]
        real_submit = client.submit
        sim.mute_account = True  # neither the reply nor the order events reach us

        async def reply_lost(order):
            await real_submit(order)
            raise httpx.ReadTimeout("reply lost")

        client.submit = reply_lost  # type: ignore[method-assign]
        statuses: list[S] = []
        engine.bus.subscribe(OrderEvent, lambda e: statuses.append(e.status), owner="t")
        handle = submit(engine, Side.BUY, D("0.01"), away_bid(sim))
        await until(engine, lambda: handle.status is S.ACCEPTED, "reconciled over REST")
        assert statuses[-2:] == [S.UNKNOWN, S.ACCEPTED]
        (venue_order,) = sim.orders.values()
        assert handle.order.venue_order_id == venue_order.order_id  # found by clientOrderId


async def test_fill_missed_while_disconnected_is_reconciled_after_reconnect(
    tmp_path: Path,
) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await synced(engine)
        sim = sim_of(engine)
        price = away_bid(sim)
        handle = submit(engine, Side.BUY, D("0.01"), price)
        await until(engine, lambda: handle.status is S.ACCEPTED, "accepted")
        sim.mute_account = True  # the events of this fill are lost
        take_through(sim, Side.SELL, price)
        sim.mute_account = False
        sim.app.close_all_ws(1012)
        order = await done(handle)  # reconnect → reconcile → the REST view says filled
        assert order.status is S.FILLED and order.filled_qty == D("0.01")
        assert order.avg_price == price
        assert engine.portfolio.position("roxom", SYM) == D("0.01")


async def test_cancel_all_and_list(tmp_path: Path) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await synced(engine)
        sim = sim_of(engine)
        handles = [submit(engine, Side.BUY, D("0.01"), away_bid(sim) - i * TICK) for i in (0, 1)]
        await until(engine, lambda: all(h.status is S.ACCEPTED for h in handles), "accepted")
        client = engine.orders.clients["roxom"]
        assert len(await client.list_orders(SYM)) == 2
        await client.cancel_all(SYM)
        for handle in handles:
            assert (await done(handle)).status is S.CANCELLED
        assert await client.list_orders(SYM) == []
        assert len(await client.list_orders(SYM, include_closed=True)) == 2


def stop(engine: Engine, side: Side, quantity: Decimal, stop_price: Decimal, price=None):
    kind = OrderType.STOP_MARKET if price is None else OrderType.STOP_LIMIT
    return engine.orders.submit(venue="roxom", symbol=SYM, side=side, quantity=quantity,
                                price=price, type=kind, stop_price=stop_price)  # fmt: skip


async def test_stop_market_waits_for_its_trigger_then_fills_once(tmp_path: Path) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await synced(engine)
        sim = sim_of(engine)
        seen: list[OrderEvent] = []
        engine.bus.subscribe(OrderEvent, seen.append, owner="t")
        ask = sim.engine.best_ask(SYM)
        handle = stop(engine, Side.BUY, D("0.001"), ask)
        await until(engine, lambda: handle.status is S.ACCEPTED, "stop accepted")
        venue_order = sim.orders[handle.order.venue_order_id]
        # working at the venue as a stop, not yet an order in its book
        assert (venue_order.status, venue_order.order_type) == ("waitingtrigger", "stop")
        assert venue_order.trigger_price == ask
        assert venue_order.client_order_id == handle.order.client_order_id
        assert venue_order.engine_id is None and handle.order.filled_qty == 0
        # another account's trade at the trigger price sets it off: it buys at the market
        sim.engine.submit("other", SYM, Side.BUY, "LIMIT", D("0.001"), price=ask, tif="IOC")
        order = await done(handle)
        assert order.status is S.FILLED and order.filled_qty == D("0.001")
        assert venue_order.status == "filled"
        assert order.avg_price == venue_order.notional / venue_order.executed
        mine = [e for e in seen if e.client_order_id == order.client_order_id]
        names = [type(e).__name__ for e in mine]
        assert names == ["OrderSubmitted", "OrderAccepted", "OrderFilled"]
        (fill,) = [e for e in mine if isinstance(e, OrderFill)]
        assert fill.fee == venue_order.fees == order.fees
        # counted once, and the venue's own position says the same
        await until(
            engine,
            lambda: (
                engine.portfolio.venue_positions.get(("roxom", SYM)) is not None
                and engine.portfolio.venue_positions[("roxom", SYM)].quantity == D("0.001")
            ),
            "venue position",
        )
        assert engine.portfolio.position("roxom", SYM) == D("0.001")
        assert engine.orders.counts["fills"] == 1
        assert engine.orders.counts["reports_for_unknown_orders"] == 0
        journaled = engine.orders.journal.load(order.client_order_id)
        assert journaled is not None and journaled.stop_price == ask
        assert journaled.status is S.FILLED


async def test_stop_limit_is_refused_outside_the_band_and_cancelled_while_waiting(
    tmp_path: Path,
) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await synced(engine)
        sim = sim_of(engine)
        ask = sim.engine.best_ask(SYM)
        high = (ask * D("1.2")).quantize(TICK)
        refused = await done(stop(engine, Side.BUY, D("0.01"), ask, price=high))
        assert refused.status is S.REJECTED
        assert (refused.reason or "").startswith("Price outside allowed range")
        assert sim.orders == {}  # never left
        trigger, limit = ask + 10 * TICK, ask + 20 * TICK
        handle = stop(engine, Side.BUY, D("0.01"), trigger, price=limit)
        await until(engine, lambda: handle.status is S.ACCEPTED, "stop-limit accepted")
        venue_order = sim.orders[handle.order.venue_order_id]
        assert venue_order.status == "waitingtrigger" and venue_order.order_type == "stoplimit"
        assert (venue_order.trigger_price, venue_order.limit_price) == (trigger, limit)
        assert engine.orders.cancel(handle.client_order_id)
        order = await done(handle)
        assert order.status is S.CANCELLED and venue_order.status == "cancelled"
        # a trade through the trigger after the cancel sets nothing off
        sim.engine.submit("other", SYM, Side.BUY, "LIMIT", D("0.001"), price=ask, tif="IOC")
        take_through(sim, Side.BUY, trigger)
        assert venue_order.status == "cancelled" and venue_order.executed == 0
        assert engine.portfolio.position("roxom", SYM) == 0


async def test_order_types_offered_to_the_core(tmp_path: Path) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        client = engine.orders.clients["roxom"]
        assert isinstance(client, RoxomExecution)
        assert client.order_types == frozenset(OrderType)


async def test_standalone_simulator_with_hmac_signing(tmp_path: Path) -> None:
    sim = RoxomSimulator.build(5, [SYM])
    async with trio.open_nursery() as nursery:
        port = await nursery.start(partial(sim.run, port=0, market_rate_hz=None))
        c = cfg(sim_url=f"http://127.0.0.1:{port}", auth_scheme="hmac")
        async with running(c, journal_path=str(tmp_path / "j.sqlite")) as engine:
            await synced(engine)
            balances: list[Balance] = []
            engine.bus.subscribe(Balance, balances.append, owner="t")
            price = away_bid(sim)
            handle = submit(engine, Side.BUY, D("0.01"), price)
            await until(engine, lambda: handle.status is S.ACCEPTED, "accepted over hmac")
            take_through(sim, Side.SELL, price)
            assert (await done(handle)).status is S.FILLED
            settled = sim.account.balance
            assert settled < 1  # the fee
            await until(engine, lambda: bool(balances) and balances[-1].free == settled, "balance")
        nursery.cancel_scope.cancel()


async def test_shutdown_cancels_with_one_bulk_cancel(tmp_path: Path) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await synced(engine)
        sim = sim_of(engine)
        handles = [submit(engine, Side.BUY, D("0.01"), away_bid(sim) - i * TICK) for i in (0, 1)]
        await until(engine, lambda: all(h.status is S.ACCEPTED for h in handles), "accepted")
        client = engine.orders.clients["roxom"]
        assert client.supports_cancel_all
        sent: list[str] = []
        real_cancel = client.cancel

        async def counted(order):
            sent.append(order.client_order_id)
            return await real_cancel(order)

        client.cancel = counted
        engine.stop()  # shutdown: cancel_all_on_shutdown
        with trio.fail_after(HANG_GUARD_S):
            for handle in handles:
                assert (await handle.done()).status is S.CANCELLED
        assert engine.orders.counts["bulk_cancels"] == 1
        assert sent == []  # no order-by-order cancel
        assert all(o.status == "cancelled" for o in sim.orders.values())
