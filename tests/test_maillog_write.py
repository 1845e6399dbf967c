"""The maillog writer: line formats against real Postfix lines, determinism, counts, pflogsumm."""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from simsub.api import run
from simsub.cli import main
from simsub.report.maillog import MaillogOptions, format_delay, maillog_lines, message_sessions, write_maillog

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "tests" / "fixtures" / "maillog-real" / "twin-postfix-3.7.11.log"
TWIN = ROOT / "scenarios" / "twin-impatient.toml"
MAY = ROOT / "scenarios" / "may-2012.toml"

# A small day of may-2012 with everything behind the front end happening: a throttle that
# locks accounts (SASL failures, 4xx at RCPT), bounces, deferrals and expiries.
SMALL = {"populations.subscribers.count": 200, "populations.subscribers.messages_per_day": 40,
         "scenario.horizon": "2h", "populations.botnet.start": "30m", "populations.botnet.count": 4,
         "populations.botnet.accounts": 4, "populations.botnet.recipients": 25,
         "policies.throttle-100h.services.ratelimit.limit": 20,
         "policies.throttle-100h.services.ratelimit.action": "LOCK",
         "queue.maximal_queue_lifetime": "40m", "queue.bounce_queue_lifetime": "40m",
         "destinations.elsewhere.spam.defer": 0.5, "destinations.elsewhere.spam.reject": 0.2}

# Subscribers held to one message per 10 minutes: most of their mail is deferred and retried.
RETRIES = {"populations.subscribers.count": 20, "populations.subscribers.messages_per_day": 600,
           "scenario.horizon": "1h", "populations.botnet.start": "30m", "populations.botnet.count": 2,
           "populations.botnet.accounts": 2, "populations.subscribers.retry_interval": "2m",
           "policies.throttle-100h.services.ratelimit.limit": 1,
           "policies.throttle-100h.services.ratelimit.window": "10m"}

# A refusal at every stage, and reject_unauth_pipelining at EHLO against bots that talk during a
# sleep before the banner (what Postfix 3.7 flags: their AUTH is already waiting when smtpd reads
# EHLO; docs/model.md).
STAGE_POLICIES = """
[policies.at-connect]
smtpd_delay_reject = false
client_restrictions = ["permit_mynetworks", "reject"]
[policies.at-ehlo]
smtpd_delay_reject = false
helo_restrictions = ["permit_mynetworks", "defer"]
[policies.at-mail]
smtpd_delay_reject = false
sender_restrictions = ["permit_mynetworks", "check_client_access pcre:bad"]
[policies.at-mail.maps]
bad = "/^unknown$/ REJECT"
[policies.at-data]
data_restrictions = ["permit_mynetworks", "check_client_access pcre:bad"]
[policies.at-data.maps]
bad = "/^unknown$/ DEFER"
[policies.at-eod]
end_of_data_restrictions = ["permit_mynetworks", "check_client_access pcre:bad"]
[policies.at-eod.maps]
bad = "/^unknown$/ REJECT"
[policies.pipelining]
smtpd_delay_reject = false
client_restrictions = ["permit_mynetworks", "sleep 4"]
helo_restrictions = ["permit_mynetworks", "reject_unauth_pipelining"]
"""
STAGES = {"at-connect": "CONNECT", "at-ehlo": "EHLO", "at-mail": "MAIL", "at-data": "DATA",
          "at-eod": "END-OF-MESSAGE", "pipelining": "EHLO"}

