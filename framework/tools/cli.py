"""`botrun` command line: every subcommand's arguments are parsed here, and only here.

botrun [run] STRATEGY.py [--config FILE] [--venue NAME] [--mode paper|sandbox|live] [--duration S]
             [--fail-fast] [--summary-json PATH]
botrun sim VENUE [--port N] [--seed N] [--rate HZ] [--faults SPEC]
botrun gateway --venue NAME --bus URL [--config FILE] [--heartbeat-timeout S]
botrun STRATEGY.py --bus URL ...   (strategies against gateways over Redis Streams)
botrun record --venue NAME [--markets M ...] --out DIR [--duration S]
botrun backtest STRATEGY.py [--data PATH] [--seed N] [--report DIR] [--strict] [--fail-fast]
botrun replay [STRATEGY.py] --data PATH [--strict]
botrun optimize STRATEGY.py --param NAME=SPEC ... --trials N --workers W [--storage URL]
botrun export [STRATEGY.py] [--data PATH] --format parquet --out DIR

The tools under it are libraries (`record.record`, `backtest.run_backtest`,
`report.write_report`): they take typed arguments and return results; this module turns argv
into those arguments, prints what they return, and maps failures to exit codes (`EXIT_CODES`,
also in `botrun --help` and the README). Every failure is one line on stderr naming the problem
and what to do; `--debug` (or `BOTRUN_DEBUG=1`) shows the traceback instead.
It sits on top of the tools: it imports them, none of them imports it.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import socket
import sys
import tomllib
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, NoReturn

import structlog
import trio

from framework import logs
from framework.config import Config
from framework.core import HandlerFailed, StrategyStartError
from framework.engine import Engine, VenueUnreachable
from framework.errors import ConfigError
from framework.strategy import Strategy
from framework.tools.backtest import SAMPLE, run_backtest
from framework.tools.loader import load_strategy_class
from framework.tools.record import (
    DEFAULT_MAX_FILE_BYTES,
    RecordError,
    RecordResult,
    record,
    record_config,
)
from framework.tools.report import MissingExtra, write_report
from framework.tools.summary import format_summary, summary_json
from framework.transport.session import first_leaf
from framework.venues import load_config as load
from framework.venues import load_venue, venue_names

__all__ = ["EXIT_CONFIG", "SUBCOMMANDS", "build_parser", "load_strategy_class", "main"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_KILLED = 3
EXIT_STRATEGY = 4
EXIT_UNREACHABLE = 5
EXIT_DAMAGED = 6
EXIT_INTERRUPTED = 130  # the shell's code for "stopped by SIGINT"

EXIT_CODES: dict[int, str] = {
    EXIT_OK: "done",
    EXIT_ERROR: "unexpected error (a bug: --debug shows the traceback)",
    EXIT_CONFIG: "usage, config or strategy-file error",
    EXIT_KILLED: "the kill switch engaged (the summary says why)",
    EXIT_STRATEGY: "the strategy failed: on_start raised, or a handler raised under --fail-fast",
    EXIT_UNREACHABLE: "a venue was unreachable at start (after retries)",
    EXIT_DAMAGED: "the recording is damaged (backtest/replay --strict)",
    EXIT_INTERRUPTED: "interrupted before the run could stop cleanly",
}

# name -> the one line `botrun --help` shows for it
SUBCOMMANDS: dict[str, str] = {
    "run": "run a strategy (also: botrun STRATEGY.py ...)",
    "sim": "serve a venue simulator on 127.0.0.1 for other clients",
    "record": "record a venue's raw market-data frames to .brec files",
    "backtest": "replay a recording through a strategy and write a report",
    "replay": "replay a recording, through a strategy if given (no report by default)",
    "gateway": "serve one venue account to strategy processes over Redis (--bus)",
    "optimize": "search a strategy's parameters with Optuna over backtests",
    "export": "write a recording's (and a backtest's) tables as Parquet",
}
_LOG_LEVELS = ["debug", "info", "warning", "error"]


class UsageError(Exception):
    """Bad command-line arguments (argparse's complaint, as one line)."""


class _Parser(argparse.ArgumentParser):
    # argparse prints the usage block and exits from deep inside parse_args; botrun's contract is
    # one line and exit code 2, decided in main()
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def package_version() -> str:
    """The installed botrun version, from package metadata."""
    try:
        return version("botrun")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


# --- parsing -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    top = _Parser(
        prog="botrun",
        description="Event-driven crypto trading: run strategies, simulators, recordings.",
        epilog="`botrun STRATEGY.py ...` is short for `botrun run STRATEGY.py ...`. Exit codes: "
        + "; ".join(f"{code} {what}" for code, what in EXIT_CODES.items())
        + ". BOTRUN_DEBUG=1 is --debug.",
    )
    top.add_argument("--version", action="version", version=f"botrun {package_version()}")
    top.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    # each subcommand takes --debug too (`botrun sim paxos --debug`); SUPPRESS keeps a top-level
    # `botrun --debug sim ...` from being reset to False by the subparser's default
    common = _Parser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show tracebacks of unexpected errors",
    )
    subs = top.add_subparsers(dest="command", metavar="COMMAND", title="commands", required=True)

    def sub(name: str, description: str) -> argparse.ArgumentParser:
        return subs.add_parser(
            name, parents=[common], help=SUBCOMMANDS[name], description=description
        )

    _add_run_arguments(sub("run", "Run a strategy against the configured venues."))
    _add_sim_arguments(sub("sim", "Serve a venue simulator on 127.0.0.1 until Ctrl-C."))
    _add_record_arguments(sub("record", "Record raw market frames."))
    _add_replay_arguments(
        sub("backtest", "Replay recorded frames through a strategy with the paper broker."),
        "backtest",
    )
    _add_replay_arguments(
        sub(
            "replay", "Replay recorded frames (through a strategy if given) with the paper broker."
        ),
        "replay",
    )
    _add_gateway_arguments(
        sub("gateway", "Own one venue account and serve it to strategies over Redis Streams.")
    )
    _add_optimize_arguments(sub("optimize", "Optuna study over backtests of a strategy."))
    _add_export_arguments(sub("export", "Normalized tables of a recording (and a backtest)."))
    return top


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("strategy", nargs="?", help="strategy file (default: [botrun].strategy)")
    p.add_argument("--config", default="config.toml")
    p.add_argument("--venue", help="run only this configured venue")
    p.add_argument("--mode", choices=["paper", "sandbox", "live"])
    p.add_argument("--duration", type=float, help="seconds to run, then stop (0 = until Ctrl-C)")
    p.add_argument("--log-format", choices=["auto", "console", "json"])
    p.add_argument("--log-level", choices=_LOG_LEVELS)
    p.add_argument(
        "--confirm-live", action="store_true", help="required with --mode live: real money"
    )
    _add_bus_arguments(p, required=False)
    p.add_argument(
        "--accept-empty-journal",
        action="store_true",
        help="start although the journal looks truncated or deleted (its marker says it held"
        " orders)",
    )
    _add_outcome_arguments(p)


