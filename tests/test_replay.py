"""Replaying a maillog: the trace read from parsed tables, exact timings of replayed
messages, real Postfix logs replayed under the policy that produced them, the
command line and its bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import simsub
from simsub.cli import main
from simsub.experiments.replay import replay_scenario_data
from simsub.maillog.tables import SCHEMA
from simsub.scenario.loader import build_scenario
from simsub.workload.trace import build_trace, origin_of

from .conftest import BASE, make_scenario

FIXTURES = Path(__file__).parent / "fixtures" / "maillog"
TWIN = Path(__file__).resolve().parents[1] / "scenarios" / "twin-impatient.toml"
#: twin-impatient's botnet steals the logins of its first four subscribers.
STOLEN = ["subscribers0", "subscribers1", "subscribers2", "subscribers3"]
DAY = 86400.0


def frame(table: str, rows: list[dict]) -> pd.DataFrame:
    """A parsed table with the parser's columns: missing numbers -1/NaN, missing text ""."""
    full = []
    for row in rows:
        values = {}
        for name, kind in SCHEMA[table]:
            values[name] = row.get(name, {"i": -1, "f": np.nan, "s": ""}[kind])
        full.append(values)
    return pd.DataFrame(full, columns=[n for n, _ in SCHEMA[table]])


def session(sid, t, name, address, login, rcpt_tried, end="disconnect"):
    return {"session_id": sid, "connect_s": t, "disconnect_s": t + 1, "client_name": name, "client_address": address,
            "sasl_username": login, "end": end, "rcpt_tried": rcpt_tried, "rcpt_ok": rcpt_tried}


# ---------------------------------------------------------------- the trace
def test_trace_takes_logged_in_transactions_at_their_session_start():
    day = 1_700_000_000.0 // DAY * DAY
    sessions = frame("sessions", [
        session(0, day + 100.0, "p1.example.ne.jp", "198.51.100.1", "alice", 3),
        session(1, day + 200.0, "unknown", "203.0.113.9", "bob", 2, end="lost"),  # hung up, queue id opened
        session(2, day + 300.0, "unknown", "203.0.113.9", "bob", 4),  # refused: no queue id
        session(3, day + 400.0, "mx.example.com", "192.0.2.1", "", 1),  # no login: inbound, not replayed
    ])
    messages = frame("messages", [
        {"queue_id": "A", "session_id": 0, "accepted_s": day + 101.5, "sasl_username": "alice", "nrcpt": 3},
        {"queue_id": "B", "session_id": 1, "accepted_s": day + 210.0, "sasl_username": "bob"},  # qmgr never saw it
        {"queue_id": "C", "session_id": 3, "accepted_s": day + 401.0, "nrcpt": 1},
    ])
    trace = build_trace(sessions, messages, frame("rejects", []), frozenset({"bob"}))
    assert trace.day_start_s == day
    assert trace.users.t_s.tolist() == [100.0] and trace.users.account == ("alice",)
    assert trace.users.recipients.tolist() == [3] and trace.users.accepted_in_log.tolist() == [True]
    assert trace.bots.t_s.tolist() == [200.0, 300.0]
    assert trace.bots.recipients.tolist() == [2, 4]
    assert trace.bots.accepted_in_log.tolist() == [False, False]
    assert trace.bots.clients == (("unknown", "203.0.113.9"),) and trace.bots.client.tolist() == [0, 0]
    assert trace.skipped["sessions without a login (not submission, or AUTH failed)"] == 1
    assert trace.horizon_s == 301.0


def test_origin_of_a_logged_client():
    scenario = simsub.load_scenario(TWIN)
    origins = list(scenario.origins.values())
    names = [o.name for o in origins]
    assert names[origin_of("anything.example.com", "198.51.100.7", origins)] == "own"  # mynetworks range first
    assert names[origin_of("unknown", "192.0.2.4", origins)] == "unknown"
    assert names[origin_of("h9.dsl.example-other.ne.jp", "192.0.2.4", origins)] == "jp"
    assert names[origin_of("host.example.com", "192.0.2.4", origins)] == "jp"  # no shared label: first other origin


