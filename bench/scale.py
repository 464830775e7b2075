"""Scale: receive-to-handler lag and CPU share at 10, 100 and 500 markets, same message rate.

For each market count a child process serves the venue simulators (all four by default: Paxos,
Power.Trade, Roxom, Open Trade; --venues picks some) with that many markets dealt round robin over
them, their crowds stepping so that the *total* step rate is fixed (--rate, steps/s over all
markets; each step sends one to a few book frames, and trade frames when it takes). This process
runs the real engine (paper mode) with each venue's real adapter subscribed to every market it
was dealt, configured with only `markets` and `sim_url`, and a strategy that reads the top of
book on every book event.

Markets are synthetic (mid 100 + i, tick 0.01), named in each venue's symbol format: `X001USD`
(Paxos), `X001-USD` (Power.Trade), `X001/USD` (Open Trade). Roxom publishes no instrument
catalogue: its symbols are a fixed documented set (framework/venues/roxom/instruments.py), so it
gets its real instruments only (at most four) and the rest go to the other venues.

Printed per market count: frames/s received, `recv_to_handled` p50/p99/p99.9 (frame leaving
the socket → its handlers returned, queueing included: the built-in histogram), and CPU share
(CPU seconds / wall seconds) of the botrun process, of the simulator process (one process for
all the simulators) and of everything else on the machine meanwhile ("others": their CPUs are
shared, and a busy machine shows as lag); then the same per venue, with how many markets it got
and how often its connections dropped during the measurement. Measurement starts once every book
is synced.

Open Trade sends every subscribed book in full on a timer whether or not it changed (every 20 ms
on the real venue), so its frames/s grows with its market count, not with the crowd rate: at 500
markets its 165 books at 20 ms would be 8,250 full books a second. To keep the message rate
fixed, its simulator refreshes each book about as often as that book's crowd steps
(max(20 ms, markets / rate)) unless --opentrade-interval sets the period (0.02: the real venue's).

Usage: python bench/scale.py [--markets 10 100 500] [--rate 2000] [--seconds 10]
                             [--venues paxos,powertrade,roxom,opentrade] [--opentrade-interval S]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import trio

from framework.engine import Engine
from framework.latency import Histogram
from framework.strategy import Strategy
from framework.venues import parse_config as parse
from framework.venues import venue_names
from framework.venues.roxom.instruments import SPECS as ROXOM_SPECS

# synthetic market i on each venue that accepts a caller-given list of markets
SYMBOL_FORMATS = {"paxos": "X{:03d}USD", "powertrade": "X{:03d}-USD", "opentrade": "X{:03d}/USD"}
# venues whose instruments are the protocol's fixed set: they get those only
FIXED_SYMBOLS = {"roxom": list(ROXOM_SPECS)}
TICK = Decimal("0.01")
OPENTRADE_INTERVAL_S = 0.02  # [DOC] the real venue's full-book refresh
SYNC_TIMEOUT_S = 60.0  # warm-up: how long to wait for every book to be synced

Markets = dict[str, tuple[Decimal, Decimal]]  # symbol -> (mid, tick)


def spread(venues: list[str], n: int) -> dict[str, Markets]:
    """`n` markets dealt round robin over `venues`; a venue with a fixed set skips its turn once
    that set is used up. Every venue is listed, with no markets if the deal ran out first."""
    out: dict[str, Markets] = {v: {} for v in venues}
    turn = 0
    for i in range(n):
        for _ in venues:
            venue = venues[turn % len(venues)]
            turn += 1
            fixed = FIXED_SYMBOLS.get(venue)
            if fixed is None:
                out[venue][SYMBOL_FORMATS[venue].format(i)] = (Decimal(100 + i), TICK)
                break
            if len(out[venue]) < len(fixed):
                symbol = fixed[len(out[venue])]
                out[venue][symbol] = (ROXOM_SPECS[symbol].sim_mid, ROXOM_SPECS[symbol].tick)
                break
        else:
            raise SystemExit(f"scale bench: {n} markets do not fit on {', '.join(venues)}")
    return out


# --- child: simulators -------------------------------------------------------------------------


def opentrade_interval(n: int, rate: float, given: float) -> float:
    """The Open Trade simulator's book refresh period: `given`, or each book about as often as
    its crowd steps, never faster than the real venue."""
    return given or max(OPENTRADE_INTERVAL_S, n / rate)


def _paxos(markets: Markets, book_interval_s: float) -> Any:
    from framework.venues.paxos.sim import PaxosSimulator

    return PaxosSimulator.build(1, markets=markets)


def _powertrade(markets: Markets, book_interval_s: float) -> Any:
    from framework.venues.powertrade.sim import PowerTradeSimulator

    return PowerTradeSimulator.build(1, markets=markets)  # no synthetic RFQs: fixed rate


def _roxom(markets: Markets, book_interval_s: float) -> Any:
    from framework.venues.roxom.sim import RoxomSimulator

    return RoxomSimulator.build(1, symbols=list(markets))


def _opentrade(markets: Markets, book_interval_s: float) -> Any:
    from framework.venues.opentrade.sim import OpenTradeSimulator

    return OpenTradeSimulator.build(1, markets=markets, book_interval_s=book_interval_s)


# how each venue's simulator is built with given markets (venue-specific), in the bench's order
BUILDERS: dict[str, Callable[[Markets, float], Any]] = {
    "paxos": _paxos,
    "powertrade": _powertrade,
    "roxom": _roxom,
    "opentrade": _opentrade,
}
# the venues come from the registry, the one venue list (a registered venue without a builder
# sorts last and is refused by name when run)
VENUES = tuple(
    sorted(venue_names(), key=lambda v: list(BUILDERS).index(v) if v in BUILDERS else len(BUILDERS))
)


def build_simulator(venue: str, markets: Markets, book_interval_s: float) -> Any:
    """The venue's simulator serving exactly these markets, each with a seeded crowd."""
    build = BUILDERS.get(venue)
    if build is None:
        raise SystemExit(f"scale bench: no simulator builder for venue {venue!r}")
    return build(markets, book_interval_s)


