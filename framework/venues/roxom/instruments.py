"""Roxom's instruments: the adapter's rules come from the venue's catalogue endpoint.

[DOC] `GET /api/v1/market/instruments?tradeable=true&unit=btc` lists `tickSize`,
`min_order_size`, `max_order_size` (JSON numbers). The adapter takes its local checks from there;
where the endpoint does not answer it checks nothing it was not told (the venue refuses what it
refuses). `SPECS` is the simulator's own market (its rules and where its prices start).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs
import httpx
import structlog

from framework.errors import FrameError
from framework.model import Instrument
from framework.transport.wire import dec, loads_decimal

log = structlog.get_logger("botrun.roxom")
INSTRUMENTS_PATH = "/api/v1/market/instruments"

VENUE = "roxom"
QUOTE = "BTC"
INST_TYPE = "perpetual"


@attrs.frozen
class Spec:
    base: str
    tick: Decimal
    step: Decimal
    min_notional: Decimal
    sim_mid: Decimal  # where the simulator's synthetic market starts


# [INF] every price has 8 decimals in the docs (1 satoshi tick), positions show 3-decimal sizes
# (step 0.001), and the minimum notional is 100 satoshis; simulator mids follow the doc examples
_TICK, _STEP, _MIN_NOTIONAL = Decimal("0.00000001"), Decimal("0.001"), Decimal("0.000001")
SPECS: dict[str, Spec] = {
    # base assets as the docs' symbol table names them
    "US500-BTC": Spec("SPY", _TICK, _STEP, _MIN_NOTIONAL, Decimal("0.00432450")),
    "US100-BTC": Spec("QQQ", _TICK, _STEP, _MIN_NOTIONAL, Decimal("0.00155000")),
    "GOLD-BTC": Spec("PAX", _TICK, _STEP, _MIN_NOTIONAL, Decimal("0.00089410")),
    "OIL-BTC": Spec("USO", _TICK, _STEP, _MIN_NOTIONAL, Decimal("0.00006500")),
}

# [DOC] the order-entry price band: BUY px <= best ask x 1.1, SELL px >= best bid x 0.9
BUY_BAND = Decimal("1.1")
SELL_BAND = Decimal("0.9")


def _rule(item: dict[str, Any], name: str) -> Decimal | None:
    value = item.get(name)
    if value is None:
        return None
    d = dec(value, name)
    if d <= 0 or d >= Decimal("1e30"):
        raise FrameError(f"{name}: out of range: {value!r}")
    return d


def parse_instruments(body: Any, markets: list[str]) -> dict[str, Instrument]:
    """The catalogue's answer as instruments for `markets` (unlisted ones get no rules)."""
    items = body.get("data") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise FrameError("instruments: expected data to be a list")
    listed = {i.get("symbol"): i for i in items if isinstance(i, dict)}
    out = {}
    for symbol in markets:
        item = listed.get(symbol)
        if item is None:
            out[symbol] = bare_instrument(symbol)
            continue
        base = item.get("baseAsset")
        out[symbol] = Instrument(
            VENUE,
            symbol,
            base if isinstance(base, str) and base else symbol.split("-")[0],
            QUOTE,
            # [INF] in the requested unit (btc); the docs' example values look synthetic
            tick=_rule(item, "tickSize"),
            min_qty=_rule(item, "min_order_size"),
            max_qty=_rule(item, "max_order_size"),
        )
    return out


def bare_instrument(symbol: str) -> Instrument:
    """No rules known: nothing is refused locally on a guessed value."""
    spec = SPECS.get(symbol)
    return Instrument(VENUE, symbol, spec.base if spec else symbol.split("-")[0], QUOTE)


async def fetch_instruments(http: httpx.AsyncClient, markets: list[str]) -> dict[str, Instrument]:
    """The venue's catalogue (public market data, [INF] unsigned); without it, bare rules."""
    try:
        resp = await http.get(INSTRUMENTS_PATH, params={"tradeable": "true", "unit": "btc"})
        resp.raise_for_status()
        return parse_instruments(loads_decimal(resp.content), markets)
    except (httpx.HTTPError, FrameError) as exc:
        log.warning(
            "instrument rules not available: no local tick/size checks",
            venue=VENUE,
            error=f"{type(exc).__name__}: {exc}",
        )
        return {m: bare_instrument(m) for m in markets}


def instrument(symbol: str) -> Instrument:
    """The simulator's rules for `symbol` (what its catalogue endpoint serves)."""
    spec = SPECS[symbol]
    return Instrument(
        VENUE,
        symbol,
        spec.base,
        QUOTE,
        tick=spec.tick,
        lot=spec.step,
        min_qty=spec.step,
        min_notional=spec.min_notional,
    )


def band_refusal(
    side_is_buy: bool, price: Decimal, best_bid: Decimal | None, best_ask: Decimal | None
) -> str | None:
    """Why a limit price is outside the venue's band, or None (no reference price: no check)."""
    if side_is_buy and best_ask is not None and price > best_ask * BUY_BAND:
        return f"Price outside allowed range: buy {price} above best ask {best_ask} x {BUY_BAND}"
    if not side_is_buy and best_bid is not None and price < best_bid * SELL_BAND:
        return f"Price outside allowed range: sell {price} below best bid {best_bid} x {SELL_BAND}"
    return None
