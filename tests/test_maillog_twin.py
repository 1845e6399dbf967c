"""The maillog the real Postfix writes during ``simsub twin`` parses into what the twin played.

Needs root and Postfix (skipped with the reason otherwise); plays 15 s in real
time, so it is marked slow.  The twin's own record of the run (TwinResult.real,
from its SMTP clients and its socket monitor) is compared with the parsed log:
counts exactly, session start times within the log's 1 s resolution.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from simsub.maillog.parse import parse_maillog
from simsub.model.outcomes import Outcome
from simsub.postfix.instance import unavailable_reason
from simsub.scenario import load_scenario
from simsub.twin.run import run_twin

REPO = Path(__file__).resolve().parents[1]
REASON = unavailable_reason()

pytestmark = [pytest.mark.postfix, pytest.mark.slow, pytest.mark.skipif(REASON is not None, reason=str(REASON))]

#: Postfix's maillog_file stamps whole seconds.
RESOLUTION_S = 1.0
#: From an smtpd taking a connection (what the socket monitor sees, every 3 ms) to its
#: "connect from" line being stamped: a process wake-up and a write to postlogd, on a shared machine.
LOGGING_LATENCY_S = 0.1


def test_parsed_twin_maillog_has_exactly_the_sessions_messages_and_recipients_played(tmp_path):
    scenario = load_scenario(REPO / "scenarios" / "twin-impatient.toml", {"sleep": 5})
    result = run_twin(scenario, "tarpit", duration=15.0)
    log = tmp_path / "maillog"
    log.write_text(result.maillog)
    parsed = parse_maillog(log)
    sessions, messages = parsed.sessions, parsed.messages
    real = result.real

    # sessions: every played session logged in with XCLIENT, which replaced the loopback address;
    # the two others are the instance's readiness check and the reply-time probe
    played = sessions[sessions.client_address != "127.0.0.1"]
    assert len(played) == len(real.sessions["arrival_s"])
    assert len(sessions) - len(played) == 2
    assert parsed.stats["sessions_unfinished"] == 0
    outcomes = np.array(real.sessions["outcome"])
    assert (played.end == "lost").sum() == (outcomes == Outcome.TIMEOUT).sum() > 0  # the bots hung up

    # messages: the accepted ones reached qmgr; per account as the clients logged in
    accepted = np.array(real.messages["outcome"]) == Outcome.ACCEPTED
    queued = messages[messages.nrcpt >= 0]
    assert len(queued) == accepted.sum() > 0
    accounts = [real.accounts[a] for a, ok in zip(real.messages["account"], accepted) if ok]
    assert Counter(queued.sasl_username) == Counter(accounts)

    # recipients: one delivery line per accepted recipient of an accepted message
    recipients = int(np.array(real.messages["recipients_accepted"])[accepted].sum())
    assert len(parsed.recipients) == queued.nrcpt.sum() == recipients

    # times: the smtpd took each connection at arrival + wait for a free smtpd; the log says
    # when to the second, so logged minus played may vary by the resolution and the latency only
    took = np.sort(np.array(real.sessions["arrival_s"]) + np.array(real.sessions["slot_wait_s"]))
    logged = np.sort(played.connect_s.to_numpy())
    offset = logged - took
    assert offset.max() - offset.min() <= RESOLUTION_S + LOGGING_LATENCY_S
