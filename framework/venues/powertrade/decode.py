"""Power.Trade wire → normalized events (reference: shared/venues/powertrade.md).

Every frame is an object with exactly one key, the message type; every scalar is a string.
Firm books (`market_id "0"`) are order-by-order and go through
`framework.data.l3book.L3Book` into L2
events; RFQ books (`market_id "none"`, `"255"` in real 2022 frames) become `RfqEvent`s; our own
order lifecycle becomes `ExecutionReport`s; replies carrying a `user_tag` go to `on_reply`.

Hot path: the L3 order messages of a firm book (see the note above `BookDecoding._order_added`
(decode_book.py)).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from framework.data.l3book import L3Book
from framework.errors import FrameError
from framework.transport.wire import PositiveCache
from framework.venues.powertrade.decode_book import BookDecoding
from framework.venues.powertrade.decode_frames import (
    _EXCERPT,
    _RECENT_EXECUTED,
    BOOK_KINDS,
    FIRM,
    VENUE,
    EndHook,
    ReplyHook,
    loads,
    log,
    text,
    ts_any,
)
from framework.venues.powertrade.decode_private import PrivateDecoding
from framework.venues.powertrade.decode_rfq import RfqDecoding
from framework.venues.powertrade.events import Rfq


class Decoder(BookDecoding, RfqDecoding, PrivateDecoding):
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
