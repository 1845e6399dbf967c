"""Racing: a tune stops spending replications on grid points that clearly cannot win.

Every grid point first runs the same ``FIRST_REPLICATIONS`` seeds; then, one
replication at a time, only the points still in contention run the next seed.
After each replication (a *look*) a point is dropped when, with confidence,

* it fails a requirement: the one-sided bound of its mean on the requirement's
  metric lies on the failing side of the threshold; or
* it is worse on the objective than another point still running that meets
  every requirement with confidence (each requirement's one-sided bound on the
  meeting side): the one-sided bound of the paired difference (same seeds:
  common random numbers) excludes "no worse".

**Guarantee.** Let b be a grid point that meets every requirement in
expectation and has the best expected objective among such points (the true
best).  b is dropped only if one of these statements, made at some look, is
wrong: "b fails requirement j" (q per look), "point L meets requirement j"
about a point L that does not (q (K - 1)), or "b is worse than L" (K - 1).
With K grid points, q requirements and T looks that is at most
M = T (q K + K - 1) statements, each made from a one-sided bound that errs with
probability at most alpha / M; by Bonferroni's inequality b is dropped with
probability at most alpha.  simsub uses alpha = 1 - the experiment's confidence.
Each bound is Student t where the values differ (so "errs with probability at
most alpha / M" holds to the accuracy of the t approximation, as for every
interval in the report) and the rules of :mod:`simsub.analysis.intervals`
where they do not.

A point that survives runs every replication, so its mean is the full grid's;
the recommendation is chosen among the survivors by the same rule as the full
grid.  The decisions use only finished runs, after every run of a look has
finished, in grid order: the same command makes the same runs on any number of
workers, and a resumed command (runs read from the cache) the same decisions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as _scipy_stats

from ..analysis.intervals import finite_values, interval
from .limits import bounds_for

#: Replications every grid point runs before any point may be dropped: the fewest that give a
#: Student t bound with 2 degrees of freedom (with 1, the bound at alpha / M is hundreds of
#: standard errors wide and drops nothing).
FIRST_REPLICATIONS = 3


def one_sided(values, level: float, low: float = -math.inf, high: float = math.inf,
              trials: float | None = None) -> tuple[float, float]:
    """(lower, upper): each a bound of the expectation of ``values`` that is wrong with probability at most
    ``level``; NaN with fewer than 2 finite values.

    Student t (one-sided quantile 1 - ``level``) where the values differ, cut to [``low``, ``high``];
    where they do not, the rules of :func:`simsub.analysis.intervals.interval` at confidence
    1 - ``level`` (one-sided constructions at that level, or two-sided and then conservative).
    """
    sample = finite_values(values)
    n = len(sample)
    if n < 2:
        return math.nan, math.nan
    if float(sample.max() - sample.min()) > 0:
        mean = float(sample.mean())
        half = float(_scipy_stats.t.ppf(1.0 - level, n - 1)) * float(sample.std(ddof=1)) / math.sqrt(n)
        return max(mean - half, low), min(mean + half, high)
    got = interval(sample, 1.0 - level, low, high, trials)
    return got.low, got.high


@dataclass(frozen=True)
class Condition:
    """A requirement as racing reads it: ``metric op value`` on the expectation."""

    metric: str
    op: str  # >= <= > < ==
    value: float

    def fails(self, lower: float, upper: float) -> bool:
        """The bounds show the expectation fails the requirement (for ``==``: the value lies outside)."""
        v = self.value
        return {">=": upper < v, ">": upper <= v, "<=": lower > v, "<": lower >= v,
                "==": lower > v or upper < v}[self.op]

    def meets(self, lower: float, upper: float) -> bool:
        """The bounds show the expectation meets it (never for ``==``: no sample shows a mean equal to a value)."""
        v = self.value
        return {">=": lower >= v, ">": lower > v, "<=": upper <= v, "<": upper < v, "==": False}[self.op]


@dataclass(frozen=True)
class Dropped:
    """A grid point racing stopped: after how many replications, in which look, and why (plain words)."""

    point: dict[str, Any]
    replications: int
    look: int  # 1-based, within its race
    reason: str  # "requirement" or "objective"
    why: str
    race: int = 0  # 0: the grid; i: the i-th refinement round


def statements_per_race(points: int, requirements: int, looks: int) -> int:
    """M = T (q K + K - 1): the statements whose errors could drop the true best (see the module doc)."""
    return max(looks, 0) * (requirements * points + points - 1)


def looks_of(replications: int, first: int = FIRST_REPLICATIONS) -> list[int]:
    """The replication counts after which a race decides: first, first + 1, ..., replications - 1."""
    return list(range(first, replications))


def decide(samples: list[pd.DataFrame], conditions: list[Condition], objective: str, direction: str,
           level: float, labels: list[str] | None = None, bots: int | None = None) -> list[tuple[int, str, str]]:
    """The points to drop at one look: ``[(index into samples, reason, why), ...]`` in index order.

    ``samples[i]``: the runs of point i so far, one row per run, indexed by seed, one column per
    metric.  ``level``: the error probability of each statement (alpha / M); ``labels``: how the
    reasons name the points (default ``#1``, ``#2``, ...).
    """
    labels = labels or [f"#{i + 1}" for i in range(len(samples))]
    drops: dict[int, tuple[str, str]] = {}
    confident: list[int] = []
    for i, runs in enumerate(samples):
        meets_all = True
        for c in conditions:
            if c.metric not in runs:
                meets_all = False
                continue
            bounds = bounds_for(runs, c.metric, bots)
            # "==" fails on either side: each side at level / 2, so the statement errs at most at level
            lower, upper = one_sided(runs[c.metric].to_numpy(dtype=float), level / 2 if c.op == "==" else level,
                                     bounds["low"], bounds["high"], bounds["trials"])
            if math.isnan(lower) or math.isnan(upper):
                meets_all = False
                continue
            if c.fails(lower, upper):
                shown = upper if c.op in (">=", ">") else lower if c.op in ("<=", "<") else (lower, upper)
                drops[i] = ("requirement", f"{c.metric} fails {c.op} {c.value:g}: its bound is {_num(shown)}")
                meets_all = False
                break
            meets_all &= c.meets(lower, upper)
        if meets_all and i not in drops:
            confident.append(i)
    sign = 1.0 if direction == "minimize" else -1.0
    values = [samples[i][objective].astype(float).to_dict() if objective in samples[i] else None
              for i in range(len(samples))]
    # a difference lies in [low - high, high - low] for the metric's [low, high] over both points' runs
    ranges = [(bounds_for(samples[i], objective)["low"], bounds_for(samples[i], objective)["high"])
              if values[i] is not None else None for i in range(len(samples))]

    def mean(i: int) -> float:
        got = finite_values(values[i].values()) if values[i] is not None else np.array([])
        return sign * float(got.mean()) if len(got) else math.inf

    leaders = sorted(confident, key=lambda i: (mean(i), i))  # best first: the first that beats a point names it
    for i in range(len(samples)):
        if i in drops or values[i] is None:
            continue
        for j in leaders:
            if j == i or values[j] is None:
                continue
            a, b = values[i], values[j]
            differences = [sign * (a[s] - b[s]) for s in sorted(set(a) & set(b))]
            low, high = ranges[i][0], max(ranges[i][1], ranges[j][1])
            lowest, highest = low - high, high - low  # symmetric, so the same after the sign
            lower, _ = one_sided(differences, level, lowest, highest)
            if math.isfinite(lower) and lower > 0:  # i's expectation is worse than j's
                drops[i] = ("objective", f"{objective} worse than {labels[j]} by at least {_num(lower)} "
                                         "(paired, same seeds)")
                break
    return [(i, *drops[i]) for i in sorted(drops)]


def _num(value) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(f"{v:.4g}" for v in value) + "]"
    return f"{value:.4g}"


@dataclass
class Race:
    """What a tune's races decided and what they ran, across the grid and its refinement rounds."""

    conditions: list[Condition]
    objective: str
    direction: str
    alpha: float
    first: int = FIRST_REPLICATIONS
    dropped: list[Dropped] = field(default_factory=list)
    tests: list[int] = field(default_factory=list)  # M of each race
    keys_run: set[str] = field(default_factory=set)  # distinct runs made
    keys_full: set[str] = field(default_factory=set)  # distinct runs the full grid would make
    policy_runs: int = 0  # runs of the tuned policy made (the baseline's aside)
    policy_runs_full: int = 0

    def begin(self, points: int, replications: int) -> float:
        """Start a race over ``points`` grid points; returns the error probability of each statement."""
        looks = len(looks_of(replications, self.first))
        m = statements_per_race(points, len(self.conditions), looks)
        self.tests.append(m)
        return self.alpha / m if m else 0.0

    @property
    def runs(self) -> int:
        return len(self.keys_run)

    @property
    def full_runs(self) -> int:
        return len(self.keys_full)

    def record(self) -> dict[str, Any]:
        """Plain data for experiment.json and the report."""
        return {"alpha": self.alpha, "first_replications": self.first, "tests": list(self.tests),
                "level": [self.alpha / m if m else None for m in self.tests],
                "runs": self.runs, "full_grid_runs": self.full_runs, "saved": self.full_runs - self.runs,
                "policy_runs": self.policy_runs, "policy_runs_full_grid": self.policy_runs_full,
                "dropped": [{"point": d.point, "race": d.race, "look": d.look, "replications": d.replications,
                             "reason": d.reason, "why": d.why} for d in self.dropped]}
