"""Tick-to-trade over loopback, against the bare WebSocket round trip of the same two processes.

Process S (a child) serves the venue simulator (no synthetic crowd, so every book frame is ours)
and a bare trio-websocket echo server, in one trio loop. Process B (this one) runs the real
botrun engine in sandbox mode against it, with a strategy that, on seeing the trigger quote in a
book delta, sends an order. Both processes read the same CLOCK_MONOTONIC (`time.monotonic_ns`).

- tick-to-trade, socket edge to socket edge (the issue's definition, and the one the target
  uses): S places a trigger bid (a size no other order has) in its matching engine. t0 is
  stamped by `SimApp.observe` when the book frame carrying that size is handed to the ASGI send
  of B's connection, i.e. as it leaves the simulator (the ASGI server's WebSocket encoding and
  socket write follow). B: socket → trio-websocket reader task → session → venue decoder → book
  → bus → strategy `on_book` → `buy()` → risk → order manager → journal → venue client → socket.
  t1 is stamped by `SimApp.observe` when the order arrives: for Power.Trade the `new_order`
  frame as the simulator's connection takes it from the ASGI receive (after Hypercorn read and
  unframed it, before any handler work); for Paxos the POST to `/v2/profiles/{id}/orders` once
  its body is in (after Hypercorn parsed the HTTP request, before routing). Sample = t1 - t0.
  Why there: the simulator's own work (building and queueing the book frame, the writer task,
  the venue handler's JSON decode, auth and validation) is not botrun's, and the echo floor has
  none of it.
- tick-to-trade, sim engine to sim engine (kept for comparison): t0 when S's matching engine
  accepts the trigger, t1 when our order reaches S's matching engine; the same path plus the
  simulator's server hops on both sides.
- floor: B sends a message over a bare trio-websocket connection to S's echo server and waits for
  it back; sample = the round trip measured in B.

One trigger at a time; S removes it and waits 1 ms before the next, so samples do not queue
behind each other. Echo round trips and triggers alternate in blocks of 100 in the same run, so a
change in machine load reaches both figures alike.

`--venue paxos` orders are REST POSTs (the book comes over `/marketdata`); `--venue powertrade`
orders go over the WebSocket the book came on. `--gc freeze|off` is an experiment: process B's
cyclic garbage collector frozen (`gc.freeze()` after start-up) or disabled once synced.

Usage: python bench/latency.py [--samples 10000] [--venue paxos|powertrade] [--gc freeze|off]
"""

from __future__ import annotations

import argparse
import gc
import os
import re
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
from trio_websocket import WebSocketConnection, open_websocket_url, serve_websocket

from framework.engine import Engine
from framework.events import BookDelta, Side, TimeInForce
from framework.sim.engine import EngineListener, SimOrder
from framework.strategy import Strategy
from framework.venues import parse_config as parse
from framework.venues import venue_names

_PAXOS_ORDERS = re.compile(r"/v2/profiles/[^/]+/orders")


@attrs.frozen
class Target:
    """One venue as the bench drives it."""

    market: str
    trigger_size: Decimal  # the bench's quote: no crowd order has this size
    order_size: Decimal
    build: Callable[[], Any]  # the simulator (process S)
    owner: Callable[[Any], str]  # our account's owner id on its matching engine
    section: dict[str, Any]  # the venue's config section (process B), without sim_url
    # (path, direction, text) of a `SimApp.observe` call: is this our order arriving?
    is_order: Callable[[str, str, str], bool]


def _paxos_order(path: str, direction: str, text: str) -> bool:
    # POST /v2/profiles/{profile_id}/orders (REST); the order's body is in by then
    return direction == "http" and text == "POST" and _PAXOS_ORDERS.fullmatch(path) is not None


