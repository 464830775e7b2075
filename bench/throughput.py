"""Market-data throughput: botrun's full hot path against the JSON-decode ceiling, per venue.

For each venue, a seeded synthetic stream in that venue's own wire format (a snapshot first, then
N book-update frames on a book of about 200 levels a side, about 15% deletes) is measured in one
process, in interleaved rounds:

  (a) ceiling: `orjson.loads` of each frame and nothing else;
  (b) botrun: frame → the venue Stream's `decode` → normalized event → L2 book → bus → a strategy
      handler that reads best bid/ask.

The streams (every frame is one book event; the generators keep the book uncrossed):

  paxos       public `/marketdata`: one single-level UPDATE per frame (0.25 tick). The original
              figure: generator and measurement unchanged, measured last, and the script's final
              line is its `ratio b/a = X`.
  powertrade  Market Proxy L3 book (one order per level): `order_added` for a new level,
              `order_deleted`, `order_executed` for a level that shrank, `order_updated` (a new
              order id) for one that grew.
  roxom       `depth` deltas, one level per frame (the simulator's form), quantity "0" deletes:
              the Paxos stream's market change for change (same walk, same seed), 1e-8 tick.
  opentrade   ORDER_BOOK_PUBLIC: every frame is the whole top 20 levels a side (the venue's
              maximum) after one single-level change among them; JSON numbers, not strings.

The Paxos frames are bytes (as before); the others are str, as the session receives text frames.
Each venue's Stream is built offline (the venue's `replay_stream` where it has one, else its
constructor with no credentials), given what it would send on connect and the replies it waits
for (subscription acks), then the snapshot, all outside the timed part. After every (b) run the
book must be synced, hold exactly the generator's final book, and the handler must have seen one
event per frame: a stream the decoder silently drops cannot produce a flattering figure.

Usage: python bench/throughput.py [--venue paxos|powertrade|roxom|opentrade|all]
           [--frames 500000] [--rounds 3] [--seed 1] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import random
import statistics
import time
from bisect import insort
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
import trio

from framework.data.book import OrderBook
from framework.engine import Engine
from framework.events import BookDelta, BookSnapshot, Level
from framework.strategy import Strategy
from framework.transport.session import Connection
from framework.venue import Stream
from framework.venues import load_venue, venue_names
from framework.venues import parse_config as parse
from framework.venues.opentrade.public import PublicStream as OpenTradePublicStream
from framework.venues.opentrade.sim import num as opentrade_num
from framework.venues.powertrade.client import PowerTradeStream
from framework.venues.powertrade.sim import wire as powertrade_wire
from framework.venues.roxom.client import RoxomStream
from framework.venues.roxom.sim import px as roxom_px
from framework.venues.roxom.sim import qty as roxom_qty

TICK = Decimal("0.25")
Frame = str | bytes


@dataclass
class VenueBench:
    venue: str
    symbol: str
    description: str  # the block's first line
    frames: list[Frame]  # the timed frames, one book event each
    # a fresh offline stream and what it must decode first (acks, snapshot), untimed
    open_stream: Callable[[], tuple[Stream, list[Frame]]]
    # the book the run must end on (bids, asks; best first); None = not checked
    final: tuple[list[Level], list[Level]] | None = None
    note: str = ""


# --- Paxos (unchanged) ---------------------------------------------------------------------------


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


def paxos_stream(n: int, seed: int) -> VenueBench:
    snapshot, frames = make_stream(n, seed)
    size = sum(len(f) for f in frames) / len(frames)
    deletes = sum(b'"amount":"0"' in f for f in frames) / len(frames)
    cfg = parse({"venues": {"paxos": {"markets": ["BTCUSD"]}}}).venues["paxos"]

    def open_stream() -> tuple[Stream, list[Frame]]:
        stream = load_venue("paxos").replay_stream(cfg, "marketdata")
        assert stream is not None
        return stream, [snapshot]

    return VenueBench(
        "paxos",
        "BTCUSD",
        f"stream: {len(frames):,} UPDATE frames, {size:.0f} bytes avg, {deletes:.1%} deletes,"
        f" snapshot {len(snapshot):,} bytes",
        list(frames),
        open_stream,
    )


# --- the other venues: one synthetic market, each in its own wire format -------------------------


class BookWalk:
    """About `levels` price levels a side in integer ticks and lots, changed one level per step
    as the Paxos generator does: a delete (about 15%), or a new size at a price within `levels`
    ticks of the opposite touch (so never crossing). With `visible`, every change instead falls
    within the top `visible` levels of its side (a full-book feed that shows only those)."""

    def __init__(
        self,
        rng: random.Random,
        mid: int,
        max_lots: int,
        levels: int = 200,
        visible: int | None = None,
    ) -> None:
        self.rng, self.max_lots, self.levels, self.visible = rng, max_lots, levels, visible
        self.bids = {mid - i: rng.randint(1, max_lots) for i in range(1, levels + 1)}
        self.asks = {mid + i: rng.randint(1, max_lots) for i in range(1, levels + 1)}

    def step(self) -> tuple[bool, int, int]:
        """One change: (is_bid, price in ticks, new size in lots; 0 = the level is deleted)."""
        rng, bids, asks, visible = self.rng, self.bids, self.asks, self.visible
        is_bid = rng.random() < 0.5
        side = bids if is_bid else asks
        top = None
        if visible is not None:
            top = sorted(side, reverse=is_bid)[:visible]
        if rng.random() < 0.15 and len(side) > self.levels // 2:
            if top is not None:
                price = rng.choice(top)
            elif rng.random() < 0.02:
                price = rng.choice(list(side))
            else:
                price = rng.choice([max(side) if is_bid else min(side), *rng.sample(list(side), 3)])
            del side[price]
            return is_bid, price, 0
        # keep the book uncrossed: bids below the best ask, asks above the best bid; with
        # `visible`, no deeper than the last visible level (a new level there is visible)
        if is_bid:
            best_ask = min(asks)
            price = rng.randint(top[-1] if top else best_ask - self.levels, best_ask - 1)
        else:
            best_bid = max(bids)
            price = rng.randint(best_bid + 1, top[-1] if top else best_bid + self.levels)
        lots = rng.randint(1, self.max_lots)
        if side.get(price) == lots:
            lots = lots % self.max_lots + 1  # a change always changes the level
        side[price] = lots
        return is_bid, price, lots

    def book(
        self, tick: Decimal, lot: Decimal, depth: int | None = None
    ) -> tuple[list[Level], list[Level]]:
        """The current book as Decimal levels, best first (`depth` levels a side)."""
        bids = sorted(self.bids.items(), reverse=True)[:depth]
        asks = sorted(self.asks.items())[:depth]
        return (
            [(Decimal(p) * tick, Decimal(q) * lot) for p, q in bids],
            [(Decimal(p) * tick, Decimal(q) * lot) for p, q in asks],
        )


class _Outbox:
    """Stands in for the socket while a stream connects: keeps what it sends."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send_message(self, text: str) -> None:
        self.sent.append(orjson.loads(text))


