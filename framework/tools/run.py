"""`framework.run`: run strategies programmatically, as `botrun STRATEGY.py` does.

    import framework
    summary = framework.run(MyStrategy(params), config="config.toml", duration_s=60)

`framework.run` is this module's `run`, imported on first use (framework/__init__.py), so that
`import framework` stays free of venues and tools.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from framework.config import Config
from framework.engine import Engine
from framework.errors import ConfigError
from framework.strategy import Strategy
from framework.tools.loader import load_strategy_class
from framework.venues import load_config, parse_config

StrategySpec = Strategy | str | Path


def build(
    strategies: StrategySpec | Sequence[StrategySpec] | None,
    config: str | Path | dict[str, Any] | Config = "config.toml",
    *,
    duration_s: float | None = None,
    mode: str | None = None,
) -> Engine:
    """The engine `run` would run: config resolved (a path, a raw dict as from config.toml, or a
    parsed Config), disabled venues left out, strategies built (a path is loaded and given the
    config's `[strategy.params]`)."""
    if isinstance(config, Config):
        cfg = config
    elif isinstance(config, dict):
        cfg = parse_config(config)
    else:
        cfg = load_config(config)
    if mode is not None:
        cfg.botrun.mode = mode  # type: ignore[assignment]
    if duration_s is not None:
        cfg.botrun.duration_s = duration_s
    cfg.venues = {name: v for name, v in cfg.venues.items() if v.enabled}
    if not cfg.venues:
        raise ConfigError("venues: no venue is enabled (set enabled = true or use --venue)")
    if strategies is None:
        strategies = cfg.botrun.strategy or []
    specs = [strategies] if isinstance(strategies, Strategy | str | Path) else list(strategies)
    built = [
        s if isinstance(s, Strategy) else load_strategy_class(str(s))(cfg.strategy.params)
        for s in specs
    ]
    return Engine(cfg, built)


async def run_async(
    strategies: StrategySpec | Sequence[StrategySpec] | None,
    config: str | Path | dict[str, Any] | Config = "config.toml",
    *,
    duration_s: float | None = None,
    mode: str | None = None,
) -> dict[str, Any]:
    """`run` from inside trio."""
    engine = build(strategies, config, duration_s=duration_s, mode=mode)
    await engine.run()
    return engine.final_summary or engine.summary()


def run(
    strategies: StrategySpec | Sequence[StrategySpec] | None,
    config: str | Path | dict[str, Any] | Config = "config.toml",
    *,
    duration_s: float | None = None,
    mode: str | None = None,
) -> dict[str, Any]:
    """Run `strategies` (instances, strategy files, or None for `[botrun].strategy`) with
    `config` until `duration_s` passes (None: the config's `[botrun].duration_s`; 0 = until a
    strategy calls `stop()`), then return the run summary (as data; `framework.tools.summary`
    formats it). Call from outside trio."""
    return trio.run(lambda: run_async(strategies, config, duration_s=duration_s, mode=mode))
