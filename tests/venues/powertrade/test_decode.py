# ruff: noqa: E501  (verbatim wire frames read best on one line)
"""Power.Trade decoder: every sample line and every reference example into the right event.

`samples/powertrade.jsonl` is a verbatim copy of shared/venues/samples/powertrade.jsonl (lines
1-5 are real 2022 captures, 6-16 documentation examples). Reference examples are quoted from
shared/venues/powertrade.md, with its "…" placeholders filled in.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.errors import FrameError
from framework.events import (
    Balance,
    BookDelta,
    BookInvalidated,
    BookSnapshot,
    ExecutionReport,
    Liquidity,
    OrderStatus,
    Position,
    PublicTrade,
    Side,
)
from framework.venues.powertrade.decode import Decoder
from framework.venues.powertrade.events import RfqAdded, RfqLeg, RfqRemoved, RfqSnapshot

D = Decimal
SAMPLES = (Path(__file__).parent / "samples" / "powertrade.jsonl").read_text().splitlines()


def line(n: int) -> str:
    return SAMPLES[n - 1]


class Harness:
    def __init__(self, markets: set[str] | None = None) -> None:
        self.events: list[Any] = []
        self.replies: list[tuple[str, str, dict]] = []
        self.waiting: set[str] = set()
        self.decoder = Decoder(self.events.append, self._reply, markets)

    def _reply(self, tag: str, kind: str, body: dict) -> bool:
        self.replies.append((tag, kind, body))
        return tag in self.waiting

    def feed(self, frame: str | dict) -> list[Any]:
        start = len(self.events)
        text = frame if isinstance(frame, str) else orjson.dumps(frame).decode()
        self.decoder.decode(text, 123)
        return self.events[start:]


# --- sample lines --------------------------------------------------------------------------------


def test_line_1_successful_command_response_goes_to_its_waiter() -> None:
    h = Harness()
    h.waiting.add("rfq_tag")
    assert h.feed(line(1)) == []
    assert h.replies == [
        (
            "rfq_tag",
            "command_response",
            {"error_code": "0", "error_text": "success", "user_tag": "rfq_tag"},
        )
    ]


@pytest.mark.parametrize("n, ts", [(2, 1660733618452901), (6, 1670143999492414)])
def test_lines_2_and_6_heartbeat(n: int, ts: int) -> None:
    h = Harness()
    assert h.feed(line(n)) == []
    assert h.decoder.last_heartbeat_ns == ts * 1000


def test_line_3_empty_multi_leg_rfq_snapshot_with_market_id_255() -> None:
    (event,) = Harness().feed(line(3))
    assert isinstance(event, RfqSnapshot)
    assert event.symbol.startswith("BTC-20220930-25000C@1/") and event.rfqs == ()


def test_lines_4_and_5_multi_leg_rfq_added_then_deleted() -> None:
    h = Harness()
    (added,) = h.feed(line(4))
    assert isinstance(added, RfqAdded)
    rfq = added.rfq
    assert rfq.rfq_id == "29872771" and rfq.side is Side.SELL
    assert rfq.price == 0 and rfq.quantity == D("1.0")  # "0.0": no price given
    assert rfq.legs == (
        RfqLeg("ETH-20220902-1500P", 1, "2752"),
        RfqLeg("ETH-20220902-2000C", 1, "2771"),
    )
    assert rfq.venue_ts == 1660735105767221000
    assert h.decoder.rfq_books[rfq.symbol] == {"29872771": rfq}
    (removed,) = h.feed(line(5))
    assert isinstance(removed, RfqRemoved) and removed.rfq_id == "29872771"
    assert h.decoder.rfq_books[rfq.symbol] == {}


def test_line_7_unmatched_error_is_a_frame_error_naming_the_code() -> None:
    with pytest.raises(FrameError, match="venue error 12: error parsing new order request"):
        Harness().feed(line(7))


def test_line_7_error_with_a_waiter_goes_to_it() -> None:
    h = Harness()
    h.waiting.add("unique_request_id")
    h.feed(line(7))
    assert h.replies[0][2]["error_code"] == "12"


@pytest.mark.parametrize("n", [9, 10])
def test_lines_9_and_10_login_replies_reach_the_login_waiter(n: int) -> None:
    h = Harness()
    h.waiting.add("unique_request_id")
    h.feed(line(n))
    assert h.replies[0][2]["error_code"] == ("0" if n == 9 else "10")


def test_line_12_entities_and_rules_response_is_a_reply_and_parses_to_rules() -> None:
    from framework.venues.powertrade.entities import parse_entities

    h = Harness()
    h.waiting.add("unique_request_id")
    h.feed(line(12))
    ((tag, kind, body),) = h.replies
    assert (tag, kind) == ("unique_request_id", "entities_and_rules_response")
    rules = parse_entities(body)["BTC-USD"]
    assert (rules.qty_step, rules.price_step) == (D("0.0001"), D("0.1"))
    assert (rules.min_qty, rules.max_qty) == (D("0.0001"), D("100.0"))
    assert (rules.min_value, rules.max_value) == (D("0.00001"), D("100000000.0"))
    inst = rules.instrument()
    assert (inst.tick, inst.lot, inst.min_notional) == (D("0.1"), D("0.0001"), D("0.00001"))


def test_line_14_rfq_snapshot_with_market_id_none() -> None:
    (event,) = Harness().feed(line(14))
    assert isinstance(event, RfqSnapshot)
    (rfq,) = event.rfqs
    assert (rfq.rfq_id, rfq.side, rfq.price, rfq.quantity) == (
        "8910362",
        Side.BUY,
        D("1301.28"),
        D("0.1"),
    )
    assert rfq.legs == (RfqLeg("ETH-USD-PERPETUAL", 1, "484"),)


@pytest.mark.parametrize("n", [8, 11, 13, 15, 16])
async def test_client_lines_are_what_the_adapter_sends_and_the_simulator_accepts(n: int) -> None:
    from tests.venues.powertrade.test_sim import sim_and_client

    sim, client = sim_and_client()
    client.authenticated = n != 8
    sim.handle(client, line(n))
    kind, body = next(iter(orjson.loads(client.conn.frames[0]).items()))
    if n == 8:  # a made-up JWT is refused with the documented code
        assert (kind, body["error_code"]) == ("command_response", "10")
    elif n == 11:
        assert kind == "entities_and_rules_response"
    elif n in (13, 15, 16):
        # 15/16 name BTC-USD-INDEX / entity 7, which the simulator does not list
        assert kind == "command_response"
        assert body["error_code"] == ("0" if n == 13 else "19")


# --- reference examples (shared/venues/powertrade.md) ----------------------------------------------

ACCEPTED = {
    "order_accepted": {
        "utc_timestamp": "1670249000000100",
        "market_id": "0",
        "tradeable_entity_id": "4",
        "symbol": "BTC-USD",
        "type": "LIMIT",
        "order_id": "9553031",
        "client_order_id": "abc",
        "quantity": "1",
        "price": "10000",
    }
}
REJECTED = {
    "order_rejected": {
        "client_order_id": "abc",
        "symbol": "BTC-USD",
        "quantity": "1000000000",
        "price": "10000",
        "reason": "quantity_greater_than_maximum_quantity",
        "utc_timestamp": "1670249000000100",
    }
}
EXECUTION = {
    "execution": {
        "server_utc_timestamp": "1670249000000200",
        "utc_timestamp": "1670249000000199",
        "tradeable_entity_id": "930",
        "symbol": "AVAX-USD",
        "trade_id": "77",
        "order_id": "9553031",
        "client_order_id": "abc",
        "executed_price": "10.0",
        "executed_quantity": "0.1",
        "liquidity_flag": "added",
        "price": "10",
        "side": "buy",
        "order_state": "partial_fill",
    }
}
CANCELLED = {"cancel_order": {"server_utc_timestamp": "1670249000000300", "utc_timestamp": "1670249000000300", "tradeable_entity_id": "6", "symbol": "PTF-USD", "order_id": "9553031", "client_order_id": "abc", "filled_quantity": "0.0", "reason": "user_cancelled"}}  # fmt: skip


def test_reference_order_accepted() -> None:
    (r,) = Harness().feed(ACCEPTED)
    assert r == ExecutionReport(
        "powertrade",
        "abc",
        status=OrderStatus.ACCEPTED,
        venue_order_id="9553031",
        venue_ts=1670249000000100000,
    )


def test_reference_order_rejected_keeps_the_reason() -> None:
    (r,) = Harness().feed(REJECTED)
    assert r.status is OrderStatus.REJECTED and r.reason == "quantity_greater_than_maximum_quantity"


def test_reference_execution_is_a_fill_with_trade_id_and_maker_flag() -> None:
    (r,) = Harness().feed(EXECUTION)
    assert (r.fill_id, r.fill_price, r.fill_qty) == ("77", D("10.0"), D("0.1"))
    assert r.liquidity is Liquidity.MAKER and r.status is None  # partial: the core derives it
    taken = {
        "execution": {**EXECUTION["execution"], "liquidity_flag": "taken", "order_state": "filled"}
    }
    (r,) = Harness().feed(taken)
    assert r.liquidity is Liquidity.TAKER and r.status is OrderStatus.FILLED


def test_reference_unsolicited_cancel_order_ends_the_order() -> None:
    (r,) = Harness().feed(CANCELLED)
    assert r.status is OrderStatus.CANCELLED and r.venue_order_id == "9553031"
    assert r.reason == "user_cancelled"


@pytest.mark.parametrize(
    "reason",
    [
        "order has been fully executed and cannot be cancelled",
        "exchange order_id or client_order_id not found in order cache",
    ],
)
def test_reference_cancel_refusals_end_nothing_but_reach_the_waiter(reason: str) -> None:
    h = Harness()
    h.waiting.add("t3")
    frame = {"cancel_order": {**CANCELLED["cancel_order"], "reason": reason, "user_tag": "t3"}}
    assert h.feed(frame) == []
    assert h.replies[0][0] == "t3"


def test_reference_cancel_all_reply_goes_to_its_waiter() -> None:
    h = Harness()
    h.feed(
        {
            "cancel_all_orders": {
                "user_tag": "t4",
                "reason": "success",
                "results": [{"client_order_id": "abc", "order_state": "pending_cancel"}],
            }
        }
    )
    assert h.replies[0][:2] == ("t4", "cancel_all_orders")


def test_reference_firm_l3_book_into_l2_events() -> None:
    h = Harness({"BTC-USD"})
    snap_msg = {"snapshot": {"server_utc_timestamp": "1670228560424362", "market_id": "0", "tradeable_entity_id": "4", "symbol": "BTC-USD",
                             "buy": [{"utc_timestamp": "1", "price": "100.0", "quantity": "1.0", "order_id": "1"},
                                     {"utc_timestamp": "2", "price": "100.0", "quantity": "0.5", "orderid": "2"}],
                             "sell": [{"utc_timestamp": "3", "price": "101.0", "quantity": "2.0", "ordered": "3"}]}}  # fmt: skip
    (snap,) = h.feed(snap_msg)
    assert isinstance(snap, BookSnapshot) and snap.venue_ts == 1670228560424362000
    assert snap.bids == ((D(100), D("1.5")),) and snap.asks == ((D(101), D(2)),)
    base = {
        "market_id": "0",
        "tradeable_entity_id": "4",
        "symbol": "BTC-USD",
        "server_utc_timestamp": "5",
        "utc_timestamp": "5",
    }
    (d,) = h.feed(
        {
            "order_added": {
                **base,
                "side": "sell",
                "order_id": "4",
                "price": "101.0",
                "quantity": "1.0",
            }
        }
    )
    assert isinstance(d, BookDelta) and d.asks == ((D(101), D(3)),)
    (d,) = h.feed(
        {
            "order_executed": {
                **base,
                "side": "buy",
                "order_id": "1",
                "price": "100.0",
                "quantity": "0.25",
            }
        }
    )
    assert d.bids == ((D(100), D("1.25")),)
    (d,) = h.feed(
        {
            "order_updated": {
                **base,
                "old_order_id": "2",
                "new_order_id": "20",
                "price": "99.0",
                "quantity": "0.5",
            }
        }
    )
    assert d.bids == ((D(99), D("0.5")), (D(100), D("0.75")))
    (d,) = h.feed({"order_deleted": {**base, "side": "sell", "order_id": "3"}})
    assert d.asks == ((D(101), D(1)),)
    (t,) = h.feed({"trade": {**base, "trade_id": "T1", "price": "100.0", "quantity": "0.25"}})
    assert isinstance(t, PublicTrade) and (t.price, t.size, t.trade_id) == (D(100), D("0.25"), "T1")


def test_a_delete_of_an_unknown_order_invalidates_the_book() -> None:
    h = Harness({"BTC-USD"})
    h.feed({"snapshot": {"market_id": "0", "symbol": "BTC-USD", "buy": [], "sell": []}})
    # decoded into the news that the book is lost, not refused half-applied (see below)
    (lost,) = h.feed(
        {"order_deleted": {"market_id": "0", "symbol": "BTC-USD", "side": "buy", "order_id": "9"}}
    )
    assert isinstance(lost, BookInvalidated) and lost.symbol == "BTC-USD"
    assert "unknown order 9" in lost.reason and h.decoder.counts["l3_gaps"] == 1
    assert not h.decoder.books["BTC-USD"].synced


@pytest.mark.parametrize(
    "rows",
    [
        [{"price": "100.0", "quantity": "0.0", "order_id": "1"}],  # no size
        [{"price": "100.0", "quantity": "1.0", "order_id": "1"}] * 2,  # the same order twice
        [{"price": "100.0", "quantity": "lots", "order_id": "1"}],  # not a number
    ],
)
def test_a_bad_snapshot_is_a_lost_book_never_a_half_applied_frame(rows: list) -> None:
    """The decoder contract (tests/test_fuzz.py): a frame either raises FrameError having emitted
    nothing, or is decoded. A snapshot that cannot be used loses the book: it is decoded into
    BookInvalidated alone (the core unsyncs, tells the strategies, asks for a new snapshot)."""
    h = Harness({"BTC-USD"})
    good = {"market_id": "0", "symbol": "BTC-USD", "sell": [],
            "buy": [{"price": "99.0", "quantity": "1.0", "order_id": "7"}]}  # fmt: skip
    h.feed({"snapshot": good})
    (lost,) = h.feed({"snapshot": {**good, "buy": rows}})
    assert isinstance(lost, BookInvalidated) and lost.reason.startswith("bad snapshot")
    add = {"order_added": {"market_id": "0", "symbol": "BTC-USD", "side": "buy",
                           "order_id": "8", "price": "98.0", "quantity": "1.0"}}  # fmt: skip
    assert h.feed(add) == []  # nothing applies until a good snapshot
    (snap,) = h.feed({"snapshot": good})
    assert isinstance(snap, BookSnapshot) and snap.bids == ((D(99), D(1)),)


def test_nonsense_amounts_are_refused_before_they_touch_the_book() -> None:
    h = Harness({"BTC-USD"})
    good = {"market_id": "0", "symbol": "BTC-USD", "sell": [],
            "buy": [{"price": "99.0", "quantity": "1.0", "order_id": "7"}]}  # fmt: skip
    h.feed({"snapshot": good})
    base = {"market_id": "0", "symbol": "BTC-USD", "side": "buy"}
    for kind, body in [
        ("order_updated", {"old_order_id": "7", "new_order_id": "7", "price": "-1.0"}),
        ("order_executed", {"order_id": "7", "price": "99.0", "quantity": "-0.5"}),
        ("order_executed", {"order_id": "7", "price": "99.0", "quantity": "0.0"}),
    ]:
        h.feed({"snapshot": good})
        # never applied: the synced book is given up instead (and asked for again)
        (lost,) = h.feed({kind: {**base, **body}})
        assert isinstance(lost, BookInvalidated)
        assert not h.decoder.books["BTC-USD"].synced
        # with the book already unsynced, the same message is a plain bad frame
        with pytest.raises(FrameError):
            h.feed({kind: {**base, **body}})


def test_a_frame_delivered_twice_in_a_row_executes_an_order_once() -> None:
    """`order_executed` carries the quantity executed: applied twice, a partial execution would
    leave a smaller order that no later message need contradict (a synced, wrong book)."""
    h = Harness({"BTC-USD"})
    book = {"market_id": "0", "symbol": "BTC-USD", "sell": [],
            "buy": [{"price": "100.0", "quantity": "1.0", "order_id": "1"}]}  # fmt: skip
    h.feed({"snapshot": book})
    executed = '{"order_executed": {"server_utc_timestamp": "5", "utc_timestamp": "5", "market_id": "0", "symbol": "BTC-USD", "side": "buy", "order_id": "1", "price": "100.0", "quantity": "0.25"}}'
    (d,) = h.feed(executed)
    assert d.bids == ((D(100), D("0.75")),)
    assert h.feed(executed) == []  # the same message again, not a second execution
    assert h.decoder.books["BTC-USD"].orders == {"1": (Side.BUY, D(100), D("0.75"))}
    # a later execution of the same size is news (its timestamps differ)
    (d,) = h.feed(executed.replace('"5"', '"6"'))
    assert d.bids == ((D(100), D("0.5")),)


def test_reference_account_replies_become_balance_and_position_events() -> None:
    h = Harness()
    (b,) = h.feed(
        {
            "balances_response": {
                "user_tag": "t8",
                "balances": [
                    {
                        "symbol": "USD",
                        "cash_balance": "100.0",
                        "available_balance": "80.0",
                        "reserved_balance": "20.0",
                        "withdrawable_balance": "80.0",
                        "timestamp": "1670249000000000",
                    }
                ],
            }
        }
    )
    assert isinstance(b, Balance) and (b.asset, b.free, b.locked) == ("USD", D(80), D(20))
    (p,) = h.feed(
        {
            "positions_response": {
                "user_tag": "t7",
                "positions": [
                    {
                        "symbol": "BTC-USD-PERPETUAL",
                        "product_type": "perpetual_future",
                        "side": "sell",
                        "size": "0.5",
                        "average_entry_price": "20000.0",
                        "mark_price": "19000.0",
                        "upnl": "500.0",
                    }
                ],
            }
        }
    )
    assert isinstance(p, Position) and (p.quantity, p.avg_price, p.unrealized_pnl) == (
        D("-0.5"),
        D(20000),
        D(500),
    )


@pytest.mark.parametrize(
    "frame, match",
    [
        ("not json", "malformed JSON"),
        ('{"a": {}, "b": {}}', "exactly one key"),
        ('{"mystery": {}}', "unknown message type"),
        (
            '{"execution": {"order_state": "filled", "executed_price": 10.5, "trade_id": "1", "order_id": "1"}}',
            "executed_price",
        ),
        ('{"order_added": {"market_id": "7", "symbol": "X"}}', "market_id"),
        # shapes no venue sends, refused as bad frames (not a TypeError from a set lookup)
        ('{"order_deleted": {"market_id": {}, "symbol": "X"}}', "market_id"),
        ('{"order_accepted": {"client_order_id": ["a"], "order_id": "1"}}', "client_order_id"),
        (
            '{"execution": {"order_state": "filled", "liquidity_flag": {}, "order_id": "1"}}',
            "liquidity_flag",
        ),
        ('{"heartbeat": {"server_utc_timestamp": "12ab"}}', "timestamp"),
        (
            '{"snapshot": {"market_id": "none", "symbol": "X", "buy": [{"price": "1", "quantity": "1"}]}}',
            "order_id",
        ),
    ],
)
def test_bad_frames_are_frame_errors(frame: str, match: str) -> None:
    with pytest.raises(FrameError, match=match):
        Harness().feed(frame)


# --- the hot path of the L3 feed -----------------------------------------------------------------
# `_order_added`, `_order_deleted`, `_order_updated` and `_order_executed` take a well-formed firm
# message straight to the book; anything else goes the careful way. These pin that the hot path
# decides nothing the careful path would not: same events, same refusals, same book.

FIRM = {"market_id": "0", "symbol": "BTC-USD", "server_utc_timestamp": "5", "utc_timestamp": "5"}


def firm_book(h: Harness) -> Harness:
    h.feed(
        {
            "snapshot": {
                "market_id": "0",
                "symbol": "BTC-USD",
                "buy": [{"price": "99.0", "quantity": "1.0", "order_id": "7"}],
                "sell": [{"price": "101.0", "quantity": "2.0", "order_id": "8"}],
            }
        }
    )
    return h


def careful_only(h: Harness) -> Harness:
    h.decoder._hot_book = lambda body: None  # type: ignore[method-assign]  # never the hot path
    return h


@pytest.mark.parametrize(
    "kind, body, match",
    [
        ("order_added", {"side": "buy", "order_id": "9", "price": "0", "quantity": "1"}, "positive"),
        ("order_added", {"side": "buy", "order_id": "9", "price": "-1", "quantity": "1"}, "positive"),
        ("order_added", {"side": "buy", "order_id": "9", "price": "98", "quantity": "0"}, "positive"),
        ("order_added", {"side": "buy", "order_id": "9", "price": "NaN", "quantity": "1"}, "price: not finite"),
        ("order_added", {"side": "buy", "order_id": "9", "price": "98", "quantity": "Infinity"}, "quantity: not finite"),
        ("order_added", {"side": "buy", "order_id": "9", "price": "9x", "quantity": "1"}, "price: not a number"),
        ("order_added", {"side": "buy", "order_id": "9", "price": 98.5, "quantity": "1"}, "price: expected a decimal string"),
        ("order_added", {"side": "BUY", "order_id": "9", "price": "98", "quantity": "1"}, "side: expected buy or sell"),
        ("order_added", {"side": "buy", "order_id": "", "price": "98", "quantity": "1"}, "order_id: expected a non-empty string"),
        ("order_added", {"side": "buy", "order_id": 9, "price": "98", "quantity": "1"}, "order_id: expected a non-empty string"),
        ("order_added", {"market_id": "7", "side": "buy", "order_id": "9", "price": "98", "quantity": "1"}, "market_id: unknown market"),
        ("order_added", {"market_id": 0, "side": "buy", "order_id": "9", "price": "98", "quantity": "1"}, "market_id: unknown market"),
        ("order_added", {"symbol": "", "side": "buy", "order_id": "9", "price": "98", "quantity": "1"}, "symbol: expected a non-empty string"),
        ("order_deleted", {"side": "buy", "order_id": ["7"]}, "order_id: expected a non-empty string"),
        ("order_executed", {"order_id": "7", "quantity": "0"}, "order_executed: quantity must be positive"),
        ("order_executed", {"order_id": "7", "quantity": "-0.5"}, "order_executed: quantity must be positive"),
        ("order_executed", {"order_id": "7", "quantity": "sNaN"}, "quantity: not finite"),
        ("order_executed", {"order_id": "7"}, "quantity: expected a decimal string, got NoneType"),
        ("order_updated", {"old_order_id": "7", "new_order_id": "9", "price": "0", "quantity": "1"}, "price must be positive, quantity not negative"),
        ("order_updated", {"old_order_id": "7", "new_order_id": "9", "price": "98", "quantity": "-1"}, "price must be positive, quantity not negative"),
        ("order_updated", {"old_order_id": "7", "new_order_id": "", "price": "98", "quantity": "1"}, "new_order_id: expected a non-empty string"),
        ("order_updated", {"old_order_id": "7", "new_order_id": "9", "price": "-Infinity", "quantity": "1"}, "price: not finite"),
    ],
)  # fmt: skip
def test_a_malformed_order_message_is_refused_with_its_reason_on_the_hot_path_too(
    kind: str, body: dict, match: str
) -> None:
    # each differs from a message the hot path takes in one field. One that names our synced
    # firm book un-syncs it (#15: a book frame recognised as bad is never skipped while SYNCED);
    # one naming no firm book of ours (unknown market, no symbol) is refused as a FrameError.
    h = firm_book(Harness({"BTC-USD"}))
    before = dict(h.decoder.books["BTC-USD"].orders)
    message = {kind: {**FIRM, **body}}
    if message[kind].get("market_id") != "0" or not message[kind].get("symbol"):
        with pytest.raises(FrameError, match=match):
            h.feed(message)
        assert h.events[1:] == [] and h.decoder.books["BTC-USD"].orders == before
        return
    (lost,) = h.feed(message)
    assert isinstance(lost, BookInvalidated) and lost.symbol == "BTC-USD"
    assert re.search(match, lost.reason)
    assert not h.decoder.books["BTC-USD"].synced and h.decoder.counts["bad_book_frames"] == 1


def test_messages_the_hot_path_leaves_to_the_careful_one_still_apply() -> None:
    h = firm_book(Harness({"BTC-USD"}))
    # another spelling of the id, JSON integers, a size of zero (removes the order)
    (d,) = h.feed(
        {"order_added": {**FIRM, "side": "buy", "orderid": "9", "price": 98, "quantity": 2}}
    )
    assert d.bids == ((D(98), D(2)),)
    (d,) = h.feed(
        {
            "order_updated": {
                **FIRM,
                "old_order_id": "9",
                "new_order_id": "10",
                "price": "98",
                "quantity": "0",
            }
        }
    )
    assert d.bids == ((D(98), D(0)),) and "10" not in h.decoder.books["BTC-USD"].orders
    (d,) = h.feed({"order_executed": {**FIRM, "ordered": "8", "quantity": "0.5"}})
    assert d.asks == ((D(101), D("1.5")),)
    assert h.feed({"order_deleted": {**FIRM, "symbol": "ETH-USD", "order_id": "8"}}) == []
    assert h.decoder.counts["skipped_symbol"] == 1


_IDS = st.sampled_from(["7", "8", "9", "10"])
_PRICES = st.sampled_from(["98.5", "99.0", "99.00", "101.0", "102"])
_SIZES = st.sampled_from(["0.5", "1.0", "2", "0.25"])
_WELL_FORMED = {
    "order_added": {"side": st.sampled_from(["buy", "sell"]), "order_id": _IDS},
    "order_deleted": {"order_id": _IDS},
    "order_updated": {"old_order_id": _IDS, "new_order_id": _IDS},
    "order_executed": {"order_id": _IDS, "quantity": _SIZES},
}
_WELL_FORMED["order_added"] |= {"price": _PRICES, "quantity": _SIZES}
_WELL_FORMED["order_updated"] |= {"price": _PRICES, "quantity": _SIZES}
# what a field may be changed to (None: left out)
_ODD_IDS = st.sampled_from(["7", "9", "", 9, ["7"], None])
_ODD_NUMS = st.sampled_from(
    ["0", "0.0", "-1", "NaN", "sNaN", "Infinity", "1e40", "1E+1", "x", " 2 ", 98, 1.5, None]
)
_ODD = {
    "market_id": st.sampled_from(["none", "255", "7", 0, None]),
    "symbol": st.sampled_from(["ETH-USD", "", 1, None]),
    "side": st.sampled_from(["BUY", "", None]),
    "order_id": _ODD_IDS,
    "orderid": _ODD_IDS,
    "ordered": _ODD_IDS,
    "old_order_id": _ODD_IDS,
    "new_order_id": _ODD_IDS,
    "price": _ODD_NUMS,
    "quantity": _ODD_NUMS,
}


@st.composite
def order_messages(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A well-formed firm order message, often with one or two fields changed; "snapshot" puts
    the starting book back (after a gap the book ignores changes until one)."""
    kind = draw(st.sampled_from([*_WELL_FORMED, "snapshot"]))
    if kind == "snapshot":
        return kind, {}
    body = {**FIRM, **draw(st.fixed_dictionaries(_WELL_FORMED[kind]))}
    for field in draw(st.lists(st.sampled_from(sorted(_ODD)), max_size=2, unique=True)):
        body[field] = draw(_ODD[field])
    return kind, {k: v for k, v in body.items() if v is not None}