def connect_offline(stream: Stream) -> list[dict[str, Any]]:
    """Run the stream's `on_connected` (subscriptions, decoder state) with no socket; returns the
    messages it sent, to answer them."""
    outbox = _Outbox()
    trio.run(stream.on_connected, Connection(outbox))  # type: ignore[arg-type]
    return outbox.sent


def _avg_size(frames: list[Frame]) -> float:
    return sum(len(f) for f in frames) / len(frames)


def powertrade_stream(n: int, seed: int) -> VenueBench:
    symbol, entity, tick, lot = "BTC-USD", "4", Decimal("0.1"), Decimal("0.0001")
    walk = BookWalk(random.Random(seed), mid=600_000, max_lots=20_000)
    ids = iter(range(9_553_031, 10**12))
    orders: dict[bool, dict[int, tuple[str, int]]] = {  # is_bid -> ticks -> (order id, lots)
        True: {p: (str(next(ids)), q) for p, q in walk.bids.items()},
        False: {p: (str(next(ids)), q) for p, q in walk.asks.items()},
    }
    us = 1_700_000_000_000_000  # venue time, µs

    def price(ticks: int) -> str:
        return powertrade_wire(Decimal(ticks) * tick)

    def qty(lots: int) -> str:
        return powertrade_wire(Decimal(lots) * lot)

    def rows(is_bid: bool) -> list[dict[str, str]]:
        ordered = sorted(orders[is_bid].items(), reverse=is_bid)
        return [
            {"utc_timestamp": str(us), "price": price(p), "quantity": qty(q), "order_id": oid}
            for p, (oid, q) in ordered
        ]

    head = {"market_id": "0", "tradeable_entity_id": entity, "symbol": symbol}
    snapshot = orjson.dumps(
        {
            "snapshot": {
                "server_utc_timestamp": str(us),
                **head,
                "buy": rows(True),
                "sell": rows(False),
            }
        }
    ).decode()
    frames: list[Frame] = []
    kinds: Counter[str] = Counter()
    for _ in range(n):
        is_bid, ticks, lots = walk.step()
        us += 1
        level = orders[is_bid]
        body: dict[str, str] = {"server_utc_timestamp": str(us), "utc_timestamp": str(us), **head}
        side = "buy" if is_bid else "sell"
        if lots == 0:
            oid, _ = level.pop(ticks)
            kind = "order_deleted"
            body |= {"side": side, "order_id": oid, "price": price(ticks)}
        elif ticks not in level:
            oid = str(next(ids))
            level[ticks] = (oid, lots)
            kind = "order_added"
            body |= {"side": side, "order_id": oid, "price": price(ticks), "quantity": qty(lots)}
        elif lots < level[ticks][1]:
            oid, old = level[ticks]
            level[ticks] = (oid, lots)
            # [INF, as the simulator] `quantity` is the quantity executed by this event
            kind = "order_executed"
            body |= {
                "side": side,
                "order_id": oid,
                "price": price(ticks),
                "quantity": qty(old - lots),
            }
        else:
            old_id, new_id = level[ticks][0], str(next(ids))
            level[ticks] = (new_id, lots)
            kind = "order_updated"
            body |= {
                "old_order_id": old_id,
                "new_order_id": new_id,
                "price": price(ticks),
                "quantity": qty(lots),
            }
        kinds[kind] += 1
        frames.append(orjson.dumps({kind: body}).decode())

    def open_stream() -> tuple[Stream, list[Frame]]:
        stream = PowerTradeStream("ws://bench.invalid", [symbol], login=None, rfqs=False)
        # [DOC] every request is answered by a command_response carrying its user_tag
        acks = [
            orjson.dumps(
                {"command_response": {"error_code": "0", "error_text": "success", "user_tag": tag}}
            ).decode()
            for message in connect_offline(stream)
            for body in message.values()
            if (tag := body.get("user_tag"))
        ]
        return stream, [*acks, snapshot]

    mix = ", ".join(f"{k} {v / n:.0%}" for k, v in sorted(kinds.items()))
    return VenueBench(
        "powertrade",
        symbol,
        f"powertrade stream: {n:,} L3 frames ({mix}), one order per level,"
        f" {_avg_size(frames):.0f} bytes avg, snapshot {len(snapshot):,} bytes",
        frames,
        open_stream,
        walk.book(tick, lot),
    )


