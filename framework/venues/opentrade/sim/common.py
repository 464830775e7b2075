"""What every part of the Open Trade simulator shares: constants, wire formats, the order and
WebSocket-session records, request-argument parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import orjson
import structlog

from framework.events import Side
from framework.sim.engine import (
    CANCELLED,
    FILLED,
    OPEN,
    SimOrder,
)
from framework.sim.parsing import Refusals, parse_decimal
from framework.sim.server import WsConnection
from framework.venues.opentrade.messages import parse_list_value

log = structlog.get_logger("botrun.sim.opentrade")


DEFAULT_MARKETS: dict[str, tuple[Decimal, Decimal]] = {
    "BTC/USD": (Decimal("60000"), Decimal("0.01")),
    "ETH/USD": (Decimal("3000"), Decimal("0.01")),
}


DEFAULT_BALANCES = {"USD": Decimal(1_000_000), "BTC": Decimal(100), "ETH": Decimal(1_000)}


ENGINE_LOT = Decimal("0.00000001")  # [DOC] amounts have 8 decimals


CROWD_MAX_LOTS = 1_000_000  # crowd orders up to 0.01


EXCHANGE = "OPENTRADE-SIM"  # [INF] the `exchange` of the simulated consolidated book


WS_PATH = "/exchange/ws"


SESSION_COOKIE = "JSESSIONID"


MAX_LEVELS = 20


DEFAULT_LEVELS = 20  # [INF] a book subscription without a levels argument gets 20


NEW_YORK = ZoneInfo("America/New_York")


# [INF] the venue keeps this many login sessions, the newest; an older cookie is refused (401)
# and the client logs in again
MAX_LOGIN_SESSIONS = 64


PUBLIC_CHANNELS = ("ORDER_BOOK_PUBLIC", "TRADE_PUBLIC")


PRIVATE_CHANNELS = ("BALANCE", "TRADE_PRIVATE")


ORDER_TYPES = ("MARKET", "LIMIT", "POST_ONLY")


TIFS = ("GTC", "GTD", "GTT", "FOK", "IOC")


# --- wire formatting -----------------------------------------------------------------------------


def num(value: Decimal) -> orjson.Fragment:
    """A JSON number written exactly, the way the venue's doubles look: `100.0`, `0.0015`."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0")
        if text.endswith("."):
            text += "0"
    else:
        text += ".0"
    return orjson.Fragment("0.0" if text == "-0.0" else text)


