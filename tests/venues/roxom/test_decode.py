"""Every Roxom documentation example (samples/roxom.jsonl, verbatim) decodes to the right event.

Line numbers cite the samples file; its README section names the doc page of each line.
"""

from __future__ import annotations

from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.errors import AuthError, FrameError
from framework.events import (
    Balance,
    BookDelta,
    BookSnapshot,
    ExecutionReport,
    OrderStatus,
    Position,
    PublicTrade,
    Side,
    Ticker,
    TopOfBook,
)
from framework.venues.roxom.auth import RsaSigner, new_private_key_pem
from framework.venues.roxom.client import RoxomStream
from framework.venues.roxom.decode import RoxomBalanceUpdate, RoxomDecoder
from framework.venues.roxom.tracking import OrderTracker

D = Decimal
SAMPLES = (Path(__file__).parent / "samples" / "roxom.jsonl").read_text().splitlines()
TS = 1640995200000000000
BIG_TS = 1752621480060801000  # above 2^53: a float would make it ...1024


def line(n: int) -> str:
    return SAMPLES[n - 1]


class Collect:
    def __init__(self) -> None:
        self.events: list[Any] = []
        self.controls: list[dict] = []
        self.resyncs: list[str] = []
        self.decoder = RoxomDecoder(self.events.append, self.controls.append, self.resyncs.append)

    def one(self, frame: str) -> Any:
        self.decoder.decode(frame, 7)
        (event,) = self.events
        self.events.clear()
        return event


def test_line_2_level1_snapshot_is_top_of_book() -> None:
    event = Collect().one(line(2))
    assert event == TopOfBook(
        "roxom", "US500-BTC", (D("0.00432450"), D("0.5")), (D("0.00432500"), D("0.3")), TS, 7, 0
    )


def test_line_5_depth_snapshot() -> None:
    event = Collect().one(line(5))
    assert isinstance(event, BookSnapshot)
    assert event.symbol == "GOLD-BTC" and event.venue_ts == TS and event.final
    assert event.bids == ((D("0.00089410"), D("89.25")), (D("0.00089400"), D("50.00")))
    assert event.asks == ((D("0.00089430"), D("156.75")), (D("0.00089440"), D("203.00")))


def test_line_6_depth_delta_negative_size_removes_and_topic_names_the_book() -> None:
    event = Collect().one(line(6))
    assert isinstance(event, BookDelta)
    # as published, data.symbol says OIL-BTC; the topic (the subscription) wins
    assert event.symbol == "GOLD-BTC"
    assert event.bids == ((D("0.00089415"), D("10.00")),)
    assert event.asks == ((D("0.00089435"), D(0)),)  # "-5.00": a removal


def test_line_8_ticker_current_revision() -> None:
    event = Collect().one(line(8))
    assert event == Ticker(
        "roxom",
        "US500-BTC",
        D("0.00432500"),
        D("0.00432475"),
        D("0.00432450"),
        D("0.0001"),
        D("500.00"),
        TS,
        7,
        0,
    )


def test_line_9_ticker_older_revision_with_snake_case_fields() -> None:
    event = Collect().one(line(9))
    assert isinstance(event, Ticker)
    assert (event.last, event.mark, event.index) == (D("50010.00"), D("50007.50"), D("50005.00"))
    assert event.funding_rate == D("0.0001") and event.open_interest == D("12345.00")


def test_ticker_nulls_are_allowed() -> None:
    frame = orjson.loads(line(8))
    for key in ("lastPrice", "indexPrice", "markPrice", "fundingRate", "openInterest"):
        frame["data"][key] = None
    event = Collect().one(orjson.dumps(frame).decode())
    assert (event.last, event.mark, event.index, event.funding_rate, event.open_interest) == (
        None,
    ) * 5


def test_line_10_order_partially_filled_keeps_the_nanosecond_timestamp_exact() -> None:
    report = Collect().one(line(10))
    assert report == ExecutionReport(
        "roxom",
        "my-order-123",
        status=OrderStatus.PARTIALLY_FILLED,
        venue_order_id="01981061-787c-7fd0-b707-18fa252f0d0b",
        fill_id="01981061-787c-7fd0-b707-18fa252f0d0b:0.5",
        fill_price=D("50125.50"),
        fee=D("0.00002506"),
        fee_asset="BTC",
        cum_qty=D("0.50"),
        reason="partiallyfilled",
        venue_ts=BIG_TS,
    )
    assert report.venue_ts == 1752621480060801000 and report.venue_ts != int(float(BIG_TS))


def test_line_11_cancelled_short_form_has_no_client_id_and_no_fill() -> None:
    report = Collect().one(line(11))
    assert report.status is OrderStatus.CANCELLED
    assert report.client_order_id == "" and report.venue_order_id.startswith("01981061")
    assert report.cum_qty == 0 and report.fill_id is None and report.fill_price is None
    assert report.venue_ts == BIG_TS


