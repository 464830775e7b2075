"""Backtest report: a self-contained HTML file (inline SVG charts) and a PNG, stdlib only.

Four panels over recorded time: price (mid) with fills marked (▲ buy, ▼ sell), PnL (realized +
unrealized, marked to mid), inventory (position), drawdown (PnL below its running peak). The PNG
is drawn by a tiny rasteriser (lines, markers, a 3x5 pixel font) and written with zlib; no
plotting dependency is needed for four line charts.
"""

from __future__ import annotations

import html
import math
import struct
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from framework.latency import format_latency
from framework.tools.results import BacktestResult

Series = list[tuple[float, float]]  # (seconds since start, value)

_BUY = (22, 150, 60)
_SELL = (210, 40, 40)
_LINE = (40, 90, 200)
_GRID = (225, 225, 225)
_AXIS = (90, 90, 90)


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
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = series(result)
    html_path = out / "report.html"
    png_path = out / "report.png"
    html_path.write_text(_html(result, data, title))
    png_path.write_bytes(_png(data))
    return html_path, png_path


# --- scales ------------------------------------------------------------------------------------


def _extent(values: Sequence[float], pad: float = 0.05) -> tuple[float, float]:
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return 0.0, 1.0
    lo, hi = min(vals), max(vals)
    if hi == lo:
        lo, hi = lo - (abs(lo) * 0.001 or 1.0), hi + (abs(hi) * 0.001 or 1.0)
    span = hi - lo
    return lo - span * pad, hi + span * pad


def _ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    step = _step(lo, hi, n)
    out = []
    k = math.ceil(lo / step)
    while k * step <= hi + step * 1e-9:
        out.append(k * step)
        k += 1
    return out


def _step(lo: float, hi: float, n: int) -> float:
    raw = (hi - lo) / n
    if raw <= 0:
        return 1.0
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= raw:
            return m * mag
    return 10 * mag


def _labeller(lo: float, hi: float, n: int = 4) -> Any:
    """Tick labels with as many decimals as the tick step needs (and no float noise)."""
    step = _step(lo, hi, n)
    decimals = max(0, math.ceil(-math.log10(step) + 1e-9)) if step < 1 else 0
    if step in (0.25, 0.025, 0.0025):
        decimals += 1

    def fmt(v: float) -> str:
        text = f"{v:.{decimals}f}"
        return "0" if float(text) == 0 else text

    return fmt


_PANELS = [
    ("price", "Price (mid) and fills"),
    ("pnl", "PnL (realized + unrealized)"),
    ("inventory", "Inventory (position)"),
    ("drawdown", "Drawdown"),
]


# --- HTML / SVG --------------------------------------------------------------------------------


def _svg_panel(data: dict[str, Any], key: str, label: str, w: int = 900, h: int = 220) -> str:
    pts: Series = data[key]
    left, right, top, bottom = 70, 15, 24, 28
    pw, ph = w - left - right, h - top - bottom
    xs = [x for x, _ in data["pnl"]] or [0.0, 1.0]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    ys = [y for _, y in pts] + ([p for _, p, _ in data["fills"]] if key == "price" else [])
    y0, y1 = _extent(ys)

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * ph

    parts = [f'<svg viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img">']
    parts.append(f'<text x="{left}" y="16" class="t">{html.escape(label)}</text>')
    yf, xf = _labeller(y0, y1), _labeller(x0, x1, 6)
    for t in _ticks(y0, y1):
        y = sy(t)
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" class="g"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" class="yl">{yf(t)}</text>')
    for t in _ticks(x0, x1, 6):
        x = sx(t)
        parts.append(f'<text x="{x:.1f}" y="{h - 8}" class="xl">{xf(t)}s</text>')
    parts.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" class="frame"/>')
    if pts:
        step = "H" if key == "inventory" else "L"
        d = [f"M{sx(pts[0][0]):.1f},{sy(pts[0][1]):.1f}"]
        for x, y in pts[1:]:
            if step == "H":
                d.append(f"H{sx(x):.1f}V{sy(y):.1f}")
            else:
                d.append(f"L{sx(x):.1f},{sy(y):.1f}")
        cls = "dd" if key == "drawdown" else "line"
        parts.append(f'<path d="{"".join(d)}" class="{cls}"/>')
    if key == "price":
        for x, p, side in data["fills"]:
            cx, cy = sx(x), sy(p)
            if side == "BUY":
                tri = f"{cx:.1f},{cy - 6:.1f} {cx - 5:.1f},{cy + 4:.1f} {cx + 5:.1f},{cy + 4:.1f}"
                parts.append(
                    f'<polygon points="{tri}" class="buy"><title>buy {p}</title></polygon>'
                )
            else:
                tri = f"{cx:.1f},{cy + 6:.1f} {cx - 5:.1f},{cy - 4:.1f} {cx + 5:.1f},{cy - 4:.1f}"
                parts.append(
                    f'<polygon points="{tri}" class="sell"><title>sell {p}</title></polygon>'
                )
    parts.append("</svg>")
    return "".join(parts)


