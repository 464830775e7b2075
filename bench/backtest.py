"""Backtest throughput: `botrun backtest`'s whole path on a large recording, against orjson.

The recording (>= 1M frames by default) is made once from the Paxos simulator's own synthetic
market: the simulator's crowd (framework/sim/market.py) steps on a fake clock (1 ms a step, two
markets), and the frames its public feed would send on `/marketdata` and `/executiondata` (the
snapshot fragments first) are written with the recorder's own `RecordWriter`, with the shipped
sample's venue metadata. It is cached outside the repository (~/.cache/botrun/, or
$BOTRUN_CACHE) keyed by seed and size, so later runs only read it.

Measured in one process, in interleaved rounds (median reported):

  (a) ceiling: `orjson.loads` of every recorded payload, already in memory;
  (b) `run_backtest` with no strategy (decode -> books -> bus, the replay loop, samples);
  (c) `run_backtest` with the example market maker (strategies/market_maker.py): orders, the
      paper broker, risk, portfolio, timers on the replay clock.

It prints events/s for (b) and (c) and their ratio to (a)'s frames/s (the issue's "fraction of
the ceiling"), and checks the run: every frame replayed, no bad frames, books synced at the end.

"Events" are the normalized events the router delivered (`BacktestResult.events`: book
snapshots and deltas, trades, balances). A Paxos frame holds exactly one (a single-level UPDATE,
a trade, or a whole snapshot), so events = frames + the paper broker's opening balances (3):
events/s and frames/s are the same figure here, and the ratio compares like with like.

Usage: python bench/backtest.py [--frames 1000000] [--rounds 3] [--seed 1] [--profile noop|mm]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import logging
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

import orjson
import structlog

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from framework.tools.backtest import SAMPLE, run_backtest
from framework.tools.loader import load_strategy_class
from framework.tools.record import BINARY, TEXT, RecordReader, RecordWriter
from framework.tools.results import BacktestResult

ROOT = Path(__file__).resolve().parent.parent
MM_PARAMS = {"size": "0.002", "half_spread_bps": 0.5, "max_inventory": "0.01", "refresh_s": 0.2}
STEP_NS = 1_000_000  # one crowd step per market per simulated millisecond


def cache_dir() -> Path:
    base = os.environ.get("BOTRUN_CACHE") or Path.home() / ".cache" / "botrun"
    return Path(base)


def generate(path: Path, frames: int, seed: int) -> None:
    """Write a recording of >= `frames` frames from the Paxos simulator's synthetic market."""
    from framework.venues.paxos.sim.simulator import PaxosSimulator

    meta = {k: v for k, v in RecordReader(SAMPLE).meta.items() if k == "venues"}
    meta["venues"]["paxos"]["config"]["sim_seed"] = seed
    wall0 = 1_795_000_000_000_000_000  # a fixed wall clock: the file is the same every time
    mono = [10_000_000_000]
    sim = PaxosSimulator.build(seed, clock_ns=lambda: wall0 + mono[0])
    out: list[tuple[str, str]] = []

    class Capture:
        def __init__(self, stream: str) -> None:
            self.stream = stream

        def enqueue(self, frame: str) -> None:
            out.append((self.stream, frame))

    book, trades = Capture("marketdata"), Capture("executiondata")
    tmp = path.with_suffix(".part")
    writer = RecordWriter(
        tmp, meta, prefix="bench", wall_ns=lambda: wall0 + mono[0], flush_interval_s=3600
    )
    written = 0
    for symbol in sim.engine.symbols():
        out.extend(("marketdata", f) for f in sim._snapshot_fragments(symbol))
        sim._public_books[symbol] = {book}  # type: ignore[assignment]
        sim._public_trades[symbol] = {trades}  # type: ignore[assignment]
    crowds = list(sim.markets.values())
    while written < frames:
        for crowd in crowds:
            crowd.step()
        for stream, frame in out:
            writer.frame("paxos", stream, 1, frame, mono[0], wall0 + mono[0])
        written += len(out)
        out.clear()
        mono[0] += STEP_NS
    writer.close()
    tmp.rename(path)


def recording(frames: int, seed: int) -> Path:
    path = cache_dir() / f"bench-backtest-paxos-s{seed}-{frames}"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        print(f"generating {frames:,} frames into {path} (once) ...", flush=True)
        started = time.perf_counter()
        generate(path, frames, seed)
        print(f"  done in {time.perf_counter() - started:.1f} s", flush=True)
    return path


def payloads(path: Path) -> list[bytes]:
    return [r.payload for r in RecordReader(path).records() if r.kind in (TEXT, BINARY)]


def ceiling(frames: list[bytes]) -> float:
    loads = orjson.loads
    gc.collect()
    started = time.perf_counter()
    for f in frames:
        loads(f)
    return len(frames) / (time.perf_counter() - started)


def backtest(path: Path, mm: bool) -> BacktestResult:
    strategies = []
    if mm:
        strategies = [load_strategy_class(str(ROOT / "strategies/market_maker.py"))(MM_PARAMS)]
    gc.collect()
    return run_backtest(path, strategies, seed=1)


def check(result: BacktestResult, frames: int) -> None:
    assert result.frames == frames, (result.frames, frames)
    assert result.bad_frames == 0 and result.torn_blocks == 0
    assert all(b != ("unsynced",) for b in result.books.values()), "a book ended unsynced"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", choices=["noop", "mm"])
    args = parser.parse_args()
    # the market maker logs every fill at info: a benchmark measures the path, not the terminal
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    path = recording(args.frames, args.seed)
    frames = payloads(path)
    print(f"recording: {path} ({len(frames):,} frames)")
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        backtest(path, args.profile == "mm")
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        return
    ceil: list[float] = []
    noop: list[float] = []
    mm: list[float] = []
    fills = 0
    for r in range(args.rounds):
        ceil.append(ceiling(frames))
        res = backtest(path, mm=False)
        check(res, len(frames))
        noop.append(res.events_per_s)
        res = backtest(path, mm=True)
        check(res, len(frames))
        mm.append(res.events_per_s)
        fills = len(res.fills)
        print(
            f"round {r + 1}: orjson {ceil[-1]:,.0f} frames/s; no-op {noop[-1]:,.0f} events/s;"
            f" market maker {mm[-1]:,.0f} events/s ({fills} fills)",
            flush=True,
        )
    c, n, m = (statistics.median(x) for x in (ceil, noop, mm))
    print(f"ceiling (orjson.loads): {c:,.0f} frames/s")
    print(f"no-op backtest:        {n:,.0f} events/s  ratio {n / c:.3f} (target >= 0.125)")
    print(f"market-maker backtest: {m:,.0f} events/s  ratio {m / c:.3f} ({fills} fills)")


if __name__ == "__main__":
    main()
