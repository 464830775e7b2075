"""Order lifecycle against the Open Trade simulator: CREATE / MODIFY / CANCEL over the WS.

Sandbox mode (real order entry). The crowd is stopped (rate 0); the test trades against our
orders from another account directly on the simulator's matching engine, so every outcome is
deterministic. Fills come from cumulative `filledAmount`; the core derives and de-duplicates them.
"""

from __future__ import annotations

import time
from decimal import Decimal
from functools import partial
from pathlib import Path

import pytest
import trio

from framework.engine import Engine
from framework.events import (
    ExecutionReport,
    OrderAccepted,
    OrderCancelled,
    OrderCancelRequested,
    OrderEvent,
    OrderExpired,
    OrderFill,
    OrderFilled,
    OrderModified,
    OrderPartiallyFilled,
    OrderRejected,
    OrderStatus,
    OrderSubmitted,
    Side,
    TimeInForce,
)
from framework.model import Order
from framework.venues.opentrade.decode import OrderRequestUpdate
from framework.venues.opentrade.execution import OpenTradeExecution
from framework.venues.opentrade.sim import OpenTradeSimulator
from tests.helpers import HANG_GUARD_S, config, running, session, until

D = Decimal
S = OrderStatus
SYM = "BTC/USD"
OTHER = "other"


def cfg(**extra: object):
    venue = {
        "endpoint": "sim",
        "sim_seed": 7,
        "sim_rate_hz": 0,
        "markets": [SYM, "ETH/USD"],
        "trades": False,
        **extra,
    }
    return config(
        {"opentrade": venue},
        botrun={"mode": "sandbox"},
        risk={
            "max_order_notional": "1000000000",
            "max_position": "1000",
            "max_orders_per_second": 1000,
        },
    )


def sim_of(engine: Engine) -> OpenTradeSimulator:
    return engine.simulators["opentrade"].simulator


def events_of(engine: Engine, coid: str | None = None) -> list[OrderEvent]:
    seen: list[OrderEvent] = []

    def keep(event: OrderEvent) -> None:
        if coid is None or event.client_order_id == coid:
            seen.append(event)

    engine.bus.subscribe(OrderEvent, keep, owner="t")
    return seen


async def ready(engine: Engine) -> None:
    client = engine.orders.clients["opentrade"]
    assert isinstance(client, OpenTradeExecution)
    await until(engine, lambda: engine.book("opentrade", SYM).is_synced, "book synced")
    with trio.fail_after(HANG_GUARD_S):
        await client.stream.ready.wait()


def buy(engine: Engine, qty: str, price: Decimal, **kw):
    return engine.orders.submit(
        venue="opentrade", symbol=SYM, side=Side.BUY, quantity=D(qty), price=price, **kw
    )


async def done(handle):
    with trio.fail_after(HANG_GUARD_S):
        return await handle.done()


def clear_bids_from(sim: OpenTradeSimulator, price: Decimal) -> None:
    """Cancel the crowd's bids at or above `price`, so that sells reach our orders below."""
    for order in sim.engine.orders(owner="crowd", symbol=SYM, open_only=True):
        if order.side is Side.BUY and order.price >= price:
            sim.engine.cancel(order.order_id)


def fills(seen: list[OrderEvent]) -> list[OrderFill]:
    return [e for e in seen if isinstance(e, OrderFill)]


