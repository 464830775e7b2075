"""Backtest report, drawn by plotting libraries: an interactive self-contained HTML (plotly, its
JavaScript embedded so the file opens offline) and a PNG (matplotlib).

Both show, over recorded time: price (mid) with fills (▲ buy, ▼ sell), PnL (realized net of fees
+ unrealized, marked to mid), inventory (position) and drawdown (PnL below its running peak),
with the statistics table of framework/tools/stats.py (total and per-day PnL, Sharpe, Sortino,
max drawdown, fees, turnover, fill ratio, win rate, inventory), the strategy's parameters and the
seed; the HTML adds the run's facts (frames, replay speed, latency) and a trade table.

plotly and matplotlib are in the `research` extra (`pip install botrun[research]`); the core does
not need them. `write_report` raises `MissingExtra` (an ImportError saying so) without them.
"""

from __future__ import annotations

import html
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from framework.latency import format_latency
from framework.tools.results import BacktestResult
from framework.tools.stats import statistics

Series = list[tuple[float, float]]  # (seconds since start, value)

INSTALL_HINT = "the report needs plotting libraries: pip install 'botrun[research]'"
# the trade table lists at most this many fills (the Parquet export has them all)
MAX_TRADE_ROWS = 2000


class MissingExtra(ImportError):
    """An optional dependency of the research tools is not installed."""


def series(result: BacktestResult, market: str | None = None) -> dict[str, Any]:
    """The four curves (and fills) of one market, x in seconds since the first frame."""
    t0 = result.first_wall_ns
    if market is None:
        names = [n for s in result.samples[:1] for n in s[2]]
        market = names[0] if names else ""
    price: Series = []
    pnl: Series = []
    inventory: Series = []
    for wall_ns, total, marks in result.samples:
        x = (wall_ns - t0) / 1e9
        pnl.append((x, total))
        mid, pos = marks.get(market, (math.nan, 0.0))
        if not math.isnan(mid):
            price.append((x, mid))
        inventory.append((x, pos))
    peak = -math.inf
    drawdown: Series = []
    for x, v in pnl:
        peak = max(peak, v)
        drawdown.append((x, v - peak))
    venue, _, symbol = market.partition(" ")
    fills = [
        ((f.ts_ns - t0) / 1e9, f.price, f.side)
        for f in result.fills
        if f.venue == venue and f.symbol == symbol
    ]
    return {
        "market": market,
        "price": price,
        "pnl": pnl,
        "inventory": inventory,
        "drawdown": drawdown,
        "fills": fills,
        "max_drawdown": min((v for _, v in drawdown), default=0.0),
    }


def write_report(
    result: BacktestResult, out_dir: str | Path, *, title: str = "botrun backtest"
) -> tuple[Path, Path]:
    """Write `report.html` and `report.png` into `out_dir`; returns their paths."""
    try:
        import matplotlib
        import plotly  # noqa: F401
    except ImportError as exc:
        raise MissingExtra(INSTALL_HINT) from exc
    matplotlib.use("Agg")  # files only, never a window
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = series(result)
    stats = statistics(result)
    html_path = out / "report.html"
    png_path = out / "report.png"
    html_path.write_text(_html(result, data, stats, title))
    _png(result, data, stats, title, png_path)
    return html_path, png_path


def stat_rows(stats: dict[str, Any]) -> list[tuple[str, str]]:
    """The statistics table, as (label, text) rows: the HTML and the PNG show the same."""
    rows = [
        ("Total PnL", f"{stats['total_pnl']:,.4f}"),
        ("Sharpe (annualised)", f"{stats['sharpe']:,.2f}"),
        ("Sortino (annualised)", f"{stats['sortino']:,.2f}"),
        ("Max drawdown", f"{stats['max_drawdown']:,.4f}"),
        ("PnL / max drawdown", f"{stats['pnl_drawdown']:,.2f}"),
        ("Fees paid", f"{stats['fees']:,.4f}"),
        ("Turnover", f"{stats['turnover']:,.2f}"),
        ("Orders sent / fills", f"{stats['orders']:,} / {stats['fills']:,}"),
        ("Fill ratio", f"{stats['fill_ratio']:.1%}"),
        ("Win rate", f"{stats['win_rate']:.1%}"),
        (
            "Inventory mean / mean abs",
            f"{stats['inventory_mean']:.6g} / {stats['inventory_mean_abs']:.6g}",
        ),
        (
            "Inventory max abs / final",
            f"{stats['inventory_max_abs']:.6g} / {stats['inventory_final']:.6g}",
        ),
    ]
    rows += [(f"PnL {day}", f"{v:,.4f}") for day, v in stats["per_day_pnl"].items()]
    return rows


def _table(rows: list[tuple[str, str]], cls: str) -> str:
    body = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows
    )
    return f"<table class='{cls}'>{body}</table>"


def _run_rows(result: BacktestResult, data: dict[str, Any]) -> list[tuple[str, str]]:
    s = result.summary
    start = (
        datetime.fromtimestamp(result.first_wall_ns / 1e9, UTC) if result.first_wall_ns else None
    )
    span = (result.last_wall_ns - result.first_wall_ns) / 1e9 if result.first_wall_ns else 0.0
    rows = [
        ("market", data["market"]),
        (
            "recorded span",
            f"{span:,.1f} s" + (f" from {start:%Y-%m-%d %H:%M:%S} UTC" if start else ""),
        ),
        ("seed", str(result.seed)),
        ("frames", f"{result.frames:,}"),
        ("events", f"{result.events:,}"),
        ("replay speed", f"{result.events_per_s:,.0f} events/s ({result.elapsed_s:.2f} s)"),
        (
            "orders by state",
            ", ".join(f"{k.lower()}: {v}" for k, v in sorted((s.get("orders") or {}).items())),
        ),
        ("torn blocks skipped", str(result.torn_blocks)),
        ("bad frames skipped", str(result.bad_frames)),
    ]
    for line in format_latency(s.get("latency") or {}):
        key, _, value = line.strip().partition(": ")
        rows.append((key, value))
    return rows


