"""Fuzzing (hypothesis): arbitrary bytes, JSON and mutated venue frames against every venue's
decoders and the session loop, and arbitrary config against config loading.

Properties: a decoder either decodes or raises FrameError (the session counts and skips it);
a frame that raises emitted nothing (no half-applied frame); such frames leave a book exactly as
the valid frames alone would; the session loop never raises, whatever arrives; config loading
either succeeds or raises ConfigError naming the problem.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import orjson
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framework.data.book import OrderBook
from framework.errors import AuthError, ConfigError, FrameError
from framework.events import BookDelta, BookSnapshot
from framework.testing import chaos_cases
from framework.transport.session import Reconnect, WsSession
from framework.venues import load_config as load
from framework.venues import parse_config as parse

CASES = chaos_cases()
FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,  # CI runs the same examples every time
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.sampled_from(
        [
            "",
            "0",
            "-1",
            "1e400",
            "NaN",
            "Infinity",
            "BUY",
            "SELL",
            "UPDATE",
            "SNAPSHOT",
            "BTCUSD",
            "true",
            "2024-13-45T99:99:99Z",
            "1" * 60,
        ]
    ),
)
json_values = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _paths(item, (*prefix, i))
    return out


@st.composite
def mutated(draw: Any, sample: str) -> str:
    """A valid frame with one part replaced, removed, or the text cut or spliced."""
    how = draw(st.sampled_from(["replace", "delete", "cut", "splice"]))
    if how in ("cut", "splice"):
        at = draw(st.integers(0, len(sample)))
        if how == "cut":
            return sample[:at]
        return sample[:at] + draw(st.text(max_size=8)) + sample[at:]
    doc = copy.deepcopy(orjson.loads(sample))
    path = draw(st.sampled_from(_paths(doc)[1:]))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if how == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(json_values)
    return orjson.dumps(doc).decode()


def frames_for(venue: str, name: str) -> st.SearchStrategy:
    samples = CASES[venue].samples.get(name, ())
    options = [
        st.binary(max_size=64),
        st.text(max_size=64),
        json_values.map(lambda v: orjson.dumps(v).decode()),
    ]
    options += [mutated(sample) for sample in samples]
    options += [st.sampled_from(samples)] if samples else []
    return st.one_of(options)


def decoder_params() -> list[Any]:
    return [
        pytest.param(venue, name, id=f"{venue}-{name}")
        for venue in sorted(CASES)
        for name in CASES[venue].streams()
    ]


@pytest.mark.parametrize(("venue", "name"), decoder_params())
def test_decoder_decodes_or_raises_frame_error_and_never_half_emits(venue: str, name: str) -> None:
    @FUZZ
    @given(frames=st.lists(frames_for(venue, name), min_size=1, max_size=6))
    def check(frames: list[Any]) -> None:
        stream = CASES[venue].streams()[name]
        for frame in frames:
            emitted: list[Any] = []
            stream.emit = emitted.append
            try:
                stream.decode(frame, 1)
            except AuthError:
                pass  # the venue refused our credentials in-band: the session backs off
            except FrameError:
                # the contract: the session counts the frame as bad and skips it
                assert emitted == [], "a refused frame must not emit anything"
            # anything else propagates: a decoder bug, reported by hypothesis with its frame

    check()


@pytest.mark.parametrize(("venue", "name"), decoder_params())
@pytest.mark.parametrize(
    "frame", [b"\x80", b'{"a":"\xff"}', b"\xef\xbb"], ids=["lone", "in-json", "cut"]
)
def test_a_non_utf8_binary_frame_is_a_frame_error(venue: str, name: str, frame: bytes) -> None:
    # regression: the Open Trade decoder raised UnicodeDecodeError on b"\x80"
    stream = CASES[venue].streams()[name]
    emitted: list[Any] = []
    stream.emit = emitted.append
    with pytest.raises(FrameError):
        stream.decode(frame, 1)
    assert emitted == []


def book_decoder_params() -> list[Any]:
    return [
        p
        for p in decoder_params()
        if any('"SNAPSHOT"' in s for s in CASES[p.values[0]].samples.get(p.values[1], ()))
    ]


@pytest.mark.parametrize(("venue", "name"), book_decoder_params())
def test_refused_frames_leave_the_book_as_the_valid_frames_alone(venue: str, name: str) -> None:
    samples = CASES[venue].samples.get(name, ())

    @FUZZ
    @given(junk=st.lists(frames_for(venue, name), max_size=8), order=st.randoms())
    def check(junk: list[Any], order: Any) -> None:
        def book_from(frames: list[Any]) -> tuple:
            books: dict[str, OrderBook] = {}

            def route(event: Any) -> None:
                if isinstance(event, BookSnapshot | BookDelta):
                    book = books.setdefault(event.symbol, OrderBook(venue, event.symbol))
                    if isinstance(event, BookSnapshot):
                        book.apply_snapshot(event)
                    else:
                        book.apply_delta(event)

            stream = CASES[venue].streams()[name]
            stream.emit = route
            for frame in frames:
                with contextlib.suppress(Exception):
                    stream.decode(frame, 1)
            return tuple((s, b.state, b.levels_unchecked()) for s, b in sorted(books.items()))

        def refused(frame: Any) -> bool:
            stream = CASES[venue].streams()[name]
            try:
                stream.decode(frame, 1)
            except Exception:
                return True
            return False

        bad = [f for f in junk if refused(f)]
        valid = list(samples)
        mixed = valid + bad
        order.shuffle(mixed)
        # keep the valid frames in their order; the refused ones anywhere between
        it = iter(valid)
        mixed = [next(it) if f in valid and not isinstance(f, bytes) else f for f in mixed]
        assert book_from(mixed) == book_from(valid)

    check()


class _NullConnection:
    """An open socket that takes what a stream sends (a resync request) and drops it."""

    async def send(self, message: Any) -> None:
        return None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        return None


@pytest.mark.parametrize(("venue", "name"), decoder_params())
def test_session_loop_survives_any_frame(venue: str, name: str) -> None:
    @FUZZ
    @given(frames=st.lists(frames_for(venue, name), min_size=1, max_size=20))
    def check(frames: list[Any]) -> None:
        stream = CASES[venue].streams()[name]
        session = WsSession(stream, on_status=lambda s: None, on_books_lost=lambda s, r: None)

        async def main() -> None:
            send, recv = trio.open_memory_channel[tuple[Any, int]](len(frames))
            for frame in frames:
                send.send_nowait((frame, 1))
            async with trio.open_nursery() as nursery:

                async def process() -> None:
                    try:
                        await session._process(recv, _NullConnection())
                    except AuthError:
                        session.counts["auth"] += 1  # handled by `run`: back off, reconnect
                    except Reconnect:
                        # a bad frame on a book stream: its books resync, here by reconnecting
                        session.counts["reconnect"] += 1
                    nursery.cancel_scope.cancel()

                nursery.start_soon(process)
                with trio.fail_after(10):
                    await session.wait_frames(len(frames))
                nursery.cancel_scope.cancel()

        trio.run(main)
        assert (
            session.frames_received == len(frames)
            or session.counts["auth"]
            or session.counts["reconnect"] == 1
        )

    check()


# --- config --------------------------------------------------------------------------------------

VALID = {
    "botrun": {"mode": "paper", "duration_s": 1, "journal_dir": ".botrun"},
    "risk": {"max_order_notional": "5000", "max_open_orders": 20},
    "paper": {"maker_fee_rate": "0.0002", "balances": {"USD": "1000"}},
    "strategy": {"params": {"size": "0.01"}},
    "venues": {"paxos": {"endpoint": "sim", "markets": ["BTCUSD"], "sim_seed": 1}},
}


@FUZZ
@given(raw=st.dictionaries(st.text(max_size=10), json_values, max_size=6))
def test_arbitrary_config_tables_load_or_raise_config_error(raw: dict) -> None:
    try:
        parse(raw)
    except ConfigError as exc:
        assert str(exc)


@FUZZ
@given(data=st.data())
def test_mutated_valid_config_loads_or_names_the_problem(data: Any) -> None:
    doc = copy.deepcopy(VALID)
    path = data.draw(st.sampled_from(_paths(doc)[1:]))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if data.draw(st.booleans()):
        parent[path[-1]] = data.draw(json_values)
    else:
        del parent[path[-1]]
    try:
        parse(doc)
    except ConfigError as exc:
        assert str(exc)


@FUZZ
@given(content=st.binary(max_size=300))
def test_arbitrary_config_file_bytes_load_or_raise_config_error(
    content: bytes, tmp_path_factory: Any
) -> None:
    path = tmp_path_factory.mktemp("cfg") / "config.toml"
    path.write_bytes(content)
    try:
        load(path)
    except ConfigError as exc:
        assert str(exc)
