"""`botrun` as a user runs it: a real process against the embedded simulator."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parents[2]
BOTRUN = [sys.executable, "-m", "framework.tools.cli"]


def run_botrun(*args: str, cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*BOTRUN, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def test_taker_in_paper_mode_trades_and_prints_a_summary() -> None:
    proc = run_botrun("strategies/taker.py", "--duration", "4")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "botrun summary (paper mode)" in out
    fills = int(re.search(r"fills: (\d+)", out).group(1))
    filled = int(re.search(r"filled: (\d+)", out).group(1))
    assert fills > 0 and filled > 0
    assert re.search(r"events by venue: paxos: \d+", out)
    assert "position paxos BTCUSD" in out


def test_bad_config_exits_2_with_one_line_naming_the_key(tmp_path: Path) -> None:
    text = (
        (ROOT / "config.toml")
        .read_text()
        .replace("max_open_orders = 20", 'max_open_orders = "many"')
    )
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    proc = run_botrun("--config", str(bad), "strategies/taker.py", "--duration", "1")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "risk.max_open_orders" in lines[0]
    assert proc.stdout == ""


def test_unknown_key_exits_2_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        (ROOT / "config.toml")
        .read_text()
        .replace('book_source = "public"', 'book_source = "public"\nbook_sorce = "x"')
    )
    proc = run_botrun("--config", str(bad), "strategies/taker.py")
    assert proc.returncode == 2
    assert "venues.paxos" in proc.stderr and "book_sorce" in proc.stderr


def test_live_mode_refuses_without_confirmation() -> None:
    proc = run_botrun("strategies/taker.py", "--mode", "live")
    assert proc.returncode == 2 and "--confirm-live" in proc.stderr


async def test_sigterm_shuts_down_cleanly_with_a_summary() -> None:
    proc = await trio.lowlevel.open_process(
        [
            *BOTRUN,
            "strategies/market_maker.py",
            "--duration",
            "0",
            "--log-format",
            "json",
            "--log-level",
            "info",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None and proc.stdout is not None
    logs = b""
    with trio.fail_after(60):
        # wait until the engine reports it is running, from its own log
        while b'"event": "running"' not in logs:
            chunk = await proc.stderr.receive_some()
            assert chunk, logs.decode()[-2000:]
            logs += chunk
        proc.send_signal(signal.SIGTERM)
        out = b""
        async with trio.open_nursery() as nursery:

            async def read_err() -> None:
                nonlocal logs
                while chunk := await proc.stderr.receive_some():
                    logs += chunk

            nursery.start_soon(read_err)
            while chunk := await proc.stdout.receive_some():
                out += chunk
        code = await proc.wait()
    assert code == 0, logs.decode()[-2000:]
    assert b'"event": "shutting down"' in logs
    assert b"botrun summary (paper mode)" in out
    # cancel-all on shutdown: nothing left working
    assert b"accepted:" not in out and b"submitted:" not in out


async def test_standalone_simulator_serves_other_clients_until_sigterm() -> None:
    import httpx

    proc = await trio.lowlevel.open_process(
        [*BOTRUN, "sim", "paxos", "--port", "0", "--seed", "3"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    out = b""
    with trio.fail_after(60):
        while b"\n" not in out:
            chunk = await proc.stdout.receive_some()
            assert chunk, "simulator exited before announcing its port"
            out += chunk
        url = re.search(rb"(http://127\.0\.0\.1:\d+)", out).group(1).decode()
        async with httpx.AsyncClient(base_url=url) as client:
            markets = (await client.get("/v2/markets")).json()["markets"]
        assert {m["market"] for m in markets} >= {"BTCUSD", "ETHUSD"}
        proc.send_signal(signal.SIGTERM)
        assert await proc.wait() == 0
