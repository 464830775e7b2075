"""`botrun strategies/market_maker.py --venue opentrade`, in code: the example strategies run
against the embedded Open Trade simulator in paper and in sandbox mode; config errors are clear."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from framework.errors import ConfigError
from framework.events import OrderAccepted, OrderFill, OrderStatus
from framework.tools.cli import load_strategy_class
from tests.helpers import config, running, session, until

ROOT = Path(__file__).resolve().parents[3]
VENUE = {"endpoint": "sim", "sim_seed": 2, "markets": ["BTC/USD"]}
PARAMS = {"size": "0.002", "half_spread_bps": 0.05, "max_inventory": "0.01", "refresh_s": 0.05}


def cfg(mode: str, **venue: object):
    return config(
        {"opentrade": {**VENUE, **venue}},
        botrun={"mode": mode},
        strategy={"params": PARAMS},
        risk={"max_order_notional": "5000", "max_position": "1", "max_orders_per_second": 100},
    )


@pytest.mark.parametrize("mode", ["paper", "sandbox"])
async def test_market_maker_quotes_on_the_simulator(mode: str, tmp_path: Path) -> None:
    strategy = load_strategy_class(str(ROOT / "strategies/market_maker.py"))(PARAMS)
    async with running(cfg(mode), [strategy], journal_path=str(tmp_path / "j.sqlite")) as engine:
        accepted: list[OrderAccepted] = []
        engine.bus.subscribe(OrderAccepted, accepted.append, owner="t")
        await until(engine, lambda: len(accepted) >= 2, "two quotes accepted")
        assert strategy.venue == "opentrade" and strategy.tick == engine.orders.instruments[
            ("opentrade", "BTC/USD")].tick  # fmt: skip
        private = session(engine, "private")
        sim = engine.simulators["opentrade"].simulator
        if mode == "paper":
            # paper orders never reach the venue; the venue account stream stays unconnected
            assert private.epoch == 0 and sim.order(accepted[0].client_order_id) is None
        else:
            assert private.epoch == 1
            assert sim.order(accepted[0].client_order_id) is not None


async def test_taker_fills_against_the_simulator_in_sandbox(tmp_path: Path) -> None:
    strategy = load_strategy_class(str(ROOT / "strategies/taker.py"))({"interval_s": 0.05})
    async with running(
        cfg("sandbox"), [strategy], journal_path=str(tmp_path / "j.sqlite")
    ) as engine:
        fills: list[OrderFill] = []
        engine.bus.subscribe(OrderFill, fills.append, owner="t")
        await until(engine, lambda: len(fills) >= 2, "two taker fills")
        assert {f.side for f in fills[:2]} == {"BUY", "SELL"}
        assert all(o.status is not OrderStatus.UNKNOWN for o in engine.orders.orders.values())


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"request_type": "SOMETIMES"}, "request_type"),
        ({"bogus": 1}, "venues.opentrade.bogus: unknown key"),
    ],
)
def test_config_errors_name_the_key(section: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config({"opentrade": {**VENUE, **section}})


async def test_unlisted_market_and_direct_without_exchange_are_config_errors() -> None:
    for venue, message in (
        ({"markets": ["DOGE/USD"]}, "DOGE/USD is not listed"),
        ({"request_type": "DIRECT"}, "exchange_name"),
        ({"levels": 0}, "venues.opentrade.levels: must be 1 to 20"),
        ({"levels": 21}, "venues.opentrade.levels: must be 1 to 20"),
    ):
        with pytest.raises(BaseException) as info:
            async with running(cfg("paper", **venue)):
                pass
        exc = info.value
        while isinstance(exc, BaseExceptionGroup):
            exc = exc.exceptions[0]
        assert isinstance(exc, ConfigError) and message in str(exc)


async def test_the_repository_config_makes_the_market_maker_fill_in_sandbox(
    tmp_path: Path,
) -> None:
    """`botrun strategies/market_maker.py --venue opentrade --mode sandbox` with the repo's own
    config.toml: its Open Trade override of the spread quotes close enough to trade."""
    from framework.venues import load_config as load

    params = load(ROOT / "config.toml").strategy.params
    assert params["by_venue"]["opentrade"]["half_spread_bps"] < params["half_spread_bps"]
    strategy = load_strategy_class(str(ROOT / "strategies/market_maker.py"))(
        {**params, "refresh_s": 0.05}
    )
    c = config(
        {"opentrade": {**VENUE, "sim_seed": 1}},
        botrun={"mode": "sandbox"},
        risk={"max_order_notional": "5000", "max_position": "1", "max_orders_per_second": 100},
    )
    async with running(c, [strategy], journal_path=str(tmp_path / "j.sqlite")) as engine:
        await until(engine, lambda: engine.portfolio.fill_count >= 2, "the strategy trades")
        assert strategy.half_spread_bps == Decimal("0.005")
        assert all(o.status is not OrderStatus.UNKNOWN for o in engine.orders.orders.values())
