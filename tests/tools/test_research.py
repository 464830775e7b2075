"""The research loop: report, export, optimize, statistics, latency and queue-position models."""

from __future__ import annotations

import math
import tomllib
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from framework.execution.fill_models import (
    LatencyModel,
    QueueModel,
    latency_model,
    queue_model,
)
from framework.latency import Histogram
from framework.tools.backtest import SAMPLE, run_backtest
from framework.tools.cli import main
from framework.tools.export import MARKET_TABLES, RUN_TABLES, export
from framework.tools.loader import load_strategy_class
from framework.tools.optimize import optimize, params_block, parse_param
from framework.tools.report import write_report
from framework.tools.results import BacktestResult, FillRecord
from framework.tools.stats import statistics

MM_PARAMS = {"size": "0.002", "half_spread_bps": 0.05, "max_inventory": "0.01", "refresh_s": 0.2}
SLICE = 12_000  # frames: a short slice of the shipped sample keeps these tests quick


def market_maker(params: dict | None = None):
    return load_strategy_class("strategies/market_maker.py")(params or MM_PARAMS)


def fills_of(result: BacktestResult) -> list[tuple]:
    return [f.exact for f in result.fills]


# --- realism models ------------------------------------------------------------------------------


def test_latency_models_are_seeded_and_in_range() -> None:
    a = [LatencyModel.lognormal(8, 0.6, seed=3).sample_s() for _ in range(1)]
    m1, m2, m3 = (LatencyModel.lognormal(8, 0.6, seed=s) for s in (3, 3, 4))
    d1 = [m1.sample_s() for _ in range(200)]
    assert d1 == [m2.sample_s() for _ in range(200)]  # same seed, same draws
    assert d1 != [m3.sample_s() for _ in range(200)]
    assert a[0] == d1[0] and all(x > 0 for x in d1)
    assert 0.006 < sorted(d1)[100] < 0.011  # the median is near 8 ms
    assert LatencyModel.fixed(5).sample_s() == 0.005

    hist = Histogram()
    hist.record_many([2_000_000] * 90 + [9_000_000] * 10)  # 2 ms mostly, 9 ms sometimes
    emp = LatencyModel.from_histogram(hist, seed=1)
    draws = [emp.sample_s() for _ in range(1000)]
    assert min(draws) >= 0.002 and max(draws) <= 0.009 + 1e-9
    slow = sum(d > 0.005 for d in draws)
    assert 50 < slow < 150  # ~10% from the slow bucket

    q = latency_model({"kind": "percentiles", "p50_us": 1000, "p99_us": 5000}, seed=2)
    qd = [q.sample_s() for _ in range(1000)]
    assert all(0.0005 <= d <= 0.005 for d in qd)
    assert 0.0008 < sorted(qd)[500] < 0.0012

    for bad in ({"kind": "fixed", "ms": -1}, {"kind": "fixed", "ms": math.nan}, {"kind": "x"}):
        with pytest.raises(ValueError):
            latency_model(bad)
    with pytest.raises(ValueError):
        LatencyModel.from_histogram(Histogram())


def test_queue_models_move_the_queue_as_documented() -> None:
    D = Decimal
    # 10 ahead in a level of 40; 20 is cancelled (40 -> 20)
    assert QueueModel("pessimistic").after_level_change(D(10), D(40), D(20)) == D(10)
    assert QueueModel("pessimistic").after_level_change(D(30), D(40), D(20)) == D(20)
    assert QueueModel("optimistic").after_level_change(D(10), D(40), D(20)) == D(0)
    assert QueueModel("proportional").after_level_change(D(10), D(40), D(20)) == D(5)
    # power 2: share ahead = 10^2 / (10^2 + 30^2) = 0.1 -> 10 - 2 = 8
    assert QueueModel("power", 2).after_level_change(D(10), D(40), D(20)) == D(8)
    # growth joins behind us, whatever the model
    for kind in ("pessimistic", "proportional", "power", "optimistic"):
        assert QueueModel(kind).after_level_change(D(10), D(40), D(60)) == D(10)
    # results stay in the displayed sizes' precision (whole lots), rounded up
    got = QueueModel("proportional").after_level_change(D("0.001"), D("0.003"), D("0.002"))
    assert got == D("0.001")  # 0.001 - 0.001/3 = 0.000667 -> 0.001 at 3 decimals
    assert queue_model({"kind": "power", "power": 3}) == QueueModel("power", 3.0)
    with pytest.raises(ValueError):
        QueueModel("fifo")


