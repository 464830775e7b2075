"""Replay and backtest: recorded frames through the real decoders, books, bus and strategies.

Nothing is mocked between the file and the strategy: each recorded frame goes to the `decode` of
the venue's own `Stream` (built offline by `Venue.replay_stream`, or else by `build()` against the
venue's embedded simulator), then the same parts a live run composes (framework.core.Core): the
market-data router and its L2 books, the bus and the strategy handlers; orders go through the real
order manager, risk checks and paper broker.

Simulated time (framework/tools/replay_clock.py). trio runs with `ReplayClock`, a clock that only
moves when the replay moves it: before each frame it is set to that frame's recorded monotonic
receive time, so the paper broker's latency (`trio.sleep`), strategy timers (`every`), risk's
orders-per-second window and timeouts all follow the recorded clock, not the wall. Frames are
decoded synchronously, with no `await` per frame (the same hot path as live); the replay yields to
trio only when some task became runnable (an order was sent, an awaited event fired: the
`Wakeups` instrument says so) or a deadline (timer, paper latency) falls before the next frame's
time — then it runs those tasks, jumping the clock from deadline to deadline, in order. This is
why a trio MockClock is not used: its `jump`/`wait_all_tasks_blocked` per frame would cost more
than decoding the frame.

Determinism: same data and seed → same fills. Client order ids come from a counter (not wall time
and randomness), the order manager's wall clock is the recorded one, `random` is seeded, and
trio's scheduler runs in its deterministic mode (tasks that wake together run in an order drawn
from the seed; what trio itself does under Hypothesis).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import structlog
import trio
import trio.testing

from framework.config import Config
from framework.core import Core
from framework.engine import http_client
from framework.errors import FrameError
from framework.events import (
    BookDelta,
    BookSnapshot,
    OrderEvent,
    OrderFill,
    Position,
    PublicTrade,
    VenueStatus,
)
from framework.execution.fill_models import LatencyModel, QueueModel, latency_model, queue_model
from framework.execution.handle import ClientOrderIds
from framework.model import Instrument
from framework.strategy import Strategy
from framework.tools.record import BINARY, CONN, RECORD_HEADER, TEXT, RecordReader
from framework.tools.replay_clock import ReplayClock, Wakeups, deterministic_scheduling
from framework.tools.results import BacktestResult, FillRecord, MarketTables
from framework.venue import Stream
from framework.venues import parse_config

log = structlog.get_logger("botrun.backtest")

# the sample that ships with the repository: `botrun backtest STRATEGY` works on a fresh clone
SAMPLE = Path(__file__).parent / "samples" / "paxos-sample"

__all__ = ["SAMPLE", "BacktestResult", "FillRecord", "ReplayClock", "run_backtest"]


class _ReplayIds(ClientOrderIds):
    """Client order ids from a counter: the same run gives the same ids."""

    def __init__(self, seed: int) -> None:
        super().__init__("bt")
        self._seed = seed
        self._n = 0

    def next(self, max_len: int) -> str:
        self._n += 1
        return f"bt{self._seed:x}-{self._n:x}"[-max_len:]


@attrs.define(eq=False)
class ReplaySession:
    """What the router and the summary need of a session, for a stream fed from a file."""

    stream: Stream
    venue: str
    counts: Counter[str] = attrs.Factory(Counter)
    frames_received: int = 0
    epoch: int = 0

    def request_resync(self, symbol: str) -> None:
        # a replay cannot ask for a snapshot; what the live session did next is in the file
        self.counts["resync_requests"] += 1


class Backtest:
    """A `Core` (the parts of a live run) fed from a recording instead of sockets."""

    def __init__(
        self,
        reader: RecordReader,
        config: Config,
        strategies: list[Strategy],
        *,
        seed: int = 0,
        clock: ReplayClock,
        sample_interval_s: float = 1.0,
        progress: Callable[[dict[str, Any]], None] | None = None,
        use_simulator_streams: bool = False,
        latency: dict[str, LatencyModel] | None = None,
        queue: QueueModel | None = None,
        market_tables: MarketTables | None = None,
        max_frames: int | None = None,
    ) -> None:
        self.config = config
        self.max_frames = max_frames
        self.latency_models = latency or {}
        self.queue_model = queue
        self.market_tables = market_tables
        self.orders: list[tuple[Any, ...]] = []
        self.positions: list[tuple[Any, ...]] = []
        self.strategies = strategies
        self.clock = clock
        self._wall_offset_ns = 0
        self._offset = 0.0  # trio time = recorded monotonic seconds + offset
        self.core = core = Core(config, journal_path=":memory:", clock_ns=self._wall_ns)
        self.router = core.router
        self.portfolio = core.portfolio
        core.orders.ids = _ReplayIds(seed)
        core.orders.mono_ns = self._mono_ns
        self.reader = reader
        self.seed = seed
        self.wakeups = Wakeups()
        self.sample_interval_ns = max(1, int(sample_interval_s * 1e9))
        self.progress = progress
        self.use_simulator_streams = use_simulator_streams
        self.fills: list[FillRecord] = []
        self.samples: list[tuple[int, float, dict[str, tuple[float, float]]]] = []
        self.frames = 0
        self.bad_frames = 0
        self.unknown_conn_frames = 0
        self._streams: dict[tuple[str, str], tuple[Stream, ReplaySession]] = {}
        self.first_wall_ns = 0
        self.last_wall_ns = 0
        self.final_summary: dict[str, Any] | None = None

    # --- clocks ------------------------------------------------------------------------------

    def _mono_ns(self) -> int:
        return int(self.clock.current_time() * 1e9)

    def _wall_ns(self) -> int:
        # the recorded wall clock: recorded monotonic time plus the first frame's wall offset
        return int((self.clock.current_time() - self._offset) * 1e9) + self._wall_offset_ns

    # --- set-up ------------------------------------------------------------------------------

    async def _setup(self, nursery: trio.Nursery) -> None:
        core = self.core
        await core.start(nursery)
        meta = self.reader.meta
        for name, vmeta in meta["venues"].items():
            vcfg = self.config.venues[name]
            instruments = {
                i["symbol"]: Instrument(**_decimals(i)) for i in vmeta.get("instruments", [])
            }
            core.orders.add_instruments(instruments)
            broker = core.paper_broker(name, instruments)
            broker.latency_model = self.latency_models.get(name)
            broker.queue_model = self.queue_model
            core.add_client(name, broker)
            for stream in await self._replay_streams(name, vcfg, vmeta.get("streams", [])):
                self._add_replay_stream(stream)
        core.bus.subscribe(OrderFill, self._on_fill, owner="backtest")
        core.bus.subscribe(OrderEvent, self._on_order, owner="backtest")
        core.bus.subscribe(Position, self._on_position, owner="backtest")
        tables = self.market_tables
        if tables is not None:
            core.bus.subscribe(BookSnapshot, tables.on_book, owner="export")
            core.bus.subscribe(BookDelta, tables.on_book, owner="export")
            core.bus.subscribe(PublicTrade, tables.on_trade, owner="export")
            core.bus.subscribe(VenueStatus, tables.on_status, owner="export")
            tables.books = self.router.books

    async def _replay_streams(self, name: str, vcfg: Any, names: list[str]) -> list[Stream]:
        venue = self.config.venue_impls[name]
        if not self.use_simulator_streams:
            built = [venue.replay_stream(vcfg, n) for n in names]
            if all(s is not None for s in built):
                return built  # type: ignore[return-value]
        # the venue has no offline factory: build its streams against its own simulator
        # (real clock still running here), keep them, stop the simulator
        sim_cfg = attrs.evolve(vcfg, endpoint="sim", sim_url="", sim_port=0)
        async with trio.open_nursery() as sim_nursery:
            sim = await venue.start_simulator(sim_cfg, sim_nursery)
            runtime = await venue.build(sim_cfg, sim, http_client)
            sim_nursery.cancel_scope.cancel()
        by_name = {s.name: s for s in runtime.streams}
        missing = [n for n in names if n not in by_name]
        if missing:
            log.warning("recorded streams this venue did not build", venue=name, streams=missing)
        return [by_name[n] for n in names if n in by_name] or list(runtime.streams)

    def _add_replay_stream(self, stream: Stream) -> tuple[Stream, ReplaySession]:
        session = ReplaySession(stream, stream.venue)
        stream.request_resync = session.request_resync
        self.router.add_stream(stream, session)
        self._streams[(stream.venue, stream.name)] = (stream, session)
        return stream, session

    def _on_fill(self, event: OrderFill) -> None:
        self.fills.append(
            FillRecord(
                event.ts_ns,
                event.venue,
                event.symbol,
                event.client_order_id,
                event.fill_id,
                event.side.value,
                float(event.price),
                float(event.quantity),
                (
                    event.client_order_id,
                    event.fill_id,
                    event.side.value,
                    str(event.price),
                    str(event.quantity),
                    str(event.ts_ns),
                ),
                float(event.fee),
                event.liquidity.value if event.liquidity else "",
            )
        )

    def _on_order(self, event: OrderEvent) -> None:
        order = self.core.orders.orders.get(event.client_order_id)
        self.orders.append(
            (
                event.ts_ns,
                event.venue,
                event.symbol,
                event.client_order_id,
                type(event).__name__,
                event.status.value,
                order.side.value if order else "",
                float(order.price) if order and order.price is not None else math.nan,
                float(order.quantity) if order else math.nan,
                float(order.filled_qty) if order else math.nan,
                getattr(event, "reason", "") or "",
            )
        )

    def _on_position(self, event: Position) -> None:
        self.positions.append(
            (
                event.ts_ns,
                event.venue,
                event.symbol,
                float(event.quantity),
                float(event.avg_price),
                float(event.realized_pnl),
            )
        )

    # --- the replay ----------------------------------------------------------------------------

    async def run(self) -> None:
        trio.lowlevel.add_instrument(self.wakeups)
        async with trio.open_nursery() as nursery:
            await self._setup(nursery)
            first = self._first_frame()
            self.clock.freeze()
            if first is not None:
                recv_ns, wall_ns = first
                self._offset = self.clock.now - recv_ns * 1e-9
                self._wall_offset_ns = wall_ns - recv_ns
                self.first_wall_ns = wall_ns
            for strategy in self.strategies:
                self.core.attach(strategy)
            await self._feed()
            await self._finish(nursery)
        trio.lowlevel.remove_instrument(self.wakeups)
        self.core.journal.close()

    def _first_frame(self) -> tuple[int, int] | None:
        found = None
        for rec in self.reader.records():
            if rec.kind in (TEXT, BINARY):
                found = rec.recv_ns, rec.wall_ns
                break
        self.reader.bytes_read = self.reader.torn_blocks = 0  # counted again by the replay
        return found

    async def _advance(self, until: float) -> float:
        """Run every task that is runnable and every deadline up to `until`, in time order;
        returns the next deadline after that."""
        clock = self.clock
        wait = trio.testing.wait_all_tasks_blocked
        while True:
            # every task but this one is blocked when it returns, and trio has just told the
            # clock its earliest deadline
            await wait()
            nxt = clock.next_deadline
            if nxt > until:
                self.wakeups.pending = False
                return nxt
            if nxt > clock.now:
                clock.now = nxt

    async def _feed(self) -> None:
        wakeups = self.wakeups
        clock = self.clock
        offset = self._offset
        unpack = RECORD_HEADER.unpack_from
        hsize = RECORD_HEADER.size
        # connection id (a u16) -> (decode, session, text_as_bytes): a list, indexed in C
        conns: list[tuple[Callable[[Any, int], None], ReplaySession, bool] | None]
        conns = [None] * (1 << 16)
        next_deadline = await self._advance(clock.now)
        interval = self.sample_interval_ns
        next_sample = 0
        frames = 0
        bad = 0
        recv_ns = wall_ns = 0
        progress = self.progress
        report_every = 16384
        started = time.perf_counter()
        limit = self.max_frames if self.max_frames is not None else 1 << 62  # int compare
        for block in self.reader.blocks():
            if frames >= limit:
                break
            if self.core.stop_asked:
                break  # the kill switch (or --fail-fast) ended the run: as live, stop here
            pos, end = 0, len(block)
            while pos < end:
                kind, conn, recv_ns, wall_ns, length = unpack(block, pos)
                start = pos + hsize
                pos = start + length
                payload = block[start:pos]
                if kind >= TEXT:
                    if frames >= limit:
                        break
                    entry = conns[conn]
                    if entry is None:
                        self.unknown_conn_frames += 1
                        continue
                    t = recv_ns * 1e-9 + offset
                    if wakeups.pending or t >= next_deadline:
                        next_deadline = await self._advance(t)
                    if t > clock.now:
                        clock.now = t
                    decode, session, text_as_bytes = entry
                    session.frames_received += 1
                    frames += 1
                    try:
                        if kind == TEXT and not text_as_bytes:
                            payload = payload.decode()
                        decode(payload, recv_ns)
                    except Exception as exc:  # FrameError, or a decoder bug: as live, skip it
                        bad += 1
                        session.counts["bad_frames"] += 1
                        if not isinstance(exc, FrameError):
                            log.debug("decoder raised", error=f"{type(exc).__name__}: {exc}")
                    if recv_ns >= next_sample:
                        if next_sample == 0:
                            next_sample = recv_ns
                        self._sample(wall_ns)
                        next_sample += interval * (1 + (recv_ns - next_sample) // interval)
                    if progress is not None and frames % report_every == 0:
                        progress(self._progress(frames, started))
                elif kind == CONN:
                    entry = self._conn(payload)
                    if entry is not None:
                        conns[conn] = entry
        if frames:
            self.last_wall_ns = wall_ns
            await self._advance(clock.now)
            self._sample(wall_ns)
        self.frames = frames
        self.bad_frames = bad
        if progress is not None:
            progress(self._progress(frames, started) | {"done": True})

    def _progress(self, frames: int, started: float) -> dict[str, Any]:
        elapsed = time.perf_counter() - started
        total = self.reader.total_bytes or 1
        return {
            "fraction": min(1.0, self.reader.bytes_read / total),
            "frames": frames,
            "events": sum(self.router.event_counts.values()),
            "elapsed_s": elapsed,
        }

    def _conn(
        self, payload: bytes
    ) -> tuple[Callable[[Any, int], None], ReplaySession, bool] | None:
        import orjson

        info = orjson.loads(payload)
        key = (info["venue"], info["stream"])
        found = self._streams.get(key)
        if found is None:
            venue_cfg = self.config.venues.get(info["venue"])
            stream = (
                self.config.venue_impls[info["venue"]].replay_stream(venue_cfg, info["stream"])
                if venue_cfg is not None
                else None
            )
            if stream is None:
                log.warning("no stream to replay into", venue=key[0], stream=key[1])
                return None
            found = self._add_replay_stream(stream)
        stream, session = found
        epoch = int(info.get("epoch", 0))
        if epoch != stream.epoch:
            if stream.epoch:
                # a reconnect in the recording: books were lost then, exactly as live
                session.counts["reconnects"] += 1
                self.router.books_lost(stream, "disconnected")
            stream.epoch = session.epoch = epoch
        return stream.decode, session, stream.text_as_bytes

    def _sample(self, wall_ns: int) -> None:
        portfolio = self.portfolio
        marks: dict[str, tuple[float, float]] = {}
        for venue, symbol in self.router.books:
            mid = portfolio.mark(venue, symbol)
            marks[f"{venue} {symbol}"] = (
                float(mid) if mid is not None else math.nan,
                float(portfolio.position(venue, symbol)),
            )
        self.samples.append((wall_ns, float(portfolio.total_pnl()), marks))

    async def _finish(self, nursery: trio.Nursery) -> None:
        done = trio.Event()

        async def shutdown() -> None:
            await self.core.shutdown()
            done.set()

        nursery.start_soon(shutdown)
        clock = self.clock
        while not done.is_set():
            await trio.testing.wait_all_tasks_blocked()
            if done.is_set():
                break
            nxt = clock.next_deadline
            if nxt == math.inf:
                break
            clock.now = max(clock.now, nxt)
        self.final_summary = self.core.summary()
        nursery.cancel_scope.cancel()


def _decimals(fields: dict[str, Any]) -> dict[str, Any]:
    from decimal import Decimal

    out = dict(fields)
    for key in ("tick", "lot", "min_qty", "max_qty", "min_notional"):
        if out.get(key) is not None:
            out[key] = Decimal(str(out[key]))
    return out


def backtest_config(meta: dict[str, Any], base: dict[str, Any] | None = None) -> Config:
    """The run's config: `base` (a parsed config.toml as a dict, for strategy params, risk and
    paper settings) with the recorded venues, in paper mode."""
    raw = dict(base or {})
    raw.pop("backtest", None)  # the realism models: run_backtest reads them, Config does not
    raw["venues"] = {name: v.get("config", {}) for name, v in meta["venues"].items()}
    botrun = dict(raw.get("botrun") or {})
    botrun["mode"] = "paper"
    raw["botrun"] = botrun
    return parse_config(raw)


def run_backtest(
    data: str | Path,
    strategies: list[Strategy],
    *,
    config: dict[str, Any] | None = None,
    seed: int = 0,
    sample_interval_s: float = 1.0,
    progress: Callable[[dict[str, Any]], None] | None = None,
    use_simulator_streams: bool = False,
    latency: dict[str, LatencyModel] | None = None,
    queue: QueueModel | str | None = None,
    market_tables: bool = False,
    max_frames: int | None = None,
    strict: bool = False,
) -> BacktestResult:
    """Replay the recording at `data` (a file or a directory) through `strategies`.

    `config` is a raw config dict (as from config.toml) for strategy params, risk and paper
    settings; its venues are replaced by the recorded ones. Its optional `[backtest]` table sets
    the realism models (framework/execution/fill_models.py), which `latency` (venue -> model)
    and `queue` override:

        [backtest]
        queue = "proportional"            # or {kind = "power", power = 2}
        [backtest.latency.paxos]
        kind = "lognormal"                # fixed (ms) | lognormal (median_ms, sigma) | percentiles
        median_ms = 8
        sigma = 0.6

    `max_frames` stops after that many frames (a short slice, for sweeps and tests).
    `market_tables=True` also keeps the recording's normalized market tables (book deltas, top
    of book, trades, venue status) for `result.tables()`. Call from outside trio; in a notebook:

        from framework.tools.backtest import run_backtest
        result = run_backtest("data/", [MyStrategy({"size": "0.01"})], seed=1)
        frames = result.dataframes()   # {"fills": DataFrame, "equity": ..., ...} (pandas)
    """
    reader = RecordReader(data, strict=strict)  # strict: a damaged block is an error
    cfg = backtest_config(reader.meta, config)
    bt_cfg = (config or {}).get("backtest") or {}
    models = {
        name: latency_model(spec, seed=seed) for name, spec in (bt_cfg.get("latency") or {}).items()
    }
    models.update(latency or {})
    if isinstance(queue, str):
        queue = queue_model(queue)
    if queue is None and bt_cfg.get("queue") is not None:
        queue = queue_model(bt_cfg["queue"])
    clock = ReplayClock()
    tables = MarketTables() if market_tables else None
    backtest = Backtest(
        reader,
        cfg,
        strategies,
        seed=seed,
        clock=clock,
        sample_interval_s=sample_interval_s,
        progress=progress,
        use_simulator_streams=use_simulator_streams,
        latency=models,
        queue=queue,
        market_tables=tables,
        max_frames=max_frames,
    )
    started = time.perf_counter()
    with deterministic_scheduling(seed):
        trio.run(backtest.run, clock=clock)
    elapsed = time.perf_counter() - started
    summary = backtest.final_summary or backtest.core.summary()
    summary["backtest"] = {
        "frames": backtest.frames,
        "bad_frames": backtest.bad_frames,
        "torn_blocks": reader.torn_blocks,
        "damaged": [d.describe() for d in reader.damaged],
        "files": len(reader.files),
        "seed": seed,
    }
    return BacktestResult(
        summary=summary,
        fills=backtest.fills,
        samples=backtest.samples,
        frames=backtest.frames,
        events=sum(backtest.router.event_counts.values()),
        elapsed_s=elapsed,
        torn_blocks=reader.torn_blocks,
        bad_frames=backtest.bad_frames,
        first_wall_ns=backtest.first_wall_ns,
        last_wall_ns=backtest.last_wall_ns,
        books={
            key: (tuple(book.bids()), tuple(book.asks())) if book.is_synced else ("unsynced",)
            for key, book in backtest.router.books.items()
        },
        orders=backtest.orders,
        positions=backtest.positions,
        seed=seed,
        params={s.name: dict(getattr(s, "params", {}) or {}) for s in strategies},
        market=tables,
    )
