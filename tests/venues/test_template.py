"""The `_template` venue builds and trades with no core edit: registered for this test only, it
runs under an Engine against its own simulator, through the test kit like any venue."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

import framework.venues
from framework.errors import FrameError
from framework.events import BookSnapshot, OrderStatus, Side
from framework.testing import chaos
from framework.venues import load_venue, venue_names
from framework.venues._template.chaos import CASE

SYMBOL = "BTCUSD"


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # the one line a new venue adds to the registry, for this test only
    monkeypatch.setitem(framework.venues.REGISTRY, "template", "framework.venues._template:VENUE")
    yield


def test_the_template_is_not_a_production_venue() -> None:
    assert "template" not in venue_names()


def test_the_template_decoder_keeps_the_contract() -> None:
    stream = CASE.streams()["public"]
    emitted: list[object] = []
    stream.emit = emitted.append
    stream.decode(CASE.samples["public"][0], 7)
    (snap,) = emitted
    assert isinstance(snap, BookSnapshot)
    assert snap.bids == ((Decimal("100"), Decimal("1")),) and snap.recv_ns == 7
    for bad in ('{"type":"delta","symbol":"BTCUSD","bids":[["x","1"]],"asks":[]}', b"\x80", "[]"):
        with pytest.raises(FrameError):
            stream.decode(bad, 1)
    assert len(emitted) == 1


async def test_a_toy_venue_from_the_template_syncs_and_trades(registered: None) -> None:
    assert load_venue("template").name == "template"
    async with chaos("template", case=CASE, seed=5) as run:
        await run.settle(synced=True)
        run.step(40)  # the crowd trades: deltas flow
        await run.settle(synced=True)
        assert run.book_problems() == []
        book = run.engine.book("template", SYMBOL)
        assert book.is_synced and (book.bids(), book.asks()) == run.sim.book(SYMBOL)

        orders = run.engine.orders
        tick, lot = CASE.tick(run.sim, SYMBOL), Decimal("0.002")
        best_bid, best_ask = book.best_bid()[0], book.best_ask()[0]  # type: ignore[index]
        # a bid that rests: accepted, then taken by another participant's IOC sell
        price = best_bid + tick if best_bid + tick < best_ask else best_bid
        filled = orders.submit(
            venue="template", symbol=SYMBOL, side=Side.BUY, quantity=lot, price=price
        )
        await run.pulse.until(lambda: filled.status is OrderStatus.ACCEPTED, "accepted")
        run.take(SYMBOL, Side.SELL, Decimal(1000), price)  # sweeps every bid down to ours
        await run.pulse.until(lambda: filled.status is OrderStatus.FILLED, "filled")
        assert filled.order.filled_qty == lot and filled.order.avg_price == price

        # a bid far below the market: accepted, then cancelled
        rest = orders.submit(
            venue="template", symbol=SYMBOL, side=Side.BUY, quantity=lot, price=best_bid - 50 * tick
        )
        await run.pulse.until(lambda: rest.status is OrderStatus.ACCEPTED, "accepted")
        assert orders.cancel(rest.client_order_id)
        await run.pulse.until(lambda: rest.status is OrderStatus.CANCELLED, "cancelled")

        await run.settle(synced=True)
        assert run.book_problems() == []
        await run.finish_orders()
        assert run.order_problems() == []
