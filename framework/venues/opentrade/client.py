"""Open Trade sessions: the public stream, the private stream and WS order entry.

Two connections to the same WS endpoint: a public one (books, public trades; no credentials) and
a private one (JWT on the handshake and as `signature`; BALANCE, TRADE_PRIVATE, and the order
commands CREATE / CANCEL / MODIFY / GET). Requests go over the core's `RequestChannel`; a reply
is the first message that names the request: its echoed `requestId` where the venue echoes one,
else ([DOC] no published reply carries one) the order's own `Order` item (CREATE / MODIFY), the
`OrderUpdate` acknowledgement (CANCEL: the order it names, else the oldest CANCEL of its
instrument), an `event:"GET"` frame for a query (oldest first), an ERROR naming the order, its
command or only its channel (oldest request first), or an ACK where one is sent. The cancel
acknowledgement ends the order; fills whose size the Order items do not carry are read from
TRADES_HISTORY before the report reaches the core. The private
stream subscribes TRADE_PRIVATE for every configured market
before any order is sent (the venue rejects orders for unsubscribed instruments).

On an auth error or shortly before the JWT expires, a new token is fetched and the private
channels are subscribed again; the snapshot of active orders and a GET per open order bring back
anything missed meanwhile. Order state lives in the core and is never reset by this.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import attrs
import structlog
import trio

from framework.errors import (
    AuthError,
    ConnectionLost,
    FrameError,
    NotConnected,
    OrderNotFound,
    OrderRefused,
    RequestTimeout,
)
from framework.events import ExecutionReport, OrderStatus, Side
from framework.model import Order
from framework.transport.fetch import fetch_ws
from framework.transport.requests import Key, RequestChannel
from framework.transport.session import Connection
from framework.venue import ExecutionClient, Stream
from framework.venues.opentrade import messages as m
from framework.venues.opentrade.auth import TokenSource
from framework.venues.opentrade.decode import (
    VENUE,
    CatalogueEntry,
    Decoder,
    OrderRequestUpdate,
    loads,
    order_report,
)

log = structlog.get_logger("botrun.opentrade")

# [INF] ERROR payloads are undocumented; an auth failure is recognised by its message text
_AUTH_WORDS = ("signature", "token", "jwt", "expired", "unauthori", "authenticat")


def is_auth_error(message: Any) -> bool:
    text = str(message or "").lower()
    return any(word in text for word in _AUTH_WORDS)


class Readiness:
    """A flag tasks can wait on, that can also be lowered again (trio.Event cannot)."""

    def __init__(self) -> None:
        self._ok = False
        self._event = trio.Event()

    def set(self) -> None:
        self._ok = True
        self._event.set()

    def clear(self) -> None:
        self._ok = False
        if self._event.is_set():
            self._event = trio.Event()

    def is_set(self) -> bool:
        return self._ok

    async def wait(self) -> None:
        while not self._ok:
            await self._event.wait()


def _error_text(msg: dict[str, Any]) -> str:
    text = msg.get("message") or msg.get("error") or msg.get("reason") or "error"
    return str(text)[:300]


# --- public stream -------------------------------------------------------------------------------


class PublicStream(Stream):
    """ORDER_BOOK_PUBLIC (full books, every 20 ms) and TRADE_PUBLIC for the configured markets."""

    name = "public"
    heartbeat_interval_s = 30.0  # [DOC] a PING at least every 2 minutes, 30 s recommended
    # a full book arrives every 20 ms: a few seconds of silence is a dead feed
    stale_after_s = 5.0

    def __init__(
        self, ws_url: str, markets: list[str], *, levels: int = 20, trades: bool = True
    ) -> None:
        super().__init__()
        self.venue = VENUE
        self._url = ws_url
        self.markets = list(markets)
        self.levels = levels
        self.trades = trades
        self.errors: list[str] = []
        self.acks: list[str] = []
        # after this much silence the core has marked the books STALE: an unchanged book is
        # emitted again so they become SYNCED
        self.decoder = Decoder(
            self._emit,
            markets=set(markets),
            on_control=self._control,
            resend_unchanged_after_ns=int(self.stale_after_s * 1e9 / 2),
        )

    def _emit(self, event: Any) -> None:
        self.emit(event)

    async def url(self) -> str:
        return self._url

    async def on_connected(self, conn: Connection) -> None:
        instruments = m.arg("instrument", self.markets)
        # [INF] the levels argument is named "levels" (the docs give no name)
        book_args = [instruments, m.arg("levels", str(self.levels))]
        await conn.send(m.subscribe("ORDER_BOOK_PUBLIC", book_args))
        if self.trades:
            await conn.send(m.subscribe("TRADE_PUBLIC", [instruments]))

    async def send_heartbeat(self, conn: Connection) -> None:
        await conn.send(m.ping())

    def decode(self, frame: str | bytes, recv_ns: int) -> None:
        self.decoder.epoch = self.epoch
        self.decoder.decode(frame, recv_ns)

    def books(self) -> list[str]:
        return list(self.markets)

    async def resync(self, conn: Connection, symbol: str) -> bool:
        # the next full book (20 ms away) is emitted even if it equals the last one
        self.decoder.forget_book(symbol)
        return True

    def _control(self, msg: dict[str, Any]) -> bool:
        event = msg.get("event")
        if event == "ACK":
            self.acks.append(str(msg.get("channel")))
        elif event == "ERROR":
            error = f"{msg.get('channel')}: {_error_text(msg)}"
            self.errors.append(error)
            log.error("opentrade public request refused", venue=VENUE, error=error)
        return False


# --- private stream ------------------------------------------------------------------------------


class PrivateStream(Stream):
    """BALANCE and TRADE_PRIVATE, and the connection order commands go out on."""

    name = "private"
    heartbeat_interval_s = 30.0
    # a quiet account only hears PONGs, one per 30 s PING: stale after a missed one
    stale_after_s = 45.0
    # order updates missed while disconnected are asked for after every reconnect
    reconcile_on_reconnect = True

    def __init__(
        self,
        ws_url: str,
        tokens: TokenSource,
        markets: list[str],
        currencies: list[str],
        *,
        balances: bool = True,
        enabled: trio.Event | None = None,
    ) -> None:
        super().__init__()
        self.venue = VENUE
        self._url = ws_url
        self.tokens = tokens
        self.markets = list(markets)
        self.currencies = list(currencies)
        self.balances = balances
        # set once an execution client is bound to this venue (not in paper mode, where the
        # venue account is not what the strategy trades): until then the stream never connects
        self.enabled = enabled or trio.Event()
        self.requests = RequestChannel(VENUE, prefix="ot")
        self.correlator = self.requests.correlator
        self.conn: Connection | None = None
        self.ready = Readiness()  # TRADE_PRIVATE acknowledged on the current connection
        self.reauth = trio.Event()  # an auth error was seen: new token + resubscribe
        self.errors: list[str] = []
        self.auth_errors = 0
        self.decoder = Decoder(self._emit, markets=None, on_control=self._control)
        # every order report passes here (the execution client holds back the ones whose fill
        # size must first be read from the trade history); default: straight to the core
        self.route_report: Any = self.emit
        # orders we asked to cancel whose end is not confirmed yet, per instrument, oldest
        # first: the published acknowledgement names no order
        self.cancels: dict[str, list[str]] = {}

    def _emit(self, event: Any) -> None:
        if isinstance(event, ExecutionReport):
            self.route_report(event)
            return
        self.emit(event)
        if isinstance(event, OrderRequestUpdate) and event.request_status == "CANCELLED":
            self._cancel_acknowledged(event)

    def _cancel_acknowledged(self, update: OrderRequestUpdate) -> None:
        """[CODE SDK README] the cancel acknowledgement ends the order it names. One naming no
        order (the published form) is not attributed by position: a lost, delayed or repeated
        frame would end the wrong order. The venue is asked which orders of the instrument are
        still active (`verify_cancels`), and the cancelled ones among those we asked to cancel
        end then."""
        coid = update.client_order_id
        if coid is None:
            self.verify_cancels(update.symbol)
            return
        queue = self.cancels.get(update.symbol, [])
        if coid in queue:
            queue.remove(coid)
        report = ExecutionReport(
            VENUE,
            coid,
            status=OrderStatus.CANCELLED,
            venue_order_id=update.venue_order_id,
            reason="cancel acknowledged (OrderUpdate)",
        )
        self.route_report(report)

    def verify_cancels(self, symbol: str) -> None:
        """Set by the execution client: check which asked-for cancels of `symbol` are done."""

    async def url(self) -> str:
        await self.enabled.wait()
        return self._url

    async def handshake_headers(self) -> list[tuple[str, str]]:
        # [CODE] the SDK sends the bare token (no "Bearer") on the handshake
        return [("Authorization", await self.tokens.token())]

    def on_auth_rejected(self) -> None:
        self.tokens.invalidate()

    async def on_connected(self, conn: Connection) -> None:
        # requests still waiting were sent on the old connection: their replies will not come
        self.requests.connected(conn)
        self.ready.clear()
        self.conn = conn
        await self.subscribe_private(conn, await self.tokens.token())

    async def subscribe_private(
        self, conn: Connection, token: str, request_ids: tuple[str, str] | None = None
    ) -> None:
        instruments = [m.arg("instrument", self.markets)]
        ids = request_ids or (None, None)
        if self.balances and self.currencies:
            currencies = [m.arg("currency", self.currencies)]
            await conn.send(m.subscribe("BALANCE", currencies, signature=token, request_id=ids[0]))
        await conn.send(
            m.subscribe("TRADE_PRIVATE", instruments, signature=token, request_id=ids[1])
        )

    async def send_heartbeat(self, conn: Connection) -> None:
        await conn.send(m.ping())

    def decode(self, frame: str | bytes, recv_ns: int) -> None:
        self.decoder.epoch = self.epoch
        self.decoder.decode(frame, recv_ns)

    # --- requests ---------------------------------------------------------------------------

    async def request(self, message: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Send one request on the current connection and return its reply (ACK/ERROR/GET)."""
        if self.conn is None:
            raise NotConnected("opentrade private stream is not connected")
        rid = self.requests.new_id()
        message["requestId"] = rid
        # a closed connection (NotConnected, ConnectionLost) is a ConnectionError the callers
        # handle as a lost reply
        return await self.requests.request(
            message,
            request_id=rid,
            keys=reply_keys(message),
            timeout_s=timeout_s,
            what=f"{message.get('command')} {message.get('channel')}",
        )

    def _control(self, msg: dict[str, Any]) -> bool:
        """ACK / ERROR, and replies our requests wait for. True = consumed."""
        event = msg.get("event")
        rid = msg.get("requestId")
        rid = None if rid is None else str(rid)
        requests = self.requests
        command, channel = msg.get("command"), msg.get("channel")
        if not isinstance(command, str | None) or not isinstance(channel, str | None):
            # they name what a reply answers: a malformed one answers nothing (found by fuzzing)
            raise FrameError(f"control frame: command/channel not text: {str(msg)[:80]}")
        if event == "ACK":
            if channel == m.TRADE_PRIVATE and command == "SUBSCRIBE":
                self.ready.set()
            if rid is not None:
                requests.resolve(rid, msg)
            else:
                requests.resolve_first((("ack", command, channel),), msg)
            return True
        if event == "ERROR":
            if rid is not None and requests.resolve(rid, msg):
                return True
            # [INF] an ERROR may name the order it refuses, its command, or only its channel:
            # the order's request, else the oldest request of that command, else of that channel
            keys: list[Key] = [("order", c) for c in _order_ids(msg)]
            if command is not None:
                keys.append(("error", command, channel))
            keys += [("error-any", channel), ("error-any",)]
            if rid is None and requests.resolve_first(keys, msg):
                return True
            error = f"{msg.get('command')} {msg.get('channel')}: {_error_text(msg)}"
            self.errors.append(error)
            if is_auth_error(error):
                # e.g. the token expired under a live subscription: updates stop until we
                # subscribe again with a new one
                self.auth_errors += 1
                self.ready.clear()
                self.tokens.invalidate()
                self.reauth.set()
                log.warning("opentrade auth error; re-authenticating", venue=VENUE, error=error)
            else:
                log.error("opentrade private request refused", venue=VENUE, error=error)
            return True
        if channel == m.TRADE_PRIVATE and event in ("SNAPSHOT", "GET", None):
            # [DOC] ACK, SNAPSHOT or a GET frame on TRADE_PRIVATE: the subscription is live
            self.ready.set()
            if event == "SNAPSHOT":
                requests.resolve_first([("subscribed", channel)], msg)  # decoded all the same
        if rid is not None and event not in ("SNAPSHOT", "UPDATE"):
            return requests.resolve(rid, msg)
        if channel == m.TRADE_PRIVATE and event in ("GET", None):
            # [CODE] the CREATE / MODIFY reply is a GET frame holding the order's one item
            # (no requestId): it answers that order's request before any GET of the channel
            ids = _order_ids(msg)
            if len(ids) == 1 and requests.resolve_first([("order", ids[0])], msg):
                return False  # still decoded: it reports the order
        # [INF] a GET reply without requestId answers the oldest GET of that channel. On
        # TRADE_PRIVATE only an `"event":"GET"` frame does (every published query reply has
        # one): an event-less GET frame there is an order command's reply [CODE SDK README:
        # CREATE], possibly a late one, whose Order items must never be read as a query's
        # answer (a cancelled order's `amount` taken for a trade would book a false fill)
        answers_query = event == "GET" or (
            channel != m.TRADE_PRIVATE and (command == "GET" or event is None)
        )
        if answers_query and requests.resolve_first((("reply", "GET", channel),), msg):
            return True
        if channel == m.TRADE_PRIVATE and requests.correlator.in_flight():
            # an order's own item may be the reply its CREATE / MODIFY / CANCEL waits for; the
            # frame is still decoded (it reports the order)
            self._lifecycle(msg)
        return False

    def _lifecycle(self, msg: dict[str, Any]) -> None:
        data = msg.get("data")
        if type(data) is not list:
            return
        for item in data:
            if type(item) is not dict:
                continue
            kind = item.get("class")
            coid = item.get("clientOrderId") or item.get("orderId")
            coid = str(coid) if coid is not None else None
            if kind == "Order" and coid is not None:
                keys: list[Key] = [("order", coid)]
                if item.get("orderStatus") == "CANCELLED":
                    keys.insert(0, ("cancelled", coid))
                self.requests.resolve_first(keys, msg)
            elif kind == "OrderUpdate" and item.get("orderRequestStatus") == "CANCELLED":
                # [DOC] the cancel acknowledgement may name no order: it answers the oldest
                # CANCEL of its instrument
                if coid is not None:
                    key: Key = ("cancelled", coid)
                else:
                    key = ("cancel", item.get("instrumentCd"))
                self.requests.resolve_first((key,), msg)


