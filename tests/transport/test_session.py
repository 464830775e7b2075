"""WsSession over real loopback sockets: bad frames are skipped, silence is noticed, drops heal."""

from __future__ import annotations

from decimal import Decimal
from functools import partial
from typing import Any

import trio
from trio_websocket import WebSocketRequest, serve_websocket

from framework.events import BookDelta, BookSnapshot, VenueState, VenueStatus
from framework.transport.session import Backoff, WsSession
from framework.venues.paxos.streams import PublicStream

GUARD = 20


class ScriptedVenue:
    """A WS server that plays a list of frames to each connection, then waits or goes silent."""

    def __init__(self, scripts: list[list[str]]) -> None:
        self.scripts = scripts
        self.connections = 0
        self.closers: list[trio.Event] = []

    async def handler(self, request: WebSocketRequest) -> None:
        ws = await request.accept()
        script = self.scripts[min(self.connections, len(self.scripts) - 1)]
        self.connections += 1
        closer = trio.Event()
        self.closers.append(closer)
        for frame in script:
            await ws.send_message(frame)
        await closer.wait()
        await ws.aclose(1012)

    async def serve(self, nursery: trio.Nursery) -> int:
        server = await nursery.start(
            partial(serve_websocket, self.handler, "127.0.0.1", 0, ssl_context=None)
        )
        return server.port


SNAP = (
    '{"type":"SNAPSHOT","market":"BTCUSD","bids":[{"price":"100","amount":"1"}],'
    '"asks":[{"price":"101","amount":"2"}],"final_snapshot":true}'
)
UPDATE = '{"type":"UPDATE","market":"BTCUSD","side":"BUY","price":"100.5","amount":"3"}'
BAD = [
    "{not json",
    '{"type":"WHAT","market":"BTCUSD"}',
    '{"type":"UPDATE","market":"BTCUSD","side":"BUY","amount":"1"}',  # price missing
    # a float: mistyped
    '{"type":"UPDATE","market":"BTCUSD","side":"BUY","price":100.5,"amount":"1"}',
    '{"type":"SNAPSHOT","market":"BTCUSD","bids":"x","asks":[],"final_snapshot":true}',
    '{"error":"Not Found"}',
    "",
]


def make_session(port: int, events: list[Any], statuses: list[VenueStatus]) -> WsSession:
    stream = PublicStream(f"ws://127.0.0.1:{port}", "marketdata", ["BTCUSD"])
    stream.emit = events.append
    return WsSession(
        stream,
        on_status=statuses.append,
        on_books_lost=lambda s, r: None,
        backoff=Backoff(base_s=0.01, cap_s=0.05),
    )


async def test_bad_frames_are_counted_and_skipped_and_the_session_stays_up() -> None:
    """On a stream that keeps no book, a bad frame is skipped and nothing else happens."""
    venue = ScriptedVenue([[SNAP, *BAD, UPDATE]])
    events: list[Any] = []
    statuses: list[VenueStatus] = []
    async with trio.open_nursery() as nursery:
        port = await venue.serve(nursery)
        session = make_session(port, events, statuses)
        session.stream.books = lambda: []  # type: ignore[method-assign]
        nursery.start_soon(session.run)
        with trio.fail_after(GUARD):
            await session.wait_frames(len(BAD) + 2)
        assert session.counts["bad_frames"] == len(BAD)
        assert session.epoch == 1 and venue.connections == 1  # no reconnect
        assert [type(e) for e in events] == [BookSnapshot, BookDelta]
        assert events[1].bids == ((Decimal("100.5"), Decimal("3")),)
        nursery.cancel_scope.cancel()


async def test_a_bad_frame_on_a_book_stream_unsyncs_its_books_and_resyncs() -> None:
    """The skipped frame may have been a book update: the book cannot stay SYNCED. Paxos has
    no resync request on an open connection, so the stream reconnects for a new snapshot."""
    venue = ScriptedVenue([[SNAP, "{not json", UPDATE], [SNAP, UPDATE]])
    events: list[Any] = []
    lost: list[str] = []
    statuses = Recorder()
    async with trio.open_nursery() as nursery:
        port = await venue.serve(nursery)
        stream = PublicStream(f"ws://127.0.0.1:{port}", "marketdata", ["BTCUSD"])
        stream.emit = events.append
        session = WsSession(
            stream,
            on_status=statuses.append,
            on_books_lost=lambda s, r: lost.append(r),
            backoff=Backoff(base_s=0.01, cap_s=0.05),
        )
        nursery.start_soon(session.run)
        with trio.fail_after(GUARD):
            await statuses.wait_for(
                lambda st: any(x.epoch == 2 and x.state is VenueState.CONNECTED for x in st)
            )
            await session.wait_frames(2)
        assert session.counts["bad_frames"] == 1 and session.counts["bad_frame_resyncs"] == 1
        assert lost[0].startswith("bad frame")
        assert session.counts["resyncs"] == 1 and venue.connections == 2
        # the frame after the bad one on the first connection was never applied
        assert [type(e) for e in events] == [BookSnapshot, BookSnapshot, BookDelta]
        nursery.cancel_scope.cancel()


