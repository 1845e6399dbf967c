"""Reports of experiments: synthetic Experiment objects in, charts, report.md and report.html out.

The experiments here are made by hand (runs with known numbers, a summary
computed by ``summarize`` below with scipy's t quantile), so every expected
number in the findings is computed independently of ``simsub.report``.
"""

from __future__ import annotations

import base64
import itertools
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from simsub.report.experiment_charts import pareto_front
from simsub.experiments.metrics import HEADLINE, SPAM_REDUCTION
from simsub.experiments.types import Experiment, TuneOutcome, Varied
from simsub.report import chart_names, findings, write_report
from simsub.report.format import fmt_diff, fmt_duration, fmt_interval, fmt_param, fmt_value

METRIC_NAMES = ("spam.recipients_accepted", SPAM_REDUCTION, "legit.false_delay_rate.5s", "legit.false_delay.p95",
                "legit.failed")
METRICS = tuple(m for m in HEADLINE if m.name in METRIC_NAMES)
SCRIPT = "<script>alert('x')</script>"


# --------------------------------------------------------------------------- synthetic experiments

def t_interval(values) -> tuple[float, float, float, int]:
    values = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    n = len(values)
    mean = float(values.mean()) if n else math.nan
    if n < 2:
        return mean, math.nan, math.nan, n
    half = stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n)
    return mean, mean - half, mean + half, n


def summarize(runs: pd.DataFrame, varied: list[str], metrics: list[str], baseline: str | None) -> pd.DataFrame:
    """The summary as the contract describes it: per policy, point and metric, t-interval and paired difference."""
    ok = runs[runs["status"] == "ok"]
    rows = []
    for key, group in ok.groupby(["policy", *varied], sort=False):
        key = key if isinstance(key, tuple) else (key,)
        point = dict(zip(["policy", *varied], key))
        for metric in metrics:
            if metric not in group or group[metric].isna().all():
                continue
            mean, low, high, n = t_interval(group[metric])
            row = {**point, "metric": metric, "n": n, "mean": mean, "ci_low": low, "ci_high": high}
            if baseline is not None:
                if point["policy"] == baseline:
                    row.update(diff_n=0, diff_mean=math.nan, diff_low=math.nan, diff_high=math.nan)
                else:
                    base = ok[ok["policy"] == baseline]
                    for name in varied:
                        base = base[base[name] == point[name]]
                    paired = group.merge(base[["seed", metric]], on="seed", suffixes=("", "_base"))
                    d_mean, d_low, d_high, d_n = t_interval(paired[metric] - paired[metric + "_base"])
                    row.update(diff_n=d_n, diff_mean=d_mean, diff_low=d_low, diff_high=d_high)
            rows.append(row)
    return pd.DataFrame(rows)


def make_runs(policies, points, seeds, values, varied_names=(), failed=()) -> pd.DataFrame:
    """``values(policy, point, replication) -> {metric: value}``; spam.reduction derived against "none"."""
    rows = []
    for policy, point, (rep, seed) in itertools.product(policies, points, enumerate(seeds)):
        row = {"policy": policy, **dict(zip(varied_names, point)), "replication": rep, "seed": seed,
               "status": "ok", "error": "", "cached": False, "wall_s": 1.5}
        row.update(values(policy, point, rep))
        if (policy, point, rep) in failed:
            row.update(status="failed", error="Traceback ...\nRuntimeError: smtpd exploded",
                       **{m: math.nan for m in METRIC_NAMES})
        rows.append(row)
    runs = pd.DataFrame(rows)
    if "none" in policies:
        base = runs[runs["policy"] == "none"].set_index(["seed", *varied_names])["spam.recipients_accepted"]
        keys = list(zip(runs["seed"], *[runs[n] for n in varied_names]))
        runs[SPAM_REDUCTION] = [1 - a / base.loc[k if varied_names else k[0]]
                                for a, k in zip(runs["spam.recipients_accepted"], keys)]
    return runs