def test_line_13_balance() -> None:
    c = Collect()
    c.decoder.decode(line(13), 7)
    balance, update = c.events
    assert balance == Balance("roxom", "BTC", D("1.49950000"), D(0), TS)
    assert update == RoxomBalanceUpdate(
        "roxom", "BTC", D("1.50000000"), D("1.49950000"), D("-0.00050000"), "ordersettle", TS
    )


def test_balance_in_sats_is_converted_to_btc() -> None:
    frame = orjson.loads(line(13))
    frame["data"].update(balanceBefore="150000000", balanceAfter="149950000", amount="-50000")
    frame["data"]["unit"] = "sats"
    c = Collect()
    c.decoder.decode(orjson.dumps(frame), 7)
    assert c.events[0].free == D("1.4995")


def test_line_15_position() -> None:
    event = Collect().one(line(15))
    assert event == Position(
        "roxom",
        "US500-BTC",
        D("0.500"),
        D("50000.00"),
        D("0.00200000"),
        D("0.00100000"),
        TS,
        leverage=D("10.0"),
        liquidation_price=D("45000.00"),
    )


def test_short_and_closed_positions() -> None:
    frame = orjson.loads(line(15))
    frame["data"][0]["side"] = "short"
    assert Collect().one(orjson.dumps(frame).decode()).quantity == D("-0.500")
    frame["data"][0]["status"] = "closed"
    assert Collect().one(orjson.dumps(frame).decode()).quantity == 0


def test_line_16_auth_error_ends_the_connection_as_an_auth_failure() -> None:
    stream = RoxomStream("ws://x", RsaSigner("k", new_private_key_pem()), ["US500-BTC"], [])
    with pytest.raises(AuthError, match="600010"):
        stream.decode(line(16), 1)


def test_other_error_codes_are_recorded_not_fatal() -> None:
    stream = RoxomStream("ws://x", RsaSigner("k", new_private_key_pem()), ["US500-BTC"], [])
    stream.decode(b'{"event":"error","code":"60015","msg":"Invalid symbol","connId":"c"}', 1)
    assert stream.errors == ["60015: Invalid symbol"]


def test_client_lines_match_what_the_stream_sends() -> None:
    # lines 1, 3, 4, 7, 12, 14: {"op": "subscribe", "args": [{channel[, symbol]}]}
    stream = RoxomStream(
        "ws://x",
        RsaSigner("k", new_private_key_pem()),
        ["US500-BTC", "GOLD-BTC"],
        ["level1", "trade", "depth", "ticker"],
    )
    sent = stream.subscriptions()
    for n in (1, 3, 4, 7, 12, 14):
        doc = orjson.loads(line(n))
        assert doc["op"] == "subscribe"
        for arg in doc["args"]:
            assert set(arg) <= {"channel", "symbol"}
            if arg.get("symbol") in stream.markets or "symbol" not in arg:
                assert arg in sent, arg


def test_trade_aggregate_is_a_public_trade_identified_by_symbol_and_time() -> None:
    frame = {
        "topic": "trade.GOLD-BTC",
        "type": "snapshot",
        "createdTime": BIG_TS,
        "data": {
            "symbol": "GOLD-BTC",
            "takerSide": "buy",
            "minPx": "0.00432400",
            "maxPx": "0.00432500",
            "volume": "1247.85",
            "vwap": "0.00432450",
            "timestamp": BIG_TS,
        },
    }
    event = Collect().one(orjson.dumps(frame).decode())
    assert event == PublicTrade(
        "roxom",
        "GOLD-BTC",
        D("0.00432450"),
        D("1247.85"),
        Side.BUY,
        f"GOLD-BTC@{BIG_TS}",
        BIG_TS,
        7,
        0,
    )


def test_rest_views_use_the_documented_names() -> None:
    rest = (Path(__file__).parent / "samples" / "roxom-rest.jsonl").read_text().splitlines()
    one = orjson.loads(rest[2])["data"]["order"]  # GET /orders/{id}: qty, px in sats
    report = OrderTracker().rest(one)
    assert report.venue_order_id == "01234567-89ab-7def-8123-456789abcdea"
    assert report.quantity == D("100.00") and report.price == D("0.5")  # 50000000 sats
    assert report.cum_qty == 0 and report.fill_price is None
    assert report.client_order_id == "my_order_001"
    listed = orjson.loads(rest[3])["data"]["orders"]  # list: quantity, price, size = remaining
    working, filled = (OrderTracker.listed(item) for item in listed)
    assert working.cum_qty == 0 and working.quantity == D("0.001") and working.price == D("50000")
    assert filled.status is OrderStatus.FILLED and filled.cum_qty == D("0.002")
    assert filled.price is None and filled.client_order_id == ""


