"""Config parsing: every mistake names its dotted key; Decimals keep the TOML text's value."""

from __future__ import annotations

import tomllib
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from framework.errors import ConfigError
from framework.tools import cli
from framework.venues import load_config as load
from framework.venues import parse_config as parse

REPO = Path(__file__).resolve().parents[1]
STRATEGY = str(REPO / "strategies" / "market_maker.py")


def with_paxos(**sections: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"venues": {"paxos": {}}}
    raw.update(sections)
    return raw


def error_of(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse(raw)
    return str(info.value)


def test_minimal_config_gets_defaults() -> None:
    cfg = parse(with_paxos())
    assert cfg.botrun.mode == "paper"
    assert "paxos" in cfg.venues
    assert cfg.venues["paxos"].endpoint == "sim"
    assert cfg.risk.max_open_orders == 50


def test_repository_config_parses() -> None:
    cfg = load(REPO / "config.toml")
    assert "paxos" in cfg.venues


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"bogus": 1, "venues": {"paxos": {}}}, "bogus"),
        (with_paxos(risk={"max_positoin": "1"}), "risk.max_positoin"),
        (with_paxos(botrun={"modee": "paper"}), "botrun.modee"),
        (with_paxos(paper={"latency": 5}), "paper.latency"),
        ({"venues": {"paxos": {"endpiont": "sim"}}}, "venues.paxos.endpiont"),
    ],
)
def test_unknown_key_names_the_dotted_key(raw: dict[str, Any], key: str) -> None:
    message = error_of(raw)
    assert message.startswith(f"{key}:"), message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (with_paxos(risk={"max_open_orders": "many"}), "risk.max_open_orders"),
        (with_paxos(risk={"max_position": "ten"}), "risk.max_position"),
        (with_paxos(risk={"max_position": True}), "risk.max_position"),
        (with_paxos(risk={"max_position": "NaN"}), "risk.max_position"),
        (with_paxos(risk={"max_order_notional": [1]}), "risk.max_order_notional"),
        (with_paxos(botrun={"mode": "yolo"}), "botrun.mode"),
        (with_paxos(paper={"balances": {"USD": "lots"}}), "paper.balances"),
        ({"venues": {"paxos": {"sim_port": "eighty"}}}, "venues.paxos.sim_port"),
        ({"venues": {"paxos": {"endpoint": "prod"}}}, "venues.paxos.endpoint"),
    ],
)
def test_bad_value_names_the_key(raw: dict[str, Any], key: str) -> None:
    message = error_of(raw)
    assert message.startswith(key), message


def test_unknown_venue_is_named() -> None:
    message = error_of({"venues": {"paxos": {}, "krakken": {}}})
    assert message.startswith("venues.krakken:")
    assert "unknown venue" in message
    assert "paxos" in message  # says which ones exist


def test_no_venue_is_an_error() -> None:
    assert error_of({}).startswith("venues")
    assert error_of({"venues": "paxos"}).startswith("venues")


def test_decimal_from_toml_float_keeps_its_decimal_text() -> None:
    raw = tomllib.loads(
        """
        [risk]
        max_position = 0.1
        max_order_notional = 2500.35
        [paper]
        maker_fee_rate = 0.0002
        taker_fee_rate = 3e-4
        balances = { USD = 100000, BTC = "0.3" }
        [venues.paxos]
        """
    )
    assert isinstance(raw["risk"]["max_position"], float)
    cfg = parse(raw)
    assert cfg.risk.max_position == D("0.1")
    assert str(cfg.risk.max_position) == "0.1"
    assert cfg.risk.max_order_notional == D("2500.35")
    assert cfg.paper.maker_fee_rate == D("0.0002")
    assert cfg.paper.taker_fee_rate == D("0.0003")
    assert cfg.paper.balances == {"USD": D("100000"), "BTC": D("0.3")}
    assert D(float("0.1")) != D("0.1")  # what a naive conversion would have produced