# ---------------------------------------------------------------- exact timings
def one_message_scenario(tmp_path, login, name, address, patience, sleep):
    """A trace of one logged message (2 recipients) and a scenario that replays it."""
    folder = tmp_path / "trace"
    folder.mkdir(parents=True)
    sessions = frame("sessions", [session(0, 1000.0, name, address, login, 2)])
    messages = frame("messages", [{"queue_id": "A", "session_id": 0, "accepted_s": 1001.0, "sasl_username": login,
                                   "nrcpt": 2}])
    for table, df in (("sessions", sessions), ("messages", messages), ("rejects", frame("rejects", []))):
        df.to_csv(folder / f"{table}.csv.gz", index=False, na_rep="nan")  # as the parser writes them
    scenario = make_scenario(
        populations=[{"name": "u", "kind": "user", "count": 1, "origins": {"own": 1.0}, "messages_per_day": 1,
                      "patience": patience, "retries": 0},
                     {"name": "b", "kind": "bot", "count": 1, "accounts": 1, "origins": {"unknown": 1.0},
                      "patience": patience}],
        policies={"tarpit": {"recipient_restrictions": f"permit_mynetworks, sleep {sleep}"}},
        horizon="1h")
    data = {**scenario.raw, "trace": {"tables": str(folder), "users": "u", "bots": "b", "flagged": ["mallory"]}}
    return build_scenario(data, "<replay>", {})


def test_a_replayed_own_network_message_takes_exactly_its_ideal_time(tmp_path):
    scenario = one_message_scenario(tmp_path, "alice", "p1.dial.example.ne.jp", "198.51.100.1", "60s", 5)
    row = simsub.run(scenario, policy="tarpit").messages.iloc[0]
    half_rtt, reply = 0.005, 0.002  # own origin: rtt 10 ms; mta reply_time 2 ms (tests/conftest.py)
    ideal = reply + half_rtt + (5 + 2) * (2 * half_rtt + reply)
    assert (row["kind"], row["account"], row["outcome"]) == ("user", "alice", "accepted")
    assert row["first_attempt_s"] == 1000.0
    assert row["accepted_s"] == pytest.approx(1000.0 + ideal, abs=1e-9)
    assert row["false_delay_s"] == pytest.approx(0.0, abs=1e-9)


def test_a_flagged_login_from_outside_gives_up_under_a_longer_sleep(tmp_path):
    # patience 4 s < sleep 5 s at the first RCPT: the bot hangs up, nothing is accepted
    scenario = one_message_scenario(tmp_path, "mallory", "unknown", "203.0.113.9", "4s", 5)
    row = simsub.run(scenario, policy="tarpit").messages.iloc[0]
    assert (row["kind"], row["account"], row["outcome"], row["recipients_accepted"]) == ("bot", "mallory", "timeout", 0)
    half_rtt, reply = 0.1, 0.002  # unknown origin: rtt 200 ms (tests/conftest.py)
    rcpt_sent = 1000.0 + reply + half_rtt + 3 * (2 * half_rtt + reply)  # after banner, EHLO, AUTH, MAIL
    assert row["end_s"] == pytest.approx(rcpt_sent + 4.0, abs=1e-9)  # it waits its 4 s, then leaves
    scenario = one_message_scenario(tmp_path / "b", "mallory", "unknown", "203.0.113.9", "6s", 5)
    row = simsub.run(scenario, policy="tarpit").messages.iloc[0]
    assert (row["outcome"], row["recipients_accepted"]) == ("accepted", 2)


def test_a_deferred_replayed_message_retries_like_its_population(tmp_path):
    scenario = one_message_scenario(tmp_path, "alice", "p1.dial.example.ne.jp", "198.51.100.1", "60s", 0)
    data = {**scenario.raw, "policies": {"none": {}, "defer": {"recipient_restrictions": "defer"}}}
    data["populations"][0] = {**data["populations"][0], "retries": 2, "retry_interval": "10m"}
    row = simsub.run(build_scenario(data, "<replay>", {}), policy="defer").messages.iloc[0]
    assert (row["outcome"], row["attempts"]) == ("deferred", 3)
    assert row["end_s"] > 1000.0 + 2 * 600.0  # two waits of retry_interval between the attempts


