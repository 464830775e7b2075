"""Paxos public WebSockets: the order book (SNAPSHOT fragments, then UPDATEs), executions and
the stablecoin price."""

from __future__ import annotations

import math
from decimal import Decimal

import trio

from framework.events import Side
from framework.sim.engine import (
    SimFill,
    SimOrder,
)
from framework.sim.server import (
    WsConnection,
    fan_out,
)
from framework.venues.paxos.sim.common import (
    STABLE_MAX,
    STABLE_MIN,
    STABLE_STEP,
    STABLECOIN,
    _levels,
    _text,
    iso_ms,
    iso_ns,
    match_number,
    wire,
)


class PublicFeed:
    """`/marketdata`, `/executiondata`, `/marketdata/stablecoin`: engine callbacks become frames."""

    # --- engine callbacks ------------------------------------------------------------------

    def on_level(self, symbol: str, side: Side, price: Decimal, size: Decimal) -> None:
        public = self._public_books.get(symbol)
        if public:
            frame = _text(
                {
                    "type": "UPDATE",
                    "market": symbol,
                    "side": side.value,
                    "price": wire(price),
                    "amount": wire(size),
                }
            )
            fan_out(public, frame)
        sor = self._sor_subs.get(("market_data", symbol))
        if sor:
            level = _levels([(price, size)])
            payload = {
                "market": symbol,
                "type": "UPDATE",
                "time": iso_ns(self._next_sor_time(symbol)),
                # [INF] one level per UPDATE (as the engine reports them); the other side is []
                "bids": level if side is Side.BUY else [],
                "asks": level if side is Side.SELL else [],
            }
            fan_out(sor, _text({"channel": "market_data", "payload": payload}))
        if self._sor_subs.get(("market_data.top_of_book", symbol)):
            self._tob_dirty.add(symbol)
        self._flush_top_of_book()

    def on_order(self, order: SimOrder) -> None:
        self._flush_top_of_book()

    def _flush_top_of_book(self) -> None:
        """TOP_OF_BOOK once a whole engine change is delivered (never mid-sweep), after that
        change's UPDATEs, so it never runs ahead of the book it summarises."""
        if not self._tob_dirty or self.engine.settling:
            return
        dirty, self._tob_dirty = self._tob_dirty, set()
        for symbol in sorted(dirty):
            tob = self._sor_subs.get(("market_data.top_of_book", symbol))
            top = self._top_levels(symbol)
            if tob and top != self._top.get(symbol):
                self._top[symbol] = top
                fan_out(tob, self._top_of_book_frame(symbol, top))

    def on_trade(self, fill: SimFill) -> None:
        self._last_trade[fill.symbol] = fill
        public = self._public_trades.get(fill.symbol)
        if public:
            fan_out(public, _text(self._public_execution(fill)))
        sor = self._sor_subs.get(("execution_data", fill.symbol))
        if sor:
            payload = {
                "market": fill.symbol,
                "price": wire(fill.price),
                "amount": wire(fill.quantity),
                "executed_at": iso_ns(fill.ts_ns),  # [INF] nanosecond precision; no match_number
            }
            fan_out(sor, _text({"channel": "execution_data", "payload": payload}))

    # --- public WebSocket ------------------------------------------------------------------

    async def _ws_marketdata(self, conn: WsConnection, market: str | None = None) -> None:
        markets = self._markets_for(market)
        if markets is None:
            await self._ws_not_found(conn)
            return
        # Snapshot and subscription happen with no await in between, so no engine change can
        # fall between the snapshot and the first UPDATE.
        for symbol in markets:
            for frame in self._snapshot_fragments(symbol):
                conn.enqueue(frame)
            self._public_books.setdefault(symbol, set()).add(conn)
        try:
            await trio.sleep_forever()
        finally:
            for symbol in markets:
                self._public_books[symbol].discard(conn)

    async def _ws_executiondata(self, conn: WsConnection, market: str | None = None) -> None:
        markets = self._markets_for(market)
        if markets is None:
            await self._ws_not_found(conn)
            return
        for symbol in markets:
            last = self._last_trade.get(symbol)
            if last is not None:  # [DOC] the first message is the last execution, even if old
                conn.enqueue(_text(self._public_execution(last)))
            self._public_trades.setdefault(symbol, set()).add(conn)
        try:
            await trio.sleep_forever()
        finally:
            for symbol in markets:
                self._public_trades[symbol].discard(conn)

    async def _ws_stablecoin(self, conn: WsConnection, market: str | None = None) -> None:
        if market is not None and market != STABLECOIN:
            await self._ws_not_found(conn)
            return
        conn.enqueue(self._stablecoin_frame())
        self._stable_subs.add(conn)
        try:
            await trio.sleep_forever()
        finally:
            self._stable_subs.discard(conn)

    async def _ws_not_found(self, conn: WsConnection) -> None:
        # [INF] unknown path or market: one `{"error":"Not Found"}` frame (tardis fixture), then
        # a normal close.
        await conn.send_text(_text({"error": "Not Found"}))
        await conn.close()

    def _markets_for(self, market: str | None) -> list[str] | None:
        symbols = self.engine.symbols()
        if market is None:
            return symbols
        return [market] if market in symbols else None

    def _snapshot_fragments(self, symbol: str) -> list[str]:
        bids, asks = self.engine.book(symbol)
        size = self.snapshot_fragment_levels
        if size is None:
            # [DOC] the documented form: one SNAPSHOT, `final_snapshot: true`, whatever the depth
            frame = {
                "type": "SNAPSHOT",
                "market": symbol,
                "bids": _levels(bids),
                "asks": _levels(asks),
                "final_snapshot": True,
            }
            return [_text(frame)]
        count = max(1, math.ceil(max(len(bids), len(asks)) / size))
        frames = []
        for i in range(count):
            chunk = slice(i * size, (i + 1) * size)
            frame = {
                "type": "SNAPSHOT",
                "market": symbol,
                "bids": _levels(bids[chunk]),
                "asks": _levels(asks[chunk]),
                "final_snapshot": i == count - 1,
            }
            frames.append(_text(frame))
        return frames

    def _public_execution(self, fill: SimFill) -> dict[str, str]:
        return {
            "market": fill.symbol,
            "price": wire(fill.price),
            "amount": wire(fill.quantity),
            "executed_at": iso_ms(fill.ts_ns),
            "match_number": match_number(fill.trade_id),
        }

    # [INF] the price random-walks by 0.0001 steps (seeded) and the timestamp is the sim clock
    def _stablecoin_frame(self) -> str:
        return _text(
            {
                "market": STABLECOIN,
                "price": format(self._stable_price, ".4f"),  # [DOC] 4 decimals, even "1.0000"
                "timestamp": iso_ns(self._clock_ns()),
            }
        )

    async def _stablecoin_loop(self) -> None:
        while True:
            await trio.sleep(self.stablecoin_period_s)
            step = STABLE_STEP * self._rng.choice((-1, 0, 1))
            self._stable_price = min(STABLE_MAX, max(STABLE_MIN, self._stable_price + step))
            fan_out(self._stable_subs, self._stablecoin_frame())
