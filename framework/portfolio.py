"""Positions and PnL from our own fills; balances as venues (or the paper broker) report them."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import attrs

from framework.events import Balance, OrderFill, Position, Side

_ZERO = Decimal(0)


@attrs.define(slots=True)
class _Book:
    quantity: Decimal = _ZERO  # signed
    avg_price: Decimal = _ZERO
    realized: Decimal = _ZERO
    fees: Decimal = _ZERO
    turnover: Decimal = _ZERO  # sum of price x quantity of every fill (quote units)
    volume: Decimal = _ZERO  # sum of quantities (base units)


class Portfolio:
    def __init__(self, mark: Callable[[str, str], Decimal | None] | None = None) -> None:
        # the price unrealized PnL is marked at (the engine gives the book's mid); None = no marks
        self._mark = mark
        self._pos: dict[tuple[str, str], _Book] = {}
        self.balances: dict[tuple[str, str], Balance] = {}
        self.venue_positions: dict[tuple[str, str], Position] = {}
        self.fill_count = 0

    def on_fill(self, fill: OrderFill) -> Position:
        """Average-cost position keeping: realize PnL on the part that reduces the position."""
        self.fill_count += 1
        book = self._pos.setdefault((fill.venue, fill.symbol), _Book())
        signed = fill.quantity if fill.side is Side.BUY else -fill.quantity
        book.fees += fill.fee
        book.turnover += fill.price * fill.quantity
        book.volume += fill.quantity
        q = book.quantity
        if q == 0 or (q > 0) == (signed > 0):
            total = q + signed
            book.avg_price = (book.avg_price * abs(q) + fill.price * abs(signed)) / abs(total)
            book.quantity = total
        else:
            closing = min(abs(q), abs(signed))
            direction = 1 if q > 0 else -1
            book.realized += (fill.price - book.avg_price) * closing * direction
            book.quantity = q + signed
            if book.quantity == 0:
                book.avg_price = _ZERO
            elif (book.quantity > 0) != (q > 0):
                book.avg_price = fill.price  # flipped: the rest opens at this price
        return Position(
            venue=fill.venue,
            symbol=fill.symbol,
            quantity=book.quantity,
            avg_price=book.avg_price,
            realized_pnl=book.realized - book.fees,
            unrealized_pnl=None,
            ts_ns=fill.ts_ns,
        )

    def on_balance(self, balance: Balance) -> None:
        self.balances[(balance.venue, balance.asset)] = balance

    def on_venue_position(self, position: Position) -> None:
        self.venue_positions[(position.venue, position.symbol)] = position

    def position(self, venue: str, symbol: str) -> Decimal:
        book = self._pos.get((venue, symbol))
        return book.quantity if book else _ZERO

    def avg_price(self, venue: str, symbol: str) -> Decimal:
        book = self._pos.get((venue, symbol))
        return book.avg_price if book else _ZERO

    def realized_pnl(self, venue: str, symbol: str) -> Decimal:
        """Realized PnL net of fees (fees in quote currency)."""
        book = self._pos.get((venue, symbol))
        return book.realized - book.fees if book else _ZERO

    def unrealized_pnl(self, venue: str, symbol: str, mark: Decimal | None) -> Decimal | None:
        book = self._pos.get((venue, symbol))
        if book is None or book.quantity == 0:
            return _ZERO
        if mark is None:
            return None
        return (mark - book.avg_price) * book.quantity

    def symbols(self) -> list[tuple[str, str]]:
        return sorted(self._pos)

    def mark(self, venue: str, symbol: str) -> Decimal | None:
        """The mark price of a symbol (None: no price source, or no synced book)."""
        return self._mark(venue, symbol) if self._mark is not None else None

    def total_pnl(self) -> Decimal:
        """Realized (net of fees) plus unrealized PnL over every symbol; unmarkable ones count 0."""
        total = _ZERO
        for venue, symbol in self.symbols():
            total += self.realized_pnl(venue, symbol)
            total += self.unrealized_pnl(venue, symbol, self.mark(venue, symbol)) or 0
        return total

    def summary(self) -> list[dict[str, Any]]:
        """One entry per symbol traded, as the run summary lists them."""
        positions = []
        for venue, symbol in self.symbols():
            mark = self.mark(venue, symbol)
            positions.append(
                {
                    "venue": venue,
                    "symbol": symbol,
                    "quantity": self.position(venue, symbol),
                    "avg_price": self.avg_price(venue, symbol),
                    "realized_pnl": self.realized_pnl(venue, symbol),
                    "unrealized_pnl": self.unrealized_pnl(venue, symbol, mark),
                    "mark": mark,
                    "fees": self._pos[(venue, symbol)].fees,
                    "turnover": self._pos[(venue, symbol)].turnover,
                    "volume": self._pos[(venue, symbol)].volume,
                }
            )
        return positions
