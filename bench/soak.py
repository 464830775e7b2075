"""Soak: every venue simulator with random faults for a bounded time; the guarantees must hold.

    .venv/bin/python bench/soak.py [--minutes 10] [--seconds N] [--seed 1]

For each venue that ships a ChaosCase (framework/venues/<venue>/chaos.py) an engine trades in
sandbox mode against the venue's embedded simulator under a seeded random fault mix: book frames
duplicated, malformed, oversized, delayed, stalled, closed, aborted, replaced by unreadable ones,
handshakes refused, REST 429/5xx, lost replies, delayed acknowledgements, token expiry and late
fills (where the simulator can); and issue #15's: creates held past the client's timeout, 429/5xx
or a connection reset after the venue acted on a create (on a WebSocket venue: the socket
dropped instead of the reply), one number of an order answer or order event corrupted, junk
bodies and nonsense Retry-After on every REST order path, and the journal's disk full for a few
writes near the end (trading then halts in order). Lost and
reordered book frames are injected only where the venue's feed can detect them (sequence
numbers); a feed without them cannot, by construction (see the report in framework/testing/run.py).

The soak moves the market, places and cancels orders and trades against them, and every few
steps waits until the book stream is quiescent and compares every book with the simulator's.
At the end it turns the faults off, cancels everything, waits for every order to be terminal and
compares journal and venue: orders, statuses, filled quantities, fills, positions.

Prints faults injected, reconnects, resyncs, book checks and mismatches, lost and duplicated
orders, fill problems, and RSS at start, after a warm-up (10% of the run: bounded histories and
caches fill up) and at the end. Orders final on both sides are checked as the soak goes and
then forgotten by the harness, so its own records do not grow with the run. Exit status 1 on
any mismatch.
"""

from __future__ import annotations

import argparse
import gc
import random
import re
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from framework import logs
from framework.errors import FetchError
from framework.events import BookState, BookStatus, Side
from framework.sim.faults import CORRUPT_FORMS, FaultPlan
from framework.testing import ChaosCase, ChaosRun, chaos, chaos_cases
from framework.transport.session import first_leaf

