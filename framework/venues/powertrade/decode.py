"""Power.Trade wire → normalized events (reference: shared/venues/powertrade.md).

Every frame is an object with exactly one key, the message type; every scalar is a string.
Firm books (`market_id "0"`) are order-by-order and go through
`framework.data.l3book.L3Book` into L2
events; RFQ books (`market_id "none"`, `"255"` in real 2022 frames) become `RfqEvent`s; our own
order lifecycle becomes `ExecutionReport`s; replies carrying a `user_tag` go to `on_reply`.

Hot path: the L3 order messages of a firm book (see the note above `Decoder._order_added`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson
import structlog

from framework.data.l3book import L3Book, L3Inconsistent
from framework.errors import FrameError
from framework.events import (
    Balance,
    BookDelta,
    BookInvalidated,
    ExecutionReport,
    Liquidity,
    OrderStatus,
    Position,
    PublicTrade,
    Side,
)
from framework.transport.wire import PositiveCache, dec
from framework.venues.powertrade.events import (
    OwnRfqUpdate,
    Rfq,
    RfqAdded,
    RfqLeg,
    RfqRemoved,
    RfqSnapshot,
)

log = structlog.get_logger("botrun.powertrade")

VENUE = "powertrade"
FIRM = "0"
# [DOC] RFQ books are "none"; real 2022 frames say "255": both mean the RFQ market
RFQ_MARKETS = frozenset({"none", "255"})
_ZERO = Decimal(0)
# module constants: reading an Enum member off its class costs ~90 ns on Python 3.11
_BUY, _SELL = Side.BUY, Side.SELL
_ID_FIELDS = ("order_id", "orderid", "ordered")  # the spellings seen across sources
_LIQUIDITY = {"added": Liquidity.MAKER, "taken": Liquidity.TAKER}
# cancel_order replies that refuse the cancel instead of reporting one
FULLY_EXECUTED = "order has been fully executed and cannot be cancelled"
NOT_FOUND = "exchange order_id or client_order_id not found in order cache"
# [CODE Hummingbot IGNORABLE_ERROR_TEXTS] a repeated subscribe for a subscribed book
ALREADY_SUBSCRIBED = "add subscription failed, already subscribed"
# cancel_order reasons that end an order without our asking, as EXPIRED: the end of a GTD/DAY
# order [INF "expired"] and of its recv_window [INF "recv_window_expired", the simulator's]
EXPIRED_REASONS = frozenset({"expired", "recv_window_expired"})
# messages that change a firm book: one the decoder cannot apply un-syncs that book
BOOK_KINDS = frozenset(
    {"snapshot", "order_added", "order_deleted", "order_updated", "order_executed", "deltas"}
)
_RECENT_EXECUTED = 4096  # order_executed frames remembered to catch a repeat (see `decode`)
_EXCERPT = 200

# on_reply(user_tag, message type, body) -> True if a request was waiting for it
ReplyHook = Callable[[str, str, dict[str, Any]], bool]
# on_end(client_order_id, venue's cumulative filled quantity or None for "all of it"): an order
# ended (cancel_order, or an execution that filled it), called just before its report is emitted
EndHook = Callable[[str, Decimal | None], None]


# --- field helpers -------------------------------------------------------------------------------


def loads(frame: str | bytes) -> tuple[str, dict[str, Any]]:
    try:
        msg = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise FrameError(f"malformed JSON: {exc}") from None
    if type(msg) is not dict or len(msg) != 1:
        raise FrameError("a message is an object with exactly one key")
    ((kind, body),) = msg.items()
    if type(body) is not dict:
        raise FrameError(f"{kind}: body is not an object")
    return kind, body


def text(body: dict[str, Any], field: str) -> str:
    value = body.get(field)
    if type(value) is not str or not value:
        raise FrameError(f"{field}: expected a non-empty string, got {value!r}")
    return value


def us_to_ns(value: Any, field: str) -> int:
    """Microseconds since the epoch as a digit string -> ns."""
    if type(value) is not str or not value.isascii() or not value.isdigit():
        raise FrameError(f"{field}: expected a microsecond timestamp string, got {value!r}")
    return int(value) * 1000


def opt_ts(body: dict[str, Any], field: str) -> int | None:
    value = body.get(field)
    return None if value is None else us_to_ns(value, field)


def ts_any(body: dict[str, Any], field: str) -> int | None:
    """A timestamp in µs (16 digits) or ns (19 digits: the REST order-details executions
    [DOC], Hummingbot's heartbeats [CODE]) -> ns; [INF] told apart by the digit count."""
    value = body.get(field)
    if value is None:
        return None
    if type(value) is str and value.isascii() and value.isdigit() and len(value) >= 19:
        return int(value)
    return us_to_ns(value, field)


def side_of(value: Any, field: str = "side") -> Side:
    if value == "buy":
        return Side.BUY
    if value == "sell":
        return Side.SELL
    raise FrameError(f"{field}: expected buy or sell, got {value!r}")


def row_id(row: dict[str, Any], side: Side | None = None) -> str:
    """The order id of a book row; a snapshot row without one (a price-level snapshot of
    snap_with_deltas [INF]) gets a synthetic id per side and price when `side` is given."""
    for name in _ID_FIELDS:
        value = row.get(name)
        if value is not None:
            if type(value) is not str or not value:
                raise FrameError(f"{name}: expected a non-empty string")
            return value
    if side is not None:
        return level_id(side, row.get("price"))
    raise FrameError("order row without order_id")


def level_id(side: Side, price: Any) -> str:
    """The synthetic order id that stands for a whole price level (`deltas`, level rows)."""
    return f"L{'b' if side is Side.BUY else 's'}:{price}"


def legs_of(symbol: str, entity: str) -> tuple[RfqLeg, ...]:
    """`"A@1/B@-1"` (and `"117@1/336@-1"`) -> legs; a plain symbol is one leg of ratio 1."""
    if "@" not in symbol:
        return (RfqLeg(symbol, 1, entity or None),)
    entities = entity.split("/") if "@" in entity else []
    legs = []
    for i, part in enumerate(symbol.split("/")):
        name, _, ratio = part.rpartition("@")
        try:
            r = int(ratio)
        except ValueError:
            raise FrameError(f"symbol: bad leg {part!r}") from None
        if not name or r == 0:
            raise FrameError(f"symbol: bad leg {part!r}")
        ent = entities[i].rpartition("@")[0] if i < len(entities) else None
        legs.append(RfqLeg(name, r, ent or None))
    return tuple(legs)


def rows(body: dict[str, Any], field: str) -> list[dict[str, Any]]:
    value = body.get(field, [])
    if type(value) is not list or any(type(r) is not dict for r in value):
        raise FrameError(f"{field}: expected a list of objects")
    return value


# --- the decoder ---------------------------------------------------------------------------------


class Decoder:
    def __init__(
        self,
        emit: Callable[[Any], None],
        on_reply: ReplyHook,
        markets: set[str] | None = None,
        *,
        own_rfqs: set[str] | None = None,
        on_fill: Callable[[], None] = lambda: None,
        on_end: EndHook = lambda client_order_id, filled: None,
    ) -> None:
        self.emit = emit
        self.on_reply = on_reply
        self.markets = markets  # None: every firm book that arrives
        self.own_rfqs = own_rfqs if own_rfqs is not None else set()
        self.on_fill = on_fill
        self.on_end = on_end
        self.epoch = 0
        self.books: dict[str, L3Book] = {}
        self.rfq_books: dict[str, dict[str, Rfq]] = {}
        self.counts: Counter[str] = Counter()
        self.last_heartbeat_ns: int | None = None
        self.heartbeats_due = 0  # server heartbeats the stream has yet to answer
        # order_executed frames decoded lately (insertion-ordered set), see `decode`
        self._executed_seen: dict[str | bytes, None] = {}
        self._last_frame: str | bytes | None = None  # the last frame decoded without error
        self._kind = ""  # type of the message being decoded (replies name it to their waiter)
        # hot path: validated order prices and sizes by their text
        self.prices = PositiveCache()
        self.sizes = PositiveCache()
        self._handlers: dict[str, Callable[[dict[str, Any], int], None]] = {
            "heartbeat": self._heartbeat,
            "command_response": self._command_response,
            "snapshot": self._snapshot,
            "order_added": self._order_added,
            "order_deleted": self._order_deleted,
            "order_updated": self._order_updated,
            "order_executed": self._order_executed,
            "deltas": self._deltas,
            "trade": self._trade,
            "order_accepted": self._order_accepted,
            "order_rejected": self._order_rejected,
            "execution": self._execution,
            "cancel_order": self._cancel_order,
            "balances_response": self._balances,
            "balances": self._balances,
            "positions_response": self._positions,
            # replies that only answer a request
            "entities_and_rules_response": self._reply,
            "new_order": self._reply,
            "cancel_all_orders": self._reply,
            "refresh_interest": self._reply,
            "trade_history_response": self._reply,
            "positions": self._positions,
        }

    def reset(self) -> None:
        """A new connection: every book is rebuilt from its next snapshot."""
        for book in self.books.values():
            book.reset()
        self.rfq_books.clear()
        self._last_frame = None
        self._executed_seen.clear()
        self.heartbeats_due = 0

    def book(self, symbol: str) -> L3Book:
        book = self.books.get(symbol)
        if book is None:
            book = self.books[symbol] = L3Book(VENUE, symbol)
        return book

    def decode(self, frame: str | bytes, recv_ns: int) -> None:
        if frame == self._last_frame:
            # [INF] a frame identical to the one before it, server and event timestamps (µs)
            # included, is one message delivered twice, not a second event. It matters for the
            # L3 feed: `order_executed` carries the quantity executed, so a repeated partial
            # execution would shrink the order twice, and nothing later need reveal it.
            self.counts["repeated_frames"] += 1
            return
        head = frame[:20]
        executed = ("order_executed" in head) if type(head) is str else (b"order_executed" in head)
        if executed and frame in self._executed_seen:
            # the same, further back: an `order_executed` is never legitimately repeated byte for
            # byte (both µs timestamps included) [INF]
            self.counts["repeated_frames"] += 1
            return
        self._last_frame = None
        kind, body = loads(frame)
        handler = self._handlers.get(kind)
        if handler is None:
            if self._unsync_on(kind, body, f"unknown message type {kind!r}", frame):
                return
            raise FrameError(f"unknown message type {kind!r}")
        self.counts[kind] += 1
        self._kind = kind
        if kind in BOOK_KINDS:
            try:
                handler(body, recv_ns)
            except FrameError as exc:
                # a book message we cannot apply: that book is no longer what the venue has
                if not self._unsync_on(kind, body, str(exc), frame):
                    raise
                return
        else:
            handler(body, recv_ns)
        self._last_frame = frame
        if executed:
            seen = self._executed_seen
            seen[frame] = None
            if len(seen) > _RECENT_EXECUTED:
                del seen[next(iter(seen))]

    def _unsync_on(self, kind: str, body: dict[str, Any], reason: str, frame: str | bytes) -> bool:
        """A message this decoder cannot apply, naming a firm book we keep: un-sync that book
        (never stay SYNCED having skipped it). False when it names no such book."""
        symbol = body.get("symbol")
        market = body.get("market_id", FIRM)
        if type(symbol) is not str or market != FIRM:
            return False
        if self.markets is not None and symbol not in self.markets:
            return False
        book = self.books.get(symbol)
        if book is None or not book.synced:
            return False
        excerpt = frame[:_EXCERPT]
        log.warning(
            "book message not applied",
            venue=VENUE,
            symbol=symbol,
            kind=kind,
            reason=reason,
            excerpt=excerpt if type(excerpt) is str else excerpt.decode("utf-8", "replace"),
        )
        self._lost(book, f"{kind}: {reason}", "bad_book_frames")
        return True

    # --- session -------------------------------------------------------------------------------

    def _heartbeat(self, body: dict[str, Any], recv_ns: int) -> None:
        self.last_heartbeat_ns = ts_any(body, "server_utc_timestamp")
        self.heartbeats_due += 1  # [CODE] official clients answer each one

    def _command_response(self, body: dict[str, Any], recv_ns: int) -> None:
        code = text(body, "error_code")
        tag = body.get("user_tag")
        matched = type(tag) is str and bool(tag) and self.on_reply(tag, "command_response", body)
        if not matched and code != "0":
            raise FrameError(f"venue error {code}: {body.get('error_text', '')}")

    def _reply(self, body: dict[str, Any], recv_ns: int) -> None:
        tag = body.get("user_tag")
        if type(tag) is str and tag:
            self.on_reply(tag, self._kind, body)

    # --- books ---------------------------------------------------------------------------------

    @staticmethod
    def _market(body: dict[str, Any]) -> str:
        market = body.get("market_id", FIRM)
        if type(market) is not str or (market != FIRM and market not in RFQ_MARKETS):
            raise FrameError(f"market_id: unknown market {market!r}")
        return market

    def _firm_book(self, body: dict[str, Any]) -> L3Book | None:
        symbol = text(body, "symbol")
        if self.markets is not None and symbol not in self.markets:
            self.counts["skipped_symbol"] += 1
            return None
        return self.book(symbol)

    def _lost(self, book: L3Book, reason: str, count: str) -> None:
        """This book can no longer be trusted: reset it and say so (the core unsyncs the L2 book,
        tells the strategies and asks for a fresh snapshot).

        The frame that showed it is decoded into this event, not refused: a decoder either emits
        or raises FrameError having emitted nothing, never both (no half-applied frame).
        """
        book.reset()
        self.counts[count] += 1
        log.warning("order-by-order book lost", venue=VENUE, symbol=book.symbol, reason=reason)
        self.emit(BookInvalidated(VENUE, book.symbol, reason, self.epoch))

    def _hot_book(self, body: dict[str, Any]) -> L3Book | None:
        """The firm book an order message is for, if cheap checks prove it is one: the hot path's
        gate. None (an RFQ or unknown market, a symbol we skip or hold no book for yet, anything
        odd) sends the message down its careful path."""
        symbol = body.get("symbol")
        if type(symbol) is not str or not symbol or body.get("market_id", FIRM) != FIRM:
            return None
        if self.markets is not None and symbol not in self.markets:
            return None
        return self.books.get(symbol)

    def _snapshot(self, body: dict[str, Any], recv_ns: int) -> None:
        if self._market(body) in RFQ_MARKETS:
            self._rfq_snapshot(body, recv_ns)
            return
        book = self._firm_book(body)
        if book is None:
            return
        try:
            orders = []
            for side, field in ((Side.BUY, "buy"), (Side.SELL, "sell")):
                for row in rows(body, field):
                    orders.append(
                        (
                            row_id(row, side),
                            side,
                            dec(row.get("price"), f"{field}.price"),
                            dec(row.get("quantity"), f"{field}.quantity"),
                        )
                    )
            ts = opt_ts(body, "server_utc_timestamp")
            snap = book.snapshot(orders, venue_ts=ts, recv_ns=recv_ns, epoch=self.epoch)
        except FrameError as exc:
            # the fresh book the venue sent is unusable, and ours is gone with it: ask again
            self._lost(book, f"bad snapshot: {exc}", "bad_snapshots")
            return
        self.emit(snap)

    # The four order messages below are the L3 feed, nearly every frame of a firm book. Each
    # first tries its hot path: `_hot_book` found the book and every field is a plain non-empty
    # string, prices and sizes positive and below 1e30 (`PositiveCache`), so no helper has anything
    # to refuse. Anything else goes the careful way, which checks each field in turn and names
    # the one it refuses. Both end in the same book change, inline rather than in a closure
    # (two fewer calls a frame). A well-formed message that contradicts the book
    # (`L3Inconsistent`) proves that one went missing: the book is lost (`_lost`).

    def _order_added(self, body: dict[str, Any], recv_ns: int) -> None:
        book = self._hot_book(body)
        oid, wire_side = body.get("order_id"), body.get("side")
        raw_price, raw_qty = body.get("price"), body.get("quantity")
        if (
            book is not None
            and type(oid) is str
            and oid
            and (wire_side == "buy" or wire_side == "sell")
            and type(raw_price) is str
            and (price := self.prices[raw_price]) is not None
            and type(raw_qty) is str
            and (qty := self.sizes[raw_qty]) is not None
        ):
            side = _BUY if wire_side == "buy" else _SELL
        else:
            if self._market(body) in RFQ_MARKETS:
                rfq = self._rfq(body, body)
                self.rfq_books.setdefault(rfq.symbol, {})[rfq.rfq_id] = rfq
                self.emit(RfqAdded(VENUE, rfq.symbol, recv_ns, self.epoch, rfq=rfq))
                return
            book = self._firm_book(body)
            if book is None:
                return
            oid, side = row_id(body), side_of(wire_side)
            price, qty = dec(raw_price, "price"), dec(raw_qty, "quantity")
        try:
            event = book.add(
                oid, side, price, qty, venue_ts=None, recv_ns=recv_ns, epoch=self.epoch
            )
        except L3Inconsistent as exc:
            self._lost(book, str(exc), "l3_gaps")
            return
        if event is not None:
            self.emit(event)

    def _order_deleted(self, body: dict[str, Any], recv_ns: int) -> None:
        book = self._hot_book(body)
        oid = body.get("order_id")
        if book is None or type(oid) is not str or not oid:
            if self._market(body) in RFQ_MARKETS:
                symbol, oid = text(body, "symbol"), row_id(body)
                self.rfq_books.get(symbol, {}).pop(oid, None)
                side = side_of(body["side"]) if "side" in body else None
                self.emit(RfqRemoved(VENUE, symbol, recv_ns, self.epoch, rfq_id=oid, side=side))
                return
            book = self._firm_book(body)
            if book is None:
                return
            oid = row_id(body)
        try:
            event = book.delete(oid, venue_ts=None, recv_ns=recv_ns, epoch=self.epoch)
        except L3Inconsistent as exc:
            self._lost(book, str(exc), "l3_gaps")
            return
        if event is not None:
            self.emit(event)

    def _order_updated(self, body: dict[str, Any], recv_ns: int) -> None:
        book = self._hot_book(body)
        old, new = body.get("old_order_id"), body.get("new_order_id")
        raw_price, raw_qty = body.get("price"), body.get("quantity")
        price: Decimal | None
        qty: Decimal | None
        if not (
            book is not None
            and type(old) is str
            and old
            and type(new) is str
            and new
            and type(raw_price) is str
            and (price := self.prices[raw_price]) is not None
            and type(raw_qty) is str
            and (qty := self.sizes[raw_qty]) is not None
        ):
            old, new = text(body, "old_order_id"), text(body, "new_order_id")
            price = dec(raw_price, "price") if "price" in body else None
            qty = dec(raw_qty, "quantity") if "quantity" in body else None
            if (price is not None and price <= 0) or (qty is not None and qty < 0):
                raise FrameError("order_updated: price must be positive, quantity not negative")
            if self._market(body) in RFQ_MARKETS:
                self._rfq_updated(body, old, new, price, qty, recv_ns)
                return
            book = self._firm_book(body)
            if book is None:
                return
        try:
            event = book.update(
                old, new, price=price, size=qty, venue_ts=None, recv_ns=recv_ns, epoch=self.epoch
            )
        except L3Inconsistent as exc:
            self._lost(book, str(exc), "l3_gaps")
            return
        if event is not None:
            self.emit(event)

    def _rfq_updated(
        self,
        body: dict[str, Any],
        old: str,
        new: str,
        price: Decimal | None,
        qty: Decimal | None,
        recv_ns: int,
    ) -> None:
        symbol = text(body, "symbol")
        known = self.rfq_books.setdefault(symbol, {})
        prior = known.pop(old, None)
        self.emit(RfqRemoved(VENUE, symbol, recv_ns, self.epoch, rfq_id=old))
        if prior is not None:
            rfq = Rfq(
                new,
                prior.symbol,
                prior.tradeable_entity_id,
                prior.side,
                prior.price if price is None else price,
                prior.quantity if qty is None else qty,
                prior.legs,
                opt_ts(body, "utc_timestamp"),
            )
            known[new] = rfq
            self.emit(RfqAdded(VENUE, symbol, recv_ns, self.epoch, rfq=rfq))

    def _order_executed(self, body: dict[str, Any], recv_ns: int) -> None:
        # [INF] `quantity` is the quantity executed by this event; the order shrinks by it
        book = self._hot_book(body)
        oid, raw_qty = body.get("order_id"), body.get("quantity")
        if not (
            book is not None
            and type(oid) is str
            and oid
            and type(raw_qty) is str
            and (qty := self.sizes[raw_qty]) is not None
        ):
            if self._market(body) in RFQ_MARKETS:
                self.counts["rfq_executed_ignored"] += 1  # indicative orders never match
                return
            book = self._firm_book(body)
            if book is None:
                return
            oid = row_id(body)
            qty = dec(raw_qty, "quantity")
            if qty <= 0:
                raise FrameError("order_executed: quantity must be positive")
        try:
            event = book.execute(
                oid, executed=qty, venue_ts=None, recv_ns=recv_ns, epoch=self.epoch
            )
        except L3Inconsistent as exc:
            self._lost(book, str(exc), "l3_gaps")
            return
        if event is not None:
            self.emit(event)

    def _deltas(self, body: dict[str, Any], recv_ns: int) -> None:
        """Price-level changes of snap_with_deltas ([CODE Hummingbot] `add_price_level` rows set
        a level's absolute size, `delete_price_level` removes a price, a string or [INF] a
        list). Parsed whole before anything is applied; any other instruction is refused (the
        caller then un-syncs the book)."""
        if self._market(body) != FIRM:
            raise FrameError("deltas for a market other than the firm book")
        book = self._firm_book(body)
        if book is None:
            return
        changes: list[tuple[Side, Decimal, Decimal]] = []
        for side, field in ((Side.BUY, "buy"), (Side.SELL, "sell")):
            part = body.get(field, {})
            if type(part) is not dict:
                raise FrameError(f"deltas.{field}: expected an object")
            for key, value in part.items():
                if key == "add_price_level":
                    if type(value) is not list:
                        raise FrameError(f"deltas.{field}.add_price_level: expected a list")
                    for row in value:
                        if type(row) is not dict:
                            raise FrameError(f"deltas.{field}.add_price_level: a row")
                        price = dec(row.get("price"), "price")
                        qty = dec(row.get("quantity"), "quantity")
                        if price <= 0 or qty < 0:
                            raise FrameError("deltas: price must be positive, size not negative")
                        changes.append((side, price, qty))
                elif key == "delete_price_level":
                    prices = value if type(value) is list else [value]
                    for raw in prices:
                        price = dec(raw, "delete_price_level")
                        if price <= 0:
                            raise FrameError("deltas: price must be positive")
                        changes.append((side, price, _ZERO))
                else:
                    raise FrameError(f"deltas.{field}: unknown instruction {key!r}")
        if not book.synced:
            book.ignored += 1
            return
        ts = opt_ts(body, "server_utc_timestamp")
        touched: dict[tuple[Side, Decimal], None] = {}
        for side, price, qty in changes:
            for oid in [o for o, (s, p, _) in book.orders.items() if s is side and p == price]:
                book.delete(oid, venue_ts=ts, recv_ns=recv_ns, epoch=self.epoch)
            if qty > 0:
                book.add(
                    level_id(side, price), side, price, qty, venue_ts=ts, recv_ns=recv_ns,
                    epoch=self.epoch,
                )  # fmt: skip
            touched[(side, price)] = None
        if not touched:
            return
        sizes: dict[tuple[Side, Decimal], Decimal] = dict.fromkeys(touched, _ZERO)
        for s_, p_, q_ in book.orders.values():
            if (s_, p_) in sizes:
                sizes[(s_, p_)] += q_
        bids = tuple(sorted((p, q) for (s_, p), q in sizes.items() if s_ is Side.BUY))
        asks = tuple(sorted((p, q) for (s_, p), q in sizes.items() if s_ is Side.SELL))
        self.emit(BookDelta(VENUE, book.symbol, bids, asks, ts, recv_ns, self.epoch))

    def _trade(self, body: dict[str, Any], recv_ns: int) -> None:
        symbol = text(body, "symbol")
        if self.markets is not None and symbol not in self.markets:
            return
        ts = opt_ts(body, "utc_timestamp") or opt_ts(body, "server_utc_timestamp")
        self.emit(
            PublicTrade(
                VENUE,
                symbol,
                dec(body.get("price"), "price"),
                dec(body.get("quantity"), "quantity"),
                None,  # the trade message names no aggressor
                text(body, "trade_id"),
                ts,
                recv_ns,
                self.epoch,
            )
        )

    # --- RFQs ----------------------------------------------------------------------------------

    def _rfq(self, body: dict[str, Any], row: dict[str, Any], side: Side | None = None) -> Rfq:
        symbol = text(body, "symbol")
        entity = body.get("tradeable_entity_id", "")
        if type(entity) is not str:
            raise FrameError("tradeable_entity_id: expected a string")
        price = dec(row.get("price", "0"), "price")
        qty = dec(row.get("quantity"), "quantity")
        if price < 0 or qty <= 0:
            raise FrameError("RFQ with a negative price or no quantity")
        return Rfq(
            row_id(row),
            symbol,
            entity,
            side if side is not None else side_of(row.get("side")),
            price,
            qty,
            legs_of(symbol, entity),
            opt_ts(row, "utc_timestamp"),
        )

    def _rfq_snapshot(self, body: dict[str, Any], recv_ns: int) -> None:
        symbol = text(body, "symbol")
        found = [
            self._rfq(body, row, side)
            for side, field in ((Side.BUY, "buy"), (Side.SELL, "sell"))
            for row in rows(body, field)
        ]
        self.rfq_books[symbol] = {r.rfq_id: r for r in found}
        self.emit(RfqSnapshot(VENUE, symbol, recv_ns, self.epoch, rfqs=tuple(found)))

    def _own_rfq(self, body: dict[str, Any], recv_ns: int, state: str, reason: str = "") -> bool:
        coid = body.get("client_order_id")
        if type(coid) is not str or coid not in self.own_rfqs:
            return False
        if state in ("rejected", "cancelled"):
            self.own_rfqs.discard(coid)
        self.emit(
            OwnRfqUpdate(
                VENUE,
                str(body.get("symbol", "")),
                recv_ns,
                self.epoch,
                client_order_id=coid,
                rfq_id=body.get("order_id"),
                state=state,
                reason=reason,
            )
        )
        return True

    # --- our orders ----------------------------------------------------------------------------

    def _order_accepted(self, body: dict[str, Any], recv_ns: int) -> None:
        if self._own_rfq(body, recv_ns, "accepted"):
            return
        self.emit(
            ExecutionReport(
                VENUE,
                text(body, "client_order_id"),
                status=OrderStatus.ACCEPTED,
                venue_order_id=text(body, "order_id"),
                venue_ts=opt_ts(body, "utc_timestamp"),
            )
        )

    def _order_rejected(self, body: dict[str, Any], recv_ns: int) -> None:
        reason = str(body.get("reason", "rejected"))
        if self._own_rfq(body, recv_ns, "rejected", reason):
            return
        self.emit(
            ExecutionReport(
                VENUE,
                text(body, "client_order_id"),
                status=OrderStatus.REJECTED,
                reason=reason,
                venue_ts=opt_ts(body, "utc_timestamp"),
            )
        )

    def _execution(self, body: dict[str, Any], recv_ns: int) -> None:
        state = body.get("order_state")
        if state not in ("partial_fill", "filled"):
            raise FrameError(f"order_state: unexpected {state!r}")
        flag = body.get("liquidity_flag")
        liquidity = _LIQUIDITY.get(flag) if type(flag) is str else None
        if flag is not None and liquidity is None:
            raise FrameError(f"liquidity_flag: unexpected {flag!r}")
        coid = body.get("client_order_id")
        report = ExecutionReport(
            VENUE,
            coid if type(coid) is str else "",
            status=OrderStatus.FILLED if state == "filled" else None,
            venue_order_id=text(body, "order_id"),
            fill_id=text(body, "trade_id"),
            fill_price=dec(body.get("executed_price"), "executed_price"),
            fill_qty=dec(body.get("executed_quantity"), "executed_quantity"),
            liquidity=liquidity,
            venue_ts=opt_ts(body, "utc_timestamp"),
        )
        if state == "filled" and report.client_order_id:
            self.on_end(report.client_order_id, None)
        self.emit(report)
        self.on_fill()

    def _cancel_order(self, body: dict[str, Any], recv_ns: int) -> None:
        reason = str(body.get("reason", ""))
        tag = body.get("user_tag")
        if not is_cancel_refusal(reason) and not self._own_rfq(body, recv_ns, "cancelled", reason):
            # [INF] the venue's own end of a GTD/DAY order says "expired"
            status = OrderStatus.EXPIRED if reason in EXPIRED_REASONS else OrderStatus.CANCELLED
            report = ExecutionReport(
                VENUE,
                text(body, "client_order_id"),
                status=status,
                venue_order_id=body.get("order_id") or None,
                reason=reason,
                venue_ts=opt_ts(body, "utc_timestamp"),
            )
            # [DOC] `filled_quantity` is the order's cumulative fill: more than we heard of means
            # executions we never saw (lost with a connection); the hook fetches them
            filled = _opt_dec(body.get("filled_quantity"))
            if filled is not None and filled > 0:
                self.on_end(report.client_order_id, filled)
            self.emit(report)
        if type(tag) is str and tag:
            self.on_reply(tag, "cancel_order", body)

    # --- account -------------------------------------------------------------------------------

    def _balances(self, body: dict[str, Any], recv_ns: int) -> None:
        now = time.time_ns()
        for row in rows(body, "balances"):
            self.emit(
                Balance(
                    VENUE,
                    text(row, "symbol"),
                    dec(row.get("available_balance", "0"), "available_balance"),
                    dec(row.get("reserved_balance", "0"), "reserved_balance"),
                    opt_ts(row, "timestamp") or now,
                )
            )
        self._reply(body, recv_ns)

    def _positions(self, body: dict[str, Any], recv_ns: int) -> None:
        now = time.time_ns()
        for row in rows(body, "positions"):
            size = dec(row.get("size"), "size")
            side = row.get("side")
            if side in ("sell", "short") and size > 0:
                size = -size
            upnl = row.get("upnl")
            self.emit(
                Position(
                    VENUE,
                    text(row, "symbol"),
                    size,
                    dec(row.get("average_entry_price", "0"), "average_entry_price"),
                    _ZERO,
                    dec(upnl, "upnl") if upnl is not None else None,
                    now,
                )
            )
        self._reply(body, recv_ns)


def _opt_dec(value: Any) -> Decimal | None:
    """A quantity we only use as a hint: None when absent or unreadable (never refuses a frame)."""
    if value is None:
        return None
    try:
        return dec(value, "filled_quantity")
    except FrameError:
        return None


def is_cancel_refusal(reason: str) -> bool:
    """A `cancel_order` that refuses a cancel (unknown id, already filled) ends nothing."""
    return reason == FULLY_EXECUTED or "not found" in reason
