"""The depth book botrun holds equals the Roxom simulator's book: across seeds, reconnects, gaps.

The real adapter against the simulator over loopback sockets, with a signed handshake. The
crowd is stepped by the test (rate 0); each comparison waits until the session has processed
every frame the simulator queued for it.
"""

from __future__ import annotations

import pytest

from framework.events import BookState, BookStatus, PublicTrade, Ticker, TopOfBook
from framework.venues.roxom.auth import new_private_key_pem
from tests.helpers import assert_books_equal, config, drain, running, session, until

MARKETS = ["US500-BTC", "GOLD-BTC"]


def roxom(seed: int, **extra: object) -> dict:
    return {
        "roxom": {
            "endpoint": "sim",
            "sim_seed": seed,
            "sim_rate_hz": 0,
            "markets": MARKETS,
            **extra,
        }
    }


async def all_synced(engine) -> None:
    await until(
        engine, lambda: all(engine.book("roxom", m).is_synced for m in MARKETS), "books synced"
    )


def step(sim, n: int) -> None:
    for symbol in MARKETS:
        sim.markets[symbol].steps(n)


@pytest.mark.parametrize("seed", range(5))
async def test_book_equals_simulator_across_rounds_and_reconnects(seed: int) -> None:
    async with running(config(roxom(seed))) as engine:
        sim = engine.simulators["roxom"].simulator
        ws = session(engine, "ws")
        await all_synced(engine)
        for round_ in range(6):
            step(sim, 150)
            await drain(engine, ws)
            assert_books_equal(engine, "roxom", MARKETS)
            if round_ % 2 == 1:
                epoch = ws.epoch
                sim.app.abort_all_ws() if round_ == 3 else sim.app.close_all_ws(1012)
                await until(engine, lambda e=epoch: ws.epoch > e, "reconnected")
                step(sim, 50)  # the market moves on while we resubscribe
                await all_synced(engine)
        assert ws.counts["bad_frames"] == 0 and ws.stream.errors == []


async def test_all_market_channels_arrive_as_events() -> None:
    cfg = config(roxom(4, channels=["level1", "trade", "depth", "ticker"], markets=["GOLD-BTC"]))
    seen: dict[type, list] = {TopOfBook: [], PublicTrade: [], Ticker: []}
    async with running(cfg) as engine:
        for kind, items in seen.items():
            engine.bus.subscribe(kind, items.append, owner="t")
        sim = engine.simulators["roxom"].simulator
        ws = session(engine, "ws")
        await until(engine, lambda: engine.book("roxom", "GOLD-BTC").is_synced, "synced")
        sim.markets["GOLD-BTC"].steps(300)
        await drain(engine, ws)
        await until(engine, lambda: bool(seen[Ticker]), "a ticker")  # once a second
        bids, asks = sim.engine.book("GOLD-BTC", 1)
        assert seen[TopOfBook][-1].bid == bids[0] and seen[TopOfBook][-1].ask == asks[0]
        trades = seen[PublicTrade]
        assert trades and len({t.trade_id for t in trades}) == len(trades)
        # every aggregate is one taker event: its volume is the taker's matched quantity
        assert sum(t.size for t in trades) == sum(
            f.quantity for f in sim.engine.fills(symbol="GOLD-BTC")
        )
        assert seen[Ticker][-1].funding_rate is not None


async def test_crossed_book_resubscribes_on_the_open_connection() -> None:
    async with running(config(roxom(2))) as engine:
        sim = engine.simulators["roxom"].simulator
        ws = session(engine, "ws")
        await all_synced(engine)
        statuses: list[BookState] = []
        engine.bus.subscribe(BookStatus, lambda e: statuses.append(e.state), owner="t")
        epoch = ws.epoch
        sim.send_crossed_delta("US500-BTC")  # a gap the client can only see as a crossed book
        await until(engine, lambda: BookState.UNSYNCED in statuses, "unsynced")
        await until(engine, lambda: engine.book("roxom", "US500-BTC").is_synced, "resynced")
        step(sim, 100)
        await drain(engine, ws)
        assert_books_equal(engine, "roxom", MARKETS)
        assert ws.epoch == epoch and ws.counts["resyncs"] == 1


async def test_delta_where_the_snapshot_was_due_triggers_a_resubscribe() -> None:
    async with running(config(roxom(3))) as engine:
        sim = engine.simulators["roxom"].simulator
        ws = session(engine, "ws")
        await all_synced(engine)
        sim.skip_snapshot.add("GOLD-BTC")  # the next subscription acks but sends no snapshot
        epoch = ws.epoch
        sim.app.close_all_ws(1012)
        decoder = ws.stream.decoder
        # (the GOLD-BTC ticker snapshot right after the ack is the bus event that wakes this)
        await until(
            engine,
            lambda: ws.epoch > epoch and decoder.depth.get("GOLD-BTC") == "acked",
            "subscribed again, no snapshot",
        )
        step(sim, 40)  # deltas for GOLD-BTC arrive after its ack: the snapshot went missing
        await all_synced(engine)
        step(sim, 100)
        await drain(engine, ws)
        assert_books_equal(engine, "roxom", MARKETS)
        assert ws.stream.decoder.gaps == 1 and ws.counts["resyncs"] == 1


@pytest.mark.parametrize("in_band", [False, True], ids=["refused-upgrade", "600010"])
async def test_refused_signature_backs_off_instead_of_spinning(in_band: bool) -> None:
    """[DOC] "authentication is done before connection upgrade" (the simulator's default: 401);
    the same page lists error 600010, the in-band form (an option). Both end in the long
    auth back-off, not a reconnect storm."""
    async with running(config(roxom(1))) as engine:
        sim = engine.simulators["roxom"].simulator
        sim.auth_error_in_band = in_band
        ws = session(engine, "ws")
        await all_synced(engine)
        sim.replace_key(new_private_key_pem())  # our key no longer verifies
        sim.app.close_all_ws(1012)
        # the upgrade form: refused once more with fresh credentials, then the auth back-off
        key, times = ("auth_errors", 1) if in_band else ("handshake_rejected", 2)
        await until(engine, lambda: ws.counts[key] >= times, "auth refused")
        assert ws.counts[key] == times
        assert ws.last_delay >= ws.auth_backoff_s
        assert ws.counts["bad_frames"] == 0


async def test_hmac_scheme_connects_and_syncs() -> None:
    async with running(config(roxom(6, auth_scheme="hmac"))) as engine:
        await all_synced(engine)
        sim = engine.simulators["roxom"].simulator
        step(sim, 50)
        await drain(engine, session(engine, "ws"))
        assert_books_equal(engine, "roxom", MARKETS)


async def test_bad_frames_from_the_venue_are_skipped_and_nothing_is_lost() -> None:
    async with running(config(roxom(8))) as engine:
        sim = engine.simulators["roxom"].simulator
        ws = session(engine, "ws")
        await all_synced(engine)
        for junk in ("{oops", "[]", '{"topic":"depth.US500-BTC","type":"delta","data":{}}'):
            sim.broadcast(junk)
        step(sim, 100)
        await drain(engine, ws)
        assert ws.counts["bad_frames"] == 3
        # a skipped frame may have been a book update: the books resync (issue #15, item 7)
        await all_synced(engine)
        ws = session(engine, "ws")
        await drain(engine, ws)
        assert_books_equal(engine, "roxom", MARKETS)
