"""Open Trade price and amount precision: what the venue will actually work, known before sending.

[DOC api-public "Precision & Symbols"] prices have "up to 7 significant digits and up to 8
decimals"; a price with more significant digits "will be cut by the API"; amounts have "up to 8
decimals", more "will be rounded to the 8th decimal". The venue publishes no tick or lot size.

The core books an order at the price it sent, so a price the venue would change must never go
out: `safe_price` moves a price to one the venue keeps, away from aggressiveness (a BUY down, a
SELL up), and `check_price` / `check_amount` refuse what the venue would change. Above 100 000 a
BTC/USD price with cents has 8 significant digits: cut by the venue to a lower, more aggressive
SELL price, so it must be rounded up here instead.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_UP, Decimal

from framework.errors import OrderRefused
from framework.events import Side

MAX_SIGNIFICANT = 7
MAX_PRICE_DECIMALS = 8
MAX_AMOUNT_DECIMALS = 8
_AMOUNT_STEP = Decimal(1).scaleb(-MAX_AMOUNT_DECIMALS)


def _price_exponent(price: Decimal, decimals: int | None = MAX_PRICE_DECIMALS) -> int:
    """The exponent of the last digit the venue keeps: 7 significant digits, at most 8 decimals."""
    # adjusted() is the exponent of the leading digit: 60123.456 -> 4, so keep down to 10^-2
    exponent = price.adjusted() - (MAX_SIGNIFICANT - 1)
    return exponent if decimals is None else max(exponent, -decimals)


def _check_finite_positive(value: Decimal, what: str) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
        raise OrderRefused(f"opentrade {what} must be a positive finite decimal, got {value!r}")


def venue_price(price: Decimal, decimals: int | None = MAX_PRICE_DECIMALS) -> Decimal:
    """The price the venue works for `price` sent as is: cut (truncated) to 7 significant digits
    and 8 decimals. [DOC "cut"; truncation toward zero INF] The document's own last example
    (0.0001234567) has 10 decimals and is called valid: the simulator passes `decimals=None`
    (cut to 7 significant digits only) so it takes it; the adapter keeps both limits (safe)."""
    _check_finite_positive(price, "price")
    exponent = _price_exponent(price, decimals)
    return price.quantize(Decimal(1).scaleb(exponent), rounding=ROUND_DOWN)


def is_exact_price(price: Decimal) -> bool:
    return venue_price(price) == price


def safe_price(price: Decimal, side: Side) -> Decimal:
    """The nearest price the venue keeps unchanged, never more aggressive than `price`: a BUY
    rounds down, a SELL up. (Rounding up may carry into one more digit, 9999999.5 -> 10000000:
    still 7 significant digits, so the result is always exact.)"""
    _check_finite_positive(price, "price")
    rounding = ROUND_FLOOR if side is Side.BUY else ROUND_CEILING
    out = price.quantize(Decimal(1).scaleb(_price_exponent(price)), rounding=rounding)
    if out <= 0:
        raise OrderRefused(f"opentrade price {price} rounds to zero")
    if not is_exact_price(out):  # carried into a new leading digit: one more step
        out = out.quantize(Decimal(1).scaleb(_price_exponent(out)), rounding=rounding)
    return out


def check_price(price: Decimal) -> Decimal:
    """`price` if the venue works it unchanged, else OrderRefused (nothing is sent)."""
    worked = venue_price(price)
    if worked != price:
        raise OrderRefused(
            f"opentrade would cut price {price} to {worked} (7 significant digits, 8 decimals):"
            " round it with safe_price() before sending"
        )
    return price


def venue_amount(amount: Decimal) -> Decimal:
    """The amount the venue works: rounded to 8 decimals [DOC "rounded"; half-up INF]."""
    _check_finite_positive(amount, "amount")
    return amount.quantize(_AMOUNT_STEP, rounding=ROUND_HALF_UP)


def check_amount(amount: Decimal) -> Decimal:
    """`amount` if the venue keeps it unchanged, else OrderRefused: a rounded amount would be a
    different order size from the one the core books."""
    worked = venue_amount(amount)
    if worked != amount:
        raise OrderRefused(f"opentrade would round amount {amount} to {worked} (8 decimals)")
    return amount
