"""The interval rules of simsub.analysis.intervals, each against a number computed here independently."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from simsub.analysis.intervals import (POOLED_RULE, RUNS_RULE, SINGLE_RULE, T_RULE, clopper_pearson, interval,
                                       paired, runs_differ_bound)


def test_varying_values_get_student_t_cut_to_the_possible_range():
    values = [0.9, 1.0, 0.98, 0.7, 1.0]
    mean = sum(values) / 5
    half = stats.t.ppf(0.975, 4) * np.std(values, ddof=1) / math.sqrt(5)
    got = interval(values, 0.95, low=0.0, high=1.0)
    assert got.rule == T_RULE and got.mean == pytest.approx(mean)
    assert got.low == pytest.approx(mean - half) and got.high == 1.0  # mean + half = 1.02 is impossible
    assert mean + half > 1.0


def test_the_rule_of_three_over_runs():
    # 5 identical runs: another value has probability at most 1 - 0.05^(1/5) = 45.1 %
    p = 1 - 0.05 ** (1 / 5)
    assert runs_differ_bound(5, 0.95) == pytest.approx(p) and p == pytest.approx(0.4507, abs=1e-4)
    # ≈ -ln(0.05)/n = 3.0/n for large n (1 - e^-x ≈ x - x²/2: 1.5 % below it at n = 100)
    assert runs_differ_bound(100, 0.95) == pytest.approx(-math.log(0.05) / 100, rel=0.02)
    share = interval([0.0] * 5, 0.95, low=0.0, high=1.0)
    assert share.rule == RUNS_RULE and (share.low, share.high) == (0.0, pytest.approx(p))
    capped = interval([0.0] * 5, 0.95, low=0.0, high=200.0)  # a count that cannot exceed 200
    assert capped.high == pytest.approx(200 * p)
    unbounded = interval([3.0] * 5, 0.95, low=0.0)
    assert unbounded.low == pytest.approx(3 - 3 * p) and unbounded.high == math.inf


def test_pooled_trials_give_the_exact_binomial_interval():
    # 0 of 1,000 messages delayed over the runs: [0, 1 - 0.05^(1/1000)] ≈ 3/1000
    got = interval([0.0] * 4, 0.95, low=0.0, high=1.0, trials=1000)
    assert got.rule == POOLED_RULE and got.low == 0 and got.high == pytest.approx(1 - 0.05 ** 0.001)
    assert got.high == pytest.approx(3 / 1000, rel=0.01)
    # 250 of 1,000 in every run: Clopper-Pearson from the beta quantiles
    low, high = clopper_pearson(250, 1000, 0.95)
    assert low == pytest.approx(stats.beta.ppf(0.025, 250, 751)) and high == pytest.approx(stats.beta.ppf(0.975, 251, 750))
    assert interval([0.25] * 4, 0.95, 0.0, 1.0, trials=1000).low == pytest.approx(low)


def test_one_run_and_none():
    assert interval([2.0]).rule == SINGLE_RULE and math.isnan(interval([2.0]).low)
    assert interval([math.nan, None]).n == 0


def test_paired_differences_use_matching_seeds_and_their_range():
    a = {1: 0.5, 2: 0.6, 3: 0.7, 4: 9.0}
    b = {1: 0.4, 2: 0.4, 3: 0.5}
    got = paired(a, b, 0.95, -1.0, 1.0)
    d = [0.1, 0.2, 0.2]
    half = stats.t.ppf(0.975, 2) * np.std(d, ddof=1) / math.sqrt(3)
    assert got.n == 3 and got.mean == pytest.approx(np.mean(d)) and got.high == pytest.approx(np.mean(d) + half)
    same = paired({1: 0.3, 2: 0.3}, {1: 0.1, 2: 0.1}, 0.95, -1.0, 1.0)
    p = runs_differ_bound(2, 0.95)
    assert same.rule == RUNS_RULE and same.low == pytest.approx(0.2 - p * 1.2) and same.high == pytest.approx(0.2 + p * 0.8)
