"""Paxos: public WS, Smart Order Routing WS, REST v2 orders (reference: shared/venues/paxos.md)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import Literal

import attrs
import httpx
import trio

from framework.errors import ConfigError, FrameError, HttpProblem
from framework.model import Instrument
from framework.transport.endpoints import credentials_from_env, env_secrets, select_urls
from framework.transport.rest import request_json
from framework.transport.wire import dec
from framework.venue import (
    Credentials,
    Endpoints,
    SimHandle,
    Stream,
    Urls,
    VenueConfig,
    VenueRuntime,
)
from framework.venue import Venue as _Venue
from framework.venue import secret as _secret
from framework.venues.paxos.capabilities import CAPABILITIES
from framework.venues.paxos.client import PaxosExecution
from framework.venues.paxos.decode import VENUE as NAME
from framework.venues.paxos.streams import PublicStream, SorStream
from framework.venues.paxos.throttle import RestThrottle
from framework.venues.paxos.tokens import REST_SCOPES, SOR_SCOPE, TokenSource

# websocket base, REST base, OAuth base
ENDPOINTS = Endpoints(
    sim=lambda sim: Urls(ws=sim.ws_url, http=f"{sim.http_url}/v2/", auth=sim.http_url),
    production=Urls(
        ws="wss://ws.paxos.com", http="https://api.paxos.com/v2/", auth="https://oauth.paxos.com"
    ),
    sandbox=Urls(
        ws="wss://ws.sandbox.paxos.com",
        http="https://api.sandbox.paxos.com/v2/",
        auth="https://oauth.sandbox.paxos.com",
    ),
)
_AMOUNT_STEP = Decimal("0.00000001")
SIM_CLIENT_ID, SIM_CLIENT_SECRET, SIM_PROFILE_ID = (
    "sim-client",
    "sim-secret",
    "sim-profile",
)  # Paxos amounts: 8 decimals


@attrs.frozen
class PaxosCredentials(Credentials):
    client_id: str
    client_secret: str = _secret()


@attrs.define(kw_only=True)
class PaxosConfig(VenueConfig):
    markets: list[str] = attrs.Factory(lambda: ["BTCUSD"])
    # where the L2 book comes from: the public /marketdata feed (no credentials) or the SOR WS
    book_source: Literal["public", "sor"] = "public"
    trades: bool = True  # public executions as trade events
    # `/marketdata/stablecoin` prices as ticker events (Paxos publishes USDCUSD only)
    stablecoin_markets: list[str] = attrs.Factory(list)
    top_of_book: bool = False  # SOR top-of-book channel (book_source = "sor")
    profile_id: str = ""
    client_id_env: str = "PAXOS_CLIENT_ID"
    client_secret_env: str = "PAXOS_CLIENT_SECRET"
    poll_interval_s: float = 0.5
    balance_interval_s: float = 5.0
    # [DOC] one 429 throttles every request of the IP for five minutes; while throttled, one
    # sparse probe (cancel, query, token) at most every `throttle_probe_s` [INF]
    throttle_s: float = 300.0
    throttle_probe_s: float = 30.0


class PaxosVenue(_Venue):
    name = NAME
    config_type = PaxosConfig
    capabilities = CAPABILITIES

    async def start_simulator(self, cfg: PaxosConfig, nursery: trio.Nursery) -> SimHandle:
        from framework.venues.paxos.sim import PaxosSimulator

        sim = PaxosSimulator.build(cfg.sim_seed)
        port = await nursery.start(
            partial(sim.run, port=cfg.sim_port, market_rate_hz=cfg.sim_rate_hz or None)
        )
        return SimHandle(port, sim.http_url, sim.ws_url, sim)

    def _credentials(self, cfg: PaxosConfig, sim: SimHandle | None) -> tuple[str, str, str]:
        if sim is not None:
            # the simulator's built-in account (a standalone one uses the defaults)
            s = sim.simulator
            if s is None:
                return SIM_CLIENT_ID, SIM_CLIENT_SECRET, SIM_PROFILE_ID
            return s.client_id, s.client_secret, s.profile_id
        creds = credentials_from_env(PaxosCredentials, NAME, cfg)
        assert creds is not None  # not optional: a missing variable is a ConfigError
        return creds.client_id, creds.client_secret, cfg.profile_id

    def secrets(self, cfg: PaxosConfig) -> list[str]:
        return env_secrets(PaxosCredentials, cfg)

    async def build(
        self,
        cfg: PaxosConfig,
        sim: SimHandle | None,
        http: Callable[..., httpx.AsyncClient],
    ) -> VenueRuntime:
        urls = select_urls(NAME, ENDPOINTS, cfg, sim)
        ws_base, rest_base, oauth_base = urls.ws, urls.http, urls.auth
        rest = http(rest_base, timeout_s=cfg.request_timeout_s)
        # one throttle for every Paxos REST request of the process (catalogue, tokens, orders,
        # pollers): one 429 holds them all for five minutes [DOC rate-limits]
        throttle = RestThrottle(NAME, window_s=cfg.throttle_s, probe_every_s=cfg.throttle_probe_s)
        instruments = await self._instruments(rest, cfg.markets, throttle)
        streams = []
        if cfg.book_source == "public":
            streams.append(PublicStream(ws_base, "marketdata", cfg.markets))
            if cfg.trades:
                streams.append(PublicStream(ws_base, "executiondata", cfg.markets))
        if cfg.stablecoin_markets:
            streams.append(PublicStream(ws_base, "marketdata/stablecoin", cfg.stablecoin_markets))
        execution = None
        need_tokens = cfg.book_source == "sor" or cfg.profile_id or sim is not None
        if need_tokens:
            client_id, secret, profile_id = self._credentials(cfg, sim)
            oauth = http(oauth_base, timeout_s=cfg.request_timeout_s)
            if cfg.book_source == "sor":
                sor_tokens = TokenSource(
                    oauth, "/oauth2/token", client_id, secret, (SOR_SCOPE,), throttle=throttle
                )
                streams.append(
                    SorStream(
                        ws_base,
                        sor_tokens,
                        cfg.markets,
                        book=True,
                        top_of_book=cfg.top_of_book,
                        executions=cfg.trades,
                    )
                )
            if profile_id:
                tokens = TokenSource(
                    oauth, "/oauth2/token", client_id, secret, REST_SCOPES, throttle=throttle
                )
                execution = PaxosExecution(
                    rest,
                    tokens,
                    profile_id,
                    poll_interval_s=cfg.poll_interval_s,
                    balance_interval_s=cfg.balance_interval_s,
                    throttle=throttle,
                )
        return VenueRuntime(streams=streams, execution=execution, instruments=instruments)

    def replay_stream(self, cfg: PaxosConfig, name: str) -> Stream | None:
        # record/replay: offline streams by recorded name (never connected: no URL, no tokens)
        public = {
            "marketdata": cfg.markets,
            "executiondata": cfg.markets,
            "marketdata-stablecoin": cfg.stablecoin_markets,
        }
        if name in public:
            return PublicStream("ws://replay.invalid", name.replace("-", "/"), public[name])
        if name == "sor":
            return SorStream(
                "ws://replay.invalid",
                None,  # type: ignore[arg-type]
                cfg.markets,
                book=True,
                top_of_book=cfg.top_of_book,
                executions=cfg.trades,
            )
        return None

    @staticmethod
    async def _instruments(
        rest: httpx.AsyncClient, markets: list[str], throttle: RestThrottle | None = None
    ) -> dict[str, Instrument]:
        # market data needs no auth; the catalogue gives the tick per market
        if throttle is not None:
            throttle.admit("probe")
        try:
            data = await request_json(rest, "GET", "markets", venue=NAME)
        except HttpProblem as exc:
            if exc.status == 429 and throttle is not None:
                throttle.on_429("markets")
            raise
        listed = data.get("markets") if type(data) is dict else None
        if type(listed) is not list:
            raise ConfigError(f"paxos /markets: unexpected body {str(data)[:80]!r}")
        known = {m.get("market"): m for m in listed if type(m) is dict}
        out = {}
        for market in markets:
            info = known.get(market)
            if info is None:
                raise ConfigError(f"venues.paxos.markets: {market} is not listed by the venue")
            try:
                tick = dec(info.get("tick_rate"), "tick_rate")  # NaN, inf, junk: refused
            except FrameError as exc:
                raise ConfigError(f"paxos /markets: {market}: {exc}") from None
            base, quote = info.get("base_asset"), info.get("quote_asset")
            if not 0 < tick < Decimal("1e9") or not isinstance(base, str) or not base:
                raise ConfigError(f"paxos /markets: {market}: unusable entry {str(info)[:120]}")
            if not isinstance(quote, str) or not quote:
                raise ConfigError(f"paxos /markets: {market}: unusable entry {str(info)[:120]}")
            out[market] = Instrument(NAME, market, base, quote, tick=tick, lot=_AMOUNT_STEP)
        return out


VENUE = PaxosVenue()
