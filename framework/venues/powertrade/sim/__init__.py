"""Power.Trade simulator: the Market Proxy WebSocket protocol on the shared matching engine.

One WebSocket (any path) carries everything, as on the real proxy: `authenticate` (ES256 JWT),
`entities_and_rules_request`, `subscribe` (order-by-order book from the engine's orders),
`register_for_rfqs` / `deregister_for_rfqs`, `new_order` (firm `market_id "0"` or RFQ `"none"`;
one instrument or multi-leg `legs`, entered as a composite instrument), `new_bulk_order`,
`cancel_order`, `cancel_all_orders`, `refresh_interest`, `balances`, `position_info` (the TS
client's `positions`), `trade_history_request`, heartbeats (sent to an idle client, never in
answer to one); and the REST API on the same port (`/v1/api/order`, `openOrders`, `allOrders`,
`positions`, `balances`, `deliverableInfo`, `refreshInterest`, `exchangeInfo`, `orderbook`,
`time`). Reference: shared/venues/powertrade.md; where the venue's own official TS client tests
(market-proxy-clients `typescript/src/integration/**`) show otherwise, they win, and the code says
so. Defaults are the venue's documented forms; where its material is silent the choice is marked
`[INF]`, and the ambiguous ones are options the adapter is tested against (`whole_numbers`,
`ack_success`, `idle_drop_s`, `multi_leg_order_id`).

The L3 feed is derived from the engine's `on_order` callbacks (every order's state after every
change, in order), so it always agrees with `engine.book()`.

Fault injection (framework/sim/faults.py) beyond the shared frame faults: `late_fill`, a trade
that reaches the order after the cancel request arrived (rolled on each `cancel_order` of a
resting order). Not `token_expiry`: the login token only has to survive `authenticate`, and the
venue documents no end to a logged-in session.
"""

from framework.venues.powertrade.sim.common import (
    CROWD_RFQ_TTL_S,
    DEFAULT_BALANCES,
    DEFAULT_MARKETS,
    ENGINE_OWNER,
    HEARTBEAT_S,
    IDLE_DROP_S,
    RFQ_OWNER,
    RFQ_TTL_S,
    SIM_API_KEY,
    Market,
    _Client,
    sim_private_key_pem,
    sim_public_key_pem,
    synthetic_markets,
    trade_id,
    wire,
)
from framework.venues.powertrade.sim.simulator import PowerTradeSimulator

__all__ = [
    "CROWD_RFQ_TTL_S",
    "DEFAULT_BALANCES",
    "DEFAULT_MARKETS",
    "ENGINE_OWNER",
    "HEARTBEAT_S",
    "IDLE_DROP_S",
    "RFQ_OWNER",
    "RFQ_TTL_S",
    "SIM_API_KEY",
    "Market",
    "PowerTradeSimulator",
    "_Client",
    "sim_private_key_pem",
    "sim_public_key_pem",
    "synthetic_markets",
    "trade_id",
    "wire",
]