async def test_full_lifecycle_with_modify_and_partial_fills(tmp_path: Path) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await ready(engine)
        sim = sim_of(engine)
        bid, ask = sim.engine.best_bid(SYM), sim.engine.best_ask(SYM)
        assert ask - bid >= D("0.02")  # room for a new best bid
        handle = buy(engine, "0.01", bid - D("5"))
        seen = events_of(engine, handle.client_order_id)
        await until(engine, lambda: handle.status is S.ACCEPTED, "accepted")
        assert handle.order.venue_order_id is not None
        # MODIFY: better price (now the best bid) and more quantity
        new_price = bid + D("0.01")
        assert engine.orders.modify(handle.client_order_id, price=new_price, quantity=D("0.03"))
        await until(engine, lambda: handle.order.quantity == D("0.03"), "modified")
        assert handle.order.price == new_price
        assert sim.order(handle.client_order_id).price == new_price
        # partial fills from another participant, then the rest
        sim.engine.submit(OTHER, SYM, Side.SELL, "LIMIT", D("0.004"), price=new_price, tif="IOC")
        await until(engine, lambda: handle.order.filled_qty == D("0.004"), "partial 1")
        assert handle.status is S.PARTIALLY_FILLED
        sim.engine.submit(OTHER, SYM, Side.SELL, "LIMIT", D("0.006"), price=new_price, tif="IOC")
        await until(engine, lambda: handle.order.filled_qty == D("0.01"), "partial 2")
        # modify a partly filled order: the fills are kept
        assert engine.orders.modify(handle.client_order_id, quantity=D("0.02"))
        await until(engine, lambda: handle.order.quantity == D("0.02"), "shrunk")
        sim.engine.submit(OTHER, SYM, Side.SELL, "LIMIT", D("1"), price=new_price, tif="IOC")
        order = await done(handle)
        assert order.status is S.FILLED and order.filled_qty == D("0.02")
        assert order.avg_price == new_price
        kinds = [type(e) for e in seen]
        assert kinds[0] is OrderSubmitted and kinds[1] is OrderAccepted
        assert kinds.count(OrderModified) == 2 and kinds[-1] is OrderFilled
        assert [f.quantity for f in fills(seen)] == [D("0.004"), D("0.006"), D("0.01")]
        assert len({f.fill_id for f in fills(seen)}) == 3
        assert engine.portfolio.position("opentrade", SYM) == D("0.02")
        # the venue balance followed (BALANCE updates)
        await until(
            engine,
            lambda: engine.portfolio.balances[("opentrade", "BTC")].total == D("100.02"),
            "balance",
        )


async def test_taker_market_order_and_post_only_rejection(tmp_path: Path) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await ready(engine)
        sim = sim_of(engine)
        ask = sim.engine.best_ask(SYM)
        ask_size = sim.engine.book(SYM, 1)[1][0][1]
        taker = engine.orders.submit(
            venue="opentrade", symbol=SYM, side=Side.BUY, quantity=ask_size,
            type="MARKET", tif=TimeInForce.IOC,
        )  # fmt: skip
        order = await done(taker)
        assert order.status is S.FILLED and order.filled_qty == ask_size
        assert order.avg_price == ask
        rejected = events_of(engine)
        crossing = buy(engine, "0.01", sim.engine.best_ask(SYM), post_only=True)
        order = await done(crossing)
        assert order.status is S.REJECTED and "post-only" in (order.reason or "")
        assert any(isinstance(e, OrderRejected) and "post-only" in e.reason for e in rejected)


async def test_cancel_by_id_leaves_other_orders_alone(tmp_path: Path) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await ready(engine)
        sim = sim_of(engine)
        bid = sim.engine.best_bid(SYM)
        a, b = buy(engine, "0.01", bid - D("3")), buy(engine, "0.01", bid - D("4"))
        await until(engine, lambda: a.status is b.status is S.ACCEPTED, "both accepted")
        assert engine.orders.cancel(a.client_order_id)
        assert (await done(a)).status is S.CANCELLED
        assert b.status is S.ACCEPTED and sim.order(b.client_order_id).is_open
        assert sim.counts.get("cancel_all_pair", 0) == 0
        # cancelling an order the venue no longer has working: refused, reconciled, still right
        sim.engine.submit(OTHER, SYM, Side.SELL, "LIMIT", D("1"), price=bid - D("4"), tif="IOC")
        engine.orders.cancel(b.client_order_id)
        order = await done(b)
        assert order.status is S.FILLED and order.filled_qty == D("0.01")


