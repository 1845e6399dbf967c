"""simsub policyd: its decisions are the model's, its modes, reload, state, metrics, export."""

from __future__ import annotations

import logging
import re
from collections import Counter

import pytest

from simsub.cli import main
from simsub.policyd import state as state_file
from simsub.policyd.adapter import Origins
from simsub.policyd.client import PolicyClient, postfix_request
from simsub.policyd.decide import Decider, service_order
from simsub.postfix.policyd_deploy import placement_problems
from simsub.postfix.export import export_policy
from simsub.scenario import load_scenario

from .conftest import DEFAULT_SCENARIO
from .policyd_support import (MIXED, THROTTLE, Clock, play_daemon, play_model, random_messages,
                              scenario, serve)

LOCKING = {**MIXED, "services": {**MIXED["services"],
                                 "spread": {**MIXED["services"]["spread"], "action": "LOCK"}}}


@pytest.mark.parametrize("policy", ["mixed", "locking"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_daemon_decides_every_request_as_the_model_does(policy, seed):
    """Four services (distinct, fixed, sliding, token bucket; per message, per recipient, at
    DATA with the recipient count) over 80 messages: each RCPT's and DATA's result through
    the socket equals the model's own Stage.evaluate on the same times."""
    scn = scenario(mixed=MIXED, locking=LOCKING)
    messages = random_messages(seed)
    expected = play_model(scn, policy, messages)
    clock = Clock()
    with serve(scn, policy, clock=clock, budget=0) as server:
        with PolicyClient(server.address) as client:
            got = play_daemon(scn, policy, messages, client, clock)
    assert got == expected
    words = Counter(w for o in expected for w in o.rcpts + [o.data])
    assert words["DUNNO"] and words["DEFER"] and words["REJECT"]  # the sequence exercises refusals


def test_without_policy_context_a_single_service_policy_needs_none():
    scn = scenario(throttle=THROTTLE)
    messages = random_messages(5, n=30, accounts=2)
    clock = Clock()
    with serve(scn, "throttle", clock=clock, budget=0) as server, PolicyClient(server.address) as client:
        got = play_daemon(scn, "throttle", messages, client, clock, with_context=False)
    assert got == play_model(scn, "throttle", messages)
    assert any("DEFER" in o.rcpts for o in got)


def test_multi_unit_fixed_window_spends_nothing_on_a_refusal():
    """FixedWindow(5, 60) taking 4, 2, then 1 recipients at DATA: allow, refuse, allow
    (the bug of issue 18 answers allow, refuse, refuse)."""
    policy = {"data_restrictions": ["check_policy_service r"], "services": {"r": {
        "type": "ratelimit", "key": "sasl_username", "count": "recipients", "limit": 5, "window": "60s",
        "algorithm": "fixed", "action": "DEFER"}}}
    scn = scenario(p=policy)
    clock = Clock(600.0)
    with serve(scn, "p", clock=clock) as server, PolicyClient(server.address) as client:
        answers = [client.ask(postfix_request(protocol_state="DATA", sasl_username="a", recipient_count=n,
                                              instance=f"m{n}"))
                   for n in (4, 2, 1)]
    assert [a.split()[0] for a in answers] == ["DUNNO", "DEFER", "DUNNO"]


def test_per_message_memo_answers_every_rcpt_of_a_message_alike():
    scn = scenario(throttle=THROTTLE)
    clock = Clock(120.0)
    with serve(scn, "throttle", clock=clock) as server, PolicyClient(server.address) as client:
        ask = lambda instance: client.ask(postfix_request(sasl_username="a", instance=instance))  # noqa: E731
        firsts = [ask(f"m{i}") for i in range(4)]
        again = [ask("m0"), ask("m3")]  # later RCPTs of messages 0 (allowed) and 3 (deferred)
    assert [a.split()[0] for a in firsts] == ["DUNNO", "DUNNO", "DUNNO", "DEFER"]
    assert [a.split()[0] for a in again] == ["DUNNO", "DEFER"]


def test_log_only_answers_dunno_and_reports_exactly_what_enforcing_would_answer(caplog):
    scn = scenario(throttle=THROTTLE)
    messages = random_messages(7, n=30, accounts=2)
    clock = Clock()
    with serve(scn, "throttle", clock=clock) as server, PolicyClient(server.address) as client:
        enforced = play_daemon(scn, "throttle", messages, client, clock)
    caplog.set_level(logging.INFO, logger="simsub.policyd")
    with serve(scn, "throttle", clock=Clock(), log_only=frozenset({"msgs"})) as server:
        clock = server.config.clock
        with PolicyClient(server.address) as client:
            logged = play_daemon(scn, "throttle", messages, client, clock)
    assert all(w == "DUNNO" for o in logged for w in o.rcpts)
    would = [r for r in caplog.records if "mode=log_only" in r.getMessage()]
    deferred = sum(o.rcpts.count("DEFER") for o in enforced)
    assert deferred > 0 and len(would) == deferred
    assert all("service=msgs" in r.getMessage() and 'would="DEFER 4.7.1' in r.getMessage() for r in would)


def test_every_non_dunno_decision_is_one_structured_log_line(caplog):
    caplog.set_level(logging.INFO, logger="simsub.policyd")
    scn = scenario(throttle=THROTTLE)
    with serve(scn, "throttle", clock=Clock(60.0)) as server, PolicyClient(server.address) as client:
        answers = [client.ask(postfix_request(sasl_username="bob", client_address="192.0.2.9", instance=f"i{i}"))
                   for i in range(5)]
    lines = [r.getMessage() for r in caplog.records if "event=decision" in r.getMessage()]
    assert sum(a.startswith("DEFER") for a in answers) == len(lines) == 2
    for line in lines:
        fields = dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', line))
        assert fields["mode"] == "enforce" and fields["service"] == "msgs" and fields["sasl_username"] == "bob"
        assert fields["client_address"] == "192.0.2.9" and fields["action"].startswith('"DEFER 4.7.1 msgs: over 3')


def test_lock_rejects_every_later_request_of_the_login_only_when_enforced():
    policy = {"recipient_restrictions": ["check_policy_service spread", "permit_sasl_authenticated", "reject"],
              "services": {"spread": {"type": "distinct", "distinct": "client_address", "limit": 1,
                                      "window": "1h", "action": "LOCK"}}}
    scn = scenario(p=policy)
    decider = Decider(scn.policies["p"], Origins.of_scenario(scn))
    ask = lambda d, address, i: d.decide(postfix_request(sasl_username="eve", client_address=address,  # noqa
                                                         instance=f"i{i}"), 10.0 + i)
    assert ask(decider, "192.0.2.1", 0).action == "DUNNO"
    assert ask(decider, "192.0.2.2", 1).action.startswith("REJECT 5.7.1 spread: over 1")
    assert ask(decider, "192.0.2.1", 2).action == "REJECT 5.7.1 spread: login eve is locked"
    logging_only = Decider(scn.policies["p"], Origins.of_scenario(scn), frozenset({"*"}))
    assert [ask(logging_only, a, i).action for i, a in enumerate(["192.0.2.1", "192.0.2.2", "192.0.2.1"])] == \
        ["DUNNO"] * 3
    assert ask(logging_only, "192.0.2.1", 3).log_only[0] == ("spread", "REJECT 5.7.1 spread: login eve is locked")


def test_services_are_asked_in_the_order_the_lists_call_them():
    scn = scenario(mixed=MIXED)
    assert service_order(scn.policies["mixed"]) == ["spread", "msgs", "rcpts", "bucket"]


def test_an_unknown_policy_context_fails_open():
    scn = scenario(throttle=THROTTLE)
    decision = Decider(scn.policies["throttle"], Origins([])).decide(
        postfix_request(sasl_username="a", policy_context="nosuch"), 1.0)
    assert decision.action == "DUNNO" and "names no service" in decision.problem


def test_an_internal_error_and_an_exceeded_budget_answer_dunno_with_a_warning(caplog):
    caplog.set_level(logging.INFO, logger="simsub.policyd")

    class Broken:
        spec = None

        def apply(self, *args):
            raise KeyError("bug")

    scn = scenario(throttle=THROTTLE)
    with serve(scn, "throttle", clock=Clock(60.0)) as server, PolicyClient(server.address) as client:
        server.thread.call(server.decider.services.__setitem__, "msgs", Broken())
        assert client.ask(postfix_request(sasl_username="a")) == "DUNNO"
        assert client.ask(postfix_request(sasl_username="b")) == "DUNNO"  # still answering
    assert sum("event=internal_error" in r.getMessage() and "KeyError" in r.getMessage()
               for r in caplog.records) == 2

    with serve(scn, "throttle", clock=Clock(60.0), budget=1e-9) as server, PolicyClient(server.address) as client:
        answers = [client.ask(postfix_request(sasl_username="a", instance=f"i{i}")) for i in range(5)]
    assert answers == ["DUNNO"] * 5  # the 4th and 5th would be DEFER
    over = [r.getMessage() for r in caplog.records if "event=over_budget" in r.getMessage()]
    assert len(over) == 5 and sum('would="DEFER' in line for line in over) == 2


def test_reload_keeps_the_counters_of_unchanged_services_only():
    scn = scenario(mixed=MIXED)
    changed = scenario(mixed={**MIXED, "services": {**MIXED["services"],
                                                    "rcpts": {**MIXED["services"]["rcpts"], "limit": 7}}})
    current = {"policy": scn.policies["mixed"]}
    load = lambda: (current["policy"], Origins.of_scenario(scn))  # noqa: E731
    with serve(scn, "mixed", clock=Clock(100.0), load=load) as server, PolicyClient(server.address) as client:
        ask = lambda context, i: client.ask(postfix_request(  # noqa: E731
            sasl_username="u", client_address="192.0.2.1", instance=f"m{i}", policy_context=context))
        assert [ask("msgs", i).split()[0] for i in range(5)] == ["DUNNO"] * 4 + ["DEFER"]
        assert [ask("rcpts", 10 + i).split()[0] for i in range(7)] == ["DUNNO"] * 6 + ["REJECT"]
        before = dict(server.decider.services)
        current["policy"] = changed.policies["mixed"]
        server.thread.call(server.reload)
        assert ask("msgs", 5).split()[0] == "DEFER"  # unchanged spec: its count of 4 kept
        assert ask("rcpts", 20).split()[0] == "DUNNO"  # new limit: counting from zero
        assert server.decider.services["msgs"] is before["msgs"]
        assert server.decider.services["rcpts"] is not before["rcpts"]
        current["policy"] = None  # a reload that fails keeps the running policy
        server.thread.call(server.reload)
        assert ask("msgs", 6).split()[0] == "DEFER"


def test_state_round_trips_and_only_matching_specs_are_restored(tmp_path):
    scn = scenario(mixed=MIXED)
    decider = Decider(scn.policies["mixed"], Origins.of_scenario(scn))
    for i in range(5):
        decider.decide(postfix_request(sasl_username="u", instance=f"m{i}", policy_context="msgs"), 100.0)
    path = tmp_path / "state"
    state_file.write_atomic(path, state_file.dumps(decider.services, decider.locks))
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert not list(tmp_path.glob(".state.tmp*"))
    snapshot = state_file.load(path)
    changed = scenario(mixed={**MIXED, "services": {**MIXED["services"],
                                                    "msgs": {**MIXED["services"]["msgs"], "limit": 9}}})
    services, _locks, dropped = state_file.matching(snapshot, changed.policies["mixed"].services)
    assert dropped == ["msgs"] and set(services) == {"spread", "rcpts", "bucket"}
    restored = Decider(scn.policies["mixed"], Origins([]), services=state_file.matching(
        snapshot, scn.policies["mixed"].services)[0])
    assert restored.decide(postfix_request(sasl_username="u", instance="m9", policy_context="msgs"),
                           100.0).action.startswith("DEFER")


@pytest.mark.parametrize("content, reason", [(b"garbage", "not a simsub policyd state file"),
                                             (None, "state format 99")])
def test_an_unusable_state_file_is_set_aside_and_the_daemon_starts_from_zero(tmp_path, content, reason, caplog):
    import json
    caplog.set_level(logging.INFO, logger="simsub.policyd")
    path = tmp_path / "state"
    path.write_bytes(content if content is not None else json.dumps({"magic": state_file.MAGIC, "format": 99,
                                                                     "simsub": "9"}).encode())
    scn = scenario(throttle=THROTTLE)
    with serve(scn, "throttle", clock=Clock(5.0), state=path) as server, PolicyClient(server.address) as client:
        assert client.ask(postfix_request(sasl_username="a")) == "DUNNO"
    assert (tmp_path / "state.unreadable").exists()
    assert any("event=state_unreadable" in r.getMessage() and reason in r.getMessage() for r in caplog.records)
    assert state_file.load(path) is not None  # written anew at shutdown


def test_metrics_count_decisions_by_service_and_action_and_keys_in_use():
    pytest.importorskip("prometheus_client")
    import urllib.request
    scn = scenario(throttle=THROTTLE)
    with serve(scn, "throttle", clock=Clock(60.0), metrics="127.0.0.1:0") as server:
        with PolicyClient(server.address) as client:
            for i in range(7):  # u0 sends messages 0, 2, 4, 6: the 4th is over the limit of 3
                client.ask(postfix_request(sasl_username=f"u{i % 2}", instance=f"m{i}"))
            client.ask(postfix_request(request="junk"))
            url = f"http://127.0.0.1:{server.metrics_port}/metrics"
            text = urllib.request.urlopen(url, timeout=5).read().decode()  # the client still connected
    values = {m.group(1): float(m.group(2)) for m in re.finditer(r"^(simsub_policyd_\S+) (\S+)$", text, re.M)}
    assert values['simsub_policyd_decisions_total{action="DUNNO",mode="enforce",service=""}'] == 6
    assert values['simsub_policyd_decisions_total{action="DEFER",mode="enforce",service="msgs"}'] == 1
    assert values['simsub_policyd_requests_total{result="ok"}'] == 7
    assert values['simsub_policyd_requests_total{result="unreadable"}'] == 1
    assert values['simsub_policyd_request_seconds_count'] == 8
    assert values['simsub_policyd_keys{service="msgs"}'] == 2
    assert values["simsub_policyd_messages_remembered"] == 7
    assert values["simsub_policyd_connections"] == 1


def test_export_places_the_services_and_writes_the_daemon_unit():
    may2012 = load_scenario(DEFAULT_SCENARIO)
    export = export_policy(may2012, "throttle-100h", policy_endpoint="inet:127.0.0.1:10099")
    assert "check_policy_service inet:127.0.0.1:10099, permit_sasl_authenticated" in export.main_cf
    for line in ("smtpd_policy_service_default_action=DUNNO", "smtpd_policy_service_timeout=5s",
                 "smtpd_policy_service_max_idle=300s", "smtpd_policy_service_max_ttl=1000s"):
        assert f"  -o {line}" in export.master_cf
    unit = export.daemon["policyd/simsub-policyd.service"]
    assert "ExecStart=/usr/local/bin/simsub policyd /etc/simsub/may-2012.toml --policy throttle-100h " \
           "--listen 127.0.0.1:10099 --state /var/lib/simsub-policyd/state.pickle" in unit
    assert "--log-only" in unit and "ExecReload=/bin/kill -HUP $MAINPID" in unit
    assert export.daemon["policyd/may-2012.toml"].count("default_policy = \"throttle-100h\"") == 1
    none = export_policy(may2012, "none")
    assert none.daemon == {} and "smtpd_policy_service" not in none.master_cf


def test_export_with_several_services_names_each_by_policy_context_and_warns_of_a_misplaced_one():
    scn = scenario(mixed=MIXED, late={"recipient_restrictions": ["permit_sasl_authenticated",
                                                                 "check_policy_service msgs", "reject"],
                                      "services": {"msgs": THROTTLE["services"]["msgs"]}})
    export = export_policy(scn, "mixed")
    assert "check_policy_service { inet:127.0.0.1:10040, policy_context=spread }, " \
           "check_policy_service { inet:127.0.0.1:10040, policy_context=msgs }" in export.main_cf
    assert set(export.services.values()) == {"inet:127.0.0.1:10040"}
    assert placement_problems(scn.policies["mixed"]) == []
    (problem,) = placement_problems(scn.policies["late"])
    assert "check_policy_service msgs comes after permit_sasl_authenticated" in problem
    assert "WARNING: recipient_restrictions: check_policy_service msgs" in export_policy(scn, "late").main_cf


@pytest.mark.parametrize("argv, message", [
    (["--policy", "none"], "has no policy services"),
    (["--policy", "throttle-100h", "--log-only", "ratelimt"], "did you mean 'ratelimit'"),
    (["--policy", "throttle-100h", "--listen", "nohost"], "expected HOST:PORT"),
    (["--policy", "throttle-100h", "--metrics", "unix:/x"], "HTTP over TCP"),
    (["--policy", "throttle-100h", "--set", "policies.throttle-100h.policyd.log_only=7"],
     "expected true, false or a list"),
])
def test_bad_command_lines_exit_2_with_one_line(argv, message, capsys):
    assert main(["policyd", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_the_scenario_can_put_services_in_log_only_mode():
    from simsub.policyd.settings import scenario_log_only
    scn = scenario(throttle={**THROTTLE, "policyd": {"log_only": ["msgs"]}}, all={**THROTTLE,
                                                                                  "policyd": {"log_only": True}})
    assert scenario_log_only(scn, "throttle") == {"msgs"}
    assert scenario_log_only(scn, "all") == {"*"}


def test_a_unix_socket_serves_like_tcp_and_is_removed_at_shutdown(tmp_path):
    path = tmp_path / "policy.sock"
    with serve(scenario(throttle=THROTTLE), "throttle", clock=Clock(60.0), listen=f"unix:{path}") as server:
        assert server.address == f"unix:{path}" and oct(path.stat().st_mode & 0o777) == "0o666"
        with PolicyClient(server.address) as client:
            answers = [client.ask(postfix_request(sasl_username="u", instance=f"m{i}")).split()[0] for i in range(4)]
    assert answers == ["DUNNO", "DUNNO", "DUNNO", "DEFER"]
    assert not path.exists()