def test_same_seed_same_fills_with_latency_and_queue_models() -> None:
    cfg = {
        "backtest": {
            "queue": "proportional",
            "latency": {"paxos": {"kind": "lognormal", "median_ms": 20, "sigma": 0.8}},
        }
    }
    runs = [
        run_backtest(SAMPLE, [market_maker()], config=cfg, seed=s, max_frames=SLICE)
        for s in (5, 5, 6)
    ]
    assert runs[0].fills and fills_of(runs[0]) == fills_of(runs[1])
    assert fills_of(runs[0]) != fills_of(runs[2])  # the latency draws depend on the seed
    for f in runs[0].fills:  # whole lots, never a fraction of the displayed precision
        assert Decimal(f.exact[4]) == Decimal(f.exact[4]).quantize(Decimal("1e-8"))
    # an optimistic queue fills no later than a pessimistic one, so at least as much
    filled = {
        kind: sum(
            f.quantity
            for f in run_backtest(
                SAMPLE, [market_maker()], seed=5, queue=kind, max_frames=SLICE
            ).fills
        )
        for kind in ("pessimistic", "optimistic")
    }
    assert filled["optimistic"] >= filled["pessimistic"] > 0


# --- statistics --------------------------------------------------------------------------------


def test_statistics_of_a_known_run() -> None:
    day = 86_400 * 10**9
    t0 = 1_700_000_000 * 10**9 - (1_700_000_000 * 10**9) % day  # midnight UTC
    pnl = [0.0, 2.0, 1.0, 3.0, -1.0, 0.5]
    samples = [
        (t0 + i * day // 2, v, {"paxos BTCUSD": (100.0, pos)})
        for i, (v, pos) in enumerate(zip(pnl, [0, 1, 2, -1, 0, 1], strict=True))
    ]

    def fill(coid: str, price: float, qty: float) -> FillRecord:
        return FillRecord(t0, "paxos", "BTCUSD", coid, coid, "BUY", price, qty, ("",) * 6, 0.1)

    result = BacktestResult(
        summary={},
        fills=[fill("a", 100.0, 1.0), fill("b", 50.0, 2.0)],
        samples=samples,
        frames=0,
        events=0,
        elapsed_s=1.0,
        torn_blocks=0,
        bad_frames=0,
        first_wall_ns=t0,
        last_wall_ns=t0,
        orders=[(t0, "paxos", "BTCUSD", c, "OrderSubmitted", "PENDING") for c in "abc"],
        positions=[
            (t0, "paxos", "BTCUSD", 1.0, 100.0, 0.0),
            (t0, "paxos", "BTCUSD", 0.0, 0.0, 2.0),  # closed at a profit
            (t0, "paxos", "BTCUSD", -1.0, 50.0, 2.0),  # opened short
            (t0, "paxos", "BTCUSD", 0.0, 0.0, 1.5),  # closed at a loss
        ],
    )
    s = statistics(result)
    assert s["total_pnl"] == 0.5
    assert s["max_drawdown"] == 4.0  # from 3 down to -1
    assert s["pnl_drawdown"] == 0.125
    assert s["per_day_pnl"] == pytest.approx(
        {_day(t0): 2.0, _day(t0 + day): 1.0, _day(t0 + 2 * day): -2.5}
    )
    assert s["fees"] == pytest.approx(0.2) and s["turnover"] == 200.0
    assert s["fill_ratio"] == pytest.approx(2 / 3) and s["win_rate"] == 0.5
    assert s["inventory_max_abs"] == 2 and s["inventory_final"] == 1
    assert s["sharpe"] != 0 and s["sortino"] != 0


def _day(ns: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d")


# --- report, export --------------------------------------------------------------------------


def test_report_html_has_the_statistics_table_and_the_png_opens(tmp_path: Path) -> None:
    import matplotlib.image

    result = run_backtest(SAMPLE, [market_maker()], seed=2, max_frames=6000)
    html_path, png_path = write_report(result, tmp_path)
    html = html_path.read_text()
    stats = statistics(result)
    assert "<table class='stats'>" in html
    for label in ("Total PnL", "Sharpe", "Sortino", "Max drawdown", "Fees paid", "Turnover"):
        assert label in html
    assert "Fill ratio" in html and "Win rate" in html and "Inventory max abs" in html
    assert f"{stats['total_pnl']:,.4f}" in html
    assert "MarketMaker.half_spread_bps" in html and "<th>seed</th><td>2</td>" in html
    assert "<table class='trades'>" in html and result.fills[0].client_order_id in html
    assert 'src="https://cdn.plot.ly' not in html and "Plotly.newPlot" in html  # offline
    image = matplotlib.image.imread(png_path)
    assert image.shape[0] > 500 and image.shape[1] > 800


def test_export_writes_tables_pyarrow_reads(tmp_path: Path) -> None:
    result, paths = export(SAMPLE, tmp_path, strategies=[market_maker()], seed=1, max_frames=SLICE)
    assert sorted(p.stem for p in paths) == sorted(MARKET_TABLES + RUN_TABLES)
    t = {p.stem: pq.read_table(p) for p in paths}
    assert t["fills"].num_rows == len(result.fills) > 0
    assert t["fills"].column("price_exact").to_pylist() == [f.exact[3] for f in result.fills]
    assert t["orders"].num_rows > t["fills"].num_rows // 2
    assert set(t["orders"].column("event").to_pylist()) >= {"OrderSubmitted", "OrderAccepted"}
    assert t["positions"].num_rows == len(result.fills)
    assert t["equity"].num_rows >= len(result.samples)
    deltas = t["book_deltas"]
    assert deltas.num_rows > 0 and set(deltas.column("kind").to_pylist()) == {"snapshot", "delta"}
    assert set(deltas.column("side").to_pylist()) == {"bid", "ask"}
    trades = t["trades"]
    assert trades.num_rows == result.summary["sessions"]["paxos/executiondata"]["frames"]
    top = t["top_of_book"].to_pydict()
    assert all(b < a for b, a in zip(top["bid"], top["ask"], strict=True))
    assert t["venue_status"].column("state").to_pylist()[0] == "SYNCED"
    # the recording alone (no strategy): the four market tables only
    _, only = export(SAMPLE, tmp_path / "market", max_frames=2000)
    assert sorted(p.stem for p in only) == sorted(MARKET_TABLES)


def test_cli_export(tmp_path: Path, capsys) -> None:
    assert main(["export", "--out", str(tmp_path), "--config", str(tmp_path / "none")]) == 0
    assert "trades.parquet" in capsys.readouterr().out
    assert pq.read_table(tmp_path / "trades.parquet").num_rows > 1000


# --- optimize ----------------------------------------------------------------------------------


def test_parse_param() -> None:
    p = parse_param("requote_ticks=int:1..8:2")
    assert (p.kind, p.low, p.high, p.step) == ("int", 1, 8, 2)
    assert parse_param("x=0.5..2").kind == "float" and parse_param("x=1..3").kind == "int"
    assert parse_param("x=float:0.01..1:log").log
    assert parse_param("refresh_s=choice:0.2,0.5,fast").choices == (0.2, 0.5, "fast")
    for bad in ("x", "x=", "x=int:3..1", "x=float:a..b", "x=float:0..1:log", "x=weird:1..2"):
        with pytest.raises(ValueError):
            parse_param(bad)


def test_optimize_two_workers_reproducible(tmp_path: Path, capsys) -> None:
    argv = [
        "optimize",
        "strategies/market_maker.py",
        "--param",
        "half_spread_bps=float:0.02..1",
        "--param",
        "requote_ticks=int:1..6",
        "--trials",
        "4",
        "--workers",
        "2",
        "--seed",
        "7",
        "--max-frames",
        "6000",
        "--config",
        str(tmp_path / "none.toml"),
        "--out",
        str(tmp_path / "study"),
        "--no-progress",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    block = out[out.index("[strategy.params]") :]
    best = tomllib.loads(block)["strategy"]["params"]
    assert set(best) == {"half_spread_bps", "requote_ticks"}
    table = pq.read_table(tmp_path / "study" / "trials.parquet").to_pydict()
    assert sorted(table["number"]) == [0, 1, 2, 3]
    assert {"value", "half_spread_bps", "total_pnl", "sharpe", "fills"} <= set(table)
    # the same study in one process: the same trials and values (ask/tell order is fixed)
    again = optimize(
        "strategies/market_maker.py",
        str(SAMPLE),
        [parse_param("half_spread_bps=float:0.02..1"), parse_param("requote_ticks=int:1..6")],
        trials=4,
        workers=1,
        seed=7,
        max_frames=6000,
        progress=False,
    )
    by_number = {r["number"]: r for r in again.rows}
    for i, n in enumerate(table["number"]):
        assert by_number[n]["half_spread_bps"] == table["half_spread_bps"][i]
        assert by_number[n]["value"] == table["value"][i]
    assert again.best_params == best
    assert params_block(again.best_params).startswith("[strategy.params]\n")
