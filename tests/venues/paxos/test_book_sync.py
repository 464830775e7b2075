"""The book botrun holds equals the simulator's true book: across seeds, disconnects and resyncs.

Real adapters against the Paxos simulator over loopback sockets. The synthetic market is stepped
by the test (rate 0), so each round is deterministic; the test waits for the session to have
processed every frame the simulator queued, then compares.
"""

from __future__ import annotations

import pytest

from framework.events import BookState
from tests.helpers import assert_books_equal, config, drain, running, session, until

MARKETS = ["BTCUSD", "ETHUSD"]


def paxos(seed: int, **extra: object) -> dict:
    return {
        "paxos": {
            "endpoint": "sim",
            "sim_seed": seed,
            "sim_rate_hz": 0,
            "markets": MARKETS,
            "trades": False,
            **extra,
        }
    }


@pytest.mark.parametrize("seed", range(6))
async def test_public_book_equals_simulator_across_rounds_and_reconnects(seed: int) -> None:
    async with running(config(paxos(seed))) as engine:
        sim = engine.simulators["paxos"].simulator
        md = session(engine, "marketdata")
        await until(
            engine, lambda: all(engine.book("paxos", m).is_synced for m in MARKETS), "books synced"
        )
        for round_ in range(6):
            for crowd in sim.markets.values():
                crowd.steps(150)
            await drain(engine, md)
            assert_books_equal(engine, "paxos", MARKETS)
            if round_ % 2 == 1:
                epoch = md.epoch
                # the venue drops us; meanwhile the market moves on
                sim.app.abort_all_ws() if round_ == 3 else sim.app.close_all_ws(1012)
                await until(engine, lambda e=epoch: md.epoch > e, "reconnected")
                for crowd in sim.markets.values():
                    crowd.steps(50)
                await until(
                    engine,
                    lambda: all(engine.book("paxos", m).is_synced for m in MARKETS),
                    "resynced after reconnect",
                )
        assert md.counts["bad_frames"] == 0


async def test_book_reads_refused_while_disconnected() -> None:
    async with running(config(paxos(3))) as engine:
        sim = engine.simulators["paxos"].simulator
        md = session(engine, "marketdata")
        book = engine.book("paxos", "BTCUSD")
        await until(engine, lambda: book.is_synced, "synced")
        seen: list[BookState] = []
        from framework.events import BookStatus

        engine.bus.subscribe(BookStatus, lambda e: seen.append(e.state), symbol="BTCUSD", owner="t")
        epoch = md.epoch
        sim.app.abort_all_ws()
        await until(engine, lambda: md.epoch > epoch and book.is_synced, "resynced")
        # the strategy was told: unsynced on the drop, synced again after the new snapshot
        assert seen[0] is BookState.UNSYNCED and seen[-1] is BookState.SYNCED


async def test_sor_book_with_update_before_snapshot_equals_simulator() -> None:
    cfg = config(paxos(5, book_source="sor", top_of_book=True))
    async with running(cfg) as engine:
        sim = engine.simulators["paxos"].simulator
        sor = session(engine, "sor")
        await until(
            engine,
            lambda: all(engine.book("paxos", m).is_synced for m in MARKETS),
            "sor books synced",
        )
        for _ in range(4):
            for crowd in sim.markets.values():
                crowd.steps(120)
            await drain(engine, sor)
            assert_books_equal(engine, "paxos", MARKETS)
        # a crossed book forces a resync over the open connection (unsubscribe + subscribe)
        book = engine.book("paxos", "BTCUSD")
        book.mark_unsynced("test: pretend a gap")
        engine.router.resync(book)
        for crowd in sim.markets.values():
            crowd.steps(30)  # frames flow so the session acts on the resync request
        await until(engine, lambda: book.is_synced, "resynced in place")
        epoch = sor.epoch
        for crowd in sim.markets.values():
            crowd.steps(60)
        await drain(engine, sor)
        assert_books_equal(engine, "paxos", MARKETS)
        assert sor.epoch == epoch and sor.counts["resyncs"] == 1
        assert sor.counts["bad_frames"] == 0
        assert sor.stream.decoder.heartbeats >= 0


async def test_sor_revoked_token_is_replaced_at_once() -> None:
    cfg = config(paxos(2, book_source="sor"))
    async with running(cfg) as engine:
        sim = engine.simulators["paxos"].simulator
        sor = session(engine, "sor")
        await until(engine, lambda: engine.book("paxos", "BTCUSD").is_synced, "synced")
        fetches = sor.stream._tokens.fetches
        sim.revoke_all_tokens()
        sim.app.close_all_ws(1008)
        # the cached token is refused at the handshake (403): dropped, and one retry at the
        # normal pace with a fresh token gets back in, without the long auth back-off
        await until(
            engine,
            lambda: sor.epoch == 2 and engine.book("paxos", "BTCUSD").is_synced,
            "back with a new token",
        )
        assert sor.counts["handshake_rejected"] == 1
        assert sor.last_delay < sor.auth_backoff_s
        assert sor.stream._tokens.fetches == fetches + 1


async def test_sor_refused_credentials_back_off_instead_of_spinning() -> None:
    cfg = config(paxos(2, book_source="sor"))
    async with running(cfg) as engine:
        sim = engine.simulators["paxos"].simulator
        sor = session(engine, "sor")
        await until(engine, lambda: engine.book("paxos", "BTCUSD").is_synced, "synced")
        sim.rotate_client_secret("rotated")  # our secret no longer gets a token
        sim.revoke_all_tokens()
        sim.app.close_all_ws(1008)
        await until(engine, lambda: sor.counts["auth_errors"] >= 1, "refused")
        # one handshake refusal (cached token), then the token endpoint refuses us: a clear
        # auth error and the long back-off, not a reconnect storm
        assert sor.counts["handshake_rejected"] == 1 and sor.counts["auth_errors"] == 1
        assert sor.last_delay >= sor.auth_backoff_s
        assert sor.epoch == 1
