"""The default scenario shows what the field saw in May 2012 (MODEL.md §5).

* no policy lets the spam through;
* `sleep 3` for suspicious clients does not stop the bots, `sleep 5` stops
  almost all (bots give up after ~4 s: lognormal, median 4 s, sigma 0.15);
* selective sleeping leaves own-network users undelayed, uniform sleeping
  delays everyone.

The fast tests run a reduced scale (fewer users and bots, a 2-hour attack);
the slow test checks the full-scale default scenario.
"""

from __future__ import annotations

import numpy as np
import pytest

import simsub
from simsub.workload.rng import Streams
from simsub.workload.synthetic import ClientPopulation

from .conftest import DEFAULT_SCENARIO

REDUCED = {
    "populations.subscribers.count": 2000,
    "populations.botnet.count": 30,
    "populations.botnet.accounts": 10,
    "scenario.horizon": "14h",
}


@pytest.fixture(scope="module")
def reduced():
    scenario = simsub.load_scenario(DEFAULT_SCENARIO, REDUCED)
    return scenario, {policy: simsub.run(scenario, policy=policy) for policy in scenario.policies}


def test_default_scenario_defines_the_required_policies():
    scenario = simsub.load_scenario(None)
    assert {"none", "uniform-5s", "selective-1-5s", "selective-3s", "throttle-100h"} <= set(scenario.policies)
    assert scenario.default_policy == "none"
    assert scenario.name == "may-2012"


def test_no_policy_lets_all_spam_through(reduced):
    _, results = reduced
    spam = results["none"].summary["spam"]
    assert spam["recipients_accepted"] == spam["recipients_attempted"] > 0
    assert spam["bots_succeeding"] == 1.0


@pytest.mark.parametrize("policy, suspicious_sleep", [("selective-3s", 3.0), ("selective-1-5s", 5.0)])
def test_exactly_the_bots_patient_enough_for_the_sleep_get_through(reduced, policy, suspicious_sleep):
    """Per bot: the first RCPT reply takes rtt + sleep + reply_time; a bot whose
    drawn patience covers that sends its spam, every other bot gives up there."""
    scenario, results = reduced
    messages = results[policy].messages
    bots = messages[messages["kind"] == "bot"]
    index = [p.name for p in scenario.populations].index("botnet")
    population = scenario.populations[index]
    drawn = ClientPopulation(scenario, index, population, Streams(scenario.seed))
    origin_names = list(scenario.origins)
    predicted_pass = 0
    for b in range(population.count):
        origin = origin_names[drawn.origin_of[b]]
        sleep = 1.0 if origin == "jp" else suspicious_sleep
        wait = drawn.rtt[b] + sleep + scenario.mta.reply_time
        mine = bots[bots["client"] == b]
        assert len(mine) > 0
        outcomes = set(mine["outcome"].astype(str))
        if drawn.patience[b] >= wait:
            predicted_pass += 1
            assert outcomes == {"accepted"}, (b, origin, drawn.patience[b], wait)
        else:
            assert outcomes == {"timeout"}, (b, origin, drawn.patience[b], wait)
            assert set(mine["step"].astype(str)) == {"rcpt"}
    share = results[policy].summary["spam"]["bots_succeeding"]
    assert share == pytest.approx(predicted_pass / population.count)


def test_three_seconds_does_not_stop_the_bots_five_seconds_does(reduced):
    _, results = reduced
    three = results["selective-3s"].summary["spam"]
    five = results["selective-1-5s"].summary["spam"]
    none = results["none"].summary["spam"]
    assert three["bots_succeeding"] >= 0.75
    assert five["bots_succeeding"] <= 0.15
    reduction_five = 1 - five["recipients_accepted"] / none["recipients_accepted"]
    assert reduction_five >= 0.9


def test_selective_sleeping_spares_the_own_network_uniform_delays_everyone(reduced):
    _, results = reduced
    selective = results["selective-1-5s"].summary["legit"]["by_origin"]
    uniform = results["uniform-5s"].summary["legit"]["by_origin"]
    assert selective["own"]["false_delay_rate"]["1s"] == 0.0
    assert selective["unknown"]["false_delay_rate"]["1s"] == 1.0  # 5 s per recipient
    for origin in ("own", "jp", "foreign", "unknown"):
        assert uniform[origin]["false_delay_rate"]["1s"] == 1.0


def test_throttle_caps_each_stolen_account_per_hour(reduced):
    """100 messages per hour per login: in each whole clock hour no account
    gets more than 100 messages accepted, bots and its owner together."""
    _, results = reduced
    messages = results["throttle-100h"].messages
    accepted = messages[messages["outcome"].astype(str) == "accepted"]
    stolen = set(messages.loc[messages["kind"] == "bot", "account"].astype(str))
    per_hour = accepted[accepted["account"].astype(str).isin(stolen)].groupby(
        [accepted["account"].astype(str), np.floor(accepted["accepted_s"] / 3600)]).size()
    assert per_hour.max() <= 100
    assert results["throttle-100h"].summary["spam"]["deferred"] > 0


@pytest.mark.slow
def test_full_scale_default_scenario_matches_the_field_report():
    scenario = simsub.load_scenario(None)
    summaries = {p: simsub.run(scenario, policy=p).summary
                 for p in ("none", "uniform-5s", "selective-3s", "selective-1-5s")}
    none = summaries["none"]["spam"]["recipients_accepted"]
    spam = summaries["none"]["spam"]
    # Every bot session that could still log in got its spam in (the operator resets accounts later on).
    assert spam["accepted"] == spam["messages"] - spam["auth_failed"]
    assert summaries["selective-3s"]["spam"]["bots_succeeding"] >= 0.8
    assert summaries["selective-1-5s"]["spam"]["bots_succeeding"] <= 0.1
    assert 1 - summaries["selective-1-5s"]["spam"]["recipients_accepted"] / none >= 0.95
    assert summaries["selective-1-5s"]["legit"]["by_origin"]["own"]["false_delay_rate"]["1s"] == 0.0
    assert summaries["uniform-5s"]["legit"]["by_origin"]["own"]["false_delay_rate"]["1s"] >= 0.99