async def test_explicit_cancel_all_cancels_every_order_of_the_pair(tmp_path: Path) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await ready(engine)
        sim = sim_of(engine)
        updates: list[OrderRequestUpdate] = []
        engine.bus.subscribe(OrderRequestUpdate, updates.append, owner="t")
        bid = sim.engine.best_bid(SYM)
        handles = [buy(engine, "0.01", bid - D(n)) for n in (3, 4, 5)]
        await until(engine, lambda: all(h.status is S.ACCEPTED for h in handles), "accepted")
        client = engine.orders.clients["opentrade"]
        with trio.fail_after(HANG_GUARD_S):
            await client.cancel_all(SYM)
        for handle in handles:
            assert (await done(handle)).status is S.CANCELLED
        assert sim.counts["cancel_all_pair"] == 1
        await until(engine, lambda: bool(updates), "request update")
        assert updates[0].client_order_id is None and updates[0].request_status == "CANCELLED"


async def test_gtd_order_expires(tmp_path: Path) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await ready(engine)
        sim = sim_of(engine)
        expire_at = time.time_ns() + 3_600_000_000_000
        handle = buy(
            engine, "0.01", sim.engine.best_bid(SYM) - D("3"), tif=TimeInForce.GTD,
            expire_at_ns=expire_at,
        )  # fmt: skip
        seen = events_of(engine, handle.client_order_id)
        await until(engine, lambda: handle.status is S.ACCEPTED, "accepted")
        assert sim.order(handle.client_order_id).tif == "GTT"
        assert sim.expire_orders(expire_at) == 1
        order = await done(handle)
        assert order.status is S.EXPIRED
        assert isinstance(seen[-1], OrderExpired)


async def test_token_expiry_mid_session_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await ready(engine)
        sim = sim_of(engine)
        client = engine.orders.clients["opentrade"]
        private = session(engine, "private")
        bid = sim.engine.best_bid(SYM)
        pa, pb = bid - D("4"), bid - D("3")
        every = events_of(engine)
        a, b = buy(engine, "0.01", pa), buy(engine, "0.01", pb)
        await until(engine, lambda: a.status is b.status is S.ACCEPTED, "accepted")
        clear_bids_from(sim, pa)
        mark = len(every)
        tokens_before = sim.counts["tokens"]
        epoch = private.epoch
        # The token expires. While our private subscription is dead, A is partly filled and B
        # filled in full; the venue tells us only that the token expired.
        sim.expire_tokens()
        sim.engine.submit(OTHER, SYM, Side.SELL, "LIMIT", D("0.01"), price=pb, tif="IOC")
        sim.engine.submit(OTHER, SYM, Side.SELL, "LIMIT", D("0.004"), price=pa, tif="IOC")
        assert sim.counts["expired_subscriptions"] >= 1
        await until(engine, lambda: b.status is S.FILLED, "B filled, learnt after re-auth")
        await until(engine, lambda: a.order.filled_qty == D("0.004"), "A partial")
        assert sim.counts["tokens"] > tokens_before and client.counts["reauths"] >= 1
        assert private.epoch == epoch  # survived on the same connection
        # new updates flow again on the new token
        sim.engine.submit(OTHER, SYM, Side.SELL, "LIMIT", D("0.006"), price=pa, tif="IOC")
        order = await done(a)
        assert order.status is S.FILLED
        # each fill exactly once, each state once
        seen = every[mark:]
        by_order = {
            h.client_order_id: [type(e) for e in seen if e.client_order_id == h.client_order_id]
            for h in (a, b)
        }
        assert by_order[b.client_order_id] == [OrderFilled]
        assert by_order[a.client_order_id] == [OrderPartiallyFilled, OrderFilled]
        assert [f.quantity for f in fills(seen)].count(D("0.004")) == 1
        assert engine.orders.counts["duplicate_fills"] == 0
        assert engine.orders.counts["impossible_transitions"] == 0
        # an order after the expiry goes out with the new token
        c = buy(engine, "0.01", bid - D("6"))
        await until(engine, lambda: c.status is S.ACCEPTED, "new order on the new token")