@settings(max_examples=300, deadline=None)
@given(st.lists(order_messages(), max_size=12))
def test_the_hot_path_decides_every_order_message_as_the_careful_path_does(messages) -> None:
    hot, careful = firm_book(Harness({"BTC-USD"})), careful_only(firm_book(Harness({"BTC-USD"})))
    for kind, body in messages:
        if kind == "snapshot":
            firm_book(hot)
            firm_book(careful)
            continue
        frame = orjson.dumps({kind: body}).decode()
        outcomes = []
        for h in (hot, careful):
            try:
                outcomes.append(repr(h.feed(frame)))  # repr: Decimal exponents count too
            except FrameError as exc:
                outcomes.append(f"FrameError: {exc}")
        assert outcomes[0] == outcomes[1], frame
    for symbol, book in careful.decoder.books.items():
        other = hot.decoder.books[symbol]
        assert (other.synced, repr(other.orders)) == (book.synced, repr(book.orders))
        assert repr(other.levels(Side.BUY) + other.levels(Side.SELL)) == repr(
            book.levels(Side.BUY) + book.levels(Side.SELL)
        )


def test_a_repeated_order_executed_further_back_executes_once() -> None:
    """#15 item 7: the duplicate need not be adjacent (another message in between)."""
    h = Harness({"BTC-USD"})
    book = {"market_id": "0", "symbol": "BTC-USD", "sell": [],
            "buy": [{"price": "100.0", "quantity": "1.0", "order_id": "1"},
                    {"price": "99.0", "quantity": "1.0", "order_id": "2"}]}  # fmt: skip
    h.feed({"snapshot": book})
    executed = '{"order_executed": {"server_utc_timestamp": "5", "utc_timestamp": "5", "market_id": "0", "symbol": "BTC-USD", "side": "buy", "order_id": "1", "price": "100.0", "quantity": "0.25"}}'
    h.feed(executed)
    h.feed(
        '{"order_added": {"market_id": "0", "symbol": "BTC-USD", "side": "buy", "order_id": "3", "price": "98.0", "quantity": "1.0"}}'
    )
    assert h.feed(executed) == []
    assert h.decoder.books["BTC-USD"].orders["1"] == (Side.BUY, D(100), D("0.75"))
    assert h.decoder.counts["repeated_frames"] == 1