def _order_ids(msg: dict[str, Any]) -> list[str]:
    """The client order ids a frame's `Order` items name."""
    data = msg.get("data")
    out: list[str] = []
    if type(data) is list:
        for item in data:
            if type(item) is dict and item.get("class", "Order") == "Order":
                coid = item.get("clientOrderId") or item.get("orderId")
                if type(coid) in (str, int):
                    out.append(str(coid))
    return out


def reply_keys(message: dict[str, Any]) -> list[Key]:
    """Besides its `requestId`, what a reply to `message` may name it by."""
    command, channel = message.get("command"), message.get("channel")
    keys: list[Key] = [("ack", command, channel), ("error", command, channel)]
    # an ERROR naming only its channel (or nothing) answers the oldest request there
    keys += [("error-any", channel), ("error-any",)]
    if command == "GET":
        keys.append(("reply", "GET", channel))
    data = message.get("data")
    item = data[0] if type(data) is list and data and type(data[0]) is dict else {}
    coid = item.get("clientOrderId") or item.get("orderId")
    if command in ("CREATE", "MODIFY") and coid:
        keys.append(("order", str(coid)))
    elif command == "CANCEL":
        if coid:
            keys.append(("cancelled", str(coid)))
        keys.append(("cancel", item.get("globalInstrumentCd")))
    return keys