async def test_reconnect_reconciles_fills_missed_while_away(tmp_path: Path) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await ready(engine)
        sim = sim_of(engine)
        private = session(engine, "private")
        bid = sim.engine.best_bid(SYM)
        seen = events_of(engine)
        a = buy(engine, "0.01", bid - D("3"))
        b = buy(engine, "0.01", bid - D("4"))
        await until(engine, lambda: a.status is b.status is S.ACCEPTED, "accepted")
        clear_bids_from(sim, bid - D("4"))
        epoch = private.epoch
        mark = len(seen)
        sim.app.abort_all_ws()
        # while we are away: A filled in full, B partly
        sim.engine.submit(OTHER, SYM, Side.SELL, "LIMIT", D("0.01"), price=bid - D("3"), tif="IOC")
        sim.engine.submit(OTHER, SYM, Side.SELL, "LIMIT", D("0.003"), price=bid - D("4"), tif="IOC")
        await until(engine, lambda: private.epoch > epoch, "reconnected")
        await until(engine, lambda: a.status is S.FILLED, "A reconciled")
        await until(engine, lambda: b.order.filled_qty == D("0.003"), "B reconciled")
        assert b.status is S.PARTIALLY_FILLED
        after = seen[mark:]
        assert [type(e) for e in after if e.client_order_id == a.client_order_id] == [OrderFilled]
        assert engine.orders.counts["duplicate_fills"] == 0
        # B still works on the new connection
        assert engine.orders.cancel(b.client_order_id)
        assert (await done(b)).status is S.CANCELLED
        assert [type(e) for e in seen[mark:] if e.client_order_id == b.client_order_id] == [
            OrderPartiallyFilled,
            OrderCancelRequested,
            OrderCancelled,
        ]


async def test_bad_order_refused_before_it_leaves(tmp_path: Path) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await ready(engine)
        sim = sim_of(engine)
        off_tick = buy(engine, "0.01", D("60000.005"))
        assert off_tick.status is S.REJECTED and "tick" in (off_tick.order.reason or "")
        off_lot = buy(engine, "0.000000001", D("60000"))
        assert off_lot.status is S.REJECTED and "lot" in (off_lot.order.reason or "")
        unknown = engine.orders.submit(
            venue="opentrade", symbol="DOGE/USD", side=Side.BUY, quantity=D("1"), price=D("1")
        )
        assert unknown.status is S.REJECTED and "unknown symbol" in (unknown.order.reason or "")
        assert sim.order(off_tick.client_order_id) is None
        assert list(sim.orders) == []


async def test_acknowledged_order_whose_updates_a_token_expiry_lost_is_asked_for(
    tmp_path: Path,
) -> None:
    """The CREATE is acknowledged, then the token expires before the venue pushes NEW: the venue
    sends only the auth ERROR, and the order fills while our subscription is dead. The
    resubscription's snapshot holds active orders only, so the re-authentication must ask for
    an acknowledged order that has heard nothing since (it is no longer in flight)."""
    from framework.sim.faults import FaultPlan

    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await ready(engine)
        sim = sim_of(engine)
        client = engine.orders.clients["opentrade"]
        ask = sim.engine.best_ask(SYM)
        ask_size = sim.engine.book(SYM, 1)[1][0][1]
        qty = min(ask_size, D("0.001"))
        plan = FaultPlan()
        # WS token checks: the CREATE's own (let through), then the NEW update's push
        expiry = plan.once("token_expiry", "/exchange/ws", after=1)
        sim.app.faults = plan
        handle = buy(engine, str(qty), ask)  # marketable: filled at once, in the dark
        order = await done(handle)
        assert expiry.fired == 1 and client.counts["reauths"] >= 1
        assert sim.counts["expired_subscriptions"] >= 1
        assert order.status is S.FILLED and order.filled_qty == qty
        assert engine.orders.counts["duplicate_fills"] == 0


