"""An experiment's inputs, checked once before anything runs: the scenario source,
the baseline policy, the replication count and the varied parameters.

Shared by :mod:`~simsub.experiments.study` (compare, sweep) and
:mod:`~simsub.experiments.tune`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ScenarioError
from ..scenario.files import read_scenario_file
from ..scenario.loader import build_scenario
from ..scenario.types import Scenario
from .design import canonical, parse_vary
from .types import Varied

AUTO = "auto"  # baseline: the scenario's policy named "none", if it has one


@dataclass
class ScenarioSource:
    """The scenario file as parsed, before overrides: what every run rebuilds from."""

    raw: dict
    label: str
    base_overrides: dict[str, Any]
    scenario: Scenario  # built with the base overrides (validation, names, descriptions)


def scenario_source(scenario: str | Path | None, overrides: dict[str, Any] | None) -> ScenarioSource:
    raw, label = read_scenario_file(scenario)
    trace = raw.get("trace")
    if scenario is not None and isinstance(trace, dict) and isinstance(trace.get("tables"), str):
        # Runs rebuild the scenario from this data in other processes and folders: a replayed
        # trace's tables are named from the scenario file's folder, as when it is loaded.
        raw = {**raw, "trace": {**trace, "tables": str(Path(scenario).parent / trace["tables"])}}
    overrides = dict(overrides or {})
    return ScenarioSource(raw, label, overrides, build_scenario(raw, label, overrides))


def resolve_baseline(source: ScenarioSource, baseline: str | None) -> str | None:
    if baseline == AUTO:
        return "none" if "none" in source.scenario.policies else None
    if baseline is None:
        return None
    try:
        return source.scenario.policy_named(baseline)
    except ScenarioError as exc:
        raise ScenarioError(exc.source, "--baseline", exc.message) from None


def check_replications(replications: int) -> None:
    if not isinstance(replications, int) or replications < 1:
        raise ScenarioError("--replications", str(replications), "expected a whole number >= 1")


def varied_parameters(vary) -> tuple[Varied, ...]:
    if isinstance(vary, dict):
        items = [Varied(k, tuple(v)) for k, v in vary.items()]
    else:
        items = [v if isinstance(v, Varied) else parse_vary(v) for v in vary]
    return tuple(canonical(v) for v in items)