# the simulator's order/fill history and the order manager's retention of terminal orders:
# bounded either way, lower here so that both plateau within the warm-up (first 10%)
SIM_HISTORY = 200
# ... but the venue must remember a finished order for longer than the client may take to ask
# about it (an UNKNOWN order is asked for through the "not found" grace, HOLD_S + 5 s). The
# order history counts every participant's finished orders, and the crowd finishes hundreds a
# second: at 200, Power.Trade's order cache forgot our orders within about a second, so an
# order whose execution was lost with a connection was "not found" (then REJECTED, its fill
# never seen) though the venue had filled it. A real venue keeps them for minutes ([DOC]
# "not found in order cache"; [CODE] Hummingbot believes it only after 300 s).
SIM_ORDER_HISTORY = 5000
SIM_FILL_HISTORY = 2000
CHECK_EVERY = 10  # market rounds between book comparisons
MAX_OPEN = 6
QUANTITY_KEY = re.compile(r"(?i)qty|quantity|size|amount|filled")


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def fault_mix(case: ChaosCase, seed: int, without: frozenset[str] = frozenset()) -> FaultPlan:
    plan = FaultPlan(seed)
    path = case.book_path
    for kind, rate in {
        "duplicate": 0.003,
        "malformed": 0.003,
        "delay": 0.003,
        "oversized": 0.0003,
        "close": 0.0003,
        "abort": 0.0003,
    }.items():
        plan.add(kind, rate, path, **({"bytes": (1 << 16) + 1} if kind == "oversized" else {}))
    for kind in case.unsafe_book_faults:
        plan.add(kind, 0.0, path)  # listed at rate 0: this feed cannot detect them
    if case.detects_gaps:
        plan.add("drop", 0.002, path)
        plan.add("reorder", 0.002, path)
    plan.add("refuse", 0.2)
    case.order_faults(plan, 0.4)
    for kind in case.venue_faults:
        plan.add(kind, 0.3 if kind == "late_fill" else 0.01)
    plan.add("stall", 0.0001, path, seconds=0.5)  # socket open, nothing sent for a while
    # issue #15: what an attacker's proxy did that the layer used to lack
    plan.add("corrupt_frame", 0.002, path)  # book frames replaced by unreadable ones
    plan.add("corrupt_frame", 0.001)  # and any frame (order updates among them)
    # the connection drops right after the venue acted on a create (REST: a reset before the
    # answer; WebSocket: the socket aborted instead of the reply): the venue's scripted rules,
    # made random
    probe = FaultPlan(0)
    for rule in case.reset_after_create(probe):
        plan.add(rule.kind, 0.02, rule.path, match=rule.match, **rule.params)
    if case.order_frames is not None:
        # one number of an order event corrupted on the stream; a thousand times larger only
        # for quantities (a price that size still reads as a price, see the guarantee suite)
        quantities = tuple(k for k in case.order_numbers if QUANTITY_KEY.search(k))
        for form in CORRUPT_FORMS:
            keys = quantities if form == "times1000" else case.order_numbers
            plan.add("corrupt_number", 0.005, match=case.order_frames, form=form, keys=keys)
    rest = rest_order_paths(case)
    if rest is not None:
        create, _ = rest
        plan.add("http_hold", 0.02, create, seconds=HOLD_S)  # lands after the client gave up
        plan.add("http_error_after", 0.03, create)  # 429/5xx after the venue acted
    for order_path in http_order_paths(case):
        plan.add("corrupt_number", 0.02, order_path)
        plan.add("http_junk_body", 0.01, order_path)
        plan.add("http_bad_retry_after", 0.005, order_path)
    plan.rules = [r for r in plan.rules if r.kind not in without]
    return plan


# a create held this long reaches the venue after the client's 10 s timeout; "not found" is
# then kept UNKNOWN for longer (the grace is set above it)
HOLD_S = 12.0


def rest_order_paths(case: ChaosCase) -> tuple[str, list[str]] | None:
    """(create path, every order path) of a venue whose orders go over REST, else None."""
    probe = FaultPlan(0)
    submit = case.lose_submit_reply(probe)
    if not submit or any(not r.kind.startswith("http_") for r in submit):
        return None
    paths = {r.path for r in submit + case.queries_fail(probe) if r.kind.startswith("http_")}
    return submit[0].path, sorted(paths)


def http_order_paths(case: ChaosCase) -> list[str]:
    """Every REST path of a venue's order path (creates, queries), also where orders travel on
    a WebSocket but are queried over REST (Power.Trade's order details)."""
    probe = FaultPlan(0)
    rules = case.lose_submit_reply(probe) + case.queries_fail(probe)
    return sorted({r.path for r in rules if r.kind.startswith("http_")})


class Stats:
    def __init__(self) -> None:
        self.orders = 0
        self.rounds = 0
        self.resyncs = 0
        self.told: Counter[str] = Counter()


async def soak_venue(
    case: ChaosCase,
    seconds: float,
    seed: int,
    out: dict[str, Any],
    ready: trio.Event | None = None,
    without: frozenset[str] = frozenset(),
) -> None:
    """One venue's soak; a start-up fetch that times out on a loaded machine is tried again
    (start-up robustness is not what the soak measures)."""
    for attempt in range(1, 6):
        try:
            await _soak_venue(case, seconds, seed, out, ready, without)
            return
        except Exception as raw:
            exc = first_leaf(raw)
            if not isinstance(exc, FetchError) or "rss_start" in out or attempt == 5:
                print(f"{case.venue}: soak failed: {type(exc).__name__}: {exc}", flush=True)
                raise
            print(f"{case.venue}: start-up fetch failed ({exc}); starting again", flush=True)