def _add_outcome_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--fail-fast", action="store_true", help="stop at the first handler error (exit 4)"
    )
    p.add_argument("--summary-json", metavar="PATH", help="also write the summary as JSON here")


def _add_sim_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("venue", choices=venue_names())
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rate", type=float, default=20.0, help="synthetic market steps per second")
    p.add_argument(
        "--faults",
        default="",
        help='seeded fault injection, e.g. "seed=3,chaos" or "drop=0.01@/marketdata,close=0.001"'
        " (framework/sim/faults.py)",
    )


def _add_record_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--venue", required=True, choices=venue_names())
    p.add_argument("--markets", nargs="+", help="markets to record (default: the config's)")
    p.add_argument("--out", required=True, help="directory for the .brec files")
    p.add_argument("--config", default="config.toml", help="venue settings (if the file exists)")
    p.add_argument("--duration", type=float, default=0.0, help="seconds (0 = until Ctrl-C)")
    p.add_argument(
        "--max-file-mb",
        type=float,
        default=DEFAULT_MAX_FILE_BYTES / (1024 * 1024),
        help="rotate files at this size",
    )
    p.add_argument("--log-level", default="warning", choices=_LOG_LEVELS)


def _add_replay_arguments(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument("strategy", nargs="?", help="strategy file (default: [botrun].strategy)")
    p.add_argument("--data", default=str(SAMPLE), help="a .brec file or a directory of them")
    p.add_argument("--config", default="config.toml", help="strategy params, risk, paper")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--report",
        default="backtest-report" if command == "backtest" else None,
        help="directory for report.html and report.png",
    )
    p.add_argument("--sample-s", type=float, default=0.25, help="report sampling period")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--log-level", default="warning", choices=_LOG_LEVELS)
    p.add_argument(
        "--strict",
        action="store_true",
        help="a damaged block in the recording is an error (exit 6), not skipped",
    )
    _add_outcome_arguments(p)


