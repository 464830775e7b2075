"""Roxom WebSocket frames → normalized events.

Market data comes in `{"topic": "<channel>.<symbol>", "type": "snapshot|delta", "createdTime",
"data"}` envelopes; account events as `{"type": "order|balance|position|account", "data"}`;
control replies as `{"event": "subscribe|unsubscribe|error", ...}`. Timestamps are integer
nanoseconds above 2^53: orjson keeps JSON integers exact, and nothing here goes through float.
Prices and sizes are decimal strings with a per-field scale ("0.00", "0.00000000" are zero).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import attrs

from framework.errors import FrameError
from framework.events import (
    Balance,
    BookDelta,
    BookSnapshot,
    Level,
    Position,
    PublicTrade,
    Side,
    Ticker,
    TopOfBook,
)
from framework.transport.wire import PriceCache, dec, loads_object
from framework.venues.roxom.instruments import QUOTE, VENUE
from framework.venues.roxom.tracking import SATS_PER_BTC, OrderTracker

__all__ = ["SATS_PER_BTC", "OrderTracker", "RoxomDecoder"]

_D = Decimal
_ZERO = Decimal(0)
# no real size comes near this; it also keeps Infinity out of the hot path
_HUGE = Decimal("1e30")
_EMPTY: tuple[Level, ...] = ()


@attrs.frozen(slots=True)
class RoxomBalanceUpdate:
    """A Roxom balance change as sent (the core `Balance` carries only the new total)."""

    venue: str
    asset: str
    before: Decimal
    after: Decimal
    amount: Decimal
    update_type: str
    ts_ns: int


def ns(value: Any, field: str) -> int:
    """An integer nanosecond timestamp; a float would already have lost digits, so refuse it."""
    if type(value) is int:
        return value
    if type(value) is str and value.isascii() and value.isdigit():
        return int(value)  # [INF] tolerated: a timestamp sent as a digit string
    raise FrameError(f"{field}: expected integer nanoseconds, got {value!r}")


def opt_dec(data: dict[str, Any], *names: str) -> Decimal | None:
    """The first of `names` present and not null, as a Decimal (ticker fields may be null)."""
    for name in names:
        value = data.get(name)
        if value is not None:
            return dec(value, name)
    return None


def _pair(raw: Any, field: str) -> Level | None:
    if raw is None or raw == []:
        return None
    if type(raw) is not list or len(raw) != 2:
        raise FrameError(f"{field}: expected [price, quantity]")
    price, qty = dec(raw[0], f"{field}.price"), dec(raw[1], f"{field}.qty")
    if price <= 0:
        raise FrameError(f"{field}: price must be positive")
    # the same bound as the hot path: 1E+400 is finite, and no book holds it
    if price >= _HUGE or abs(qty) >= _HUGE:
        raise FrameError(f"{field}: out of range")
    return price, qty


def _levels(raw: Any, field: str) -> tuple[Level, ...]:
    if raw is None:
        return _EMPTY
    if type(raw) is not list:
        raise FrameError(f"{field}: expected a list of [price, quantity]")
    out = []
    for entry in raw:
        level = _pair(entry, field)
        if level is None:
            raise FrameError(f"{field}: empty level")
        # [DOC] "quantities of 0 or negative indicate removals": normalized to 0 (removes)
        out.append(level if level[1] > _ZERO else (level[0], _ZERO))
    return tuple(out)


class RoxomDecoder:
    """Decodes one connection's frames; `depth` tracks where each depth subscription stands."""

    def __init__(
        self,
        emit: Callable[[Any], None],
        on_control: Callable[[dict[str, Any]], None],
        request_resync: Callable[[str], None],
        tracker: OrderTracker | None = None,
    ) -> None:
        self.emit = emit
        # order events need per-order state (fills booked, events held for a create)
        self.tracker = tracker or OrderTracker()
        self.on_control = on_control
        self.request_resync = request_resync
        self.epoch = 0
        # symbol -> "requested" (subscribe sent) | "acked" | "live" (snapshot received)
        self.depth: dict[str, str] = {}
        self.gaps = 0
        # hot path: validated prices (positive, below 1e30) by their text. Reusing one Decimal
        # per price also reuses its hash, which the core book needs for every level it touches
        # (hashing a fresh Decimal costs about three times what building it does)
        self.prices = PriceCache()

    def decode(self, frame: str | bytes, recv_ns: int) -> None:
        msg = loads_object(frame)
        topic = msg.get("topic")
        if topic is not None:
            # The hot path: a depth delta with an integer `data.timestamp` and plain levels (see
            # `_hot_levels`), nearly every market frame, decoded without `_market`'s helpers.
            # Anything else goes through `_market`, which checks each field in turn and names
            # what it refuses (the hot path only takes frames it would accept unchanged).
            if type(topic) is str and topic.startswith("depth.") and msg.get("type") == "delta":
                data = msg.get("data")
                if type(data) is dict and type(ts := data.get("timestamp")) is int:
                    # a delta names one level on one side: the other is [] (or absent)
                    bid, ask = data.get("bid"), data.get("ask")
                    bids = _EMPTY if bid is None or bid == [] else self._hot_levels(bid)
                    asks = _EMPTY if ask is None or ask == [] else self._hot_levels(ask)
                    if bids is not None and asks is not None:
                        self._depth_delta(topic[6:], bids, asks, ts, recv_ns)  # after "depth."
                        return
            self._market(msg, topic, recv_ns)
            return
        kind = msg.get("type")
        if kind is not None and "data" in msg:
            self._account(kind, msg["data"])
            return
        if "event" in msg:
            self.on_control(msg)
            return
        raise FrameError("neither topic, account type nor event")

    # --- market data ---------------------------------------------------------------------------

    def _hot_levels(self, raw: Any) -> tuple[Level, ...] | None:
        """`_levels` of plain input, or None for the careful path to look at: [price, quantity]
        string pairs, the price positive and below 1e30 (the cache's test), the quantity a
        number of magnitude below 1e30 (NaN raises on comparison, Infinity fails the bound)."""
        if type(raw) is not list:
            return None
        out = []
        prices = self.prices
        try:
            for entry in raw:
                if type(entry) is not list or len(entry) != 2:
                    return None
                price, qty = entry
                if type(price) is not str or type(qty) is not str:
                    return None
                size = _D(qty)
                # [DOC] "quantities of 0 or negative indicate removals": normalized to 0
                if size > _ZERO:
                    if size >= _HUGE:
                        return None
                    out.append((prices[price], size))
                elif size > -_HUGE:
                    out.append((prices[price], _ZERO))
                else:
                    return None
        except ArithmeticError:  # InvalidOperation: not a number, or a price out of range
            return None
        return tuple(out)

    def _depth_delta(
        self, symbol: str, bids: tuple[Level, ...], asks: tuple[Level, ...], ts: int, recv_ns: int
    ) -> None:
        if self.depth.get(symbol) == "acked":
            # no sequence numbers: a delta after the ack where the snapshot was due means the
            # snapshot went missing; ask for a fresh one (the core buffers this delta meanwhile
            # and replays it only if newer than the snapshot)
            self.gaps += 1
            self.depth[symbol] = "requested"
            self.request_resync(symbol)
        self.emit(BookDelta(VENUE, symbol, bids, asks, ts, recv_ns, self.epoch))

    def _market(self, msg: dict[str, Any], topic: Any, recv_ns: int) -> None:
        if type(topic) is not str or "." not in topic:
            raise FrameError(f"topic: unexpected {topic!r}")
        channel, symbol = topic.split(".", 1)
        data = msg.get("data")
        if type(data) is not dict:
            raise FrameError("data is not an object")
        # [INF] the topic names the subscription; a different `data.symbol` (one doc example
        # has one) is ignored so a frame is never applied to another book
        ts = ns(data["timestamp"], "timestamp") if "timestamp" in data else None
        if ts is None:
            ts = ns(msg.get("createdTime"), "createdTime")
        kind = msg.get("type")
        if channel == "depth":
            bids, asks = _levels(data.get("bid"), "bid"), _levels(data.get("ask"), "ask")
            if kind == "snapshot":
                self.depth[symbol] = "live"
                self.emit(BookSnapshot(VENUE, symbol, bids, asks, ts, recv_ns, self.epoch))
            elif kind == "delta":
                self._depth_delta(symbol, bids, asks, ts, recv_ns)
            else:
                raise FrameError(f"depth: unknown type {kind!r}")
        elif channel == "level1":
            bid, ask = _pair(data.get("bid"), "bid"), _pair(data.get("ask"), "ask")
            self.emit(TopOfBook(VENUE, symbol, bid, ask, ts, recv_ns, self.epoch))
        elif channel == "trade":
            self.emit(self._trade(symbol, data, ts, recv_ns))
        elif channel == "ticker":
            self.emit(
                Ticker(
                    VENUE,
                    symbol,
                    opt_dec(data, "lastPrice"),
                    opt_dec(data, "markPrice"),
                    opt_dec(data, "indexPrice"),
                    opt_dec(data, "fundingRate"),
                    opt_dec(data, "openInterest", "open_interest"),
                    ts,
                    recv_ns,
                    self.epoch,
                )
            )
        else:
            raise FrameError(f"unknown channel {channel!r}")

    def _trade(self, symbol: str, data: dict[str, Any], ts: int, recv_ns: int) -> PublicTrade:
        side = data.get("takerSide")
        if side not in ("buy", "sell"):
            raise FrameError(f"takerSide: unexpected {side!r}")
        volume = dec(data.get("volume"), "volume")
        if volume <= 0:
            raise FrameError("volume must be positive")
        # one aggregate per taker event at its volume-weighted price; Roxom gives no trade id,
        # so it is identified by symbol and its nanosecond timestamp ([INF] unique per symbol)
        return PublicTrade(
            VENUE,
            symbol,
            dec(data.get("vwap"), "vwap"),
            volume,
            Side.BUY if side == "buy" else Side.SELL,
            f"{symbol}@{ts}",
            ts,
            recv_ns,
            self.epoch,
        )

    # --- account ---------------------------------------------------------------------------------

    def _account(self, kind: Any, data: Any) -> None:
        if kind == "order":
            report = self.tracker.event(data)
            if report is not None:
                self.emit(report)
        elif kind == "balance":
            balance, update = balance_events(data)
            self.emit(balance)
            self.emit(update)
        elif kind == "position":
            for item in data if type(data) is list else [data]:
                self.emit(position_event(item))
        elif kind == "account":
            # [INF] account-level notices carry nothing the core tracks
            return
        else:
            raise FrameError(f"unknown account event type {kind!r}")


