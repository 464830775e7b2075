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

Where the venue's material is silent or conflicts, the default is one form and the others are
options of `OpenTradeSimulator` (the adapter is tested against each, tests/venues/opentrade/
test_orders.py `FORMS`):

- `echo_request_id` (off): [DOC] no published reply carries `requestId`;
- `fill_amounts` (off): `filledAmount` on `Order` items [INF]; published items have none;
- `cancel_ack_names_order` (off): the cancel `OrderUpdate` names the order; published: null ids;
- `cancel_reply_order` (on): after that `OrderUpdate`, the order in the CREATE answer's form (no
  `event`) [INF], which the FlexFills SDK waits for;
- `cancel_order_update` (off): an `Order` CANCELLED update to subscribers as well [INF];
- `trade_history_lag_s` (0): a fill is listed in TRADES_HISTORY only this long after it
  happened [INF]; by default it is listed before the order's update is pushed;
- `connect_confirmation` (on): `{"event":"CONNECTED"}` on open [DOC: promised, shape INF]; the
  SDK would take it for its first answer, so its test turns it off.

Other [INF] choices: an `ACK` precedes every answer; ERROR is `{"command","event":"ERROR",
"channel","message"}`; TRADES_HISTORY lists one `Order` item per fill (`amount` = the fill's
size, `filledPrice` its price); prices are cut (truncated) to 7 significant digits, amounts
rounded half-up to 8 decimals; the SDK's `exchange` is taken as `exchangeName`; a GET
TRADE_POSITIONS without a signature is checked against the handshake's token; positions are the
net filled volume per instrument.
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
