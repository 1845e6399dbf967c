"""simsub export-postfix: a policy as main.cf parameters, a master.cf entry and pcre files.

These tests need no Postfix; tests/test_postfix.py runs the files in a real one.
"""

from __future__ import annotations

import pytest

from simsub.cli import main
from simsub.postfix.export import ExportError, _split_rule, export_policy, parameter_prefix

from .conftest import make_scenario

USERS = [{"name": "users", "kind": "user", "count": 1, "origins": {"own": 1.0}, "messages_per_day": 1,
          "recipients": 1, "patience": "60s"}]


def test_selective_policy_becomes_a_parameter_an_override_and_a_map(may2012):
    export = export_policy(may2012, "selective-1-5s", map_dir="/srv/maps")
    param = "simsub_selective_1_5s_recipient_restrictions"
    assert (f"{param} = permit_mynetworks, check_client_access pcre:/srv/maps/tarpit.pcre, "
            "permit_sasl_authenticated, reject") in export.main_cf
    assert "mynetworks = 198.51.100.0/22" in export.main_cf  # the origin marked mynetworks = true
    assert f"  -o smtpd_recipient_restrictions=${param}" in export.master_cf
    assert "  -o smtpd_delay_reject=yes" in export.master_cf
    assert "  -o smtpd_sasl_auth_enable=yes" in export.master_cf
    assert export.master_cf.splitlines()[2].split()[:7] == ["submission", "inet", "n", "-", "n", "-", "100"]
    rules = [line for line in export.maps["tarpit.pcre"].splitlines() if not line.startswith("#")]
    assert rules == ["/\\.jp$/\tsleep 1", "/./\tsleep 5"]
    assert export.files().keys() == {"main.cf", "master.cf", "maps/tarpit.pcre"}


def test_policy_service_becomes_check_policy_service_with_its_contract(may2012):
    export = export_policy(may2012, "throttle-100h")
    assert "check_policy_service inet:127.0.0.1:10040, permit_sasl_authenticated, reject" in export.main_cf
    assert export.services == {"ratelimit": "inet:127.0.0.1:10040"}
    (note,) = export.notes
    assert "at most 100 messages" in note and "3600 s" in note and "action=DEFER" in note
    assert "sasl_username" in note


def test_pre_banner_policy_keeps_delay_reject_no_and_its_client_list(may2012):
    export = export_policy(may2012, "pregreet-1s")
    assert "  -o smtpd_delay_reject=no" in export.master_cf
    assert "simsub_pregreet_1s_client_restrictions = permit_mynetworks, sleep 1, reject_unauth_pipelining" \
        in export.main_cf
    assert "before the banner" in export.main_cf


def test_policy_without_restrictions_sets_no_lists(may2012):
    export = export_policy(may2012, "none")
    assert "restrictions" not in export.master_cf.replace("smtpd_delay_reject", "")
    assert export.maps == {}


def test_map_results_that_are_restriction_lists_name_the_deployed_files():
    scenario = make_scenario(USERS, policies={"p": {
        "recipient_restrictions": ["check_sasl_access pcre:users", "permit_sasl_authenticated", "reject"],
        "maps": {"users": "/^vip/ OK\n/ +x/ check_client_access pcre:hosts\n",
                 "hosts": "/unknown/ sleep 2, DEFER\n"}}})
    export = export_policy(scenario, "p", map_dir="/m")
    users = export.maps["users.pcre"]
    assert "/^vip/\tOK" in users
    # Postfix refuses lookup tables inside access maps (451): the result becomes a restriction class.
    assert "/ +x/\tsimsub_p_users_line2" in users  # a regex with a space stays whole
    assert "smtpd_restriction_classes = simsub_p_users_line2" in export.main_cf
    assert "simsub_p_users_line2 = check_client_access pcre:/m/hosts.pcre" in export.main_cf
    assert "/unknown/\tsleep 2, defer" in export.maps["hosts.pcre"]


def test_continued_map_lines_become_one_rule_per_line():
    scenario = make_scenario(USERS, policies={"p": {
        "recipient_restrictions": ["check_client_access pcre:m", "permit_sasl_authenticated", "reject"],
        "maps": {"m": "/^x/ sleep 1,\n    check_client_access pcre:n\n/./ sleep 2\n", "n": "/./ DUNNO\n"}}})
    rules = [line for line in export_policy(scenario, "p", map_dir="/m").maps["m.pcre"].splitlines()
             if not line.startswith("#")]
    assert rules == ["/^x/\tsimsub_p_m_line1", "/./\tsleep 2"]


def test_split_rule_keeps_flags_negation_and_escaped_delimiters():
    assert _split_rule(r"!/a\/b c/i   REJECT no") == (r"!/a\/b c/i", "REJECT no")
    assert _split_rule("/x/ sleep 5") == ("/x/", "sleep 5")


def test_relay_list_that_cannot_refuse_is_an_error_naming_the_key():
    scenario = make_scenario(USERS, policies={"open": {"relay_restrictions": ["permit_sasl_authenticated"],
                                                "recipient_restrictions": ["sleep 1"]}})
    with pytest.raises(ExportError) as caught:
        export_policy(scenario, "open")
    assert caught.value.key == "relay_restrictions"
    assert "fatal" in str(caught.value) and "'reject'" in str(caught.value)


def test_error_limits_other_than_postfix_defaults_become_overrides(may2012):
    assert "error" not in export_policy(may2012, "selective-1-5s").master_cf
    scenario = make_scenario(USERS, mta={"soft_error_limit": 3, "error_sleep_time": "2s"},
                             policies={"p": {"recipient_restrictions": ["permit_sasl_authenticated", "reject"]}})
    master = export_policy(scenario, "p").master_cf
    assert "  -o smtpd_soft_error_limit=3" in master and "  -o smtpd_error_sleep_time=2s" in master
    assert "hard_error_limit" not in master


def test_parameter_prefix_is_a_postfix_name():
    assert parameter_prefix("Selective-1.5s (new)") == "simsub_selective_1_5s_new"


# ---------------------------------------------------------------- command line
def test_export_command_writes_the_files_and_instructions(tmp_path, capsys):
    out = tmp_path / "export"
    assert main(["export-postfix", "--policy", "selective-1-5s", "--out", str(out), "--map-dir", "/srv/m"]) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == \
        ["main.cf", "maps/tarpit.pcre", "master.cf", "simsub-export.txt"]
    instructions = (out / "simsub-export.txt").read_text()
    assert "cp maps/*.pcre /srv/m/" in instructions and "Not checked here" in instructions
    assert "exported:" in capsys.readouterr().out


def test_export_command_never_replaces_a_postfix_folder(tmp_path, capsys):
    etc = tmp_path / "etc-postfix"
    etc.mkdir()
    (etc / "main.cf").write_text("myhostname = precious\n")
    assert main(["export-postfix", "--policy", "selective-1-5s", "--out", str(etc)]) == 2
    assert "not a simsub result folder" in capsys.readouterr().err
    assert (etc / "main.cf").read_text() == "myhostname = precious\n"


@pytest.mark.parametrize("argv, expected", [
    (["--policy", "nope"], "no policy named 'nope'"),
    (["--policy", "none", "--map-dir", "maps"], "--map-dir: maps: must be an absolute path"),
])
def test_export_command_bad_input_exits_2(tmp_path, capsys, argv, expected):
    out = tmp_path / "x"
    assert main(["export-postfix", *argv, "--out", str(out)]) == 2
    assert expected in capsys.readouterr().err
    assert not out.exists()
