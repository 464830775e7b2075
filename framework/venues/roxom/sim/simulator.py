"""The Roxom simulator: its state, construction, routes, and the controls tests and faults use; the
protocol lives in the parts."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from framework.events import Side
from framework.sim.engine import (
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
    add_truth_hook,
)
from framework.venues.roxom.auth import (
    public_key_pem,
)
from framework.venues.roxom.instruments import SPECS
from framework.venues.roxom.sim.account import SimAccount
from framework.venues.roxom.sim.common import (
    CROWD_MAX_LOTS,
    DEFAULT_BALANCE,
    ENGINE_OWNER,
    FINAL,
    MAX_SUBSCRIPTIONS,
    RoxOrder,
    sim_private_key,
)
from framework.venues.roxom.sim.events import AccountEvents
from framework.venues.roxom.sim.feed import MarketFeed
from framework.venues.roxom.sim.orders import OrderEntry
from framework.venues.roxom.sim.session import Sessions


class RoxomSimulator(
    MarketFeed, AccountEvents, Sessions, OrderEntry, LoopbackSimulator, EngineListener
):
    """The Roxom protocol over a `MatchingEngine`; `app` is the ASGI app to serve."""

    def __init__(
        self,
        engine: MatchingEngine,
        *,
        seed: int = 0,
        clock_ns: Callable[[], int] | None = None,
        api_key: str = "sim-api-key",
        private_key_pem: str | None = None,
        hmac_secret: str = "sim-hmac-secret",
        balance: Decimal = DEFAULT_BALANCE,
        maker_fee_rate: Decimal = Decimal("0.0002"),
        taker_fee_rate: Decimal = Decimal("0.0005"),
        ticker_period_s: float = 1.0,
    ) -> None:
        self.engine = engine
        self.markets: dict[str, SyntheticMarket] = {}
        self.crowds = self.markets  # LoopbackSimulator runs them
        self._clock_ns: Callable[[], int] = clock_ns or engine.clock_ns
        self._rng = random.Random(seed)
        self.api_key = api_key
        self.private_key_pem = private_key_pem or sim_private_key()
        self._public_pem = public_key_pem(self.private_key_pem)
        self.hmac_secret = hmac_secret
        self.account = SimAccount(self._uuid(), balance, new_id=self._uuid)
        self.owner = self.account.account_id
        self.engine_owner = ENGINE_OWNER
        self.fee_rates = {True: maker_fee_rate, False: taker_fee_rate}  # by is-maker
        self.ticker_period_s = ticker_period_s
        # our orders by venue id (creation order), client order id and engine id, bounded
        self.orders: OrderStore[RoxOrder] = OrderStore(
            key=lambda o: o.order_id,
            client_id=lambda o: o.client_order_id,
            working=lambda o: o.status not in FINAL,
            limit=lambda: engine.history_limit,
        )
        self._stops: dict[str, RoxOrder] = {}
        # per connection; the docs name the error but not the limit
        self.max_subscriptions = MAX_SUBSCRIPTIONS
        self._subs: dict[tuple[str, str | None], set[WsConnection]] = {}
        self._account_conns: set[WsConnection] = set()
        self._conn_ids: dict[WsConnection, str] = {}
        self._ts: dict[str, int] = {}
        self._top: dict[str, tuple[Any, Any]] = {}
        self._last_px: dict[str, Decimal] = {}
        self._aggregates: dict[str, list[SimFill]] = {}
        self._submitting: RoxOrder | None = None
        # fault injection (tests)
        self.skip_snapshot: set[str] = set()  # next depth subscribe of these: ack, no snapshot
        self.hold_cancels = False  # cancels stay `pendingcancel` until release_cancels()
        self.mute_account = False  # account events are lost (as while disconnected)
        self._held: list[RoxOrder] = []
        # documented-mode defaults; each option is a form the venue's material leaves open
        self.auth_error_in_band = False  # bad signature: upgrade, then 600010 and a close
        self.short_events = False  # order events in the published short form
        self.echo_client_order_id = True  # False: the venue ignores clientOrderId
        self.cumulative_fees = True  # False: filledFees is the latest fill's fee
        self.merge_fills = False  # one event for the fills of one match
        self.rest_amount_filled = False  # REST views carry `amountFilled`
        self._merged: set[str] = set()
        # engine trade id -> the fill id the client derives for our side (`orderId:executedQty`)
        self.fill_ids: dict[str, str] = {}
        self.app = self._build_app()
        engine.add_listener(self)

    # --- construction ------------------------------------------------------------------------

    @classmethod
    def build(cls, seed: int, symbols: list[str] | None = None, **kwargs: Any) -> RoxomSimulator:
        """A simulator on a fresh engine with a seeded crowd on each symbol."""
        clock_ns = kwargs.pop("clock_ns", time.time_ns)
        engine = MatchingEngine(clock_ns=clock_ns, id_prefix="E")
        sim = cls(engine, seed=seed, clock_ns=clock_ns, **kwargs)
        specs = [
            (symbol, SPECS[symbol].sim_mid, SPECS[symbol].tick, SPECS[symbol].step, CROWD_MAX_LOTS)
            for symbol in symbols or list(SPECS)
        ]
        sim.markets.update(seed_crowds(engine, specs, seed))
        return sim

    def background(self) -> list[Callable[[], Awaitable[None]]]:
        return [self._ticker_loop, self._expiry_loop]

    def replace_key(self, private_key_pem: str) -> None:
        """Register another key for the API key: signatures made with the old one now fail."""
        self._public_pem = public_key_pem(private_key_pem)

    def release_cancels(self) -> None:
        held, self._held = self._held, []
        for order in held:
            self._cancel_now(order)

    def broadcast(self, text: str) -> None:
        """Send a raw frame to every WebSocket (bad-input tests)."""
        for conn in list(self._account_conns):
            conn.enqueue(text)

    def stops(self) -> list[RoxOrder]:
        """Stop orders waiting for their trigger (not yet on the engine), oldest first."""
        return list(self._stops.values())

    def new_order(self, body: dict[str, Any]) -> dict[str, str]:
        """Place an order as `POST /api/v1/orders` does, unsigned (tests drive the venue rules
        directly); refusals raise."""
        return self._new_order(body)

    def cancel_order(self, order_id: str) -> dict[str, bool]:
        """Cancel as `POST /api/v1/orders/{order_id}/cancel` does, unsigned; refusals raise."""
        return self._cancel_order(order_id)

    def send_crossed_delta(self, symbol: str) -> None:
        """A bogus depth delta: a bid at the best ask, which crosses the client's book."""
        ask = self.engine.best_ask(symbol)
        assert ask is not None
        self._depth_delta(symbol, Side.BUY, ask, Decimal(1))

    def _build_app(self) -> SimApp:
        app = SimApp(error_response=self._error_response)
        app.http("POST", "/api/v1/orders")(self._create)
        app.http("POST", "/api/v1/orders/cancel-all")(self._cancel_all)
        app.http("POST", "/api/v1/orders/{order_id}/cancel")(self._cancel)
        app.http("GET", "/api/v1/orders/{order_id}")(self._get)
        app.http("GET", "/api/v1/orders")(self._list)
        app.http("GET", "/api/v1/market/instruments")(self._instruments)
        app.http("GET", "/sim/credentials")(self._credentials)
        add_truth_hook(app, self._truth)
        app.ws("/ws", authorize=self._authorize)(self._ws)
        return app

    def _truth(self) -> dict[str, Any]:
        # simulator-only test hook (framework/sim/server.py TRUTH_PATH); fill ids as the client
        # names them (`<orderId>:<executedQty>`), by the order that made them
        by_engine = {o.engine_id: o for o in self.orders.values() if o.engine_id is not None}
        fills = []
        for fill in self.engine.fills(self.engine_owner):
            for engine_id in (fill.maker_order_id, fill.taker_order_id):
                order = by_engine.get(engine_id)
                if order is not None and fill.trade_id in self.fill_ids:
                    fills.append(
                        {
                            "fill_id": self.fill_ids[fill.trade_id],
                            "client_order_id": order.client_order_id or "",
                            "quantity": fill.quantity,
                        }
                    )
        return {
            "orders": [
                {
                    "client_order_id": o.client_order_id or "",
                    "status": o.status,
                    "open": o.status not in FINAL,
                    "filled": o.executed,
                }
                for o in self.orders.values()
            ],
            "fills": fills,
        }

    # --- ids and time --------------------------------------------------------------------------

    def _uuid(self) -> str:
        # uuid v7 layout (ms timestamp first) from the seeded generator: reproducible runs
        ms = self._clock_ns() // 1_000_000
        rand = self._rng.getrandbits(74)
        value = (ms & (2**48 - 1)) << 80 | 0x7 << 76 | (rand >> 62) << 64 | 0b10 << 62
        return str(uuid.UUID(int=value | (rand & (2**62 - 1))))