async def test_private_connection_lost_while_reauthenticating_keeps_the_engine_running(
    tmp_path: Path,
) -> None:
    """A token expiry makes the client re-authenticate; the private connection closes while it
    fetches the new token, so resubscribing on it fails. The engine must not stop: the reconnect
    subscribes with a fresh token and reconciles what was missed."""
    from framework.events import VenueState

    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await ready(engine)
        sim = sim_of(engine)
        client = engine.orders.clients["opentrade"]
        private = session(engine, "private")
        bid = sim.engine.best_bid(SYM)
        a = buy(engine, "0.01", bid - D("3"))
        await until(engine, lambda: a.status is S.ACCEPTED, "accepted")
        clear_bids_from(sim, bid - D("3"))
        tokens = client.tokens
        fetch = tokens.token
        closed = trio.Event()

        async def token_while_the_connection_closes() -> str:
            if client.counts["reauths"] and not closed.is_set():
                closed.set()  # the re-authentication's fetch: the venue restarts meanwhile
                sim.app.close_all_ws(1012)
                await until(
                    engine, lambda: private.state is VenueState.DISCONNECTED, "private closed"
                )
            return await fetch()

        tokens.token = token_while_the_connection_closes  # type: ignore[method-assign]
        epoch = private.epoch
        sim.expire_tokens()
        # the fill's update meets the expired token: the venue says so, we re-authenticate
        sim.engine.submit(OTHER, SYM, Side.SELL, "LIMIT", D("0.004"), price=bid - D("3"), tif="IOC")
        await until(engine, lambda: private.epoch > epoch, "reconnected")
        await until(engine, lambda: a.order.filled_qty == D("0.004"), "fill reconciled")
        assert closed.is_set()
        assert engine.orders.cancel(a.client_order_id)
        assert (await done(a)).status is S.CANCELLED


async def test_request_on_a_closed_private_connection_is_a_lost_request() -> None:
    """A connection that closed under a request is a transport failure the callers handle
    (ConnectionError, as a lost reply), not trio_websocket's ConnectionClosed: that one ended
    the token task, and the engine with it, when a re-authentication's reconciliation met it."""
    import pytest
    from trio_websocket import CloseReason, ConnectionClosed

    from framework.venues.opentrade import messages as m
    from framework.venues.opentrade.private import PrivateStream

    class Closed:
        async def send(self, message: object) -> None:
            raise ConnectionClosed(CloseReason(1012, None))

    stream = PrivateStream("ws://127.0.0.1:1/exchange/ws", None, [SYM], [])  # type: ignore[arg-type]
    stream.conn = Closed()  # type: ignore[assignment]
    with pytest.raises(ConnectionError):
        await stream.request(m.get(m.TRADE_PRIVATE, []), 5.0)
    assert stream.correlator.in_flight() == 0


async def test_shutdown_cancels_each_pair_with_one_bulk_cancel(tmp_path: Path) -> None:
    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await ready(engine)
        sim = sim_of(engine)
        bid = sim.engine.best_bid(SYM)
        handles = [buy(engine, "0.01", bid - D(n)) for n in (3, 4)]
        await until(engine, lambda: all(h.status is S.ACCEPTED for h in handles), "accepted")
        engine.stop()  # shutdown: cancel_all_on_shutdown
        for handle in handles:
            assert (await done(handle)).status is S.CANCELLED
        assert engine.orders.counts["bulk_cancels"] == 1
        # one pair-wide CANCEL per subscribed market, none order by order
        assert sim.counts["cancel_all_pair"] == 2
        assert sim.counts.get("cancel", 0) == 0


async def test_shutdown_cancels_again_what_the_stream_could_not_cancel_yet(tmp_path: Path) -> None:
    """The shutdown's cancel-all meets the private stream between connections: the bulk cancel
    does not leave, the order's own cancel is refused (not ready). The shutdown cancels it
    again, and it ends CANCELLED at the venue, not left working there."""
    from framework.errors import NotConnected, OrderRefused

    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await ready(engine)
        sim = sim_of(engine)
        handle = buy(engine, "0.01", sim.engine.best_bid(SYM) - D(3))
        await until(engine, lambda: handle.status is S.ACCEPTED, "accepted")
        client = engine.orders.clients["opentrade"]
        real_cancel = client.cancel
        refused = 0

        async def cancel_all(symbol: str | None = None) -> None:
            raise NotConnected("opentrade private stream is not connected")

        async def cancel_refused_once(order: Order) -> ExecutionReport | None:
            nonlocal refused
            if refused == 0:
                refused += 1
                raise OrderRefused("opentrade private stream not ready")
            return await real_cancel(order)

        client.cancel_all = cancel_all  # type: ignore[method-assign]
        client.cancel = cancel_refused_once  # type: ignore[method-assign]
        engine.stop()
        assert (await done(handle)).status is S.CANCELLED
        assert refused == 1
        assert not sim.order(handle.client_order_id).is_open


