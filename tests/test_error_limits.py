"""smtpd's error throttling, with the timings measured on Postfix 3.7 (docs/twin.md).

Postfix counts the 4xx/5xx replies of a session.  From smtpd_soft_error_limit
(10) errors on, every reply waits smtpd_error_sleep_time (1 s) first; at
smtpd_hard_error_limit (20) errors smtpd sends "421 … too many errors" — after
one more such wait, and without reading the client's next command — and hangs
up.  Measured on the private instance (25 RCPTs refused with DEFER, loopback):
replies 1–10 at once, 11–20 after 1.0 s each, then 421 1.0 s later.
"""

from __future__ import annotations

import pytest

import simsub

from .conftest import make_scenario
from .test_dialogue import RT, H, bot, only_session

DEFER_ALL = {"recipient_restrictions": ["check_client_access pcre:refuse", "permit_sasl_authenticated", "reject"],
             "maps": {"refuse": "/^unknown$/ DEFER\n"}}
BANNER_AND_SETUP = RT + H + 3 * (2 * H + RT)  # when the first RCPT is sent (after banner, EHLO, AUTH, MAIL)
STEP = 2 * H + RT  # one RCPT round trip


def _session(recipients, mta=None, **bot_keys):
    scenario = make_scenario([bot(recipients=recipients, **bot_keys)], policies={"refuse": DEFER_ALL}, mta=mta)
    return only_session(scenario, "refuse")


def test_ten_refusals_go_at_full_speed_and_the_221_is_not_delayed():
    _, msg, session = _session(9)
    assert msg.outcome == "deferred" and msg.step == "rcpt"
    last_reply_sent = 10.0 + BANNER_AND_SETUP + 9 * STEP - H
    # QUIT is sent when the 9th reply arrives; it reaches smtpd h later; 221 after reply_time.
    assert session.slot_hold_s == pytest.approx(last_reply_sent + 2 * H + RT - 10.0)


def test_from_the_tenth_error_every_reply_waits_a_second():
    """15 refused RCPTs: 10 at full speed, 5 one second late, and the 221 to QUIT too."""
    _, msg, session = _session(15)
    assert msg.outcome == "deferred"
    last_reply_sent = 10.0 + BANNER_AND_SETUP + 15 * STEP - H + 5 * 1.0
    assert session.slot_hold_s == pytest.approx(last_reply_sent + 2 * H + 1.0 + RT - 10.0)
    assert msg.end_s == pytest.approx(last_reply_sent + H)  # the client quits on the 15th reply


def test_at_the_hard_limit_smtpd_answers_421_without_waiting_for_the_next_command():
    """25 refused RCPTs: 20 answered (the last 10 a second late), then 421 one second after the
    20th reply, which the client, waiting for its 21st RCPT's reply, reads h later."""
    _, msg, session = _session(25)
    twentieth_sent = 10.0 + BANNER_AND_SETUP + 20 * STEP - H + 10 * 1.0
    final_421 = twentieth_sent + 1.0 + RT
    assert (msg.outcome, msg.step) == ("deferred", "rcpt")
    assert session.slot_hold_s == pytest.approx(final_421 - 10.0)
    assert msg.end_s == pytest.approx(final_421 + H)
    assert msg.recipients_accepted == 0


def test_an_impatient_client_gives_up_before_the_421():
    """Patience 1.1 s covers a one-second pause plus the 0.2 s round trip only barely not:
    1.0 + 2h + RT = 1.202 s > 1.1 s, so it hangs up at the 11th RCPT."""
    _, msg, session = _session(25, patience="1.1s")
    eleventh_sent = 10.0 + BANNER_AND_SETUP + 10 * STEP
    assert (msg.outcome, msg.step) == ("timeout", "rcpt")
    assert msg.end_s == pytest.approx(eleventh_sent + 1.1)
    # smtpd finishes the pause and the reply, then learns of the hang-up when the FIN
    # arrives (h after the client left), whichever is later.
    reply_sent = eleventh_sent + H + 1.0 + RT
    assert session.slot_hold_s == pytest.approx(max(reply_sent, msg.end_s + H) - 10.0)


def test_the_limits_are_scenario_keys():
    mta = {"soft_error_limit": 2, "hard_error_limit": 3, "error_sleep_time": "2s"}
    _, msg, session = _session(5, mta=mta)
    third_sent = 10.0 + BANNER_AND_SETUP + 3 * STEP - H + 2.0
    assert session.slot_hold_s == pytest.approx(third_sent + 2.0 + RT - 10.0)
    assert msg.outcome == "deferred"


def test_accepted_recipients_are_not_errors():
    scenario = make_scenario([bot(recipients=30)], policies={"tarpit": {"recipient_restrictions": ["sleep 0"]}})
    _, msg, session = only_session(scenario, "tarpit")
    assert msg.outcome == "accepted" and msg.recipients_accepted == 30


def test_per_recipient_verdicts_count_errors_one_by_one():
    """A rate limit counting recipients (3 per hour) accepts 3 and defers the rest: errors start
    at the 4th recipient, so replies slow down from the 14th and the 421 follows the 23rd."""
    policy = {"recipient_restrictions": ["check_policy_service rl", "permit_sasl_authenticated", "reject"],
              "services": {"rl": {"type": "ratelimit", "key": "sasl_username", "count": "recipients", "limit": 3,
                                  "window": "1h", "algorithm": "fixed", "action": "DEFER"}}}
    scenario = make_scenario([bot(recipients=30)], policies={"rl": policy})
    _, msg, session = only_session(scenario, "rl")
    twenty_third_sent = 10.0 + BANNER_AND_SETUP + 23 * STEP - H + 10 * 1.0
    assert session.slot_hold_s == pytest.approx(twenty_third_sent + 1.0 + RT - 10.0)
    assert msg.outcome == "deferred"  # the 421 ends it before DATA


def test_the_hard_limit_holds_even_when_the_soft_limit_is_higher():
    """Postfix hangs up at the hard limit whatever the soft limit: 5 quick refusals, then 421
    right after the 5th reply (no pause: the soft limit was never reached)."""
    _, msg, session = _session(25, mta={"soft_error_limit": 30, "hard_error_limit": 5})
    fifth_sent = 10.0 + BANNER_AND_SETUP + 5 * STEP - H
    assert (msg.outcome, msg.step) == ("deferred", "rcpt")
    assert session.slot_hold_s == pytest.approx(fifth_sent + RT - 10.0)


def test_error_limit_keys_are_validated():
    with pytest.raises(simsub.ScenarioError, match="mta.hard_error_limit"):
        make_scenario([bot()], mta={"hard_error_limit": 0})
    with pytest.raises(simsub.ScenarioError, match="mta.error_sleep_time"):
        make_scenario([bot()], mta={"error_sleep_time": "2d"})
    with pytest.raises(simsub.ScenarioError, match="mta.error_sleep_time: expected whole seconds"):
        make_scenario([bot()], mta={"error_sleep_time": "500ms"})
    with pytest.raises(simsub.ScenarioError, match="mta.soft_error_limit"):
        make_scenario([bot()], mta={"soft_error_limit": 0})
