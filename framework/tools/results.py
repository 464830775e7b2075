"""What a backtest returns: plain records that `backtest` produces and `report` and the CLI read.

They live apart from `backtest` so that `report` (and anything else that only reads results)
does not import the replay machinery, and `backtest` never needs `report`: the tools import
downward only (cli -> backtest, report -> results).
"""

from __future__ import annotations

import math
from typing import Any

import attrs


@attrs.define
class FillRecord:
    ts_ns: int
    venue: str
    symbol: str
    client_order_id: str
    fill_id: str
    side: str
    price: float
    quantity: float
    exact: tuple[str, str, str, str, str, str]  # ids, side, Decimal price/qty as text
    fee: float = 0.0
    liquidity: str = ""  # MAKER / TAKER / "" (not said)


@attrs.define
class BacktestResult:
    summary: dict[str, Any]
    fills: list[FillRecord]
    # (wall ns, total PnL, {"venue symbol": (mid or nan, position)})
    samples: list[tuple[int, float, dict[str, tuple[float, float]]]]
    frames: int
    events: int
    elapsed_s: float
    torn_blocks: int
    bad_frames: int
    first_wall_ns: int
    last_wall_ns: int
    # final books: (bids, asks) best first, or ("unsynced",)
    books: dict[tuple[str, str], tuple[Any, ...]] = attrs.Factory(dict)
    # (ts ns, venue, symbol, coid, event, status, side, price, quantity, filled, reason)
    orders: list[tuple[Any, ...]] = attrs.Factory(list)
    # (ts ns, venue, symbol, quantity, avg price, realized PnL net of fees)
    positions: list[tuple[Any, ...]] = attrs.Factory(list)
    seed: int = 0
    params: dict[str, dict[str, Any]] = attrs.Factory(dict)
    market: MarketTables | None = None

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def events_per_s(self) -> float:
        return self.events / self.elapsed_s if self.elapsed_s > 0 else 0.0

    # --- tables (framework/tools/export.py writes them; notebooks read them as DataFrames) ----

    def tables(self) -> dict[str, dict[str, list[Any]]]:
        """Column-oriented tables: orders, fills, positions, equity (and, when the run kept
        them, book_deltas, top_of_book, trades, venue_status). Prices and sizes are float64 for
        analysis; `fills` also carries the exact Decimal text of price and quantity."""
        out: dict[str, dict[str, list[Any]]] = {
            "orders": _columns(ORDER_COLUMNS, self.orders),
            "fills": _columns(
                FILL_COLUMNS,
                [
                    (
                        f.ts_ns,
                        f.venue,
                        f.symbol,
                        f.client_order_id,
                        f.fill_id,
                        f.side,
                        f.price,
                        f.quantity,
                        f.fee,
                        f.liquidity,
                        f.exact[3],
                        f.exact[4],
                    )
                    for f in self.fills
                ],
            ),
            "positions": _columns(POSITION_COLUMNS, self.positions),
            "equity": _columns(EQUITY_COLUMNS, self.equity_rows()),
        }
        if self.market is not None:
            out.update(self.market.tables())
        return out

    def equity_rows(self) -> list[tuple[Any, ...]]:
        """(ts ns, market, mid, position, total PnL) per sample and market."""
        rows: list[tuple[Any, ...]] = []
        for wall_ns, total, marks in self.samples:
            if not marks:
                rows.append((wall_ns, "", math.nan, 0.0, total))
            for market, (mid, pos) in marks.items():
                rows.append((wall_ns, market, mid, pos, total))
        return rows

    def dataframes(self) -> dict[str, Any]:
        """The same tables as pandas DataFrames (needs pandas: `pip install botrun[research]`)."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError("DataFrames need pandas: install botrun[research]") from exc
        return {name: pd.DataFrame(cols) for name, cols in self.tables().items()}


ORDER_COLUMNS = (
    "ts_ns",
    "venue",
    "symbol",
    "client_order_id",
    "event",
    "status",
    "side",
    "price",
    "quantity",
    "filled",
    "reason",
)
FILL_COLUMNS = (
    "ts_ns",
    "venue",
    "symbol",
    "client_order_id",
    "fill_id",
    "side",
    "price",
    "quantity",
    "fee",
    "liquidity",
    "price_exact",
    "quantity_exact",
)
POSITION_COLUMNS = ("ts_ns", "venue", "symbol", "quantity", "avg_price", "realized_pnl")
EQUITY_COLUMNS = ("ts_ns", "market", "mid", "position", "pnl")
BOOK_COLUMNS = ("recv_ns", "venue_ts", "venue", "symbol", "kind", "epoch", "side", "price", "size")
TOP_COLUMNS = ("recv_ns", "venue", "symbol", "bid", "bid_size", "ask", "ask_size")
TRADE_COLUMNS = (
    "recv_ns",
    "venue_ts",
    "venue",
    "symbol",
    "price",
    "size",
    "aggressor",
    "trade_id",
)
STATUS_COLUMNS = ("recv_ns", "venue", "stream", "state", "epoch", "reason")


def _columns(names: tuple[str, ...], rows: list[tuple[Any, ...]]) -> dict[str, list[Any]]:
    if not rows:
        return {n: [] for n in names}
    return {n: list(col) for n, col in zip(names, zip(*rows, strict=True), strict=True)}


class MarketTables:
    """Collects a recording's normalized market data off the bus during a replay."""

    def __init__(self) -> None:
        self.book_rows: list[tuple[Any, ...]] = []
        self.top_rows: list[tuple[Any, ...]] = []
        self.trade_rows: list[tuple[Any, ...]] = []
        self.status_rows: list[tuple[Any, ...]] = []
        self.books: dict[tuple[str, str], Any] = {}
        self.last_ns = 0

    def on_book(self, event: Any) -> None:
        recv, venue, symbol = event.recv_ns, event.venue, event.symbol
        self.last_ns = recv
        kind = "delta" if type(event).__name__ == "BookDelta" else "snapshot"
        rows = self.book_rows
        for side, levels in (("bid", event.bids), ("ask", event.asks)):
            for price, size in levels:
                rows.append(
                    (
                        recv,
                        event.venue_ts,
                        venue,
                        symbol,
                        kind,
                        event.epoch,
                        side,
                        float(price),
                        float(size),
                    )
                )
        book = self.books.get((venue, symbol))
        if book is not None and book.is_synced:
            bid, ask = book.best_bid(), book.best_ask()
            self.top_rows.append(
                (
                    recv,
                    venue,
                    symbol,
                    float(bid[0]) if bid else math.nan,
                    float(bid[1]) if bid else math.nan,
                    float(ask[0]) if ask else math.nan,
                    float(ask[1]) if ask else math.nan,
                )
            )

    def on_trade(self, t: Any) -> None:
        self.last_ns = t.recv_ns
        self.trade_rows.append(
            (
                t.recv_ns,
                t.venue_ts,
                t.venue,
                t.symbol,
                float(t.price),
                float(t.size),
                t.aggressor.value if t.aggressor is not None else "",
                t.trade_id or "",
            )
        )

    def on_status(self, s: Any) -> None:
        # a status carries no timestamp: the last market event's receive time orders it
        self.status_rows.append((self.last_ns, s.venue, s.stream, s.state.value, s.epoch, s.reason))

    def tables(self) -> dict[str, dict[str, list[Any]]]:
        return {
            "book_deltas": _columns(BOOK_COLUMNS, self.book_rows),
            "top_of_book": _columns(TOP_COLUMNS, self.top_rows),
            "trades": _columns(TRADE_COLUMNS, self.trade_rows),
            "venue_status": _columns(STATUS_COLUMNS, self.status_rows),
        }
