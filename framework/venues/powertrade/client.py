"""Power.Trade session and execution: everything over one WebSocket.

`PowerTradeStream` is the connection: login (a fresh ES256 JWT on every connect), subscriptions,
RFQ registration, answers to the server's heartbeats, and requests over the core's
`RequestChannel`. The execution client sends orders through the stream's current connection; a
new_order is answered by the first lifecycle message naming its `client_order_id` ([CODE]
`order_accepted` / `order_rejected` carry no `user_tag`; an `execution` or `cancel_order` that
overtakes them implies acceptance), or by a `command_response` with its `user_tag` when it failed
parsing. The rest of an order's life arrives as `ExecutionReport`s from the decoder, which the core
routes to the order manager. Order details, open orders: REST (`GET /v1/api/order`, `openOrders`),
as the official clients call them.
"""

from __future__ import annotations

import itertools
import math
import secrets
import time
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs
import httpx
import orjson
import structlog
import trio

from framework.errors import (
    AuthError,
    ConnectionLost,
    FrameError,
    HttpProblem,
    NotConnected,
    OrderNotFound,
    OrderRefused,
)
from framework.events import ExecutionReport, Liquidity, OrderStatus, OrderType, Side, TimeInForce
from framework.model import Instrument, Order
from framework.transport.fetch import FetchError, fetch_ws
from framework.transport.requests import RequestChannel
from framework.transport.rest import request_json
from framework.transport.session import Connection
from framework.transport.wire import dec, dec_str
from framework.venue import ExecutionClient, Stream
from framework.venues.powertrade.decode import Decoder
from framework.venues.powertrade.decode_frames import (
    ALREADY_SUBSCRIBED,
    FULLY_EXECUTED,
    VENUE,
    is_cancel_refusal,
    text,
    ts_any,
)
from framework.venues.powertrade.events import Rfq

if TYPE_CHECKING:
    from framework.execution.handle import OrderHandle
    from framework.strategy import Strategy

log = structlog.get_logger("botrun.powertrade")

_ZERO = Decimal(0)
_YEAR_US = 366 * 24 * 3600 * 1_000_000
_STATUS = {
    "pending_new": OrderStatus.SUBMITTED,
    "entered": OrderStatus.ACCEPTED,
    "accepted": OrderStatus.ACCEPTED,
    "partial_fill": OrderStatus.PARTIALLY_FILLED,
    "pending_cancel": OrderStatus.CANCEL_REQUESTED,
    "filled": OrderStatus.FILLED,
    "cancelled": OrderStatus.CANCELLED,
    "rejected": OrderStatus.REJECTED,
    "expired": OrderStatus.EXPIRED,
}


__all__ = ["ConnectionLost", "NotConnected"]  # the transport's, named here as before

# keys a reply may name an order request by, besides its `user_tag` (see `PowerTradeStream`)
LIFECYCLE = "client_order_id"  # any lifecycle message of the order answers its new_order
CANCELLED = "cancel_order"  # only a `cancel_order` naming the order answers its cancel


