"""Recorded market data: a compact, append-only, crash-safe file format, its writer and reader.

Why this format
---------------
Frames are small (~100 bytes of JSON) and arrive at high rates. Compressing each record alone
would barely shrink them, so records are gathered into *blocks* (≤ 256 KiB raw, or whatever
arrived within `flush_interval_s`) and each block is zlib-compressed (stdlib; JSON frames of a
venue shrink 5-10x) and appended as one write:

    file   = MAGIC (8 bytes: b"BRREC\\x00\\x01\\n") block*
    block  = b"BRB1" raw_len:u32 comp_len:u32 crc32(compressed):u32 compressed
    record = kind:u8 conn:u16 recv_ns:i64 wall_ns:i64 length:u32 payload   (little-endian)

- kind META (1): JSON, first record of every file: format version, and per venue its config
  (`attrs.asdict` of the venue section: env var *names*, never secrets) and its instruments, so a
  backtest needs no network to know ticks, lots and which streams to rebuild.
- kind CONN (2): JSON `{"venue", "stream", "epoch"}` defining connection id `conn` — one per
  stream connection (a reconnect is a new epoch and a new id, so replay unsyncs the books then).
- kind TEXT (3) / BINARY (4): one WebSocket frame exactly as received, with the session's
  monotonic receive stamp (`recv_ns`, what the decoder got) and the wall clock (`wall_ns`).

Crash safety: files are only appended to, one block per `write`, so a crash can only leave the
last block short or garbled; its length and CRC do not check out and nothing good follows, so
the reader ends there, counting it in `torn_blocks` (everything before it is intact). A crash
loses at most the block being gathered (≤ `flush_interval_s` of data).

Damage: a bad block *followed* by good ones (a flipped bit, a bad sector) is not an end. The
reader resynchronises on the next block whose magic and CRC check out and reports what it lost
(`RecordReader.damaged`: bytes, about how many frames, how much time); `strict=True` (`botrun
backtest --strict`) makes it an error instead.

Rotation: a new file (`<prefix>-000001.brec`, ...) once one exceeds `max_file_bytes`; each file
starts with META and the CONN records of the connections still open, so every file can be read
(and replayed) on its own. Reading a directory reads its files in name order.

Recording a venue (`record`, with `record_config` for its settings) is a library call: it returns
what it wrote and the run's summary; `botrun record` in tools/cli.py parses argv and prints them.
"""

from __future__ import annotations

import os
import struct
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import attrs
import orjson
import trio

from framework.config import Config
from framework.engine import Engine
from framework.venues import load_config as load
from framework.venues import parse_config as parse

MAGIC = b"BRREC\x00\x01\n"
BLOCK_MAGIC = b"BRB1"
BLOCK_HEADER = struct.Struct("<4sIII")
RECORD_HEADER = struct.Struct("<BHqqI")
SUFFIX = ".brec"
FORMAT_VERSION = 1

META, CONN, TEXT, BINARY = 1, 2, 3, 4


class RecordError(ValueError):
    """Not a recording (bad magic), or no files to read."""


class Record(NamedTuple):
    kind: int
    conn: int
    recv_ns: int
    wall_ns: int
    payload: bytes


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, default=_json_default)


# --- writing ---------------------------------------------------------------------------------


