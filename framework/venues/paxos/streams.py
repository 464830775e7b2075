"""Paxos market-data streams: the public WS streams (`PublicStream`) and the SOR WS stream.

`PublicStream` carries one public feed (books or trades) for the configured markets with no
credentials; `SorStream` carries the aggregated (SOR) order book, authenticated with an OAuth2
token from `tokens`. No Paxos WebSocket carries orders: that is REST, in `client`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import structlog

from framework.errors import FrameError, NotConnected
from framework.transport.session import Connection
from framework.venue import Stream
from framework.venues.paxos.decode import VENUE, PublicDecoder, SorDecoder
from framework.venues.paxos.throttle import Throttled
from framework.venues.paxos.tokens import TokenSource

log = structlog.get_logger("botrun.paxos")


# frame limits (`Stream.max_message_size`): what the venue's largest frame needs, with room
BOOK_FRAME_LIMIT = 4 * 1024 * 1024
SMALL_FRAME_LIMIT = 1024 * 1024


class PublicStream(Stream):
    """One public path; subscription is by URL, the client sends nothing."""

    # [DOC] public feeds are silent when a market is idle and have no heartbeat: liveness is
    # WebSocket ping/pong alone (a missing pong reconnects). No data is never "stale": a quiet
    # valid book stays SYNCED, and a reconnect would cost a subscription (1/s/IP) for nothing
    ping_interval_s = 20.0
    stale_after_s = math.inf
    # msgspec and orjson read bytes as they read str (bench/throughput.py feeds bytes)
    text_as_bytes = True

    def __init__(self, ws_base: str, kind: str, markets: list[str]) -> None:
        # the decoder first: `emit` and `epoch` below are the decoder's own (set by the core)
        self.decoder = PublicDecoder(lambda event: None, set(markets) if markets else None)
        super().__init__()
        self.venue = VENUE
        self.kind = kind
        self.name = kind.replace("/", "-")
        self.markets = markets
        # [INF] a full-depth snapshot of a few thousand levels is a few hundred KiB; the other
        # paths carry one execution or one price per frame. A frame above the limit is refused
        # unread (and the connection started over) instead of being buffered whole
        self.max_message_size = BOOK_FRAME_LIMIT if kind == "marketdata" else SMALL_FRAME_LIMIT
        self._base = ws_base.rstrip("/")
        # every frame goes straight to the decoder's method for this path, and its events
        # straight to the core: no forwarding call per frame or per event (the hot path)
        self.decode = {  # type: ignore[method-assign]
            "marketdata": self.decoder.marketdata,
            "executiondata": self.decoder.executiondata,
            "marketdata/stablecoin": self.decoder.stablecoin,
        }[kind]

    @property  # type: ignore[override]
    def emit(self) -> Callable[[Any], None]:
        return self.decoder.emit

    @emit.setter
    def emit(self, fn: Callable[[Any], None]) -> None:
        self.decoder.emit = fn

    @property  # type: ignore[override]
    def epoch(self) -> int:
        return self.decoder.epoch

    @epoch.setter
    def epoch(self, value: int) -> None:
        self.decoder.epoch = value

    async def url(self) -> str:
        # one market: its own path; several: the all-markets path, filtered on `market`
        suffix = f"/{self.markets[0]}" if len(self.markets) == 1 else ""
        return f"{self._base}/{self.kind}{suffix}"

    def decode(self, frame: str | bytes, recv_ns: int) -> None:
        """Replaced per instance by the decoder's method for this path (see __init__)."""
        raise NotImplementedError

    def books(self) -> list[str]:
        return list(self.markets) if self.kind == "marketdata" else []


class SorStream(Stream):
    """The authenticated Smart Order Routing WS: book, top of book, executions, heartbeat."""

    name = "sor"
    # [DOC] the heartbeat is "periodic", its period undocumented, and the server keeps the
    # socket alive with ping/pong: liveness rests on ping/pong, so a quiet book never goes
    # STALE because neither data nor a heartbeat came for some seconds
    ping_interval_s = 20.0
    stale_after_s = math.inf
    # book snapshots (as the public feed's), executions and heartbeats share the socket
    max_message_size = BOOK_FRAME_LIMIT

    def __init__(
        self,
        ws_base: str,
        tokens: TokenSource,
        markets: list[str],
        *,
        book: bool,
        top_of_book: bool,
        executions: bool,
    ) -> None:
        super().__init__()
        self.venue = VENUE
        self._url = ws_base.rstrip("/") + "/"
        self._tokens = tokens
        self.markets = markets
        self._book, self._tob, self._exec = book, top_of_book, executions
        self.decoder = SorDecoder(self._emit, self._on_reply)
        self.errors: list[str] = []

    def _emit(self, event: Any) -> None:
        self.emit(event)

    async def url(self) -> str:
        return self._url

    async def handshake_headers(self) -> list[tuple[str, str]]:
        try:
            token = await self._tokens.token()
        except Throttled as exc:
            # the token request was not sent (a 429 elsewhere throttles the IP): this connection
            # attempt failed for now and is retried with backoff, it does not end the session
            raise NotConnected(str(exc)) from None
        return [("Authorization", f"Bearer {token}")]

    def _channels(self, markets: list[str]) -> list[dict[str, Any]]:
        channels: list[dict[str, Any]] = []
        for market in markets:
            if self._book:
                channels.append({"type": "market_data", "params": {"market": market}})
            if self._tob:
                channels.append({"type": "market_data.top_of_book", "params": {"market": market}})
            if self._exec:
                channels.append({"type": "execution_data", "params": {"market": market}})
        return channels

    def on_auth_rejected(self) -> None:
        self._tokens.invalidate()  # revoked or expired: the next attempt asks for a new one

    async def on_connected(self, conn: Connection) -> None:
        channels = [{"type": "heartbeat"}, *self._channels(self.markets)]
        await conn.send({"type": "subscribe", "channels": channels})

    async def resync(self, conn: Connection, symbol: str) -> bool:
        # a fresh SNAPSHOT comes with a new subscription; UPDATEs buffered meanwhile are
        # replayed by time against it (core book logic)
        channel = [{"type": "market_data", "params": {"market": symbol}}]
        await conn.send({"type": "unsubscribe", "channels": channel})
        await conn.send({"type": "subscribe", "channels": channel})
        return True

    def decode(self, frame: str | bytes, recv_ns: int) -> None:
        self.decoder.epoch = self.epoch
        self.decoder.decode(frame, recv_ns)

    def _on_reply(self, msg: dict) -> None:
        if msg.get("type") == "error":
            self.errors.append(str(msg.get("error")))
            raise FrameError(f"SOR error: {msg.get('error')}")
        channels = msg.get("channels") or []
        if type(channels) is not list or any(type(c) is not dict for c in channels):
            raise FrameError(f"{msg.get('type')} reply: channels is not a list of objects")
        for channel in channels:
            if channel.get("success") is False and channel.get("error") != "NO_EFFECT_ACTION":
                error = (
                    f"{msg.get('type')} {channel.get('type')} {channel.get('params')}: "
                    f"{channel.get('error')}"
                )
                self.errors.append(error)
                log.error("SOR channel refused", venue=VENUE, error=error)

    def books(self) -> list[str]:
        return list(self.markets) if self._book else []
