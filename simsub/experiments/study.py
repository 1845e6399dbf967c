"""Compare, sweep and tune: plan the runs, execute them, gather the statistics.

These are the functions behind ``simsub compare|sweep|tune`` and the Python
API for notebooks.  They return an :class:`~simsub.experiments.types.Experiment`;
writing it to a folder is :func:`simsub.report.experiment_folder.write_experiment`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from ..version import __version__
from ..analysis.intervals import Interval, interval, paired
from ..errors import ScenarioError
from ..scenario.loader import build_scenario
from ..scenario.types import Scenario
from .design import code_fingerprint, grid, replication_seed, run_key
from .execute import RunCache, Task, execute, open_executor
from .limits import bounds_for, difference_range
from .metrics import SPAM_REDUCTION, flatten_summary, headline_for
from .inputs import (AUTO, ScenarioSource, check_confidence, check_replications, resolve_baseline, scenario_source,
                     varied_parameters)
from .progress import ProgressBar
from .ranking import checked_preferences
from .types import Experiment, Varied

@dataclass
class _Planned:
    policy: str
    point: dict[str, Any]
    replication: int
    seed: int
    task: Task


def _plan(source: ScenarioSource, policies: list[str], points: list[dict[str, Any]], seeds: list[int],
          max_events: float | None = None) -> list[_Planned]:
    """Every (point, policy, replication) as a task; every point is validated here, before any run
    (and, with ``max_events``, checked against the resource budget)."""
    from ..estimate import check_budget

    planned = []
    for point in points:
        scenario = _build_point(source, point)
        if max_events is not None:
            where = f"at grid point {', '.join(f'{k}={v}' for k, v in point.items())}: " if point else ""
            check_budget(scenario, max_events, where)
        for policy in policies:
            for replication, seed in enumerate(seeds):
                key = run_key(scenario, policy, seed)
                planned.append(_Planned(policy, point, replication, seed,
                                        Task(key, source.raw, source.label, {**source.base_overrides, **point},
                                             policy, seed, code_fingerprint())))
    return planned


def _build_point(source: ScenarioSource, point: dict[str, Any]) -> Scenario:
    """The scenario at one grid point; an error names the --vary value behind it."""
    try:
        return build_scenario(source.raw, source.label, {**source.base_overrides, **point})
    except ScenarioError as exc:
        where = exc.source
        for name in point:
            where = where.replace(f"(--set {name})", f"(--vary {name})").replace(
                f"(--set params.{name})", f"(--vary {name})")
        values = ", ".join(f"{k}={v}" for k, v in point.items())
        raise ScenarioError(where, exc.key, f"{exc.message} (at grid point {values})") from None


def _check_each_varied_name_matters(source: ScenarioSource, varied: tuple[Varied, ...]) -> None:
    """Refuse a varied name whose values all give the same scenario: an unused
    parameter, or a key that --set or another --vary overrides."""
    base = {v.name: v.values[0] for v in varied}
    for v in (v for v in varied if len(v.values) > 1):
        contents = [_run_content(_build_point(source, {**base, v.name: value}).raw) for value in v.values]
        if all(c == contents[0] for c in contents[1:]):
            raise ScenarioError("--vary", v.name, "changes nothing in the scenario: the parameter is not used, or "
                                "its key is also set by --set or another --vary")


def _run_content(raw: dict) -> dict:
    """What of a resolved scenario a run reads: without the parameter table and
    the descriptions (which may quote a parameter without using it)."""
    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k != "description"}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    return strip({k: v for k, v in raw.items() if k != "params"})


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
    names = {p.task.key: ", ".join([p.policy, *(f"{k}={v}" for k, v in p.point.items()),
                                    f"replication {p.replication} (seed {p.seed})"]) for p in planned}
    bar = ProgressBar(unique, enabled=progress, names=names)
    own = executor is None
    executor = executor or open_executor(workers, dask)
    if cache:
        try:
            Path(cache).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if own:
                executor.close()
            raise ScenarioError("--cache", str(cache), f"cannot create the run cache: {exc.strerror}") from None
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
    # A summary leaves out counts that are zero (outcomes that did not occur, origins
    # nobody came from): they are 0, not unknown, in a run that finished.
    ok = runs["status"] == "ok"
    for column in runs.columns:
        if _ZERO_WHEN_ABSENT(column):
            runs.loc[ok, column] = runs.loc[ok, column].fillna(0.0)
    if baseline is not None and "spam.recipients_accepted" in runs:
        index = ["replication"] + varied_names
        base = runs[runs["policy"] == baseline].set_index(index)["spam.recipients_accepted"]
        matched = runs.join(base.rename("_base"), on=index)["_base"]
        spam = runs["spam.recipients_accepted"]
        runs[SPAM_REDUCTION] = (1.0 - spam / matched).where(matched > 0)
    return runs


def _ZERO_WHEN_ABSENT(column: str) -> bool:
    return column.startswith("legit.failed_by_outcome.") or (
        ".by_origin." in column and column.rsplit(".", 1)[-1] in ("messages", "failed", "recipients_accepted"))


def _metric_columns(runs: pd.DataFrame, varied_names: list[str]) -> list[str]:
    """Metric columns are dotted summary names; a varied dotted key is not one."""
    return [c for c in runs.columns if "." in c and c not in varied_names]


def _summary_table(runs: pd.DataFrame, varied_names: list[str], baseline: str | None,
                   confidence: float, bots: int | None = None) -> pd.DataFrame:
    """One row per policy, grid point and metric: ``n``, ``mean``, ``ci_low``, ``ci_high``, ``ci_rule``
    (see :mod:`simsub.analysis.intervals`) and, with a baseline, the paired difference."""
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
            got = interval(group[metric].to_numpy(), confidence, **bounds_for(group, metric, bots))
            if metric == SPAM_REDUCTION and ident["policy"] == baseline:
                got = Interval(got.mean, got.mean, got.mean, got.n, "0 by definition")  # the baseline against itself
            row = {**ident, "metric": metric, "n": got.n, "mean": got.mean, "ci_low": got.low,
                   "ci_high": got.high, "ci_rule": got.rule}
            if baseline is not None:
                if base is not None and metric != SPAM_REDUCTION:
                    lowest, highest = difference_range(metric, pd.concat([group, base]))
                    d = paired(by_seed[metric].to_dict(), base[metric].to_dict(), confidence, lowest,
                               highest).astuple()
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


def _descriptions(source: ScenarioSource, policies: list[str], varied: bool) -> dict[str, str]:
    """Policy descriptions as resolved; in a sweep as written (``sleep ${foreign_sleep}``),
    since the resolved text would show one grid point's values."""
    raw = source.raw if varied else source.scenario.raw
    return {p: str(raw["policies"][p].get("description", "")) for p in policies}


