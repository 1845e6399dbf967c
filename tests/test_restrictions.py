"""Restriction semantics: Postfix's evaluation order, pcre maps and actions."""

from __future__ import annotations

import pytest

import simsub
from simsub.policy.pcre_map import PcreMap

from .conftest import make_scenario
from .test_dialogue import bot

ORIGINS = {
    "jp": {"hostname": "h{n}.dsl.example.ne.jp", "rtt": "20ms", "network": "203.0.113.0/24"},
    "cn": {"hostname": "host{n}.example.cn", "rtt": "100ms", "network": "192.0.2.0/24"},
}


def outcome_of(origin: str, policy: dict, **bot_keys):
    scenario = make_scenario([bot(origins={origin: 1.0}, **bot_keys)], origins=ORIGINS, policies={"p": policy})
    result = simsub.run(scenario, policy="p", seed=1)
    assert len(result.messages) == 1
    return result.messages.iloc[0]


TARPIT = {
    "recipient_restrictions": ["permit_mynetworks", "check_client_access pcre:tarpit", "permit_sasl_authenticated", "reject"],
    "maps": {"tarpit": "/\\.jp$/   sleep 1\n/./       sleep 5\n"},
}


@pytest.mark.parametrize("origin, per_rcpt", [("own", 0.0), ("jp", 1.0), ("cn", 5.0), ("unknown", 5.0)])
def test_selective_tarpit_sleeps_by_client_name(origin, per_rcpt):
    """permit_mynetworks ends the list for the own network; the first matching
    pcre line decides for everyone else ("unknown" matches /./ as in Postfix)."""
    msg = outcome_of(origin, TARPIT, recipients=3)
    assert msg.outcome == "accepted"
    assert msg.policy_delay_s == pytest.approx(3 * per_rcpt)


def test_first_matching_line_wins():
    reversed_map = dict(TARPIT, maps={"tarpit": "/./ sleep 5\n/\\.jp$/ sleep 1\n"})
    assert outcome_of("jp", reversed_map, recipients=1).policy_delay_s == pytest.approx(5.0)


def test_pcre_is_case_insensitive_unless_the_i_flag_toggles_it():
    table = PcreMap.parse("t", "/EXAMPLE\\.NE\\.JP$/ sleep 1\n/EXAMPLE\\.CN$/i sleep 5\n")
    assert table.lookup("h1.dsl.example.ne.jp") == "sleep 1"
    assert table.lookup("host1.example.cn") is None  # i toggled matching to case-sensitive
    assert table.lookup("HOST1.EXAMPLE.CN") == "sleep 5"


def test_negated_pattern_and_continuation_lines():
    table = PcreMap.parse("t", "# comment\n!/\\.jp$/ sleep\n  5\n")
    assert table.lookup("host.example.cn") == "sleep 5"
    assert table.lookup("h.example.ne.jp") is None


def test_hostname_match_with_dunno_stops_the_address_lookup():
    """check_client_access queries the name, then the address; a name that
    matches (even with DUNNO) decides, as in Postfix's check_namadr_access."""
    policy = {
        "recipient_restrictions": ["check_client_access pcre:m", "permit_sasl_authenticated"],
        "maps": {"m": "/^unknown$/ DUNNO\n/^100\\.64\\./ REJECT no PTR\n/^192\\.0\\.2\\./ REJECT bad net\n"},
    }
    assert outcome_of("unknown", policy).outcome == "accepted"  # name matched DUNNO: address not looked up
    assert outcome_of("cn", policy).outcome == "rejected"  # name did not match: the address did


def test_permit_ends_only_its_own_list():
    policy = {"client_restrictions": ["permit"], "recipient_restrictions": ["reject"]}
    msg = outcome_of("cn", policy)
    assert msg.outcome == "rejected" and msg.step == "rcpt"


def test_reject_ends_the_stage_before_later_sleeps():
    msg = outcome_of("cn", {"recipient_restrictions": ["reject", "sleep 5"]}, recipients=2)
    assert msg.outcome == "rejected"
    assert msg.policy_delay_s == 0.0


@pytest.mark.parametrize(
    "result, outcome",
    [("REJECT go away", "rejected"), ("554 5.7.1 no", "rejected"), ("DEFER later", "deferred"),
     ("450 4.7.1 later", "deferred"), ("OK", "accepted"), ("DUNNO", "accepted"), ("HOLD", "held"),
     ("DISCARD", "discarded"), ("sleep 2, reject", "rejected")],
)
def test_access_map_actions(result, outcome):
    policy = {"recipient_restrictions": ["check_client_access pcre:m", "permit_sasl_authenticated"],
              "maps": {"m": f"/./ {result}\n"}}
    assert outcome_of("cn", policy).outcome == outcome


def test_hold_counts_as_accepted_but_not_as_spam_sent():
    policy = {"recipient_restrictions": ["check_client_access pcre:m"], "maps": {"m": "/./ HOLD\n"}}
    scenario = make_scenario([bot(origins={"cn": 1.0}, recipients=7)], origins=ORIGINS, policies={"p": policy})
    summary = simsub.run(scenario, policy="p", seed=1).summary
    assert summary["spam"]["held"] == 1
    assert summary["spam"]["recipients_accepted"] == 0


