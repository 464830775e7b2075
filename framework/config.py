"""config.toml → attrs classes via cattrs, with one clear message naming a bad key.

The core names no venue: `parse`/`load` are handed a `VenueCatalog` (the venue layer's is
`framework.venues.CATALOG`, with `framework.venues.parse_config`/`load_config` as shorthands) and
resolve each `[venues.X]` section to its config type and its `Venue` object, once.
"""

from __future__ import annotations

import re
import tomllib
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn

from framework.errors import ConfigError
from framework.execution.paper import PaperConfig
from framework.risk import RiskConfig
from framework.transport.endpoints import secret_from_env  # noqa: F401  (one copy, named here too)
from framework.venue import Venue, VenueCatalog, VenueConfig

Mode = Literal["paper", "sandbox", "live"]


@attrs.define(kw_only=True)
class BotConfig:
    mode: Mode = "paper"
    duration_s: float = 0.0  # 0 = run until Ctrl-C / SIGTERM
    log_format: Literal["auto", "console", "json"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    journal_dir: str = ".botrun"
    # start even if the journal looks truncated (0 bytes, deleted, emptied while its marker
    # says it held orders); `--accept-empty-journal`
    accept_empty_journal: bool = False
    strategy: str = ""  # default strategy file when none is given on the command line
    # a strategy handler (or timer) running longer than this blocks every feed: it is warned
    # about by name
    slow_handler_ms: float = 100.0
    # stop the run at the first handler error (also `botrun --fail-fast`)
    fail_fast: bool = False
    # a venue that cannot be reached at start is retried this many times, the wait doubling
    # from start_backoff_s, before the run gives up with one line (exit code 5)
    start_retries: int = 2
    start_backoff_s: float = 0.5


@attrs.define(kw_only=True)
class StrategyConfig:
    params: dict[str, Any] = attrs.Factory(dict)


@attrs.define(kw_only=True)
class Config:
    botrun: BotConfig = attrs.Factory(BotConfig)
    risk: RiskConfig = attrs.Factory(RiskConfig)
    paper: PaperConfig = attrs.Factory(PaperConfig)
    strategy: StrategyConfig = attrs.Factory(StrategyConfig)
    venues: dict[str, VenueConfig] = attrs.Factory(dict)
    # the Venue object of each configured venue, resolved by `parse` from its catalogue (not a
    # config key: init=False keeps it out of the TOML schema)
    venue_impls: dict[str, Venue] = attrs.field(init=False, factory=dict, repr=False, eq=False)


def _decimal(value: Any, _: type) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected a decimal number, got {value!r}")
    try:
        # str() of a TOML float gives its shortest repr, e.g. 0.1 -> "0.1", not the binary value
        d = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"not a decimal number: {value!r}") from None
    if not d.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return d


def _converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)
    conv.register_structure_hook(Decimal, _decimal)
    for cls in (BotConfig, StrategyConfig, RiskConfig, PaperConfig):
        conv.register_structure_hook(
            cls, make_dict_structure_fn(cls, conv, _cattrs_forbid_extra_keys=True)
        )
    return conv


_CONV = _converter()


def _first_error(exc: Exception, prefix: str) -> str:
    messages = cattrs.transform_error(exc, path=prefix)
    return messages[0] if messages else f"{prefix}: {exc}"


def parse(raw: dict[str, Any], catalog: VenueCatalog) -> Config:
    """The config in `raw` (a parsed config.toml); venue sections are checked against `catalog`."""
    raw = dict(raw)
    venues_raw = raw.pop("venues", {})
    if not isinstance(venues_raw, dict):
        raise ConfigError("venues: must be a table of venue sections")
    # [backtest] (the realism models) is read by `botrun backtest`/`run_backtest`, which check it;
    # one config.toml serves live, paper and backtest runs, so other runs accept and ignore it
    if not isinstance(raw.pop("backtest", {}), dict):
        raise ConfigError("backtest: must be a table ([backtest])")
    try:
        cfg = _CONV.structure(raw, Config)
    except Exception as exc:
        raise ConfigError(_pretty(_first_error(exc, "config"))) from None
    known = catalog.names()
    for name, section in venues_raw.items():
        if name not in known:
            raise ConfigError(f"venues.{name}: unknown venue (known: {', '.join(known)})")
        if not isinstance(section, dict):
            raise ConfigError(f"venues.{name}: must be a table ([venues.{name}])")
        for key, value in section.items():
            # cattrs would take a string as a list of its characters ("B is not listed")
            if key.endswith("markets") and isinstance(value, str):
                raise ConfigError(f'venues.{name}.{key}: must be a list, e.g. {key} = ["{value}"]')
        venue = catalog.load(name)
        try:
            cfg.venues[name] = _venue_converter(venue.config_type).structure(
                section, venue.config_type
            )
        except Exception as exc:
            raise ConfigError(_pretty(_first_error(exc, f"venues.{name}"))) from None
        cfg.venue_impls[name] = venue
    if not cfg.venues:
        raise ConfigError("venues: configure at least one venue")
    check_sense(cfg)
    return cfg


