"""Every Paxos message example in the reference parses into the right event.

Samples are copied verbatim from shared/venues/samples (paxos-public.jsonl, paxos-sor.jsonl);
each test names the line it uses.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from framework.errors import FrameError
from framework.events import BookDelta, BookSnapshot, PublicTrade, Ticker, TopOfBook
from framework.venues.paxos.decode import PublicDecoder, SorDecoder

SAMPLES = Path(__file__).parent / "samples"
PUBLIC = (SAMPLES / "paxos-public.jsonl").read_text().splitlines()
SOR = (SAMPLES / "paxos-sor.jsonl").read_text().splitlines()
D = Decimal


def line(lines: list[str], n: int) -> str:
    return lines[n - 1]


def public(markets: set[str] | None = None) -> tuple[PublicDecoder, list[Any]]:
    out: list[Any] = []
    return PublicDecoder(out.append, markets), out


def sor() -> tuple[SorDecoder, list[Any], list[dict]]:
    out: list[Any] = []
    replies: list[dict] = []
    return SorDecoder(out.append, replies.append), out, replies


def test_public_line1_execution_is_a_trade_with_exact_values() -> None:
    dec, out = public()
    dec.executiondata(line(PUBLIC, 1), recv_ns=5)
    (trade,) = out
    assert isinstance(trade, PublicTrade)
    assert (trade.symbol, trade.price, trade.size) == ("BTCUSD", D("24228.75"), D("0.00000412"))
    assert trade.trade_id == "6AJVAX7BTCH8"
    assert trade.venue_ts == 1678733213386000000
    assert trade.recv_ns == 5 and trade.aggressor is None


def test_public_line1_replayed_after_reconnect_is_deduplicated_by_match_number() -> None:
    dec, out = public()
    dec.executiondata(line(PUBLIC, 1), 1)
    dec.epoch = 2  # a reconnect: Paxos sends the last execution again
    dec.executiondata(line(PUBLIC, 1), 2)
    assert len(out) == 1


def test_public_line2_snapshot_with_boolean_final() -> None:
    dec, out = public()
    dec.marketdata(line(PUBLIC, 2), 1)
    (snap,) = out
    assert isinstance(snap, BookSnapshot) and snap.final
    assert snap.bids == ((D("19994.25"), D("0.7755")), (D("19993.75"), D("0.83676985")))
    assert snap.asks == ((D("19994.5"), D("0.97548541")), (D("19996"), D("1.135")))


def test_public_lines3_4_updates_buy_to_bids_sell_zero_removes() -> None:
    dec, out = public()
    dec.marketdata(line(PUBLIC, 3), 1)
    dec.marketdata(line(PUBLIC, 4), 2)
    buy, sell = out
    assert isinstance(buy, BookDelta) and buy.bids == ((D("19958.5"), D("0.62649999")),)
    assert buy.asks == ()
    assert sell.asks == ((D("20115.25"), D(0)),) and sell.bids == ()


def test_an_error_downstream_of_an_update_does_not_decode_it_twice() -> None:
    # the fast path catches KeyError/TypeError to hand a frame to the careful path; an error
    # raised by what the event is emitted to is not the frame's and must not re-emit it
    emitted: list[Any] = []

    def emit(event: Any) -> None:
        emitted.append(event)
        raise KeyError("downstream")

    dec = PublicDecoder(emit, None)
    with pytest.raises(KeyError, match="downstream"):
        dec.marketdata(line(PUBLIC, 3), 1)
    assert len(emitted) == 1


@pytest.mark.parametrize("n", [5, 6, 7, 9])
def test_public_stablecoin_lines_are_tickers_with_nanosecond_time(n: int) -> None:
    dec, out = public()
    dec.stablecoin(line(PUBLIC, n), 1)
    (tick,) = out
    assert isinstance(tick, Ticker) and tick.symbol == "USDCUSD"
    assert tick.last in (D("1.0001"), D("1.0000"))
    assert tick.venue_ts is not None and tick.venue_ts % 1_000_000 != 0  # ns kept


def test_public_stablecoin_line5_exact_timestamp() -> None:
    dec, out = public()
    dec.stablecoin(line(PUBLIC, 5), 1)
    assert out[0].venue_ts == 1730743869042391267


def test_public_line8_old_doc_snapshot_with_string_final_and_trailing_zeros() -> None:
    dec, out = public()
    dec.marketdata(line(PUBLIC, 8), 1)
    (snap,) = out
    assert snap.final is True
    assert snap.asks == ((D("9248"), D("0.87140241")),)  # "9248.00" compares as 9248


def test_public_line10_error_frame_is_a_clear_frame_error() -> None:
    dec, _ = public()
    with pytest.raises(FrameError, match="Not Found"):
        dec.marketdata(line(PUBLIC, 10), 1)


def test_public_filter_skips_other_markets() -> None:
    dec, out = public({"ETHUSD"})
    dec.marketdata(line(PUBLIC, 3), 1)
    assert out == [] and dec.skipped_markets == 1


def test_snapshot_fragments_carry_final_false() -> None:
    dec, out = public()
    dec.marketdata(
        '{"type":"SNAPSHOT","market":"BTCUSD","bids":[],"asks":[],"final_snapshot":false}', 1
    )
    assert out[0].final is False


@pytest.mark.parametrize(
    "frame, reason",
    [
        ("{not json", "malformed JSON"),
        ("[1,2]", "not a JSON object"),
        (
            '{"type":"UPDATE","market":"BTCUSD","side":"BUY","price":19958.5,"amount":"1"}',
            "expected a decimal string",
        ),
        (
            '{"type":"UPDATE","market":"BTCUSD","side":"BUY","price":"abc","amount":"1"}',
            "not a number",
        ),
        ('{"type":"UPDATE","market":"BTCUSD","side":"HOLD","price":"1","amount":"1"}', "side"),
        (
            '{"type":"UPDATE","market":"BTCUSD","side":"BUY","price":"NaN","amount":"1"}',
            "not finite",
        ),
        ('{"type":"UPDATE","market":"BTCUSD","side":"BUY","price":"-1","amount":"1"}', "negative"),
        ('{"type":"UPDATE","market":"BTCUSD","side":"BUY","price":"0","amount":"1"}', "zero price"),
        (
            '{"type":"UPDATE","market":"BTCUSD","side":"BUY","price":"1e40","amount":"1"}',
            "out of range",
        ),
        ('{"type":"UPDATE","market":"BTCUSD","side":"BUY","price":null,"amount":"1"}', "price"),
        ('{"type":"DELTA","market":"BTCUSD"}', "unknown type"),
        ('{"type":"UPDATE","side":"BUY","price":"1","amount":"1"}', "missing market"),
        (
            '{"type":"SNAPSHOT","market":"BTCUSD","bids":[],"asks":[],"final_snapshot":"maybe"}',
            "final_snapshot",
        ),
    ],
)
def test_bad_public_frames_raise_frame_error(frame: str, reason: str) -> None:
    dec, out = public()
    with pytest.raises(FrameError, match=reason):
        dec.marketdata(frame, 1)
    assert out == []


def test_sor_line7_update_with_both_sides_and_millisecond_time() -> None:
    dec, out, _ = sor()
    dec.decode(line(SOR, 7), 1)
    (delta,) = out
    assert isinstance(delta, BookDelta)
    assert delta.bids == ((D("50000.00"), D("1.5")),)
    assert delta.asks == ((D("50100.00"), D("2.0")),)
    assert delta.venue_ts == 1705314601456000000


def test_sor_line8_top_of_book() -> None:
    dec, out, _ = sor()
    dec.decode(line(SOR, 8), 1)
    (tob,) = out
    assert isinstance(tob, TopOfBook)
    assert tob.bid == (D("50000"), D("1.5")) and tob.ask == (D("50100"), D("2"))
    assert tob.venue_ts == 1705314600123456789


@pytest.mark.parametrize("n", [9, 24])
def test_sor_execution_lines_are_trades_without_id(n: int) -> None:
    dec, out, _ = sor()
    dec.decode(line(SOR, n), 1)
    (trade,) = out
    assert isinstance(trade, PublicTrade) and trade.trade_id is None
    assert (trade.price, trade.size) == (D("50000"), D("0.5"))


def test_sor_line10_heartbeat_counts_liveness_and_emits_nothing() -> None:
    dec, out, _ = sor()
    dec.decode(line(SOR, 10), 1)
    assert out == [] and dec.heartbeats == 1
    assert dec.last_heartbeat_ns == 1705314600123456789


def test_sor_lines14_15_snapshot_then_update_nanosecond_times() -> None:
    dec, out, _ = sor()
    dec.decode(line(SOR, 14), 1)
    dec.decode(line(SOR, 15), 2)
    snap, delta = out
    assert isinstance(snap, BookSnapshot) and snap.venue_ts == 1705314600123456789
    assert len(snap.bids) == 2 and len(snap.asks) == 2
    assert delta.venue_ts == 1705314601456789012 and delta.venue_ts > snap.venue_ts
    assert delta.bids == ((D("50000.00"), D("0")),)


@pytest.mark.parametrize("n", [2, 4, 6, 12, 13, 17, 18, 20, 22, 23, 27, 29, 30, 32, 33, 34, 35, 36])
def test_sor_replies_go_to_the_reply_handler_in_old_and_new_formats(n: int) -> None:
    dec, out, replies = sor()
    dec.decode(line(SOR, n), 1)
    assert (
        out == []
        and len(replies) == 1
        and replies[0]["type"] in ("subscribe", "unsubscribe", "subscription_list")
    )


def test_sor_unknown_channel_and_bad_payload_raise() -> None:
    dec, _, _ = sor()
    with pytest.raises(FrameError, match="unknown channel"):
        dec.decode('{"channel":"orders","payload":{}}', 1)
    with pytest.raises(FrameError, match="payload"):
        dec.decode('{"channel":"market_data","payload":[]}', 1)
    with pytest.raises(FrameError, match="time"):
        dec.decode(
            '{"channel":"market_data","payload":{"market":"BTCUSD","type":"UPDATE",'
            '"time":"yesterday","bids":[]}}',
            1,
        )


def test_mistyped_market_on_the_fast_path_is_a_frame_error() -> None:
    dec, out = public()
    with pytest.raises(FrameError, match="missing market"):
        dec.marketdata('{"type":"UPDATE","market":[],"side":"BUY","price":"1","amount":"1"}', 1)
    assert out == []


def test_sor_reply_with_malformed_channels_is_a_frame_error() -> None:
    from framework.venues.paxos.streams import SorStream

    stream = SorStream(
        "ws://127.0.0.1:1", None, ["BTCUSD"], book=True, top_of_book=False, executions=False
    )  # type: ignore[arg-type]
    with pytest.raises(FrameError, match="channels"):
        stream.decode('{"type":"subscribe","channels":[1]}', 1)


# The typed (msgspec) fast path must never accept what the careful path refuses, nor turn a frame
# into anything else: for each frame, both give the same events, the same error, the same count.
_UPD = '{"type":"UPDATE","market":"BTCUSD","side":"SELL","price":"%s","amount":"%s"}'
_TRD = '{"market":"%s","price":"%s","amount":"%s","executed_at":"%s","match_number":"%s"}'
FAST_PATH_FRAMES = [
    _UPD % ("19958.5", "0.25"),
    _UPD % ("19958.5", "0"),
    _UPD % ("19958.5", "-0.1"),
    _UPD % ("19958.5", "NaN"),
    _UPD % ("19958.5", "sNaN"),
    _UPD % ("19958.5", "Infinity"),
    _UPD % ("19958.5", "1e30"),
    _UPD % ("-1", "1"),
    _UPD % ("Infinity", "1"),
    _UPD % ("1,5", "1"),
    _UPD % (" 2 ", "1"),
    '{"type":"UPDATE","market":"ETHUSD","side":"BUY","price":"1","amount":"1","extra":[1]}',
    '{"type":"UPDATE","type":"SNAPSHOT","market":"BTCUSD","side":"BUY","price":"1","amount":"1"}',
    '{"type":"SNAPSHOT","market":"BTCUSD","side":"BUY","price":"1","amount":"1"}',
    '{"type":"UPDATE","market":"BTCUSD","side":"buy","price":"1","amount":"1"}',
    '{"type":"UPDATE","market":"BTCUSD","side":"BUY","price":"1","amount":1}',
    '{"type":"UPDATE","market":"BTCUSD","side":"BUY","price":"1"}',
    '{"market":"BTCUSD","side":"BUY","price":"1","amount":"1"}',
    "not json",
]
FAST_PATH_TRADES = [
    _TRD % ("BTCUSD", "60000.25", "0.5", "2026-11-18T11:06:50.000Z", "A1"),
    _TRD % ("BTCUSD", "60000.25", "0.5", "2026-11-18T11:06:50.000Z", "A1"),  # replayed
    _TRD % ("BTCUSD", "-1", "0.5", "2026-11-18T11:06:50.1Z", "A2"),  # finite: careful takes it
    _TRD % ("BTCUSD", "1", "-0.5", "2026-11-18T11:06:50Z", "A3"),
    _TRD % ("BTCUSD", "1", "1e31", "2026-11-18T11:06:50.123456789Z", "A4"),
    _TRD % ("BTCUSD", "NaN", "1", "2026-11-18T11:06:50Z", "A5"),
    _TRD % ("BTCUSD", "1", "1", "2026-11-18T11:06:5", "A6"),
    _TRD % ("BTCUSD", "1", "1", "2026-11-18T11:06:50.1234567890Z", "A7"),
    _TRD % ("BTCUSD", "1", "1", "2026-11-18T11:06:50Z", ""),
    _TRD % ("ETHUSD", "1", "1", "2026-11-18T11:06:50Z", "A8"),  # another market
    _TRD % ("ETHUSD", "NaN", "1", "2026-11-18T11:06:50Z", "A9"),
    '{"market":"BTCUSD","price":1,"amount":"1","executed_at":"2026-11-18T11:06:50Z",'
    '"match_number":"B1"}',
    '{"error":"nope"}',
]


def _outcomes(decode: Any, frames: list[str], out: list[Any]) -> list[Any]:
    seen = []
    for frame in frames:
        before = len(out)
        try:
            decode(frame, 7)
            seen.append(("ok", out[before:]))
        except FrameError as exc:
            seen.append(("error", str(exc), out[before:]))
    return seen


@pytest.mark.parametrize("markets", [None, {"BTCUSD"}])
def test_the_typed_fast_path_decodes_exactly_as_the_careful_path(markets: Any) -> None:
    fast, fast_out = public(markets)
    careful, careful_out = public(markets)
    for frames, name in ((FAST_PATH_FRAMES, "marketdata"), (FAST_PATH_TRADES, "executiondata")):
        assert _outcomes(getattr(fast, name), frames, fast_out) == _outcomes(
            getattr(careful, "_" + name), frames, careful_out
        )
    assert fast.skipped_markets == careful.skipped_markets
    assert any(isinstance(e, BookDelta) for e in fast_out)
    assert any(isinstance(e, PublicTrade) for e in fast_out)


@pytest.mark.parametrize(
    ("field", "value"),
    [("price", "-24228.75"), ("price", "0"), ("amount", "-0.5"), ("amount", "0")],
)
def test_a_trade_with_a_price_or_size_not_above_zero_is_a_bad_frame(field: str, value: str) -> None:
    """A negative or zero trade is not a trade, on both feeds (the line-1 and line-9 samples
    with one field changed); on the public feed its match number is not spent either."""
    import orjson

    pub, out = public()
    msg = orjson.loads(line(PUBLIC, 1))
    with pytest.raises(FrameError, match=field):
        pub.executiondata(orjson.dumps({**msg, field: value}), 1)
    pub.executiondata(line(PUBLIC, 1), 2)
    assert len(out) == 1  # the good frame with the same match number still counts
    sor_dec, sor_out, _ = sor()
    msg = orjson.loads(line(SOR, 9))
    msg["payload"] = {**msg["payload"], field: value}
    with pytest.raises(FrameError, match=field):
        sor_dec.decode(orjson.dumps(msg), 1)
    assert sor_out == []
