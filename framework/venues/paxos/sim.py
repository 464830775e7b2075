"""Paxos simulator: the Paxos public WS, Smart Order Routing WS, OAuth2 and REST v2 on one port.

The real venue splits these across hosts (`ws.`, `oauth.`, `api.`); here they share one loopback
port and are told apart by path:

    POST /oauth2/token                      OAuth2 client credentials
    /v2/...                                 REST v2 (orders, executions, balances, markets)
    WS /marketdata[/{market}]               public order book (SNAPSHOT fragments, then UPDATEs)
    WS /marketdata/stablecoin[/{market}]    USDCUSD price, about once a second
    WS /executiondata[/{market}]            public executions (last one replayed on connect)
    WS /                                    Smart Order Routing (Bearer token with the SOR scope)

Everything is driven by a shared `MatchingEngine`: its `on_level` / `on_trade` callbacks become
wire frames. Reference: shared/venues/paxos.md. Choices where the venue documents nothing are
marked `[INF]`; the adapter must agree with them.
"""

from __future__ import annotations

import base64
import hashlib
import math
import random
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any

import attrs
import orjson
import structlog
import trio

from framework.events import Side
from framework.sim.accounts import Accounts
from framework.sim.engine import (
    FOK,
    GTC,
    IOC,
    LIMIT,
    MARKET,
    OPEN,
    EngineListener,
    MatchingEngine,
    SimFill,
    SimOrder,
)
from framework.sim.faults import late_fill, roll_late_fill
from framework.sim.loopback import LoopbackSimulator, seed_crowds
from framework.sim.market import SyntheticMarket
from framework.sim.orders import OrderStore
from framework.sim.parsing import Refusals, missing_fields, optional_decimal
from framework.sim.server import (
    HttpRequest,
    HttpResponse,
    SimApp,
    WsConnection,
    dumps,
    fan_out,
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
RECENT_EXECUTIONS = 2000  # [DOC] GET /markets/{market}/recent-executions
MAX_PAGE = 1000  # [DOC] limit <= 1000
DEFAULT_PAGE = 100  # [INF] page size when `limit` is absent

SOR_CHANNELS = ("market_data", "market_data.top_of_book", "execution_data", "heartbeat")
_ISO = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)\Z")
_BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_PROBLEM_SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "already-exists",
    429: "too-many-requests",
    500: "internal-server-error",
    502: "bad-gateway",
    503: "service-unavailable",
    504: "gateway-timeout",
}

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


def _levels(levels: Iterable[Level]) -> list[dict[str, str]]:
    return [{"price": wire(price), "amount": wire(size)} for price, size in levels]


def _text(obj: Any) -> str:
    return dumps(obj).decode()


def assets_of(market: str) -> tuple[str, str]:
    """(base, quote) of a Paxos market: the quote is the 3-letter fiat suffix (BTCUSD, PAXGUSD)."""
    return market[:-3], market[-3:]


# --- errors --------------------------------------------------------------------------------------


def problem(
    status: int, slug: str, detail: str, meta: dict[str, Any] | None = None
) -> HttpResponse:
    """A Paxos `application/problem+json` error."""
    body = {
        "type": PROBLEM_BASE + slug,
        # [INF] the title is the slug in words ("Already exists"); `meta` is {} unless given
        "title": slug.replace("-", " ").capitalize(),
        "status": status,
        "detail": detail,
        "meta": meta or {},
    }
    return json_response(status, body, content_type=PROBLEM_JSON)


def _status_problem(status: int, detail: str) -> HttpResponse:
    # [INF] routing errors (404/405/500) and injected faults are problem+json too
    return problem(status, _PROBLEM_SLUGS.get(status, "error"), detail)


class _Problem(Exception):
    """Raised inside a handler to answer with a problem+json response."""

    def __init__(self, response: HttpResponse) -> None:
        super().__init__(response.status)
        self.response = response


def _bad_request(detail: str) -> _Problem:
    return _Problem(problem(400, "bad-request", detail))


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

    @property
    def status(self) -> str:
        return "REJECTED" if self.engine is None else self.engine.status


@attrs.define(slots=True)
class _SorSession:
    # subscription keys (channel, market or None) in subscription order, for subscription_list
    keys: dict[tuple[str, str | None], None] = attrs.Factory(dict)


# --- the simulator -------------------------------------------------------------------------------


