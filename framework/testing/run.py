"""The chaos run: an engine and a venue's embedded simulator under a fault plan.

`chaos(venue, ...)` (the `chaos_run` fixture) starts an `Engine` in sandbox mode with a temporary
journal against the venue's simulator, its market stopped (the test moves it), and yields a
`ChaosRun`: step the market, wait until every frame is handled (`settle`), compare books and
orders with the venue's (`book_problems`, `order_problems`), cancel and finish (`finish_orders`).
Waits are on events (`Pulse`), never on time. No pytest import: the soak bench uses it too.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import trio

from framework.engine import Engine
from framework.events import BookState, BookStatus, OrderStatus, Side, VenueState
from framework.sim.engine import EngineListener
from framework.sim.faults import FaultPlan
from framework.strategy import Strategy
from framework.transport.session import Backoff, WsSession
from framework.venues import parse_config as parse
from framework.venues.chaos import ChaosCase, chaos_cases

HANG_GUARD_S = 30.0
OTHER = "chaos-other"  # the participant that trades against our orders

_TERMINAL_AT_VENUE = {"FILLED", "CANCELLED", "REJECTED", "EXPIRED"}


def server_connection(sess: WsSession, app: Any) -> Any:
    """The simulator's side of the session's current connection (a WsConnection), or None.

    Found by the client's own port, not by path: a venue may serve more than one connection
    on a path (public and private streams, a start-up fetch).
    """
    if sess.local_port is None:
        return None
    for conn in app.ws_connections:
        if conn.peer_port == sess.local_port:
            return conn
    return None  # accepted but not yet listed, or already gone


def caught_up(sess: WsSession, app: Any) -> bool:
    """The session is connected and has handled every frame the simulator queued for it."""
    if sess.state is VenueState.DISCONNECTED:
        return False
    conn = server_connection(sess, app)
    return conn is not None and not conn.closed and sess.epoch_frames >= conn.enqueued


class Pulse:
    """An event re-armed on every `fire()`: wait for a condition without polling or sleeping."""

    def __init__(self) -> None:
        self._event = trio.Event()
        self.fired = 0

    def fire(self, *_: Any) -> None:
        self.fired += 1
        self._event.set()
        self._event = trio.Event()

    async def until(self, predicate: Callable[[], bool], what: str = "") -> None:
        try:
            with trio.fail_after(HANG_GUARD_S):
                while not predicate():
                    await self._event.wait()
        except trio.TooSlowError:
            raise AssertionError(f"condition never held: {what}") from None


class ChaosRun:
    """An engine and the venue simulator it trades with, under a fault plan."""

    def __init__(self, engine: Engine, case: ChaosCase, plan: FaultPlan) -> None:
        self.engine = engine
        self.case = case
        self.plan = plan
        self.sim: Any = engine.simulators[case.venue].simulator
        self.pulse = Pulse()
        self.told: dict[str, BookState] = {}  # last BookStatus the strategies saw, per symbol
        self.book_checks = 0
        self.mismatches: list[str] = []
        # our orders and fills as the venue's engine made them, recorded as they happen (the
        # engine's own history is bounded, a long soak outlives it)
        self.recorded_orders: dict[str, Any] = {}  # venue order id -> latest snapshot
        self.recorded_fills: dict[str, list[Any]] = {}  # venue order id -> its fills
        self.orders_recorded = 0
        self.fills_recorded = 0
        # orders final on both sides are checked and forgotten (`forget_settled`), so that a
        # long soak's records stay bounded: what remains of them is below
        self.settled: set[str] = set()  # client order ids
        self.settled_position: dict[str, Decimal] = {}
        self.sim.engine.add_listener(_Recorder(self, case.account))

    # --- wiring ----------------------------------------------------------------------------

    def _watch(self) -> None:
        engine = self.engine
        engine.bus.subscribe(object, self.pulse.fire, owner="chaos")
        engine.bus.subscribe(BookStatus, self._on_book_status, owner="chaos")
        self.plan.listeners.append(self.pulse.fire)
        for sess in engine.sessions:
            # reconnect within milliseconds: tests and the soak inject many disconnects
            sess.backoff = Backoff(base_s=0.005, cap_s=0.05)
            # token expiry is injected often; a real refusal backs off 30 s (tested elsewhere)
            sess.auth_backoff_s = 0.05
            stream = sess.stream
            decode = stream.decode

            def pulsed(frame: Any, recv_ns: int, _decode: Any = decode) -> None:
                try:
                    _decode(frame, recv_ns)
                finally:
                    self.pulse.fire()

            stream.decode = pulsed  # type: ignore[method-assign]
        client = engine.orders.clients.get(self.case.venue)
        if client is not None:
            query = client.query_order

            async def pulsed_query(order: Any, _query: Any = query) -> Any:
                try:
                    return await _query(order)
                finally:
                    self.pulse.fire()

            client.query_order = pulsed_query  # type: ignore[method-assign]

    def _on_book_status(self, event: BookStatus) -> None:
        if event.venue == self.case.venue:
            self.told[event.symbol] = event.state

    @property
    def book_session(self) -> WsSession:
        (found,) = [s for s in self.engine.sessions if s.stream.name == self.case.book_stream]
        return found

    # --- the market ------------------------------------------------------------------------

    def step(self, n: int) -> None:
        """Move the simulated market `n` steps (frames go out at once, faults applied)."""
        self.case.step(self.sim, n)

    def take(self, symbol: str, side: Side, quantity: Decimal, price: Decimal) -> Any:
        """Another participant sends an IOC limit order (trades against ours if they are best)."""
        return self.sim.engine.submit(
            OTHER, symbol, side, "LIMIT", quantity, price=price, tif="IOC"
        )

    # --- books -----------------------------------------------------------------------------

    def quiescent(self) -> bool:
        """The book stream is connected and has handled every frame the venue sent on it."""
        return caught_up(self.book_session, self.sim.app)

    async def settle(self, *, synced: bool = False) -> None:
        """Wait until quiescent (and, with `synced`, every book synced)."""

        def done() -> bool:
            if not self.quiescent():
                return False
            return not synced or all(
                self.engine.book(self.case.venue, m).is_synced for m in self.case.markets
            )

        await self.pulse.until(done, "book stream quiescent" + (" and synced" if synced else ""))

    def book_problems(self) -> list[str]:
        """At a quiescent moment: every book equals the venue's, or is not synced and said so."""
        problems = []
        for market in self.case.markets:
            self.book_checks += 1
            book = self.engine.book(self.case.venue, market)
            if book.state is BookState.SYNCED:
                bids, asks = self.case.truth(self.sim, market)
                if book.bids() != bids or book.asks() != asks:
                    problems.append(f"{market}: synced but different from the venue's book")
            elif self.told.get(market) is not book.state:
                problems.append(
                    f"{market}: {book.state.value} but strategies were last told "
                    f"{getattr(self.told.get(market), 'value', 'nothing')}"
                )
        self.mismatches.extend(problems)
        return problems

    # --- orders ----------------------------------------------------------------------------

    def venue_orders(self) -> list[Any]:
        """Our orders at the venue (latest state of each), except those already settled."""
        return list(self.recorded_orders.values())

    def venue_fills(self) -> dict[str, tuple[str, Decimal]]:
        """fill id -> (client order id, quantity) of our fills at the venue (not yet settled)."""
        out: dict[str, tuple[str, Decimal]] = {}
        for order_id, fills in self.recorded_fills.items():
            order = self.recorded_orders.get(order_id)
            coid = (order.client_order_id if order is not None else None) or "?"
            for fill in fills:
                out[self.case.fill_id(self.sim, fill)] = (coid, fill.quantity)
        return out

    async def finish_orders(self) -> None:
        """Faults off; cancel what is working; wait until every order is terminal."""
        self.plan.enabled = False
        orders = self.engine.orders
        orders.cancel_all(self.case.venue)
        orders._reconcile_wakeup.set()

        def all_terminal() -> bool:
            open_ = orders.open_orders(self.case.venue)
            for order in open_:
                if order.status is OrderStatus.UNKNOWN:
                    orders._reconcile_wakeup.set()
                elif not order.cancel_pending:
                    orders.cancel(order.client_order_id)
            if orders._recheck_ended:
                orders._reconcile_wakeup.set()  # an ended order's fills are asked for again
            return not open_ and not orders._recheck_ended

        await self.pulse.until(all_terminal, "every order terminal")

    def order_problems(self) -> list[str]:
        """Journal vs venue: no order lost or duplicated, no fill lost or doubled."""
        problems = []
        journal = self.engine.journal
        for coid, found in self._by_coid().items():
            if coid in self.settled:
                problems.append(f"duplicated: another venue order for settled {coid}")
            ours = journal.load(coid)
            if ours is None:
                problems.append(f"lost: venue order {coid} unknown to the journal")
                continue
            problems += self._order_checks(coid, found, ours)
        known = self.settled | self._by_coid().keys()
        for fill_id, coid in journal._db.execute(
            "SELECT fill_id, client_order_id FROM fills WHERE venue=?", (self.case.venue,)
        ):
            if coid not in known:
                problems.append(f"fill {fill_id} in the journal but not at the venue")
        position = self.engine.portfolio
        for market in self.case.markets:
            venue_pos = self.settled_position.get(market, Decimal(0))
            for venue_order in self.venue_orders():
                if venue_order.symbol == market:
                    venue_pos += (
                        venue_order.filled if venue_order.side is Side.BUY else -venue_order.filled
                    )
            if position.position(self.case.venue, market) != venue_pos:
                problems.append(
                    f"{market}: position {position.position(self.case.venue, market)}, "
                    f"venue {venue_pos}"
                )
        return problems

    def forget_settled(self) -> int:
        """Check every order final at the venue and in the journal, then forget its records.

        Only orders that check out are forgotten (a fill may still be on its way: anything
        else is left for `order_problems`). Returns how many orders were settled.
        """
        journal = self.engine.journal
        settled = 0
        for coid, found in self._by_coid().items():
            if any(o.status not in _TERMINAL_AT_VENUE for o in found):
                continue
            ours = journal.load(coid)
            if ours is None or not ours.status.is_terminal:
                continue  # lost, or not final here yet: decided at the end
            if coid in self.settled or self._order_checks(coid, found, ours):
                continue  # kept for `order_problems`, which decides with everything in
            self.settled.add(coid)
            for order in found:
                self.recorded_orders.pop(order.order_id, None)
                self.recorded_fills.pop(order.order_id, None)
                signed = order.filled if order.side is Side.BUY else -order.filled
                self.settled_position[order.symbol] = (
                    self.settled_position.get(order.symbol, Decimal(0)) + signed
                )
            settled += 1
        return settled

    def _by_coid(self) -> dict[str, list[Any]]:
        by_coid: dict[str, list[Any]] = {}
        for venue_order in self.recorded_orders.values():
            by_coid.setdefault(venue_order.client_order_id or "", []).append(venue_order)
        return by_coid

    def _order_checks(self, coid: str, found: list[Any], ours: Any) -> list[str]:
        """One client order: its venue orders (normally one) against its journal row and fills."""
        problems = []
        if len(found) > 1:
            problems.append(f"duplicated: {len(found)} venue orders for {coid}")
        venue_order = found[-1]
        if ours.filled_qty != venue_order.filled:
            problems.append(f"{coid}: journal filled {ours.filled_qty}, venue {venue_order.filled}")
        if (venue_order.status in _TERMINAL_AT_VENUE) != ours.status.is_terminal:
            problems.append(f"{coid}: journal {ours.status.value}, venue {venue_order.status}")
        rows = self.engine.journal._db.execute(
            "SELECT fill_id, quantity FROM fills WHERE venue=? AND client_order_id=?",
            (self.case.venue, coid),
        ).fetchall()
        journal_fills = {fill_id: Decimal(qty) for fill_id, qty in rows}
        venue_fills = {
            self.case.fill_id(self.sim, fill): fill.quantity
            for order in found
            for fill in self.recorded_fills.get(order.order_id, ())
        }
        if self.case.fills_by_id:
            for fill_id, qty in venue_fills.items():
                if fill_id not in journal_fills:
                    problems.append(f"fill lost: {fill_id} of {coid} ({qty})")
                elif journal_fills[fill_id] != qty:
                    problems.append(
                        f"fill {fill_id}: journal {journal_fills[fill_id]}, venue {qty}"
                    )
            for fill_id in journal_fills.keys() - venue_fills.keys():
                problems.append(f"fill {fill_id} in the journal but not at the venue")
        else:
            # fills derived from cumulative amounts merge when order events were missed (the
            # catch-up only knows the total): what must hold is each order's total
            total = sum(journal_fills.values(), Decimal(0))
            if total != venue_order.filled:
                problems.append(f"{coid}: journal fills total {total}, venue {venue_order.filled}")
        return problems