def _text(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def _iso_us(ns: int) -> str:
    """`2022-11-09T18:19:29.644164Z` (orderDateTime)."""
    dt = datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{dt}.{(ns // 1000) % 1_000_000:06d}Z"


def assets_of(symbol: str) -> tuple[str, str]:
    base, _, quote = symbol.partition("/")
    return base, quote


def next_new_york_close_ns(now_ns: int) -> int:
    """The venue's GTD: until 4:59 PM New York (the next one)."""
    now = datetime.fromtimestamp(now_ns / 1e9, NEW_YORK)
    close = now.replace(hour=16, minute=59, second=0, microsecond=0)
    if close <= now:
        close += timedelta(days=1)
    return int(close.timestamp()) * 1_000_000_000


class Refused(Exception):
    """A request the venue answers with an ERROR event."""


# --- state ---------------------------------------------------------------------------------------


@attrs.define(slots=True, eq=False)
class SimOrderState:
    """One of our account's orders as the venue shows it (it may span several engine orders after
    a MODIFY: the engine has no amend, so the sim cancels and replaces, keeping the fills)."""

    client_order_id: str
    exch_order_id: str
    symbol: str
    side: Side
    order_type: str  # MARKET | LIMIT | POST_ONLY
    tif: str
    price: Decimal | None
    amount: Decimal
    request_type: str
    exchange_name: str | None
    created_ns: int
    expire_ns: int | None = None
    engine_id: str | None = None
    state: SimOrder | None = None  # latest engine snapshot of the current engine order
    prior_filled: Decimal = Decimal(0)  # fills of replaced engine orders
    prior_notional: Decimal = Decimal(0)
    retired: set[str] = attrs.Factory(set)
    expired: bool = False
    message: str | None = None
    # our own CANCEL ended it: the documented acknowledgement is an `OrderUpdate`, so the
    # engine's CANCELLED is not pushed as an `Order` update as well (see `cancel_order_update`)
    cancel_requested: bool = False
    # (trade id, price, size, ts_ns) per fill: what GET TRADES_HISTORY lists
    fills: list[tuple[str, Decimal, Decimal, int]] = attrs.Factory(list)

    @property
    def filled(self) -> Decimal:
        return self.prior_filled + (self.state.filled if self.state else Decimal(0))

    @property
    def avg_price(self) -> Decimal:
        filled = self.filled
        if filled == 0:
            return Decimal(0)
        notional = self.prior_notional
        if self.state is not None:
            notional += self.state.avg_price * self.state.filled
        return notional / filled

    @property
    def is_open(self) -> bool:
        return self.state is not None and self.state.status == OPEN and not self.expired

    @property
    def status(self) -> str:
        if self.state is None:
            return "NEW"
        if self.expired:
            return "EXPIRED"
        engine_status = self.state.status
        if engine_status == OPEN:
            return "PARTIALLY_FILLED" if self.filled > 0 else "ACTIVE"
        if engine_status == FILLED:
            return "FILLED"
        if engine_status == CANCELLED:
            return "CANCELLED"
        return "REJECTED"


@attrs.define(slots=True, eq=False)
class WsSession:
    conn: WsConnection
    books: dict[str, int] = attrs.Factory(dict)  # symbol -> levels
    trades: set[str] = attrs.Factory(set)
    balance: set[str] = attrs.Factory(set)  # currencies
    orders: set[str] = attrs.Factory(set)  # instruments subscribed on TRADE_PRIVATE
    token: str | None = None  # the signature the private subscriptions were made with
    # the token sent on the handshake (`Authorization`): the SDK's GET TRADE_POSITIONS carries
    # no signature, so that GET is checked against this one [INF]
    handshake_token: str | None = None
    last_ping: float = 0.0


# --- helpers -------------------------------------------------------------------------------------


def _args(msg: dict) -> dict[str, str]:
    raw = msg.get("channelArgs") or []
    if not isinstance(raw, list):
        raise Refused("channelArgs must be a list")
    out: dict[str, str] = {}
    for entry in raw:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise Refused("channelArgs entries are {name, value}")
        value = entry.get("value")
        out[entry["name"]] = value if isinstance(value, str) else str(value)
    return out


def _int_arg(args: dict[str, str], name: str, default: int) -> int:
    raw = args.get(name)
    if raw is None:
        return default
    values = parse_list_value(raw)
    try:
        return int(values[0]) if len(values) == 1 else int("x")
    except ValueError:
        raise Refused(f"{name} must be an integer") from None


_REFUSALS = Refusals(error=Refused, wrong_type="{name} must be a number")


def _positive(item: dict, field: str) -> Decimal:
    return parse_decimal(item.get(field), field, _REFUSALS, types=(str, int, Decimal))


PRICE_DIGITS = 7  # [DOC] "up to 7 significant digits"
AMOUNT_STEP = Decimal("0.00000001")  # [DOC] "up to 8 decimals"


def cut_price(price: Decimal) -> Decimal:
    """[DOC] a price with more than 7 significant digits is "cut by the API": truncated [INF]
    toward zero to 7 significant digits (123456.78 -> 123456.7, 60123.456 -> 60123.45). The
    document's own examples (1234.567, 0.0001234567) have 7 and pass unchanged, so no decimal
    limit is applied to prices here (the document's two limits conflict on its last example)."""
    digits = price.adjusted() + 1  # digits left of the point (or minus leading zeros)
    exponent = digits - PRICE_DIGITS
    if price.as_tuple().exponent >= exponent:  # type: ignore[operator]
        return price
    return price.quantize(Decimal(1).scaleb(exponent), rounding=ROUND_DOWN).normalize()


def round_amount(amount: Decimal) -> Decimal:
    """[DOC] "anything exceeding [8 decimals] will be rounded to the 8th decimal" (half-up
    [INF])."""
    if amount.as_tuple().exponent >= -8:  # type: ignore[operator]
        return amount
    return amount.quantize(AMOUNT_STEP, rounding=ROUND_HALF_UP)


def _date_arg(args: dict[str, str], name: str) -> int | None:
    raw = args.get(name)
    if not raw:
        return None
    try:
        dt = datetime.fromisoformat(raw)
    except ValueError:
        raise Refused(f"{name} must look like 2022-12-01T00:00:00") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp()) * 1_000_000_000


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value
    return None