# --- execution ---------------------------------------------------------------------------------


def _date(ns: int) -> str:
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")


class OpenTradeExecution(ExecutionClient):
    """Order entry over the private stream's WebSocket."""

    # [INF] clientOrderId length limit undocumented; the SDK examples use ~20 characters
    client_order_id_max_len = 32
    # [CODE] a CANCEL without an order id cancels every order of the pair: one per market
    supports_cancel_all = True

    def __init__(
        self,
        stream: PrivateStream,
        *,
        request_type: str = "SMART",
        exchange_name: str = "",
        timeout_s: float = 10.0,
        ready_timeout_s: float = 5.0,
    ) -> None:
        self.venue = VENUE
        self.stream = stream
        self.tokens = stream.tokens
        self.request_type = request_type
        self.exchange_name = exchange_name
        self.timeout_s = timeout_s
        self.ready_timeout_s = ready_timeout_s
        self.counts: dict[str, int] = {"reauths": 0, "cancel_all": 0}
        self._reauth_lock = trio.Lock()
        self._auth_gen = 0  # bumped by every re-authentication
        # submits whose reply has not come back yet, and those of them a re-authentication's
        # reconciliation passed by (their updates may have gone with the old subscription)
        self._in_flight: set[str] = set()
        self._recheck: set[str] = set()
        # fill recovery: orders sent by this session, those seen PARTIALLY_FILLED, and the
        # reports held back (in order, per order) until their fill size is known
        self._orders: dict[str, Order] = {}
        self._partial: set[str] = set()
        self._held: dict[str, list[ExecutionReport]] = {}
        self._recover_send, self._recover_recv = trio.open_memory_channel[str](float("inf"))
        self.counts.update({"recovered_fills": 0, "unreadable_fills": 0})
        stream.route_report = self._route_report
        stream.verify_cancels = self._verify_cancels
        self._verify_send, self._verify_recv = trio.open_memory_channel[str](float("inf"))

    def bind(self, ctx: Any) -> None:
        super().bind(ctx)
        self.stream.enabled.set()

    async def _signed(self, build: Any, *args: Any, probe: Any = None, **kw: Any) -> dict[str, Any]:
        """Send a signed order command; on an auth error, re-authenticate and send it once more.
        An ERROR names no request: one meant for another (e.g. a dying subscription's) may have
        answered this one, so a CREATE is not re-sent before `probe` has asked the venue whether
        the order exists (a CREATE is not idempotent)."""
        for attempt in range(2):
            generation = self._auth_gen
            message = build(*args, signature=await self.tokens.token(), **kw)
            reply = await self.stream.request(message, self.timeout_s)
            if reply.get("event") != "ERROR" or not is_auth_error(_error_text(reply)):
                return reply
            if attempt == 0:
                await self.reauthenticate(since=generation, reconcile=False)
                if probe is not None:
                    item = await probe()
                    if item is not None:
                        return {"event": "GET", "channel": m.TRADE_PRIVATE, "data": [item]}
        return reply

    async def _ready(self, symbol: str) -> None:
        if symbol not in self.stream.markets:
            raise OrderRefused(
                f"{symbol} is not subscribed on TRADE_PRIVATE (venue would reject the order)"
            )
        with trio.move_on_after(self.ready_timeout_s):
            await self.stream.ready.wait()
        if not self.stream.ready.is_set():
            # nothing was sent: a definite refusal, not an unknown outcome
            raise OrderRefused("opentrade private stream not ready (TRADE_PRIVATE not subscribed)")

    # --- ExecutionClient ---------------------------------------------------------------------

    async def submit(self, order: Order) -> ExecutionReport | None:
        await self._ready(order.symbol)
        coid = order.client_order_id
        self._in_flight.add(coid)
        try:
            self._orders[coid] = order

            async def probe() -> dict[str, Any] | None:
                return await self._find(order, "ORDERS_HISTORY")

            reply = await self._signed(
                m.create,
                order,
                request_type=self.request_type,
                exchange_name=self.exchange_name,
                probe=probe,
            )
        finally:
            self._in_flight.discard(coid)
            recheck = coid in self._recheck
            self._recheck.discard(coid)
        if reply.get("event") == "ERROR":
            raise OrderRefused(_error_text(reply))
        if recheck:
            # the private subscription was renewed while this was in flight: NEW / ACTIVE /
            # fills may have been pushed to the dead one (and the new snapshot lists only
            # active orders), so ask
            return await self.query_order(order)
        return None  # NEW / ACTIVE / fills arrive as TRADE_PRIVATE updates

    async def cancel(self, order: Order) -> ExecutionReport | None:
        if not order.client_order_id:
            raise OrderRefused("no clientOrderId: a CANCEL without one would cancel every order")
        queue = self.stream.cancels.setdefault(order.symbol, [])
        queue.append(order.client_order_id)
        try:
            reply = await self._signed(m.cancel, order.symbol, order.client_order_id)
        except BaseException:
            # no acknowledgement will be matched to it: the core reconciles the order
            if order.client_order_id in queue:
                queue.remove(order.client_order_id)
            raise
        if reply.get("event") == "ERROR":
            if order.client_order_id in queue:
                queue.remove(order.client_order_id)
            text = _error_text(reply)
            if "not found" in text.lower() or "not active" in text.lower():
                raise OrderNotFound(text)
            raise OrderRefused(text)
        # the acknowledgement (an OrderUpdate, or the order's CANCELLED item) ends the order
        # through the stream, in order with its fills
        return None

    async def modify(
        self, order: Order, price: Decimal | None, quantity: Decimal | None
    ) -> ExecutionReport | None:
        # [INF] MODIFY carries the amount always (the order's current one if unchanged)
        amount = quantity if quantity is not None else order.quantity
        reply = await self._signed(m.modify, order.symbol, order.client_order_id, price, amount)
        if reply.get("event") == "ERROR":
            raise OrderRefused(_error_text(reply))
        return None  # the amended order arrives as an update (price/amount → OrderModified)

    async def cancel_all(self, symbol: str | None = None) -> None:
        """Explicit cancel-all: the only place a CANCEL without an order id is sent."""
        symbols = [symbol] if symbol else list(self.stream.markets)
        for sym in symbols:
            self.counts["cancel_all"] += 1
            log.warning("opentrade cancel of every order of the pair", venue=VENUE, symbol=sym)
            reply = await self._signed(m.cancel_all_orders, sym)
            if reply.get("event") == "ERROR":
                raise OrderRefused(_error_text(reply))
        # [CODE] the acknowledgement names no order: ask the venue which remain, end the others
        listed = {r.client_order_id for r in await self.list_open_orders()}
        for order in self.ctx.open_orders(VENUE) if self.ctx is not None else []:
            if order.symbol in symbols and order.client_order_id not in listed:
                report = ExecutionReport(VENUE, order.client_order_id, status=OrderStatus.CANCELLED)
                self._route_report(report)

    async def query_order(self, order: Order) -> ExecutionReport | None:
        item = await self._find(order, "ACTIVE_ORDERS")
        if item is None:
            item = await self._find(order, "ORDERS_HISTORY")
        if item is None:
            return None
        report = order_report(item)
        if report.status is None:  # NEW: the venue has it, it is not working yet
            report = attrs.evolve(report, status=OrderStatus.SUBMITTED)
        return report

    async def list_open_orders(self) -> list[ExecutionReport]:
        """[CODE] `GET TRADE_PRIVATE` `category=ACTIVE_ORDERS` for every subscribed market."""
        if not self.stream.markets:
            return []
        args = [m.arg("category", "ACTIVE_ORDERS"), m.arg("instrument", list(self.stream.markets))]
        reply = await self._signed(m.get, m.TRADE_PRIVATE, args)
        if reply.get("event") == "ERROR":
            raise RuntimeError(f"GET TRADE_PRIVATE ACTIVE_ORDERS: {_error_text(reply)}")
        data = reply.get("data")
        if not isinstance(data, list):
            raise FrameError("GET TRADE_PRIVATE reply without data")
        listed = []
        for item in data:
            if not isinstance(item, dict) or item.get("class") != "Order":
                continue
            direction = str(item.get("direction", "")).upper()
            symbol = item.get("globalInstrumentCd")
            listed.append(
                attrs.evolve(
                    order_report(item),
                    fill_id=None,  # a listing, not a fill
                    symbol=symbol if isinstance(symbol, str) else None,
                    side=Side(direction) if direction in ("BUY", "SELL") else None,
                )
            )
        return listed

    async def _find(self, order: Order, category: str) -> dict[str, Any] | None:
        args = [m.arg("category", category), m.arg("instrument", [order.symbol])]
        if category == "ORDERS_HISTORY":
            start = order.created_ns - 86_400 * 1_000_000_000
            args.append(m.arg("date-from", _date(max(0, start))))
        reply = await self._signed(m.get, m.TRADE_PRIVATE, args)
        if reply.get("event") == "ERROR":
            raise RuntimeError(f"GET TRADE_PRIVATE {category}: {_error_text(reply)}")
        data = reply.get("data")
        if not isinstance(data, list):
            raise FrameError("GET TRADE_PRIVATE reply without data")
        found = None
        for item in data:
            if not isinstance(item, dict) or item.get("class") != "Order":
                continue
            coid = item.get("clientOrderId") or item.get("orderId")
            if coid is not None and str(coid) == order.client_order_id:
                found = item  # [INF] the last entry is the current state
        return found

    # --- tokens ---------------------------------------------------------------------------------

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._recover_fills)
            nursery.start_soon(self._cancels_done)
            await self._refresh_tokens()

    async def _refresh_tokens(self) -> None:
        """Refresh the JWT before it expires (armed as soon as the first token is fetched), and
        after an auth error; resubscribe each time."""
        while True:
            wait = self.tokens.seconds_to_refresh()
            stored = self.tokens.stored
            timer = trio.move_on_after(wait if wait is not None else float("inf"))
            with timer:
                await _first(self.stream.reauth, stored)
            if not timer.cancelled_caught and not self.stream.reauth.is_set():
                # a token was stored (the first one, or another task's refresh): re-arm
                self.tokens.stored = trio.Event()
                continue
            self.stream.reauth = trio.Event()
            if self.stream.conn is None:
                continue  # not connected yet: the next connection takes a fresh token anyway
            try:
                await self.reauthenticate()
            except (AuthError, OSError, RequestTimeout, RuntimeError, FrameError) as exc:
                log.warning("opentrade re-authentication failed", venue=VENUE, error=str(exc))
                self.stream.reauth.set()
                await trio.sleep(1.0)  # back off before the next try

    async def reauthenticate(self, *, since: int | None = None, reconcile: bool = True) -> None:
        """A new token, the private channels subscribed again with it, and open orders asked for
        (updates sent while our subscription was dead are not replayed by the venue)."""
        async with self._reauth_lock:
            if since is not None and since != self._auth_gen:
                return  # another task re-authenticated after this request was signed
            self._auth_gen += 1
            self.counts["reauths"] += 1
            self.tokens.invalidate()
            token = await self.tokens.token()
            conn = self.stream.conn
            if conn is None:
                return
            requests = self.stream.requests
            rid = requests.new_id()

            async def subscribe(conn: Connection) -> None:
                await self.stream.subscribe_private(conn, token, (f"{rid}b", rid))

            try:
                reply = await requests.call(
                    subscribe,
                    request_id=rid,
                    # no echo needed: the channel's next ACK, or its SNAPSHOT where a venue
                    # sends no ACK, or an ERROR naming it, answers the resubscribe
                    keys=[
                        ("ack", "SUBSCRIBE", m.TRADE_PRIVATE),
                        ("error", "SUBSCRIBE", m.TRADE_PRIVATE),
                        ("subscribed", m.TRADE_PRIVATE),
                        ("error-any", m.TRADE_PRIVATE),
                    ],
                    timeout_s=self.timeout_s,
                    what="TRADE_PRIVATE resubscribe",
                    conn=conn,
                )
            except (NotConnected, ConnectionLost):
                # closed while we fetched the token, or replaced: the reconnect subscribes with
                # a fresh token and the core reconciles after it (reconcile_on_reconnect)
                return
            if reply.get("event") == "ERROR":
                raise AuthError(f"TRADE_PRIVATE resubscribe refused: {_error_text(reply)}")
        if reconcile:
            await self._reconcile_open_orders()

    async def _reconcile_open_orders(self) -> None:
        if self.ctx is None:
            return
        for order in self.ctx.open_orders(VENUE):
            if order.status is OrderStatus.PENDING:
                continue  # not sent yet
            if order.client_order_id in self._in_flight:
                # its submit asks once answered; an acknowledged SUBMITTED order is asked now:
                # its NEW / ACTIVE may have been pushed to the subscription that just died
                self._recheck.add(order.client_order_id)
                continue
            report = await self.query_order(order)
            if report is not None:
                self.ctx.on_report(report)

    # --- cancel acknowledgements naming no order -------------------------------------------------

    def _verify_cancels(self, symbol: str) -> None:
        self._verify_send.send_nowait(symbol)

    async def _cancels_done(self) -> None:
        """[DOC] "when in doubt, GET ACTIVE_ORDERS": an order we asked to cancel that the venue no
        longer lists as active has ended; its CANCELLED goes through the fill check."""
        async for symbol in self._verify_recv:
            queue = self.stream.cancels.get(symbol, [])
            if not queue:
                continue
            try:
                active = await self._active_ids(symbol)
            except (OSError, RequestTimeout, RuntimeError, FrameError) as exc:
                # not booked: the cancels' own requests, or the core's reconciliation, settle it
                log.warning("opentrade active-order check failed", venue=VENUE, error=str(exc))
                continue
            for coid in [c for c in queue if c not in active]:
                queue.remove(coid)
                self._route_report(
                    ExecutionReport(
                        VENUE,
                        coid,
                        status=OrderStatus.CANCELLED,
                        reason="cancel acknowledged; not active at the venue",
                    )
                )

    async def _active_ids(self, symbol: str) -> set[str]:
        args = [m.arg("category", "ACTIVE_ORDERS"), m.arg("instrument", [symbol])]
        reply = await self._signed(m.get, m.TRADE_PRIVATE, args)
        if reply.get("event") == "ERROR":
            raise RuntimeError(f"GET TRADE_PRIVATE ACTIVE_ORDERS: {_error_text(reply)}")
        data = reply.get("data")
        if not isinstance(data, list):
            raise FrameError("GET TRADE_PRIVATE reply without data")
        return set(_order_ids(reply))

    # --- fills without a size --------------------------------------------------------------------

    def _route_report(self, report: ExecutionReport) -> None:
        """Every order report of the private stream, in order. [DOC] Order items carry no fill
        size: a PARTIALLY_FILLED, or an end after fills, without one is held back (with every
        later report of that order) until the trade history has given the filled amount."""
        coid = report.client_order_id
        status = report.status
        if status is OrderStatus.PARTIALLY_FILLED:
            self._partial.add(coid)
        held = self._held.get(coid)
        if held is not None:
            held.append(report)
            return
        if report.cum_qty is None and self._may_have_fills(report):
            self._held[coid] = [report]
            self._recover_send.send_nowait(coid)
            return
        self._deliver(report)

    def _may_have_fills(self, report: ExecutionReport) -> bool:
        coid = report.client_order_id
        if report.status is OrderStatus.PARTIALLY_FILLED:
            return True
        if report.status not in (OrderStatus.CANCELLED, OrderStatus.EXPIRED):
            return False
        if coid in self._partial or (report.avg_price is not None and report.avg_price > 0):
            return True  # seen partially filled, or a fill price without a size
        order = self._order(coid)
        return order is not None and order.filled_qty > 0

    def _deliver(self, report: ExecutionReport) -> None:
        if report.status is not None and report.status.is_terminal:
            self._partial.discard(report.client_order_id)
            self._orders.pop(report.client_order_id, None)
        self.stream.emit(report)

    def _order(self, coid: str) -> Order | None:
        order = self._orders.get(coid)
        if order is None and self.ctx is not None:
            order = next(
                (o for o in self.ctx.open_orders(VENUE) if o.client_order_id == coid), None
            )
        return order

    async def _recover_fills(self) -> None:
        async for coid in self._recover_recv:
            reports = self._held.get(coid, [])
            order = self._order(coid)
            cum: tuple[Decimal, Decimal | None] | None = None
            if order is not None:
                try:
                    cum = await self._traded(order)
                except (OSError, RequestTimeout, RuntimeError, FrameError) as exc:
                    log.warning(
                        "opentrade trade history unavailable",
                        venue=VENUE,
                        client_order_id=coid,
                        error=str(exc),
                    )
            reports = self._held.pop(coid, reports)
            if cum is None:
                # unreadable or unknown: nothing is booked from these reports; their states
                # are kept only where they are not an end (the core reconciles the order)
                self.counts["unreadable_fills"] += 1
                for report in reports:
                    if report.status is not None and report.status.is_terminal:
                        continue
                    self._deliver(report)
                continue
            qty, avg = cum
            self.counts["recovered_fills"] += 1
            for report in reports:
                if report.cum_qty is None and qty > 0:
                    report = attrs.evolve(
                        report,
                        cum_qty=qty,
                        avg_price=avg,
                        fill_id=f"{coid}:cum:{qty.normalize()}",
                    )
                self._deliver(report)

    async def _traded(self, order: Order) -> tuple[Decimal, Decimal | None] | None:
        """[CODE] `GET TRADE_PRIVATE category=TRADES_HISTORY`: the order's filled amount and
        average price, from its trades (each an item whose `amount` is the traded size [INF]).
        None if a number is unreadable or the total exceeds the order."""
        start = max(0, order.created_ns - 60 * 1_000_000_000)
        args = [
            m.arg("category", "TRADES_HISTORY"),
            m.arg("instrument", [order.symbol]),
            m.arg("date-from", _date(start)),
        ]
        reply = await self._signed(m.get, m.TRADE_PRIVATE, args)
        if reply.get("event") == "ERROR":
            raise RuntimeError(f"GET TRADE_PRIVATE TRADES_HISTORY: {_error_text(reply)}")
        data = reply.get("data")
        if not isinstance(data, list):
            raise FrameError("GET TRADE_PRIVATE TRADES_HISTORY reply without data")
        total, notional, priced = Decimal(0), Decimal(0), True
        names = {order.client_order_id, order.venue_order_id} - {None}
        for item in data:
            if not isinstance(item, dict):
                continue
            ids = {str(item.get(k)) for k in ("clientOrderId", "orderId") if item.get(k)}
            venue_ids = {
                str(item.get(k)) for k in ("exchangeOrderId", "exchOrderId") if item.get(k)
            }
            if not ((ids & names) or (venue_ids & names)):
                continue
            qty, price = item.get("amount"), item.get("filledPrice")
            if not _valid(qty, positive=True) or not _valid(price, positive=False):
                log.error(
                    "opentrade unreadable trade",
                    venue=VENUE,
                    client_order_id=order.client_order_id,
                    excerpt=str(item)[:200],
                )
                return None
            total += qty
            if price > 0:
                notional += qty * price
            else:
                priced = False
        if total > order.quantity:
            log.error(
                "opentrade trades exceed the order",
                venue=VENUE,
                client_order_id=order.client_order_id,
                filled=str(total),
                quantity=str(order.quantity),
            )
            return None
        avg = notional / total if total > 0 and priced else None
        return total, avg