def now_us() -> str:
    return str(time.time_ns() // 1000)


def pt_num(value: Decimal) -> str:
    """A price or quantity as the venue takes it: plain decimal notation that always carries a
    decimal point ("59900.0", "1.0", "0.00000001"), never exponent form. [CODE] the official
    Python example: `price: "825"` or `quantity: "1"` fail, `"825.0"` and `"1.0"` succeed."""
    if not value.is_finite():
        raise OrderRefused(f"not a finite number: {value}")
    text = dec_str(value)
    return text if "." in text else text + ".0"


# [CODE] every official client sends recv_window on every non-market order; Python and
# Hummingbot "144" (144 x 10 min = 1 day)
DEFAULT_RECV_WINDOW = "144"
# [CODE Hummingbot] "not found in order cache" proves nothing until the venue has had this long
# to see the order
NOT_FOUND_GRACE_S = 300.0
SIM_NOT_FOUND_GRACE_S = 5.0  # the simulator's cache has no lag (see PowerTradeConfig)


def check_strings(value: Any, path: str = "") -> None:
    """[DOC] every scalar on the wire is a string; arrays and objects nest."""
    if isinstance(value, dict):
        for key, item in value.items():
            check_strings(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_strings(item, f"{path}[{i}]")
    elif not isinstance(value, str):
        raise TypeError(f"{path}: Power.Trade takes strings only, got {type(value).__name__}")


def frame(kind: str, body: dict[str, Any]) -> str:
    check_strings(body)
    return orjson.dumps({kind: body}).decode()


# --- reference data ------------------------------------------------------------------------------


@attrs.frozen(slots=True)
class EntityRules:
    """One symbol of `entities_and_rules_response`."""

    symbol: str
    entity_id: str
    status: str
    base: str
    quote: str
    min_qty: Decimal
    max_qty: Decimal
    min_value: Decimal
    max_value: Decimal
    qty_step: Decimal
    price_step: Decimal
    tags: tuple[str, ...]

    def instrument(self) -> Instrument:
        return Instrument(
            VENUE,
            self.symbol,
            self.base,
            self.quote,
            tick=self.price_step,
            lot=self.qty_step,
            min_qty=self.min_qty,
            max_qty=self.max_qty,
            min_notional=self.min_value,
        )


def parse_entities(body: dict[str, Any]) -> dict[str, EntityRules]:
    out: dict[str, EntityRules] = {}
    symbols = body.get("symbols")
    if not isinstance(symbols, list):
        raise FrameError("entities_and_rules_response: symbols is not a list")
    for row in symbols:
        if not isinstance(row, dict):
            raise FrameError("entities_and_rules_response: a symbol is not an object")
        rules = EntityRules(
            symbol=text(row, "symbol"),
            entity_id=text(row, "tradeable_entity_id"),
            status=text(row, "status"),
            base=str(row.get("base_asset", "")),
            quote=str(row.get("quote_asset", "")),
            min_qty=dec(row.get("minimum_quantity"), "minimum_quantity"),
            max_qty=dec(row.get("maximum_quantity"), "maximum_quantity"),
            min_value=dec(row.get("minimum_value"), "minimum_value"),
            max_value=dec(row.get("maximum_value"), "maximum_value"),
            qty_step=dec(row.get("quantity_step"), "quantity_step"),
            price_step=dec(row.get("price_step"), "price_step"),
            tags=tuple(t for t in row.get("tags", []) if isinstance(t, str)),
        )
        if rules.qty_step <= 0 or rules.price_step <= 0:
            raise FrameError(f"{rules.symbol}: steps must be positive")
        out[rules.symbol] = rules
    return out


# [DOC] the venue lists every option: the instrument list is far above 1 MiB
ENTITIES_MAX_BYTES = 256 * 1024 * 1024


async def fetch_entities(
    url: str,
    timeout_s: float,
    *,
    max_bytes: int = ENTITIES_MAX_BYTES,
    attempts: int = 5,
    backoff_s: float = 0.5,
) -> dict[str, EntityRules]:
    """`entities_and_rules_request` on a short-lived connection ([DOC] works unauthenticated).

    A connection that fails or is reset (`FetchError`) is tried again with exponential backoff;
    after `attempts` the last error is raised with one clear log line. A refusal by the venue is
    not retried."""
    for attempt in range(1, attempts + 1):
        try:
            return await _fetch_entities_once(url, timeout_s, max_bytes)
        except FetchError as exc:
            if attempt == attempts:
                log.error(
                    "instrument list unavailable; giving up",
                    venue=VENUE,
                    attempts=attempts,
                    error=str(exc),
                )
                raise
            delay = backoff_s * 2 ** (attempt - 1)
            log.warning(
                "instrument list fetch failed; retrying",
                venue=VENUE,
                attempt=attempt,
                retry_in_s=delay,
                error=str(exc),
            )
            await trio.sleep(delay)
    raise AssertionError("unreachable")


async def _fetch_entities_once(
    url: str, timeout_s: float, max_bytes: int
) -> dict[str, EntityRules]:
    tag = f"rules-{secrets.token_hex(4)}"

    def answer(message: str | bytes) -> dict[str, EntityRules] | None:
        kind, body = _split(message)
        if kind == "entities_and_rules_response" and body.get("user_tag") == tag:
            return parse_entities(body)
        if kind == "command_response" and body.get("user_tag") == tag:
            raise FrameError(f"entities_and_rules_request refused: {body}")
        return None

    return await fetch_ws(
        url,
        [frame("entities_and_rules_request", {"user_tag": tag})],
        answer,
        what="powertrade entities_and_rules_request",
        timeout_s=timeout_s,
        max_bytes=max_bytes,
    )


def _split(message: str | bytes) -> tuple[str, dict[str, Any]]:
    from framework.venues.powertrade.decode_frames import loads

    return loads(message)


# --- the stream ----------------------------------------------------------------------------------


class _Decoder(Decoder):
    """The venue's decoder, also telling the stream of each order lifecycle message (after the
    decoder has reported it): such a message may be the reply an order request waits for."""

    def __init__(
        self, *args: Any, on_lifecycle: Callable[[str, dict[str, Any]], None], **kw: Any
    ) -> None:
        super().__init__(*args, **kw)
        self.on_lifecycle = on_lifecycle

    def _order_accepted(self, body: dict[str, Any], recv_ns: int) -> None:
        super()._order_accepted(body, recv_ns)
        self.on_lifecycle("order_accepted", body)

    def _order_rejected(self, body: dict[str, Any], recv_ns: int) -> None:
        super()._order_rejected(body, recv_ns)
        self.on_lifecycle("order_rejected", body)

    def _execution(self, body: dict[str, Any], recv_ns: int) -> None:
        super()._execution(body, recv_ns)
        self.on_lifecycle("execution", body)

    def _cancel_order(self, body: dict[str, Any], recv_ns: int) -> None:
        super()._cancel_order(body, recv_ns)
        self.on_lifecycle("cancel_order", body)


class PowerTradeStream(Stream):
    """The one Power.Trade WebSocket: market data, RFQs, orders and account requests."""

    name = "powertrade"
    # [DOC] the server sends a heartbeat after 5 s without any client message; [CODE] official
    # clients answer each one. Answers are sent from this timer (the decoder cannot await): it
    # only sends when a server heartbeat is waiting for its answer.
    heartbeat_interval_s = 0.25
    # Liveness is the WebSocket ping/pong ([CODE] Hummingbot: a ping, 5 s pong timeout), not
    # data: a quiet book sends nothing, and the venue answers no client heartbeat.
    stale_after_s = math.inf
    ping_interval_s = 5.0
    # orders travel on this connection: after a reconnect the core asks about every open order
    reconcile_on_reconnect = True

    def __init__(
        self,
        url: str,
        markets: list[str],
        *,
        login: Callable[[], str] | None,
        rfqs: bool = True,
        trades: bool = True,
        book_type: str = "snap_full_updates",
        book_interval_ms: str = "0",
    ) -> None:
        super().__init__()
        if book_type not in ("snap_full_updates", "snap_with_deltas"):
            raise ValueError(f"powertrade book_type {book_type!r}")
        # [DOC] snap_full_updates (order-level, interval "0"; the form of the real 2022
        # subscribe frame) or snap_with_deltas (price-level `deltas` every interval, what the
        # venue's own connector consumes); the decoder applies either form on any subscription
        self.book_type = book_type
        self.book_interval_ms = book_interval_ms
        self.heartbeats_due = 0  # server heartbeats not answered yet
        self.venue = VENUE
        self._url = url
        self.markets = list(markets)
        self._login = login
        self.rfqs = rfqs
        self.trades = trades
        self.requests = RequestChannel(VENUE, prefix=f"bt{secrets.token_hex(3)}-", max_len=64)
        self.correlator = self.requests.correlator
        self.own_rfqs: set[str] = set()
        self.decoder = _Decoder(
            self._emit,
            self._on_reply,
            set(markets),
            own_rfqs=self.own_rfqs,
            on_fill=self._fill,
            on_end=self._order_end,
            on_lifecycle=self._on_lifecycle,
        )
        # set by the execution client: an order ended (see `Decoder.on_end`)
        self.end_hook: Callable[[str, Decimal | None], None] | None = None
        self.conn: Connection | None = None
        self.authenticated = False
        self.login_refused = False
        self.logins = 0
        self.heartbeats_answered = 0
        self.heartbeat_answered = trio.Event()  # set (and replaced) on each answer
        self.errors: list[str] = []
        self.fills_seen = trio.Event()
        self._state_changed = trio.Event()
        self._auth_tag: str | None = None
        self._quiet: set[str] = set()  # tags of requests whose success reply nobody waits for

    # --- Stream --------------------------------------------------------------------------------

    def _emit(self, event: Any) -> None:
        self.emit(event)

    def _fill(self) -> None:
        self.fills_seen.set()

    def _order_end(self, client_order_id: str, venue_filled: Decimal | None) -> None:
        if self.end_hook is not None:
            self.end_hook(client_order_id, venue_filled)

    async def url(self) -> str:
        return self._url

    async def on_connected(self, conn: Connection) -> None:
        # requests of the previous connection will never be answered: fail them now
        self.requests.connected(conn)
        self.conn = conn
        self.authenticated = False
        self.decoder.epoch = self.epoch
        self.decoder.reset()
        self._quiet.clear()
        if self._login is not None:
            # [DOC] re-authenticate on every connection; a fresh short-lived token each time.
            # The reply is handled by the decoder (frames are read once this returns); a
            # refusal raises AuthError there and the session backs off.
            self._auth_tag = self.correlator.new_id()
            token = self._login()
            login = {"credentials_secret": token, "user_tag": self._auth_tag}
            await conn.send(frame("authenticate", login))
        for symbol in self.markets:
            await self._subscribe(conn, symbol)
        if self.rfqs:
            await self._quiet_request(conn, "register_for_rfqs", {})
        if self._login is None:
            self._changed()

    async def _subscribe(self, conn: Connection, symbol: str) -> None:
        body = {
            "market_id": "0",
            "symbol": symbol,
            "type": self.book_type,
            "interval": self.book_interval_ms,
        }
        await self._quiet_request(conn, "subscribe", body)

    async def _quiet_request(self, conn: Connection, kind: str, body: dict[str, Any]) -> None:
        tag = self.correlator.new_id()
        self._quiet.add(tag)
        await conn.send(frame(kind, {**body, "user_tag": tag}))

    async def send_heartbeat(self, conn: Connection) -> None:
        # [CODE] answer each server heartbeat with {"heartbeat": {"timestamp": <now µs>}}
        if self.decoder.heartbeats_due:
            self.decoder.heartbeats_due = 0
            await conn.send(frame("heartbeat", {"timestamp": now_us()}))
            self.heartbeats_answered += 1
            answered, self.heartbeat_answered = self.heartbeat_answered, trio.Event()
            answered.set()

    def decode(self, frame_: str | bytes, recv_ns: int) -> None:
        self.decoder.epoch = self.epoch
        self.decoder.decode(frame_, recv_ns)

    def books(self) -> list[str]:
        return list(self.markets)

    async def resync(self, conn: Connection, symbol: str) -> bool:
        # [CODE Hummingbot] a repeated subscribe is refused ("add subscription failed, already
        # subscribed") and brings no snapshot; no unsubscribe request is documented. [INF] the
        # way back is a new connection: reconnect, log in, subscribe.
        self.decoder.book(symbol).reset()
        return False

    def on_auth_rejected(self) -> None:
        # until a login succeeds, order requests are refused at once instead of waiting
        self.authenticated = False
        self.login_refused = True
        self._changed()

    def _changed(self) -> None:
        event, self._state_changed = self._state_changed, trio.Event()
        event.set()

    # --- replies -------------------------------------------------------------------------------

    def _on_reply(self, tag: str, kind: str, body: dict[str, Any]) -> bool:
        if tag == self._auth_tag:
            self._auth_tag = None
            code = body.get("error_code")
            if kind != "command_response" or code != "0":
                self.errors.append(f"login refused: {code} {body.get('error_text', '')}")
                raise AuthError(
                    f"powertrade refused the login: error {code}: {body.get('error_text', '')}"
                )
            self.authenticated = True
            self.login_refused = False
            self.logins += 1
            log.info("logged in", venue=VENUE, epoch=self.epoch)
            self._changed()
            return True
        if tag in self._quiet:
            self._quiet.discard(tag)
            if body.get("error_text") == ALREADY_SUBSCRIBED:
                # harmless on its own (the book is subscribed); a resync never asks for it
                log.info("already subscribed", venue=VENUE)
                return True
            if kind == "command_response" and body.get("error_code") != "0":
                error = f"{body.get('error_code')}: {body.get('error_text', '')}"
                self.errors.append(error)
                log.error("request refused", venue=VENUE, error=error)
            return True
        return self.requests.resolve(tag, (kind, body))

    def _on_lifecycle(self, kind: str, body: dict[str, Any]) -> None:
        """An order's own message (already reported by the decoder) may answer its request."""
        coid = body.get("client_order_id")
        if type(coid) is not str or not coid:
            return
        if kind == "cancel_order":
            keys: tuple[tuple[str, str], ...] = ((CANCELLED, coid), (LIFECYCLE, coid))
        else:
            keys = ((LIFECYCLE, coid),)
        self.requests.resolve_first(keys, (kind, body))

    # --- requests (execution client) -----------------------------------------------------------

    async def wait_ready(self, timeout_s: float) -> bool:
        """Wait until logged in on an open connection; False if that did not happen in time."""
        with trio.move_on_after(timeout_s):
            while not (self.authenticated and self.conn is not None) and not self.login_refused:
                await self._state_changed.wait()
        return self.authenticated and self.conn is not None

    async def request(
        self,
        kind: str,
        body: dict[str, Any],
        timeout_s: float,
        keys: tuple[tuple[str, str], ...] = (),
    ) -> tuple[str, dict[str, Any]]:
        """Send a request with a fresh `user_tag`; its reply is the first message carrying that
        tag or naming one of `keys` (`(LIFECYCLE, coid)`, `(CANCELLED, coid)`)."""
        tag = self.requests.new_id()
        message = frame(kind, {**body, "user_tag": tag})
        return await self.requests.request(
            message, request_id=tag, keys=keys, timeout_s=timeout_s, what=kind
        )


# --- orders --------------------------------------------------------------------------------------


def order_body(
    order: Order,
    rules: EntityRules | None,
    *,
    now_us_: int | None = None,
    recv_window: str = DEFAULT_RECV_WINDOW,
) -> dict[str, Any]:
    """The `new_order` body, or OrderRefused before it leaves."""
    if rules is None:
        raise OrderRefused(f"unknown symbol {order.symbol!r} on powertrade")
    if rules.status != "active":
        raise OrderRefused(f"{order.symbol} is {rules.status}")
    if order.post_only:
        raise OrderRefused("powertrade has no post-only orders")  # [INF] none documented
    if order.tif is TimeInForce.FOK:
        raise OrderRefused("powertrade has no FOK time in force (GTC, IOC, DAY, GTD)")
    check_quantity(order.quantity, rules)
    body: dict[str, Any] = {
        "market_id": "0",
        "side": "buy" if order.side is Side.BUY else "sell",
        "type": order.type.value,
        "time_in_force": order.tif.value,
        "quantity": pt_num(order.quantity),
        "client_order_id": order.client_order_id,
        "timestamp": str(now_us_ if now_us_ is not None else time.time_ns() // 1000),
        "symbol": order.symbol,
    }
    if order.type is OrderType.MARKET:
        if order.tif is not TimeInForce.IOC:
            raise OrderRefused("powertrade MARKET orders must be IOC")
        if order.price is not None:
            raise OrderRefused("powertrade MARKET orders take no price")
    else:
        if order.price is None:
            raise OrderRefused("limit order needs a price")
        check_price(order.price, order.quantity, rules)
        body["price"] = pt_num(order.price)
        # [CODE] the order lives recv_window x 10 min: a "GTC" order ends then (the venue's
        # unsolicited cancel_order) and must be placed again by whoever wants it
        body["recv_window"] = recv_window
    if order.tif is TimeInForce.GTD:
        if order.expire_at_ns is None:
            raise OrderRefused("GTD order needs expire_at_ns")
        expire = order.expire_at_ns // 1000
        now = int(body["timestamp"])
        if not now <= expire <= now + _YEAR_US:
            raise OrderRefused("expire time should be in range [now, +1 year]")
        body["expire_timestamp"] = str(expire)
    return body


def check_quantity(quantity: Decimal, rules: EntityRules) -> None:
    if quantity % rules.qty_step != 0:
        raise OrderRefused(f"quantity {quantity} is not a multiple of {rules.qty_step}")
    if quantity < rules.min_qty:
        raise OrderRefused(f"quantity {quantity} below minimum {rules.min_qty}")
    if quantity > rules.max_qty:
        raise OrderRefused(f"quantity {quantity} above maximum {rules.max_qty}")


def check_price(price: Decimal, quantity: Decimal, rules: EntityRules) -> None:
    if price <= 0 or price % rules.price_step != 0:
        raise OrderRefused(f"price {price} is not a positive multiple of {rules.price_step}")
    value = price * quantity
    if value < rules.min_value:
        raise OrderRefused(f"order value {value} below minimum {rules.min_value}")
    if value > rules.max_value:
        raise OrderRefused(f"order value {value} above maximum {rules.max_value}")


# the order's own messages: the decoder reports them, so as a reply they say nothing more
_LIFECYCLE_KINDS = frozenset({"order_accepted", "order_rejected", "execution", "cancel_order"})


def _refusal(kind: str, body: dict[str, Any]) -> str | None:
    if kind == "command_response" and body.get("error_code") != "0":
        return f"error {body.get('error_code')}: {body.get('error_text', '')}"
    if body.get("order_state") == "rejected":
        return str(body.get("reason", "rejected"))
    return None


class PowerTradeExecution(ExecutionClient):
    """Orders, cancels, order status, account refresh and RFQ actions over the stream's socket."""

    client_order_id_max_len = 32  # [DOC] 1-32 bytes
    supports_cancel_all = True  # [DOC] cancel_all_orders

    def __init__(
        self,
        stream: PowerTradeStream,
        rules: dict[str, EntityRules],
        *,
        request_timeout_s: float = 10.0,
        account_interval_s: float = 10.0,
        rest: httpx.AsyncClient | None = None,
        login: Callable[[], str] | None = None,
        recv_window: str = DEFAULT_RECV_WINDOW,
        not_found_grace_s: float = NOT_FOUND_GRACE_S,
    ) -> None:
        if not recv_window.isdigit() or int(recv_window) <= 0:
            raise ValueError(f"recv_window must be a positive whole number, got {recv_window!r}")
        self.venue = VENUE
        self.stream = stream
        self.recv_window = recv_window
        self.not_found_grace_s = not_found_grace_s
        # the REST API on the same host (open orders); None where it is not served
        self.rest = rest
        self._rest_login = login
        self.rules = rules
        self.request_timeout_s = request_timeout_s
        self.account_interval_s = account_interval_s
        self._rfq_ids = itertools.count(1)
        # orders the venue ended, to check for fills we never heard of (see `_order_ended`)
        self._ended: dict[str, tuple[Order, Decimal | None]] = {}
        self._ended_wakeup = trio.Event()
        stream.end_hook = self._order_ended

    async def _request(
        self, kind: str, body: dict[str, Any], keys: tuple[tuple[str, str], ...] = ()
    ) -> tuple[str, dict[str, Any]]:
        if not await self.stream.wait_ready(self.request_timeout_s):
            raise NotConnected("powertrade: not logged in")
        return await self.stream.request(kind, body, self.request_timeout_s, keys)

    # --- ExecutionClient -----------------------------------------------------------------------

    async def submit(self, order: Order) -> ExecutionReport | None:
        body = order_body(order, self.rules.get(order.symbol), recv_window=self.recv_window)
        try:
            kind, reply = await self._request(
                "new_order", body, ((LIFECYCLE, order.client_order_id),)
            )
        except NotConnected as exc:
            raise OrderRefused(str(exc)) from None  # it never left
        if kind in _LIFECYCLE_KINDS:
            return None  # the decoder reported it (accepted, rejected, filled, ended)
        reason = _refusal(kind, reply)
        if reason is not None:
            raise OrderRefused(reason)
        return None  # pending_new: order_accepted / order_rejected follow

    async def cancel(self, order: Order) -> ExecutionReport | None:
        # [DOC] by client_order_id, or by order_id (an orphan listed without our id); a reply
        # naming only the order id cannot answer a cancel sent without one, so such a cancel
        # waits for its user_tag's command_response or times out into a query
        body = (
            {"client_order_id": order.client_order_id}
            if order.client_order_id or not order.venue_order_id
            else {"order_id": order.venue_order_id}
        )
        keys = ((CANCELLED, order.client_order_id),) if order.client_order_id else ()
        kind, reply = await self._request("cancel_order", body, keys)
        if kind == "command_response":
            if reply.get("error_code") == "0":
                return None
            raise OrderRefused(f"error {reply.get('error_code')}: {reply.get('error_text', '')}")
        reason = str(reply.get("reason", ""))
        if reason == FULLY_EXECUTED:
            raise OrderRefused(reason)
        if is_cancel_refusal(reason):
            raise OrderNotFound(reason)
        return None  # the decoder reported the cancel (reply or unsolicited end)

    async def cancel_all(self, symbol: str | None = None) -> None:
        body = {"symbol": symbol} if symbol else {}
        kind, reply = await self._request("cancel_all_orders", body)
        reason = _refusal(kind, reply)
        if reason is not None or reply.get("reason", "success") != "success":
            raise OrderRefused(reason or str(reply.get("reason")))

    async def query_order(self, order: Order) -> ExecutionReport | None:
        report = await self._query(order.client_order_id)
        if report is not None:
            return report
        # [DOC] "not found in order cache" does not prove the order never existed; [CODE]
        # Hummingbot believes it only once the order is 300 s old. Younger: not an answer (the
        # core keeps asking), so a live order is never turned REJECTED by a cache miss alone.
        age_s = (time.time_ns() - order.created_ns) / 1e9 if order.created_ns else float("inf")
        if age_s < self.not_found_grace_s:
            raise OrderNotFound(
                f"powertrade: {order.client_order_id} not in the order cache yet "
                f"({age_s:.0f}s old, believed after {self.not_found_grace_s:.0f}s)"
            )
        return None

    def _rest_headers(self) -> dict[str, str]:
        if self.rest is None or self._rest_login is None:
            raise NotImplementedError("powertrade: no REST API configured")
        # [DOC] the JWT in the `credentials_secret` header on every private call
        return {"credentials_secret": self._rest_login()}

    async def list_open_orders(self) -> list[ExecutionReport]:
        """[DOC] REST `GET /v1/api/openOrders` → `query_open_orders_response.open_orders`."""
        headers = self._rest_headers()
        assert self.rest is not None
        answer = await request_json(
            self.rest, "GET", "/v1/api/openOrders", venue=VENUE, headers=headers
        )
        body = answer.get("query_open_orders_response") if isinstance(answer, dict) else None
        rows = body.get("open_orders") if isinstance(body, dict) else None
        if not isinstance(rows, list):
            raise FrameError(f"openOrders: unexpected answer {str(answer)[:200]}")
        return [self._listed(row) for row in rows if isinstance(row, dict)]

    @staticmethod
    def _listed(row: dict[str, Any]) -> ExecutionReport:
        """One `open_orders` row (the order-details fields: `executions` are its fills)."""
        if "filled_quantity" in row:
            filled = dec(row["filled_quantity"], "filled_quantity")
        else:
            executions = row.get("executions") or []
            filled = sum((dec(ex.get("executed_quantity"), "qty") for ex in executions), _ZERO)
        price = dec(row["price"], "price") if row.get("price") not in (None, "", "0") else None
        side = str(row.get("side", "")).upper()
        state = row.get("order_state")
        return ExecutionReport(
            VENUE,
            str(row.get("client_order_id") or ""),
            status=_STATUS.get(state, OrderStatus.ACCEPTED) if isinstance(state, str) else None,
            venue_order_id=str(row.get("order_id") or "") or None,
            cum_qty=filled,
            price=price,
            quantity=dec(row["quantity"], "quantity") if row.get("quantity") else None,
            symbol=row.get("symbol"),
            side=Side(side) if side in ("BUY", "SELL") else None,
        )

    async def _query(self, client_order_id: str) -> ExecutionReport | None:
        """[DOC order-details] REST `GET /v1/api/order?client_order_id=…` (the venue has no
        WebSocket order-details request). None: "not found in order cache" (see query_order).
        Fills come as `executions[]`, each with its trade id (the core de-duplicates them)."""
        headers = self._rest_headers()
        assert self.rest is not None
        answer = await request_json(
            self.rest,
            "GET",
            "/v1/api/order",
            venue=VENUE,
            headers=headers,
            params={"client_order_id": client_order_id},
        )
        reply = answer.get("query_order_response") if isinstance(answer, dict) else None
        if not isinstance(reply, dict):
            raise FrameError(f"order details: unexpected answer {str(answer)[:200]}")
        if reply.get("error") is not None:
            reason = str(reply.get("reason", ""))
            if "not found" in reason:
                return None
            raise FrameError(f"order details refused: {reason or reply}")
        return self._details(client_order_id, reply)

    def _details(self, client_order_id: str, reply: dict[str, Any]) -> ExecutionReport:
        state = reply.get("order_state")
        status = _STATUS.get(state) if isinstance(state, str) else None
        if status is None:
            raise FrameError(f"query_order_response: unknown order_state {state!r}")
        cancel_state = reply.get("cancel_state", "none")
        if cancel_state not in ("none", "cancelled", "pending_cancel"):
            raise FrameError(f"query_order_response: unknown cancel_state {cancel_state!r}")
        venue_id = reply.get("order_id") or None
        if venue_id is not None and type(venue_id) is not str:
            raise FrameError("query_order_response: order_id is not a string")
        fills = []
        executions = reply.get("executions") or []
        if not isinstance(executions, list):
            raise FrameError("query_order_response: executions is not a list")
        for ex in executions:
            if not isinstance(ex, dict):
                raise FrameError("query_order_response: an execution is not an object")
            flag = ex.get("liquidity_flag")
            price = dec(ex.get("executed_price"), "executed_price")
            qty = dec(ex.get("executed_quantity"), "executed_quantity")
            if price <= 0 or qty <= 0:
                raise FrameError("query_order_response: execution price and size must be > 0")
            fills.append(
                ExecutionReport(
                    VENUE,
                    client_order_id,
                    venue_order_id=venue_id,
                    fill_id=text(ex, "trade_id"),
                    fill_price=price,
                    fill_qty=qty,
                    liquidity={"added": Liquidity.MAKER, "taken": Liquidity.TAKER}.get(flag),
                    venue_ts=ts_any(ex, "utc_timestamp"),
                )
            )
        if self.ctx is not None:
            for report in fills:  # only once the whole reply parsed: none or all of them
                self.ctx.on_report(report)
        if status is OrderStatus.SUBMITTED:
            status = OrderStatus.ACCEPTED  # the venue has it
        if cancel_state == "cancelled" and status in (
            OrderStatus.ACCEPTED,
            OrderStatus.PARTIALLY_FILLED,
        ):
            status = OrderStatus.CANCELLED
        return ExecutionReport(
            VENUE,
            client_order_id,
            status=status,
            venue_order_id=venue_id,
            reason=str(reply.get("reason", "")) or None,
        )

    # --- fills we never heard of ---------------------------------------------------------------

    def _order_ended(self, client_order_id: str, venue_filled: Decimal | None) -> None:
        """The venue ended one of our working orders (called before the core applies it).

        `venue_filled` is the cumulative quantity the venue says it filled (`cancel_order`), or
        None when an execution filled it completely. If that is more than the fills we got, an
        `execution` went missing (lost with a connection, e.g. while the order's submit was in
        flight and reconnect reconciliation left it alone): `_check_ended` asks the venue for the
        order's executions, each named by its trade id, so the core counts each exactly once.
        """
        if self.ctx is None:
            return
        for order in self.ctx.open_orders(VENUE):
            if order.client_order_id == client_order_id:
                self._ended[client_order_id] = (order, venue_filled)
                self._ended_wakeup.set()
                return

    async def _check_ended(self) -> None:
        while True:
            await self._ended_wakeup.wait()
            self._ended_wakeup = trio.Event()
            for coid, (order, venue_filled) in list(self._ended.items()):
                # by now the core has applied the end (and the fill that came with it)
                expected = order.quantity if venue_filled is None else venue_filled
                if order.filled_qty >= expected:
                    self._ended.pop(coid, None)
                    continue
                log.warning(
                    "order ended with fills we never saw; asking for them",
                    venue=VENUE,
                    client_order_id=coid,
                    venue_filled=str(expected),
                    known=str(order.filled_qty),
                )
                try:
                    report = await self._query(coid)
                except (ConnectionError, TimeoutError, FrameError, HttpProblem) as exc:
                    log.warning("missing fills query failed", venue=VENUE, error=str(exc))
                    continue  # kept: asked again below
                self._ended.pop(coid, None)
                if report is not None and self.ctx is not None:
                    self.ctx.on_report(report)
            if self._ended:
                # a failed query: try again soon (the connection is being re-established)
                await trio.sleep(min(1.0, self.request_timeout_s))
                self._ended_wakeup.set()

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._check_ended)
            await self._account_loop()

    async def _account_loop(self) -> None:
        """Balances and positions: now, every `account_interval_s`, and soon after a fill."""
        while True:
            self.stream.fills_seen = trio.Event()
            try:
                await self.refresh_account()
            except (ConnectionError, TimeoutError, FrameError) as exc:
                log.warning("account refresh failed", venue=VENUE, error=str(exc))
            with trio.move_on_after(self.account_interval_s):
                await self.stream.fills_seen.wait()

    async def refresh_account(self) -> None:
        """Ask for balances and positions; the decoder publishes them as events."""
        await self._request("balances", {})
        await self._request("position_info", {})

    # --- RFQs ----------------------------------------------------------------------------------

    async def post_rfq(
        self, symbol: str, side: Side, quantity: Decimal, price: Decimal | None = None
    ) -> str:
        """Post an RFQ (an indicative order, `market_id "none"`); returns its client order id."""
        rules = self.rules.get(symbol)
        if rules is None:
            raise OrderRefused(f"unknown symbol {symbol!r} on powertrade")
        check_quantity(quantity, rules)
        coid = f"rfq{secrets.token_hex(6)}{next(self._rfq_ids)}"[:32]
        body: dict[str, Any] = {
            "market_id": "none",
            "side": "buy" if side is Side.BUY else "sell",
            "type": "LIMIT",
            "time_in_force": "GTC",
            "quantity": pt_num(quantity),
            "price": pt_num(price) if price is not None else "0.0",
            "client_order_id": coid,
            "recv_window": self.recv_window,
            "timestamp": now_us(),
            "symbol": symbol,
        }
        self.stream.own_rfqs.add(coid)
        try:
            kind, reply = await self._request("new_order", body, ((LIFECYCLE, coid),))
        except NotConnected as exc:
            self.stream.own_rfqs.discard(coid)
            raise OrderRefused(str(exc)) from None
        reason = _refusal(kind, reply)
        if kind == "order_rejected":
            reason = str(reply.get("reason", "rejected"))
        if reason is not None:
            self.stream.own_rfqs.discard(coid)
            raise OrderRefused(reason)
        return coid

    async def refresh_rfq(self, client_order_id: str) -> None:
        """Keep our RFQ alive ([DOC] indicative orders expire after 30 min unless refreshed)."""
        kind, reply = await self._request(
            "refresh_interest", {"client_order_id": client_order_id, "order_id": ""}
        )
        reason = _refusal(kind, reply)
        if reason is not None or reply.get("reason", "success") != "success":
            raise OrderRefused(reason or str(reply.get("reason")))

    async def cancel_rfq(self, client_order_id: str) -> None:
        kind, reply = await self._request(
            "cancel_order", {"client_order_id": client_order_id}, ((CANCELLED, client_order_id),)
        )
        reason = _refusal(kind, reply) or (
            str(reply.get("reason")) if is_cancel_refusal(str(reply.get("reason", ""))) else None
        )
        if reason is not None:
            raise OrderRefused(reason)

    def live_rfq(self, symbol: str, rfq_id: str) -> Rfq | None:
        return self.stream.decoder.rfq_books.get(symbol, {}).get(rfq_id)

    def answer_rfq(
        self,
        strategy: Strategy,
        rfq: Rfq,
        price: Decimal,
        quantity: Decimal | None = None,
        *,
        tif: TimeInForce = TimeInForce.GTC,
    ) -> OrderHandle:
        """Answer an RFQ with a firm order on the opposite side, through the core order manager
        (so it is validated, journaled and tracked like any order). Single-leg RFQs only."""
        if len(rfq.legs) != 1:
            raise OrderRefused("answering multi-leg RFQs is not supported")
        if self.live_rfq(rfq.symbol, rfq.rfq_id) is None:
            raise OrderRefused(f"RFQ {rfq.rfq_id} is no longer live")
        qty = rfq.quantity if quantity is None else quantity
        if qty <= 0 or qty > rfq.quantity:
            raise OrderRefused(f"answer quantity {qty} outside (0, {rfq.quantity}]")
        place = strategy.sell if rfq.side is Side.BUY else strategy.buy
        return place(VENUE, rfq.symbol, qty, price, tif=tif)
