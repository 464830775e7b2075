"""What a backtest returns: plain records that `backtest` produces and `report` and the CLI read.

They live apart from `backtest` so that `report` (and anything else that only reads results)
does not import the replay machinery, and `backtest` never needs `report`: the tools import
downward only (cli -> backtest, report -> results).
"""

from __future__ import annotations

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

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def events_per_s(self) -> float:
        return self.events / self.elapsed_s if self.elapsed_s > 0 else 0.0
