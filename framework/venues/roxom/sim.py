"""Roxom simulator: the signed WebSocket (`/ws`) and REST order entry (`/api/v1/...`) on one port.

    WS  /ws                                 market data + account events (signed handshake)
    POST /api/v1/orders                     create (market, limit, stop, stoplimit)
    POST /api/v1/orders/{orderId}/cancel    cancel (pendingcancel, then cancelled)
    POST /api/v1/orders/cancel-all
    GET  /api/v1/orders/{orderId}, GET /api/v1/orders?instType=&symbol=&includeClosed=
    GET  /sim/credentials                   simulator only: its generated test credentials

A shared `MatchingEngine` and seeded `SyntheticMarket`s drive everything: engine level changes
become depth deltas, its matches trade aggregates and own-order events, and the account keeps
perpetual positions with margin and PnL. Reference: shared/venues/roxom.md. Behaviour the venue
does not document is marked `[INF]`; the adapter agrees with it.
"""

from __future__ import annotations

import functools
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import attrs
import orjson
import structlog
import trio

from framework.events import Side
from framework.sim.engine import (
    CANCELLED,
    FILLED,
    GTC,
    IOC,
    LIMIT,
    MARKET,
    OPEN,
    POST_ONLY_REASON,
    REJECTED,
    EngineListener,
    MatchingEngine,
    SimFill,
    SimOrder,
)
from framework.sim.loopback import LoopbackSimulator, seed_crowds, trim_history
from framework.sim.market import SyntheticMarket
from framework.sim.orders import OrderStore
from framework.sim.parsing import Refusals, parse_decimal
from framework.sim.server import (
    HttpRequest,
    HttpResponse,
    SimApp,
    WsConnection,
    dumps,
    fan_out,
    json_response,
)
from framework.venues.roxom.auth import (
    WS_MESSAGE,
    canonical_body,
    canonical_query,
    new_private_key_pem,
    public_key_pem,
    rest_message,
    verify_hmac,
    verify_rsa,
)
from framework.venues.roxom.instruments import INST_TYPE, SPECS, band_refusal
from framework.venues.roxom.sim_account import SimAccount, SimPosition

log = structlog.get_logger("botrun.sim.roxom")

# [DOC] WS error codes (strings)
AUTH_FAILED, INVALID_CHANNEL, INVALID_SYMBOL = "600010", "60014", "60015"
SUBSCRIPTION_LIMIT, MALFORMED, BINARY, INTERNAL = "60016", "60017", "60018", "60019"
MARKET_CHANNELS = ("level1", "trade", "depth", "ticker")
PRIVATE_CHANNELS = ("orders", "balance", "positions", "account")
# the account's owner id on the matching engine: fixed, so that tests can tell our orders and
# fills from the crowd's (the venue's accountId is a generated uuid)
ENGINE_OWNER = "roxom-sim-account"
FINAL = frozenset({"filled", "cancelled", "partiallyfilledcancelled", "rejected", "inactive"})
MAX_SUBSCRIPTIONS = 100  # [INF] per connection; the docs name the error but not the limit
DEFAULT_BALANCE = Decimal("1")  # BTC
FUNDING_RATE = "0.0001"  # [INF] a constant funding rate
CROWD_MAX_LOTS = 100
_PX = Decimal("0.00000001")
_ERROR_MESSAGES = {
    AUTH_FAILED: "Authentication failed",
    INVALID_CHANNEL: "Invalid channel",
    INVALID_SYMBOL: "Invalid symbol",
    SUBSCRIPTION_LIMIT: "Subscription limit exceeded",
    MALFORMED: "Malformed JSON",
    BINARY: "Binary frames not supported",
    INTERNAL: "Internal error",
}


@functools.cache
def sim_private_key() -> str:
    """The simulator account's RSA key: generated once per process at run time, never stored."""
    return new_private_key_pem()


def px(value: Decimal) -> str:
    """Prices with the 8 decimals of the docs ("0.00432450")."""
    return format(value.quantize(_PX), "f")


def qty(value: Decimal) -> str:
    return format(value, "f")


def _text(obj: Any) -> str:
    return dumps(obj).decode()


# --- state ---------------------------------------------------------------------------------------


