"""The Power.Trade simulator: its state, construction, and the controls tests and faults use; the
protocol lives in the parts."""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any

from framework.events import Side
from framework.sim.accounts import Accounts
from framework.sim.engine import (
    EngineListener,
    MatchingEngine,
)
from framework.sim.loopback import LoopbackSimulator, seed_crowds
from framework.sim.market import SyntheticMarket
from framework.sim.orders import OrderStore
from framework.sim.server import SimApp, add_truth_hook
from framework.venues.powertrade.sim.common import (
    _RUN,
    DEFAULT_BALANCES,
    DEFAULT_MARKETS,
    ENGINE_OWNER,
    HEARTBEAT_S,
    SIM_API_KEY,
    Market,
    _Client,
    _Order,
    _Rfq,
    sim_public_key_pem,
    synthetic_markets,
)
from framework.venues.powertrade.sim.feed import L3Feed
from framework.venues.powertrade.sim.orders import OrderEntry
from framework.venues.powertrade.sim.rest import RestApi
from framework.venues.powertrade.sim.rfq import RfqsAndAccount
from framework.venues.powertrade.sim.session import Sessions


class PowerTradeSimulator(
    Sessions, L3Feed, OrderEntry, RfqsAndAccount, RestApi, LoopbackSimulator, EngineListener
):
    """The Power.Trade Market Proxy protocol over a `MatchingEngine`; `app` is the ASGI app."""

    def __init__(
        self,
        engine: MatchingEngine,
        accounts: Accounts,
        markets: dict[str, Market],
        *,
        seed: int = 0,
        heartbeat_s: float = HEARTBEAT_S,
        idle_drop_s: float | None = None,
        rfq_rate_hz: float = 0.0,
        whole_numbers: bool = True,
        ack_success: bool = False,
        multi_leg_order_id: bool = False,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.engine = engine
        self.accounts = accounts
        self.markets = markets
        self.api_key = SIM_API_KEY
        self.owner = ENGINE_OWNER  # the account's name on the engine
        self.heartbeat_s = heartbeat_s
        # None: silent clients stay connected (default, [INF]); IDLE_DROP_S for the strict form
        self.idle_drop_s = idle_drop_s
        # Ambiguities the adapter must survive in either form (see shared/venues/powertrade.md):
        # `whole_numbers`: accept "59900" / "1" as well as "59900.0" ([CODE] the later TS client
        # sends them and its tests assert acceptance; the reference: "Simulator: accept both").
        # False refuses them as the 2022 Python example documents ("825" fails).
        self.whole_numbers = whole_numbers
        # `ack_success`: a success `command_response` ("0") with the user_tag before
        # `order_accepted` (not shown by the venue's material [INF]; off by default)
        self.ack_success = ack_success
        # `multi_leg_order_id`: the WebSocket `order_accepted` of a multi-leg order names its
        # `order_id`. Off by default: [CODE integration/ws/place-multi-leg-order.test.ts]
        # expects the TS client's result without an orderId, i.e. no `order_id` in that
        # message (its REST twin, and every single-leg test, expect one)
        self.multi_leg_order_id = multi_leg_order_id
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
        self._rest_routes()
        add_truth_hook(self.app, self._truth)
        self.app.ws_fallback = self._ws
        engine.add_listener(self)

    def _truth(self) -> dict[str, Any]:
        # simulator-only test hook (framework/sim/server.py TRUTH_PATH); fill ids are the
        # venue's trade ids, which the client keeps
        orders, fills = [], []
        for o in self.orders.values():
            orders.append(
                {
                    "client_order_id": o.client_order_id,
                    "status": o.state,
                    "open": o.open,
                    "filled": o.filled,
                }
            )
            fills += [
                {
                    "fill_id": e["trade_id"],
                    "client_order_id": o.client_order_id,
                    "quantity": e["executed_quantity"],
                }
                for e in o.executions
            ]
        return {"orders": orders, "fills": fills}

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
