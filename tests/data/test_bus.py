"""Bus: routing by type and base class, venue/symbol filters, isolation, unsubscribe."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

from framework.data.bus import Bus
from framework.events import (
    OrderAccepted,
    OrderEvent,
    OrderFill,
    OrderFilled,
    OrderPartiallyFilled,
    OrderStatus,
    PublicTrade,
    Side,
    Ticker,
)


def trade(venue: str = "paxos", symbol: str = "BTCUSD") -> PublicTrade:
    return PublicTrade(venue, symbol, D("100"), D("1"), Side.BUY, "t1", None, 0, 1)


def ticker(venue: str = "paxos", symbol: str = "BTCUSD") -> Ticker:
    return Ticker(venue, symbol, D("1"), None, None, None, None, None, 0, 1)


def accepted(venue: str = "paxos", symbol: str = "BTCUSD") -> OrderAccepted:
    return OrderAccepted(venue, symbol, "c1", None, OrderStatus.ACCEPTED, 0)


def filled() -> OrderFilled:
    return OrderFilled("paxos", "BTCUSD", "c1", None, OrderStatus.FILLED, 0)


def partial() -> OrderPartiallyFilled:
    return OrderPartiallyFilled("paxos", "BTCUSD", "c1", None, OrderStatus.PARTIALLY_FILLED, 0)


def test_routes_by_exact_type() -> None:
    bus = Bus()
    trades: list[Any] = []
    tickers: list[Any] = []
    bus.subscribe(PublicTrade, trades.append)
    bus.subscribe(Ticker, tickers.append)
    t, k = trade(), ticker()
    bus.publish(t)
    bus.publish(k)
    bus.publish(t)
    assert trades == [t, t]
    assert tickers == [k]


def test_base_class_subscription_receives_subclasses() -> None:
    bus = Bus()
    all_orders: list[Any] = []
    fills: list[Any] = []
    only_filled: list[Any] = []
    bus.subscribe(OrderEvent, all_orders.append)
    bus.subscribe(OrderFill, fills.append)
    bus.subscribe(OrderFilled, only_filled.append)
    events = [accepted(), partial(), filled(), trade()]
    for e in events:
        bus.publish(e)
    assert all_orders == events[:3]
    assert fills == events[1:3]
    assert only_filled == [events[2]]


def test_object_subscription_sees_everything() -> None:
    bus = Bus()
    seen: list[Any] = []
    bus.subscribe(object, seen.append)
    events = [trade(), ticker(), accepted()]
    for e in events:
        bus.publish(e)
    assert seen == events


def test_handlers_called_in_subscription_order() -> None:
    bus = Bus()
    calls: list[str] = []
    bus.subscribe(PublicTrade, lambda e: calls.append("first"))
    bus.subscribe(object, lambda e: calls.append("second"))
    bus.subscribe(PublicTrade, lambda e: calls.append("third"))
    bus.publish(trade())
    assert calls == ["first", "second", "third"]


def test_venue_and_symbol_filters() -> None:
    bus = Bus()
    by_venue: list[Any] = []
    by_symbol: list[Any] = []
    by_both: list[Any] = []
    bus.subscribe(PublicTrade, by_venue.append, venue="paxos")
    bus.subscribe(PublicTrade, by_symbol.append, symbol="ETHUSD")
    bus.subscribe(PublicTrade, by_both.append, venue="paxos", symbol="ETHUSD")
    a = trade("paxos", "BTCUSD")
    b = trade("other", "ETHUSD")
    c = trade("paxos", "ETHUSD")
    for e in (a, b, c):
        bus.publish(e)
    assert by_venue == [a, c]
    assert by_symbol == [b, c]
    assert by_both == [c]


def test_filtered_subscription_ignores_events_without_the_attribute() -> None:
    bus = Bus()
    seen: list[Any] = []
    bus.subscribe(object, seen.append, symbol="BTCUSD")
    bus.publish("no symbol attribute")
    bus.publish(trade())
    assert len(seen) == 1


def test_raising_handler_is_isolated_and_counted_by_owner() -> None:
    bus = Bus()
    before: list[Any] = []
    after: list[Any] = []

    def boom(event: Any) -> None:
        raise ValueError("strategy bug")

    bus.subscribe(PublicTrade, before.append, owner="good")
    bus.subscribe(PublicTrade, boom, owner="bad")
    bus.subscribe(PublicTrade, after.append, owner="good")
    bus.publish(trade())
    bus.publish(trade())
    assert len(before) == 2
    assert len(after) == 2
    assert bus.handler_errors == {"bad": 2}


def test_unsubscribe_stops_delivery() -> None:
    bus = Bus()
    kept: list[Any] = []
    dropped: list[Any] = []
    bus.subscribe(PublicTrade, kept.append)
    sub = bus.subscribe(PublicTrade, dropped.append)
    bus.publish(trade())
    bus.unsubscribe(sub)
    bus.publish(trade())
    assert len(kept) == 2
    assert len(dropped) == 1


def test_subscribe_after_publish_invalidates_route_cache() -> None:
    bus = Bus()
    first: list[Any] = []
    late: list[Any] = []
    bus.subscribe(PublicTrade, first.append)
    bus.publish(trade())  # route for PublicTrade now cached
    bus.subscribe(OrderEvent, late.append)
    bus.subscribe(object, late.append)
    bus.publish(trade())
    assert len(first) == 2
    assert len(late) == 1  # only the object subscription matches a trade


def test_handler_may_unsubscribe_itself_during_dispatch() -> None:
    bus = Bus()
    calls: list[str] = []
    subs: list[Any] = []

    def once(event: Any) -> None:
        calls.append("once")
        bus.unsubscribe(subs[0])

    subs.append(bus.subscribe(PublicTrade, once))
    bus.subscribe(PublicTrade, lambda e: calls.append("other"))
    bus.publish(trade())
    bus.publish(trade())
    assert calls == ["once", "other", "other"]


def test_a_dispatcher_from_routes_is_what_publish_calls() -> None:
    bus = Bus()
    seen: list[Any] = []
    bus.subscribe(PublicTrade, seen.append, venue="paxos", symbol="BTCUSD", owner="a")
    t = trade()
    (bus.routes.get(PublicTrade) or bus.route(PublicTrade))(t)
    bus.publish(trade(symbol="ETHUSD"))
    bus.publish(trade(venue="roxom"))
    assert seen == [t]
    assert PublicTrade in bus.routes
    bus.subscribe(PublicTrade, seen.append, owner="b")
    assert PublicTrade not in bus.routes  # a subscription change resolves the route again
    bus.publish(t)
    assert seen == [t, t, t]
    assert bus.route(Ticker)(ticker()) is None  # nobody subscribed: a dispatcher that does nothing


def test_a_paused_subscription_keeps_its_place() -> None:
    bus = Bus()
    seen: list[str] = []
    bus.subscribe(PublicTrade, lambda e: seen.append("a"))
    b = bus.subscribe(PublicTrade, lambda e: seen.append("b"))
    bus.subscribe(PublicTrade, lambda e: seen.append("c"))
    bus.pause(b)
    bus.pause(b)  # twice: still one pause
    bus.publish(trade())
    assert seen == ["a", "c"]
    bus.resume(b)
    bus.publish(trade())
    assert seen == ["a", "c", "a", "b", "c"]  # back where it was, not last
    bus.pause(b)
    bus.unsubscribe(b)
    bus.resume(b)  # forgotten with its subscription: nothing to resume
    bus.publish(trade())
    assert seen[-2:] == ["a", "c"]


def test_a_handler_that_cannot_be_hashed_is_still_dispatched() -> None:
    class Unhashable:
        __hash__ = None  # type: ignore[assignment]

        def __init__(self) -> None:
            self.seen: list[Any] = []

        def __call__(self, event: Any) -> None:
            self.seen.append(event)

    bus = Bus()
    handler = Unhashable()
    bus.subscribe(PublicTrade, handler)
    t = trade()
    bus.publish(t)
    assert handler.seen == [t]
