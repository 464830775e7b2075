"""The shared simulator order store (framework/sim/orders.py): indexes and the bounded history."""

from __future__ import annotations

import attrs

from framework.sim.orders import OrderStore


@attrs.define(eq=False)
class Rec:
    order_id: str
    client_order_id: str | None
    engine_id: str | None = None
    working: bool = False


def store(limit: list[int]) -> OrderStore[Rec]:
    return OrderStore(
        key=lambda r: r.order_id,
        client_id=lambda r: r.client_order_id,
        working=lambda r: r.working,
        limit=lambda: limit[0],
    )


def test_reads_like_a_mapping_in_creation_order() -> None:
    orders = store([10])
    assert orders == {} and len(orders) == 0
    a = orders.add(Rec("o1", "c1"))
    b = orders.add(Rec("o2", None))
    assert list(orders) == ["o1", "o2"] and orders["o1"] is a and orders.get("o2") is b
    assert "o1" in orders and "c1" not in orders and orders.get("nope") is None
    assert list(reversed(orders.values())) == [b, a]  # newest-first listings
    assert orders == {"o1": a, "o2": b}
    assert orders.client_ids() == ["c1"] and orders.by_client("c1") is a


def test_engine_index_and_a_reused_client_id_name_the_newest() -> None:
    orders = store([10])
    old = orders.add(Rec("o1", "c"))
    orders.bind_engine("e1", old)
    new = orders.add(Rec("o2", "c"))
    assert orders.by_client("c") is new and orders.by_engine("e1") is old
    assert orders.engine_ids() == ["e1"] and orders.by_engine("e2") is None


def test_trim_forgets_the_oldest_finished_and_their_index_entries() -> None:
    limit = [3]
    orders = store(limit)
    for i in range(5):
        rec = orders.add(Rec(f"o{i}", f"c{i}", f"e{i}"))
        orders.bind_engine(f"e{i}", rec)
    assert list(orders) == ["o2", "o3", "o4"]
    assert orders.client_ids() == ["c2", "c3", "c4"] and orders.engine_ids() == ["e2", "e3", "e4"]
    assert orders.by_client("c0") is None and orders.by_engine("e1") is None
    # a forgotten record's client id, reused by a kept record, stays with the kept one
    reuse = orders.add(Rec("o5", "c2"))
    assert list(orders) == ["o3", "o4", "o5"] and orders.by_client("c2") is reuse


def test_a_working_oldest_record_stops_the_trim_until_it_finishes() -> None:
    limit = [2]
    orders = store(limit)
    first = orders.add(Rec("o0", "c0", working=True))
    for i in range(1, 4):
        orders.add(Rec(f"o{i}", f"c{i}"))
    assert list(orders) == ["o0", "o1", "o2", "o3"]
    first.working = False
    orders.trim()
    assert list(orders) == ["o2", "o3"]
    limit[0] = 1  # the limit is read at each trim (the engine's bound may be lowered)
    orders.add(Rec("o4", None), trim=False)
    assert len(orders) == 3
    orders.trim()
    assert list(orders) == ["o4"]


def test_without_a_client_id_the_key_is_the_client_order_id() -> None:
    orders: OrderStore[Rec] = OrderStore(
        key=lambda r: r.order_id, working=lambda r: r.working, limit=lambda: 10
    )
    rec = orders.add(Rec("coid-1", None))
    assert orders.by_client("coid-1") is rec and orders.client_ids() == ["coid-1"]


def test_every_engine_id_bound_to_a_record_goes_with_it() -> None:
    # a venue whose amend is a cancel-and-replace binds one record under several engine ids
    limit = [1]
    orders = store(limit)
    amended = orders.add(Rec("o0", "c0"))
    orders.bind_engine("e0", amended)
    orders.bind_engine("e0-replaced", amended)
    orders.add(Rec("o1", "c1"))
    assert list(orders) == ["o1"] and orders.engine_ids() == []


def test_own_finds_an_order_whose_submit_is_under_way_by_its_client_id() -> None:
    from decimal import Decimal

    from framework.events import Side
    from framework.sim.engine import LIMIT, MatchingEngine

    engine = MatchingEngine()
    engine.add_symbol("BTCUSD", Decimal(1), Decimal(1))
    orders = OrderStore(key=lambda r: r.client_order_id, working=lambda r: True, limit=lambda: 9)
    rec = orders.add(Rec("o1", "c1"))
    live = engine.submit(
        "us", "BTCUSD", Side.BUY, LIMIT, Decimal(1), Decimal(100), client_order_id="c1"
    )
    assert orders.by_engine(live.order_id) is None  # not bound yet (its matches come first)
    assert orders.own(engine, live.order_id) is rec
    assert orders.by_engine(live.order_id) is rec  # and bound now
    assert orders.own(engine, "no-such-order") is None
