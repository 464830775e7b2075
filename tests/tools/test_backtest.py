"""Record → backtest round trip over real sockets, torn tails, determinism, simulated time."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import trio

from framework.engine import Engine
from framework.errors import BookNotSynced
from framework.strategy import Strategy
from framework.tools.backtest import SAMPLE, run_backtest
from framework.tools.cli import main
from framework.tools.record import (
    BINARY,
    TEXT,
    FrameRecorder,
    RecordReader,
    recording_files,
    venue_meta,
)
from tests.helpers import HANG_GUARD_S, config, session

MM_PARAMS = {"size": "0.002", "half_spread_bps": 0.05, "max_inventory": "0.01", "refresh_s": 0.2}


def market_maker() -> Strategy:
    from framework.tools.cli import load_strategy_class

    return load_strategy_class("strategies/market_maker.py")(MM_PARAMS)


class Ticker(Strategy):
    """Counts timer ticks and the first/last book events it saw."""

    def on_start(self) -> None:
        self.ticks = 0
        self.books = 0
        self.every(1.0, self.tick)

    def tick(self) -> None:
        self.ticks += 1

    def on_book(self, event) -> None:
        self.books += 1


def levels(book) -> tuple:
    try:
        return tuple(book.bids()), tuple(book.asks())
    except BookNotSynced:
        return ("unsynced",)  # as BacktestResult.books says it


async def record_live(path: Path, frames: int) -> dict:
    """Record the Paxos simulator through the real sessions; returns the live books at the end."""
    cfg = config({"paxos": {"markets": ["BTCUSD", "ETHUSD"], "sim_rate_hz": 400, "sim_seed": 5}})
    recorder = FrameRecorder(path, flush_interval_s=0.05)
    engine = Engine(cfg, [])
    recording = True

    def tap(stream, frame, recv_ns) -> None:
        # the tap runs right before decode, in the same synchronous step: whenever this test
        # task runs, every frame recorded so far has also been applied to the live books
        if recording:
            recorder.tap(stream, frame, recv_ns)

    engine.frame_tap = tap
    async with trio.open_nursery() as nursery:
        nursery.start_soon(engine.run, 0)
        with trio.fail_after(HANG_GUARD_S):
            await engine.started.wait()
            recorder.start(
                {
                    "venues": {
                        name: venue_meta(name, engine.config.venues[name], rt.instruments)
                        | {"streams": [s.name for s in rt.streams]}
                        for name, rt in engine.runtimes.items()
                    }
                }
            )
            await session(engine, "marketdata").wait_frames(frames)
        recording = False
        live = {key: levels(book) for key, book in engine.books.items()}
        nursery.cancel_scope.cancel()
    recorder.close()
    return live


async def test_record_then_backtest_rebuilds_the_live_books_exactly(tmp_path: Path) -> None:
    live = await record_live(tmp_path, 1500)
    assert all(v != ("unsynced",) for v in live.values())
    for simulator_streams in (False, True):
        result = await trio.to_thread.run_sync(
            lambda s=simulator_streams: run_backtest(tmp_path, [Ticker()], use_simulator_streams=s)
        )
        assert result.frames >= 1500 and result.bad_frames == 0 and result.torn_blocks == 0
        assert result.summary["backtest"]["frames"] == result.frames
        assert result.books == live, f"simulator_streams={simulator_streams}"


async def test_torn_last_record_is_skipped_and_the_rest_replays(tmp_path: Path) -> None:
    await record_live(tmp_path, 300)
    (path,) = recording_files(tmp_path)
    whole = sum(1 for r in RecordReader(tmp_path).records() if r.kind in (TEXT, BINARY))
    path.write_bytes(path.read_bytes()[:-3])  # the process died during its last write
    result = await trio.to_thread.run_sync(lambda: run_backtest(tmp_path, [Ticker()]))
    assert result.torn_blocks == 1
    assert 0 < result.frames < whole


def test_same_data_and_seed_give_the_same_fills() -> None:
    first = run_backtest(SAMPLE, [market_maker()], seed=3)
    second = run_backtest(SAMPLE, [market_maker()], seed=3)
    assert len(first.fills) > 10
    assert [f.exact for f in first.fills] == [f.exact for f in second.fills]
    assert first.summary["orders"] == second.summary["orders"]
    assert first.samples == second.samples


def test_timers_and_paper_latency_follow_the_recorded_clock() -> None:
    strategy = Ticker()
    result = run_backtest(SAMPLE, [strategy, market_maker()])
    recs = [r for r in RecordReader(SAMPLE).records() if r.kind in (TEXT, BINARY)]
    span_s = (recs[-1].recv_ns - recs[0].recv_ns) / 1e9
    # a 1 s timer fires once per recorded second, though the replay takes a fraction of that
    assert strategy.ticks == int(span_s)
    assert result.elapsed_s < span_s
    # the paper broker answers after exactly its configured 5 ms of recorded time
    ack = result.summary["latency"]["paxos send_to_ack"]
    assert 4.99e3 <= ack["p50_us"] <= 5.01e3 and ack["max_us"] <= 5.01e3


def test_shipped_sample_is_small_and_intact() -> None:
    files = recording_files(SAMPLE)
    assert sum(f.stat().st_size for f in files) < 2 * 1024 * 1024
    reader = RecordReader(SAMPLE)
    assert set(reader.meta["venues"]) == {"paxos"}
    assert sum(1 for r in reader.records() if r.kind == TEXT) > 10_000
    assert reader.torn_blocks == 0


def test_cli_backtest_writes_summary_and_report(tmp_path: Path, capsys) -> None:
    out = tmp_path / "report"
    code = main(
        [
            "backtest",
            "strategies/market_maker.py",
            "--data",
            str(SAMPLE),
            "--config",
            str(tmp_path / "none.toml"),
            "--report",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "botrun summary (paper mode)" in text and "events/s" in text
    html = (out / "report.html").read_text()
    # drawn by plotly, its JavaScript inline (opens offline), with the statistics table
    assert "Drawdown" in html and "<table class='stats'>" in html and "plotly" in html
    assert 'src="https://cdn.plot.ly' not in html
    assert (out / "report.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_cli_replay_without_strategy_and_bad_data(tmp_path: Path, capsys) -> None:
    assert main(["replay", "--data", str(SAMPLE), "--no-progress"]) == 0
    assert "session paxos/marketdata" in capsys.readouterr().out
    assert main(["replay", "--data", str(tmp_path / "nothing"), "--no-progress"]) == 2


def test_decimal_levels_survive(tmp_path: Path) -> None:
    # prices are rebuilt as Decimal from the recorded text, never through float
    result = run_backtest(SAMPLE, [])
    bids, _ = result.books[("paxos", "BTCUSD")]
    assert all(type(p) is Decimal and type(s) is Decimal for p, s in bids)


def test_a_flipped_bit_at_25_percent_of_the_sample_is_skipped_loudly(
    tmp_path: Path, capsys
) -> None:
    data = bytearray(recording_files(SAMPLE)[0].read_bytes())
    data[len(data) // 4] ^= 0x10
    damaged = tmp_path / "damaged.brec"
    damaged.write_bytes(bytes(data))
    intact = RecordReader(SAMPLE)
    total = sum(1 for r in intact.records() if r.kind == TEXT)
    args = ["replay", "--data", str(damaged), "--no-progress", "--config", str(tmp_path / "x")]
    assert main(args) == 0
    out, err = capsys.readouterr()
    # the replay went on past the damage to the end of the file
    replayed = int(out.split("replay: ")[1].split(" frames")[0].replace(",", ""))
    assert total / 2 < replayed < total
    (line,) = [x for x in err.splitlines() if "recording damaged" in x]
    assert "frames and" in line and "s of data lost" in line
    assert "damaged stretches skipped: 1; torn tail: 0" in out
    # strict: the damage is an error, one line, its own exit code
    assert main([*args, "--strict"]) == 6
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("botrun: recording:") and "--strict" in err[0]


class Loser(Strategy):
    """Takes liquidity on every book until the kill switch says stop."""

    def on_start(self) -> None:
        self.kills: list[str] = []
        self.venue, self.symbol = self.default_market()

    def on_book(self, event) -> None:
        if not self.kills and not self.open_orders():
            self.buy(self.venue, self.symbol, Decimal("0.001"))

    def on_kill_switch(self, reason: str) -> None:
        self.kills.append(reason)


def test_the_kill_switch_stops_a_backtest_too(tmp_path: Path) -> None:
    loser = Loser()
    result = run_backtest(
        SAMPLE,
        [loser],
        config={"risk": {"max_loss": "1"}, "paper": {"taker_fee_rate": "0.01"}},
    )
    assert loser.kills == ["loss above max_loss 1"]
    assert result.summary["kill_switch"] == "loss above max_loss 1"
    total = sum(1 for r in RecordReader(SAMPLE).records() if r.kind == TEXT)
    assert result.frames < total  # the replay stopped once the switch engaged
