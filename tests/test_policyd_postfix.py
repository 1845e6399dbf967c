"""simsub policyd behind a real Postfix: the exported configuration asks the daemon, and
the messages Postfix accepts and defers are the ones the model's services decide.

Needs root and Debian's postfix and postfix-pcre (skipped with the reason otherwise)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from simsub.workload.clients import Client
from simsub.model.outcomes import Outcome
from simsub.policyd.adapter import Origins
from simsub.policyd.server import Config, PolicyServer
from simsub.policyd.thread import ServerThread
from simsub.postfix.instance import PrivatePostfix, unavailable_reason
from simsub.twin.smtp import SmtpTarget, play_session

from .policyd_support import Message, play_model, scenario

REASON = unavailable_reason()
pytestmark = [pytest.mark.postfix, pytest.mark.skipif(REASON is not None, reason=str(REASON))]

#: Two services, so Postfix must tell them apart by policy_context: a spread detector and
#: a per-login message limit.  Windows far longer than the test: outcomes do not depend on
#: the milliseconds Postfix takes.
POLICY = {
    "recipient_restrictions": ["check_policy_service spread", "check_policy_service msgs",
                               "permit_sasl_authenticated", "reject"],
    "services": {
        "spread": {"type": "distinct", "distinct": "client_address", "limit": 2, "window": "1h",
                   "action": "DEFER"},
        "msgs": {"type": "ratelimit", "key": "sasl_username", "count": "messages", "limit": 3,
                 "window": "10000d", "algorithm": "fixed", "action": "DEFER"},
    },
}

#: (login, client address, recipients) in the order the sessions are played, one at a time.
SEQUENCE = ([("alice", "192.0.2.1", 2)] * 5
            + [("bob", "192.0.2.11", 1), ("bob", "192.0.2.12", 1), ("bob", "192.0.2.13", 1), ("bob", "192.0.2.11", 1)]
            + [("carol", "192.0.2.21", 3)] * 2
            + [("alice", "192.0.2.2", 1)])


def _client(address: str) -> Client:
    return Client(population=0, number=0, origin=0, hostname="unknown", address=address, mynetworks=False,
                  half_rtt=0.0, patience=30.0, connect_timeout=10.0, talks=False)


def _play(port: int) -> list[Outcome]:
    async def play():
        loop = asyncio.get_running_loop()
        start = loop.time()
        target = SmtpTarget("127.0.0.1", port, lambda: loop.time() - start)
        outcomes = []
        for number, (login, address, recipients) in enumerate(SEQUENCE):
            result = await play_session(target, _client(address), login, number, recipients, True)
            outcomes.append(result.outcome)
        await target.close_all()
        return outcomes
    return asyncio.run(play())


def test_postfix_accepts_and_defers_exactly_what_the_models_services_decide(caplog):
    caplog.set_level(logging.INFO, logger="simsub.policyd")
    scn = scenario(throttles=POLICY)
    messages = [Message(1_000.0 + i, login, address, n) for i, (login, address, n) in enumerate(SEQUENCE)]
    expected = ["accepted" if all(w == "DUNNO" for w in o.rcpts) and o.data == "DUNNO" else "deferred"
                for o in play_model(scn, "throttles", messages)]

    server = PolicyServer(Config(listen="127.0.0.1:0"), lambda: (scn.policies["throttles"], Origins.of_scenario(scn)))
    with ServerThread(server) as daemon:
        with PrivatePostfix(scn, "throttles", process_limit=5, policy_endpoint=f"inet:{daemon.address}") as postfix:
            outcomes = _play(postfix.port)
            log = postfix.log_text()
    got = [{Outcome.ACCEPTED: "accepted", Outcome.DEFERRED: "deferred"}.get(o, o.name) for o in outcomes]
    assert got == expected, log[-3000:]
    assert expected.count("accepted") == 7 and expected.count("deferred") == 5  # both kinds happen
    assert "Server configuration problem" not in log
    # smtpd is the policy client: any trouble talking to the daemon is an smtpd warning. Other
    # programs' warnings are the host's business (cleanup warns when the file system clock runs
    # ahead of the local clock, which failed this test once on a shared machine).
    smtpd_warnings = [line for line in log.splitlines() if "/smtpd[" in line and "warning:" in line]
    assert smtpd_warnings == []
    assert log.count("Recipient address rejected: msgs: over 3 messages") >= 3  # Postfix sent the daemon's text
    decisions = [r.getMessage() for r in caplog.records if "event=decision " in r.getMessage()]
    assert sum("service=spread" in d for d in decisions) == 2  # bob's 3rd and 4th messages (1 RCPT each)
