"""Realism for the paper broker: a latency model per venue and a queue-position fill model.

Latency. The paper broker waits a latency before an order (or a cancel) reaches its simulated
venue. By default that is the fixed `PaperConfig.latency_ms`; a `LatencyModel` draws it from a
distribution instead:

- `LatencyModel.fixed(ms)`;
- `LatencyModel.lognormal(median_ms, sigma)`: the usual shape of network round trips (a floor
  with a long right tail);
- `LatencyModel.from_histogram(hist)`: the empirical distribution of a live run's recorded
  `framework.latency.Histogram` (e.g. `send_to_ack` of that venue): a bucket is drawn with the
  bucket's count as weight, then a value uniformly inside it;
- `LatencyModel.from_percentiles({"p50_us": .., "p99_us": ..})`: the percentiles a live run's
  summary printed (`latency <venue> send_to_ack`), interpolated piecewise-linearly in quantile.

Every model draws from its own `random.Random(seed)`: the same seed and the same orders give the
same latencies, hence the same fills.

Queue position. A resting limit order joins behind the displayed size at its price. Trades at
that price eat the queue ahead first (paper.py does this). When the level SHRINKS without a trade
(cancellations), nobody says whether the cancelled size was ahead of us or behind. The model
decides:

- `QueueModel("pessimistic")`: cancellations are behind us; we advance only when the level is
  smaller than our queue ahead (the level cannot hold more ahead of us than its size). The
  paper broker's historical behaviour and the default.
- `QueueModel("proportional")`: a cancellation falls ahead of us in proportion to the size ahead
  (`ahead / level`).
- `QueueModel("power", power=n)`: the share ahead is `ahead**n / (ahead**n + behind**n)` (the
  probabilistic queue model used by hftbacktest); n=1 is proportional, larger n favours
  cancellations at the far end of whichever part is bigger.
- `QueueModel("optimistic")`: every cancellation is ahead of us.

Growth of the level (new orders) always joins behind us. All queue models are deterministic.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Mapping
from decimal import ROUND_CEILING, Decimal
from typing import Any

import attrs

from framework.latency import Histogram

_ZERO = Decimal(0)

__all__ = ["QUEUE_KINDS", "LatencyModel", "QueueModel", "latency_model", "queue_model"]


@attrs.define(eq=False)
class LatencyModel:
    """Draws one latency (seconds) per call, from a seeded generator."""

    kind: str
    # fixed: (ms,); lognormal: (median_ms, sigma); empirical: cumulative weights + bucket bounds
    params: tuple[float, ...] = ()
    cum_weights: list[float] = attrs.Factory(list)
    bounds_ns: list[tuple[int, int]] = attrs.Factory(list)
    seed: int = 0
    rng: random.Random = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    # --- constructors --------------------------------------------------------------------------

    @classmethod
    def fixed(cls, ms: float, *, seed: int = 0) -> LatencyModel:
        _check_ms(ms)
        return cls("fixed", (float(ms),), seed=seed)

    @classmethod
    def lognormal(cls, median_ms: float, sigma: float = 0.5, *, seed: int = 0) -> LatencyModel:
        _check_ms(median_ms)
        if not (math.isfinite(sigma) and sigma >= 0):
            raise ValueError(f"latency sigma must be finite and >= 0, not {sigma!r}")
        return cls("lognormal", (float(median_ms), float(sigma)), seed=seed)

    @classmethod
    def from_histogram(cls, hist: Histogram, *, seed: int = 0) -> LatencyModel:
        if hist.count == 0:
            raise ValueError("latency histogram is empty")
        cum: list[float] = []
        bounds: list[tuple[int, int]] = []
        total = 0
        for idx, count in enumerate(hist.counts):
            if count:
                total += count
                low, high = Histogram._bounds(idx)
                # never outside what was actually seen
                low, high = max(low, hist.min), min(high, hist.max + 1)
                cum.append(total)
                bounds.append((low, max(low + 1, high)))
        return cls("empirical", (), cum, bounds, seed=seed)

    @classmethod
    def from_percentiles(cls, summary: Mapping[str, Any], *, seed: int = 0) -> LatencyModel:
        """From a live summary's `{"p50_us": .., "p99_us": .., "p999_us": .., "max_us": ..}`."""
        points: list[tuple[float, float]] = []
        for key, q in (("p50_us", 0.5), ("p99_us", 0.99), ("p999_us", 0.999), ("max_us", 1.0)):
            if key in summary:
                us = float(summary[key])
                _check_ms(us / 1000)
                points.append((q, us))
        if not points:
            raise ValueError("latency percentiles: need at least p50_us")
        # below the median: from zero-width at the median's half (no recorded minimum here)
        points.insert(0, (0.0, points[0][1] / 2))
        points.sort()
        qs = [q for q, _ in points]
        us: list[float] = []
        for _, v in points:
            us.append(max(v, us[-1]) if us else v)  # an inverse CDF never decreases
        return cls("quantiles", tuple(qs + us), seed=seed)

    # --- drawing -------------------------------------------------------------------------------

    def sample_s(self) -> float:
        rng = self.rng
        kind = self.kind
        if kind == "fixed":
            return self.params[0] / 1000
        if kind == "lognormal":
            median, sigma = self.params
            return median * math.exp(sigma * rng.gauss(0.0, 1.0)) / 1000
        if kind == "empirical":
            r = rng.random() * self.cum_weights[-1]
            i = bisect.bisect_right(self.cum_weights, r)
            low, high = self.bounds_ns[min(i, len(self.bounds_ns) - 1)]
            return (low + rng.random() * (high - low)) / 1e9
        # quantiles: piecewise-linear inverse CDF
        half = len(self.params) // 2
        qs, us = self.params[:half], self.params[half:]
        u = rng.random()
        i = max(1, bisect.bisect_right(qs, u))
        if i >= half:
            return us[-1] / 1e6
        q0, q1, v0, v1 = qs[i - 1], qs[i], us[i - 1], us[i]
        return (v0 + (v1 - v0) * (u - q0) / (q1 - q0 if q1 > q0 else 1.0)) / 1e6


