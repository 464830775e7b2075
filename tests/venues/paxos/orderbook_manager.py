"""A Python port of the `OrderBookManager` in Paxos's own Order Routing guide (the JavaScript in
shared/seeds/000_*.txt), kept as literal as Python allows: prices and amounts are the wire
strings (Map keys), removal is `amount === '0'`, and buffered UPDATEs are kept when
`update.time > snapshot.time` as a *string* comparison. Only `top()` is ours (the guide leaves
reading the book to the reader; it compares prices as numbers).

A simulator that this client disagrees with sends something Paxos's own sample cannot read.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any


class OrderBookManager:
    def __init__(self) -> None:
        self.order_books: dict[str, dict[str, Any]] = {}
        self.update_buffers: dict[str, list[dict[str, Any]]] = {}  # buffer updates per market

    def handle_message(self, message: dict[str, Any]) -> None:
        if message.get("channel") == "market_data":
            payload = message["payload"]
            market = payload["market"]
            if payload["type"] == "SNAPSHOT":
                self.initialize_order_book(market, payload)
            elif payload["type"] == "UPDATE":
                order_book = self.order_books.get(market)
                if not order_book or not order_book["snapshotTime"]:
                    self.update_buffers.setdefault(market, []).append(payload)
                else:
                    self.update_order_book(market, payload)

    def initialize_order_book(self, market: str, snapshot: dict[str, Any]) -> None:
        order_book: dict[str, Any] = {"bids": {}, "asks": {}, "snapshotTime": snapshot["time"]}
        for level in snapshot["bids"]:
            order_book["bids"][level["price"]] = level["amount"]
        for level in snapshot["asks"]:
            order_book["asks"][level["price"]] = level["amount"]
        self.order_books[market] = order_book
        buffered = self.update_buffers.get(market) or []
        # JavaScript `update.time > snapshot.time` on strings
        for update in [u for u in buffered if u["time"] > snapshot["time"]]:
            self.update_order_book(market, update)
        self.update_buffers.pop(market, None)

    def update_order_book(self, market: str, update: dict[str, Any]) -> None:
        order_book = self.order_books.get(market)
        if not order_book:
            return
        for side in ("bids", "asks"):
            for level in update.get(side) or []:
                if level["amount"] == "0":
                    order_book[side].pop(level["price"], None)
                else:
                    order_book[side][level["price"]] = level["amount"]

    def top(self, market: str) -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
        book = self.order_books[market]
        bids = sorted(book["bids"].items(), key=lambda kv: Decimal(kv[0]), reverse=True)
        asks = sorted(book["asks"].items(), key=lambda kv: Decimal(kv[0]))
        return (bids[0] if bids else None, asks[0] if asks else None)