def experiment(kind, runs, policies, baseline, varied=(), seeds=(11, 22, 33), tune=None,
               descriptions=None, metrics=METRICS) -> Experiment:
    names = [v.name for v in varied]
    metric_names = [m.name for m in metrics]
    return Experiment(
        kind=kind, scenario_name="may-2012", scenario_label="may-2012.toml (built-in)",
        scenario_description="An ISP with 20,000 subscribers on the day bots logged in with stolen accounts.",
        scenario_facts={"horizon": "24 h", "users": "20,000", "bots": "100 with 50 stolen accounts"},
        policies=tuple(policies),
        policy_descriptions=descriptions or {p: f"what {p} does" for p in policies},
        baseline=baseline, varied=tuple(varied), params={"foreign_sleep": 5, "jp_sleep": 1},
        overrides={"populations.botnet.count": 300}, replications=len(seeds), root_seed=20120515,
        seeds=tuple(seeds), runs=runs, summary=summarize(runs, names, metric_names, baseline),
        metrics=tuple(metrics), command=f"simsub {kind} scenarios/may-2012.toml --replications {len(seeds)}",
        version="0.1.0", wall_s=754.0, executor="local, 2 workers", tune=tune)


REDUCTION = {"none": (0.0, 0.0, 0.0), "selective-1-5s": (0.990, 0.993, 0.992), "uniform-5s": (0.995, 0.996, 0.994)}
FDR5 = {"none": (0.001, 0.0012, 0.0011), "selective-1-5s": (0.110, 0.120, 0.115), "uniform-5s": (1.0, 0.99, 0.98)}


def compare_values(policy, point, rep):
    none = 6_000_000 + (0, 50_000, -30_000)[rep]
    return {"spam.recipients_accepted": none * (1 - REDUCTION[policy][rep]),
            "legit.false_delay_rate.5s": FDR5[policy][rep],
            "legit.false_delay.p95": {"none": 0.0, "selective-1-5s": 5.0, "uniform-5s": 15.0}[policy] + 0.1 * rep,
            "legit.failed": 100 + rep + (20 if policy == "selective-1-5s" else 0)}


COMPARE_POLICIES = ("none", "selective-1-5s", "uniform-5s")


def compare_experiment(seeds=(11, 22, 33), failed=(), baseline="none", descriptions=None) -> Experiment:
    runs = make_runs(COMPARE_POLICIES, [()], seeds, compare_values, failed=failed)
    metrics = METRICS if baseline else tuple(m for m in METRICS if m.name != SPAM_REDUCTION)
    if baseline is None:
        runs = runs.drop(columns=[SPAM_REDUCTION])
    return experiment("compare", runs, COMPARE_POLICIES, baseline, seeds=seeds, descriptions=descriptions,
                      metrics=metrics)


SLEEPS = (1, 3, 5, 8)
SWEEP_REDUCTION = {1: 0.30, 3: 0.86, 5: 0.983, 8: 0.995}


def sweep_values(policy, point, rep):
    sleep = point[0]
    red = 0.0 if policy == "none" else SWEEP_REDUCTION[sleep] + (0.002, -0.002)[rep]
    return {"spam.recipients_accepted": 6_000_000 * (1 - red),
            "legit.false_delay_rate.5s": 0.001 if policy == "none" else 0.0005 * sleep ** 2 + 0.001 * rep,
            "legit.false_delay.p95": 0.0 if policy == "none" else float(sleep),
            "legit.failed": 100 + rep}


def sweep_experiment() -> Experiment:
    runs = make_runs(("none", "selective"), [(s,) for s in SLEEPS], (7, 8), sweep_values, ("foreign_sleep",))
    return experiment("sweep", runs, ("none", "selective"), "none", (Varied("foreign_sleep", SLEEPS),), seeds=(7, 8))


TUNE_SLEEPS = (2, 3, 4, 5, 6)
TUNE_REDUCTION = {2: 0.5, 3: 0.8, 4: 0.96, 5: 0.98, 6: 0.99}
TUNE_FDR5 = {2: 0.0, 3: 0.01, 4: 0.05, 5: 0.08, 6: 0.11}