def with_subcommand(argv: list[str]) -> list[str]:
    """`argv` with `run` inserted when it names no subcommand: `botrun STRATEGY.py ...` and
    `botrun --config X STRATEGY.py` stay what they always were."""
    i = 0
    while i < len(argv) and argv[i] == "--debug":
        i += 1
    if i < len(argv) and (argv[i] in SUBCOMMANDS or argv[i] in ("-h", "--help", "--version")):
        return argv
    return [*argv[:i], "run", *argv[i:]]


# --- main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    argv = with_subcommand(list(sys.argv[1:] if argv is None else argv))
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        print(f"botrun: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except SystemExit as exc:  # --help / --version printed their text
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    if os.environ.get("BOTRUN_DEBUG", "") not in ("", "0"):
        args.debug = True
    handler: Callable[[argparse.Namespace], int] = _HANDLERS[args.command]
    try:
        return handler(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("botrun: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as raw:
        exc = first_leaf(raw)  # trio wraps task failures in exception groups
        if args.debug:
            raise
        known = _known_failure(exc)
        if known is not None:
            code, line = known
            print(f"botrun: {line}", file=sys.stderr)
            return code
        print(
            f"botrun: error: {type(exc).__name__}: {exc} (--debug shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_ERROR


def _known_failure(exc: BaseException) -> tuple[int, str] | None:
    """The exit code and one line for a failure that is not a bug."""
    if isinstance(exc, ConfigError):
        return EXIT_CONFIG, f"config error: {exc}"
    if isinstance(exc, RecordError):
        damaged = "damaged" in str(exc)
        return (EXIT_DAMAGED if damaged else EXIT_CONFIG), f"recording: {exc}"
    if isinstance(exc, StrategyStartError | HandlerFailed):
        return EXIT_STRATEGY, f"{exc} (--debug shows the traceback)"
    if isinstance(exc, VenueUnreachable):
        return EXIT_UNREACHABLE, str(exc)
    return None


def _fail(message: str) -> int:
    print(f"botrun: config error: {message}", file=sys.stderr)
    return EXIT_CONFIG


def _strategy_class(path: str, debug: bool = False) -> type[Strategy]:
    """The strategy class in `path`; a file that does not load is a user error, one line
    (with `debug`, the original exception and its traceback)."""
    if debug:
        return load_strategy_class(path)
    try:
        return load_strategy_class(path)
    except ConfigError:
        raise
    except SyntaxError as exc:
        raise ConfigError(
            f"strategy: {path} line {exc.lineno}: {exc.msg} (fix the file; --debug shows more)"
        ) from exc
    except ImportError as exc:
        missing = exc.name or str(exc)
        raise ConfigError(
            f"strategy: {path} imports {missing!r}, which is not installed"
            f" (pip install it, or fix the import)"
        ) from exc
    except Exception as exc:
        raise ConfigError(
            f"strategy: {path} raised {type(exc).__name__}: {exc} while loading"
            " (--debug shows the traceback)"
        ) from exc


def _new_output(option: str, path: str | None, *, directory: bool) -> None:
    """Refuse an output path that would clobber or cannot be used, before any work is done."""
    if not path:
        return
    p = Path(path)
    if directory and p.exists() and not p.is_dir():
        raise ConfigError(f"{option}: {path} is an existing file; give a directory")
    if not directory and p.is_dir():
        raise ConfigError(f"{option}: {path} is a directory; give a file path")


def _exit_code(summary: dict[str, Any]) -> int:
    if summary.get("kill_switch"):
        return EXIT_KILLED
    if any(r.startswith("--fail-fast") for r in summary.get("halt_reasons") or []):
        return EXIT_STRATEGY
    return EXIT_OK


def _finish(summary: dict[str, Any], args: argparse.Namespace) -> int:
    """Print the summary, write it as JSON if asked, and say how the run ended."""
    code = _exit_code(summary)
    print(format_summary(summary))
    if getattr(args, "summary_json", None):
        Path(args.summary_json).write_text(summary_json(summary, code) + "\n")
    if code == EXIT_KILLED:
        print(f"botrun: kill switch engaged: {summary['kill_switch']}", file=sys.stderr)
    elif code == EXIT_STRATEGY:
        print(f"botrun: {summary['halt_reasons'][-1]}", file=sys.stderr)
    return code


async def _on_signals(callback: Callable[[], None]) -> None:
    """Call `callback` on every SIGINT/SIGTERM (the tools stop cleanly; trio would raise)."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            structlog.get_logger("botrun").info("signal; stopping", signal=signum)
            callback()


# --- botrun run --------------------------------------------------------------------------------


def _main_run(args: argparse.Namespace) -> int:
    cfg = load(args.config)
    _apply_overrides(cfg, args)
    strategy_path = args.strategy or cfg.botrun.strategy
    if not strategy_path:
        raise ConfigError("strategy: give a strategy file or set [botrun].strategy")
    _new_output("--summary-json", args.summary_json, directory=False)
    strategy_cls = _strategy_class(strategy_path, args.debug)
    logs.configure(cfg.botrun.log_format, cfg.botrun.log_level)
    if args.bus:
        return _run_over_bus(cfg, strategy_cls(cfg.strategy.params), args)
    engine = Engine(cfg, [strategy_cls(cfg.strategy.params)])
    trio.run(_run_engine, engine)
    return _finish(engine.final_summary or engine.summary(), args)


def _apply_overrides(cfg: Config, args: argparse.Namespace) -> None:
    if args.mode:
        cfg.botrun.mode = args.mode
    if args.duration is not None:
        cfg.botrun.duration_s = args.duration
    if getattr(args, "accept_empty_journal", False):
        cfg.botrun.accept_empty_journal = True
    if args.log_format:
        cfg.botrun.log_format = args.log_format
    if args.log_level:
        cfg.botrun.log_level = args.log_level
    if args.fail_fast:
        cfg.botrun.fail_fast = True
    if cfg.botrun.duration_s < 0:
        raise ConfigError("--duration: must not be negative (0 = until Ctrl-C)")
    if args.venue:
        if args.venue not in cfg.venues:
            raise ConfigError(f"--venue: {args.venue} is not configured under [venues]")
        cfg.venues = {args.venue: cfg.venues[args.venue]}
    else:
        cfg.venues = {name: v for name, v in cfg.venues.items() if v.enabled}
        if not cfg.venues:
            raise ConfigError("venues: no venue is enabled (set enabled = true or use --venue)")
    if cfg.botrun.mode == "live":
        if not args.confirm_live:
            raise ConfigError("botrun.mode: live trading needs --confirm-live")
        for name, venue in cfg.venues.items():
            if venue.endpoint != "production":
                raise ConfigError(f"venues.{name}.endpoint: live mode needs 'production'")


async def _run_engine(engine: Engine) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_on_signals, engine.stop)
        await engine.run()
        nursery.cancel_scope.cancel()


# --- botrun gateway, botrun STRATEGY.py --bus (framework.distributed) ------------------------


def _add_bus_arguments(p: argparse.ArgumentParser, *, required: bool) -> None:
    g = p.add_argument_group("bus (Redis Streams; see README 'Scale out')")
    g.add_argument(
        "--bus",
        required=required,
        metavar="URL",
        help="redis://HOST:PORT, rediss://HOST:PORT (TLS) or unix:///path.sock"
        + ("" if required else ": run the strategy against gateways over this bus"),
    )
    g.add_argument("--bus-user", help="Redis ACL user name")
    g.add_argument("--bus-password-env", metavar="VAR", help="env var holding the Redis password")
    g.add_argument("--bus-tls-ca", metavar="FILE", help="CA file to verify a rediss:// server")
    g.add_argument("--bus-tls-cert", metavar="FILE", help="client certificate (rediss://)")
    g.add_argument("--bus-tls-key", metavar="FILE", help="client key (rediss://)")


def _add_gateway_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--venue", required=True, help="the configured venue this gateway owns")
    p.add_argument("--config", default="config.toml")
    p.add_argument("--mode", choices=["paper", "sandbox", "live"])
    p.add_argument("--duration", type=float, help="seconds to run, then stop (0 = until Ctrl-C)")
    p.add_argument("--log-format", choices=["auto", "console", "json"])
    p.add_argument("--log-level", choices=_LOG_LEVELS)
    p.add_argument("--confirm-live", action="store_true", help="required with --mode live")
    p.add_argument(
        "--heartbeat-timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="cancel a strategy's working orders after its heartbeat is silent this long",
    )
    _add_bus_arguments(p, required=True)


def _bus_config(args: argparse.Namespace) -> Any:
    from framework.distributed.redis import BusConfig

    return BusConfig(
        url=args.bus,
        username=args.bus_user,
        password_env=args.bus_password_env,
        tls_ca_file=args.bus_tls_ca,
        tls_cert_file=args.bus_tls_cert,
        tls_key_file=args.bus_tls_key,
    )


def _run_over_bus(cfg: Config, strategy: Strategy, args: argparse.Namespace) -> int:
    from framework.tools.gateway import run_remote

    bus = _bus_config(args)

    async def go() -> Any:
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_on_signals, stop.set)
            runtime = await run_remote(cfg, [strategy], bus, stop=stop)
            nursery.cancel_scope.cancel()
        return runtime

    runtime = trio.run(go)
    print(format_summary(runtime.final_summary or runtime.summary()))
    return EXIT_OK


def _main_gateway(args: argparse.Namespace) -> int:
    from framework.tools.gateway import run_gateway

    cfg = load(args.config)
    _apply_overrides(cfg, args)
    logs.configure(cfg.botrun.log_format, cfg.botrun.log_level)
    bus = _bus_config(args)

    async def go() -> dict[str, Any]:
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_on_signals, stop.set)
            summary = await run_gateway(
                cfg, args.venue, bus, heartbeat_timeout_s=args.heartbeat_timeout, stop=stop
            )
            nursery.cancel_scope.cancel()
        return summary

    summary = trio.run(go)
    bus_counts = summary.pop("bus", {})
    print(format_summary(summary))
    print("bus: " + ", ".join(f"{k} {v}" for k, v in bus_counts.items()))
    return EXIT_OK


# --- botrun sim --------------------------------------------------------------------------------


def _main_sim(args: argparse.Namespace) -> int:
    from framework.sim.faults import FaultPlan

    try:
        plan = FaultPlan.parse(args.faults) if args.faults else None
    except ValueError as exc:
        return _fail(f"--faults: {exc}")
    if not 0 <= args.port <= 65535:
        return _fail(f"--port: {args.port} is not a port (0-65535; 0 = any free port)")
    if args.port and _port_in_use(args.port):
        return _fail(
            f"--port: 127.0.0.1:{args.port} is in use (stop what listens there,"
            " pick another --port, or --port 0 for any free one)"
        )
    logs.configure("auto", "info")
    venue = load_venue(args.venue)
    cfg = venue.config_type(sim_seed=args.seed, sim_port=args.port, sim_rate_hz=args.rate)

    async def serve() -> None:
        async with trio.open_nursery() as nursery:
            handle = await venue.start_simulator(cfg, nursery)
            if plan is not None:
                handle.simulator.app.faults = plan
            print(f"{args.venue} simulator on {handle.http_url} (ws {handle.ws_url})", flush=True)
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    return

    trio.run(serve)
    if plan is not None:
        print(f"faults injected: {plan.summary()}", flush=True)
    return EXIT_OK


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


# --- botrun record -----------------------------------------------------------------------------


def _main_record(args: argparse.Namespace) -> int:
    _new_output("--out", args.out, directory=True)
    cfg = record_config(args.venue, markets=args.markets, config_path=args.config)
    logs.configure("auto", args.log_level)
    markets = cfg.venues[args.venue].markets

    def announce(engine: Engine) -> None:
        print(f"recording {args.venue} {markets} to {args.out}", file=sys.stderr)

    async def go() -> RecordResult:
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_on_signals, stop.set)
            result = await record(
                cfg,
                args.out,
                duration_s=args.duration,
                max_file_bytes=int(args.max_file_mb * 1024 * 1024),
                stop=stop,
                on_started=announce,
            )
            nursery.cancel_scope.cancel()
        return result

    result = trio.run(go)
    if result.files:
        print(
            f"recorded {result.frames:,} frames into {len(result.files)} file(s),"
            f" {result.bytes_written:,} bytes compressed: {', '.join(map(str, result.files))}"
        )
    print(format_summary(result.summary))
    return EXIT_OK


# --- botrun backtest / botrun replay -----------------------------------------------------------


def _main_replay(args: argparse.Namespace) -> int:
    logs.configure("auto", args.log_level)  # before strategies bind their loggers
    base: dict[str, Any] = {}
    if Path(args.config).is_file():
        try:
            base = tomllib.loads(Path(args.config).read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(exc)) from exc
    strategy_path = args.strategy or (base.get("botrun") or {}).get("strategy")
    _new_output("--report", args.report, directory=True)
    _new_output("--summary-json", args.summary_json, directory=False)
    strategies: list[Strategy] = []
    if strategy_path:
        cls = _strategy_class(strategy_path, args.debug)
        strategies = [cls((base.get("strategy") or {}).get("params") or {})]
    elif args.command == "backtest":
        raise ConfigError("strategy: give a strategy file or set [botrun].strategy")
    if args.fail_fast:
        base = {**base, "botrun": {**(base.get("botrun") or {}), "fail_fast": True}}
    result = run_backtest(
        args.data,
        strategies,
        config=base,
        seed=args.seed,
        sample_interval_s=args.sample_s,
        progress=None if args.no_progress else _progress_bar,
        strict=args.strict,
    )
    damaged = result.summary.get("backtest", {}).get("damaged") or []
    for line in damaged:
        # loud, on stderr, whatever the log level: these frames were never replayed
        print(f"botrun: recording damaged, skipped: {line}", file=sys.stderr)
    code = _finish(result.summary, args)
    print(
        f"  replay: {result.frames:,} frames, {result.events:,} events in {result.elapsed_s:.2f} s"
        f" = {result.events_per_s:,.0f} events/s; fills: {len(result.fills)};"
        f" damaged stretches skipped: {len(damaged)}; torn tail: {result.torn_blocks};"
        f" bad frames: {result.bad_frames}"
    )
    if args.report:
        try:
            html_path, png_path = write_report(result, args.report)
        except MissingExtra as exc:
            print(f"botrun: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        print(f"  report: {html_path} {png_path}")
    return code


def _progress_bar(state: dict[str, Any]) -> None:
    width = 30
    filled = int(state["fraction"] * width)
    rate = state["events"] / state["elapsed_s"] if state["elapsed_s"] > 0 else 0.0
    bar = "#" * filled + "-" * (width - filled)
    end = "\n" if state.get("done") else ""
    print(
        f"\r[{bar}] {state['fraction']:6.1%} {state['events']:>11,} events {rate:>11,.0f} events/s",
        end=end,
        file=sys.stderr,
        flush=True,
    )


# --- botrun optimize / botrun export ----------------------------------------------------------


def _add_optimize_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("strategy", help="strategy file")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=SPEC",
        help="int:LOW..HIGH[:STEP], float:LOW..HIGH[:log], choice:A,B,.. or LOW..HIGH (repeat)",
    )
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--workers", type=int, default=1, help="local worker processes")
    p.add_argument(
        "--storage",
        help="Optuna storage shared by several machines: postgresql://..., sqlite:///..., or a"
        " journal file path ending in .log",
    )
    p.add_argument("--study", default="botrun", help="study name in --storage")
    p.add_argument("--objective", default="pnl", help="pnl, sharpe, sortino or pnl_drawdown")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=str(SAMPLE), help="a .brec file or a directory of them")
    p.add_argument("--config", default="config.toml", help="base params, risk, paper")
    p.add_argument("--max-frames", type=int, help="backtest only the first N frames")
    p.add_argument("--sample-s", type=float, default=1.0, help="PnL sampling period")
    p.add_argument("--out", default="optimize-results", help="directory for trials.parquet")
    p.add_argument("--no-progress", action="store_true")


def _read_base_config(path: str) -> dict[str, Any]:
    if not Path(path).is_file():
        return {}
    try:
        return tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(exc)) from exc


def _main_optimize(args: argparse.Namespace) -> int:
    from framework.tools import optimize as opt

    try:
        specs = [opt.parse_param(p) for p in args.param]
    except ValueError as exc:
        print(f"botrun: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.trials < 1 or args.workers < 1:
        print("botrun: --trials and --workers must be >= 1", file=sys.stderr)
        return EXIT_CONFIG
    load_strategy_class(args.strategy)  # a bad path fails here, not in every worker
    try:
        result = opt.optimize(
            args.strategy,
            args.data,
            specs,
            trials=args.trials,
            workers=args.workers,
            objective_name=args.objective,
            seed=args.seed,
            storage=args.storage,
            study_name=args.study,
            config=_read_base_config(args.config),
            sample_s=args.sample_s,
            max_frames=args.max_frames,
            out_dir=args.out,
            progress=not args.no_progress,
        )
    except (MissingExtra, ValueError) as exc:
        print(f"botrun: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(opt.format_table(result.rows, specs))
    print(f"best {args.objective}: {result.best_value:.6g}; trials: {result.parquet}")
    print(opt.params_block(result.best_params))
    return EXIT_OK


def _add_export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("strategy", nargs="?", help="also backtest this strategy (orders, fills, ...)")
    p.add_argument("--data", default=str(SAMPLE), help="a .brec file or a directory of them")
    p.add_argument("--format", default="parquet", choices=["parquet"])
    p.add_argument("--out", required=True, help="directory for the .parquet files")
    p.add_argument("--config", default="config.toml", help="strategy params, risk, paper")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sample-s", type=float, default=1.0, help="equity sampling period")
    p.add_argument("--log-level", default="warning", choices=_LOG_LEVELS)


def _main_export(args: argparse.Namespace) -> int:
    from framework.tools.export import export

    logs.configure("auto", args.log_level)
    base = _read_base_config(args.config)
    strategies: list[Strategy] = []
    if args.strategy:
        cls = load_strategy_class(args.strategy)
        strategies = [cls((base.get("strategy") or {}).get("params") or {})]
    try:
        result, paths = export(
            args.data,
            args.out,
            strategies=strategies,
            config=base,
            seed=args.seed,
            sample_interval_s=args.sample_s,
        )
    except (MissingExtra, RecordError) as exc:
        print(f"botrun: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"exported {result.frames:,} frames into {len(paths)} tables in {args.out}:")
    for path in paths:
        print(f"  {path.name}")
    return EXIT_OK


_HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": _main_run,
    "gateway": _main_gateway,
    "sim": _main_sim,
    "record": _main_record,
    "backtest": _main_replay,
    "replay": _main_replay,
    "optimize": _main_optimize,
    "export": _main_export,
}


if __name__ == "__main__":
    sys.exit(main())
