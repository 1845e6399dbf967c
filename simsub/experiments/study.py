"""Compare, sweep and tune: plan the runs, execute them, gather the statistics.

These are the functions behind ``simsub compare|sweep|tune`` and the Python
API for notebooks.  They return an :class:`~simsub.experiments.types.Experiment`;
writing it to a folder is :func:`simsub.experiments.output.write_experiment`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from .. import __version__
from ..analysis.stats import mean_ci, paired_difference
from ..errors import ScenarioError
from ..scenario.files import read_scenario_file
from ..scenario.loader import build_scenario
from ..scenario.types import Scenario
from .design import grid, parse_vary, replication_seed, run_key
from .execute import RunCache, Task, execute, open_executor
from .metrics import SPAM_REDUCTION, flatten_summary, headline_for
from .progress import ProgressBar
from .types import Experiment, Varied

AUTO = "auto"  # baseline: the scenario's policy named "none", if it has one


@dataclass
class _Source:
    """The scenario file as parsed, before overrides: what every run rebuilds from."""

    raw: dict
    label: str
    base_overrides: dict[str, Any]
    scenario: Scenario  # built with the base overrides (validation, names, descriptions)


def _source(scenario: str | Path | None, overrides: dict[str, Any] | None) -> _Source:
    raw, label = read_scenario_file(scenario)
    overrides = dict(overrides or {})
    return _Source(raw, label, overrides, build_scenario(raw, label, overrides))


def _baseline(source: _Source, baseline: str | None) -> str | None:
    if baseline == AUTO:
        return "none" if "none" in source.scenario.policies else None
    if baseline is None:
        return None
    try:
        return source.scenario.policy_named(baseline)
    except ScenarioError as exc:
        raise ScenarioError(exc.source, "--baseline", exc.message) from None


@dataclass
class _Planned:
    policy: str
    point: dict[str, Any]
    replication: int
    seed: int
    task: Task


def _plan(source: _Source, policies: list[str], points: list[dict[str, Any]], seeds: list[int]) -> list[_Planned]:
    """Every (point, policy, replication) as a task; every point is validated here, before any run."""
    planned = []
    for point in points:
        overrides = {**source.base_overrides, **point}
        try:
            scenario = build_scenario(source.raw, source.label, overrides)
        except ScenarioError as exc:
            values = ", ".join(f"{k}={v}" for k, v in point.items())
            raise ScenarioError(exc.source, exc.key, f"{exc.message} (at grid point {values})") from None
        for policy in policies:
            for replication, seed in enumerate(seeds):
                key = run_key(scenario, policy, seed)
                planned.append(_Planned(policy, point, replication, seed,
                                        Task(key, source.raw, source.label, overrides, policy, seed)))
    return planned


class _NoCache(RunCache):
    def __init__(self):
        super().__init__(Path("."))

    def get(self, key):
        return None

    def put(self, record):
        pass


def _run_all(planned: list[_Planned], cache: str | Path | None, workers: int | None, dask: str | None,
             progress: bool | None, executor=None) -> tuple[dict[str, dict], str]:
    tasks = [p.task for p in planned]
    unique = len({t.key for t in tasks})
    bar = ProgressBar(unique, enabled=progress)
    own = executor is None
    executor = executor or open_executor(workers, dask)
    try:
        records = execute(tasks, RunCache(Path(cache)) if cache else _NoCache(), executor, bar)
    finally:
        bar.close()
        if own:
            executor.close()
    return records, executor.description


def _runs_table(planned: list[_Planned], records: dict[str, dict], varied_names: list[str],
                baseline: str | None) -> pd.DataFrame:
    rows = []
    for p in planned:
        record = records[p.task.key]
        row: dict[str, Any] = {"policy": p.policy, **{n: p.point.get(n) for n in varied_names},
                               "replication": p.replication, "seed": p.seed, "status": record["status"],
                               "error": record.get("error", ""), "cached": bool(record.get("cached")),
                               "wall_s": float(record.get("wall_s", math.nan)), "key": p.task.key}
        if record["status"] == "ok":
            row.update(flatten_summary(record["summary"]))
        rows.append(row)
    runs = pd.DataFrame(rows)
    if baseline is not None and "spam.recipients_accepted" in runs:
        index = ["replication"] + varied_names
        base = runs[runs["policy"] == baseline].set_index(index)["spam.recipients_accepted"]
        matched = runs.join(base.rename("_base"), on=index)["_base"]
        spam = runs["spam.recipients_accepted"]
        runs[SPAM_REDUCTION] = (1.0 - spam / matched).where(matched > 0)
    return runs


def _metric_columns(runs: pd.DataFrame, varied_names: list[str]) -> list[str]:
    """Metric columns are dotted summary names; a varied dotted key is not one."""
    return [c for c in runs.columns if "." in c and c not in varied_names]


def _summary_table(runs: pd.DataFrame, varied_names: list[str], baseline: str | None,
                   confidence: float) -> pd.DataFrame:
    metrics = _metric_columns(runs, varied_names)
    ok = runs[runs["status"] == "ok"]
    groups = ["policy"] + varied_names
    rows = []
    for keys, group in ok.groupby(groups, sort=False, dropna=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        ident = dict(zip(groups, keys))
        base = None
        if baseline is not None and ident["policy"] != baseline:
            mask = ok["policy"] == baseline
            for name in varied_names:
                mask &= ok[name] == ident[name]
            base = ok[mask].set_index("seed")
        by_seed = group.set_index("seed")
        for metric in metrics:
            mean, low, high, n = mean_ci(group[metric].to_numpy(), confidence)
            row = {**ident, "metric": metric, "n": n, "mean": mean, "ci_low": low, "ci_high": high}
            if baseline is not None:
                if base is not None and metric != SPAM_REDUCTION:
                    d = paired_difference(by_seed[metric].to_dict(), base[metric].to_dict(), confidence)
                else:
                    d = (math.nan, math.nan, math.nan, 0)
                row.update(diff_mean=d[0], diff_low=d[1], diff_high=d[2], diff_n=d[3])
            rows.append(row)
    return pd.DataFrame(rows)


def _facts(scenario: Scenario) -> dict[str, str]:
    users = sum(p.count for p in scenario.populations if not p.is_bot)
    bots = sum(p.count for p in scenario.populations if p.is_bot)
    facts = {
        "simulated time": f"{scenario.horizon / 3600:g} h of client arrivals",
        "legitimate users": f"{users:,} in {sum(1 for p in scenario.populations if not p.is_bot)} population(s)",
        "bots": f"{bots:,} in {sum(1 for p in scenario.populations if p.is_bot)} population(s)",
        "smtpd process limit": f"{scenario.mta.process_limit}",
        "origins": ", ".join(scenario.origins),
    }
    if scenario.queue is not None:
        facts["behind the front end"] = (f"mail queue, {len(scenario.destinations)} destinations, "
                                        f"{len(scenario.reputation)} reputation lists"
                                        + (", an operator" if scenario.operator is not None else ""))
    return facts


def _descriptions(source: _Source, policies: list[str], varied: bool) -> dict[str, str]:
    """Policy descriptions as resolved; in a sweep as written (``sleep ${foreign_sleep}``),
    since the resolved text would show one grid point's values."""
    raw = source.raw if varied else source.scenario.raw
    return {p: str(raw["policies"][p].get("description", "")) for p in policies}