def test_restrictions_in_a_single_main_cf_style_string():
    policy = {"recipient_restrictions": "permit_mynetworks, sleep 2, permit_sasl_authenticated, reject"}
    assert outcome_of("cn", policy, recipients=2).policy_delay_s == pytest.approx(4.0)
    assert outcome_of("own", policy, recipients=2).policy_delay_s == 0.0


def test_check_sasl_access_matches_the_login_name():
    policy = {"recipient_restrictions": ["check_sasl_access pcre:users"],
              "maps": {"users": "/^bot-stolen0$/ REJECT locked by operator\n"}}
    assert outcome_of("cn", policy).outcome == "rejected"


RCPT_LIMIT_2 = {"recipient_restrictions": ["check_policy_service rl"],
                "services": {"rl": {"type": "ratelimit", "count": "recipients", "limit": 2, "window": "1d"}}}


def test_bot_sends_to_the_recipients_that_were_accepted():
    msg = outcome_of("cn", RCPT_LIMIT_2, recipients=5)
    assert msg.outcome == "accepted" and msg.recipients_accepted == 2


def test_legitimate_client_gives_up_the_transaction_when_a_recipient_is_refused():
    """A mail client that sees one RCPT deferred does not send DATA: it reports
    the error and retries the whole message later (here, in vain)."""
    user = {"name": "u", "kind": "user", "count": 1, "origins": {"own": 1.0}, "messages_per_day": 480,
            "recipients": 5, "retries": 2, "retry_interval": "1m"}
    scenario = make_scenario([user], policies={"p": RCPT_LIMIT_2})
    messages = simsub.run(scenario, policy="p", seed=1).messages
    assert len(messages) >= 1
    first = messages.iloc[0]
    assert first.outcome == "deferred" and first.recipients_accepted == 0
    assert first.attempts == 3  # the first try and two retries
    assert first.end_s >= first.first_attempt_s + 2 * 60


def test_check_sasl_access_is_evaluated_for_each_login_not_cached_per_client():
    """A bot changes stolen account every session; a login map must follow it."""
    policy = {"recipient_restrictions": ["check_sasl_access pcre:users"],
              "maps": {"users": "/^bot-stolen1$/ REJECT locked by operator\n"}}
    scenario = make_scenario([bot(origins={"cn": 1.0}, accounts=2, pause="1s")], origins=ORIGINS,
                             policies={"p": policy}, horizon="5m")
    messages = simsub.run(scenario, policy="p", seed=1).messages
    by_account = messages.groupby(messages["account"].astype(str))["outcome"].agg(lambda o: set(o.astype(str)))
    assert by_account["bot-stolen0"] == {"accepted"}
    assert by_account["bot-stolen1"] == {"rejected"}


@pytest.mark.parametrize("restriction, outcome", [
    ("permit_sasl_authenticated, reject", "rejected"),  # nobody has logged in before the banner
    ("check_sasl_access pcre:users, sleep 0", "accepted"),  # no login to look up yet
])
def test_before_auth_there_is_no_login(restriction, outcome):
    policy = {"smtpd_delay_reject": False, "client_restrictions": [restriction],
              "maps": {"users": "/./ REJECT\n"}}
    msg = outcome_of("cn", policy)
    assert msg.outcome == outcome
    if outcome == "rejected":
        assert msg.step == "banner"


@pytest.mark.parametrize("after, delay", [("reject", 0.0), ("sleep 5", 0.0)])
def test_discard_accepts_and_stops_all_later_evaluation(after, delay):
    """smtpd answers OK to DISCARD and evaluates nothing after it, in any later list or stage."""
    policy = {"recipient_restrictions": ["check_client_access pcre:m", after],
              "data_restrictions": ["reject"], "maps": {"m": "/./ DISCARD\n"}}
    msg = outcome_of("cn", policy, recipients=2)
    assert msg.outcome == "discarded"
    assert msg.policy_delay_s == delay


def test_sleep_takes_whole_seconds_like_postfix():
    import simsub.errors

    with pytest.raises(simsub.errors.ScenarioError, match="whole seconds"):
        make_scenario([bot()], policies={"p": {"recipient_restrictions": ["sleep 0.5"]}})


def test_clients_of_different_populations_get_different_addresses_and_names():
    users = {"name": "u", "kind": "user", "count": 300, "origins": {"unknown": 1.0}, "messages_per_day": 1}
    scenario = make_scenario([users, bot(count=50, origins={"unknown": 1.0, "cn": 0.0})], origins=ORIGINS)
    from simsub.workload.rng import Streams
    from simsub.workload.synthetic import ClientPopulation

    numbering: dict = {}
    streams = Streams(1)
    pops = [ClientPopulation(scenario, i, p, streams, numbering) for i, p in enumerate(scenario.populations)]
    addresses = [pop.client(n).address for pop in pops for n in range(pop.population.count)]
    assert len(set(addresses)) == len(addresses) == 350
