"""Wire helpers: exact ISO timestamps, strict Decimal parsing, plain decimal output."""

from __future__ import annotations

import calendar
from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from framework.errors import FrameError
from framework.transport.wire import PriceCache, dec, dec_str, iso_to_ns, ns_to_iso

# 2024-02-29T23:59:58Z: a leap day, far above 2**53 ns since the epoch
BASE_S = calendar.timegm((2024, 2, 29, 23, 59, 58, 0, 0, 0))
BASE_NS = BASE_S * 1_000_000_000


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01T00:00:00.000Z", 0),
        ("1970-01-01T00:00:01.5Z", 1_500_000_000),
        ("2024-02-29T23:59:58Z", BASE_NS),
        ("2024-02-29T23:59:58.123Z", BASE_NS + 123_000_000),
        ("2024-02-29T23:59:58.123456Z", BASE_NS + 123_456_000),
        ("2024-02-29T23:59:58.123456789Z", BASE_NS + 123_456_789),
        ("2024-02-29T23:59:58.000000001Z", BASE_NS + 1),
        ("2024-02-29T23:59:58.999999999Z", BASE_NS + 999_999_999),
        ("2024-02-29T23:59:58.123456789", BASE_NS + 123_456_789),  # naive means UTC
        ("2024-02-29T23:59:58.123456789+00:00", BASE_NS + 123_456_789),
        ("2024-03-01T01:59:58.5+02:00", BASE_NS + 500_000_000),
    ],
)
def test_iso_to_ns(text: str, ns: int) -> None:
    assert iso_to_ns(text) == ns


def test_iso_to_ns_is_exact_above_float_precision() -> None:
    assert BASE_NS > 2**53
    a = iso_to_ns("2024-02-29T23:59:58.000000001Z")
    b = iso_to_ns("2024-02-29T23:59:58.000000002Z")
    assert b - a == 1  # a float of these values cannot tell them apart
    assert float(a) == float(b)


@given(st.integers(min_value=0, max_value=4_102_444_799 * 10**9 + 999_999_999))
def test_iso_round_trip(ns: int) -> None:
    assert iso_to_ns(ns_to_iso(ns)) == ns


@pytest.mark.parametrize(
    "bad",
    [
        None,
        1_700_000_000,
        b"2024-02-29T23:59:58Z",
        "",
        "2024-02-29",
        "2024-02-29T23:59:58.Z1",
        "2024-02-29T23:59:58.12a4Z",
        "2024-02-29T23:59:58.1234567890Z",  # 10 fractional digits
        "2024-02-29T23:59:58.-5Z",
        "2024-13-01T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "not a timestamp at all",
        "2024-02-29T23:59:58.\u00b2Z",  # superscript 2: a digit to str.isdigit, not to int()
        "2024-02-29T23:59:58.\u0661\u0662\u0663Z",  # Arabic-Indic digits are not ISO-8601
    ],
)
def test_iso_to_ns_rejects_bad_input(bad: Any) -> None:
    with pytest.raises(FrameError, match="time"):
        iso_to_ns(bad)


def test_iso_to_ns_error_names_the_field() -> None:
    with pytest.raises(FrameError, match=r"^created_at:"):
        iso_to_ns("garbage", "created_at")


def test_ns_to_iso_digits() -> None:
    ns = BASE_NS + 123_456_789
    assert ns_to_iso(ns) == "2024-02-29T23:59:58.123456789Z"
    assert ns_to_iso(ns, 3) == "2024-02-29T23:59:58.123Z"
    assert ns_to_iso(ns, 0) == "2024-02-29T23:59:58Z"
    assert ns_to_iso(5) == "1970-01-01T00:00:00.000000005Z"


# --- dec ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", D("0")),
        ("123.4500", D("123.4500")),
        ("-0.00000001", D("-0.00000001")),
        ("1e-8", D("1E-8")),
        (D("2.5"), D("2.5")),
        (42, D("42")),
    ],
)
def test_dec_accepts(value: Any, expected: D) -> None:
    got = dec(value, "price")
    assert got == expected
    assert str(got) == str(expected)  # exact, trailing zeros included
    assert type(got) is D


@pytest.mark.parametrize(
    "value",
    [
        0.1,
        1.0,
        True,
        False,
        None,
        [1],
        "NaN",
        "nan",
        "sNaN",
        "Infinity",
        "-Infinity",
        "inf",
        D("NaN"),
        D("Infinity"),
        "",
        "abc",
        "1.2.3",
        "0x10",
        "12 USD",
    ],
)
def test_dec_rejects(value: Any) -> None:
    with pytest.raises(FrameError, match=r"^size:"):
        dec(value, "size")


# --- dec_str --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (D("1E+2"), "100"),
        (D("0E-8"), "0"),
        (D("0"), "0"),
        (D("100"), "100"),
        (D("1.50"), "1.5"),
        (D("0.00000001"), "0.00000001"),
        (D("1E-10"), "0.0000000001"),
        (D("-2.50E+3"), "-2500"),
        (D("123456789012345678901234567890"), "123456789012345678901234567890"),
    ],
)
def test_dec_str(value: D, text: str) -> None:
    assert dec_str(value) == text


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_dec_str_never_exponent_and_round_trips(value: D) -> None:
    text = dec_str(value)
    assert "e" not in text.lower()
    assert D(text) == value
    if "." in text:
        assert not text.endswith("0")
        assert not text.endswith(".")


def test_price_cache_gives_exact_decimals_and_stays_bounded() -> None:
    cache = PriceCache(limit=3)
    assert cache["60000.25"] == D("60000.25")
    assert cache["60000.50"] == cache["60000.5"] == D("60000.5")  # equal values, either spelling
    assert len(cache) == 3
    assert cache["1"] == D(1)
    assert len(cache) == 1  # full: cleared, never grows past its limit


@pytest.mark.parametrize("bad", ["0", "-1", "1e30", "NaN", "Infinity", "abc", 5, None])
def test_price_cache_refuses_what_is_not_a_price(bad: Any) -> None:
    from decimal import InvalidOperation

    cache = PriceCache()
    with pytest.raises(InvalidOperation):
        cache[bad]
    assert len(cache) == 0


@pytest.mark.parametrize(
    "bad",
    [
        "2023-02-29T00:00:00.5Z",  # no such day, in the common form (a fraction and Z)
        "2024-02-29T24:00:00.25Z",
        "2024-02-29T23:59.58.125Z",  # a "." inside the date-time part
    ],
)
def test_iso_to_ns_common_form_refuses_a_bad_second_every_time(bad: str) -> None:
    # the common form's per-second cache keeps only date-times that parsed
    for _ in range(2):
        with pytest.raises(FrameError, match="time"):
            iso_to_ns(bad)


def test_iso_to_ns_common_form_matches_the_general_parse() -> None:
    for digits in range(1, 10):
        frac = "123456789"[:digits]
        text = f"2024-02-29T23:59:58.{frac}Z"
        assert iso_to_ns(text) == iso_to_ns(text[:-1] + "+00:00")  # the general path
        assert iso_to_ns(text) == BASE_NS + int(frac.ljust(9, "0"))
