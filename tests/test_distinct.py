"""The spread detector: distinct client addresses (or origins) per account in a window."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

import simsub
from simsub.errors import ScenarioError
from simsub.policy.restrictions import PolicyState, Result, Verdict
from simsub.policy.services import DistinctSpec

from .conftest import make_scenario
from .test_dialogue import bot


@dataclass
class FakeClient:
    address: str
    origin: int = 0
    hostname: str = "unknown"
    mynetworks: bool = False


@dataclass
class FakeRequest:
    client: FakeClient
    sasl_username: str
    message_id: int
    recipient_count: int = 1
    decisions: dict = field(default_factory=dict)


def ask(service, account, address, t, message_id, origin=0):
    verdict = Verdict()
    stop = service.apply(FakeRequest(FakeClient(address, origin), account, message_id), t, verdict, PolicyState(),
                         "rcpt")
    return "refused" if stop else "ok"


def spec(limit=3, window=3600.0, distinct="client_address", action="DEFER"):
    return DistinctSpec("spread", distinct, limit, window, action)


def test_counts_distinct_addresses_not_messages():
    service = spec().build()
    answers = [ask(service, "alice", a, t, i) for i, (a, t) in enumerate(
        [("10.0.0.1", 0), ("10.0.0.1", 10), ("10.0.0.2", 20), ("10.0.0.1", 30), ("10.0.0.3", 40), ("10.0.0.4", 50)])]
    assert answers == ["ok"] * 5 + ["refused"]


def test_window_expiry_exact():
    service = spec(limit=2, window=100).build()
    ask(service, "a", "x", 0, 1)
    ask(service, "a", "y", 50, 2)
    # x was last seen at 0: at t=100 it is exactly one window old and no longer counts.
    assert ask(service, "a", "z", 100, 3) == "ok"
    assert ask(service, "a", "w", 120, 4) == "refused"  # y, z, w


def test_accounts_are_counted_separately_and_no_login_is_ignored():
    service = spec(limit=1).build()
    assert ask(service, "a", "x", 0, 1) == "ok"
    assert ask(service, "b", "y", 1, 2) == "ok"
    assert ask(service, "", "z", 2, 3) == "ok"
    assert ask(service, "a", "y", 3, 4) == "refused"


def test_one_decision_per_message():
    service = spec(limit=1).build()
    ask(service, "a", "x", 0, 1)
    request = FakeRequest(FakeClient("y"), "a", 2)
    answers = [service.apply(request, t, Verdict(), PolicyState(), "rcpt") for t in (1, 2, 3)]
    assert answers == [True, True, True] and service.refusals == 3
    assert len(service.seen["a"]) == 2  # counted once


def test_origin_mode_counts_origins():
    service = spec(limit=1, distinct="origin").build()
    assert ask(service, "a", "x", 0, 1, origin=0) == "ok"
    assert ask(service, "a", "y", 1, 2, origin=0) == "ok"  # another address, same origin
    assert ask(service, "a", "z", 2, 3, origin=1) == "refused"


@pytest.mark.parametrize("action, result", [("DEFER", Result.DEFER), ("REJECT", Result.REJECT),
                                            ("LOCK", Result.REJECT)])
def test_actions(action, result):
    service = spec(limit=1, action=action).build()
    ask(service, "a", "x", 0, 1)
    verdict, state = Verdict(), PolicyState()
    assert service.apply(FakeRequest(FakeClient("y"), "a", 2), 1, verdict, state, "rcpt")
    assert verdict.result == result
    assert ("a" in state.locked_accounts) == (action == "LOCK")


SPREAD = {"recipient_restrictions": ["check_policy_service spread", "permit_sasl_authenticated", "reject"],
          "services": {"spread": {"type": "distinct", "distinct": "client_address", "limit": 3, "window": "1h",
                                  "action": "LOCK"}}}


def test_many_bots_on_one_account_get_it_locked():
    """Ten bots (ten addresses) share one stolen account: the fourth address locks it,
    AUTH fails from then on, the botnet drops the account and stops."""
    bots = bot(count=10, accounts=1, ramp="100s", pause="30s", start="0s")
    result = simsub.run(make_scenario([bots], policies={"spread": SPREAD}, horizon="30m"), policy="spread", seed=1)
    messages = result.messages.sort_values("first_attempt_s")
    outcome = messages["outcome"].astype(str)
    accepted = messages[outcome == "accepted"]
    assert 1 <= accepted["client"].nunique() <= 3
    assert (outcome == "auth_failed").any()
    assert result.summary["spam"]["bots_succeeding"] <= 0.3


def test_a_user_at_one_address_is_never_refused():
    user = {"name": "u", "kind": "user", "count": 5, "origins": {"own": 1.0}, "messages_per_day": 500}
    result = simsub.run(make_scenario([user], policies={"spread": SPREAD}, horizon="2h"), policy="spread", seed=1)
    assert (result.messages["outcome"].astype(str) == "accepted").all()


@pytest.mark.parametrize("body, key, words", [
    ({"type": "distinct", "limit": 3, "window": "1h", "count": "messages"}, "count", "unknown key"),
    ({"type": "distinct", "limit": 2.5, "window": "1h"}, "limit", "whole number"),
    ({"type": "distinct", "limit": 3, "window": "1h", "distinct": "country"}, "distinct", "client_address"),
    ({"type": "distinct", "limit": 3, "window": "1h", "key": "client_address"}, "key", "sasl_username"),
    ({"type": "ratelimit", "limit": 3, "window": "1h", "distinct": "origin"}, "distinct", "unknown key"),
])
def test_bad_service_configuration(body, key, words):
    policy = {"recipient_restrictions": ["check_policy_service s"], "services": {"s": body}}
    with pytest.raises(ScenarioError) as error:
        make_scenario([bot()], policies={"p": policy})
    assert error.value.key == f"policies.p.services.s.{key}" and words in error.value.message