def _powertrade_order(path: str, direction: str, text: str) -> bool:
    return direction == "in" and text.startswith('{"new_order"')


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
        # order outcomes come from polling (the default 0.5 s): without it every IOC stays open
        # in B and the open-order set grows by one per sample
        {"trades": False, "balance_interval_s": 3600},
        _paxos_order,
    ),
    "powertrade": Target(
        "BTC-USD",
        Decimal("0.0777"),
        Decimal("0.0001"),
        _powertrade_sim,
        lambda sim: sim.owner,
        {"rfqs": False, "account_interval_s": 3600},
        _powertrade_order,
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


class _Edges:
    """`SimApp.observe`: the trigger's book frame leaving S (t0) and our order arriving (t1)."""

    def __init__(self, target: Target) -> None:
        self.trigger = f'"{target.trigger_size}"'  # a quoted wire number: no other frame has it
        self.is_order = target.is_order
        self.armed = False
        self.t0 = 0
        self.t1 = 0

    def arm(self) -> None:
        self.armed, self.t0, self.t1 = True, 0, 0

    def __call__(self, path: str, direction: str, text: str, ns: int) -> None:
        if not self.armed:
            return
        if not self.t0:
            if direction == "out" and self.trigger in text:
                self.t0 = ns
        elif not self.t1 and self.is_order(path, direction, text):
            self.t1 = ns
            self.armed = False


async def serve(venue: str) -> None:
    target = TARGETS[venue]
    sim = target.build()
    market = target.market
    arrivals = _Arrivals(target.owner(sim))
    sim.engine.add_listener(arrivals)
    edges = _Edges(target)
    sim.app.observe = edges  # before B connects: connections take the observer on accept

    async def trigger_run(n: int) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {"edge": [], "engine": []}
        best_bid = sim.engine.best_bid(market)
        best_ask = sim.engine.best_ask(market)
        assert best_bid is not None and best_ask is not None
        price = best_bid + sim.engine.tick(market)  # a new best bid, still below the ask
        assert price < best_ask
        for _ in range(n):
            arrivals.event = trio.Event()
            edges.arm()
            t0 = time.monotonic_ns()
            placed = sim.engine.submit(
                "bench", market, Side.BUY, "LIMIT", target.trigger_size, price
            )
            with trio.move_on_after(2.0):
                await arrivals.event.wait()
            edges.armed = False
            if arrivals.event.is_set():
                out["engine"].append(arrivals.t1 - t0)
                if edges.t0 and edges.t1:
                    out["edge"].append(edges.t1 - edges.t0)
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


async def echo_round_trips(ws: WebSocketConnection, n: int) -> list[int]:
    out = []
    payload = '{"type":"UPDATE","market":"BTCUSD","side":"BUY","price":"60000.25","amount":"1"}'
    for _ in range(n):
        t0 = time.monotonic_ns()
        await ws.send_message(payload)
        await ws.get_message()
        out.append(time.monotonic_ns() - t0)
    return out


async def bench(venue: str, sim_port: int, echo_port: int, samples: int, gc_mode: str) -> None:
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
    t2t: dict[str, list[int]] = {"edge": [], "engine": []}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(engine.run, 0)
        await engine.started.wait()
        book = engine.book(venue, target.market)
        while not book.is_synced:
            await trio.sleep(0.01)
        if gc_mode == "freeze":  # start-up objects leave the collector's view; GC stays on
            gc.collect()
            gc.freeze()
        elif gc_mode == "off":
            gc.collect()
            gc.disable()
        async with (
            open_websocket_url(echo_url) as echo,
            open_websocket_url(echo_url) as control,
        ):
            # interleaved blocks: both figures see the same machine load, also when it drifts
            for start in range(0, samples, BLOCK):
                n = min(BLOCK, samples - start)
                floor += await echo_round_trips(echo, n)
                await control.send_message(f"go {n}")
                for key, values in orjson.loads(await control.get_message()).items():
                    t2t[key] += values
        summary = engine.summary()
        summary["open_orders"] = len(engine.orders.open_orders(venue, None))
        nursery.cancel_scope.cancel()
    report(t2t["edge"], t2t["engine"], floor, strategy.sent, summary)


BLOCK = 100  # samples per block: echo round trips, then as many triggers


def pct(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


def report(t2t: list[int], engine: list[int], floor: list[int], sent: int, summary: dict) -> None:
    print(
        f"samples: tick-to-trade {len(t2t):,} socket edge, {len(engine):,} sim engine"
        f" (orders sent {sent:,}, still open in B at the end {summary['open_orders']:,});"
        f" echo {len(floor):,}"
    )
    print(f"{'':<78}{'p50':>9}{'p99':>9}{'p99.9':>9}{'mean':>9}  (µs)")
    for name, vals in (
        ("tick-to-trade, socket edge to socket edge (the issue's definition)", t2t),
        ("tick-to-trade, sim engine to sim engine (includes the simulator's server hops)", engine),
        ("bare trio-websocket echo round trip (the floor)", floor),
    ):
        print(
            f"{name:<78}{pct(vals, 0.5):>9.1f}{pct(vals, 0.99):>9.1f}"
            f"{pct(vals, 0.999):>9.1f}{statistics.mean(vals) / 1000:>9.1f}"
        )
    for q, label in ((0.5, "p50"), (0.99, "p99"), (0.999, "p99.9")):
        print(
            f"ratio tick-to-trade (socket edge) / echo {label}: {pct(t2t, q) / pct(floor, q):.2f}x"
        )
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
    # registered venues that have an order-path target here (venue-specific glue above)
    ap.add_argument("--venue", choices=[v for v in venue_names() if v in TARGETS], default="paxos")
    ap.add_argument(
        "--gc",
        choices=("default", "freeze", "off"),
        default="default",
        help="process B's cyclic GC once synced: as is, gc.freeze() (experiment), or disabled",
    )
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
        print(f"venue: {args.venue}, process B gc: {args.gc}")
        trio.run(bench, args.venue, sim_port, echo_port, args.samples, args.gc)
    finally:
        child.terminate()
        child.wait(5)


if __name__ == "__main__":
    main()
