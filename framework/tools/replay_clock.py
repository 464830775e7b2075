"""Simulated time for a replay: a trio clock the replay moves, and the trio internal it still needs.

Public trio APIs do almost all of it:

- `ReplayClock` (a `trio.abc.Clock`) runs on real time while setting up, then freezes: `now` moves
  only when the replay moves it. trio calls `deadline_to_sleep_time` with its next deadline every
  time it is about to wait for I/O, so the clock learns, exactly, when the next timer falls —
  without reading the scheduler's deadline heap.
- `Wakeups` (a `trio.abc.Instrument`) notes every task that becomes runnable, so the replay knows,
  with one attribute read per frame, whether handling a frame woke anything (an order sent, an
  event set) and trio must run before the next frame.

What no public API offers is a seeded scheduler: trio runs the tasks that wake together in an
order it draws from a private `random.Random`, so two runs of the same data could fill orders in
different orders. `deterministic_scheduling(seed)` switches trio to the deterministic mode it
uses under Hypothesis and seeds that generator; this module is the only place that touches trio
internals, checks they are there (trio's version is pinned below the next minor in pyproject.toml
for this reason), and restores them after the run.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import trio

# trio versions whose scheduler internals `deterministic_scheduling` was checked against; keep
# the upper bound in step with the pin on trio in pyproject.toml
TESTED_TRIO = ((0, 25), (0, 35))


class ReplayClock(trio.abc.Clock):
    """Real time while setting up, then frozen: `now` moves only when the replay moves it."""

    def __init__(self) -> None:
        self.frozen = False
        self.now = 0.0
        self._anchor = time.perf_counter()
        # the earliest deadline trio had when it last went to wait (math.inf: none)
        self.next_deadline = math.inf

    def start_clock(self) -> None:
        self._anchor = time.perf_counter()

    def current_time(self) -> float:
        if self.frozen:
            return self.now
        return time.perf_counter() - self._anchor

    def deadline_to_sleep_time(self, deadline: float) -> float:
        self.next_deadline = deadline
        return max(0.0, deadline - self.current_time())

    def freeze(self) -> None:
        self.now = self.current_time()
        self.frozen = True


class Wakeups(trio.abc.Instrument):
    """`pending` turns True when any task becomes runnable; the replay clears it."""

    def __init__(self) -> None:
        self.pending = False

    def task_scheduled(self, task: trio.lowlevel.Task) -> None:
        self.pending = True


def _trio_version() -> tuple[int, int]:
    major, minor = trio.__version__.split(".")[:2]
    return int(major), int(minor)


@contextmanager
def deterministic_scheduling(seed: int) -> Iterator[None]:
    """Within: trio (and `random`) draw from `seed`, so tasks that wake together run in the same
    order on every run. Enter outside `trio.run`."""
    version = _trio_version()
    if not TESTED_TRIO[0] <= version <= TESTED_TRIO[1]:
        raise RuntimeError(
            f"trio {trio.__version__}: the replay's deterministic scheduling is checked against"
            f" trio {TESTED_TRIO[0]}..{TESTED_TRIO[1]} only (framework/tools/replay_clock.py)"
        )
    import trio._core._run as trio_run

    generator: Any = getattr(trio_run, "_r", None)
    if not hasattr(trio_run, "_ALLOW_DETERMINISTIC_SCHEDULING") or not isinstance(
        generator, random.Random
    ):
        raise RuntimeError(f"trio {trio.__version__}: scheduler internals not found")
    saved = (trio_run._ALLOW_DETERMINISTIC_SCHEDULING, generator.getstate(), random.getstate())
    trio_run._ALLOW_DETERMINISTIC_SCHEDULING = True  # type: ignore[misc]
    generator.seed(seed)
    random.seed(seed)
    try:
        yield
    finally:
        trio_run._ALLOW_DETERMINISTIC_SCHEDULING = saved[0]  # type: ignore[misc]
        generator.setstate(saved[1])
        random.setstate(saved[2])