@attrs.define(slots=True)
class RoxOrder:
    order_id: str
    client_order_id: str | None
    symbol: str
    side: Side
    order_type: str  # market | limit | stop | stoplimit
    size: Decimal
    limit_price: Decimal | None
    trigger_price: Decimal | None
    tif: str  # gtc | ioc | gtd
    post_only: bool
    cancel_at_ms: int | None
    status: str = "pendingsubmit"
    executed: Decimal = Decimal(0)
    notional: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    fill_px: Decimal | None = None
    fill_fee: Decimal | None = None
    reason: str | None = None
    engine_id: str | None = None
    position_id: str | None = None
    timestamp: int = 0


class _Refused(Exception):
    """A REST request refused with the venue's error body."""

    def __init__(self, status: int, message: str, details: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.details = status, message, details


# --- the simulator -------------------------------------------------------------------------------


class RoxomSimulator(LoopbackSimulator, EngineListener):
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
            engine_id=lambda o: o.engine_id,
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
        app.http("GET", "/sim/credentials")(self._credentials)
        app.ws("/ws", authorize=self._authorize)(self._ws)
        return app

    # --- ids and time --------------------------------------------------------------------------

    def _uuid(self) -> str:
        # uuid v7 layout (ms timestamp first) from the seeded generator: reproducible runs
        ms = self._clock_ns() // 1_000_000
        rand = self._rng.getrandbits(74)
        value = (ms & (2**48 - 1)) << 80 | 0x7 << 76 | (rand >> 62) << 64 | 0b10 << 62
        return str(uuid.UUID(int=value | (rand & (2**62 - 1))))

    def _next_ts(self, symbol: str) -> int:
        # strictly increasing per symbol, so a client can order deltas against a snapshot
        now = max(self._clock_ns(), self._ts.get(symbol, 0) + 1)
        self._ts[symbol] = now
        return now

    # --- engine callbacks --------------------------------------------------------------------

    def on_level(self, symbol: str, side: Side, price: Decimal, size: Decimal) -> None:
        self._depth_delta(symbol, side, price, size)
        subs = self._subs.get(("level1", symbol))
        if subs:
            top = self._top_levels(symbol)
            if top != self._top.get(symbol):
                self._top[symbol] = top
                fan_out(subs, self._level1_frame(symbol, top))

    def _depth_delta(self, symbol: str, side: Side, price: Decimal, size: Decimal) -> None:
        subs = self._subs.get(("depth", symbol))
        if not subs:
            return
        ts = self._next_ts(symbol)
        level = [[px(price), qty(size)]]
        data = {
            "symbol": symbol,
            # [INF] one level per delta (as the engine reports changes); the other side []
            "bid": level if side is Side.BUY else [],
            "ask": level if side is Side.SELL else [],
            "timestamp": ts,
        }
        fan_out(subs, self._market_frame("depth", symbol, "delta", data, ts))

    def on_trade(self, fill: SimFill) -> None:
        self._last_px[fill.symbol] = fill.price
        self._aggregates.setdefault(fill.taker_order_id, []).append(fill)
        maker = self.orders.by_engine(fill.maker_order_id)
        if maker is not None:
            self._own_fill(maker, fill, True)
        taker = self._own(fill.taker_order_id, fill.taker_owner)
        if taker is not None:
            self._own_fill(taker, fill, False)
        if self._stops:
            self._check_stops(fill.symbol, fill.price)

    def on_order(self, order: SimOrder) -> None:
        fills = self._aggregates.pop(order.order_id, None)
        if fills:
            self._trade_aggregate(order.symbol, fills)
        own = self._own(order.order_id, order.owner)
        if own is None:
            return
        status = own.status
        if order.status == OPEN:
            status = "submitted" if own.executed == 0 else "partiallyfilled"
        elif order.status == FILLED:
            status = "filled"
        elif order.status == CANCELLED:
            status = "partiallyfilledcancelled" if own.executed > 0 else "cancelled"
        elif order.status == REJECTED:
            # [DOC] a post-only order that would cross is cancelled, not rejected
            status = "cancelled" if order.reject_reason == POST_ONLY_REASON else "rejected"
            own.reason = order.reject_reason
        if status != own.status and own.status not in FINAL:
            own.status = status
            self._order_event(own)

    # --- own orders, positions, balance --------------------------------------------------------

    def _own(self, engine_id: str, owner: str) -> RoxOrder | None:
        """Our order behind an engine id; binds the order being submitted to its new id."""
        order = self.orders.by_engine(engine_id)
        submitting = self._submitting
        if (
            order is None
            and owner == self.engine_owner
            and submitting is not None
            and submitting.engine_id is None
        ):
            # the engine reports a submit's matches before `submit` returns the id
            order = submitting
            order.engine_id = engine_id
            self.orders.bind_engine(engine_id, order)
        return order

    def _own_fill(self, order: RoxOrder, fill: SimFill, maker: bool) -> None:
        notional = fill.price * fill.quantity
        fee = notional * self.fee_rates[maker]
        order.executed += fill.quantity
        order.notional += notional
        order.fees += fee
        order.fill_px, order.fill_fee = fill.price, fee
        self.fill_ids[fill.trade_id] = f"{order.order_id}:{order.executed.normalize():f}"
        self._forget_old_fills()
        # [INF] one order event per fill, so `fillPx`/`filledFees` always price exactly the
        # change in `executedQty`
        order.status = "filled" if order.executed == order.size else "partiallyfilled"
        settlement = self.account.on_fill(
            fill.symbol, order.side, fill.quantity, fill.price, fee, fill.ts_ns
        )
        order.position_id = settlement.position.id
        self._order_event(order)
        self._account_event(
            "balance",
            {
                "accountId": self.owner,
                # [INF] exact amounts (fees can be below a satoshi)
                "balanceBefore": format(settlement.before, "f"),
                "balanceAfter": format(settlement.after, "f"),
                "amount": format(settlement.after - settlement.before, "f"),
                "unit": "btc",
                "updateType": "ordersettle",
                "timestamp": fill.ts_ns,
            },
        )
        self._account_event("position", [self._position_view(settlement.position)])

    def _order_event(self, order: RoxOrder) -> None:
        order.timestamp = self._clock_ns()
        self._account_event("order", self._order_view(order))

    def _account_event(self, kind: str, data: Any) -> None:
        # [DOC] account events go to every authenticated connection, subscribed or not
        if self.mute_account:
            return
        fan_out(self._account_conns, _text({"type": kind, "data": data}))

    def _order_view(self, order: RoxOrder) -> dict[str, Any]:
        avg = order.notional / order.executed if order.executed else Decimal(0)
        view: dict[str, Any] = {
            "orderId": order.order_id,
            "accountId": self.owner,
            "symbol": order.symbol,
            "status": order.status,
            "remainingQty": qty(order.size - order.executed),
            "executedQty": qty(order.executed),
            "avgPx": px(avg),
            "fillPx": None if order.fill_px is None else px(order.fill_px),
            # [INF] the fee of the latest fill (pairs with fillPx), in BTC
            "filledFees": None if order.fill_fee is None else format(order.fill_fee, "f"),
            "side": order.side.value.lower(),
            "orderType": order.order_type,
            "orderSize": qty(order.size),
            "limitPrice": None if order.limit_price is None else px(order.limit_price),
            "triggerPrice": None if order.trigger_price is None else px(order.trigger_price),
            "timeInForce": order.tif,
            "postOnly": order.post_only,
            "clientOrderId": order.client_order_id,
            "entryPositionId": order.position_id,
            "exitPositionId": None,
            "reason": order.reason,
            "timestamp": order.timestamp,
        }
        return view

    def _position_view(self, pos: SimPosition) -> dict[str, Any]:
        mark = self._mid(pos.symbol)
        acct = self.account
        margin = acct.initial_margin(pos)
        liquidation = acct.liquidation_price(pos)
        return {
            "id": pos.id,
            "symbol": pos.symbol,
            "accountId": self.owner,
            "side": "long" if pos.size >= 0 else "short",
            "entryAmount": qty(pos.entry_amount),
            "exitAmount": qty(pos.exit_amount),
            "size": qty(abs(pos.size)),
            "tradeMode": "isolated",
            "openDate": pos.created_ns // 1_000_000,  # [DOC] ms, unlike updatedAt (ns)
            "closeDate": None if pos.closed_ns is None else pos.closed_ns // 1_000_000,
            "avgEntry": format(pos.avg_entry, "f"),
            "avgExit": None if pos.avg_exit is None else format(pos.avg_exit, "f"),
            "entryFees": format(pos.entry_fees, "f"),
            "exitFees": format(pos.exit_fees, "f"),
            "positionBalance": format(margin, "f"),
            "initialMargin": format(margin, "f"),
            "maintenanceMargin": format(margin / 2, "f"),
            "liquidationPrice": None if liquidation is None else format(liquidation, "f"),
            "leverage": format(acct.leverage, "f"),
            "unrealizedPnl": format(acct.unrealized(pos, mark), "f"),
            "realizedPnl": format(pos.realized, "f"),
            "markPrice": None if mark is None else px(mark),
            "status": pos.status,
            "updatedAt": pos.updated_ns,
            "createdAt": pos.created_ns,
        }

    # --- market data frames --------------------------------------------------------------------

    def _market_frame(
        self, channel: str, symbol: str, kind: str, data: dict[str, Any], ts: int
    ) -> str:
        return _text(
            {"topic": f"{channel}.{symbol}", "type": kind, "createdTime": ts, "data": data}
        )

    def _depth_snapshot(self, symbol: str) -> str:
        bids, asks = self.engine.book(symbol)
        ts = self._next_ts(symbol)
        data = {
            "symbol": symbol,
            "bid": [[px(p), qty(s)] for p, s in bids],
            "ask": [[px(p), qty(s)] for p, s in asks],
            "timestamp": ts,
        }
        return self._market_frame("depth", symbol, "snapshot", data, ts)

    def _top_levels(self, symbol: str) -> tuple[Any, Any]:
        bids, asks = self.engine.book(symbol, 1)
        return (bids[0] if bids else None, asks[0] if asks else None)

    def _level1_frame(self, symbol: str, top: tuple[Any, Any]) -> str:
        bid, ask = top
        ts = self._next_ts(symbol)
        data = {
            "symbol": symbol,
            "bid": [px(bid[0]), qty(bid[1])] if bid else [],  # [INF] an empty side is []
            "ask": [px(ask[0]), qty(ask[1])] if ask else [],
            "timestamp": ts,
        }
        return self._market_frame("level1", symbol, "snapshot", data, ts)

    def _trade_aggregate(self, symbol: str, fills: list[SimFill]) -> None:
        subs = self._subs.get(("trade", symbol))
        if not subs:
            return
        volume = sum((f.quantity for f in fills), Decimal(0))
        vwap = sum((f.price * f.quantity for f in fills), Decimal(0)) / volume
        ts = self._next_ts(symbol)
        data = {
            "symbol": symbol,
            "takerSide": fills[0].aggressor.value.lower(),
            "minPx": px(min(f.price for f in fills)),
            "maxPx": px(max(f.price for f in fills)),
            "volume": qty(volume),
            # [INF] vwap rounded half-even to the 8 price decimals
            "vwap": px(vwap.quantize(_PX, ROUND_HALF_EVEN)),
            "timestamp": ts,
        }
        fan_out(subs, self._market_frame("trade", symbol, "snapshot", data, ts))

    def _mid(self, symbol: str) -> Decimal | None:
        bid, ask = self.engine.best_bid(symbol), self.engine.best_ask(symbol)
        if bid is None or ask is None:
            return bid or ask
        return (bid + ask) / 2

    def _ticker_frame(self, symbol: str) -> str:
        (bid, ask), mid = self._top_levels(symbol), self._mid(symbol)
        pos = self.account.position(symbol)
        oi = abs(pos.size) if pos else Decimal(0)  # [INF] the only account is the simulated one
        ts = self._next_ts(symbol)
        last = self._last_px.get(symbol)
        data = {
            "symbol": symbol,
            "lastPrice": None if last is None else px(last),
            # [INF] index and mark price are the book mid
            "indexPrice": None if mid is None else px(mid),
            "markPrice": None if mid is None else px(mid),
            "bestBid": px(bid[0]) if bid else None,
            "bestAsk": px(ask[0]) if ask else None,
            "bestBidQty": qty(bid[1]) if bid else None,
            "bestAskQty": qty(ask[1]) if ask else None,
            "openInterest": qty(oi),
            "openInterestValue": None if mid is None else px(oi * mid),
            "fundingRate": FUNDING_RATE,
            "timestamp": ts,
            "unit": "btc",
        }
        return self._market_frame("ticker", symbol, "snapshot", data, ts)

    async def _ticker_loop(self) -> None:
        while True:
            await trio.sleep(self.ticker_period_s)
            for (channel, symbol), subs in list(self._subs.items()):
                if channel == "ticker" and subs and symbol is not None:
                    fan_out(subs, self._ticker_frame(symbol))

    # --- authentication ------------------------------------------------------------------------

    def _signed(self, headers: dict[str, str], message: str) -> bool | None:
        """True/False for a good/bad signature; None if no credentials were sent at all."""
        if "x-api-sign" in headers:
            # [DOC, older] HMAC of the millisecond timestamp ("accepted but not enforced";
            # [INF] the simulator does check it)
            return headers.get("x-api-key") == self.api_key and verify_hmac(
                self.hmac_secret, headers.get("x-api-timestamp", ""), headers["x-api-sign"]
            )
        if "x-api-key" in headers or "x-api-signature" in headers:
            return headers.get("x-api-key") == self.api_key and verify_rsa(
                self._public_pem, message, headers.get("x-api-signature", "")
            )
        return None

    def _authorize(self, headers: dict[str, str]) -> int | None:
        # [INF] no credentials at all: the upgrade is refused (401); credentials that do not
        # verify: accepted, then error 600010 and a close (both forms are documented)
        return 401 if self._signed(headers, WS_MESSAGE) is None else None

    def _credentials(self, request: HttpRequest) -> HttpResponse:
        # [INF] simulator only, loopback: lets a standalone simulator's client sign requests
        return json_response(
            200,
            {
                "apiKey": self.api_key,
                "privateKey": self.private_key_pem,
                "hmacSecret": self.hmac_secret,
            },
        )

    # --- WebSocket -------------------------------------------------------------------------------

    async def _ws(self, conn: WsConnection) -> None:
        conn_id = self._uuid()
        if not self._signed(conn.headers, WS_MESSAGE):
            await conn.send_text(self._error_frame(AUTH_FAILED, conn_id))
            await conn.close(1008, "authentication failed")
            return
        self._conn_ids[conn] = conn_id
        self._account_conns.add(conn)
        keys: set[tuple[str, str | None]] = set()
        try:
            while (text := await conn.receive_text()) is not None:
                for frame in self._request(conn, conn_id, keys, text):
                    conn.enqueue(frame)
        finally:
            self._account_conns.discard(conn)
            self._conn_ids.pop(conn, None)
            for key in keys:
                self._subs[key].discard(conn)

    def _error_frame(self, code: str, conn_id: str, arg: Any = None) -> str:
        frame: dict[str, Any] = {
            "event": "error",
            "code": code,
            "msg": _ERROR_MESSAGES[code],
            "connId": conn_id,
        }
        if arg is not None:
            frame["arg"] = arg  # [INF] the offending argument, when there is one
        return _text(frame)

    def _request(
        self, conn: WsConnection, conn_id: str, keys: set[tuple[str, str | None]], text: str
    ) -> list[str]:
        try:
            request = orjson.loads(text)
        except orjson.JSONDecodeError:
            return [self._error_frame(MALFORMED, conn_id)]
        op = request.get("op") if isinstance(request, dict) else None
        args = request.get("args") if isinstance(request, dict) else None
        if op not in ("subscribe", "unsubscribe") or not isinstance(args, list):
            return [self._error_frame(MALFORMED, conn_id)]  # [INF] a request of unknown shape
        out: list[str] = []
        for arg in args:
            out.extend(self._subscription(conn, conn_id, keys, op, arg))
        return out

    def _subscription(
        self,
        conn: WsConnection,
        conn_id: str,
        keys: set[tuple[str, str | None]],
        op: str,
        arg: Any,
    ) -> list[str]:
        channel = arg.get("channel") if isinstance(arg, dict) else None
        if channel not in MARKET_CHANNELS and channel not in PRIVATE_CHANNELS:
            return [self._error_frame(INVALID_CHANNEL, conn_id, arg)]
        symbol = arg.get("symbol") if channel in MARKET_CHANNELS else None
        if channel in MARKET_CHANNELS and symbol not in self.engine.symbols():
            return [self._error_frame(INVALID_SYMBOL, conn_id, arg)]
        key = (channel, symbol)
        # [INF] the ack: one per argument, echoing it
        ack = _text({"event": op, "arg": arg, "code": "0", "connId": conn_id})
        if op == "unsubscribe":
            keys.discard(key)
            self._subs.get(key, set()).discard(conn)
            return [ack]
        if key not in keys and len(keys) >= self.max_subscriptions:
            return [self._error_frame(SUBSCRIPTION_LIMIT, conn_id, arg)]
        keys.add(key)
        self._subs.setdefault(key, set()).add(conn)
        # the ack, then the current state, with no await in between: no engine change can
        # fall between the snapshot and the first delta
        return [ack, *self._initial(channel, symbol)]

    def _initial(self, channel: str, symbol: str | None) -> list[str]:
        if symbol is not None:
            if channel == "depth":
                if symbol in self.skip_snapshot:
                    self.skip_snapshot.discard(symbol)
                    return []
                return [self._depth_snapshot(symbol)]
            if channel == "level1":
                top = self._top[symbol] = self._top_levels(symbol)
                return [self._level1_frame(symbol, top)]
            if channel == "ticker":
                return [self._ticker_frame(symbol)]
            return []  # trades: from now on
        # [INF] private channels start with the current state: open positions and the balance
        if channel == "positions":
            views = [self._position_view(p) for p in self.account.positions.values() if p.size]
            return [_text({"type": "position", "data": views})] if views else []
        if channel == "balance":
            now = self._clock_ns()
            data = {
                "accountId": self.owner,
                "balanceBefore": format(self.account.balance, "f"),
                "balanceAfter": format(self.account.balance, "f"),
                "amount": "0",
                "unit": "btc",
                "updateType": "snapshot",  # [INF] the state on subscribe, not a change
                "timestamp": now,
            }
            return [_text({"type": "balance", "data": data})]
        return []

    # --- REST ----------------------------------------------------------------------------------

    def _error_response(self, status: int, message: str, details: str | None = None) -> Any:
        body = {
            "error": {"code": status, "message": message, "details": details or message},
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "requestId": self._uuid(),
        }
        return json_response(status, body)

    def _ok(self, data: Any) -> HttpResponse:
        return json_response(200, {"data": data, "error": False})

    def _check_signature(self, request: HttpRequest, body: dict[str, Any] | None) -> None:
        pairs = [(k, v) for k, values in request.query.items() for v in values]
        message = rest_message(
            request.method, request.path, canonical_query(pairs), canonical_body(body)
        )
        if not self._signed(request.headers, message):
            raise _Refused(401, "Authentication failed", "missing or invalid API signature")

    def _handle(self, request: HttpRequest, action: Callable[[dict[str, Any]], Any]) -> Any:
        try:
            body: dict[str, Any] = {}
            if request.body:
                try:
                    body = request.json()
                except ValueError:
                    raise _Refused(400, "Invalid request", "body is not JSON") from None
                if not isinstance(body, dict):
                    raise _Refused(400, "Invalid request", "body must be a JSON object")
            self._check_signature(request, body)
            return self._ok(action(body))
        except _Refused as refused:
            return self._error_response(refused.status, refused.message, refused.details)

    def _create(self, request: HttpRequest) -> Any:
        return self._handle(request, self._new_order)

    def _cancel(self, request: HttpRequest, order_id: str) -> Any:
        return self._handle(request, lambda body: self._cancel_order(order_id))

    def _cancel_all(self, request: HttpRequest) -> Any:
        def cancel_all(body: dict[str, Any]) -> dict[str, Any]:
            symbol = body.get("symbol")
            ids = []
            for order in list(self.orders.values()):
                if order.status not in FINAL and symbol in (None, order.symbol):
                    self._cancel_order(order.order_id)
                    ids.append(order.order_id)
            return {"cancelledOrderIds": ids}

        return self._handle(request, cancel_all)

    def _get(self, request: HttpRequest, order_id: str) -> Any:
        return self._handle(request, lambda body: self._order_view(self._find(order_id)))

    def _list(self, request: HttpRequest) -> Any:
        def listing(body: dict[str, Any]) -> list[dict[str, Any]]:
            symbol = request.arg("symbol") or None
            closed = request.arg("includeClosed") == "true"
            return [
                self._order_view(o)
                for o in self.orders.values()
                if symbol in (None, o.symbol) and (closed or o.status not in FINAL)
            ]

        return self._handle(request, listing)

    def _find(self, order_id: str) -> RoxOrder:
        order = self.orders.get(order_id)
        if order is None:
            raise _Refused(404, "Order not found", f"no order {order_id}")
        return order

    def _new_order(self, body: dict[str, Any]) -> dict[str, str]:
        symbol = body.get("symbol")
        if symbol not in self.engine.symbols():
            raise _Refused(400, "Market not available", f"unknown symbol {symbol!r}")
        if body.get("instType", INST_TYPE) != INST_TYPE:
            raise _Refused(400, "Invalid request", "instType must be perpetual")
        side = {"buy": Side.BUY, "sell": Side.SELL}.get(body.get("side"))  # type: ignore[arg-type]
        kind = body.get("orderType")
        tif = body.get("timeInForce") or "gtc"
        if side is None or kind not in ("market", "limit", "stop", "stoplimit"):
            raise _Refused(400, "Invalid request", "side or orderType invalid")
        if tif not in ("gtc", "ioc", "gtd"):
            raise _Refused(400, "Invalid request", f"timeInForce {tif!r} invalid")
        if body.get("unit", "btc") not in ("btc", "sats"):
            raise _Refused(400, "Invalid request", "unit must be btc or sats")
        size = _decimal(body, "qty")
        limit = _decimal(body, "px") if kind in ("limit", "stoplimit") else None
        trigger = _decimal(body, "triggerPx") if kind in ("stop", "stoplimit") else None
        cancel_at = body.get("cancelAt")
        if tif == "gtd" and not (isinstance(cancel_at, str | int) and str(cancel_at).isdigit()):
            raise _Refused(400, "Invalid request", "gtd orders need cancelAt (ms)")
        coid = body.get("clientOrderId")
        if coid is not None and not isinstance(coid, str):
            raise _Refused(400, "Invalid request", "clientOrderId must be a string")
        existing = self.orders.by_client(coid) if coid else None
        if existing is not None and existing.status not in FINAL:
            # [INF] a client order id may be reused only once its order is final
            raise _Refused(400, "Duplicate clientOrderId", f"{coid} is in use")
        self._validate(symbol, side, size, limit, trigger)
        order = RoxOrder(
            order_id=self._uuid(),
            client_order_id=coid,
            symbol=symbol,
            side=side,
            order_type=kind,
            size=size,
            limit_price=limit,
            trigger_price=trigger,
            tif=tif,
            post_only=body.get("postOnly") is True,
            cancel_at_ms=int(cancel_at) if tif == "gtd" else None,
        )
        self.orders.add(order)
        # [INF] every accepted order reports pendingsubmit first
        self._order_event(order)
        if kind in ("stop", "stoplimit"):
            order.status = "waitingtrigger"
            self._stops[order.order_id] = order
            self._order_event(order)
        else:
            self._to_engine(order)
        return {"orderId": order.order_id}

    def _forget_old_fills(self) -> None:
        # only fills still in the engine's history of our fills are looked up (chaos.py), and
        # that history has the same length: the oldest beyond it are gone from it already
        trim_history(self.fill_ids, self.engine.fill_history_limit)

    def _validate(
        self,
        symbol: str,
        side: Side,
        size: Decimal,
        limit: Decimal | None,
        trigger: Decimal | None,
    ) -> None:
        spec = SPECS.get(symbol)
        tick, step = self.engine.tick(symbol), self.engine.lot(symbol)
        if size % step != 0:
            raise _Refused(400, "Invalid quantity", f"qty must be a multiple of {step}")
        for name, value in (("px", limit), ("triggerPx", trigger)):
            if value is not None and value % tick != 0:
                raise _Refused(400, "Invalid price", f"{name} must be a multiple of {tick}")
        if limit is not None:
            refusal = band_refusal(
                side is Side.BUY, limit, self.engine.best_bid(symbol), self.engine.best_ask(symbol)
            )
            if refusal is not None:
                raise _Refused(400, "Price outside allowed range", refusal)
        reference = limit or trigger or self._reference(symbol, side)
        if reference is None:
            raise _Refused(400, "Market not available", "no price to execute against")
        if spec is not None and reference * size < spec.min_notional:
            raise _Refused(400, "Order value too small", f"minimum notional {spec.min_notional}")
        # [INF] an order needs its initial margin free (what positions and open orders use is
        # taken off the wallet balance)
        needed = reference * size / self.account.leverage
        free = self.account.balance - self.account.used_margin() - self._orders_margin()
        if needed > free:
            raise _Refused(400, "Insufficient balance", f"margin {needed} above free {free}")

    def _reference(self, symbol: str, side: Side) -> Decimal | None:
        return self.engine.best_ask(symbol) if side is Side.BUY else self.engine.best_bid(symbol)

    def _orders_margin(self) -> Decimal:
        total = Decimal(0)
        for order in self.orders.values():
            if order.status not in FINAL and order.limit_price is not None:
                left = order.size - order.executed
                total += left * order.limit_price / self.account.leverage
        return total

    def _to_engine(self, order: RoxOrder) -> None:
        is_market = order.order_type in ("market", "stop")
        previous, self._submitting = self._submitting, order
        try:
            engine_order = self.engine.submit(
                self.engine_owner,
                order.symbol,
                order.side,
                MARKET if is_market else LIMIT,
                order.size,
                None if is_market else order.limit_price,
                # [INF] gtd rests like gtc until its cancelAt; market orders never rest
                IOC if order.tif == "ioc" or is_market else GTC,
                post_only=order.post_only,
                client_order_id=order.client_order_id,
            )
        finally:
            self._submitting = previous
        if order.engine_id is None:
            # submitted from inside an engine callback (a stop triggering): its events are
            # delivered after this returns, so the id is known in time
            order.engine_id = engine_order.order_id
            self.orders.bind_engine(engine_order.order_id, order)

    def _check_stops(self, symbol: str, last: Decimal) -> None:
        # [INF] stops trigger on the last trade price reaching the trigger price
        for order in list(self._stops.values()):
            if order.symbol != symbol or order.trigger_price is None:
                continue
            hit = (
                last >= order.trigger_price
                if order.side is Side.BUY
                else (last <= order.trigger_price)
            )
            if hit:
                del self._stops[order.order_id]
                order.status = "submitted"
                self._order_event(order)
                self._to_engine(order)

    def _cancel_order(self, order_id: str) -> dict[str, bool]:
        order = self._find(order_id)
        if order.status in FINAL or order.status == "pendingcancel":
            raise _Refused(400, "Order not cancellable", f"order is {order.status}")
        order.status = "pendingcancel"
        self._order_event(order)
        if self.hold_cancels:
            self._held.append(order)  # [DOC] "a cancel can be delayed": the order may fill
        else:
            self._cancel_now(order)
        return {"success": True}

    def _cancel_now(self, order: RoxOrder, reason: str | None = None) -> None:
        if order.status in FINAL:
            return  # filled while the cancel waited
        if reason:
            order.reason = reason
        if self._stops.pop(order.order_id, None) is not None:
            order.status = "cancelled"
            self._order_event(order)
        elif order.engine_id is not None:
            self.engine.cancel(order.engine_id)  # its on_order reports the cancel

    async def _expiry_loop(self) -> None:
        while True:
            await trio.sleep(0.05)
            now_ms = self._clock_ns() // 1_000_000
            for order in list(self.orders.values()):
                if (
                    order.cancel_at_ms is not None
                    and order.cancel_at_ms <= now_ms
                    and order.status not in FINAL
                ):
                    self._cancel_now(order, "expired")  # [INF] gtd: cancelled at cancelAt


_REFUSALS = Refusals(
    error=lambda message: _Refused(400, "Invalid request", message),
    not_a_number="{name} is not a number",
)


def _decimal(body: dict[str, Any], name: str) -> Decimal:
    return parse_decimal(body.get(name), name, _REFUSALS, types=(str, int))
