"""`botrun` command line.

botrun STRATEGY.py [--config FILE] [--venue NAME] [--mode paper|sandbox|live] [--duration S]
botrun sim VENUE [--port N] [--seed N]
botrun record --venue NAME [--markets M ...] --out DIR [--duration S]
botrun backtest STRATEGY.py [--data PATH] [--seed N] [--report DIR]
botrun replay [STRATEGY.py] --data PATH
"""

from __future__ import annotations

import argparse
import signal
import sys

import structlog
import trio

from framework import logs
from framework.config import Config
from framework.engine import Engine
from framework.errors import ConfigError
from framework.tools.run import load_strategy_class
from framework.tools.summary import format_summary
from framework.transport.session import first_leaf
from framework.venues import load_config as load
from framework.venues import load_venue, venue_names

EXIT_CONFIG = 2


def _run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="botrun", description="Run a strategy.")
    p.add_argument("strategy", nargs="?", help="strategy file (default: [botrun].strategy)")
    p.add_argument("--config", default="config.toml")
    p.add_argument("--venue", help="run only this configured venue")
    p.add_argument("--mode", choices=["paper", "sandbox", "live"])
    p.add_argument("--duration", type=float, help="seconds to run, then stop (0 = until Ctrl-C)")
    p.add_argument("--log-format", choices=["auto", "console", "json"])
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.add_argument(
        "--confirm-live", action="store_true", help="required with --mode live: real money"
    )
    return p


def _sim_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="botrun sim", description="Serve a venue simulator.")
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
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "sim":
        return _main_sim(_sim_parser().parse_args(argv[1:]))
    if argv and argv[0] == "record":
        from framework.tools.record import main_record

        return main_record(argv[1:])
    if argv and argv[0] in ("backtest", "replay"):
        from framework.tools.backtest import main_backtest

        return main_backtest(argv[1:], argv[0])
    return _main_run(_run_parser().parse_args(argv))


def _fail(message: str) -> int:
    print(f"botrun: config error: {message}", file=sys.stderr)
    return EXIT_CONFIG


def _main_run(args: argparse.Namespace) -> int:
    try:
        cfg = load(args.config)
        _apply_overrides(cfg, args)
        strategy_path = args.strategy or cfg.botrun.strategy
        if not strategy_path:
            raise ConfigError("strategy: give a strategy file or set [botrun].strategy")
        strategy_cls = load_strategy_class(strategy_path)
    except ConfigError as exc:
        return _fail(str(exc))
    logs.configure(cfg.botrun.log_format, cfg.botrun.log_level)
    engine = Engine(cfg, [strategy_cls(cfg.strategy.params)])
    try:
        trio.run(_run_engine, engine)
    except Exception as raw:
        exc = first_leaf(raw)
        if isinstance(exc, ConfigError):
            return _fail(str(exc))
        raise
    print(format_summary(engine.final_summary or engine.summary()))
    return 0


def _apply_overrides(cfg: Config, args: argparse.Namespace) -> None:
    if args.mode:
        cfg.botrun.mode = args.mode
    if args.duration is not None:
        cfg.botrun.duration_s = args.duration
    if args.log_format:
        cfg.botrun.log_format = args.log_format
    if args.log_level:
        cfg.botrun.log_level = args.log_level
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
        nursery.start_soon(_stop_on_signal, engine)
        await engine.run()
        nursery.cancel_scope.cancel()


async def _stop_on_signal(engine: Engine) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            structlog.get_logger("botrun").info("signal; stopping", signal=signum)
            engine.stop()


def _main_sim(args: argparse.Namespace) -> int:
    from framework.sim.faults import FaultPlan

    try:
        plan = FaultPlan.parse(args.faults) if args.faults else None
    except ValueError as exc:
        return _fail(f"--faults: {exc}")
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
