"""Scale: receive-to-handler lag and CPU share at 10, 100 and 500 markets, same message rate.

For each market count a child process serves the venue simulator(s) with that many synthetic
markets (spread evenly over the venues given with --venues), their crowds stepping so that the
*total* step rate is fixed (--rate, steps/s over all markets; each step sends one to a few book
frames, and trade frames when it takes). This process runs the real engine (paper mode)
subscribed to every market, with a strategy that reads the top of book on every book event.

Printed per market count: frames/s received, `recv_to_handled` p50/p99/p99.9 (frame leaving
the socket → its handlers returned, queueing included: the built-in histogram), and CPU share
(CPU seconds / wall seconds) of the botrun process and of the simulator process.

Usage: python bench/scale.py [--markets 10 100 500] [--rate 2000] [--seconds 10]
Venues: paxos (a venue joins by accepting a `markets` list its simulator serves; see report).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import trio

from framework.config import parse
from framework.runner import Engine
from framework.strategy import Strategy


def market_names(n: int) -> list[str]:
    return [f"X{i:03d}USD" for i in range(n)]


# --- child: simulators -------------------------------------------------------------------------


async def serve(venues: list[str], n: int, rate: float) -> None:
    from framework.venues.paxos.sim import PaxosSimulator

    names = market_names(n)
    per_venue = {v: names[i :: len(venues)] for i, v in enumerate(venues)}
    ports = []
    async with trio.open_nursery() as nursery:
        for venue in venues:
            if venue != "paxos":
                raise SystemExit(f"scale bench: no many-market simulator hook for {venue} yet")
            markets = {
                m: (Decimal(100 + i), Decimal("0.01")) for i, m in enumerate(per_venue[venue])
            }
            sim = PaxosSimulator.build(1, markets=markets)
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
    names = market_names(n)
    cfg = parse(
        {
            "botrun": {"mode": "paper", "log_level": "error"},
            "venues": {
                v: {"markets": names[i :: len(venues)], "sim_url": f"http://127.0.0.1:{ports[i]}"}
                for i, v in enumerate(venues)
            },
        }
    )
    strategy = ReadTop()
    engine = Engine(cfg, [strategy], journal_path=":memory:")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(engine.run, 0)
        await engine.started.wait()
        await trio.sleep(2.0)  # warm-up: snapshots, first frames
        for h in engine.latency.histograms.values():
            h.reset()
        frames0 = sum(s.frames_received for s in engine.sessions)
        cpu0, child0, wall0 = time.process_time(), cpu_seconds(child_pid), time.perf_counter()
        await trio.sleep(seconds)
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
        child = cpu_seconds(child_pid) - child0
        frames = sum(s.frames_received for s in engine.sessions) - frames0
        hists = [
            h for (v, name), h in engine.latency.histograms.items() if name == "recv_to_handled"
        ]
        synced = sum(b.is_synced for b in engine.books.values())
        nursery.cancel_scope.cancel()
    merged = hists[0]
    for h in hists[1:]:
        merged.merge(h)
    return {
        "markets": n,
        "synced": synced,
        "frames_s": frames / wall,
        "p50": merged.percentile(0.5) / 1000,
        "p99": merged.percentile(0.99) / 1000,
        "p999": merged.percentile(0.999) / 1000,
        "cpu": cpu / wall,
        "sim_cpu": child / wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--markets", type=int, nargs="+", default=[10, 100, 500])
    ap.add_argument("--rate", type=float, default=2000.0, help="crowd steps/s over all markets")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--venues", default="paxos", help="comma-separated")
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    venues = args.venues.split(",")
    if args.serve:
        trio.run(serve, venues, args.serve, args.rate)
        return
    from framework import logs

    logs.configure("plain", "error")
    print(
        f"venues: {venues}; crowd rate {args.rate:,.0f} steps/s in total; "
        f"{args.seconds:.0f} s per run"
    )
    print(
        f"{'markets':>8}{'synced':>8}{'frames/s':>10}{'p50 µs':>10}{'p99 µs':>10}"
        f"{'p99.9 µs':>10}{'botrun CPU':>12}{'sim CPU':>9}"
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
            ],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        )
        try:
            assert child.stdout is not None
            ports = [int(p) for p in child.stdout.readline().split()]
            r = trio.run(measure, venues, ports, n, args.seconds, child.pid)
        finally:
            child.terminate()
            child.wait(5)
        print(
            f"{r['markets']:>8}{r['synced']:>8}{r['frames_s']:>10,.0f}{r['p50']:>10.1f}"
            f"{r['p99']:>10.1f}{r['p999']:>10.1f}{r['cpu']:>11.0%}{r['sim_cpu']:>9.0%}",
            flush=True,
        )
    print("target: p99 < 5000 µs at 500 markets")


if __name__ == "__main__":
    main()
