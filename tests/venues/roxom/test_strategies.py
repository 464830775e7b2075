"""The example strategies run against the Roxom simulator as `botrun STRATEGY --venue roxom` would.

Paper mode (fills simulated on the live Roxom book) and sandbox mode (orders through the
simulator's signed REST, fills from its WebSocket order events), with the crowd trading live.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from framework.tools.cli import load_strategy_class
from framework.venues import load_config as load
from tests.helpers import config, running, until

REPO = Path(__file__).resolve().parents[3]
# what `botrun strategies/... --venue roxom` uses: the repo's config.toml strategy params
PARAMS = load(REPO / "config.toml").strategy.params


def cfg(mode: str):
    return config(
        {"roxom": {"endpoint": "sim", "sim_seed": 3, "sim_rate_hz": 50}},
        botrun={"mode": mode},
    )


@pytest.mark.parametrize("mode", ["paper", "sandbox"])
@pytest.mark.parametrize(
    ("path", "params"),
    [("strategies/market_maker.py", {}), ("strategies/taker.py", {"interval_s": 0.1})],
)
async def test_example_strategy_trades_on_the_roxom_simulator(
    mode: str, path: str, params: dict, tmp_path: Path
) -> None:
    strategy = load_strategy_class(str(REPO / path))({**PARAMS, **params})
    async with running(cfg(mode), [strategy], journal_path=str(tmp_path / "j.sqlite")) as engine:
        await until(engine, lambda: engine.portfolio.fill_count >= 2, "the strategy trades")
        assert strategy.default_market() == ("roxom", "US500-BTC")
        assert engine.bus.handler_errors == {}
        if mode == "sandbox":
            sim = engine.simulators["roxom"].simulator
            ours = sum(o.filled_qty for o in engine.orders.orders.values())
            assert ours > 0
            assert all(o.venue_order_id in sim.orders for o in engine.orders.orders.values()
                       if o.filled_qty)  # fmt: skip


def test_botrun_cli_runs_the_market_maker_on_the_roxom_simulator() -> None:
    # exactly the README's command, with the repository's own config.toml
    proc = subprocess.run(
        [sys.executable, "-m", "framework.tools.cli", "strategies/market_maker.py",
         "--venue", "roxom", "--duration", "3"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "botrun summary (paper mode)" in proc.stdout
    assert re.search(r"events by venue: roxom: [1-9]\d*", proc.stdout)
    assert "session roxom/ws" in proc.stdout and "bad_frames" not in proc.stdout
