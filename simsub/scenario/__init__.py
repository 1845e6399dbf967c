"""Scenario files: TOML in, validated immutable objects out."""

from .files import DEFAULT_SCENARIO, default_scenario_path, read_scenario_file
from .loader import load_scenario, parse_overrides
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
    "read_scenario_file",
    "resolve_params",
]
