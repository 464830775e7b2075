"""Request-field parsing shared by the venue simulators, with the venue's own refusals.

Each venue refuses a bad field in its own words and its own error shape (a problem+json, a
`command_response` code, an ERROR event); the checks themselves are the same everywhere, so the
venue passes its wording and the exception to raise (`Refusals`) and the checks live here once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs


@attrs.frozen(slots=True)
class Refusals:
    """How a venue words a refused decimal field: templates over `{name}` and `{raw}`."""

    error: Callable[[str], Exception]  # the exception the venue's handler turns into its reply
    wrong_type: str = "{name} must be a decimal string"
    not_a_number: str = "{name} is not a number: {raw!r}"
    not_positive: str = "{name} must be positive"

    def refuse(self, template: str, name: str, raw: Any) -> Exception:
        return self.error(template.format(name=name, raw=raw))


def parse_decimal(
    raw: Any,
    name: str,
    refusals: Refusals,
    *,
    types: tuple[type, ...] = (str, int),
    positive: bool = True,
) -> Decimal:
    """`raw` as an exact, finite Decimal (and > 0 if `positive`), or the venue's refusal.

    Only values of `types` are read (never a bool, which is an int to Python); a float, if a
    venue accepts one, is read through its shortest repr, as the text it was sent as.
    """
    if isinstance(raw, bool) or not isinstance(raw, types):
        raise refusals.refuse(refusals.wrong_type, name, raw)
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise refusals.refuse(refusals.not_a_number, name, raw) from None
    if not value.is_finite() or (positive and value <= 0):
        raise refusals.refuse(refusals.not_positive, name, raw)
    return value


def optional_decimal(
    body: Mapping[str, Any],
    name: str,
    refusals: Refusals,
    *,
    types: tuple[type, ...] = (str, int),
    positive: bool = True,
) -> Decimal | None:
    """Field `name` of `body` parsed as `parse_decimal`, or None when absent, null or ""."""
    raw = body.get(name)
    if raw is None or raw == "":
        return None
    return parse_decimal(raw, name, refusals, types=types, positive=positive)


def missing_fields(body: Mapping[str, Any], names: Iterable[str]) -> list[str]:
    """The required fields that are absent or empty, in the order asked."""
    return [name for name in names if not body.get(name)]
