"""Racing in ``simsub tune``: the dropping rule's arithmetic, its error guarantee, and that a raced tune
recommends what the full grid does with fewer runs, says how many, and is deterministic.

The tiny scenario of tests.test_experiments (every client slept ``sleep`` s per RCPT; bots give up from
3 s) keeps real tunes to a few seconds.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from simsub.cli import main
from simsub.experiments import tune
from simsub.experiments.racing import Condition, Race, decide, looks_of, one_sided, statements_per_race
from tests.test_experiments import metric_columns, tiny_file  # noqa: F401  (fixture)

OBJECTIVE = "legit.false_delay.mean"  # seconds: a difference may lie anywhere in (-inf, inf)
SHARE = "legit.false_delay_rate.5s"


def frame(columns: dict[str, list[float]]) -> pd.DataFrame:
    """One point's runs: seeds 0, 1, 2, ... as the index."""
    length = len(next(iter(columns.values())))
    return pd.DataFrame(columns, index=pd.Index(range(length), name="seed"))


# --------------------------------------------------------------------------- the rule's arithmetic
def test_statement_count_is_looks_times_the_statements_that_could_drop_the_best():
    # K points, q requirements, T looks: q (the best failing one) + q (K - 1) (another meeting one) + K - 1
    assert statements_per_race(11, 1, 7) == 7 * (1 + 1 * 10 + 10)
    assert statements_per_race(4, 0, 2) == 2 * 3
    assert looks_of(10) == [3, 4, 5, 6, 7, 8, 9]
    assert looks_of(3) == [] and looks_of(2) == []
    race = Race([Condition("spam.reduction", ">=", 0.95)], OBJECTIVE, "minimize", alpha=0.05)
    assert race.begin(11, 10) == pytest.approx(0.05 / 147)


def test_a_paired_drop_happens_exactly_when_the_one_sided_t_bound_passes_zero():
    # Differences 1, 2, 3 (mean 2, sd 1, n 3): the lower bound is 2 - t(1 - level, 2) / sqrt(3), above 0
    # when t < 2 sqrt(3).  Student t with 2 degrees of freedom has F(t) = 1/2 + t / (2 sqrt(2 + t^2)), so
    # the bound reaches 0 at level* = 1/2 - sqrt(12) / (2 sqrt(14)) = 1/2 - sqrt(3/14).
    critical = 0.5 - math.sqrt(3 / 14)
    leader = frame({OBJECTIVE: [10.0, 20.0, 30.0]})
    worse = frame({OBJECTIVE: [11.0, 22.0, 33.0]})
    assert [d[:2] for d in decide([leader, worse], [], OBJECTIVE, "minimize", critical * 1.001)] == [(1, "objective")]
    assert decide([leader, worse], [], OBJECTIVE, "minimize", critical * 0.999) == []
    # maximising turns the roles round: the leader is now the worse one
    assert [d[0] for d in decide([leader, worse], [], OBJECTIVE, "maximize", critical * 1.001)] == [0]
    lower, _ = one_sided([1.0, 2.0, 3.0], critical)
    assert lower == pytest.approx(0.0, abs=1e-9)


def test_a_requirement_drop_uses_the_bound_on_the_failing_side():
    # Values 0.90, 0.91, 0.92 of a share: the upper one-sided bound is 0.91 + t(1 - level, 2) * 0.01 / sqrt(3);
    # ">= 0.95" fails with confidence when that is below 0.95, i.e. t < 4 sqrt(3).
    t_needed = 4 * math.sqrt(3)
    critical = 0.5 - t_needed / (2 * math.sqrt(2 + t_needed ** 2))
    point = frame({"spam.reduction": [0.90, 0.91, 0.92], OBJECTIVE: [1.0, 2.0, 3.0]})
    require = [Condition("spam.reduction", ">=", 0.95)]
    assert [d[:2] for d in decide([point], require, OBJECTIVE, "minimize", critical * 1.001)] == [(0, "requirement")]
    assert decide([point], require, OBJECTIVE, "minimize", critical * 0.999) == []
    # "==" needs the value outside the two-sided bounds, each side at level / 2
    equal = [Condition("spam.reduction", "==", 0.95)]
    assert decide([point], equal, OBJECTIVE, "minimize", 2 * critical * 0.999) == []
    assert [d[0] for d in decide([point], equal, OBJECTIVE, "minimize", 2 * critical * 1.001)] == [0]


