"""A real `redis-server` per test (no persistence: a restart comes back empty, the worst case),
a Paxos simulator in the test's trio run, and helpers to run gateways and strategies in this
process or as `botrun` subprocesses."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from framework.distributed.redis import BusConfig
from framework.venues import parse_config
from framework.venues.paxos.sim.simulator import PaxosSimulator

ROOT = Path(__file__).resolve().parents[2]
GUARD_S = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """One redis-server on a fixed loopback port; `kill()` and `start()` for restarts."""

    def __init__(self, workdir: Path, extra: list[str] | None = None) -> None:
        self.extra = extra or []
        self.port = _free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}"

    def start(self, auth: bytes = b"") -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.workdir),
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(auth + b"PING\r\n")
                    if b"+PONG" in s.recv(64):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.fail(
            "redis-server is not installed (.ci/run installs it: apt-get install redis-server)"
        )
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def bus(redis_server: RedisServer) -> BusConfig:
    return BusConfig(url=redis_server.url)


def venue_section(sim_url: str) -> dict[str, Any]:
    return {
        "endpoint": "sim",
        "sim_url": sim_url,
        "markets": ["BTCUSD"],
        "trades": False,
        "poll_interval_s": 0.02,
        "balance_interval_s": 60,
    }


RISK = {
    "max_order_notional": "1000000000",
    "max_position": "1000",
    "max_open_orders": 50,
    "max_orders_per_second": 1000,
    "cancel_all_on_shutdown": True,
}


def make_config(sim_url: str, journal_dir: Path, **params: Any) -> Any:
    return parse_config(
        {
            "botrun": {"mode": "sandbox", "journal_dir": str(journal_dir), "duration_s": 0},
            "risk": RISK,
            "strategy": {"params": params},
            "venues": {"paxos": venue_section(sim_url)},
        }
    )


def write_config(path: Path, sim_url: str, journal_dir: Path, **params: Any) -> Path:
    lines = [
        "[botrun]",
        'mode = "sandbox"',
        'log_format = "json"',
        'log_level = "info"',
        f'journal_dir = "{journal_dir}"',
        "duration_s = 0",
        "[strategy.params]",
        *(f'{k} = "{v}"' for k, v in params.items()),
        "[risk]",
        *(f"{k} = {_toml(v)}" for k, v in RISK.items()),
        "[venues.paxos]",
        *(f"{k} = {_toml(v)}" for k, v in venue_section(sim_url).items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ", ".join(f'"{x}"' for x in v) + "]"
    if isinstance(v, str):
        return f'"{v}"'
    return str(v)


async def start_sim(nursery: trio.Nursery, seed: int = 7) -> PaxosSimulator:
    sim = PaxosSimulator.build(seed)
    await nursery.start(partial(sim.run, port=0, market_rate_hz=20))
    return sim


async def botrun(*args: str, log: Path, nursery: trio.Nursery) -> trio.Process:
    """A `botrun` subprocess, its stdout and stderr to `log`."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = log.open("wb")
    return await nursery.start(
        partial(
            trio.run_process,
            [sys.executable, "-m", "framework.tools.cli", *args],
            cwd=str(ROOT),
            env=env,
            check=False,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    )


async def until(predicate: Callable[[], bool], what: str, timeout: float = GUARD_S) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.02)
    assert predicate(), what


def sigkill(proc: trio.Process) -> None:
    proc.send_signal(signal.SIGKILL)