def _btc(data: dict[str, Any], name: str, unit: str) -> Decimal:
    value = dec(data.get(name), name)
    # [INF] `unit: "sats"` amounts are converted so the core always sees BTC
    return value / SATS_PER_BTC if unit == "sats" else value


def balance_events(data: Any) -> tuple[Balance, RoxomBalanceUpdate]:
    if type(data) is not dict:
        raise FrameError("balance data is not an object")
    unit = data.get("unit") or "btc"
    if unit not in ("btc", "sats"):
        raise FrameError(f"balance unit: unexpected {unit!r}")
    after = _btc(data, "balanceAfter", unit)
    before = _btc(data, "balanceBefore", unit)
    amount = _btc(data, "amount", unit) if data.get("amount") is not None else after - before
    ts = ns(data.get("timestamp"), "timestamp")
    update_type = data.get("updateType")
    # [INF] the wallet balance is free; margin in use is not reported on this channel
    return (
        Balance(VENUE, QUOTE, after, _ZERO, ts),
        RoxomBalanceUpdate(VENUE, QUOTE, before, after, amount, str(update_type or ""), ts),
    )


def position_event(item: Any) -> Position:
    if type(item) is not dict:
        raise FrameError("position is not an object")
    symbol = item.get("symbol")
    if type(symbol) is not str or not symbol:
        raise FrameError("position without symbol")
    side = item.get("side")
    size = dec(item.get("size") or "0", "size")
    if side == "short":
        size = -abs(size)
    elif side == "long":
        size = abs(size)
    elif size != 0:
        raise FrameError(f"position side: unexpected {side!r}")
    if item.get("status") not in (None, "normal"):
        size = _ZERO  # [INF] any status but "normal" (closed, liquidated) holds nothing
    ts = item.get("updatedAt")
    return Position(
        VENUE,
        symbol,
        size,
        opt_dec(item, "avgEntry") or _ZERO,
        opt_dec(item, "realizedPnl") or _ZERO,
        opt_dec(item, "unrealizedPnl"),
        ns(ts, "updatedAt") if ts is not None else 0,
        leverage=opt_dec(item, "leverage"),
        liquidation_price=opt_dec(item, "liquidationPrice"),
    )
