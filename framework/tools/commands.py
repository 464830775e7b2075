"""What each `botrun` subcommand does once framework.tools.cli has parsed its arguments.

One `_main_*` function per subcommand (run, gateway, sim, record, backtest/replay, optimize,
export), gathered in `HANDLERS`, with the helpers they share: loading a strategy file as a
one-line user error, refusing output paths that would clobber, stopping cleanly on signals, and
printing a run's summary and turning it into an exit code (framework.tools.exit_codes). Each calls
the tool libraries (`record.record`, `backtest.run_backtest`, `report.write_report`, ...) with
typed arguments and prints what they return.
"""

from __future__ import annotations

import argparse
import errno
import signal
import socket
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
import trio

from framework import logs
from framework.config import Config
from framework.engine import Engine
from framework.errors import ConfigError
from framework.strategy import Strategy
from framework.tools.backtest import run_backtest
from framework.tools.exit_codes import EXIT_CONFIG, EXIT_KILLED, EXIT_OK, EXIT_STRATEGY
from framework.tools.loader import load_strategy_class
from framework.tools.record import (
    RecordError,
    RecordResult,
    record,
    record_config,
)
from framework.tools.report import MissingExtra, write_report
from framework.tools.summary import format_summary, summary_json
from framework.venues import load_config as load
from framework.venues import load_venue


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
    if getattr(args, "fail_fast", False):  # `gateway` runs no strategy: it has no such flag
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


# subcommand -> its implementation (framework.tools.cli dispatches on it)
HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": _main_run,
    "gateway": _main_gateway,
    "sim": _main_sim,
    "record": _main_record,
    "backtest": _main_replay,
    "replay": _main_replay,
    "optimize": _main_optimize,
    "export": _main_export,
}
