"""anvil's per-client limits on a real Postfix 3.7: replies, what counts, and the window.

One private instance with a listener per limit (anvil_rate_time_unit = 3 s);
each probe is one or a few raw sessions.  What they establish is what
simsub/model/anvil.py does (docs/model.md, "anvil").  About 12 s with the
instance's start: the window probe waits for one window to end.
"""

from __future__ import annotations

import itertools
import math
import threading
import time

import pytest

from simsub.model.anvil import Anvil
from simsub.postfix.instance import PrivatePostfix, unavailable_reason
from simsub.postfix.probe import Pause, Reply, Send, probe
from simsub.scenario.types import AnvilLimits

from .conftest import make_scenario

REASON = unavailable_reason()
pytestmark = [pytest.mark.postfix, pytest.mark.skipif(REASON is not None, reason=str(REASON))]

UNIT = 3  # s, anvil_rate_time_unit of the instance
#: listener -> master.cf -o settings.  Exceptions are emptied and XCLIENT is not allowed
#: (xclient-authorized hosts are never counted), so 127.0.0.1 is counted like any client,
#: except on "xclient", which counts the address XCLIENT sets.
LISTENERS = {
    "count": "smtpd_client_connection_count_limit=2",
    "rate": "smtpd_client_connection_rate_limit=2",
    "mail": "smtpd_client_message_rate_limit=2",
    "rcpt": "smtpd_client_recipient_rate_limit=3",
    "auth": "smtpd_client_auth_rate_limit=2",
    "xclient": "smtpd_client_connection_count_limit=1",
}
EHLO, QUIT = [Reply(), Send("EHLO probe"), Reply()], [Send("QUIT"), Reply()]


@pytest.fixture(scope="module")
def postfix():
    users = [{"name": "users", "kind": "user", "count": 1, "origins": {"own": 1.0}, "messages_per_day": 1}]
    scenario = make_scenario(users, origins={"own": {"hostname": "p{n}.example.jp", "rtt": "10ms",
                                                     "mynetworks": True, "network": "127.0.0.0/8"}})
    extra = ""
    for name, setting in LISTENERS.items():
        xclient = "" if name == "xclient" else "  -o smtpd_authorized_xclient_hosts=\n  -o smtpd_client_event_limit_exceptions=\n"
        extra += (f"127.0.0.1:{{port}} inet n - n - 10 smtpd\n  -o syslog_name=postfix/{name}\n{xclient}"
                  f"  -o {setting}\n  -o smtpd_sasl_auth_enable=yes\n")
    with PrivatePostfix(scenario, "none", process_limit=2, master_cf_extra=extra,
                        main_cf_extra=f"\nanvil_rate_time_unit = {UNIT}s\n") as instance:
        yield instance, dict(zip(LISTENERS, instance.extra_ports))


def test_connection_over_the_count_gets_421_at_once_and_is_counted_while_open(postfix):
    _, ports = postfix
    held = []
    holders = [threading.Thread(target=lambda: held.append(probe(ports["count"], [Reply(), Pause(1.0)] + QUIT)))
               for _ in range(2)]
    for thread in holders:
        thread.start()
    time.sleep(0.3)
    third = probe(ports["count"], [Reply()] + QUIT)
    for thread in holders:
        thread.join()
    assert [r.codes()[0] for r in held] == [220, 220]
    assert third.codes() == [421] and "Error: too many connections from 127.0.0.1" in third.replies[0].text
    assert third.replies[0].at < 0.5 and third.closed_at is not None  # no banner, connection closed
    assert probe(ports["count"], [Reply()] + QUIT).codes() == [220, 221]  # the holders are gone


