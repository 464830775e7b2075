"""The pytest plugin: `fault_plan`, `chaos_run` and `--fault-seed` (see framework/testing)."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import pytest

from framework.sim.faults import FaultPlan
from framework.testing.run import chaos


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
