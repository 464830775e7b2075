"""The venue gateway: one process owns a venue account and serves strategies over Redis.

It runs beside an `Engine` (no strategies of its own) that owns the venue's sessions, books,
order manager, SQLite journal (the single writer, as in one process) and risk. The gateway

- publishes every normalized market event per venue/symbol to `md:{venue}:{symbol}` with ids
  `{epoch ms}-{seq}` (a consumer detects a gap or a restarted gateway from the id), and after
  each flush writes the book as a snapshot (with the id it includes) to `book:{venue}:{symbol}`
  so a joining or resyncing consumer starts from it;
- publishes order events to `orders:{strategy}` and account events to `acct:{venue}`;
- consumes `cmd:{venue}` in a consumer group (at-least-once: pending entries are re-read after
  a restart and acknowledged once handled), idempotent by client order id: a submit whose id the
  order manager or the journal already knows is not sent again, its state is re-published;
- runs the dead man's switch: a strategy with working orders whose heartbeat counter has not
  moved for `heartbeat_timeout_s` of bus uptime has its working orders cancelled.

Redis carries events and commands, never the only copy of an order's intent: the journal is
written before any order leaves, exactly as in one process.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import coredis
import structlog
import trio

from framework.data.book import OrderBook
from framework.distributed import codec
from framework.distributed.redis import (
    GROUP,
    MD_MAXLEN,
    ORDERS_MAXLEN,
    BusConfig,
    acct_key,
    alive_key,
    book_key,
    cmd_key,
    gw_key,
    hb_key,
    md_key,
    orders_key,
)
from framework.engine import Engine
from framework.errors import ConfigError
from framework.events import (
    Balance,
    BookDelta,
    BookSnapshot,
    BookStatus,
    OrderEvent,
    OrderType,
    Position,
    PublicTrade,
    Side,
    Ticker,
    TimeInForce,
    TopOfBook,
    VenueStatus,
)
from framework.model import Order
from framework.transport.session import first_leaf

log = structlog.get_logger("botrun.gateway")

_MARKET = (BookSnapshot, BookDelta, TopOfBook, Ticker, PublicTrade, BookStatus)
# what breaks the bus connection (a Redis restart, a network cut): retried, never fatal
BUS_ERRORS = (
    coredis.exceptions.ConnectionError,
    coredis.exceptions.BusyLoadingError,
    TimeoutError,
    OSError,
)
ORDER_BUFFER_MAX = 100_000


class Gateway:
    def __init__(
        self,
        engine: Engine,
        venue: str,
        bus: BusConfig,
        *,
        heartbeat_timeout_s: float = 5.0,
        reconnect_s: float = 0.2,
        alive_ttl_s: float = 1.5,
    ) -> None:
        self.engine = engine
        self.venue = venue
        self.bus = bus
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.reconnect_s = reconnect_s
        # a killed gateway's `alive` key expires after this: consumers then un-sync its books
        self.alive_ttl_s = alive_ttl_s
        self.log = log.bind(venue=venue)
        # a new epoch per gateway start: consumers see it in the ids and resync
        self.epoch_ms = time.time_ns() // 1_000_000
        self._seq: dict[str, int] = {}
        self._md: list[tuple[str, str, bytes]] = []  # (key, id, entry) to flush
        self._touched: set[tuple[str, str]] = set()
        self._orders: list[tuple[str, bytes, bytes]] = []  # (key, field, entry): kept over outages
        self._wake = trio.Event()
        self.up = False
        self.counts: dict[str, int] = {
            "md_published": 0,
            "md_dropped": 0,
            "commands": 0,
            "duplicates": 0,
            "bad_commands": 0,
            "deadman_cancels": 0,
            "reconnects": 0,
        }
        self._hb_seen: dict[str, tuple[bytes | None, float]] = {}
        self._deadman_fired: set[str] = set()
        bus_ = engine.bus
        for cls in _MARKET:
            bus_.subscribe(cls, self._on_market, venue=venue, owner="gateway")
        bus_.subscribe(OrderEvent, self._on_order_event, venue=venue, owner="gateway")
        for cls in (VenueStatus, Balance, Position):
            bus_.subscribe(cls, self._on_account, venue=venue, owner="gateway")

    # --- engine side (synchronous, in the receiving task) -------------------------------------

    def _on_market(self, event: Any) -> None:
        if not self.up:
            # nobody can read it now; consumers see the seq gap and resync from the snapshot
            self.counts["md_dropped"] += 1
            self._next_id(event.symbol)
            return
        key = md_key(event.venue, event.symbol)
        self._md.append((key, self._next_id(event.symbol), codec.encode(event)))
        self._touched.add((event.venue, event.symbol))
        self._wake.set()

    def _next_id(self, symbol: str) -> str:
        seq = self._seq.get(symbol, 0) + 1
        self._seq[symbol] = seq
        return f"{self.epoch_ms}-{seq}"

    def _on_order_event(self, event: OrderEvent) -> None:
        order = self.engine.orders.orders.get(event.client_order_id)
        strategy = order.strategy if order is not None else ""
        self._queue_order(strategy, b"e", codec.encode(event))

    def _queue_order(self, strategy: str, field: bytes, entry: bytes) -> None:
        if len(self._orders) >= ORDER_BUFFER_MAX:
            # strategies re-sync their orders' states after an outage; an event is not the only copy
            self._orders.pop(0)
        self._orders.append((orders_key(strategy), field, entry))
        self._wake.set()

    def _on_account(self, event: Any) -> None:
        self._orders.append((acct_key(self.venue), b"e", codec.encode(event)))
        self._wake.set()

    def publish_states(self, strategy: str | None = None) -> int:
        """Re-publish the state of every order the gateway knows (of one strategy, or all)."""
        n = 0
        for order in list(self.engine.orders.orders.values()):
            if strategy is None or order.strategy == strategy:
                self._queue_order(order.strategy, b"s", codec.encode(order))
                n += 1
        return n

    # --- bus side ------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, serve, and reconnect after any bus outage, until cancelled."""
        status: list[Any] = [task_status]  # started() once, on the first connection
        while True:
            try:
                async with self.bus.client() as redis:
                    await self._serve(redis, status)
            except* BUS_ERRORS as group:
                # the serving tasks fail together (a nursery): any of them losing Redis
                exc = first_leaf(group)
                if self.up:
                    self.log.warning("bus lost; reconnecting", error=str(exc)[:200])
                self.up = False
                self._md.clear()
                self._touched.clear()
            await trio.sleep(self.reconnect_s)

    async def _serve(self, redis: coredis.Redis[bytes], status: list[Any]) -> None:
        if status:
            await self._first_connect(redis)
        await self._ensure_group(redis)
        await redis.set(gw_key(self.venue), self._info())
        await self._alive(redis)
        self.up = True
        self.counts["reconnects"] += 1
        now = trio.current_time()
        # bus uptime starts now: heartbeats missed during an outage are not a death
        self._hb_seen = {k: (v, now) for k, (v, _) in self._hb_seen.items()}
        # every strategy sees its orders (after a gateway restart, from the reconciled journal)
        self.publish_states()
        # every book is written once, so a consumer can sync before the next change
        self._touched.update(self.engine.books)
        self.log.info("bus up", url=self.bus.url, epoch=self.epoch_ms)
        if status:
            status.pop().started()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._flush_loop, redis)
            nursery.start_soon(self._command_loop)
            nursery.start_soon(self._deadman_loop, redis)
            nursery.start_soon(self._alive_loop, redis)

    async def _alive(self, redis: coredis.Redis[bytes]) -> None:
        ttl_ms = max(1, int(self.alive_ttl_s * 1000))
        await redis.set(alive_key(self.venue), str(self.epoch_ms).encode(), px=ttl_ms)

    async def _alive_loop(self, redis: coredis.Redis[bytes]) -> None:
        while True:
            await trio.sleep(self.alive_ttl_s / 3)
            await self._alive(redis)

    async def _first_connect(self, redis: coredis.Redis[bytes]) -> None:
        """One gateway per venue account (the journal's single writer): wait out a killed
        predecessor's `alive` key, refuse to run beside a live one. Then an epoch above every
        id already in the market streams (a clock stepped back must not make XADD refuse)."""
        with trio.move_on_after(2 * self.alive_ttl_s + 0.5):
            while await redis.exists([alive_key(self.venue)]):
                await trio.sleep(self.alive_ttl_s / 5)
        other = await redis.get(alive_key(self.venue))
        if other is not None:
            raise ConfigError(
                f"bus: another gateway (epoch {other.decode(errors='replace')}) is serving venue"
                f" {self.venue}; one gateway per venue account"
            )
        for symbol in self.engine.config.venues[self.venue].markets:
            last = await redis.xrevrange(md_key(self.venue, symbol), count=1)
            if last:
                epoch = int(last[0].identifier.split(b"-")[0])
                self.epoch_ms = max(self.epoch_ms, epoch + 1)

    async def _ensure_group(self, redis: coredis.Redis[bytes]) -> None:
        # from 0: commands written before the group existed (a restarted Redis) are read
        with contextlib.suppress(coredis.exceptions.StreamDuplicateConsumerGroupError):
            await redis.xgroup_create(cmd_key(self.venue), GROUP, identifier="0", mkstream=True)

    def _info(self) -> bytes:
        orders = self.engine.orders
        client = orders.clients.get(self.venue)
        vcfg = self.engine.config.venues[self.venue]
        return codec.dumps(
            {
                "venue": self.venue,
                "markets": list(vcfg.markets),
                "epoch": self.epoch_ms,
                "client_order_id_max_len": client.client_order_id_max_len if client else 32,
                "instruments": [
                    codec.orjson.loads(codec.encode(i))
                    for (v, _), i in orders.instruments.items()
                    if v == self.venue
                ],
            }
        )

    async def _flush_loop(self, redis: coredis.Redis[bytes]) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            await self.flush(redis)

    async def flush(self, redis: coredis.Redis[bytes]) -> None:
        md, self._md = self._md, []
        touched, self._touched = self._touched, set()
        orders = self._orders[:]
        if not (md or touched or orders):
            return
        # the books now include exactly the events in `md` (taken in the same step)
        snaps = [(v, s, self._snapshot(v, s)) for v, s in touched]
        # one MULTI/EXEC: a reader never sees an entry newer than the snapshot key (else a
        # consumer resyncing after a bad entry would read a snapshot from before it, and loop)
        async with redis.pipeline(transaction=True) as pipe:
            for key, ident, entry in md:
                pipe.xadd(
                    key,
                    {b"e": entry},
                    identifier=ident,
                    trim_strategy=coredis.PureToken.MAXLEN,
                    threshold=MD_MAXLEN,
                    trim_operator=coredis.PureToken.APPROXIMATELY,
                )
            for venue, symbol, snap in snaps:
                pipe.set(book_key(venue, symbol), snap)
            for key, field, entry in orders:
                pipe.xadd(
                    key,
                    {field: entry},
                    trim_strategy=coredis.PureToken.MAXLEN,
                    threshold=ORDERS_MAXLEN,
                    trim_operator=coredis.PureToken.APPROXIMATELY,
                )
        # order events leave the buffer only once Redis has them
        del self._orders[: len(orders)]
        self.counts["md_published"] += len(md)

    def _snapshot(self, venue: str, symbol: str) -> bytes:
        book: OrderBook | None = self.engine.books.get((venue, symbol))
        seq = self._seq.get(symbol, 0)
        ident = f"{self.epoch_ms}-{seq}"
        if book is None or not book.is_synced:
            return codec.dumps({"id": ident, "snap": None})
        bids, asks = book.levels_unchecked()
        snap = BookSnapshot(
            venue,
            symbol,
            tuple(bids),
            tuple(asks),
            None,
            time.monotonic_ns(),
            0,
        )
        return codec.dumps({"id": ident, "snap": codec.encode(snap).decode()})

    # --- commands ------------------------------------------------------------------------------

    async def _command_loop(self) -> None:
        # its own connection: XREADGROUP blocks it
        async with self.bus.client() as redis:
            key = cmd_key(self.venue)
            consumer = f"gw-{self.venue}"
            # first what was delivered to us before and never acknowledged (a killed gateway)
            position = "0"
            while True:
                try:
                    reply = await redis.xreadgroup(
                        GROUP,
                        consumer,
                        {key: position},
                        count=100,
                        block=None if position == "0" else 200,
                    )
                except coredis.exceptions.ResponseError as exc:
                    if "NOGROUP" not in str(exc):
                        raise
                    # Redis came back empty between our connections: the group again, from 0
                    await self._ensure_group(redis)
                    continue
                entries = (reply or {}).get(key.encode(), ())
                if position == "0" and not entries:
                    position = ">"
                    continue
                for entry in entries:
                    self.handle_command(entry.field_values.get(b"c", b""))
                    await redis.xack(key, GROUP, [entry.identifier])
                self._wake.set()

    def handle_command(self, raw: bytes) -> None:
        self.counts["commands"] += 1
        try:
            cmd = codec.loads(raw)
            op = cmd["op"]
            if op == "submit":
                self._submit(cmd)
            elif op == "cancel":
                self._cancel(cmd)
            elif op == "modify":
                self.engine.orders.modify(
                    str(cmd["coid"]),
                    price=codec.opt_decimal(cmd.get("price")),
                    quantity=codec.opt_decimal(cmd.get("quantity")),
                )
            elif op == "sync":
                strategy = str(cmd["strategy"])
                self._heard(strategy)
                self.publish_states(strategy)
            else:
                raise codec.CodecError(f"unknown op {op!r}")
        except (codec.CodecError, KeyError, ValueError, TypeError) as exc:
            self.counts["bad_commands"] += 1
            self.log.warning("bad command; dropped", error=str(exc)[:200], excerpt=raw[:200])

    def _known(self, coid: str) -> Order | None:
        orders = self.engine.orders
        return orders.orders.get(coid) or orders.journal.load(coid)

    def _submit(self, cmd: dict[str, Any]) -> None:
        coid = str(cmd["coid"])
        strategy = str(cmd["strategy"])
        self._heard(strategy)
        known = self._known(coid)
        if known is not None:
            # delivered twice (at-least-once, or re-sent after an outage): one order
            self.counts["duplicates"] += 1
            self._queue_order(known.strategy or strategy, b"s", codec.encode(known))
            return
        if cmd.get("venue") != self.venue:
            raise codec.CodecError(f"command for venue {cmd.get('venue')!r}")
        expire = cmd.get("expire_at_ns")
        self.engine.orders.submit(
            venue=self.venue,
            symbol=str(cmd["symbol"]),
            side=Side(cmd["side"]),
            quantity=codec.req_decimal(cmd["quantity"], positive=True),
            price=codec.opt_decimal(cmd.get("price")),
            type=OrderType(cmd["type"]),
            tif=TimeInForce(cmd["tif"]),
            post_only=bool(cmd.get("post_only", False)),
            expire_at_ns=int(expire) if expire is not None else None,
            stop_price=codec.opt_decimal(cmd.get("stop_price")),
            strategy=strategy,
            client_order_id=coid,
        )

    def _cancel(self, cmd: dict[str, Any]) -> None:
        coid = str(cmd["coid"])
        order = self._known(coid)
        if order is not None and not order.is_open:
            # already final: tell the sender so its mirror settles
            self._queue_order(order.strategy, b"s", codec.encode(order))
            return
        self.engine.orders.cancel(coid)

    # --- dead man's switch ---------------------------------------------------------------------

    def _heard(self, strategy: str) -> None:
        """A command from `strategy`: it is alive, whatever its heartbeat key says."""
        prev = self._hb_seen.get(strategy)
        self._hb_seen[strategy] = (prev[0] if prev else None, trio.current_time())
        self._deadman_fired.discard(strategy)

    async def _deadman_loop(self, redis: coredis.Redis[bytes]) -> None:
        interval = max(0.05, self.heartbeat_timeout_s / 10)
        while True:
            await trio.sleep(interval)
            working: dict[str, list[Order]] = {}
            for order in self.engine.orders.open_orders(self.venue):
                working.setdefault(order.strategy, []).append(order)
            now = trio.current_time()
            for strategy, orders in working.items():
                value = await redis.get(hb_key(strategy))
                prev = self._hb_seen.get(strategy)
                if prev is None or prev[0] != value:
                    self._hb_seen[strategy] = (value, now)
                    self._deadman_fired.discard(strategy)
                    continue
                if now - prev[1] < self.heartbeat_timeout_s or strategy in self._deadman_fired:
                    continue
                self._deadman_fired.add(strategy)
                self.log.warning(
                    "strategy heartbeat lost; cancelling its working orders",
                    strategy=strategy,
                    orders=len(orders),
                    timeout_s=self.heartbeat_timeout_s,
                )
                for order in orders:
                    if self.engine.orders.cancel(order.client_order_id):
                        self.counts["deadman_cancels"] += 1