def tune_values(policy, point, rep):
    sleep = point[0]
    red = 0.0 if policy == "none" else TUNE_REDUCTION[sleep] + (0.001, -0.001, 0.0)[rep]
    return {"spam.recipients_accepted": 6_000_000 * (1 - red),
            "legit.false_delay_rate.5s": (0.001 if policy == "none"
                                          else TUNE_FDR5[sleep] + (0.0, 0.004, 0.001 * sleep)[rep]),
            "legit.false_delay.p95": float(sleep),
            "legit.failed": 100.0}


def tune_experiment(threshold=0.95, metrics=METRICS) -> Experiment:
    """Minimize the 5 s false-delay rate of "tarpit" subject to spam.reduction >= threshold."""
    seeds = (3, 4, 5)
    runs = make_runs(("none", "tarpit"), [(s,) for s in TUNE_SLEEPS], seeds, tune_values, ("foreign_sleep",))
    tarpit = runs[runs["policy"] == "tarpit"]
    rows = []
    for sleep in TUNE_SLEEPS:
        at = tarpit[tarpit["foreign_sleep"] == sleep]
        red = at[SPAM_REDUCTION].mean()
        rows.append({"foreign_sleep": sleep, "feasible": red >= threshold,
                     "objective_mean": at["legit.false_delay_rate.5s"].mean(),
                     "req_0_mean": red, "req_0_met": red >= threshold})
    points = pd.DataFrame(rows).sort_values(["feasible", "objective_mean"], ascending=[False, True])
    feasible = points[points["feasible"]]["foreign_sleep"].tolist()
    best = {"foreign_sleep": feasible[0]} if feasible else None
    runner = {"foreign_sleep": feasible[1]} if len(feasible) > 1 else None
    difference = None
    if runner:
        a = tarpit[tarpit["foreign_sleep"] == best["foreign_sleep"]].set_index("seed")["legit.false_delay_rate.5s"]
        b = tarpit[tarpit["foreign_sleep"] == runner["foreign_sleep"]].set_index("seed")["legit.false_delay_rate.5s"]
        mean, low, high, n = t_interval((b - a).to_numpy())
        difference = {"mean": mean, "ci_low": low, "ci_high": high, "n": n}
    tune = TuneOutcome(policy="tarpit", require=(f"spam.reduction>={threshold}",), objective="legit.false_delay_rate.5s",
                       direction="minimize", best=best, runner_up=runner, points=points.reset_index(drop=True),
                       runner_up_difference=difference)
    return experiment("tune", runs, ("none", "tarpit"), "none", (Varied("foreign_sleep", TUNE_SLEEPS),),
                      seeds=seeds, tune=tune, metrics=metrics)


def pct(x: float) -> str:
    return f"{x * 100:.1f}"


def written(tmp_path_factory, name: str, exp: Experiment):
    folder = tmp_path_factory.mktemp(name)
    paths = write_report(exp, folder)
    md = (folder / "report.md").read_text(encoding="utf-8")
    html = (folder / "report.html").read_text(encoding="utf-8")
    return exp, folder, paths, md, html


@pytest.fixture(scope="module")
def compare(tmp_path_factory):
    return written(tmp_path_factory, "compare", compare_experiment(descriptions={
        "none": "authentication only", "selective-1-5s": f"sleeps {SCRIPT} & more", "uniform-5s": "sleep 5"}))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return written(tmp_path_factory, "sweep", sweep_experiment())


@pytest.fixture(scope="module")
def tune(tmp_path_factory):
    return written(tmp_path_factory, "tune", tune_experiment())


# --------------------------------------------------------------------------- every report

