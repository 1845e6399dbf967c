"""simsub policyd beside Debian's postfwd, on the same requests.

postfwd (1.35, Debian 12) gets the equivalent rule, ``rate(sasl_username/LIMIT/WINDOW/DEFER ...)``
at RCPT; simsub policyd a fixed-window per-message throttle.  Where their answers differ,
each difference is one of three documented semantic differences, each shown alone below:

1. the window: simsub's fixed window is aligned to the clock (``[k*W, (k+1)*W)``), postfwd's
   opens at the first request of a login and lasts W s (it "renews" at the first request after);
2. what counts: simsub counts a message once (its first RCPT; the other RCPTs of the same
   ``instance`` get the same answer), postfwd's ``rate`` every request, so every recipient;
3. the key: postfwd lower-cases it (``Alice`` and ``alice`` share a counter), simsub does not.

Both refuse without spending (a refused request does not count).  Until the model has a
postfwd-style limiter, the stream test checks that postfwd answers exactly as
:class:`~simsub.policyd.peer.PostfwdRate` (its rules, read from its source) predicts and simsub
exactly as the model's FixedWindow does: every difference is then explained by the three rules.
"""

from __future__ import annotations

import time

import pytest

from simsub.policyd.adapter import Origins
from simsub.policyd.client import PolicyClient, postfix_request
from simsub.policyd.decide import Decider
from simsub.policyd.peer import Postfwd, PostfwdRate, rate_rule, request_stream, unavailable_reason

from .policyd_support import Clock, scenario, serve

REASON = unavailable_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason=str(REASON))

def _throttle(name: str, limit: int, window: str) -> dict:
    return {"type": "ratelimit", "key": "sasl_username", "count": "messages", "limit": limit, "window": window,
            "algorithm": "fixed", "action": "DEFER"}


def _word(action: str) -> str:
    return action.split()[0].upper()


#: One service per difference (simsub routes by policy_context, postfwd by a login prefix).
SIDE = {"recipient_restrictions": ["check_policy_service w", "check_policy_service r", "check_policy_service c",
                                   "permit_sasl_authenticated", "reject"],
        "services": {"w": _throttle("w", 2, "1s"), "r": _throttle("r", 3, "1h"), "c": _throttle("c", 1, "1h")}}
RULES = [rate_rule("W", "sasl_username", 2, 1, "DEFER 4.7.1 w", match="^w_"),
         rate_rule("R", "sasl_username", 3, 3600, "DEFER 4.7.1 r", match="^r_"),
         rate_rule("C", "sasl_username", 1, 3600, "DEFER 4.7.1 c", match="^c_")]


@pytest.fixture(scope="module")
def pair():
    """postfwd2 and simsub policyd (its clock: the wall clock, read when each request is sent)."""
    clock = Clock()
    with Postfwd(RULES) as postfwd, serve(scenario(side=SIDE), "side", clock=clock, budget=0) as simsub:
        with PolicyClient(postfwd.address) as peer, PolicyClient(simsub.address) as ours:
            def ask(context: str, **attributes) -> tuple[str, str]:
                request = postfix_request(**attributes)
                clock.t = time.time()
                mine = ours.ask({**request, "policy_context": context})
                return _word(mine), _word(peer.ask(request))
            yield ask


def test_difference_1_the_window_opens_at_the_first_request_in_postfwd(pair):
    """Limit 2 per 1 s. Two messages in the middle of a clock second, a third just after the
    second ends: simsub's new window allows it, postfwd's window (first request + 1 s) refuses
    it; a fourth after postfwd's window: both allow."""
    while not 0.45 <= time.time() % 1 <= 0.55:  # the middle of a clock second (at most 1 s)
        time.sleep(0.01)
    start = time.time()
    answers = [pair("w", sasl_username="w_ann", instance=f"w{i}") for i in range(2)]
    time.sleep(max(0.0, start + 0.65 - time.time()))  # about .1 s into the next clock second
    answers.append(pair("w", sasl_username="w_ann", instance="w2"))
    time.sleep(max(0.0, start + 1.2 - time.time()))  # past postfwd's window (start + 1 s)
    answers.append(pair("w", sasl_username="w_ann", instance="w3"))
    assert answers == [("DUNNO", "DUNNO"), ("DUNNO", "DUNNO"), ("DUNNO", "DEFER"), ("DUNNO", "DUNNO")]


def test_difference_2_postfwd_counts_every_recipient_simsub_every_message(pair):
    """Limit 3 messages: one message with 3 RCPTs, then a second message. simsub has counted 1
    message, postfwd 3 requests and refuses the second message."""
    first = [pair("r", sasl_username="r_bob", instance="r1") for _ in range(3)]
    second = pair("r", sasl_username="r_bob", instance="r2")
    assert first == [("DUNNO", "DUNNO")] * 3 and second == ("DUNNO", "DEFER")


def test_difference_3_postfwd_lower_cases_the_key(pair):
    """Limit 1: 'C_Carol' then 'c_carol' are two logins to simsub, one to postfwd."""
    assert pair("c", sasl_username="C_Carol", instance="c1") == ("DUNNO", "DUNNO")
    assert pair("c", sasl_username="c_carol", instance="c2") == ("DUNNO", "DEFER")


def test_a_recorded_stream_differs_only_by_the_three_documented_rules():
    """A recorded stream of 70 messages (about 110 requests, 1-3 RCPTs each, a fifth of the
    logins capitalised) sent in real time to both, limit 3 messages per 2 s per login."""
    stream = request_stream(seed=18, messages=70, users=6)
    scn = scenario(fixed={"recipient_restrictions": ["check_policy_service msgs", "permit_sasl_authenticated",
                                                     "reject"],
                          "services": {"msgs": _throttle("msgs", 3, "2s")}})
    clock = Clock()
    sent: list[float] = []
    ours, theirs = [], []
    with Postfwd([rate_rule("M", "sasl_username", 3, 2, "DEFER 4.7.1 msgs")]) as postfwd, \
            serve(scn, "fixed", clock=clock, budget=0) as simsub, \
            PolicyClient(postfwd.address) as peer, PolicyClient(simsub.address) as client:
        start = time.time()
        for offset, request in stream:
            time.sleep(max(0.0, start + offset - time.time()))
            clock.t = now = time.time()
            sent.append(now)
            ours.append(_word(client.ask(request)))
            theirs.append(_word(peer.ask(request)))
    # simsub answered as the model's own service does on the same times ...
    model = Decider(scn.policies["fixed"], Origins([]))
    assert ours == [_word(model.decide(r, t).action) for (_o, r), t in zip(stream, sent)]
    # ... and postfwd as its documented rate() does.
    oracle = PostfwdRate(3, 2)
    assert theirs == ["DUNNO" if oracle.try_take(r["sasl_username"], t) else "DEFER"
                      for (_o, r), t in zip(stream, sent)]
    differ = sum(a != b for a, b in zip(ours, theirs))
    print(f"{len(stream)} requests: {len(stream) - differ} same answer, {differ} differ "
          f"(simsub DEFER {ours.count('DEFER')}, postfwd DEFER {theirs.count('DEFER')})")
    assert ours.count("DEFER") and theirs.count("DEFER")  # the limit is reached