class PaxosSimulator(LoopbackSimulator, EngineListener):
    """The Paxos protocol over a `MatchingEngine`; `app` is the ASGI app to serve."""

    def __init__(
        self,
        engine: MatchingEngine,
        accounts: Accounts,
        *,
        client_id: str = "sim-client",
        client_secret: str = "sim-secret",
        profile_id: str = "sim-profile",
        token_ttl_s: float = 3600,
        heartbeat_s: float = 1.0,
        snapshot_fragment_levels: int = 50,
        stablecoin_period_s: float = 1.0,
        seed: int = 0,
        clock_ns: Callable[[], int] | None = None,
    ) -> None:
        if snapshot_fragment_levels < 1:
            raise ValueError("snapshot_fragment_levels must be at least 1")
        self.engine = engine
        self.accounts = accounts
        self.client_id = client_id
        self._client_secret = client_secret
        self.profile_id = profile_id
        self.token_ttl_s = token_ttl_s
        self.heartbeat_s = heartbeat_s
        self.snapshot_fragment_levels = snapshot_fragment_levels
        self.stablecoin_period_s = stablecoin_period_s
        self.markets: dict[str, SyntheticMarket] = {}
        self.crowds = self.markets  # LoopbackSimulator runs them
        self.port: int | None = None
        # Timestamps must agree with the engine's fills: use its clock unless told otherwise
        # (the engine keeps it private; fall back to wall time for another engine type).
        self._clock_ns: Callable[[], int] = clock_ns or engine.clock_ns
        self._rng = random.Random(seed)  # order ids and the stablecoin walk
        self._tokens: dict[str, _Token] = {}
        # our orders by Paxos id (creation order), ref_id and engine id, bounded like the engine
        self.orders: OrderStore[_PaxosOrder] = OrderStore(
            key=lambda o: o.id,
            client_id=lambda o: o.ref_id,
            engine_id=lambda o: None if o.engine is None else o.engine.order_id,
            working=lambda o: o.engine is not None and o.engine.status == OPEN,
            limit=lambda: engine.history_limit,
        )
        # orders that may still rest (pruned lazily), so that locks do not scan all history
        self._maybe_open: dict[str, _PaxosOrder] = {}
        self._last_trade: dict[str, SimFill] = {f.symbol: f for f in engine.fills()}
        self._stable_price = Decimal("1.0000")
        # subscribers
        self._public_books: dict[str, set[WsConnection]] = {}
        self._public_trades: dict[str, set[WsConnection]] = {}
        self._stable_subs: set[WsConnection] = set()
        self._sor_subs: dict[tuple[str, str | None], set[WsConnection]] = {}
        # SOR `time` per market, strictly increasing even when the clock repeats
        self._sor_time: dict[str, int] = {}
        self._top: dict[str, tuple[Level | None, Level | None]] = {}
        self.app = self._build_app()
        # fault injection (framework/sim/faults.py): what only this simulator can do
        self.app.fault_actions["token_expiry"] = self.revoke_all_tokens
        engine.add_listener(self)

    # --- construction ----------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        seed: int,
        markets: dict[str, tuple[Decimal, Decimal]] | None = None,
        **kwargs: Any,
    ) -> PaxosSimulator:
        """A simulator on a fresh engine with seeded crowd markets: {market: (mid, tick)}."""
        clock_ns = kwargs.pop("clock_ns", time.time_ns)
        engine = MatchingEngine(clock_ns=clock_ns)
        accounts = Accounts(engine, assets_of)
        sim = cls(engine, accounts, seed=seed, clock_ns=clock_ns, **kwargs)
        accounts.open(sim.profile_id, dict(DEFAULT_BALANCES))
        # SyntheticMarket refuses a different lot for an existing symbol, so the crowd trades in
        # engine lots (1e-8) with at most the 0.01 size that 100 lots of CROWD_LOT would give
        max_lots = int(100 * CROWD_LOT / ENGINE_LOT)
        sim.markets.update(
            seed_crowds(
                engine,
                (
                    (m, Decimal(mid), Decimal(tick), ENGINE_LOT, max_lots)
                    for m, (mid, tick) in (markets or DEFAULT_MARKETS).items()
                ),
                seed,
            )
        )
        return sim

    def background(self) -> list[Callable[[], Awaitable[None]]]:
        return [self._heartbeat_loop, self._stablecoin_loop]

    @property
    def client_secret(self) -> str:
        """The embedded simulator's own secret (not a real credential): for the sim adapter."""
        return self._client_secret

    def rotate_client_secret(self, client_secret: str) -> None:
        """Change the secret the token endpoint accepts (issued tokens stay valid)."""
        self._client_secret = client_secret

    def new_order(self, body: dict[str, Any]) -> _PaxosOrder:
        """Place an order as `POST /v2/profiles/{id}/orders` does, without a token (tests drive
        the venue rules directly); a refusal raises."""
        return self._new_order(body)

    def revoke_all_tokens(self) -> None:
        """Forget every issued token: REST calls get 401 and SOR upgrades 403 until a new one."""
        self._tokens.clear()

    def _build_app(self) -> SimApp:
        app = SimApp(error_response=_status_problem)
        app.http("POST", "/oauth2/token")(self._token)
        app.http("POST", "/v2/profiles/{profile_id}/orders")(self._create_order)
        app.http("GET", "/v2/profiles/{profile_id}/orders/{order_id}")(self._get_order)
        app.http("DELETE", "/v2/profiles/{profile_id}/orders/{order_id}")(self._cancel_order)
        app.http("GET", "/v2/orders")(self._list_orders)
        app.http("GET", "/v2/executions")(self._list_executions)
        app.http("GET", "/v2/profiles/{profile_id}/balances")(self._balances)
        app.http("GET", "/v2/markets")(self._list_markets)
        app.http("GET", "/v2/markets/{market}/order-book")(self._order_book)
        app.http("GET", "/v2/markets/{market}/recent-executions")(self._recent_executions)
        app.ws("/marketdata")(self._ws_marketdata)
        app.ws("/marketdata/{market}")(self._ws_marketdata)
        app.ws("/marketdata/stablecoin")(self._ws_stablecoin)
        app.ws("/marketdata/stablecoin/{market}")(self._ws_stablecoin)
        app.ws("/executiondata")(self._ws_executiondata)
        app.ws("/executiondata/{market}")(self._ws_executiondata)
        app.ws("/", authorize=self._authorize_sor)(self._ws_sor)
        app.ws_fallback = self._ws_not_found
        return app

    # --- engine callbacks ------------------------------------------------------------------

    def on_level(self, symbol: str, side: Side, price: Decimal, size: Decimal) -> None:
        public = self._public_books.get(symbol)
        if public:
            frame = _text(
                {
                    "type": "UPDATE",
                    "market": symbol,
                    "side": side.value,
                    "price": wire(price),
                    "amount": wire(size),
                }
            )
            fan_out(public, frame)
        sor = self._sor_subs.get(("market_data", symbol))
        if sor:
            level = _levels([(price, size)])
            payload = {
                "market": symbol,
                "type": "UPDATE",
                "time": iso_ns(self._next_sor_time(symbol)),
                # [INF] one level per UPDATE (as the engine reports them); the other side is []
                "bids": level if side is Side.BUY else [],
                "asks": level if side is Side.SELL else [],
            }
            fan_out(sor, _text({"channel": "market_data", "payload": payload}))
        tob = self._sor_subs.get(("market_data.top_of_book", symbol))
        if tob:
            top = self._top_levels(symbol)
            if top != self._top.get(symbol):
                self._top[symbol] = top
                fan_out(tob, self._top_of_book_frame(symbol, top))

    def on_trade(self, fill: SimFill) -> None:
        self._last_trade[fill.symbol] = fill
        public = self._public_trades.get(fill.symbol)
        if public:
            fan_out(public, _text(self._public_execution(fill)))
        sor = self._sor_subs.get(("execution_data", fill.symbol))
        if sor:
            payload = {
                "market": fill.symbol,
                "price": wire(fill.price),
                "amount": wire(fill.quantity),
                "executed_at": iso_ns(fill.ts_ns),  # [INF] nanosecond precision; no match_number
            }
            fan_out(sor, _text({"channel": "execution_data", "payload": payload}))

    # --- public WebSocket ------------------------------------------------------------------

    async def _ws_marketdata(self, conn: WsConnection, market: str | None = None) -> None:
        markets = self._markets_for(market)
        if markets is None:
            await self._ws_not_found(conn)
            return
        # Snapshot and subscription happen with no await in between, so no engine change can
        # fall between the snapshot and the first UPDATE.
        for symbol in markets:
            for frame in self._snapshot_fragments(symbol):
                conn.enqueue(frame)
            self._public_books.setdefault(symbol, set()).add(conn)
        try:
            await trio.sleep_forever()
        finally:
            for symbol in markets:
                self._public_books[symbol].discard(conn)

    async def _ws_executiondata(self, conn: WsConnection, market: str | None = None) -> None:
        markets = self._markets_for(market)
        if markets is None:
            await self._ws_not_found(conn)
            return
        for symbol in markets:
            last = self._last_trade.get(symbol)
            if last is not None:  # [DOC] the first message is the last execution, even if old
                conn.enqueue(_text(self._public_execution(last)))
            self._public_trades.setdefault(symbol, set()).add(conn)
        try:
            await trio.sleep_forever()
        finally:
            for symbol in markets:
                self._public_trades[symbol].discard(conn)

    async def _ws_stablecoin(self, conn: WsConnection, market: str | None = None) -> None:
        if market is not None and market != STABLECOIN:
            await self._ws_not_found(conn)
            return
        conn.enqueue(self._stablecoin_frame())
        self._stable_subs.add(conn)
        try:
            await trio.sleep_forever()
        finally:
            self._stable_subs.discard(conn)

    async def _ws_not_found(self, conn: WsConnection) -> None:
        # [INF] unknown path or market: one `{"error":"Not Found"}` frame (tardis fixture), then
        # a normal close.
        await conn.send_text(_text({"error": "Not Found"}))
        await conn.close()

    def _markets_for(self, market: str | None) -> list[str] | None:
        symbols = self.engine.symbols()
        if market is None:
            return symbols
        return [market] if market in symbols else None

    def _snapshot_fragments(self, symbol: str) -> list[str]:
        bids, asks = self.engine.book(symbol)
        size = self.snapshot_fragment_levels
        count = max(1, math.ceil(max(len(bids), len(asks)) / size))
        frames = []
        for i in range(count):
            chunk = slice(i * size, (i + 1) * size)
            frame = {
                "type": "SNAPSHOT",
                "market": symbol,
                "bids": _levels(bids[chunk]),
                "asks": _levels(asks[chunk]),
                "final_snapshot": i == count - 1,
            }
            frames.append(_text(frame))
        return frames

    def _public_execution(self, fill: SimFill) -> dict[str, str]:
        return {
            "market": fill.symbol,
            "price": wire(fill.price),
            "amount": wire(fill.quantity),
            "executed_at": iso_ms(fill.ts_ns),
            "match_number": match_number(fill.trade_id),
        }

    # [INF] the price random-walks by 0.0001 steps (seeded) and the timestamp is the sim clock
    def _stablecoin_frame(self) -> str:
        return _text(
            {
                "market": STABLECOIN,
                "price": format(self._stable_price, ".4f"),  # [DOC] 4 decimals, even "1.0000"
                "timestamp": iso_ns(self._clock_ns()),
            }
        )

    async def _stablecoin_loop(self) -> None:
        while True:
            await trio.sleep(self.stablecoin_period_s)
            step = STABLE_STEP * self._rng.choice((-1, 0, 1))
            self._stable_price = min(STABLE_MAX, max(STABLE_MIN, self._stable_price + step))
            fan_out(self._stable_subs, self._stablecoin_frame())

    # --- Smart Order Routing WebSocket -----------------------------------------------------

    def _authorize_sor(self, headers: dict[str, str]) -> int | None:
        token = self._valid_token(headers)
        if token is None or SOR_SCOPE not in token.scopes:
            # [INF] a missing, unknown or expired token is refused like a missing scope (403)
            return 403
        return None

    async def _ws_sor(self, conn: WsConnection) -> None:
        # [INF] a token expiring on an open socket does not close it (undocumented).
        session = _SorSession()
        try:
            while (text := await conn.receive_text()) is not None:
                for frame in self._sor_request(session, conn, text):
                    conn.enqueue(frame)
        finally:
            for key in session.keys:
                self._sor_subs[key].discard(conn)

    def _sor_request(self, session: _SorSession, conn: WsConnection, text: str) -> list[str]:
        """Frames answering one SOR request."""
        # [INF] the response comes first, then the initial data of new subscriptions
        try:
            request = orjson.loads(text)
        except ValueError:
            return [_text({"type": "error", "error": "MALFORMED_REQUEST"})]
        if not isinstance(request, dict):
            return [_text({"type": "error", "error": "MALFORMED_REQUEST"})]
        action = request.get("type")
        if action == "subscription_list":
            channels = []
            for channel, market in session.keys:
                entry: dict[str, Any] = {"type": channel}
                if market is not None:
                    entry["params"] = {"market": market}
                channels.append(entry)
            return [_text({"type": "subscription_list", "channels": channels})]
        if action not in ("subscribe", "unsubscribe"):
            # [INF] shape of the error frame for an unknown action, as for MALFORMED_REQUEST
            return [_text({"type": "error", "error": "UNKNOWN_ACTION"})]
        channels = request.get("channels")
        if (
            not isinstance(channels, list)
            or not channels
            or not all(isinstance(channel, dict) for channel in channels)
        ):
            # [INF] a subscribe/unsubscribe without a non-empty list of channel objects is
            # malformed (checked before any channel is applied)
            return [_text({"type": "error", "error": "MALFORMED_REQUEST"})]
        results: list[dict[str, Any]] = []
        data: list[str] = []
        for channel in channels:
            result, initial = self._sor_channel(session, conn, action, channel)
            results.append(result)
            data.extend(initial)
        return [_text({"type": action, "channels": results}), *data]

    def _sor_channel(
        self, session: _SorSession, conn: WsConnection, action: str, channel: dict[str, Any]
    ) -> tuple[dict[str, Any], list[str]]:
        kind = channel.get("type")
        params = channel.get("params")
        result: dict[str, Any] = {"type": kind}
        if "params" in channel and kind != "heartbeat":  # the heartbeat ack never has params
            result["params"] = params

        def fail(error: str) -> tuple[dict[str, Any], list[str]]:
            return {**result, "success": False, "error": error}, []

        if kind not in SOR_CHANNELS:
            return fail("UNKNOWN_CHANNEL")
        market: str | None = None
        if kind == "heartbeat":
            if params not in (None, {}):
                return fail("UNKNOWN_CHANNEL_PARAMS_CONFIGURATION")  # [INF] heartbeat takes none
        else:
            market = params.get("market") if isinstance(params, dict) else None
            if market not in self.engine.symbols():
                return fail("UNKNOWN_CHANNEL_PARAMS_CONFIGURATION")
        key = (kind, market)
        if action == "unsubscribe":
            if key not in session.keys:
                return fail("NO_EFFECT_ACTION")
            del session.keys[key]
            self._sor_subs[key].discard(conn)
            return {**result, "success": True}, []
        if key in session.keys:
            return fail("NO_EFFECT_ACTION")
        session.keys[key] = None
        self._sor_subs.setdefault(key, set()).add(conn)
        return {**result, "success": True}, self._sor_initial(kind, market)

    def _sor_initial(self, kind: str, market: str | None) -> list[str]:
        if market is None or kind == "execution_data":
            return []  # [INF] no replay of executions on SOR; heartbeats start with the timer
        if kind == "market_data.top_of_book":
            # [INF] the current top comes at once, then one frame per change of best bid/ask
            top = self._top_levels(market)
            self._top[market] = top
            return [self._top_of_book_frame(market, top)]
        # market_data. [DOC] UPDATEs may precede the SNAPSHOT; a client keeps only those newer
        # than the snapshot `time`. To exercise that race on every subscription:
        # [INF] first one UPDATE older than the SNAPSHOT (the current top, already in it)
        previous = self._sor_time.get(market)
        snapshot_ns = self._next_sor_time(market)
        stale_ns = previous if previous is not None else snapshot_ns - 1
        bids, asks = self.engine.book(market)
        stale = {
            "market": market,
            "type": "UPDATE",
            "time": iso_ns(stale_ns),
            "bids": _levels(bids[:1]),
            "asks": _levels(asks[:1]),
        }
        snapshot = {
            "market": market,
            "type": "SNAPSHOT",
            "time": iso_ns(snapshot_ns),
            "bids": _levels(bids),
            "asks": _levels(asks),
        }
        return [
            _text({"channel": "market_data", "payload": stale}),
            _text({"channel": "market_data", "payload": snapshot}),
        ]

    def _top_levels(self, market: str) -> tuple[Level | None, Level | None]:
        bids, asks = self.engine.book(market, 1)
        return (bids[0] if bids else None, asks[0] if asks else None)

    def _top_of_book_frame(self, market: str, top: tuple[Level | None, Level | None]) -> str:
        # [INF] `timestamp` comes from the same strictly increasing per-market clock as `time`
        bid, ask = top
        payload = {
            "market": market,
            "type": "TOP_OF_BOOK",
            "timestamp": iso_ns(self._next_sor_time(market)),
            "bids": _levels([bid] if bid else []),
            "asks": _levels([ask] if ask else []),
        }
        return _text({"channel": "market_data.top_of_book", "payload": payload})

    def _next_sor_time(self, market: str) -> int:
        now = max(self._clock_ns(), self._sor_time.get(market, 0) + 1)
        self._sor_time[market] = now
        return now

    async def _heartbeat_loop(self) -> None:
        while True:
            await trio.sleep(self.heartbeat_s)
            subscribers = self._sor_subs.get(("heartbeat", None))
            if subscribers:
                frame = {"channel": "heartbeat", "payload": {"timestamp": iso_ns(self._clock_ns())}}
                fan_out(subscribers, _text(frame))

    # --- OAuth2 ----------------------------------------------------------------------------

    def _token(self, request: HttpRequest) -> HttpResponse:
        form = request.form()
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        basic = _basic_credentials(request.headers)
        if basic is not None:  # [INF] client_secret_basic is accepted too
            client_id, client_secret = basic
        if form.get("grant_type") != "client_credentials":
            # [INF] OAuth errors use the RFC 6749 shape {"error": ...}
            return json_response(400, {"error": "unsupported_grant_type"})
        if not (
            secrets.compare_digest((client_id or "").encode(), self.client_id.encode())
            and secrets.compare_digest((client_secret or "").encode(), self._client_secret.encode())
        ):
            return json_response(
                401,
                {"error": "invalid_client", "error_description": "client authentication failed"},
            )
        requested = form.get("scope", "").split()
        if not set(requested) <= KNOWN_SCOPES:
            return json_response(400, {"error": "invalid_scope"})
        scopes = requested or sorted(KNOWN_SCOPES)  # [INF] no scope asked: all are granted
        token = secrets.token_urlsafe(32)
        self._tokens[token] = _Token(frozenset(scopes), trio.current_time() + self.token_ttl_s)
        return json_response(
            200,
            {
                "access_token": token,
                "expires_in": math.ceil(self.token_ttl_s),  # [INF] whole seconds, rounded up
                "token_type": "bearer",
                "scope": " ".join(scopes),
            },
        )

    def _valid_token(self, headers: dict[str, str]) -> _Token | None:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        token = self._tokens.get(value.strip())
        if token is None or trio.current_time() >= token.expires_at:
            return None
        return token

    def _require(self, request: HttpRequest, scope: str) -> None:
        token = self._valid_token(request.headers)
        if token is None:
            raise _Problem(problem(401, "unauthorized", "missing, invalid or expired access token"))
        if scope not in token.scopes:
            # [INF] slug and wording of the missing-scope problem
            raise _Problem(problem(403, "forbidden", f"token lacks scope {scope}"))

    def _require_profile(self, profile_id: str) -> None:
        if profile_id != self.profile_id:
            # [INF] a profile id other than ours is an unknown profile: 404
            raise _Problem(problem(404, "not-found", "profile not found"))

    # --- REST: orders ----------------------------------------------------------------------

    def _create_order(self, request: HttpRequest, profile_id: str) -> HttpResponse:
        try:
            self._require(request, WRITE_ORDER)
            self._require_profile(profile_id)
            order = self._new_order(_json_object(request))
        except _Problem as refused:
            return refused.response
        # [INF] the create response is the acknowledgement at submission: SUBMITTED, nothing
        # filled yet (as the doc example); GET shows the outcome.
        # [INF] HTTP 200 for a created order
        return json_response(200, self._order_json(order, acknowledged=True))

    def _new_order(self, body: dict[str, Any]) -> _PaxosOrder:
        ref_id = body.get("ref_id")
        if ref_id is not None and not isinstance(ref_id, str):
            raise _bad_request("ref_id must be a string")
        previous = self.orders.by_client(ref_id) if ref_id else None
        if previous is not None:
            existing = self._order_json(previous)
            raise _Problem(
                problem(
                    409,
                    "already-exists",
                    "order with this ref_id already exists",
                    {"existing": existing},
                )
            )
        missing = missing_fields(body, ("side", "market", "type"))
        if missing:
            raise _bad_request(f"missing required field(s): {', '.join(missing)}")
        side, market, kind = body["side"], body["market"], body["type"]
        if side not in ("BUY", "SELL"):
            raise _bad_request(f"invalid side {side!r}")
        if kind in ("STOP_MARKET", "STOP_LIMIT"):
            # [INF] stop orders are not simulated: refused as a bad request
            raise _bad_request(f"order type {kind} is not supported by the simulator")
        if kind not in (LIMIT, MARKET, "POST_ONLY_LIMIT"):
            raise _bad_request(f"invalid type {kind!r}")
        if market not in self.engine.symbols():
            raise _Problem(problem(403, "unavailable-market", f"market {market} is not available"))
        tif = body.get("time_in_force") or (IOC if kind == MARKET else GTC)
        if tif not in (GTC, IOC, FOK, "GTT"):
            raise _bad_request(f"invalid time_in_force {tif!r}")
        if kind == MARKET and tif != IOC:
            raise _bad_request("MARKET orders are IOC only")
        price = _amount(body, "price")
        base_amount = _amount(body, "base_amount")
        quote_amount = _amount(body, "quote_amount")
        order_side = Side(side)
        if kind == MARKET:
            price = None  # [INF] a price on a MARKET order is ignored
            if (base_amount is None) == (quote_amount is None):
                raise _bad_request("MARKET orders need exactly one of base_amount, quote_amount")
            if quote_amount is not None and order_side is Side.SELL:
                raise _bad_request("quote_amount is for MARKET buys only")
        else:
            if price is None or base_amount is None:
                raise _bad_request(f"{kind} orders need price and base_amount")
            if quote_amount is not None:
                raise _bad_request(f"quote_amount is not allowed on {kind} orders")
        self._check_precision(market, price, base_amount, quote_amount)
        quantity = (
            base_amount if base_amount is not None else self._base_for_quote(market, quote_amount)
        )
        self._check_funds(market, order_side, price, quantity, quote_amount)

        order = _PaxosOrder(
            # [INF] ids are random UUIDv4 strings, from the seeded generator (reproducible runs)
            id=str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
            ref_id=ref_id or None,
            market=market,
            side=order_side,
            type=kind,
            time_in_force=tif,
            price=price,
            base_amount=base_amount,
            quote_amount=quote_amount,
            created_ns=self._clock_ns(),
        )
        self.orders.add(order)
        if (
            kind == LIMIT
            and price is not None
            and self._outside_taker_band(market, order_side, price)
        ):
            # [INF] created, then rejected (Paxos does not say at which step it refuses)
            order.reject_reason = "taker limit price 15% or more from mid"
            return order
        order.engine = self.engine.submit(
            self.profile_id,
            market,
            order_side,
            MARKET if kind == MARKET else LIMIT,
            quantity,
            price,
            GTC if tif == "GTT" else tif,  # [INF] GTT is accepted and works as GTC (no expiry)
            post_only=kind == "POST_ONLY_LIMIT",
            client_order_id=order.ref_id,
        )
        self.orders.bind_engine(order.engine.order_id, order)
        if order.engine.status == OPEN:
            self._maybe_open[order.id] = order
        return order

    def _check_precision(
        self,
        market: str,
        price: Decimal | None,
        base_amount: Decimal | None,
        quote_amount: Decimal | None,
    ) -> None:
        tick = self.engine.tick(market)
        if price is not None and price % tick != 0:
            raise _Problem(problem(400, "exceed-precision", f"price must be a multiple of {tick}"))
        for name, value in (("base_amount", base_amount), ("quote_amount", quote_amount)):
            # [INF] quote amounts get the same 8 decimals as base amounts
            if value is not None and value % ENGINE_LOT != 0:
                detail = f"{name} has more than {AMOUNT_DECIMALS} decimals"
                raise _Problem(problem(400, "exceed-precision", detail))

    def _base_for_quote(self, market: str, quote_amount: Decimal | None) -> Decimal:
        """The base amount the asks give now for `quote_amount`, rounded down to 8 decimals."""
        # [INF] a quote-sized market buy is executed as a base-sized one, sized on the book
        assert quote_amount is not None
        _, asks = self.engine.book(market)
        left, base = quote_amount, Decimal(0)
        for price, size in asks:
            if price * size <= left:
                base += size
                left -= price * size
            else:
                base += (left / price).quantize(ENGINE_LOT, rounding=ROUND_DOWN)
                break
        return base

    def _check_funds(
        self,
        market: str,
        side: Side,
        price: Decimal | None,
        quantity: Decimal,
        quote_amount: Decimal | None,
    ) -> None:
        base, quote = assets_of(market)
        if side is Side.SELL:
            asset, needed = base, quantity
        elif quote_amount is not None:
            asset, needed = quote, quote_amount
        elif price is not None:
            asset, needed = quote, quantity * price
        else:
            asset, needed = quote, self._market_buy_cost(market, quantity)
        available, _ = self._balance(asset)
        if needed > available:
            raise _Problem(problem(403, "insufficient-funds", f"insufficient {asset} balance"))

    def _market_buy_cost(self, market: str, quantity: Decimal) -> Decimal:
        _, asks = self.engine.book(market)
        left, cost = quantity, Decimal(0)
        for price, size in asks:
            take = min(left, size)
            cost += take * price
            left -= take
            if left <= 0:
                break
        return cost

    def _outside_taker_band(self, market: str, side: Side, price: Decimal) -> bool:
        bid, ask = self.engine.best_bid(market), self.engine.best_ask(market)
        takes = (
            (ask is not None and price >= ask)
            if side is Side.BUY
            else (bid is not None and price <= bid)
        )
        if not takes:
            return False
        mid = (bid + ask) / 2 if bid is not None and ask is not None else (bid or ask)
        return mid is not None and abs(price - mid) >= TAKER_BAND * mid

    def _get_order(self, request: HttpRequest, profile_id: str, order_id: str) -> HttpResponse:
        try:
            self._require(request, READ_ORDER)
            self._require_profile(profile_id)
            order = self._find_order(order_id)
        except _Problem as refused:
            return refused.response
        return json_response(200, self._order_json(order))

    def _cancel_order(self, request: HttpRequest, profile_id: str, order_id: str) -> HttpResponse:
        try:
            self._require(request, WRITE_ORDER)
            self._require_profile(profile_id)
            order = self._find_order(order_id)
        except _Problem as refused:
            return refused.response
        fraction = roll_late_fill(self.app.faults, request.path)
        if fraction is not None and order.engine is not None and order.engine.status == OPEN:
            late_fill(self.engine, order.engine, fraction)
        if order.engine is None or self.engine.cancel(order.engine.order_id) is None:
            return problem(403, "order-not-cancellable", "order is not in cancellable state")
        return json_response(200, {})  # [DOC] acknowledges the request only

    def _find_order(self, order_id: str) -> _PaxosOrder:
        order = self.orders.get(order_id)
        if order is None:
            raise _Problem(problem(404, "not-found", "order not found"))
        return order

    def _list_orders(self, request: HttpRequest) -> HttpResponse:
        try:
            self._require(request, READ_ORDER)
            offset, limit = _paging(request)
        except _Problem as refused:
            return refused.response
        profile = request.arg("profile_id")
        market, status = request.arg("market"), request.arg("status")
        ref_ids = set(request.query.get("ref_ids", []))
        orders = [
            o
            for o in reversed(self.orders.values())  # [INF] newest first
            if (profile is None or profile == self.profile_id)
            and (market is None or o.market == market)
            and (status is None or o.status == status)
            and (not ref_ids or o.ref_id in ref_ids)
        ]
        return json_response(200, _page([self._order_json(o) for o in orders], offset, limit))

    def _order_json(self, order: _PaxosOrder, acknowledged: bool = False) -> dict[str, Any]:
        live = order.engine
        filled = Decimal(0) if acknowledged or live is None else live.filled
        average = Decimal(0) if acknowledged or live is None else live.avg_price
        return {
            "id": order.id,
            "profile_id": self.profile_id,
            "ref_id": order.ref_id or "",  # [INF] "" when the client sent none
            "status": "SUBMITTED" if acknowledged else order.status,
            "market": order.market,
            "side": order.side.value,
            "type": order.type,
            "price": "" if order.price is None else wire(order.price),
            "base_amount": "" if order.base_amount is None else wire(order.base_amount),
            "quote_amount": "" if order.quote_amount is None else wire(order.quote_amount),
            "amount_filled": _fixed8(filled),
            "volume_weighted_average_price": _fixed8(average),
            "time_in_force": order.time_in_force,
            "created_at": iso_ms(order.created_ns),
        }

    # --- REST: executions, balances, markets -----------------------------------------------

    def _list_executions(self, request: HttpRequest) -> HttpResponse:
        try:
            self._require(request, READ_ORDER)
            offset, limit = _paging(request)
            begin = _time_arg(request, "range.begin")
            end = _time_arg(request, "range.end")
        except _Problem as refused:
            return refused.response
        profile, order_id = request.arg("profile_id"), request.arg("order_id")
        if profile is not None and profile != self.profile_id:
            # [INF] another profile's executions: an empty list (the same for GET /v2/orders)
            return json_response(200, {"items": [], "next_page_cursor": ""})
        items = []
        # [INF] newest first; range.begin is inclusive, range.end exclusive
        for fill in reversed(self.engine.fills(owner=self.profile_id)):
            if (begin is not None and fill.ts_ns < begin) or (
                end is not None and fill.ts_ns >= end
            ):
                continue
            for item in self._own_executions(fill):
                if order_id is None or item["order_id"] == order_id:
                    items.append(item)
        return json_response(200, _page(items, offset, limit))

    def _own_executions(self, fill: SimFill) -> list[dict[str, str]]:
        """Our side(s) of a fill."""
        # [INF] a self-trade gives two items (one per order) with the same execution_id
        # [INF] commission = notional x the Accounts fee rate (maker/taker), in the quote asset
        _, quote = assets_of(fill.symbol)
        notional = fill.price * fill.quantity
        roles = (
            (fill.taker_owner, fill.taker_order_id, fill.aggressor, self.accounts.fee_rate_taker),
            (
                fill.maker_owner,
                fill.maker_order_id,
                fill.aggressor.opposite,
                self.accounts.fee_rate_maker,
            ),
        )
        items = []
        for owner, engine_id, side, fee_rate in roles:
            if owner != self.profile_id:
                continue
            order = self.orders.by_engine(engine_id)
            items.append(
                {
                    "execution_id": fill.trade_id,
                    # an order placed on the engine directly (not via REST) gets a stable id too
                    "order_id": order.id
                    if order
                    else str(uuid.uuid5(uuid.NAMESPACE_OID, engine_id)),
                    "market": fill.symbol,
                    "side": side.value,
                    "amount": wire(fill.quantity),
                    "price": wire(fill.price),
                    "commission": wire(notional * fee_rate),
                    "commission_asset": quote,
                    "executed_at": iso_ms(fill.ts_ns),
                }
            )
        return items

    def _balances(self, request: HttpRequest, profile_id: str) -> HttpResponse:
        try:
            self._require(request, READ_PROFILE)
            self._require_profile(profile_id)
        except _Problem as refused:
            return refused.response
        wanted = set(request.query.get("assets", []))
        assets = sorted(set(self.accounts.balances(self.profile_id)) | set(self._locked()))
        items = []
        for asset in assets:
            if wanted and asset not in wanted:
                continue
            available, trading = self._balance(asset)
            items.append({"asset": asset, "available": wire(available), "trading": wire(trading)})
        return json_response(200, {"items": items})

    def _balance(self, asset: str) -> tuple[Decimal, Decimal]:
        """(available, trading) of one asset of our profile."""
        # [INF] trading = locked by our open orders; available = total - trading
        total = self.accounts.balances(self.profile_id).get(asset, Decimal(0))
        locked = self._locked().get(asset, Decimal(0))
        return total - locked, locked

    def _locked(self) -> dict[str, Decimal]:
        locked: dict[str, Decimal] = {}
        for order in list(self._maybe_open.values()):
            live = order.engine
            if live is None or live.status != OPEN or live.price is None:
                del self._maybe_open[order.id]
                continue
            base, quote = assets_of(order.market)
            if live.side is Side.BUY:
                locked[quote] = locked.get(quote, Decimal(0)) + live.remaining * live.price
            else:
                locked[base] = locked.get(base, Decimal(0)) + live.remaining
        return locked

    def _list_markets(self, request: HttpRequest) -> HttpResponse:
        markets = []
        for market in self.engine.symbols():
            base, quote = assets_of(market)
            tick = wire(self.engine.tick(market))
            markets.append(
                {"market": market, "base_asset": base, "quote_asset": quote, "tick_rate": tick}
            )
        return json_response(200, {"markets": markets})

    def _order_book(self, request: HttpRequest, market: str) -> HttpResponse:
        if market not in self.engine.symbols():
            # [INF] unknown market on the public market-data endpoints: 404 not-found
            return problem(404, "not-found", f"market {market} not found")
        bids, asks = self.engine.book(market)
        return json_response(200, {"market": market, "asks": _levels(asks), "bids": _levels(bids)})

    def _recent_executions(self, request: HttpRequest, market: str) -> HttpResponse:
        if market not in self.engine.symbols():
            # [INF] unknown market on the public market-data endpoints: 404 not-found
            return problem(404, "not-found", f"market {market} not found")
        fills = self.engine.fills(symbol=market)[-RECENT_EXECUTIONS:]
        # [INF] items shaped like /executiondata frames without `market`
        items = [
            {
                "match_number": match_number(f.trade_id),
                "price": wire(f.price),
                "amount": wire(f.quantity),
                "executed_at": iso_ms(f.ts_ns),
            }
            for f in reversed(fills)  # [INF] newest first
        ]
        return json_response(200, {"items": items})


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
