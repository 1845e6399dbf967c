"""Shared helpers: tiny scenarios built in code, so each test states its numbers."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest

from simsub.scenario.loader import build_scenario

REPO = Path(__file__).resolve().parents[1]

#: Markers of tests that need a real outside program (Postfix, a log tool, a peer
#: policy server).  Outside CI they skip with the install hint when it is missing;
#: with SIMSUB_REQUIRE_REAL_TOOLS=1 (set by .ci/run, which installs them) a skip of
#: such a test is a failure, so CI cannot go green with every real-tool test skipped.
REAL_TOOL_MARKERS = ("postfix", "pflogsumm", "postfwd")


def pytest_report_header(config):
    from simsub import build

    return f"simsub build: {build.DESCRIPTION}"


def pytest_collection_modifyitems(config, items):
    """A test marked pure_only is skipped, saying why, when the compiled build runs:
    compiled modules call each other directly, so a patched module attribute is not
    seen.  CI runs the suite against both builds, so each such test runs there."""
    from simsub import build

    if build.KIND != "compiled":
        return
    skip = pytest.mark.skip(reason="patches a model module, which the compiled build does not see; "
                                   "runs with SIMSUB_PURE_PYTHON=1 (CI's pure-Python pass)")
    for item in items:
        if item.get_closest_marker("pure_only"):
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if (report.skipped and os.environ.get("SIMSUB_REQUIRE_REAL_TOOLS") == "1"
            and any(item.get_closest_marker(m) for m in REAL_TOOL_MARKERS)):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"SIMSUB_REQUIRE_REAL_TOOLS=1 but this test was skipped: {reason}"
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


@pytest.fixture(scope="session")
def may2012():
    """The built-in default scenario, loaded once (read only: Scenario is frozen)."""
    from simsub.scenario import default_scenario_path, load_scenario

    return load_scenario(default_scenario_path())


@pytest.fixture
def project_like(tmp_path, monkeypatch):
    """The working directory: a fresh folder with ``scenarios`` linked to the project's (tests/commands.py)."""
    from tests.commands import make_project_like

    monkeypatch.chdir(make_project_like(tmp_path))
    return tmp_path
