"""Open Trade sessions: the public stream, the private stream and WS order entry.

Two connections to the same WS endpoint: a public one (books, public trades; no credentials) and
a private one (JWT on the handshake and as `signature`; BALANCE, TRADE_PRIVATE, and the order
commands CREATE / CANCEL / MODIFY / GET). Requests go over the core's `RequestChannel`; a reply
is the first message that names the request: its echoed `requestId` where the venue echoes one,
else ([DOC] no published reply carries one) an `ACK`/`ERROR`/`GET` for the same command and
channel, oldest request first, or the order's own `Order` / `OrderUpdate` item. The private
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
from framework.venues.opentrade.decode import VENUE, CatalogueEntry, Decoder, loads, order_report

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

    def _emit(self, event: Any) -> None:
        self.emit(event)

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
            if rid is None and requests.resolve_first((("error", command, channel),), msg):
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
        if rid is not None and event not in ("SNAPSHOT", "UPDATE"):
            return requests.resolve(rid, msg)
        # [INF] a GET reply without requestId answers the oldest GET of that channel
        if (command == "GET" or event in ("GET", None)) and requests.resolve_first(
            (("reply", "GET", channel),), msg
        ):
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


def reply_keys(message: dict[str, Any]) -> list[Key]:
    """Besides its `requestId`, what a reply to `message` may name it by."""
    command, channel = message.get("command"), message.get("channel")
    keys: list[Key] = [("ack", command, channel), ("error", command, channel)]
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

    def bind(self, ctx: Any) -> None:
        super().bind(ctx)
        self.stream.enabled.set()

    async def _signed(self, build: Any, *args: Any, **kw: Any) -> dict[str, Any]:
        """Send a signed order command; on an auth error, re-authenticate and send it once more
        (the venue refused it, so nothing was done)."""
        for attempt in range(2):
            generation = self._auth_gen
            message = build(*args, signature=await self.tokens.token(), **kw)
            reply = await self.stream.request(message, self.timeout_s)
            if reply.get("event") != "ERROR" or not is_auth_error(_error_text(reply)):
                return reply
            if attempt == 0:
                await self.reauthenticate(since=generation, reconcile=False)
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
            reply = await self._signed(
                m.create, order, request_type=self.request_type, exchange_name=self.exchange_name
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
        reply = await self._signed(m.cancel, order.symbol, order.client_order_id)
        if reply.get("event") == "ERROR":
            text = _error_text(reply)
            if "not found" in text.lower() or "not active" in text.lower():
                raise OrderNotFound(text)
            raise OrderRefused(text)
        return None  # the CANCELLED update follows on TRADE_PRIVATE

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
        for sym in [symbol] if symbol else self.stream.markets:
            self.counts["cancel_all"] += 1
            log.warning("opentrade cancel of every order of the pair", venue=VENUE, symbol=sym)
            reply = await self._signed(m.cancel_all_orders, sym)
            if reply.get("event") == "ERROR":
                raise OrderRefused(_error_text(reply))

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
        """Refresh the JWT before it expires, and after an auth error; resubscribe each time."""
        while True:
            wait = self.tokens.seconds_to_refresh()
            with trio.move_on_after(wait if wait is not None else float("inf")):
                await self.stream.reauth.wait()
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
                    keys=[
                        ("ack", "SUBSCRIBE", m.TRADE_PRIVATE),
                        ("error", "SUBSCRIBE", m.TRADE_PRIVATE),
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
