"""Same inputs give the same results; policies see the same clients (common random numbers)."""

from __future__ import annotations

import hashlib
from concurrent.futures import ProcessPoolExecutor
import multiprocessing

import pandas as pd
import pytest

import simsub

from .conftest import DEFAULT_SCENARIO

SMALL = {
    "populations.subscribers.count": 5000,
    "populations.botnet.count": 8,
    "populations.botnet.accounts": 5,
    "populations.botnet.start": "20m",
    "scenario.horizon": "40m",
}
WALL_CLOCK_FIELDS = ("wall_s", "cpu_s", "events_per_s")  # timings, not results


def small_scenario():
    return simsub.load_scenario(DEFAULT_SCENARIO, SMALL)


def fingerprint(policy: str, seed: int) -> str:
    """Hash of every table and the summary without wall-clock fields (picklable for workers)."""
    result = simsub.run(small_scenario(), policy=policy, seed=seed)
    summary = dict(result.summary)
    summary["run"] = {k: v for k, v in summary["run"].items() if k not in WALL_CLOCK_FIELDS}
    digest = hashlib.sha256(repr(summary).encode())
    for table in (result.messages, result.sessions, result.timeseries):
        digest.update(table.to_csv(index=False).encode())
    return digest.hexdigest()


def test_same_seed_same_tables_and_summary():
    scenario = small_scenario()
    a = simsub.run(scenario, policy="selective-1-5s", seed=7)
    b = simsub.run(scenario, policy="selective-1-5s", seed=7)
    pd.testing.assert_frame_equal(a.messages, b.messages)
    pd.testing.assert_frame_equal(a.sessions, b.sessions)
    pd.testing.assert_frame_equal(a.timeseries, b.timeseries)
    for key in a.summary:
        if key != "run":
            assert a.summary[key] == b.summary[key]


def test_identical_in_another_process():
    here = fingerprint("throttle-100h", 3)
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        there = pool.submit(fingerprint, "throttle-100h", 3).result()
    assert here == there


def test_different_seeds_differ():
    assert fingerprint("none", 1) != fingerprint("none", 2)


def test_legitimate_users_send_the_same_messages_under_every_policy():
    """Common random numbers: who sends what, and when, does not depend on the policy."""
    scenario = small_scenario()
    first = None
    for policy in scenario.policies:
        legit = simsub.run(scenario, policy=policy, seed=11).messages
        legit = legit[legit["kind"] == "user"]
        key = legit[["client", "first_attempt_s", "recipients"]].sort_values(["first_attempt_s", "client"])
        key = key.reset_index(drop=True)
        assert len(key) > 50
        if first is None:
            first = key
        else:
            pd.testing.assert_frame_equal(first, key, check_exact=True)


def test_each_bot_draws_the_same_sequence_under_every_policy():
    """A bot's k-th session has the same recipient count under every policy, even
    though policies change how many sessions it gets to run."""
    scenario = small_scenario()
    sequences = {}
    for policy in ("none", "selective-1-5s", "throttle-100h"):
        bots = simsub.run(scenario, policy=policy, seed=5).messages
        bots = bots[bots["kind"] == "bot"]
        sequences[policy] = {c: g["recipients"].tolist() for c, g in bots.groupby("client")}
    reference = sequences["none"]
    for policy, per_bot in sequences.items():
        assert per_bot.keys() == reference.keys()
        for client, recipients in per_bot.items():
            n = min(len(recipients), len(reference[client]))
            assert n > 0
            assert recipients[:n] == reference[client][:n], (policy, client)


@pytest.mark.parametrize("policy", ["none", "throttle-100h"])
def test_seed_argument_overrides_the_scenario_seed(policy):
    scenario = small_scenario()
    assert simsub.run(scenario, policy=policy).seed == scenario.seed
    assert simsub.run(scenario, policy=policy, seed=99).summary["run"]["seed"] == 99


def test_summary_records_the_versions_results_depend_on():
    import numpy
    import simpy

    run = simsub.run(small_scenario(), policy="none").summary["run"]
    assert run["numpy"] == numpy.__version__ and run["simpy"] == simpy.__version__
    assert run["version"] == simsub.__version__
