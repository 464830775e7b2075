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

from framework.venues.paxos.sim.common import (
    DEFAULT_BALANCES,
    DEFAULT_MARKETS,
    ENGINE_LOT,
    KNOWN_SCOPES,
    READ_ORDER,
    READ_PROFILE,
    SOR_SCOPE,
    STABLECOIN,
    WRITE_ORDER,
    assets_of,
    execution_id,
    iso_ms,
    iso_ns,
    match_number,
    parse_iso_ns,
    problem,
    wire,
)
from framework.venues.paxos.sim.simulator import PaxosSimulator

__all__ = [
    "DEFAULT_BALANCES",
    "DEFAULT_MARKETS",
    "ENGINE_LOT",
    "KNOWN_SCOPES",
    "READ_ORDER",
    "READ_PROFILE",
    "SOR_SCOPE",
    "STABLECOIN",
    "WRITE_ORDER",
    "PaxosSimulator",
    "assets_of",
    "execution_id",
    "iso_ms",
    "iso_ns",
    "match_number",
    "parse_iso_ns",
    "problem",
    "wire",
]
