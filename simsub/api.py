"""The Python API for notebooks and scripts: load a scenario, run a policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from . import __version__
from .analysis.summary import build_summary
from .analysis.tables import messages_table, sessions_table, timeseries_table
from .errors import ScenarioError
from .model.recorder import Recorder
from .model.world import ProgressCallback, simulate
from .scenario import Scenario, load_scenario


@dataclass
class Result:
    """One replication: the summary dict and tidy tables (pandas DataFrames).

    ``messages``: one row per message; ``sessions``: one row per connection;
    ``timeseries``: one row per time bin.  Times are seconds of simulated time.
    """

    scenario: Scenario
    policy: str
    seed: int
    summary: dict
    messages: pd.DataFrame
    sessions: pd.DataFrame
    timeseries: pd.DataFrame
    recorder_bytes: int = field(default=0, repr=False)


def run(scenario: Scenario | str | Path | None = None, policy: str | None = None, seed: int | None = None,
        progress: ProgressCallback | None = None, overrides: dict[str, Any] | None = None) -> Result:
    """Run one replication of ``scenario`` (a :class:`Scenario`, a path, or None
    for the built-in default) under ``policy`` (default: the scenario's
    ``default_policy``) with root ``seed`` (default: the scenario's seed).

    The same scenario, policy and seed always give the same result.
    """
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario, overrides)
    elif overrides:
        raise ValueError("overrides apply when loading; pass a path or use load_scenario(path, overrides)")
    policy = policy or scenario.default_policy
    if policy not in scenario.policies:
        import difflib

        close = difflib.get_close_matches(policy, list(scenario.policies), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ScenarioError(str(scenario.source or scenario.name), "--policy",
                            f"no policy named {policy!r} (have: {', '.join(scenario.policies)}){hint}")
    seed = scenario.seed if seed is None else seed
    recorder = Recorder()
    info = simulate(scenario, policy, seed, recorder, progress)
    messages = messages_table(recorder)
    sessions = sessions_table(recorder)
    kinds = {p.name: p.kind for p in scenario.populations}
    timeseries = timeseries_table(recorder, messages, sessions, scenario.bin, kinds)
    run_info = {
        "scenario": scenario.name,
        "policy": policy,
        "seed": seed,
        "horizon_s": scenario.horizon,
        "end_s": info.end_s,
        "events": info.events,
        "wall_s": info.wall_s,
        "events_per_s": info.events / info.wall_s if info.wall_s > 0 else None,
        "version": __version__,
    }
    busy_peak = int(timeseries["busy_peak"].max()) if len(timeseries) else 0
    summary = build_summary(run_info, messages, sessions, timeseries, scenario.mta.process_limit, busy_peak)
    return Result(scenario, policy, seed, summary, messages, sessions, timeseries, recorder.nbytes())
