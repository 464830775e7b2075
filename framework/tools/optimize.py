"""`botrun optimize`: an Optuna study over backtests.

    botrun optimize strategies/market_maker.py \\
        --param half_spread_bps=float:0.5..5 --param requote_ticks=int:1..8 \\
        --param refresh_s=choice:0.2,0.5,1 --trials 40 --workers 4 --objective sharpe

Parameter specs: `int:LOW..HIGH[:STEP]`, `float:LOW..HIGH[:log]`, `choice:A,B,...` and the short
`LOW..HIGH` (int when both ends are integers, else float). Trial values override the strategy's
`[strategy.params]` from the config.

How it runs. One coordinator asks the sampler (TPE, seeded) for a batch of `workers` trials,
runs their backtests in parallel worker processes, and tells the results back in trial order.
Every backtest is deterministic (framework/tools/backtest.py) and the ask/tell order does not
depend on which process finishes first, so the same seed, data and arguments give the same
trials and the same best parameters, with any number of workers.

Several machines: give every machine the same `--storage` (an Optuna RDB URL such as
`postgresql://user@host/db`, or a path ending in `.log`/`.journal` for Optuna's journal file on
shared storage) and `--study NAME`; each runs its own coordinator and they share one study, as
Optuna itself distributes. (Reproducibility is then per study, not per machine: who asks first
depends on timing.)

Results: a table of trials (printed, best first) and `trials.parquet` in `--out`, and the best
parameters as a `[strategy.params]` block ready for config.toml. Optuna, tqdm and pyarrow are in
the `research` extra.
"""

from __future__ import annotations

import json
import math
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import attrs

from framework.tools.report import MissingExtra
from framework.tools.stats import OBJECTIVES, objective, statistics

INSTALL_HINT = "botrun optimize needs Optuna: pip install 'botrun[research]'"


@attrs.frozen
class ParamSpec:
    name: str
    kind: str  # int | float | choice
    low: float = 0.0
    high: float = 0.0
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        if self.kind == "int":
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=int(self.step or 1)
            )
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)
        return trial.suggest_categorical(self.name, list(self.choices))


def parse_param(text: str) -> ParamSpec:
    """`NAME=SPEC` (see the module docstring); raises ValueError saying what is wrong."""
    name, sep, spec = text.partition("=")
    name, spec = name.strip(), spec.strip()
    if not sep or not name or not spec:
        raise ValueError(f"--param {text!r}: expected NAME=SPEC, e.g. size=float:0.001..0.01")
    kind, colon, rest = spec.partition(":")
    if not colon:
        kind, rest = "", spec
    if kind == "choice":
        choices = tuple(_scalar(c) for c in rest.split(",") if c.strip())
        if not choices:
            raise ValueError(f"--param {text!r}: choice needs values, e.g. choice:0.2,0.5")
        return ParamSpec(name, "choice", choices=choices)
    if kind not in ("", "int", "float"):
        raise ValueError(f"--param {text!r}: kind {kind!r} is not int, float or choice")
    bounds, _, extra = rest.partition(":")
    low_text, dots, high_text = bounds.partition("..")
    if not dots:
        raise ValueError(f"--param {text!r}: a range is LOW..HIGH")
    try:
        low, high = float(low_text), float(high_text)
    except ValueError:
        raise ValueError(f"--param {text!r}: LOW and HIGH must be numbers") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(f"--param {text!r}: need finite LOW <= HIGH")
    if not kind:
        kind = "int" if _is_int(low_text) and _is_int(high_text) else "float"
    log = extra == "log"
    step = None
    if extra and not log:
        try:
            step = float(extra)
        except ValueError:
            raise ValueError(f"--param {text!r}: after the range, 'log' or a step") from None
    if log and low <= 0:
        raise ValueError(f"--param {text!r}: a log range needs LOW > 0")
    return ParamSpec(name, kind, low, high, step, log)


def _is_int(text: str) -> bool:
    return text.strip().lstrip("+-").isdigit()


def _scalar(text: str) -> Any:
    text = text.strip()
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


@attrs.frozen
class TrialJob:
    """Everything a worker process needs for one backtest (picklable)."""

    strategy_path: str
    data: str
    config: dict[str, Any]
    params: dict[str, Any]
    seed: int
    objective: str
    sample_s: float
    max_frames: int | None


