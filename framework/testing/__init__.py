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

A venue joins by shipping `framework/venues/<venue>/chaos.py` with `CASE = ChaosCase(...)`
(framework/venues/chaos.py): what the generic guarantee tests, the fuzzer, the soak and these
fixtures need to know about it. The declaration lives in the venues layer, so a venue's chaos
module imports neither the engine nor pytest.

The kit:
- `framework.venues.chaos`: `ChaosCase`, `chaos_cases()` (every registered venue's case);
- `framework.testing.run`: the run machinery (`chaos`, `ChaosRun`, `Pulse`, `caught_up`, ...);
- `framework.testing.plugin`: the pytest fixtures, loaded through `pytest_plugins` below, so
  importing this package (the soak bench does) does not import pytest.
"""

from __future__ import annotations

from framework.testing.run import (
    HANG_GUARD_S,
    OTHER,
    RISK,
    ChaosRun,
    Pulse,
    caught_up,
    chaos,
    server_connection,
)
from framework.venues.chaos import ChaosCase, chaos_cases, http_order_faults

# `pytest_plugins = ["framework.testing"]` registers this module; pytest then loads these
pytest_plugins = ["framework.testing.plugin"]

__all__ = [
    "HANG_GUARD_S",
    "OTHER",
    "RISK",
    "ChaosCase",
    "ChaosRun",
    "Pulse",
    "caught_up",
    "chaos",
    "chaos_cases",
    "http_order_faults",
    "server_connection",
]
