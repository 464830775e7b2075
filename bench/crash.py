"""Crash recovery at scale: SIGKILL `botrun` at N (default 60) random points of its order flow
against a standalone Paxos simulator; journal + venue must reconcile to the venue's truth.

    .venv/bin/python bench/crash.py [--kills 60] [--seed 1]

Prints one line per kill point and a summary; exits 1 if any order was lost or duplicated or
the final journal disagrees with the venue. See tests/crash_harness.py.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.crash_harness import crash_recovery


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=60)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--max-lines", type=int, default=40, help="kill after 1..N order-flow lines")
    args = p.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="botrun-crash-") as tmp:
        result = crash_recovery(
            args.kills,
            args.seed,
            Path(tmp),
            max_lines=args.max_lines,
            report=lambda line: print(line, flush=True),
        )
    print()
    print(f"kill points:          {result['kills']}")
    print(f"order-flow log lines: {result['order_lines']}")
    print(f"venue orders:         {result['venue_orders']}")
    print(f"journal orders:       {result['journal_orders']} {result['journal_statuses']}")
    print(f"fills:                {result['fills']}")
    print(f"lost orders:          {result['lost']}")
    print(f"duplicated orders:    {result['duplicated']}")
    print(f"final mismatches:     {len(result['final_problems'])}")
    for problem in result["problems"]:
        print(f"  {problem}")
    print(f"elapsed:              {time.monotonic() - started:.0f}s")
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
