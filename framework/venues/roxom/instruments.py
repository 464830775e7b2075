"""Roxom's instrument catalogue, shared by the adapter and the simulator.

The reference documents the symbols and that orders must respect a tick, a quantity step and a
minimum notional, but no catalogue endpoint and no values, so both sides use this table.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from framework.model import Instrument

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


def instrument(symbol: str) -> Instrument:
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
