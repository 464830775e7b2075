"""A remote strategy process's books, fed from the bus: the market-data half of `RemoteRuntime`.

`BusMarketData` is the part of framework.distributed.remote.RemoteRuntime (its base class) that
follows the gateways' market streams: it syncs each book from the gateway's snapshot key, follows
the stream entry by entry, un-syncs and resyncs a book on a gap, a trimmed stream, an undecodable
entry or a restarted gateway, and watches each gateway's alive key. `_BusStream` and `_BusFeed`
stand in for a venue stream and its feed in the market-data router.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import coredis
import structlog
import trio

from framework.data.book import OrderBook
from framework.data.bus import Bus
from framework.data.router import MarketDataRouter
from framework.distributed import codec
from framework.distributed.redis import (
    BusConfig,
    alive_key,
    book_key,
    md_key,
)
from framework.events import (
    BookInvalidated,
    BookState,
    BookStatus,
    VenueState,
    VenueStatus,
)
from framework.latency import LatencyStats

log = structlog.get_logger("botrun.remote")


class _BusStream:
    """Stands in for a venue stream in the router: one venue's books, fed from the bus."""

    name = "bus"

    def __init__(self, venue: str, symbols: list[str]) -> None:
        self.venue = venue
        self._symbols = symbols
        self.epoch = 0
        self.emit: Callable[[Any], None] = lambda event: None

    def books(self) -> list[str]:
        return list(self._symbols)


class _BusFeed:
    """The router's `Feed` for a bus stream: a resync request reads the snapshot key again."""

    def __init__(self, stream: _BusStream, runtime: BusMarketData) -> None:
        self.stream = stream
        self.venue = stream.venue
        self.counts: Counter[str] = Counter()
        self.frames_received = 0
        self._runtime = runtime

    def request_resync(self, symbol: str) -> None:
        self._runtime._resync.add((self.venue, symbol))


