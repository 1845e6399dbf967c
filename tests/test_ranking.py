"""The compare recommendation: requirements, costs in order, dominance on every headline metric.

Synthetic experiments (tests.test_report builds them from runs with known numbers), so every expected
choice follows from the numbers below, not from simsub's own arithmetic.
"""

from __future__ import annotations


import pytest

from simsub.experiments.metrics import HEADLINE, HEADLINE_QUEUE
from simsub.experiments.ranking import Preferences, default_preferences, rank
from simsub.report import findings
from tests.test_report import experiment, make_runs

QUEUE_METRICS = tuple(m for m in HEADLINE + HEADLINE_QUEUE
                      if m.name in ("spam.recipients_accepted", "spam.reduction", "legit.false_delay_rate.5s",
                                    "legit.bounced", "reputation.listed_h_total"))
#: per policy: (spam accepted, 5 s rate, bounced, hours listed), plus a seed-dependent wiggle
QUEUE_VALUES = {"none": (6e6, 0.001, 40_000, 25.0), "tarpit": (5e4, 0.10, 200, 0.0),
                "pregreet": (5.8e6, 0.001, 39_000, 24.0), "worse-tarpit": (6e4, 0.12, 300, 0.5)}


def queue_values(policy, point, rep):
    """Seed-to-seed noise that differs between policies: a difference the same on every seed would say
    nothing about other seeds (the rule of three over runs), and real runs never give one."""
    spam, delay, bounced, listed = QUEUE_VALUES[policy]
    wiggle = (0.0, 0.01, -0.01)[rep] * (1 + list(QUEUE_VALUES).index(policy))
    return {"spam.recipients_accepted": spam * (1 + wiggle), "legit.false_delay_rate.5s": delay + wiggle / 100,
            "legit.bounced": bounced * (1 + wiggle), "reputation.listed_h_total": listed * (1 + wiggle)}


def queue_experiment():
    policies = tuple(QUEUE_VALUES)
    runs = make_runs(policies, [()], (11, 22, 33), queue_values)
    return experiment("compare", runs, policies, "none", metrics=QUEUE_METRICS)


def test_defaults_require_most_spam_cut_and_rank_by_delay_then_costs():
    exp = queue_experiment()
    prefs = default_preferences(exp)
    assert prefs.require == ("spam.reduction>=0.95",)
    assert [m for m, _ in prefs.objectives] == ["legit.false_delay_rate.5s", "legit.bounced",
                                                "reputation.listed_h_total"]
    ranking = rank(exp)
    # tarpit and worse-tarpit cut > 99%; tarpit delays less (0.10 < 0.12 on every seed)
    assert ranking.feasible[:2] == ["tarpit", "worse-tarpit"]
    assert ranking.recommended == "tarpit" and ranking.runner_up == "worse-tarpit"
    assert ranking.decided_by == "legit.false_delay_rate.5s"
    assert ranking.difference.mean == pytest.approx(0.02) and ranking.difference.low > 0


def test_dominance_counts_bounces_and_hours_listed():
    ranking = rank(queue_experiment())
    # worse-tarpit: more spam, more delay, more bounces, more hours than tarpit on every seed
    assert ranking.dominated["worse-tarpit"][0] == "tarpit"
    assert {"legit.bounced", "reputation.listed_h_total"} <= set(ranking.dominated["worse-tarpit"][1])
    # pregreet delays no more than none and lets less spam through: it is not dominated by anyone,
    # tarpit included (tarpit delays more), although it misses the requirement
    assert "pregreet" not in ranking.dominated and "pregreet" not in ranking.feasible


def test_the_admin_decides_what_matters():
    exp = queue_experiment()
    exp.extra["preferences"] = Preferences(("spam.reduction>=0.01",), (("legit.false_delay_rate.5s", "minimize"),),
                                           given=True)
    ranking = rank(exp)
    assert ranking.recommended == "pregreet"  # cuts 3.3% and delays as little as none
    lines = findings(exp)
    assert any(line.startswith("Recommended: pregreet") and "(as asked)" in line for line in lines)


def test_nothing_feasible_names_the_closest():
    exp = queue_experiment()
    exp.extra["preferences"] = Preferences(("spam.reduction>=0.999",), (("legit.bounced", "minimize"),), given=True)
    ranking = rank(exp)
    assert ranking.recommended is None and ranking.closest == "tarpit"
    assert any(line.startswith("No policy meets") and "the closest is tarpit" in line for line in findings(exp))


def test_the_findings_say_what_each_policy_does_and_costs():
    lines = findings(queue_experiment())
    pregreet = next(line for line in lines if line.startswith("pregreet cut"))
    assert pregreet.endswith(": it stops part of the spam; it keeps the server 24.0 h on blocklists and bounces "
                             "39,000 legitimate recipients.")
    assert any(line.startswith("worse-tarpit is dominated by tarpit") for line in lines)
    assert next(line for line in lines if line.startswith("Recommended: tarpit"))


def test_compare_options_are_checked_before_any_run(tmp_path, capsys):
    from simsub.cli import main

    code = main(["compare", "--require", "spam.reduktion>=0.9", "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "--require" in err and "spam.reduction" in err and "Traceback" not in err
    code = main(["compare", "--minimize", "legit.bounce", "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "--minimize" in err and "legit.bounced" in err