def check_common(exp: Experiment, folder: Path, paths: list[Path], md: str, html: str) -> None:
    assert (folder / "report.md") in paths and (folder / "report.html") in paths
    pngs = sorted(p for p in paths if p.suffix == ".png")
    assert pngs, "no chart written"
    assert sorted(p.name for p in pngs) == sorted(chart_names(exp))
    for path in paths:
        assert path.exists() and path.stat().st_size > 0
    # self-contained: nothing fetched from anywhere, every chart embedded byte for byte
    assert not re.search(r'(src|href)\s*=\s*["\']?\s*(https?:)?//', html, re.I)
    assert "<link" not in html and "@import" not in html and "url(" not in html
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(embedded) == len(pngs)
    assert {base64.b64decode(e) for e in embedded} == {p.read_bytes() for p in pngs}
    # Markdown refers to the charts by relative name, and links the CSVs
    for png in pngs:
        assert f"]({png.name})" in md
    for text in (md, html):
        assert "runs.csv" in text and "summary.csv" in text
        assert exp.command in text
        for policy in exp.policies:
            assert policy in text
        for seed in exp.seeds:
            assert re.search(rf"\b{seed}\b", text)
        for metric in exp.metrics:
            if metric.name in set(exp.summary["metric"]):
                assert metric.label.replace(">", "&gt;") in text if text is html else metric.label in text
        assert "How to read this" in text
    for sentence in findings(exp):
        assert _html_text(sentence) in html
        assert sentence.replace("*", "\\*").replace("<", "\\<") in md


def _html_text(text: str) -> str:
    import html as _html
    return _html.escape(text, quote=True)


def test_compare_report(compare):
    exp, folder, paths, md, html = compare
    check_common(exp, folder, paths, md, html)
    assert (folder / "compare.png").exists() and (folder / "tradeoff.png").exists()
    assert "Policy comparison — may-2012" in md
    assert "every policy ran on the same 3 seeds" in md
    # headline cells: mean [low, high] by unit
    mean, low, high, _ = t_interval(REDUCTION["selective-1-5s"])
    assert f"| {pct(mean)}% [{pct(low)}, {pct(high)}] |" in md
    p95 = t_interval([5.0, 5.1, 5.2])
    assert f"{p95[0]:.1f} s [{p95[1]:.1f}, {p95[2]:.1f}]" in md
    spam_none = t_interval([6_000_000, 6_050_000, 5_970_000])
    assert f"{spam_none[0]:,.0f} [{spam_none[1]:,.0f}, {spam_none[2]:,.0f}]" in md
    # paired differences: shares in percentage points, with signs
    diff = t_interval(np.subtract(FDR5["selective-1-5s"], FDR5["none"]))
    assert f"+{pct(diff[0])} pp [+{pct(diff[1])}, +{pct(diff[2])}]" in md


def test_compare_findings_numbers(compare):
    exp = compare[0]
    lines = findings(exp)
    red = t_interval(REDUCTION["selective-1-5s"])
    fdr = t_interval(FDR5["selective-1-5s"])
    expected = (f"selective-1-5s cut spam recipients by {pct(red[0])}% [{pct(red[1])}, {pct(red[2])}] "
                f"at a 5 s false-delay rate of {pct(fdr[0])}% [{pct(fdr[1])}, {pct(fdr[2])}]")
    assert expected == ("selective-1-5s cut spam recipients by 99.2% [98.8, 99.5] "
                        "at a 5 s false-delay rate of 11.5% [10.3, 12.7]")
    mine = [s for s in lines if s.startswith("selective-1-5s")]
    assert len(mine) == 1 and mine[0].startswith(expected)
    # selective fails 20 more legitimate messages than none on every seed: a sure difference
    assert ", and 20 [20, 20] more legitimate messages were never accepted than under none" in mine[0]
    # ... and the plain conclusion ends it: 99.2% cut is "almost all" (advice.ALMOST_ALL = 95%)
    assert mine[0].endswith(": it stops almost all the spam.")
    # sorted by spam reduction: uniform-5s (99.5%) before selective-1-5s (99.2%)
    order = [s.split(" ")[0] for s in lines if " cut spam recipients by " in s]
    assert order == ["uniform-5s", "selective-1-5s"]
    assert not any("FAILED" in s for s in lines)


