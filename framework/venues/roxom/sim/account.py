"""The Roxom simulator's account: a BTC wallet, perpetual positions with margin and PnL.

Pure bookkeeping, no I/O. Every own fill moves the position (average-cost entry, the same
arithmetic as the core portfolio) and settles realized PnL minus the fee into the wallet.
The reference documents the fields but not the formulas; the choices are marked [INF].
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal

import attrs

from framework.events import Side

_ZERO = Decimal(0)
# [INF] the simulated account trades at 10x leverage with a 0.5 % maintenance margin
DEFAULT_LEVERAGE = Decimal(10)
MAINTENANCE_RATE = Decimal("0.005")


@attrs.define(slots=True)
class SimPosition:
    id: str
    symbol: str
    size: Decimal = _ZERO  # signed: long > 0
    avg_entry: Decimal = _ZERO
    entry_amount: Decimal = _ZERO  # quantity opened, over the position's life
    exit_amount: Decimal = _ZERO  # quantity closed
    avg_exit: Decimal | None = None
    entry_fees: Decimal = _ZERO
    exit_fees: Decimal = _ZERO
    realized: Decimal = _ZERO
    created_ns: int = 0
    updated_ns: int = 0
    closed_ns: int | None = None

    @property
    def status(self) -> str:
        # [INF] "normal" while open, "closed" once flat
        return "closed" if self.size == 0 else "normal"


@attrs.frozen(slots=True)
class Settlement:
    before: Decimal
    after: Decimal
    position: SimPosition


class SimAccount:
    def __init__(
        self,
        account_id: str,
        balance: Decimal,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        leverage: Decimal = DEFAULT_LEVERAGE,
    ) -> None:
        self.account_id = account_id
        self.balance = balance
        self.leverage = leverage
        self._new_id = new_id
        self.positions: dict[str, SimPosition] = {}

    def position(self, symbol: str) -> SimPosition | None:
        return self.positions.get(symbol)

    def on_fill(
        self, symbol: str, side: Side, qty: Decimal, price: Decimal, fee: Decimal, ts: int
    ) -> Settlement:
        pos = self.positions.get(symbol)
        if pos is None or pos.size == 0:
            pos = self.positions[symbol] = SimPosition(self._new_id(), symbol, created_ns=ts)
        signed = qty if side is Side.BUY else -qty
        q = pos.size
        pnl = _ZERO
        if q == 0 or (q > 0) == (signed > 0):
            total = q + signed
            pos.avg_entry = (pos.avg_entry * abs(q) + price * qty) / abs(total)
            pos.size = total
            pos.entry_amount += qty
            pos.entry_fees += fee
        else:
            closing = min(abs(q), qty)
            direction = 1 if q > 0 else -1
            pnl = (price - pos.avg_entry) * closing * direction
            exited = pos.exit_amount + closing
            pos.avg_exit = ((pos.avg_exit or _ZERO) * pos.exit_amount + price * closing) / exited
            pos.exit_amount = exited
            pos.exit_fees += fee
            pos.size = q + signed
            pos.realized += pnl
            if pos.size == 0:
                pos.avg_entry = _ZERO
                pos.closed_ns = ts
            elif (pos.size > 0) != (q > 0):
                pos.avg_entry = price  # flipped: the rest opens at this price
                pos.entry_amount += abs(pos.size)
        pos.updated_ns = ts
        before = self.balance
        self.balance = before + pnl - fee
        return Settlement(before, self.balance, pos)

    # --- margin ----------------------------------------------------------------------------

    def initial_margin(self, pos: SimPosition) -> Decimal:
        return abs(pos.size) * pos.avg_entry / self.leverage

    def used_margin(self) -> Decimal:
        return sum((self.initial_margin(p) for p in self.positions.values()), _ZERO)

    def liquidation_price(self, pos: SimPosition) -> Decimal | None:
        # [INF] isolated-margin formula: entry x (1 -/+ 1/leverage +/- maintenance rate)
        if pos.size == 0:
            return None
        step = 1 / self.leverage - MAINTENANCE_RATE
        return pos.avg_entry * (1 - step) if pos.size > 0 else pos.avg_entry * (1 + step)

    def unrealized(self, pos: SimPosition, mark: Decimal | None) -> Decimal:
        if mark is None or pos.size == 0:
            return _ZERO
        return (mark - pos.avg_entry) * pos.size
