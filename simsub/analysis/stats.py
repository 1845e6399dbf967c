"""Confidence intervals over replications: Student t, plain and paired.

Replications of a scenario are independent runs with different seeds, so a
metric's values over R replications are an i.i.d. sample of size R and the
interval for its expectation is mean ± t(1 - α/2, R - 1) · s / √R.  Policies
run on the same seeds (common random numbers), so a difference between two
policies is estimated from the R per-seed differences, which removes the
variance the policies share.
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np
from scipy import stats as _scipy_stats


def mean_ci(values: Iterable[float], confidence: float = 0.95) -> tuple[float, float, float, int]:
    """(mean, low, high, n) of the finite ``values``; NaN bounds when n < 2, NaN everything when n = 0."""
    sample = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = len(sample)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(sample.mean())
    if n < 2:
        return mean, math.nan, math.nan, n
    sd = float(sample.std(ddof=1))
    half = float(_scipy_stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return mean, mean - half, mean + half, n


def paired_difference(a: dict, b: dict, confidence: float = 0.95) -> tuple[float, float, float, int]:
    """Interval of E[a - b] from the seeds both ``a`` and ``b`` (seed → value) have a finite value for."""
    common = sorted(set(a) & set(b))
    differences = [a[s] - b[s] for s in common
                   if a[s] is not None and b[s] is not None and math.isfinite(a[s]) and math.isfinite(b[s])]
    return mean_ci(differences, confidence)
