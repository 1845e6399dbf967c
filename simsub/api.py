"""The Python API for notebooks and scripts: load a scenario, run a policy.

``run`` is one replication: simulate (:mod:`simsub.model`), then tabulate
(:mod:`simsub.analysis.result`).  ``Result`` is re-exported from there.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import simpy

from .version import __version__
from .analysis import invariants
from .analysis.result import Result, tabulate
from .model.recorder import Recorder
from .model.world import ProgressCallback, RunInfo, simulate
from .scenario import Scenario, load_scenario


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
    result = tabulate(scenario, policy, seed, recorder, run_record(scenario, policy, seed, info))
    if check if check is not None else os.environ.get("SIMSUB_CHECK") == "1":
        invariants.check(result)
    return result


def run_record(scenario: Scenario, policy: str, seed: int, info: RunInfo) -> dict:
    """The summary's ``run`` section: what was run, how long it took, and the versions
    that make it reproducible."""
    return {
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
