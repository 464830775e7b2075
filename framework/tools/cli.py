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
It sits on top of the tools: it imports them, none of them imports it. What each subcommand
does once its arguments are parsed is in framework.tools.commands; the exit codes are in
framework.tools.exit_codes.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import NoReturn

from framework.core import HandlerFailed, StrategyStartError
from framework.engine import VenueUnreachable
from framework.errors import ConfigError
from framework.tools.backtest import SAMPLE
from framework.tools.commands import HANDLERS
from framework.tools.exit_codes import (
    EXIT_CODES,
    EXIT_CONFIG,
    EXIT_DAMAGED,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_STRATEGY,
    EXIT_UNREACHABLE,
)
from framework.tools.loader import load_strategy_class
from framework.tools.record import (
    DEFAULT_MAX_FILE_BYTES,
    RecordError,
)
from framework.transport.session import first_leaf
from framework.venues import venue_names

__all__ = ["EXIT_CONFIG", "SUBCOMMANDS", "build_parser", "load_strategy_class", "main"]

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
    handler: Callable[[argparse.Namespace], int] = HANDLERS[args.command]
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


def _add_export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("strategy", nargs="?", help="also backtest this strategy (orders, fills, ...)")
    p.add_argument("--data", default=str(SAMPLE), help="a .brec file or a directory of them")
    p.add_argument("--format", default="parquet", choices=["parquet"])
    p.add_argument("--out", required=True, help="directory for the .parquet files")
    p.add_argument("--config", default="config.toml", help="strategy params, risk, paper")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sample-s", type=float, default=1.0, help="equity sampling period")
    p.add_argument("--log-level", default="warning", choices=_LOG_LEVELS)


if __name__ == "__main__":
    sys.exit(main())
