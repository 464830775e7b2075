"""What every part of the Roxom simulator shares: error codes, channels, wire formats, the order
record and the REST refusal."""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import Any

import attrs
import structlog

from framework.events import Side
from framework.sim.parsing import Refusals, parse_decimal
from framework.sim.server import (
    dumps,
)
from framework.venues.roxom.auth import (
    new_private_key_pem,
)

log = structlog.get_logger("botrun.sim.roxom")


# [DOC] WS error codes (strings)
AUTH_FAILED, INVALID_CHANNEL, INVALID_SYMBOL = "600010", "60014", "60015"


SUBSCRIPTION_LIMIT, MALFORMED, BINARY, INTERNAL = "60016", "60017", "60018", "60019"


MARKET_CHANNELS = ("level1", "trade", "depth", "ticker")


PRIVATE_CHANNELS = ("orders", "balance", "positions", "account")


# the account's owner id on the matching engine: fixed, so that tests can tell our orders and
# fills from the crowd's (the venue's accountId is a generated uuid)
ENGINE_OWNER = "roxom-sim-account"


FINAL = frozenset({"filled", "cancelled", "partiallyfilledcancelled", "rejected", "inactive"})


MAX_SUBSCRIPTIONS = 100  # [INF] per connection; the docs name the error but not the limit


DEFAULT_BALANCE = Decimal("1")  # BTC


FUNDING_RATE = "0.0001"  # [INF] a constant funding rate


CROWD_MAX_LOTS = 100


_PX = Decimal("0.00000001")


_ERROR_MESSAGES = {
    AUTH_FAILED: "Authentication failed",
    INVALID_CHANNEL: "Invalid channel",
    INVALID_SYMBOL: "Invalid symbol",
    SUBSCRIPTION_LIMIT: "Subscription limit exceeded",
    MALFORMED: "Malformed JSON",
    BINARY: "Binary messages not supported (use text messages only)",  # [DOC] wording
    INTERNAL: "Internal error",
}


@functools.cache
def sim_private_key() -> str:
    """The simulator account's RSA key: generated once per process at run time, never stored."""
    return new_private_key_pem()


def px(value: Decimal) -> str:
    """Prices with the 8 decimals of the docs ("0.00432450")."""
    return format(value.quantize(_PX), "f")


def qty(value: Decimal) -> str:
    return format(value, "f")


def _text(obj: Any) -> str:
    return dumps(obj).decode()


# --- state ---------------------------------------------------------------------------------------


@attrs.define(slots=True)
class RoxOrder:
    order_id: str
    client_order_id: str | None
    symbol: str
    side: Side
    order_type: str  # market | limit | stop | stoplimit
    size: Decimal
    limit_price: Decimal | None
    trigger_price: Decimal | None
    tif: str  # gtc | ioc | gtd
    post_only: bool
    cancel_at_ms: int | None
    status: str = "pendingsubmit"
    executed: Decimal = Decimal(0)
    notional: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    fill_px: Decimal | None = None
    fill_fee: Decimal | None = None
    reason: str | None = None
    engine_id: str | None = None
    position_id: str | None = None
    timestamp: int = 0
    created_ns: int = 0


class _Refused(Exception):
    """A REST request refused with the venue's error body."""

    def __init__(self, status: int, message: str, details: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.details = status, message, details


_REFUSALS = Refusals(
    error=lambda message: _Refused(400, "Invalid request", message),
    not_a_number="{name} is not a number",
)


def _decimal(body: dict[str, Any], name: str) -> Decimal:
    return parse_decimal(body.get(name), name, _REFUSALS, types=(str, int))
