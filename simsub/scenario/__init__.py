"""Scenario files: TOML in, validated immutable objects out."""

from .loader import DEFAULT_SCENARIO, load_scenario, default_scenario_path, parse_overrides
from .params import declared_params, param_text, resolve_params
from .types import MTA, Origin, Population, Scenario

__all__ = [
    "DEFAULT_SCENARIO",
    "MTA",
    "Origin",
    "Population",
    "Scenario",
    "declared_params",
    "default_scenario_path",
    "load_scenario",
    "param_text",
    "parse_overrides",
    "resolve_params",
]
