"""The run summary as text: what `botrun` prints when a run, a recording or a backtest ends.

The engine returns the summary as data (`Engine.summary()`); formatting it is a tool's job.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from framework.latency import format_latency


def _money(value: Decimal) -> str:
    # adding zero turns a rounded-away negative (-0.00) into 0.00
    return f"{value.quantize(Decimal('0.01')) + 0:.2f}"


def format_summary(summary: dict[str, Any]) -> str:
    lines = [f"botrun summary ({summary['mode']} mode)"]
    events = ", ".join(f"{v}: {n}" for v, n in sorted(summary["events"].items())) or "none"
    lines.append(f"  events by venue: {events}")
    orders = ", ".join(f"{k.lower()}: {n}" for k, n in sorted(summary["orders"].items()))
    lines.append(f"  orders by state: {orders or 'none'}")
    lines.append(f"  fills: {summary['fills']}")
    for p in summary["positions"]:
        upnl = p["unrealized_pnl"]
        lines.append(
            f"  position {p['venue']} {p['symbol']}: {p['quantity']} @ {p['avg_price']:.2f}"
            f"  realized {_money(p['realized_pnl'])}"
            f"  unrealized {'n/a' if upnl is None else _money(upnl)}"
        )
    if not summary["positions"]:
        lines.append("  positions: none")
    for name, counts in sorted(summary["sessions"].items()):
        shown = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
        lines.append(f"  session {name}: {shown}")
    if summary["handler_errors"]:
        lines.append(f"  handler errors: {summary['handler_errors']}")
    lines.extend(format_latency(summary.get("latency") or {}))
    return "\n".join(lines)