# --- every answer form the venue's material allows -----------------------------------------------

FORMS = [
    pytest.param({}, id="documented"),
    pytest.param({"echo_request_id": True}, id="requestId-echoed"),
    pytest.param({"fill_amounts": True}, id="filledAmount-on-items"),
    pytest.param({"cancel_ack_names_order": True}, id="cancel-ack-names-the-order"),
    pytest.param({"cancel_reply_order": False}, id="cancel-ack-alone"),
    pytest.param({"cancel_order_update": True}, id="cancelled-order-update-too"),
    pytest.param({"connect_confirmation": False}, id="no-confirmation-on-connect"),
    pytest.param({"trade_history_lag_s": 0.5}, id="trade-history-written-late"),
]


@pytest.mark.parametrize("form", FORMS)
async def test_partial_fill_then_cancel_books_the_fill_in_every_answer_form(
    tmp_path: Path, form: dict[str, bool]
) -> None:
    """A MODIFY, a partial fill and, before that fill is even booked, a cancel: whatever form
    the answers take, the order ends CANCELLED with exactly the venue's filled quantity."""
    sim = OpenTradeSimulator.build(7, **form)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(partial(sim.run, port=0, market_rate_hz=None))
        c = cfg(sim_url=f"http://127.0.0.1:{port}")
        async with running(c, journal_path=str(tmp_path / "j.sqlite")) as engine:
            await ready(engine)
            bid = sim.engine.best_bid(SYM)
            price = bid - D("3")
            handle = buy(engine, "0.01", price)
            seen = events_of(engine, handle.client_order_id)
            await until(engine, lambda: handle.status is S.ACCEPTED, "accepted")
            assert engine.orders.modify(handle.client_order_id, quantity=D("0.02"))
            await until(engine, lambda: handle.order.quantity == D("0.02"), "modified")
            clear_bids_from(sim, price)
            sim.engine.submit(OTHER, SYM, Side.SELL, "LIMIT", D("0.004"), price=price, tif="IOC")
            assert engine.orders.cancel(handle.client_order_id)
            order = await done(handle)
            assert order.status is S.CANCELLED
            assert order.filled_qty == sim.order(handle.client_order_id).filled == D("0.004")
            assert [f.quantity for f in fills(seen)] == [D("0.004")]
            assert engine.portfolio.position("opentrade", SYM) == D("0.004")
            assert engine.orders.counts["duplicate_fills"] == 0
            assert engine.orders.counts["impossible_transitions"] == 0
        nursery.cancel_scope.cancel()


async def test_a_price_the_venue_would_cut_never_leaves(tmp_path: Path) -> None:
    """[DOC] a price with more than 7 significant digits is cut by the venue (123456.78 would be
    worked at 123456.7, a more aggressive SELL). The core refuses it before sending; the
    strategy's `venue_price` rounds away from aggressiveness instead, and the venue then works
    the order at exactly the price the core booked."""
    from framework.execution.checks import venue_price
    from framework.venues.opentrade.capabilities import CAPABILITIES

    async with running(cfg(), journal_path=str(tmp_path / "j.sqlite")) as engine:
        await ready(engine)
        sim = sim_of(engine)
        asked = D("123456.78")
        cut = engine.orders.submit(
            venue="opentrade", symbol=SYM, side=Side.SELL, quantity=D("0.001"), price=asked
        )
        assert cut.status is S.REJECTED
        assert "more than 7 significant digits" in (cut.order.reason or "")
        assert sim.order(cut.client_order_id) is None  # never left
        inst = engine.orders.instruments[("opentrade", SYM)]
        price = venue_price(asked, CAPABILITIES, inst, passive_for=Side.SELL)
        assert price == D("123456.8")  # up for a SELL: never more aggressive than asked
        assert venue_price(asked, CAPABILITIES, inst, passive_for=Side.BUY) == D("123456.7")
        rounded = engine.orders.submit(
            venue="opentrade", symbol=SYM, side=Side.SELL, quantity=D("0.001"), price=price
        )
        await until(engine, lambda: rounded.status is S.ACCEPTED, "accepted")
        assert sim.order(rounded.client_order_id).price == rounded.order.price == price
