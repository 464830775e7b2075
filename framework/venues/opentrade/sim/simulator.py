"""The Open Trade simulator: its state, construction, routes, and the hooks tests drive it with;
the protocol lives in the parts."""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from framework.sim.accounts import Accounts
from framework.sim.engine import (
    EngineListener,
    MatchingEngine,
)
from framework.sim.loopback import LoopbackSimulator, seed_crowds
from framework.sim.market import SyntheticMarket
from framework.sim.orders import OrderStore
from framework.sim.server import HttpRequest, HttpResponse, SimApp, add_truth_hook
from framework.venues.opentrade.sim.auth import Logins
from framework.venues.opentrade.sim.common import (
    CROWD_MAX_LOTS,
    DEFAULT_BALANCES,
    DEFAULT_MARKETS,
    ENGINE_LOT,
    WS_PATH,
    SimOrderState,
    WsSession,
    assets_of,
)
from framework.venues.opentrade.sim.feed import Publisher
from framework.venues.opentrade.sim.orders import OrderEntry
from framework.venues.opentrade.sim.session import Sessions


class OpenTradeSimulator(
    Logins, Sessions, OrderEntry, Publisher, LoopbackSimulator, EngineListener
):
    """The Open Trade protocol over a `MatchingEngine`; `app` is the ASGI app to serve."""

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
        echo_request_id: bool = False,
        fill_amounts: bool = False,
        cancel_ack_names_order: bool = False,
        cancel_reply_order: bool = True,
        cancel_order_update: bool = False,
        connect_confirmation: bool = True,
        trade_history_lag_s: float = 0.0,
    ) -> None:
        self.engine = engine
        self.accounts = accounts
        self.username = username
        self.password = password
        self.api_user = api_user
        self.api_secret = api_secret
        self.account = api_user  # engine owner of our orders
        self.token_ttl_s = token_ttl_s
        # Where the venue's material is silent or conflicts, one form is the default and the
        # others are options (the adapter is tested against each):
        # - [DOC] no published reply carries `requestId`; an echo is opt-in
        self.echo_request_id = echo_request_id
        # - [DOC] no published `Order` item carries a filled amount; `filledAmount` is opt-in
        self.fill_amounts = fill_amounts
        # - [CODE] the published cancel `OrderUpdate` has null ids; naming the order is opt-in
        self.cancel_ack_names_order = cancel_ack_names_order
        # - [INF] after that `OrderUpdate`, the order in the CREATE answer's form (no event), which
        #   the FlexFills SDK waits for; off: the `OrderUpdate` alone
        self.cancel_reply_order = cancel_reply_order
        # - [INF] an `Order` CANCELLED update to subscribers as well after our CANCEL
        self.cancel_order_update = cancel_order_update
        # - [DOC] "upon connection, you'll receive a confirmation message" (the SDK, which takes
        #   the first frame as its answer, shows none): on by default, as the page says
        self.connect_confirmation = connect_confirmation
        # - [INF] a fill is listed in TRADES_HISTORY before the order's update is pushed; a lag
        #   (the history written after the update, as at venues whose history is a separate
        #   store) is opt-in: a fill is listed only this long after it happened
        self.trade_history_lag_s = trade_history_lag_s
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

    def _truth(self) -> dict[str, Any]:
        # simulator-only test hook (framework/sim/server.py TRUTH_PATH); fills by the engine's
        # trade ids (the client derives its own from cumulative amounts: not comparable one by one)
        orders, fills = [], []
        for o in self.orders.values():
            orders.append(
                {
                    "client_order_id": o.client_order_id,
                    "status": o.status,
                    "open": o.state is None or o.is_open,
                    "filled": o.filled,
                }
            )
            fills += [
                {"fill_id": trade, "client_order_id": o.client_order_id, "quantity": size}
                for trade, _price, size, _ts in o.fills
            ]
        return {"orders": orders, "fills": fills}

    def _build_app(self) -> SimApp:
        app = SimApp()
        app.http("POST", "/auth/login")(self._login)
        add_truth_hook(app, self._truth)
        app.http("POST", "/auth/auth/jwt/clients/{api_user}/token")(self._token)
        # [DOC] step 2's text: GET, singular `client`, `clientSecret` as a query parameter
        app.http("GET", "/auth/auth/jwt/client/{api_user}/token")(self._token_get)
        app.ws(WS_PATH, authorize=self._authorize)(self._ws)
        # fault injection: a `token_expiry` rule fires on login/token requests (as on every
        # simulator) and, since orders go over the WS, on signed TRADE_PRIVATE requests and
        # private updates (where the venue checks a live subscription's token)
        app.fault_actions["token_expiry"] = self.expire_tokens
        return app

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
