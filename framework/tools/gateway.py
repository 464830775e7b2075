"""`botrun gateway`: one venue account served to strategy processes over Redis Streams.

    botrun gateway --venue paxos --bus redis://10.0.0.5:6379 [--config config.toml]

An `Engine` without strategies owns the venue (sessions, books, order manager, SQLite journal,
risk) and a `framework.distributed.gateway.Gateway` connects it to the bus. `run_gateway` is the
library call; the CLI parses arguments and prints the summary.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from framework.config import Config
from framework.distributed.gateway import Gateway
from framework.distributed.redis import BusConfig
from framework.distributed.remote import RemoteRuntime
from framework.engine import Engine
from framework.strategy import Strategy


async def run_gateway(
    cfg: Config,
    venue: str,
    bus: BusConfig,
    *,
    heartbeat_timeout_s: float = 5.0,
    journal_path: str | None = None,
    on_ready: Callable[[Gateway], None] | None = None,
    stop: trio.Event | None = None,
) -> dict[str, Any]:
    """Run until the config's duration passes or `stop` is set; return the engine's summary with
    the gateway's counters under `bus`."""
    cfg.venues = {venue: cfg.venues[venue]}
    engine = Engine(cfg, [], journal_path=journal_path)
    gateway = Gateway(engine, venue, bus, heartbeat_timeout_s=heartbeat_timeout_s)
    async with trio.open_nursery() as nursery:

        async def engine_then_stop() -> None:
            await engine.run()
            nursery.cancel_scope.cancel()

        async def stop_on_event() -> None:
            assert stop is not None
            await stop.wait()
            engine.stop()

        nursery.start_soon(engine_then_stop)
        if stop is not None:
            nursery.start_soon(stop_on_event)
        await engine.started.wait()
        await nursery.start(gateway.run)
        if on_ready is not None:
            on_ready(gateway)
    summary = engine.final_summary or engine.summary()
    summary["bus"] = dict(gateway.counts)
    return summary


async def run_remote(
    cfg: Config,
    strategies: list[Strategy],
    bus: BusConfig,
    *,
    stop: trio.Event | None = None,
) -> RemoteRuntime:
    """Run `strategies` over the bus against the gateways of the config's venues."""
    runtime = RemoteRuntime(cfg, strategies, bus)
    async with trio.open_nursery() as nursery:
        if stop is not None:

            async def stop_on_event() -> None:
                await stop.wait()
                runtime.stop()

            nursery.start_soon(stop_on_event)
        await runtime.run()
        nursery.cancel_scope.cancel()
    return runtime