def test_delta_after_the_ack_where_the_snapshot_was_due_asks_for_a_resync() -> None:
    c = Collect()
    c.decoder.depth["GOLD-BTC"] = "acked"
    c.one(line(6))
    assert c.resyncs == ["GOLD-BTC"] and c.decoder.depth["GOLD-BTC"] == "requested"
    c.one(line(6))  # already asked: once per subscription
    assert c.resyncs == ["GOLD-BTC"]
    c.one(line(5))
    assert c.decoder.depth["GOLD-BTC"] == "live"


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (b"{not json", "malformed JSON"),
        (b"[1,2]", "not a JSON object"),
        (b'{"hello":1}', "neither topic"),
        (b'{"topic":"depth","type":"delta","data":{}}', "topic"),
        (b'{"topic":"nope.X","type":"delta","data":{"timestamp":1}}', "unknown channel"),
        (b'{"topic":"depth.X","type":"delta","data":{"bid":[["1"]],"timestamp":1}}', "bid"),
        (b'{"topic":"depth.X","type":"delta","data":{"bid":[["x","1"]],"timestamp":1}}', "number"),
        (b'{"topic":"depth.X","type":"delta","data":{"timestamp":1.7e18}}', "nanoseconds"),
        (b'{"topic":"depth.X","type":"odd","data":{"timestamp":1}}', "unknown type"),
        (b'{"type":"order","data":{"orderId":"a","status":"weird"}}', "status"),
        (b'{"type":"order","data":{"status":"filled"}}', "orderId"),
        (b'{"type":"balance","data":{"unit":"eth"}}', "unit"),
        (b'{"type":"position","data":[{"symbol":"X","side":"up","size":"1"}]}', "side"),
        (b'{"type":"mystery","data":{}}', "unknown account"),
    ],
)
def test_bad_frames_raise_frame_error(frame: bytes, why: str) -> None:
    with pytest.raises(FrameError, match=why):
        Collect().decoder.decode(frame, 1)


# --- the hot path of depth deltas ----------------------------------------------------------------
# `RoxomDecoder.decode` takes a plain depth delta straight to a BookDelta; anything else goes
# through `_market`. These pin that the hot path decides nothing `_market` would not.


def delta(bid: Any = (), ask: Any = (), **data: Any) -> bytes:
    body = {"symbol": "X", "timestamp": TS, **data}
    if bid != ():
        body["bid"] = bid
    if ask != ():
        body["ask"] = ask
    return orjson.dumps({"topic": "depth.X", "type": "delta", "createdTime": TS, "data": body})


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (delta([["0", "1"]]), "bid: price must be positive"),
        (delta([["-0.1", "1"]]), "bid: price must be positive"),
        (delta(ask=[["-0.1", "0"]]), "ask: price must be positive"),  # a removal too
        (delta([["NaN", "1"]]), "bid.price: not finite"),
        (delta([["Infinity", "1"]]), "bid.price: not finite"),
        (delta([["1", "sNaN"]]), "bid.qty: not finite"),
        (delta([["1", "-Infinity"]]), "bid.qty: not finite"),
        (delta([["1", "1x"]]), "bid.qty: not a number"),
        (delta([[1.5, "1"]]), "bid.price: expected a decimal string, got float"),
        (delta([[["1"], "1"]]), "bid.price: expected a decimal string, got list"),
        (delta([["1", 2.5]]), "bid.qty: expected a decimal string, got float"),
        (delta([["1", "2", "3"]]), r"bid: expected \[price, quantity\]"),
        (delta(["12"]), r"bid: expected \[price, quantity\]"),
        (delta([[]]), "bid: empty level"),
        (delta("12"), "bid: expected a list"),
        (delta({"1": "2"}), "bid: expected a list"),
        (delta([["1", "1"]], timestamp=True), "timestamp: expected integer nanoseconds"),
        (delta([["1", "1"]], timestamp=None), "timestamp: expected integer nanoseconds"),
    ],
)
def test_a_malformed_depth_delta_is_refused_with_its_reason_on_the_hot_path_too(
    frame: bytes, why: str
) -> None:
    # each differs from a delta the hot path takes in one field
    c = Collect()
    with pytest.raises(FrameError, match=why):
        c.decoder.decode(frame, 1)
    assert c.events == []


def test_deltas_the_hot_path_leaves_to_market_still_apply() -> None:
    # JSON integers, a digit-string or missing timestamp (then createdTime), huge amounts
    c = Collect()
    assert c.one(delta([[1, 2]])).bids == ((D(1), D(2)),)
    assert c.one(delta([["1", "1"]], timestamp="7")).venue_ts == 7
    frame = orjson.dumps(
        {"topic": "depth.X", "type": "delta", "createdTime": 9, "data": {"bid": [["1", "1"]]}}
    )
    assert c.one(frame).venue_ts == 9


