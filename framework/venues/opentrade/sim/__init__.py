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

from framework.venues.opentrade.sim.common import (
    DEFAULT_BALANCES,
    DEFAULT_MARKETS,
    ENGINE_LOT,
    EXCHANGE,
    MAX_LEVELS,
    MAX_LOGIN_SESSIONS,
    SESSION_COOKIE,
    WS_PATH,
    Refused,
    SimOrderState,
    WsSession,
    assets_of,
    next_new_york_close_ns,
    num,
)
from framework.venues.opentrade.sim.simulator import OpenTradeSimulator

__all__ = [
    "DEFAULT_BALANCES",
    "DEFAULT_MARKETS",
    "ENGINE_LOT",
    "EXCHANGE",
    "MAX_LEVELS",
    "MAX_LOGIN_SESSIONS",
    "SESSION_COOKIE",
    "WS_PATH",
    "OpenTradeSimulator",
    "Refused",
    "SimOrderState",
    "WsSession",
    "assets_of",
    "next_new_york_close_ns",
    "num",
]
