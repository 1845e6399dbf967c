"""Experiments: seeds, grids, intervals, executors, resume, failures, tune, CLI.

A tiny scenario with exact behaviour: bots wait at most 2.5 s for a reply
(plus a 200 ms round trip), every client is slept ``${sleep}`` seconds at
each RCPT, so bots get through for sleep <= 2 and give up for sleep >= 3, and
a legitimate one-recipient message is delayed exactly ``sleep`` seconds.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

import simsub

from simsub.analysis.stats import mean_ci, paired_difference
from simsub.cli import main
from simsub.errors import ScenarioError
from simsub.experiments import compare, sweep, tune
from simsub.experiments import execute as execute_module
from simsub.experiments.design import canonical, grid, parse_vary, replication_seed
from simsub.experiments.execute import InlineExecutor, Interrupted
from simsub.experiments.metrics import flatten_summary, known_metrics

TINY = """
[scenario]
name = "tiny-tarpit"
description = "Bots that wait 2.5 s for a reply; every client slept ${sleep} s per RCPT."
horizon = "{horizon}"
seed = 7
default_policy = "none"

[params]
sleep = 0

[origins.own]
hostname = "p{n}.dial.example.ne.jp"
rtt = "10ms"
mynetworks = true

[origins.unknown]
hostname = "unknown"
rtt = "200ms"

[[populations]]
name = "users"
kind = "user"
count = 50
origins = { own = 1.0 }
messages_per_day = 150
recipients = 1
patience = "60s"

[[populations]]
name = "bots"
kind = "bot"
count = 3
accounts = 2
origins = { unknown = 1.0 }
recipients = 5
pause = "20s"
patience = "2500ms"
on_timeout = "disconnect"

[mta]
process_limit = 20
backlog = 20

[policies.none]
description = "nothing"

[policies.tarpit]
description = "sleep ${sleep} at every RCPT TO, for everyone"
recipient_restrictions = ["sleep ${sleep}", "permit_sasl_authenticated", "reject"]

