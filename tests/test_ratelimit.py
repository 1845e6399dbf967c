"""Rate-limit counting of the three algorithms, and the four actions in sessions."""

from __future__ import annotations

import pytest

import simsub
from simsub.policy.ratelimit import FixedWindow, SlidingWindow, TokenBucket

from .conftest import make_scenario
from .test_dialogue import bot


def takes(counter, times, units=1):
    return [counter.try_take("k", t, units) for t in times]


def test_fixed_window_resets_at_each_boundary():
    c = FixedWindow(limit=2, window=60)
    assert takes(c, [0, 10, 20, 59.9, 60, 61, 62]) == [True, True, False, False, True, True, False]


def test_sliding_window_counts_the_last_window_seconds():
    c = SlidingWindow(limit=2, window=60)
    # The window at t is (t - 60, t]: at 60 the unit spent at 0 has left, the one at 50 has not;
    # at 110 the one at 50 leaves (60 and 110 then fill it), at 111 it is still full.
    assert takes(c, [0, 50, 55, 60, 61, 110, 111]) == [True, True, False, True, False, True, False]


def test_sliding_window_is_stricter_than_fixed_across_a_boundary():
    times = [50, 55, 65, 70]
    assert takes(FixedWindow(2, 60), times) == [True, True, True, True]
    assert takes(SlidingWindow(2, 60), times) == [True, True, False, False]


def test_token_bucket_allows_a_burst_then_the_refill_rate():
    c = TokenBucket(limit=3, window=3)  # 1 per second, burst 3
    assert takes(c, [0, 0, 0, 0]) == [True, True, True, False]
    assert takes(c, [0.5, 1.0, 1.5, 2.0, 5.0]) == [False, True, False, True, True]


def test_refused_requests_are_not_counted():
    c = FixedWindow(limit=1, window=100)
    assert takes(c, [0, 1, 2, 3]) == [True, False, False, False]
    assert takes(c, [100]) == [True]


def test_counters_are_per_key():
    c = FixedWindow(limit=1, window=100)
    assert c.try_take("a", 0) and c.try_take("b", 0)
    assert not c.try_take("a", 1)


def test_units_larger_than_remaining_are_refused():
    c = SlidingWindow(limit=5, window=10)
    assert c.try_take("k", 0, 3)
    assert not c.try_take("k", 1, 3)
    assert c.try_take("k", 1, 2)


def throttled_bot(action, count="messages", limit=3, **bot_keys):
    policy = {"recipient_restrictions": ["check_policy_service rl", "permit_sasl_authenticated"],
              "services": {"rl": {"type": "ratelimit", "key": "sasl_username", "count": count, "limit": limit,
                                  "window": "1h", "algorithm": "fixed", "action": action}}}
    keys = dict(pause="10s", recipients=2, accounts=1)
    keys.update(bot_keys)
    scenario = make_scenario([bot(**keys)], policies={"p": policy}, horizon="200s")
    return simsub.run(scenario, policy="p", seed=1)


@pytest.mark.parametrize("action, after", [("DEFER", "deferred"), ("REJECT", "rejected"), ("HOLD", "held")])
def test_message_limit_then_action(action, after):
    outcomes = throttled_bot(action).messages["outcome"].astype(str).tolist()
    assert outcomes[:3] == ["accepted"] * 3
    assert len(outcomes) > 4 and set(outcomes[3:]) == {after}


def test_lock_disables_the_account_and_bots_move_on():
    """LOCK rejects and locks the login; the next AUTH with it fails, the botnet
    drops the account, and with no account left the bot stops."""
    result = throttled_bot("LOCK", accounts=1)
    outcomes = result.messages["outcome"].astype(str).tolist()
    assert outcomes == ["accepted"] * 3 + ["rejected", "auth_failed"]


def test_lock_also_locks_out_the_legitimate_owner():
    policy = {"recipient_restrictions": ["check_policy_service rl"],
              "services": {"rl": {"type": "ratelimit", "limit": 1, "window": "1d", "action": "LOCK"}}}
    user = {"name": "alice", "kind": "user", "count": 1, "origins": {"own": 1.0}, "messages_per_day": 200,
            "retries": 0}
    thief = bot(accounts=1, accounts_from="alice", pause="1s", start="0s")
    result = simsub.run(make_scenario([user, thief], policies={"p": policy}), policy="p", seed=1)
    legit = result.messages[result.messages["kind"] == "user"]
    assert len(legit) > 1
    assert (legit["outcome"].astype(str) == "auth_failed").sum() >= len(legit) - 1
    assert result.summary["legit"]["failed_by_outcome"].get("auth_failed", 0) >= len(legit) - 1


def test_recipient_counting_spends_one_unit_per_rcpt():
    result = throttled_bot("REJECT", count="recipients", limit=5, recipients=2)
    accepted = result.messages["recipients_accepted"].tolist()
    assert accepted[:4] == [2, 2, 1, 0]


def test_fixed_window_counts_a_late_arriving_earlier_time_in_the_latest_window():
    """Per-recipient checks are computed a little ahead; another session's check
    at an earlier time must not reopen the previous window."""
    c = FixedWindow(limit=2, window=3600)
    assert takes(c, [3500, 3590]) == [True, True]
    assert takes(c, [3601]) == [True]  # a new window
    assert takes(c, [3595, 3602]) == [True, False]  # 3595 counts in the latest window: 2 used, then full