def _valid(value: Any, *, positive: bool) -> bool:
    """A venue number fit to book: a finite Decimal (from `loads_decimal`), > 0 or >= 0."""
    if type(value) is str:
        try:
            value = Decimal(value)
        except ArithmeticError:
            return False
    if not isinstance(value, Decimal) or not value.is_finite():
        return False
    return value > 0 if positive else value >= 0


async def _first(*events: trio.Event) -> None:
    """Return once any of `events` is set."""
    async with trio.open_nursery() as nursery:

        async def one(event: trio.Event) -> None:
            await event.wait()
            nursery.cancel_scope.cancel()

        for event in events:
            nursery.start_soon(one, event)


# --- catalogue at start --------------------------------------------------------------------------


async def fetch_catalogue(
    ws_url: str, timeout_s: float = 10.0, *, max_bytes: int = 64 * 1024 * 1024
) -> dict[str, CatalogueEntry]:
    """GET ASSET_LIST and INSTRUMENT_LIST on a short-lived connection (public, no auth)."""
    decoder = Decoder(lambda event: None)
    wanted = {"ASSET_LIST", "INSTRUMENT_LIST"}

    def answer(frame: str | bytes) -> dict[str, CatalogueEntry] | None:
        msg = loads(frame)
        channel = msg.get("channel")
        if msg.get("event") == "ERROR":
            raise FrameError(f"GET {channel} refused: {_error_text(msg)}")
        if channel in wanted and isinstance(msg.get("data"), list):
            decoder.decode(frame, 0)
            wanted.discard(channel)
        return None if wanted else decoder.catalogue

    return await fetch_ws(
        ws_url,
        [m.get(channel) for channel in sorted(wanted)],
        answer,
        what="opentrade catalogue (ASSET_LIST, INSTRUMENT_LIST)",
        timeout_s=timeout_s,
        max_bytes=max_bytes,
    )