# ---------------------------------------------------------------- real Postfix logs
@pytest.mark.parametrize("log, produced_with", [("twin-sleep3.maillog", 3), ("twin-sleep5.maillog", 5)])
def test_real_postfix_logs_replayed_under_their_own_policy_give_postfix_s_outcomes(tmp_path, log, produced_with):
    """The twin's real Postfix wrote these logs under `sleep N` per RCPT for clients outside
    .jp; replayed under the same policy, every seed accepts exactly the messages Postfix
    accepted (those that reached qmgr), and the bots give up exactly where they gave up."""
    tables = tmp_path / "trace"
    assert main(["maillog", "parse", str(FIXTURES / log), "--year", "2026", "--out", str(tables), "--quiet"]) == 0
    data, _ = replay_scenario_data(TWIN, tables, STOLEN)
    scenario = build_scenario(data, "<replay>", {"sleep": produced_with})
    messages = pd.read_csv(tables / "messages.csv.gz", keep_default_na=False)
    reached_qmgr = int(((messages["sasl_username"] != "") & (messages["nrcpt"] > 0)).sum())
    logged_in = pd.read_csv(tables / "sessions.csv.gz", keep_default_na=False)
    logged_in = logged_in[logged_in["sasl_username"] != ""]
    for seed in (1, 2, 3):
        result = simsub.run(scenario, seed=seed).messages
        assert len(result) == len(logged_in)
        assert int((result["outcome"] == "accepted").sum()) == reached_qmgr
        assert int((result["outcome"] == "timeout").sum()) == int((logged_in["end"] == "lost").sum())


def test_the_sleep_3_log_replayed_under_sleep_5_loses_the_bots_mail(tmp_path):
    tables = tmp_path / "trace"
    assert main(["maillog", "parse", str(FIXTURES / "twin-sleep3.maillog"), "--year", "2026", "--out", str(tables),
                 "--quiet"]) == 0
    data, _ = replay_scenario_data(TWIN, tables, STOLEN)
    at_3 = simsub.run(build_scenario(data, "<replay>", {"sleep": 3})).messages
    at_5 = simsub.run(build_scenario(data, "<replay>", {"sleep": 5})).messages
    from_outside = (at_5["origin"] == "unknown").to_numpy()
    assert (at_3.loc[from_outside, "outcome"] == "accepted").all()
    assert (at_5.loc[from_outside, "outcome"] == "timeout").all()
    # the same logged messages, arriving at the same times, under both policies
    assert at_3["first_attempt_s"].tolist() == at_5["first_attempt_s"].tolist()


