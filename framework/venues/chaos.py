"""What a venue declares to the test kit: its `ChaosCase` (see framework/testing for the kit).

A venue joins the fault-tolerance tests, the fuzzer, the soak and the user fixtures by shipping
`framework/venues/<venue>/chaos.py` with `CASE = ChaosCase(...)`. That module imports only this
one (and the simulator toolkit), never the engine or pytest: the declaration sits in the venues
layer, below the test kit that runs it (tests/test_layers.py), and `chaos_cases()` finds the
cases through the venue registry, the one venue list.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import attrs

from framework.events import Side
from framework.sim.faults import FaultPlan, Rule
from framework.venues import venue_names


def _engine_book(sim: Any, symbol: str) -> tuple[list, list]:
    return sim.engine.book(symbol)


def _engine_step(sim: Any, n: int) -> None:
    for crowd in sim.crowds.values():
        crowd.steps(n)


@attrs.frozen
class VenueOrder:
    """One of our orders as a standalone simulator knows it (the venue's truth)."""

    client_order_id: str
    status: str  # the venue's own word
    open: bool  # still working (or not yet decided) at the venue
    filled: Decimal


@attrs.frozen
class VenueFill:
    fill_id: str  # the venue's fill id (as the client names it where `fills_by_id`)
    client_order_id: str
    quantity: Decimal


VenueTruth = tuple[list[VenueOrder], list[VenueFill]]


def hook_truth(http_url: str) -> VenueTruth:
    """A standalone simulator's truth from its simulator-only test hook (`TRUTH_PATH`)."""
    import httpx

    from framework.sim.server import TRUTH_PATH

    response = httpx.get(http_url.rstrip("/") + TRUTH_PATH, timeout=10)
    response.raise_for_status()
    data = response.json()
    orders = [
        VenueOrder(o["client_order_id"], o["status"], bool(o["open"]), Decimal(o["filled"]))
        for o in data["orders"]
    ]
    fills = [
        VenueFill(f["fill_id"], f["client_order_id"], Decimal(f["quantity"])) for f in data["fills"]
    ]
    return orders, fills


def http_order_faults(plan: FaultPlan, scale: float = 1.0) -> list[Rule]:
    """Order-path faults of a venue that takes orders over REST."""
    return [
        plan.add("http_error", 0.12 * scale),
        plan.add("http_lost_reply", 0.05 * scale),
        plan.add("http_delay", 0.05 * scale, seconds=0.01),
    ]


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
    # rules that drop the connection right after the venue acted on the next create, before
    # its answer left (REST: `http_reset_after` on the create; WebSocket: `abort` on the frame
    # that answers it). Empty where the venue has not declared it.
    reset_after_create: Callable[[FaultPlan], list[Rule]] = lambda plan: []
    # WebSocket venues whose order events travel on a stream: which outbound frames carry them
    # (for faults aimed at order events, e.g. `corrupt_number`). None: orders are REST only, or
    # the venue has not declared it.
    order_frames: Callable[[str], bool] | None = None
    # the numbers in those frames the adapter reads (quantities, prices, fees): what a
    # `corrupt_number` aimed at order events corrupts
    order_numbers: tuple[str, ...] = ()
    # does the venue name each fill (so fills compare one by one)? False where fill ids are
    # derived from cumulative amounts and missed events merge into one catch-up fill
    fills_by_id: bool = True
    # for fuzzing: the venue's streams as the session drives them (`decode(frame, recv_ns)`),
    # by name, and valid sample frames for each (mutated by the fuzzer)
    streams: Callable[[], dict[str, Any]] = lambda: {}
    samples: dict[str, tuple[str, ...]] = attrs.Factory(dict)
    # the truth of a standalone simulator (`botrun sim VENUE`) from outside its process, for the
    # crash-recovery harness: its http url -> (our orders, our fills). By default the
    # simulator-only test hook every simulator serves; a venue whose own API lists orders and
    # fills may declare that instead.
    standalone_truth: Callable[[str], VenueTruth] = hook_truth

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
