"""What every part of the Power.Trade simulator shares: constants and error codes, markets, the
simulator's key, wire formats, and the client, order and RFQ records."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import attrs
import orjson
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from framework.events import Side
from framework.sim.engine import (
    SimFill,
)
from framework.sim.parsing import Refusals, parse_decimal
from framework.sim.server import WsConnection

log = structlog.get_logger("botrun.sim.powertrade")


SIM_API_KEY = "sim-api-key"


# our account's owner id on the matching engine (fixed: the chaos tests look for its orders)
ENGINE_OWNER = SIM_API_KEY


# [INF] the simulator's built-in account key: a fixed P-256 scalar, so a standalone simulator
# and an adapter started separately agree on it without exchanging files (not a real credential)
_SIM_KEY_SCALAR = 0x5EED_0003_C2FA_7B79_8C92_2768_0000_0000_0000_0000_0000_0000_0000_0001


RFQ_TTL_S = 30 * 60  # [DOC] indicative orders expire after 30 minutes unless refreshed


CROWD_RFQ_TTL_S = 30.0  # [INF] the synthetic requesters withdraw unanswered RFQs after this


HEARTBEAT_S = 5.0  # [DOC]


# [INF] no disconnect rule is documented: by default a silent client stays connected; the strict
# option (`idle_drop_s=IDLE_DROP_S`) closes it after three heartbeat periods without a message
IDLE_DROP_S = 15.0


# [CODE] `recv_window` counts 10-minute exchange cycles ("1" -> 10 min, "144" -> 1 day)
CYCLE_S = 600
# [INF] the reason of the unsolicited `cancel_order` that ends an order whose recv_window ran out
RECV_WINDOW_EXPIRED = "recv_window_expired"
# [CODE Hummingbot IGNORABLE_ERROR_TEXTS] a repeated subscribe; [INF] its code
ALREADY_SUBSCRIBED = "add subscription failed, already subscribed"
SUBSCRIPTION_FAILED = "5"


RFQ_OWNER = "crowd-rfq"


# error codes: [DOC] 0 ok, 10 auth, 12 parse; the rest [INF]
OK, AUTH_FAILED, PARSE_ERROR = "0", "10", "12"


UNKNOWN_REQUEST, NOT_LOGGED_IN, DUPLICATE_ID, UNKNOWN_SYMBOL, ORDER_NOT_FOUND = (
    "13",
    "15",
    "17",
    "19",
    "18",
)


@attrs.frozen(slots=True)
class Market:
    entity_id: str
    base: str
    quote: str
    mid: Decimal
    price_step: Decimal
    qty_step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_value: Decimal
    max_value: Decimal
    tags: tuple[str, ...] = ("spot",)


D = Decimal


DEFAULT_MARKETS: dict[str, Market] = {
    "BTC-USD": Market(
        "4", "BTC", "USD", D(60000), D("0.1"), D("0.0001"), D("0.0001"), D(100), D("0.00001"),
        D(100_000_000),
    ),
    "ETH-USD": Market(
        "5", "ETH", "USD", D(3000), D("0.01"), D("0.001"), D("0.001"), D(1000), D("0.01"),
        D(10_000_000),
    ),
}  # fmt: skip


_ZERO = D(0)


SYNTHETIC_ENTITY_IDS = 1000  # [INF] synthetic markets are numbered from here, above the real ids


def synthetic_markets(
    markets: Mapping[str, Market | tuple[Decimal, Decimal]],
) -> dict[str, Market]:
    """Each `(mid, tick)` as a synthetic spot `Market`, the rest kept as given.

    The symbol is `BASE-QUOTE` ("X001-USD"); quantity rules are BTC-USD's, and the tradeable
    entity id is numeric ([DOC] ids are numeric) and unused by the other markets.
    """
    used = {m.entity_id for m in markets.values() if isinstance(m, Market)}
    next_id = SYNTHETIC_ENTITY_IDS
    out: dict[str, Market] = {}
    for symbol, m in markets.items():
        if isinstance(m, Market):
            out[symbol] = m
            continue
        base, dash, quote = symbol.partition("-")
        if not (base and dash and quote):
            raise ValueError(f"synthetic Power.Trade market {symbol!r} is not BASE-QUOTE")
        while str(next_id) in used:
            next_id += 1
        used.add(str(next_id))
        mid, tick = m
        out[symbol] = Market(
            str(next_id), base, quote, D(mid), D(tick), D("0.0001"), D("0.0001"), D(100),
            D("0.00001"), D(100_000_000),
        )  # fmt: skip
    return out


DEFAULT_BALANCES = {"USD": D(10_000_000), "BTC": D(100), "ETH": D(1000)}


# [CODE `market-proxy/parser/getOrderRequest.ts`, integration/ws/place-multi-leg-order.test.ts]
# a multi-leg order's legs; its composite instrument is entered as an instrument of its own
MULTI_LEG = "multi_leg"  # [INF] the composite's tag (never listed in entities_and_rules)
MAX_LEGS = 10  # [DOC] at most 10 legs, ascending by entity id, else `invalid_legs`
INVALID_LEGS = "invalid_legs"


# [CODE integration/rest/balance.test.ts] the venue's deliverable id of USD; the rest of the
# venue's deliverable catalogue is not published, so the simulator numbers the others ([INF])
KNOWN_DELIVERABLE_IDS = {"USD": "2"}
FIRST_DELIVERABLE_ID = 100  # [INF] clear of the known ids


# [CODE integration/ws/positions.test.ts] a perpetual's position `product_type`; [INF] the others
PRODUCT_TYPES = {"perpetual": "perpetual_future", "future": "future", "option": "option"}


def deliverable_ids(markets: Mapping[str, Market], held: Iterable[str] = ()) -> dict[str, str]:
    """Every deliverable of the catalogue (each asset, each derivative instrument), then any
    other asset in `held` (e.g. one the account was seeded with), with its id.

    [CODE `market-proxy/types.ts` DeliverableInfoRaw, PositionRaw, BalanceRaw] deliverables are
    named by `symbol`: the balances' assets ("USD") and the positions' instruments
    ("BTC-USD-PERPETUAL"); [INF] a spot pair is no deliverable (its assets are).
    """
    names: list[str] = []
    for symbol, m in markets.items():
        if MULTI_LEG in m.tags:
            continue  # [INF] a composite settles in its legs' deliverables
        for name in (m.base, m.quote) if "spot" in m.tags else (m.base, m.quote, symbol):
            if name not in names:
                names.append(name)
    names += [name for name in held if name not in names]
    ids = {n: KNOWN_DELIVERABLE_IDS[n] for n in names if n in KNOWN_DELIVERABLE_IDS}
    used = set(KNOWN_DELIVERABLE_IDS.values())
    next_id = FIRST_DELIVERABLE_ID
    for name in names:
        if name in ids:
            continue
        while str(next_id) in used:
            next_id += 1
        ids[name] = str(next_id)
        used.add(ids[name])
    return ids


_RUN = str(secrets.randbelow(9 * 10**5) + 10**5)


def trade_id(fill: SimFill) -> str:
    """The venue trade id of an engine fill (numeric, unique across runs)."""
    return _RUN + fill.trade_id.removeprefix("T")


def sim_private_key_pem() -> str:
    key = ec.derive_private_key(_SIM_KEY_SCALAR, ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def sim_public_key_pem() -> str:
    key = ec.derive_private_key(_SIM_KEY_SCALAR, ec.SECP256R1())
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def wire(value: Decimal) -> str:
    """Power.Trade numbers: plain, with a decimal point ("0.0", "1.0", "10000.0") [real frames]."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0")
        return text + "0" if text.endswith(".") else text
    return text + ".0"


