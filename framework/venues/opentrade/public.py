"""Open Trade public stream (books, public trades; no credentials) and the catalogue at start.

`PublicStream` subscribes ORDER_BOOK_PUBLIC and TRADE_PUBLIC for the configured markets on its own
connection to the WS endpoint; `fetch_catalogue` reads ASSET_LIST and INSTRUMENT_LIST once, on a
short-lived connection, before the venue is built. The private connection (balances, orders) is
`private.PrivateStream`.
"""

from __future__ import annotations

from typing import Any

import structlog

from framework.errors import FrameError
from framework.transport.fetch import fetch_ws
from framework.transport.session import Connection
from framework.venue import Stream
from framework.venues.opentrade import messages as m
from framework.venues.opentrade.decode import VENUE, CatalogueEntry, Decoder, error_text, loads

log = structlog.get_logger("botrun.opentrade")


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
            error = f"{msg.get('channel')}: {error_text(msg)}"
            self.errors.append(error)
            log.error("opentrade public request refused", venue=VENUE, error=error)
        return False


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
            raise FrameError(f"GET {channel} refused: {error_text(msg)}")
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
