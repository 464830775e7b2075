"""SIGKILL the real `botrun` process at random points of its order flow; check journal vs venue.

A standalone simulator (`botrun sim VENUE`, a process of its own that outlives every killed
`botrun`) is the venue and the truth. What the harness knows of a venue it takes from the venue's
`ChaosCase` (framework/venues/chaos.py): its config section (`section`, pointed at the
simulator by `sim_url`), its first market, its lot, and `standalone_truth`, how to list our
orders and fills from outside the simulator's process (Paxos: its own REST queries; the others:
the simulators' test hook `GET /sim/orders`). Each kill point starts
`python -m framework.tools.cli tests/crash_driver.py`
(sandbox mode, journal in a temporary directory), waits for a seeded random number of its JSON
log lines, and SIGKILLs it. The next start restores the journal's open orders and reconciles
them with the venue before trading again. After every kill: no venue order unknown to the
journal (lost) and no two venue orders for one client order id (duplicated). At the end a last
run only reconciles and, on SIGTERM, cancels; then every venue order, status, filled quantity
and fill is compared with the journal (fill by fill where the venue names each fill,
`fills_by_id`; everywhere each order's fills must add up to what the venue says it filled).

Used by tests/execution/test_crash_recovery.py (a few kill points) and bench/crash.py (50+).
"""

from __future__ import annotations

import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from framework.venues.chaos import ChaosCase, VenueFill, VenueOrder, chaos_cases

ROOT = Path(__file__).resolve().parent.parent
DRIVER = ROOT / "tests" / "crash_driver.py"
TERMINAL = {"FILLED", "CANCELLED", "REJECTED", "EXPIRED"}
GUARD_S = 60.0
SETTLE_S = 2.0


class Guard:
    """Kills `proc` if a step takes longer than the guard: a hang fails, it never blocks CI."""

    def __init__(self, proc: subprocess.Popen, seconds: float = GUARD_S) -> None:
        self.fired = False
        self._timer = threading.Timer(seconds, self._fire, args=(proc,))
        self._timer.start()

    def _fire(self, proc: subprocess.Popen) -> None:
        self.fired = True
        proc.kill()

    def cancel(self) -> None:
        self._timer.cancel()


def crash_venues() -> list[str]:
    """Every venue that declares a chaos case (and so enters orders in the test kit)."""
    return sorted(chaos_cases())