def roxom_stream(n: int, seed: int) -> VenueBench:
    symbol, tick, lot = "US500-BTC", Decimal("0.00000001"), Decimal("0.001")
    walk = BookWalk(random.Random(seed), mid=432_450, max_lots=2_000_000)
    ts = 1_700_000_000_000_000_000  # venue time, ns (above 2^53, JSON integers)

    def levels(items: list[tuple[int, int]]) -> list[list[str]]:
        return [[roxom_px(Decimal(p) * tick), roxom_qty(Decimal(q) * lot)] for p, q in items]

    def message(kind: str, bid: list[list[str]], ask: list[list[str]]) -> str:
        data = {"symbol": symbol, "bid": bid, "ask": ask, "timestamp": ts}
        envelope = {"topic": f"depth.{symbol}", "type": kind, "createdTime": ts, "data": data}
        return orjson.dumps(envelope).decode()

    snapshot = message(
        "snapshot",
        levels(sorted(walk.bids.items(), reverse=True)),
        levels(sorted(walk.asks.items())),
    )
    frames: list[Frame] = []
    deletes = 0
    for _ in range(n):
        is_bid, ticks, lots = walk.step()
        ts += 1  # [INF, as the simulator] strictly increasing per symbol
        deletes += lots == 0
        level = levels([(ticks, lots)])
        frames.append(message("delta", level if is_bid else [], [] if is_bid else level))

    def open_stream() -> tuple[Stream, list[Frame]]:
        # no signer: never connected, the signature is only sent on the handshake
        stream = RoxomStream("ws://bench.invalid", None, [symbol], ["depth"])  # type: ignore[arg-type]
        # [INF, as the simulator] one ack per subscription argument, echoing it
        acks = [
            orjson.dumps(
                {"event": "subscribe", "arg": arg, "code": "0", "connId": "bench"}
            ).decode()
            for message in connect_offline(stream)
            for arg in message["args"]
        ]
        return stream, [*acks, snapshot]

    return VenueBench(
        "roxom",
        symbol,
        f"roxom stream: {n:,} depth delta frames, one level each,"
        f" {_avg_size(frames):.0f} bytes avg, {deletes / n:.1%} deletes,"
        f" snapshot {len(snapshot):,} bytes",
        frames,
        open_stream,
        walk.book(tick, lot),
    )


