"""`simsub run` writes a complete result folder; the resolved scenario reproduces it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import pandas as pd
import pytest

from simsub.cli import main

from .conftest import DEFAULT_SCENARIO, REPO

FAST = ["--horizon", "30m", "--set", "populations.subscribers.count=3000", "--set", "populations.botnet.start=10m",
        "--set", "populations.botnet.count=10"]

REQUIRED_KEYS = {
    "run": ["scenario", "policy", "seed", "horizon_s", "events", "wall_s", "version"],
    "legit": ["messages", "accepted", "failed", "recipients_accepted", "false_delay", "false_delay_rate"],
    "spam": ["messages", "accepted", "aborted", "rejected", "deferred", "recipients_attempted", "recipients_accepted"],
    "smtpd": ["connections", "refused", "abandoned", "busy_mean", "busy_peak", "session_mean_s"],
}


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "selective"
    assert main(["run", str(DEFAULT_SCENARIO), "--policy", "selective-1-5s", "--seed", "3", "--quiet",
                 "--out", str(out), *FAST]) == 0
    return out


def test_folder_holds_every_file(run_folder):
    names = sorted(p.name for p in run_folder.iterdir())
    assert names == sorted(["summary.json", "messages.csv.gz", "timeseries.csv", "scenario.toml",
                            "throughput.png", "false_delay.png",  # the front end
                            "deliveries.csv.gz", "events.csv", "queue.png", "delivery_latency.png"])  # the queue
    for chart in ("throughput.png", "false_delay.png", "queue.png", "delivery_latency.png"):
        data = (run_folder / chart).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert not [p for p in run_folder.parent.iterdir() if p.name.startswith(".")]  # no partial folders


def test_summary_has_the_documented_keys(run_folder):
    summary = json.loads((run_folder / "summary.json").read_text())
    for section, keys in REQUIRED_KEYS.items():
        for key in keys:
            assert key in summary[section], f"{section}.{key}"
    assert set(summary["legit"]["false_delay"]) >= {"mean", "p50", "p95", "p99"}
    assert set(summary["legit"]["false_delay_rate"]) == {"1s", "5s", "30s"}
    assert summary["run"]["policy"] == "selective-1-5s" and summary["run"]["seed"] == 3
    assert summary["run"]["horizon_s"] == 1800
    assert summary["run"]["command"].startswith("simsub ")


def test_tables_agree_with_the_summary(run_folder):
    summary = json.loads((run_folder / "summary.json").read_text())
    messages = pd.read_csv(run_folder / "messages.csv.gz")
    legit = messages[messages["kind"] == "user"]
    assert len(legit) == summary["legit"]["messages"]
    spam = messages[(messages["kind"] == "bot") & (messages["outcome"] == "accepted")]
    assert spam["recipients_accepted"].sum() == summary["spam"]["recipients_accepted"]
    series = pd.read_csv(run_folder / "timeseries.csv")
    assert series["spam_recipients_accepted"].sum() == summary["spam"]["recipients_accepted"]
    assert series["busy_peak"].max() == summary["smtpd"]["busy_peak"]


def test_resolved_scenario_reproduces_the_run(run_folder, tmp_path):
    again = tmp_path / "again"
    assert main(["run", str(run_folder / "scenario.toml"), "--quiet", "--out", str(again)]) == 0
    first = json.loads((run_folder / "summary.json").read_text())
    second = json.loads((again / "summary.json").read_text())
    for section in ("legit", "spam", "smtpd"):
        assert first[section] == second[section]
    assert second["run"]["policy"] == "selective-1-5s" and second["run"]["seed"] == 3


def test_an_earlier_result_folder_is_replaced_whole(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text("{}")
    (out / "stale.txt").write_text("from an older run")
    assert main(["run", "--quiet", "--out", str(out), *FAST]) == 0
    assert not (out / "stale.txt").exists()
    assert json.loads((out / "summary.json").read_text())["run"]["policy"] == "none"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_folder_that_is_not_a_result_is_never_replaced(tmp_path, capsys):
    out = tmp_path / "mydata"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    assert main(["run", "--quiet", "--out", str(out), *FAST]) == 2
    assert "not a simsub result folder" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "precious" and [p.name for p in out.iterdir()] == ["notes.txt"]


def test_default_output_goes_under_results(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", *FAST]) == 0
    captured = capsys.readouterr()
    assert "results: results/may-2012/none-seed20120515" in captured.out
    assert "spam:" in captured.out and "legit:" in captured.out
    assert (tmp_path / "results" / "may-2012" / "none-seed20120515" / "summary.json").exists()


def test_quiet_prints_only_the_folder(tmp_path, capsys):
    assert main(["run", "--quiet", "--out", str(tmp_path / "q"), *FAST]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == f"results: {tmp_path / 'q'}"
    assert captured.err == ""


def test_help_lists_the_commands_and_options():
    out = subprocess.run([sys.executable, "-m", "simsub", "run", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for option in ("--policy", "--seed", "--horizon", "--set", "--out", "--quiet"):
        assert option in out.stdout


@pytest.mark.slow
def test_wheel_carries_the_default_scenario(tmp_path):
    """`simsub run` with no scenario must work from an installed wheel, away from the checkout."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(REPO)],
                   check=True)
    wheel = next(tmp_path.glob("simsub-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        assert "simsub/scenarios/may-2012.toml" in archive.namelist()
        archive.extractall(tmp_path / "site")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import simsub; from simsub.scenario import default_scenario_path;"
            "p = default_scenario_path(); assert str(p).startswith(sys.argv[1]), p;"
            "print(simsub.load_scenario(None).name)")
    env = {**os.environ, "PYTHONPATH": ""}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "site")], capture_output=True, text=True,
                         cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "may-2012"


@pytest.mark.filterwarnings("error")
def test_charts_draw_cleanly_when_nobody_is_delayed(tmp_path):
    """Policy none delays no one: the log-scale false-delay chart must still draw, without warnings."""
    import simsub
    from simsub.report.run_charts import false_delay_chart, throughput_chart

    scenario = simsub.load_scenario(DEFAULT_SCENARIO, {"scenario.horizon": "20m", "populations.subscribers.count": 2000,
                                                       "populations.botnet.start": "10m"})
    result = simsub.run(scenario, policy="none")
    assert result.summary["legit"]["false_delay"]["max"] == 0.0
    false_delay_chart(result.messages, "none", tmp_path / "fd.png")
    throughput_chart(result.timeseries, "none", 100, scenario.bin, tmp_path / "tp.png")
    assert (tmp_path / "fd.png").stat().st_size > 10_000 and (tmp_path / "tp.png").stat().st_size > 10_000