def _experiment(kind: str, source: _Source, policies: list[str], baseline: str | None, varied: tuple[Varied, ...],
                replications: int, root_seed: int, seeds: list[int], planned: list[_Planned],
                records: dict[str, dict], executor: str, command: str | None, started: float,
                confidence: float) -> Experiment:
    names = [v.name for v in varied]
    runs = _runs_table(planned, records, names, baseline)
    summary = _summary_table(runs, names, baseline, confidence)
    scenario = source.scenario
    present = set(runs.columns)
    metrics = tuple(m for m in headline_for(scenario.queue is not None, baseline is not None) if m.name in present)
    return Experiment(
        kind=kind, scenario_name=scenario.name, scenario_label=source.label,
        scenario_description=scenario.description, scenario_facts=_facts(scenario),
        policies=tuple(policies), policy_descriptions=_descriptions(source, policies, bool(varied)),
        baseline=baseline, varied=varied, params=dict(getattr(scenario, "params", {}) or {}),
        overrides=dict(source.base_overrides), replications=replications, root_seed=root_seed,
        seeds=tuple(seeds), runs=runs, summary=summary, metrics=metrics,
        command=command or "", version=__version__, wall_s=time.perf_counter() - started, executor=executor,
        confidence=confidence)


def _check_replications(replications: int) -> None:
    if not isinstance(replications, int) or replications < 1:
        raise ScenarioError("--replications", str(replications), "expected a whole number >= 1")


