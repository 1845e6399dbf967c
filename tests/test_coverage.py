"""Do the experiment intervals cover the true mean as often as they claim, for every kind of metric?

A small, noisy scenario (a few bots whose patience straddles a 3 s tarpit, so
spam gets through in about one run in ten) is run many times.  The "true"
mean of each metric is the mean over many further runs; then the runs are cut
into groups of R = 5 replications, each group gets the interval an experiment
would report (the same code: ``_summary_table``), and we count how often it
contains the true mean.

Tolerance: if the intervals are right, the number of covering groups out of G
is Binomial(G, c) with c ≥ the confidence level, so it falls below the
``FALSE_ALARM / len(METRICS)`` quantile of Binomial(G, 0.95) with probability at
most FALSE_ALARM for all metrics together (Bonferroni).  The truth is itself an
estimate; with TRUTH_RUNS runs its standard error is a small fraction of the
interval widths (checked below), so it barely moves the count.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import simsub
from simsub.analysis.intervals import RUNS_RULE, T_RULE, interval
from simsub.experiments.metrics import flatten_summary
from simsub.experiments.study import _summary_table
from tests.conftest import make_scenario

#: The scenario, on the shared test base (origins own and unknown, policy none).
POPULATIONS = [
    {"name": "users", "kind": "user", "count": 40, "origins": {"own": 0.7, "unknown": 0.3},
     "messages_per_day": 100, "recipients": {"dist": "geometric", "mean": 1.5}, "patience": "60s"},
    {"name": "bots", "kind": "bot", "count": 2, "accounts": 2, "origins": {"unknown": 1.0},
     "recipients": {"dist": "uniform", "low": 5, "high": 15}, "pause": "30s",
     "patience": {"dist": "lognormal", "median": "2.7s", "sigma": 0.12}, "on_timeout": "disconnect"},
]
SCENARIO = dict(
    populations=POPULATIONS, mta={"process_limit": 3, "backlog": 1},
    origins={"unknown": {"hostname": "unknown", "rtt": {"dist": "uniform", "low": "100ms", "high": "300ms"}}},
    policies={"tarpit": {"description": "sleep 3 at RCPT TO",
                         "recipient_restrictions": ["sleep 3", "permit_sasl_authenticated", "reject"]}},
    name="coverage", horizon="10m", seed=11, default_policy="tarpit")
BOTS = 2
R = 5
CONFIDENCE = 0.95
FALSE_ALARM = 0.01
#: One metric kind each at least: counts (often all 0 in a group, clumped when not),
#: shares (a rate over messages; a share of bots, often all 0), seconds.
METRICS = ("spam.recipients_accepted", "smtpd.refused", "legit.false_delay_rate.5s", "spam.bots_succeeding",
           "legit.false_delay.p95")
#: A heavy-tailed metric: in about 1 run of 100 the bots hold the 3 smtpd slots and the mean false
#: delay is 3 to 6 times the median.  No interval from 5 runs covers such a mean as claimed (the tail is
#: rarely in the sample); the slow test measures how far it falls short, and docs/experiments.md says so.
HEAVY_TAILED = ("legit.false_delay.mean",)


@functools.lru_cache(maxsize=None)
def runs(first_seed: int, count: int) -> pd.DataFrame:
    scenario = make_scenario(**SCENARIO)
    rows = []
    for seed in range(first_seed, first_seed + count):
        flat = flatten_summary(simsub.run(scenario, seed=seed).summary)
        rows.append({"seed": seed, "status": "ok", **{m: flat.get(m, 0.0) for m in METRICS + HEAVY_TAILED},
                     **{c: flat[c] for c in ("legit.messages", "spam.recipients_attempted", "smtpd.connections")}})
    return pd.DataFrame(rows)


def coverage(groups: int, truth_runs: int, metrics=METRICS) -> tuple[pd.DataFrame, dict[str, float]]:
    """One row per (group, metric): the interval and whether it covers; and the true means."""
    truth_frame = runs(10_000, truth_runs)
    truth = {m: float(truth_frame[m].mean()) for m in metrics}
    grouped = runs(0, groups * R).assign(policy="tarpit", group=lambda f: f["seed"] // R)
    summary = _summary_table(grouped, ["group"], None, CONFIDENCE, BOTS)
    summary = summary[summary["metric"].isin(metrics)].copy()
    summary["truth"] = summary["metric"].map(truth)
    summary["covered"] = (summary["ci_low"] <= summary["truth"]) & (summary["truth"] <= summary["ci_high"])
    return summary, truth


def lowest_acceptable(groups: int) -> int:
    return int(stats.binom.ppf(FALSE_ALARM / len(METRICS), groups, CONFIDENCE))


def check(groups: int, truth_runs: int) -> pd.DataFrame:
    summary, truth = coverage(groups, truth_runs)
    floor = lowest_acceptable(groups)
    table = summary.groupby("metric")["covered"].agg(["sum", "count"])
    assert (table["count"] == groups).all()
    for metric, row in table.iterrows():
        assert row["sum"] >= floor, (f"{metric}: {row['sum']} of {groups} intervals cover the true mean "
                                     f"{truth[metric]:.4g}; at least {floor} expected at {CONFIDENCE:.0%}")
    # The truth's own error must be small against the intervals, or "covered" means little.
    truth_frame = runs(10_000, truth_runs)
    for metric in METRICS:
        widths = (summary.loc[summary["metric"] == metric, "ci_high"]
                  - summary.loc[summary["metric"] == metric, "ci_low"])
        finite = widths[np.isfinite(widths) & (widths > 0)]
        error = truth_frame[metric].std(ddof=1) / math.sqrt(truth_runs)
        if len(finite):
            assert error < 0.25 * float(finite.median()), metric
    return summary


def test_the_scenario_exercises_every_rule():
    """The groups must contain what made t intervals fail: identical groups (spam 0 in all 5 runs)."""
    summary, truth = coverage(30, 60)
    rules = set(summary["ci_rule"])
    assert T_RULE in rules and RUNS_RULE in rules
    spam = summary[summary["metric"] == "spam.recipients_accepted"]
    assert (spam["ci_rule"] != T_RULE).sum() >= 5 and truth["spam.recipients_accepted"] > 0


def test_coverage_holds_for_counts_shares_and_seconds():
    check(groups=30, truth_runs=300)


@pytest.mark.slow
def test_coverage_holds_over_many_groups():
    summary = check(groups=200, truth_runs=2000)
    # The test has power: the plain Student t interval (width 0 for identical runs) fails it.
    floor = lowest_acceptable(200)
    plain = 0
    for _, row in summary[summary["metric"] == "spam.recipients_accepted"].iterrows():
        values = runs(0, 200 * R).query("seed // @R == @row.group")[row.metric]
        got = interval(values, CONFIDENCE)  # no range: Student t, or width 0 when the values do not vary
        plain += (got.low <= row.truth <= got.high) if got.rule == T_RULE else (got.mean == row.truth)
    assert plain < floor


@pytest.mark.slow
def test_a_heavy_tailed_mean_is_undercovered_as_documented():
    """The known limit (docs/experiments.md, "Limits of the intervals"): a mean driven by rare runs.
    If this starts to pass the floor, the limit is gone and the docs must change."""
    summary, truth = coverage(200, 2000, HEAVY_TAILED)
    values = runs(10_000, 2000)[HEAVY_TAILED[0]]
    assert values.quantile(0.99) > 3 * values.median()  # the tail that causes it
    covered = int(summary["covered"].sum())
    assert covered < lowest_acceptable(200)
