"""Journal: file permissions, exact Decimal round trip, open-order reload, fill de-duplication."""

from __future__ import annotations

import os
import stat
from decimal import Decimal as D
from pathlib import Path

import pytest
import trio

from framework.events import OrderStatus, OrderType, Side, TimeInForce
from framework.execution.journal import JOURNAL_CACHE_KIB, Journal
from framework.model import Order


def make_order(coid: str, *, venue: str = "paxos", created_ns: int = 1, **kw: object) -> Order:
    fields: dict[str, object] = {
        "client_order_id": coid,
        "venue": venue,
        "symbol": "BTCUSD",
        "side": Side.SELL,
        "type": OrderType.LIMIT,
        "quantity": D("0.00012300"),
        "price": D("65432.10"),
        "tif": TimeInForce.GTD,
        "post_only": True,
        "expire_at_ns": 1_700_000_000_123_456_789,
        "strategy": "mm",
        "created_ns": created_ns,
        "updated_ns": created_ns,
    }
    fields.update(kw)
    return Order(**fields)  # type: ignore[arg-type]


def test_file_created_user_only(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "journal.sqlite"
    old = os.umask(0o022)
    try:
        journal = Journal(path)
    finally:
        os.umask(old)
    journal.record_intent(make_order("a"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # SQLite gives its WAL side files the database file's permissions
    for side in (Path(f"{path}-wal"), Path(f"{path}-shm")):
        if side.exists():
            assert stat.S_IMODE(side.stat().st_mode) & 0o077 == 0, side
    journal.close()


def test_intent_round_trip_keeps_every_field_exact(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    order = make_order("a")
    journal.record_intent(order)
    loaded = journal.load("a")
    assert loaded is not None
    for field in (
        "client_order_id",
        "venue",
        "symbol",
        "side",
        "type",
        "quantity",
        "price",
        "tif",
        "post_only",
        "expire_at_ns",
        "strategy",
        "status",
        "venue_order_id",
        "filled_qty",
        "avg_price",
        "fees",
        "reason",
        "created_ns",
        "updated_ns",
    ):
        assert getattr(loaded, field) == getattr(order, field), field
    # exact, not merely equal: trailing zeros survive, no float on the way
    assert str(loaded.quantity) == "0.00012300"
    assert str(loaded.price) == "65432.10"
    assert loaded.status is OrderStatus.PENDING
    assert journal.load("missing") is None


def test_update_round_trip(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    order = make_order("a", type=OrderType.MARKET, price=None, tif=TimeInForce.IOC)
    journal.record_intent(order)
    order.status = OrderStatus.PARTIALLY_FILLED
    order.venue_order_id = "v-1"
    order.filled_qty = D("0.0000410")
    order.avg_price = D("65432.123456789012345678")
    order.fees = D("0.000000001")
    order.reason = "why not"
    order.updated_ns = 99
    journal.update(order)
    loaded = journal.load("a")
    assert loaded is not None
    assert loaded.price is None
    assert loaded.type is OrderType.MARKET
    assert loaded.status is OrderStatus.PARTIALLY_FILLED
    assert loaded.venue_order_id == "v-1"
    assert str(loaded.filled_qty) == "0.0000410"
    assert loaded.avg_price == D("65432.123456789012345678")
    assert loaded.fees == D("0.000000001")
    assert loaded.reason == "why not"
    assert loaded.updated_ns == 99


def test_load_open_filters_terminal_and_venue_in_creation_order(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    statuses = {
        "pending": OrderStatus.PENDING,
        "unknown": OrderStatus.UNKNOWN,
        "working": OrderStatus.ACCEPTED,
        "cxl_req": OrderStatus.CANCEL_REQUESTED,
        "filled": OrderStatus.FILLED,
        "cancelled": OrderStatus.CANCELLED,
        "rejected": OrderStatus.REJECTED,
        "expired": OrderStatus.EXPIRED,
    }
    # created in reverse name order to prove the ordering is by created_ns
    for i, (coid, status) in enumerate(reversed(list(statuses.items()))):
        order = make_order(coid, created_ns=i)
        journal.record_intent(order)
        order.status = status
        journal.update(order)
    journal.record_intent(make_order("elsewhere", venue="other", created_ns=100))

    open_here = journal.load_open("paxos")
    assert [o.client_order_id for o in open_here] == ["cxl_req", "working", "unknown", "pending"]
    assert {o.client_order_id for o in journal.load_open()} == {
        "cxl_req",
        "working",
        "unknown",
        "pending",
        "elsewhere",
    }
    assert journal.count_by_status()["FILLED"] == 1


def test_record_fill_refuses_duplicates_per_venue(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    journal.record_intent(make_order("a"))
    assert journal.record_fill("paxos", "f1", "a", D("100.10"), D("0.5"), D("0.01"), 1)
    assert not journal.record_fill("paxos", "f1", "a", D("100.10"), D("0.5"), D("0.01"), 2)
    # the same id from another venue is another fill
    assert journal.record_fill("other", "f1", "a", D("100"), D("1"), D("0"), 3)
    assert journal.record_fill("paxos", "f2", "a", D("100"), D("1"), D("0"), 4)
    assert journal.fill_ids("a") == {"f1", "f2"}
    loaded = journal.load("a")
    assert loaded is not None
    assert loaded.fill_ids == {"f1", "f2"}


def test_state_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    first = Journal(path)
    order = make_order("a")
    first.record_intent(order)
    first.record_fill("paxos", "f1", "a", D("1"), D("1"), D("0"), 1)
    first.close()
    second = Journal(path)
    (reloaded,) = second.load_open("paxos")
    assert reloaded.client_order_id == "a"
    assert reloaded.fill_ids == {"f1"}
    assert not second.record_fill("paxos", "f1", "a", D("1"), D("1"), D("0"), 2)


def test_memory_journal_creates_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    journal = Journal(":memory:")
    journal.record_intent(make_order("a"))
    assert journal.load("a") is not None
    assert list(tmp_path.iterdir()) == []


def test_one_execution_filling_two_of_our_orders_records_both_sides() -> None:
    # a self-trade: the venue reports one execution id for both of our orders
    j = Journal(":memory:")
    for coid in ("buy-1", "sell-1"):
        j.record_intent(make_order(coid))
        assert j.record_fill("paxos", "T-77", coid, D("100"), D("1"), D(0), 5)
    assert not j.record_fill("paxos", "T-77", "buy-1", D("100"), D("1"), D(0), 6)
    assert j.fill_ids("buy-1") == j.fill_ids("sell-1") == {"T-77"}


def test_stop_price_round_trip_is_exact(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    journal.record_intent(
        make_order("s", type=OrderType.STOP_LIMIT, price=D("65000.50"), stop_price=D("65100.00"))
    )
    journal.record_intent(make_order("m", type=OrderType.STOP_MARKET, price=None,
                                     stop_price=D("0.00432100"), created_ns=2))  # fmt: skip
    journal.record_intent(make_order("l", created_ns=3))
    journal.close()
    reopened = Journal(tmp_path / "j.sqlite")  # from disk, not from a cache
    stop_limit, stop_market, limit = (reopened.load(c) for c in ("s", "m", "l"))
    assert stop_limit is not None and stop_market is not None and limit is not None
    assert stop_limit.type is OrderType.STOP_LIMIT and str(stop_limit.stop_price) == "65100.00"
    assert str(stop_limit.price) == "65000.50"
    assert stop_market.type is OrderType.STOP_MARKET and stop_market.price is None
    assert str(stop_market.stop_price) == "0.00432100"
    assert limit.stop_price is None
    # an update (status, fills) keeps the trigger
    stop_market.status = OrderStatus.ACCEPTED
    reopened.update(stop_market)
    assert [o.stop_price for o in reopened.load_open()] == [
        D("65100.00"), D("0.00432100"), None
    ]  # fmt: skip


def test_page_cache_is_small_and_bounded(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    (pages,) = journal._db.execute("PRAGMA cache_size").fetchone()
    assert pages == -JOURNAL_CACHE_KIB  # negative: a size in KiB, whatever the page size


async def test_durable_fsyncs_the_wal_once_per_burst_of_intents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    wal = os.stat(f"{journal.path}-wal").st_ino
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(Journal, "fsync_in_thread", True)  # the production path (real clock)
    first = journal.record_intent(make_order("a"))
    second = journal.record_intent(make_order("b", created_ns=2))
    assert synced == []  # committed (a process kill keeps them) but not yet waited for
    async with trio.open_nursery() as nursery:
        nursery.start_soon(journal.durable, first)
        nursery.start_soon(journal.durable, second)
    assert synced == [wal]  # one fsync of the WAL covered both
    await journal.durable(first)
    assert synced == [wal]  # already on disk: no wait
    third = journal.record_intent(make_order("c", created_ns=3))
    await journal.durable(third)
    assert synced == [wal, wal]
    journal.close()


async def test_durable_is_free_for_an_in_memory_journal(monkeypatch: pytest.MonkeyPatch) -> None:
    journal = Journal(":memory:")
    monkeypatch.setattr(os, "fsync", lambda fd: pytest.fail("fsync of an in-memory journal"))
    await journal.durable(journal.record_intent(make_order("a")))
