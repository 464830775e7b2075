"""Roxom simulator: the signed WebSocket (`/ws`) and REST order entry (`/api/v1/...`) on one port.

    WS  /ws                                 market data + account events (signed handshake)
    POST /api/v1/orders                     create (market, limit, stop, stoplimit)
    POST /api/v1/orders/{orderId}/cancel    cancel (pendingcancel, then cancelled)
    POST /api/v1/orders/cancel-all
    GET  /api/v1/orders/{orderId}, GET /api/v1/orders?instType=&symbol=&includeClosed=
    GET  /api/v1/market/instruments         the catalogue (JSON numbers)
    GET  /sim/credentials                   simulator only: its generated test credentials

Defaults are the documented forms (REST views `{"data":{"order":...}}` / `{"data":{"orders":
[...]}}`, full order events with cumulative `filledFees`, a bad signature refused before the
upgrade). Options on `RoxomSimulator` for the forms the docs leave open: `auth_error_in_band`,
`short_events`, `echo_client_order_id`, `cumulative_fees`, `merge_fills`, `rest_amount_filled`.

A shared `MatchingEngine` and seeded `SyntheticMarket`s drive everything: engine level changes
become depth deltas, its matches trade aggregates and own-order events, and the account keeps
perpetual positions with margin and PnL. Reference: shared/venues/roxom.md. Behaviour the venue
does not document is marked `[INF]`; the adapter agrees with it.
"""

from framework.venues.roxom.sim.common import (
    DEFAULT_BALANCE,
    ENGINE_OWNER,
    FINAL,
    MAX_SUBSCRIPTIONS,
    RoxOrder,
    px,
    qty,
    sim_private_key,
)
from framework.venues.roxom.sim.simulator import RoxomSimulator

__all__ = [
    "DEFAULT_BALANCE",
    "ENGINE_OWNER",
    "FINAL",
    "MAX_SUBSCRIPTIONS",
    "RoxOrder",
    "RoxomSimulator",
    "px",
    "qty",
    "sim_private_key",
]
