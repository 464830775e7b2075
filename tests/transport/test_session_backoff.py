"""Reconnect backoff (exponential, capped, jittered, resettable) and first_leaf."""

from __future__ import annotations

import random

import trio

from framework.transport.session import Backoff, first_leaf


class NoJitter(random.Random):
    """uniform() returns its upper bound: the nominal delay."""

    def uniform(self, a: float, b: float) -> float:
        return b


class MinJitter(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return a


def test_grows_exponentially_then_caps() -> None:
    b = Backoff(base_s=0.5, cap_s=10.0, rng=NoJitter())
    assert [b.next_delay() for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert b.attempt == 7


def test_thousands_of_failures_in_a_row_stay_at_the_cap() -> None:
    b = Backoff(base_s=0.005, cap_s=0.05, rng=NoJitter())
    delays = [b.next_delay() for _ in range(5000)]  # never reset: each connection was short
    assert delays[-1] == 0.05 and b.attempt == 5000


def test_lower_jitter_bound_is_half_the_nominal_delay() -> None:
    b = Backoff(base_s=1.0, cap_s=5.0, rng=MinJitter())
    assert [b.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 2.5, 2.5]


def test_jitter_within_half_to_full_of_nominal_and_reproducible() -> None:
    b = Backoff(base_s=0.25, cap_s=30.0, rng=random.Random(1234))
    twin = Backoff(base_s=0.25, cap_s=30.0, rng=random.Random(1234))
    delays = [b.next_delay() for _ in range(200)]
    assert delays == [twin.next_delay() for _ in range(200)]  # seeded: deterministic
    for attempt, delay in enumerate(delays):
        nominal = min(30.0, 0.25 * 2**attempt)
        assert 0.5 * nominal <= delay <= nominal
    capped = delays[10:]
    assert len(set(capped)) > 1  # jittered, not a constant
    assert min(capped) < 0.75 * 30.0 < max(capped)  # spread over the interval


def test_reset_starts_over() -> None:
    b = Backoff(base_s=0.5, cap_s=10.0, rng=NoJitter())
    for _ in range(5):
        b.next_delay()
    b.reset()
    assert b.attempt == 0
    assert b.next_delay() == 0.5
    assert b.next_delay() == 1.0


def test_minimum_is_a_floor() -> None:
    b = Backoff(base_s=0.5, cap_s=10.0, rng=NoJitter())
    assert b.next_delay(minimum_s=30.0) == 30.0  # e.g. after an auth refusal
    assert b.next_delay(minimum_s=0.1) == 1.0  # the attempt still counted
    assert b.next_delay(minimum_s=0.0) == 2.0


def test_default_rng_is_jittered_within_bounds() -> None:
    b = Backoff(base_s=2.0, cap_s=2.0)
    for _ in range(50):
        assert 1.0 <= b.next_delay() <= 2.0


# --- first_leaf -----------------------------------------------------------------------------------


def test_first_leaf_of_a_plain_exception_is_itself() -> None:
    exc = ValueError("x")
    assert first_leaf(exc) is exc


def test_first_leaf_unwraps_nested_groups() -> None:
    leaf = ConnectionError("reset")
    nested = ExceptionGroup(
        "outer", [ExceptionGroup("middle", [ExceptionGroup("inner", [leaf])]), KeyError("k")]
    )
    assert first_leaf(nested) is leaf


def test_first_leaf_takes_the_first_of_several() -> None:
    a, b = OSError("a"), RuntimeError("b")
    assert first_leaf(ExceptionGroup("g", [a, b])) is a
    assert first_leaf(ExceptionGroup("g", [ExceptionGroup("h", [b]), a])) is b


async def a_cancelled() -> trio.Cancelled:
    """A real trio.Cancelled instance (its constructor is private)."""
    caught: list[trio.Cancelled] = []
    with trio.CancelScope() as scope:
        scope.cancel()
        try:
            await trio.sleep(0)
        except trio.Cancelled as exc:
            caught.append(exc)
            raise
    return caught[0]


async def test_first_leaf_skips_cancellations() -> None:
    real = ConnectionResetError("peer")
    cancelled = await a_cancelled()
    group = BaseExceptionGroup(
        "nursery", [cancelled, BaseExceptionGroup("inner", [await a_cancelled(), real])]
    )
    # the cancelled sibling is noise; the reset is why the connection ended
    assert first_leaf(BaseExceptionGroup("g", [cancelled, real])) is real
    assert first_leaf(group) is real
    only = BaseExceptionGroup("g", [cancelled])
    assert first_leaf(only) is cancelled  # nothing better to report