def opentrade_stream(n: int, seed: int) -> VenueBench:
    symbol, tick, lot, depth = "BTC/USD", Decimal("0.01"), Decimal("0.00000001"), 20
    walk = BookWalk(random.Random(seed), mid=6_000_000, max_lots=1_000_000, visible=depth)
    ms = 1_700_000_000_000  # eventTime, ms: one book every 20 ms

    def render(ticks: int, lots: int) -> str:
        return orjson.dumps(
            [opentrade_num(Decimal(ticks) * tick), opentrade_num(Decimal(lots) * lot)]
        ).decode()

    # each side: rendered "[price,size]" by price, and its prices ascending
    text = {
        True: {p: render(p, q) for p, q in walk.bids.items()},
        False: {p: render(p, q) for p, q in walk.asks.items()},
    }
    prices = {True: sorted(walk.bids), False: sorted(walk.asks)}

    def book_frame(event: str) -> str:
        bids = ",".join(map(text[True].__getitem__, prices[True][: -depth - 1 : -1]))
        asks = ",".join(map(text[False].__getitem__, prices[False][:depth]))
        return (
            f'{{"command":"SUBSCRIBE","event":"{event}","channel":"ORDER_BOOK_PUBLIC","data":'
            f'[{{"class":"OrderBook","exchange":"OPENTRADE-SIM","symbol":"{symbol}",'
            f'"bids":[{bids}],"asks":[{asks}],"eventTime":{ms}}}]}}'
        )

    first = book_frame("SNAPSHOT")
    frames: list[Frame] = []
    deletes = 0
    for _ in range(n):
        is_bid, ticks, lots = walk.step()
        ms += 20
        if lots == 0:
            deletes += 1
            del text[is_bid][ticks]
            prices[is_bid].remove(ticks)
        else:
            if ticks not in text[is_bid]:
                insort(prices[is_bid], ticks)
            text[is_bid][ticks] = render(ticks, lots)
        frames.append(book_frame("UPDATE"))

    def open_stream() -> tuple[Stream, list[Frame]]:
        stream = OpenTradePublicStream("ws://bench.invalid", [symbol], levels=depth, trades=False)
        acks = [
            orjson.dumps(
                {"command": m["command"], "event": "ACK", "channel": m["channel"]}
            ).decode()
            for m in connect_offline(stream)
        ]
        return stream, [*acks, first]

    return VenueBench(
        "opentrade",
        symbol,
        f"opentrade stream: {n:,} ORDER_BOOK_PUBLIC frames, each the top {depth} levels a side"
        f" after one level among them changed, {_avg_size(frames):.0f} bytes avg,"
        f" {deletes / n:.1%} of the changes deletes, first book {len(first):,} bytes",
        frames,
        open_stream,
        walk.book(tick, lot, depth),
        note="opentrade note: (a) is orjson.loads, which its decoder cannot use (orjson reads"
        " JSON numbers as binary floats): it parses with json, parse_float=Decimal (loads_decimal)",
    )


