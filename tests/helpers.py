"""Shared test helpers: run an Engine against embedded simulators, wait on conditions via events."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

from framework.engine import Engine
from framework.strategy import Strategy
from framework.transport.session import WsSession
from framework.venues import parse_config

# A guard against hangs only: every wait below is released by an event, not by time passing.
HANG_GUARD_S = 20


def config(venues: dict[str, Any], **sections: Any) -> Any:
    raw: dict[str, Any] = {"venues": venues}
    raw.update(sections)
    return parse_config(raw)


@asynccontextmanager
async def running(
    cfg: Any, strategies: list[Strategy] | None = None, *, journal_path: str | None = None
) -> AsyncIterator[Engine]:
    if journal_path is None and cfg.botrun.journal_dir == ".botrun":
        # not the working directory's .botrun/: a test's orders would outlive it there and meet
        # a later sandbox run (or test) as orphans; a test that restarts on a journal names one
        journal_path = ":memory:"
    engine = Engine(cfg, strategies or [], journal_path=journal_path)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(engine.run, 0)
        with trio.fail_after(HANG_GUARD_S):
            await engine.started.wait()
        try:
            yield engine
        finally:
            nursery.cancel_scope.cancel()


async def until(engine: Engine, predicate: Callable[[], bool], what: str = "") -> None:
    """Wait until `predicate()` holds, re-checking after every event the engine publishes."""
    if predicate():
        return
    done = trio.Event()

    def check(_: object) -> None:
        if predicate():
            done.set()

    sub = engine.bus.subscribe(object, check, owner="test")
    try:
        with trio.fail_after(HANG_GUARD_S):
            await done.wait()
    except trio.TooSlowError:
        raise AssertionError(f"condition never held: {what}") from None
    finally:
        engine.bus.unsubscribe(sub)


def session(engine: Engine, name: str) -> WsSession:
    (found,) = [s for s in engine.sessions if s.stream.name == name]
    return found


async def drain(engine: Engine, sess: WsSession) -> None:
    """Wait until the session has processed every frame the simulator queued on its connection."""
    from framework.testing import server_connection

    sim = next(iter(engine.simulators.values())).simulator
    conn = server_connection(sess, sim.app)
    assert conn is not None and not conn.closed, [c.path for c in sim.app.ws_connections]
    with trio.fail_after(HANG_GUARD_S):
        await sess.wait_frames(conn.enqueued)


def assert_books_equal(engine: Engine, venue: str, markets: list[str]) -> None:
    """Every book is SYNCED and level for level what the venue simulator's engine holds."""
    from framework.events import BookState

    sim = engine.simulators[venue].simulator
    for market in markets:
        book = engine.book(venue, market)
        assert book.state is BookState.SYNCED, (market, book.unsync_reason)
        bids, asks = sim.engine.book(market)
        assert book.bids() == bids, market
        assert book.asks() == asks, market
