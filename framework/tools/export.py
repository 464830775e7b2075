"""`botrun export`: a recording (and a backtest over it) as normalized Parquet tables.

From the recording, decoded by the venue's own decoders exactly as a backtest sees it:

- `book_deltas`: one row per level of each snapshot or delta (recv_ns, venue_ts, venue, symbol,
  kind snapshot|delta, epoch, side bid|ask, price, size; size 0 removes the level);
- `top_of_book`: best bid/ask (and sizes) after every book event while the book is synced;
- `trades`: public trades (price, size, aggressor where the venue says it, trade id);
- `venue_status`: the stream's state changes (SYNCED, DEGRADED, ...), placed at the receive time
  of the last market event before them.

From a backtest of a strategy over it (when one is given): `orders` (every order event, with the
order's side, price and quantity), `fills` (with fees, liquidity and the exact Decimal text of
price and quantity), `positions` (after each fill) and `equity` (mid, position and total PnL per
sample). Prices and sizes are float64 for analysis; the framework itself keeps them Decimal.

pyarrow (the `research` extra) writes the files; pyarrow, pandas and polars read them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from framework.strategy import Strategy
from framework.tools.backtest import run_backtest
from framework.tools.report import INSTALL_HINT, MissingExtra
from framework.tools.results import BacktestResult

MARKET_TABLES = ("book_deltas", "top_of_book", "trades", "venue_status")
RUN_TABLES = ("orders", "fills", "positions", "equity")


def write_parquet(tables: dict[str, dict[str, list[Any]]], out_dir: str | Path) -> list[Path]:
    """One `NAME.parquet` per table in `out_dir`; returns the paths."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingExtra(INSTALL_HINT.replace("the report", "Parquet")) from exc
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, columns in tables.items():
        path = out / f"{name}.parquet"
        pq.write_table(pa.table(_typed(columns)), path)
        paths.append(path)
    return paths


def _typed(columns: dict[str, list[Any]]) -> dict[str, Any]:
    """Columns pyarrow can type even when empty or when a nullable int column starts with None."""
    import pyarrow as pa

    out: dict[str, Any] = {}
    for name, values in columns.items():
        if name.endswith("_ns") or name in ("venue_ts", "epoch"):
            out[name] = pa.array(values, type=pa.int64())
        elif not values or any(isinstance(v, str) for v in values):
            # a text column, or a mixed one (a `choice:0.2,fast` parameter): as text
            out[name] = pa.array([None if v is None else str(v) for v in values], type=pa.string())
        else:
            out[name] = pa.array(values, type=pa.float64())
    return out


def export(
    data: str | Path,
    out_dir: str | Path,
    *,
    strategies: list[Strategy] | None = None,
    config: dict[str, Any] | None = None,
    seed: int = 0,
    sample_interval_s: float = 1.0,
    max_frames: int | None = None,
) -> tuple[BacktestResult, list[Path]]:
    """Replay `data` (through `strategies`, if any) keeping every table; write them as Parquet."""
    result = run_backtest(
        data,
        strategies or [],
        config=config,
        seed=seed,
        sample_interval_s=sample_interval_s,
        market_tables=True,
        max_frames=max_frames,
    )
    tables = result.tables()
    if not strategies:
        tables = {k: v for k, v in tables.items() if k in MARKET_TABLES}
    return result, write_parquet(tables, out_dir)
