"""Crash recovery at scale: SIGKILL `botrun` at N (default 60) random points of its order flow
against a standalone venue simulator; journal + venue must reconcile to the venue's truth.

    .venv/bin/python bench/crash.py [--kills 60] [--seed 1] [--venue NAME|all]

Every venue that declares a chaos case (framework/venues/*/chaos.py) by default, one after the
other, each against its own `botrun sim VENUE`. Prints one line per kill point and a summary per
venue; exits 1 if any order was lost or duplicated or the final journal disagrees with the venue
on any venue. See tests/crash_harness.py.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.crash_harness import crash_recovery, crash_venues


def main() -> int:
    venues = crash_venues()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=60)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--max-lines", type=int, default=40, help="kill after 1..N order-flow lines")
    p.add_argument("--venue", choices=[*venues, "all"], default="all")
    args = p.parse_args()
    failed = []
    for venue in venues if args.venue == "all" else [args.venue]:
        if not run_venue(venue, args):
            failed.append(venue)
    if len(venues) > 1 and args.venue == "all":
        print()
        print(f"venues with problems: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


def run_venue(venue: str, args: argparse.Namespace) -> bool:
    print(f"=== {venue}", flush=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"botrun-crash-{venue}-") as tmp:
        try:
            result = crash_recovery(
                args.kills,
                args.seed,
                Path(tmp),
                venue=venue,
                max_lines=args.max_lines,
                report=lambda line: print(line, flush=True),
            )
        except RuntimeError as exc:
            print(f"{venue}: harness stopped: {exc}", flush=True)
            return False
    print()
    print(f"venue:                {venue}")
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
    print(flush=True)
    return not result["problems"]


if __name__ == "__main__":
    sys.exit(main())
