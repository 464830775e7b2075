"""Roxom market data: depth deltas and snapshots, level 1, trade aggregates and the ticker."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import trio

from framework.events import Side
from framework.sim.engine import (
    SimFill,
)
from framework.sim.server import (
    fan_out,
)
from framework.venues.roxom.sim.common import _PX, FUNDING_RATE, _text, px, qty


class MarketFeed:
    """Engine level changes and matches as market-data frames."""

    def _next_ts(self, symbol: str) -> int:
        # strictly increasing per symbol, so a client can order deltas against a snapshot
        now = max(self._clock_ns(), self._ts.get(symbol, 0) + 1)
        self._ts[symbol] = now
        return now

    # --- engine callbacks --------------------------------------------------------------------

    def on_level(self, symbol: str, side: Side, price: Decimal, size: Decimal) -> None:
        self._depth_delta(symbol, side, price, size)
        subs = self._subs.get(("level1", symbol))
        if subs:
            top = self._top_levels(symbol)
            if top != self._top.get(symbol):
                self._top[symbol] = top
                fan_out(subs, self._level1_frame(symbol, top))

    def _depth_delta(self, symbol: str, side: Side, price: Decimal, size: Decimal) -> None:
        subs = self._subs.get(("depth", symbol))
        if not subs:
            return
        ts = self._next_ts(symbol)
        level = [[px(price), qty(size)]]
        data = {
            "symbol": symbol,
            # [INF] one level per delta (as the engine reports changes); the other side []
            "bid": level if side is Side.BUY else [],
            "ask": level if side is Side.SELL else [],
            "timestamp": ts,
        }
        fan_out(subs, self._market_frame("depth", symbol, "delta", data, ts))

    # --- market data frames --------------------------------------------------------------------

    def _market_frame(
        self, channel: str, symbol: str, kind: str, data: dict[str, Any], ts: int
    ) -> str:
        return _text(
            {"topic": f"{channel}.{symbol}", "type": kind, "createdTime": ts, "data": data}
        )

    def _depth_snapshot(self, symbol: str) -> str:
        bids, asks = self.engine.book(symbol)
        ts = self._next_ts(symbol)
        data = {
            "symbol": symbol,
            "bid": [[px(p), qty(s)] for p, s in bids],
            "ask": [[px(p), qty(s)] for p, s in asks],
            "timestamp": ts,
        }
        return self._market_frame("depth", symbol, "snapshot", data, ts)

    def _top_levels(self, symbol: str) -> tuple[Any, Any]:
        bids, asks = self.engine.book(symbol, 1)
        return (bids[0] if bids else None, asks[0] if asks else None)

    def _level1_frame(self, symbol: str, top: tuple[Any, Any]) -> str:
        bid, ask = top
        ts = self._next_ts(symbol)
        data = {
            "symbol": symbol,
            "bid": [px(bid[0]), qty(bid[1])] if bid else [],  # [INF] an empty side is []
            "ask": [px(ask[0]), qty(ask[1])] if ask else [],
            "timestamp": ts,
        }
        return self._market_frame("level1", symbol, "snapshot", data, ts)

    def _trade_aggregate(self, symbol: str, fills: list[SimFill]) -> None:
        subs = self._subs.get(("trade", symbol))
        if not subs:
            return
        volume = sum((f.quantity for f in fills), Decimal(0))
        vwap = sum((f.price * f.quantity for f in fills), Decimal(0)) / volume
        ts = self._next_ts(symbol)
        data = {
            "symbol": symbol,
            "takerSide": fills[0].aggressor.value.lower(),
            "minPx": px(min(f.price for f in fills)),
            "maxPx": px(max(f.price for f in fills)),
            "volume": qty(volume),
            # [INF] vwap rounded half-even to the 8 price decimals
            "vwap": px(vwap.quantize(_PX, ROUND_HALF_EVEN)),
            "timestamp": ts,
        }
        fan_out(subs, self._market_frame("trade", symbol, "snapshot", data, ts))

    def _mid(self, symbol: str) -> Decimal | None:
        bid, ask = self.engine.best_bid(symbol), self.engine.best_ask(symbol)
        if bid is None or ask is None:
            return bid or ask
        return (bid + ask) / 2

    def _ticker_frame(self, symbol: str) -> str:
        (bid, ask), mid = self._top_levels(symbol), self._mid(symbol)
        pos = self.account.position(symbol)
        oi = abs(pos.size) if pos else Decimal(0)  # [INF] the only account is the simulated one
        ts = self._next_ts(symbol)
        last = self._last_px.get(symbol)
        data = {
            "symbol": symbol,
            "lastPrice": None if last is None else px(last),
            # [INF] index and mark price are the book mid
            "indexPrice": None if mid is None else px(mid),
            "markPrice": None if mid is None else px(mid),
            "bestBid": px(bid[0]) if bid else None,
            "bestAsk": px(ask[0]) if ask else None,
            "bestBidQty": qty(bid[1]) if bid else None,
            "bestAskQty": qty(ask[1]) if ask else None,
            "openInterest": qty(oi),
            "openInterestValue": None if mid is None else px(oi * mid),
            "fundingRate": FUNDING_RATE,
            "timestamp": ts,
            "unit": "btc",
        }
        return self._market_frame("ticker", symbol, "snapshot", data, ts)

    async def _ticker_loop(self) -> None:
        while True:
            await trio.sleep(self.ticker_period_s)
            for (channel, symbol), subs in list(self._subs.items()):
                if channel == "ticker" and subs and symbol is not None:
                    fan_out(subs, self._ticker_frame(symbol))
