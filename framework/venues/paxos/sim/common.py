"""What every part of the Paxos simulator shares: constants, wire formats, problem+json errors,
the order and token records, request-field helpers."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import attrs
import structlog

from framework.events import Side
from framework.sim.engine import (
    SimOrder,
)
from framework.sim.parsing import Refusals, optional_decimal
from framework.sim.server import (
    HttpRequest,
    HttpResponse,
    dumps,
    json_response,
)

log = structlog.get_logger("botrun.sim.paxos")


SOR_SCOPE = "exchange:read_aggregated_marketdata_stream"


WRITE_ORDER = "exchange:write_order"


READ_ORDER = "exchange:read_order"


READ_PROFILE = "funding:read_profile"


KNOWN_SCOPES = frozenset({SOR_SCOPE, WRITE_ORDER, READ_ORDER, READ_PROFILE})


PROBLEM_BASE = "https://developer.paxos.com/docs/v2/problems/"


PROBLEM_JSON = "application/problem+json"


DEFAULT_MARKETS: dict[str, tuple[Decimal, Decimal]] = {
    "BTCUSD": (Decimal("60000"), Decimal("0.25")),
    "ETHUSD": (Decimal("3000"), Decimal("0.05")),
}


DEFAULT_BALANCES = {"USD": Decimal(1_000_000), "BTC": Decimal(100), "ETH": Decimal(1_000)}


ENGINE_LOT = Decimal("0.00000001")  # Paxos amounts have 8 decimals


CROWD_LOT = Decimal("0.0001")


AMOUNT_DECIMALS = 8


# A limit order that takes liquidity this far (or further) from mid is rejected. [DOC]
TAKER_BAND = Decimal("0.15")


STABLECOIN = "USDCUSD"


STABLE_STEP = Decimal("0.0001")


# [INF] the simulated USDC price random-walks within this band around 1
STABLE_MIN, STABLE_MAX = Decimal("0.9990"), Decimal("1.0010")


GTT_MIN_NS = 10 * 1_000_000_000  # [DOC] GTT must be more than 10 s after placing the order


REF_ID_REUSE_NS = 24 * 3600 * 1_000_000_000  # [DOC] ref_id reusable 24 h after the order closed


RECENT_EXECUTIONS = 2000  # [DOC] GET /markets/{market}/recent-executions


MAX_PAGE = 1000  # [DOC] limit <= 1000


DEFAULT_PAGE = 100  # [INF] page size when `limit` is absent


SOR_CHANNELS = ("market_data", "market_data.top_of_book", "execution_data", "heartbeat")


_ISO = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)\Z")


_BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


Level = tuple[Decimal, Decimal]


# --- wire formatting -----------------------------------------------------------------------------


def wire(value: Decimal) -> str:
    """Paxos number: plain digits, no fixed scale, no exponent ("19996", "19994.5", "0")."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _fixed8(value: Decimal) -> str:
    # REST order amounts come with 8 decimals in the doc example ("0.00000000").
    return format(value.quantize(Decimal(1).scaleb(-AMOUNT_DECIMALS)), "f")


def iso_ms(ns: int) -> str:
    """`2023-03-13T18:46:53.386Z` (public executiondata, REST)."""
    return _iso_seconds(ns) + f".{(ns // 1_000_000) % 1000:03d}Z"


def iso_ns(ns: int) -> str:
    """`2024-11-04T18:11:09.042391267Z` (SOR, stablecoin)."""
    return _iso_seconds(ns) + f".{ns % 1_000_000_000:09d}Z"


