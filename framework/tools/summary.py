"""The run summary as text: what `botrun` prints when a run, a recording or a backtest ends.

The engine returns the summary as data (`Engine.summary()`); formatting it is a tool's job.
Every amount is printed in its own currency at that currency's precision (Roxom's PnL is in BTC:
eight decimals, never `0.00`), prices at the instrument's tick, quantities at its lot; amounts
in different currencies are never added together. `summary_json` gives the same as JSON.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from framework.latency import format_latency

# fiat and stablecoins are shown in cents; any other asset (BTC, ETH, ...) with 8 decimals
_CENTS = frozenset({"USD", "USDC", "USDT", "USDP", "PYUSD", "EUR", "GBP", "SGD", "JPY"})


def currency_places(currency: str) -> int:
    return 2 if currency.upper() in _CENTS else 8


def _places(step: Decimal | None, default: int) -> int:
    if not step:
        return default
    exponent = step.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else default


def money(value: Decimal | None, currency: str = "") -> str:
    """`value` at `currency`'s precision, with the currency ("n/a" for None)."""
    if value is None:
        return "n/a"
    q = Decimal(1).scaleb(-currency_places(currency))
    # adding zero turns a rounded-away negative (-0.00) into 0.00
    text = f"{value.quantize(q) + 0:f}"
    return f"{text} {currency}".rstrip()


def price_text(value: Decimal | None, tick: Decimal | None, currency: str = "") -> str:
    if value is None:
        return "n/a"
    places = _places(tick, currency_places(currency))
    return f"{value.quantize(Decimal(1).scaleb(-places)) + 0:f}"


def qty_text(value: Decimal, lot: Decimal | None) -> str:
    if value == 0:
        return "0 (flat)"
    places = _places(lot, 8)
    return f"{value.quantize(Decimal(1).scaleb(-places)) + 0:f}"


def format_summary(summary: dict[str, Any]) -> str:
    lines = [f"botrun summary ({summary['mode']} mode)"]
    kill = summary.get("kill_switch")
    if kill:
        lines.append(f"  KILL SWITCH ENGAGED: {kill}")
    for reason in summary.get("halt_reasons") or []:
        if not (kill and reason == f"kill switch: {kill}"):
            lines.append(f"  halted: {reason}")
    events = ", ".join(f"{v}: {n}" for v, n in sorted(summary["events"].items())) or "none"
    lines.append(f"  events by venue: {events}")
    orders = ", ".join(f"{k.lower()}: {n}" for k, n in sorted(summary["orders"].items()))
    lines.append(f"  orders by state: {orders or 'none'}")
    lines.append(f"  fills: {summary['fills']}")
    for p in summary["positions"]:
        quote = p.get("quote", "")
        tick, lot = p.get("tick"), p.get("lot")
        qty = p["quantity"]
        entry = f" @ {price_text(p['avg_price'], tick, quote)}" if qty != 0 else ""
        mark = p.get("mark")
        lines.append(
            f"  position {p['venue']} {p['symbol']}: {qty_text(qty, lot)}{entry}"
            f"  mark {price_text(mark, tick, quote)}"
            f"  realized {money(p['realized_pnl'], quote)}"
            f"  unrealized {money(p['unrealized_pnl'], quote)}"
            f"  fees {money(p.get('fees'), quote)}"
            f"  turnover {money(p.get('turnover'), quote)}"
        )
    if not summary["positions"]:
        lines.append("  positions: none")
    for currency, t in sorted((summary.get("totals") or {}).items()):
        total = t["realized_pnl"] + t.get("unrealized_pnl", Decimal(0))
        lines.append(
            f"  total PnL {currency or '?'}: {money(total, currency)}"
            f" (realized {money(t['realized_pnl'], currency)} net of fees"
            f" {money(t['fees'], currency)}; turnover {money(t.get('turnover'), currency)})"
        )
    for venue, assets in sorted((summary.get("balances") or {}).items()):
        shown = ", ".join(f"{money(v, a)}" for a, v in sorted(assets.items()))
        lines.append(f"  equity {venue}: {shown}")
    for name, counts in sorted(summary["sessions"].items()):
        shown = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
        lines.append(f"  session {name}: {shown}")
    if summary["handler_errors"]:
        shown = ", ".join(f"{k}: {n}" for k, n in sorted(summary["handler_errors"].items()))
        lines.append(f"  handler errors: {shown}")
    if summary.get("slow_handlers"):
        shown = ", ".join(f"{k}: {n}" for k, n in sorted(summary["slow_handlers"].items()))
        lines.append(f"  slow handlers (times over the limit): {shown}")
    lines.extend(format_latency(summary.get("latency") or {}))
    return "\n".join(lines)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def summary_json(summary: dict[str, Any], exit_code: int | None = None) -> str:
    """The summary for machines: every Decimal as exact text, keys as strings."""
    data = _plain(summary)
    if exit_code is not None:
        data["exit_code"] = exit_code
    return json.dumps(data, indent=2, sort_keys=True)