def test_no_point_loses_to_a_leader_not_shown_to_meet_the_requirements():
    # The leader's spam reduction is 0.96 on the mean but its bound reaches below 0.95: it may not meet
    # the requirement, so the clearly costlier point (which clearly meets it) must stay.
    leader = frame({"spam.reduction": [0.93, 0.96, 0.99], OBJECTIVE: [1.0, 1.1, 1.2]})
    costly = frame({"spam.reduction": [0.999, 0.9995, 0.9999], OBJECTIVE: [9.0, 9.2, 9.3]})
    assert decide([leader, costly], [Condition("spam.reduction", ">=", 0.95)], OBJECTIVE, "minimize", 0.01) == []
    assert [d[0] for d in decide([leader, costly], [], OBJECTIVE, "minimize", 0.01)] == [1]


def race_synthetic(means: np.ndarray, noise: float, replications: int, alpha: float, rng: np.random.Generator,
                   correction: bool = True, fails: tuple[int, ...] = ()) -> tuple[set[int], list[int]]:
    """Race points whose objective is ``means`` + a per-seed effect shared by every point (common random
    numbers) + independent noise, as simsub's loop does; the points left and the points dropped."""
    k = len(means)
    level = alpha / statements_per_race(k, 1, len(looks_of(replications))) if correction else alpha
    shared = rng.normal(0, 1.0, replications)
    values = means[:, None] + shared[None, :] + rng.normal(0, noise, (k, replications))
    # a requirement "share >= 0.5" that the points in ``fails`` miss by far
    share = np.where(np.isin(np.arange(k), fails), 0.2, 0.8)[:, None] + rng.normal(0, 0.02, (k, replications))
    active, dropped = list(range(k)), []
    for n in looks_of(replications):
        samples = [frame({OBJECTIVE: list(values[i, :n]), SHARE: list(share[i, :n])}) for i in active]
        gone = {active[j] for j, *_ in decide(samples, [Condition(SHARE, ">=", 0.5)], OBJECTIVE, "minimize", level)}
        dropped += sorted(gone)
        active = [i for i in active if i not in gone]
    return set(active), dropped


def test_the_clear_best_is_never_dropped_and_the_rest_are():
    rng = np.random.default_rng(2026)
    means = np.array([1.0, 2.0, 3.0, 4.0, 0.0])  # the last is best on the objective but fails the requirement
    for _ in range(20):
        left, dropped = race_synthetic(means, noise=0.1, replications=10, alpha=0.05, rng=rng, fails=(4,))
        assert left == {0}
        assert sorted(dropped) == [1, 2, 3, 4]


def test_a_tied_best_is_dropped_no_more_often_than_alpha_and_the_correction_is_what_ensures_it():
    # Worst case for the guarantee: point 0 ties with points 1 and 2 (same expected objective), so every
    # "0 is worse than 1 (or 2)" statement is wrong.  120 races of 10 replications: with the Bonferroni
    # level the number of races dropping point 0 must stay within the 99.9 % quantile of
    # Binomial(120, alpha); with the uncorrected level (alpha per statement, 7 looks) it must exceed it,
    # or the test could not tell a correct rule from a wrong one.
    from scipy import stats

    trials, alpha = 120, 0.05
    ceiling = stats.binom.ppf(0.999, trials, alpha)
    means = np.array([1.0, 1.0, 1.0, 3.0])
    counts = {}
    for correction in (True, False):
        rng = np.random.default_rng(19)
        counts[correction] = sum(0 in race_synthetic(means, 0.5, 10, alpha, rng, correction)[1] for _ in range(trials))
    assert counts[True] <= ceiling < counts[False], (counts, ceiling)


# --------------------------------------------------------------------------- real tunes
def tiny_tune(path, race, **options):
    return tune(path, "tarpit", ["sleep=0:6:1"], require=["smtpd.busy_mean>=0.5"], minimize="smtpd.busy_mean",
                replications=8, progress=False, race=race, **{"workers": 1, **options})


