"""Tick-to-trade over loopback, against the bare WebSocket round trip of the same two processes.

Process S (a child) serves the Paxos simulator (REST + WS on one port, no synthetic crowd, so
every book frame is ours) and a bare trio-websocket echo server. Process B (this one) runs the
real botrun engine in sandbox mode against it, with a strategy that, on seeing the trigger
quote in a book delta, sends an order.

- tick-to-trade: S places a trigger bid in its matching engine, which makes the Paxos `/marketdata`
  UPDATE frame and queues it on B's socket; S stamps CLOCK_MONOTONIC right there (t0). B: socket →
  reader task → Paxos decoder → L2 book → bus → strategy `on_book` → `buy()` → risk → order
  manager → journal → Paxos REST client → HTTP POST. S stamps the order reaching its matching
  engine (t1). Sample = t1 - t0. One trigger at a time; S removes it and waits 1 ms before the
  next, so samples do not queue behind each other.
- floor: B sends a message over a bare trio-websocket connection to S's echo server and waits for
  it back; sample = the round trip measured in B.

Both figures are taken in the same run (echo, then tick-to-trade, then echo again; the floor is
all echo samples).

`--venue powertrade` measures the same against the Power.Trade simulator, whose orders go over
the WebSocket the book came on (no HTTP request on the path): B's `buy()` ends in a
`new_order` frame and t1 is that order reaching S's matching engine.

Usage: python bench/latency.py [--samples 10000] [--venue paxos|powertrade]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import orjson
import trio
from trio_websocket import open_websocket_url, serve_websocket

from framework.config import parse
from framework.events import BookDelta, Side, TimeInForce
from framework.runner import Engine
from framework.sim.engine import EngineListener, SimOrder
from framework.strategy import Strategy


@attrs.frozen
class Target:
    """One venue as the bench drives it."""

    market: str
    trigger_size: Decimal  # the bench's quote: no crowd order has this size
    order_size: Decimal
    build: Callable[[], Any]  # the simulator (process S)
    owner: Callable[[Any], str]  # our account's owner id on its matching engine
    section: dict[str, Any]  # the venue's config section (process B), without sim_url


def _paxos_sim() -> Any:
    from framework.venues.paxos.sim import PaxosSimulator

    return PaxosSimulator.build(1, markets={"BTCUSD": (Decimal("60000"), Decimal("0.25"))})


def _powertrade_sim() -> Any:
    from framework.venues.powertrade.sim import PowerTradeSimulator

    return PowerTradeSimulator.build(1, rfq_rate_hz=0)


TARGETS = {
    "paxos": Target(
        "BTCUSD",
        Decimal("0.00777"),
        Decimal("0.0001"),
        _paxos_sim,
        lambda sim: sim.profile_id,
        {"trades": False, "poll_interval_s": 3600, "balance_interval_s": 3600},
    ),
    "powertrade": Target(
        "BTC-USD",
        Decimal("0.0777"),
        Decimal("0.0001"),
        _powertrade_sim,
        lambda sim: sim.owner,
        {"rfqs": False, "account_interval_s": 3600},
    ),
}


# --- process S ---------------------------------------------------------------------------------


class _Arrivals(EngineListener):
    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.event: trio.Event | None = None
        self.t1 = 0

    def on_order(self, order: SimOrder) -> None:
        if order.owner == self.owner and self.event is not None and not self.event.is_set():
            self.t1 = time.monotonic_ns()
            self.event.set()


async def serve(venue: str) -> None:
    target = TARGETS[venue]
    sim = target.build()
    market = target.market
    arrivals = _Arrivals(target.owner(sim))
    sim.engine.add_listener(arrivals)

    async def trigger_run(n: int) -> list[int]:
        out: list[int] = []
        best_bid = sim.engine.best_bid(market)
        best_ask = sim.engine.best_ask(market)
        assert best_bid is not None and best_ask is not None
        price = best_bid + sim.engine.tick(market)  # a new best bid, still below the ask
        assert price < best_ask
        for _ in range(n):
            arrivals.event = trio.Event()
            t0 = time.monotonic_ns()
            placed = sim.engine.submit(
                "bench", market, Side.BUY, "LIMIT", target.trigger_size, price
            )
            with trio.move_on_after(2.0):
                await arrivals.event.wait()
            if arrivals.event.is_set():
                out.append(arrivals.t1 - t0)
            sim.engine.cancel(placed.order_id)
            await trio.sleep(0.001)
        return out

    async def echo(request) -> None:
        ws = await request.accept()
        while True:
            try:
                message = await ws.get_message()
            except Exception:
                return
            if isinstance(message, str) and message.startswith("go "):
                result = await trigger_run(int(message[3:]))
                await ws.send_message(orjson.dumps(result).decode())
            else:
                await ws.send_message(message)

    async with trio.open_nursery() as nursery:
        sim_port = await nursery.start(
            lambda task_status: sim.run(port=0, market_rate_hz=None, task_status=task_status)
        )
        listeners = await nursery.start(
            lambda task_status: serve_websocket(
                echo, "127.0.0.1", 0, ssl_context=None, task_status=task_status
            )
        )
        echo_port = listeners.port
        print(f"{sim_port} {echo_port}", flush=True)
        await trio.sleep_forever()


# --- process B ---------------------------------------------------------------------------------


class TickToTrade(Strategy):
    def __init__(self, target: Target) -> None:
        super().__init__()
        self.target = target

    def on_start(self) -> None:
        self.sent = 0

    def tick(self, venue: str, symbol: str) -> Decimal:
        instrument = self.instrument(venue, symbol)
        assert instrument is not None
        return instrument.tick

    def on_book(self, event) -> None:
        if type(event) is not BookDelta:
            return
        for price, size in event.bids:
            if size == self.target.trigger_size:
                self.sent += 1
                # a non-crossing IOC: it reaches the matching engine and ends there, no state
                self.buy(
                    event.venue,
                    event.symbol,
                    self.target.order_size,
                    price - 40 * self.tick(event.venue, event.symbol),
                    tif=TimeInForce.IOC,
                )


async def echo_round_trips(url: str, n: int) -> list[int]:
    out = []
    payload = '{"type":"UPDATE","market":"BTCUSD","side":"BUY","price":"60000.25","amount":"1"}'
    async with open_websocket_url(url) as ws:
        for _ in range(n):
            t0 = time.monotonic_ns()
            await ws.send_message(payload)
            await ws.get_message()
            out.append(time.monotonic_ns() - t0)
    return out


async def bench(venue: str, sim_port: int, echo_port: int, samples: int) -> None:
    target = TARGETS[venue]
    cfg = parse(
        {
            "botrun": {"mode": "sandbox", "log_level": "warning"},
            "risk": {
                "max_orders_per_second": 100000,
                "max_open_orders": 100000,
                "max_order_notional": "1000000",
                "max_position": "1000",
            },
            "venues": {
                venue: {
                    "markets": [target.market],
                    "sim_url": f"http://127.0.0.1:{sim_port}",
                    **target.section,
                }
            },
        }
    )
    strategy = TickToTrade(target)
    engine = Engine(cfg, [strategy], journal_path=":memory:")
    echo_url = f"ws://127.0.0.1:{echo_port}/"
    floor: list[int] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(engine.run, 0)
        await engine.started.wait()
        book = engine.book(venue, target.market)
        while not book.is_synced:
            await trio.sleep(0.01)
        floor += await echo_round_trips(echo_url, samples // 2)
        async with open_websocket_url(echo_url) as control:
            await control.send_message(f"go {samples}")
            t2t = orjson.loads(await control.get_message())
        floor += await echo_round_trips(echo_url, samples - samples // 2)
        summary = engine.summary()
        nursery.cancel_scope.cancel()
    report(t2t, floor, strategy.sent, summary)


def pct(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


def report(t2t: list[int], floor: list[int], sent: int, summary: dict) -> None:
    print(f"samples: tick-to-trade {len(t2t):,} (orders sent {sent:,}), echo {len(floor):,}")
    print(f"{'':<28}{'p50':>10}{'p99':>10}{'p99.9':>10}{'mean':>10}  (µs)")
    for name, vals in (("tick-to-trade (botrun)", t2t), ("bare WS echo round trip", floor)):
        print(
            f"{name:<28}{pct(vals, 0.5):>10.1f}{pct(vals, 0.99):>10.1f}"
            f"{pct(vals, 0.999):>10.1f}{statistics.mean(vals) / 1000:>10.1f}"
        )
    for q, label in ((0.5, "p50"), (0.99, "p99"), (0.999, "p99.9")):
        print(f"ratio tick-to-trade / echo {label}: {pct(t2t, q) / pct(floor, q):.2f}x")
    met = pct(t2t, 0.99) <= 3 * pct(floor, 0.99)
    print(f"target: p99 <= 3x echo p99 -> {'met' if met else 'NOT met'}")
    for key, s in (summary.get("latency") or {}).items():
        print(
            f"  botrun histogram {key}: n={s['count']} p50 {s['p50_us']:.1f} µs"
            f" p99 {s['p99_us']:.1f} µs"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--venue", choices=sorted(TARGETS), default="paxos")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        trio.run(serve, args.venue)
        return
    from framework import logs

    logs.configure("plain", "error")
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--venue", args.venue],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    try:
        assert child.stdout is not None
        sim_port, echo_port = map(int, child.stdout.readline().split())
        print(f"venue: {args.venue}")
        trio.run(bench, args.venue, sim_port, echo_port, args.samples)
    finally:
        child.terminate()
        child.wait(5)


if __name__ == "__main__":
    main()