def test_html_escapes_user_text(compare):
    _, _, _, md, html = compare
    assert SCRIPT not in html
    assert "sleeps &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in html
    assert "<script" not in html.lower()
    assert "\\<script>" in md  # Markdown: shown as text, not a tag


def test_sweep_report(sweep):
    exp, folder, paths, md, html = sweep
    check_common(exp, folder, paths, md, html)
    names = {p.name for p in paths}
    assert {"sweep-spam_reduction.png", "sweep-legit_false_delay_rate_5s.png", "tradeoff.png"} <= names
    assert "compare.png" not in names
    # one table per policy, one row per grid point
    assert "### selective" in md and "### none (baseline)" in md
    section = md.split("### selective")[1].split("\n## ")[0]
    spam_table = section.split("\n\n")[2]
    assert len([l for l in spam_table.splitlines() if l.startswith("| ") and l[2].isdigit()]) == len(SLEEPS)
    assert "Pareto front" in md


def test_sweep_findings():
    lines = findings(sweep_experiment())
    assert lines[0].startswith("foreign_sleep was varied over 4 values (from 1 to 8)")
    red = t_interval([SWEEP_REDUCTION[5] + 0.002, SWEEP_REDUCTION[5] - 0.002])
    target = [s for s in lines if "at least 95%" in s]
    assert len(target) == 1
    assert target[0].startswith("selective: the smallest foreign_sleep that cuts spam recipients by at least 95% "
                                f"is 5 ({pct(red[0])}% [{pct(red[1])}, 100.0]")
    assert red[2] > 1  # the t interval goes past 100%; the report cuts it at what is possible
    # the biggest step of spam reduction is between 1 and 3 (+56 pp)
    change = next(s for s in lines if s.startswith("selective: spam recipients cut goes from"))
    assert "changing most between 1 and 3 (+56.0 pp)" in change


def test_tune_report_and_recommendation(tune):
    exp, folder, paths, md, html = tune
    check_common(exp, folder, paths, md, html)
    assert "## Recommendation" in md
    lines = findings(exp)
    red = t_interval([TUNE_REDUCTION[4] + d for d in (0.001, -0.001, 0.0)])
    fdr = t_interval([TUNE_FDR5[4] + d for d in (0.0, 0.004, 0.004)])
    diff = exp.tune.runner_up_difference
    recommended = next(s for s in lines if s.startswith("Recommended:"))
    assert recommended == (
        f"Recommended: foreign_sleep = 4 for tarpit (spam recipients cut {pct(red[0])}% "
        f"[{pct(red[1])}, {pct(red[2])}], "
        f"legit mail delayed > 5 s {pct(fdr[0])}% [{pct(fdr[1])}, {pct(fdr[2])}]); runner-up foreign_sleep = 5 is "
        f"{pct(diff['mean'])} percentage points worse on legit mail delayed > 5 s "
        f"[{pct(diff['ci_low'])}, {pct(diff['ci_high'])}].")
    assert "3 of 5 grid points met spam.reduction>=0.95" in " ".join(lines)


