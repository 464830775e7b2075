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

import time
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
        # [DOC] no reply names its request, so commands on TRADE_PRIVATE go one at a time, each
        # behind a PING barrier (see `request`): whatever answers arrive belong to the one in
        # flight, never to an older, duplicated or late one
        self._command_lock = trio.Lock()
        self._pong = trio.Event()
        # an execution report the execution client holds until its fill size is known (the
        # published `Order` items carry none): `hold(report)` is True when it took it
        self.hold: Any = None
        self.counts: dict[str, int] = {"stale_replies": 0, "barriers": 0}
        self._subscribing = False  # a TRADE_PRIVATE subscribe sent, its first answer not seen

    def _emit(self, event: Any) -> None:
        if isinstance(event, ExecutionReport) and self.hold is not None and self.hold(event):
            return
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
        self._subscribing = True
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
        pongs = self.decoder.pongs
        self.decoder.decode(frame, recv_ns)
        if self.decoder.pongs != pongs:
            self._pong.set()
            self._pong = trio.Event()

    # --- requests ---------------------------------------------------------------------------

    async def request(self, message: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Send one command on the current connection and return its answer.

        [DOC] no published answer carries a `requestId`, and none names a GET's category. So
        the commands go one at a time, and each only after a PING's PONG: frames the venue sent
        before it (an older command's late, duplicated or unclaimed answer) arrive before the
        PONG and answer nothing; what arrives after it, until the answer, is this command's.
        """
        async with self._command_lock:
            conn = self.conn
            if conn is None:
                raise NotConnected("opentrade private stream is not connected")
            await self._barrier(conn, timeout_s)
            rid = self.requests.new_id()
            # [DOC] the request template carries one; an echo, if any, is used, never needed
            message["requestId"] = rid
            # a closed connection (NotConnected, ConnectionLost) is a ConnectionError the
            # callers handle as a lost reply
            return await self.requests.request(
                message,
                request_id=rid,
                keys=reply_keys(message),
                timeout_s=timeout_s,
                what=f"{message.get('command')} {message.get('channel')}",
            )

    async def _barrier(self, conn: Connection, timeout_s: float) -> None:
        """PING, and wait for a PONG that follows it: the command has not been sent yet, so a
        failure here is `NotConnected` (it did not leave)."""
        self.counts["barriers"] += 1
        target = self.decoder.pongs + 1
        try:
            await conn.send(m.ping())
        except Exception as exc:  # a closed socket: nothing left
            raise NotConnected(f"opentrade: PING failed: {exc!r}") from None
        with trio.move_on_after(timeout_s):
            while self.decoder.pongs < target:
                await self._pong.wait()
        if self.decoder.pongs < target or self.conn is not conn:
            raise NotConnected("opentrade: no PONG before the command; not sent")

    def _control(self, msg: dict[str, Any]) -> bool:
        """ACK / ERROR, and answers our requests wait for. True = consumed (not decoded)."""
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
                self._subscribing = False
                self.ready.set()
            # an order command's ACK is not its outcome (that is the order, or an ERROR): only
            # a SUBSCRIBE waits for one
            if rid is None or not requests.resolve(rid, msg):
                requests.resolve_first((("ack", command, channel),), msg)
            return True
        if event == "ERROR":
            if rid is not None and requests.resolve(rid, msg):
                return True
            # [INF] ERROR fields are undocumented: one naming no command answers the command in
            # flight on its channel (there is at most one, see `request`)
            if requests.resolve_first((("error", command, channel),), msg):
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
        if rid is not None and event not in ("SNAPSHOT", "UPDATE") and requests.resolve(rid, msg):
            return True
        if channel != m.TRADE_PRIVATE:
            if event == "GET" or (event is None and command == "GET"):
                return requests.resolve_first((("reply", "GET", channel),), msg) or (
                    channel != "TRADE_POSITIONS"  # an unclaimed position list is still news
                )
            return False
        if event in ("SNAPSHOT", "UPDATE"):
            if event == "SNAPSHOT":
                self._subscribing = False
                self.ready.set()
            # an order's own item may be the answer a CREATE / MODIFY / CANCEL waits for; the
            # frame is still decoded (it reports the order)
            self._lifecycle(msg)
            return False
        if event == "GET" or (event is None and command == "GET"):
            # the published answer form of CREATE (no event), MODIFY and GET: the order named
            # by a command in flight, else the GET's answer
            if self._lifecycle(msg) or requests.resolve_first((("reply", "GET", channel),), msg):
                return True
            # nobody asked: a late or duplicated answer. Never read as news: a trade-history
            # item's `amount` is a fill's size, not the order's
            self.counts["stale_replies"] += 1
            if self._subscribing:
                # [DOC] the page shows the subscribe answered by a GET frame (its snapshot)
                self._subscribing = False
                self.ready.set()
            return True
        return False

    def _lifecycle(self, msg: dict[str, Any]) -> bool:
        """Resolve the command in flight that an item of `msg` names; True if one did."""
        data = msg.get("data")
        if type(data) is not list:
            return False
        resolved = False
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
                resolved |= self.requests.resolve_first(keys, msg)
            elif kind == "OrderUpdate" and item.get("orderRequestStatus") == "CANCELLED":
                # [CODE] the cancel acknowledgement may name no order: it answers the CANCEL of
                # its instrument in flight (one at a time, see `request`)
                if coid is not None:
                    key: Key = ("cancelled", coid)
                else:
                    key = ("cancel", item.get("instrumentCd"))
                resolved |= self.requests.resolve_first((key,), msg)
        return resolved


def reply_keys(message: dict[str, Any]) -> list[Key]:
    """Besides its `requestId`, what an answer to `message` may name it by. An order command's
    `ACK` is not among them: its outcome is the order itself, or an `ERROR`."""
    command, channel = message.get("command"), message.get("channel")
    keys: list[Key] = [("error", command, channel), ("error", None, channel)]
    if command not in ("CREATE", "CANCEL", "MODIFY", "GET"):
        keys.append(("ack", command, channel))
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


async def _first_of(timeout_s: float, *events: trio.Event) -> None:
    """Return when any of `events` is set, or after `timeout_s`."""
    with trio.move_on_after(timeout_s):
        async with trio.open_nursery() as nursery:
            for event in events:

                async def wait(event: trio.Event = event) -> None:
                    await event.wait()
                    nursery.cancel_scope.cancel()

                nursery.start_soon(wait)


def _coid(item: dict[str, Any]) -> str | None:
    """`orderId` in active orders and updates, `clientOrderId` in history items: our id."""
    coid = item.get("clientOrderId") or item.get("orderId")
    return None if coid is None else str(coid)


def _date(ns: int) -> str:
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")


class OpenTradeExecution(ExecutionClient):
    """Order entry over the private stream's WebSocket.

    Fill sizes: [DOC] no published `Order` item carries a filled amount. Every report that
    books a fill goes through `_sized`: a size on the item (`filledAmount`, an option of the
    simulator, or FILLED = the whole amount) is used; else, for PARTIALLY_FILLED and the
    terminal states after which fills may hide, the order's fills in GET TRADE_PRIVATE
    `TRADES_HISTORY` are summed. The cumulative quantity names the fill (`<coid>:cum:<qty>`),
    so the core's fill de-duplication books each quantity once whichever path (update stream,
    command answer, query) brought it first. Stream reports wait for their size in order, per
    order (`hold`), so a CANCELLED never overtakes the partial fill before it.

    Prices: the core refuses a price with more than 7 significant digits or 8 decimals
    (capabilities; `Strategy.venue_price` rounds away from aggressiveness), so no price the venue
    would cut is ever sent.
    """

    # [INF] clientOrderId length limit undocumented; the SDK examples use ~20 characters
    client_order_id_max_len = 32
    # [CODE] a CANCEL without an order id cancels every order of the pair: one per market
    supports_cancel_all = True
    # these statuses may hide fills the item does not size
    _SIZE_AFTER = (OrderStatus.PARTIALLY_FILLED, OrderStatus.CANCELLED, OrderStatus.EXPIRED)

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
        self.counts: dict[str, int] = {"reauths": 0, "cancel_all": 0, "sized": 0}
        self._reauth_lock = trio.Lock()
        self._auth_gen = 0  # bumped by every re-authentication
        # submits whose reply has not come back yet, and those of them a re-authentication's
        # reconciliation passed by (their updates may have gone with the old subscription)
        self._in_flight: set[str] = set()
        self._recheck: set[str] = set()
        # stream reports waiting for their fill size, per order, oldest first
        self._held: dict[str, list[ExecutionReport]] = {}
        self._held_wakeup = trio.Event()
        self._symbols: dict[str, tuple[str, int]] = {}  # coid -> (symbol, created_ns)
        stream.hold = self._hold

    def bind(self, ctx: Any) -> None:
        super().bind(ctx)
        self.stream.enabled.set()

    async def _signed(
        self, build: Any, *args: Any, resend: bool = True, **kw: Any
    ) -> dict[str, Any]:
        """Send a signed command; on an auth error, re-authenticate and (`resend`) send it once
        more (the venue refused it, so nothing was done)."""
        for attempt in range(2 if resend else 1):
            generation = self._auth_gen
            message = build(*args, signature=await self.tokens.token(), **kw)
            reply = await self.stream.request(message, self.timeout_s)
            if reply.get("event") != "ERROR" or not is_auth_error(_error_text(reply)):
                return reply
            if attempt == 0 and resend:
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

    # --- fill sizes -------------------------------------------------------------------------

    def _needs_size(self, report: ExecutionReport) -> bool:
        return report.cum_qty is None and report.status in self._SIZE_AFTER

    def _hold(self, report: ExecutionReport) -> bool:
        """From the update stream: a report that needs its size, and every later one of the
        same order, waits for the sizer (`run`)."""
        queue = self._held.get(report.client_order_id)
        if queue is not None:
            queue.append(report)
            return True
        if not self._needs_size(report):
            return False
        if report.symbol is None and report.client_order_id not in self._symbols:
            return False  # no instrument to ask about: the core's reconciliation asks instead
        self._held[report.client_order_id] = [report]
        self._held_wakeup.set()
        return True

    async def _sizer(self) -> None:
        while True:
            await self._held_wakeup.wait()
            self._held_wakeup = trio.Event()
            for coid in list(self._held):
                queue = self._held[coid]
                while queue:
                    report = queue[0]
                    try:
                        sized = await self._sized(report)
                    except Exception as exc:  # lost, refused, unreadable, no token yet
                        # asked again on the next wake-up (or answered meanwhile by a query)
                        log.warning("opentrade fill size not known yet", error=str(exc))
                        self._held_wakeup.set()
                        break
                    queue.pop(0)
                    self.stream.emit(sized)
                if not queue:
                    del self._held[coid]
            if self._held:
                await trio.sleep(0.2)  # back off before asking the venue again

    async def _sized(self, report: ExecutionReport, symbol: str | None = None) -> ExecutionReport:
        """`report` with its cumulative fill size, from TRADES_HISTORY when the item had none."""
        if not self._needs_size(report):
            return report
        coid = report.client_order_id
        known = self._symbols.get(coid)
        symbol = symbol or report.symbol or (known[0] if known else None)
        if symbol is None:
            raise FrameError(f"order {coid}: no instrument to ask TRADES_HISTORY for")
        since = known[1] if known else None
        cum, avg = await self._traded(symbol, coid, since)
        self.counts["sized"] += 1
        return attrs.evolve(
            report,
            cum_qty=cum,
            avg_price=avg,
            fill_id=f"{coid}:cum:{cum.normalize()}" if cum > 0 else None,
        )

    async def _traded(
        self, symbol: str, coid: str, since_ns: int | None
    ) -> tuple[Decimal, Decimal | None]:
        """[CODE] GET TRADE_PRIVATE `TRADES_HISTORY`: the order's fills summed [INF: one item
        per fill, `amount` its size, `filledPrice` its price]."""
        start = (since_ns or time.time_ns()) - 86_400 * 1_000_000_000
        args = [
            m.arg("category", "TRADES_HISTORY"),
            m.arg("instrument", [symbol]),
            m.arg("date-from", _date(max(0, start))),
        ]
        reply = await self._signed(m.get, m.TRADE_PRIVATE, args)
        cum = Decimal(0)
        notional = Decimal(0)
        for item in self._orders_in(reply, "TRADES_HISTORY"):
            if _coid(item) != coid:
                continue
            size = item.get("amount")
            price = item.get("filledPrice")
            if not isinstance(size, Decimal) or not size.is_finite() or size <= 0:
                raise FrameError(f"TRADES_HISTORY: unreadable amount {size!r}"[:80])
            cum += size
            if isinstance(price, Decimal) and price.is_finite() and price > 0:
                notional += price * size
        avg = notional / cum if cum > 0 and notional > 0 else None
        return cum, avg

    def _orders_in(self, reply: dict[str, Any], category: str) -> list[dict[str, Any]]:
        if reply.get("event") == "ERROR":
            raise RuntimeError(f"GET TRADE_PRIVATE {category}: {_error_text(reply)}")
        data = reply.get("data")
        if not isinstance(data, list):
            raise FrameError(f"GET TRADE_PRIVATE {category} reply without data")
        return [i for i in data if isinstance(i, dict) and i.get("class") == "Order"]

    # --- ExecutionClient ---------------------------------------------------------------------

    async def submit(self, order: Order) -> ExecutionReport | None:
        await self._ready(order.symbol)
        coid = order.client_order_id
        self._symbols[coid] = (order.symbol, order.created_ns)
        if len(self._symbols) > 10_000:
            self._symbols.pop(next(iter(self._symbols)))
        self._in_flight.add(coid)
        try:
            # never sent twice: a second CREATE could only duplicate or confuse the order
            reply = await self._signed(
                m.create,
                order,
                request_type=self.request_type,
                exchange_name=self.exchange_name,
                resend=False,
            )
        finally:
            self._in_flight.discard(coid)
            recheck = coid in self._recheck
            self._recheck.discard(coid)
        if reply.get("event") == "ERROR":
            text = _error_text(reply)
            if is_auth_error(text):
                self.stream.reauth.set()  # a new token for the next order
            raise OrderRefused(text)  # the venue refused it: nothing was done
        if recheck:
            # the private subscription was renewed while this was in flight: NEW / ACTIVE /
            # fills may have been pushed to the dead one (and the new snapshot lists only
            # active orders), so ask
            return await self.query_order(order)
        return await self._answer(reply, order)

    async def _answer(self, reply: dict[str, Any], order: Order) -> ExecutionReport | None:
        """The order as the command's answer shows it (sized), if the answer is an `Order`."""
        for item in reply.get("data") or []:
            named = isinstance(item, dict) and item.get("class") == "Order"
            if named and _coid(item) == order.client_order_id:
                report = attrs.evolve(order_report(item), symbol=order.symbol)
                return await self._sized(report)
        return None

    async def cancel(self, order: Order) -> ExecutionReport | None:
        if not order.client_order_id:
            raise OrderRefused("no clientOrderId: a CANCEL without one would cancel every order")
        self._symbols.setdefault(order.client_order_id, (order.symbol, order.created_ns))
        reply = await self._signed(m.cancel, order.symbol, order.client_order_id)
        if reply.get("event") == "ERROR":
            text = _error_text(reply)
            if "not found" in text.lower() or "not active" in text.lower():
                raise OrderNotFound(text)
            raise OrderRefused(text)
        # [CODE] the acknowledgement (an `OrderUpdate` CANCELLED, naming the order or not, or
        # the order itself CANCELLED) ends the order; its fills are summed before it is booked
        report = await self._answer(reply, order)
        if report is not None and report.status is OrderStatus.CANCELLED:
            return report
        cancelled = ExecutionReport(
            VENUE, order.client_order_id, status=OrderStatus.CANCELLED, symbol=order.symbol
        )
        return await self._sized(cancelled)

    async def modify(
        self, order: Order, price: Decimal | None, quantity: Decimal | None
    ) -> ExecutionReport | None:
        # [INF] MODIFY carries the amount always (the order's current one if unchanged)
        amount = quantity if quantity is not None else order.quantity
        reply = await self._signed(m.modify, order.symbol, order.client_order_id, price, amount)
        if reply.get("event") == "ERROR":
            raise OrderRefused(_error_text(reply))
        # the amended order (price/amount -> OrderModified), from the answer or an update
        return await self._answer(reply, order)

    async def cancel_all(self, symbol: str | None = None) -> None:
        """Explicit cancel-all: the only place a CANCEL without an order id is sent."""
        for sym in [symbol] if symbol else self.stream.markets:
            self.counts["cancel_all"] += 1
            log.warning("opentrade cancel of every order of the pair", venue=VENUE, symbol=sym)
            reply = await self._signed(m.cancel_all_orders, sym)
            if reply.get("event") == "ERROR":
                raise OrderRefused(_error_text(reply))

    async def query_order(self, order: Order) -> ExecutionReport | None:
        self._symbols.setdefault(order.client_order_id, (order.symbol, order.created_ns))
        item = await self._find(order, "ACTIVE_ORDERS")
        if item is None:
            item = await self._find(order, "ORDERS_HISTORY")
        if item is None:
            return None
        report = attrs.evolve(order_report(item), symbol=order.symbol)
        if report.status is None:  # NEW: the venue has it, it is not working yet
            report = attrs.evolve(report, status=OrderStatus.SUBMITTED)
        return await self._sized(report)

    async def list_open_orders(self) -> list[ExecutionReport]:
        """[CODE] `GET TRADE_PRIVATE` `category=ACTIVE_ORDERS` for every subscribed market."""
        if not self.stream.markets:
            return []
        args = [m.arg("category", "ACTIVE_ORDERS"), m.arg("instrument", list(self.stream.markets))]
        reply = await self._signed(m.get, m.TRADE_PRIVATE, args)
        listed = []
        for item in self._orders_in(reply, "ACTIVE_ORDERS"):
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
        found = None
        for item in self._orders_in(reply, category):
            if _coid(item) == order.client_order_id:
                found = item  # [INF] the last entry is the current state
        return found

    # --- tokens ---------------------------------------------------------------------------------

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._sizer)
            await self._tokens_loop()

    async def _tokens_loop(self) -> None:
        """Refresh the JWT before it expires (armed from the first token on), and after an auth
        error; resubscribe each time."""
        while True:
            wait = self.tokens.seconds_to_refresh()
            if wait is None:
                # no token yet (the stream fetches it when it connects): the first one arms
                # the proactive refresh
                await _first_of(float("inf"), self.stream.reauth, self.tokens.fetched)
                if not self.stream.reauth.is_set():
                    continue
            else:
                await _first_of(wait, self.stream.reauth)
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
