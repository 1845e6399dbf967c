"""Dead destinations, model against the real Postfix 3.7 queue manager.

A private Postfix relays ten one-recipient messages to a fake SMTP server on
loopback that answers after 2 s: a 421 or 554 banner, or 554 to every RCPT, or
to DATA.  Postfix's own log (``destination_concurrency_feedback_debug``) gives
the concurrency window after each failure; its delivery records tell the
attempts (smtp(8), relay = the server) from the recipients deferred without an
attempt ("delivery temporarily suspended", relay = none).  The model, given the same ten messages at once and a
destination that refuses at the same stage, must make the same attempts and
suspensions, and the same window sequence.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import threading
import time

import pytest

from simsub.model.destination_window import DestinationWindow
from simsub.model.queue import Kind
from simsub.postfix.instance import PrivatePostfix, unavailable_reason
from simsub.scenario import load_scenario

from .test_queue import dest, finish, inject, scenario, start_world

REASON = unavailable_reason()
pytestmark = [pytest.mark.postfix, pytest.mark.skipif(REASON is not None, reason=str(REASON))]

ANSWER_AFTER = 2.0  # s: every message reaches the active queue before the first refusal
MESSAGES = 10


class RefusingServer:
    """An SMTP server on 127.0.0.1 that refuses at one stage after ``ANSWER_AFTER``."""

    def __init__(self, mode: str):
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(100)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self) -> None:
        self.sock.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        stream = conn.makefile("rwb")

        def send(line: str) -> None:
            stream.write(line.encode() + b"\r\n")
            stream.flush()

        try:
            time.sleep(ANSWER_AFTER)
            if self.mode.startswith("greeting"):
                send(f"{self.mode[-3:]} 4.7.0 listed" if self.mode.endswith("421") else "554 5.7.1 listed")
                return
            send("220 refusing.invalid ESMTP")
            while line := stream.readline().decode().strip().upper():
                if line.startswith("RCPT"):
                    send("554 5.7.1 listed" if self.mode == "rcpt" else "250 ok")
                elif line.startswith("DATA"):
                    send("554 5.7.1 listed")
                elif line.startswith("QUIT"):
                    send("221 bye")
                    return
                else:
                    send("250 ok")
        except OSError:
            pass
        finally:
            conn.close()


class RelayingPostfix(PrivatePostfix):
    """The private instance, relaying everything with smtp(8) to ``relay_port``."""

    def __init__(self, relay_port: int, **settings):
        super().__init__(load_scenario(None, {}), "none")
        self.settings = {"default_transport": "smtp", "relay_transport": "smtp",
                         "relayhost": f"[127.0.0.1]:{relay_port}",
                         "destination_concurrency_feedback_debug": "yes", **settings}

    def _write_configuration(self) -> None:
        super()._write_configuration()
        etc = self.config_dir
        subprocess.run(["postconf", "-c", str(etc), "-e", *[f"{k}={v}" for k, v in self.settings.items()]],
                       check=True, capture_output=True)
        with open(etc / "master.cf", "a") as master:
            master.write("smtp      unix  -       -       n       -       -       smtp\n")
        past = time.time() - 60  # as the base class does: older than the start
        for path in etc.rglob("*"):
            os.utime(path, (past, past))

    def send(self, recipient: str) -> None:
        subprocess.run(["sendmail", "-C", str(self.config_dir), "-f", "sender@example.org", recipient],
                       input=b"Subject: probe\n\nprobe\n", check=True)


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for Postfix")
        time.sleep(0.2)


def probe_postfix(mode: str) -> dict:
    """Ten messages at once to a server refusing at ``mode``: what Postfix did."""
    server = RefusingServer(mode)
    try:
        with RelayingPostfix(server.port) as pf:
            for i in range(MESSAGES):
                pf.send(f"user{i}@dest.invalid")

            def outcomes():
                return re.findall(r"to=<user\d+@dest\.invalid>, relay=(\S+), .*status=(\w+) "
                                  r"\((delivery temporarily suspended)?", pf.log_text())

            wait_for(lambda: len(outcomes()) == MESSAGES)
            log = pf.log_text()
            windows = [int(w) for w in re.findall(r"qmgr_queue_throttle: queue \S+: limit \d+ window (\d+)", log)]
            found = outcomes()
            # An attempt is a delivery by smtp(8) (relay=the server); the suspended ones are
            # deferred by the retry agent (relay=none).  Connections are not counted: smtp(8)
            # reuses a connection after a refused RCPT or DATA.
            return {"attempts": sum(1 for relay, _, _ in found if relay != "none"),
                    "suspended": sum(1 for _, _, suspended in found if suspended),
                    "bounced": sum(1 for _, status, _ in found if status == "bounced"),
                    "windows": windows}
    finally:
        server.close()


class RecordingWindow(DestinationWindow):
    """The window after each negative feedback, as Postfix's debug log shows it."""

    def __init__(self, *args):
        super().__init__(*args)
        self.after_throttle: list[int] = []

    def throttle(self) -> bool:
        died = super().throttle()
        self.after_throttle.append(self.window)
        return died


