"""Scenario files: TOML in, validated immutable objects out."""

from .loader import DEFAULT_SCENARIO, load_scenario, default_scenario_path, parse_overrides
from .types import MTA, Origin, Population, Scenario

__all__ = [
    "DEFAULT_SCENARIO",
    "MTA",
    "Origin",
    "Population",
    "Scenario",
    "default_scenario_path",
    "load_scenario",
    "parse_overrides",
]