def test_tune_without_feasible_point(tmp_path):
    exp = tune_experiment(threshold=0.999, metrics=tuple(m for m in METRICS if m.name in (
        SPAM_REDUCTION, "legit.false_delay_rate.5s")))
    lines = findings(exp)
    assert not any(s.startswith("Recommended") for s in lines)
    closest = next(s for s in lines if s.startswith("No grid point met"))
    assert closest.startswith("No grid point met spam.reduction>=0.999; the closest was foreign_sleep = 6 for tarpit")
    assert "0 of 5 grid points" in " ".join(lines)
    paths = write_report(exp, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "recommended: none (no grid point met every requirement)" in md
    check_common(exp, tmp_path, paths, md, (tmp_path / "report.html").read_text())


def test_failed_runs_are_listed_first(tmp_path):
    exp = compare_experiment(failed={("uniform-5s", (), 1)})
    lines = findings(exp)
    assert lines[0].startswith("FAILED: 1 of 9 runs failed")
    assert "uniform-5s, replication 1 (seed 22): RuntimeError: smtpd exploded" in lines[0]
    paths = write_report(exp, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "## Failed runs (1)" in md
    assert md.index("## Failed runs") < md.index("## What was run")
    assert "| uniform-5s | 1 | 22 | Traceback ... RuntimeError: smtpd exploded |" in md
    check_common(exp, tmp_path, paths, md, (tmp_path / "report.html").read_text())


def test_single_replication_prints_means_only(tmp_path):
    exp = compare_experiment(seeds=(11,))
    assert exp.summary["ci_low"].isna().all()
    lines = findings(exp)
    assert any("at least 2 replications" in s for s in lines)
    mine = next(s for s in lines if s.startswith("selective-1-5s"))
    assert mine.startswith(f"selective-1-5s cut spam recipients by {pct(REDUCTION['selective-1-5s'][0])}% at a 5 s "
                           f"false-delay rate of {pct(FDR5['selective-1-5s'][0])}%")
    assert "[" not in mine
    paths = write_report(exp, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "| selective-1-5s | 60,000 | 99.0% |" in md
    assert "| selective-1-5s | 11.0% | 5.0 s | 120 |" in md
    assert "intervals need at least 2 replications" in md
    check_common(exp, tmp_path, paths, md, (tmp_path / "report.html").read_text())


def test_without_baseline(tmp_path):
    exp = compare_experiment(baseline=None)
    assert SPAM_REDUCTION not in set(exp.summary["metric"])
    lines = findings(exp)
    assert any("no baseline" in s.lower() for s in lines)
    assert not any("cut spam" in s for s in lines)
    # ordered by spam accepted, fewest first
    assert [s.split(":")[0] for s in lines if s.split(":")[0] in COMPARE_POLICIES] == [
        "uniform-5s", "selective-1-5s", "none"]
    paths = write_report(exp, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "No baseline: no paired differences." in md
    assert "spam recipients cut" not in md.split("## How to read this")[0]
    check_common(exp, tmp_path, paths, md, (tmp_path / "report.html").read_text())


# --------------------------------------------------------------------------- Pareto front

def test_pareto_front_hand_made():
    points = pd.DataFrame({
        "name": ["A", "B", "C", "D", "E", "F", "G", "H", "I"],
        "legit.false_delay_rate.5s": [0.0, 0.1, 0.1, 0.2, 0.3, 0.3, 0.5, math.nan, 0.0],
        "spam.reduction": [0.5, 0.9, 0.8, 0.9, 0.99, 0.99, 0.95, 1.0, 0.4],
    }, index=[10, 11, 12, 13, 14, 15, 16, 17, 18])
    front = pareto_front(points)
    # C: same x as B, less cut; D: same cut as B, more delay; G: beaten by E; H: missing x; I: below A
    assert front["name"].tolist() == ["A", "B", "E", "F"]
    assert front.index.tolist() == [10, 11, 14, 15]
    assert list(front.columns) == list(points.columns)
    # minimizing y instead (spam accepted): A(0.0, 0.5) and I(0.0, 0.4) -> only I
    assert pareto_front(points, maximize_y=False)["name"].tolist() == ["I"]


def test_pareto_front_matches_brute_force():
    rng = np.random.default_rng(5)
    df = pd.DataFrame({"x": rng.integers(0, 6, 60) / 5, "y": rng.integers(0, 6, 60) / 5})
    front = set(pareto_front(df, "x", "y").index)
    expected = {i for i in df.index
                if not any((df.x[j] <= df.x[i] and df.y[j] >= df.y[i]) and (df.x[j] < df.x[i] or df.y[j] > df.y[i])
                           for j in df.index)}
    assert front == expected


# --------------------------------------------------------------------------- formatting

def test_formatting_by_unit():
    assert fmt_interval(0.992, 0.989, 0.994, "share") == "99.2% [98.9, 99.4]"
    assert fmt_interval(6_065_292, 6_000_000.4, 6_130_000, "count") == "6,065,292 [6,000,000, 6,130,000]"
    assert fmt_value(2.4, "seconds") == "2.4 s"
    assert fmt_value(13_320, "seconds") == "3.7 h"
    assert fmt_value(600, "seconds") == "10.0 min"
    assert fmt_value(6.0, "hours") == "6.0 h"
    assert fmt_value(3.14159, "number") == "3.1"
    assert fmt_value(math.nan, "share") == "n/a"
    assert fmt_interval(0.5, math.nan, math.nan, "share") == "50.0%"
    assert fmt_interval(math.nan, 0.1, 0.2, "share") == "n/a"
    assert fmt_diff(-0.003, -0.004, -0.002, "share") == "-0.3 pp [-0.4, -0.2]"
    assert fmt_diff(2.4, 1.9, 2.9, "seconds") == "+2.4 s [+1.9, +2.9]"
    assert fmt_param(4.0) == "4" and fmt_param("5s") == "5s" and fmt_param(0.25) == "0.25"
    assert fmt_duration(754) == "12 min 34 s"


def test_identical_runs_say_so_in_words_with_the_rule_of_three_bound_named():
    """A metric every run gave the same value of reads "same in all n runs"; its rule-of-three bound (which
    reaches 45 % of the way to the metric's ceiling with 5 runs) is named as such, never shown as if the runs
    had spread that far — in table cells and in sentences alike."""
    from simsub.analysis.intervals import RUNS_RULE, T_RULE, interval
    from simsub.report.advice import interval_cell

    legit = 79_701  # messages: the ceiling of "legit messages never accepted"
    steady = interval([0, 0, 0, 0, 0], low=0, high=legit)
    assert steady.rule == RUNS_RULE and steady.high > 0.4 * legit  # what a bare "0 [0, 36,266]" showed
    row = {"m": steady.mean, "m:low": steady.low, "m:high": steady.high, "m:n": steady.n, "m:rule": steady.rule}
    assert interval_cell(row, "m", "count") == f"0 (same in all 5 runs; rule of three: ≤ {steady.high:,.0f})"
    unbounded = interval([0.0] * 5, low=0)  # hours listed: nothing bounds it from above
    row = {"m": 0.0, "m:low": unbounded.low, "m:high": unbounded.high, "m:n": 5, "m:rule": unbounded.rule}
    assert interval_cell(row, "m", "hours") == "0.0 h (same in all 5 runs)"
    p95 = interval([15.0] * 5, low=0)  # a delay every run gave: only the lower side is bounded
    row = {"m": 15.0, "m:low": p95.low, "m:high": p95.high, "m:n": 5, "m:rule": p95.rule}
    assert interval_cell(row, "m", "seconds") == f"15.0 s (same in all 5 runs; rule of three: ≥ {p95.low:.1f} s)"
    spread = interval([1, 2, 3], low=0)
    row = {"m": spread.mean, "m:low": spread.low, "m:high": spread.high, "m:n": 3, "m:rule": T_RULE}
    assert interval_cell(row, "m", "count") == fmt_interval(spread.mean, spread.low, spread.high, "count")


def test_tune_tie_with_runner_up():
    exp = tune_experiment()
    exp.tune.runner_up_difference = {"mean": 0.0, "ci_low": 0.0, "ci_high": 0.0, "n": 3}
    lines = findings(exp)
    recommended = next(s for s in lines if s.startswith("Recommended:"))
    assert recommended.endswith("runner-up foreign_sleep = 5 is exactly as good on legit mail delayed > 5 s on "
                                "every seed.")
    assert not any("cannot be told apart" in s for s in lines)
    # an interval straddling 0 gets the warning
    exp.tune.runner_up_difference = {"mean": 0.001, "ci_low": -0.002, "ci_high": 0.004, "n": 3}
    lines = findings(exp)
    assert "0.1 percentage points worse on legit mail delayed > 5 s [-0.2, 0.4]" in " ".join(lines)
    assert any("cannot be told apart" in s for s in lines)
