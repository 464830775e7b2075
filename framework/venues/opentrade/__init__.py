"""Open Trade (FlexFills-compatible) taker WS: JWT login, full-refresh books, WS order entry.

Reference: shared/venues/opentrade.md. One WS endpoint serves market data, balances and orders;
HTTP on the same host serves login and the JWT. Books are full replacements every 20 ms; only a
book that changed reaches the strategies (as a `BookSnapshot`).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import Literal

import attrs
import httpx
import trio

from framework.errors import ConfigError
from framework.model import Instrument
from framework.transport.endpoints import credentials_from_env, env_secrets, select_urls
from framework.venue import Credentials, Endpoints, SimHandle, Urls, VenueConfig, VenueRuntime
from framework.venue import Venue as _Venue
from framework.venue import secret as _secret
from framework.venues.opentrade.auth import TokenSource
from framework.venues.opentrade.capabilities import CAPABILITIES
from framework.venues.opentrade.decode import VENUE as NAME
from framework.venues.opentrade.execution import OpenTradeExecution
from framework.venues.opentrade.private import PrivateStream
from framework.venues.opentrade.public import PublicStream, fetch_catalogue

WS_PATH = "/exchange/ws"  # [INF] the simulator serves the WS on the test/prod path
# `http` is the login/token base. [DOC] the sources conflict (a newer page gives
# wss://wss.opentrade.exchange/ws): `http_url` / `ws_url` override these.
ENDPOINTS = Endpoints(
    sim=lambda sim: Urls(http=sim.http_url, ws=sim.ws_url.rstrip("/") + WS_PATH),
    sandbox=Urls(http="https://test.opentrade.io", ws="wss://test.opentrade.io/exchange/ws"),
    production=Urls(http="https://opentrade.io", ws="wss://opentrade.io/exchange/ws"),
)
# [DOC] prices and amounts have at most 8 decimals (used when the catalogue gives no steps)
STEP_8 = Decimal("0.00000001")
SIM_USERNAME, SIM_PASSWORD, SIM_API_USER, SIM_API_SECRET = (
    "sim-user",
    "sim-password",
    "sim-api",
    "sim-secret",
)


@attrs.frozen
class OpenTradeCredentials(Credentials):
    username: str
    password: str = _secret()
    api_user: str
    api_secret: str = _secret()


@attrs.define(kw_only=True)
class OpenTradeConfig(VenueConfig):
    markets: list[str] = attrs.Factory(lambda: ["BTC/USD"])
    levels: int = 20  # book depth, 1-20 (venue limit)
    trades: bool = True  # TRADE_PUBLIC as trade events
    balances: bool = True  # BALANCE subscription (private stream)
    currencies: list[str] = attrs.Factory(list)  # BALANCE currencies; default: markets' assets
    request_type: Literal["SMART", "DIRECT"] = "SMART"
    exchange_name: str = ""  # required with request_type = "DIRECT"
    http_url: str = ""  # override the endpoint's login/token base URL
    ws_url: str = ""  # override the endpoint's WebSocket URL
    username_env: str = "OPENTRADE_USERNAME"
    password_env: str = "OPENTRADE_PASSWORD"
    api_user_env: str = "OPENTRADE_API_USER"
    api_secret_env: str = "OPENTRADE_API_SECRET"
    sim_token_ttl_s: float = 3600.0  # lifetime of the embedded simulator's JWTs


class OpenTradeVenue(_Venue):
    name = NAME
    config_type = OpenTradeConfig
    capabilities = CAPABILITIES

    async def start_simulator(self, cfg: OpenTradeConfig, nursery: trio.Nursery) -> SimHandle:
        from framework.venues.opentrade.sim import OpenTradeSimulator

        sim = OpenTradeSimulator.build(cfg.sim_seed, token_ttl_s=cfg.sim_token_ttl_s)
        port = await nursery.start(
            partial(sim.run, port=cfg.sim_port, market_rate_hz=cfg.sim_rate_hz or None)
        )
        return SimHandle(port, sim.http_url, sim.ws_url, sim)

    def _credentials(
        self, cfg: OpenTradeConfig, sim: SimHandle | None
    ) -> OpenTradeCredentials | None:
        if sim is not None:
            s = sim.simulator
            if s is None:  # a standalone simulator: its default built-in account
                return OpenTradeCredentials(
                    SIM_USERNAME, SIM_PASSWORD, SIM_API_USER, SIM_API_SECRET
                )
            return OpenTradeCredentials(s.username, s.password, s.api_user, s.api_secret)
        # none set: market data only; orders are refused by the core (no client)
        return credentials_from_env(OpenTradeCredentials, NAME, cfg, optional=True)

    def secrets(self, cfg: OpenTradeConfig) -> list[str]:
        return env_secrets(OpenTradeCredentials, cfg)

    async def build(
        self,
        cfg: OpenTradeConfig,
        sim: SimHandle | None,
        http: Callable[..., httpx.AsyncClient],
    ) -> VenueRuntime:
        if not 1 <= cfg.levels <= 20:
            raise ConfigError(f"venues.opentrade.levels: must be 1 to 20, got {cfg.levels}")
        if cfg.request_type == "DIRECT" and not cfg.exchange_name:
            raise ConfigError("venues.opentrade.exchange_name: needed with request_type DIRECT")
        if not cfg.markets:
            raise ConfigError("venues.opentrade.markets: configure at least one market")
        # the TLS rule holds for the overrides too: checked here, before anything connects
        urls = select_urls(
            NAME, ENDPOINTS, cfg, sim, overrides={"http": "http_url", "ws": "ws_url"}
        )
        http_base, ws_url = urls.http, urls.ws
        catalogue = await fetch_catalogue(ws_url, cfg.request_timeout_s)
        instruments = _instruments(catalogue, cfg.markets)
        streams: list = [PublicStream(ws_url, cfg.markets, levels=cfg.levels, trades=cfg.trades)]
        execution = None
        creds = self._credentials(cfg, sim)
        if creds is not None:
            tokens = TokenSource(
                http(http_base, timeout_s=cfg.request_timeout_s),
                creds.username,
                creds.password,
                creds.api_user,
                creds.api_secret,
            )
            currencies = cfg.currencies or sorted(
                {a for i in instruments.values() for a in (i.base, i.quote)}
            )
            private = PrivateStream(ws_url, tokens, cfg.markets, currencies, balances=cfg.balances)
            streams.append(private)
            execution = OpenTradeExecution(
                private,
                request_type=cfg.request_type,
                exchange_name=cfg.exchange_name,
                timeout_s=cfg.request_timeout_s,
            )
        return VenueRuntime(streams=streams, execution=execution, instruments=instruments)


def _instruments(catalogue: dict, markets: list[str]) -> dict[str, Instrument]:
    out = {}
    for market in markets:
        entry = catalogue.get(market)
        if entry is None or entry.kind != "Instrument":
            raise ConfigError(f"venues.opentrade.markets: {market} is not listed by the venue")
        base, sep, quote = market.partition("/")
        if not sep:
            raise ConfigError(f"venues.opentrade.markets: {market} is not BASE/QUOTE")
        out[market] = Instrument(
            NAME, market, base, quote, tick=entry.tick or STEP_8, lot=entry.lot or STEP_8
        )
    return out


VENUE = OpenTradeVenue()
