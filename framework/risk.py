"""Risk: pre-trade checks on every order, post-trade limits on every fill, and the kill switch."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from decimal import Decimal

import attrs
import structlog

from framework.data.book import OrderBook
from framework.events import OrderType, Position, Side
from framework.execution.checks import capability_refusal
from framework.model import Order
from framework.venue import Capabilities, touch_price

log = structlog.get_logger("botrun.risk")


@attrs.define(kw_only=True)
class RiskConfig:
    max_order_notional: Decimal = Decimal("100000")
    max_position: Decimal = Decimal("10")  # per symbol, base units, either direction
    max_open_orders: int = 50
    max_orders_per_second: int = 20
    # realized+unrealized loss (quote units, positive number) that trips the kill switch; 0 = off
    max_loss: Decimal = Decimal("0")
    cancel_all_on_shutdown: bool = True
    # once the kill switch engages: after cancelling every working order, also close every
    # position with a market order (false: leave positions as they are, for the operator)
    flatten_on_kill: bool = False
    # orders working at the venue that the journal does not know (found at start and after a
    # reconnect): cancel them (true) or only report them (false)
    cancel_orphans: bool = True
    # an order the venue says it has never seen stays UNKNOWN, asked again with backoff, for at
    # least this long after its request left (a create held in a gateway may land late), and is
    # asked once more later even after it is finalised REJECTED
    not_found_grace_s: float = 90.0
    # every working order is asked for this often (a lost or unreadable order update cannot
    # leave a filled order "working"); 0 = only on reconnects and skipped frames
    working_check_interval_s: float = 30.0


class RiskManager:
    def __init__(
        self,
        cfg: RiskConfig,
        *,
        position: Callable[[str, str], Decimal],
        open_orders: Callable[[str, str | None], list[Order]],
        book: Callable[[str, str], OrderBook | None],
        clock: Callable[[], float],
        total_pnl: Callable[[], Decimal] | None = None,
        on_kill: Callable[[], object] | None = None,
        capabilities: Callable[[str], Capabilities | None] | None = None,
    ) -> None:
        self.cfg = cfg
        # post-trade: the run's realized+unrealized PnL (for max_loss), and what the kill switch
        # does once engaged besides refusing new orders (the engine cancels every open order)
        self._total_pnl = total_pnl
        self._on_kill = on_kill
        self._position = position
        self._open_orders = open_orders
        self._book = book
        self._clock = clock
        # what each venue takes: refused here, before an order leaves, in every mode
        self._capabilities = capabilities
        self._recent: deque[float] = deque()
        self.halted: str | None = None
        # the kill switch's reason (not set by an ordinary shutdown, which also sets `halted`)
        self.kill_reason: str | None = None
        # the engine is closing positions after the kill switch: reducing orders may go
        self.flattening = False

    def check(self, order: Order) -> str | None:
        """None if the order may go, else the reason it may not."""
        cfg = self.cfg
        caps = self._capabilities(order.venue) if self._capabilities is not None else None
        if caps is not None:
            refusal = capability_refusal(order, caps)
            if refusal is not None:
                return refusal
        if self.halted:
            if self.flattening and self._reduces(order):
                return None  # the kill switch closing a position
            return f"kill switch engaged: {self.halted}"
        now = self._clock()
        while self._recent and now - self._recent[0] >= 1.0:
            self._recent.popleft()
        if len(self._recent) >= cfg.max_orders_per_second:
            return f"order rate above max_orders_per_second {cfg.max_orders_per_second}"
        if len(self._open_orders(order.venue, None)) >= cfg.max_open_orders:
            return f"open orders at max_open_orders {cfg.max_open_orders}"
        if order.type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            price = order.price
        elif order.type is OrderType.STOP_MARKET:
            price = order.stop_price  # it fills around its trigger, not the market of now
        else:
            price = self._reference_price(order)
        if price is None:
            return "market order with no synced book to estimate its notional"
        notional = price * order.quantity
        if notional > cfg.max_order_notional:
            return f"notional {notional} above max_order_notional {cfg.max_order_notional}"
        # worst case: every open order on this side fills, then this one
        same_side = sum(
            o.signed_remaining
            for o in self._open_orders(order.venue, order.symbol)
            if o.side is order.side
        )
        signed = order.quantity if order.side is Side.BUY else -order.quantity
        worst = self._position(order.venue, order.symbol) + same_side + signed
        if abs(worst) > cfg.max_position:
            return f"position could reach {worst}, above max_position {cfg.max_position}"
        self._recent.append(now)
        return None

    def _reduces(self, order: Order) -> bool:
        position = self._position(order.venue, order.symbol)
        signed = order.quantity if order.side is Side.BUY else -order.quantity
        return position != 0 and (position > 0) != (signed > 0) and abs(signed) <= abs(position)

    def _reference_price(self, order: Order) -> Decimal | None:
        return touch_price(self._book(order.venue, order.symbol), order.side)

    def after_fill(self, position: Position) -> None:
        """Post-trade limits, on the position a fill just made: a breach engages the kill switch."""
        cfg = self.cfg
        reason = None
        if abs(position.quantity) > cfg.max_position:
            reason = f"{position.venue} {position.symbol} position {position.quantity} above max"
        elif cfg.max_loss > 0 and self._total_pnl is not None and self._total_pnl() < -cfg.max_loss:
            reason = f"loss above max_loss {cfg.max_loss}"
        if reason:
            self.breach(reason)

    def breach(self, reason: str) -> bool:
        """Engage the kill switch (new orders refused, then `on_kill`: the engine cancels, tells
        the strategies, flattens if configured and stops the run); True the first time."""
        if self.halted:
            return False
        self.halted = reason
        self.kill_reason = reason
        log.error("kill switch engaged", reason=reason)
        if self._on_kill is not None:
            self._on_kill()
        return True