class _Recorder(EngineListener):
    def __init__(self, run: ChaosRun, account: str) -> None:
        self.run = run
        self.account = account

    def on_order(self, order: Any) -> None:
        if order.owner == self.account:
            if order.order_id not in self.run.recorded_orders:
                self.run.orders_recorded += 1
            self.run.recorded_orders[order.order_id] = order

    def on_trade(self, fill: Any) -> None:
        for owner, order_id in (
            (fill.maker_owner, fill.maker_order_id),
            (fill.taker_owner, fill.taker_order_id),
        ):
            if owner == self.account:
                self.run.recorded_fills.setdefault(order_id, []).append(fill)
                self.run.fills_recorded += 1


RISK = {
    "max_order_notional": "1000000000",
    "max_position": "1000000",
    "max_open_orders": 1000,
    "max_orders_per_second": 100000,
}


@asynccontextmanager
async def chaos(
    venue: str,
    *,
    seed: int = 1,
    faults: FaultPlan | None = None,
    strategies: list[Strategy] | None = None,
    mode: str = "sandbox",
    journal_path: str | None = None,
    venue_extra: dict[str, Any] | None = None,
    risk: dict[str, Any] | None = None,
    case: ChaosCase | None = None,
) -> AsyncIterator[ChaosRun]:
    """Run an engine against `venue`'s embedded simulator (market stopped) under `faults`.

    `case` overrides the venue's ChaosCase (e.g. another book stream chosen by `venue_extra`).
    """
    case = case or chaos_cases()[venue]
    plan = faults if faults is not None else FaultPlan(seed)
    section = {**case.section(seed), **(venue_extra or {})}
    cfg = parse({"venues": {venue: section}, "botrun": {"mode": mode}, "risk": risk or RISK})
    with tempfile.TemporaryDirectory(prefix="botrun-chaos-") as tmp:
        engine = Engine(
            cfg, strategies or [], journal_path=journal_path or str(Path(tmp) / "journal.sqlite")
        )
        engine.orders.reconcile_interval_s = 0.05
        # faults here hold a request at most ~1 s: "not found" is concluded after 3 s; and
        # working orders are re-checked often, so a lost order update shows within a test
        engine.orders.not_found_grace_s = 3.0
        engine.orders.working_check_interval_s = 0.5
        async with trio.open_nursery() as nursery:
            nursery.start_soon(engine.run, 0)
            with trio.fail_after(HANG_GUARD_S):
                await engine.started.wait()
            run = ChaosRun(engine, case, plan)
            run._watch()
            if any(s.epoch for s in engine.sessions):
                # a stream got connected before its decoder was watched: start it over
                run.sim.app.close_all_ws(1012)
            run.sim.app.faults = plan
            try:
                yield run
            finally:
                nursery.cancel_scope.cancel()
