"""Conservation laws on random small scenarios (Hypothesis), and that the checker catches breaks."""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simsub
from simsub.analysis.invariants import InvariantError, check, violations
from simsub.scenario.loader import build_scenario

from .conftest import BASE

QUEUE = {
    "queue": {"delivery_agents": 5, "destination_concurrency": 2, "recipients_per_request": 3,
              "minimal_backoff": "60s", "maximal_backoff": "120s", "queue_run_delay": "60s",
              "maximal_queue_lifetime": "20m", "bounce_queue_lifetime": "10m"},
    "destinations": {
        "near": {"legit_share": 0.7, "spam_share": 0.4, "delivery_time": "200ms",
                 "legit": {"defer": 0.1, "reject": 0.05}, "spam": {"defer": 0.3, "reject": 0.3}, "lists": ["rbl"]},
        "far": {"legit_share": 0.3, "spam_share": 0.6, "delivery_time": {"dist": "uniform", "low": "1s", "high": "5s"},
                "legit": {"defer": 0.05, "reject": 0.05}, "spam": {"defer": 0.2, "reject": 0.4},
                "rate_limit": {"messages": 5, "window": "1m"}},
    },
    "reputation": {"rbl": {"threshold": 20, "window": "10m", "detection_delay": "1m", "action": "reject",
                           "expiry": "10m", "delist_delay": "5m"}},
}

POLICIES = {
    "tarpit": {"recipient_restrictions": ["sleep 2", "permit_sasl_authenticated", "reject"]},
    "selective": {"recipient_restrictions": ["permit_mynetworks", "check_client_access pcre:t",
                                             "permit_sasl_authenticated", "reject"],
                  "maps": {"t": "/^unknown$/ sleep 3\n"}},
    "pregreet": {"smtpd_delay_reject": False, "client_restrictions": ["permit_mynetworks", "sleep 1",
                                                                      "reject_unauth_pipelining"]},
    "throttle": {"recipient_restrictions": ["check_policy_service rl", "permit_sasl_authenticated"],
                 "services": {"rl": {"type": "ratelimit", "limit": 3, "window": "10m", "action": "LOCK"}}},
    "spread": {"recipient_restrictions": ["check_policy_service d", "permit_sasl_authenticated"],
               "services": {"d": {"type": "distinct", "limit": 2, "window": "10m", "action": "DEFER"}}},
}


@st.composite
def small_scenarios(draw):
    data = copy.deepcopy(BASE)
    data["scenario"]["horizon"] = f"{draw(st.integers(5, 40))}m"
    data["mta"] = {"process_limit": draw(st.integers(1, 6)), "backlog": draw(st.integers(0, 4)),
                   "reply_time": "2ms"}
    users = draw(st.integers(4, 30))
    data["populations"] = [
        {"name": "users", "kind": "user", "count": users,
         "origins": {"own": 0.5, "unknown": 0.5}, "messages_per_day": draw(st.sampled_from([50, 200, 1000])),
         "recipients": {"dist": "geometric", "mean": draw(st.sampled_from([1.0, 2.0, 5.0]))},
         "patience": f"{draw(st.integers(1, 90))}s", "retries": draw(st.integers(0, 3)), "retry_interval": "2m"},
        {"name": "bots", "kind": "bot", "count": draw(st.integers(1, 8)), "accounts": draw(st.integers(1, 4)),
         "accounts_from": "users", "origins": {"unknown": 1.0}, "start": f"{draw(st.integers(0, 5))}m",
         "recipients": {"dist": "uniform", "low": 1, "high": draw(st.integers(1, 30))},
         "pause": f"{draw(st.integers(1, 60))}s", "patience": f"{draw(st.integers(1, 30))}s",
         "on_timeout": draw(st.sampled_from(["disconnect", "talk"]))},
    ]
    data["policies"].update(copy.deepcopy(POLICIES))
    if draw(st.booleans()):
        data.update(copy.deepcopy(QUEUE))
        # where the listed server is refused: at the greeting a destination can die (suspended)
        data["reputation"]["rbl"]["stage"] = draw(st.sampled_from(["greeting", "rcpt", "data"]))
        data["queue"]["skip_5xx_greeting"] = draw(st.booleans())
    return build_scenario(data, "<hypothesis>", {}), draw(st.sampled_from(["none", *POLICIES])), \
        draw(st.integers(0, 2**32 - 1))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_scenarios())
def test_conservation_laws_hold_on_random_small_scenarios(case):
    scenario, policy, seed = case
    result = simsub.run(scenario, policy, seed, check=False)
    assert violations(result) == []


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_scenarios())
def test_conservation_laws_hold_on_many_random_small_scenarios(case):
    scenario, policy, seed = case
    assert violations(simsub.run(scenario, policy, seed, check=False)) == []


def test_the_checker_catches_each_kind_of_break():
    data = copy.deepcopy(BASE)
    data["populations"] = [{"name": "users", "kind": "user", "count": 20, "origins": {"own": 1.0},
                            "messages_per_day": 500, "recipients": 2}]
    data.update(copy.deepcopy(QUEUE))
    data["destinations"]["near"]["lists"] = []
    del data["reputation"]
    result = simsub.run(build_scenario(data, "<test>", {}), "none", 1, check=True)  # consistent
    assert violations(result) == []

    def broken(change):
        copy_of = copy.copy(result)
        for name in ("messages", "sessions", "timeseries", "deliveries"):
            setattr(copy_of, name, getattr(result, name).copy())
        change(copy_of)
        return " ".join(violations(copy_of))

    def lose_an_outcome(r):
        outcome = r.messages["outcome"].cat.add_categories(["lost"])
        outcome.iloc[0] = "lost"
        r.messages["outcome"] = outcome

    assert "outcome" in broken(lose_an_outcome)
    assert "before its first attempt" in broken(lambda r: r.messages.__setitem__(
        "end_s", r.messages["first_attempt_s"] - 1))
    assert "above the process limit" in broken(lambda r: r.timeseries.__setitem__("busy_peak", 99))
    assert "not all delivered" in broken(lambda r: r.deliveries.__setitem__("delivered", r.deliveries["delivered"] + 1))
    assert "entered the mail queue" in broken(lambda r: r.messages.__setitem__(
        "recipients_accepted", r.messages["recipients_accepted"] + 1))
    with pytest.raises(InvariantError):
        bad = copy.copy(result)
        bad.timeseries = result.timeseries.assign(busy_peak=99)
        check(bad)


def test_debug_mode_checks_every_run(monkeypatch):
    calls = []
    import simsub.analysis.invariants as invariants

    monkeypatch.setattr(invariants, "check", lambda result: calls.append(result.policy))
    data = copy.deepcopy(BASE)
    data["populations"] = [{"name": "users", "kind": "user", "count": 2, "origins": {"own": 1.0},
                            "messages_per_day": 100}]
    scenario = build_scenario(data, "<test>", {})
    simsub.run(scenario, "none", 1)
    assert calls == []
    monkeypatch.setenv("SIMSUB_CHECK", "1")
    simsub.run(scenario, "none", 1)
    assert calls == ["none"]


def test_listing_time_is_never_negative_when_lists_act_after_the_run_ends():
    """may-2012 cut to 35 min with the bots from the start: the lists act at 2,220 s, after the
    run's end (about 2,116 s); the listed time must be 0, not negative."""
    from simsub.scenario import load_scenario

    result = simsub.run(load_scenario(None, {"horizon": "35m", "populations.botnet.start": "0s"}), "none", check=True)
    assert all(v["listed_s"] >= 0 for v in result.summary["reputation"].values())