async def serve(venues: list[str], n: int, rate: float, interval: float) -> None:
    plan = spread(venues, n)
    ports = []
    async with trio.open_nursery() as nursery:
        for venue in venues:
            if not plan[venue]:
                ports.append(0)
                continue
            sim = build_simulator(venue, plan[venue], opentrade_interval(n, rate, interval))
            port = await nursery.start(
                lambda task_status, sim=sim: sim.run(
                    port=0, market_rate_hz=rate / n, task_status=task_status
                )
            )
            ports.append(port)
        print(" ".join(map(str, ports)), flush=True)
        await trio.sleep_forever()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """CPU seconds all processes have used (every CPU's non-idle time)."""
    ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = ticks[:7]
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


# --- parent: botrun ----------------------------------------------------------------------------


class ReadTop(Strategy):
    def on_start(self) -> None:
        self.seen = 0

    def on_book(self, event) -> None:
        book = self.book(event.venue, event.symbol)
        if book.is_synced:
            book.best_bid()
            book.best_ask()
        self.seen += 1


async def measure(
    venues: list[str], ports: list[int], n: int, seconds: float, child_pid: int
) -> dict:
    plan = spread(venues, n)
    active = [v for v in venues if plan[v]]
    cfg = parse(
        {
            "botrun": {"mode": "paper", "log_level": "error"},
            "venues": {
                v: {"markets": list(plan[v]), "sim_url": f"http://127.0.0.1:{port}"}
                for v, port in zip(venues, ports, strict=True)
                if plan[v]
            },
        }
    )
    strategy = ReadTop()
    engine = Engine(cfg, [strategy], journal_path=":memory:")

    def by_venue(count: Callable[[Any], int]) -> dict[str, int]:
        return {v: sum(count(s) for s in engine.sessions if s.venue == v) for v in active}

    def synced() -> dict[str, int]:
        return {v: sum(engine.book(v, m).is_synced for m in plan[v]) for v in active}

    def frames(s: Any) -> int:
        return s.frames_received

    def drops(s: Any) -> int:
        return s.counts["reconnects"]

    async with trio.open_nursery() as nursery:
        nursery.start_soon(engine.run, 0)
        await engine.started.wait()
        # warm-up: every book synced (snapshots, first frames), then a second more
        with trio.move_on_after(SYNC_TIMEOUT_S):
            while sum(synced().values()) < n:
                await trio.sleep(0.05)
        await trio.sleep(1.0)
        for h in engine.latency.histograms.values():
            h.reset()
        frames0, drops0 = by_venue(frames), by_venue(drops)
        cpu0, child0, wall0 = time.process_time(), cpu_seconds(child_pid), time.perf_counter()
        all0 = machine_cpu_seconds()
        await trio.sleep(seconds)
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
        child = cpu_seconds(child_pid) - child0
        others = machine_cpu_seconds() - all0 - cpu - child
        got = {v: f - frames0[v] for v, f in by_venue(frames).items()}
        dropped = {v: d - drops0[v] for v, d in by_venue(drops).items()}
        hists = {v: engine.latency.get(v, "recv_to_handled") or Histogram() for v in active}
        in_sync = synced()  # read before the engine stops
        nursery.cancel_scope.cancel()
    merged = Histogram()
    for h in hists.values():
        merged.merge(h)

    def stats(h: Histogram, count: int, synced: int, frames: int, drops: int) -> dict:
        return {
            "markets": count,
            "synced": synced,
            "drops": drops,
            "frames_s": frames / wall,
            "p50": h.percentile(0.5) / 1000,
            "p99": h.percentile(0.99) / 1000,
            "p999": h.percentile(0.999) / 1000,
        }

    return {
        **stats(merged, n, sum(in_sync.values()), sum(got.values()), sum(dropped.values())),
        "cpu": cpu / wall,
        "sim_cpu": child / wall,
        "others_cpu": max(0.0, others) / wall,
        "venues": {
            v: stats(hists[v], len(plan[v]), in_sync[v], got[v], dropped[v]) for v in active
        },
    }