def _experiment(kind: str, source: ScenarioSource, policies: list[str], baseline: str | None, varied: tuple[Varied, ...],
                replications: int, root_seed: int, seeds: list[int], planned: list[_Planned],
                records: dict[str, dict], executor: str, command: str | None, started: float,
                confidence: float) -> Experiment:
    names = [v.name for v in varied]
    runs = _runs_table(planned, records, names, baseline)
    scenario = source.scenario
    # The bots behind spam.bots_succeeding; a grid may vary their number, so only a compare knows it.
    bots = None if names else sum(p.count for p in scenario.populations if p.is_bot)
    summary = _summary_table(runs, names, baseline, confidence, bots)
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


def _seeds(source: ScenarioSource, seed: int | None, replications: int) -> tuple[int, list[int]]:
    root = source.scenario.seed if seed is None else int(seed)
    return root, [replication_seed(root, r) for r in range(replications)]


def compare(scenario: str | Path | None = None, policies: Iterable[str] | None = None, replications: int = 5,
            baseline: str | None = AUTO, seed: int | None = None, workers: int | None = None,
            dask: str | None = None, cache: str | Path | None = None, overrides: dict[str, Any] | None = None,
            progress: bool | None = None, command: str | None = None, confidence: float = 0.95,
            executor=None, max_events: float | None = None, require: Iterable[str] = (),
            objectives: Iterable[tuple[str, str]] = ()) -> Experiment:
    """Every policy (default: all of the scenario's) on the same ``replications`` seeds.

    ``require`` ("METRIC OP NUMBER") and ``objectives`` ((metric, "minimize" or
    "maximize"), most important first) say what matters for the report's
    recommendation (:mod:`simsub.experiments.ranking`; default: its defaults).

    ``baseline``: the policy differences and spam reduction are measured
    against ("auto": the policy named ``none`` if the scenario has one).
    ``cache``: a folder where finished runs are kept so a repeated call
    resumes (None: keep nothing).  ``seed``: root seed (default: the scenario's).
    ``max_events``: refuse runs estimated beyond this many events (None: no check).
    """
    started = time.perf_counter()
    check_replications(replications)
    check_confidence(confidence)
    source = scenario_source(scenario, overrides)
    chosen = list(dict.fromkeys(source.scenario.policy_named(p) for p in (policies or source.scenario.policies)))
    base = resolve_baseline(source, baseline)
    preferences = checked_preferences(source.scenario, base is not None, require, objectives)
    if base is not None and base not in chosen:
        chosen = [base] + chosen
    root, seeds = _seeds(source, seed, replications)
    planned = _plan(source, chosen, [{}], seeds, max_events)
    records, description = _run_all(planned, cache, workers, dask, progress, executor)
    experiment = _experiment("compare", source, chosen, base, (), replications, root, seeds, planned, records,
                             description, command, started, confidence)
    if preferences is not None:
        experiment.extra["preferences"] = preferences
    return experiment


