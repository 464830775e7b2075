"""Open Trade private stream: BALANCE, TRADE_PRIVATE, and the connection order commands go out on.

A second connection to the same WS endpoint as the public stream: JWT on the handshake and as
`signature`; BALANCE, TRADE_PRIVATE, and the order commands CREATE / CANCEL / MODIFY / GET.
Requests go over the core's `RequestChannel`, one at a time, each behind a PING/PONG barrier
(`PrivateStream.request`). A reply is the first message that names the request: its echoed
`requestId` where the venue echoes one, else ([DOC] no published reply carries one) an
`ACK`/`ERROR`/`GET` for the same command and channel, oldest request first, or the order's own
`Order` / `OrderUpdate` item (`reply_keys`). The stream subscribes TRADE_PRIVATE for every
configured market before any order is sent (the venue rejects orders for unsubscribed instruments).

An auth error seen here raises `reauth`; the execution client (`execution.OpenTradeExecution`)
then fetches a new token and subscribes the private channels again.
"""

from __future__ import annotations

import contextlib
from typing import Any

import structlog
import trio

from framework.errors import FrameError, NotConnected, RequestTimeout
from framework.events import ExecutionReport
from framework.transport.requests import Key, RequestChannel
from framework.transport.session import Connection
from framework.venue import Stream
from framework.venues.opentrade import messages as m
from framework.venues.opentrade.auth import TokenSource, is_auth_error
from framework.venues.opentrade.decode import VENUE, Decoder, error_text

log = structlog.get_logger("botrun.opentrade")


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
        # the PONG count at which every PING sent on this connection is answered: PONGs come in
        # the PINGs' order, so a barrier waits for its own (a heartbeat's PONG still on its way
        # would otherwise open it early, before a late answer it is there to fence off)
        self._pongs_owed = 0
        # orders whose CANCEL the `OrderUpdate` answered: the venue may still send the order
        # itself in the CANCEL answer's GET form. A PONG can overtake a frame the venue holds
        # back, so that trailing answer may arrive after a later command's barrier: it must not
        # be taken for a GET's answer (an order listing's `amount` is no fill size)
        self._trailing: dict[str, None] = {}
        # an execution report the execution client holds until its fill size is known (the
        # published `Order` items carry none): `hold(report)` is True when it took it
        self.hold: Any = None
        self.counts: dict[str, int] = {"stale_replies": 0, "barriers": 0, "fenced": 0}
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
        self._pongs_owed = self.decoder.pongs
        self._trailing.clear()
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
        if conn is self.conn:
            self._pongs_owed += 1
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
            try:
                reply = await self.requests.request(
                    message,
                    request_id=rid,
                    keys=reply_keys(message),
                    timeout_s=timeout_s,
                    what=f"{message.get('command')} {message.get('channel')}",
                )
            except (RequestTimeout, trio.Cancelled):
                # unanswered: in time, or before the caller's own deadline (the order manager's
                # covers the barrier as well, so it may well come first)
                with trio.CancelScope(shield=True):
                    await self._fence(conn, message)
                raise

            if message.get("command") == "CANCEL" and _is_order_update(reply):
                coid = _coid(message)
                if coid is not None:
                    self._trailing[coid] = None
                    while len(self._trailing) > 1000:
                        del self._trailing[next(iter(self._trailing))]
            return reply

    async def _fence(self, conn: Connection, message: dict[str, Any]) -> None:
        """No answer in time: it may still come, after a later command's barrier (a venue that
        answers a PING before it has finished a command), and would be taken for that one's.
        Nothing on this connection can be attributed safely any more, so it is ended: no command
        goes out until the session has reconnected (and reconciliation asks about the orders)."""
        self.counts["fenced"] += 1
        log.warning(
            "opentrade command unanswered; ending the connection so a late answer cannot be "
            "taken for a later command's",
            venue=VENUE,
            command=message.get("command"),
            client_order_id=_coid(message),
        )
        if self.conn is conn:
            self.conn = None
            self.ready.clear()
        # already closed: the session reconnects either way
        with trio.move_on_after(1.0), contextlib.suppress(Exception):
            await conn.close(4000, "command unanswered")

    async def _barrier(self, conn: Connection, timeout_s: float) -> None:
        """PING, and wait for a PONG that follows it: the command has not been sent yet, so a
        failure here is `NotConnected` (it did not leave)."""
        self.counts["barriers"] += 1
        self._pongs_owed += 1
        target = self._pongs_owed
        try:
            await conn.send(m.ping())
        except Exception as exc:  # a closed socket: nothing left
            raise NotConnected(f"opentrade: PING failed: {exc!r}") from None
        with trio.move_on_after(timeout_s):
            while self.decoder.pongs < target:
                await self._pong.wait()
        if self.conn is not conn:
            raise NotConnected("opentrade: reconnected before the PONG; command not sent")
        if self.decoder.pongs < target:
            # a PING or PONG was lost: owe only what is still unanswered from now on, so one
            # loss costs this command, not every later one
            self._pongs_owed = self.decoder.pongs
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
            error = f"{msg.get('command')} {msg.get('channel')}: {error_text(msg)}"
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
            if event is None and self._trailing_answer(msg):
                self.counts["stale_replies"] += 1
                return True
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

    def _trailing_answer(self, msg: dict[str, Any]) -> bool:
        """A CANCEL's own GET-form answer after its `OrderUpdate` already answered it: every
        `Order` item names an order whose CANCEL was answered so (consumed here, once)."""
        data = msg.get("data")
        if type(data) is not list or not data:
            return False
        coids = [_coid_of(item) for item in data]
        if not all(c is not None and c in self._trailing for c in coids):
            return False
        for coid in coids:
            self._trailing.pop(coid, None)  # type: ignore[arg-type]
        return True

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


def _coid_of(item: Any) -> str | None:
    if type(item) is not dict or item.get("class") != "Order":
        return None
    coid = item.get("clientOrderId") or item.get("orderId")
    return None if coid is None else str(coid)


def _coid(message: dict[str, Any]) -> str | None:
    """The order a command names (its first item's client order id)."""
    data = message.get("data")
    return _coid_of(data[0]) if type(data) is list and data else None


def _is_order_update(reply: dict[str, Any]) -> bool:
    data = reply.get("data")
    return type(data) is list and any(
        type(i) is dict and i.get("class") == "OrderUpdate" for i in data
    )


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