async def _soak_venue(
    case: ChaosCase,
    seconds: float,
    seed: int,
    out: dict[str, Any],
    ready: trio.Event | None = None,
    without: frozenset[str] = frozenset(),
) -> None:
    plan = fault_mix(case, seed, without)
    stats = Stats()
    rng = random.Random(seed)
    async with chaos(case.venue, seed=seed, faults=plan) as run:
        # the simulator's own history (orders, fills) is bounded at 100k each; cap it lower so
        # the venue's memory plateaus in the first minute and RSS shows the client's (the checks
        # use events recorded as they happen, not that history)
        engine = run.sim.engine
        engine.limit_history(orders=SIM_ORDER_HISTORY, fills=SIM_FILL_HISTORY)
        run.engine.orders.retain_terminal = SIM_HISTORY
        run.engine.orders.not_found_grace_s = HOLD_S + 5
        # a journal disk failure is scripted in the last tenth of the run: trading then halts
        # (new orders refused, open ones cancelled) and the run goes on without exiting
        run.engine.orders.exit_on_journal_failure = False
        run.engine.journal.fault = plan.journal_hook()
        disk_failed = False
        await run.settle(synced=True)
        # oversized frames must exceed what the client accepts: lower its limit, reconnect
        run.book_session.stream.max_message_size = 1 << 16
        run.sim.app.close_all_ws(1012)
        last: dict[str, BookState] = {}

        def on_status(event: BookStatus) -> None:
            if event.state is BookState.SYNCED and last.get(event.symbol) is not BookState.SYNCED:
                stats.resyncs += 1
            last[event.symbol] = event.state
            stats.told[event.state.value] += 1

        run.engine.bus.subscribe(BookStatus, on_status, venue=case.venue, owner="soak")
        await run.settle(synced=True)
        if ready is not None:
            ready.set()
        out["rss_start"] = rss_mib()
        out["seconds"] = seconds
        out["rss_samples"] = samples = []
        out["object_samples"] = objects = []
        start = trio.current_time()
        deadline = start + seconds
        next_sample = start + seconds / 10
        while trio.current_time() < deadline:
            if trio.current_time() >= next_sample:
                samples.append(round(rss_mib(), 1))
                objects.append(len(gc.get_objects()))  # live Python objects: leak or allocator?
                next_sample += seconds / 10
            if not disk_failed and trio.current_time() >= start + seconds * 0.9:
                disk_failed = True
                plan.once("journal_enospc", times=5)
            stats.rounds += 1
            run.step(rng.randint(5, 40))
            _trade(run, rng, stats)
            if stats.rounds % CHECK_EVERY == 0:
                await run.settle(synced=True)
                run.book_problems()
                run.forget_settled()  # checked now, so the harness's records stay bounded
            await trio.sleep(0.01)
        await run.settle(synced=True)
        run.book_problems()
        await run.finish_orders()
        problems = run.order_problems()
        sessions = run.engine.sessions
        orders = run.engine.orders
        gap_blind = not case.detects_gaps
        out.update(
            venue=case.venue,
            faults=plan.summary(),
            fault_total=sum(plan.counts.values()),
            reconnects=sum(s.counts["reconnects"] for s in sessions),
            disconnects=sum(s.counts["disconnects"] for s in sessions),
            bad_frames=sum(s.counts["bad_frames"] for s in sessions),
            resyncs=stats.resyncs,
            told=dict(stats.told),
            book_checks=run.book_checks,
            mismatches=len(run.mismatches),
            mismatch_samples=run.mismatches[:5],
            orders=stats.orders,
            venue_orders=run.orders_recorded,
            fills=run.fills_recorded,
            settled=len(run.settled),
            lost=sum(p.startswith("lost") for p in problems),
            duplicated=sum(p.startswith("duplicated") for p in problems),
            # working at the venue after every order here ended, or found there at start-up
            orphans=sum(
                o.status not in ("FILLED", "CANCELLED", "REJECTED", "EXPIRED")
                for o in run.venue_orders()
            )
            + orders.counts["orphans"],
            phantom_fills=sum("in the journal but not at the venue" in p for p in problems),
            fill_sum_mismatches=sum(
                any(k in p for k in ("journal filled", "fills total", "fill lost", ": journal "))
                for p in problems
            ),
            books_wrong_synced=sum("synced but different" in m for m in run.mismatches),
            gap_blind=gap_blind,
            unreadable_refused=orders.counts["unreadable_reports"],
            not_found_waits=orders.counts["not_found_waiting"],
            revived=orders.counts["revived"],
            working_checks=orders.counts["working_checks"],
            journal_errors=orders.counts["journal_errors"],
            halted=orders.halted,
            held_requests=f"{run.sim.app.held} ({run.sim.app.held_applied} applied late)",
            other_problems=[p for p in problems if not p.startswith(("lost", "duplicated"))],
            unknown_seen=run.engine.orders.counts["unknown"],
            duplicate_fills_refused=run.engine.orders.counts["duplicate_fills"],
            rss_end=rss_mib(),
            held={
                "client orders": len(run.engine.orders.orders),
                "sim engine orders": len(run.sim.engine._orders),
                "sim engine fills": len(run.sim.engine._fills),
                "harness records": len(run.recorded_orders),
            },
        )


