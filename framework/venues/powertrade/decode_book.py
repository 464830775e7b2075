"""Power.Trade firm-book decoding (market data): snapshots, the L3 order messages (the hot path),
price-level deltas and public trades, as a mixin of `decode.Decoder`; RFQ-book variants of the
order messages hand over to `decode_rfq`."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from framework.data.l3book import L3Book, L3Inconsistent
from framework.errors import FrameError
from framework.events import BookDelta, BookInvalidated, PublicTrade, Side
from framework.transport.wire import dec
from framework.venues.powertrade.decode_frames import (
    _BUY,
    _SELL,
    _ZERO,
    FIRM,
    RFQ_MARKETS,
    VENUE,
    level_id,
    log,
    opt_ts,
    row_id,
    rows,
    side_of,
    text,
)
from framework.venues.powertrade.events import RfqAdded, RfqRemoved


class BookDecoding:
    """Firm books and trades; mixed into `Decoder`, whose state (`books`, `emit`, ...) it uses."""

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