def _html(result: BacktestResult, data: dict[str, Any], title: str) -> str:
    s = result.summary
    start = (
        datetime.fromtimestamp(result.first_wall_ns / 1e9, UTC) if result.first_wall_ns else None
    )
    span = (result.last_wall_ns - result.first_wall_ns) / 1e9 if result.first_wall_ns else 0.0
    final_pnl = data["pnl"][-1][1] if data["pnl"] else 0.0
    rows = [
        ("market", data["market"]),
        (
            "recorded span",
            f"{span:,.1f} s" + (f" from {start:%Y-%m-%d %H:%M:%S} UTC" if start else ""),
        ),
        ("frames", f"{result.frames:,}"),
        ("events", f"{result.events:,}"),
        ("replay speed", f"{result.events_per_s:,.0f} events/s ({result.elapsed_s:.2f} s)"),
        ("fills", f"{len(result.fills):,}"),
        ("orders by state", ", ".join(f"{k.lower()}: {v}" for k, v in sorted(s["orders"].items()))),
        ("final PnL", f"{final_pnl:,.4f}"),
        ("max drawdown", f"{data['max_drawdown']:,.4f}"),
        ("torn blocks skipped", str(result.torn_blocks)),
        ("bad frames skipped", str(result.bad_frames)),
    ]
    for p in s.get("positions", []):
        rows.append((f"position {p['venue']} {p['symbol']}", f"{p['quantity']}"))
    for line in format_latency(s.get("latency") or {}):
        key, _, value = line.strip().partition(": ")
        rows.append((key, value))
    table = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows
    )
    panels = "".join(_svg_panel(data, key, label) for key, label in _PANELS)
    style = (
        "body{font:14px system-ui,sans-serif;margin:24px;color:#222}"
        "table{border-collapse:collapse;margin-bottom:16px}"
        "th{text-align:left;padding:2px 16px 2px 0;font-weight:600}td{padding:2px 0}"
        "svg{display:block;margin:8px 0}.t{font-weight:600;font-size:13px}"
        ".yl{font-size:11px;text-anchor:end;fill:#555}.xl{font-size:11px;text-anchor:middle;"
        "fill:#555}.g{stroke:#e4e4e4}.frame{fill:none;stroke:#999}"
        ".line{fill:none;stroke:#2857c8;stroke-width:1.4}.dd{fill:none;stroke:#c23;"
        "stroke-width:1.4}.buy{fill:#169638}.sell{fill:#d22828}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<table>{table}</table>{panels}</body></html>"
    )


# --- PNG ---------------------------------------------------------------------------------------

# 3x5 pixel glyphs, rows top to bottom, 3 bits each (MSB = left)
_FONT = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111",
    "3": "111001111001111", "4": "101101111001001", "5": "111100111001111",
    "6": "111100111101111", "7": "111001001001001", "8": "111101111101111",
    "9": "111101111001111", "A": "010101111101101", "B": "110101110101110",
    "C": "011100100100011", "D": "110101101101110", "E": "111100110100111",
    "F": "111100110100100", "G": "011100101101011", "H": "101101111101101",
    "I": "111010010010111", "J": "001001001101010", "K": "101101110101101",
    "L": "100100100100111", "M": "101111111101101", "N": "110101101101101",
    "O": "010101101101010", "P": "110101110100100", "Q": "010101101110011",
    "R": "110101110101101", "S": "011100010001110", "T": "111010010010010",
    "U": "101101101101111", "V": "101101101101010", "W": "101101111111101",
    "X": "101101010101101", "Y": "101101010010010", "Z": "111001010100111",
    ".": "000000000000010", "-": "000000111000000", ":": "000010000010000",
    "+": "000010111010000", "/": "001001010100100", "(": "010100100100010",
    ")": "010001001001010", "%": "101001010100101", "=": "000111000111000",
    ",": "000000000010100", " ": "000000000000000",
}  # fmt: skip


