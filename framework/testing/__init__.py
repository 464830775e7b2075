"""Test your strategy against a misbehaving venue: pytest fixtures and chaos helpers.

In your own test suite (pytest + pytest-trio, `trio_mode = true`), add to `conftest.py`:

    pytest_plugins = ["framework.testing"]

and write tests such as

    async def test_my_strategy_survives_a_flaky_venue(chaos_run, fault_plan):
        fault_plan.add("duplicate", 0.01)
        fault_plan.add("close", 0.002)
        fault_plan.add("http_error", 0.05)
        async with chaos_run("paxos", strategies=[MyStrategy(params)], faults=fault_plan) as run:
            for _ in range(20):
                run.step(100)               # move the simulated market
                await run.settle()          # every frame the venue sent has been handled
                assert run.book_problems() == []
            await run.finish_orders()       # faults off, everything cancelled and terminal
            assert run.order_problems() == []

`fault_plan` is a `FaultPlan` (framework/sim/faults.py) seeded from the test's id (or from
`--fault-seed N`), so a failure replays. `chaos_run(venue, ...)` (= `chaos`) runs an `Engine`
(sandbox mode, temporary journal) against that venue's embedded simulator with its market
stopped: the test moves it (`run.step`), so every run is deterministic.

A venue joins by shipping `framework/venues/<venue>/chaos.py` with `CASE = ChaosCase(...)`: what
the generic guarantee tests, the soak and these fixtures need to know about it.
"""

from __future__ import annotations

import importlib
import tempfile
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from framework.engine import Engine
from framework.events import BookState, BookStatus, OrderStatus, Side, VenueState
from framework.sim.engine import EngineListener
from framework.sim.faults import FaultPlan, Rule
from framework.strategy import Strategy
from framework.transport.session import Backoff, WsSession
from framework.venues import parse_config as parse
from framework.venues import venue_names

HANG_GUARD_S = 30.0
OTHER = "chaos-other"  # the participant that trades against our orders

_TERMINAL_AT_VENUE = {"FILLED", "CANCELLED", "REJECTED", "EXPIRED"}


def _engine_book(sim: Any, symbol: str) -> tuple[list, list]:
    return sim.engine.book(symbol)


def _engine_step(sim: Any, n: int) -> None:
    for crowd in sim.crowds.values():
        crowd.steps(n)


def http_order_faults(plan: FaultPlan, scale: float = 1.0) -> list[Rule]:
    """Order-path faults of a venue that takes orders over REST."""
    return [
        plan.add("http_error", 0.12 * scale),
        plan.add("http_lost_reply", 0.05 * scale),
        plan.add("http_delay", 0.05 * scale, seconds=0.01),
    ]


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


@attrs.frozen(kw_only=True)
class ChaosCase:
    """What the fault tests, the soak and the fixtures need to know about one venue."""

    venue: str
    markets: tuple[str, ...]
    # the venue's config section for its embedded simulator with the market stopped
    # (`sim_rate_hz = 0`: the test moves it): section(seed) -> dict
    section: Callable[[int], dict[str, Any]]
    # the session that owns the books, and the simulator WS path it connects to (exact)
    book_stream: str
    book_path: str
    # can the client notice a lost or reordered book frame (sequence numbers, checksums)?
    # If not, `drop` and `reorder` on the book path can leave a synced book silently wrong.
    detects_gaps: bool
    # our account's owner id on the simulator's matching engine
    account: str
    # faults this venue's simulator performs itself (framework.sim.faults.VENUE_KINDS)
    venue_faults: tuple[str, ...] = ()
    # the simulator's true book and how to move its market
    truth: Callable[[Any, str], tuple[list, list]] = _engine_book
    step: Callable[[Any, int], None] = _engine_step
    # venue fill id of our side of an engine fill (what the client de-duplicates on)
    fill_id: Callable[[Any, Any], str] = lambda sim, fill: fill.trade_id
    # price step of each market, for placing orders
    tick: Callable[[Any, str], Decimal] = lambda sim, symbol: sim.engine.tick(symbol)
    lot: Decimal = Decimal("0.0001")
    # does this outbound book frame remove level (symbol, side, price)? (for scripted drops)
    removes_level: Callable[[str, str, Side, Decimal], bool] | None = None
    # random faults on the order path at `scale` times the guarantee test's rates (answers
    # refused, lost after the venue acted, delayed): HTTP for REST venues, frames for WS ones
    order_faults: Callable[[FaultPlan, float], list[Rule]] = attrs.field(
        default=lambda plan, scale: http_order_faults(plan, scale)
    )
    # rules that lose the reply to the next order submission (the venue has the order)
    lose_submit_reply: Callable[[FaultPlan], list[Rule]] = lambda plan: []
    # rules that make order queries fail until removed (reconciliation cannot succeed)
    queries_fail: Callable[[FaultPlan], list[Rule]] = lambda plan: []
    # does the venue name each fill (so fills compare one by one)? False where fill ids are
    # derived from cumulative amounts and missed events merge into one catch-up fill
    fills_by_id: bool = True
    # for fuzzing: the venue's streams as the session drives them (`decode(frame, recv_ns)`),
    # by name, and valid sample frames for each (mutated by the fuzzer)
    streams: Callable[[], dict[str, Any]] = lambda: {}
    samples: dict[str, tuple[str, ...]] = attrs.Factory(dict)

    @property
    def unsafe_book_faults(self) -> tuple[str, ...]:
        """Frame faults this venue's book feed cannot detect (excluded from book checks)."""
        return () if self.detects_gaps else ("drop", "reorder")


def chaos_cases() -> dict[str, ChaosCase]:
    """Every venue that ships `framework/venues/<venue>/chaos.py`."""
    cases = {}
    for name in venue_names():
        try:
            module = importlib.import_module(f"framework.venues.{name}.chaos")
        except ModuleNotFoundError as exc:
            if exc.name != f"framework.venues.{name}.chaos":
                raise
            continue
        cases[name] = module.CASE
    return cases


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
            return not open_

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


# --- pytest plugin ---------------------------------------------------------------------------


def pytest_addoption(parser: Any) -> None:
    parser.addoption(
        "--fault-seed",
        type=int,
        default=None,
        help="seed every fault_plan fixture with this (default: derived from the test id)",
    )


@pytest.fixture
def fault_plan(request: Any) -> FaultPlan:
    """A FaultPlan seeded from the test id (stable across runs) or from --fault-seed."""
    seed = request.config.getoption("--fault-seed", default=None)
    if seed is None:
        seed = zlib.crc32(request.node.nodeid.encode())
    return FaultPlan(seed)


@pytest.fixture
def chaos_run() -> Callable[..., Any]:
    """`async with chaos_run("paxos", faults=plan, strategies=[...]) as run:` (see `chaos`)."""
    return chaos
