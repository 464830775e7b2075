"""SIGKILL the real `botrun` process at random points of its order flow; check journal vs venue.

A standalone simulator (`botrun sim paxos`) is the venue and the truth. Each kill point starts
`python -m framework.tools.cli tests/crash_driver.py`
(sandbox mode, journal in a temporary directory,
`sim_url` to the simulator), waits for a seeded random number of its JSON log lines, and
SIGKILLs it. The next start restores the journal's open orders and reconciles them with the
venue before trading again. After every kill: no venue order unknown to the journal (lost) and
no two venue orders for one client order id (duplicated). At the end a last run only
reconciles and, on SIGTERM, cancels; then every venue order, status, filled quantity and fill
is compared with the journal.

Used by tests/test_crash_recovery.py (a few kill points) and bench/crash.py (50+).
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

import httpx

ROOT = Path(__file__).resolve().parent.parent
DRIVER = ROOT / "tests" / "crash_driver.py"
PROFILE = "sim-profile"
TERMINAL = {"FILLED", "CANCELLED", "REJECTED", "EXPIRED"}
GUARD_S = 60.0


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


def start_simulator(seed: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "framework.tools.cli",
            "sim",
            "paxos",
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


def write_config(workdir: Path, sim_url: str, seed: int, drain: bool) -> Path:
    path = workdir / ("drain.toml" if drain else "config.toml")
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

[risk]
max_order_notional = "1000000"
max_position = "1000"
max_open_orders = 50
max_orders_per_second = 1000
cancel_all_on_shutdown = true
# a loopback simulator: no gateway holds a request, so "not found" is settled within 1 s
not_found_grace_s = 1.0

[venues.paxos]
endpoint = "sim"
sim_url = "{sim_url}"
markets = ["BTCUSD"]
trades = false
poll_interval_s = 0.05
balance_interval_s = 60
"""
    )
    return path


def run_botrun(config: Path, *, stop_after_lines: int | None, sig: int) -> int:
    """Start botrun; after `stop_after_lines` order-flow log lines (None: after start-up) send
    `sig`. Returns how many order-flow lines were seen."""
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
    try:
        for line in proc.stderr:
            if '"event": "running"' in line:
                running = True
                if stop_after_lines is None:
                    break
            elif running and ('"event": "order"' in line or '"event": "cancel"' in line):
                seen += 1
                if stop_after_lines is not None and seen >= stop_after_lines:
                    break
        else:
            raise RuntimeError(f"botrun exited early (code {proc.wait()})")
        proc.send_signal(sig)
        for _ in proc.stderr:  # drain until it is gone
            pass
        code = proc.wait()
    finally:
        guard.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if guard.fired:
        raise RuntimeError("botrun hung")
    if sig == signal.SIGTERM and code != 0:
        raise RuntimeError(f"botrun stopped with code {code}")
    return seen


class Venue:
    """The simulator's truth over its REST API."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=10)
        token = self.http.post(
            "/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "sim-client",
                "client_secret": "sim-secret",
                "scope": "exchange:read_order",
            },
        ).json()["access_token"]
        self.http.headers["authorization"] = f"Bearer {token}"

    def _all(self, path: str, **params: str) -> list[dict[str, Any]]:
        items, cursor = [], ""
        while True:
            query = {"profile_id": PROFILE, "limit": "1000", **params}
            if cursor:
                query["page_cursor"] = cursor
            page = self.http.get(path, params=query).json()
            items += page["items"]
            cursor = page.get("next_page_cursor") or ""
            if not cursor:
                return items

    def orders(self) -> list[dict[str, Any]]:
        return self._all("/v2/orders")

    def executions(self) -> list[dict[str, Any]]:
        return self._all("/v2/executions")

    def close(self) -> None:
        self.http.close()


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
    refs = Counter(o["ref_id"] for o in venue.orders())
    journal, _ = journal_rows(workdir)
    lost = sorted(ref for ref in refs if ref not in journal)
    duplicated = sorted(ref for ref, n in refs.items() if n > 1)
    return lost, duplicated


def final_problems(venue: Venue, workdir: Path) -> list[str]:
    journal, fills = journal_rows(workdir)
    problems = []
    for order in venue.orders():
        ref = order["ref_id"]
        if ref not in journal:
            problems.append(f"lost order {ref}")
            continue
        status, filled = journal[ref]
        if Decimal(order["amount_filled"]) != Decimal(filled):
            problems.append(f"{ref}: filled journal {filled} venue {order['amount_filled']}")
        if (order["status"] in TERMINAL) != (status in TERMINAL):
            problems.append(f"{ref}: journal {status} venue {order['status']}")
    venue_fills = {e["execution_id"]: e for e in venue.executions()}
    for exec_id, item in venue_fills.items():
        if exec_id not in fills:
            problems.append(f"fill lost {exec_id} ({item['amount']})")
        elif Decimal(fills[exec_id][1]) != Decimal(item["amount"]):
            problems.append(f"fill {exec_id}: journal {fills[exec_id][1]} venue {item['amount']}")
    problems += [f"fill {f} unknown to the venue" for f in fills.keys() - venue_fills.keys()]
    return problems


def crash_recovery(
    kills: int,
    seed: int,
    workdir: Path,
    *,
    max_lines: int = 30,
    report: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Run `kills` kill points; return counts and every problem found."""
    rng = random.Random(seed)
    sim, url = start_simulator(seed)
    venue = None
    try:
        venue = Venue(url)
        config = write_config(workdir, url, seed, drain=False)
        lost_total, dup_total, problems, lines = 0, 0, [], 0
        for kill in range(1, kills + 1):
            at = rng.randint(1, max_lines)
            lines += run_botrun(config, stop_after_lines=at, sig=signal.SIGKILL)
            lost, duplicated = lost_and_duplicated(venue, workdir)
            lost_total += len(lost)
            dup_total += len(duplicated)
            problems += [f"kill {kill}: lost {r}" for r in lost]
            problems += [f"kill {kill}: duplicated {r}" for r in duplicated]
            report(
                f"kill {kill:3d}/{kills} after {at:2d} lines: venue orders "
                f"{len(venue.orders())}, lost {len(lost)}, duplicated {len(duplicated)}"
            )
        run_botrun(
            write_config(workdir, url, seed, drain=True), stop_after_lines=None, sig=signal.SIGTERM
        )
        final = final_problems(venue, workdir)
        journal, fills = journal_rows(workdir)
        statuses = Counter(status for status, _ in journal.values())
        return {
            "kills": kills,
            "order_lines": lines,
            "venue_orders": len(venue.orders()),
            "journal_orders": len(journal),
            "journal_statuses": dict(statuses),
            "fills": len(fills),
            "lost": lost_total,
            "duplicated": dup_total,
            "final_problems": final,
            "problems": problems + final,
        }
    finally:
        if venue is not None:
            venue.close()
        sim.send_signal(signal.SIGTERM)
        try:
            sim.wait(10)
        except subprocess.TimeoutExpired:
            sim.kill()