def sweep(scenario: str | Path | None = None, policy: str | None = None, vary=(), replications: int = 3,
          baseline: str | None = AUTO, seed: int | None = None, workers: int | None = None,
          dask: str | None = None, cache: str | Path | None = None, overrides: dict[str, Any] | None = None,
          progress: bool | None = None, command: str | None = None, confidence: float = 0.95,
          executor=None, kind: str = "sweep", max_events: float | None = None, race=None) -> Experiment:
    """``policy`` (and the baseline) at every point of the grid of ``vary``.

    ``vary``: ``{"name": [values]}``, or ``--vary`` texts such as
    ``"foreign_sleep=0:10:1"``; names are ``[params]`` names or dotted keys.
    ``race``: a :class:`simsub.experiments.racing.Race` (tune): run the points
    still in contention only (see that module); None runs the full grid.
    """
    started = time.perf_counter()
    check_replications(replications)
    check_confidence(confidence)
    source = scenario_source(scenario, overrides)
    varied = varied_parameters(vary)
    if not varied:
        raise ScenarioError("--vary", None, "give at least one parameter to vary, e.g. --vary foreign_sleep=0:10:1")
    chosen = [source.scenario.policy_named(policy)]
    base = resolve_baseline(source, baseline)
    if base == chosen[0]:
        raise ScenarioError("--policy", chosen[0], f"is the baseline the sweep is measured against; choose another "
                            f"--policy{' (the default policy is the baseline)' if policy is None else ''}, or another "
                            "--baseline")
    if base is not None:
        chosen = [base] + chosen
    points = grid(varied)
    _check_each_varied_name_matters(source, varied)
    root, seeds = _seeds(source, seed, replications)
    planned = _plan(source, chosen, points, seeds, max_events)
    if race is None:
        records, description = _run_all(planned, cache, workers, dask, progress, executor)
    else:
        own = executor is None
        executor = executor or open_executor(workers, dask)
        try:
            planned, records, description = _race(planned, points, chosen[-1], base, varied, replications, race,
                                                  lambda batch: _run_all(batch, cache, workers, dask, progress,
                                                                         executor), source.scenario)
        finally:
            if own:
                executor.close()
    return _experiment(kind, source, chosen, base, varied, replications, root, seeds, planned, records,
                       description, command, started, confidence)


def _race(planned: list[_Planned], points: list[dict[str, Any]], policy: str, baseline: str | None,
          varied: tuple[Varied, ...], replications: int, race, run, scenario: Scenario
          ) -> tuple[list[_Planned], dict[str, dict], str]:
    """Run ``planned`` look by look, dropping the points ``race`` rules out (see
    :mod:`simsub.experiments.racing`); the runs made, their records and the executor's description."""
    from .racing import Dropped, decide, looks_of

    names = [v.name for v in varied]
    ident = [tuple(p.get(n) for n in names) for p in points]
    level = race.begin(len(points), replications)
    number = len(race.tests) - 1  # 0: the grid, i: the i-th refinement round
    race.keys_full |= {p.task.key for p in planned}
    race.policy_runs_full += sum(1 for p in planned if p.policy == policy)
    bots = None if names else sum(p.count for p in scenario.populations if p.is_bot)
    looks = looks_of(replications, race.first)
    active = list(range(len(points)))
    ran: list[_Planned] = []
    records: dict[str, dict] = {}
    description = ""
    done, look = 0, 0
    while done < replications and active:
        # the next look's replication count; one point left (or no look left) runs to the end at once
        upto = next((n for n in looks if n > done), replications) if len(active) > 1 else replications
        keep = {ident[i] for i in active}
        batch = [p for p in planned if tuple(p.point.get(n) for n in names) in keep and done <= p.replication < upto]
        got, description = run(batch)
        records.update(got)
        ran += batch
        done = upto
        if done >= replications:
            break
        look += 1
        runs = _runs_table(ran, records, names, baseline)
        mine = runs[(runs["status"] == "ok") & (runs["policy"] == policy)]
        samples = []
        for i in active:
            mask = pd.Series(True, index=mine.index)
            for n, v in zip(names, ident[i]):
                mask &= mine[n] == v
            samples.append(mine[mask].set_index("seed"))
        labels = [", ".join(f"{n}={v}" for n, v in zip(names, ident[i])) for i in active]
        gone = set()
        for k, reason, why in decide(samples, race.conditions, race.objective, race.direction, level, labels, bots):
            race.dropped.append(Dropped(dict(points[active[k]]), done, look, reason, why, number))
            gone.add(active[k])
        active = [i for i in active if i not in gone]
    race.keys_run |= {p.task.key for p in ran}
    race.policy_runs += sum(1 for p in ran if p.policy == policy)
    return ran, records, description
