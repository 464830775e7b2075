"""Pre-trade refusals: what an order (or an amendment) must satisfy before it may leave.

Pure functions of the order, the venue's execution client and the instrument's rules (tick, lot,
size and notional limits, the order types the venue takes). A refusal is a reason string; the
order manager turns it into a REJECTED order that was never journaled as an intent nor sent.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from framework.events import OrderStatus, OrderType, Side, TimeInForce
from framework.model import Instrument, Order
from framework.venue import Capabilities, ExecutionClient

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


def _significant_digits(value: Decimal) -> int:
    digits = value.normalize().as_tuple().digits
    return len(digits)


def _decimals(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def price_precision_refusal(price: Decimal, caps: Capabilities) -> str | None:
    """None if the venue keeps `price` as written, else why it would not."""
    digits = caps.price_significant_digits
    if digits is not None and _significant_digits(price) > digits:
        return f"price {price} has more than {digits} significant digits ({caps.reference})"
    if caps.price_max_decimals is not None and _decimals(price) > caps.price_max_decimals:
        return f"price {price} has more than {caps.price_max_decimals} decimals"
    return None


def capability_refusal(order: Order, caps: Capabilities) -> str | None:
    """None if the venue takes this kind of order (type, time in force, post-only, stop side,
    precision), else why not: the same answer in paper, sandbox, live and backtest."""
    venue = order.venue
    if order.type not in caps.order_types:
        return f"{venue} does not take {order.type.value} orders"
    # a MARKET order left at GTC (OrderManager.submit's default; `Strategy.buy/sell` send IOC)
    # is not judged on its TIF: adapters send the venue's own market TIF
    market_default = order.type is OrderType.MARKET and order.tif is TimeInForce.GTC
    if not market_default and order.tif not in caps.tifs_for(order.type):
        allowed = ", ".join(sorted(t.value for t in caps.tifs_for(order.type)))
        kind = order.type.value
        return f"{venue} {kind} orders take no {order.tif.value} (must be one of {allowed})"
    if order.post_only and not caps.post_only:
        return f"{venue} has no post-only orders (quote a limit that does not cross instead)"
    if order.type is OrderType.STOP_MARKET and order.side not in caps.stop_market_sides:
        return f"{venue} takes no {order.side.value} stop-market orders"
    for label, value in (("price", order.price), ("stop_price", order.stop_price)):
        if isinstance(value, Decimal) and value.is_finite():
            reason = price_precision_refusal(value, caps)
            if reason is not None:
                return reason.replace("price", label, 1) if label != "price" else reason
    if (
        caps.quantity_max_decimals is not None
        and isinstance(order.quantity, Decimal)
        and order.quantity.is_finite()
        and _decimals(order.quantity) > caps.quantity_max_decimals
    ):
        return f"quantity {order.quantity} has more than {caps.quantity_max_decimals} decimals"
    return None


def modify_capability_refusal(venue: str, price: Decimal | None, caps: Capabilities) -> str | None:
    """None if the venue takes an amendment (with this price), else why not."""
    if not caps.modify:
        return f"{venue} does not support modifying orders (cancel and place a new one)"
    if price is not None:
        return price_precision_refusal(price, caps)
    return None


def venue_price(
    price: Decimal, caps: Capabilities, inst: Instrument | None, *, passive_for: Side
) -> Decimal:
    """`price` rounded to what the venue keeps (tick, significant digits, decimals), away from
    the market for `passive_for` (a bid rounds down, an ask up), so a quote never crosses by
    rounding."""
    rounding = ROUND_FLOOR if passive_for is Side.BUY else ROUND_CEILING
    if inst is not None and inst.tick:
        price = (price / inst.tick).to_integral_value(rounding) * inst.tick
    if caps.price_significant_digits is not None and price:
        keep = caps.price_significant_digits
        exponent = price.adjusted() - keep + 1
        step = Decimal(1).scaleb(exponent)
        price = (price / step).to_integral_value(rounding) * step
    if caps.price_max_decimals is not None and _decimals(price) > caps.price_max_decimals:
        price = price.quantize(Decimal(1).scaleb(-caps.price_max_decimals), rounding=rounding)
    return price
