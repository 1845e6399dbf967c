"""anvil's per-client limits in the model: windows, counts, replies, exemptions, scenario keys.

The numbers are Postfix 3.7's, measured in tests/test_anvil_postfix.py: the
event over the limit is refused (and still counted), the window starts at
the client's first event on a clock of whole seconds and ends when that clock
has passed start + anvil_rate_time_unit.
"""

from __future__ import annotations

import pytest

import simsub
from simsub.errors import ScenarioError
from simsub.model.anvil import CONNECTION, MAIL, RCPT, Anvil
from simsub.scenario.types import AnvilLimits

from .conftest import make_scenario

H = 0.1  # one-way delay of the "unknown" origin
RT = 0.002


def bot(**keys):
    base = {"name": "bot", "kind": "bot", "count": 1, "start": "10s", "ramp": "0s", "accounts": 1,
            "origins": {"unknown": 1.0}, "pause": "1h", "recipients": 3, "patience": "60s"}
    base.update(keys)
    return base


def test_rate_window_starts_at_the_first_event_and_ends_on_whole_seconds():
    """The probe of Postfix: limit 2 per 3 s, first connection at x.5 s: refused until the
    clock's whole second passes start + 3, i.e. from (x + 4).0 s on, then a new window."""
    anvil = Anvil(AnvilLimits(connection_count_limit=0, connection_rate_limit=2, rate_time_unit=3.0))
    refused = {t: anvil.connect("192.0.2.1", t)[1] for t in (100.5, 100.6, 101.5, 103.99, 104.0, 104.1, 104.2)}
    assert refused == {100.5: False, 100.6: False, 101.5: True, 103.99: True, 104.0: False, 104.1: False,
                       104.2: True}
    assert anvil.connect("192.0.2.2", 101.5)[1] is False  # per client address


def test_events_share_one_window_and_refused_ones_count():
    anvil = Anvil(AnvilLimits(message_rate_limit=1, recipient_rate_limit=2, rate_time_unit=60.0))
    assert [anvil.event("a", MAIL, t) for t in (0.0, 1.0, 2.0)] == [False, True, True]
    assert [anvil.event("a", RCPT, t) for t in (3.0, 4.0, 5.0)] == [False, False, True]
    assert anvil.event("a", MAIL, 60.0) is True  # 0 + 60 < 60 is false: still the first window
    assert anvil.event("a", MAIL, 60.9) is True
    assert anvil.event("a", MAIL, 61.0) is False  # 0 + 60 < 61: a new window, every count starts again
    assert anvil.event("a", RCPT, 61.5) is False


def test_connection_count_is_what_smtpd_holds_this_one_included():
    anvil = Anvil(AnvilLimits(connection_count_limit=2))
    first, refused1 = anvil.connect("a", 0.0)
    second, refused2 = anvil.connect("a", 1.0)
    third, refused3 = anvil.connect("a", 2.0)
    assert (refused1, refused2, refused3) == (False, False, True)
    anvil.close(first, 5.0)
    anvil.close(third, 2.002)
    assert anvil.connect("a", 4.0)[1] is True  # first and second still held at 4 s
    assert anvil.connect("a", 5.0)[1] is True  # second, and the one just taken at 4 s
    assert not anvil.limited(MAIL) and not anvil.limited(CONNECTION)


def test_a_connection_over_the_count_gets_421_before_the_pre_banner_sleep():
    """Two parallel workers from one address, limit 1: the second is refused at once."""
    scenario = make_scenario([bot(parallel=2, recipients=1)],
                             policies={"pre": {"smtpd_delay_reject": False, "client_restrictions": ["sleep 3"]}},
                             mta={"anvil": {"connection_count_limit": 1}})
    result = simsub.run(scenario, policy="pre", seed=1)
    first = result.messages.sort_values("first_attempt_s").iloc[:2]
    assert sorted(first["outcome"].astype(str)) == ["accepted", "deferred"]
    refused = first[first["outcome"] == "deferred"].iloc[0]
    assert refused.step == "banner" and refused.policy_delay_s == 0.0
    session = result.sessions[result.sessions["outcome"] == "deferred"].iloc[0]
    assert session.slot_hold_s == pytest.approx(RT)  # the 421, and smtpd is done


def test_recipient_rate_refuses_the_rcpts_beyond_it_with_450_and_counts_them():
    scenario = make_scenario([bot(recipients=5, pause="10s")], mta={"anvil": {"recipient_rate_limit": 3}},
                             horizon="25s")
    result = simsub.run(scenario, seed=1)
    first, second = list(result.messages.sort_values("first_attempt_s").itertuples())[:2]
    assert (first.outcome, first.recipients_accepted) == ("accepted", 3)  # bots send to those accepted
    # 10 s later, same window: all five refused; ten errors do not yet slow smtpd down
    assert (second.outcome, second.step, second.recipients_accepted) == ("deferred", "rcpt", 0)


def test_message_rate_defers_at_mail_and_exempts_mynetworks():
    limits = {"anvil": {"message_rate_limit": 1}}
    counted = make_scenario([bot(pause="5s")], mta=limits, horizon="20s")
    outcomes = [(m.outcome, m.step) for m in simsub.run(counted, seed=1).messages.itertuples()]
    assert outcomes[0] == ("accepted", "quit") and set(outcomes[1:]) == {("deferred", "mail")}
    own = make_scenario([bot(pause="5s", origins={"own": 1.0})], mta=limits, horizon="20s")
    assert set(simsub.run(own, seed=1).messages["outcome"].astype(str)) == {"accepted"}
    listed = make_scenario([bot(pause="5s")], mta={"anvil": {"message_rate_limit": 1, "exceptions": ["10.0.0.0/8"]}},
                           horizon="20s")
    assert set(simsub.run(listed, seed=1).messages["outcome"].astype(str)) == {"accepted"}