# Line formats.  The first group is written from real lines (tests/fixtures/maillog-real, Postfix
# 3.7.11 under `simsub twin`) and must match some of them; the second has no real line here (the
# twin has no SASL backend, delivers to discard, bounces nothing) and follows Postfix's source:
# smtpd_sasl_glue.c, bounce_notify_service.c, qmgr_active.c.
STAMP = r"(?:[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00) \S+ "
CLIENT = r"(?:unknown|[a-z0-9.-]+)\[[0-9a-f.:]+\]"
QID = r"[0-9A-F]{10,12}"
DELAY = r"\d+(?:\.\d+)?"
SMTPD = r"postfix/submission/smtpd\[\d+\]: "
FROM_REAL = {
    "master": r"postfix/master\[\d+\]: daemon started -- version 3\.7\.\d+, configuration \S+",
    "connect": SMTPD + rf"connect from {CLIENT}",
    "client": SMTPD + rf"{QID}: client={CLIENT}, sasl_method=\w+, sasl_username=\S+",
    "message-id": rf"postfix/cleanup\[\d+\]: {QID}: message-id=<\d{{14}}\.{QID}@[a-z0-9.-]+>",
    "qmgr-from": rf"postfix/qmgr\[\d+\]: {QID}: from=<[^>]*>, size=\d+, nrcpt=\d+ \(queue active\)",
    "delivery": rf"postfix/(?:smtp|local|discard)\[\d+\]: {QID}: to=<[^>]+>, relay=[^,]+, delay={DELAY}, "
                rf"delays={DELAY}/{DELAY}/{DELAY}/{DELAY}, dsn=\d\.\d\.\d, status=(?:sent|deferred|bounced) \(.+\)",
    "removed": rf"postfix/(?:qmgr|postsuper)\[\d+\]: {QID}: removed",
    "disconnect": SMTPD + rf"disconnect from {CLIENT}(?: [a-z]+=\d+(?:/\d+)?)* commands=\d+(?:/\d+)?",
    "lost": SMTPD + rf"lost connection after [A-Z-]+ from {CLIENT}",
    "too-many": SMTPD + rf"too many errors after [A-Z-]+ from {CLIENT}",
    "reject": SMTPD + rf"(?:NOQUEUE|{QID}): reject: (?:CONNECT|EHLO|MAIL|RCPT|DATA|END-OF-MESSAGE) from {CLIENT}: "
              r"[45]\d\d [45]\.\d\.\d <[^>]*>: [A-Za-z -]+ rejected: [^;]+;(?: from=<[^>]*>)?(?: to=<[^>]*>)? "
              r"proto=E?SMTP(?: helo=<[^>]*>)?",
}
FROM_SOURCE = {
    "sasl-failed": SMTPD + rf"warning: {CLIENT}: SASL LOGIN authentication failed: [^,]+, sasl_username=\S+",
    "bounce": rf"postfix/bounce\[\d+\]: {QID}: (?:sender|postmaster) non-delivery notification: {QID}",
    "expired": rf"postfix/qmgr\[\d+\]: {QID}: from=<[^>]*>, status=expired, returned to sender",
    "pipelining": SMTPD + rf"improper command pipelining after (?:CONNECT|EHLO|DATA) from {CLIENT}: .+\\r\\n",
    "hold": SMTPD + rf"NOQUEUE: hold: RCPT from {CLIENT}: <[^>]+>: Recipient address triggers HOLD action; "
            r"from=<[^>]*> to=<[^>]*> proto=ESMTP helo=<[^>]*>",
}
KINDS = {name: re.compile(STAMP + pattern) for name, pattern in {**FROM_REAL, **FROM_SOURCE}.items()}


def kind_of(line: str) -> list[str]:
    return [name for name, rx in KINDS.items() if rx.fullmatch(line)]


@pytest.fixture(scope="module")
def stage_runs(tmp_path_factory):
    path = tmp_path_factory.mktemp("scenario") / "stages.toml"
    path.write_text(TWIN.read_text() + STAGE_POLICIES)
    # bots that talk when the banner is 0.5 s late and send AUTH 2-3 s after EHLO (the sleep is 4 s)
    talk = {"populations.botnet.on_timeout": "talk", "populations.botnet.connect_timeout": "0.5s",
            "populations.botnet.patience": {"dist": "uniform", "low": "2s", "high": "3s"}}
    return {name: run(path, policy=name, overrides=talk) for name in STAGES}


@pytest.fixture(scope="module")
def runs(stage_runs):
    return {**stage_runs,
        "tarpit3": run(TWIN, overrides={"sleep": 3}),
        "tarpit5": run(TWIN, overrides={"sleep": 5}),
        "refuse": run(TWIN, policy="refuse", overrides={"populations.botnet.recipients": 25}),
        "small": run(MAY, policy="throttle-100h", overrides=SMALL),
        "hold": run(MAY, policy="throttle-100h",
                    overrides={**SMALL, "policies.throttle-100h.services.ratelimit.action": "HOLD"}),
        "retries": run(MAY, policy="throttle-100h", overrides=RETRIES),
    }


@pytest.fixture(scope="module")
def logs(runs):
    return {name: list(maillog_lines(r.scenario, r.policy, r.seed, r.messages, r.sessions, r.deliveries, r.events))
            for name, r in runs.items()}


def test_every_real_format_matches_a_real_postfix_line():
    real = REAL.read_text().splitlines()
    seen = Counter(k for line in real for k in kind_of(line))
    for name in FROM_REAL:
        assert seen[name] > 0, f"no real line of kind {name}: the regex is not tested against Postfix"


