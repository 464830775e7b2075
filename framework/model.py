"""Mutable domain objects owned by the core: orders and instruments."""

from __future__ import annotations

from decimal import Decimal

import attrs

from framework.events import OrderStatus, OrderType, Side, TimeInForce

_ZERO = Decimal(0)


@attrs.frozen(slots=True)
class Instrument:
    """What a venue's catalogue says about a symbol; used to refuse bad orders before they leave."""

    venue: str
    symbol: str
    base: str
    quote: str
    tick: Decimal | None = None
    lot: Decimal | None = None
    min_qty: Decimal | None = None
    max_qty: Decimal | None = None
    min_notional: Decimal | None = None


@attrs.define(slots=True, eq=False)
class Order:
    client_order_id: str
    venue: str
    symbol: str
    side: Side
    type: OrderType
    quantity: Decimal
    price: Decimal | None
    tif: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    expire_at_ns: int | None = None
    # trigger price of a STOP_MARKET / STOP_LIMIT order
    stop_price: Decimal | None = None
    strategy: str = ""
    status: OrderStatus = OrderStatus.PENDING
    venue_order_id: str | None = None
    filled_qty: Decimal = _ZERO
    avg_price: Decimal = _ZERO
    fees: Decimal = _ZERO
    reason: str | None = None
    created_ns: int = 0
    updated_ns: int = 0
    fill_ids: set[str] = attrs.field(factory=set, repr=False)
    # a cancel asked for while the submit was still in flight; sent as soon as it lands
    cancel_pending: bool = False
    # the strategy asked for a cancel that no venue answer has settled yet: one that met a
    # transport error (outcome unknown) is sent again once reconciliation finds the order working
    cancel_wanted: bool = False
    # the total quantity a modify asked for: a venue report may then name it (never more)
    modify_quantity: Decimal | None = None

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled_qty

    @property
    def is_open(self) -> bool:
        return not self.status.is_terminal

    @property
    def signed_remaining(self) -> Decimal:
        return self.remaining if self.side is Side.BUY else -self.remaining
