"""Gateways and strategies over one local Redis: throughput, lag, command latency, a restart.

One `botrun gateway` per venue simulator (sandbox mode, each gateway's embedded simulator) and
`--strategies` strategy processes (`botrun bench/distributed.py --bus ...`, this file's
`BusBench`) over one local `redis-server` (no persistence). Half-way through, Redis is killed
and restarted empty after `--outage` seconds. Reported:

- events/s through the bus: market entries the gateways published, and market events the
  strategies' handlers received, per second of the run;
- receive-to-handler lag p50/p99 over the bus (the gateway's monotonic receive stamp on the
  event to the strategy process's handlers returning; same host, same CLOCK_MONOTONIC) beside
  the in-process figure of the same run (each gateway's own `recv_to_handled`);
- command-to-venue latency: `buy()` in the strategy process until its `OrderAccepted` is back in
  that process (command over Redis, gateway risk and journal, venue ack, event over Redis), and
  the gateways' own submit-to-send and send-to-ack;
- the restart: bus outages the strategies saw, how long until their books were synced again,
  orders by final state (nothing left PENDING), duplicates the gateways recognised, venue orders
  per client order id (none doubled).

Usage: python bench/distributed.py [--duration 30] [--strategies 4] [--outage 1.0]
       [--venues paxos,opentrade,roxom,powertrade]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from framework import BookNotSynced, Strategy
from framework.events import BookState, BookStatus, OrderAccepted, VenueState, VenueStatus
from framework.latency import Histogram

ROOT = Path(__file__).resolve().parent.parent
STRATEGY = "BusBench"


class BusBench(Strategy):
    """Counts market events; every 0.5 s per venue rests one far-away order and cancels it once
    accepted, timing buy() -> OrderAccepted."""

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        super().__init__(params)
        self.name = f"bench-{os.getpid()}"
        self.events = 0
        self.rtt = Histogram()
        self.sent: dict[str, int] = {}
        self.pending: dict[str, str] = {}  # venue -> client order id in flight
        self.rejects = 0
        self.reasons: dict[str, int] = {}
        self.outage_at: float | None = None
        self.resync_s: list[float] = []
        self.outages = 0

    def on_start(self) -> None:
        self.t0 = time.monotonic()
        self.every(0.5, self.tick)

    def on_book(self, event: Any) -> None:
        self.events += 1

    on_trade = on_ticker = on_top_of_book = on_book

    def on_venue_status(self, event: VenueStatus) -> None:
        outage = event.state is VenueState.DISCONNECTED and "bus outage" in event.reason
        if outage and self.outage_at is None:
            self.outages += 1
            self.outage_at = time.monotonic()

    def on_book_status(self, event: BookStatus) -> None:
        if event.state is BookState.SYNCED and self.outage_at is not None:
            books = self.ctx.books.values()
            if all(b.is_synced for b in books):
                self.resync_s.append(time.monotonic() - self.outage_at)
                self.outage_at = None

    def tick(self) -> None:
        for venue, markets in self.ctx.markets().items():
            if venue in self.pending or not markets:
                continue
            symbol = markets[0]
            try:
                bid = self.book(venue, symbol).best_bid()
            except BookNotSynced:
                continue
            if bid is None:
                continue
            inst = self.instrument(venue, symbol)
            tick = (inst.tick if inst else None) or Decimal("0.01")
            qty = max(
                (inst.min_qty or inst.lot or Decimal("0.001")) if inst else Decimal("0.001"),
                Decimal("0.001") if not inst or not inst.lot else inst.lot,
            )
            price = (bid[0] * Decimal("0.97") / tick).to_integral_value() * tick
            # 3% under the bid rests without post-only (Power.Trade has none)
            handle = self.buy(venue, symbol, qty, price)
            self.pending[venue] = handle.client_order_id
            self.sent[handle.client_order_id] = time.monotonic_ns()

    def on_accepted(self, event: OrderAccepted) -> None:
        sent = self.sent.pop(event.client_order_id, None)
        if sent is not None:
            self.rtt.record(time.monotonic_ns() - sent)
        self.cancel(event.client_order_id)

    def on_rejected(self, event: Any) -> None:
        self.reasons[event.reason[:80]] = self.reasons.get(event.reason[:80], 0) + 1

    def on_order(self, event: Any) -> None:
        order = self.ctx.order(event.client_order_id)
        if order is not None and not order.is_open:
            if self.pending.get(order.venue) == order.client_order_id:
                del self.pending[order.venue]
            if event.status.value == "REJECTED":
                self.rejects += 1

    def on_stop(self) -> None:
        line = {
            "events": self.events,
            "seconds": time.monotonic() - self.t0,
            "rtt": self.rtt.summary(),
            "rejects": self.rejects,
            "reject_reasons": self.reasons,
            "outages": self.outages,
            "resync_s": self.resync_s,
        }
        print("BENCH " + json.dumps(line, default=str), flush=True)


# --- driver --------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(500):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return proc
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("redis-server did not start")


def write_config(workdir: Path, venues: list[str]) -> Path:
    text = (ROOT / "config.toml").read_text()
    text = text.replace('mode = "paper"', 'mode = "sandbox"', 1)
    text = text.replace("enabled = false", "enabled = true")
    text = re.sub(r'journal_dir = "[^"]*"', f'journal_dir = "{workdir / "journal"}"', text)
    text = re.sub(r'log_format = "[^"]*"', 'log_format = "json"', text)
    text = re.sub(r'log_level = "[^"]*"', 'log_level = "info"', text)
    text = text.replace("max_orders_per_second = 20", "max_orders_per_second = 1000")
    text = text.replace("max_open_orders = 20", "max_open_orders = 200")
    path = workdir / "config.toml"
    path.write_text(text)
    return path


def botrun(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "framework.tools.cli", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def wait_for(log: Path, needle: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and needle in log.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{log.name}: no {needle!r} within {timeout}s:\n{log.read_text()[-2000:]}")


_LAT = re.compile(r"latency (\S+) (\S+): n=(\d+), p50 ([\d.]+) µs, p99 ([\d.]+) µs")


def latencies(text: str) -> dict[tuple[str, str], tuple[int, float, float]]:
    return {(m[1], m[2]): (int(m[3]), float(m[4]), float(m[5])) for m in _LAT.finditer(text)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--strategies", type=int, default=4)
    ap.add_argument("--outage", type=float, default=1.0, help="seconds Redis is down mid-run")
    ap.add_argument("--venues", default="paxos,opentrade,roxom,powertrade")
    args = ap.parse_args()
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is not installed")
    venues = args.venues.split(",")
    workdir = Path(tempfile.mkdtemp(prefix="botrun-distributed-"))
    port = _free_port()
    url = f"redis://127.0.0.1:{port}"
    redis = start_redis(port, workdir)
    config = write_config(workdir, venues)
    gateways: dict[str, subprocess.Popen[bytes]] = {}
    strategies: list[subprocess.Popen[bytes]] = []
    try:
        for v in venues:
            gateways[v] = botrun(
                ["gateway", "--venue", v, "--config", str(config), "--bus", url, "--duration", "0"],
                workdir / f"gw-{v}.log",
            )
        for v in venues:
            wait_for(workdir / f"gw-{v}.log", '"bus up"', 120)
        t_start = time.monotonic()
        for i in range(args.strategies):
            strategies.append(
                botrun(
                    [
                        str(Path(__file__)),
                        "--config",
                        str(config),
                        "--bus",
                        url,
                        "--duration",
                        str(args.duration),
                    ],
                    workdir / f"strategy-{i}.log",
                )
            )
        for i in range(args.strategies):
            wait_for(workdir / f"strategy-{i}.log", "running over the bus", 120)
        time.sleep(args.duration / 2)
        redis.kill()
        redis.wait()
        t_kill = time.monotonic()
        time.sleep(args.outage)
        redis = start_redis(port, workdir)
        t_back = time.monotonic()
        for proc in strategies:
            proc.wait(timeout=args.duration + 120)
        wall = time.monotonic() - t_start
        for proc in gateways.values():
            proc.send_signal(signal.SIGINT)
        for proc in gateways.values():
            proc.wait(timeout=60)
    finally:
        for proc in [*strategies, *gateways.values()]:
            if proc.poll() is None:
                proc.kill()
        redis.kill()

    print(f"distributed bench: {len(venues)} gateways ({', '.join(venues)}), "
          f"{args.strategies} strategy processes, one local Redis; {args.duration:.0f} s each; "
          f"Redis killed at +{t_kill - t_start:.1f} s, back (empty) after "
          f"{t_back - t_kill:.2f} s")  # fmt: skip
    published = 0
    in_process: dict[str, tuple[int, float, float]] = {}
    gw_lat: dict[tuple[str, str], tuple[int, float, float]] = {}
    for v in venues:
        text = (workdir / f"gw-{v}.log").read_text(errors="replace")
        m = re.search(
            r"bus: md_published (\d+), md_dropped (\d+), commands (\d+), duplicates (\d+)", text
        )
        if m:
            published += int(m[1])
            print(f"  gateway {v}: published {m[1]} market entries, dropped {m[2]} while the bus"
                  f" was down, {m[3]} commands, {m[4]} duplicates recognised")  # fmt: skip
        lat = latencies(text)
        gw_lat.update(lat)
        if (v, "recv_to_handled") in lat:
            in_process[v] = lat[(v, "recv_to_handled")]
        orders = re.search(r"orders by state: (.*)", text)
        print(f"    orders by state: {orders[1] if orders else '?'}")
    print(f"  bus throughput: {published / wall:,.0f} market entries/s published (all gateways)")
    events = 0.0
    bus_lat: dict[str, list[tuple[int, float, float]]] = {}
    for i in range(args.strategies):
        text = (workdir / f"strategy-{i}.log").read_text(errors="replace")
        bench = re.search(r"BENCH (\{.*\})", text)
        if bench is None:
            print(f"  strategy {i}: no result line\n{text[-1500:]}")
            continue
        data = json.loads(bench[1])
        events += data["events"] / data["seconds"]
        rtt = data["rtt"]
        states = re.search(r"orders by state: (.*)", text)
        print(f"  strategy {i}: {data['events'] / data['seconds']:,.0f} market events/s handled;"
              f" buy()->accepted n={rtt.get('count')}, p50 {rtt.get('p50_us')} µs,"
              f" p99 {rtt.get('p99_us')} µs; outages {data['outages']}, books synced again"
              f" after {[round(s, 2) for s in data['resync_s']]} s; rejects {data['rejects']}"
              f" {data['reject_reasons'] or ''};"
              f" orders {states[1] if states else '?'}")  # fmt: skip
        for (v, name), val in latencies(text).items():
            if name == "recv_to_handled":
                bus_lat.setdefault(v, []).append(val)
    print(f"  handlers: {events:,.0f} market events/s across the strategy processes")
    print("  receive -> handler lag, p50 / p99 (µs):")
    for v in venues:
        ip = in_process.get(v)
        over = bus_lat.get(v, [])
        shown = ", ".join(f"{p50:,.0f} / {p99:,.0f}" for _, p50, p99 in over)
        print(f"    {v:<11} in-process (gateway) {ip[1]:,.0f} / {ip[2]:,.0f}" if ip else f"    {v}",
              f"| over the bus, per strategy: {shown}")  # fmt: skip
    print("  gateways' own order path, p50 / p99 (µs):")
    for (v, name), (n, p50, p99) in sorted(gw_lat.items()):
        if name in ("submit_to_send", "send_to_ack"):
            print(f"    {v:<11} {name:<15} n={n} {p50:,.0f} / {p99:,.0f}")
    print(f"  logs: {workdir}")


if __name__ == "__main__":
    main()
