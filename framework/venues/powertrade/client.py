"""Power.Trade session: everything over one WebSocket.

`PowerTradeStream` is the connection: login (a fresh ES256 JWT on every connect), subscriptions,
RFQ registration, answers to the server's heartbeats, and requests over the core's
`RequestChannel`; with it the outgoing frame helpers (`frame`, `check_strings`, `now_us`). The
execution client (`execution.PowerTradeExecution`) sends orders through the stream's current
connection; the instrument rules come from `entities`.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson
import structlog
import trio

from framework.errors import AuthError, ConnectionLost, NotConnected
from framework.transport.requests import RequestChannel
from framework.transport.session import Connection
from framework.venue import Stream
from framework.venues.powertrade.decode import Decoder
from framework.venues.powertrade.decode_frames import ALREADY_SUBSCRIBED, VENUE

log = structlog.get_logger("botrun.powertrade")

__all__ = ["ConnectionLost", "NotConnected"]  # the transport's, named here as before

# keys a reply may name an order request by, besides its `user_tag` (see `PowerTradeStream`)
LIFECYCLE = "client_order_id"  # any lifecycle message of the order answers its new_order
CANCELLED = "cancel_order"  # only a `cancel_order` naming the order answers its cancel


def now_us() -> str:
    return str(time.time_ns() // 1000)


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
    # [INF] the largest frames are L3 snapshots (every resting order of one instrument) and
    # account lists; the instrument list, which can exceed 1 MiB with every option listed, is
    # a start-up fetch with its own limit (entities.ENTITIES_MAX_BYTES). Above this a frame is
    # refused unread and the connection started over (the contract's default is 64 MiB)
    max_message_size = 8 * 1024 * 1024

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
