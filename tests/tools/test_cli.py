"""`botrun` as a user runs it: a real process against the embedded simulator."""

from __future__ import annotations

import ast
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
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


# --- the command surface (in process: argparse only, nothing runs) ------------------------------

EVERY_SUBCOMMAND = ["run", "sim", "record", "backtest", "replay"]


def test_help_lists_every_subcommand_with_a_description(capsys) -> None:
    from framework.tools.cli import main

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in EVERY_SUBCOMMAND:
        line = next((x for x in out.splitlines() if x.split()[:1] == [name]), None)
        assert line is not None, f"{name} missing from botrun --help"
        assert len(line.split()) > 2, f"{name} has no one-line description"
    assert "--version" in out and "--debug" in out


def test_version_prints_the_package_metadata_version(capsys) -> None:
    from importlib.metadata import version

    from framework.tools.cli import main

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"botrun {version('botrun')}"


@pytest.mark.parametrize("name", EVERY_SUBCOMMAND)
def test_each_subcommand_help_exits_0(name: str, capsys) -> None:
    from framework.tools.cli import main

    assert main([name, "--help"]) == 0
    assert f"usage: botrun {name}" in capsys.readouterr().out


def test_bare_strategy_path_is_the_run_subcommand() -> None:
    from framework.tools.cli import with_subcommand

    assert with_subcommand(["s.py", "--duration", "1"]) == ["run", "s.py", "--duration", "1"]
    assert with_subcommand(["--config", "c.toml", "s.py"]) == ["run", "--config", "c.toml", "s.py"]
    assert with_subcommand(["--debug", "s.py"]) == ["--debug", "run", "s.py"]
    assert with_subcommand([]) == ["run"]
    for name in EVERY_SUBCOMMAND:
        assert with_subcommand([name, "x"]) == [name, "x"]
        assert with_subcommand(["--debug", name]) == ["--debug", name]
    for flag in ("--help", "-h", "--version"):
        assert with_subcommand([flag]) == [flag]


