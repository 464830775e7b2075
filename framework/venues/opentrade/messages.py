"""Open Trade client → venue messages. One function per message; nothing else builds them.

A CANCEL without an order id cancels *every* order of the pair at the venue, so `cancel` refuses
to build one without an id and only `cancel_all_orders` (an explicit cancel-all) leaves it out.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from framework.errors import OrderRefused
from framework.events import OrderType, TimeInForce
from framework.model import Order
from framework.transport.wire import dec_str

TRADE_PRIVATE = "TRADE_PRIVATE"
# core time in force → the venue's. The venue's GTD means "until 4:59 PM New York" (a day
# order); the core's GTD (a given expiry time) is the venue's GTT.
_TIF = {
    TimeInForce.GTC: "GTC",
    TimeInForce.IOC: "IOC",
    TimeInForce.FOK: "FOK",
    TimeInForce.DAY: "GTD",
    TimeInForce.GTD: "GTT",
}


def list_value(values: Iterable[str]) -> str:
    """`channelArgs` values are strings holding a bracketed list: "[BTC/USD,ETH/BTC]"."""
    return "[" + ",".join(values) + "]"


def parse_list_value(value: str) -> list[str]:
    """ "[BTC, USDT]" / "[BTC,USD]" / "BTC" → ["BTC", "USDT"] (both spellings are published)."""
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return [part.strip() for part in text.split(",") if part.strip()]


def arg(name: str, values: Iterable[str] | str) -> dict[str, str]:
    return {"name": name, "value": values if isinstance(values, str) else list_value(values)}


def ping() -> dict[str, str]:
    return {"command": "PING", "channel": "PING"}


def subscribe(
    channel: str,
    args: list[dict[str, str]],
    *,
    signature: str | None = None,
    request_id: str | None = None,
    command: str = "SUBSCRIBE",
) -> dict[str, Any]:
    msg: dict[str, Any] = {"command": command, "channel": channel, "channelArgs": args}
    if signature is not None:
        msg["signature"] = signature
    if request_id is not None:
        msg["requestId"] = request_id
    return msg


def get(
    channel: str, args: list[dict[str, str]] | None = None, *, signature: str | None = None
) -> dict[str, Any]:
    msg: dict[str, Any] = {"command": "GET", "channel": channel}
    if args:
        msg["channelArgs"] = args
    if signature is not None:
        msg["signature"] = signature
    return msg


def _order_command(command: str, item: dict[str, Any], signature: str) -> dict[str, Any]:
    return {
        "command": command,
        "signature": signature,
        "channel": TRADE_PRIVATE,
        "data": [{"class": "Order", **item}],
    }


def create(
    order: Order, *, signature: str, request_type: str = "SMART", exchange_name: str = ""
) -> dict[str, Any]:
    """CREATE for one order (the venue takes one order per message)."""
    item: dict[str, Any] = {
        "globalInstrumentCd": order.symbol,
        "clientOrderId": order.client_order_id,
        "direction": order.side.value,
    }
    if order.type is OrderType.MARKET:
        item["orderType"] = "MARKET"
    else:
        if order.price is None:
            raise OrderRefused("limit order needs a price")
        item["orderType"] = "POST_ONLY" if order.post_only else "LIMIT"
        item["price"] = dec_str(order.price)
    item["amount"] = dec_str(order.quantity)
    tif = _TIF.get(order.tif)
    if tif is None:
        raise OrderRefused(f"opentrade has no time in force {order.tif.value}")
    item["timeInForce"] = tif
    if order.tif is TimeInForce.GTD:
        if order.expire_at_ns is None:
            raise OrderRefused("GTD order needs expire_at_ns")
        # [INF] the GTT expiry field is undocumented: `expireTime`, epoch milliseconds
        item["expireTime"] = order.expire_at_ns // 1_000_000
    if request_type == "DIRECT":
        if not exchange_name:
            raise OrderRefused("a DIRECT order needs an exchangeName")
        item["requestType"] = "DIRECT"
        item["exchangeName"] = exchange_name
    else:
        item["requestType"] = "SMART"
    return _order_command("CREATE", item, signature)


def cancel(symbol: str, client_order_id: str, *, signature: str) -> dict[str, Any]:
    """CANCEL one order by its clientOrderId. Never without an id (that cancels the pair)."""
    if not isinstance(client_order_id, str) or not client_order_id.strip():
        raise ValueError("refusing to build a CANCEL without an order id (it would cancel all)")
    item = {"globalInstrumentCd": symbol, "clientOrderId": client_order_id}
    return _order_command("CANCEL", item, signature)


def cancel_all_orders(symbol: str, *, signature: str) -> dict[str, Any]:
    """An explicit cancel of every order of one pair: a CANCEL without any id."""
    return _order_command("CANCEL", {"globalInstrumentCd": symbol}, signature)


def modify(
    symbol: str, client_order_id: str, price: Decimal | None, amount: Decimal, *, signature: str
) -> dict[str, Any]:
    """MODIFY price and/or total amount; the order is named by `orderId` (= our clientOrderId)."""
    if not client_order_id:
        raise ValueError("refusing to build a MODIFY without an order id")
    item: dict[str, Any] = {"globalInstrumentCd": symbol, "orderId": client_order_id}
    if price is not None:
        item["price"] = dec_str(price)
    item["amount"] = dec_str(amount)
    return _order_command("MODIFY", item, signature)