[policies.tarpit-5]
description = "sleep 5 at every RCPT TO"
recipient_restrictions = ["sleep 5", "permit_sasl_authenticated", "reject"]
"""


@pytest.fixture
def tiny_file(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.replace("{horizon}", "10m"))
    return path


def metric_columns(runs: pd.DataFrame) -> list[str]:
    return sorted(c for c in runs.columns if "." in c)


# --------------------------------------------------------------------------- seeds and grids
def test_replication_seeds_depend_only_on_root_and_index():
    seeds = [replication_seed(7, r) for r in range(50)]
    assert seeds == [replication_seed(7, r) for r in range(50)]
    assert len(set(seeds)) == 50
    assert replication_seed(8, 0) != seeds[0]


def test_every_policy_and_point_runs_on_the_same_seeds(tiny_file):
    experiment = sweep(tiny_file, "tarpit", ["sleep=0,3"], replications=2, workers=1, progress=False)
    seeds = experiment.runs.groupby(["policy", "sleep"])["seed"].apply(tuple)
    assert set(seeds) == {experiment.seeds}
    assert experiment.seeds == tuple(replication_seed(7, r) for r in range(2))
    # The seed column is the plan; check what each run actually drew.  The legitimate
    # mail a run generates depends on its seed only, so every policy and point of a
    # replication must see exactly the messages a direct run with that seed sees.
    scenario = simsub.load_scenario(tiny_file)
    for replication, rows in experiment.runs.groupby("replication"):
        direct = simsub.run(scenario, policy="none", seed=experiment.seeds[replication]).summary["legit"]
        assert (rows["legit.messages"] == direct["messages"]).all(), rows[["policy", "sleep", "legit.messages"]]


def test_vary_ranges_are_inclusive_and_exact():
    assert parse_vary("x=0:10:2").values == (0, 2, 4, 6, 8, 10)
    assert parse_vary("x=0:1:0.25").values == (0.0, 0.25, 0.5, 0.75, 1.0)
    assert parse_vary("x=0.1:0.3:0.1").values == (0.1, 0.2, 0.3)  # no 0.30000000000000004
    assert parse_vary("name=a,b").values == ("a", "b")
    assert parse_vary("x=1,2.5,true").values == (1, 2.5, True)
    assert [p for p in grid((parse_vary("a=1,2"), parse_vary("b=x,y")))] == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]


@pytest.mark.parametrize("text, words", [
    ("x=5:1:1", "empty range"),
    ("x=0:10:0", "STEP must be > 0"),
    ("x=0:10", "three numbers"),
    ("x=a:b:c", "must be numbers"),
    ("x=", "expected NAME="),
    ("x=1,,2", "empty value"),
    ("x=1,1", "twice"),
    ("x=0:1e9:1", "at most"),
])
def test_malformed_vary_is_refused(text, words):
    with pytest.raises(ScenarioError, match=words):
        canonical(parse_vary(text))


# --------------------------------------------------------------------------- statistics
def test_confidence_interval_matches_the_textbook_case():
    # 1..5: mean 3, s = sqrt(2.5), t(0.975, 4) = 2.776445 (statistical tables).
    mean, low, high, n = mean_ci([1, 2, 3, 4, 5])
    half = 2.776445 * math.sqrt(2.5) / math.sqrt(5)
    assert (mean, n) == (3.0, 5)
    assert low == pytest.approx(3 - half, abs=1e-5) and high == pytest.approx(3 + half, abs=1e-5)
    assert math.isnan(mean_ci([4.0])[1]) and mean_ci([4.0])[0] == 4.0
    assert mean_ci([])[3] == 0


def test_confidence_interval_covers_at_its_nominal_rate():
    # 2,000 samples of 5 normals: the 95 % interval should miss the mean about 100 times;
    # binomial sd is sqrt(2000 * 0.05 * 0.95) = 9.7, so 4 sd either side is 61..139.
    rng = np.random.default_rng(1)
    misses = sum(not (low <= 10 <= high) for low, high in
                 (mean_ci(rng.normal(10, 3, 5))[1:3] for _ in range(2000)))
    assert 61 <= misses <= 139


def test_paired_difference_uses_matching_seeds_only():
    a = {1: 10.0, 2: 12.0, 3: 11.0, 9: 100.0}
    b = {1: 9.0, 2: 10.0, 3: 10.0, 4: -50.0}
    mean, low, high, n = paired_difference(a, b)
    assert n == 3 and mean == pytest.approx(4 / 3)
    assert (low, high) == pytest.approx(mean_ci([1.0, 2.0, 1.0])[1:3])


# --------------------------------------------------------------------------- compare
def test_compare_pairs_policies_on_seeds_and_measures_reduction(tiny_file):
    experiment = compare(tiny_file, replications=3, workers=1, progress=False,
                         overrides={"sleep": 3})
    runs = experiment.runs
    assert experiment.baseline == "none"
    assert list(experiment.policies) == ["none", "tarpit", "tarpit-5"]
    assert (runs["status"] == "ok").all() and len(runs) == 9
    ok = runs.set_index(["policy", "seed"])
    for policy in ("tarpit", "tarpit-5"):
        spam = ok.loc[policy]["spam.recipients_accepted"]
        base = ok.loc["none"]["spam.recipients_accepted"]
        assert base.min() > 0
        np.testing.assert_allclose(ok.loc[policy]["spam.reduction"], 1 - spam / base.loc[spam.index])
        row = experiment.summary.query("policy == @policy and metric == 'legit.false_delay.mean'").iloc[0]
        differences = ok.loc[policy]["legit.false_delay.mean"] - ok.loc["none"]["legit.false_delay.mean"]
        assert row["diff_mean"] == pytest.approx(differences.mean())
        assert row["diff_n"] == 3
    # Bots wait 2.5 s: a 3 s sleep stops them all, and legit mail waits exactly 3 s per recipient.
    tarpit = experiment.summary.set_index(["policy", "metric"])
    assert tarpit.loc[("tarpit", "spam.reduction"), "mean"] == 1.0
    assert tarpit.loc[("tarpit", "legit.false_delay.p50"), "mean"] == pytest.approx(3.0, abs=1e-6)


def test_results_do_not_depend_on_the_order_of_policies(tiny_file):
    one = compare(tiny_file, policies=["tarpit", "tarpit-5"], replications=2, workers=1, progress=False)
    two = compare(tiny_file, policies=["tarpit-5", "tarpit"], replications=2, workers=1, progress=False)
    key = ["policy", "replication"]
    a = one.runs.sort_values(key).reset_index(drop=True)[key + metric_columns(one.runs)]
    b = two.runs.sort_values(key).reset_index(drop=True)[key + metric_columns(two.runs)]
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.slow
def test_local_pool_and_dask_give_identical_tables(tiny_file):
    runs = {}
    for name, options in {"inline": {"workers": 1}, "pool": {"workers": 2},
                          "dask": {"workers": 2, "dask": "local"}}.items():
        experiment = sweep(tiny_file, "tarpit", ["sleep=0,3"], replications=2, progress=False, **options)
        table = experiment.runs.sort_values(["policy", "sleep", "replication"]).reset_index(drop=True)
        runs[name] = table[["policy", "sleep", "replication", "seed"] + metric_columns(table)]
    assert "Dask" in experiment.executor
    pd.testing.assert_frame_equal(runs["inline"], runs["pool"], check_exact=True)
    pd.testing.assert_frame_equal(runs["inline"], runs["dask"], check_exact=True)


# --------------------------------------------------------------------------- cache, resume, failures
class StopAfter(InlineExecutor):
    """An executor that is 'interrupted' (Ctrl-C) after ``n`` finished runs."""

    def __init__(self, n):
        self.n = n

    def results(self, tasks):
        for i, record in enumerate(super().results(tasks)):
            if i == self.n:
                raise KeyboardInterrupt
            yield record


def test_resume_after_interruption_computes_only_what_is_missing(tiny_file, tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(Interrupted) as stopped:
        sweep(tiny_file, "tarpit", ["sleep=0:3:1"], replications=2, cache=cache, executor=StopAfter(3),
              progress=False)
    assert stopped.value.finished == 3
    assert len(list(cache.rglob("*.json"))) == 3
    resumed = sweep(tiny_file, "tarpit", ["sleep=0:3:1"], replications=2, cache=cache, workers=1, progress=False)
    unique = resumed.runs.drop_duplicates("key")
    assert int(unique["cached"].sum()) == 3
    fresh = sweep(tiny_file, "tarpit", ["sleep=0:3:1"], replications=2, workers=1, progress=False)
    columns = ["policy", "sleep", "replication"] + metric_columns(fresh.runs)
    pd.testing.assert_frame_equal(resumed.runs[columns], fresh.runs[columns], check_exact=True)
    again = sweep(tiny_file, "tarpit", ["sleep=0:3:1"], replications=2, cache=cache, workers=1, progress=False)
    assert again.runs["cached"].all()


def test_baseline_runs_are_shared_across_grid_points(tiny_file):
    experiment = sweep(tiny_file, "tarpit", ["sleep=0:3:1"], replications=2, workers=1, progress=False)
    base = experiment.runs[experiment.runs["policy"] == "none"]
    assert len(base) == 8 and base["key"].nunique() == 2  # the sleep does not change policy "none"


def test_a_failing_run_is_recorded_and_does_not_stop_the_others(tiny_file, tmp_path, monkeypatch, capsys):
    real = execute_module.run_task
    bad_seed = replication_seed(7, 1)

    def flaky(task):
        if task.seed == bad_seed and task.policy == "tarpit":
            raise_in = {"key": task.key, "status": "failed", "error": "RuntimeError: disk on fire",
                        "traceback": "", "wall_s": 0.0}
            return raise_in
        return real(task)

    monkeypatch.setattr(execute_module, "run_task", flaky)
    out = tmp_path / "out"
    status = main(["compare", str(tiny_file), "--replications", "2", "--workers", "1", "--quiet",
                   "--out", str(out), "--cache", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert status == 1
    assert "1 of 6 runs failed" in err and "tarpit replication 1" in err and "disk on fire" in err
    runs = pd.read_csv(out / "runs.csv")
    assert (runs["status"] == "failed").sum() == 1
    assert (runs.loc[runs["status"] == "ok", "spam.recipients_accepted"].notna()).all()
    record = json.loads((out / "experiment.json").read_text())
    assert record["failures"][0]["error"] == "RuntimeError: disk on fire"
    # Failed runs are not cached: the next invocation retries them.
    monkeypatch.setattr(execute_module, "run_task", real)
    assert main(["compare", str(tiny_file), "--replications", "2", "--workers", "1", "--quiet",
                 "--out", str(out), "--cache", str(tmp_path / "cache")]) == 0


def test_a_raising_run_inside_the_worker_becomes_a_failed_record(tiny_file):
    task = execute_module.Task("k", {"scenario": {}}, "broken.toml", {}, "none", 1)
    record = execute_module.run_task(task)
    assert record["status"] == "failed" and "ScenarioError" in record["error"]


# --------------------------------------------------------------------------- tune
def test_tune_finds_the_smallest_sleep_that_stops_the_bots(tiny_file):
    experiment = tune(tiny_file, "tarpit", ["sleep=0:6:1"], require=["spam.reduction>=0.95"],
                      minimize="legit.false_delay.mean", replications=2, workers=1, progress=False)
    outcome = experiment.tune
    assert outcome.best == {"sleep": 3} and outcome.runner_up == {"sleep": 4}
    assert outcome.runner_up_difference["mean"] == pytest.approx(1.0, abs=1e-9)
    assert list(outcome.points["feasible"]) == [True] * 4 + [False] * 3


def test_tune_refines_between_grid_points(tiny_file):
    experiment = tune(tiny_file, "tarpit", ["sleep=0:8:2"], require=["spam.reduction>=95%"],
                      minimize="legit.false_delay.mean", refine=2, replications=1, workers=1, progress=False)
    assert experiment.tune.best == {"sleep": 3}
    assert experiment.tune.refinements == 1  # whole seconds: nothing between 3 and 4 to try
    assert sorted(experiment.runs["sleep"].unique()) == [0, 2, 3, 4, 5, 6, 8]


@pytest.mark.parametrize("require, words", [
    ("spam.reduction>=1.5", "can never hold"),
    ("legit.false_delay.mean<0", "can never hold"),
    ("spam.reductoin>=0.9", "did you mean 'spam.reduction'"),
    ("spam.reduction=>0.9", "expected METRIC OP NUMBER"),
])
def test_impossible_or_malformed_requirements_stop_before_any_run(tiny_file, tmp_path, capsys, require, words):
    status = main(["tune", str(tiny_file), "--policy", "tarpit", "--vary", "sleep=0:3:1", "--require", require,
                   "--minimize", "legit.false_delay.mean", "--out", str(tmp_path / "out"),
                   "--cache", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert status == 2 and words in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


# --------------------------------------------------------------------------- bad input on the command line
@pytest.mark.parametrize("argv, words", [
    (["compare", "--policies", "none,nope"], "no policy named 'nope'"),
    (["compare", "--baseline", "nope"], "--baseline"),
    (["sweep", "--policy", "tarpit", "--vary", "sleeep=0:3:1"], "sleeep"),
    (["sweep", "--policy", "tarpit", "--vary", "sleep=3:0:1"], "empty range"),
    (["sweep", "--policy", "tarpit"], "at least one parameter"),
    (["sweep", "--policy", "tarpit", "--vary", "sleep=0,abc"], "sleep"),
    (["compare", "--replications", "0"], ">= 1"),
    (["compare", "--dask", "tcp://127.0.0.1:9"], "cannot reach the Dask scheduler"),
])
def test_bad_experiment_input_exits_2_before_any_work(tiny_file, tmp_path, capsys, argv, words):
    argv = [argv[0], str(tiny_file), *argv[1:], "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache"),
            "--quiet"]
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2, err
    assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


# --------------------------------------------------------------------------- the command and its folder
def test_compare_command_writes_tables_record_and_report(tiny_file, tmp_path, capsys):
    out = tmp_path / "cmp"
    status = main(["compare", str(tiny_file), "--replications", "2", "--workers", "2", "--set", "sleep=3",
                   "--out", str(out), "--cache", str(tmp_path / "cache")])
    printed = capsys.readouterr().out
    assert status == 0
    assert "report:" in printed and "6 runs (6 computed, 0 from cache)" in printed
    for name in ("runs.csv", "summary.csv", "experiment.json", "report.md", "report.html"):
        assert (out / name).is_file(), name
    record = json.loads((out / "experiment.json").read_text())
    assert record["seeds"] == [replication_seed(7, r) for r in range(2)]
    assert record["command"].startswith("simsub compare") and "--set sleep=3" in record["command"]
    report = (out / "report.md").read_text()
    for word in ("tarpit-5", "none", record["command"], str(record["seeds"][0])):
        assert word in report
    summary = pd.read_csv(out / "summary.csv")
    assert {"policy", "metric", "mean", "ci_low", "ci_high", "diff_mean", "diff_low", "diff_high"} <= set(summary)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir() if p.name != "cache")


@pytest.mark.slow
def test_interrupted_sweep_command_resumes(tiny_file, tmp_path):
    """A real Ctrl-C (SIGINT) to `simsub sweep`, then the same command again."""
    slow = tmp_path / "slow.toml"
    slow.write_text(TINY.replace("{horizon}", "2h"))
    cache = tmp_path / "cache"
    argv = [sys.executable, "-m", "simsub", "sweep", str(slow), "--policy", "tarpit", "--vary", "sleep=0:5:1",
            "--replications", "2", "--workers", "1", "--out", str(tmp_path / "out"), "--cache", str(cache)]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while len(list(cache.rglob("*.json"))) < 3 and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "run the same command again" in err
    assert not (tmp_path / "out").exists()
    kept = len(list(cache.rglob("*.json")))
    assert kept >= 3
    finished = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    total = 6 * 2 + 2  # six sleeps of "tarpit" and the baseline (which the sleep does not change), 2 seeds each
    assert f"{total - kept} computed, {kept} from cache" in finished.stdout


def test_known_metrics_are_exactly_what_a_run_reports():
    """``known_metrics`` (used to check --require before running) matches a real summary."""
    from simsub.api import run
    from simsub.scenario import load_scenario

    scenario = load_scenario(None, {"horizon": "15m", "populations.botnet.start": "0s"})
    flat = flatten_summary(run(scenario, "throttle-100h").summary)
    reported = {k for k in flat if not k.startswith("legit.failed_by_outcome.")}
    known = known_metrics(scenario) - {"spam.reduction"}
    assert reported <= known, reported - known
    # Origins no client of a kind came from have no by-origin entries in that run.
    assert all(".by_origin." in name for name in known - reported), known - reported


# --------------------------------------------------------------------------- edge cases found in review
def test_a_policy_listed_twice_runs_once(tiny_file):
    experiment = compare(tiny_file, policies=["tarpit", "tarpit"], replications=2, workers=1, progress=False)
    assert list(experiment.policies) == ["none", "tarpit"]
    assert (experiment.summary.query("policy == 'tarpit'")["n"] == 2).all()


@pytest.mark.parametrize("vary, words", [
    (["sleep=150,150.0"], "twice"),
    (["seed=1,2"], "cannot be varied"),
    (["n=1,2"], "cannot be varied"),
    (["sleep=0,3", "params.sleep=1,2"], "varied twice"),
    (["populations.users.messages_per_day=150"], None),  # one value: fine
])
def test_varied_names_and_values_are_checked(tiny_file, vary, words):
    if words is None:
        assert len(sweep(tiny_file, "tarpit", vary, replications=1, workers=1, progress=False).runs) == 2
        return
    with pytest.raises(ScenarioError, match=words):
        sweep(tiny_file, "tarpit", vary, replications=1, workers=1, progress=False)


def test_a_varied_name_that_changes_nothing_is_refused(tiny_file):
    # --set replaces the restriction that used ${sleep}: varying sleep would only change the description.
    with pytest.raises(ScenarioError, match="changes nothing"):
        sweep(tiny_file, "tarpit", ["sleep=0,3"], replications=1, workers=1, progress=False,
              overrides={"policies.tarpit.recipient_restrictions": ["sleep 1", "permit_sasl_authenticated"]})


def test_numpy_values_from_the_api_are_plain_values(tiny_file):
    experiment = sweep(tiny_file, "tarpit", {"sleep": np.array([0, 3])}, replications=1, workers=1, progress=False)
    assert sorted(experiment.runs["sleep"].unique().tolist()) == [0, 3]


def test_sweeping_the_baseline_against_itself_is_refused(tiny_file, tmp_path, capsys):
    status = main(["sweep", str(tiny_file), "--vary", "sleep=0,3", "--out", str(tmp_path / "o"), "--quiet"])
    assert status == 2 and "is the baseline" in capsys.readouterr().err


def test_counts_a_summary_leaves_out_are_zero_not_missing(tiny_file):
    experiment = compare(tiny_file, replications=1, workers=1, progress=False,
                         overrides={"sleep": 4, "populations.users.patience": "3s"})
    runs = experiment.runs.set_index("policy")
    assert runs.loc["tarpit", "legit.failed_by_outcome.timeout"] > 0
    assert runs.loc["none", "legit.failed_by_outcome.timeout"] == 0


def test_refinement_halves_the_gap_to_the_best_points_neighbours(tiny_file):
    experiment = tune(tiny_file, "tarpit", ["sleep=0:8:4"], require=["spam.reduction>=0.5"],
                      minimize="legit.false_delay.mean", refine=3, replications=1, workers=1, progress=False)
    assert experiment.tune.best == {"sleep": 3} and experiment.tune.refinements == 2
    assert sorted(experiment.runs["sleep"].unique()) == [0, 2, 3, 4, 5, 6, 8]


def test_tune_when_every_run_fails_still_reports(tiny_file, tmp_path, monkeypatch, capsys):
    def broken(task):
        return {"key": task.key, "status": "failed", "error": "RuntimeError: no", "traceback": "", "wall_s": 0.0}

    monkeypatch.setattr(execute_module, "run_task", broken)
    status = main(["tune", str(tiny_file), "--policy", "tarpit", "--vary", "sleep=0,3", "--require",
                   "spam.reduction>=0.9", "--minimize", "legit.false_delay.mean", "--workers", "1", "--quiet",
                   "--replications", "3", "--out", str(tmp_path / "t"), "--cache", str(tmp_path / "c")])
    assert status == 1 and (tmp_path / "t" / "report.md").is_file()
    assert "9 of 9 runs failed" in capsys.readouterr().err  # none once (shared), tarpit at 2 points; 3 seeds


def test_a_worker_with_other_model_code_refuses_the_task(tiny_file):
    task = execute_module.Task("k", {}, "x.toml", {}, "none", 1, code="0123456789abcdef")
    record = execute_module.run_task(task)
    assert record["status"] == "failed" and "other simsub model code" in record["error"]


def test_a_grid_point_error_names_the_vary_option(tiny_file, tmp_path, capsys):
    status = main(["sweep", str(tiny_file), "--policy", "tarpit", "--vary", "mta.process_limit=10,0",
                   "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert status == 2 and "(--vary mta.process_limit)" in err and "--set" not in err


def test_unusable_output_or_cache_paths_stop_before_any_run(tiny_file, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["compare", str(tiny_file), "--out", str(blocker / "out"), "--quiet"]) == 2
    assert main(["compare", str(tiny_file), "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "o" / "c"),
                 "--quiet"]) == 2
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    assert main(["compare", str(tiny_file), "--out", str(mine), "--quiet"]) == 2
    assert (mine / "notes.txt").read_text() == "keep"
    err = capsys.readouterr().err
    assert "cannot create" in err and "inside the output folder" in err and "not a simsub result folder" in err