def test_auth_rate_defers_at_auth():
    scenario = make_scenario([bot(pause="5s")], mta={"anvil": {"auth_rate_limit": 1}}, horizon="20s")
    steps = [(m.outcome, m.step) for m in simsub.run(scenario, seed=1).messages.itertuples()]
    assert steps[:2] == [("accepted", "quit"), ("deferred", "auth")]


def test_defaults_are_postfix_defaults():
    assert make_scenario([bot()]).mta.anvil == AnvilLimits(connection_count_limit=50, connection_rate_limit=0,
                                                           message_rate_limit=0, recipient_rate_limit=0,
                                                           auth_rate_limit=0, rate_time_unit=60.0, exceptions=None)


@pytest.mark.parametrize("anvil, key, words", [
    ({"message_rate_limit": -1}, "mta.anvil.message_rate_limit", "whole number >= 0"),
    ({"rate_time_unit": "1500ms"}, "mta.anvil.rate_time_unit", "whole seconds"),
    ({"rate_time_unit": "0s"}, "mta.anvil.rate_time_unit", "duration > 0"),
    ({"exceptions": "none"}, "mta.anvil.exceptions", '"mynetworks" or a list'),
    ({"exceptions": ["10.0.0.300/8"]}, "mta.anvil.exceptions[0]", "address range"),
    ({"connection_limit": 5}, "mta.anvil.connection_limit", "unknown key"),
])
def test_bad_anvil_keys_name_the_key(anvil, key, words):
    with pytest.raises(ScenarioError) as err:
        make_scenario([bot()], mta={"anvil": anvil})
    assert err.value.key == key and words in str(err.value)


def test_library_anvil_spread_stops_bots_behind_few_addresses_not_spread_ones():
    """scenarios/anvil-spread.toml, 30 min: the message rate limit cuts the botnet behind
    4 addresses to at most 4 x limit messages a minute and leaves the spread one alone."""
    from simsub.scenario import load_scenario

    def spam(rate):
        scenario = load_scenario("scenarios/anvil-spread.toml", {"message_rate": rate, "horizon": "30m"})
        m = simsub.run(scenario, seed=587).messages
        accepted = m[m["outcome"] == "accepted"]
        return accepted.groupby("population", observed=True)["recipients_accepted"].sum().to_dict(), accepted

    off, _ = spam(0)
    on, accepted = spam(10)
    assert on["spread"] == off["spread"] > 0
    assert on["concentrated"] < off["concentrated"] / 2
    # The bots send from 15 min on, from 4 addresses; anvil's windows last at least 60 s, so
    # the 15 minutes hold at most 16 of them, each letting 10 messages per address through.
    # (Sessions still running at the horizon end after it: count those started before it.)
    concentrated = accepted[(accepted["population"] == "concentrated") & (accepted["first_attempt_s"] < 1800)]
    assert 0 < len(concentrated) <= 4 * 10 * 16


def test_export_writes_the_limits_that_differ_from_postfix_defaults():
    from simsub.postfix.export import export_policy

    plain = export_policy(make_scenario([bot()]), "none")
    assert "smtpd_client_" not in plain.master_cf and "anvil_rate_time_unit" not in plain.main_cf
    scenario = make_scenario([bot()], mta={"anvil": {"connection_count_limit": 10, "message_rate_limit": 30,
                                                     "rate_time_unit": "120s", "exceptions": []}})
    export = export_policy(scenario, "none")
    assert "  -o smtpd_client_connection_count_limit=10\n" in export.master_cf
    assert "  -o smtpd_client_message_rate_limit=30\n" in export.master_cf
    assert "  -o smtpd_client_event_limit_exceptions=\n" in export.master_cf
    assert "smtpd_client_recipient_rate_limit" not in export.master_cf  # Postfix's default (off)
    assert "\nanvil_rate_time_unit = 120s\n" in export.main_cf


def test_scenario_reference_documents_every_anvil_key():
    from pathlib import Path

    from simsub.scenario import loader

    text = (Path(__file__).resolve().parents[1] / "scenarios" / "README.md").read_text(encoding="utf-8")
    section = text.split("### `[mta.anvil]`", 1)[1].split("\n## ", 1)[0]
    assert not [k for k in loader._ANVIL if f"| `{k}` |" not in section]


def test_connections_open_rate_windows_when_only_another_rate_is_limited():
    """With a MAIL rate limit and no connection limit at all, a connection still opens
    the client's window (anvil counts every event): MAIL at 104.5 s is in a new window
    that the connection at 100.5 s opened (100 + 3 < 104), so it is allowed; had the
    first MAIL opened the window (at 103 s) it would be the second in it and refused."""
    anvil = Anvil(AnvilLimits(connection_count_limit=0, message_rate_limit=1, rate_time_unit=3.0))
    handle, refused = anvil.connect("192.0.2.1", 100.5)
    assert handle is None and refused is False  # no count limit: nothing to close
    assert anvil.event("192.0.2.1", MAIL, 103.5) is False
    assert anvil.event("192.0.2.1", MAIL, 104.5) is False
    assert anvil.event("192.0.2.1", MAIL, 105.0) is True
