"""Template venue: wire frames → normalized events (the DECODER; REQUIRED for market data).

Copy this file to `framework/venues/<name>/decode.py` and rewrite the frame shapes. The toy wire
format (one JSON object per WebSocket text frame):

    {"type": "snapshot", "symbol": "BTCUSD", "bids": [["100.5", "2"]], "asks": [["101", "1"]]}
    {"type": "delta", "symbol": "BTCUSD", "bids": [["100.5", "0"]], "asks": []}   # "0" removes
    {"type": "order", "client_order_id": "...", "order_id": "...", "status": "OPEN",
     "filled": "0.5", "avg_price": "100.5"}

The rules every decoder keeps (tests/venues/test_fuzz.py checks them on every registered venue):
- a bad frame raises `FrameError` and emits NOTHING: parse and check the whole frame first,
  emit last (the session counts the frame as bad and goes on);
- money is `Decimal` from the wire's text (`dec`), never a float;
- no `await`: `decode` is the hot path, called once per frame by the session.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from framework.errors import FrameError
from framework.events import BookDelta, BookSnapshot, ExecutionReport, Level, OrderStatus, Side
from framework.transport.wire import dec, loads_object

VENUE = "template"

# the venue's order states -> the core's lifecycle (REQUIRED if the venue reports orders)
STATUS = {
    "OPEN": OrderStatus.ACCEPTED,
    "FILLED": OrderStatus.FILLED,
    "CANCELLED": OrderStatus.CANCELLED,
    "REJECTED": OrderStatus.REJECTED,
}


def levels(rows: Any, field: str) -> tuple[Level, ...]:
    """[[price, size], ...] as exact Decimals; FrameError on anything else."""
    if type(rows) is not list:
        raise FrameError(f"{field}: expected a list")
    out = []
    for row in rows:
        if type(row) is not list or len(row) != 2:
            raise FrameError(f"{field}: expected [price, size] pairs")
        out.append((dec(row[0], field), dec(row[1], field)))
    return tuple(out)


def order_report(msg: dict[str, Any]) -> ExecutionReport:
    """An order frame (or REST order body) as the core's report: cumulative quantities only,
    the core derives each fill from the change (so a repeated report is harmless)."""
    coid, status = msg.get("client_order_id"), STATUS.get(msg.get("status"))  # type: ignore[arg-type]
    if type(coid) is not str or not coid or status is None:
        raise FrameError("order: needs client_order_id and a known status")
    order_id = msg.get("order_id")
    filled = dec(msg.get("filled"), "filled")
    if status is OrderStatus.ACCEPTED and filled:
        status = OrderStatus.PARTIALLY_FILLED
    return ExecutionReport(
        venue=VENUE,
        client_order_id=coid,
        status=status,
        venue_order_id=order_id if type(order_id) is str else None,
        cum_qty=filled,
        avg_price=dec(msg.get("avg_price"), "avg_price"),
        # what the order is, where the frame says it (the open-orders listing does)
        symbol=msg["symbol"] if type(msg.get("symbol")) is str else None,
        side=Side(msg["side"]) if msg.get("side") in ("BUY", "SELL") else None,
        price=dec(msg["price"], "price") if msg.get("price") is not None else None,
        quantity=dec(msg["quantity"], "quantity") if "quantity" in msg else None,
    )


class TemplateDecoder:
    """Decodes one connection's frames. The session sets `emit` once and `epoch` on each connect
    (the stream in client.py IS this decoder: no per-frame forwarding)."""

    def __init__(self) -> None:
        self.emit: Callable[[Any], None] = lambda event: None
        self.epoch = 0

    def decode(self, frame: str | bytes, recv_ns: int) -> None:
        msg = loads_object(frame)  # FrameError for anything but a JSON object
        kind = msg.get("type")
        if kind == "snapshot" or kind == "delta":
            symbol = msg.get("symbol")
            if type(symbol) is not str:
                raise FrameError("book: symbol missing")
            bids, asks = levels(msg.get("bids"), "bids"), levels(msg.get("asks"), "asks")
            event = BookSnapshot if kind == "snapshot" else BookDelta
            # OPTIONAL: a real feed has sequence numbers; on a gap call `self.request_resync`
            self.emit(event(VENUE, symbol, bids, asks, None, recv_ns, self.epoch))
        elif kind == "order":
            self.emit(order_report(msg))
        else:
            raise FrameError(f"unknown frame type {kind!r}"[:80])


def price_text(value: Decimal) -> str:
    """Decimal → wire text without exponent (what the venue expects in requests)."""
    return format(value, "f")
