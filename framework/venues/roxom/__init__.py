"""Roxom: BTC-quoted index perpetuals. Signed WS (market data + account events), REST orders.

Reference: shared/venues/roxom.md. One WebSocket carries the subscribed market channels and the
account's order, balance and position events; orders go over signed REST calls.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from typing import Literal

import attrs
import httpx
import trio

from framework.config import secret_from_env
from framework.errors import ConfigError
from framework.transport.rest import request_json
from framework.venue import SimHandle, VenueConfig, VenueRuntime
from framework.venue import Venue as _Venue
from framework.venues.roxom.auth import HmacSigner, RsaSigner, Signer
from framework.venues.roxom.client import MARKET_CHANNELS, RoxomExecution, RoxomStream
from framework.venues.roxom.instruments import SPECS, instrument
from framework.venues.roxom.instruments import VENUE as NAME

__all__ = ["NAME", "VENUE", "RoxomConfig", "RoxomExecution", "RoxomStream", "RoxomVenue"]

# [DOC] production hosts; the docs name a sandbox but give no URL, so it is configured
_PRODUCTION = ("wss://ws.roxom.com", "https://api.roxom.com")


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

    async def start_simulator(self, cfg: RoxomConfig, nursery: trio.Nursery) -> SimHandle:
        from framework.venues.roxom.sim import RoxomSimulator

        sim = RoxomSimulator.build(cfg.sim_seed)
        port = await nursery.start(
            partial(sim.run, port=cfg.sim_port, market_rate_hz=cfg.sim_rate_hz or None)
        )
        return SimHandle(port, sim.http_url, sim.ws_url, sim)

    def secrets(self, cfg: RoxomConfig) -> list[str]:
        names = (cfg.private_key_env, cfg.api_secret_env)
        return [v for v in (os.environ.get(n) for n in names if n) if v]

    def _urls(self, cfg: RoxomConfig, sim: SimHandle | None) -> tuple[str, str]:
        if sim is not None:
            return sim.ws_url, sim.http_url
        if cfg.endpoint == "sandbox":
            if not cfg.sandbox_ws_url or not cfg.sandbox_rest_url:
                raise ConfigError(
                    "venues.roxom.sandbox_ws_url: the sandbox URLs must be configured "
                    "(Roxom publishes none)"
                )
            return cfg.sandbox_ws_url, cfg.sandbox_rest_url
        return _PRODUCTION

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
        key = secret_from_env(cfg.api_key_env, "venues.roxom.api_key_env")
        if cfg.auth_scheme == "hmac":
            secret = secret_from_env(cfg.api_secret_env, "venues.roxom.api_secret_env")
            return HmacSigner(key, secret)
        pem = secret_from_env(cfg.private_key_env, "venues.roxom.private_key_env")
        return RsaSigner(key, pem)

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
        stream = RoxomStream(ws_base, signer, cfg.markets, cfg.channels)
        return VenueRuntime(
            streams=[stream],
            execution=RoxomExecution(rest, signer),
            instruments={m: instrument(m) for m in cfg.markets},
        )


VENUE = RoxomVenue()
