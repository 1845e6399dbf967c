"""``python -m benchmarks --only STEP``: some of the suite's steps, without overwriting the full report."""

from __future__ import annotations

import json

import pytest

from benchmarks import suite


def test_only_runs_the_named_steps_and_writes_beside_the_full_report(monkeypatch, tmp_path, capsys):
    ran = []

    def step(name, value):
        def run(*args, **kwargs):
            ran.append(name)
            return value
        return run

    sizes = [{"factor": 1, "time_per_message_vs_1x": 1.0, "time_per_message_us": 60.0,
              "memory_per_message_bytes": 290.0, "recorder_bytes_per_message": 79.0}]
    monkeypatch.setattr(suite, "scaling", step("scaling", {"sizes": sizes}))
    for name in ("model_over_skeleton", "engine_efficiency", "recipient_independence", "parallel_speedup"):
        monkeypatch.setattr(suite, name, step(name, {}))
    monkeypatch.chdir(tmp_path)
    assert suite.main(["--only", "scaling"]) == 0
    assert ran == ["scaling"]
    assert not (tmp_path / "results" / "benchmarks.json").exists()
    report = json.loads((tmp_path / "results" / "benchmarks-scaling.json").read_text())
    assert "scaling" in report and not {"skeleton", "engine", "recipients", "parallel"} & set(report)
    table = capsys.readouterr().out
    assert "3. scaling 1x: peak memory per recorded message" in table and "290 B" in table
    assert "1. engine" not in table and "4. parallel" not in table


def test_only_refuses_an_unknown_step(capsys):
    with pytest.raises(SystemExit) as exit_:
        suite.main(["--only", "memory"])
    assert exit_.value.code == 2
    assert "--only" in capsys.readouterr().err
