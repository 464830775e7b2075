"""Pre-trade refusals: what an order (or an amendment) must satisfy before it may leave.

Pure functions of the order, the venue's execution client and the instrument's rules (tick, lot,
size and notional limits, the order types the venue takes). A refusal is a reason string; the
order manager turns it into a REJECTED order that was never journaled as an intent nor sent.
"""

from __future__ import annotations

from decimal import Decimal

from framework.events import OrderStatus, OrderType, TimeInForce
from framework.model import Instrument, Order
from framework.venue import ExecutionClient

STOPS = frozenset({OrderType.STOP_MARKET, OrderType.STOP_LIMIT})


def order_refusal(
    order: Order, client: ExecutionClient | None, inst: Instrument | None
) -> str | None:
    """None if the order is well formed for its venue and instrument, else why not."""
    if client is None:
        return f"venue {order.venue!r} takes no orders in this session"
    if order.type not in client.order_types:
        return f"{order.venue} does not take {order.type.value} orders"
    if not isinstance(order.quantity, Decimal) or not order.quantity.is_finite():
        return "quantity must be a finite Decimal"
    if order.quantity <= 0:
        return "quantity must be positive"
    if order.type in STOPS:
        if order.stop_price is None:
            return "stop order needs a stop_price"
        if not isinstance(order.stop_price, Decimal) or not order.stop_price.is_finite():
            return "stop_price must be a finite Decimal"
        if order.stop_price <= 0:
            return "stop_price must be positive"
    elif order.stop_price is not None:
        return f"a {order.type.value} order takes no stop_price (use STOP_MARKET / STOP_LIMIT)"
    if order.type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        if order.price is None:
            kind = "limit" if order.type is OrderType.LIMIT else "stop-limit"
            return f"{kind} order needs a price"
        if not isinstance(order.price, Decimal) or not order.price.is_finite():
            return "price must be a finite Decimal"
        if order.price <= 0:
            return "price must be positive"
    if order.post_only and order.type is not OrderType.LIMIT:
        return "post-only needs a limit order"
    if order.tif is TimeInForce.GTD and order.expire_at_ns is None:
        return "GTD order needs expire_at_ns"
    if inst is None:
        return f"unknown symbol {order.symbol!r} on {order.venue}"
    if inst.lot and order.quantity % inst.lot != 0:
        return f"quantity {order.quantity} is not a multiple of lot {inst.lot}"
    if inst.min_qty is not None and order.quantity < inst.min_qty:
        return f"quantity {order.quantity} below minimum {inst.min_qty}"
    if inst.max_qty is not None and order.quantity > inst.max_qty:
        return f"quantity {order.quantity} above maximum {inst.max_qty}"
    if order.price is not None and inst.tick and order.price % inst.tick != 0:
        return f"price {order.price} is not a multiple of tick {inst.tick}"
    if order.stop_price is not None and inst.tick and order.stop_price % inst.tick != 0:
        return f"stop_price {order.stop_price} is not a multiple of tick {inst.tick}"
    # a stop market's notional is estimated at its trigger
    priced = order.price if order.price is not None else order.stop_price
    if (
        inst.min_notional is not None
        and priced is not None
        and priced * order.quantity < inst.min_notional
    ):
        return f"notional below minimum {inst.min_notional}"
    return None


def modify_refusal(
    order: Order | None,
    price: Decimal | None,
    quantity: Decimal | None,
    inst: Instrument | None,
) -> str | None:
    """None if the amendment may be asked for, else why not."""
    if order is None or not order.is_open:
        return "no such working order"
    if order.cancel_pending or order.status is OrderStatus.CANCEL_REQUESTED:
        return "a cancel is in flight"
    if price is None and quantity is None:
        return "nothing to change"
    if price is not None and price <= 0:
        return "price must be positive"
    if quantity is not None and quantity <= order.filled_qty:
        return f"quantity must stay above the filled {order.filled_qty}"
    if inst is not None and price is not None and inst.tick and price % inst.tick != 0:
        return f"price {price} is not a multiple of tick {inst.tick}"
    if inst is not None and quantity is not None and inst.lot and quantity % inst.lot != 0:
        return f"quantity {quantity} is not a multiple of lot {inst.lot}"
    return None
