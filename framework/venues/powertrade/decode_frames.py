"""Power.Trade frame basics shared by the decoder modules: message-type constants, venue
reply texts, the hook types, and the field helpers that read one string-typed field and name it
when they refuse it (`loads`, `text`, `us_to_ns`, `side_of`, `row_id`, ...)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson
import structlog

from framework.errors import FrameError
from framework.events import Liquidity, Side
from framework.transport.wire import dec
from framework.venues.powertrade.events import RfqLeg

log = structlog.get_logger("botrun.powertrade")

VENUE = "powertrade"
FIRM = "0"
# [DOC] RFQ books are "none"; real 2022 frames say "255": both mean the RFQ market
RFQ_MARKETS = frozenset({"none", "255"})
_ZERO = Decimal(0)
# module constants: reading an Enum member off its class costs ~90 ns on Python 3.11
_BUY, _SELL = Side.BUY, Side.SELL
_ID_FIELDS = ("order_id", "orderid", "ordered")  # the spellings seen across sources
_LIQUIDITY = {"added": Liquidity.MAKER, "taken": Liquidity.TAKER}
# cancel_order replies that refuse the cancel instead of reporting one
FULLY_EXECUTED = "order has been fully executed and cannot be cancelled"
NOT_FOUND = "exchange order_id or client_order_id not found in order cache"
# [CODE Hummingbot IGNORABLE_ERROR_TEXTS] a repeated subscribe for a subscribed book
ALREADY_SUBSCRIBED = "add subscription failed, already subscribed"
# cancel_order reasons that end an order without our asking, as EXPIRED: the end of a GTD/DAY
# order [INF "expired"] and of its recv_window [INF "recv_window_expired", the simulator's]
EXPIRED_REASONS = frozenset({"expired", "recv_window_expired"})
# messages that change a firm book: one the decoder cannot apply un-syncs that book
BOOK_KINDS = frozenset(
    {"snapshot", "order_added", "order_deleted", "order_updated", "order_executed", "deltas"}
)
_RECENT_EXECUTED = 4096  # order_executed frames remembered to catch a repeat (see `decode`)
_EXCERPT = 200

# on_reply(user_tag, message type, body) -> True if a request was waiting for it
ReplyHook = Callable[[str, str, dict[str, Any]], bool]
# on_end(client_order_id, venue's cumulative filled quantity or None for "all of it"): an order
# ended (cancel_order, or an execution that filled it), called just before its report is emitted
EndHook = Callable[[str, Decimal | None], None]


# --- field helpers -------------------------------------------------------------------------------


def loads(frame: str | bytes) -> tuple[str, dict[str, Any]]:
    try:
        msg = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise FrameError(f"malformed JSON: {exc}") from None
    if type(msg) is not dict or len(msg) != 1:
        raise FrameError("a message is an object with exactly one key")
    ((kind, body),) = msg.items()
    if type(body) is not dict:
        raise FrameError(f"{kind}: body is not an object")
    return kind, body


def text(body: dict[str, Any], field: str) -> str:
    value = body.get(field)
    if type(value) is not str or not value:
        raise FrameError(f"{field}: expected a non-empty string, got {value!r}")
    return value


def us_to_ns(value: Any, field: str) -> int:
    """Microseconds since the epoch as a digit string -> ns."""
    if type(value) is not str or not value.isascii() or not value.isdigit():
        raise FrameError(f"{field}: expected a microsecond timestamp string, got {value!r}")
    return int(value) * 1000


def opt_ts(body: dict[str, Any], field: str) -> int | None:
    value = body.get(field)
    return None if value is None else us_to_ns(value, field)


def ts_any(body: dict[str, Any], field: str) -> int | None:
    """A timestamp in µs (16 digits) or ns (19 digits: the REST order-details executions
    [DOC], Hummingbot's heartbeats [CODE]) -> ns; [INF] told apart by the digit count."""
    value = body.get(field)
    if value is None:
        return None
    if type(value) is str and value.isascii() and value.isdigit() and len(value) >= 19:
        return int(value)
    return us_to_ns(value, field)


def side_of(value: Any, field: str = "side") -> Side:
    if value == "buy":
        return Side.BUY
    if value == "sell":
        return Side.SELL
    raise FrameError(f"{field}: expected buy or sell, got {value!r}")


def row_id(row: dict[str, Any], side: Side | None = None) -> str:
    """The order id of a book row; a snapshot row without one (a price-level snapshot of
    snap_with_deltas [INF]) gets a synthetic id per side and price when `side` is given."""
    for name in _ID_FIELDS:
        value = row.get(name)
        if value is not None:
            if type(value) is not str or not value:
                raise FrameError(f"{name}: expected a non-empty string")
            return value
    if side is not None:
        return level_id(side, row.get("price"))
    raise FrameError("order row without order_id")


def level_id(side: Side, price: Any) -> str:
    """The synthetic order id that stands for a whole price level (`deltas`, level rows)."""
    return f"L{'b' if side is Side.BUY else 's'}:{price}"


def legs_of(symbol: str, entity: str) -> tuple[RfqLeg, ...]:
    """`"A@1/B@-1"` (and `"117@1/336@-1"`) -> legs; a plain symbol is one leg of ratio 1."""
    if "@" not in symbol:
        return (RfqLeg(symbol, 1, entity or None),)
    entities = entity.split("/") if "@" in entity else []
    legs = []
    for i, part in enumerate(symbol.split("/")):
        name, _, ratio = part.rpartition("@")
        try:
            r = int(ratio)
        except ValueError:
            raise FrameError(f"symbol: bad leg {part!r}") from None
        if not name or r == 0:
            raise FrameError(f"symbol: bad leg {part!r}")
        ent = entities[i].rpartition("@")[0] if i < len(entities) else None
        legs.append(RfqLeg(name, r, ent or None))
    return tuple(legs)


def rows(body: dict[str, Any], field: str) -> list[dict[str, Any]]:
    value = body.get(field, [])
    if type(value) is not list or any(type(r) is not dict for r in value):
        raise FrameError(f"{field}: expected a list of objects")
    return value


# --- the decoder ---------------------------------------------------------------------------------


def _opt_dec(value: Any) -> Decimal | None:
    """A quantity we only use as a hint: None when absent or unreadable (never refuses a frame)."""
    if value is None:
        return None
    try:
        return dec(value, "filled_quantity")
    except FrameError:
        return None


def is_cancel_refusal(reason: str) -> bool:
    """A `cancel_order` that refuses a cancel (unknown id, already filled) ends nothing."""
    return reason == FULLY_EXECUTED or "not found" in reason