# each venue's wire-format generator (venue-specific by nature), in the order they are measured
STREAMS: dict[str, Callable[[int, int], VenueBench]] = {
    "powertrade": powertrade_stream,
    "roxom": roxom_stream,
    "opentrade": opentrade_stream,
    "paxos": paxos_stream,
}


def _measured_order(venue: str) -> tuple[bool, int]:
    # Paxos last (its ratio ends the output); a registered venue without a generator yet sorts
    # before it and fails loudly (here and in tests/bench), never silently unmeasured
    order = list(STREAMS)
    return venue == "paxos", order.index(venue) if venue in order else len(order)


# the venues come from the registry, the one venue list
VENUES = tuple(sorted(venue_names(), key=_measured_order))


# --- measurement ---------------------------------------------------------------------------------


class ReadTop(Strategy):
    def on_start(self) -> None:
        self.seen = 0

    def on_book(self, event: BookSnapshot | BookDelta) -> None:
        book = self.book(event.venue, event.symbol)
        book.best_bid()
        book.best_ask()
        self.seen += 1


def botrun_path(bench: VenueBench) -> float:
    cfg = parse({"venues": {bench.venue: {"markets": [bench.symbol]}}})
    strategy = ReadTop()
    engine = Engine(cfg, [])
    stream, first = bench.open_stream()
    stream.emit = engine.on_event
    book = engine.books[(bench.venue, bench.symbol)] = OrderBook(bench.venue, bench.symbol)
    engine._attach(strategy)
    decode = stream.decode
    for frame in first:
        decode(frame, time.monotonic_ns())
    frames = bench.frames
    clock = time.monotonic_ns
    gc.collect()
    start = time.perf_counter()
    for frame in frames:
        decode(frame, clock())
    elapsed = time.perf_counter() - start
    venue = bench.venue
    assert book.is_synced, f"{venue}: book not synced after the run: {book.unsync_reason}"
    assert strategy.seen == len(frames) + 1, f"{venue}: {strategy.seen:,} book events"
    assert not getattr(stream, "errors", None), f"{venue}: stream errors {stream.errors}"  # type: ignore[attr-defined]
    if bench.final is not None:
        assert (book.bids(), book.asks()) == bench.final, f"{venue}: wrong book after the run"
    return elapsed


def ceiling(frames: list[Frame]) -> float:
    loads = orjson.loads
    gc.collect()
    start = time.perf_counter()
    for frame in frames:
        loads(frame)
    return time.perf_counter() - start


def measure(bench: VenueBench, rounds: int) -> None:
    print(bench.description)
    if bench.note:
        print(bench.note)
    n = len(bench.frames)
    a_rates, b_rates = [], []
    for r in range(rounds):
        a_rates.append(n / ceiling(bench.frames))
        b_rates.append(n / botrun_path(bench))
        print(f"round {r + 1}: (a) {a_rates[-1]:>12,.0f} ev/s   (b) {b_rates[-1]:>10,.0f} ev/s")
    for name, rates in (("(a) orjson.loads ceiling", a_rates), ("(b) botrun full path", b_rates)):
        print(
            f"{name:<26} median {statistics.median(rates):>12,.0f} ev/s"
            f"  min {min(rates):>12,.0f}  max {max(rates):>12,.0f}"
        )
    prefix = "" if bench.venue == "paxos" else f"{bench.venue} "
    print(f"{prefix}ratio b/a = {statistics.median(b_rates) / statistics.median(a_rates):.3f}")


def profile(bench: VenueBench, top: int = 8) -> None:
    print(bench.description)
    profiler = cProfile.Profile()
    profiler.runcall(botrun_path, bench)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--venue", choices=[*VENUES, "all"], default="all")
    ap.add_argument("--frames", type=int, default=500_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--profile", action="store_true", help="profile one (b) run per venue instead (cProfile)"
    )
    args = ap.parse_args()
    venues = VENUES if args.venue == "all" else (args.venue,)
    for i, venue in enumerate(venues):
        if i:
            print()
        if venue not in STREAMS:
            raise SystemExit(f"throughput: no stream generator for registered venue {venue!r}")
        bench = STREAMS[venue](args.frames, args.seed)
        if args.profile:
            profile(bench)
        else:
            measure(bench, args.rounds)
        del bench  # one venue's frames in memory at a time


if __name__ == "__main__":
    main()
