"""Serve the Power.Trade simulator for the venue's official TypeScript client's integration tests
(github.com/Power-Trade/market-proxy-clients, `typescript/src/integration/**`), on 127.0.0.1.

Not collected by pytest (the client is not ours to vendor). Usage, from the repository root:

    python tests/venues/powertrade/official_ts_serve.py /tmp/pmc/typescript/config.dev.json &
    cd /tmp/pmc/typescript && npx jest --runInBand --ci src/integration \
        --testPathIgnorePatterns "entities-and-rules|deliverable-info|exchange-info" \
        -t "^(?!.*(during pending_new|tcpkill)).*$"

The ignored files compare with https://api.rest.<env>.power.trade (the real venue: never run
them here); the `-t` filter leaves out a test that runs `sudo tcpkill` against a real host and a
race test that needs the venue's account trading rule.

The config file gets the simulator's key and URLs. Markets: the symbols the tests name, with the
venue's entity ids where a test asserts one (PTF-USD 6, AVAX-USD 930; BTC-USD 4 as in the docs'
example); futures and options expiring in the future. Options, futures and AVAX-USD have no
crowd (the tests expect those books to hold only their own orders, as on the venue's quiet test
markets); the crowds elsewhere are static so no crowd trade reaches a test's resting order; no
synthetic RFQ requesters (the RFQ tests count the RFQ messages they cause). The account holds
the assets the venue's test account holds (integration/ws/balances.test.ts), USD-REFERENCE too:
account data, not protocol.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from decimal import Decimal as D
from functools import partial

import trio

from framework.venues.powertrade.sim import (
    SIM_API_KEY,
    Market,
    PowerTradeSimulator,
    sim_private_key_pem,
)

QUIET = ("AVAX-USD",)


def _market(eid: str, base: str, mid: str, tick: str, lot: str, max_qty: int, *tags: str) -> Market:
    return Market(eid, base, "USD", D(mid), D(tick), D(lot), D(lot), D(max_qty), D("0.00001"),
                  D(1_000_000_000), tags or ("spot",))  # fmt: skip


def markets(today: dt.date) -> dict[str, Market]:
    out = {
        "BTC-USD": _market("4", "BTC", "37000", "0.5", "0.0001", 100),
        "ETH-USD": _market("5", "ETH", "2000", "0.05", "0.001", 1000),
        "PTF-USD": _market("6", "PTF", "0.5", "0.0001", "1", 1_000_000),
        "AVAX-USD": _market("930", "AVAX", "10", "0.01", "0.01", 100_000),
        "SOL-USD": _market("931", "SOL", "30", "0.01", "0.01", 100_000),
        "BTC-USD-PERPETUAL": _market("932", "BTC", "37000", "0.5", "0.01", 1000, "perpetual"),
        "ETH-USD-PERPETUAL": _market("933", "ETH", "2000", "0.05", "0.01", 10000, "perpetual"),
    }
    eid = 1000
    for days in (30, 60):
        ymd = (today + dt.timedelta(days=days)).strftime("%Y%m%d")
        out[f"BTC-{ymd}"] = _market(str(eid), "BTC", "37000", "0.5", "0.01", 1000, "future")
        eid += 1
        for strike in (30000, 35000, 40000, 45000):
            for kind in "CP":
                out[f"BTC-{ymd}-{strike}{kind}"] = _market(
                    str(eid), "BTC", "1000", "0.1", "0.01", 1000, "option"
                )
                eid += 1
    return out


def build() -> PowerTradeSimulator:
    ms = markets(dt.datetime.now(dt.UTC).date())
    sim = PowerTradeSimulator.build(7, markets=ms, rfq_rate_hz=0.0)
    for symbol, m in ms.items():
        if symbol in QUIET or "future" in m.tags or "option" in m.tags:
            sim.crowds.pop(symbol, None)
            for order in sim.engine.orders(open_only=True):
                if order.symbol == symbol:
                    sim.engine.cancel(order.order_id)
    held = {"USD": 10_000_000, "BTC": 100, "ETH": 1000, "AVAX": 10_000, "SOL": 10_000,
            "PTF": 1_000_000, "USD-REFERENCE": 0}  # fmt: skip
    sim.accounts.open(sim.owner, {asset: D(n) for asset, n in held.items()})
    return sim


async def main(config_path: str) -> None:
    sim = build()
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(sim.run, market_rate_hz=None))
        config = {"apiKey": SIM_API_KEY, "privateKey": sim_private_key_pem(),
                  "wsUrl": sim.ws_url, "httpUrl": sim.http_url}  # fmt: skip
        with open(config_path, "w") as f:
            json.dump(config, f)
        print("serving", sim.ws_url, flush=True)
        await trio.sleep_forever()


if __name__ == "__main__":
    trio.run(main, sys.argv[1])