def run_trial(job: TrialJob) -> tuple[float, dict[str, Any]]:
    """One backtest (in a worker process): the objective's value and the statistics."""
    import logging

    import structlog

    from framework.tools.backtest import run_backtest
    from framework.tools.loader import load_strategy_class

    # trials are many: only warnings, and not the per-fill info lines
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    base = dict(job.config)
    strategy_cfg = dict(base.get("strategy") or {})
    params = {**(strategy_cfg.get("params") or {}), **job.params}
    strategy_cfg["params"] = params
    base["strategy"] = strategy_cfg
    cls = load_strategy_class(job.strategy_path)
    result = run_backtest(
        job.data,
        [cls(params)],
        config=base,
        seed=job.seed,
        sample_interval_s=job.sample_s,
        max_frames=job.max_frames,
    )
    stats = statistics(result)
    stats.pop("per_day_pnl", None)
    value = objective(stats, job.objective)
    return (value if math.isfinite(value) else -math.inf), stats


@attrs.define
class StudyResult:
    best_params: dict[str, Any]
    best_value: float
    rows: list[dict[str, Any]]  # one per trial: number, value, params..., statistics...
    parquet: Path | None


def _storage(url: str | None) -> Any:
    if not url:
        return None
    if url.endswith((".log", ".journal")) and "://" not in url:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(url))
    return url


def optimize(
    strategy_path: str,
    data: str,
    params: list[ParamSpec],
    *,
    trials: int,
    workers: int = 1,
    objective_name: str = "pnl",
    seed: int = 0,
    storage: str | None = None,
    study_name: str = "botrun",
    config: dict[str, Any] | None = None,
    sample_s: float = 1.0,
    max_frames: int | None = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
) -> StudyResult:
    try:
        import optuna
    except ImportError as exc:
        raise MissingExtra(INSTALL_HINT) from exc
    if objective_name not in OBJECTIVES:
        raise ValueError(f"--objective {objective_name!r}: one of {', '.join(OBJECTIVES)}")
    if not params:
        raise ValueError("--param: give at least one parameter to search")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=study_name,
        storage=_storage(storage),
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        load_if_exists=True,
    )
    bar = _bar(trials, progress)
    workers = max(1, workers)
    # spawn: a clean interpreter per worker (no forked trio or sqlite state)
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=ctx) if workers > 1 else None
    try:
        done = 0
        while done < trials:
            batch = [study.ask() for _ in range(min(workers, trials - done))]
            jobs = [
                TrialJob(
                    strategy_path,
                    str(data),
                    dict(config or {}),
                    {p.name: p.suggest(t) for p in params},
                    seed,
                    objective_name,
                    sample_s,
                    max_frames,
                )
                for t in batch
            ]
            outcomes = list(pool.map(run_trial, jobs)) if pool else [run_trial(j) for j in jobs]
            # told in trial order, whatever finished first: the sampler sees the same history
            for trial, job, (value, stats) in zip(batch, jobs, outcomes, strict=True):
                trial.set_user_attr("stats", stats)
                study.tell(trial, value)
                row = {"number": trial.number, "value": value, **job.params, **stats}
                if on_trial is not None:
                    on_trial(row)
                bar.update(1)
            done += len(batch)
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown()
    rows = []
    for t in study.trials:
        if t.value is None:
            continue
        rows.append(
            {"number": t.number, "value": t.value, **t.params, **t.user_attrs.get("stats", {})}
        )
    rows.sort(key=lambda r: (-r["value"], r["number"]))
    parquet = _write_rows(rows, out_dir) if out_dir is not None else None
    best = rows[0] if rows else {"value": math.nan}
    return StudyResult(
        {p.name: best[p.name] for p in params if p.name in best}, best["value"], rows, parquet
    )


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc="trials", unit="trial")


def _write_rows(rows: list[dict[str, Any]], out_dir: str | Path) -> Path:
    from framework.tools.export import write_parquet

    names: list[str] = []
    for row in rows:
        names += [k for k in row if k not in names]
    columns = {n: [_cell(r.get(n)) for r in rows] for n in names}
    return write_parquet({"trials": columns}, out_dir)[0]


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return None if value is None else float(value)
    return value


def format_table(rows: list[dict[str, Any]], params: list[ParamSpec], limit: int = 10) -> str:
    """The best trials as a fixed-width table."""
    keys = [
        "number",
        "value",
        *[p.name for p in params],
        "total_pnl",
        "sharpe",
        "max_drawdown",
        "fills",
    ]
    lines = ["  ".join(f"{k:>14}" for k in keys)]
    for row in rows[:limit]:
        lines.append("  ".join(f"{_fmt(row.get(k)):>14}" for k in keys))
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def params_block(best: dict[str, Any]) -> str:
    """`[strategy.params]` with the best values, for config.toml."""
    lines = ["[strategy.params]"]
    for key, value in best.items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines)