async def test_a_bad_frame_on_an_order_stream_asks_for_the_orders() -> None:
    venue = ScriptedVenue([[SNAP, "{not json", UPDATE]])
    gaps: list[str] = []
    async with trio.open_nursery() as nursery:
        port = await venue.serve(nursery)
        stream = PublicStream(f"ws://127.0.0.1:{port}", "marketdata", ["BTCUSD"])
        stream.books = lambda: []  # type: ignore[method-assign]
        stream.reconcile_on_reconnect = True
        session = WsSession(
            stream,
            on_status=lambda s: None,
            on_books_lost=lambda s, r: None,
            on_gap=lambda s: gaps.append(s.name),
        )
        nursery.start_soon(session.run)
        with trio.fail_after(GUARD):
            await session.wait_frames(3)
        assert gaps == ["marketdata"] and session.counts["order_frames_skipped"] == 1
        nursery.cancel_scope.cancel()


async def test_bad_frame_log_names_venue_and_an_excerpt(capsys: Any) -> None:
    from framework import logs

    logs.configure("json", "info")
    long_frame = '{"type":"WHAT","market":"BTCUSD","filler":"' + "x" * 500 + '"}'
    venue = ScriptedVenue([[SNAP, long_frame]])
    async with trio.open_nursery() as nursery:
        port = await venue.serve(nursery)
        session = make_session(port, [], [])
        session.stream.books = lambda: []  # type: ignore[method-assign]  # (no resync)
        nursery.start_soon(session.run)
        with trio.fail_after(GUARD):
            await session.wait_frames(2)
        nursery.cancel_scope.cancel()
    err = capsys.readouterr()
    line = next(ln for ln in (err.out + err.err).splitlines() if "bad frame skipped" in ln)
    assert '"venue": "paxos"' in line and "unknown type 'WHAT'" in line
    assert '"excerpt": "{\\"type\\":\\"WHAT\\"' in line and "x" * 200 not in line


class Recorder(list):
    """A list whose appends wake waiters: wait on a condition without polling."""

    def __init__(self) -> None:
        super().__init__()
        self._changed = trio.Event()

    def append(self, item: Any) -> None:
        super().append(item)
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, predicate: Any) -> None:
        while not predicate(self):
            await self._changed.wait()


async def test_silent_feed_goes_stale_then_reconnects_and_resyncs() -> None:
    # the first connection goes silent after its snapshot; the second sends snapshot + update
    venue = ScriptedVenue([[SNAP], [SNAP, UPDATE]])
    events = Recorder()
    statuses = Recorder()
    async with trio.open_nursery() as nursery:
        port = await venue.serve(nursery)
        session = make_session(port, events, statuses)
        session.stream.stale_after_s = 0.2
        nursery.start_soon(session.run)
        with trio.fail_after(GUARD):
            await events.wait_for(lambda e: len(e) >= 3)
        states = [s.state for s in statuses]
        # connected, silent -> STALE, still silent -> reconnect (DISCONNECTED), connected again
        assert states[:4] == [
            VenueState.CONNECTED,
            VenueState.STALE,
            VenueState.DISCONNECTED,
            VenueState.CONNECTED,
        ]
        assert session.counts["stale"] == 1 and session.counts["disconnects"] == 1
        assert [type(e) for e in events] == [BookSnapshot, BookSnapshot, BookDelta]
        assert events[1].epoch == 2 and session.epoch == 2
        nursery.cancel_scope.cancel()


def test_unencrypted_websocket_only_to_loopback() -> None:
    import pytest

    from framework.transport.session import _refuse_plain_remote

    with pytest.raises(ValueError, match="non-loopback"):
        _refuse_plain_remote("ws://ws.paxos.com/marketdata")
    _refuse_plain_remote("wss://ws.paxos.com/marketdata")
    _refuse_plain_remote("ws://127.0.0.1:9000/marketdata")
    _refuse_plain_remote("ws://localhost:9000/")


async def test_a_frame_above_the_streams_limit_is_counted_and_the_stream_reconnects() -> None:
    """`Stream.max_message_size` is enforced per stream: an oversized frame is refused unread
    (no 50 MB in memory), counted, and the stream connects again (its books resync)."""
    big = '{"type":"UPDATE","filler":"' + "x" * 5000 + '"}'
    venue = ScriptedVenue([[SNAP, big], [SNAP, UPDATE]])
    events: list[Any] = []
    statuses = Recorder()
    async with trio.open_nursery() as nursery:
        port = await venue.serve(nursery)
        session = make_session(port, events, statuses)
        session.stream.max_message_size = 4096
        nursery.start_soon(session.run)
        with trio.fail_after(GUARD):
            await statuses.wait_for(
                lambda st: any(x.epoch == 2 and x.state is VenueState.CONNECTED for x in st)
            )
            await session.wait_frames(2)
        assert session.counts["oversized_frames"] == 1 and session.counts["bad_frames"] == 0
        assert venue.connections == 2
        nursery.cancel_scope.cancel()
