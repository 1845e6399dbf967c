"""Shared helpers: tiny scenarios built in code, so each test states its numbers."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from simsub.scenario.loader import build_scenario

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SCENARIO = REPO / "scenarios" / "may-2012.toml"

BASE = {
    "scenario": {"name": "tiny", "horizon": "1h", "seed": 1, "default_policy": "none"},
    "origins": {
        "own": {"hostname": "p{n}.dial.example.ne.jp", "rtt": "10ms", "mynetworks": True},
        "unknown": {"hostname": "unknown", "rtt": "200ms"},
    },
    "populations": [],
    "mta": {"process_limit": 10, "backlog": 10, "reply_time": "2ms"},
    "policies": {"none": {}},
}


def make_scenario(populations=None, policies=None, mta=None, origins=None, **scenario_keys):
    """A scenario dict → validated Scenario (same path as a TOML file)."""
    data = copy.deepcopy(BASE)
    data["populations"] = copy.deepcopy(populations or [])
    if policies:
        data["policies"].update(copy.deepcopy(policies))
    if mta:
        data["mta"].update(mta)
    if origins:
        data["origins"].update(copy.deepcopy(origins))
    data["scenario"].update(scenario_keys)
    return build_scenario(data, "<test>", {})


@pytest.fixture
def tiny():
    return make_scenario
