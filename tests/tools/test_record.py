"""Recording format: round trip, rotation, torn tails, and the session's raw-frame tap."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import trio

from framework.engine import Engine
from framework.errors import ConfigError
from framework.tools.record import (
    BINARY,
    CONN,
    MAGIC,
    META,
    TEXT,
    FrameRecorder,
    RecordError,
    RecordReader,
    RecordResult,
    RecordWriter,
    record,
    record_config,
    recording_files,
)
from framework.venues import parse_config as parse
from tests.helpers import HANG_GUARD_S, config, session

META_IN = {"venues": {"x": {"config": {"markets": ["A"]}, "instruments": []}}}


def frames(n: int) -> list[tuple[str, str, int, str | bytes, int]]:
    out: list[tuple[str, str, int, str | bytes, int]] = []
    for i in range(n):
        stream = "book" if i % 3 else "trades"
        epoch = 1 if i < n // 2 else 2  # a reconnect half way
        payload: str | bytes = f'{{"i":{i},"p":"6000{i % 10}.25"}}'
        if i % 7 == 0:
            payload = bytes([i % 256, 0, 255]) * 3
        out.append(("x", stream, epoch, payload, 1_000_000 + i * 1000))
    return out


def write(path: Path, items: list, **kw) -> RecordWriter:
    writer = RecordWriter(path, META_IN, wall_ns=lambda: 42, **kw)
    for venue, stream, epoch, payload, recv_ns in items:
        writer.frame(venue, stream, epoch, payload, recv_ns, wall_ns=recv_ns + 7)
    writer.close()
    return writer


def replayed(reader: RecordReader) -> list[tuple[str, str, int, str | bytes, int]]:
    conns: dict[int, dict] = {}
    out = []
    for rec in reader.records():
        if rec.kind == CONN:
            conns[rec.conn] = orjson.loads(rec.payload)
        elif rec.kind in (TEXT, BINARY):
            c = conns[rec.conn]
            payload = rec.payload.decode() if rec.kind == TEXT else rec.payload
            assert rec.wall_ns == rec.recv_ns + 7
            out.append((c["venue"], c["stream"], c["epoch"], payload, rec.recv_ns))
    return out


def test_round_trip_text_binary_connections_and_meta(tmp_path: Path) -> None:
    items = frames(500)
    write(tmp_path, items)
    reader = RecordReader(tmp_path)
    assert reader.meta["venues"] == META_IN["venues"]
    assert reader.meta["format"] == 1
    assert replayed(reader) == items
    assert reader.torn_blocks == 0
    kinds = [r.kind for r in RecordReader(tmp_path).records()]
    assert kinds[0] == META
    # a CONN per (stream, epoch): 2 streams x 2 epochs
    assert kinds.count(CONN) == 4


def test_rotation_every_file_stands_alone(tmp_path: Path) -> None:
    items = frames(3000)
    writer = write(tmp_path, items, max_file_bytes=4096, block_bytes=2048)
    files = recording_files(tmp_path)
    assert len(files) > 3 and files == writer.files
    assert replayed(RecordReader(tmp_path)) == items
    # a later file alone: starts with META, names its open connections, and reads
    later = RecordReader(files[2])
    first = next(later.records())
    assert first.kind == META
    alone = replayed(RecordReader(files[2]))
    assert alone and alone == items[items.index(alone[0]) : items.index(alone[0]) + len(alone)]


def test_new_writer_in_same_directory_continues_numbering(tmp_path: Path) -> None:
    write(tmp_path, frames(10))
    write(tmp_path, frames(10))
    names = [p.name for p in recording_files(tmp_path)]
    assert names == ["rec-000001.brec", "rec-000002.brec"]


@pytest.mark.parametrize("cut", [1, 5, 15, 16, 17, 40])
def test_torn_last_block_is_detected_and_skipped(tmp_path: Path, cut: int) -> None:
    items = frames(300)
    # flush after every frame: each frame is its own block
    write(tmp_path, items, flush_interval_s=0.0)
    (path,) = recording_files(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:-cut])  # a crash in the middle of the last write
    reader = RecordReader(tmp_path)
    got = replayed(reader)
    assert got == items[:-1]
    assert reader.torn_blocks == 1


def test_garbage_after_last_block_and_corrupt_last_block(tmp_path: Path) -> None:
    items = frames(50)
    write(tmp_path, items, flush_interval_s=0.0)
    (path,) = recording_files(tmp_path)
    good = path.read_bytes()
    path.write_bytes(good + b"BRB1\x00\x01")
    reader = RecordReader(tmp_path)
    assert replayed(reader) == items and reader.torn_blocks == 1
    corrupt = bytearray(good)
    corrupt[-3] ^= 0xFF  # a flipped byte inside the last block's compressed data
    path.write_bytes(bytes(corrupt))
    reader = RecordReader(tmp_path)
    assert replayed(reader) == items[:-1] and reader.torn_blocks == 1


def test_not_a_recording(tmp_path: Path) -> None:
    bad = tmp_path / "x.brec"
    bad.write_bytes(b"hello world")
    with pytest.raises(RecordError):
        list(RecordReader(bad).records())
    with pytest.raises(RecordError):
        RecordReader(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RecordError):
        RecordReader(empty)
    assert MAGIC.startswith(b"BRREC")


async def test_session_tap_records_exactly_the_frames_decoded(tmp_path: Path) -> None:
    cfg = config({"paxos": {"markets": ["BTCUSD"]}})
    recorder = FrameRecorder(tmp_path)
    engine = Engine(cfg, [])
    engine.frame_tap = recorder.tap
    async with trio.open_nursery() as nursery:
        nursery.start_soon(engine.run, 0)
        with trio.fail_after(HANG_GUARD_S):
            await engine.started.wait()
            recorder.start({"venues": {"paxos": {"config": {}, "instruments": []}}})
            sess = session(engine, "marketdata")
            await sess.wait_frames(30)
        nursery.cancel_scope.cancel()
    recorder.close()
    recorded = [r for r in RecordReader(tmp_path).records() if r.kind == TEXT]
    by_stream = {}
    conns = {
        r.conn: orjson.loads(r.payload)["stream"]
        for r in RecordReader(tmp_path).records()
        if r.kind == CONN
    }
    for r in recorded:
        by_stream[conns[r.conn]] = by_stream.get(conns[r.conn], 0) + 1
    for s in engine.sessions:
        assert by_stream.get(s.stream.name, 0) == s.frames_received
    assert by_stream["marketdata"] >= 30
    # receive stamps are the session's monotonic stamps, in order per stream
    stamps = [r.recv_ns for r in recorded]
    assert all(s > 0 for s in stamps)


def test_session_without_tap_decodes_with_the_stream_decode_itself() -> None:
    # no tap: the hot loop calls the stream's own bound `decode` (no wrapper, no extra call)
    from framework.transport.session import WsSession, _tapped
    from framework.venues.paxos.streams import PublicStream

    stream = PublicStream("ws://127.0.0.1:1", "marketdata", ["BTCUSD"])
    sess = WsSession(stream, on_status=lambda s: None, on_books_lost=lambda s, r: None)
    assert sess.tap is None
    seen: list = []
    wrapped = _tapped(lambda st, f, ns: seen.append((st.name, f, ns)), stream, stream.decode)
    events: list = []
    stream.emit = events.append
    wrapped('{"type":"UPDATE","market":"BTCUSD","side":"BUY","price":"1","amount":"2"}', 5)
    assert seen[0][0] == "marketdata" and seen[0][2] == 5 and len(events) == 1


def test_recordings_are_user_only_whatever_the_umask(tmp_path: Path) -> None:
    import os

    old = os.umask(0)  # the most permissive: anything not asked for explicitly is world-readable
    try:
        out = tmp_path / "rec"
        writer = write(out, frames(3000), max_file_bytes=4096, block_bytes=2048)
    finally:
        os.umask(old)
    assert len(writer.files) > 1
    assert os.stat(out).st_mode & 0o077 == 0
    for path in writer.files:
        assert os.stat(path).st_mode & 0o077 == 0, f"{path.name} readable by others"


# --- `botrun record` as a library -------------------------------------------------------------


def test_record_config_takes_the_venue_alone_in_paper_mode(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text(
        '[botrun]\nmode = "live"\n'
        '[venues.paxos]\nmarkets = ["ETHUSD"]\nsim_seed = 9\n'
        "[venues.roxom]\nenabled = false\n"
    )
    cfg = record_config("paxos", config_path=toml)
    assert list(cfg.venues) == ["paxos"]
    assert cfg.venues["paxos"].markets == ["ETHUSD"] and cfg.venues["paxos"].sim_seed == 9
    assert cfg.botrun.mode == "paper"  # a recording never sends an order, whatever the file says
    assert record_config("paxos", markets=["BTCUSD"], config_path=toml).venues["paxos"].markets == [
        "BTCUSD"
    ]
    # a file that does not configure the venue, or no file: the venue's defaults
    defaults = parse({"venues": {"powertrade": {}}}).venues["powertrade"]
    for path in (toml, tmp_path / "missing.toml", None):
        got = record_config("powertrade", config_path=path)
        assert list(got.venues) == ["powertrade"] and got.venues["powertrade"] == defaults
    bad = tmp_path / "bad.toml"
    bad.write_text('[venues.paxos]\nsim_seed = "many"\n')
    with pytest.raises(ConfigError, match=r"venues\.paxos"):
        record_config("paxos", config_path=bad)


async def test_record_writes_meta_and_frames_until_stopped(tmp_path: Path) -> None:
    cfg = record_config("paxos", markets=["BTCUSD"])
    stop = trio.Event()
    started: list[Engine] = []
    ready = trio.Event()
    results: list[RecordResult] = []

    def on_started(engine: Engine) -> None:
        started.append(engine)
        ready.set()

    async def go() -> None:
        results.append(await record(cfg, tmp_path, stop=stop, on_started=on_started))

    # the guard covers the shutdown too: a `stop` that is not honoured fails instead of hanging
    with trio.fail_after(HANG_GUARD_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(go)
            await ready.wait()
            (engine,) = started
            await session(engine, "marketdata").wait_frames(30)
            stop.set()
    (result,) = results
    assert result.files == recording_files(tmp_path) and result.bytes_written > 0
    reader = RecordReader(tmp_path)
    paxos = reader.meta["venues"]["paxos"]
    assert paxos["config"]["markets"] == ["BTCUSD"]
    assert [i["symbol"] for i in paxos["instruments"]] == ["BTCUSD"]
    assert paxos["streams"] == [s.stream.name for s in engine.sessions]
    recorded = sum(1 for r in reader.records() if r.kind in (TEXT, BINARY))
    assert recorded == result.frames == sum(s.frames_received for s in engine.sessions)
    assert result.frames >= 30
    # the engine shut down as on Ctrl-C and summarised the run
    assert result.summary["mode"] == "paper" and engine.final_summary == result.summary


def _block_offsets(data: bytes) -> list[int]:
    from framework.tools.record import BLOCK_HEADER

    offsets, pos = [], len(MAGIC)
    while pos < len(data):
        offsets.append(pos)
        _magic, _raw, comp_len, _crc = BLOCK_HEADER.unpack_from(data, pos)
        pos += BLOCK_HEADER.size + comp_len
    return offsets


@pytest.mark.parametrize("where", ["magic", "header", "data", "raw length", "raw length high"])
def test_a_damaged_block_is_skipped_and_reading_resumes_at_the_next_good_one(
    tmp_path: Path, where: str
) -> None:
    items = frames(300)
    write(tmp_path, items, flush_interval_s=0.0)  # one frame per block
    (path,) = recording_files(tmp_path)
    data = bytearray(path.read_bytes())
    offsets = _block_offsets(bytes(data))
    victim = offsets[100]  # a block in the middle, holding one frame
    # the raw length is outside the CRC: a flipped high bit claims ~268 MB (the output buffer
    # is sized from it, no larger than the compressed bytes can expand to)
    flip = {
        "magic": victim,
        "header": victim + 9,
        "data": victim + 20,
        "raw length": victim + 4,
        "raw length high": victim + 7,
    }[where]
    data[flip] ^= 0x10
    path.write_bytes(bytes(data))
    reader = RecordReader(tmp_path)
    got = replayed(reader)
    lost = [item for item in items if item not in got]
    assert len(lost) == 1 and len(got) == len(items) - 1  # one frame lost, the rest read
    assert reader.torn_blocks == 0  # damage, not a torn tail
    (damage,) = reader.damaged
    assert damage.offset == victim and damage.skipped_bytes == offsets[101] - victim
    assert damage.frames_lost_estimate == 1
    # wall clock of the frames either side: two frames 1000 ns apart, one lost between
    assert damage.seconds_lost == pytest.approx(2e-6)
    assert "about 1 frames" in damage.describe()


def test_strict_reading_fails_on_damage_but_not_on_a_torn_tail(tmp_path: Path) -> None:
    items = frames(50)
    write(tmp_path, items, flush_interval_s=0.0)
    (path,) = recording_files(tmp_path)
    good = path.read_bytes()
    path.write_bytes(good[:-5])  # torn tail: the normal end of a crashed writer
    assert replayed(RecordReader(tmp_path, strict=True)) == items[:-1]
    data = bytearray(good)
    data[_block_offsets(good)[20] + 20] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(RecordError, match="damaged block at byte"):
        replayed(RecordReader(tmp_path, strict=True))
