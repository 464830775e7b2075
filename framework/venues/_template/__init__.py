"""A runnable skeleton venue to copy: `cp -r framework/venues/_template framework/venues/<name>`.

What each file is (REQUIRED pieces are marked; see framework/venues/README.md for the table):
- `__init__.py` (this file): the config class, the `Venue` subclass and `VENUE` (REQUIRED);
- `decode.py`: wire frames → normalized events; FrameError on a bad frame (REQUIRED);
- `client.py`: the `Stream`(s) (REQUIRED) and the `ExecutionClient` (if the venue takes orders);
- `sim.py`: the venue's simulator on framework/sim (REQUIRED: `endpoint = "sim"` runs it).
Then add one line to the registry (framework/venues/__init__.py) and a `chaos.py` (OPTIONAL, but
it is what puts the venue under the guarantee tests, the fuzzer and the soak).

This package is NOT in the registry: tests/venues/test_template.py registers it for one test
and trades against its simulator, so the skeleton stays runnable.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from functools import partial

import attrs
import httpx
import trio

from framework.model import Instrument
from framework.transport.rest import request_json
from framework.venue import SimHandle, Stream, Venue, VenueConfig, VenueRuntime
from framework.venues._template.client import TemplateExecution, TemplateStream
from framework.venues._template.decode import VENUE as NAME

# endpoint -> (WebSocket base, REST base); the sim's come from its handle. TLS only off loopback.
_URLS = {
    "sandbox": ("wss://sandbox.template.invalid", "https://sandbox.template.invalid"),
    "production": ("wss://api.template.invalid", "https://api.template.invalid"),
}


@attrs.define(kw_only=True)
class TemplateConfig(VenueConfig):
    """`[venues.template]`: the common fields (VenueConfig) plus the venue's own."""

    markets: list[str] = attrs.Factory(lambda: ["BTCUSD"])


class TemplateVenue(Venue):
    name = NAME
    config_type = TemplateConfig

    async def start_simulator(self, cfg: TemplateConfig, nursery: trio.Nursery) -> SimHandle:
        from framework.venues._template.sim import TemplateSimulator  # only when embedded

        sim = TemplateSimulator(cfg.sim_seed, cfg.markets)
        port = await nursery.start(
            partial(sim.run, port=cfg.sim_port, market_rate_hz=cfg.sim_rate_hz or None)
        )
        return SimHandle(port, sim.http_url, sim.ws_url, sim)

    async def build(
        self, cfg: TemplateConfig, sim: SimHandle | None, http: Callable[..., httpx.AsyncClient]
    ) -> VenueRuntime:
        ws_base, rest_base = (sim.ws_url, sim.http_url) if sim else _URLS[cfg.endpoint]
        rest = http(rest_base, timeout_s=cfg.request_timeout_s)
        # the catalogue: tick and lot let the core refuse a bad order before it leaves
        rows = await request_json(rest, "GET", "/instruments", venue=NAME)
        known = {row["symbol"]: row for row in rows}
        instruments = {
            m: Instrument(
                NAME, m, m[:3], m[3:], tick=Decimal(known[m]["tick"]), lot=Decimal(known[m]["lot"])
            )
            for m in cfg.markets
        }
        return VenueRuntime(
            streams=[TemplateStream(ws_base, cfg.markets)],
            execution=TemplateExecution(rest),  # None for a market-data-only venue
            instruments=instruments,
        )

    def replay_stream(self, cfg: TemplateConfig, name: str) -> Stream | None:
        # OPTIONAL (record/backtest): the stream built offline, only its decoder is fed
        return TemplateStream("ws://replay.invalid", cfg.markets) if name == "public" else None


VENUE = TemplateVenue()