def _check_ms(ms: float) -> None:
    if not (isinstance(ms, int | float) and math.isfinite(ms) and ms >= 0):
        raise ValueError(f"latency must be a finite number of ms >= 0, not {ms!r}")


QUEUE_KINDS = ("pessimistic", "proportional", "power", "optimistic")


@attrs.define(frozen=True)
class QueueModel:
    """How a resting order's queue ahead moves when its price level changes without a trade."""

    kind: str = "pessimistic"
    power: float = 2.0

    def __attrs_post_init__(self) -> None:
        if self.kind not in QUEUE_KINDS:
            raise ValueError(f"queue model {self.kind!r}: one of {', '.join(QUEUE_KINDS)}")
        if not (math.isfinite(self.power) and self.power > 0):
            raise ValueError(f"queue model power must be > 0, not {self.power!r}")

    def after_level_change(self, ahead: Decimal, before: Decimal, after: Decimal) -> Decimal:
        """The queue ahead once the displayed size at our price went from `before` to `after`
        (our own order is not in the displayed size: paper orders never reach the feed)."""
        if after >= before:
            return min(ahead, after)  # growth joins behind us
        if self.kind == "pessimistic":
            return min(ahead, after)
        removed = before - after
        ahead = min(ahead, before)
        behind = before - ahead
        if self.kind == "optimistic":
            share = Decimal(1)
        elif self.kind == "proportional" or before <= 0:
            share = ahead / before if before > 0 else Decimal(1)
        else:
            fa = Decimal(float(ahead) ** self.power)
            fb = Decimal(float(behind) ** self.power)
            share = fa / (fa + fb) if fa + fb > 0 else Decimal(1)
        new = ahead - removed * share
        # in the displayed sizes' own precision, rounded up (never ahead of what was shown), so
        # fills stay in whole lots
        exp = min(_exponent(before), _exponent(after), _exponent(ahead))
        new = new.quantize(Decimal(1).scaleb(exp), rounding=ROUND_CEILING)
        return min(max(new, _ZERO), after)


def _exponent(d: Decimal) -> int:
    exp = d.as_tuple().exponent
    return exp if isinstance(exp, int) else 0


def latency_model(spec: Mapping[str, Any], *, seed: int = 0) -> LatencyModel:
    """A model from config, e.g. `{kind = "lognormal", median_ms = 8, sigma = 0.6}`,
    `{kind = "fixed", ms = 5}` or `{kind = "percentiles", p50_us = 900, p99_us = 4000}`."""
    kind = str(spec.get("kind", "fixed"))
    if kind == "fixed":
        return LatencyModel.fixed(float(spec.get("ms", 5.0)), seed=seed)
    if kind == "lognormal":
        return LatencyModel.lognormal(
            float(spec["median_ms"]), float(spec.get("sigma", 0.5)), seed=seed
        )
    if kind == "percentiles":
        return LatencyModel.from_percentiles(spec, seed=seed)
    raise ValueError(f"latency model kind {kind!r}: fixed, lognormal or percentiles")


def queue_model(spec: Mapping[str, Any] | str) -> QueueModel:
    if isinstance(spec, str):
        return QueueModel(spec)
    return QueueModel(str(spec.get("kind", "pessimistic")), float(spec.get("power", 2.0)))
