"""Roxom: BTC-quoted index perpetuals. Signed WS (market data + account events), REST orders.

Reference: shared/venues/roxom.md. One WebSocket carries the subscribed market channels and the
account's order, balance and position events; orders go over signed REST calls.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Literal

import attrs
import httpx
import trio

from framework.errors import ConfigError
from framework.transport.endpoints import credentials_from_env, env_secrets, select_urls
from framework.transport.rest import request_json
from framework.venue import Credentials, Endpoints, SimHandle, Urls, VenueConfig, VenueRuntime
from framework.venue import Venue as _Venue
from framework.venue import secret as _secret
from framework.venues.roxom.auth import HmacSigner, RsaSigner, Signer
from framework.venues.roxom.capabilities import CAPABILITIES
from framework.venues.roxom.client import MARKET_CHANNELS, RoxomExecution, RoxomStream
from framework.venues.roxom.instruments import SPECS, fetch_instruments
from framework.venues.roxom.instruments import VENUE as NAME
from framework.venues.roxom.tracking import OrderTracker

__all__ = ["NAME", "VENUE", "RoxomConfig", "RoxomExecution", "RoxomStream", "RoxomVenue"]

# [DOC] production hosts; the docs name a sandbox but give no URL, so it is configured
ENDPOINTS = Endpoints(
    sim=lambda sim: Urls(ws=sim.ws_url, http=sim.http_url),
    production=Urls(ws="wss://ws.roxom.com", http="https://api.roxom.com"),
)


@attrs.frozen
class RoxomRsaCredentials(Credentials):
    api_key: str
    private_key: str = _secret()  # PKCS#8 PEM text


@attrs.frozen
class RoxomHmacCredentials(Credentials):
    api_key: str
    api_secret: str = _secret()


def _channels(_: object, attribute: attrs.Attribute, value: list[str]) -> None:
    unknown = [c for c in value if c not in MARKET_CHANNELS]
    if unknown:
        raise ValueError(f"unknown channel(s) {unknown}; known: {', '.join(MARKET_CHANNELS)}")


@attrs.define(kw_only=True)
class RoxomConfig(VenueConfig):
    markets: list[str] = attrs.Factory(lambda: ["US500-BTC"])
    # market channels per symbol (orders, balance and positions are always subscribed)
    channels: list[str] = attrs.field(
        factory=lambda: ["depth", "trade", "ticker"], validator=_channels
    )
    # "rsa": X-API-Key + X-API-Signature (current docs); "hmac": the older timestamp scheme
    auth_scheme: Literal["rsa", "hmac"] = "rsa"
    api_key_env: str = "ROXOM_API_KEY"
    private_key_env: str = "ROXOM_PRIVATE_KEY"  # PKCS#8 PEM text (rsa)
    api_secret_env: str = "ROXOM_API_SECRET"  # (hmac)
    sandbox_ws_url: str = ""  # e.g. wss://<sandbox host> (the client adds /ws)
    sandbox_rest_url: str = ""


class RoxomVenue(_Venue):
    name = NAME
    config_type = RoxomConfig
    capabilities = CAPABILITIES

    async def start_simulator(self, cfg: RoxomConfig, nursery: trio.Nursery) -> SimHandle:
        from framework.venues.roxom.sim import RoxomSimulator

        sim = RoxomSimulator.build(cfg.sim_seed)
        port = await nursery.start(
            partial(sim.run, port=cfg.sim_port, market_rate_hz=cfg.sim_rate_hz or None)
        )
        return SimHandle(port, sim.http_url, sim.ws_url, sim)

    def secrets(self, cfg: RoxomConfig) -> list[str]:
        return env_secrets(RoxomRsaCredentials, cfg) + env_secrets(RoxomHmacCredentials, cfg)

    def _urls(self, cfg: RoxomConfig, sim: SimHandle | None) -> tuple[str, str]:
        sandbox = sim is None and cfg.endpoint == "sandbox"
        if sandbox and (not cfg.sandbox_ws_url or not cfg.sandbox_rest_url):
            raise ConfigError(
                "venues.roxom.sandbox_ws_url: the sandbox URLs must be configured "
                "(Roxom publishes none)"
            )
        overrides = {"ws": "sandbox_ws_url", "http": "sandbox_rest_url"} if sandbox else None
        urls = select_urls(NAME, ENDPOINTS, cfg, sim, overrides=overrides)
        return urls.ws, urls.http

    async def _signer(
        self, cfg: RoxomConfig, sim: SimHandle | None, rest: httpx.AsyncClient
    ) -> Signer:
        if sim is not None:
            # the simulator's own generated test account (a standalone one tells it over HTTP)
            if sim.simulator is not None:
                s = sim.simulator
                key, pem, secret = s.api_key, s.private_key_pem, s.hmac_secret
            else:
                creds = await request_json(rest, "GET", "/sim/credentials", venue=NAME)
                key, pem, secret = creds["apiKey"], creds["privateKey"], creds["hmacSecret"]
            return HmacSigner(key, secret) if cfg.auth_scheme == "hmac" else RsaSigner(key, pem)
        if cfg.auth_scheme == "hmac":
            hmac = credentials_from_env(RoxomHmacCredentials, NAME, cfg)
            assert hmac is not None  # not optional: a missing variable is a ConfigError
            return HmacSigner(hmac.api_key, hmac.api_secret)
        rsa = credentials_from_env(RoxomRsaCredentials, NAME, cfg)
        assert rsa is not None
        return RsaSigner(rsa.api_key, rsa.private_key)

    async def build(
        self,
        cfg: RoxomConfig,
        sim: SimHandle | None,
        http: Callable[..., httpx.AsyncClient],
    ) -> VenueRuntime:
        unknown = [m for m in cfg.markets if m not in SPECS]
        if unknown:
            raise ConfigError(
                f"venues.roxom.markets: {', '.join(unknown)} not listed (known: {', '.join(SPECS)})"
            )
        ws_base, rest_base = self._urls(cfg, sim)
        rest = http(rest_base, timeout_s=cfg.request_timeout_s)
        signer = await self._signer(cfg, sim, rest)
        tracker = OrderTracker()
        stream = RoxomStream(ws_base, signer, cfg.markets, cfg.channels, tracker)
        return VenueRuntime(
            streams=[stream],
            execution=RoxomExecution(rest, signer, tracker),
            instruments=await fetch_instruments(rest, cfg.markets),
        )


VENUE = RoxomVenue()
