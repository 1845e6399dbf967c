"""What an experiment (compare, sweep, tune) hands to its tables, charts and report.

The experiment code fills these; ``simsub.report`` only reads them.  Metric
values are in the units of ``summary.json`` (seconds, counts, shares 0..1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Metric:
    """One number of a run's summary, by its dotted name in ``summary.json``."""

    name: str  # e.g. "legit.false_delay_rate.5s"; "spam.reduction" is derived against the baseline
    label: str  # plain words for tables and charts, e.g. "legit mail delayed > 5 s"
    unit: str  # "share" (0..1, shown as %), "count", "seconds", "hours", "number"
    better: str  # "lower" or "higher": which direction is an improvement


@dataclass(frozen=True)
class Varied:
    """A scenario parameter (``[params]`` name) or dotted key varied by a sweep."""

    name: str
    values: tuple[Any, ...]


@dataclass
class TuneOutcome:
    """What ``simsub tune`` recommends and how sure it is."""

    policy: str  # the policy whose parameters were tuned
    require: tuple[str, ...]  # as given, e.g. ("spam.reduction>=0.95",)
    objective: str  # metric name
    direction: str  # "minimize" or "maximize"
    best: dict[str, Any] | None  # varied name -> value; None when no point met the requirements
    runner_up: dict[str, Any] | None
    #: One row per grid point: the varied values, "feasible" (bool), "objective_mean",
    #: and for each requirement "req_i_mean" and "req_i_met" (bool), sorted best first.
    points: pd.DataFrame
    #: Paired difference runner-up minus best of the objective on matching seeds:
    #: {"mean", "ci_low", "ci_high", "n"}; None without a runner-up.
    runner_up_difference: dict[str, float] | None
    refinements: int = 0  # how many refinement rounds added points around the best
    #: What racing ran and dropped (simsub.experiments.racing.Race.record); None for a full grid.
    race: dict[str, Any] | None = None


@dataclass
class Experiment:
    """A finished compare, sweep or tune, with every run and every statistic.

    ``runs`` has one row per run: ``policy``, one column per varied name,
    ``replication`` (0-based), ``seed``, ``status`` ("ok" or "failed"),
    ``error`` (empty when ok), ``cached`` (bool: read from an earlier
    invocation), ``wall_s``, then one column per metric (dotted names, NaN
    where a run failed or the metric does not apply).

    ``summary`` has one row per (``policy``, varied values..., ``metric``): ``n``,
    ``mean``, ``ci_low``, ``ci_high`` (the interval at ``confidence`` over
    replications, see :mod:`simsub.analysis.intervals`), ``ci_rule`` (which
    rule made it) and, when there is a baseline, ``diff_n``, ``diff_mean``,
    ``diff_low``, ``diff_high``: the paired difference policy minus baseline
    on matching seeds at the same varied values (NaN for the baseline itself).
    """

    kind: str  # "compare", "sweep" or "tune"
    scenario_name: str
    scenario_label: str  # the file as given, or "may-2012.toml (built-in)"
    scenario_description: str
    scenario_facts: dict[str, str]  # plain-language set-up lines, e.g. {"horizon": "24 h", "users": "20,000"}
    policies: tuple[str, ...]  # every policy run, baseline included
    policy_descriptions: dict[str, str]
    baseline: str | None
    varied: tuple[Varied, ...]  # empty for compare
    params: dict[str, Any]  # the scenario's parameter values before varying
    overrides: dict[str, Any]  # --set overrides
    replications: int
    root_seed: int
    seeds: tuple[int, ...]  # the seed of each replication, shared by every policy and point
    runs: pd.DataFrame
    summary: pd.DataFrame
    metrics: tuple[Metric, ...]  # headline metrics, in report order
    command: str  # the command line that reproduces this experiment
    version: str
    wall_s: float  # this invocation, start to end (runs read from the cache take no time here)
    executor: str  # e.g. "local, 2 workers" or "dask tcp://10.0.0.5:8786"
    tune: TuneOutcome | None = None
    confidence: float = 0.95
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def distinct_runs(self) -> pd.DataFrame:
        """One row per run actually executed: grid points that leave a policy
        unchanged share its runs (same key), and they count once."""
        return self.runs.drop_duplicates("key") if "key" in self.runs else self.runs

    @property
    def compute_s(self) -> float:
        """Seconds the runs took where they ran (sum over distinct runs, in the workers), including runs
        read from the cache, which were computed by an earlier invocation; ``wall_s`` is this invocation's."""
        runs = self.distinct_runs
        return float(pd.to_numeric(runs["wall_s"], errors="coerce").sum()) if "wall_s" in runs else float("nan")

    @property
    def cached_compute_s(self) -> float:
        """The part of :attr:`compute_s` spent by earlier invocations (runs read from the cache)."""
        runs = self.distinct_runs
        if "wall_s" not in runs or "cached" not in runs:
            return 0.0
        return float(pd.to_numeric(runs.loc[runs["cached"].astype(bool), "wall_s"], errors="coerce").sum())

    @property
    def failed(self) -> pd.DataFrame:
        runs = self.distinct_runs
        return runs[runs["status"] != "ok"]
