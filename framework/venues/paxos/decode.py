"""Paxos wire → normalized events. Public WS frames and Smart Order Routing (SOR) envelopes.

Hot path: `/marketdata` UPDATE frames (and `/executiondata` trades): msgspec decodes the frame
straight into a typed struct (every field present and a string, or it does not decode), then
two `Decimal`s and one event. Whatever does not fit that shape, or holds a number out of range,
goes through the careful path (orjson, field by field), which names the problem: the fast path
only ever accepts frames the careful one would turn into the same event.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgspec
from orjson import JSONDecodeError
from orjson import loads as _loads

from framework.errors import FrameError
from framework.events import (
    BookDelta,
    BookSnapshot,
    Level,
    PublicTrade,
    Ticker,
    TopOfBook,
    positional_factory,
)
from framework.transport.wire import (
    DecimalCache,
    PriceCache,
    dec,
    iso_to_ns,
    loads_object,
    positive,
)

VENUE = "paxos"
_EMPTY: tuple[Level, ...] = ()
_D = Decimal
_ZERO = Decimal(0)
# no real price or size comes near this; it also keeps Infinity out of the fast path
_HUGE = Decimal("1e30")


# The hot frames' shapes, for msgspec: a frame decodes only if every field is there and is a
# string (extra fields are ignored, as the careful path ignores them). gc=False: strings only,
# no reference cycles possible, so the collector need not track them.
class _Update(msgspec.Struct, gc=False):
    type: str
    market: str
    side: str
    price: str
    amount: str


class _Execution(msgspec.Struct, gc=False):
    market: str
    price: str
    amount: str
    executed_at: str
    match_number: str


# the fast paths build their events without attrs' frozen __init__ (same objects, cheaper)
_book_delta = positional_factory(BookDelta)
_public_trade = positional_factory(PublicTrade)
_decode_update = msgspec.json.Decoder(_Update).decode
_decode_execution = msgspec.json.Decoder(_Execution).decode
# what a frame that is not of the shape raises (a ValidationError is one)
_NotTheShape = msgspec.DecodeError


def levels(raw: Any, field: str) -> tuple[Level, ...]:
    if raw is None:
        return _EMPTY
    if type(raw) is not list:
        raise FrameError(f"{field}: expected a list")
    out = []
    for entry in raw:
        if type(entry) is not dict:
            raise FrameError(f"{field}: level is not an object")
        price = dec(entry.get("price"), f"{field}.price")
        amount = dec(entry.get("amount"), f"{field}.amount")
        if price <= 0 or amount < 0:
            raise FrameError(f"{field}: negative or zero price / negative amount")
        out.append((price, amount))
    return tuple(out)


def is_final(value: Any) -> bool:
    # current docs: boolean true; older docs: the string "true"
    if value is True or value == "true":
        return True
    if value is False or value == "false":
        return False
    raise FrameError(f"final_snapshot: unexpected {value!r}")


class MatchNumbers:
    """Bounded memory of public execution ids, kept across reconnects (Paxos replays the last)."""

    def __init__(self, limit: int = 10_000) -> None:
        # a set to ask, a deque to forget the oldest: a third cheaper per trade than an
        # OrderedDict, and a seen id is never moved (so the two always hold the same ids)
        self._seen: set[str] = set()
        self._order: deque[str] = deque()
        self._limit = limit

    def first_time(self, match_number: str) -> bool:
        seen = self._seen
        if match_number in seen:
            return False
        seen.add(match_number)
        order = self._order
        order.append(match_number)
        if len(order) > self._limit:
            seen.discard(order.popleft())
        return True


class PublicDecoder:
    """Decodes `/marketdata`, `/executiondata` and `/marketdata/stablecoin` frames."""

    def __init__(self, emit: Callable[[Any], None], markets: set[str] | None) -> None:
        self.emit = emit
        self.markets = markets  # None: every market
        self.epoch = 0
        self.match_numbers = MatchNumbers()
        self.skipped_markets = 0
        self.prices = PriceCache()  # validated: positive, finite, below 1e30
        # executed_at text -> ns: trades come in bursts stamped the same millisecond
        # (a bad one raises FrameError there, and the careful path names the field)
        self.trade_times = DecimalCache(iso_to_ns, limit=1024)

    def marketdata(self, frame: str | bytes, recv_ns: int) -> None:
        try:
            u = _decode_update(frame)
        except _NotTheShape:
            self._marketdata(frame, recv_ns)  # a snapshot, an error, or a malformed frame
            return
        if u.type != "UPDATE":
            self._marketdata(frame, recv_ns)
            return
        market, markets = u.market, self.markets
        if markets is not None and market not in markets:
            self.skipped_markets += 1  # what the careful path does, before looking at numbers
            return
        delta = None
        try:
            amount = _D(u.amount)
            if _ZERO <= amount < _HUGE:
                side = u.side
                if side == "BUY":
                    delta = _book_delta(
                        VENUE, market, ((self.prices[u.price], amount),), _EMPTY, None, recv_ns,
                        self.epoch,
                    )  # fmt: skip
                elif side == "SELL":
                    delta = _book_delta(
                        VENUE, market, _EMPTY, ((self.prices[u.price], amount),), None, recv_ns,
                        self.epoch,
                    )  # fmt: skip
        except ArithmeticError:
            pass  # not a number, or out of range: the careful path names the problem
        # emitted outside the `try`: an error raised downstream is not this frame's fault
        # and must not send it through the careful path (and to the book) a second time
        if delta is not None:
            self.emit(delta)
        else:
            self._marketdata(frame, recv_ns)

    def _marketdata(self, frame: str | bytes, recv_ns: int) -> None:
        """The careful path: every frame the typed fast path did not turn into an event."""
        try:
            msg = _loads(frame)  # `loads_object`, inlined (it was the hot path before msgspec)
        except JSONDecodeError as exc:
            raise FrameError(f"malformed JSON: {exc}") from None
        if type(msg) is not dict:
            raise FrameError("frame is not a JSON object")
        if msg.get("type") == "UPDATE":
            # the hot path: no validation helpers unless something looks wrong, in which case
            # `_update` redoes the frame carefully to name the problem
            delta = None
            try:
                market, amount = msg["market"], msg["amount"]
                if type(amount) is str and (
                    market in self.markets if self.markets is not None else type(market) is str
                ):
                    level = (self.prices[msg["price"]], _D(amount))
                    if _ZERO <= level[1] < _HUGE:
                        side = msg["side"]
                        if side == "BUY":
                            delta = BookDelta(
                                VENUE, market, (level,), _EMPTY, None, recv_ns, self.epoch
                            )
                        elif side == "SELL":
                            delta = BookDelta(
                                VENUE, market, _EMPTY, (level,), None, recv_ns, self.epoch
                            )
            except (KeyError, TypeError, ArithmeticError):
                pass  # `_update` names the problem
            # emitted outside the `try`: an error raised downstream is not this frame's fault
            # and must not send it through `_update` (and to the book) a second time
            if delta is not None:
                self.emit(delta)
            else:
                self._update(msg, recv_ns)
            return
        market = msg.get("market")
        if type(market) is not str:
            if "error" in msg:
                raise FrameError(f"venue error: {msg['error']}")
            raise FrameError("missing market")
        if self.markets is not None and market not in self.markets:
            self.skipped_markets += 1
            return
        kind = msg.get("type")
        if kind == "SNAPSHOT":
            self.emit(
                BookSnapshot(
                    VENUE,
                    market,
                    levels(msg.get("bids"), "bids"),
                    levels(msg.get("asks"), "asks"),
                    None,
                    recv_ns,
                    self.epoch,
                    final=is_final(msg.get("final_snapshot")),
                )
            )
        else:
            raise FrameError(f"unknown type {kind!r}")

    def _update(self, msg: dict[str, Any], recv_ns: int) -> None:
        market = msg.get("market")
        if type(market) is not str:
            raise FrameError("missing market")
        if self.markets is not None and market not in self.markets:
            self.skipped_markets += 1
            return
        level = (dec(msg.get("price"), "price"), dec(msg.get("amount"), "amount"))
        if level[0] <= 0 or level[1] < 0:
            raise FrameError("negative or zero price / negative amount")
        if level[0] >= _HUGE or level[1] >= _HUGE:
            raise FrameError("price or amount out of range")
        side = msg.get("side")
        if side == "BUY":
            self.emit(BookDelta(VENUE, market, (level,), _EMPTY, None, recv_ns, self.epoch))
        elif side == "SELL":
            self.emit(BookDelta(VENUE, market, _EMPTY, (level,), None, recv_ns, self.epoch))
        else:
            raise FrameError(f"side: unexpected {side!r}")

    def executiondata(self, frame: str | bytes, recv_ns: int) -> None:
        try:
            t = _decode_execution(frame)
        except _NotTheShape:
            self._executiondata(frame, recv_ns)
            return
        trade = None
        match_number, market, markets = t.match_number, t.market, self.markets
        if match_number and (markets is None or market in markets):
            try:
                # here only a positive price and an amount in (0, 1e30); anything else goes to
                # the careful path, which refuses it with the reason
                amount = _D(t.amount)
                if _ZERO < amount < _HUGE:
                    trade = _public_trade(
                        VENUE,
                        market,
                        self.prices[t.price],
                        amount,
                        None,
                        match_number,
                        self.trade_times[t.executed_at],
                        recv_ns,
                        self.epoch,
                    )
            except (ArithmeticError, FrameError):
                pass  # the careful path names the problem
        if trade is None:
            self._executiondata(frame, recv_ns)
        elif self.match_numbers.first_time(match_number):
            self.emit(trade)

    def _executiondata(self, frame: str | bytes, recv_ns: int) -> None:
        """The careful path (see `executiondata`)."""
        msg = loads_object(frame)
        market = msg.get("market")
        if type(market) is not str:
            if "error" in msg:
                raise FrameError(f"venue error: {msg['error']}")
            raise FrameError("missing market")
        match_number = msg.get("match_number")
        if type(match_number) is not str or not match_number:
            raise FrameError("missing match_number")
        price = positive(msg.get("price"), "price")
        amount = positive(msg.get("amount"), "amount")
        ts = iso_to_ns(msg.get("executed_at"), "executed_at")
        if self.markets is not None and market not in self.markets:
            self.skipped_markets += 1
            return
        # the first frame after (re)connecting repeats the last execution
        if not self.match_numbers.first_time(match_number):
            return
        self.emit(
            PublicTrade(VENUE, market, price, amount, None, match_number, ts, recv_ns, self.epoch)
        )

    def stablecoin(self, frame: str | bytes, recv_ns: int) -> None:
        msg = loads_object(frame)
        market = msg.get("market")
        if type(market) is not str:
            if "error" in msg:
                raise FrameError(f"venue error: {msg['error']}")
            raise FrameError("missing market")
        price = dec(msg.get("price"), "price")
        ts = iso_to_ns(msg.get("timestamp"), "timestamp")
        self.emit(Ticker(VENUE, market, price, None, None, None, None, ts, recv_ns, self.epoch))


class SorDecoder:
    """Decodes Smart Order Routing WS envelopes `{"channel": ..., "payload": ...}` and replies."""

    def __init__(self, emit: Callable[[Any], None], on_reply: Callable[[dict], None]) -> None:
        self.emit = emit
        self.on_reply = on_reply
        self.epoch = 0
        self.heartbeats = 0
        self.last_heartbeat_ns: int | None = None

    def decode(self, frame: str | bytes, recv_ns: int) -> None:
        msg = loads_object(frame)
        channel = msg.get("channel")
        if channel is None:
            if msg.get("type") in ("subscribe", "unsubscribe", "subscription_list", "error"):
                self.on_reply(msg)
                return
            raise FrameError(f"unknown message type {msg.get('type')!r}")
        payload = msg.get("payload")
        if type(payload) is not dict:
            raise FrameError("payload is not an object")
        if channel == "market_data":
            self._market_data(payload, recv_ns)
        elif channel == "heartbeat":
            self.heartbeats += 1
            self.last_heartbeat_ns = iso_to_ns(payload.get("timestamp"), "timestamp")
        elif channel == "market_data.top_of_book":
            bids = levels(payload.get("bids"), "bids")
            asks = levels(payload.get("asks"), "asks")
            self.emit(
                TopOfBook(
                    VENUE,
                    _market(payload),
                    bids[0] if bids else None,
                    asks[0] if asks else None,
                    iso_to_ns(payload.get("timestamp"), "timestamp"),
                    recv_ns,
                    self.epoch,
                )
            )
        elif channel == "execution_data":
            # SOR executions have no match_number, so they cannot be de-duplicated
            self.emit(
                PublicTrade(
                    VENUE,
                    _market(payload),
                    positive(payload.get("price"), "price"),
                    positive(payload.get("amount"), "amount"),
                    None,
                    None,
                    iso_to_ns(payload.get("executed_at"), "executed_at"),
                    recv_ns,
                    self.epoch,
                )
            )
        else:
            raise FrameError(f"unknown channel {channel!r}")

    def _market_data(self, payload: dict, recv_ns: int) -> None:
        kind = payload.get("type")
        market = _market(payload)
        ts = iso_to_ns(payload.get("time"), "time")
        bids = levels(payload.get("bids"), "bids")
        asks = levels(payload.get("asks"), "asks")
        if kind == "UPDATE":
            self.emit(BookDelta(VENUE, market, bids, asks, ts, recv_ns, self.epoch))
        elif kind == "SNAPSHOT":
            self.emit(BookSnapshot(VENUE, market, bids, asks, ts, recv_ns, self.epoch))
        else:
            raise FrameError(f"market_data: unknown type {kind!r}")


def _market(payload: dict) -> str:
    market = payload.get("market")
    if type(market) is not str or not market:
        raise FrameError("missing market")
    return market
