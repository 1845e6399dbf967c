"""The ``postfwd`` counter against Debian's postfwd 1.35 on the same request stream.

postfwd reads policy requests from standard input with ``--nodaemon`` and
answers each with an ``action=`` line.  All requests of a stream arrive within
a second, so this compares the counting (units, refusals, keys, a first request
above the limit), not the window timing, which the exact-timing tests in
test_limiters.py cover from postfwd's source.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest

from simsub.policy.ratelimit import PostfwdRate

POSTFWD = shutil.which("postfwd1") or ("/usr/sbin/postfwd1" if Path("/usr/sbin/postfwd1").exists() else None)
pytestmark = [pytest.mark.postfwd,
              pytest.mark.skipif(POSTFWD is None, reason="needs Debian's postfwd (apt-get install postfwd; make tools)")]


def request(state: str, user: str, recipients: int, n: int) -> str:
    return "".join(f"{k}={v}\n" for k, v in [
        ("request", "smtpd_access_policy"), ("protocol_state", state), ("protocol_name", "ESMTP"),
        ("client_address", "192.0.2.1"), ("client_name", "unknown"), ("helo_name", "client.example"),
        ("sender", f"{user}@example.org"), ("recipient", "" if state == "DATA" else f"r{n}@example.net"),
        ("recipient_count", recipients), ("sasl_username", user), ("instance", f"i{n}")]) + "\n"


def postfwd_answers(tmp_path: Path, rule: str, stream: str) -> list[bool]:
    """True where postfwd answered DUNNO (allowed)."""
    config = tmp_path / "postfwd.cf"
    config.write_text(rule + "\n")
    done = subprocess.run([POSTFWD, "-f", str(config), "--nodns", "--nodaemon", "-L"], input=stream,
                          capture_output=True, text=True, timeout=60, check=True)
    actions = [line[len("action="):] for line in done.stdout.splitlines() if line.startswith("action=")]
    return [a.upper() == "DUNNO" for a in actions]


def stream_of(state, seed, n=60):
    rng = random.Random(seed)
    steps = [(rng.choice(["alice", "bob", "carol"]), rng.choice([1, 1, 2, 3, 5, 12])) for _ in range(n)]
    return steps, "".join(request(state, user, units, i) for i, (user, units) in enumerate(steps))


@pytest.mark.parametrize("seed", [1, 2])
def test_rcpt_at_data_agrees_request_by_request(tmp_path, seed):
    steps, stream = stream_of("DATA", seed)
    theirs = postfwd_answers(tmp_path, "id=R1; protocol_state==DATA; action=rcpt(sasl_username/20/3600/REJECT over)",
                             stream)
    counter = PostfwdRate(20, 3600)
    ours = [counter.try_take(user, 0.0, units) for user, units in steps]
    assert len(theirs) == len(steps)
    assert ours == theirs
    assert not all(ours) and any(ours[10:])  # refusals happened and did not stop everything


def test_rate_at_rcpt_counts_requests_and_agrees(tmp_path):
    steps, stream = stream_of("RCPT", 3)
    theirs = postfwd_answers(tmp_path, "id=R1; protocol_state==RCPT; action=rate(sasl_username/7/3600/DEFER over)",
                             stream)
    counter = PostfwdRate(7, 3600)
    ours = [counter.try_take(user, 0.0, 1) for user, _ in steps]
    assert ours == theirs
    assert ours.count(True) == 3 * 7  # each of the three users gets exactly its 7


def test_a_first_request_above_the_limit_fills_the_window_in_both(tmp_path):
    steps = [("alice", 25), ("alice", 1), ("bob", 1), ("bob", 19), ("bob", 1)]
    stream = "".join(request("DATA", user, units, i) for i, (user, units) in enumerate(steps))
    theirs = postfwd_answers(tmp_path, "id=R1; protocol_state==DATA; action=rcpt(sasl_username/20/3600/REJECT over)",
                             stream)
    counter = PostfwdRate(20, 3600)
    assert [counter.try_take(user, 0.0, units) for user, units in steps] == theirs == [False, False, True, True, False]
