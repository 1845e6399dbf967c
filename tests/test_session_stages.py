"""The session reads a policy's stages through SessionStages: the same stage objects
and the same flags, for every policy of the scenario library."""

from __future__ import annotations

from pathlib import Path

import pytest

import simsub
from simsub.model.session import SessionStages
from simsub.policy.policy import STAGES

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = STAGES  # every stage a policy has: a new one must get its attribute too


@pytest.mark.parametrize("path", sorted(str(p.relative_to(ROOT)) for p in (ROOT / "scenarios").glob("*.toml")))
def test_session_stages_mirror_the_policy(path):
    scenario = simsub.load_scenario(str(ROOT / path))
    for name, policy in scenario.policies.items():
        stages = SessionStages(policy.stages)
        for command in COMMANDS:
            view, stage = getattr(stages, command), policy.stages[command]
            assert view.stage is stage and view.name == command, (name, command)
            assert (view.empty, view.cacheable, view.stateful, view.same_for_each_recipient) == (
                stage.empty, stage.cacheable, stage.stateful, stage.same_for_each_recipient), (name, command)