def start_simulator(venue: str, seed: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "framework.tools.cli",
            "sim",
            venue,
            "--seed",
            str(seed),
            "--rate",
            "40",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    guard = Guard(proc)
    line = proc.stdout.readline()
    guard.cancel()
    match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
    if match is None:
        proc.kill()
        raise RuntimeError(f"simulator did not start: {line!r}")
    return proc, match.group(1)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def venue_section(case: ChaosCase, sim_url: str, seed: int) -> dict[str, Any]:
    """The venue's chaos section pointed at the standalone simulator, trading its first market
    (the embedded simulator's `sim_*` settings belong to the `botrun sim` process instead)."""
    section = {k: v for k, v in case.section(seed).items() if not k.startswith("sim_")}
    section.update(endpoint="sim", sim_url=sim_url, markets=[case.markets[0]])
    return section


def write_config(workdir: Path, case: ChaosCase, sim_url: str, seed: int, drain: bool) -> Path:
    path = workdir / ("drain.toml" if drain else "config.toml")
    venue = "\n".join(f"{k} = {_toml(v)}" for k, v in venue_section(case, sim_url, seed).items())
    path.write_text(
        f"""
[botrun]
mode = "sandbox"
log_format = "json"
log_level = "info"
journal_dir = "{workdir / "journal"}"

[strategy.params]
seed = {seed}
drain = {"true" if drain else "false"}
lot = "{case.lot}"

[risk]
max_order_notional = "1000000"
max_position = "1000"
max_open_orders = 50
max_orders_per_second = 1000
cancel_all_on_shutdown = true
# a loopback simulator: no gateway holds a request, so "not found" is settled within 1 s
not_found_grace_s = 1.0

[venues.{case.venue}]
{venue}
"""
    )
    return path


def run_botrun(
    config: Path, *, stop_after_lines: int | None, sig: int, settle_s: float = 0.0
) -> int:
    """Start botrun; after `stop_after_lines` order-flow log lines (None: `settle_s` seconds
    after start-up) send `sig`. Returns how many order-flow lines were seen."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "framework.tools.cli", str(DRIVER), "--config", str(config)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    guard = Guard(proc)
    seen, running = 0, False
    later = threading.Timer(settle_s, proc.send_signal, args=(sig,))
    try:
        for line in proc.stderr:
            if '"event": "running"' in line:
                running = True
                if stop_after_lines is None:
                    # "running" is logged as the sessions start: give the restart time to connect
                    # its streams and reconcile what the journal restored before it is stopped
                    later.start()
                    break
            elif running and ('"event": "order"' in line or '"event": "cancel"' in line):
                seen += 1
                if stop_after_lines is not None and seen >= stop_after_lines:
                    break
        else:
            raise RuntimeError(f"botrun exited early (code {proc.wait()})")
        if stop_after_lines is not None:
            proc.send_signal(sig)
        for _ in proc.stderr:  # drain until it is gone
            pass
        code = proc.wait()
    finally:
        guard.cancel()
        later.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if guard.fired:
        raise RuntimeError("botrun hung")
    if sig == signal.SIGTERM and code != 0:
        raise RuntimeError(f"botrun stopped with code {code}")
    return seen


class Venue:
    """The standalone simulator's truth, as the venue's chaos case lists it."""

    def __init__(self, case: ChaosCase, url: str) -> None:
        self.case, self.url = case, url

    def truth(self) -> tuple[list[VenueOrder], list[VenueFill]]:
        return self.case.standalone_truth(self.url)

    def orders(self) -> list[VenueOrder]:
        return self.truth()[0]


def journal_rows(workdir: Path) -> tuple[dict[str, tuple], dict[str, tuple]]:
    path = workdir / "journal" / "journal-sandbox.sqlite"
    if not path.exists():
        return {}, {}
    db = sqlite3.connect(path)
    try:
        orders = {
            r[0]: r[1:]
            for r in db.execute("SELECT client_order_id, status, filled_qty FROM orders")
        }
        fills = {
            r[0]: r[1:] for r in db.execute("SELECT fill_id, client_order_id, quantity FROM fills")
        }
    finally:
        db.close()
    return orders, fills


def lost_and_duplicated(venue: Venue, workdir: Path) -> tuple[list[str], list[str]]:
    refs = Counter(o.client_order_id for o in venue.orders())
    journal, _ = journal_rows(workdir)
    lost = sorted(ref for ref in refs if ref not in journal)
    duplicated = sorted(ref for ref, n in refs.items() if n > 1)
    return lost, duplicated


def final_problems(venue: Venue, workdir: Path) -> list[str]:
    journal, fills = journal_rows(workdir)
    venue_orders, venue_fills = venue.truth()
    problems = []
    journal_filled: Counter[str] = Counter()
    for _fill_id, (ref, quantity) in fills.items():
        journal_filled[ref] += Decimal(quantity)
    for order in venue_orders:
        ref = order.client_order_id
        if ref not in journal:
            problems.append(f"lost order {ref}")
            continue
        status, filled = journal[ref]
        if order.filled != Decimal(filled):
            problems.append(f"{ref}: filled journal {filled} venue {order.filled}")
        if journal_filled[ref] != order.filled:
            problems.append(
                f"{ref}: journal fills add up to {journal_filled[ref]} venue {order.filled}"
            )
        if order.open == (status in TERMINAL):
            problems.append(f"{ref}: journal {status} venue {order.status}")
        if order.open:
            problems.append(f"{ref}: still open at the venue after the shutdown's cancel-all")
    known = {o.client_order_id for o in venue_orders}
    problems += [
        f"{ref}: journal {status}, the venue has no such order"
        for ref, (status, _filled) in journal.items()
        if ref not in known and status not in TERMINAL
    ]
    if venue.case.fills_by_id:
        by_id = {f.fill_id: f for f in venue_fills}
        for fill_id, item in by_id.items():
            if fill_id not in fills:
                problems.append(f"fill lost {fill_id} ({item.quantity})")
            elif Decimal(fills[fill_id][1]) != item.quantity:
                problems.append(
                    f"fill {fill_id}: journal {fills[fill_id][1]} venue {item.quantity}"
                )
        problems += [f"fill {f} unknown to the venue" for f in fills.keys() - by_id.keys()]
    return problems


def crash_recovery(
    kills: int,
    seed: int,
    workdir: Path,
    *,
    venue: str = "paxos",
    max_lines: int = 30,
    report: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Run `kills` kill points; return counts and every problem found."""
    case = chaos_cases()[venue]
    rng = random.Random(seed)
    sim, url = start_simulator(venue, seed)
    try:
        truth = Venue(case, url)
        config = write_config(workdir, case, url, seed, drain=False)
        lost_total, dup_total, problems, lines = 0, 0, [], 0
        for kill in range(1, kills + 1):
            at = rng.randint(1, max_lines)
            lines += run_botrun(config, stop_after_lines=at, sig=signal.SIGKILL)
            lost, duplicated = lost_and_duplicated(truth, workdir)
            lost_total += len(lost)
            dup_total += len(duplicated)
            problems += [f"kill {kill}: lost {r}" for r in lost]
            problems += [f"kill {kill}: duplicated {r}" for r in duplicated]
            report(
                f"kill {kill:3d}/{kills} after {at:2d} lines: venue orders "
                f"{len(truth.orders())}, lost {len(lost)}, duplicated {len(duplicated)}"
            )
        section = venue_section(case, url, seed)
        run_botrun(
            write_config(workdir, case, url, seed, drain=True),
            stop_after_lines=None,
            sig=signal.SIGTERM,
            # past "not found" grace (risk 1 s, or the venue's own): reconciliation has settled
            settle_s=SETTLE_S + float(section.get("not_found_grace_s", 1.0)),
        )
        final = final_problems(truth, workdir)
        journal, fills = journal_rows(workdir)
        statuses = Counter(status for status, _ in journal.values())
        return {
            "venue": venue,
            "kills": kills,
            "order_lines": lines,
            "venue_orders": len(truth.orders()),
            "journal_orders": len(journal),
            "journal_statuses": dict(statuses),
            "fills": len(fills),
            "lost": lost_total,
            "duplicated": dup_total,
            "final_problems": final,
            "problems": problems + final,
        }
    finally:
        sim.send_signal(signal.SIGTERM)
        try:
            sim.wait(10)
        except subprocess.TimeoutExpired:
            sim.kill()