def _trade(run: ChaosRun, rng: random.Random, stats: Stats) -> None:
    case, sim, orders = run.case, run.sim, run.engine.orders
    market = rng.choice(case.markets)
    working = orders.open_orders(case.venue, market)
    if working and rng.random() < 0.3:
        orders.cancel(rng.choice(working).client_order_id)
    if len(working) < MAX_OPEN:
        bid, ask = sim.engine.best_bid(market), sim.engine.best_ask(market)
        if bid is not None and ask is not None:
            side = rng.choice((Side.BUY, Side.SELL))
            tick = case.tick(sim, market)
            ticks = rng.randint(0, 4)
            price = bid - ticks * tick if side is Side.BUY else ask + ticks * tick
            orders.submit(
                venue=case.venue,
                symbol=market,
                side=side,
                quantity=case.lot * rng.randint(1, 10),
                price=price,
            )
            stats.orders += 1
    if rng.random() < 0.1:  # someone trades through the top levels (and maybe our orders)
        side = rng.choice((Side.BUY, Side.SELL))
        best = sim.engine.best_ask(market) if side is Side.BUY else sim.engine.best_bid(market)
        if best is not None:
            tick = case.tick(sim, market)
            limit = best + 3 * tick if side is Side.BUY else best - 3 * tick
            run.take(market, side, case.lot * rng.randint(5, 40), limit)