@pytest.mark.parametrize("delete", ['"100.0"', '["100.0"]'])
def test_deltas_set_and_delete_price_levels(delete: str) -> None:
    """[CODE Hummingbot] add_price_level = absolute level size; delete_price_level a price (or,
    [INF], a list of them); order-level rows at a level are replaced by the level."""
    h = Harness({"BTC-USD"})
    book = {"market_id": "0", "symbol": "BTC-USD", "sell": [{"price": "101.0", "quantity": "2.0"}],
            "buy": [{"price": "100.0", "quantity": "1.0", "order_id": "1"},
                    {"price": "99.0", "quantity": "1.0", "order_id": "2"},
                    {"price": "99.0", "quantity": "0.5", "order_id": "3"}]}  # fmt: skip
    h.feed({"snapshot": book})  # a level row without an id is accepted (snap_with_deltas)
    (d,) = h.feed(
        '{"deltas": {"symbol": "BTC-USD", "buy": {"add_price_level": [{"price": "99.0", "quantity": "4.0"}], "delete_price_level": '
        + delete
        + '}, "sell": {"add_price_level": [{"price": "101.5", "quantity": "1.0"}]}}}'
    )
    assert isinstance(d, BookDelta)
    assert d.bids == ((D(99), D(4)), (D(100), D(0)))
    assert d.asks == ((D("101.5"), D(1)),)
    b = h.decoder.books["BTC-USD"]
    assert b.levels(Side.BUY) == [(D(99), D(4))]
    assert b.levels(Side.SELL) == [(D(101), D(2)), (D("101.5"), D(1))]


def test_a_deltas_instruction_it_does_not_know_unsyncs_the_book() -> None:
    h = Harness({"BTC-USD"})
    h.feed(
        {
            "snapshot": {
                "market_id": "0",
                "symbol": "BTC-USD",
                "sell": [],
                "buy": [{"price": "1.0", "quantity": "1.0", "order_id": "1"}],
            }
        }
    )
    (lost,) = h.feed(
        '{"deltas": {"symbol": "BTC-USD", "buy": {"add_order": [{"price": "2.0", "quantity": "1.0"}]}}}'
    )
    assert isinstance(lost, BookInvalidated) and "unknown instruction" in lost.reason
    assert not h.decoder.books["BTC-USD"].synced


def test_a_server_heartbeat_is_due_an_answer_and_timestamps_of_19_digits_are_ns() -> None:
    h = Harness()
    h.feed('{"heartbeat": {"server_utc_timestamp": "1670143999492414"}}')
    assert h.decoder.heartbeats_due == 1 and h.decoder.last_heartbeat_ns == 1670143999492414000
    h.feed('{"heartbeat": {"server_utc_timestamp": "1670143999492414123"}}')
    assert h.decoder.heartbeats_due == 2 and h.decoder.last_heartbeat_ns == 1670143999492414123
