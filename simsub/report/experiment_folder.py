"""Write a finished experiment to its folder, atomically.

``runs.csv`` (one row per run, every metric), ``summary.csv`` (mean, 95 %
interval and paired difference per policy, grid point and metric),
``experiment.json`` (what was run, findings, the tune recommendation) and the
report (``report.md``, ``report.html``, charts).  The folder appears complete
or not at all; finished runs live in the run cache, not here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..analysis.summary import json_safe
from ..experiments.types import Experiment
from ..files import atomic_folder
from .documents import write_report
from .findings import findings

TABLES = ("runs.csv", "summary.csv", "experiment.json")


def experiment_record(experiment: Experiment, findings: list[str]) -> dict:
    record = {
        "kind": experiment.kind,
        "scenario": {"name": experiment.scenario_name, "file": experiment.scenario_label,
                     "description": experiment.scenario_description, "facts": experiment.scenario_facts},
        "policies": {p: experiment.policy_descriptions.get(p, "") for p in experiment.policies},
        "baseline": experiment.baseline,
        "varied": {v.name: list(v.values) for v in experiment.varied},
        "params": experiment.params,
        "overrides": experiment.overrides,
        "replications": experiment.replications,
        "root_seed": experiment.root_seed,
        "seeds": list(experiment.seeds),
        "runs": {"total": len(experiment.distinct_runs), "failed": len(experiment.failed),
                 "from_cache": int(experiment.distinct_runs["cached"].sum())},
        "failures": [{"policy": r["policy"], **{v.name: r[v.name] for v in experiment.varied},
                      "replication": int(r["replication"]), "seed": int(r["seed"]), "error": r["error"]}
                     for _, r in experiment.failed.iterrows()],
        "confidence": experiment.confidence,
        "command": experiment.command,
        "version": experiment.version,
        "executor": experiment.executor,
        "wall_s": experiment.wall_s,  # this invocation
        "compute_s": experiment.compute_s,  # every run where it ran, earlier invocations' cached runs included
        "cached_compute_s": experiment.cached_compute_s,
        "findings": findings,
    }
    if experiment.tune is not None:
        tune = experiment.tune
        record["tune"] = {"require": list(tune.require), "objective": tune.objective, "direction": tune.direction,
                          "best": tune.best, "runner_up": tune.runner_up,
                          "runner_up_difference": tune.runner_up_difference, "refinements": tune.refinements,
                          "race": tune.race}
    return json_safe(record)


def write_experiment(experiment: Experiment, target: Path) -> Path:
    """Write tables, record and report of ``experiment`` to ``target`` (replacing an older one)."""
    with atomic_folder(Path(target), marker="experiment.json") as folder:
        experiment.runs.drop(columns=["key"], errors="ignore").to_csv(folder / "runs.csv", index=False,
                                                                      float_format="%.10g")
        experiment.summary.to_csv(folder / "summary.csv", index=False, float_format="%.10g")
        write_report(experiment, folder)
        with open(folder / "experiment.json", "w", encoding="utf-8") as fh:
            json.dump(experiment_record(experiment, findings(experiment)), fh, indent=2, allow_nan=False,
                      default=_plain)
            fh.write("\n")
    return Path(target)


def _plain(value):
    if hasattr(value, "item"):
        value = value.item()
        return None if isinstance(value, float) and not math.isfinite(value) else value
    return str(value)
