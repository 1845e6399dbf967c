"""The Python API for notebooks and scripts: load a scenario, run a policy."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import simpy

from . import __version__
from .analysis.summary import behind_the_front_end, build_summary, json_safe
from .analysis.tables import (add_queue_series, deliveries_table, events_table, listed_intervals, messages_table,
                              sessions_table, timeseries_table)
from .model.recorder import Recorder
from .model.world import ProgressCallback, simulate
from .scenario import Scenario, load_scenario


@dataclass
class Result:
    """One replication: the summary dict and tidy tables (pandas DataFrames).

    ``messages``: one row per message; ``sessions``: one row per connection;
    ``timeseries``: one row per time bin; with a mail queue, ``deliveries``: one
    row per queued message (bounces included) and ``events``: listings,
    delistings and operator actions.  Times are seconds of simulated time.
    """

    scenario: Scenario
    policy: str
    seed: int
    summary: dict
    messages: pd.DataFrame
    sessions: pd.DataFrame
    timeseries: pd.DataFrame
    deliveries: pd.DataFrame | None = None
    events: pd.DataFrame | None = None
    recorder_bytes: int = field(default=0, repr=False)


def run(scenario: Scenario | str | Path | None = None, policy: str | None = None, seed: int | None = None,
        progress: ProgressCallback | None = None, overrides: dict[str, Any] | None = None,
        check: bool | None = None) -> Result:
    """Run one replication of ``scenario`` (a :class:`Scenario`, a path, or None
    for the built-in default) under ``policy`` (default: the scenario's
    ``default_policy``) with root ``seed`` (default: the scenario's seed).

    The same scenario, policy and seed always give the same result.
    ``check`` (default: the environment variable ``SIMSUB_CHECK=1``) verifies
    the conservation laws of :mod:`simsub.analysis.invariants` and raises
    ``InvariantError`` if one is broken.
    """
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario, overrides)
    elif overrides:
        raise ValueError("overrides apply when loading; pass a path or use load_scenario(path, overrides)")
    policy = scenario.policy_named(policy)
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
        "cpu_s": info.cpu_s,
        "events_per_s": info.events / info.wall_s if info.wall_s > 0 else None,
        "version": __version__,
        # Random streams and float results are reproducible within these versions.
        "python": platform.python_version(),
        "numpy": np.__version__,
        "simpy": simpy.__version__,
    }
    busy_peak = int(timeseries["busy_peak"].max()) if len(timeseries) else 0
    deliveries = events = None
    if scenario.queue is not None:
        deliveries = deliveries_table(recorder)
        events = events_table(recorder)
        intervals = listed_intervals(events, info.end_s)
        timeseries = add_queue_series(timeseries, recorder, deliveries, scenario.bin, intervals)
    bots = sum(p.count for p in scenario.populations if p.is_bot)
    summary = build_summary(run_info, messages, sessions, timeseries, scenario.mta.process_limit, busy_peak, bots)
    if scenario.queue is not None:
        behind_the_front_end(summary, deliveries, timeseries, recorder.totals, intervals, list(scenario.reputation),
                             events)
        summary = json_safe(summary)
    result = Result(scenario, policy, seed, summary, messages, sessions, timeseries, deliveries, events,
                    recorder.nbytes())
    if check if check is not None else os.environ.get("SIMSUB_CHECK") == "1":
        from .analysis.invariants import check as check_invariants

        check_invariants(result)
    return result
