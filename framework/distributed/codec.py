"""Exact, compact encoding of events and orders for the bus: JSON (orjson) with Decimals as
strings and a type tag. Decoding validates every number (finite Decimals) and raises
`CodecError` for anything it cannot read, so a bad entry is counted and resynced, never booked.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import cattrs
import orjson

from framework import events as ev
from framework.model import Instrument, Order

# every type that crosses the bus, by its tag
TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        ev.BookSnapshot,
        ev.BookDelta,
        ev.TopOfBook,
        ev.Ticker,
        ev.PublicTrade,
        ev.BookStatus,
        ev.VenueStatus,
        ev.Balance,
        ev.Position,
        ev.OrderSubmitted,
        ev.OrderAccepted,
        ev.OrderRejected,
        ev.OrderPartiallyFilled,
        ev.OrderFilled,
        ev.OrderModified,
        ev.OrderModifyRejected,
        ev.OrderCancelRequested,
        ev.OrderCancelled,
        ev.OrderExpired,
        ev.OrderUnknown,
        Order,
        Instrument,
    )
}


class CodecError(ValueError):
    """An entry that does not decode to a valid event (bad JSON, unknown type, bad number)."""


def _decimal(value: Any, _: type) -> Decimal:
    # strings only: a float on the wire would already have lost exactness
    if not isinstance(value, str):
        raise CodecError(f"decimal must be a string, got {type(value).__name__}")
    try:
        d = Decimal(value)
    except InvalidOperation as exc:
        raise CodecError(f"bad decimal {value!r}") from exc
    if not d.is_finite():
        raise CodecError(f"non-finite decimal {value!r}")
    return d


def _converter() -> cattrs.Converter:
    conv = cattrs.Converter()
    conv.register_unstructure_hook(Decimal, str)
    conv.register_structure_hook(Decimal, _decimal)
    # Order.fill_ids: a set in memory, a sorted list on the wire
    conv.register_unstructure_hook_func(lambda t: t == set[str], lambda v: sorted(v))
    return conv


_CONV = _converter()


def encode(obj: Any) -> bytes:
    data = _CONV.unstructure(obj)
    data["@"] = type(obj).__name__
    return orjson.dumps(data)


def decode(raw: bytes | str) -> Any:
    try:
        data = orjson.loads(raw)
        cls = TYPES[data.pop("@")]
        return _CONV.structure(data, cls)
    except CodecError:
        raise
    except Exception as exc:  # JSON, unknown tag, cattrs' validation groups
        raise CodecError(f"{type(exc).__name__}: {str(exc)[:200]}") from exc


def dumps(data: dict[str, Any]) -> bytes:
    """A command or a key's value: plain JSON; Decimals go as strings."""
    return orjson.dumps(data, default=_default)


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return str(obj)
    raise TypeError(type(obj).__name__)


def loads(raw: bytes | str) -> dict[str, Any]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise CodecError(str(exc)) from exc
    if not isinstance(data, dict):
        raise CodecError("not an object")
    return data


def opt_decimal(value: Any) -> Decimal | None:
    return None if value is None else _decimal(value, Decimal)


def req_decimal(value: Any, *, positive: bool = False) -> Decimal:
    d = _decimal(value, Decimal)
    if positive and d <= 0:
        raise CodecError(f"must be > 0: {value!r}")
    return d
