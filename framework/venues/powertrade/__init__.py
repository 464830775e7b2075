"""Power.Trade "Market Proxy": one WebSocket for market data (L3), RFQs, orders and account.

Reference: shared/venues/powertrade.md. Strategy-facing extras: `RfqEvent` (and subclasses) from
`framework.venues.powertrade.events`, and the RFQ actions of `PowerTradeExecution`
(`self.venue_client("powertrade")`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import structlog
import trio

from framework.errors import ConfigError
from framework.transport.endpoints import credentials_from_env, env_secrets, select_urls
from framework.venue import Credentials, Endpoints, SimHandle, Urls, VenueConfig, VenueRuntime
from framework.venue import Venue as _Venue
from framework.venue import secret as _secret
from framework.venues.powertrade.auth import make_token
from framework.venues.powertrade.capabilities import CAPABILITIES
from framework.venues.powertrade.client import (
    EntityRules,
    PowerTradeExecution,
    PowerTradeStream,
    fetch_entities,
)
from framework.venues.powertrade.decode import VENUE as NAME

log = structlog.get_logger("botrun.powertrade")

ENDPOINTS = Endpoints(
    sim=lambda sim: Urls(ws=f"{sim.ws_url}/"),
    # [CODE] market-proxy-clients configs: prod and staging proxies
    production=Urls(ws="wss://proxy.ptlab.link"),
    sandbox=Urls(ws="wss://proxy.staging.ptlab.link"),
)


@attrs.frozen
class PowerTradeCredentials(Credentials):
    api_key: str
    # the PEM private key itself, or a path to the PEM file
    private_key: str = _secret()


@attrs.define(kw_only=True)
class PowerTradeConfig(VenueConfig):
    markets: list[str] = attrs.Factory(lambda: ["BTC-USD"])
    rfqs: bool = True  # register for RFQs (RfqEvent)
    api_key_env: str = "POWERTRADE_API_KEY"
    # the environment variable holds the PEM private key itself, or a path to the PEM file
    private_key_env: str = "POWERTRADE_PRIVATE_KEY"
    account_interval_s: float = 10.0
    # simulator only: RFQs its synthetic requesters post per second (0 = none)
    sim_rfq_rate_hz: float = 0.2


def _read_pem(value: str) -> str:
    if value.lstrip().startswith("-----BEGIN"):
        return value
    path = Path(value)
    if not path.is_file():
        raise ConfigError("venues.powertrade.private_key_env: neither a PEM key nor a file")
    return path.read_text()


class PowerTradeVenue(_Venue):
    name = NAME
    config_type = PowerTradeConfig
    capabilities = CAPABILITIES

    async def start_simulator(self, cfg: PowerTradeConfig, nursery: trio.Nursery) -> SimHandle:
        from framework.venues.powertrade.sim import PowerTradeSimulator

        sim = PowerTradeSimulator.build(cfg.sim_seed, rfq_rate_hz=cfg.sim_rfq_rate_hz)
        port = await nursery.start(
            partial(sim.run, port=cfg.sim_port, market_rate_hz=cfg.sim_rate_hz or None)
        )
        return SimHandle(port, sim.http_url, sim.ws_url, sim)

    def _login(self, cfg: PowerTradeConfig, sim: SimHandle | None) -> Callable[[], str] | None:
        if sim is not None:
            from framework.venues.powertrade.sim import SIM_API_KEY, sim_private_key_pem

            # the simulator's built-in account (not a real credential)
            return partial(make_token, SIM_API_KEY, sim_private_key_pem())
        creds = credentials_from_env(PowerTradeCredentials, NAME, cfg, optional=True)
        if creds is None:
            # no credentials at all: market data and RFQs only (enough for paper mode)
            log.warning("no powertrade credentials: market data only", venue=NAME)
            return None
        return partial(make_token, creds.api_key, _read_pem(creds.private_key))

    def secrets(self, cfg: PowerTradeConfig) -> list[str]:
        return env_secrets(PowerTradeCredentials, cfg)

    async def build(self, cfg: PowerTradeConfig, sim: SimHandle | None, http: Any) -> VenueRuntime:
        url = select_urls(NAME, ENDPOINTS, cfg, sim).ws
        # [DOC] entities_and_rules_request at start: steps and limits every order is checked on
        rules = await fetch_entities(url, cfg.request_timeout_s)
        instruments = {}
        for market in cfg.markets:
            found: EntityRules | None = rules.get(market)
            if found is None:
                raise ConfigError(f"venues.powertrade.markets: {market} is not listed by the venue")
            instruments[market] = found.instrument()
        login = self._login(cfg, sim)
        stream = PowerTradeStream(url, cfg.markets, login=login, rfqs=cfg.rfqs)
        execution = None
        if login is not None:
            execution = PowerTradeExecution(
                stream,
                rules,
                request_timeout_s=cfg.request_timeout_s,
                account_interval_s=cfg.account_interval_s,
                # [DOC] the REST API (open orders) on the same host; the simulator serves none
                rest=None if sim is not None else http(url.replace("wss://", "https://", 1)),
                login=login,
            )
        return VenueRuntime(streams=[stream], execution=execution, instruments=instruments)


VENUE = PowerTradeVenue()
