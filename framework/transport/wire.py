"""Small wire helpers every venue needs: decimals in and out, timestamps."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

import orjson

from framework.errors import FrameError


def dec(value: Any, field: str) -> Decimal:
    """A finite Decimal from a wire string; JSON numbers must already be Decimal (orjson can't)."""
    if type(value) is str:
        try:
            d = Decimal(value)
        except InvalidOperation:
            raise FrameError(f"{field}: not a number: {value[:20]!r}") from None
    elif type(value) is Decimal or type(value) is int:
        d = Decimal(value)
    else:
        raise FrameError(f"{field}: expected a decimal string, got {type(value).__name__}")
    if not d.is_finite():
        raise FrameError(f"{field}: not finite: {value!r}")
    return d


def positive(value: Any, field: str) -> Decimal:
    """`dec`, and above zero and below 1e30: a traded price or size (a negative, zero or absurd
    one is a bad frame, not a trade)."""
    d = dec(value, field)
    if not _ZERO < d < _HUGE:
        raise FrameError(f"{field}: out of range: {value!r}"[:80])
    return d


def dec_str(d: Decimal) -> str:
    """Plain decimal notation, never exponent form: Decimal('1E+2') -> '100'."""
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


_ZERO = Decimal(0)
_HUGE = Decimal("1e30")  # no real price comes near this; it also keeps Infinity out


class DecimalCache(dict[str, Any]):
    """Number text -> `parse(text)`, for a decoder's hot path: `cache[text]`.

    Prices sit on a tick grid and sizes repeat frame after frame, so a hit (one C dict lookup)
    saves most of what constructing a Decimal costs, and a reused Decimal keeps its hash (the
    books key their levels by price; hashing a fresh Decimal costs about three times what
    building it does). Bounded: cleared when full. `parse` may raise (nothing is cached) or
    return a value, None included, which is cached like any other.
    """

    def __init__(self, parse: Callable[[str], Any] = Decimal, limit: int = 8192) -> None:
        super().__init__()
        self.parse = parse
        self.limit = limit

    def __missing__(self, text: str) -> Any:
        value = self.parse(text)
        if len(self) >= self.limit:
            self.clear()
        self[text] = value
        return value


def _price(text: str) -> Decimal:
    if type(text) is not str:
        raise InvalidOperation(f"price is not a string: {type(text).__name__}")
    price = Decimal(text)
    if not _ZERO < price < _HUGE:
        raise InvalidOperation(f"price out of range: {text[:20]!r}")
    return price


def _positive_or_none(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
        return value if _ZERO < value < _HUGE else None
    except ArithmeticError:  # InvalidOperation: not a number, or a NaN compared
        return None


class PriceCache(DecimalCache):
    """Price text -> Decimal. Only positive values below 1e30 are ever cached; anything else
    raises `InvalidOperation` (an ArithmeticError), which the decoder treats as a frame to look
    at carefully."""

    def __init__(self, limit: int = 8192) -> None:
        super().__init__(_price, limit)


class PositiveCache(DecimalCache):
    """Decimal text -> its value if positive and below 1e30, else None (cached too): for a hot
    path that tests with `is not None` and sends anything else down its careful path."""

    def __init__(self, limit: int = 8192) -> None:
        super().__init__(_positive_or_none, limit)


@lru_cache(maxsize=4096)
def _epoch_seconds(prefix: str) -> int:
    dt = datetime.fromisoformat(prefix)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


# "YYYY-MM-DDTHH:MM:SS" -> epoch seconds, for `iso_to_ns`'s common form: only prefixes
# `_epoch_seconds` accepted, holding no "." and no "+" (so `iso_to_ns`'s full parse of a text
# starting with one would split it there too). Timestamps within one second share the prefix
_SECONDS: dict[str, int] = {}
# ns per unit of a fraction of n digits
_FRACTION_NS = tuple(10 ** (9 - n) for n in range(10))


def _prefix_seconds(prefix: str) -> int | None:
    if "." in prefix or "+" in prefix:
        return None
    try:
        seconds = _epoch_seconds(prefix)
    except ValueError:
        return None
    if len(_SECONDS) >= 4096:
        _SECONDS.clear()
    _SECONDS[prefix] = seconds
    return seconds


def iso_to_ns(text: Any, field: str = "time") -> int:
    """ISO-8601 UTC with 0-9 fractional digits -> ns since epoch, exactly (no float)."""
    # the common form, "YYYY-MM-DDTHH:MM:SS.fffZ" (1-9 digits): the date and time of day parsed
    # once per distinct second, then the fraction; anything else takes the general path below,
    # which gives the same answer for this form
    if type(text) is str and 21 < len(text) < 31 and text[19] == "." and text[-1] == "Z":
        frac = text[20:-1]
        if frac.isdigit() and frac.isascii():
            prefix = text[:19]
            seconds = _SECONDS.get(prefix)
            if seconds is None:
                seconds = _prefix_seconds(prefix)
            if seconds is not None:
                return seconds * 1_000_000_000 + int(frac) * _FRACTION_NS[len(frac)]
    if type(text) is not str or len(text) < 19:
        raise FrameError(f"{field}: not an ISO timestamp: {text!r}")
    body = text[:-1] if text.endswith("Z") else text
    offset = ""
    if "+" in body[19:]:
        body, _, offset = body.partition("+")
        offset = "+" + offset
    main, _, frac = body.partition(".")
    # isascii: str.isdigit() also accepts "²" (int() then raises) and non-ASCII digit scripts
    if (frac and not (frac.isascii() and frac.isdigit())) or len(frac) > 9:
        raise FrameError(f"{field}: bad fraction in {text!r}")
    try:
        seconds = _epoch_seconds(main + offset)
    except ValueError:
        raise FrameError(f"{field}: not an ISO timestamp: {text!r}") from None
    return seconds * 1_000_000_000 + (int(frac.ljust(9, "0")) if frac else 0)


def ns_to_iso(ns: int, digits: int = 9) -> str:
    seconds, frac = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if digits <= 0:
        return base + "Z"
    return f"{base}.{str(frac).rjust(9, '0')[:digits]}Z"


def loads_object(frame: str | bytes) -> dict[str, Any]:
    """One JSON object per frame (orjson: venues that send money as strings)."""
    try:
        msg = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise FrameError(f"malformed JSON: {exc}") from None
    if type(msg) is not dict:
        raise FrameError("frame is not a JSON object")
    return msg


# JSON number text is always a finite number; a venue that resends whole books sends the same
# few hundred of them frame after frame
_DECIMAL_JSON = json.JSONDecoder(parse_float=DecimalCache(Decimal, 16384).__getitem__)


def loads_decimal(frame: str | bytes) -> Any:
    """JSON with every non-integer number as an exact Decimal (venues that send JSON numbers).

    orjson would go through binary floats (2.7886285699999998 would not survive); integers stay
    exact Python ints either way.
    """
    text = frame.decode() if isinstance(frame, bytes | bytearray) else frame
    try:
        return _DECIMAL_JSON.decode(text)
    except ValueError as exc:
        raise FrameError(f"malformed JSON: {exc}") from None
