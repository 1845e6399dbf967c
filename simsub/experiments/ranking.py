"""Which policy to choose: requirements, costs in order of importance, and dominance.

What the admin said matters (``--require`` and ``--minimize``/``--maximize`` on
``compare``, as on ``tune``) is a :class:`Preferences`; :func:`rank` turns an
experiment into a :class:`Ranking`:

* **feasible**: the policies whose mean meets every requirement;
* **recommended**: among them, the best mean on the first objective; where
  others cannot be told apart from it on that objective (the paired interval
  of the difference contains 0), the next objective decides among those, and
  so on.  The runner-up is what the same rule picks from the rest;
* **dominated**: a policy is dominated by another that is, on every headline
  metric (spam, every legitimate-mail cost, bounces, hours listed, ...), better
  or not distinguishable, and clearly better on at least one (paired
  interval excluding 0).  With one replication the means decide.

Comparisons are paired: every policy runs on the same seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd


from ..analysis.intervals import Interval, paired
from ..errors import ScenarioError
from .limits import difference_range
from .metrics import FALSE_DELAY_5S, SPAM_ACCEPTED, SPAM_REDUCTION, known_metrics
from .types import Experiment

#: The default requirement when there is a baseline: MODEL.md's "stops almost all of it".
DEFAULT_REDUCTION = 0.95
#: Default costs, most important first; the queue metrics count only when the scenario has a queue.
DEFAULT_COSTS = (FALSE_DELAY_5S, "legit.failed", "legit.bounced", "reputation.listed_h_total")


@dataclass(frozen=True)
class Preferences:
    """``require``: texts "METRIC OP NUMBER" (``95%`` is 0.95); ``objectives``: (metric, "minimize" or
    "maximize"), most important first; ``given``: whether the admin gave them (else the defaults)."""

    require: tuple[str, ...] = ()
    objectives: tuple[tuple[str, str], ...] = ()
    given: bool = False


@dataclass
class Ranking:
    preferences: Preferences
    feasible: list[str]  # policies meeting every requirement, best first
    recommended: str | None
    runner_up: str | None
    decided_by: str | None  # the objective that separated the recommendation from the runner-up
    #: runner-up minus recommended on ``decided_by``, paired; None without a runner-up
    difference: Interval | None
    #: requirement text -> {policy: (mean, low, high, met)}
    requirement_values: dict[str, dict[str, tuple[float, float, float, bool]]]
    #: dominated policy -> (the policy dominating it, the metrics on which it is clearly worse)
    dominated: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    closest: str | None = None  # when nothing is feasible: the policy missing the requirements by the least


def default_preferences(experiment: Experiment) -> Preferences:
    present = {m.name for m in experiment.metrics}
    require = (f"{SPAM_REDUCTION}>={DEFAULT_REDUCTION:g}",) if SPAM_REDUCTION in present else ()
    objectives = tuple((name, "minimize") for name in DEFAULT_COSTS if name in present)
    return Preferences(require, objectives or ((SPAM_ACCEPTED, "minimize"),), given=False)


def preferences_of(experiment: Experiment) -> Preferences:
    given = experiment.extra.get("preferences")
    return given if isinstance(given, Preferences) else default_preferences(experiment)


def checked_preferences(scenario, has_baseline: bool, require, objectives) -> Preferences | None:
    """The admin's preferences, every metric checked before any run (a ScenarioError, exit 2, names the option);
    None when none were given (the report then uses :func:`default_preferences`)."""
    from .tune import check_metric, parse_requirement

    require = tuple(parse_requirement(t, scenario, has_baseline).text for t in (require or ()))
    checked = []
    for metric, direction in objectives or ():
        if direction not in ("minimize", "maximize"):
            raise ScenarioError(f"--{direction}", metric, "expected minimize or maximize")
        check_metric(metric, scenario, has_baseline, f"--{direction}", metric)
        checked.append((metric, direction))
    if not require and not checked:
        return None
    if not checked:  # requirements alone: the default costs rank the policies that meet them
        checked = [(name, "minimize") for name in DEFAULT_COSTS if name in known_metrics(scenario)]
    return Preferences(require, tuple(checked), given=True)


def _parse(text: str) -> tuple[str, str, float] | None:
    from .tune import _REQUIREMENT

    found = _REQUIREMENT.match(text)
    if not found:
        return None
    metric, op, number, percent = found.groups()
    return metric, op, float(number) / (100.0 if percent else 1.0)


def _met(op: str, mean: float, threshold: float) -> bool:
    from .tune import _OPERATORS

    return math.isfinite(mean) and _OPERATORS[op](mean, threshold)


class _Seeds:
    """Per-seed values of each policy in a compare (first grid point only: rankings are for compares).

    A ranking asks for the same policy's values, and the same pair's difference, many times over (every
    policy against every other on every headline metric, then again to pick the recommendation): each
    is computed once and remembered (a compare's report used to spend seconds re-filtering the runs
    table, more than the parent process's whole report otherwise)."""

    def __init__(self, experiment: Experiment):
        runs = experiment.runs
        self.ok = runs[runs["status"] == "ok"] if "status" in runs else runs
        self.confidence = experiment.confidence
        self.summary = experiment.summary
        self._rows: dict[str, pd.DataFrame] = {}  # policy → its runs, indexed by seed
        self._values: dict[tuple[str, str], dict[Any, float]] = {}
        self._differences: dict[tuple[str, str, str], Interval] = {}
        self._pairs: dict[tuple[str, str], pd.DataFrame] = {}  # (a, b) → the runs of both

    def values(self, policy: str, metric: str) -> dict[Any, float]:
        """seed → value of ``metric`` for ``policy`` (a dict shared between calls: do not change it)."""
        found = self._values.get((policy, metric))
        if found is None:
            rows = self._rows.get(policy)
            if rows is None:
                rows = self._rows[policy] = self.ok[self.ok["policy"] == policy].set_index("seed")
            found = rows[metric].astype(float).to_dict() if metric in rows else {}
            self._values[(policy, metric)] = found
        return found

    def mean(self, policy: str, metric: str) -> float:
        values = [v for v in self.values(policy, metric).values() if math.isfinite(v)]
        return sum(values) / len(values) if values else math.nan

    def interval(self, policy: str, metric: str) -> tuple[float, float]:
        rows = self.summary[(self.summary["policy"] == policy) & (self.summary["metric"] == metric)]
        if rows.empty:
            return math.nan, math.nan
        return float(rows["ci_low"].iloc[0]), float(rows["ci_high"].iloc[0])

    def difference(self, a: str, b: str, metric: str) -> Interval:
        """a minus b on matching seeds."""
        found = self._differences.get((a, b, metric))
        if found is None:
            both = self._pairs.get((a, b))
            if both is None:
                both = self._pairs[(a, b)] = self.ok[self.ok["policy"].isin([a, b])]
            found = self._differences[(a, b, metric)] = paired(
                self.values(a, metric), self.values(b, metric), self.confidence, *difference_range(metric, both))
        return found


def _sign(direction: str) -> float:
    return 1.0 if direction == "minimize" else -1.0


def _clearly(d: Interval, sign: float) -> int:
    """+1 when a − b is clearly worse (in the direction ``sign`` counts as worse), −1 clearly better, 0 neither.
    Without an interval (one replication) the mean decides."""
    if not math.isfinite(d.mean):
        return 0
    low, high = d.low * sign, d.high * sign
    if math.isnan(d.low) or math.isnan(d.high):
        value = d.mean * sign
        return (value > 0) - (value < 0)
    low, high = min(low, high), max(low, high)
    return 1 if low > 0 else -1 if high < 0 else 0


def _pick(seeds: _Seeds, candidates: list[str], objectives: tuple[tuple[str, str], ...]
          ) -> tuple[str | None, str | None]:
    """The candidate the objectives choose, and the objective that settled it."""
    left = list(candidates)
    decided = None
    for metric, direction in objectives:
        sign = _sign(direction)
        scored = [(sign * seeds.mean(p, metric), p) for p in left if math.isfinite(seeds.mean(p, metric))]
        if not scored:
            continue
        leader = min(scored, key=lambda t: t[0])[1]
        tied = [p for p in left if p == leader or _clearly(seeds.difference(p, leader, metric), sign) == 0]
        decided = metric
        left = tied
        if len(left) == 1:
            break
    if not left:
        return None, decided
    if len(left) > 1 and objectives:  # still tied after every objective: the best mean on the first one
        metric, direction = objectives[0]
        left.sort(key=lambda p: _sign(direction) * seeds.mean(p, metric)
                  if math.isfinite(seeds.mean(p, metric)) else math.inf)
    return left[0], decided


def dominated(experiment: Experiment, seeds: _Seeds | None = None) -> dict[str, tuple[str, list[str]]]:
    """Every policy dominated on the headline metrics by another: {policy: (by whom, where it is clearly worse)}."""
    seeds = seeds or _Seeds(experiment)
    metrics = [m for m in experiment.metrics]
    out: dict[str, tuple[str, list[str]]] = {}
    for b in experiment.policies:
        for a in experiment.policies:
            if a == b:
                continue
            worse_somewhere, clearly_worse = False, []
            for metric in metrics:
                if metric.name == SPAM_REDUCTION and experiment.baseline in (a, b):
                    continue  # 0 by definition for the baseline: spam accepted compares them
                d = seeds.difference(b, a, metric.name)
                if not math.isfinite(d.mean):
                    continue
                verdict = _clearly(d, _sign("minimize" if metric.better == "lower" else "maximize"))
                if verdict < 0:
                    worse_somewhere = True
                    break
                if verdict > 0:
                    clearly_worse.append(metric.name)
            if not worse_somewhere and clearly_worse:
                if b not in out or len(clearly_worse) > len(out[b][1]):
                    out[b] = (a, clearly_worse)
    return out


def rank(experiment: Experiment, preferences: Preferences | None = None) -> Ranking:
    preferences = preferences or preferences_of(experiment)
    seeds = _Seeds(experiment)
    policies = list(experiment.policies)
    values: dict[str, dict[str, tuple[float, float, float, bool]]] = {}
    feasible = []
    shortfall: dict[str, tuple[int, float]] = {}
    for policy in policies:
        ok, missed, gap = True, 0, 0.0
        for text in preferences.require:
            parsed = _parse(text)
            if parsed is None:
                continue
            metric, op, threshold = parsed
            mean = seeds.mean(policy, metric)
            low, high = seeds.interval(policy, metric)
            met = _met(op, mean, threshold)
            values.setdefault(text, {})[policy] = (mean, low, high, met)
            if not met:
                ok = False
                missed += 1
                gap += abs(mean - threshold) / max(abs(threshold), 1e-9) if math.isfinite(mean) else math.inf
        shortfall[policy] = (missed, gap)
        if ok:
            feasible.append(policy)
    recommended, decided = _pick(seeds, feasible, preferences.objectives)
    rest = [p for p in feasible if p != recommended]
    runner_up, _ = _pick(seeds, rest, preferences.objectives) if rest else (None, None)
    difference = None
    if recommended and runner_up:
        metric = decided or (preferences.objectives[0][0] if preferences.objectives else None)
        if metric:
            decided = metric
            difference = seeds.difference(runner_up, recommended, metric)
    order = [p for p in [recommended, runner_up] if p] + [p for p in feasible if p not in (recommended, runner_up)]
    closest = None
    if not feasible and preferences.require:
        closest = min(policies, key=lambda p: (shortfall[p], policies.index(p)))
    return Ranking(preferences, order, recommended, runner_up, decided, difference, values,
                   dominated(experiment, seeds), closest)