def test_racing_recommends_what_the_full_grid_does_with_fewer_runs(tiny_file):
    full = tiny_tune(tiny_file, race=False)
    raced = tiny_tune(tiny_file, race=True)
    assert raced.tune.best == full.tune.best and raced.tune.runner_up == full.tune.runner_up
    record = raced.tune.race
    reasons = {d["reason"] for d in record["dropped"]}
    assert reasons == {"requirement", "objective"}  # the case exercises both ways out
    best = tuple(raced.tune.best.values())
    assert all(tuple(d["point"].values()) != best for d in record["dropped"])
    # the recommendation's numbers are the full grid's: it ran every replication on the same seeds
    columns = ["policy", "sleep", "replication", "seed"] + metric_columns(full.runs)
    def at_best(experiment):
        rows = experiment.runs[experiment.runs["sleep"] == raced.tune.best["sleep"]]
        return rows.sort_values(["policy", "replication"])[columns].reset_index(drop=True)

    pd.testing.assert_frame_equal(at_best(raced), at_best(full), check_exact=True)
    # runs counted: what ran, and what the full grid ran
    assert record["runs"] == len(raced.distinct_runs) < record["full_grid_runs"] == len(full.distinct_runs)
    assert record["saved"] == len(full.distinct_runs) - len(raced.distinct_runs)
    policy = raced.distinct_runs[raced.distinct_runs["policy"] == "tarpit"]
    assert record["policy_runs"] == len(policy) and record["policy_runs_full_grid"] == 7 * 8
    # every dropped point ran exactly the replications its drop names; a survivor all 8
    ran = policy.groupby("sleep").size().to_dict()
    for d in record["dropped"]:
        assert ran[d["point"]["sleep"]] == d["replications"] < 8
    assert ran[raced.tune.best["sleep"]] == 8


def test_the_report_and_record_say_how_many_runs_racing_saved(tiny_file, tmp_path, capsys):
    out, cache = tmp_path / "out", tmp_path / "cache"
    argv = ["tune", str(tiny_file), "--policy", "tarpit", "--vary", "sleep=0:6:1", "--require",
            "smtpd.busy_mean>=0.5", "--minimize", "smtpd.busy_mean", "--replications", "8", "--workers", "1",
            "--cache", str(cache)]
    assert main([*argv, "--out", str(out)]) == 0
    record = json.loads((out / "experiment.json").read_text())
    race = record["tune"]["race"]
    assert record["runs"]["total"] == race["runs"]
    assert main([*argv, "--no-race", "--out", str(tmp_path / "full")]) == 0
    full = json.loads((tmp_path / "full" / "experiment.json").read_text())
    assert full["tune"]["race"] is None and full["runs"]["total"] == race["full_grid_runs"]
    assert full["tune"]["best"] == record["tune"]["best"]
    report = (out / "report.md").read_text()
    saved = race["full_grid_runs"] - race["runs"]
    assert f"runs made: {race['runs']} of the full grid's {race['full_grid_runs']} ({saved} saved" in report
    for d in race["dropped"]:
        assert f"| sleep={d['point']['sleep']} | {d['replications']} | {d['reason']} |" in report
    findings = " ".join(record["findings"])
    assert f"Racing made {race['runs']} of the full grid's {race['full_grid_runs']} runs ({saved} saved)" in findings
    # run again over the cache: the same decisions from the stored runs, nothing computed
    assert main([*argv, "--out", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "experiment.json").read_text())
    assert again["tune"]["race"] == race and again["runs"]["from_cache"] == race["runs"]


def test_racing_is_the_same_on_one_worker_and_two(tiny_file):
    one = tiny_tune(tiny_file, race=True, workers=1)
    two = tiny_tune(tiny_file, race=True, workers=2)
    assert one.tune.race == two.tune.race and one.tune.best == two.tune.best
    key = ["policy", "sleep", "replication"]
    a = one.runs.sort_values(key).reset_index(drop=True)[key + ["seed"] + metric_columns(one.runs)]
    b = two.runs.sort_values(key).reset_index(drop=True)[key + ["seed"] + metric_columns(two.runs)]
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_refinement_rounds_race_too_and_count_every_round(tiny_file):
    raced = tune(tiny_file, "tarpit", ["sleep=0:6:2"], require=["smtpd.busy_mean>=0.5"], minimize="smtpd.busy_mean",
                 refine=1, replications=6, workers=1, progress=False)
    full = tune(tiny_file, "tarpit", ["sleep=0:6:2"], require=["smtpd.busy_mean>=0.5"], minimize="smtpd.busy_mean",
                refine=1, replications=6, workers=1, progress=False, race=False)
    assert raced.tune.best == full.tune.best
    assert len(raced.tune.race["tests"]) == 2  # the grid and one refinement round, each its own race
    assert raced.tune.race["full_grid_runs"] == len(full.distinct_runs)
    assert raced.tune.race["runs"] <= len(full.distinct_runs)
