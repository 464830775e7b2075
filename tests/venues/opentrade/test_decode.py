"""Open Trade decoder and message builders against every published example.

`samples/opentrade.jsonl` is a verbatim copy of shared/venues/samples/opentrade.jsonl; each test
names the line it uses. Numbers are JSON numbers: they must come out as exact Decimals.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from framework.data.book import OrderBook
from framework.errors import FrameError, OrderRefused
from framework.events import (
    Balance,
    BookDelta,
    BookSnapshot,
    OrderStatus,
    OrderType,
    PublicTrade,
    Side,
)
from framework.events import TimeInForce as TIF
from framework.model import Order
from framework.venues.opentrade import messages as m
from framework.venues.opentrade.auth import is_auth_error
from framework.venues.opentrade.decode import (
    CatalogueEntry,
    Decoder,
    OrderRequestUpdate,
    TradePosition,
    order_report,
)

D = Decimal
S = OrderStatus
LINES = (Path(__file__).parent / "samples" / "opentrade.jsonl").read_text().splitlines()


def line(n: int) -> str:
    return LINES[n - 1]


class Sink:
    def __init__(self, **kw: Any) -> None:
        self.events: list[Any] = []
        self.control: list[dict] = []
        self.decoder = Decoder(self.events.append, on_control=self._control, **kw)

    def _control(self, msg: dict) -> bool:
        if msg.get("event") in ("ACK", "ERROR"):
            self.control.append(msg)
        return False

    def feed(self, frame: str, recv_ns: int = 1) -> list[Any]:
        before = len(self.events)
        self.decoder.decode(frame, recv_ns)
        return self.events[before:]


def test_samples_file_is_the_shared_copy() -> None:
    shared = Path("/work/shared/venues/samples/opentrade.jsonl")
    if shared.exists():  # the copy must stay verbatim
        assert shared.read_text() == (Path(__file__).parent / "samples/opentrade.jsonl").read_text()
    assert len(LINES) == 25


# --- balances (lines 2, 18, 19) -----------------------------------------------------------------


def test_line2_balance_snapshot_keeps_float_artefacts_exactly() -> None:
    events = Sink().feed(line(2))
    assert [type(e) for e in events] == [Balance, Balance]
    usdt, btc = events
    assert usdt.asset == "USDT" and usdt.free == D("313037.3739066097")
    assert usdt.locked == D("0.0") and usdt.total == D("313037.3739066097")
    # 2.7886285699999998 would become 2.78862857 through a float round trip
    assert btc.free == D("2.7886285699999998") and btc.locked == D("0.5008126")
    assert str(btc.free) == "2.7886285699999998"


@pytest.mark.parametrize("n", [18, 19])
def test_lines18_19_balance_snapshot_and_update(n: int) -> None:
    (ada,) = Sink().feed(line(n))
    assert ada == Balance("opentrade", "ADA", D("16040.3555"), D("100.0"), ada.ts_ns)
    assert ada.total == D("16140.3555")


# --- control frames (lines 4, 10, 13, 17) --------------------------------------------------------


def test_line4_pong_counts_liveness() -> None:
    sink = Sink()
    assert sink.feed(line(4), recv_ns=77) == []
    assert sink.decoder.pongs == 1 and sink.decoder.last_pong_ns == 77


@pytest.mark.parametrize("n", [10, 13, 17])
def test_acks_go_to_control_without_events(n: int) -> None:
    sink = Sink()
    assert sink.feed(line(n)) == []
    assert sink.control[0]["event"] == "ACK"
    assert sink.control[0]["channel"] == json.loads(line(n))["channel"]


# --- catalogue (lines 6, 8) ----------------------------------------------------------------------


def test_lines6_8_asset_and_instrument_lists() -> None:
    sink = Sink()
    sink.feed(line(6))
    sink.feed(line(8))
    cat = sink.decoder.catalogue
    assert cat["USC"] == CatalogueEntry("opentrade", "Currency", "USC", None, None)
    assert cat["BAT/ETH"] == CatalogueEntry("opentrade", "Instrument", "BAT/ETH", "BAT", None)


# --- public book and trades (lines 11, 14) -------------------------------------------------------


def test_line11_unsorted_book_becomes_a_sorted_snapshot() -> None:
    (snap,) = Sink().feed(line(11), recv_ns=5)
    assert isinstance(snap, BookSnapshot) and snap.symbol == "BTC/USD" and snap.final
    # published asks: 85100.0, 19397.85, 84300.0 -> best (lowest) first
    assert snap.asks == (
        (D("19397.85"), D("21.6067")),
        (D("84300.0"), D("0.00854")),
        (D("85100.0"), D("0.01009")),
    )
    assert snap.bids == (
        (D("19292.21"), D("0.0124")),
        (D("19242.45"), D("3.0516")),
        (D("10000.0"), D("0.0002")),
    )
    assert snap.venue_ts == 1664651366635 * 1_000_000


def test_line11_an_unchanged_full_book_is_not_emitted_again() -> None:
    sink = Sink()
    assert len(sink.feed(line(11), recv_ns=1)) == 1
    # the venue resends the whole book every 20 ms; identical ones are not news
    for i in range(5):
        assert sink.feed(line(11), recv_ns=2 + i) == []
    assert sink.decoder.unchanged_books == 5
    changed = line(11).replace("[19292.21,0.0124]", "[19292.21,0.0125]")
    (delta,) = sink.feed(changed, recv_ns=10)
    # a changed book is sent as the levels that moved: the core holds the last one exactly
    assert isinstance(delta, BookDelta)
    assert (delta.bids, delta.asks) == (((D("19292.21"), D("0.0125")),), ())
    assert delta.venue_ts == 1664651366635 * 1_000_000
    # a new connection (epoch) or a resync request: the next book is emitted even if unchanged
    sink.decoder.epoch = 2
    assert len(sink.feed(changed, recv_ns=11)) == 1
    sink.decoder.forget_book("BTC/USD")
    assert len(sink.feed(changed, recv_ns=12)) == 1
    # after a silence (the core may have marked the book STALE) an unchanged one is re-emitted
    assert len(sink.feed(changed, recv_ns=12 + sink.decoder.resend_unchanged_after_ns)) == 1


def test_a_changed_book_becomes_the_delta_that_rebuilds_it() -> None:
    sink = Sink()
    first = line(11)
    (snap,) = sink.feed(first, recv_ns=1)
    book = OrderBook("opentrade", "BTC/USD")
    assert book.apply_snapshot(snap)
    # one level resized, one gone, one new, on both sides
    changed = (
        first.replace("[19292.21,0.0124]", "[19292.21,0.5]")
        .replace("[10000.0,0.0002]", "[19000.5,0.25]")
        .replace("[85100.0,0.01009]", "[19400,2]")
    )
    (delta,) = sink.feed(changed, recv_ns=2)
    assert isinstance(delta, BookDelta)
    assert sorted(delta.bids) == [
        (D("10000.0"), D(0)),
        (D("19000.5"), D("0.25")),
        (D("19292.21"), D("0.5")),
    ]
    assert sorted(delta.asks) == [(D("19400"), D(2)), (D("85100.0"), D(0))]
    assert book.apply_delta(delta)
    (fresh,) = Sink().feed(changed, recv_ns=2)  # what a snapshot of the new frame holds
    assert book.bids() == list(fresh.bids) and book.asks() == list(fresh.asks)


def test_book_for_an_unconfigured_symbol_is_skipped() -> None:
    sink = Sink(markets={"ETH/USD"})
    assert sink.feed(line(11)) == []
    assert sink.decoder.skipped_symbols == 1


def test_line14_public_trade() -> None:
    (trade,) = Sink().feed(line(14), recv_ns=3)
    assert trade == PublicTrade(
        "opentrade", "BTC/USD", D("19308.6"), D("0.0103"), Side.BUY, None,
        1664651920827 * 1_000_000, 3, 0,
    )  # fmt: skip


# --- private orders (lines 21-25, and the reference's string-price UPDATE) ----------------------


def test_line21_active_order_from_get() -> None:
    (report,) = Sink().feed(line(21))
    assert report.client_order_id == "567567567" and report.venue_order_id == "1668662119644"
    assert report.status is S.ACCEPTED
    assert report.price == D("12000.0") and report.quantity == D("0.001")
    assert report.cum_qty is None and report.avg_price is None  # filledPrice 0.0: nothing filled
    assert report.venue_ts is not None and report.venue_ts % 1000 == 0  # µs precision kept


def test_line22_get_reply_without_event_key_still_decodes() -> None:
    assert "event" not in json.loads(line(22))
    (report,) = Sink().feed(line(22))
    assert report.client_order_id == "567567567" and report.status is S.ACCEPTED


def test_line23_order_update_without_ids_is_a_venue_event() -> None:
    (update,) = Sink().feed(line(23), recv_ns=9)
    assert isinstance(update, OrderRequestUpdate)
    assert update.client_order_id is None and update.venue_order_id is None
    assert update.request_status == "CANCELLED" and update.symbol == "BTC/USD"
    assert update.side is Side.BUY and update.transaction_id == "1668897424879"
    assert update.key == "100141:BTC/USD:352908720"


def test_line24_history_uses_the_other_id_field_names() -> None:
    (report,) = Sink().feed(line(24))
    assert report.client_order_id == "4444444" and report.venue_order_id == "1668553243505"
    assert report.status is S.CANCELLED


def test_line25_trade_position() -> None:
    (pos,) = Sink().feed(line(25))
    assert isinstance(pos, TradePosition)
    assert pos.symbol == "BTC/USD" and pos.side is Side.BUY and pos.volume == D("0.001")
    assert pos.entry_price == D("12700.0") and pos.date == "2022-11-10"


def test_reference_update_with_string_price() -> None:
    # opentrade.md, TRADE_PRIVATE: the api-private UPDATE example (price as a string)
    frame = (
        '{"command":"SUBSCRIBE","event":"UPDATE","channel":"TRADE_PRIVATE","data":[{"class":'
        '"Order","globalInstrumentCd":"BTC/USD","orderId":"0989876565","exchOrderId":'
        '"1652424613543121","direction":"SELL","orderType":"LIMIT","orderStatus":"NEW",'
        '"price":"0.215"}]}'
    )
    (report,) = Sink().feed(frame)
    # NEW: the venue has the order, not yet working; no status change, but the venue id
    assert report.client_order_id == "0989876565" and report.status is None
    assert report.venue_order_id == "1652424613543121"
    assert report.price == D("0.215") and report.quantity is None


def test_cumulative_fill_and_statuses() -> None:
    item = {
        "class": "Order", "clientOrderId": "c1", "exchOrderId": 42, "orderType": "LIMIT",
        "orderStatus": "PARTIALLY_FILLED", "price": D("100.5"), "amount": D("2.0"),
        "filledAmount": D("0.5"), "filledPrice": D("100.25"),
    }  # fmt: skip
    report = order_report(item)
    assert report.status is S.PARTIALLY_FILLED and report.venue_order_id == "42"
    assert report.cum_qty == D("0.5") and report.avg_price == D("100.25")
    # fill ids are per order: another order filled to 0.5 is a different fill
    assert report.fill_id == "c1:cum:0.5"
    assert order_report({**item, "clientOrderId": "c2"}).fill_id != report.fill_id
    # FILLED without filledAmount: the whole amount (status-only venues)
    done = order_report({**item, "orderStatus": "FILLED", "filledAmount": None})
    assert done.status is S.FILLED and done.cum_qty == D("2.0")
    assert order_report({**item, "orderStatus": "COMLETED"}).status is S.FILLED
    assert order_report({**item, "orderStatus": "EXPIRED"}).status is S.EXPIRED
    rejected = order_report({**item, "orderStatus": "REJECTED", "message": "no funds"})
    assert rejected.status is S.REJECTED and rejected.reason == "no funds"
    market = order_report({**item, "orderType": "MARKET", "price": D("0.0")})
    assert market.price is None


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        ("{not json", "malformed JSON"),
        ("[1,2]", "not a JSON object"),
        ('{"event":"UPDATE","channel":"NOPE","data":[]}', "unknown channel"),
        ('{"event":"WHAT","channel":"BALANCE","data":[]}', "unknown event"),
        ('{"event":"UPDATE","channel":"BALANCE","data":{}}', "expected a list"),
        ('{"channel":"BALANCE"}', "without event or data"),
        (line(11).replace("0.0124", "-1"), "negative"),
        (line(11).replace("[19292.21,0.0124]", '["abc",1]'), "not a number"),
        (line(11).replace("[19292.21,0.0124]", "[19292.21]"), r"\[price, size\]"),
        (line(11).replace("1664651366635", '"x"'), "eventTime"),
        (line(21).replace('"ACTIVE"', '"WEIRD"'), "orderStatus"),
        (line(21).replace('"orderId":"567567567",', ""), "clientOrderId"),
        (line(14).replace('"BUY"', '"UP"'), "tradeSide"),
        (line(18).replace('"balance":16140.3555,"available":16040.3555,', ""), "two of"),
        ('{"event":"UPDATE","channel":"TRADE_PRIVATE","data":[{"class":"X"}]}', "class"),
        (line(14).replace("19308.6", "NaN"), "price"),
    ],
)
def test_bad_frames_raise_frame_error(frame: str, why: str) -> None:
    sink = Sink()
    with pytest.raises(FrameError, match=why):
        sink.feed(frame)
    assert sink.events == []


def test_a_bad_item_spoils_the_whole_frame_not_half_of_it() -> None:
    frame = line(2).replace('"currencyCode":"BTC",', "")
    sink = Sink()
    with pytest.raises(FrameError):
        sink.feed(frame)
    assert sink.events == []  # the good USDT item before it was not emitted either


# --- client messages (lines 1, 3, 5, 7, 9, 12, 15, 16, 20; reference order entry) ---------------


def test_line1_15_16_balance_subscription_shapes() -> None:
    sent = m.subscribe("BALANCE", [m.arg("currency", ["BTC", "USD"])], signature="tok")
    assert sent == {
        "command": "SUBSCRIBE",
        "channel": "BALANCE",
        "channelArgs": [{"name": "currency", "value": "[BTC,USD]"}],
        "signature": "tok",
    }
    for n in (1, 15, 16):
        published = json.loads(line(n))
        assert set(published) == set(sent)
        value = published["channelArgs"][0]["value"]
        assert m.parse_list_value(value) == value.strip("[]").replace(" ", "").split(",")
    assert m.parse_list_value("[BTC, USDT]") == ["BTC", "USDT"]


@pytest.mark.parametrize(("n", "msg"), [(3, m.ping()), (5, m.get("ASSET_LIST")),
                                        (7, m.get("INSTRUMENT_LIST"))])  # fmt: skip
def test_ping_and_get_messages_equal_the_published_ones(n: int, msg: dict) -> None:
    assert json.loads(line(n)) == msg


@pytest.mark.parametrize(("n", "channel"), [(9, "ORDER_BOOK_PUBLIC"), (12, "TRADE_PUBLIC"),
                                            (20, "TRADE_PRIVATE")])  # fmt: skip
def test_instrument_subscriptions_equal_the_published_shape(n: int, channel: str) -> None:
    published = json.loads(line(n))
    symbols = m.parse_list_value(published["channelArgs"][0]["value"])
    ours = m.subscribe(channel, [m.arg("instrument", symbols)])
    assert ours["channelArgs"] == published["channelArgs"]
    assert ours["command"] == published["command"] and ours["channel"] == channel


def _order(**kw: Any) -> Order:
    base: dict[str, Any] = dict(
        client_order_id="unique_order_id_005", venue="opentrade", symbol="BTC/USD",
        side=Side.SELL, type=OrderType.LIMIT, quantity=D("0.001"), price=D("58000"),
    )  # fmt: skip
    base.update(kw)
    return Order(**base)


def test_create_equals_the_reference_example() -> None:
    msg = m.create(_order(), signature="<jwt>", request_type="DIRECT", exchange_name="BITFINEX")
    assert msg == {
        "command": "CREATE",
        "signature": "<jwt>",
        "channel": "TRADE_PRIVATE",
        "data": [
            {
                "class": "Order",
                "globalInstrumentCd": "BTC/USD",
                "clientOrderId": "unique_order_id_005",
                "direction": "SELL",
                "orderType": "LIMIT",
                "price": "58000",
                "amount": "0.001",
                "timeInForce": "GTC",
                "requestType": "DIRECT",
                "exchangeName": "BITFINEX",
            }
        ],
    }


def test_create_variants() -> None:
    post = m.create(_order(post_only=True, tif=TIF.IOC), signature="t")["data"][0]
    assert post["orderType"] == "POST_ONLY" and post["timeInForce"] == "IOC"
    assert post["requestType"] == "SMART" and "exchangeName" not in post
    market = m.create(_order(type=OrderType.MARKET, price=None, tif=TIF.FOK), signature="t")
    assert "price" not in market["data"][0] and market["data"][0]["orderType"] == "MARKET"
    gtt = m.create(_order(tif=TIF.GTD, expire_at_ns=1_700_000_000_123_000_000), signature="t")
    assert gtt["data"][0]["timeInForce"] == "GTT"
    assert gtt["data"][0]["expireTime"] == 1_700_000_000_123
    assert m.create(_order(tif=TIF.DAY), signature="t")["data"][0]["timeInForce"] == "GTD"
    assert m.create(_order(quantity=D("1E-8")), signature="t")["data"][0]["amount"] == (
        "0.00000001"
    )  # never exponent notation
    with pytest.raises(OrderRefused, match="exchangeName"):
        m.create(_order(), signature="t", request_type="DIRECT")


def test_cancel_never_without_an_id_except_the_explicit_cancel_all() -> None:
    one = m.cancel("BTC/USD", "11726203210011", signature="<jwt>")
    assert one == {
        "command": "CANCEL",
        "signature": "<jwt>",
        "channel": "TRADE_PRIVATE",
        "data": [
            {"class": "Order", "globalInstrumentCd": "BTC/USD", "clientOrderId": "11726203210011"}
        ],
    }
    for bad in ("", "  ", None):
        with pytest.raises(ValueError, match="without an order id"):
            m.cancel("BTC/USD", bad, signature="t")  # type: ignore[arg-type]
    every = m.cancel_all_orders("BTC/USD", signature="t")
    assert every["data"] == [{"class": "Order", "globalInstrumentCd": "BTC/USD"}]


def test_modify_shape() -> None:
    msg = m.modify("BTC/USD", "c1", D("101.50"), D("0.002"), signature="t")
    assert msg["command"] == "MODIFY"
    assert msg["data"] == [
        {
            "class": "Order",
            "globalInstrumentCd": "BTC/USD",
            "orderId": "c1",
            "price": "101.5",
            "amount": "0.002",
        }
    ]


def test_auth_errors_are_recognised_by_message() -> None:
    assert is_auth_error("invalid signature: token expired")
    assert is_auth_error("JWT expired")
    assert not is_auth_error("instrument BTC/USD is not subscribed on TRADE_PRIVATE")