class BusMarketData:
    """The market-data loop of a `RemoteRuntime`: books synced from the bus, resynced on a gap.

    A base class: the attributes below are set by `RemoteRuntime.__init__`.
    """

    bus: Bus
    bus_config: BusConfig
    router: MarketDataRouter
    books: dict[tuple[str, str], OrderBook]
    venues: list[str]
    latency: LatencyStats
    counts: Counter[str]
    _resync: set[tuple[str, str]]
    _md_pos: dict[tuple[str, str], str]
    _md_last: dict[tuple[str, str], tuple[int, int]]
    _md_keys: dict[bytes, tuple[str, str]]
    _gw_epoch: dict[str, int | None]
    _next_alive_check: float
    _poisoned: dict[tuple[str, str], tuple[int, int]]

    async def _md_loop(self) -> None:
        async with self.bus_config.client() as redis:
            while True:
                await self._check_gateways(redis)
                for key in list(self._resync):
                    await self._resync_book(redis, key)
                streams = {
                    md_key(v, s): self._md_pos[(v, s)]
                    for (v, s) in self.books
                    if (v, s) not in self._resync
                }
                if not streams:
                    await trio.sleep(0.05)
                    continue
                reply = await redis.xread(streams, count=1000, block=100)
                for key, entries in (reply or {}).items():
                    venue, symbol = self._md_keys[key]
                    for entry in entries:
                        self._on_md(venue, symbol, entry)

    async def _check_gateways(self, redis: coredis.Redis[bytes]) -> None:
        now = trio.current_time()
        if now < self._next_alive_check:
            return
        self._next_alive_check = now + 0.2
        for venue in self.venues:
            raw = await redis.get(alive_key(venue))
            epoch = int(raw) if raw is not None and raw.isdigit() else None
            before = self._gw_epoch.get(venue, -1)
            if epoch == before:
                continue
            self._gw_epoch[venue] = epoch
            if epoch is None:
                # killed, or cut off from Redis: what it last published is no longer the venue
                self.counts["gateway_down"] += 1
                log.warning("gateway down; its books un-synced", venue=venue)
                for (v, symbol), book in self.books.items():
                    if v == venue and book.state is not BookState.UNSYNCED:
                        self.router.on_event(BookInvalidated(v, symbol, "gateway down", 0))
                self.bus.publish(
                    VenueStatus(venue, VenueState.DISCONNECTED, 0, "gateway down", "bus")
                )
            elif before not in (-1, None):
                log.info("gateway restarted", venue=venue, epoch=epoch)

    async def _resync_book(self, redis: coredis.Redis[bytes], key: tuple[str, str]) -> None:
        venue, symbol = key
        raw = await redis.get(book_key(venue, symbol))
        if raw is None:
            return
        try:
            data = codec.loads(raw)
            ident = str(data["id"])
            epoch, seq = (int(x) for x in ident.split("-"))
            snap = None if data["snap"] is None else codec.decode(data["snap"])
        except (codec.CodecError, KeyError, ValueError) as exc:
            self._bad(venue, symbol, raw, exc)
            return
        if snap is None:
            return  # the gateway's own book is not synced: wait for it
        if epoch != self._gw_epoch.get(venue):
            return  # written by a gateway that is not the live one: wait for the live one's
        poisoned = self._poisoned.get(key)
        if poisoned is not None and (epoch, seq) < poisoned:
            return  # a snapshot from before the entry we could not read: wait for a newer one
        self._poisoned.pop(key, None)
        self._md_pos[key] = ident
        self._md_last[key] = (epoch, seq)
        self._resync.discard(key)
        self.counts["resyncs"] += 1
        self.router.on_event(snap)

    def _on_md(self, venue: str, symbol: str, entry: Any) -> None:
        key = (venue, symbol)
        if key in self._resync:
            return
        ident = entry.identifier.decode()
        self._md_pos[key] = ident
        epoch_s, _, seq_s = ident.partition("-")
        epoch, seq = int(epoch_s), int(seq_s)
        last_epoch, last_seq = self._md_last[key]
        if epoch != last_epoch or seq != last_seq + 1:
            self.counts["gaps"] += 1
            log.warning(
                "bus gap; resyncing the book",
                venue=venue,
                symbol=symbol,
                expected=f"{last_epoch}-{last_seq + 1}",
                got=ident,
            )
            self.router.on_event(BookInvalidated(venue, symbol, f"bus gap at {ident}", 0))
            return
        self._md_last[key] = (epoch, seq)
        raw = entry.field_values.get(b"e", b"")
        try:
            event = codec.decode(raw)
        except codec.CodecError as exc:
            self._bad(venue, symbol, raw, exc)
            self._poisoned[key] = (epoch, seq)
            self.router.on_event(BookInvalidated(venue, symbol, "undecodable bus entry", 0))
            return
        if type(event) is BookStatus:
            self._gateway_book_status(event)
            return
        self.router.on_event(event)
        recv_ns = getattr(event, "recv_ns", None)
        if recv_ns:
            # the gateway's receive stamp (monotonic, same host) to our handlers returning
            self.latency.hist(venue, "recv_to_handled").record(time.monotonic_ns() - recv_ns)

    def _gateway_book_status(self, status: BookStatus) -> None:
        book = self.books.get((status.venue, status.symbol))
        if book is None or status.state is BookState.SYNCED:
            return  # our own router says SYNCED when our copy is
        if status.state is BookState.STALE:
            if book.state is BookState.SYNCED:
                book.mark_stale(status.reason)
                self.bus.publish(
                    BookStatus(book.venue, book.symbol, book.state, book.unsync_reason, 0)
                )
            return
        self.router.on_event(
            BookInvalidated(status.venue, status.symbol, f"gateway: {status.reason}", 0)
        )

    def _bad(self, venue: str, symbol: str, raw: bytes, exc: Exception) -> None:
        self.counts["bad_entries"] += 1
        log.warning(
            "bad bus entry", venue=venue, symbol=symbol, error=str(exc)[:200], excerpt=raw[:200]
        )
