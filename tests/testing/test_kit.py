"""The test kit as a package: the plugin loads through `pytest_plugins = ["framework.testing"]`,
and what a venue's chaos module declares imports neither the engine nor pytest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from framework.testing import chaos_cases
from framework.venues import venue_names

ROOT = Path(__file__).resolve().parent.parent.parent


def _modules_after(statement: str) -> set[str]:
    """Which of pytest / the engine / the run machinery a fresh interpreter loaded."""
    code = (
        f"import sys\n{statement}\n"
        "print(' '.join(m for m in ('pytest', 'framework.engine', 'framework.testing.run') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(out.stdout.split())


@pytest.mark.parametrize("venue", venue_names())
def test_a_venue_chaos_case_imports_neither_engine_nor_pytest(venue: str) -> None:
    assert _modules_after(f"import framework.venues.{venue}.chaos") == set()


def test_importing_the_kit_does_not_import_pytest() -> None:
    # the soak bench runs chaos without pytest; the fixtures load only as a pytest plugin
    assert _modules_after("import framework.testing") == {
        "framework.engine",
        "framework.testing.run",
    }


def test_chaos_cases_come_from_the_registry() -> None:
    assert sorted(chaos_cases()) == venue_names()
    assert all(case.venue == name for name, case in chaos_cases().items())


def test_the_plugin_gives_fault_plan_and_chaos_run(pytester: pytest.Pytester) -> None:
    pytester.makeconftest('pytest_plugins = ["framework.testing"]\n')
    pytester.makepyfile(
        """
        from framework.sim.faults import FaultPlan
        from framework.testing import chaos

        def test_fixtures(fault_plan, chaos_run, request):
            assert isinstance(fault_plan, FaultPlan)
            assert chaos_run is chaos
            print("SEED", fault_plan.seed, request.config.getoption("--fault-seed"))
        """
    )
    result = pytester.runpytest_inprocess("-s", "-p", "no:randomly", "--fault-seed", "4242")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*SEED 4242 4242*"])