def test_usage_error_exits_2_with_one_line(capsys) -> None:
    from framework.tools.cli import main

    assert main(["sim", "no-such-venue"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("botrun: ") and "no-such-venue" in err[0]
    assert main(["record", "--venue", "paxos"]) == 2  # --out is required
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--out" in err[0]


def test_strategy_file_raising_is_one_line_exit_2_and_a_traceback_only_with_debug(
    tmp_path: Path, capsys
) -> None:
    from framework.tools.cli import main

    bad = tmp_path / "broken.py"
    bad.write_text("raise ZeroDivisionError('broken strategy file')\n")
    args = [str(bad), "--config", str(ROOT / "config.toml")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"botrun: config error: strategy: {bad} raised ZeroDivisionError: broken strategy file"
        " while loading (--debug shows the traceback)"
    ]
    with pytest.raises(ZeroDivisionError):
        main([*args, "--debug"])
    with pytest.raises(ZeroDivisionError):
        main(["--debug", *args])


# --- the tools import downward only -----------------------------------------------------------

TOOLS = ROOT / "framework" / "tools"


def tool_imports() -> dict[str, set[str]]:
    """framework.tools module -> the framework.tools modules it imports, at any depth of the file
    (imports inside functions count: they run too)."""
    names = {p.stem for p in TOOLS.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in TOOLS.glob("*.py"):
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from within framework/tools
                    base = "framework.tools" + (f".{base}" if base else "")
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                parts = target.split(".")
                if parts[:2] == ["framework", "tools"] and len(parts) > 2 and parts[2] in names:
                    found.add(parts[2])
        found.discard(path.stem)
        graph[path.stem] = found
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle reachable in `graph`, each as the path that closes it."""
    out: list[list[str]] = []
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            out.append([*path[path.index(node) :], node])
            return
        if node in done:
            return
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, [*path, node])
        done.add(node)

    for node in sorted(graph):
        visit(node, [])
    return out


def test_cycle_finder_finds_a_cycle() -> None:
    # the check below is only worth something if it can fail
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_tools_form_no_import_cycle_and_only_cli_sits_on_top() -> None:
    graph = tool_imports()
    assert {"cli", "record", "backtest", "report"} <= set(graph)
    assert cycles(graph) == []
    # the CLI (cli, and the subcommand implementations it dispatches to, commands) composes the
    # tools; no tool reaches back up into it
    assert "commands" in graph["cli"]
    assert {"record", "backtest", "report"} <= graph["cli"] | graph["commands"]
    assert [name for name, deps in graph.items() if "cli" in deps] == []
    assert [name for name, deps in graph.items() if "commands" in deps] == ["cli"]
    assert "report" not in graph["backtest"] and "backtest" not in graph["report"]


def test_record_subcommand_records_and_prints_what_it_wrote(tmp_path: Path, capsys) -> None:
    from framework.tools.cli import main
    from framework.tools.record import TEXT, RecordReader, recording_files

    out = tmp_path / "rec"
    argv = ["record", "--venue", "paxos", "--markets", "BTCUSD", "--out", str(out)]
    code = main([*argv, "--duration", "1", "--config", str(tmp_path / "none.toml")])
    assert code == 0
    captured = capsys.readouterr()
    assert f"recording paxos ['BTCUSD'] to {out}" in captured.err
    files = recording_files(out)
    frames = sum(1 for r in RecordReader(out).records() if r.kind == TEXT)
    assert frames > 0  # the simulator's snapshot arrives on connect
    assert f"recorded {frames:,} frames into {len(files)} file(s)" in captured.out
    assert "botrun summary (paper mode)" in captured.out


# --- every failure is one line with a documented exit code -------------------------------------


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_strategy_file_with_a_syntax_error_is_one_line_exit_2(tmp_path: Path, capsys) -> None:
    from framework.tools.cli import main

    bad = tmp_path / "syntax.py"
    bad.write_text("from framework import Strategy\nclass X(Strategy)\n    pass\n")
    args = [str(bad), "--config", str(ROOT / "config.toml")]
    assert main(args) == 2
    line = _one_line(capsys)
    assert line.startswith(f"botrun: config error: strategy: {bad} line 2:") and "fix" in line
    with pytest.raises(SyntaxError):
        main([*args, "--debug"])


def test_strategy_file_with_a_missing_import_is_one_line_exit_2(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    from framework.tools.cli import main

    bad = tmp_path / "missing.py"
    bad.write_text("import botrun_no_such_package\n")
    args = [str(bad), "--config", str(ROOT / "config.toml")]
    assert main(args) == 2
    line = _one_line(capsys)
    assert "imports 'botrun_no_such_package', which is not installed" in line
    monkeypatch.setenv("BOTRUN_DEBUG", "1")  # the environment's --debug
    with pytest.raises(ModuleNotFoundError):
        main(args)


def test_sim_on_a_port_in_use_is_one_line_exit_2(capsys) -> None:
    import socket

    from framework.tools.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["sim", "paxos", "--port", str(port)]) == 2
    line = _one_line(capsys)
    assert f"127.0.0.1:{port} is in use" in line and "--port 0" in line


def test_outputs_that_are_existing_files_are_refused_before_any_work(
    tmp_path: Path, capsys
) -> None:
    from framework.tools.cli import main

    existing = tmp_path / "existing"
    existing.write_text("keep me")
    assert main(["backtest", "strategies/taker.py", "--report", str(existing)]) == 2
    assert "--report: " in _one_line(capsys)
    assert main(["record", "--venue", "paxos", "--out", str(existing)]) == 2
    line = _one_line(capsys)
    assert line == f"botrun: config error: --out: {existing} is an existing file; give a directory"
    assert existing.read_text() == "keep me"


def test_record_with_an_unknown_market_is_one_line_exit_2(tmp_path: Path, capsys) -> None:
    from framework.tools.cli import main

    code = main(["record", "--venue", "paxos", "--markets", "NOPE", "--out", str(tmp_path / "r")])
    assert code == 2
    assert _one_line(capsys) == (
        "botrun: config error: venues.paxos.markets: NOPE is not listed by the venue"
    )


def test_a_venue_unreachable_at_start_is_retried_then_one_line_exit_5(
    tmp_path: Path, capsys
) -> None:
    from framework.tools.cli import main

    cfg = tmp_path / "c.toml"
    cfg.write_text(
        "[botrun]\nstart_retries = 1\nstart_backoff_s = 0\nlog_level = 'error'\n"
        "[venues.paxos]\nsim_url = 'http://127.0.0.1:1'\nrequest_timeout_s = 1\n"
    )
    assert main(["strategies/taker.py", "--config", str(cfg)]) == 5
    line = _one_line(capsys)
    assert line.startswith("botrun: venue paxos unreachable at start (http://127.0.0.1:1)")
    assert "after 2 attempts" in line


def test_negative_duration_is_a_config_error(capsys) -> None:
    from framework.tools.cli import main

    assert main(["strategies/taker.py", "--duration", "-1"]) == 2
    assert "--duration: must not be negative" in _one_line(capsys)


def test_the_kill_switch_exits_3_and_says_so(tmp_path: Path) -> None:
    cfg = tmp_path / "kill.toml"
    cfg.write_text(
        "[botrun]\nduration_s = 60\nlog_level = 'error'\n"
        "[strategy.params]\nsize = '0.01'\ninterval_s = 0.2\n"
        "[risk]\nmax_loss = '0.5'\nflatten_on_kill = true\n"
        "[paper]\ntaker_fee_rate = '0.001'\n"
        "[venues.paxos]\nmarkets = ['BTCUSD']\n"
    )
    out_json = tmp_path / "summary.json"
    proc = run_botrun("strategies/taker.py", "--config", str(cfg), "--summary-json", str(out_json))
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "KILL SWITCH ENGAGED: loss above max_loss 0.5" in proc.stdout
    assert "position paxos BTCUSD: 0 (flat)" in proc.stdout  # flattened
    assert proc.stderr.strip().splitlines()[-1] == (
        "botrun: kill switch engaged: loss above max_loss 0.5"
    )
    import json

    data = json.loads(out_json.read_text())
    assert data["exit_code"] == 3 and data["kill_switch"] == "loss above max_loss 0.5"


def test_help_documents_every_exit_code(capsys) -> None:
    from framework.tools.cli import EXIT_CODES, main

    assert main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for code in EXIT_CODES:
        assert f"{code} " in text
    assert "kill switch" in text and "BOTRUN_DEBUG=1" in text