def _seeds(source: _Source, seed: int | None, replications: int) -> tuple[int, list[int]]:
    root = source.scenario.seed if seed is None else int(seed)
    return root, [replication_seed(root, r) for r in range(replications)]


def compare(scenario: str | Path | None = None, policies: Iterable[str] | None = None, replications: int = 5,
            baseline: str | None = AUTO, seed: int | None = None, workers: int | None = None,
            dask: str | None = None, cache: str | Path | None = None, overrides: dict[str, Any] | None = None,
            progress: bool | None = None, command: str | None = None, confidence: float = 0.95,
            executor=None) -> Experiment:
    """Every policy (default: all of the scenario's) on the same ``replications`` seeds.

    ``baseline``: the policy differences and spam reduction are measured
    against ("auto": the policy named ``none`` if the scenario has one).
    ``cache``: a folder where finished runs are kept so a repeated call
    resumes (None: keep nothing).  ``seed``: root seed (default: the scenario's).
    """
    started = time.perf_counter()
    _check_replications(replications)
    source = _source(scenario, overrides)
    chosen = [source.scenario.policy_named(p) for p in (policies or source.scenario.policies)]
    base = _baseline(source, baseline)
    if base is not None and base not in chosen:
        chosen = [base] + chosen
    root, seeds = _seeds(source, seed, replications)
    planned = _plan(source, chosen, [{}], seeds)
    records, description = _run_all(planned, cache, workers, dask, progress, executor)
    return _experiment("compare", source, chosen, base, (), replications, root, seeds, planned, records,
                       description, command, started, confidence)


def _varied(vary) -> tuple[Varied, ...]:
    if isinstance(vary, dict):
        return tuple(Varied(k, tuple(v)) for k, v in vary.items())
    return tuple(v if isinstance(v, Varied) else parse_vary(v) for v in vary)


def sweep(scenario: str | Path | None = None, policy: str | None = None, vary=(), replications: int = 3,
          baseline: str | None = AUTO, seed: int | None = None, workers: int | None = None,
          dask: str | None = None, cache: str | Path | None = None, overrides: dict[str, Any] | None = None,
          progress: bool | None = None, command: str | None = None, confidence: float = 0.95,
          executor=None, kind: str = "sweep") -> Experiment:
    """``policy`` (and the baseline) at every point of the grid of ``vary``.

    ``vary``: ``{"name": [values]}``, or ``--vary`` texts such as
    ``"foreign_sleep=0:10:1"``; names are ``[params]`` names or dotted keys.
    """
    started = time.perf_counter()
    _check_replications(replications)
    source = _source(scenario, overrides)
    varied = _varied(vary)
    if not varied:
        raise ScenarioError("--vary", None, "give at least one parameter to vary, e.g. --vary foreign_sleep=0:10:1")
    chosen = [source.scenario.policy_named(policy)]
    base = _baseline(source, baseline)
    if base is not None and base not in chosen:
        chosen = [base] + chosen
    root, seeds = _seeds(source, seed, replications)
    planned = _plan(source, chosen, grid(varied), seeds)
    records, description = _run_all(planned, cache, workers, dask, progress, executor)
    return _experiment(kind, source, chosen, base, varied, replications, root, seeds, planned, records,
                       description, command, started, confidence)
