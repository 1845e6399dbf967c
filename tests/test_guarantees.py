"""Guarantees under interruption and across executors (docs/guarantees.md).

* a run killed with SIGKILL at any moment leaves no folder that looks complete;
* a sweep killed with SIGKILL at several points resumes to the same final tables
  as an uninterrupted one;
* the same experiment gives byte-identical summary tables on 1 or 2 workers and
  whatever the order of the policies.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from simsub.report.run_folder import FILES as RUN_FILES

from simsub.cli import main

from .test_experiments import TINY


def tiny(tmp_path, horizon="10m"):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.replace("{horizon}", horizon))
    return path


def looks_complete(folder) -> bool:
    return folder.is_dir() and not folder.name.startswith(".")


@pytest.mark.parametrize("delay", [0.3, 1.0, 2.0, 3.5])
def test_a_killed_run_leaves_no_folder_that_looks_complete(tmp_path, delay):
    out = tmp_path / "results" / "run"
    process = subprocess.Popen([sys.executable, "-m", "simsub", "run", "--horizon", "2h", "--set",
                                "populations.botnet.start=30m", "--out", str(out), "--quiet"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait()
    # Killed mid-run: no folder.  A fast machine may finish before a kill time (or the
    # rename may beat the signal): then the folder must be complete, every file of a
    # run there and a summary that parses.  What must never be is a folder in between.
    if out.exists():
        assert all((out / name).is_file() for name in RUN_FILES)
        json.loads((out / "summary.json").read_text())
    for leftover in (tmp_path / "results").glob("*") if (tmp_path / "results").exists() else []:
        if leftover == out:
            continue  # finished before the kill: checked complete above
        assert leftover.name.startswith(".") and "partial" in leftover.name, leftover


def tables(folder):
    runs = pd.read_csv(folder / "runs.csv").drop(columns=["cached", "wall_s"])
    return runs, (folder / "summary.csv").read_bytes()


@pytest.mark.slow
def test_a_sweep_killed_at_several_points_resumes_to_the_same_tables(tmp_path):
    path = tiny(tmp_path, "1h")
    cache = tmp_path / "cache"
    argv = [sys.executable, "-m", "simsub", "sweep", str(path), "--policy", "tarpit", "--vary", "sleep=0:5:1",
            "--replications", "2", "--workers", "2", "--out", str(tmp_path / "out"), "--cache", str(cache),
            "--quiet"]
    for finished in (1, 4, 8):
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True)
        deadline = time.time() + 120
        while len(list(cache.rglob("*.json"))) < finished and time.time() < deadline and process.poll() is None:
            time.sleep(0.02)
        os.killpg(process.pid, signal.SIGKILL)  # the command and its workers, mid-write or not
        process.wait()
        assert not (tmp_path / "out").exists()
    assert subprocess.run(argv, timeout=300).returncode == 0
    fresh = tmp_path / "fresh"
    assert main(["sweep", str(path), "--policy", "tarpit", "--vary", "sleep=0:5:1", "--replications", "2",
                 "--workers", "1", "--out", str(fresh), "--cache", str(tmp_path / "cache2"), "--quiet"]) == 0
    resumed_runs, resumed_summary = tables(tmp_path / "out")
    fresh_runs, fresh_summary = tables(fresh)
    pd.testing.assert_frame_equal(resumed_runs, fresh_runs, check_exact=True)
    assert resumed_summary == fresh_summary


@pytest.mark.slow
def test_summary_tables_are_byte_identical_across_workers_and_policy_order(tmp_path):
    path = tiny(tmp_path)
    outputs = {}
    for name, extra in {"one": ["--workers", "1", "--policies", "none,tarpit,tarpit-5"],
                        "two": ["--workers", "2", "--policies", "none,tarpit,tarpit-5"],
                        "reordered": ["--workers", "2", "--policies", "tarpit-5,none,tarpit"]}.items():
        out = tmp_path / name
        assert main(["compare", str(path), "--replications", "2", "--out", str(out), "--cache",
                     str(tmp_path / f"cache-{name}"), "--quiet", *extra]) == 0
        outputs[name] = out
    one, two = tables(outputs["one"]), tables(outputs["two"])
    pd.testing.assert_frame_equal(one[0], two[0], check_exact=True)
    assert one[1] == two[1]
    reordered = pd.read_csv(outputs["reordered"] / "summary.csv")
    original = pd.read_csv(outputs["one"] / "summary.csv")
    key = ["policy", "metric"]
    pd.testing.assert_frame_equal(original.sort_values(key).reset_index(drop=True),
                                  reordered.sort_values(key).reset_index(drop=True), check_exact=True)


def test_scenario_files_are_data_only(tmp_path, capsys):
    """No include mechanism and no file references: maps are inline text, so a
    scenario can read nothing outside itself, and TOML cannot execute code."""
    path = tiny(tmp_path)
    text = path.read_text()
    path.write_text('include = "/etc/passwd"\n' + text)
    assert main(["check", str(path)]) == 2
    assert "include: unknown key" in capsys.readouterr().err
    path.write_text(text.replace('description = "sleep 5 at every RCPT TO"',
                                 'description = "sleep 5 at every RCPT TO"\nmaps = { t = "/etc/passwd" }'))
    assert main(["check", str(path)]) == 2  # a map is text in the file, and this text is not a pcre table
    err = capsys.readouterr().err
    assert "policies.tarpit-5.maps.t" in err and "root:" not in err
