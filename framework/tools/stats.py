"""Statistics of a backtest: what the report's table shows and what `botrun optimize` maximises.

All from the result's records, stdlib only (no numpy needed):

- PnL: realized (net of fees) plus unrealized marked to mid, sampled every `sample_s`; total is
  the last sample, per-day the change over each UTC day.
- Sharpe / Sortino: mean over standard deviation (Sortino: downside deviation) of the PnL change
  per sample, annualised by sqrt(samples per year). PnL changes, not returns: a backtest has no
  capital base to divide by, so the ratios compare strategies on the same data, not with funds.
- Max drawdown: the largest fall of PnL below its running peak (a positive number).
- Fees, turnover (sum of price x quantity filled), fill ratio (orders with a fill / orders sent),
  win rate (position-reducing fills that increased realized PnL / all position-reducing fills),
  inventory (mean, mean absolute, max absolute, final position over the samples).
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from framework.tools.results import BacktestResult

_YEAR_S = 365.25 * 24 * 3600

OBJECTIVES = ("pnl", "sharpe", "sortino", "pnl_drawdown")


def statistics(result: BacktestResult) -> dict[str, Any]:
    pnl = [(ts, v) for ts, v, _ in result.samples]
    values = [v for _, v in pnl]
    total = values[-1] if values else 0.0
    diffs = [b - a for a, b in itertools.pairwise(values)]
    interval_s = ((pnl[-1][0] - pnl[0][0]) / 1e9 / (len(pnl) - 1) if len(pnl) > 1 else 0.0) or 1.0
    scale = math.sqrt(_YEAR_S / interval_s)
    mean = sum(diffs) / len(diffs) if diffs else 0.0
    std = _std(diffs, mean)
    downside = math.sqrt(sum(min(0.0, d) ** 2 for d in diffs) / len(diffs)) if diffs else 0.0
    peak, max_dd = -math.inf, 0.0
    for v in values:
        peak = max(peak, v)
        max_dd = max(max_dd, peak - v)
    fees = sum(f.fee for f in result.fills)
    turnover = sum(f.price * f.quantity for f in result.fills)
    sent = {row[3] for row in result.orders if row[4] == "OrderSubmitted"}
    filled = {f.client_order_id for f in result.fills}
    wins = closes = 0
    last: dict[tuple[str, str], tuple[float, float]] = {}
    for _, venue, symbol, qty, _avg, realized in result.positions:
        prev_qty, prev_real = last.get((venue, symbol), (0.0, 0.0))
        if abs(qty) < abs(prev_qty) or qty * prev_qty < 0:
            closes += 1
            wins += realized > prev_real
        last[(venue, symbol)] = (qty, realized)
    inventory = [pos for _, _, marks in result.samples for _, pos in list(marks.values())[:1]]
    day_end: OrderedDict[str, float] = OrderedDict()
    for ts, v in pnl:
        day_end[datetime.fromtimestamp(ts / 1e9, UTC).strftime("%Y-%m-%d")] = v
    per_day: dict[str, float] = {}
    prev = 0.0  # a backtest starts flat
    for day, v in day_end.items():
        per_day[day] = v - prev
        prev = v
    return {
        "total_pnl": total,
        "per_day_pnl": per_day,
        "sharpe": mean / std * scale if std > 0 else 0.0,
        "sortino": mean / downside * scale if downside > 0 else 0.0,
        "max_drawdown": max_dd,
        "pnl_drawdown": total / max_dd if max_dd > 0 else total,
        "fees": fees,
        "turnover": turnover,
        "orders": len(sent),
        "fills": len(result.fills),
        "fill_ratio": len(sent & filled) / len(sent) if sent else 0.0,
        "win_rate": wins / closes if closes else 0.0,
        "inventory_mean": sum(inventory) / len(inventory) if inventory else 0.0,
        "inventory_mean_abs": sum(map(abs, inventory)) / len(inventory) if inventory else 0.0,
        "inventory_max_abs": max(map(abs, inventory), default=0.0),
        "inventory_final": inventory[-1] if inventory else 0.0,
    }


def objective(stats: dict[str, Any], name: str) -> float:
    """The number `botrun optimize` maximises."""
    if name == "pnl":
        return float(stats["total_pnl"])
    if name in ("sharpe", "sortino", "pnl_drawdown"):
        return float(stats[name])
    raise ValueError(f"objective {name!r}: one of {', '.join(OBJECTIVES)}")


def _std(values: list[float], mean: float) -> float:
    if len(values) < 2:
        return 0.0
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
