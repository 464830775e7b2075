"""Open Trade wire → normalized events (reference: shared/venues/opentrade.md).

Every frame is one JSON envelope `{"command", "event", "channel", "data": [...]}`. Money comes as
JSON numbers (`2.7886285699999998`, `100.0`), sometimes as strings (`"price":"0.215"`): frames are
parsed with `loads_decimal`, so every number is an exact Decimal and never a binary float.

The public book is a full replacement every 20 ms whether it changed or not. Each *changed* book
becomes one `BookSnapshot` (the core book replaces itself); an unchanged one emits nothing, so
strategies are not flooded with identical books. Levels are sorted here: the documented example
is not sorted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import attrs

from framework.errors import FrameError
from framework.events import (
    Balance,
    BookDelta,
    BookSnapshot,
    ExecutionReport,
    Level,
    OrderStatus,
    PublicTrade,
    Side,
)
from framework.transport.wire import dec, iso_to_ns, loads_decimal

VENUE = "opentrade"
_ZERO = Decimal(0)
_MS = 1_000_000

# Order states seen at the venue → the core's. NEW (received, not yet working) carries no status
# change: the order is already SUBMITTED here, and may still be REJECTED after it; "COMLETED" is
# the source's own misspelling of a finished order.
ORDER_STATUS: dict[str, OrderStatus | None] = {
    "NEW": None,
    "ACTIVE": OrderStatus.ACCEPTED,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "COMPLETED": OrderStatus.FILLED,
    "COMLETED": OrderStatus.FILLED,
    "CANCELLED": OrderStatus.CANCELLED,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
}


# --- venue-specific events (strategies subscribe with `Strategy.on`) ----------------------------


@attrs.frozen(slots=True)
class OrderRequestUpdate:
    """An `OrderUpdate` item: the venue's answer to an order *request* (e.g. a cancel), which may
    carry no order id at all (a cancel of every order of a pair)."""

    venue: str
    symbol: str
    client_order_id: str | None
    venue_order_id: str | None
    request_status: str
    side: Side | None
    request_type: str | None
    transaction_id: str | None
    key: str | None
    message: str
    recv_ns: int


@attrs.frozen(slots=True)
class TradePosition:
    """A `TradePosition` item (channel TRADE_POSITIONS; FlexFills SDK)."""

    venue: str
    symbol: str
    side: Side
    volume: Decimal
    open_price: Decimal | None
    entry_price: Decimal | None
    stop_loss: Decimal | None
    take_profit: Decimal | None
    date: str | None
    recv_ns: int


@attrs.frozen(slots=True)
class CatalogueEntry:
    """One `Currency` (ASSET_LIST) or `Instrument` (INSTRUMENT_LIST) item."""

    venue: str
    kind: str  # "Currency" | "Instrument"
    code: str
    quote: str | None
    name: str | None
    # [INF] the simulator adds tickSize / lotSize to instruments; absent at the real venue
    tick: Decimal | None = None
    lot: Decimal | None = None


# --- field helpers --------------------------------------------------------------------------------


def loads(frame: str | bytes) -> dict[str, Any]:
    if type(frame) is not str:
        # a binary frame must be UTF-8 JSON text too; anything else is a bad frame, not a crash
        try:
            frame = bytes(frame).decode()
        except UnicodeDecodeError as exc:
            raise FrameError(f"binary frame is not UTF-8: {exc}") from None
    msg = loads_decimal(frame)
    if type(msg) is not dict:
        raise FrameError("frame is not a JSON object")
    return msg


def error_text(msg: dict[str, Any]) -> str:
    """What an ERROR frame says ([INF] its fields are undocumented), cut to 300 characters."""
    text = msg.get("message") or msg.get("error") or msg.get("reason") or "error"
    return str(text)[:300]


def _str(item: dict[str, Any], field: str) -> str:
    value = item.get(field)
    if type(value) is not str or not value:
        raise FrameError(f"{field}: expected a non-empty string, got {value!r}"[:120])
    return value


def _id(value: Any) -> str | None:
    """Ids come as strings or JSON numbers (`clientId` 100141, `transactionId`); null = none."""
    if value is None or value == "":
        return None
    if type(value) is str:
        return value
    if type(value) is int:
        return str(value)
    raise FrameError(f"id: unexpected {value!r}"[:80])


def _opt_dec(item: dict[str, Any], field: str) -> Decimal | None:
    value = item.get(field)
    return None if value is None else dec(value, field)


def _side(value: Any, field: str) -> Side:
    if value == "BUY":
        return Side.BUY
    if value == "SELL":
        return Side.SELL
    raise FrameError(f"{field}: unexpected {value!r}"[:80])


def _ms_to_ns(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if type(value) is not int or value < 0:
        raise FrameError(f"{field}: expected epoch milliseconds, got {value!r}"[:80])
    return value * _MS


def _levels(raw: Any, field: str, descending: bool) -> tuple[Level, ...]:
    """`[[price, size], ...]` → levels best first; equal prices (consolidated book) summed."""
    if type(raw) is not list:
        raise FrameError(f"{field}: expected a list of [price, size]")
    sizes: dict[Decimal, Decimal] = {}
    for entry in raw:
        if type(entry) is not list or len(entry) < 2:
            raise FrameError(f"{field}: level is not [price, size]")
        price, size = entry[0], entry[1]
        # a Decimal here came from `loads_decimal`, i.e. from JSON number text: always finite
        if type(price) is not Decimal:
            price = dec(price, f"{field}.price")
        if type(size) is not Decimal:
            size = dec(size, f"{field}.size")
        if price <= _ZERO or size < _ZERO:
            raise FrameError(f"{field}: zero or negative price, or negative size")
        if size:
            if price in sizes:
                sizes[price] += size
            else:
                sizes[price] = size
    # the documented example is not sorted: never trust the order
    return tuple(sorted(sizes.items(), reverse=descending))


def _changes(old: tuple[Level, ...], new: tuple[Level, ...]) -> tuple[Level, ...]:
    """The levels that turn `old` into `new`: changed or added sizes, and size 0 for a level
    that left (also one that only fell out of the venue's top N: the book we hold is its view)."""
    before = dict(old)
    moved = [level for level in new if before.pop(level[0], None) != level[1]]
    moved.extend((price, _ZERO) for price in before)
    return tuple(moved)


# --- items -> events -----------------------------------------------------------------------------


def order_report(item: dict[str, Any]) -> ExecutionReport:
    """An `Order` item (TRADE_PRIVATE snapshot, update or GET) as an execution report.

    Fills are not reported separately: the cumulative `filledAmount` [INF: the simulator's field;
    absent in the published examples] becomes `cum_qty` and the core derives and de-duplicates
    the fill. Without it, a FILLED order counts as filled in full.
    """
    coid = _id(item.get("clientOrderId")) or _id(item.get("orderId"))
    if coid is None:
        raise FrameError("Order without clientOrderId/orderId")
    raw_status = item.get("orderStatus")
    if type(raw_status) is not str or raw_status not in ORDER_STATUS:
        raise FrameError(f"orderStatus: unexpected {raw_status!r}"[:80])
    status = ORDER_STATUS[raw_status]
    venue_id = _id(item.get("exchangeOrderId")) or _id(item.get("exchOrderId"))
    amount = _opt_dec(item, "amount")
    cum = _opt_dec(item, "filledAmount")
    if cum is None and status is OrderStatus.FILLED:
        cum = amount
    avg = _opt_dec(item, "filledPrice")
    if cum is None or cum <= 0 or (avg is not None and avg <= 0):
        avg = None
    price = _opt_dec(item, "price")
    if item.get("orderType") == "MARKET" or (price is not None and price <= 0):
        price = None
    if amount is not None and amount <= 0:
        raise FrameError("amount: zero or negative")
    ts = item.get("orderDateTime")
    message = item.get("message")
    symbol = item.get("globalInstrumentCd")
    return ExecutionReport(
        VENUE,
        coid,
        status=status,
        venue_order_id=venue_id,
        # The core's derived id ("cum:<qty>") is unique per order only, and the journal keys
        # fills by venue: two orders filled to the same amount would collide. Name it here.
        fill_id=None if cum is None or cum <= 0 else f"{coid}:cum:{cum.normalize()}",
        cum_qty=cum,
        avg_price=avg,
        reason=message if type(message) is str and message else None,
        venue_ts=iso_to_ns(ts, "orderDateTime") if ts is not None else None,
        price=price,
        quantity=amount,
        # which instrument's TRADES_HISTORY holds its fills
        symbol=symbol if type(symbol) is str and symbol else None,
    )


def balance(item: dict[str, Any], ts_ns: int) -> Balance:
    asset = _str(item, "currencyCode")
    total, free, locked = (_opt_dec(item, f) for f in ("balance", "available", "locked"))
    if free is None and total is not None and locked is not None:
        free = total - locked
    if locked is None and total is not None and free is not None:
        locked = total - free
    if free is None or locked is None:
        raise FrameError(f"Balance {asset}: needs two of balance/available/locked")
    return Balance(VENUE, asset, free, locked, ts_ns)


def order_request_update(item: dict[str, Any], recv_ns: int) -> OrderRequestUpdate:
    side = item.get("tradeSide")
    message = item.get("message")
    return OrderRequestUpdate(
        VENUE,
        _str(item, "instrumentCd"),
        _id(item.get("clientOrderId")),
        _id(item.get("exchangeOrderId")),
        _str(item, "orderRequestStatus"),
        None if side is None else _side(side, "tradeSide"),
        item.get("requestType") if type(item.get("requestType")) is str else None,
        _id(item.get("transactionId")),
        item.get("key") if type(item.get("key")) is str else None,
        message if type(message) is str else "",
        recv_ns,
    )


def trade_position(item: dict[str, Any], recv_ns: int) -> TradePosition:
    date = item.get("date")
    return TradePosition(
        VENUE,
        _str(item, "globalInstrumentCd"),
        _side(item.get("direction"), "direction"),
        dec(item.get("posVolume"), "posVolume"),
        _opt_dec(item, "openPrice"),
        _opt_dec(item, "entryPrice"),
        _opt_dec(item, "currentSl"),
        _opt_dec(item, "currentTp"),
        date if type(date) is str else None,
        recv_ns,
    )


def catalogue_entry(item: dict[str, Any]) -> CatalogueEntry:
    kind = item.get("class")
    name = item.get("name")
    quote = item.get("quoteCurrencyCode")
    return CatalogueEntry(
        VENUE,
        kind if type(kind) is str else "",
        _str(item, "code"),
        quote if type(quote) is str else None,
        name if type(name) is str else None,
        _opt_dec(item, "tickSize"),
        _opt_dec(item, "lotSize"),
    )


# --- the envelope decoder ------------------------------------------------------------------------

Reply = Callable[[dict[str, Any]], bool]


class Decoder:
    """Decodes every Open Trade envelope. Control frames (ACK, ERROR, replies to our requests)
    go to `on_control`, which returns True when it consumed the frame (a waiting request)."""

    def __init__(
        self,
        emit: Callable[[Any], None],
        *,
        markets: set[str] | None = None,
        on_control: Reply = lambda msg: False,
        resend_unchanged_after_ns: int = 5_000_000_000,
    ) -> None:
        self.emit = emit
        self.markets = markets  # None: every symbol
        self.on_control = on_control
        self.epoch = 0
        self.pongs = 0
        self.notices = 0  # confirmations and other frames with an event and nothing else
        self.last_pong_ns: int | None = None
        self.skipped_symbols = 0
        self.unchanged_books = 0
        self.catalogue: dict[str, CatalogueEntry] = {}
        # per symbol: the last emitted book (bids, asks) and the parsed lists of the frame it
        # was last seen in; and when a book for it last arrived
        self._books: dict[str, tuple[tuple[tuple[Level, ...], tuple[Level, ...]], list, list]] = {}
        self._book_seen_ns: dict[str, int] = {}
        self._books_epoch = 0
        # An unchanged book is emitted again after this much silence: the core marks a quiet
        # feed's books STALE, and only an applied book makes them SYNCED again.
        self.resend_unchanged_after_ns = resend_unchanged_after_ns
        self._channels: dict[str, Callable[[list, int], None]] = {
            "ORDER_BOOK_PUBLIC": self._order_books,
            "TRADE_PUBLIC": self._public_trades,
            "BALANCE": self._balances,
            "TRADE_PRIVATE": self._orders,
            "TRADE_POSITIONS": self._positions,
            "ASSET_LIST": self._catalogue,
            "INSTRUMENT_LIST": self._catalogue,
        }

    def forget_book(self, symbol: str) -> None:
        """The next book for `symbol` is emitted even if unchanged (resync)."""
        self._books.pop(symbol, None)

    def decode(self, frame: str | bytes, recv_ns: int) -> None:
        msg = loads(frame)
        event = msg.get("event")
        if event == "PONG":
            self.pongs += 1
            self.last_pong_ns = recv_ns
            return
        if event in ("ACK", "ERROR"):
            self.on_control(msg)
            return
        if self.on_control(msg):
            return  # the reply a request of ours is waiting for
        if event is not None and "command" not in msg and "data" not in msg:
            # [DOC] "upon connection, you'll receive a confirmation message", format not shown
            # [INF: an `event`, no `command`, no `data`]: a notice, not news
            self.notices += 1
            return
        # one documented GET reply has no "event" key at all (samples line 22)
        if event not in ("SNAPSHOT", "UPDATE", "GET", None):
            raise FrameError(f"unknown event {event!r}"[:80])
        data = msg.get("data")
        if type(data) is not list:
            if event is None:
                raise FrameError("frame without event or data")
            raise FrameError("data: expected a list")
        channel = msg.get("channel")
        handler = self._channels.get(channel) if type(channel) is str else None
        if handler is None:
            raise FrameError(f"unknown channel {channel!r}"[:80])
        handler(data, recv_ns)

    # --- channels ---------------------------------------------------------------------------

    def _items(self, data: list, cls: str) -> list[dict[str, Any]]:
        for item in data:
            if type(item) is not dict or item.get("class") != cls:
                raise FrameError(f"expected {cls} items")
        return data

    def _order_books(self, data: list, recv_ns: int) -> None:
        if self.epoch != self._books_epoch:
            # a new connection: the core unsynced the books, the first book must be emitted
            self._books.clear()
            self._books_epoch = self.epoch
        merged: dict[str, tuple[list, list, int | None]] = {}
        for item in self._items(data, "OrderBook"):
            symbol = _str(item, "symbol")
            if self.markets is not None and symbol not in self.markets:
                self.skipped_symbols += 1
                continue
            bids, asks = item.get("bids"), item.get("asks")
            if type(bids) is not list or type(asks) is not list:
                raise FrameError(f"{symbol}: bids/asks must be lists")
            ts = _ms_to_ns(item.get("eventTime"), "eventTime")
            # [INF] several items for one symbol in a frame are parts of one book: merged
            prior = merged.get(symbol)
            if prior is None:
                merged[symbol] = (list(bids), list(asks), ts)
            else:
                prior[0].extend(bids)
                prior[1].extend(asks)
                if ts is not None:
                    merged[symbol] = (prior[0], prior[1], max(ts, prior[2] or 0))
        for symbol, (raw_bids, raw_asks, ts) in merged.items():
            last = self._books.get(symbol)
            prior = None
            if last is None:
                bids, asks = _levels(raw_bids, "bids", True), _levels(raw_asks, "asks", False)
            else:
                # a side whose parsed list equals the last one's is that side again (the venue
                # resends whole books; most of the time one side, or neither, has moved)
                prior, last_bids, last_asks = last
                bids = prior[0] if raw_bids == last_bids else _levels(raw_bids, "bids", True)
                asks = prior[1] if raw_asks == last_asks else _levels(raw_asks, "asks", False)
            book = (bids, asks)
            self._books[symbol] = (book, raw_bids, raw_asks)
            seen = self._book_seen_ns.get(symbol)
            self._book_seen_ns[symbol] = recv_ns
            quiet = seen is not None and recv_ns - seen >= self.resend_unchanged_after_ns
            if prior == book and not quiet:
                self.unchanged_books += 1
                continue
            if prior is None or quiet:
                self.emit(BookSnapshot(VENUE, symbol, book[0], book[1], ts, recv_ns, self.epoch))
            else:
                # the book the core holds is `prior` exactly: send only what moved, rather than
                # have it clear and rebuild 2 x 20 levels every 20 ms
                self.emit(
                    BookDelta(
                        VENUE,
                        symbol,
                        _changes(prior[0], book[0]),
                        _changes(prior[1], book[1]),
                        ts,
                        recv_ns,
                        self.epoch,
                    )
                )

    def _public_trades(self, data: list, recv_ns: int) -> None:
        for item in self._items(data, "PublicTrade"):
            symbol = _str(item, "symbol")
            price, qty = dec(item.get("price"), "price"), dec(item.get("quantity"), "quantity")
            side = item.get("tradeSide")
            aggressor = None if side is None else _side(side, "tradeSide")
            ts = _ms_to_ns(item.get("eventTime"), "eventTime")
            if price <= 0 or qty <= 0:
                raise FrameError("PublicTrade: zero or negative price/quantity")
            if self.markets is not None and symbol not in self.markets:
                self.skipped_symbols += 1
                continue
            self.emit(
                PublicTrade(VENUE, symbol, price, qty, aggressor, None, ts, recv_ns, self.epoch)
            )

    def _balances(self, data: list, recv_ns: int) -> None:
        # validate the whole frame before emitting anything: all or nothing
        now = time.time_ns()  # balances carry no venue time
        balances = [balance(item, now) for item in self._items(data, "Balance")]
        for event in balances:
            self.emit(event)

    def _orders(self, data: list, recv_ns: int) -> None:
        events: list[Any] = []
        for item in data:
            kind = item.get("class") if type(item) is dict else None
            if kind == "Order":
                events.append(order_report(item))
            elif kind == "OrderUpdate":
                events.append(order_request_update(item, recv_ns))
            else:
                raise FrameError(f"TRADE_PRIVATE: unexpected item class {kind!r}"[:80])
        for event in events:
            self.emit(event)

    def _positions(self, data: list, recv_ns: int) -> None:
        positions = [trade_position(i, recv_ns) for i in self._items(data, "TradePosition")]
        for event in positions:
            self.emit(event)

    def _catalogue(self, data: list, recv_ns: int) -> None:
        for item in data:
            if type(item) is not dict:
                raise FrameError("catalogue item is not an object")
            entry = catalogue_entry(item)
            self.catalogue[entry.code] = entry