class _Canvas:
    def __init__(self, w: int, h: int) -> None:
        self.w, self.h = w, h
        self.px = bytearray(b"\xff" * (w * h * 3))

    def set(self, x: int, y: int, c: tuple[int, int, int]) -> None:
        if 0 <= x < self.w and 0 <= y < self.h:
            i = (y * self.w + x) * 3
            self.px[i : i + 3] = bytes(c)

    def rect(self, x0: int, y0: int, x1: int, y1: int, c: tuple[int, int, int]) -> None:
        for y in range(max(0, y0), min(self.h, y1 + 1)):
            for x in range(max(0, x0), min(self.w, x1 + 1)):
                self.set(x, y, c)

    def line(self, x0: int, y0: int, x1: int, y1: int, c: tuple[int, int, int], t: int = 1) -> None:
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err = dx + dy
        while True:
            for k in range(t):
                self.set(x0, y0 + k, c)
            if x0 == x1 and y0 == y1:
                return
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy

    def text(self, x: int, y: int, s: str, c: tuple[int, int, int], scale: int = 2) -> None:
        for ch in s.upper():
            glyph = _FONT.get(ch, _FONT[" "])
            for i, bit in enumerate(glyph):
                if bit == "1":
                    gx, gy = x + (i % 3) * scale, y + (i // 3) * scale
                    self.rect(gx, gy, gx + scale - 1, gy + scale - 1, c)
            x += 4 * scale

    def png(self) -> bytes:
        raw = bytearray()
        stride = self.w * 3
        for y in range(self.h):
            raw.append(0)
            raw += self.px[y * stride : (y + 1) * stride]

        def chunk(kind: bytes, body: bytes) -> bytes:
            return (
                struct.pack(">I", len(body))
                + kind
                + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
            )

        ihdr = struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(bytes(raw), 6))
            + chunk(b"IEND", b"")
        )


def _png(data: dict[str, Any], w: int = 900, panel_h: int = 200) -> bytes:
    canvas = _Canvas(w, panel_h * len(_PANELS))
    xs = [x for x, _ in data["pnl"]] or [0.0, 1.0]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    for n, (key, label) in enumerate(_PANELS):
        oy = n * panel_h
        left, right, top, bottom = 80, 12, 22, 22
        pw, ph = w - left - right, panel_h - top - bottom
        pts: Series = data[key]
        ys = [y for _, y in pts] + ([p for _, p, _ in data["fills"]] if key == "price" else [])
        y0, y1 = _extent(ys)

        def sx(x: float, x0: float = x0, x1: float = x1, left: int = left, pw: int = pw) -> int:
            return int(left + (x - x0) / (x1 - x0) * pw)

        def sy(
            y: float, y0: float = y0, y1: float = y1, oy: int = oy, top: int = top, ph: int = ph
        ) -> int:
            return int(oy + top + (1 - (y - y0) / (y1 - y0)) * ph)

        canvas.text(left, oy + 5, label.replace("(", "").replace(")", ""), _AXIS)
        yf, xf = _labeller(y0, y1), _labeller(x0, x1, 6)
        for t in _ticks(y0, y1):
            y = sy(t)
            canvas.line(left, y, left + pw, y, _GRID)
            label_text = yf(t)
            canvas.text(left - 6 - 8 * len(label_text), y - 4, label_text, _AXIS)
        for t in _ticks(x0, x1, 6):
            canvas.text(sx(t) - 8, oy + panel_h - 16, f"{xf(t)}S", _AXIS)
        canvas.line(left, oy + top, left + pw, oy + top, _AXIS)
        canvas.line(left, oy + top + ph, left + pw, oy + top + ph, _AXIS)
        canvas.line(left, oy + top, left, oy + top + ph, _AXIS)
        canvas.line(left + pw, oy + top, left + pw, oy + top + ph, _AXIS)
        color = _SELL if key == "drawdown" else _LINE
        prev = None
        for x, y in pts:
            cur = (sx(x), sy(y))
            if prev is not None:
                if key == "inventory":
                    canvas.line(prev[0], prev[1], cur[0], prev[1], color, 2)
                    canvas.line(cur[0], prev[1], cur[0], cur[1], color, 2)
                else:
                    canvas.line(prev[0], prev[1], cur[0], cur[1], color, 2)
            prev = cur
        if key == "price":
            for x, p, side in data["fills"]:
                cx, cy = sx(x), sy(p)
                c = _BUY if side == "BUY" else _SELL
                for k in range(5):
                    row = cy - 3 + k if side == "BUY" else cy + 3 - k
                    canvas.line(cx - k, row, cx + k, row, c)
    return canvas.png()