def _iso_seconds(ns: int) -> str:
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def parse_iso_ns(text: str) -> int:
    """RFC 3339 time with 0-9 fractional digits to unix ns; ValueError if malformed."""
    match = _ISO.match(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    whole, fraction, zone = match.groups()
    offset = "+00:00" if zone == "Z" else zone
    seconds = int(datetime.fromisoformat(whole + offset).timestamp())
    return seconds * 1_000_000_000 + int((fraction or "").ljust(9, "0"))


def match_number(trade_id: str) -> str:
    """12-char uppercase base36 id like Paxos' `match_number`, derived from the engine trade id."""
    # [INF] a hash of the trade id: stable across reconnects, so clients can deduplicate
    digest = hashlib.blake2b(trade_id.encode(), digest_size=8).digest()
    n = int.from_bytes(digest, "big") % 36**12
    chars = []
    for _ in range(12):
        n, digit = divmod(n, 36)
        chars.append(_BASE36[digit])
    return "".join(reversed(chars))


def execution_id(trade_id: str) -> str:
    """The engine's trade id ("T0000000042") as Paxos' numeric uint64 string ("42")."""
    return str(int(trade_id.lstrip("T")))


def _levels(levels: Iterable[Level]) -> list[dict[str, str]]:
    return [{"price": wire(price), "amount": wire(size)} for price, size in levels]


def _text(obj: Any) -> str:
    return dumps(obj).decode()


def assets_of(market: str) -> tuple[str, str]:
    """(base, quote) of a Paxos market: the quote is the 3-letter fiat suffix (BTCUSD, PAXGUSD)."""
    return market[:-3], market[-3:]


# --- errors --------------------------------------------------------------------------------------


# [DOC] generic errors are `"type":"about:blank"` with the HTTP reason as title; only the
# specific problems below have a `.../problems/<slug>` type (OpenAPI `components/examples`)
GENERIC_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
SPECIFIC_TITLES = {
    "already-exists": "Already Exists",
    "insufficient-funds": "Insufficient Funds",
    "exceed-precision": "Exceeds Maximum Precision Allowed",
    "minimum-commission-exceeds-notional": "Minimum Commission Exceeds Notional",
    "notional-value-too-large": "Notional Value Too Large",  # [INF] title text
    "unavailable-market": "Unavailable Market",  # [INF] title text
    "market-conditions-prevented-execution": "Market Conditions Prevented Execution",  # [INF]
}


def problem(
    status: int, slug: str | None, detail: str, meta: dict[str, Any] | None = None
) -> HttpResponse:
    """A Paxos `application/problem+json` error: `slug` None for a generic (about:blank) one."""
    if slug is None:
        body: dict[str, Any] = {
            "type": "about:blank",
            "title": GENERIC_TITLES.get(status, "Error"),
            "status": status,
            "detail": detail,
        }
    else:
        body = {
            "type": PROBLEM_BASE + slug,
            "title": SPECIFIC_TITLES[slug],
            "status": status,
            "detail": detail,
        }
    if meta:
        body["meta"] = meta  # [DOC] the samples carry `meta` only when it says something
    return json_response(status, body, content_type=PROBLEM_JSON)


def _status_problem(status: int, detail: str) -> HttpResponse:
    # routing errors (404/405/500) and injected faults are generic problems too
    return problem(status, None, detail)


class _Problem(Exception):
    """Raised inside a handler to answer with a problem+json response."""

    def __init__(self, response: HttpResponse) -> None:
        super().__init__(response.status)
        self.response = response


def _bad_request(detail: str) -> _Problem:
    return _Problem(problem(400, None, detail))


# --- state ---------------------------------------------------------------------------------------


@attrs.define(slots=True)
class _Token:
    scopes: frozenset[str]
    expires_at: float  # trio clock


@attrs.define(slots=True)
class _PaxosOrder:
    """What Paxos shows for an order beyond the engine's state."""

    id: str
    ref_id: str | None
    market: str
    side: Side
    type: str  # LIMIT | MARKET | POST_ONLY_LIMIT
    time_in_force: str  # as requested (GTT included)
    price: Decimal | None
    base_amount: Decimal | None
    quote_amount: Decimal | None
    created_ns: int
    engine: SimOrder | None = None  # the live engine order (None if the sim rejected it itself)
    reject_reason: str | None = None
    expires_ns: int | None = None  # GTT expiry
    metadata: dict[str, str] = attrs.Factory(dict)

    @property
    def status(self) -> str:
        return "REJECTED" if self.engine is None else self.engine.status


@attrs.define(slots=True)
class _SorSession:
    # subscription keys (channel, market or None) in subscription order, for subscription_list
    keys: dict[tuple[str, str | None], None] = attrs.Factory(dict)


# --- helpers -------------------------------------------------------------------------------------


def _json_object(request: HttpRequest) -> dict[str, Any]:
    try:
        body = request.json()
    except ValueError as exc:
        raise _bad_request("request body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise _bad_request("request body must be a JSON object")
    return body


_REFUSALS = Refusals(error=_bad_request)


def _amount(body: dict[str, Any], name: str) -> Decimal | None:
    """A positive decimal field, sent as a string (numbers are tolerated); None if absent/""."""
    return optional_decimal(body, name, _REFUSALS, types=(str, int, float))


def _paging(request: HttpRequest) -> tuple[int, int]:
    """(offset, limit) from `page_cursor` and `limit`."""
    # [INF] the cursor is an opaque string; here it is the decimal offset of the next item
    try:
        offset = int(request.arg("page_cursor") or 0)
        limit = int(request.arg("limit") or DEFAULT_PAGE)
    except ValueError as exc:
        raise _bad_request("page_cursor and limit must be integers") from exc
    if offset < 0 or not 1 <= limit <= MAX_PAGE:
        raise _bad_request(f"limit must be between 1 and {MAX_PAGE}")
    return offset, limit


def _page(items: list[Any], offset: int, limit: int) -> dict[str, Any]:
    more = offset + limit < len(items)
    return {
        "items": items[offset : offset + limit],
        "next_page_cursor": str(offset + limit) if more else "",
    }


def _time_arg(request: HttpRequest, name: str) -> int | None:
    raw = request.arg(name)
    if not raw:
        return None
    try:
        return parse_iso_ns(raw)
    except ValueError as exc:
        raise _bad_request(f"{name} must be an RFC 3339 time") from exc


def _basic_credentials(headers: dict[str, str]) -> tuple[str, str] | None:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except ValueError:
        return None
    client_id, sep, client_secret = decoded.partition(":")
    return (client_id, client_secret) if sep else None
