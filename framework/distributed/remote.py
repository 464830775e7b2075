"""Strategies in their own process, over the bus: `RemoteRuntime` and its `BusContext`.

The `Strategy` API is unchanged: `BusContext` is a `StrategyContext` whose books are built from
the gateway's market streams by the same router and the same sync states as in one process, and
whose `buy`/`sell`/`cancel`/`modify` become commands on `cmd:{venue}`. Risk checks run in the
gateway (a refusal comes back as `OrderRejected`).

- A book syncs from the gateway's snapshot key, then follows the stream entry by entry; an id
  that is not the next one (a gap, a trimmed stream, a restarted gateway) or an entry that does
  not decode un-syncs it and it resyncs from the snapshot key. A bus outage un-syncs every book
  and is announced as `VenueStatus(DISCONNECTED, reason="bus outage ...")`.
- A command stays with the runtime until the gateway answers about its order; after an outage
  it is sent again (the gateway recognises the client order id, so it is never two orders), with
  a `sync` asking the gateway to re-publish the states of this strategy's orders.
- A heartbeat counter (`hb:{strategy}`) moves every `heartbeat_interval_s`; the gateway cancels
  the working orders of a strategy whose counter stops (the dead man's switch).

The market-data half (books synced from the bus and resynced) is `BusMarketData`, the base class
of `RemoteRuntime`, in framework.distributed.remote_md.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any

import coredis
import structlog
import trio

from framework.config import Config
from framework.data.book import OrderBook
from framework.data.bus import Bus
from framework.data.router import MarketDataRouter
from framework.distributed import codec
from framework.distributed.gateway import BUS_ERRORS
from framework.distributed.redis import (
    BusConfig,
    acct_key,
    cmd_key,
    gw_key,
    hb_key,
    md_key,
    orders_key,
)
from framework.distributed.remote_md import BusMarketData, _BusFeed, _BusStream
from framework.events import (
    Balance,
    BookInvalidated,
    BookState,
    OrderEvent,
    OrderFill,
    OrderModified,
    OrderRejected,
    OrderType,
    Position,
    Side,
    TimeInForce,
    VenueState,
    VenueStatus,
)
from framework.execution.handle import ClientOrderIds, OrderHandle
from framework.latency import LatencyStats
from framework.model import Instrument, Order
from framework.strategy import Strategy
from framework.transport.session import first_leaf

log = structlog.get_logger("botrun.remote")


class RemoteRuntime(BusMarketData):
    """Runs strategies against gateways over Redis (`botrun STRATEGY.py --bus redis://...`)."""

    def __init__(
        self,
        config: Config,
        strategies: list[Strategy],
        bus: BusConfig,
        *,
        venues: list[str] | None = None,
        heartbeat_interval_s: float = 0.5,
        reconnect_s: float = 0.2,
    ) -> None:
        self.config = config
        self.mode = config.botrun.mode
        self.strategies = strategies
        self.bus_config = bus
        self.venues = venues if venues is not None else list(config.venues)
        self.heartbeat_interval_s = heartbeat_interval_s
        self.reconnect_s = reconnect_s
        self.bus = Bus()
        self.router = MarketDataRouter(self.bus)
        self.books = self.router.books
        self.latency = LatencyStats()
        self.info: dict[str, dict[str, Any]] = {}
        self.instruments: dict[tuple[str, str], Instrument] = {}
        self.orders: dict[str, Order] = {}
        self.handles: dict[str, OrderHandle] = {}
        # commands the gateway has not answered yet: re-sent after an outage
        self.unconfirmed: dict[str, tuple[str, dict[str, Any]]] = {}
        self.cancels: dict[str, tuple[str, dict[str, Any]]] = {}
        self._outbox: list[tuple[str, dict[str, Any]]] = []
        self._outbox_wake = trio.Event()
        self.positions: dict[tuple[str, str], Decimal] = {}
        self.position_events: dict[tuple[str, str], Position] = {}
        self.balances: dict[tuple[str, str], Balance] = {}
        self.counts: Counter[str] = Counter()
        self.ids = ClientOrderIds()
        self.up = False
        self.started = trio.Event()
        self._stop = trio.Event()
        self._resync: set[tuple[str, str]] = set()
        self._md_pos: dict[tuple[str, str], str] = {}
        self._md_last: dict[tuple[str, str], tuple[int, int]] = {}
        self._md_keys: dict[bytes, tuple[str, str]] = {}
        # (venue, symbol) -> id of an entry that did not decode: resync only from a later snapshot
        # venue -> epoch of its live gateway (None: none alive); snapshots of other epochs wait
        self._gw_epoch: dict[str, int | None] = {}
        self._next_alive_check = 0.0
        self._poisoned: dict[tuple[str, str], tuple[int, int]] = {}
        self._stream_pos: dict[str, str] = {}
        self._nursery: trio.Nursery | None = None
        self._timers: list[trio.CancelScope] = []
        self._timers_stopped = False
        self.final_summary: dict[str, Any] | None = None

    # --- run -----------------------------------------------------------------------------------

    async def run(self, duration_s: float | None = None) -> None:
        duration = self.config.botrun.duration_s if duration_s is None else duration_s
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self._bus_loop)
            for strategy in self.strategies:
                strategy.attach(BusContext(self, strategy.name))
                try:
                    strategy.on_start()
                except Exception:
                    log.exception("on_start raised", strategy=strategy.name)
            self.started.set()
            log.info("running over the bus", venues=self.venues, url=self.bus_config.url)
            with trio.move_on_after(duration if duration and duration > 0 else float("inf")):
                await self._stop.wait()
            await self.shutdown()
            self.final_summary = self.summary()
            nursery.cancel_scope.cancel()

    def stop(self) -> None:
        self._stop.set()

    async def shutdown(self) -> None:
        self._timers_stopped = True
        for scope in self._timers:
            scope.cancel()
        if self.config.risk.cancel_all_on_shutdown:
            names = {s.name for s in self.strategies}
            for order in list(self.orders.values()):
                if order.is_open and order.strategy in names:
                    self.cancel(order.client_order_id)
            with trio.move_on_after(5):
                while any(o.is_open and o.strategy in names for o in self.orders.values()):
                    await trio.sleep(0.05)
        for strategy in self.strategies:
            try:
                strategy.on_stop()
            except Exception:
                log.exception("on_stop raised", strategy=strategy.name)

    def summary(self) -> dict[str, Any]:
        states: Counter[str] = Counter(o.status.value for o in self.orders.values())
        return {
            "mode": f"{self.mode} (bus)",
            "events": dict(self.router.event_counts),
            "orders": dict(states),
            "fills": self.counts["fills"],
            # the account's positions as the gateway last published them
            "positions": [
                {
                    "venue": p.venue,
                    "symbol": p.symbol,
                    "quantity": p.quantity,
                    "avg_price": p.avg_price,
                    "realized_pnl": p.realized_pnl,
                    "unrealized_pnl": p.unrealized_pnl,
                    "mark": None,
                }
                for p in self.position_events.values()
            ],
            "sessions": {},
            "handler_errors": dict(self.bus.handler_errors),
            "order_counts": dict(self.counts),
            "latency": self.latency.summary(),
        }

    # --- connection ----------------------------------------------------------------------------

    async def _bus_loop(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        started = False
        while True:
            try:
                async with self.bus_config.client() as redis:
                    await self._connected(redis)
                    if not started:
                        started = True
                        task_status.started()
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._md_loop)
                        nursery.start_soon(self._events_loop)
                        nursery.start_soon(self._send_loop, redis)
                        nursery.start_soon(self._heartbeat_loop, redis)
            except* BUS_ERRORS as group:
                # the serving tasks fail together (a nursery): any of them losing Redis
                exc = first_leaf(group)
                if self.up:
                    self._outage(str(exc)[:200])
            await trio.sleep(self.reconnect_s)

    async def _connected(self, redis: coredis.Redis[bytes]) -> None:
        # the gateways' venue info (markets, instruments): wait for each gateway to be up
        for venue in self.venues:
            while True:
                raw = await redis.get(gw_key(venue))
                if raw is not None:
                    break
                await trio.sleep(self.reconnect_s)
            if venue not in self.info:
                info = codec.loads(raw)
                self.info[venue] = info
                for data in info["instruments"]:
                    data["@"] = "Instrument"
                    inst = codec.decode(codec.orjson.dumps(data))
                    self.instruments[(inst.venue, inst.symbol)] = inst
                stream = _BusStream(venue, list(info["markets"]))
                self.router.add_stream(stream, _BusFeed(stream, self))  # type: ignore[arg-type]
                for symbol in info["markets"]:
                    self._md_keys[md_key(venue, symbol).encode()] = (venue, symbol)
        # event streams: from where we were, or from their current end on the first connect
        # (the `sync` below brings the orders' states)
        for key in self._event_keys():
            if key not in self._stream_pos:
                last = await redis.xrevrange(key, count=1)
                self._stream_pos[key] = last[0].identifier.decode() if last else "0-0"
        self._resync.update(self.books)
        self.up = True
        self.counts["connects"] += 1
        # what the gateway may not have: sync first, then unanswered submits, cancels, amends
        names = [s.name for s in self.strategies]
        modifies = [c for c in self._outbox if c[1]["op"] == "modify"]
        self._outbox = [(v, {"op": "sync", "strategy": n}) for v in self.venues for n in names]
        self._outbox += list(self.unconfirmed.values()) + list(self.cancels.values()) + modifies
        self._outbox_wake.set()

    def _event_keys(self) -> list[str]:
        return [orders_key(s.name) for s in self.strategies] + [acct_key(v) for v in self.venues]

    def _outage(self, reason: str) -> None:
        self.up = False
        self.counts["outages"] += 1
        log.warning("bus outage; books un-synced until it is back", reason=reason)
        for (venue, symbol), book in self.books.items():
            if book.state is not BookState.UNSYNCED:
                self.router.on_event(BookInvalidated(venue, symbol, f"bus outage: {reason}", 0))
        for venue in self.venues:
            self.bus.publish(
                VenueStatus(venue, VenueState.DISCONNECTED, 0, f"bus outage: {reason}", "bus")
            )

    # --- orders and account events --------------------------------------------------------------

    async def _events_loop(self) -> None:
        async with self.bus_config.client() as redis:
            while True:
                reply = await redis.xread(dict(self._stream_pos), count=1000, block=100)
                for key, entries in (reply or {}).items():
                    skey = key.decode()
                    for entry in entries:
                        self._stream_pos[skey] = entry.identifier.decode()
                        self._on_entry(entry.field_values)

    def _on_entry(self, fields: Mapping[bytes, bytes]) -> None:
        for field, raw in fields.items():
            try:
                item = codec.decode(raw)
            except codec.CodecError as exc:
                self._bad("", "", raw, exc)
                # an order whose report we cannot read: ask the gateway for the states again
                for venue in self.venues:
                    for s in self.strategies:
                        self._send(venue, {"op": "sync", "strategy": s.name})
                continue
            if field == b"s" and isinstance(item, Order):
                self._on_state(item)
            elif isinstance(item, OrderEvent):
                self._on_order_event(item)
            elif isinstance(item, Balance):
                self.balances[(item.venue, item.asset)] = item
                self.bus.publish(item)
            elif isinstance(item, Position):
                self.positions[(item.venue, item.symbol)] = item.quantity
                self.position_events[(item.venue, item.symbol)] = item
                self.bus.publish(item)
            else:
                self.bus.publish(item)

    def _on_state(self, state: Order) -> None:
        coid = state.client_order_id
        self.unconfirmed.pop(coid, None)
        order = self.orders.get(coid)
        if order is None:
            # an order from before this process (a restart): the strategy sees it again
            self.orders[coid] = order = state
            self.handles[coid] = OrderHandle(order)
        else:
            for name in (
                "status",
                "venue_order_id",
                "filled_qty",
                "avg_price",
                "fees",
                "reason",
                "price",
                "quantity",
                "updated_ns",
            ):
                setattr(order, name, getattr(state, name))
        if not order.is_open:
            self._finished(order)

    def _on_order_event(self, event: OrderEvent) -> None:
        coid = event.client_order_id
        order = self.orders.get(coid)
        if order is None:
            return  # an order of a previous run that we have no state for yet (sync brings it)
        self.unconfirmed.pop(coid, None)
        order.status = event.status
        order.venue_order_id = event.venue_order_id or order.venue_order_id
        order.updated_ns = event.ts_ns
        if isinstance(event, OrderFill):
            if event.fill_id and event.fill_id in order.fill_ids:
                return
            order.fill_ids.add(event.fill_id)
            order.filled_qty = event.cum_qty
            order.avg_price = event.avg_price
            order.fees += event.fee
            self.counts["fills"] += 1
        elif isinstance(event, OrderModified):
            order.price = event.price if event.price is not None else order.price
            order.quantity = event.quantity or order.quantity
        elif isinstance(event, OrderRejected):
            order.reason = event.reason
        self.bus.publish(event)
        if not order.is_open:
            self._finished(order)

    def _finished(self, order: Order) -> None:
        self.cancels.pop(order.client_order_id, None)
        handle = self.handles.get(order.client_order_id)
        if handle is not None:
            handle._finish()

    # --- commands ------------------------------------------------------------------------------

    def _send(self, venue: str, cmd: dict[str, Any]) -> None:
        self._outbox.append((venue, cmd))
        self._outbox_wake.set()

    async def _send_loop(self, redis: coredis.Redis[bytes]) -> None:
        while True:
            await self._outbox_wake.wait()
            self._outbox_wake = trio.Event()
            while self._outbox:
                venue, cmd = self._outbox[0]
                await redis.xadd(cmd_key(venue), {b"c": codec.dumps(cmd)})
                # only once Redis has it (an outage rebuilds the outbox from what is unanswered)
                if self._outbox and self._outbox[0][1] is cmd:
                    self._outbox.pop(0)
                self.counts["commands_sent"] += 1

    async def _heartbeat_loop(self, redis: coredis.Redis[bytes]) -> None:
        beat = 0
        while True:
            beat += 1
            for strategy in self.strategies:
                await redis.set(hb_key(strategy.name), str(beat).encode())
            await trio.sleep(self.heartbeat_interval_s)

    def submit(self, owner: str, **kw: Any) -> OrderHandle:
        venue = kw["venue"]
        info = self.info.get(venue, {})
        now = time.time_ns()
        order = Order(
            client_order_id=self.ids.next(int(info.get("client_order_id_max_len", 32))),
            venue=venue,
            symbol=kw["symbol"],
            side=Side(kw["side"]),
            type=OrderType(kw["type"]),
            quantity=kw["quantity"],
            price=kw["price"],
            tif=TimeInForce(kw["tif"]),
            post_only=kw["post_only"],
            expire_at_ns=kw["expire_at_ns"],
            stop_price=kw["stop_price"],
            strategy=owner,
            created_ns=now,
            updated_ns=now,
        )
        coid = order.client_order_id
        self.orders[coid] = order
        handle = self.handles[coid] = OrderHandle(order)
        cmd = {
            "op": "submit",
            "coid": coid,
            "strategy": owner,
            "venue": venue,
            "symbol": order.symbol,
            "side": order.side.value,
            "type": order.type.value,
            "quantity": order.quantity,
            "price": order.price,
            "tif": order.tif.value,
            "post_only": order.post_only,
            "expire_at_ns": order.expire_at_ns,
            "stop_price": order.stop_price,
            "sent_ns": time.monotonic_ns(),
        }
        self.unconfirmed[coid] = (venue, cmd)
        self._send(venue, cmd)
        self.counts["submitted"] += 1
        return handle

    def cancel(self, coid: str) -> bool:
        order = self.orders.get(coid)
        if order is None or not order.is_open or coid in self.cancels:
            return False
        cmd = {"op": "cancel", "coid": coid}
        self.cancels[coid] = (order.venue, cmd)
        self._send(order.venue, cmd)
        return True

    def modify(self, coid: str, price: Decimal | None, quantity: Decimal | None) -> bool:
        order = self.orders.get(coid)
        if order is None or not order.is_open:
            return False
        self._send(
            order.venue, {"op": "modify", "coid": coid, "price": price, "quantity": quantity}
        )
        return True

    # --- timers and tasks ----------------------------------------------------------------------

    def add_timer(self, owner: str, seconds: float, callback: Callable[[], None]) -> None:
        async def tick() -> None:
            scope = trio.CancelScope()
            if self._timers_stopped:
                scope.cancel()
            self._timers.append(scope)
            with scope:
                while True:
                    await trio.sleep(seconds)
                    try:
                        callback()
                    except Exception:
                        log.exception("timer raised; isolated", strategy=owner)

        assert self._nursery is not None
        self._nursery.start_soon(tick)

    def spawn(self, owner: str, fn: Callable[[], Awaitable[Any]]) -> None:
        async def guarded() -> None:
            try:
                await fn()
            except Exception:
                log.exception("strategy task raised; isolated", strategy=owner)

        assert self._nursery is not None
        self._nursery.start_soon(guarded)


class BusContext:
    """One strategy's `StrategyContext` over a `RemoteRuntime`."""

    def __init__(self, runtime: RemoteRuntime, owner: str) -> None:
        self._rt = runtime
        self._owner = owner
        self.books: Mapping[tuple[str, str], OrderBook] = runtime.books

    def submit(
        self,
        *,
        venue: str,
        symbol: str,
        side: Side,
        quantity: Decimal,
        price: Decimal | None,
        type: OrderType,
        tif: TimeInForce,
        post_only: bool,
        expire_at_ns: int | None,
        stop_price: Decimal | None,
    ) -> OrderHandle:
        return self._rt.submit(
            self._owner,
            venue=venue,
            symbol=symbol,
            side=side,
            quantity=quantity,
            price=price,
            type=type,
            tif=tif,
            post_only=post_only,
            expire_at_ns=expire_at_ns,
            stop_price=stop_price,
        )

    def cancel(self, client_order_id: str) -> bool:
        return self._rt.cancel(client_order_id)

    def cancel_all(self, venue: str | None, symbol: str | None) -> int:
        return sum(self._rt.cancel(o.client_order_id) for o in self.open_orders(venue, symbol))

    def modify(
        self, client_order_id: str, *, price: Decimal | None, quantity: Decimal | None
    ) -> bool:
        return self._rt.modify(client_order_id, price, quantity)

    def order(self, client_order_id: str) -> Order | None:
        return self._rt.orders.get(client_order_id)

    def open_orders(self, venue: str | None, symbol: str | None) -> list[Order]:
        return [
            o
            for o in self._rt.orders.values()
            if o.is_open
            and o.strategy == self._owner
            and (venue is None or o.venue == venue)
            and (symbol is None or o.symbol == symbol)
        ]

    def position(self, venue: str, symbol: str) -> Decimal:
        return self._rt.positions.get((venue, symbol), Decimal(0))

    def balance(self, venue: str, asset: str) -> Balance | None:
        return self._rt.balances.get((venue, asset))

    def instrument(self, venue: str, symbol: str) -> Instrument | None:
        return self._rt.instruments.get((venue, symbol))

    def venue_client(self, venue: str) -> Any:
        raise NotImplementedError(
            "venue-specific actions run in the gateway process, not over the bus"
        )

    def markets(self) -> dict[str, list[str]]:
        return {v: list(self._rt.info[v]["markets"]) for v in self._rt.venues}

    def subscribe(
        self,
        event_type: type,
        handler: Callable[[Any], None],
        *,
        venue: str | None = None,
        symbol: str | None = None,
    ) -> None:
        self._rt.bus.subscribe(event_type, handler, venue=venue, symbol=symbol, owner=self._owner)

    def every(self, seconds: float, callback: Callable[[], None]) -> None:
        self._rt.add_timer(self._owner, seconds, callback)

    def spawn(self, fn: Callable[[], Awaitable[Any]]) -> None:
        self._rt.spawn(self._owner, fn)

    def stop(self) -> None:
        self._rt.stop()

    def bind_log(self, logger: Any) -> Any:
        return logger.bind(mode=self._rt.mode, bus=True)
