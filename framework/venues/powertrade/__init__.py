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
from framework.venues.powertrade.client import PowerTradeStream
from framework.venues.powertrade.decode_frames import VENUE as NAME
from framework.venues.powertrade.entities import EntityRules, fetch_entities
from framework.venues.powertrade.execution import (
    NOT_FOUND_GRACE_S,
    SIM_NOT_FOUND_GRACE_S,
    PowerTradeExecution,
)

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
    # [CODE] 10-minute exchange cycles an order lives; every official client sends it ("144" =
    # 1 day); a resting order ends after that and must be placed again
    recv_window: str = "144"
    # [CODE Hummingbot] "not found in order cache" is believed only for an order this old (the
    # venue has had time to see it); younger, the order stays UNKNOWN and is asked again.
    # None: 300 s on the venue; 5 s on the embedded simulator ([INF] it sees a request the
    # instant it arrives, and a new run's simulator never knew the last run's orders)
    not_found_grace_s: float | None = None
    # [DOC] firm-book subscription: "snap_full_updates" (order by order; interval "0") or
    # "snap_with_deltas" (price levels every `book_interval_ms`, a multiple of 100)
    book_type: str = "snap_full_updates"
    book_interval_ms: str = "0"
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
        stream = PowerTradeStream(
            url,
            cfg.markets,
            login=login,
            rfqs=cfg.rfqs,
            book_type=cfg.book_type,
            book_interval_ms=cfg.book_interval_ms,
        )
        execution = None
        if login is not None:
            execution = PowerTradeExecution(
                stream,
                rules,
                request_timeout_s=cfg.request_timeout_s,
                account_interval_s=cfg.account_interval_s,
                # [DOC] the REST API (order details, open orders) on the same host
                rest=http(
                    sim.http_url if sim is not None else url.replace("wss://", "https://", 1)
                ),
                login=login,
                recv_window=cfg.recv_window,
                not_found_grace_s=(
                    cfg.not_found_grace_s
                    if cfg.not_found_grace_s is not None
                    else (SIM_NOT_FOUND_GRACE_S if sim is not None else NOT_FOUND_GRACE_S)
                ),
            )
        return VenueRuntime(streams=[stream], execution=execution, instruments=instruments)


VENUE = PowerTradeVenue()