@pytest.mark.parametrize(
    "level", [["1E+400", "1"], ["0.0043", "1E+400"], ["0.0043", "-1E+400"], ["1e40", "-1e40"]]
)
def test_a_level_out_of_range_is_refused_by_the_careful_path_too(level: list[str]) -> None:
    """#15 item 11: 1E+400 is a finite Decimal; no book holds it. Refused (FrameError: the
    core un-syncs the book), on delta and snapshot alike."""
    c = Collect()
    with pytest.raises(FrameError, match="out of range"):
        c.decoder.decode(delta([level]), 1)
    snapshot = orjson.dumps(
        {"topic": "depth.X", "type": "snapshot", "createdTime": 1, "data": {"bid": [level]}}
    )
    with pytest.raises(FrameError, match="out of range"):
        c.decoder.decode(snapshot, 1)
    assert c.events == []


_PRICES = ["0.00432450", "0.00432500", "50000.0", "1E-8"]
_SIZES = ["0.5", "1247.85", "0", "0.00", "-5.00"]
_ODD_ENTRIES = [
    *(["1", "2", "3"], ["1"], [], "12", None, [1, "1"], ["1", 2], [1.5, "1"], [None, "1"]),
    *([["1"], "1"], ["1", {}]),
    *(["0", "1"], ["-1", "1"], ["NaN", "1"], ["1", "NaN"], ["Infinity", "1"], ["1", "-Infinity"]),
    *(["1e40", "1"], ["1", "1e40"], ["1", "-1e40"], [" 1 ", "1"], ["1_000", "1"], ["1", "x"]),
]
_ODD = {
    "topic": st.sampled_from(["depth", "depth.", "depth.GOLD-BTC", "nope.X", 7]),
    "type": st.sampled_from(["snapshot", "odd", None]),
    "createdTime": st.sampled_from([TS + 1, "12", 1.5, None]),
    "data": st.sampled_from([[], "x", None]),
    "timestamp": st.sampled_from([BIG_TS, "123", "12a", 1.7e18, True, None]),
    "bid": st.sampled_from(["x", {}, [], None]),
    "ask": st.sampled_from(["x", {}, [], None]),
    "bid_entry": st.sampled_from(_ODD_ENTRIES),
    "ask_entry": st.sampled_from(_ODD_ENTRIES),
}


@st.composite
def depth_frames(draw: st.DrawFn) -> bytes:
    """A well-formed depth delta (most name one level on one side), often with one or two
    fields changed (None: left out)."""
    levels = st.lists(
        st.tuples(st.sampled_from(_PRICES), st.sampled_from(_SIZES)).map(list), max_size=2
    )
    data: dict[str, Any] = {
        "symbol": "X",
        "bid": draw(levels),
        "ask": draw(levels),
        "timestamp": TS,
    }
    msg: dict[str, Any] = {"topic": "depth.US500-BTC", "type": "delta", "createdTime": TS}
    msg["data"] = data
    for field in draw(st.lists(st.sampled_from(sorted(_ODD)), max_size=2, unique=True)):
        value = draw(_ODD[field])
        if field in ("bid_entry", "ask_entry"):
            side = field[:3]
            data[side] = [*data[side], value] if type(data.get(side)) is list else [value]
        elif field in msg:
            msg[field] = value
        else:
            data[field] = value
    return orjson.dumps({k: v for k, v in msg.items() if v is not None})


def market_only(decoder: RoxomDecoder, frame: bytes, recv_ns: int) -> None:
    """What `_market`, the careful path, makes of a market frame."""
    msg = orjson.loads(frame)
    decoder._market(msg, msg["topic"], recv_ns)


@settings(max_examples=400, deadline=None)
@given(st.lists(depth_frames(), max_size=6))
def test_the_hot_path_decides_every_depth_frame_as_market_does(frames: list[bytes]) -> None:
    hot, careful = Collect(), Collect()
    for c in (hot, careful):
        c.decoder.depth = {"US500-BTC": "acked", "GOLD-BTC": "live"}
    for frame in frames:
        outcomes = []
        for c, decode in (
            (hot, hot.decoder.decode),
            (careful, partial(market_only, careful.decoder)),
        ):
            try:
                decode(frame, 7)
                outcomes.append(repr(c.events))  # repr: Decimal exponents count too
            except FrameError as exc:
                outcomes.append(f"FrameError: {exc}")
            c.events.clear()
        assert outcomes[0] == outcomes[1], frame
    assert (hot.decoder.depth, hot.decoder.gaps, hot.resyncs) == (
        careful.decoder.depth,
        careful.decoder.gaps,
        careful.resyncs,
    )
