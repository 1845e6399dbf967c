"""The benchmark's yardstick plays the same workload as simsub (benchmarks/skeleton.py)."""

from __future__ import annotations

import simsub
from benchmarks.skeleton import run_skeleton
from simsub.scenario import load_scenario


def test_the_skeleton_plays_the_same_sessions_as_simsub():
    """The default scenario to 12.5 h (the bots start at noon): every user message
    and every bot session simsub plays, the skeleton plays too; each message that
    has recipients makes at least one delivery timeout."""
    # an operator that never acts: no password resets, so no AUTH failure ends a bot's campaign
    scenario = load_scenario(None, {"horizon": "45000s", "operator.threshold": 1e12})
    result = simsub.run(scenario, policy="none")
    skeleton = run_skeleton(scenario, scenario.seed)
    assert skeleton["sessions"] == len(result.messages)
    assert (result.messages["kind"].astype(str) == "bot").any()
    assert skeleton["delivery_timeouts"] >= int((result.messages["recipients"] > 0).sum())
    assert skeleton["cpu_s"] > 0
