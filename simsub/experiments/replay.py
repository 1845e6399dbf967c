"""Replay a parsed maillog through candidate policies: a scenario built around the
trace, a paired comparison on it, and what each policy does to each login.

The trace replaces one user and one bot population of a base scenario (by
default the built-in may-2012's ``subscribers`` and ``botnet``); the base
scenario keeps supplying what a log cannot say (patience, retries, round trips,
the MTA and the policies).  See docs/replay.md.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
import tomli_w

from ..analysis.accounts import account_impact
from ..api import run
from ..errors import ScenarioError
from ..scenario.files import read_scenario_file
from ..scenario.loader import build_scenario
from ..scenario.types import Scenario
from ..workload.trace import Trace, load_trace
from .study import compare
from .types import Experiment

#: Sections of a base scenario a replay drops: a replayed trace covers the front end only.
BEHIND_THE_FRONT_END = ("queue", "destinations", "reputation", "operator")


def replay_scenario_data(base: str | Path | None, tables: Path, flagged: Iterable[str] = (),
                         users: str | None = None, bots: str | None = None) -> tuple[dict, Scenario]:
    """The base scenario's data with a ``[trace]`` of ``tables`` and a horizon that covers it,
    and the Scenario it builds (validated).  ``users``/``bots``: the populations the trace
    replaces (default: the base scenario's first user and first bot population)."""
    raw, label = read_scenario_file(base)
    data = copy.deepcopy(raw)
    for key in BEHIND_THE_FRONT_END:
        data.pop(key, None)
    populations = [p for p in data.get("populations", []) if isinstance(p, dict)]
    users = users or next((p.get("name") for p in populations if p.get("kind") == "user"), None)
    bots = bots or next((p.get("name") for p in populations if p.get("kind") == "bot"), None)
    # The log holds all of the server's mail: the base's other populations (e.g. the volume
    # classes of a calibrated scenario) would send theirs a second time.
    data["populations"] = [p for p in populations if p.get("name") in (users, bots)]
    flagged = sorted(set(flagged))
    data["trace"] = {"tables": str(Path(tables).resolve()), "flagged": flagged}
    if users:
        data["trace"]["users"] = users
    if bots:
        data["trace"]["bots"] = bots
    scenario = build_scenario(data, f"{label} with the trace {tables}", {})
    trace = load_trace(str(scenario.trace.tables), scenario.trace.digest, scenario.trace.flagged)
    if len(trace.users) + len(trace.bots) == 0:
        raise ScenarioError(str(tables), None, "the log has no authenticated submission to replay (no message "
                            "with a sasl_username, no refused transaction in a logged-in session)")
    head = data.setdefault("scenario", {})
    head["horizon"] = f"{trace.horizon_s:.0f}s"
    head["name"] = f"replay-{head.get('name', 'scenario')}"
    head["description"] = (f"The maillog in {tables} ({len(trace.users)} legitimate and {len(trace.bots)} flagged "
                           f"submissions) replayed through {label}'s policies.")
    return data, build_scenario(data, label, {})


def write_scenario(data: dict, path: Path) -> None:
    with open(path, "wb") as fh:
        fh.write(b"# Written by simsub replay: a base scenario whose populations named in [trace] are\n"
                 b"# replaced by a parsed Postfix maillog (docs/replay.md).  simsub compare runs it as is.\n")
        tomli_w.dump(data, fh, multiline_strings=True)


@dataclass
class Replay:
    """A replayed maillog: the paired comparison and, per policy, each login's fate."""

    scenario: Scenario
    trace: Trace
    experiment: Experiment
    accounts: pd.DataFrame  # account_impact per policy (column ``policy``), on the first replication seed


def replay(scenario_file: Path, policies: list[str] | None = None, replications: int = 3,
           **compare_options: Any) -> Replay:
    """Compare ``policies`` on the replay scenario ``scenario_file`` (see
    :func:`replay_scenario_data`), and tabulate each login's fate under each policy
    on the first replication seed."""
    experiment = compare(scenario=scenario_file, policies=policies, replications=replications, **compare_options)
    from ..scenario import load_scenario

    scenario = load_scenario(scenario_file)
    trace = load_trace(str(scenario.trace.tables), scenario.trace.digest, scenario.trace.flagged)
    frames = []
    for policy in experiment.policies:
        result = run(scenario, policy=policy, seed=experiment.seeds[0])
        frames.append(account_impact(result.messages).assign(policy=policy))
    accounts = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if len(accounts):
        accounts = accounts[["policy"] + [c for c in accounts.columns if c != "policy"]]
    return Replay(scenario, trace, experiment, accounts)