def row(label: str, r: dict) -> str:
    return (
        f"{label:>12}{r['markets']:>8}{r['synced']:>8}{r['drops']:>6}{r['frames_s']:>10,.0f}"
        f"{r['p50']:>10.1f}{r['p99']:>10.1f}{r['p999']:>10.1f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--markets", type=int, nargs="+", default=[10, 100, 500])
    ap.add_argument("--rate", type=float, default=2000.0, help="crowd steps/s over all markets")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--venues", default=",".join(VENUES), help="comma-separated")
    ap.add_argument(
        "--opentrade-interval",
        type=float,
        default=0.0,
        help="Open Trade full-book refresh period, s (0: max(0.02, markets / rate))",
    )
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    venues = args.venues.split(",")
    unknown = [v for v in venues if v not in VENUES]
    if unknown or len(set(venues)) != len(venues):
        ap.error(f"--venues: each of {', '.join(VENUES)} at most once")
    if args.serve:
        trio.run(serve, venues, args.serve, args.rate, args.opentrade_interval)
        return
    from framework import logs

    logs.configure("plain", "error")
    print(
        f"venues: {', '.join(venues)}; crowd rate {args.rate:,.0f} steps/s in total; "
        f"{args.seconds:.0f} s per run; {os.cpu_count()} CPUs"
    )
    print(
        f"{'':>12}{'markets':>8}{'synced':>8}{'drops':>6}{'frames/s':>10}{'p50 µs':>10}"
        f"{'p99 µs':>10}{'p99.9 µs':>10}{'botrun CPU':>12}{'sim CPU':>9}{'others':>8}"
    )
    for n in args.markets:
        child = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve",
                str(n),
                "--rate",
                str(args.rate),
                "--venues",
                args.venues,
                "--opentrade-interval",
                str(args.opentrade_interval),
            ],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        )
        try:
            assert child.stdout is not None
            ports = [int(p) for p in child.stdout.readline().split()]
            if len(ports) != len(venues):
                raise SystemExit("scale bench: the simulator process did not start")
            r = trio.run(measure, venues, ports, n, args.seconds, child.pid)
        finally:
            child.terminate()
            child.wait(5)
        cpus = f"{r['cpu']:>11.0%}{r['sim_cpu']:>9.0%}{r['others_cpu']:>8.0%}"
        print(row("all", r) + cpus, flush=True)
        for venue, vr in r["venues"].items():
            note = ""
            if venue == "opentrade":
                period = opentrade_interval(n, args.rate, args.opentrade_interval)
                note = f"  (full books every {period * 1000:.0f} ms)"
            print(row(venue, vr) + note, flush=True)
    print("target: p99 < 5000 µs at 500 markets")


if __name__ == "__main__":
    main()