def _param_rows(result: BacktestResult) -> list[tuple[str, str]]:
    rows = [("seed", str(result.seed))]
    for strategy, params in result.params.items():
        for key, value in sorted(params.items()):
            rows.append((f"{strategy}.{key}", json.dumps(value, default=str)))
    return rows


def _trade_table(result: BacktestResult) -> str:
    t0 = result.first_wall_ns
    head = "".join(
        f"<th>{h}</th>"
        for h in ("t (s)", "market", "side", "price", "quantity", "fee", "liquidity", "order")
    )
    body = []
    for f in result.fills[:MAX_TRADE_ROWS]:
        cells = (
            f"{(f.ts_ns - t0) / 1e9:,.3f}",
            f"{f.venue} {f.symbol}",
            f.side,
            f.exact[3],
            f.exact[4],
            f"{f.fee:.6g}",
            f.liquidity,
            f.client_order_id,
        )
        body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    more = len(result.fills) - MAX_TRADE_ROWS
    note = f"<p>{more:,} more fills in the Parquet export.</p>" if more > 0 else ""
    return f"<table class='trades'><tr>{head}</tr>{''.join(body)}</table>{note}"


def _figure(data: dict[str, Any]) -> Any:
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=4,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.04,
        subplot_titles=[label for _, label in _PANELS],
    )
    for i, (key, _label) in enumerate(_PANELS, start=1):
        pts = data[key]
        fig.add_scatter(
            x=[x for x, _ in pts],
            y=[y for _, y in pts],
            mode="lines",
            name=key,
            line={"shape": "hv" if key == "inventory" else "linear"},
            fill="tozeroy" if key == "drawdown" else None,
            row=i,
            col=1,
        )
    for side, symbol, color in (
        ("BUY", "triangle-up", "#169638"),
        ("SELL", "triangle-down", "#d22828"),
    ):
        pts = [(x, p) for x, p, s in data["fills"] if s == side]
        fig.add_scatter(
            x=[x for x, _ in pts],
            y=[p for _, p in pts],
            mode="markers",
            name=side.lower(),
            marker={"symbol": symbol, "color": color, "size": 8},
            row=1,
            col=1,
        )
    fig.update_xaxes(title_text="seconds since first frame", row=4, col=1)
    fig.update_layout(height=1000, margin={"l": 60, "r": 20, "t": 40, "b": 40})
    return fig


def _html(result: BacktestResult, data: dict[str, Any], stats: dict[str, Any], title: str) -> str:
    # the plotly bundle inline: the file opens without a network
    chart = _figure(data).to_html(full_html=False, include_plotlyjs=True)
    style = (
        "body{font:14px system-ui,sans-serif;margin:24px;color:#222}"
        "table{border-collapse:collapse;margin-bottom:16px}"
        "th{text-align:left;padding:2px 16px 2px 0;font-weight:600}td{padding:2px 8px 2px 0}"
        ".trades td,.trades th{border-bottom:1px solid #eee;font-variant-numeric:tabular-nums}"
        ".cols{display:flex;gap:48px;flex-wrap:wrap}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
        "<div class='cols'>"
        f"<div><h2>Statistics</h2>{_table(stat_rows(stats), 'stats')}</div>"
        f"<div><h2>Parameters</h2>{_table(_param_rows(result), 'params')}"
        f"<h2>Run</h2>{_table(_run_rows(result, data), 'run')}</div>"
        "</div>"
        f"<h2>Charts</h2>{chart}"
        f"<h2>Trades</h2>{_trade_table(result)}"
        "</body></html>"
    )


def _png(
    result: BacktestResult,
    data: dict[str, Any],
    stats: dict[str, Any],
    title: str,
    path: Path,
) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(14, 11), dpi=90)
    grid = fig.add_gridspec(4, 2, width_ratios=[3, 1], hspace=0.35, wspace=0.05)
    axes = []
    for i, (key, label) in enumerate(_PANELS):
        ax = fig.add_subplot(grid[i, 0], sharex=axes[0] if axes else None)
        axes.append(ax)
        pts = data[key]
        xs, ys = [x for x, _ in pts], [y for _, y in pts]
        if key == "inventory":
            ax.step(xs, ys, where="post", lw=1.2)
        elif key == "drawdown":
            ax.fill_between(xs, ys, 0, color="#c23", alpha=0.4, lw=0)
        else:
            ax.plot(xs, ys, lw=1.2)
        if key == "price":
            for side, marker, color in (("BUY", "^", "#169638"), ("SELL", "v", "#d22828")):
                fx = [(x, p) for x, p, s in data["fills"] if s == side]
                ax.scatter([x for x, _ in fx], [p for _, p in fx], marker=marker, c=color, s=18)
        ax.set_title(label, fontsize=10, loc="left")
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("seconds since first frame")
    side = fig.add_subplot(grid[:, 1])
    side.axis("off")
    rows = [*stat_rows(stats)[:14], ("", ""), *_param_rows(result)[:12]]
    table = side.table(
        cellText=[list(r) for r in rows], loc="upper center", cellLoc="left", edges="horizontal"
    )
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.scale(1.25, 1.3)
    fig.suptitle(f"{title}: {data['market']}", fontsize=12)
    fig.savefig(path, format="png")


_PANELS = [
    ("price", "Price (mid) and fills"),
    ("pnl", "PnL (realized + unrealized)"),
    ("inventory", "Inventory (position)"),
    ("drawdown", "Drawdown"),
]
