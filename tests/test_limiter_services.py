"""Rate-limit services: keys, per-key overrides, count modes, scenario keys, snapshots."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

import simsub
from simsub.errors import ScenarioError
from simsub.policy.limiters.base import StateError
from simsub.policy.restrictions import PolicyState, Result, Verdict
from simsub.policy.services import DistinctSpec, RateLimitSpec, client_network

from .conftest import make_scenario
from .test_dialogue import bot
from .test_distinct import FakeClient, FakeRequest


Client = FakeClient
ModelRequest = FakeRequest  # as the model makes requests: no sender attribute


@dataclass
class Request(FakeRequest):
    """A policy request as a daemon builds it, with the envelope sender."""

    sender: str = ""


def spec(**keys):
    base = dict(name="rl", key="sasl_username", count="messages", limit=2, window=3600.0, algorithm="fixed",
                action="DEFER")
    base.update(keys)
    return RateLimitSpec(**base)


def asks(service, requests, t=0.0, stage="rcpt"):
    """Decisions (True = allowed) for requests, each a new message."""
    return [not service.apply(r, t, Verdict(), PolicyState(), stage) for r in requests]


def req(user="alice", address="192.0.2.7", sender=None, message_id=None, recipients=1):
    req.n = getattr(req, "n", 0) + 1
    mid = req.n if message_id is None else message_id
    if sender is None:
        return ModelRequest(Client(address), user, mid, recipient_count=recipients)
    return Request(Client(address), user, mid, recipient_count=recipients, sender=sender)


# ------------------------------------------------------------------ keys
def test_client_network_is_the_24_or_the_64():
    assert client_network("192.0.2.77") == "192.0.2.0/24"
    assert client_network("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert client_network("unknown") == "unknown"


def test_client_network_key_counts_a_whole_24_together():
    service = spec(key="client_network").build()
    assert asks(service, [req(address="192.0.2.1"), req(address="192.0.2.200"), req(address="192.0.2.9"),
                          req(address="192.0.3.1")]) == [True, True, False, True]


def test_sender_key_uses_the_request_sender_or_the_login_in_the_model():
    service = spec(key="sender", limit=1).build()
    assert asks(service, [req(user="a", sender="x@example.org"), req(user="b", sender="x@example.org")]) == [True, False]
    assert asks(service, [req(user="c"), req(user="c"), req(user="d", sender="c")]) == [True, False, False]


def test_combined_key_counts_each_combination():
    service = spec(key=("sasl_username", "client_network"), limit=1).build()
    assert asks(service, [req("a", "192.0.2.1"), req("a", "192.0.2.2"), req("a", "198.51.100.1"),
                          req("b", "192.0.2.1")]) == [True, False, True, True]
    assert set(service.counter.state()["keys"]) == {"a|192.0.2.0/24", "a|198.51.100.0/24", "b|192.0.2.0/24"}


def test_override_gives_a_list_owner_a_higher_limit():
    service = spec(limit=2, overrides=(("listowner1", 5.0),)).build()
    assert asks(service, [req("listowner1") for _ in range(6)]) == [True] * 5 + [False]
    assert asks(service, [req("alice") for _ in range(3)]) == [True, True, False]


def test_override_of_a_combined_key_by_one_part_or_the_whole_value():
    service = spec(key=("sasl_username", "client_address"), limit=1,
                   overrides=(("owner", 3.0), ("alice|192.0.2.9", 2.0))).build()
    assert asks(service, [req("owner", "192.0.2.1") for _ in range(4)]) == [True] * 3 + [False]
    assert asks(service, [req("alice", "192.0.2.9") for _ in range(3)]) == [True, True, False]
    assert asks(service, [req("alice", "192.0.2.8") for _ in range(2)]) == [True, False]


def test_refusal_reason_names_the_limit_that_applied():
    service = spec(limit=1, overrides=(("owner", 3.0),)).build()
    for _ in range(3):
        asks(service, [req("owner")])
    verdict = Verdict()
    assert service.apply(req("owner"), 0.0, verdict, PolicyState(), "rcpt")
    assert verdict.result == Result.DEFER and "over 3 messages" in verdict.reason


# ------------------------------------------------------------------ count modes
def test_messages_recipients_and_recipients_at_data_spend_differently():
    """A message with 16 recipients under a limit of 10: per message it spends 1; per
    recipient at RCPT each RCPT spends 1 (10 pass, 6 are refused); at DATA the 16 are
    spent at once, which is over 10, so the message is refused whole."""
    messages, per_rcpt, at_data = (spec(count=c, limit=10).build()
                                   for c in ("messages", "recipients", "recipients_at_data"))
    message = req(recipients=16)
    assert asks(messages, [message] * 16) == [True] * 16  # one decision for the message
    message = req(recipients=16)
    assert asks(per_rcpt, [message] * 16) == [True] * 10 + [False] * 6
    assert asks(at_data, [req(recipients=16)], stage="data") == [False]
    assert asks(at_data, [req(recipients=10)], stage="data") == [True]  # refused spent nothing


def throttled(count, list_key, recipients):
    policy = {list_key: ["check_policy_service rl", "permit_sasl_authenticated"],
              "services": {"rl": {"type": "ratelimit", "count": count, "limit": 10, "window": "1h",
                                  "action": "REJECT"}}}
    if list_key != "recipient_restrictions":
        policy["recipient_restrictions"] = ["permit_sasl_authenticated"]
    scenario = make_scenario([bot(recipients=recipients, pause="10s")], policies={"p": policy}, horizon="40s")
    return simsub.run(scenario, policy="p", seed=1).messages


def test_in_a_run_per_rcpt_accepts_part_of_a_message_at_data_refuses_it_whole():
    per_rcpt = throttled("recipients", "recipient_restrictions", 16)
    assert per_rcpt["recipients_accepted"].tolist()[:2] == [10, 0]
    at_data = throttled("recipients_at_data", "data_restrictions", 16)
    assert at_data["recipients_accepted"].tolist()[:2] == [0, 0]
    assert set(at_data["outcome"].astype(str)) == {"rejected"}
    small = throttled("recipients_at_data", "data_restrictions", 4)
    assert small["outcome"].astype(str).tolist()[:3] == ["accepted", "accepted", "rejected"]  # 4 + 4, then 12 > 10


# ------------------------------------------------------------------ scenario keys
def service_error(body, lists=None):
    policy = {"recipient_restrictions": ["check_policy_service s"], "services": {"s": body}}
    policy.update(lists or {})
    with pytest.raises(ScenarioError) as error:
        make_scenario([bot()], policies={"p": policy})
    return error.value


@pytest.mark.parametrize("body, key, words", [
    ({"algorithm": "fixed", "strict": True}, "strict", "only algorithm 'exim'"),
    ({"algorithm": "exim", "burst": 5}, "burst", "only algorithm 'leaky_bucket'"),
    ({"algorithm": "exim", "strict": "yes"}, "strict", "true or false"),
    ({"algorithm": "leaky_bucket", "burst": 0}, "burst", "> 0"),
    ({"key": ["sasl_username", "client_net"]}, "key", "did you mean 'client_network'"),
    ({"key": ["sender", "sender"]}, "key", "twice"),
    ({"key": []}, "key", "or a list of them"),
    ({"key": 5}, "key", "or a list of them"),
    ({"overrides": {"owner": 0}}, "overrides.owner", "limit > 0"),
    ({"overrides": {"owner": "lots"}}, "overrides.owner", "limit > 0"),
    ({"overrides": [1]}, "overrides", "table"),
    ({"count": "recipients_at_rcpt"}, "count", "recipients_at_data"),
    ({"algorithm": "leaky-bucket"}, "algorithm", "did you mean 'leaky_bucket'"),
])
def test_bad_service_keys_are_named(body, key, words):
    error = service_error({"type": "ratelimit", "limit": 3, "window": "1h", **body})
    assert error.key == f"policies.p.services.s.{key}" and words in error.message


def test_recipients_at_data_outside_data_restrictions_names_the_list():
    error = service_error({"type": "ratelimit", "limit": 3, "window": "1h", "count": "recipients_at_data"})
    assert error.key == "policies.p.recipient_restrictions"
    assert "data_restrictions" in error.message


def test_new_keys_reach_the_spec():
    policy = {"data_restrictions": ["check_policy_service s"],
              "services": {"s": {"type": "ratelimit", "limit": 3, "window": "1h", "algorithm": "leaky_bucket",
                                 "burst": 7, "key": ["sasl_username", "client_network"],
                                 "count": "recipients_at_data", "overrides": {"owner": 30}}}}
    scenario = make_scenario([bot()], policies={"p": policy})
    s = scenario.policies["p"].services["s"]
    assert (s.key, s.count, s.burst, s.overrides) == (("sasl_username", "client_network"), "recipients_at_data", 7.0,
                                                       (("owner", 30.0),))
    assert s.build().counter.burst == 7.0


@pytest.mark.parametrize("algorithm", ["exim", "quota", "leaky_bucket", "postfwd"])
def test_field_algorithms_throttle_a_bot_in_a_run(algorithm):
    policy = {"recipient_restrictions": ["check_policy_service rl", "permit_sasl_authenticated"],
              "services": {"rl": {"type": "ratelimit", "limit": 3, "window": "1h", "algorithm": algorithm,
                                  "action": "REJECT"}}}
    scenario = make_scenario([bot(pause="10s")], policies={"p": policy}, horizon="200s")
    outcomes = simsub.run(scenario, policy="p", seed=1).messages["outcome"].astype(str).tolist()
    # Sessions every 11.7 s at 3 an hour: Exim's rate is 1, 2.00, 2.99 (< 3) for the first
    # three, policyd's quota only refuses above 3 (passes a 4th), the others pass 3; after
    # that every session is refused within the 200 s.
    passed = {"quota": 4}.get(algorithm, 3)
    assert outcomes[:passed] == ["accepted"] * passed
    assert len(outcomes) > passed + 3 and set(outcomes[passed:]) == {"rejected"}


# ------------------------------------------------------------------ snapshots
def test_service_state_round_trips_and_refuses_another_service():
    a = spec(algorithm="exim", strict=True, key=("sasl_username", "client_network")).build()
    asks(a, [req("u"), req("u"), req("v")])
    b = spec(algorithm="exim", strict=True, key=("sasl_username", "client_network")).build()
    b.load_state(json.loads(json.dumps(a.state())))
    assert b.refusals == a.refusals == 1
    assert asks(b, [req("u", message_id=99)], t=5.0) == asks(a, [req("u", message_id=99)], t=5.0)
    with pytest.raises(StateError):
        spec(algorithm="fixed").build().load_state(a.state())
    with pytest.raises(StateError):
        DistinctSpec("spread", "client_address", 3, 3600.0, "DEFER").build().load_state(a.state())


def test_service_expire_bounds_memory():
    service = spec(algorithm="sliding", window=60.0).build()
    for i in range(500):
        asks(service, [req(f"user{i}")], t=float(i))
    assert len(service) == 500
    # A unit leaves the window (t - 60, t] at exactly 60 s: users 0..440 are forgotten at 500.
    assert service.expire(500.0) == 441
    assert len(service) == 59


def test_distinct_service_state_and_expire():
    a = DistinctSpec("spread", "client_address", 2, 100.0, "DEFER").build()
    for i, (account, address, t) in enumerate([("a", "x", 0), ("a", "y", 50), ("b", "x", 60), ("a", "z", 90)]):
        asks(a, [Request(Client(address), account, i)], t=t)
    assert a.refusals == 1  # a: x, y, z within 100 s
    b = DistinctSpec("spread", "client_address", 2, 100.0, "DEFER").build()
    b.load_state(json.loads(json.dumps(a.state())))
    assert b.seen == a.seen and b.refusals == 1
    # At 150 the window is (50, 150]: a keeps z (90) only, b keeps x (60); no account is empty.
    assert a.expire(150.0) == 0
    assert list(a.seen["a"]) == ["z"] and list(a.seen["b"]) == ["x"]
    assert a.expire(190.0) == 2 and len(a) == 0
    with pytest.raises(StateError):
        DistinctSpec("spread", "client_address", 3, 100.0, "DEFER").build().load_state(b.state())


def test_export_contract_names_a_combined_key_and_the_data_count():
    from simsub.postfix.export import service_contract

    text = service_contract(spec(key=("sasl_username", "client_network"), count="recipients_at_data"))
    assert "for each sasl_username+client_network" in text
    assert "all of a message's at once at DATA" in text
    assert "in a fixed window of 3600 s" in text
    exim = service_contract(spec(algorithm="exim", strict=True))
    assert "at most 2 messages in a smoothed Exim-style (strict) period of 3600 s" in exim
    leaky = service_contract(spec(algorithm="leaky_bucket", burst=7.0))
    assert "in a Rspamd-style leaky-bucket period (burst 7) of 3600 s" in leaky


def test_the_example_policy_in_docs_loads_and_runs():
    import tomllib
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "limiters.md").read_text(encoding="utf-8")
    example = text.split("## An example", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    policies = tomllib.loads(example)["policies"]
    scenario = make_scenario([bot(pause="10s", recipients=3)], policies=policies, horizon="60s")
    services = scenario.policies["field-limits"].services
    assert services["per-login"].overrides == (("listowner1", 2000.0),)
    assert services["per-network"].fields == ("sasl_username", "client_network")
    outcomes = simsub.run(scenario, policy="field-limits", seed=1).messages["outcome"].astype(str)
    assert set(outcomes) == {"accepted"}
