"""Market-data throughput: botrun's full hot path against the JSON-decode ceiling.

A seeded synthetic Paxos public `/marketdata` stream (one SNAPSHOT, then N single-level UPDATE
frames on a 0.25 tick, about 200 levels a side, about 15% deletes) is measured in one process,
in interleaved rounds:

  (a) ceiling: `orjson.loads` of each frame and nothing else;
  (b) botrun: frame → Paxos decoder → normalized event → L2 book → bus → a strategy handler that
      reads best bid/ask.

Usage: python bench/throughput.py [--frames 500000] [--rounds 3] [--seed 1]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from decimal import Decimal

import orjson

from framework.book import OrderBook
from framework.config import parse
from framework.events import BookDelta, BookSnapshot
from framework.runner import Engine
from framework.strategy import Strategy
from framework.venues.paxos.client import PublicStream

TICK = Decimal("0.25")


def make_stream(n: int, seed: int, levels: int = 200) -> tuple[str, list[bytes]]:
    rng = random.Random(seed)
    mid = 60_000 * 4  # in ticks
    bids = {mid - i: rng.randint(1, 2_000_000) for i in range(1, levels + 1)}
    asks = {mid + i: rng.randint(1, 2_000_000) for i in range(1, levels + 1)}

    def px(ticks: int) -> str:
        text = str(Decimal(ticks) * TICK)
        return text.rstrip("0").rstrip(".") if "." in text else text

    def amt(units: int) -> str:
        return str((Decimal(units) / Decimal(10**8)).normalize())

    snapshot = orjson.dumps(
        {
            "type": "SNAPSHOT",
            "market": "BTCUSD",
            "bids": [
                {"price": px(p), "amount": amt(a)} for p, a in sorted(bids.items(), reverse=True)
            ],
            "asks": [{"price": px(p), "amount": amt(a)} for p, a in sorted(asks.items())],
            "final_snapshot": True,
        }
    ).decode()
    frames = []
    for _ in range(n):
        is_bid = rng.random() < 0.5
        side = bids if is_bid else asks
        best_bid, best_ask = max(bids), min(asks)
        if rng.random() < 0.15 and len(side) > levels // 2:
            price = (
                rng.choice(list(side))
                if rng.random() < 0.02
                else rng.choice([max(side) if is_bid else min(side), *rng.sample(list(side), 3)])
            )
            del side[price]
            amount = "0"
        else:
            # keep the book uncrossed: bids below the best ask, asks above the best bid
            price = (
                rng.randint(best_ask - levels, best_ask - 1)
                if is_bid
                else rng.randint(best_bid + 1, best_bid + levels)
            )
            side[price] = rng.randint(1, 2_000_000)
            amount = amt(side[price])
        frames.append(
            f'{{"type":"UPDATE","market":"BTCUSD","side":"{"BUY" if is_bid else "SELL"}",'
            f'"price":"{px(price)}","amount":"{amount}"}}'.encode()
        )
    return snapshot, frames


class ReadTop(Strategy):
    def on_start(self) -> None:
        self.seen = 0

    def on_book(self, event: BookSnapshot | BookDelta) -> None:
        book = self.book(event.venue, event.symbol)
        book.best_bid()
        book.best_ask()
        self.seen += 1


def botrun_path(snapshot: str, frames: list[bytes]) -> tuple[float, int]:
    cfg = parse({"venues": {"paxos": {"markets": ["BTCUSD"]}}})
    strategy = ReadTop()
    engine = Engine(cfg, [])
    stream = PublicStream("ws://127.0.0.1:1", "marketdata", ["BTCUSD"])
    stream.emit = engine.on_event
    engine.books[("paxos", "BTCUSD")] = OrderBook("paxos", "BTCUSD")
    engine._attach(strategy)
    decode = stream.decode
    decode(snapshot, time.monotonic_ns())
    clock = time.monotonic_ns
    gc.collect()
    start = time.perf_counter()
    for frame in frames:
        decode(frame, clock())
    elapsed = time.perf_counter() - start
    assert engine.books[("paxos", "BTCUSD")].is_synced, "the synthetic stream crossed the book"
    return elapsed, strategy.seen


def ceiling(frames: list[bytes]) -> float:
    loads = orjson.loads
    gc.collect()
    start = time.perf_counter()
    for frame in frames:
        loads(frame)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=500_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    snapshot, frames = make_stream(args.frames, args.seed)
    size = sum(len(f) for f in frames) / len(frames)
    deletes = sum(b'"amount":"0"' in f for f in frames) / len(frames)
    print(
        f"stream: {len(frames):,} UPDATE frames, {size:.0f} bytes avg, {deletes:.1%} deletes,"
        f" snapshot {len(snapshot):,} bytes"
    )
    a_rates, b_rates = [], []
    for r in range(args.rounds):
        ta = ceiling(frames)
        tb, seen = botrun_path(snapshot, frames)
        assert seen == len(frames) + 1, seen
        a_rates.append(len(frames) / ta)
        b_rates.append(len(frames) / tb)
        print(f"round {r + 1}: (a) {a_rates[-1]:>12,.0f} ev/s   (b) {b_rates[-1]:>10,.0f} ev/s")
    for name, rates in (("(a) orjson.loads ceiling", a_rates), ("(b) botrun full path", b_rates)):
        print(
            f"{name:<26} median {statistics.median(rates):>12,.0f} ev/s"
            f"  min {min(rates):>12,.0f}  max {max(rates):>12,.0f}"
        )
    print(f"ratio b/a = {statistics.median(b_rates) / statistics.median(a_rates):.3f}")


if __name__ == "__main__":
    main()
