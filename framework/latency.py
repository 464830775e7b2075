"""Built-in latency histograms: receive → handled per stream, submit → send → ack per venue.

`Histogram` is log-linear (HDR-style): 32 sub-buckets per power of two, so any recorded value
is reported within ~3% of itself, from 1 ns to hours, in a fixed 2,208-slot list. Recording is
one `bit_length`, two shifts and a list increment: cheap enough to run on every frame.

The engine keeps one `LatencyStats` (`engine.latency`, readable from a strategy as
`self.engine.latency`) and prints it in the run summary. Names in use:

- `recv_to_handled`: a frame leaving the socket (the reader task's monotonic stamp) until its
  decode → book → bus → strategy handlers returned (queueing behind other frames included);
- `submit_to_send`: `buy()`/`sell()` returned a handle until the request is handed to the venue
  execution client (task scheduling, journal write);
- `send_to_ack`: request handed over until the venue's first answer about the order (a REST
  response, an ack frame, a refusal or a fill, whichever comes first).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

_SUB_BITS = 5
_SUB = 1 << _SUB_BITS  # 32 sub-buckets per octave
_LINEAR = _SUB * 2  # values below 64 ns have their own slot
_SLOTS = _LINEAR + _SUB * 67  # up to 2**72 ns: more than any latency


class Histogram:
    """Counts of nanosecond values in log-linear buckets."""

    __slots__ = ("count", "counts", "max", "min", "total")

    def __init__(self) -> None:
        self.counts = [0] * _SLOTS
        self.count = 0
        self.total = 0
        self.max = 0
        self.min = 0

    def record(self, ns: int) -> None:
        if ns < _LINEAR:
            if ns < 0:
                ns = 0
            idx = ns
        else:
            shift = ns.bit_length() - _SUB_BITS - 1
            # (ns >> shift) is in [32, 63]: the sub-bucket within this octave
            idx = (shift << _SUB_BITS) + (ns >> shift)
        self.counts[idx] += 1
        if self.count == 0 or ns < self.min:
            self.min = ns
        self.count += 1
        self.total += ns
        if ns > self.max:
            self.max = ns

    def record_many(self, values: Iterable[int]) -> None:
        for v in values:
            self.record(int(v))

    def merge(self, other: Histogram) -> None:
        if other.count == 0:
            return
        for i, c in enumerate(other.counts):
            if c:
                self.counts[i] += c
        self.min = other.min if self.count == 0 else min(self.min, other.min)
        self.count += other.count
        self.total += other.total
        self.max = max(self.max, other.max)

    def reset(self) -> None:
        self.__init__()

    @staticmethod
    def _bounds(idx: int) -> tuple[int, int]:
        if idx < _LINEAR:
            return idx, idx + 1
        shift = (idx >> _SUB_BITS) - 1
        mantissa = idx - (shift << _SUB_BITS)
        return mantissa << shift, (mantissa + 1) << shift

    def percentile(self, q: float) -> int:
        """The value (ns) below which a fraction `q` (0..1) of the samples lie; 0 if empty."""
        if self.count == 0:
            return 0
        rank = max(1, min(self.count, int(q * self.count + 0.999999)))
        seen = 0
        for idx, c in enumerate(self.counts):
            if c:
                seen += c
                if seen >= rank:
                    low, high = self._bounds(idx)
                    # the bucket's middle, never outside what was actually seen
                    return max(self.min, min(self.max, (low + high - 1) // 2))
        return self.max

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "p50_us": self.percentile(0.5) / 1000,
            "p99_us": self.percentile(0.99) / 1000,
            "p999_us": self.percentile(0.999) / 1000,
            "max_us": self.max / 1000,
            "mean_us": self.mean / 1000,
        }


class LatencyStats:
    """Histograms by (venue, name); created on first use."""

    def __init__(self) -> None:
        self.histograms: dict[tuple[str, str], Histogram] = {}

    def hist(self, venue: str, name: str) -> Histogram:
        key = (venue, name)
        h = self.histograms.get(key)
        if h is None:
            h = self.histograms[key] = Histogram()
        return h

    def get(self, venue: str, name: str) -> Histogram | None:
        return self.histograms.get((venue, name))

    def summary(self) -> dict[str, dict[str, Any]]:
        return {
            f"{venue} {name}": h.summary()
            for (venue, name), h in sorted(self.histograms.items())
            if h.count
        }


def format_latency(summary: dict[str, dict[str, Any]]) -> list[str]:
    """Summary lines: `latency paxos recv_to_handled: n=…, p50 … µs, p99 …, p99.9 …, max …`."""
    lines = []
    for key, s in summary.items():
        lines.append(
            f"  latency {key}: n={s['count']}, p50 {s['p50_us']:.1f} µs,"
            f" p99 {s['p99_us']:.1f} µs, p99.9 {s['p999_us']:.1f} µs, max {s['max_us']:.1f} µs"
        )
    return lines