class RecordWriter:
    """Appends frames to `<out_dir>/<prefix>-NNNNNN.brec`, rotating by size."""

    def __init__(
        self,
        out_dir: str | Path,
        meta: dict[str, Any],
        *,
        prefix: str = "rec",
        max_file_bytes: int = 64 * 1024 * 1024,
        block_bytes: int = 256 * 1024,
        flush_interval_s: float = 1.0,
        level: int = 6,
        wall_ns: Any = time.time_ns,
    ) -> None:
        self.dir = Path(out_dir)
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.meta = {"format": FORMAT_VERSION, **meta}
        self.prefix = prefix
        self.max_file_bytes = max_file_bytes
        self.block_bytes = block_bytes
        self.flush_interval_ns = int(flush_interval_s * 1e9)
        self.level = level
        self._wall_ns = wall_ns
        self._seq = self._first_free_seq()
        self._buf = bytearray()
        self._buf_first_ns: int | None = None
        # (venue, stream) -> (epoch, conn id, CONN payload)
        self._conns: dict[tuple[str, str], tuple[int, int, bytes]] = {}
        self._next_conn = 1
        self.files: list[Path] = []
        self.frames = 0
        self.bytes_written = 0
        self._file: Any = None
        self._open_next()

    def _first_free_seq(self) -> int:
        taken = [p for p in self.dir.glob(f"{self.prefix}-*{SUFFIX}")]
        seqs = []
        for p in taken:
            try:
                seqs.append(int(p.stem.rsplit("-", 1)[1]))
            except (IndexError, ValueError):
                continue
        return max(seqs, default=0) + 1

    def _open_next(self) -> None:
        path = self.dir / f"{self.prefix}-{self._seq:06d}{SUFFIX}"
        self._seq += 1
        # user-only from the first byte (recorded frames can carry account data): created 0600,
        # whatever the umask, and kept open across calls (closed in close())
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
        self._file = os.fdopen(fd, "ab")
        self._file.write(MAGIC)
        self._file_bytes = len(MAGIC)
        self.files.append(path)
        self._append(META, 0, 0, self._wall_ns(), dumps(self.meta))
        for _epoch, conn, payload in self._conns.values():
            self._append(CONN, conn, 0, self._wall_ns(), payload)

    def _append(self, kind: int, conn: int, recv_ns: int, wall_ns: int, payload: bytes) -> None:
        buf = self._buf
        if self._buf_first_ns is None:
            self._buf_first_ns = time.monotonic_ns()
        buf += RECORD_HEADER.pack(kind, conn, recv_ns, wall_ns, len(payload))
        buf += payload

    def frame(
        self,
        venue: str,
        stream: str,
        epoch: int,
        frame: str | bytes,
        recv_ns: int,
        wall_ns: int | None = None,
    ) -> None:
        """Append one received frame of `venue`/`stream` on connection `epoch`."""
        key = (venue, stream)
        known = self._conns.get(key)
        if known is None or known[0] != epoch:
            conn = self._next_conn
            self._next_conn += 1
            payload = dumps({"venue": venue, "stream": stream, "epoch": epoch})
            self._conns[key] = (epoch, conn, payload)
            self._append(CONN, conn, recv_ns, self._wall_ns(), payload)
        else:
            conn = known[1]
        if wall_ns is None:
            wall_ns = self._wall_ns()
        if isinstance(frame, str):
            self._append(TEXT, conn, recv_ns, wall_ns, frame.encode())
        else:
            self._append(BINARY, conn, recv_ns, wall_ns, bytes(frame))
        self.frames += 1
        if len(self._buf) >= self.block_bytes or (
            time.monotonic_ns() - (self._buf_first_ns or 0) >= self.flush_interval_ns
        ):
            self.flush()

    def flush(self) -> None:
        """Write the gathered records as one block (one `write`), then rotate if due."""
        if not self._buf:
            return
        raw = bytes(self._buf)
        self._buf.clear()
        self._buf_first_ns = None
        comp = zlib.compress(raw, self.level)
        block = BLOCK_HEADER.pack(BLOCK_MAGIC, len(raw), len(comp), zlib.crc32(comp)) + comp
        self._file.write(block)
        self._file.flush()
        self._file_bytes += len(block)
        self.bytes_written += len(block)
        if self._file_bytes >= self.max_file_bytes:
            self._close_file()
            self._open_next()

    def _close_file(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    def close(self) -> None:
        if self._file is None:
            return
        self.flush()
        self._close_file()
        self._file = None


# --- reading ---------------------------------------------------------------------------------


def recording_files(path: str | Path) -> list[Path]:
    """The files of a recording: a file, or every `*.brec` of a directory in name order."""
    p = Path(path)
    if p.is_dir():
        files = sorted(p.glob(f"*{SUFFIX}"))
        if not files:
            raise RecordError(f"{p}: no {SUFFIX} files")
        return files
    if not p.exists():
        raise RecordError(f"{p}: no such file or directory")
    return [p]


@attrs.define
class Damage:
    """A damaged stretch of a recording, skipped: the reader resumed at the next good block."""

    path: str
    offset: int  # where the damaged bytes start
    skipped_bytes: int
    # wall clock of the last record before and the first record after the gap (0 = unknown)
    before_wall_ns: int = 0
    after_wall_ns: int = 0
    # frames lost: the damaged blocks' records cannot be read; estimated from the good blocks'
    # average (records per block x blocks the damaged bytes would hold)
    frames_lost_estimate: int = 0

    @property
    def seconds_lost(self) -> float | None:
        if self.before_wall_ns and self.after_wall_ns:
            return max(0.0, (self.after_wall_ns - self.before_wall_ns) / 1e9)
        return None

    def describe(self) -> str:
        lost = self.seconds_lost
        span = f"{lost:.3f} s of data" if lost is not None else "an unknown time span"
        return (
            f"{self.path}: damaged block at byte {self.offset}: {self.skipped_bytes:,} bytes"
            f" skipped, about {self.frames_lost_estimate:,} frames and {span} lost"
        )


class RecordReader:
    """Reads a recording. A block whose magic, lengths or CRC do not check out is damage: the
    reader resynchronises on the next good block (magic, then a header whose CRC checks out) and
    records what was lost in `damaged` (with `strict`, raises `RecordError` instead). A bad block
    with no good block after it is a torn tail, the normal end of a file written by a process
    that crashed: counted in `torn_blocks`, not damage."""

    def __init__(self, path: str | Path, *, strict: bool = False) -> None:
        self.files = recording_files(path)
        self.strict = strict
        self.torn_blocks = 0
        self.total_bytes = sum(f.stat().st_size for f in self.files)
        self.bytes_read = 0  # compressed bytes consumed so far (progress)
        self._meta: dict[str, Any] | None = None
        # by (file, offset): reading the same file twice reports its damage once
        self._damage: dict[tuple[str, int], Damage] = {}
        self._records_per_block: list[int] = [0, 0]  # records, blocks (for the estimate)

    @property
    def damaged(self) -> list[Damage]:
        return list(self._damage.values())

    @property
    def meta(self) -> dict[str, Any]:
        """META of the first file (venues, their config and instruments)."""
        if self._meta is None:
            for block in self._file_blocks(self.files[0], count=False):
                rec = next(iter_records(block), None)
                if rec is None or rec.kind != META:
                    raise RecordError(f"{self.files[0]}: does not start with META")
                self._meta = orjson.loads(rec.payload)
                break
            else:
                raise RecordError(f"{self.files[0]}: empty recording")
        return self._meta

    def blocks(self) -> Iterator[bytes]:
        """Every intact block's raw (decompressed) bytes, files in order."""
        for path in self.files:
            yield from self._file_blocks(path)

    def records(self) -> Iterator[Record]:
        for block in self.blocks():
            yield from iter_records(block)

    @staticmethod
    def _block_at(data: bytes | memoryview, pos: int) -> tuple[bytes, int] | None:
        """The raw bytes of the intact block at `pos` and its size on disk, or None."""
        hsize = BLOCK_HEADER.size
        if pos + hsize > len(data):
            return None
        magic, raw_len, comp_len, crc = BLOCK_HEADER.unpack_from(data, pos)
        if magic != BLOCK_MAGIC or pos + hsize + comp_len > len(data):
            return None
        comp = data[pos + hsize : pos + hsize + comp_len]
        if zlib.crc32(comp) != crc:
            return None
        try:
            # the output sized once from the header (no growing the buffer block by block and
            # joining the blocks: a quarter of the time); a damaged header makes it no larger
            # than deflate can expand `comp` to (~1032x), and fails the length check below
            raw = zlib.decompress(comp, bufsize=min(raw_len, 1032 * comp_len + 64))
        except zlib.error:
            return None
        if len(raw) != raw_len:
            return None
        return raw, hsize + comp_len

    def _file_blocks(self, path: Path, count: bool = True) -> Iterator[bytes]:
        data = path.read_bytes()
        if data[: len(MAGIC)] != MAGIC:
            raise RecordError(f"{path}: not a botrun recording")
        if count:
            self.bytes_read += len(MAGIC)
        pos, end = len(MAGIC), len(data)
        last_raw: bytes | None = None
        sizes: list[int] = []
        while pos < end:
            found = self._block_at(data, pos)
            if found is None:
                nxt = self._resync(data, pos + 1)
                if nxt is None:
                    self._torn(count)  # nothing good follows: a torn tail
                    return
                damage = self._note_damage(path, pos, nxt, last_raw, data, sizes)
                if self.strict:
                    raise RecordError(f"{damage.describe()} (--strict)")
                if count:
                    self.bytes_read += nxt - pos
                pos = nxt
                continue
            raw, size = found
            sizes.append(size)
            if count:
                self.bytes_read += size
            n = self._records_per_block
            n[1] += 1
            if n[1] <= 64:
                n[0] += count_records(raw)
            last_raw = raw
            pos += size
            yield raw

    def _resync(self, data: bytes, start: int) -> int | None:
        """The offset of the next intact block at or after `start`, or None."""
        pos = data.find(BLOCK_MAGIC, start)
        while pos != -1:
            if self._block_at(data, pos) is not None:
                return pos
            pos = data.find(BLOCK_MAGIC, pos + 1)
        return None

    def _note_damage(
        self,
        path: Path,
        start: int,
        resume: int,
        last_raw: bytes | None,
        data: bytes,
        sizes: list[int],
    ) -> Damage:
        key = (str(path), start)
        known = self._damage.get(key)
        if known is not None:
            return known
        before = 0
        if last_raw is not None:
            for rec in iter_records(last_raw):
                before = rec.wall_ns or before
        after = 0
        found = self._block_at(data, resume)
        if found is not None:
            for rec in iter_records(found[0]):
                if rec.kind in (TEXT, BINARY):
                    after = rec.wall_ns
                    break
        records, blocks = self._records_per_block
        sampled = min(blocks, 64)
        per_block = records / sampled if sampled else 0
        avg_size = sum(sizes) / len(sizes) if sizes else resume - start
        estimate = round(per_block * max(1.0, (resume - start) / avg_size)) if avg_size else 0
        damage = Damage(str(path), start, resume - start, before, after, estimate)
        self._damage[key] = damage
        return damage

    def _torn(self, count: bool) -> None:
        if count:
            self.torn_blocks += 1


def count_records(block: bytes) -> int:
    """How many records `iter_records` would yield, without building them (the reader counts
    the first blocks of every replay for its damage estimates)."""
    unpack = RECORD_HEADER.unpack_from
    size = RECORD_HEADER.size
    pos, end, n = 0, len(block), 0
    while pos + size <= end:
        pos += size + unpack(block, pos)[4]
        n += 1
    return n


def iter_records(block: bytes) -> Iterator[Record]:
    unpack = RECORD_HEADER.unpack_from
    size = RECORD_HEADER.size
    pos, end = 0, len(block)
    while pos + size <= end:
        kind, conn, recv_ns, wall_ns, length = unpack(block, pos)
        pos += size
        yield Record(kind, conn, recv_ns, wall_ns, block[pos : pos + length])
        pos += length


# --- live recording ----------------------------------------------------------------------------


class FrameRecorder:
    """The session tap of `botrun record`: buffers frames until every venue has started (so META
    can carry all venues' instruments), then writes through a `RecordWriter`."""

    def __init__(self, out_dir: str | Path, **writer_kw: Any) -> None:
        self.out_dir = Path(out_dir)
        self.writer_kw = writer_kw
        self.writer: RecordWriter | None = None
        self._pending: list[tuple[str, str, int, str | bytes, int, int]] = []

    def tap(self, stream: Any, frame: str | bytes, recv_ns: int) -> None:
        if self.writer is not None:
            self.writer.frame(stream.venue, stream.name, stream.epoch, frame, recv_ns)
        else:
            self._pending.append(
                (stream.venue, stream.name, stream.epoch, frame, recv_ns, time.time_ns())
            )

    def start(self, meta: dict[str, Any]) -> RecordWriter:
        self.writer = RecordWriter(self.out_dir, meta, **self.writer_kw)
        for venue, stream, epoch, frame, recv_ns, wall_ns in self._pending:
            self.writer.frame(venue, stream, epoch, frame, recv_ns, wall_ns)
        self._pending.clear()
        return self.writer

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def venue_meta(name: str, cfg: Any, instruments: dict[str, Any]) -> dict[str, Any]:
    """META entry of one venue: its config section and its instruments (plain JSON types)."""
    return {
        "config": orjson.loads(dumps(attrs.asdict(cfg))),
        "instruments": [orjson.loads(dumps(attrs.asdict(i))) for i in instruments.values()],
    }


# --- recording a venue (the library under `botrun record`) ----------------------------------------

DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024


def record_config(
    venue: str,
    *,
    markets: Sequence[str] | None = None,
    config_path: str | Path | None = None,
) -> Config:
    """The config of a recording run: `venue` alone, its section taken from `config_path` when that
    file exists and configures it (else the venue's defaults), `markets` if given, paper mode (a
    recording never sends an order). Raises ConfigError."""
    cfg: Config | None = None
    if config_path is not None and Path(config_path).is_file():
        cfg = load(config_path)
        if venue not in cfg.venues:
            cfg = None
    if cfg is None:
        cfg = parse({"venues": {venue: {}}})
    vcfg = cfg.venues[venue]
    if markets:
        vcfg.markets = list(markets)
    cfg.venues = {venue: vcfg}
    cfg.botrun.mode = "paper"
    return cfg


def recording_meta(engine: Engine) -> dict[str, Any]:
    """META of a recording from a started engine: each venue's config, instruments and streams."""
    return {
        "created_wall_ns": time.time_ns(),
        "venues": {
            name: venue_meta(name, engine.config.venues[name], rt.instruments)
            | {"streams": [s.name for s in rt.streams]}
            for name, rt in engine.runtimes.items()
        },
    }


@attrs.define
class RecordResult:
    """What a recording run wrote, and the engine's summary of the run."""

    files: list[Path]
    frames: int
    bytes_written: int
    summary: dict[str, Any]


async def record(
    config: Config,
    out_dir: str | Path,
    *,
    duration_s: float = 0.0,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    flush_interval_s: float = 1.0,
    stop: trio.Event | None = None,
    on_started: Callable[[Engine], None] | None = None,
) -> RecordResult:
    """Record the raw frames of `config`'s venues into `out_dir` until `duration_s` has passed
    (0 = no limit) or `stop` is set; the engine then shuts down as on Ctrl-C.

    `on_started` is called with the running engine once every venue has started and the first
    file is open (the CLI announces the recording there; tests wait on sessions through it).
    """
    recorder = FrameRecorder(
        out_dir, max_file_bytes=max_file_bytes, flush_interval_s=flush_interval_s
    )
    engine = Engine(config, [])
    engine.frame_tap = recorder.tap
    try:
        async with trio.open_nursery() as nursery:

            async def run() -> None:
                await engine.run(duration_s)
                nursery.cancel_scope.cancel()

            async def stop_when_asked(event: trio.Event) -> None:
                await event.wait()
                engine.stop()

            nursery.start_soon(run)
            if stop is not None:
                nursery.start_soon(stop_when_asked, stop)
            await engine.started.wait()
            recorder.start(recording_meta(engine))
            if on_started is not None:
                on_started(engine)
    finally:
        recorder.close()
    writer = recorder.writer
    return RecordResult(
        files=list(writer.files) if writer is not None else [],
        frames=writer.frames if writer is not None else 0,
        bytes_written=writer.bytes_written if writer is not None else 0,
        summary=engine.final_summary or engine.summary(),
    )
