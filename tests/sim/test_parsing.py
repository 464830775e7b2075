"""Shared request-field parsing (framework/sim/parsing.py): the checks, in the venue's words."""

from __future__ import annotations

from decimal import Decimal

import pytest

from framework.sim.parsing import Refusals, missing_fields, optional_decimal, parse_decimal


class Refused(Exception):
    pass


REFUSALS = Refusals(error=Refused)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1.50", Decimal("1.50")), (7, Decimal(7)), (" 2 ", Decimal(2)), ("1e-8", Decimal("1e-8"))],
)
def test_accepts_exact_positive_decimals(raw: object, expected: Decimal) -> None:
    value = parse_decimal(raw, "qty", REFUSALS)
    assert value == expected and str(value) == str(expected)  # exact, scale kept


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (True, "qty must be a decimal string"),  # a bool is an int to Python, never a number here
        (1.5, "qty must be a decimal string"),  # floats only where the venue accepts them
        (None, "qty must be a decimal string"),
        ({"a": 1}, "qty must be a decimal string"),
        ("abc", "qty is not a number: 'abc'"),
        ("NaN", "qty must be positive"),
        ("Infinity", "qty must be positive"),
        ("0", "qty must be positive"),
        ("-1", "qty must be positive"),
    ],
)
def test_refuses_with_the_venues_words(raw: object, message: str) -> None:
    with pytest.raises(Refused) as refused:
        parse_decimal(raw, "qty", REFUSALS)
    assert str(refused.value) == message


def test_venue_wording_types_and_sign_are_the_venues() -> None:
    terse = Refusals(error=Refused, wrong_type="bad", not_a_number="bad {name}", not_positive="x")
    assert parse_decimal("-3", "n", terse, types=(str,), positive=False) == Decimal(-3)
    assert parse_decimal(2.5, "n", REFUSALS, types=(str, int, float)) == Decimal("2.5")
    assert parse_decimal(Decimal("0.1"), "n", REFUSALS, types=(Decimal,)) == Decimal("0.1")
    with pytest.raises(Refused, match=r"^bad$"):
        parse_decimal(3, "n", terse, types=(str,))
    with pytest.raises(Refused, match=r"^bad n$"):
        parse_decimal("?", "n", terse)
    with pytest.raises(Refused, match=r"^x$"):
        parse_decimal("sNaN", "n", terse, positive=False)  # never a non-finite value


def test_optional_decimal_and_missing_fields() -> None:
    body = {"a": "", "b": None, "c": "3", "d": "x"}
    assert optional_decimal(body, "a", REFUSALS) is None
    assert optional_decimal(body, "b", REFUSALS) is None
    assert optional_decimal(body, "zz", REFUSALS) is None
    assert optional_decimal(body, "c", REFUSALS) == Decimal(3)
    with pytest.raises(Refused):
        optional_decimal(body, "d", REFUSALS)
    assert missing_fields(body, ("c", "a", "zz", "d")) == ["a", "zz"]
