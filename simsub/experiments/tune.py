"""``simsub tune``: the grid point that meets every requirement at the best objective.

Requirements and the objective are judged on the mean over replications; the
report gives the intervals so a reader sees how close the call was, and the
runner-up is compared with the best on matching seeds (paired).
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..analysis.intervals import paired
from ..errors import ScenarioError
from ..scenario.types import Scenario
from .limits import difference_range
from .racing import Condition, Race
from .metrics import SPAM_REDUCTION, guess_unit, known_metrics
from .inputs import AUTO, check_replications, resolve_baseline, scenario_source, varied_parameters
from .study import sweep
from .types import Experiment, TuneOutcome, Varied

_OPERATORS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(>=|<=|==|>|<)\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(%?)\s*$")


@dataclass(frozen=True)
class Requirement:
    """``metric OP value`` on the mean over replications, e.g. ``spam.reduction>=0.95`` (or ``95%``)."""

    text: str
    metric: str
    op: str
    value: float

    def met(self, mean: float) -> bool:
        return not math.isnan(mean) and _OPERATORS[self.op](mean, self.value)


def parse_requirement(text: str, scenario: Scenario, has_baseline: bool) -> Requirement:
    match = _REQUIREMENT.match(text)
    if not match:
        raise ScenarioError("--require", text, "expected METRIC OP NUMBER with OP one of >= <= > < ==, "
                            "e.g. \"spam.reduction>=0.95\"")
    metric, op, number, percent = match.groups()
    value = float(number) / (100.0 if percent else 1.0)
    check_metric(metric, scenario, has_baseline, "--require", text)
    unit = guess_unit(metric)
    low, high = (0.0, 1.0) if unit == "share" else (0.0, math.inf)
    impossible = ((op in (">=", "==") and value > high) or (op == ">" and value >= high)
                  or (op in ("<=", "==") and value < low) or (op == "<" and value <= low))
    if impossible:
        span = "between 0 and 1 (0% and 100%)" if unit == "share" else "at least 0"
        raise ScenarioError("--require", text, f"can never hold: {metric} is {span}")
    return Requirement(text, metric, op, value)


def check_metric(metric: str, scenario: Scenario, has_baseline: bool, option: str, text: str) -> None:
    if metric == SPAM_REDUCTION and not has_baseline:
        raise ScenarioError(option, text, f"{SPAM_REDUCTION} needs a baseline policy (--baseline NAME)")
    names = known_metrics(scenario)
    if metric not in names and not metric.startswith("legit.failed_by_outcome."):
        import difflib

        close = difflib.get_close_matches(metric, sorted(names), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "; see docs/experiments.md for the metric names"
        raise ScenarioError(option, text, f"unknown metric {metric!r}{hint}")


def _best_points(experiment: Experiment, policy: str, requirements: list[Requirement], objective: str,
                 direction: str, race: Race | None = None) -> pd.DataFrame:
    """One row per grid point, best first: feasible points, among them those racing kept, then by objective."""
    names = [v.name for v in experiment.varied]
    summary = experiment.summary
    columns = names + ["objective_mean"] + [c for i in range(len(requirements))
                                            for c in (f"req_{i}_mean", f"req_{i}_met")] + ["feasible", "n",
                                                                                           "dropped"]
    last = len(race.tests) - 1 if race is not None else -1
    dropped = {tuple(d.point.get(n) for n in names): f"after {d.replications} replications: {d.why}"
               for d in (race.dropped if race is not None else []) if d.race == last}
    if not len(summary) or "policy" not in summary:
        return pd.DataFrame(columns=columns)  # every run failed
    mine = summary[summary["policy"] == policy]
    rows = []
    for keys, group in mine.groupby(names, sort=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        means = group.set_index("metric")["mean"]
        row: dict[str, Any] = dict(zip(names, keys))
        row["objective_mean"] = float(means.get(objective, math.nan))
        feasible = True
        for i, requirement in enumerate(requirements):
            mean = float(means.get(requirement.metric, math.nan))
            row[f"req_{i}_mean"] = mean
            row[f"req_{i}_met"] = requirement.met(mean)
            feasible &= row[f"req_{i}_met"]
        row["feasible"] = bool(feasible) and not math.isnan(row["objective_mean"])
        row["n"] = int(group.set_index("metric")["n"].get(objective, 0))
        row["dropped"] = dropped.get(tuple(row[n] for n in names), "")
        rows.append(row)
    points = pd.DataFrame(rows, columns=columns)
    if not len(points):
        return points
    sign = 1.0 if direction == "minimize" else -1.0
    points["_order"] = sign * points["objective_mean"]
    points["_out"] = points["dropped"] != ""  # a point racing dropped has fewer runs: a survivor comes first
    points = points.sort_values(["feasible", "_out", "_order"], ascending=[False, True, True], kind="stable")
    return points.drop(columns=["_order", "_out"]).reset_index(drop=True)


def _refined_values(varied: tuple[Varied, ...], best: dict[str, Any]) -> tuple[Varied, ...] | None:
    """For each numeric parameter, the points halfway between the best value and
    its neighbours in the grid tried so far (whole numbers stay whole); None when
    there is nothing new to try."""
    out = []
    grew = False
    for v in varied:
        numeric = [x for x in v.values if isinstance(x, (int, float)) and not isinstance(x, bool)]
        if len(numeric) != len(v.values) or len(numeric) < 2:
            out.append(Varied(v.name, (best[v.name],)))
            continue
        value = best[v.name]
        integral = all(isinstance(x, int) for x in numeric)
        candidates = {value}
        lower = [x for x in numeric if x < value]
        upper = [x for x in numeric if x > value]
        for neighbour in ([max(lower)] if lower else []) + ([min(upper)] if upper else []):
            middle = (value + neighbour) / 2
            middle = int(round(middle)) if integral else float(f"{middle:.12g}")
            if middle != value and middle != neighbour:
                candidates.add(middle)
        grew |= len(candidates) > 1
        out.append(Varied(v.name, tuple(sorted(candidates))))
    return tuple(out) if grew else None


def tune(scenario=None, policy: str | None = None, vary=(), require=(), minimize: str | None = None,
         maximize: str | None = None, refine: int = 0, replications: int = 10, baseline: str | None = AUTO,
         seed: int | None = None, workers: int | None = None, dask: str | None = None, cache=None,
         overrides: dict[str, Any] | None = None, progress: bool | None = None, command: str | None = None,
         confidence: float = 0.95, max_events: float | None = None, race: bool = True) -> Experiment:
    """Search the grid of ``vary`` for the point meeting every ``require`` with the best objective.

    ``refine`` rounds then try the points halfway to the best point's
    neighbours (numeric parameters; whole numbers stay whole).  ``race``: stop
    running points that clearly fail a requirement or lose on the objective
    (:mod:`simsub.experiments.racing`; the true best is dropped with
    probability at most 1 - ``confidence``); False runs the full grid.
    """
    from .design import grid
    from .execute import open_executor

    if (minimize is None) == (maximize is None):
        raise ScenarioError("--minimize", None, "give exactly one of --minimize METRIC or --maximize METRIC")
    objective, direction = (minimize, "minimize") if minimize else (maximize, "maximize")
    source = scenario_source(scenario, overrides)
    base = resolve_baseline(source, baseline)
    requirements = [parse_requirement(t, source.scenario, base is not None) for t in require]
    check_metric(objective, source.scenario, base is not None, f"--{direction}", objective)
    varied = varied_parameters(vary)
    grid(varied)  # validates names and sizes before anything runs
    if refine < 0:
        raise ScenarioError("--refine", str(refine), "expected a whole number >= 0")
    check_replications(replications)
    if source.scenario.policy_named(policy) == base:
        raise ScenarioError("--policy", base, "is the baseline the tuning is measured against; choose another "
                            "--policy or --baseline")

    racing = Race([Condition(r.metric, r.op, r.value) for r in requirements], objective, direction,
                  1.0 - confidence) if race else None
    common = dict(scenario=scenario, policy=policy, replications=replications, baseline=baseline, seed=seed,
                  cache=cache, overrides=overrides, progress=progress, command=command, confidence=confidence,
                  kind="tune", max_events=max_events, race=racing)
    executor = open_executor(workers, dask)
    try:
        experiment = sweep(vary=varied, executor=executor, **common)
        chosen = experiment.policies[-1]
        rounds = 0
        for round_ in range(1, refine + 1):
            points = _best_points(experiment, chosen, requirements, objective, direction, racing)
            if not len(points) or not points.loc[0, "feasible"]:
                break
            best = {v.name: points.loc[0, v.name] for v in varied}
            finer = _refined_values(experiment.varied, best)
            if finer is None:
                break
            merged = tuple(Varied(v.name, tuple(sorted(set(v.values) | set(f.values)))) for v, f in
                           zip(experiment.varied, finer))
            wall = experiment.wall_s
            experiment = sweep(vary=merged, executor=executor, **common)
            experiment.wall_s += wall
            rounds = round_
    finally:
        executor.close()

    points = _best_points(experiment, chosen, requirements, objective, direction, racing)
    names = [v.name for v in varied]
    feasible = points[points["feasible"]]
    best = {n: feasible.iloc[0][n] for n in names} if len(feasible) else None
    runner = {n: feasible.iloc[1][n] for n in names} if len(feasible) > 1 else None
    difference = None
    if best and runner:
        ok = experiment.runs[(experiment.runs["status"] == "ok") & (experiment.runs["policy"] == chosen)]

        def at(point):
            mask = pd.Series(True, index=ok.index)
            for n in names:
                mask &= ok[n] == point[n]
            return ok[mask].set_index("seed")[objective].to_dict()

        mean, low, high, n = paired(at(runner), at(best), confidence, *difference_range(objective, ok)).astuple()
        difference = {"mean": mean, "ci_low": low, "ci_high": high, "n": n}
    experiment.tune = TuneOutcome(policy=chosen, require=tuple(r.text for r in requirements), objective=objective,
                                  direction=direction, best=_plain(best), runner_up=_plain(runner), points=points,
                                  runner_up_difference=difference, refinements=rounds,
                                  race=racing.record() if racing is not None else None)
    return experiment


def _plain(point: dict | None) -> dict | None:
    if point is None:
        return None
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in point.items()}
