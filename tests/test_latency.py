"""Latency histograms: accuracy of the log-linear buckets, and the engine's built-in figures."""

from __future__ import annotations

import random
from decimal import Decimal

import trio

from framework.events import OrderAccepted
from framework.latency import Histogram, LatencyStats, format_latency
from framework.tools.summary import format_summary
from tests.helpers import config, running, session, until


def exact_percentile(values: list[int], q: float) -> int:
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(q * len(ordered) + 0.999999)))
    return ordered[rank - 1]


def test_small_values_are_exact() -> None:
    h = Histogram()
    for v in range(64):
        h.record(v)
    assert h.percentile(0.5) == 31
    assert h.min == 0 and h.max == 63 and h.count == 64


def test_percentiles_within_bucket_precision() -> None:
    rng = random.Random(3)
    values = [int(rng.lognormvariate(11, 1.5)) for _ in range(20_000)]
    h = Histogram()
    for v in values:
        h.record(v)
    for q in (0.5, 0.9, 0.99, 0.999):
        exact = exact_percentile(values, q)
        assert abs(h.percentile(q) - exact) <= exact * 0.032, q
    assert h.max == max(values) and h.min == min(values)
    assert h.mean == sum(values) / len(values)


def test_negative_clamps_to_zero_and_empty_is_zero() -> None:
    h = Histogram()
    assert h.percentile(0.99) == 0
    h.record(-5)
    assert h.percentile(0.5) == 0


def test_merge_equals_recording_everything() -> None:
    a, b, both = Histogram(), Histogram(), Histogram()
    for v in range(1, 5000, 7):
        a.record(v * 1000)
        both.record(v * 1000)
    for v in range(3, 900, 5):
        b.record(v * 997)
        both.record(v * 997)
    a.merge(b)
    assert a.counts == both.counts
    assert (a.count, a.total, a.min, a.max) == (both.count, both.total, both.min, both.max)


def test_stats_summary_and_lines() -> None:
    stats = LatencyStats()
    stats.hist("paxos", "recv_to_handled").record(250_000)
    stats.hist("paxos", "unused")
    summary = stats.summary()
    assert list(summary) == ["paxos recv_to_handled"]  # empty histograms are not reported
    (line,) = format_latency(summary)
    assert "paxos recv_to_handled" in line and "n=1" in line


async def test_engine_measures_receive_to_handled_and_order_round_trip() -> None:
    cfg = config({"paxos": {"markets": ["BTCUSD"]}}, paper={"latency_ms": 1})
    async with running(cfg) as engine:
        sess = session(engine, "marketdata")
        await sess.wait_frames(5)
        book = engine.book("paxos", "BTCUSD")
        await until(engine, lambda: book.is_synced, "book synced")
        bid = book.best_bid()
        assert bid is not None
        handle = engine.orders.submit(
            venue="paxos",
            symbol="BTCUSD",
            side="BUY",
            quantity=Decimal("0.001"),
            price=bid[0] - Decimal("100"),
            post_only=True,
        )
        accepted = trio.Event()
        engine.bus.subscribe(OrderAccepted, lambda e: accepted.set(), owner="test")
        with trio.fail_after(10):
            await accepted.wait()
        assert handle.order.status.value == "ACCEPTED"
        recv = engine.latency.get("paxos", "recv_to_handled")
        assert recv is not None and recv.count >= 5
        assert engine.latency.get("paxos", "submit_to_send").count == 1
        assert engine.latency.get("paxos", "send_to_ack").count == 1
        # the paper broker answers after its configured latency
        assert engine.latency.get("paxos", "send_to_ack").min >= 1_000_000
        text = format_summary(engine.summary())
        assert "latency paxos send_to_ack: n=1" in text
        assert "latency paxos recv_to_handled" in text
