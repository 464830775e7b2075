"""`positional_factory`: the hot paths' event constructor builds exactly what the class does."""

from __future__ import annotations

from decimal import Decimal

import attrs
import pytest

from framework.events import (
    BookDelta,
    BookSnapshot,
    ExecutionReport,
    PublicTrade,
    Side,
    positional_factory,
)

D = Decimal


def test_factory_builds_the_same_frozen_event_as_the_class() -> None:
    args = ("paxos", "BTCUSD", ((D("1.5"), D("2")),), (), None, 10, 3)
    made, built = positional_factory(BookDelta)(*args), BookDelta(*args)
    assert type(made) is BookDelta
    assert made == built and hash(made) == hash(built) and repr(made) == repr(built)
    assert attrs.astuple(made, recurse=False) == args
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        made.venue = "other"  # type: ignore[misc]
    trade = ("paxos", "ETHUSD", D("3000"), D("0.1"), Side.BUY, "m1", 5, 6, 1)
    assert positional_factory(PublicTrade)(*trade) == PublicTrade(*trade)


def test_factory_takes_exactly_the_fields() -> None:
    make = positional_factory(BookDelta)
    with pytest.raises(TypeError):
        make("paxos", "BTCUSD", (), (), None, 10)  # one short


@attrs.define(slots=True)
class _Mutable:
    x: int


@attrs.frozen(slots=True)
class _Checked:
    x: int = attrs.field(validator=attrs.validators.instance_of(int))


@attrs.frozen(slots=True)
class _Hooked:
    x: int

    def __attrs_post_init__(self) -> None:
        pass


@pytest.mark.parametrize("cls", [ExecutionReport, BookSnapshot, _Mutable, _Checked, _Hooked])
def test_factory_refuses_classes_whose_init_does_more_than_store(cls: type) -> None:
    # defaults, validators, hooks or a mutable class: __init__ is not just slot stores
    with pytest.raises(TypeError):
        positional_factory(cls)