def _us(ns: int) -> str:
    return str(ns // 1000)


def _text(kind: str, body: dict[str, Any]) -> str:
    return orjson.dumps({kind: body}).decode()


def _non_string(value: Any, path: str = "") -> str | None:
    """The first scalar that is not a string ([DOC] numbers and booleans are refused)."""
    if isinstance(value, dict):
        for key, item in value.items():
            bad = _non_string(item, f"{path}.{key}" if path else key)
            if bad:
                return bad
        return None
    if isinstance(value, list):
        for i, item in enumerate(value):
            bad = _non_string(item, f"{path}[{i}]")
            if bad:
                return bad
        return None
    return None if isinstance(value, str) else (path or "value")


class _Refuse(Exception):
    """Answer the request with a `command_response` error."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


# --- state ---------------------------------------------------------------------------------------


@attrs.define(slots=True, eq=False)
class _Client:
    conn: WsConnection
    authenticated: bool = False
    books: set[str] = attrs.Factory(set)  # order-level (snap_full_updates) subscriptions
    # snap_with_deltas subscriptions: symbol -> (interval s, next flush at); and the level
    # changes not yet sent: symbol -> {(side, price): size}
    delta_books: dict[str, list[float]] = attrs.Factory(dict)
    pending: dict[str, dict[tuple[Side, Decimal], Decimal]] = attrs.Factory(dict)
    rfqs: bool = False
    last_recv: float = 0.0
    last_sent: float = 0.0
    last_heartbeat: float = 0.0


@attrs.define(slots=True, eq=False)
class _Order:
    """An order of the account as Power.Trade shows it."""

    client_order_id: str
    symbol: str
    side: Side
    type: str
    tif: str
    quantity: Decimal
    price: Decimal | None
    market_id: str
    created_ns: int
    expire_ns: int | None = None
    window_ns: int | None = None  # end of its recv_window (trio-independent engine clock)
    order_id: str = ""
    state: str = (
        "pending_new"  # pending_new | accepted | partial_fill | filled | cancelled | rejected
    )
    filled: Decimal = _ZERO
    executions: list[dict[str, str]] = attrs.Factory(list)
    cancel_requested: bool = False
    reason: str = ""
    # [CODE integration/rest/get-order-details.test.ts] order messages echo `quantity` and
    # `price` as the request spelled them ("1", "10000"); None: the request had no price
    quantity_text: str = ""
    price_text: str | None = None
    # a multi-leg order's legs as order messages list them; its `symbol` is the composite's
    legs: list[dict[str, str]] | None = None
    # a business reject found while parsing (invalid_legs): sent as order_rejected
    parse_reject: str = ""

    @property
    def open(self) -> bool:
        return self.state in ("pending_new", "accepted", "partial_fill")


@attrs.define(slots=True, eq=False)
class _Rfq:
    order_id: str
    symbol: str
    side: Side
    price: Decimal
    quantity: Decimal
    owner: str
    client_order_id: str | None
    created_ns: int
    expires_at: float  # trio clock


# [INF] every malformed number gets the same code and text; the sign is a venue rule (_invalid)
_PARSE_REFUSAL = "error parsing new order request"


_REFUSALS = Refusals(
    error=lambda text: _Refuse(PARSE_ERROR, text),
    wrong_type=_PARSE_REFUSAL,
    not_a_number=_PARSE_REFUSAL,
    not_positive=_PARSE_REFUSAL,
)


def _decimal(value: Any) -> Decimal:
    # every field is a string by now (`_non_string`); anything else is refused alike
    return parse_decimal(value, "number", _REFUSALS, types=(str,), positive=False)
