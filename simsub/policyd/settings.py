"""The daemon's own settings in a scenario: ``[policies.NAME.policyd]``."""

from __future__ import annotations

from ..errors import ScenarioError


def scenario_log_only(scenario, policy_name: str) -> set[str]:
    """``[policies.NAME.policyd] log_only = true | ["service", ...]`` of the scenario."""
    raw = scenario.raw.get("policies", {}).get(policy_name, {}).get("policyd", {})
    key = f"policies.{policy_name}.policyd"
    source = scenario.label or scenario.name
    if not isinstance(raw, dict):
        raise ScenarioError(source, key, "expected a table, e.g. [policies.NAME.policyd] log_only = true")
    unknown = set(raw) - {"log_only"}
    if unknown:
        raise ScenarioError(source, f"{key}.{sorted(unknown)[0]}", "unknown key; expected log_only")
    value = raw.get("log_only", False)
    services = scenario.policies[policy_name].services
    if value is True:
        return {"*"}
    if value is False:
        return set()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ScenarioError(source, f"{key}.log_only", f"expected true, false or a list of service names, got {value!r}")
    for name in value:
        if name not in services:
            raise ScenarioError(source, f"{key}.log_only", f"no service {name!r} in this policy "
                                f"(services: {', '.join(sorted(services))})")
    return set(value)
