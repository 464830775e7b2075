"""Crash recovery: SIGKILL the real `botrun` process mid order flow, restart, reconcile.

A few kill points here (CI); `bench/crash.py` runs 50 or more. See tests/crash_harness.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.crash_harness import crash_recovery, crash_venues

KILL_POINTS = 8


@pytest.mark.parametrize("venue", crash_venues())
def test_sigkill_at_random_points_loses_and_duplicates_nothing(venue: str, tmp_path: Path) -> None:
    result = crash_recovery(KILL_POINTS, seed=7, workdir=tmp_path, venue=venue, max_lines=25)
    assert result["problems"] == []
    assert result["lost"] == 0 and result["duplicated"] == 0
    # the run really traded across the kills: orders at the venue, fills, and all known
    assert result["venue_orders"] >= KILL_POINTS
    assert result["fills"] > 0
    assert result["journal_orders"] >= result["venue_orders"]
    # everything ended terminal after the last, graceful run (cancel-all on shutdown)
    open_left = {
        s: n
        for s, n in result["journal_statuses"].items()
        if s not in ("FILLED", "CANCELLED", "REJECTED", "EXPIRED")
    }
    assert open_left == {}