def _not_negative(where: str, value: Decimal | float | int) -> None:
    if value < 0:
        raise ConfigError(f"{where}: must not be negative (got {value})")


def check_sense(cfg: Config) -> None:
    """Values that parse but make no sense (a negative limit, a run that would never end by
    `duration_s < 0`) are refused with one line naming the key."""
    _not_negative("botrun.duration_s", cfg.botrun.duration_s)
    _not_negative("botrun.start_retries", cfg.botrun.start_retries)
    _not_negative("botrun.start_backoff_s", cfg.botrun.start_backoff_s)
    if cfg.botrun.slow_handler_ms <= 0:
        raise ConfigError("botrun.slow_handler_ms: must be positive")
    risk = cfg.risk
    for key in ("max_order_notional", "max_position", "max_open_orders", "max_orders_per_second"):
        value = getattr(risk, key)
        if value <= 0:
            raise ConfigError(f"risk.{key}: must be positive (got {value})")
    _not_negative("risk.max_loss", risk.max_loss)
    paper = cfg.paper
    # a negative fee is a rebate: allowed down to -100 %, a fee above 100 % is a typo
    for key in ("maker_fee_rate", "taker_fee_rate"):
        rate = getattr(paper, key)
        if not Decimal(-1) < rate < Decimal(1):
            raise ConfigError(f"paper.{key}: must be a fraction between -1 and 1 (got {rate})")
    _not_negative("paper.latency_ms", paper.latency_ms)
    for asset, amount in paper.balances.items():
        _not_negative(f"paper.balances.{asset}", amount)
    for name, venue in cfg.venues.items():
        _not_negative(f"venues.{name}.sim_rate_hz", venue.sim_rate_hz)
        if venue.request_timeout_s <= 0:
            raise ConfigError(f"venues.{name}.request_timeout_s: must be positive")
        if not 0 <= venue.sim_port <= 65535:
            raise ConfigError(f"venues.{name}.sim_port: must be a port (0-65535)")
        for market in venue.markets:
            if not isinstance(market, str) or not market:
                raise ConfigError(f"venues.{name}.markets: must be a list of market names")


def _venue_converter(cls: type) -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)
    conv.register_structure_hook(Decimal, _decimal)
    conv.register_structure_hook(
        cls, make_dict_structure_fn(cls, conv, _cattrs_forbid_extra_keys=True)
    )
    return conv


def _literal(message: str) -> str:
    # "unknown error (papr not in literal typing.Literal['paper', 'sandbox', 'live'])"
    found = re.search(r"\(?(.*) not in literal typing\.Literal\[(.*)\]\)?$", message)
    if not found:
        return message
    return f"must be one of {found[2]} (got {found[1].removeprefix('unknown error (')!r})"


def _pretty(message: str) -> str:
    # cattrs says "invalid value for type, expected int @ config.risk.max_open_orders";
    # lead with the key, which is what the user has to find
    if " @ " in message:
        what, where = message.rsplit(" @ ", 1)
        where = where.removeprefix("config").removeprefix(".").replace("$.", "")
        # "extra fields found (a, b) @ config.risk": name each key as the user wrote it
        extra = re.fullmatch(r"extra fields found \((.*)\)", what)
        if extra:
            keys = sorted(extra[1].split(", "))
            return ", ".join(f"{where}.{k}" if where else k for k in keys) + ": unknown key"
        what = _literal(what)
        return f"{where}: {what}" if where else what
    return _literal(message)


def load(path: str | Path, catalog: VenueCatalog) -> Config:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:  # TOML is UTF-8; found by fuzzing (tests/test_fuzz.py)
        raise ConfigError(f"{p}: not UTF-8 text (byte {exc.start})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML ({exc})") from None
    return parse(raw, catalog)
