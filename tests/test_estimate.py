"""The resource guard: a run's size is estimated from the scenario, and a run beyond the budget is refused."""

from __future__ import annotations

import pytest

import simsub
from simsub.cli import main
from simsub.errors import ScenarioError
from simsub.estimate import DEFAULT_MAX_EVENTS, check_budget, estimate
from simsub.scenario import load_scenario

from .test_experiments import TINY


@pytest.mark.parametrize("overrides", [
    {"horizon": "2h", "populations.botnet.start": "1h"},
    pytest.param({"horizon": "90m", "populations.botnet.start": "0s", "populations.subscribers.count": 2000},
                 marks=pytest.mark.slow),
])
def test_the_estimate_is_the_right_size_and_leans_high(overrides):
    scenario = load_scenario(None, overrides)
    guess = estimate(scenario)
    result = simsub.run(scenario, "none")
    events = result.summary["run"]["events"]
    sessions = len(result.sessions)
    # Rough by design: never below two thirds of the truth, never more than four times it.
    assert events / 1.5 <= guess.events <= 4 * events, (guess, events)
    assert sessions / 1.5 <= guess.sessions <= 4 * sessions, (guess, sessions)


def test_every_shipped_scenario_is_within_the_default_budget():
    from .conftest import REPO

    for path in sorted((REPO / "scenarios").glob("*.toml")):
        check_budget(load_scenario(path), DEFAULT_MAX_EVENTS)


def test_a_typo_in_a_count_is_refused_with_the_estimate(tmp_path, capsys):
    out = tmp_path / "out"
    status = main(["run", "--set", "populations.subscribers.count=20000000", "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 2 and len(err.strip().splitlines()) == 1
    assert "populations.subscribers" in err and "events" in err and "--force" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_experiments_are_checked_at_every_grid_point_before_any_run(tmp_path, capsys):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.replace("{horizon}", "10m"))
    status = main(["sweep", str(path), "--policy", "tarpit", "--vary", "populations.users.count=50,500000000",
                   "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache"), "--quiet"])
    err = capsys.readouterr().err
    assert status == 2 and "at grid point populations.users.count=500000000" in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_force_and_max_events(tmp_path, capsys):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.replace("{horizon}", "10m"))
    assert main(["run", str(path), "--max-events", "10", "--out", str(tmp_path / "a"), "--quiet"]) == 2
    assert "beyond the budget of 10 events" in capsys.readouterr().err
    assert main(["run", str(path), "--max-events", "10", "--force", "--out", str(tmp_path / "b"), "--quiet"]) == 0
    with pytest.raises(ScenarioError):
        check_budget(load_scenario(path), max_events=10)
