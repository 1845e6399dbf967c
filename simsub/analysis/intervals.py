"""Confidence intervals over replications that hold for every kind of metric.

A metric's values over R replications are an i.i.d. sample; the interval is
for their expectation (the mean over infinitely many seeds).  Three rules:

* **Values vary** — Student t, mean ± t(1 − α/2, R − 1) · s / √R, then cut to
  the metric's possible range (a share lies in [0, 1], a count or a duration
  is never negative).  Cutting never removes a possible mean, so coverage is
  unchanged and no bound is impossible (a t interval alone reported a rate
  interval reaching 1.025).
* **No variation in R runs, with pooled trials** (a share whose denominator is
  known, e.g. the legitimate messages of each run): the R runs are taken as
  N = Σ trials Bernoulli trials with k = mean · N successes and the interval is
  Clopper–Pearson's exact binomial interval; when k = 0 (or k = N) it is the
  one-sided bound [0, 1 − α^(1/N)] — the "rule of three", ≈ 3/N at 95 %.
  This treats the trials as independent; the coverage test checks it holds.
* **No variation in R runs, otherwise** — R identical values say only that a
  run gives another value with probability at most p = 1 − α^(1/R) (the rule
  of three over runs: ≈ 3/R at 95 %; 45 % for R = 5).  The mean then lies in
  [c − p·(c − low), c + p·(high − c)] for a metric in [low, high]: finite for a
  share or a count with a known ceiling, [c, ∞) for a quantity nothing bounds.
  A Student t interval would have width 0 here and miss any mean that differs
  from c (spam accepted in a small scenario: 0 in most runs, dozens in some).

``α`` is 1 − confidence.  The bound rules are one-sided where the value sits on
its limit (nothing can be below 0), so their level is the confidence itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np
from scipy import stats as _scipy_stats

#: How an interval was made, as written in summary.csv's ``ci_rule``.
T_RULE = "t"
POOLED_RULE = "no variation: binomial over pooled trials"
RUNS_RULE = "no variation: rule of three over runs"
SINGLE_RULE = "one run: no interval"


@dataclass(frozen=True)
class Interval:
    """mean and [low, high] of the expectation; ``n`` values; ``rule`` how (see the constants)."""

    mean: float
    low: float
    high: float
    n: int
    rule: str

    def astuple(self) -> tuple[float, float, float, int]:
        return self.mean, self.low, self.high, self.n


def finite_values(values: Iterable[float | None]) -> np.ndarray:
    return np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)


def runs_differ_bound(n: int, confidence: float) -> float:
    """The largest probability p that a run gives another value, given n runs that all gave
    the same: the exact one-sided binomial bound 1 − α^(1/n) (≈ 3/n at 95 %: the rule of three)."""
    return 1.0 - (1.0 - confidence) ** (1.0 / n)


def clopper_pearson(k: float, trials: float, confidence: float) -> tuple[float, float]:
    """Exact binomial interval of a proportion with ``k`` successes in ``trials``; one-sided at 0 and at 1."""
    alpha = 1.0 - confidence
    k = min(max(k, 0.0), trials)
    if k <= 0:
        return 0.0, 1.0 - alpha ** (1.0 / trials)
    if k >= trials:
        return alpha ** (1.0 / trials), 1.0
    low = float(_scipy_stats.beta.ppf(alpha / 2, k, trials - k + 1))
    high = float(_scipy_stats.beta.ppf(1 - alpha / 2, k + 1, trials - k))
    return low, high


def interval(values: Iterable[float | None], confidence: float = 0.95, low: float = -math.inf,
             high: float = math.inf, trials: float | None = None) -> Interval:
    """The interval of the expectation of ``values`` (finite ones), for a metric lying in [``low``, ``high``].

    ``trials``: the pooled number of independent trials behind a share's
    values (all runs together); used only when the values do not vary.
    """
    sample = finite_values(values)
    n = len(sample)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, SINGLE_RULE)
    mean = float(sample.mean())
    if n < 2:
        return Interval(mean, math.nan, math.nan, n, SINGLE_RULE)
    if float(sample.max() - sample.min()) > 0:
        sd = float(sample.std(ddof=1))
        half = float(_scipy_stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
        return Interval(mean, max(mean - half, low), min(mean + half, high), n, T_RULE)
    if trials is not None and trials >= 1 and low == 0.0 and high == 1.0:
        lo, hi = clopper_pearson(mean * trials, trials, confidence)
        return Interval(mean, min(lo, mean), max(hi, mean), n, POOLED_RULE)
    p = runs_differ_bound(n, confidence)
    lo = mean - p * (mean - low) if math.isfinite(low) else (mean if mean == low else -math.inf)
    hi = mean + p * (high - mean) if math.isfinite(high) else (mean if mean == high else math.inf)
    return Interval(mean, lo, hi, n, RUNS_RULE)


def paired(a: dict, b: dict, confidence: float = 0.95, low: float = -math.inf,
           high: float = math.inf) -> Interval:
    """Interval of E[a − b] from the seeds both ``a`` and ``b`` (seed → value) have a finite value for;
    ``low``/``high``: the range of a difference (e.g. [−1, 1] for shares)."""
    common = sorted(set(a) & set(b))
    differences = [a[s] - b[s] for s in common
                   if a[s] is not None and b[s] is not None and math.isfinite(a[s]) and math.isfinite(b[s])]
    return interval(differences, confidence, low, high)