async def soak(
    seconds: float,
    seed: int,
    venues: list[str] | None = None,
    without: frozenset[str] = frozenset(),
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    async with trio.open_nursery() as nursery:
        for i, case in enumerate(chaos_cases().values()):
            if venues and case.venue not in venues:
                continue
            out: dict[str, Any] = {"venue": case.venue}
            results.append(out)
            # one venue starts once the one before is up: four start-ups at once on a small
            # machine can miss a venue's start-up fetch timeout (0.5 s in the chaos sections)
            ready = trio.Event()
            nursery.start_soon(soak_venue, case, seconds, seed + i, out, ready, without)
            await ready.wait()
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--seconds", type=float, help="overrides --minutes")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--venue", action="append", help="only this venue (repeatable)")
    p.add_argument("--without", action="append", default=[], help="leave out this fault kind")
    args = p.parse_args()
    seconds = args.seconds if args.seconds is not None else args.minutes * 60
    with tempfile.TemporaryDirectory(prefix="botrun-soak-") as tmp:
        log_path = Path(tmp) / "soak.log"
        with open(log_path, "w") as log_file:
            logs.configure("json", "warning", stream=log_file)
            started = time.monotonic()
            rss_before = rss_mib()
            results = trio.run(soak, seconds, args.seed, args.venue, frozenset(args.without))
            elapsed = time.monotonic() - started
        log_lines = len(log_path.read_text().splitlines())
    failed = False
    print(f"soak: {elapsed:.0f}s, seed {args.seed}, venues {[r['venue'] for r in results]}")
    print(f"process RSS before start-up: {rss_before:.1f} MiB; warnings logged: {log_lines}")
    for r in results:
        print(f"\n== {r['venue']}")
        print(f"faults injected:    {r['fault_total']} ({r['faults']})")
        print(
            f"reconnects:         {r['reconnects']} (disconnects {r['disconnects']}, "
            f"bad frames skipped {r['bad_frames']})"
        )
        print(f"resyncs:            {r['resyncs']} (book status told: {r['told']})")
        print(f"book checks:        {r['book_checks']}")
        print(f"book mismatches:    {r['mismatches']}")
        for sample in r["mismatch_samples"]:
            print(f"  {sample}")
        print(
            f"orders placed:      {r['orders']} (venue has {r['venue_orders']}; "
            f"went UNKNOWN {r['unknown_seen']}x)"
        )
        print(
            f"fills:              {r['fills']} "
            f"(duplicate reports refused {r['duplicate_fills_refused']})"
        )
        print(f"lost orders:        {r['lost']}")
        print(f"duplicated orders:  {r['duplicated']}")
        print(f"orphans:            {r['orphans']}")
        print(f"phantom fills:      {r['phantom_fills']}")
        print(f"fill-sum mismatches:{r['fill_sum_mismatches']:>2}")
        wrong = r["books_wrong_synced"]
        print(
            f"books wrong SYNCED: {0 if r['gap_blind'] else wrong}"
            + (
                f" (feed without sequence numbers: {wrong}, counted apart)"
                if r["gap_blind"]
                else ""
            )
        )
        print(
            f"order path:         unreadable reports refused {r['unreadable_refused']}, "
            f"'not found' waits {r['not_found_waits']}, revived {r['revived']}, "
            f"working checks {r['working_checks']}, held requests {r['held_requests']}"
        )
        print(f"journal:            errors {r['journal_errors']}, halted: {r['halted']}")
        print(f"other mismatches:   {len(r['other_problems'])}")
        for sample in r["other_problems"][:5]:
            print(f"  {sample}")
        print(
            f"RSS start/end:      {r['rss_start']:.1f} MiB / {r['rss_end']:.1f} MiB "
            f"({r['rss_end'] - r['rss_start']:+.1f} MiB, process-wide, all venues)"
        )
        warm = r["rss_samples"][0] if r["rss_samples"] else r["rss_start"]
        print(
            f"RSS after warm-up:  {warm:.1f} MiB at 10% -> {r['rss_end']:.1f} MiB at the end "
            f"({r['rss_end'] - warm:+.1f} MiB)"
        )
        print(f"RSS every 10%:      {r['rss_samples']} MiB")
        half = r["rss_samples"][len(r["rss_samples"]) // 2 :] or [r["rss_start"]]
        minutes = len(half) * r["seconds"] / 10 / 60
        print(
            f"RSS last half:      {half[0]:.1f} -> {r['rss_end']:.1f} MiB "
            f"({(r['rss_end'] - half[0]) / max(minutes, 1e-9):+.2f} MiB/min)"
        )
        print(f"Python objects:     every 10%: {r['object_samples']}")
        print(f"held in memory:     {r['held']} (orders checked and forgotten: {r['settled']})")
        failed |= bool(
            r["mismatches"]
            or r["lost"]
            or r["duplicated"]
            or r["other_problems"]
            or r["orphans"]
            or r["phantom_fills"]
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