def test_every_written_line_has_exactly_one_known_format(logs):
    seen = Counter()
    for name, lines in logs.items():
        for line in lines:
            kinds = kind_of(line.rstrip("\n"))
            assert len(kinds) == 1, f"{name}: {line!r} matches {kinds}"
            seen[kinds[0]] += 1
    # the runs were chosen so that every kind of line occurs
    assert set(seen) == set(KINDS), f"kinds never written: {set(KINDS) - set(seen)}"


def test_same_run_same_bytes(runs, tmp_path):
    r = runs["small"]
    for name in ("a.log", "b.log", "a.log.gz", "b.log.gz"):
        write_maillog(r, tmp_path / name)
    assert (tmp_path / "a.log").read_bytes() == (tmp_path / "b.log").read_bytes()
    assert (tmp_path / "a.log.gz").read_bytes() == (tmp_path / "b.log.gz").read_bytes()
    assert gzip.decompress((tmp_path / "a.log.gz").read_bytes()) == (tmp_path / "a.log").read_bytes()
    again = run(MAY, policy="throttle-100h", overrides=SMALL)
    write_maillog(again, tmp_path / "c.log")
    assert (tmp_path / "c.log").read_bytes() == (tmp_path / "a.log").read_bytes()


def test_lines_are_in_time_order_and_start_at_the_start_date(runs):
    r = runs["small"]
    options = MaillogOptions(rfc3339=True)
    stamps = [line[:32] for line in maillog_lines(r.scenario, r.policy, r.seed, r.messages, r.sessions,
                                                   r.deliveries, r.events, options)]
    assert stamps == sorted(stamps)
    assert stamps[0].startswith("2012-05-15T00:00:00")
    classic = list(maillog_lines(r.scenario, r.policy, r.seed, r.messages, r.sessions, r.deliveries, r.events))
    assert classic[0].startswith("May 15 00:00:00 mail ")


def _smtpd_sessions(r) -> int:
    """Connections an smtpd took (refused ones never reach it; abandoned ones left the accept queue)."""
    return int((~r.sessions["outcome"].isin(["refused", "abandoned"])).sum())


def test_connects_disconnects_and_queue_ids_match_the_tables(runs, logs):
    for name, r in runs.items():
        lines = logs[name]
        connects = sum(" connect from " in line for line in lines)
        disconnects = sum(" disconnect from " in line for line in lines)
        assert connects == disconnects == _smtpd_sessions(r), name
        queued = [line.split(": ")[1] for line in lines if "qmgr[" in line and "from=<" in line
                  and "from=<>" not in line and "status=expired" not in line]
        assert len(queued) == len(set(queued)) == int((r.messages["outcome"] == "accepted").sum()), name
        pids_open = {}
        for line in lines:  # each smtpd serves one session at a time
            m = re.search(r"smtpd\[(\d+)\]: (connect|disconnect) from", line)
            if m:
                pid, what = m.groups()
                assert pids_open.get(pid, False) == (what == "disconnect"), (name, line)
                pids_open[pid] = what == "connect"


def test_refusals_are_logged_at_their_stage(runs):
    for name, stage in STAGES.items():
        r = runs[name]
        refused = int(r.messages["outcome"].isin(["rejected", "deferred"]).sum())
        assert refused > 0, name
        lines = list(maillog_lines(r.scenario, r.policy, r.seed, r.messages, r.sessions))
        rejects = [line for line in lines if ": reject: " in line]
        assert len(rejects) == refused and all(f": reject: {stage} from " in line for line in rejects), name
        if name == "pipelining":
            assert all("503 5.5.0" in line and "Improper use of SMTP command pipelining" in line for line in rejects)
            assert sum("improper command pipelining after EHLO" in line for line in lines) == refused
        if name == "at-eod":
            assert sum(" data=0/1 " in line for line in lines) == refused
        if name == "at-ehlo":
            assert all("450 4.3.2" in line and "Try again later; proto=SMTP helo=<" in line for line in rejects)


def test_every_session_is_one_attempt_of_one_message(runs):
    r = runs["retries"]
    m = r.messages
    assert (m["attempts"] > 1).sum() > 50, "the run should retry a lot"
    attempts = message_sessions(m, r.sessions, r.scenario)
    rows = [row for rs in attempts for row in rs]
    assert sorted(rows) == list(range(len(r.sessions)))
    assert [len(rs) for rs in attempts] == m["attempts"].tolist()
    outcomes = r.sessions["outcome"].astype(str).to_numpy()
    assert [outcomes[rs[-1]] for rs in attempts] == m["outcome"].astype(str).tolist()
    arrivals = r.sessions["arrival_s"].to_numpy()
    assert all(list(arrivals[rs]) == sorted(arrivals[rs]) for rs in attempts)


