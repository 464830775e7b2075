"""Oversized frames: what one costs a stream at each venue's frame limit.

    .venv/bin/python bench/frames.py [--mb 50]

A WebSocket server in a child process sends one frame of `--mb` MB; a client opened as the
session opens it (`framework.transport.session`: `max_message_size` = the stream's limit, read
size unlimited) reads until the frame is refused (close 1009) or arrives. For each venue's
streams (their `Stream.max_message_size`) and for the contract's default, prints the client's
peak RSS above its RSS before connecting (less a 10-byte frame's, the baseline), and the time
from connecting to the outcome. Each measurement runs in a fresh child process so that one's
peak does not hide the next's.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SERVER = """
import sys, trio
from trio_websocket import serve_websocket
size = int(sys.argv[1])
async def handler(request):
    ws = await request.accept()
    try:
        await ws.send_message("#" * size)
        await ws.get_message()
    except Exception:
        pass
async def main():
    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve_websocket, handler, "127.0.0.1", 0, None)
        print(server.port, flush=True)
        await trio.sleep_forever()
trio.run(main)
"""

CLIENT = """
import resource, sys, time, trio
from trio_websocket import ConnectionClosed, open_websocket_url
port, limit = int(sys.argv[1]), int(sys.argv[2])
def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20
async def main():
    before = rss_mib()  # now, not the peak so far: a peak during imports would hide growth
    async with open_websocket_url(
        f"ws://127.0.0.1:{port}/", max_message_size=limit, message_queue_size=1,
        receive_buffer_size=None,
    ) as ws:
        started = time.monotonic()
        try:
            frame = await ws.get_message()
            outcome = f"read whole ({len(frame) / 1e6:.0f} MB)"
        except ConnectionClosed as exc:
            outcome = f"refused (close {exc.reason.code})"
        elapsed = time.monotonic() - started
    print(f"{outcome}|{peak_mib() - before:.1f}|{elapsed:.3f}")
trio.run(main)
"""


def limits() -> list[tuple[str, int]]:
    from framework.venue import Stream
    from framework.venues.chaos import chaos_cases

    found = [("contract default", Stream.max_message_size)]
    for venue, case in sorted(chaos_cases().items()):
        for name, stream in case.streams().items():
            found.append((f"{venue} {name}", stream.max_message_size))
    return found


def measure(size: int, limit: int) -> tuple[str, float, float]:
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(size)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = server.stdout.readline().strip()
        out = subprocess.run(
            [sys.executable, "-c", CLIENT, port, str(limit)],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout.strip()
    finally:
        server.kill()
        server.wait()
    outcome, mib, seconds = out.rsplit("|", 2)
    return outcome, float(mib), float(seconds)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb", type=float, default=50.0, help="frame size in MB (10^6 bytes)")
    args = p.parse_args()
    size = int(args.mb * 1e6)
    print(f"one {size / 1e6:.0f} MB frame; client peak RSS growth and time to the outcome")
    started = time.monotonic()
    # the same client reading a 10-byte frame: its growth (imports, buffers) is the baseline
    _, base, _ = measure(10, 1 << 20)
    print(f"baseline (a 10-byte frame): +{base:.1f} MiB peak, subtracted below")
    for name, limit in limits():
        outcome, mib, seconds = measure(size, limit)
        print(
            f"{name:<28} limit {limit / 2**20:>5.1f} MiB: {outcome:<22} "
            f"{mib - base:+7.1f} MiB peak, {seconds:.3f} s"
        )
    print(f"elapsed: {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