def run_model(stage: str, action: str) -> dict:
    """The model's answer to the same probe (delivery time = the server's 2 s)."""
    reputation = {"bl": {"threshold": 1000, "window": "1m", "expiry": "10d", "action": action, "stage": stage}}
    w = start_world(scenario(destinations={"d": dest(lists=["bl"], delivery_time=f"{ANSWER_AFTER}s")},
                             reputation=reputation))
    w.queue.reputation.lists["bl"].listed = True
    config = w.scenario.queue
    recording = w.queue.windows[0] = RecordingWindow(config.initial_concurrency, config.destination_concurrency,
                                                     config.failed_cohort_limit)
    for i in range(1, MESSAGES + 1):
        inject(w, 0, i, Kind.LEGIT, {0: 1})
    w.env.run(until=100)
    d = finish(w)
    legit = d[d["kind"] == "legit"]
    # bounces of legitimate mail go to local mailboxes in the model: not attempts at "d"
    return {"attempts": w.queue.attempts - w.queue.bounces, "suspended": w.queue.suspended_recipients,
            "bounced": int(legit["bounced"].sum()), "windows": recording.after_throttle}


@pytest.mark.parametrize("mode, stage, action", [
    ("greeting421", "greeting", "defer"),
    ("greeting554", "greeting", "reject"),  # smtp_skip_5xx_greeting = yes: as a 421
    ("rcpt", "rcpt", "reject"),
    ("data", "data", "reject"),
])
def test_the_model_suspends_a_refusing_destination_as_postfix_does(mode, stage, action):
    real = probe_postfix(mode)
    model = run_model(stage, action)
    assert real == model
    if stage == "greeting":
        assert real == {"attempts": 5, "suspended": 5, "bounced": 0, "windows": [3, 2, 0]}
    else:
        assert real == {"attempts": MESSAGES, "suspended": 0, "bounced": MESSAGES, "windows": []}


def test_a_dead_destination_is_tried_again_minimal_backoff_time_after_it_died():
    """minimal_backoff_time 10 s (the deferred-queue scan kept at 300 s, so the
    ten first messages stay out of the way).  A message sent 6 s after the
    destination died is suspended; one sent 12 s after is attempted (and,
    refused again, dies nowhere: it is alone)."""
    server = RefusingServer("greeting421")
    try:
        with RelayingPostfix(server.port, minimal_backoff_time="10s", maximal_backoff_time="20s",
                             queue_run_delay="300s") as pf:
            for i in range(MESSAGES):
                pf.send(f"user{i}@dest.invalid")
            wait_for(lambda: " window 0 " in pf.log_text())
            died = time.monotonic()
            time.sleep(6)
            pf.send("early@dest.invalid")
            time.sleep(max(0.0, died + 12 - time.monotonic()))
            pf.send("late@dest.invalid")

            def record(user):
                found = re.findall(rf"to=<{user}@dest\.invalid>, relay=(\S+), .*status=deferred", pf.log_text())
                return found[0] if found else None

            wait_for(lambda: record("early") and record("late"))
            assert record("early") == "none"  # the retry agent: suspended, no attempt
            assert record("late").startswith("127.0.0.1")  # smtp(8) tried the server
    finally:
        server.close()

    # the model, same times: dead at 2 s, revived at 12 s
    reputation = {"bl": {"threshold": 1000, "window": "1m", "expiry": "10d", "action": "defer", "stage": "greeting"}}
    w = start_world(scenario(destinations={"d": dest(lists=["bl"], delivery_time=f"{ANSWER_AFTER}s")},
                             reputation=reputation, queue={"minimal_backoff": "10s", "maximal_backoff": "20s"}))
    w.queue.reputation.lists["bl"].listed = True
    for i in range(1, MESSAGES + 1):
        inject(w, 0, i, Kind.LEGIT, {0: 1})
    inject(w, 8, 11, Kind.LEGIT, {0: 1})
    inject(w, 14, 12, Kind.LEGIT, {0: 1})
    w.env.run(until=8.5)
    assert w.queue.suspended_recipients == 5 + 1
    w.env.run(until=14.5)
    assert (w.queue.attempts, w.queue.suspended_recipients) == (5 + 1, 5 + 1)