def test_twin_runs_log_what_real_postfix_logged():
    """The counts of the kinds of line the real twin runs wrote (tests/fixtures README) follow from the
    same mechanism in the model: sleep 5 → lost connection after RCPT; 25 refused RCPTs → too many errors."""
    r5 = run(TWIN, overrides={"sleep": 5})
    lines = list(maillog_lines(r5.scenario, r5.policy, r5.seed, r5.messages, r5.sessions))
    timeouts = int((r5.messages["outcome"] == "timeout").sum())
    assert timeouts > 0
    assert sum("lost connection after RCPT" in line for line in lines) == timeouts
    refuse = run(TWIN, policy="refuse", overrides={"populations.botnet.recipients": 25})
    lines = list(maillog_lines(refuse.scenario, refuse.policy, refuse.seed, refuse.messages, refuse.sessions))
    bots = int(((refuse.messages["kind"] == "bot") & (refuse.messages["outcome"] == "deferred")).sum())
    assert bots > 0
    assert sum("too many errors after RCPT" in line for line in lines) == bots
    assert sum("rcpt=0/20 commands=3/23" in line for line in lines) == bots


def test_delay_format_is_postfix_format_tv():
    # values and their text from real lines ("delay=0.07", "delay=3.1", "delays=0.06/0.01/0/0") and format_tv.c
    assert [format_delay(x) for x in (0.07, 3.1, 0.0, 0.004, 0.06, 12.34, 0.125, 123.4)] == \
        ["0.07", "3.1", "0", "0", "0.06", "12", "0.13", "123"]


def expected_totals(r) -> dict[str, int]:
    """pflogsumm's grand totals as they follow from the run's tables (docs/maillog-writer.md)."""
    m, s = r.messages, r.sessions
    hard = r.scenario.mta.hard_error_limit
    outcome, step = m["outcome"].astype(str), m["step"].astype(str)
    n, acc = m["recipients"], m["recipients_accepted"]
    accepted = outcome.isin(["accepted", "held", "discarded"])
    got_id = accepted | step.isin(["data", "end_of_data"]) | ((step == "rcpt") & (outcome == "timeout"))
    earlier_timeouts = int((s["outcome"] == "timeout").sum()) - int((outcome == "timeout").sum())
    refused = outcome.isin(["rejected", "deferred"])
    rcpt_refusals = (refused & (step == "rcpt")) * n.clip(upper=hard)
    partial = (n - acc).clip(upper=hard - 1) * (outcome == "accepted")
    other_refusals = int((refused & ~(step == "rcpt")).sum())
    earlier = int((m["attempts"] - 1).sum())  # sessions that were not a message's last attempt
    earlier_deferrals = int((s["outcome"] == "deferred").sum()) - int((outcome == "deferred").sum())
    # An earlier deferred attempt refuses all of its message's recipients at RCPT.  Which message a
    # retry belongs to is the writer's own guess, so the sum is taken only where it does not matter:
    # every earlier attempt was a deferral.
    assert earlier_deferrals in (0, earlier), "a run with mixed failed retries: pick another for this check"
    earlier_refusals = int(((m["attempts"] - 1) * n.clip(upper=hard)).sum()) if earlier_deferrals else 0
    totals = {
        "received": int(got_id.sum()) + earlier_timeouts,
        "rejected": int(rcpt_refusals.sum() + partial.sum()) + other_refusals + earlier_refusals,
        "held": int((outcome == "held").sum()),
        "discarded": int((outcome == "discarded").sum()),
        "senders": int(m.loc[outcome == "accepted", "account"].astype(str).nunique()),
    }
    d = r.deliveries
    if d is not None:
        totals["delivered"] = int(d["delivered"].sum())
        totals["bounced"] = int(d["bounced"].sum())
        totals["deferred"] = int(((d["queued"] + d["expired"]) > 0).sum())
    else:
        totals.update(delivered=0, bounced=0, deferred=0)
    return totals


