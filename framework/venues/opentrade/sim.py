"""Open Trade simulator: login and JWT over HTTP, the taker WS on the same port.

    POST /auth/login                               form username/password → JSESSIONID cookie
    POST /auth/auth/jwt/clients/{api_user}/token   Cookie + clientSecret header → raw JWT body
    WS   /exchange/ws                              public and private channels, order entry

Driven by the shared `MatchingEngine`: a 20 ms publisher sends every subscribed book in full
whether it changed or not (as the venue does), engine callbacks become TRADE_PUBLIC, BALANCE and
TRADE_PRIVATE updates. Venue rules kept: an order for an instrument not subscribed on
TRADE_PRIVATE is rejected; a CANCEL without any id cancels every order of the pair; JWTs expire
(`exp`), and `expire_tokens()` ends every issued token at once. Numbers go out as JSON numbers
(`100.0`, `0.0`), never as quoted strings, except where the docs show a string (`price` of a NEW
update). Choices where the venue documents nothing are marked `[INF]`; the adapter agrees.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import jwt
import orjson
import structlog
import trio

from framework.errors import FrameError
from framework.events import Side
from framework.sim.accounts import Accounts
from framework.sim.engine import (
    CANCELLED,
    FILLED,
    GTC,
    LIMIT,
    MARKET,
    OPEN,
    EngineListener,
    MatchingEngine,
    SimFill,
    SimOrder,
)
from framework.sim.loopback import LoopbackSimulator, seed_crowds, trim_history
from framework.sim.market import SyntheticMarket
from framework.sim.orders import OrderStore
from framework.sim.parsing import Refusals, parse_decimal
from framework.sim.server import HttpRequest, HttpResponse, SimApp, WsConnection
from framework.transport.wire import loads_decimal
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
    last_ping: float = 0.0


# --- the simulator -------------------------------------------------------------------------------


class OpenTradeSimulator(LoopbackSimulator, EngineListener):
    def __init__(
        self,
        engine: MatchingEngine,
        accounts: Accounts,
        *,
        username: str = "sim-user",
        password: str = "sim-password",
        api_user: str = "sim-api",
        api_secret: str = "sim-secret",
        token_ttl_s: float = 3600.0,
        book_interval_s: float = 0.02,
        ping_timeout_s: float = 120.0,
        clock_ns: Callable[[], int] | None = None,
    ) -> None:
        self.engine = engine
        self.accounts = accounts
        self.username = username
        self.password = password
        self.api_user = api_user
        self.api_secret = api_secret
        self.account = api_user  # engine owner of our orders
        self.token_ttl_s = token_ttl_s
        self.book_interval_s = book_interval_s
        # the 20 ms refresh; a test that refreshes the books itself (`publish_books`, e.g. the
        # chaos case's step) turns it off, so that every frame it waits for comes from a step
        self.timed_books = True
        self.ping_timeout_s = ping_timeout_s
        self.markets: dict[str, SyntheticMarket] = {}
        self.crowds = self.markets  # LoopbackSimulator runs them
        self.port: int | None = None
        self._clock_ns: Callable[[], int] = clock_ns or engine.clock_ns
        self._key = secrets.token_bytes(32)  # HS256 signing key of issued JWTs
        # live login sessions (cookie values, as an ordered set), the newest MAX_LOGIN_SESSIONS
        self._sessions_http: dict[str, None] = {}
        # jti -> expiry (wall seconds); expire_tokens() ends them all, and issuing a token forgets
        # the expired ones (a token of ours whose jti is gone is an expired one)
        self._tokens: dict[str, float] = {}
        # by client order id, creation order; the oldest finished ones beyond the engine's
        # history limit are forgotten (an order whose engine outcome has not come back yet,
        # state None, is working too)
        self.orders: OrderStore[SimOrderState] = OrderStore(
            key=lambda o: o.client_order_id,
            working=lambda o: o.state is None or o.is_open,
            limit=lambda: engine.history_limit,
        )
        self._exch_ids = iter(range(1_668_662_119_644, 10**16))
        self.ws_sessions: list[WsSession] = []
        # the last book each (symbol, levels) was sent as: what a client can know (the feed
        # refreshes every 20 ms, the engine runs ahead of it in between); bounded by the symbols
        # times the 20 possible depths, each refresh replaces its entry
        self.published: dict[tuple[str, int], tuple[list, list]] = {}
        self.counts: dict[str, int] = {}
        self.app = self._build_app()
        engine.add_listener(self)

    @classmethod
    def build(
        cls,
        seed: int,
        markets: dict[str, tuple[Decimal, Decimal]] | None = None,
        **kwargs: Any,
    ) -> OpenTradeSimulator:
        clock_ns = kwargs.pop("clock_ns", time.time_ns)
        engine = MatchingEngine(clock_ns=clock_ns)
        accounts = Accounts(engine, assets_of)
        sim = cls(engine, accounts, clock_ns=clock_ns, **kwargs)
        accounts.open(sim.account, dict(DEFAULT_BALANCES))
        sim.markets.update(
            seed_crowds(
                engine,
                (
                    (symbol, Decimal(mid), Decimal(tick), ENGINE_LOT, CROWD_MAX_LOTS)
                    for symbol, (mid, tick) in (markets or DEFAULT_MARKETS).items()
                ),
                seed,
            )
        )
        return sim

    def background(self) -> list[Callable[[], Awaitable[None]]]:
        return [self._book_loop, self._expiry_loop]

    def _count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    def _build_app(self) -> SimApp:
        app = SimApp()
        app.http("POST", "/auth/login")(self._login)
        app.http("POST", "/auth/auth/jwt/clients/{api_user}/token")(self._token)
        app.ws(WS_PATH, authorize=self._authorize)(self._ws)
        # fault injection: a `token_expiry` rule fires on login/token requests (as on every
        # simulator) and, since orders go over the WS, on signed TRADE_PRIVATE requests and
        # private updates (where the venue checks a live subscription's token)
        app.fault_actions["token_expiry"] = self.expire_tokens
        return app

    # --- fault injection and test hooks ----------------------------------------------------

    def expire_tokens(self) -> None:
        """Every JWT issued so far is expired from now on (live subscriptions notice on their
        next private update)."""
        for jti in self._tokens:
            self._tokens[jti] = 0.0

    def _roll_token_expiry(self) -> None:
        """An injected `token_expiry` fault where the venue checks a token on the WS (a signed
        request, a private update): every token ends now."""
        faults = self.app.faults
        if faults is not None and faults.roll("token_expiry", WS_PATH) is not None:
            self.expire_tokens()

    def publish_books(self) -> None:
        """Send every subscribed book now (the 20 ms publisher does the same)."""
        now_ms = self._clock_ns() // 1_000_000
        for session in list(self.ws_sessions):
            for symbol, levels in session.books.items():
                session.conn.enqueue(self._book_frame(symbol, levels, now_ms))

    def broadcast_raw(self, text: str) -> None:
        """Send a raw frame to every WS client (bad-input tests)."""
        for session in list(self.ws_sessions):
            session.conn.enqueue(text)

    def order(self, client_order_id: str) -> SimOrderState | None:
        return self.orders.get(client_order_id)

    def token_count(self) -> int:
        """How many issued tokens the venue still remembers (expired ones are forgotten)."""
        return len(self._tokens)

    def login_session_count(self) -> int:
        """How many login sessions (cookies) the venue still accepts."""
        return len(self._sessions_http)

    # tests drive the venue rules directly with these, without HTTP or a socket

    def login(self, request: HttpRequest) -> HttpResponse:
        """Answer `POST /auth/login`."""
        return self._login(request)

    def issue_token(self, request: HttpRequest, api_user: str) -> HttpResponse:
        """Answer `POST /auth/auth/jwt/clients/{api_user}/token`."""
        return self._token(request, api_user)

    def create_order(
        self, session: WsSession, item: dict, symbol: str, ack: Callable[[], Any]
    ) -> None:
        """A CREATE of `item` on `session` (its token already checked); refusals raise."""
        self._create(session, item, symbol, ack)

    def modify_order(self, item: dict, symbol: str, ack: Callable[[], Any]) -> None:
        """A MODIFY of `item` (its token already checked); refusals raise."""
        self._modify(item, symbol, ack)

    # --- HTTP: login and token -------------------------------------------------------------

    def _login(self, request: HttpRequest) -> HttpResponse:
        form = request.form()
        user, password = form.get("username"), form.get("password")
        if not (
            secrets.compare_digest((user or "").encode(), self.username.encode())
            and secrets.compare_digest((password or "").encode(), self.password.encode())
        ):
            self._count("login_refused")
            # [INF] a refused login is HTTP 401 with no cookie
            return HttpResponse(401, b'{"error":"Unauthorized"}')
        session = secrets.token_hex(16)
        self._sessions_http[session] = None
        trim_history(self._sessions_http, MAX_LOGIN_SESSIONS)
        cookie = f"{SESSION_COOKIE}={session}; Path=/; HttpOnly"
        return HttpResponse(200, b"", content_type="text/plain", headers={"set-cookie": cookie})

    def _token(self, request: HttpRequest, api_user: str) -> HttpResponse:
        session = _cookie(request.headers.get("cookie", ""), SESSION_COOKIE)
        if session is None or session not in self._sessions_http:
            return HttpResponse(401, b'{"error":"Unauthorized"}')  # [INF] no/unknown session
        secret = request.headers.get("clientsecret", "")
        if api_user != self.api_user or not secrets.compare_digest(
            secret.encode(), self.api_secret.encode()
        ):
            return HttpResponse(403, b'{"error":"Forbidden"}')  # [INF] wrong api user/secret
        now = time.time()
        self._tokens = {jti: expiry for jti, expiry in self._tokens.items() if expiry > now}
        jti = secrets.token_hex(8)
        exp = now + self.token_ttl_s
        self._tokens[jti] = exp
        claims = {"sub": api_user, "iat": int(now), "exp": int(exp) + 1, "jti": jti}
        token = jwt.encode(claims, self._key, algorithm="HS256")
        self._count("tokens")
        return HttpResponse(200, token.encode(), content_type="text/plain")

    def token_error(self, token: Any) -> str | None:
        """Why a signature is not acceptable, or None."""
        if not isinstance(token, str) or not token:
            return "signature required for a private channel"
        try:
            claims = jwt.decode(token, self._key, algorithms=["HS256"])
        except jwt.ExpiredSignatureError:
            return "invalid signature: token expired"
        except jwt.InvalidTokenError:
            return "invalid signature"
        expiry = self._tokens.get(str(claims.get("jti")))
        # only `_token` signs with our key: a jti we no longer hold was forgotten once expired
        if expiry is None or time.time() >= expiry:
            return "invalid signature: token expired"
        return None

    def _authorize(self, headers: dict[str, str]) -> int | None:
        # [INF] the handshake token is optional (public data needs none); a bad one is refused
        token = headers.get("authorization")
        if token is None:
            return None
        return 401 if self.token_error(token.removeprefix("Bearer ").strip()) else None

    # --- WebSocket -------------------------------------------------------------------------

    async def _ws(self, conn: WsConnection) -> None:
        session = WsSession(conn, last_ping=trio.current_time())
        self.ws_sessions.append(session)
        try:
            while True:
                # [DOC] a PING at least every 2 minutes, else the venue drops the connection
                text = None
                with trio.move_on_at(session.last_ping + self.ping_timeout_s):
                    text = await conn.receive_text()
                    if text is None:
                        return
                if text is None:
                    await conn.close(1008, "no PING within the required interval")
                    return
                for frame in self._handle(session, text):
                    conn.enqueue(frame)
        finally:
            self.ws_sessions.remove(session)

    def _handle(self, session: WsSession, text: str) -> list[str]:
        try:
            msg = loads_decimal(text)
        except FrameError:
            return [_text({"event": "ERROR", "message": "malformed JSON request"})]
        if not isinstance(msg, dict):
            return [_text({"event": "ERROR", "message": "request must be a JSON object"})]
        command, channel, rid = msg.get("command"), msg.get("channel"), msg.get("requestId")

        def reply(event: str, **extra: Any) -> str:
            body: dict[str, Any] = {"command": command, "event": event, "channel": channel}
            if rid is not None:
                body["requestId"] = rid  # [INF] replies echo the request's requestId
            body.update(extra)
            return _text(body)

        try:
            if command == "PING":
                session.last_ping = trio.current_time()
                return [_text({"event": "PONG", "channel": "PING"})]
            if command in ("SUBSCRIBE", "UNSUBSCRIBE"):
                return self._subscribe(session, msg, command, reply)
            if command == "GET":
                return self._get(msg, reply)
            if command in ("CREATE", "CANCEL", "MODIFY"):
                return self._order_command(session, msg, command, reply)
            raise Refused(f"unknown command {command!r}")
        except Refused as exc:
            self._count("errors")
            # [INF] ERROR payload: {"command","event":"ERROR","channel","requestId","message"}
            return [reply("ERROR", message=str(exc))]

    # --- subscriptions ---------------------------------------------------------------------

    def _subscribe(
        self, session: WsSession, msg: dict, command: str, reply: Callable[..., str]
    ) -> list[str]:
        channel = msg.get("channel")
        args = _args(msg)
        subscribe = command == "SUBSCRIBE"
        if channel in PRIVATE_CHANNELS:
            error = self.token_error(msg.get("signature"))
            if error:
                raise Refused(error)
            session.token = msg["signature"]
        if channel == "ORDER_BOOK_PUBLIC":
            symbols = self._instruments(args)
            levels = _int_arg(args, "levels", DEFAULT_LEVELS)
            if not 1 <= levels <= MAX_LEVELS:
                raise Refused(f"levels must be between 1 and {MAX_LEVELS}")
            for symbol in symbols:
                if subscribe:
                    session.books[symbol] = levels
                else:
                    session.books.pop(symbol, None)
            frames = [reply("ACK")]
            if subscribe:  # the first books at once, then every 20 ms
                now_ms = self._clock_ns() // 1_000_000
                frames += [self._book_frame(s, levels, now_ms) for s in symbols]
            return frames
        if channel == "TRADE_PUBLIC":
            symbols = self._instruments(args)
            (session.trades.update if subscribe else session.trades.difference_update)(symbols)
            return [reply("ACK")]
        if channel == "BALANCE":
            currencies = args.get("currency")
            wanted = parse_list_value(currencies) if currencies else self._currencies()
            (session.balance.update if subscribe else session.balance.difference_update)(wanted)
            if not subscribe:
                return [reply("ACK")]
            data = [self._balance_item(c) for c in wanted]
            return [reply("ACK"), reply("SNAPSHOT", data=data)]
        if channel == "TRADE_PRIVATE":
            symbols = self._instruments(args)
            (session.orders.update if subscribe else session.orders.difference_update)(symbols)
            if not subscribe:
                return [reply("ACK")]
            # the snapshot holds the ACTIVE orders of the subscribed instruments
            active = [
                self._order_item(o)
                for o in self.orders.values()
                if o.symbol in symbols and o.is_open
            ]
            return [reply("ACK"), reply("SNAPSHOT", data=active)]
        raise Refused(f"unknown channel {channel!r}")

    def _instruments(self, args: dict[str, str]) -> list[str]:
        raw = args.get("instrument")
        if not raw:
            raise Refused("instrument argument required")
        symbols = parse_list_value(raw)
        unknown = [s for s in symbols if s not in self.engine.symbols()]
        if unknown or not symbols:
            raise Refused(f"unknown instrument {', '.join(unknown) or raw}")
        return symbols

    def _currencies(self) -> list[str]:
        return sorted({a for s in self.engine.symbols() for a in assets_of(s)})

    # --- GET -------------------------------------------------------------------------------

    def _get(self, msg: dict, reply: Callable[..., str]) -> list[str]:
        channel = msg.get("channel")
        if channel == "ASSET_LIST":
            data = [{"class": "Currency", "code": c, "name": None} for c in self._currencies()]
            return [reply("GET", data=data)]
        if channel == "INSTRUMENT_LIST":
            data = [
                {
                    "class": "Instrument",
                    "quoteCurrencyCode": assets_of(s)[1],
                    "code": s,
                    "name": None,
                    # [INF] price and amount steps (the real list gives none)
                    "tickSize": num(self.engine.tick(s)),
                    "lotSize": num(self.engine.lot(s)),
                }
                for s in self.engine.symbols()
            ]
            return [reply("GET", data=data)]
        if channel == "TRADE_PRIVATE":
            self._roll_token_expiry()
            error = self.token_error(msg.get("signature"))
            if error:
                raise Refused(error)
            return [reply("GET", data=self._private_get(_args(msg)))]
        raise Refused(f"GET not supported on {channel!r}")

    def _private_get(self, args: dict[str, str]) -> list[dict[str, Any]]:
        category = args.get("category", "ACTIVE_ORDERS")
        symbols = set(self._instruments(args)) if args.get("instrument") else None
        begin = _date_arg(args, "date-from")
        end = _date_arg(args, "date-to")
        statuses = set(parse_list_value(args["status"])) if args.get("status") else None
        out = []
        for order in self.orders.values():
            if symbols is not None and order.symbol not in symbols:
                continue
            if (begin is not None and order.created_ns < begin) or (
                end is not None and order.created_ns >= end
            ):
                continue
            if category == "ACTIVE_ORDERS":
                keep = order.is_open
            elif category == "ORDERS_HISTORY":
                keep = True  # [INF] every order, in its current state, oldest first
            elif category == "TRADES_HISTORY":
                keep = order.filled > 0  # [INF] orders with fills
            else:
                raise Refused(f"unknown category {category!r}")
            if keep and (statuses is None or order.status in statuses):
                out.append(self._order_item(order))
        return out

    # --- order commands --------------------------------------------------------------------

    def _order_command(
        self, session: WsSession, msg: dict, command: str, reply: Callable[..., str]
    ) -> list[str]:
        if msg.get("channel") != "TRADE_PRIVATE":
            raise Refused(f"{command} goes to channel TRADE_PRIVATE")
        self._roll_token_expiry()
        error = self.token_error(msg.get("signature"))
        if error:
            raise Refused(error)
        data = msg.get("data")
        if not isinstance(data, list) or len(data) != 1 or not isinstance(data[0], dict):
            raise Refused("data must hold exactly one Order")
        item = data[0]
        symbol = item.get("globalInstrumentCd")
        if symbol not in self.engine.symbols():
            raise Refused(f"unknown instrument {symbol!r}")
        # Each handler validates, then queues its ACK itself before touching the engine, so the
        # ACK precedes the order updates the engine's callbacks push.
        ack = partial(session.conn.enqueue, reply("ACK"))
        if command == "CREATE":
            self._create(session, item, symbol, ack)
        elif command == "CANCEL":
            self._cancel(item, symbol, ack)
        else:
            self._modify(item, symbol, ack)
        return []

    def _create(self, session: WsSession, item: dict, symbol: str, ack: Callable[[], Any]) -> None:
        if symbol not in session.orders:
            # [DOC] an order for an instrument not subscribed on TRADE_PRIVATE is rejected
            self._count("unsubscribed_orders")
            raise Refused(f"instrument {symbol} is not subscribed on TRADE_PRIVATE")
        side = item.get("direction")
        if side not in ("BUY", "SELL"):
            raise Refused(f"direction must be BUY or SELL, got {side!r}")
        order_type = item.get("orderType")
        if item.get("orderSubType") == "POST_ONLY" and order_type == "LIMIT":
            order_type = "POST_ONLY"
        if order_type not in ORDER_TYPES:
            raise Refused(f"orderType must be one of {', '.join(ORDER_TYPES)}")
        amount = _positive(item, "amount")
        price = None if order_type == "MARKET" else _positive(item, "price")
        tif = item.get("timeInForce") or "GTC"
        if tif not in TIFS:
            raise Refused(f"timeInForce must be one of {', '.join(TIFS)}")
        request_type = item.get("requestType") or "SMART"
        if request_type not in ("SMART", "DIRECT"):
            raise Refused("requestType must be SMART or DIRECT")
        exchange = item.get("exchangeName")
        if request_type == "DIRECT" and not exchange:
            raise Refused("DIRECT orders need an exchangeName")
        now = self._clock_ns()
        expire_ns = None
        if tif == "GTT":
            expire = item.get("expireTime")  # [INF] GTT expiry: epoch milliseconds
            if not isinstance(expire, int) or expire <= 0:
                raise Refused("GTT orders need expireTime (epoch milliseconds)")
            expire_ns = expire * 1_000_000
        elif tif == "GTD":
            expire_ns = next_new_york_close_ns(now)
        exch_id = str(next(self._exch_ids))
        coid = item.get("clientOrderId")
        if coid is None or coid == "":
            coid = exch_id  # [INF] without a clientOrderId the order is named by its venue id
        coid = str(coid)
        existing = self.orders.get(coid)
        # an id forgotten with its old order (see `_forget_old_orders`) is accepted again
        if existing is not None:
            raise Refused(f"duplicate clientOrderId {coid}")
        order = SimOrderState(
            client_order_id=coid,
            exch_order_id=exch_id,
            symbol=symbol,
            side=Side(side),
            order_type=order_type,
            tif=tif,
            price=price,
            amount=amount,
            request_type=request_type,
            exchange_name=exchange if isinstance(exchange, str) else None,
            created_ns=now,
            expire_ns=expire_ns,
        )
        self.orders.add(order, trim=False)
        # the ACK answers the request; NEW, then the engine's outcome, follow as updates
        ack()
        new = self._order_item(order)
        new["price"] = None if price is None else format(price, "f")  # [DOC] string here
        self._push_orders(symbol, [new])
        self._engine_submit(order, order.amount)
        self.orders.trim()

    def _engine_submit(self, order: SimOrderState, quantity: Decimal) -> None:
        engine_type = MARKET if order.order_type == "MARKET" else LIMIT
        # GTD/GTT rest like GTC in the engine; the simulator expires them itself
        tif = order.tif if order.tif in ("IOC", "FOK") else GTC
        live = self.engine.submit(
            self.account,
            order.symbol,
            order.side,
            engine_type,
            quantity,
            price=order.price,
            tif=tif,
            post_only=order.order_type == "POST_ONLY",
            client_order_id=order.client_order_id,
        )
        order.engine_id = live.order_id
        if live.reject_reason:
            order.message = live.reject_reason

    def _find(self, item: dict, symbol: str) -> SimOrderState | None:
        coid = item.get("clientOrderId") or item.get("orderId")
        if coid not in (None, ""):
            order = self.orders.get(str(coid))
            return order if order is not None and order.symbol == symbol else None
        exch = item.get("exchangeOrderId") or item.get("exchOrderId")
        for order in self.orders.values():
            if order.exch_order_id == str(exch) and order.symbol == symbol:
                return order
        return None

    def _has_id(self, item: dict) -> bool:
        keys = ("clientOrderId", "orderId", "exchangeOrderId", "exchOrderId")
        return any(item.get(k) not in (None, "") for k in keys)

    def _cancel(self, item: dict, symbol: str, ack: Callable[[], Any]) -> None:
        if not self._has_id(item):
            ack()
            # [DOC] a CANCEL with no id cancels every order of the pair
            self._count("cancel_all_pair")
            cancelled = [o for o in self.orders.values() if o.symbol == symbol and o.is_open]
            for order in cancelled:
                self._engine_cancel(order)
            update = {
                "class": "OrderUpdate",
                "clientId": 100141,
                "requestType": "SMART",
                "tradeSide": None,
                "instrumentCd": symbol,
                "exchangeOrderId": None,
                "clientOrderId": None,
                "transactionId": self._clock_ns() // 1_000_000,
                "orderRequestStatus": "CANCELLED",
                "message": "",
                "key": f"100141:{symbol}:{len(cancelled)}",
            }
            self._push_orders(symbol, [update])
            return
        order = self._find(item, symbol)
        if order is None or not order.is_open:
            raise Refused("order not found or not active")
        ack()
        self._engine_cancel(order)

    def _engine_cancel(self, order: SimOrderState) -> None:
        if order.engine_id is not None:
            self.engine.cancel(order.engine_id)

    def _modify(self, item: dict, symbol: str, ack: Callable[[], Any]) -> None:
        order = self._find(item, symbol)
        if order is None or not order.is_open:
            raise Refused("order not found or not active")
        price = _positive(item, "price") if item.get("price") is not None else order.price
        amount = _positive(item, "amount") if item.get("amount") is not None else order.amount
        tick = self.engine.tick(symbol)
        if price is None or price % tick != 0:
            raise Refused(f"price must be a multiple of {tick}")
        if amount % self.engine.lot(symbol) != 0:
            raise Refused(f"amount must be a multiple of {self.engine.lot(symbol)}")
        if amount <= order.filled:
            raise Refused("amount must exceed the filled amount")
        if order.order_type == "POST_ONLY":
            best = (
                self.engine.best_ask(symbol)
                if order.side is Side.BUY
                else self.engine.best_bid(symbol)
            )
            crosses = best is not None and (
                price >= best if order.side is Side.BUY else price <= best
            )
            if crosses:
                raise Refused("post-only order would take liquidity")
        # the engine cannot amend: cancel the working part and place the rest anew, keeping
        # the fills (priority is lost, as with most venues' amend)
        state = order.state
        assert order.engine_id is not None and state is not None
        ack()
        order.retired.add(order.engine_id)
        self.engine.cancel(order.engine_id)
        order.prior_filled += state.filled
        order.prior_notional += state.avg_price * state.filled
        order.state = None
        order.price, order.amount = price, amount
        self._count("modified")
        self._engine_submit(order, amount - order.prior_filled)

    # --- engine callbacks ------------------------------------------------------------------

    def on_trade(self, fill: SimFill) -> None:
        trade = {
            "class": "PublicTrade",
            "exchange": EXCHANGE,
            "symbol": fill.symbol,
            "price": num(fill.price),
            "quantity": num(fill.quantity),
            "tradeSide": fill.aggressor.value,
            "eventTime": fill.ts_ns // 1_000_000,
        }
        frame = _text(
            {"command": "SUBSCRIBE", "event": "UPDATE", "channel": "TRADE_PUBLIC", "data": [trade]}
        )
        for session in list(self.ws_sessions):
            if fill.symbol in session.trades:
                session.conn.enqueue(frame)

    def on_order(self, snapshot: SimOrder) -> None:
        if snapshot.owner != self.account or snapshot.client_order_id is None:
            return
        order = self.orders.get(snapshot.client_order_id)
        if order is None:
            return
        if snapshot.order_id in order.retired:
            # an engine order replaced by a MODIFY: its cancel is not news, and its last event
            if snapshot.status != OPEN:
                order.retired.discard(snapshot.order_id)
            return
        order.state = snapshot
        if snapshot.reject_reason:
            order.message = snapshot.reject_reason
        self._push_orders(order.symbol, [self._order_item(order)])
        self._push_balances(assets_of(order.symbol))

    # --- pushing to subscribers ------------------------------------------------------------

    def _private_ok(self, session: WsSession, channel: str) -> bool:
        """A private push needs a live token: an expired one ends the private subscriptions."""
        self._roll_token_expiry()
        error = self.token_error(session.token)
        if error is None:
            return True
        # [INF] the venue tells the client once, then stops its private updates
        self._count("expired_subscriptions")
        session.conn.enqueue(
            _text({"command": "SUBSCRIBE", "event": "ERROR", "channel": channel, "message": error})
        )
        session.orders.clear()
        session.balance.clear()
        session.token = None
        return False

    def _push_orders(self, symbol: str, items: list[dict[str, Any]]) -> None:
        frame = _text(
            {"command": "SUBSCRIBE", "event": "UPDATE", "channel": "TRADE_PRIVATE", "data": items}
        )
        for session in list(self.ws_sessions):
            if symbol in session.orders and self._private_ok(session, "TRADE_PRIVATE"):
                session.conn.enqueue(frame)

    def _push_balances(self, assets: tuple[str, ...]) -> None:
        for session in list(self.ws_sessions):
            wanted = [a for a in assets if a in session.balance]
            if not wanted or not self._private_ok(session, "BALANCE"):
                continue
            data = [self._balance_item(a) for a in wanted]
            session.conn.enqueue(
                _text(
                    {"command": "SUBSCRIBE", "event": "UPDATE", "channel": "BALANCE", "data": data}
                )
            )

    # --- items -----------------------------------------------------------------------------

    def _order_item(self, order: SimOrderState) -> dict[str, Any]:
        return {
            "class": "Order",
            "orderId": order.client_order_id,
            "clientOrderId": order.client_order_id,
            "exchOrderId": order.exch_order_id,
            "direction": order.side.value,
            "orderType": order.order_type,
            "timeInForce": order.tif,
            "orderStatus": order.status,
            "price": None if order.price is None else num(order.price),
            "amount": num(order.amount),
            # [INF] cumulative filled amount; filledPrice = average fill price
            "filledAmount": num(order.filled),
            "filledPrice": num(order.avg_price),
            "orderDateTime": _iso_us(order.created_ns),
            "globalInstrumentCd": order.symbol,
            "message": order.message,
        }

    def _balance_item(self, asset: str) -> dict[str, Any]:
        total = self.accounts.balances(self.account).get(asset, Decimal(0))
        locked = Decimal(0)
        for order in self.orders.values():
            if not order.is_open or order.price is None or order.state is None:
                continue
            base, quote = assets_of(order.symbol)
            remaining = order.state.remaining
            if order.side is Side.BUY and quote == asset:
                locked += remaining * order.price
            elif order.side is Side.SELL and base == asset:
                locked += remaining
        return {
            "class": "Balance",
            "currencyCode": asset,
            "balance": num(total),
            "available": num(total - locked),
            "locked": num(locked),
        }

    def _book_frame(self, symbol: str, levels: int, now_ms: int) -> str:
        bids, asks = self.engine.book(symbol, levels)
        self.published[(symbol, levels)] = (bids, asks)
        book = {
            "class": "OrderBook",
            "exchange": EXCHANGE,
            "symbol": symbol,
            "bids": [[num(p), num(s)] for p, s in bids],
            "asks": [[num(p), num(s)] for p, s in asks],
            "eventTime": now_ms,
        }
        return _text(
            {
                "command": "SUBSCRIBE",
                "event": "UPDATE",
                "channel": "ORDER_BOOK_PUBLIC",
                "data": [book],
            }
        )

    # --- timers ----------------------------------------------------------------------------

    async def _book_loop(self) -> None:
        while True:
            await trio.sleep(self.book_interval_s)
            if self.timed_books:
                self.publish_books()  # [DOC] the whole book every 20 ms, changed or not

    def expire_orders(self, now_ns: int | None = None) -> int:
        """Expire GTT/GTD orders whose time has come; the number expired."""
        now = self._clock_ns() if now_ns is None else now_ns
        due = [
            o
            for o in self.orders.values()
            if o.is_open and o.expire_ns is not None and o.expire_ns <= now
        ]
        for order in due:
            order.expired = True
            assert order.engine_id is not None
            self.engine.cancel(order.engine_id)  # its on_order pushes the EXPIRED update
        return len(due)

    async def _expiry_loop(self) -> None:
        while True:
            await trio.sleep(0.05)
            self.expire_orders()


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