def test_load_reports_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[risk\nmax_position = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(bad)


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[risk]\nmax_open_orders = "many"\n[venues.paxos]\n', "risk.max_open_orders"),
        ("[risk]\nmax_positoin = 1\n[venues.paxos]\n", "risk.max_positoin"),
        ("[venues.paxos]\nendpiont = 'sim'\n", "venues.paxos.endpiont"),
    ],
)
def test_cli_bad_config_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], toml: str, key: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(toml)
    assert cli.main(["--config", str(path), STRATEGY]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert key in lines[0]


def test_parse_resolves_venues_through_the_catalog_it_is_given() -> None:
    import attrs

    from framework import config
    from framework.venue import VenueConfig
    from framework.venues import CATALOG

    @attrs.define(kw_only=True)
    class ToyConfig(VenueConfig):
        depth: int = 5

    class Toy:
        name = "toy"
        config_type = ToyConfig

    class Catalog:
        loads: list[str] = []

        def names(self) -> list[str]:
            return ["toy"]

        def load(self, name: str) -> Any:
            self.loads.append(name)
            return Toy

    catalog = Catalog()
    cfg = config.parse({"venues": {"toy": {"depth": 7}}}, catalog)
    assert cfg.venues["toy"] == ToyConfig(depth=7) and cfg.venue_impls == {"toy": Toy}
    assert catalog.loads == ["toy"]  # once, at parse: the engine never loads a venue
    with pytest.raises(ConfigError, match=r"^venues.paxos: unknown venue \(known: toy\)$"):
        config.parse(with_paxos(), catalog)
    with pytest.raises(ConfigError, match=r"^venue_impls: unknown key$"):
        config.parse({"venue_impls": {}, "venues": {"toy": {}}}, catalog)
    # the registry's catalogue resolves the real venues the same way
    assert parse(with_paxos()).venue_impls == {"paxos": CATALOG.load("paxos")}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (with_paxos(botrun={"duration_s": -1}), "botrun.duration_s: must not be negative"),
        (with_paxos(risk={"max_position": "-1"}), "risk.max_position: must be positive"),
        (with_paxos(risk={"max_open_orders": 0}), "risk.max_open_orders: must be positive"),
        (with_paxos(risk={"max_loss": "-5"}), "risk.max_loss: must not be negative"),
        (with_paxos(paper={"taker_fee_rate": "1.5"}), "paper.taker_fee_rate: must be a fraction"),
        (with_paxos(paper={"latency_ms": -3}), "paper.latency_ms: must not be negative"),
        (
            with_paxos(paper={"balances": {"USD": "-10"}}),
            "paper.balances.USD: must not be negative",
        ),
        (
            {"venues": {"paxos": {"markets": "BTCUSD"}}},
            'venues.paxos.markets: must be a list, e.g. markets = ["BTCUSD"]',
        ),
        ({"venues": {"paxos": {"request_timeout_s": 0}}}, "venues.paxos.request_timeout_s"),
        (
            with_paxos(botrun={"mode": "yolo"}),
            "botrun.mode: must be one of 'paper', 'sandbox', 'live' (got 'yolo')",
        ),
        (
            {"venues": {"paxos": {"endpoint": "prod"}}},
            "venues.paxos.endpoint: must be one of 'sim', 'sandbox', 'production' (got 'prod')",
        ),
    ],
)
def test_values_are_checked_for_sense_not_only_type(raw: dict[str, Any], message: str) -> None:
    got = error_of(raw)
    assert got.startswith(message), got
    assert "typing" not in got


def test_a_negative_maker_fee_is_a_rebate_and_allowed() -> None:
    cfg = parse(with_paxos(paper={"maker_fee_rate": "-0.0001"}))
    assert cfg.paper.maker_fee_rate == D("-0.0001")


def test_quickstart_balances_cover_the_examples() -> None:
    # the market maker quotes `size` on both sides at once: the shipped balances must pay for
    # both quotes (and the taker's orders) at the simulator's prices, with room to spare
    cfg = load(REPO / "config.toml")
    size = D(str(cfg.strategy.params["size"]))
    assert cfg.paper.balances["BTC"] >= 10 * size
    assert cfg.paper.balances["USD"] >= 10 * size * D("100000")


def test_one_config_serves_live_and_backtest_runs() -> None:
    """`[backtest]` (the realism models) belongs to backtests; a live or paper run on the same
    config.toml accepts it, and a `[backtest]` that is not a table is still refused."""
    raw = with_paxos(backtest={"queue": "proportional", "latency": {"paxos": {"kind": "fixed"}}})
    assert "paxos" in parse(raw).venues
    assert error_of(with_paxos(backtest="fast")) == "backtest: must be a table ([backtest])"
