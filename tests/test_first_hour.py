"""What a newcomer meets first: help texts, option names in errors, --horizon and --confidence on the
experiments, a run that explains an empty attack, progress in a log, and honest wall times."""

from __future__ import annotations

import io
import json

import pytest

from simsub.cli import build_parser, main
from simsub.experiments.progress import ProgressBar
from tests.test_experiments import TINY


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.replace("{horizon}", "10m"))
    return path


def test_no_help_text_shows_a_doubled_percent(capsys):
    parser, _ = build_parser()
    for command in (None, "run", "check", "compare", "sweep", "tune", "export-postfix", "twin"):
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--help"] if command else ["--help"])
        text = capsys.readouterr().out
        assert "%%" not in text, command


def test_a_misspelt_policies_value_names_the_option(tmp_path, capsys):
    assert main(["compare", "--policies", "none,selectiv-1-5s", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "--policies: no policy named 'selectiv-1-5s'" in err and "did you mean 'selective-1-5s'" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("bad", ["0", "1", "95", "1.5", "x", "-0.1"])
def test_confidence_must_be_a_level(bad, tmp_path, capsys):
    assert main(["compare", "--confidence", bad, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "--confidence" in err and "between 0 and 1" in err and err.count("\n") == 1


def test_horizon_and_confidence_reach_the_experiment(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["compare", str(tiny), "--horizon", "5m", "--confidence", "80%", "--replications", "3",
                 "--workers", "1", "--out", str(out), "--quiet"]) == 0
    record = json.loads((out / "experiment.json").read_text())
    assert record["overrides"] == {"scenario.horizon": "5m"}
    assert record["confidence"] == 0.8
    assert "--horizon 5m" in record["command"]
    assert record["scenario"]["facts"]["simulated time"].startswith("0.0833")  # 5 min in hours
    report = (out / "report.md").read_text()
    assert "confidence level of intervals: 80%" in report


def test_a_run_before_the_bots_start_says_when_they_start(tmp_path, capsys):
    path = tmp_path / "late.toml"
    path.write_text(TINY.replace("{horizon}", "10m").replace('pause = "20s"', 'pause = "20s"\nstart = "1h"'))
    assert main(["run", str(path), "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "no bot started" in out and "bots at 01:00 (1 h)" in out and "--horizon beyond 1h" in out
    assert main(["run", str(path), "--horizon", "2h", "--out", str(tmp_path / "r2")]) == 0
    assert "no bot started" not in capsys.readouterr().out


class _Log(io.StringIO):
    def isatty(self):
        return False


def test_progress_in_a_log_is_a_line_per_computed_run():
    log = _Log()
    bar = ProgressBar(3, stream=log, names={"a": "none, replication 0 (seed 1)", "b": "tarpit, replication 0"})
    bar({"key": "c", "status": "ok", "wall_s": 2.0}, True)
    bar({"key": "a", "status": "ok", "wall_s": 1.25}, False)
    bar({"key": "b", "status": "failed", "wall_s": 0.5}, False)
    bar.close()
    lines = log.getvalue().splitlines()
    assert lines[0].startswith("run 2/3 finished: none, replication 0 (seed 1) in 1.2 s; 0:00 elapsed, ETA 0:00")
    assert lines[1].startswith("run 3/3 FAILED: tarpit, replication 0 in 0.5 s")
    assert lines[2] == "1 of 3 runs were read from the cache"
    quiet = _Log()
    silent = ProgressBar(3, stream=quiet, enabled=False)
    silent({"key": "a", "status": "ok", "wall_s": 1.0}, False)
    silent.close()
    assert quiet.getvalue() == ""


def test_a_rerun_reports_its_own_wall_time_and_the_runs_compute_time(tiny, tmp_path, capsys):
    from simsub.experiments import compare

    first = compare(tiny, replications=2, workers=1, cache=tmp_path / "cache", progress=False)
    again = compare(tiny, replications=2, workers=1, cache=tmp_path / "cache", progress=False)
    assert again.runs["cached"].all() and not first.runs["cached"].any()
    # the compute time is the runs' own, read back from the cache; the wall time is this invocation's
    assert again.compute_s == first.compute_s == again.cached_compute_s > 0
    assert first.cached_compute_s == 0
    from simsub.report import write_experiment

    write_experiment(again, tmp_path / "out")
    record = json.loads((tmp_path / "out" / "experiment.json").read_text())
    assert record["wall_s"] == again.wall_s and record["compute_s"] == first.compute_s
    report = (tmp_path / "out" / "report.md").read_text()
    assert "wall time of this invocation:" in report
    assert "by earlier invocations whose runs were read from the cache" in report


def test_compare_recommends_by_what_the_command_line_asks(tiny, tmp_path):
    out = tmp_path / "out"
    assert main(["compare", str(tiny), "--require", "spam.reduction>=50%", "--minimize", "legit.false_delay.p95",
                 "--replications", "2", "--workers", "1", "--out", str(out), "--quiet"]) == 0
    findings = json.loads((out / "experiment.json").read_text())["findings"]
    # sleep 0 (tarpit) stops no bot; sleep 5 (tarpit-5) outlasts their 2.5 s patience
    line = next(f for f in findings if f.startswith("Recommended:"))
    assert line.startswith("Recommended: tarpit-5 (") and "(as asked)" in line
    assert "spam recipients cut at least 50%; among those, least legit false delay p95" in line
