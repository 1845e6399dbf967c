"""When Postfix 3.7 sees improper pipelining: one raw session per stage and timing.

`reject_unauth_pipelining` only tests a flag that smtpd sets when it takes the
connection (input before the banner) and when it reads EHLO or DATA (input
behind the command).  These probes send at controlled moments against one
private instance with a listener per configuration; docs/model.md has the
table they establish and the model follows.  Every probe sleeps at most 1 s on
the server; listeners are probed concurrently, so the module takes the
instance's start plus about 5 s.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from simsub.postfix.instance import PrivatePostfix, unavailable_reason
from simsub.postfix.probe import Pause, Reply, Send, probe

from .conftest import make_scenario

REASON = unavailable_reason()
pytestmark = [pytest.mark.postfix, pytest.mark.skipif(REASON is not None, reason=str(REASON))]

SLEEP = 1.0  # s, the `sleep 1` of every listener
EARLY = 0.5  # s into that sleep at which a probe sends early: half a sleep of margin either way

#: listener -> (smtpd_delay_reject, restrictions (master.cf -o { } groups), maxproc)
LISTENERS = {
    "pre": ("no", ["smtpd_client_restrictions = sleep 1, reject_unauth_pipelining"], 5),
    "pre-queued": ("no", ["smtpd_client_restrictions = sleep 1, reject_unauth_pipelining"], 1),
    "client-at-rcpt": ("yes", ["smtpd_client_restrictions = sleep 1, reject_unauth_pipelining"], 5),
    "helo": ("no", ["smtpd_helo_restrictions = sleep 1, reject_unauth_pipelining"], 5),
    "mail": ("no", ["smtpd_sender_restrictions = sleep 1, reject_unauth_pipelining"], 5),
    "rcpt": ("no", ["smtpd_recipient_restrictions = sleep 1, reject_unauth_pipelining"], 5),
    "data": ("no", ["smtpd_data_restrictions = sleep 1, reject_unauth_pipelining"], 5),
    "data-check-first": ("no", ["smtpd_data_restrictions = reject_unauth_pipelining, sleep 1"], 5),
    "rcpt-sleep-data-check": ("no", ["smtpd_recipient_restrictions = sleep 1",
                                     "smtpd_data_restrictions = reject_unauth_pipelining"], 5),
    "end-of-data": ("no", ["smtpd_end_of_data_restrictions = reject_unauth_pipelining"], 5),
}

MESSAGE = "Subject: probe\n\nA probe.\n."
EHLO, MAIL, RCPT, DATA = Send("EHLO probe"), Send("MAIL FROM:<a@example.org>"), Send("RCPT TO:<r@example.net>"), Send("DATA")
QUIT = [Send("QUIT"), Reply()]
ENVELOPE = [Reply(), EHLO, Reply(), MAIL, Reply(), RCPT, Reply()]
POLITE = ENVELOPE + [DATA, Reply(), Send(MESSAGE), Reply()] + QUIT

#: (listener, script, expected reply codes, (index of the deciding reply, its earliest and
#: latest arrival in s since the connection)).  Bounds come from the sleep: a reply that
#: waited for it comes at >= SLEEP, one that did not before SLEEP.  A listener's cases run
#: one after the other in this order (the first, polite, leaves an idle smtpd waiting for
#: the next connection, so that smtpd takes it at once); listeners run concurrently.
CASES = {
    "pre/polite": ("pre", POLITE, [220, 250, 250, 250, 354, 250, 221], (0, SLEEP, None)),
    "pre/ehlo-during-sleep": ("pre", [Pause(EARLY), EHLO, Reply(), Reply()] + QUIT, [220, 250, 221], (0, SLEEP, None)),
    "pre/two-commands-during-sleep": ("pre", [Pause(EARLY), EHLO, Pause(0.2), Send("NOOP"), Reply(), Reply(), Reply()] + QUIT,
                                      [220, 250, 250, 221], (0, SLEEP, None)),
    # Sent while the connection waits in the accept queue (the only smtpd is busy): there
    # when smtpd takes the connection, so flagged before the sleep and rejected after it.
    "pre-queued/ehlo-before-smtpd-took-the-connection": (
        # The 503 comes after the rest of the blocker's sleep and the probe's own.
        "pre-queued", [Pause(0.2), EHLO, Reply(), Reply()] + QUIT, [503, 503, 221], (0, 1.5 * SLEEP, None)),
    "client-at-rcpt/ehlo-and-mail-in-one-packet": (
        "client-at-rcpt", [Reply(), Send("EHLO probe\nMAIL FROM:<a@example.org>"), Reply(), Reply(), RCPT, Reply()] + QUIT,
        [220, 250, 250, 503, 221], (3, SLEEP, None)),
    "client-at-rcpt/polite": ("client-at-rcpt", POLITE, [220, 250, 250, 250, 354, 250, 221], (3, SLEEP, None)),
    "helo/mail-during-sleep": ("helo", [Reply(), EHLO, Pause(EARLY), MAIL, Reply(), Reply()] + QUIT,
                               [220, 250, 250, 221], (1, SLEEP, None)),
    "helo/ehlo-and-mail-in-one-packet": ("helo", [Reply(), Send("EHLO probe\nMAIL FROM:<a@example.org>"), Reply(), Reply()] + QUIT,
                                         [220, 503, 250, 221], (1, SLEEP, None)),
    "mail/rcpt-during-sleep": ("mail", [Reply(), EHLO, Reply(), MAIL, Pause(EARLY), RCPT, Reply(), Reply()] + QUIT,
                               [220, 250, 250, 250, 221], (2, SLEEP, None)),
    "mail/ehlo-and-mail-in-one-packet": ("mail", [Reply(), Send("EHLO probe\nMAIL FROM:<a@example.org>"), Reply(), Reply()] + QUIT,
                                         [220, 250, 503, 221], (2, SLEEP, None)),
    "rcpt/data-during-sleep": ("rcpt", [Reply(), EHLO, Reply(), MAIL, Reply(), RCPT, Pause(EARLY), DATA, Reply(), Reply(),
                                        Send(MESSAGE), Reply()] + QUIT, [220, 250, 250, 250, 354, 250, 221], (3, SLEEP, None)),
    "rcpt/ehlo-and-mail-in-one-packet": ("rcpt", [Reply(), Send("EHLO probe\nMAIL FROM:<a@example.org>"), Reply(), Reply(),
                                                  RCPT, Reply()] + QUIT, [220, 250, 250, 503, 221], (3, SLEEP, None)),
    "data/message-during-sleep": ("data", ENVELOPE + [DATA, Pause(EARLY), Send(MESSAGE), Reply(), Reply()] + QUIT,
                                  [220, 250, 250, 250, 354, 250, 221], (4, SLEEP, None)),
    "data/data-and-message-in-one-packet": ("data", ENVELOPE + [Send("DATA\n" + MESSAGE), Reply(), Reply()] + QUIT,
                                            [220, 250, 250, 250, 503, 221], (4, SLEEP, None)),
    "data-check-first/message-during-sleep": ("data-check-first", ENVELOPE + [DATA, Pause(EARLY), Send(MESSAGE), Reply(), Reply()] + QUIT,
                                              [220, 250, 250, 250, 354, 250, 221], (4, SLEEP, None)),
    "data-check-first/data-and-message-in-one-packet": (
        "data-check-first", ENVELOPE + [Send("DATA\n" + MESSAGE), Reply(), Reply()] + QUIT,
        [220, 250, 250, 250, 503, 221], (4, None, SLEEP)),
    # DATA and the message both sent during the RCPT's sleep (at a quarter and half of it):
    # both there when smtpd reads DATA.
    "rcpt-sleep-data-check/data-and-message-during-rcpt-sleep": (
        "rcpt-sleep-data-check", [Reply(), EHLO, Reply(), MAIL, Reply(), RCPT, Pause(EARLY / 2), DATA, Pause(EARLY / 2),
                                  Send(MESSAGE), Reply(), Reply(), Reply()] + QUIT, [220, 250, 250, 250, 503, 221], (4, SLEEP, None)),
    "rcpt-sleep-data-check/data-during-rcpt-sleep": (
        "rcpt-sleep-data-check", [Reply(), EHLO, Reply(), MAIL, Reply(), RCPT, Pause(EARLY), DATA, Reply(), Reply(),
                                  Send(MESSAGE), Reply()] + QUIT, [220, 250, 250, 250, 354, 250, 221], (4, SLEEP, None)),
    "end-of-data/data-and-message-in-one-packet": ("end-of-data", ENVELOPE + [Send("DATA\n" + MESSAGE), Reply(), Reply()] + QUIT,
                                                   [220, 250, 250, 250, 354, 503, 221], (5, None, SLEEP)),
    "end-of-data/polite": ("end-of-data", POLITE, [220, 250, 250, 250, 354, 250, 221], (5, None, SLEEP)),
}


def _extra_master_cf() -> str:
    entries = []
    for name, (delay_reject, groups, maxproc) in LISTENERS.items():
        entries.append(f"127.0.0.1:{{port}} inet n - n - {maxproc} smtpd\n  -o syslog_name=postfix/{name}\n"
                       f"  -o smtpd_delay_reject={delay_reject}\n" + "".join(f"  -o {{ {g} }}\n" for g in groups))
    return "".join(entries)


@pytest.fixture(scope="module")
def probed():
    """Every case's probe result (run concurrently) and the instance's log."""
    users = [{"name": "users", "kind": "user", "count": 1, "origins": {"own": 1.0}, "messages_per_day": 1}]
    # 127.0.0.0/8 in mynetworks: the default relay restrictions let the probes' RCPT through.
    scenario = make_scenario(users, origins={"own": {"hostname": "p{n}.example.jp", "rtt": "10ms",
                                                     "mynetworks": True, "network": "127.0.0.0/8"}})
    with PrivatePostfix(scenario, "none", process_limit=2, master_cf_extra=_extra_master_cf()) as instance:
        ports = dict(zip(LISTENERS, instance.extra_ports))
        results = {}

        def run(listener):
            if listener == "pre-queued":  # hold its only smtpd for its 1 s sleep, then probe
                blocker = threading.Thread(target=probe, args=(ports[listener], [Reply()] + QUIT), kwargs={"linger": 0.0})
                blocker.start()
                time.sleep(0.1)  # the blocker's connection is taken first
            for case, (where, script, *_) in CASES.items():
                if where == listener:
                    results[case] = probe(ports[listener], script)
            if listener == "pre-queued":
                blocker.join()

        with ThreadPoolExecutor(max_workers=len(LISTENERS)) as pool:
            list(pool.map(run, LISTENERS))
        log = instance.log_text()
    return results, log


@pytest.mark.parametrize("case", list(CASES))
def test_postfix_flags_pipelining_only_where_it_reads(probed, case):
    results, log = probed
    _, _, codes, (index, earliest, latest) = CASES[case]
    result = results[case]
    assert result.codes() == codes, "\n".join(r.text for r in result.replies)
    at = result.replies[index].at
    if earliest is not None:
        assert at >= earliest, (case, at)
    if latest is not None:
        assert at < latest, (case, at)


def test_postfix_logs_where_it_flagged(probed):
    """The log names the moment smtpd looked: CONNECT (before the banner), EHLO or DATA."""
    _, log = probed
    flagged = {line.split("improper command pipelining after ")[1].split(" ")[0]
               for line in log.splitlines() if "improper command pipelining after" in line}
    assert flagged == {"CONNECT", "EHLO", "DATA"}


@pytest.mark.slow
@pytest.mark.parametrize("policy, bots_through", [("data-sleep", True), ("rcpt-sleep", False)])
def test_twin_agrees_on_talkers_against_reject_unauth_pipelining(policy, bots_through):
    """scenarios/twin-pipelining.toml: talkers pass a check after a sleep at DATA (their message
    arrives after smtpd read DATA) and are caught after per-RCPT sleeps (it is there before)."""
    from simsub.scenario import load_scenario
    from simsub.twin.run import run_twin

    scenario = load_scenario(Path(__file__).resolve().parents[1] / "scenarios" / "twin-pipelining.toml")
    result = run_twin(scenario, policy)
    disagree = [f"{r['metric']}: postfix {r['postfix']} model {r['model']}" for r in result.rows if not r["agrees"]]
    assert not disagree, disagree
    bots = sum(p.count for p in result.scenario.populations if p.is_bot)  # one message each
    flagged = result.maillog.count("improper command pipelining after DATA")
    if bots_through:
        assert result.real_metrics["spam_accepted"] == bots and flagged == 0
    else:
        assert result.real_metrics["spam_accepted"] == 0 and flagged == bots


@pytest.mark.slow
@pytest.mark.parametrize("policy, talkers_through", [("pregreet-1s", True), ("pregreet-ehlo", False)])
def test_twin_agrees_on_pre_banner_policies(policy, talkers_through):
    """scenarios/twin-pregreet.toml: XCLIENT reruns the pre-banner restrictions for the played
    client; may-2012's pregreet-1s lets talkers through, a check at EHLO after 4 s does not."""
    from simsub.scenario import load_scenario
    from simsub.twin.run import run_twin

    scenario = load_scenario(Path(__file__).resolve().parents[1] / "scenarios" / "twin-pregreet.toml")
    result = run_twin(scenario, policy)
    disagree = [f"{r['metric']}: postfix {r['postfix']} model {r['model']}" for r in result.rows if not r["agrees"]]
    assert not disagree, disagree
    talkers = next(p.count for p in result.scenario.populations if p.name == "talkers")  # one message each
    flagged = result.maillog.count("improper command pipelining after EHLO")
    assert result.real_metrics["bot_sessions_aborted"] > 0  # the hangers hung up during the sleep
    if talkers_through:
        assert result.real_metrics["spam_accepted"] == talkers and flagged == 0
    else:
        assert result.real_metrics["spam_accepted"] == 0 and flagged == talkers