# ---------------------------------------------------------------- the command
def test_replay_command_writes_comparison_accounts_and_scenario(tmp_path, capsys):
    out = tmp_path / "replay"
    code = main(["replay", str(FIXTURES / "twin-sleep5.maillog"), str(TWIN), "--year", "2026", "--flagged",
                 ",".join(STOLEN), "--policy", "tarpit", "--replications", "2", "--workers", "1", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "tarpit: 0 of" in printed and "legitimate senders delayed > 5 s or refused" in printed
    assert {p.name for p in out.iterdir()} == {"compare", "scenario.toml", "accounts.csv", "accounts.md",
                                                "replay.json"}
    accounts = pd.read_csv(out / "accounts.csv")
    assert set(accounts["kind"]) == {"legit", "flagged"}
    assert "## `tarpit`" in (out / "accounts.md").read_text()
    # the written scenario runs again as it is
    assert simsub.load_scenario(out / "scenario.toml").trace.digest == \
        simsub.load_scenario(out / "scenario.toml").trace.digest
    assert (tmp_path / "replay-trace" / "stats.json").is_file()


def test_replay_bad_input(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["replay", str(TWIN), str(FIXTURES / "twin-sleep5.maillog"), "--out", str(out)]) == 2
    assert "a scenario file goes last" in capsys.readouterr().err
    assert main(["replay", str(tmp_path), "--out", str(out)]) == 2
    assert "without stats.json" in capsys.readouterr().err
    # a Postfix log without any logged-in submission
    inbound = tmp_path / "inbound.log"
    inbound.write_text("Mar  9 00:14:37 mx postfix/smtpd[1]: connect from mx.example.com[192.0.2.1]\n"
                       "Mar  9 00:14:38 mx postfix/smtpd[1]: 008F1140088: client=mx.example.com[192.0.2.1]\n"
                       "Mar  9 00:14:39 mx postfix/smtpd[1]: disconnect from mx.example.com[192.0.2.1] ehlo=1 "
                       "mail=1 rcpt=1 data=1 quit=1 commands=5\n")
    assert main(["replay", str(inbound), "--year", "2026", "--out", str(out)]) == 2
    assert "no authenticated submission to replay" in capsys.readouterr().err
    assert not out.exists()


def test_trace_section_errors_name_the_key(tmp_path):
    data = {**BASE, "populations": [{"name": "u", "kind": "user", "count": 1, "origins": {"own": 1.0},
                                     "messages_per_day": 1}]}
    with pytest.raises(simsub.ScenarioError, match=r"trace\.tables.*not a folder of parsed maillog tables"):
        build_scenario({**data, "trace": {"tables": str(tmp_path), "users": "u"}}, "<t>", {})
    for name in ("sessions", "messages", "rejects"):
        (tmp_path / f"{name}.csv.gz").write_bytes(b"")
    with pytest.raises(simsub.ScenarioError, match=r"trace\.users.*no user population named 'x'"):
        build_scenario({**data, "trace": {"tables": str(tmp_path), "users": "x"}}, "<t>", {})
    with pytest.raises(simsub.ScenarioError, match=r"trace\.flagged.*name the bot population"):
        build_scenario({**data, "trace": {"tables": str(tmp_path), "users": "u", "flagged": ["a"]}}, "<t>", {})
    with pytest.raises(simsub.ScenarioError, match=r"trace\.sha256.*changed since"):
        build_scenario({**data, "trace": {"tables": str(tmp_path), "users": "u", "sha256": "0" * 64}}, "<t>", {})


# ---------------------------------------------------------------- the loop closed: run -> maillog -> replay
@pytest.mark.parametrize("sleep", [3, 5])
def test_a_simulated_maillog_replayed_under_its_own_policy_reproduces_the_run(tmp_path, sleep):
    """simsub run --maillog, parsed and replayed under the policy that produced it, gives the
    run's outcome counts: as many sessions, accepted messages and timeouts (every client's
    decision in twin-impatient has a margin of 0.3 s or more, so the replay's own draws of
    patience and round trip cannot flip one)."""
    from simsub.report.maillog import write_maillog

    scenario = simsub.load_scenario(TWIN, {"sleep": sleep})
    result = simsub.run(scenario)
    write_maillog(result, tmp_path / "maillog")
    tables = tmp_path / "trace"
    assert main(["maillog", "parse", str(tmp_path / "maillog"), "--year", "2012", "--out", str(tables),
                 "--quiet"]) == 0
    data, _ = replay_scenario_data(TWIN, tables, STOLEN)
    replayed = simsub.run(build_scenario(data, "<replay>", {"sleep": sleep})).messages
    original = result.messages
    assert len(replayed) == len(original)
    for outcome in ("accepted", "timeout"):
        assert int((replayed["outcome"] == outcome).sum()) == int((original["outcome"] == outcome).sum()), outcome
    assert int(replayed["recipients_accepted"].sum()) == int(original["recipients_accepted"].sum())


def test_replay_detect_flags_only_stolen_logins(tmp_path, capsys):
    """--detect uses calibrate's rules: on the twin's log it flags logins the botnet stole
    (logged in from several addresses without reverse DNS) and none of the others."""
    out = tmp_path / "replay"
    assert main(["replay", str(FIXTURES / "twin-sleep5.maillog"), str(TWIN), "--year", "2026", "--detect",
                 "--policy", "tarpit", "--replications", "1", "--workers", "1", "--out", str(out)]) == 0
    flagged = set(simsub.load_scenario(out / "scenario.toml").trace.flagged)
    assert flagged and flagged <= set(STOLEN)


def test_replay_drops_the_base_scenarios_other_populations(tmp_path):
    """The log holds all of the server's mail: a base with a second user population (a
    calibrated scenario's volume classes) must not send that population's mail again."""
    tables = tmp_path / "trace"
    assert main(["maillog", "parse", str(FIXTURES / "twin-sleep3.maillog"), "--year", "2026", "--out", str(tables),
                 "--quiet"]) == 0
    base = tmp_path / "base.toml"
    text = TWIN.read_text().replace("[[populations]]\nname = \"botnet\"", """[[populations]]
name = "heavy"
kind = "user"
count = 5
origins = { own = 1.0 }
messages_per_day = 5000
patience = "60s"

[[populations]]
name = "botnet\"""", 1)
    base.write_text(text)
    assert [p.name for p in simsub.load_scenario(base).populations] == ["subscribers", "heavy", "botnet"]
    data, scenario = replay_scenario_data(base, tables, STOLEN)
    assert [p.name for p in scenario.populations] == ["subscribers", "botnet"]
    assert len(simsub.run(scenario).messages) == 17  # the log's 17 logged-in sessions, nothing drawn
