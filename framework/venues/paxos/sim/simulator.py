"""The Paxos simulator: its state, construction and routes; the protocol lives in the parts."""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import trio

from framework.sim.accounts import Accounts
from framework.sim.engine import (
    OPEN,
    EngineListener,
    MatchingEngine,
    SimFill,
)
from framework.sim.loopback import LoopbackSimulator, seed_crowds
from framework.sim.market import SyntheticMarket
from framework.sim.orders import OrderStore
from framework.sim.server import (
    SimApp,
    WsConnection,
)
from framework.venues.paxos.sim.account import AccountViews
from framework.venues.paxos.sim.auth import OAuth
from framework.venues.paxos.sim.common import (
    CROWD_LOT,
    DEFAULT_BALANCES,
    DEFAULT_MARKETS,
    ENGINE_LOT,
    Level,
    _PaxosOrder,
    _status_problem,
    _Token,
    assets_of,
)
from framework.venues.paxos.sim.feed import PublicFeed
from framework.venues.paxos.sim.limits import RateLimiter
from framework.venues.paxos.sim.orders import OrderEntry
from framework.venues.paxos.sim.sor import SmartOrderRouting


class PaxosSimulator(
    PublicFeed,
    SmartOrderRouting,
    OAuth,
    OrderEntry,
    AccountViews,
    LoopbackSimulator,
    EngineListener,
):
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
        # None: one SNAPSHOT frame with `final_snapshot: true` (the documented form); a number:
        # fragments of that many levels (an older form the adapter still accepts)
        snapshot_fragment_levels: int | None = None,
        # [INF] maker rebate as a fraction of the notional (0: `rebate` "0"); reported per
        # execution as `rebate` / `rebate_asset`
        maker_rebate_rate: Decimal = Decimal(0),
        # [DOC] per-endpoint 5-minute average limits (requests/s); `rate_limit_scale` shrinks
        # them for tests (1.0 = the documented figures)
        rate_limit_scale: float = 1.0,
        stablecoin_period_s: float = 1.0,
        seed: int = 0,
        clock_ns: Callable[[], int] | None = None,
    ) -> None:
        if snapshot_fragment_levels is not None and snapshot_fragment_levels < 1:
            raise ValueError("snapshot_fragment_levels must be at least 1")
        self.engine = engine
        self.accounts = accounts
        self.client_id = client_id
        self._client_secret = client_secret
        self.profile_id = profile_id
        self.token_ttl_s = token_ttl_s
        self.heartbeat_s = heartbeat_s
        self.snapshot_fragment_levels = snapshot_fragment_levels
        self.maker_rebate_rate = maker_rebate_rate
        self.limiter = RateLimiter(rate_limit_scale)
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
            working=lambda o: o.engine is not None and o.engine.status == OPEN,
            limit=lambda: engine.history_limit,
        )
        # orders that may still rest (pruned lazily), so that locks do not scan all history
        self._maybe_open: dict[str, _PaxosOrder] = {}
        # ref_id -> the order holding it, kept until 24 h after it closed (time, not count)
        self._ref_ids: dict[str, _PaxosOrder] = {}
        self._gtt: dict[str, _PaxosOrder] = {}  # working GTT orders by id
        # SOR top-of-book markets whose UPDATEs changed since the last TOP_OF_BOOK
        self._tob_dirty: set[str] = set()
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
        return [self._heartbeat_loop, self._stablecoin_loop, self._expiry_loop]

    async def _expiry_loop(self) -> None:
        # GTT expiry reaches the public book even when nobody calls the REST API
        while True:
            await trio.sleep(0.1)
            self._expire_due()
            self._prune_ref_ids()

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
        limit = self.limiter.wrap
        # [DOC] guides/developer/rate-limits.mdx: /oauth2/token 1/s; order-book and
        # recent-executions 10/s; all others 50/s (5-minute averages per endpoint and IP)
        app.http("POST", "/oauth2/token")(limit("token", 1, self._token))
        app.http("POST", "/v2/profiles/{profile_id}/orders")(
            limit("create", 50, self._create_order)
        )
        app.http("GET", "/v2/profiles/{profile_id}/orders/{order_id}")(
            limit("get-order", 50, self._get_order)
        )
        app.http("DELETE", "/v2/profiles/{profile_id}/orders/{order_id}")(
            limit("cancel", 50, self._cancel_order)
        )
        app.http("GET", "/v2/orders")(limit("orders", 50, self._list_orders))
        app.http("GET", "/v2/executions")(limit("executions", 50, self._list_executions))
        app.http("GET", "/v2/profiles/{profile_id}/balances")(limit("balances", 50, self._balances))
        app.http("GET", "/v2/markets")(limit("markets", 50, self._list_markets))
        app.http("GET", "/v2/markets/{market}/order-book")(
            limit("order-book", 10, self._order_book)
        )
        app.http("GET", "/v2/markets/{market}/recent-executions")(
            limit("recent-executions", 10, self._recent_executions)
        )
        app.ws("/marketdata")(self._ws_marketdata)
        app.ws("/marketdata/{market}")(self._ws_marketdata)
        app.ws("/marketdata/stablecoin")(self._ws_stablecoin)
        app.ws("/marketdata/stablecoin/{market}")(self._ws_stablecoin)
        app.ws("/executiondata")(self._ws_executiondata)
        app.ws("/executiondata/{market}")(self._ws_executiondata)
        app.ws("/", authorize=self._authorize_sor)(self._ws_sor)
        app.ws_fallback = self._ws_not_found
        return app
