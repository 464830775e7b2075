"""The replay clock: frozen time the replay moves, the deadlines trio tells it, wake-ups noted."""

from __future__ import annotations

import math
import random

import trio
import trio.testing

from framework.tools.replay_clock import ReplayClock, Wakeups, deterministic_scheduling


def test_the_clock_learns_the_next_deadline_and_wakeups_are_noted() -> None:
    clock = ReplayClock()
    wakeups = Wakeups()
    seen: list[tuple[float, float, bool]] = []  # (next deadline, now, sleeper woke)

    async def main() -> None:
        clock.freeze()
        start = clock.now
        woke = trio.Event()

        async def sleeper() -> None:
            await trio.sleep(5)
            woke.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sleeper)
            await trio.testing.wait_all_tasks_blocked()
            # frozen: trio's only deadline is the sleeper's, 5 s from the frozen now
            seen.append((clock.next_deadline, clock.current_time(), woke.is_set()))
            wakeups.pending = False
            clock.now = clock.next_deadline
            await trio.testing.wait_all_tasks_blocked()
            seen.append((start + 5, clock.current_time(), woke.is_set()))
            assert wakeups.pending  # the sleeper was scheduled when its deadline passed
        await trio.testing.wait_all_tasks_blocked()
        seen.append((clock.next_deadline, start + 5, True))
        starts.append(start)

    starts: list[float] = []
    trio.run(main, clock=clock, instruments=[wakeups])
    (start,) = starts
    assert seen == [
        (start + 5, start, False),
        (start + 5, start + 5, True),
        (math.inf, start + 5, True),
    ]


def test_deterministic_scheduling_seeds_and_then_restores_random() -> None:
    random.seed(42)
    expected = random.random()
    random.seed(42)
    with deterministic_scheduling(7):
        first = random.random()
    assert random.random() == expected  # the caller's generator state is back
    with deterministic_scheduling(7):
        assert random.random() == first
