"""Power.Trade simulator: the Market Proxy WebSocket protocol on the shared matching engine.

One WebSocket (any path) carries everything, as on the real proxy: `authenticate` (ES256 JWT),
`entities_and_rules_request`, `subscribe` (order-by-order book from the engine's orders),
`register_for_rfqs` / `deregister_for_rfqs`, `new_order` (firm `market_id "0"` or RFQ `"none"`),
`cancel_order`, `cancel_all_orders`, `refresh_interest`, `balances`, `position_info`,
`order_details_request`, heartbeats. Reference: shared/venues/powertrade.md; choices where the
venue documents nothing are marked `[INF]` and the adapter agrees with them.

The L3 feed is derived from the engine's `on_order` callbacks (every order's state after every
change, in order), so it always agrees with `engine.book()`.

Fault injection (framework/sim/faults.py) beyond the shared frame faults: `late_fill`, a trade
that reaches the order after the cancel request arrived (rolled on each `cancel_order` of a
resting order). Not `token_expiry`: the login token only has to survive `authenticate`, and the
venue documents no end to a logged-in session.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any

import attrs
import orjson
import structlog
import trio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from framework.events import Side
from framework.sim.accounts import Accounts
from framework.sim.engine import (
    CANCELLED,
    FILLED,
    GTC,
    IOC,
    LIMIT,
    MARKET,
    OPEN,
    REJECTED,
    EngineListener,
    MatchingEngine,
    SimFill,
    SimOrder,
)
from framework.sim.faults import late_fill, roll_late_fill
from framework.sim.loopback import LoopbackSimulator, seed_crowds
from framework.sim.market import SyntheticMarket
from framework.sim.orders import OrderStore
from framework.sim.parsing import Refusals, parse_decimal
from framework.sim.server import SimApp, WsConnection
from framework.venues.powertrade.auth import verify_token
from framework.venues.powertrade.decode import FULLY_EXECUTED, NOT_FOUND

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
IDLE_DROP_S = 15.0  # [INF] three missed heartbeats: the client is gone
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
    books: set[str] = attrs.Factory(set)
    rfqs: bool = False
    last_recv: float = 0.0
    last_sent: float = 0.0


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
    order_id: str = ""
    state: str = (
        "pending_new"  # pending_new | accepted | partial_fill | filled | cancelled | rejected
    )
    filled: Decimal = _ZERO
    executions: list[dict[str, str]] = attrs.Factory(list)
    cancel_requested: bool = False
    reason: str = ""

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


# --- the simulator -------------------------------------------------------------------------------


class PowerTradeSimulator(LoopbackSimulator, EngineListener):
    def __init__(
        self,
        engine: MatchingEngine,
        accounts: Accounts,
        markets: dict[str, Market],
        *,
        seed: int = 0,
        heartbeat_s: float = HEARTBEAT_S,
        idle_drop_s: float = IDLE_DROP_S,
        rfq_rate_hz: float = 0.0,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.engine = engine
        self.accounts = accounts
        self.markets = markets
        self.api_key = SIM_API_KEY
        self.owner = ENGINE_OWNER  # the account's name on the engine
        self.heartbeat_s = heartbeat_s
        self.idle_drop_s = idle_drop_s
        self.rfq_rate_hz = rfq_rate_hz
        self.crowds: dict[str, SyntheticMarket] = {}
        self.port: int | None = None
        # test controls: hold new orders in pending_new until `release_entries()`; refuse logins
        self.hold_entries = False
        self.refuse_logins = False
        self._clock_ns = clock_ns
        self._rng = random.Random(seed)
        self._public_key = sim_public_key_pem()
        self._clients: set[_Client] = set()
        # our orders by client_order_id (creation order) and engine id, bounded like the engine
        self.orders: OrderStore[_Order] = OrderStore(
            key=lambda o: o.client_order_id,
            engine_id=lambda o: o.order_id,
            working=lambda o: o.open,
            limit=lambda: engine.history_limit,
        )
        self._held: list[_Order] = []
        self._rfqs: dict[str, _Rfq] = {}  # by RFQ order id
        self._rfq_seq = 0
        self._entity = {m.entity_id: s for s, m in markets.items()}
        # what the L3 feed has published: engine order id -> (side, price, size, ts_ns)
        self._l3: dict[str, dict[str, tuple[Side, Decimal, Decimal, int]]] = {
            s: {} for s in markets
        }
        for order in engine.orders(open_only=True):
            if order.symbol in self._l3 and order.price is not None:
                self._l3[order.symbol][order.order_id] = (
                    order.side,
                    order.price,
                    order.remaining,
                    order.updated_ns,
                )
        self.app = SimApp()
        self.app.ws("/")(self._ws)
        self.app.ws_fallback = self._ws
        engine.add_listener(self)

    @classmethod
    def build(
        cls,
        seed: int,
        markets: Mapping[str, Market | tuple[Decimal, Decimal]] | None = None,
        **kwargs: Any,
    ) -> PowerTradeSimulator:
        """A simulator on a fresh engine with a seeded crowd on each market.

        `markets` maps a symbol to its `Market`, or to `(mid, tick)` for a synthetic spot market
        (`synthetic_markets`); the default is BTC-USD and ETH-USD.
        """
        markets = synthetic_markets(markets or DEFAULT_MARKETS)
        clock_ns = kwargs.pop("clock_ns", time.time_ns)
        # [INF] numeric ids ([DOC] order_id must be numeric), unique across simulator runs so a
        # persistent journal never mistakes a new run's ids (or fills) for old ones
        engine = MatchingEngine(clock_ns=clock_ns, id_prefix=_RUN)
        for symbol, m in markets.items():
            engine.add_symbol(symbol, m.price_step, m.qty_step)
        accounts = Accounts(engine, lambda s: (markets[s].base, markets[s].quote))
        sim = cls(engine, accounts, markets, seed=seed, clock_ns=clock_ns, **kwargs)
        accounts.open(sim.owner, dict(DEFAULT_BALANCES))
        sim.crowds.update(
            seed_crowds(
                engine,
                ((symbol, m.mid, m.price_step, m.qty_step, 100) for symbol, m in markets.items()),
                seed,
            )
        )
        return sim

    def background(self) -> list[Callable[[], Awaitable[None]]]:
        loops = [self._timers]
        if self.rfq_rate_hz:
            loops.append(self._rfq_requesters)
        return loops

    # --- test and fault controls ---------------------------------------------------------------

    def release_entries(self) -> None:
        """Enter every order held in pending_new (`hold_entries`)."""
        held, self._held = self._held, []
        for order in held:
            if order.open:
                self._enter(order)

    def broadcast_raw(self, text: str) -> None:
        """Send a raw frame to every client (bad-input fault injection)."""
        for client in list(self._clients):
            self._send_raw(client, text)

    def l3_orders(self, symbol: str) -> dict[str, tuple[Side, Decimal, Decimal]]:
        return {oid: (s, p, q) for oid, (s, p, q, _) in self._l3[symbol].items()}

    def order(self, client_order_id: str) -> _Order | None:
        return self.orders.get(client_order_id)

    def rfq(self, order_id: str) -> _Rfq | None:
        """A live RFQ (the account's or a synthetic requester's) by its order id."""
        return self._rfqs.get(order_id)

    def rfqs(self) -> list[_Rfq]:
        """Every live RFQ, oldest first."""
        return list(self._rfqs.values())

    def add_client(self, client: _Client) -> None:
        """Serve `client` as if it had connected (tests drive `handle` without a socket)."""
        self._clients.add(client)

    def handle(self, client: _Client, raw: str) -> None:
        """Answer one request frame from `client`, as if it had arrived on its socket."""
        self._handle(client, raw)

    def expire(self, now: float) -> None:
        """End what has expired by trio time `now` (GTD/DAY orders, RFQs): the timer's job."""
        self._expire(now)

    # --- connection ----------------------------------------------------------------------------

    async def _ws(self, conn: WsConnection, **_: str) -> None:
        client = _Client(conn, last_recv=trio.current_time(), last_sent=trio.current_time())
        self._clients.add(client)
        try:
            while (raw := await conn.receive_text()) is not None:
                client.last_recv = trio.current_time()
                self._handle(client, raw)
        finally:
            self._clients.discard(client)

    def _send(self, client: _Client, kind: str, body: dict[str, Any]) -> None:
        self._send_raw(client, _text(kind, body))

    def _send_raw(self, client: _Client, text: str) -> None:
        client.last_sent = trio.current_time()
        client.conn.enqueue(text)

    def _owner_clients(self) -> list[_Client]:
        return [c for c in self._clients if c.authenticated]

    def _to_owner(self, kind: str, body: dict[str, Any]) -> None:
        # [INF] order lifecycle messages go to every logged-in connection of the account
        frame = _text(kind, body)
        for client in self._owner_clients():
            self._send_raw(client, frame)

    async def _timers(self) -> None:
        while True:
            await trio.sleep(min(0.5, self.heartbeat_s))
            now = trio.current_time()
            for client in list(self._clients):
                if now - client.last_recv > self.idle_drop_s:
                    await client.conn.close(1001, "heartbeat timeout")
                    continue
                if now - client.last_sent >= self.heartbeat_s:
                    self._heartbeat(client)
            self._expire(now)

    def _heartbeat(self, client: _Client) -> None:
        self._send(client, "heartbeat", {"server_utc_timestamp": _us(self._clock_ns())})

    # --- requests ------------------------------------------------------------------------------

    def _handle(self, client: _Client, raw: str) -> None:
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self._send(client, "command_response", self._error(PARSE_ERROR, "malformed JSON", ""))
            return
        if not isinstance(msg, dict) or len(msg) != 1:
            text = "a message is an object with exactly one key"
            self._send(client, "command_response", self._error(PARSE_ERROR, text, ""))
            return
        ((kind, body),) = msg.items()
        tag = body.get("user_tag") if isinstance(body, dict) else None
        tag = tag if isinstance(tag, str) else ""
        try:
            if not isinstance(body, dict):
                raise _Refuse(PARSE_ERROR, f"error parsing {kind} request")
            bad = _non_string(body)
            if bad is not None:
                # [DOC] a number or boolean is not accepted; [INF] code 12 for every request
                raise _Refuse(PARSE_ERROR, f"error parsing {kind} request: {bad} must be a string")
            if tag and not 1 <= len(tag.encode()) <= 64:
                raise _Refuse(PARSE_ERROR, "user_tag must be 1-64 bytes")
            handler = self._handlers().get(kind)
            if handler is None:
                raise _Refuse(UNKNOWN_REQUEST, f"unknown request {kind}")
            needs_login, fn = handler
            if needs_login and not client.authenticated:
                raise _Refuse(NOT_LOGGED_IN, "not authenticated")
            fn(client, body, tag)
        except _Refuse as exc:
            self._send(client, "command_response", self._error(exc.code, exc.text, tag))
        except Exception:
            # a simulator bug must not end the client's session: answer and carry on
            log.exception("request failed", request=kind)
            self._send(client, "command_response", self._error("99", "internal error", tag))

    def _handlers(self) -> dict[str, tuple[bool, Callable[[_Client, dict[str, Any], str], None]]]:
        return {
            "heartbeat": (False, self._on_heartbeat),
            "authenticate": (False, self._authenticate),
            "entities_and_rules_request": (False, self._entities),
            "subscribe": (False, self._subscribe),
            "unsubscribe": (False, self._unsubscribe),
            "register_for_rfqs": (False, self._register_rfqs),
            "deregister_for_rfqs": (False, self._deregister_rfqs),
            "new_order": (True, self._new_order),
            "cancel_order": (True, self._cancel_order),
            "cancel_all_orders": (True, self._cancel_all),
            "refresh_interest": (True, self._refresh_interest),
            "balances": (True, self._balances),
            "position_info": (True, self._positions),
            "order_details_request": (True, self._order_details),
        }

    @staticmethod
    def _error(code: str, text: str, tag: str) -> dict[str, str]:
        return {"error_code": code, "error_text": text, "user_tag": tag}

    def _ok(self, client: _Client, tag: str) -> None:
        # [CODE] real frames say "success" where the docs show ""
        self._send(client, "command_response", self._error(OK, "success", tag))

    def _on_heartbeat(self, client: _Client, body: dict[str, Any], tag: str) -> None:
        # [INF] each client heartbeat is answered, so a client is never left without frames
        self._heartbeat(client)

    def _authenticate(self, client: _Client, body: dict[str, Any], tag: str) -> None:
        token = body.get("credentials_secret", "")
        problem = (
            "logins refused"
            if self.refuse_logins
            else verify_token(token, self._public_key, self.api_key)
        )
        if problem is not None:
            client.authenticated = False
            log.info("login refused", reason=problem)
            text = "auth server rejected the authenticate request, Unauthorized"
            raise _Refuse(AUTH_FAILED, text)
        client.authenticated = True
        self._ok(client, tag)

    def _entities(self, client: _Client, body: dict[str, Any], tag: str) -> None:
        symbols = [
            {
                "symbol": symbol,
                "tradeable_entity_id": m.entity_id,
                "status": "active",
                "base_asset": m.base,
                "quote_asset": m.quote,
                "minimum_quantity": wire(m.min_qty),
                "maximum_quantity": wire(m.max_qty),
                "minimum_value": wire(m.min_value),
                "maximum_value": wire(m.max_value),
                "quantity_step": wire(m.qty_step),
                "price_step": wire(m.price_step),
                "tags": list(m.tags),
            }
            for symbol, m in self.markets.items()
        ]
        self._send(
            client,
            "entities_and_rules_response",
            {"server_utc_timestamp": _us(self._clock_ns()), "user_tag": tag, "symbols": symbols},
        )

    def _symbol(self, body: dict[str, Any]) -> str:
        symbol = body.get("symbol")
        if symbol is None and "tradeable_entity_id" in body:
            symbol = self._entity.get(body["tradeable_entity_id"])
        if symbol not in self.markets:
            raise _Refuse(UNKNOWN_SYMBOL, f"unknown symbol {symbol}")
        return str(symbol)

    # --- market data ---------------------------------------------------------------------------

    def _subscribe(self, client: _Client, body: dict[str, Any], tag: str) -> None:
        if body.get("market_id", "0") != "0":
            raise _Refuse(PARSE_ERROR, "subscribe: market_id must be 0")
        symbol = self._symbol(body)
        kind = body.get("type", "snap_with_deltas")
        if kind not in ("snap_only", "snap_with_deltas", "snap_full_updates"):
            raise _Refuse(PARSE_ERROR, f"subscribe: unknown type {kind}")
        self._ok(client, tag)
        # snapshot and subscription with no await between: no change falls in the gap.
        # [INF] a repeated subscribe sends a fresh snapshot (the adapter's resync)
        self._send(client, "snapshot", self._snapshot(symbol))
        if kind == "snap_only":
            client.books.discard(symbol)
        else:
            client.books.add(symbol)  # [INF] snap_full_updates is served like snap_with_deltas

    def _unsubscribe(self, client: _Client, body: dict[str, Any], tag: str) -> None:
        client.books.discard(self._symbol(body))
        self._ok(client, tag)

    def _snapshot(self, symbol: str) -> dict[str, Any]:
        m = self.markets[symbol]
        orders = self._l3[symbol]
        rows: dict[Side, list[tuple[Decimal, int, str, Decimal]]] = {Side.BUY: [], Side.SELL: []}
        for oid, (side, price, size, ts) in orders.items():
            rows[side].append((price, ts, oid, size))
        rows[Side.BUY].sort(key=lambda r: (-r[0], r[1]))
        rows[Side.SELL].sort(key=lambda r: (r[0], r[1]))

        def row(r: tuple[Decimal, int, str, Decimal]) -> dict[str, str]:
            return {"utc_timestamp": _us(r[1]), "price": wire(r[0]), "quantity": wire(r[3]),
                    "order_id": r[2]}  # fmt: skip

        return {
            "server_utc_timestamp": _us(self._clock_ns()),
            "market_id": "0",
            "tradeable_entity_id": m.entity_id,
            "symbol": symbol,
            "buy": [row(r) for r in rows[Side.BUY]],
            "sell": [row(r) for r in rows[Side.SELL]],
        }

    def _book_message(self, symbol: str, kind: str, fields: dict[str, str]) -> None:
        now = _us(self._clock_ns())
        body = {
            "server_utc_timestamp": now,
            "utc_timestamp": now,
            "market_id": "0",
            "tradeable_entity_id": self.markets[symbol].entity_id,
            "symbol": symbol,
            **fields,
        }
        frame = _text(kind, body)
        for client in list(self._clients):
            if symbol in client.books:
                self._send_raw(client, frame)

    # --- engine callbacks ----------------------------------------------------------------------

    def on_order(self, order: SimOrder) -> None:
        if order.symbol in self._l3:
            self._l3_change(order)
        if order.owner == self.owner:
            self._own_order(order)

    def _l3_change(self, order: SimOrder) -> None:
        book = self._l3[order.symbol]
        prior = book.get(order.order_id)
        resting = order.status == OPEN and order.price is not None and order.remaining > 0
        side = "buy" if order.side is Side.BUY else "sell"
        if prior is None:
            if resting:
                assert order.price is not None
                book[order.order_id] = (order.side, order.price, order.remaining, order.updated_ns)
                fields = {"side": side, "order_id": order.order_id, "price": wire(order.price),
                          "quantity": wire(order.remaining)}  # fmt: skip
                self._book_message(order.symbol, "order_added", fields)
            return
        _, price, size, ts = prior
        base = {"side": side, "order_id": order.order_id, "price": wire(price)}
        if resting and order.remaining < size:
            book[order.order_id] = (order.side, price, order.remaining, ts)
            # [INF] order_executed `quantity` = the quantity executed by this event
            qty = wire(size - order.remaining)
            self._book_message(order.symbol, "order_executed", {**base, "quantity": qty})
        elif not resting:
            del book[order.order_id]
            if order.status == FILLED:
                # fully executed: the order leaves the book with its last execution
                qty = wire(size)
                self._book_message(order.symbol, "order_executed", {**base, "quantity": qty})
            else:
                self._book_message(order.symbol, "order_deleted", base)

    def on_trade(self, fill: SimFill) -> None:
        now = _us(fill.ts_ns)
        self._book_message(
            fill.symbol,
            "trade",
            {
                "trade_id": trade_id(fill),
                "price": wire(fill.price),
                "quantity": wire(fill.quantity),
                "buy_display_order_id": "",
                "sell_display_order_id": "",
            },
        )
        for engine_id, owner, flag in (
            (fill.maker_order_id, fill.maker_owner, "added"),
            (fill.taker_order_id, fill.taker_owner, "taken"),
        ):
            if owner != self.owner:
                continue
            order = self._own(engine_id)
            if order is None:
                continue
            self._accepted(order)
            order.filled += fill.quantity
            order.state = "filled" if order.filled >= order.quantity else "partial_fill"
            execution = {
                "trade_id": trade_id(fill),
                "executed_price": wire(fill.price),
                "executed_quantity": wire(fill.quantity),
                "liquidity_flag": flag,
                "utc_timestamp": now,
            }
            order.executions.append(execution)
            self._to_owner(
                "execution",
                {
                    "server_utc_timestamp": now,
                    "tradeable_entity_id": self.markets[order.symbol].entity_id,
                    "symbol": order.symbol,
                    "order_id": order.order_id,
                    "client_order_id": order.client_order_id,
                    "price": wire(order.price) if order.price is not None else "0.0",
                    "side": order.side.value.lower(),
                    "order_state": order.state,
                    **execution,
                },
            )

    def _own(self, engine_id: str) -> _Order | None:
        order = self.orders.by_engine(engine_id)
        if order is None:
            sim_order = self.engine.order(engine_id)
            if sim_order is None or sim_order.client_order_id is None:
                return None
            order = self.orders.get(sim_order.client_order_id)
            if order is not None:
                order.order_id = engine_id
                self.orders.bind_engine(engine_id, order)
        return order

    def _accepted(self, order: _Order) -> None:
        if order.state != "pending_new":
            return
        order.state = "accepted"
        self._to_owner(
            "order_accepted",
            self._order_fields(order),
        )

    def _own_order(self, sim_order: SimOrder) -> None:
        order = self._own(sim_order.order_id)
        if order is None:
            return
        if sim_order.status == REJECTED:
            if order.state == "pending_new":
                self._reject(order, sim_order.reject_reason or "rejected")
            return
        self._accepted(order)
        if sim_order.status == CANCELLED and order.open and not order.cancel_requested:
            # IOC / MARKET remainder: the order ends unsolicited
            self._ended(order, "cancelled", "ioc_remainder_cancelled")

    def _reject(self, order: _Order, reason: str) -> None:
        order.state, order.reason = "rejected", reason
        self._to_owner(
            "order_rejected",
            {
                "client_order_id": order.client_order_id,
                "symbol": order.symbol,
                "quantity": wire(order.quantity),
                "price": wire(order.price) if order.price is not None else "0.0",
                "reason": reason,
                "utc_timestamp": _us(self._clock_ns()),
            },
        )

    def _end_body(self, order: _Order, reason: str) -> dict[str, str]:
        now = _us(self._clock_ns())
        entity = self.markets[order.symbol].entity_id if order.symbol in self.markets else ""
        return {
            "server_utc_timestamp": now,
            "utc_timestamp": now,
            "tradeable_entity_id": entity,
            "symbol": order.symbol,
            "order_id": order.order_id,
            "client_order_id": order.client_order_id,
            "filled_quantity": wire(order.filled),
            "reason": reason,
        }

    def _ended(self, order: _Order, state: str, reason: str, tag: str = "") -> None:
        order.state, order.reason = state, reason
        body = self._end_body(order, reason)
        if tag:
            body["user_tag"] = tag
        self._to_owner("cancel_order", body)

    # --- orders --------------------------------------------------------------------------------

    def _new_order(self, client: _Client, body: dict[str, Any], tag: str) -> None:
        coid = body.get("client_order_id", "")
        if not 1 <= len(coid.encode()) <= 32:
            raise _Refuse(PARSE_ERROR, "error parsing new order request: client_order_id")
        # a forgotten (trimmed) id is accepted again: the venue's memory is bounded too
        if coid in self.orders:
            raise _Refuse(DUPLICATE_ID, f"duplicate client_order_id {coid}")
        if "legs" in body:
            raise _Refuse(PARSE_ERROR, "multi-leg orders are not simulated")  # [INF]
        symbol = self._symbol(body)
        market_id = body.get("market_id", "0")
        if market_id not in ("0", "none"):
            raise _Refuse(PARSE_ERROR, "error parsing new order request: market_id")
        side = {"buy": Side.BUY, "sell": Side.SELL}.get(body.get("side", ""))
        kind = body.get("type", "")
        tif = body.get("time_in_force", "")
        if side is None or kind not in (LIMIT, MARKET) or tif not in ("GTC", "IOC", "DAY", "GTD"):
            raise _Refuse(PARSE_ERROR, "error parsing new order request")
        qty = _decimal(body.get("quantity"))
        price = _decimal(body.get("price")) if "price" in body else None
        now_ns = self._clock_ns()
        expire_ns = None
        if tif == "GTD":
            expire_us = body.get("expire_timestamp", "")
            if not expire_us.isdigit() or not (
                now_ns // 1000 - 5_000_000
                <= int(expire_us)
                <= now_ns // 1000 + 366 * 86_400_000_000
            ):
                raise _Refuse(PARSE_ERROR, "expire_time should be in range [now, +1 year]")
            expire_ns = int(expire_us) * 1000
        elif tif == "DAY":
            day = 86_400_000_000_000
            expire_ns = (now_ns // day + 1) * day  # [INF] DAY ends at the next 00:00 UTC
        order = _Order(coid, symbol, side, kind, tif, qty, price, market_id, now_ns, expire_ns)
        self.orders.add(order)
        # [INF] the acknowledgement: {"new_order": {..., "order_state": "pending_new"}}
        ack = {"user_tag": tag, "client_order_id": coid, "order_state": "pending_new",
               "utc_timestamp": _us(now_ns)}  # fmt: skip
        self._send(client, "new_order", ack)
        reason = self._invalid(order)
        if reason is not None:
            self._reject(order, reason)
            return
        if market_id == "none":
            self._new_rfq(order)
        elif self.hold_entries:
            self._held.append(order)
        else:
            self._enter(order)

    def _invalid(self, order: _Order) -> str | None:
        m = self.markets[order.symbol]
        if order.quantity <= 0 or order.quantity % m.qty_step != 0:
            return "invalid_quantity_step"
        if order.quantity < m.min_qty:
            return "quantity_less_than_minimum_quantity"
        if order.quantity > m.max_qty:
            return "quantity_greater_than_maximum_quantity"  # [DOC]
        if order.market_id == "none":
            return None  # an RFQ's price is indicative ("0.0" = none given)
        if order.type == MARKET:
            if order.tif != "IOC" or order.price is not None:
                return "market_order_must_be_ioc_without_price"
            return None
        if order.price is None or order.price <= 0 or order.price % m.price_step != 0:
            return "invalid_price_step"
        value = order.price * order.quantity
        if value < m.min_value:
            return "value_less_than_minimum_value"
        if value > m.max_value:
            return "value_greater_than_maximum_value"
        return None

    def _enter(self, order: _Order) -> None:
        # DAY / GTD rest like GTC on the engine; the simulator ends them at their expiry
        tif = IOC if order.tif == "IOC" else GTC
        sim_order = self.engine.submit(
            self.owner,
            order.symbol,
            order.side,
            order.type,
            order.quantity,
            order.price,
            tif=tif,
            client_order_id=order.client_order_id,
        )
        self._own(sim_order.order_id)
        self._accepted(order)
        if sim_order.status == OPEN:
            self._rfq_takers(order, sim_order)

    def _cancel_order(self, client: _Client, body: dict[str, Any], tag: str) -> None:
        order = self._find(body)
        if order is not None and order.open and order.market_id == "0" and order.order_id:
            self._maybe_late_fill(client, order)
        if order is None:
            rfq = self._find_rfq(body)
            if rfq is not None:
                self._remove_rfq(rfq)
                self._cancel_reply(client, body, tag, rfq.order_id, "user_cancelled")
                return
            self._cancel_reply(client, body, tag, body.get("order_id", ""), NOT_FOUND)
            return
        if not order.open:
            reason = FULLY_EXECUTED if order.state == "filled" else NOT_FOUND
            body_out = self._end_body(order, reason)
            body_out["user_tag"] = tag
            self._send(client, "cancel_order", body_out)
            return
        self._cancel(order, tag)

    def _maybe_late_fill(self, client: _Client, order: _Order) -> None:
        """Fault injection (`late_fill`): the cancel arrived, but a trade got there first."""
        faults = self.app.faults
        live = self.engine.order(order.order_id)
        if faults is None or live is None or live.status != OPEN or live.price is None:
            return
        fraction = roll_late_fill(faults, getattr(client.conn, "path", "/"))
        if fraction is not None:
            late_fill(self.engine, live, fraction)

    def _cancel(self, order: _Order, tag: str = "") -> None:
        order.cancel_requested = True
        if order.state == "pending_new":
            # a cancel that overtakes the entry: the order never reaches the book
            if order in self._held:
                self._held.remove(order)
        elif order.market_id == "none":
            rfq = next(
                (r for r in self._rfqs.values() if r.client_order_id == order.client_order_id), None
            )
            if rfq is not None:
                self._remove_rfq(rfq)
        else:
            self.engine.cancel(order.order_id)
        self._ended(order, "cancelled", "user_cancelled", tag)

    def _cancel_reply(
        self, client: _Client, body: dict[str, Any], tag: str, order_id: str, reason: str
    ) -> None:
        now = _us(self._clock_ns())
        self._send(
            client,
            "cancel_order",
            {
                "server_utc_timestamp": now,
                "utc_timestamp": now,
                "order_id": order_id,
                "client_order_id": body.get("client_order_id", ""),
                "filled_quantity": "0.0",
                "reason": reason,
                "user_tag": tag,
            },
        )

    def _find(self, body: dict[str, Any]) -> _Order | None:
        coid = body.get("client_order_id")
        if coid:
            return self.orders.get(coid)
        oid = body.get("order_id")
        return self.orders.by_engine(oid) if oid else None

    def _cancel_all(self, client: _Client, body: dict[str, Any], tag: str) -> None:
        symbol = body.get("symbol")
        targets = [
            o
            for o in self.orders.values()
            if o.open and o.market_id == "0" and symbol in (None, o.symbol)
        ]
        results = [{"client_order_id": o.client_order_id, "order_state": "pending_cancel"}
                   for o in targets]  # fmt: skip
        now = _us(self._clock_ns())
        reply = {"server_utc_timestamp": now, "user_tag": tag, "reason": "success",
                 "results": results}  # fmt: skip
        self._send(client, "cancel_all_orders", reply)
        for order in targets:
            self._cancel(order)

    def _order_fields(self, order: _Order) -> dict[str, Any]:
        """The order as every order message describes it."""
        return {
            "utc_timestamp": _us(self._clock_ns()),
            "market_id": order.market_id,
            "tradeable_entity_id": self.markets[order.symbol].entity_id,
            "symbol": order.symbol,
            "type": order.type,
            "order_id": order.order_id,
            "client_order_id": order.client_order_id,
            "quantity": wire(order.quantity),
            "price": wire(order.price) if order.price is not None else "0.0",
            "side": order.side.value.lower(),
        }

    def _order_details(self, client: _Client, body: dict[str, Any], tag: str) -> None:
        order = self._find(body)
        if order is None:
            raise _Refuse(ORDER_NOT_FOUND, NOT_FOUND)
        details = {
            "user_tag": tag,
            **self._order_fields(order),
            "order_state": "expired" if order.reason == "expired" else order.state,
            "cancel_state": "none",
            "executions": list(order.executions),
        }
        self._send(client, "order_details_response", details)

    def _expire(self, now: float) -> None:
        now_ns = self._clock_ns()
        for order in list(self.orders.values()):
            if order.open and order.expire_ns is not None and order.expire_ns <= now_ns:
                order.cancel_requested = True
                if order.order_id:
                    self.engine.cancel(order.order_id)
                self._ended(order, "cancelled", "expired")
        for rfq in list(self._rfqs.values()):
            if rfq.expires_at <= now:
                self._remove_rfq(rfq)
                own = self.orders.get(rfq.client_order_id or "")
                if own is not None and own.open:
                    self._ended(own, "cancelled", "expired")

    # --- account -------------------------------------------------------------------------------

    def _reserved(self) -> dict[str, Decimal]:
        reserved: dict[str, Decimal] = {}
        for order in self.orders.values():
            if not order.open or order.market_id != "0" or order.price is None:
                continue
            m = self.markets[order.symbol]
            left = order.quantity - order.filled
            if order.side is Side.BUY:
                reserved[m.quote] = reserved.get(m.quote, D(0)) + left * order.price
            else:
                reserved[m.base] = reserved.get(m.base, D(0)) + left
        return reserved

    def _balances(self, client: _Client, body: dict[str, Any], tag: str) -> None:
        reserved = self._reserved()
        now = _us(self._clock_ns())
        rows = []
        for asset, cash in sorted(self.accounts.balances(self.owner).items()):
            held = reserved.get(asset, D(0))
            rows.append(
                {
                    "symbol": asset,
                    "cash_balance": wire(cash),
                    "available_balance": wire(cash - held),
                    "reserved_balance": wire(held),
                    "withdrawable_balance": wire(cash - held),
                    "timestamp": now,
                }
            )
        # [INF] outer key balances_response, list under "balances"
        self._send(client, "balances_response", {"user_tag": tag, "balances": rows})

    def _positions(self, client: _Client, body: dict[str, Any], tag: str) -> None:
        rows = []
        for symbol in self.markets:
            net, cost = D(0), D(0)
            for fill in self.engine.fills(owner=self.owner, symbol=symbol):
                buy = (fill.taker_owner == self.owner) == (fill.aggressor is Side.BUY)
                net += fill.quantity if buy else -fill.quantity
                cost += fill.price * fill.quantity if buy else -fill.price * fill.quantity
            if net == 0:
                continue
            mark = self.crowds[symbol].mid if symbol in self.crowds else _ZERO
            avg = abs(cost / net)
            rows.append(
                {
                    "symbol": symbol,
                    "product_type": "spot",
                    "side": "buy" if net > 0 else "sell",
                    "size": wire(abs(net)),
                    "average_entry_price": wire(avg),
                    "mark_price": wire(mark),
                    "upnl": wire((mark - avg) * net),
                }
            )
        self._send(client, "positions_response", {"user_tag": tag, "positions": rows})

    # --- RFQs ----------------------------------------------------------------------------------

    def _register_rfqs(self, client: _Client, body: dict[str, Any], tag: str) -> None:
        self._ok(client, tag)
        client.rfqs = True
        for symbol in self.markets:
            self._send(client, "snapshot", self._rfq_snapshot(symbol))

    def _deregister_rfqs(self, client: _Client, body: dict[str, Any], tag: str) -> None:
        client.rfqs = False
        self._ok(client, tag)

    def _rfq_snapshot(self, symbol: str) -> dict[str, Any]:
        rows: dict[Side, list[dict[str, str]]] = {Side.BUY: [], Side.SELL: []}
        for rfq in self._rfqs.values():
            if rfq.symbol == symbol:
                rows[rfq.side].append(
                    {"utc_timestamp": _us(rfq.created_ns), "price": wire(rfq.price),
                     "quantity": wire(rfq.quantity), "order_id": rfq.order_id}
                )  # fmt: skip
        return {
            "server_utc_timestamp": _us(self._clock_ns()),
            "market_id": "none",
            "tradeable_entity_id": self.markets[symbol].entity_id,
            "symbol": symbol,
            "buy": rows[Side.BUY],
            "sell": rows[Side.SELL],
        }

    def _rfq_message(self, kind: str, rfq: _Rfq, fields: dict[str, str]) -> None:
        now = _us(self._clock_ns())
        body = {
            "server_utc_timestamp": now,
            "utc_timestamp": now,
            "market_id": "none",
            "tradeable_entity_id": self.markets[rfq.symbol].entity_id,
            "symbol": rfq.symbol,
            "side": "buy" if rfq.side is Side.BUY else "sell",
            "order_id": rfq.order_id,
            **fields,
        }
        frame = _text(kind, body)
        for client in list(self._clients):
            if client.rfqs:
                self._send_raw(client, frame)

    def post_rfq(
        self,
        owner: str,
        symbol: str,
        side: Side,
        quantity: Decimal,
        price: Decimal = _ZERO,
        client_order_id: str | None = None,
    ) -> _Rfq:
        """Add an RFQ to the book (the account's, or a synthetic requester's)."""
        self._rfq_seq += 1
        rfq = _Rfq(
            f"R{self._rfq_seq:08d}",
            symbol,
            side,
            price,
            quantity,
            owner,
            client_order_id,
            self._clock_ns(),
            trio.current_time() + (RFQ_TTL_S if owner == self.owner else CROWD_RFQ_TTL_S),
        )
        self._rfqs[rfq.order_id] = rfq
        self._rfq_message("order_added", rfq, {"price": wire(price), "quantity": wire(quantity)})
        return rfq

    def _new_rfq(self, order: _Order) -> None:
        rfq = self.post_rfq(
            self.owner, order.symbol, order.side, order.quantity, order.price or D(0),
            order.client_order_id,
        )  # fmt: skip
        order.order_id = rfq.order_id
        self._accepted(order)

    def _remove_rfq(self, rfq: _Rfq) -> None:
        if self._rfqs.pop(rfq.order_id, None) is not None:
            self._rfq_message("order_deleted", rfq, {})

    def _find_rfq(self, body: dict[str, Any]) -> _Rfq | None:
        oid, coid = body.get("order_id"), body.get("client_order_id")
        for rfq in self._rfqs.values():
            if (oid and rfq.order_id == oid) or (coid and rfq.client_order_id == coid):
                return rfq
        return None

    def _refresh_interest(self, client: _Client, body: dict[str, Any], tag: str) -> None:
        rfq = self._find_rfq(body)
        ok = rfq is not None and rfq.owner == self.owner
        if ok:
            assert rfq is not None
            rfq.expires_at = trio.current_time() + RFQ_TTL_S
        # [CODE] the id not supplied is echoed as ""
        self._send(
            client,
            "refresh_interest",
            {
                "user_tag": tag,
                "order_id": body.get("order_id", ""),
                "client_order_id": body.get("client_order_id", ""),
                "reason": "success" if ok else NOT_FOUND,
            },
        )

    def _rfq_takers(self, answer: _Order, sim_order: SimOrder) -> None:
        """[INF] a synthetic requester whose RFQ is answered by a firm order on the opposite side
        takes it at once (IOC at the answer's price) and withdraws its RFQ."""
        for rfq in list(self._rfqs.values()):
            if (
                rfq.owner == RFQ_OWNER
                and rfq.symbol == answer.symbol
                and rfq.side is answer.side.opposite
                and sim_order.status == OPEN
            ):
                qty = min(rfq.quantity, sim_order.remaining)
                self._remove_rfq(rfq)
                self.engine.submit(
                    RFQ_OWNER, rfq.symbol, rfq.side, LIMIT, qty, answer.price, tif=IOC
                )
                return

    async def _rfq_requesters(self) -> None:
        while True:
            await trio.sleep(1 / self.rfq_rate_hz)
            symbol = self._rng.choice(sorted(self.markets))
            m = self.markets[symbol]
            side = self._rng.choice((Side.BUY, Side.SELL))
            qty = m.qty_step * self._rng.randint(1, 20) * max(1, int(m.min_qty / m.qty_step))
            self.post_rfq(RFQ_OWNER, symbol, side, qty)


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