def pflogsumm_totals(path: Path) -> dict[str, int]:
    out = subprocess.run(["pflogsumm", "--problems-first", str(path)], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    totals = {}
    for key in ("received", "delivered", "deferred", "bounced", "rejected", "held", "discarded", "senders"):
        m = re.search(rf"^\s*(\d+)([km ]?)\s+{key}\b", out, re.M)
        assert m, f"pflogsumm printed no {key} total:\n{out[:2000]}"
        assert m.group(2).strip() == "", f"{key} printed in units ({m.group(0)}): use a smaller run"
        totals[key] = int(m.group(1))
    return totals


@pytest.mark.pflogsumm
@pytest.mark.skipif(shutil.which("pflogsumm") is None,
                    reason="pflogsumm is not installed (as root: make pflogsumm, or apt-get install -y pflogsumm)")
@pytest.mark.parametrize("name", ["small", "hold", "retries", "refuse", "tarpit5", *STAGES])
def test_pflogsumm_reads_the_log_with_simsubs_totals(runs, name, tmp_path):
    r = runs[name]
    write_maillog(r, tmp_path / "maillog")
    assert pflogsumm_totals(tmp_path / "maillog") == expected_totals(r)


def test_cli_writes_the_maillog_into_the_result_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", str(TWIN), "--out", str(out), "--quiet", "--maillog"]) == 0
    text = (out / "maillog").read_text()
    assert text.startswith("May 15 00:00:00 mail postfix/master[")
    r = run(TWIN)
    assert text == "".join(maillog_lines(r.scenario, r.policy, r.seed, r.messages, r.sessions))
    assert main(["run", str(TWIN), "--out", str(tmp_path / "b"), "--quiet", "--maillog", str(tmp_path / "x.gz"),
                 "--maillog-rfc3339", "--maillog-start", "2026-01-02T09:00+09:00", "--maillog-host", "smtp1"]) == 0
    first = gzip.decompress((tmp_path / "x.gz").read_bytes()).decode().splitlines()[0]
    assert first.startswith("2026-01-02T00:00:00.000000+00:00 smtp1 postfix/master[")


def test_cli_refuses_a_bad_start_date(tmp_path, capsys):
    assert main(["run", str(TWIN), "--out", str(tmp_path / "r"), "--maillog", "--maillog-start", "yesterday"]) == 2
    err = capsys.readouterr().err
    assert "--maillog-start" in err and "yesterday" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_a_failed_write_leaves_no_file(runs, tmp_path, monkeypatch):
    import simsub.report.maillog as write

    def broken(*args, **kwargs):
        yield "May 15 00:00:00 mail postfix/master[1]: daemon started\n"
        raise RuntimeError("disk gone")

    monkeypatch.setattr(write, "maillog_lines", broken)
    with pytest.raises(RuntimeError):
        write.write_maillog(runs["tarpit3"], tmp_path / "maillog.gz")
    assert list(tmp_path.iterdir()) == []


def test_the_parser_reads_back_what_was_written(runs, tmp_path):
    """Round trip through the project's parser (docs/maillog-writer.md; the schema the parser and
    the writer share): its tables have the run's sessions, queue ids, refusals, SASL failures,
    lost connections, logins and deliveries."""
    from simsub.maillog.parse import parse_maillog as parse

    for name, r in runs.items():
        write_maillog(r, tmp_path / f"{name}.log")
        parsed = parse([tmp_path / f"{name}.log"], year=2012)
        m, s = r.messages, r.sessions
        expected = expected_totals(r)
        assert len(parsed.sessions) == _smtpd_sessions(r), name
        assert len(parsed.messages) == expected["received"], name
        actions = parsed.rejects["action"].value_counts()
        assert actions.get("reject", 0) == expected["rejected"], name
        assert actions.get("hold", 0) == expected["held"], name
        assert len(parsed.auth_failures) == int((m["outcome"] == "auth_failed").sum()), name
        silent = int(((m["outcome"] == "timeout") & (m["step"] == "end_of_data")).sum())  # Postfix logs none there
        assert int((parsed.sessions["end"] == "lost").sum()) == int((s["outcome"] == "timeout").sum()) - silent, name
        accepted = m.loc[m["outcome"] == "accepted", "account"].astype(str)
        logins = parsed.messages.loc[parsed.messages["sender"] != "", "sasl_username"]
        assert sorted(logins) == sorted(accepted), name
        status = parsed.recipients["status"].value_counts()
        if r.deliveries is not None:
            assert status.get("sent", 0) == r.deliveries["delivered"].sum(), name
            assert status.get("bounced", 0) == r.deliveries["bounced"].sum(), name