def test_message_recipient_and_auth_rates_refuse_with_450_and_count_refused_commands(postfix):
    instance, ports = postfix
    mail = probe(ports["mail"], EHLO + [Send("MAIL FROM:<a@example.org>"), Reply(), Send("RSET"), Reply()] * 3 + QUIT)
    assert mail.codes() == [220, 250, 250, 250, 250, 250, 450, 250, 221]
    assert mail.replies[6].text.endswith("Error: too much mail from 127.0.0.1")
    rcpt = probe(ports["rcpt"], EHLO + [Send("MAIL FROM:<a@example.org>"), Reply()]
                 + [step for i in range(5) for step in (Send(f"RCPT TO:<r{i}@example.net>"), Reply())] + QUIT)
    assert rcpt.codes() == [220, 250, 250, 250, 250, 250, 450, 450, 221]
    assert rcpt.replies[6].text.endswith("Error: too many recipients from 127.0.0.1")
    auth = probe(ports["auth"], EHLO + [Send("AUTH PLAIN AGFsaWNlAHNlY3JldA=="), Reply()] * 4 + QUIT)
    assert auth.codes() == [220, 250, 535, 535, 450, 450, 221]  # no password database: 535 below the limit
    assert auth.replies[4].text.endswith("Error: too many AUTH commands from 127.0.0.1")
    log = instance.log_text()
    # anvil counted the refused ones too: the 4th and 5th recipient were the 4th and 5th
    assert "Recipient address rate limit exceeded: 5 from" in log
    assert "AUTH command rate limit exceeded: 4 from" in log


def test_xclient_address_is_what_anvil_counts(postfix):
    _, ports = postfix
    x = "XCLIENT NAME=bot.example ADDR=192.0.2.7"
    holder = threading.Thread(target=probe, args=(ports["xclient"], [Reply(), Send(x), Reply(), Pause(1.0)] + QUIT))
    holder.start()
    time.sleep(0.3)
    same = probe(ports["xclient"], [Reply(), Send(x), Reply()] + QUIT)
    other = probe(ports["xclient"], [Reply(), Send("XCLIENT ADDR=192.0.2.8"), Reply()] + QUIT)
    loopback = probe(ports["xclient"], [Reply()] + QUIT)  # xclient-authorized: never counted
    holder.join()
    assert same.codes()[:2] == [220, 421] and "too many connections from 192.0.2.7" in same.replies[1].text
    assert other.codes() == [220, 220, 221]
    assert loopback.codes() == [220, 221]


def test_rate_window_starts_at_the_first_connection_and_ends_on_whole_seconds(postfix):
    """Connections every 0.25 s for 2 windows; the model's Anvil, fed the same wall-clock
    times, must refuse exactly the same ones."""
    _, ports = postfix
    spans, codes = [], []
    time.sleep(1.1 - time.time() % 1)  # the first connection, which opens the window, well inside a second
    deadline = time.time() + 2 * (UNIT + 1) + 0.5
    while time.time() < deadline:
        before = time.time()
        codes.append(probe(ports["rate"], [Reply()] + QUIT, linger=0.05).codes()[0])
        spans.append((before, time.time()))  # anvil counted the connection in between
        time.sleep(0.25)
    # anvil stamps a connection with the whole second in which it counted it, somewhere inside the
    # probe's span; the model floors its time the same way.  A span inside one second leaves one
    # candidate second, one that crosses a second boundary (a slow probe on a loaded machine) leaves
    # each second it touches.  The model must give exactly the codes Postfix gave for at least one
    # choice of those seconds: an unsure stamp also moves the window that later verdicts depend on,
    # so every combination is played, not only the connections whose own stamp is known.
    candidates = [range(math.floor(before), math.floor(after) + 1) for before, after in spans]
    combinations = math.prod(len(c) for c in candidates)
    assert combinations <= 1 << 16, f"{combinations} possible stamp sequences: the probes were too slow to judge"
    played = []
    for seconds in itertools.product(*candidates):
        model = Anvil(AnvilLimits(connection_count_limit=0, connection_rate_limit=2, rate_time_unit=UNIT))
        predicted = [421 if model.connect("127.0.0.1", float(s))[1] else 220 for s in seconds]
        if predicted == codes:
            break
        played.append(predicted)
    else:
        raise AssertionError(f"no stamp sequence gives Postfix's codes {codes} (spans {spans}); the model gave "
                             f"{played[:4]}")
    assert codes.count(220) >= 3 and codes.count(421) >= 3, codes
    assert math.floor(spans[-1][0]) - math.floor(spans[0][0]) > UNIT + 1  # two windows
