"""Dead destinations: Postfix's queue manager after a refusal at the greeting.

Postfix 3.7 (docs/model.md, "Destinations that refuse the server"): a soft
failure at connection or greeting level (``smtp_site_fail``) is negative
concurrency feedback (``qmgr_queue_throttle``); a whole failed cohort marks
the destination dead, its waiting mail and the mail activated while it is dead
are deferred without an attempt, and ``minimal_backoff_time`` later
(``qmgr_queue_unthrottle_wrapper``) it is tried again.  Refusals at RCPT or
DATA (``smtp_rcpt_fail``, ``smtp_mesg_fail``) never throttle.

Every case uses constant delivery times and integer injection times, so the
schedules are exact.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import simsub
from simsub.model.destination_window import DestinationWindow
from simsub.model.queue import Kind

from .test_queue import assert_conservation, dest, finish, inject, one_shot_bot, scenario, start_world, trace


def refusing_world(stage="greeting", action="defer", destinations=None, **queue):
    """Destination "d" (1 s per request) consults list "bl", which has the server
    listed from t = 0; "ok" (if asked for) consults nothing."""
    reputation = {"bl": {"threshold": 1000, "window": "1m", "expiry": "10d", "action": action, "stage": stage}}
    w = start_world(scenario(destinations=destinations or {"d": dest(lists=["bl"])}, reputation=reputation,
                             queue=queue or None, horizon="10h"))
    w.queue.reputation.lists["bl"].listed = True
    return w


def delist_at(w, t: float) -> None:
    w.env.timeout(t - w.env.now).callbacks.append(lambda _e: w.queue.reputation._delist("bl", "test"))


# ============================================================================= the window arithmetic
def test_cohort_failures_from_the_initial_window_kill_the_destination_at_the_third():
    """qmgr_queue_throttle with the defaults (initial 5, feedback 1, cohort limit 1):
    fail_cohorts 1/5, + 1/3, + 1/2 = 1.03 >= 1; the window goes 5 -> 3 -> 2 -> dead."""
    w = DestinationWindow(initial=5, limit=20, cohort_limit=1)
    assert (w.throttle(), w.window, w.fail_cohorts) == (False, 3, pytest.approx(1 / 5))
    assert (w.throttle(), w.window, w.fail_cohorts) == (False, 2, pytest.approx(1 / 5 + 1 / 3))
    assert (w.throttle(), w.window, w.dead) == (True, 0, True)
    assert w.throttle() is False  # a dead queue is not throttled again


def test_without_a_cohort_limit_the_window_stops_at_one():
    w = DestinationWindow(initial=5, limit=20, cohort_limit=0)
    windows = []
    for _ in range(6):
        assert w.throttle() is False
        windows.append(w.window)
    assert windows == [3, 2, 1, 1, 1, 1]


def test_success_resets_the_cohort_count_and_widens_the_window_up_to_busy_plus_initial():
    w = DestinationWindow(initial=5, limit=7, cohort_limit=1)
    w.throttle()  # window 3, 1/5 of a cohort
    w.unthrottle(busy=1)  # 3 < 1 + 5: widen
    assert (w.window, w.fail_cohorts, w.failure) == (4, 0.0, 0.0)
    w.unthrottle(busy=0)  # 4 < 0 + 5
    w.unthrottle(busy=0)  # 5 is not < 5: stays
    assert w.window == 5
    for _ in range(5):
        w.unthrottle(busy=5)
    assert w.window == 7  # the destination concurrency limit


def test_a_dead_destination_comes_back_with_the_deliveries_still_in_progress():
    w = DestinationWindow(initial=5, limit=20, cohort_limit=1)
    for _ in range(3):
        w.throttle()
    w.unthrottle(busy=2)
    assert (w.window, w.generation) == (2, 1)
    for _ in range(3):
        w.throttle()
    w.unthrottle(busy=0)
    assert (w.window, w.generation) == (5, 2)


def test_the_initial_window_is_capped_by_the_destination_limit():
    assert DestinationWindow(initial=5, limit=3, cohort_limit=1).window == 3


# ============================================================================= through the queue
def test_a_destination_refusing_at_the_greeting_is_suspended_after_one_cohort():
    """Ten one-recipient messages at t = 0.  Window 5: five attempts run 0..1 s;
    the third failure at 1 s kills the destination and the five waiting requests
    are deferred at once without an attempt.  All ten are due at 301 s; the
    destination is tried again at 301 s (minimal_backoff after it died), so the
    next scan (600 s) starts five new attempts, which fail the same way."""
    w = refusing_world()
    for i in range(1, 11):
        inject(w, 0, i, Kind.LEGIT, {0: 1})
    assert w.queue.attempts == 5 and w.queue.busy_per_destination[0] == 5
    w.env.run(until=1.5)
    assert w.queue.windows[0].dead and w.queue.suspensions == 1
    assert w.queue.attempts == 5 and w.queue.suspended_recipients == 5
    assert all(m.where == "deferred" and m.retry_at == 301.0 for m in w.queue.messages.values())
    w.env.run(until=301.5)
    assert w.queue.windows[0].window == 5  # revived at 301 s
    w.env.run(until=600)
    assert w.queue.attempts == 5  # nothing in between: the scan at 600 s has not run yet
    w.env.run(until=601.5)
    assert w.queue.attempts == 10 and w.queue.suspensions == 2 and w.queue.suspended_recipients == 10


def test_mail_activated_while_the_destination_is_dead_is_deferred_without_an_attempt():
    """Dead at 1 s; a message activated at 100 s is deferred at 100 s (due at 400 s)
    without an attempt; the destination revives at 301 s; the message's next pass,
    at the scan of 600 s, is an attempt, with the three first messages (due at
    301 s): four attempts, ending at 601 s."""
    w = refusing_world()
    for i in range(1, 4):
        inject(w, 0, i, Kind.LEGIT, {0: 1})
    inject(w, 100, 9, Kind.LEGIT, {0: 2})
    log = trace(w, 9, until=700)
    # (its activation and deferral happen in the same step: the trace sees the deferral)
    assert log == [(100.0, "deferred", 400.0), (600.0, "active"), (601.0, "deferred", 1102.0)]
    assert w.queue.attempts == 3 + 4 and w.queue.suspended_recipients == 2


def test_next_attempt_after_the_delisting_delivers_the_suspended_mail():
    """Six messages at 0 s: five attempts, the sixth suspended at 1 s (due at
    301 s).  Delisted at 200 s: all six are attempted in the pass of the 600 s
    scan; the fresh window of 5 delivers five at 601 s and the sixth at 602 s."""
    w = refusing_world()
    for i in range(1, 7):
        inject(w, 0, i, Kind.LEGIT, {0: 1})
    delist_at(w, 200)
    log = trace(w, 6, until=1000)
    assert log == [(0.0, "active"), (1.0, "deferred", 301.0), (600.0, "active"), (602.0, "done")]
    d = finish(w)
    assert (d["delivered"] == 1).all() and sorted(d["last_delivery_s"]) == [601.0] * 5 + [602.0]
    assert w.queue.attempts == 5 + 6 and w.queue.suspended_recipients == 1


def test_a_lone_failure_never_kills_the_destination():
    """One message at a time (0, 10, 20 s): after each failure the destination's
    queue is empty and Postfix discards it, so each attempt starts a fresh window
    of 5 and no cohort ever fails as a whole: three attempts, no suspension."""
    w = refusing_world()
    for i, t in enumerate((0, 10, 20), start=1):
        inject(w, t, i, Kind.LEGIT, {0: 1})
    w.env.run(until=100)
    assert (w.queue.attempts, w.queue.suspensions, w.queue.suspended_recipients) == (3, 0, 0)
    assert w.queue.windows[0].window == 5


def test_a_success_in_progress_revives_a_dead_destination_at_once():
    """Three requests 0..10 s and two 5..15 s (10 s each).  The three failures at
    10 s kill the destination; it is delisted at 12 s, so the two in progress
    succeed at 15 s and bring it back (qmgr_queue_unthrottle on a dead queue):
    a message activated at 20 s is attempted and delivered at 30 s, not
    suspended until the timer (310 s)."""
    w = refusing_world(destinations={"d": dest(lists=["bl"], delivery_time="10s")})
    for i in range(1, 4):
        inject(w, 0, i, Kind.LEGIT, {0: 1})
    for i in (4, 5):
        inject(w, 5, i, Kind.LEGIT, {0: 1})
    delist_at(w, 12)
    w.env.run(until=10.5)
    assert w.queue.windows[0].dead
    w.env.run(until=15.5)
    assert w.queue.windows[0].window == 5  # revived by the successes, then discarded as empty
    inject(w, 20, 6, Kind.LEGIT, {0: 1})
    assert trace(w, 6, until=100) == [(20.0, "active"), (30.0, "done")]
    assert w.queue.suspended_recipients == 0


def test_other_destinations_are_not_affected():
    destinations = {"d": dest(lists=["bl"], legit_share=0.5, spam_share=0.5),
                    "ok": dest(legit_share=0.5, spam_share=0.5)}
    w = refusing_world(destinations=destinations)
    for i in range(1, 11):
        inject(w, 0, i, Kind.LEGIT, {0: 1, 1: 1})
    w.env.run(until=100)
    d = finish(w)
    assert (d["delivered"] == 1).all() and (d["queued"] == 1).all()  # "ok" took its ten, "d" none
    assert w.queue.attempts == 10 + 5 and w.queue.suspended_recipients == 5


@pytest.mark.parametrize("stage", ["rcpt", "data"])
def test_refusals_at_rcpt_or_data_are_per_request_and_never_suspend(stage):
    """Every request is attempted and rejected (one bounce per message); the
    destination is never declared dead."""
    w = refusing_world(stage=stage, action="reject")
    for i in range(1, 11):
        inject(w, 0, i, Kind.LEGIT, {0: 1})
    w.env.run(until=100)
    d = finish(w)
    legit = d[d["kind"] == "legit"]
    assert (legit["bounced"] == 1).all() and len(legit) == 10
    assert (w.queue.suspensions, w.queue.suspended_recipients) == (0, 0)
    assert w.queue.attempts == 10 + 10  # ten requests, ten local bounces
    assert w.queue.bounces == 10


@pytest.mark.parametrize("stage", ["rcpt", "data"])
def test_deferrals_at_rcpt_or_data_are_attempted_on_every_pass(stage):
    w = refusing_world(stage=stage, action="defer")
    for i in range(1, 11):
        inject(w, 0, i, Kind.LEGIT, {0: 1})
    w.env.run(until=700)
    assert (w.queue.attempts, w.queue.suspensions) == (20, 0)  # passes at 0 and 600 s, ten each


@pytest.mark.parametrize("skip, bounced, suspended", [(True, 0, 5), (False, 10, 0)])
def test_a_5xx_greeting_defers_unless_skip_5xx_greeting_is_off(skip, bounced, suspended):
    """smtp_skip_5xx_greeting = yes (the default) turns a 5xx banner into 4xx:
    deferred, and the destination dies.  Off, the recipients bounce and
    nothing throttles (bounce_append succeeds, so no hop status)."""
    w = refusing_world(action="reject", skip_5xx_greeting=skip)
    for i in range(1, 11):
        inject(w, 0, i, Kind.LEGIT, {0: 1})
    w.env.run(until=100)
    d = finish(w)
    legit = d[d["kind"] == "legit"]
    assert int(legit["bounced"].sum()) == bounced
    assert w.queue.suspended_recipients == suspended


def test_the_earliest_stage_wins_when_two_lists_refuse():
    reputation = {"late": {"threshold": 1000, "window": "1m", "expiry": "10d", "action": "reject", "stage": "data"},
                  "early": {"threshold": 1000, "window": "1m", "expiry": "10d", "action": "defer",
                            "stage": "greeting"}}
    w = start_world(scenario(destinations={"d": dest(lists=["late", "early"])}, reputation=reputation))
    rep = w.queue.reputation
    rep.lists["late"].listed = True
    assert rep.refusal(("late", "early")) == ("reject", "data")
    rep.lists["early"].listed = True
    assert rep.refusal(("late", "early")) == ("defer", "greeting")


def test_a_failed_cohort_limit_of_zero_never_suspends():
    w = refusing_world(failed_cohort_limit=0)
    for i in range(1, 11):
        inject(w, 0, i, Kind.LEGIT, {0: 1})
    w.env.run(until=100)
    assert (w.queue.suspensions, w.queue.suspended_recipients) == (0, 0)
    # window 5 -> 3 -> 2 -> 1: five attempts at 0 s, then one at a time
    assert w.queue.attempts == 10


def test_summary_and_conservation_through_the_simulator():
    reputation = {"bl": {"threshold": 1, "window": "1m", "detection_delay": "0s", "expiry": "10d",
                         "action": "reject", "stage": "greeting"}}
    users = {"name": "users", "kind": "user", "count": 20, "origins": {"own": 1.0}, "messages_per_day": 500}
    sc = scenario([users, one_shot_bot(recipients=50)], destinations={"d": dest(lists=["bl"])},
                  reputation=reputation, horizon="1h")
    result = simsub.run(sc, seed=4)
    q = result.summary["queue"]
    assert q["suspensions"] > 0 and q["suspended_recipients"] > 0
    assert q["delivery_attempts"] > 0
    assert_conservation(result)



# ============================================================================= random cases
@st.composite
def refusing_cases(draw):
    """Up to 30 messages (integer times, 1-6 recipients over two destinations),
    a list consulted by "d" that is on from ``listed`` to ``delisted``, random
    queue limits and refusal stage."""
    queue = {"delivery_agents": draw(st.integers(1, 6)), "destination_concurrency": draw(st.integers(1, 6)),
             "initial_concurrency": draw(st.integers(1, 6)), "failed_cohort_limit": draw(st.integers(0, 2)),
             "skip_5xx_greeting": draw(st.booleans()), "recipients_per_request": draw(st.integers(1, 4)),
             "minimal_backoff": "100s", "maximal_backoff": "400s", "queue_run_delay": "100s",
             "maximal_queue_lifetime": "3000s", "bounce_queue_lifetime": "1000s"}
    refusal = {"stage": draw(st.sampled_from(["greeting", "greeting", "greeting", "rcpt", "data"])),
               "action": draw(st.sampled_from(["defer", "reject"]))}
    delivery = draw(st.sampled_from(["1s", "7s", "30s"]))
    listed = draw(st.integers(0, 100))
    delisted = listed + draw(st.integers(1, 3000))
    messages = draw(st.lists(st.tuples(st.integers(0, 600), st.integers(0, 6), st.integers(0, 6),
                                       st.sampled_from([Kind.LEGIT, Kind.SPAM])).filter(lambda m: m[1] + m[2] > 0),
                             min_size=1, max_size=30))
    return queue, refusal, delivery, listed, delisted, messages


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(refusing_cases())
def test_conservation_and_window_bounds_with_dead_destinations(case):
    queue, refusal, delivery, listed, delisted, messages = case
    reputation = {"bl": {"threshold": 10**9, "window": "1m", "expiry": "10d", **refusal}}
    destinations = {"d": dest(lists=["bl"], delivery_time=delivery, legit_share=0.5, spam_share=0.5),
                    "ok": dest(delivery_time=delivery, legit_share=0.5, spam_share=0.5)}
    w = start_world(scenario(destinations=destinations, reputation=reputation, queue=queue, horizon="10h"))
    state = w.queue.reputation.lists["bl"]
    w.env.timeout(listed).callbacks.append(lambda _e: setattr(state, "listed", True))
    delist_at(w, delisted)
    for i, (t, to_d, to_ok, kind) in enumerate(messages, start=1):
        inject(w, t, i, kind, {d: n for d, n in ((0, to_d), (1, to_ok)) if n})
    limit = w.queue.config.destination_concurrency
    while w.env.peek() <= 20000:
        w.env.step()
        for window in w.queue.windows:
            assert 0 <= window.window <= limit
        assert w.queue.agents_busy == sum(w.queue.busy_per_destination) <= w.queue.config.delivery_agents
    d = finish(w)
    columns = ["delivered", "bounced", "purged", "expired", "queued"]
    assert (d[columns].sum(axis=1) == d["recipients"]).all()
    assert (d[columns] >= 0).all().all()
    greeting_defers = refusal["stage"] == "greeting" and (refusal["action"] == "defer" or queue["skip_5xx_greeting"])
    if not greeting_defers or queue["failed_cohort_limit"] == 0:
        assert (w.queue.suspensions, w.queue.suspended_recipients) == (0, 0)
    if w.queue.suspended_recipients:
        assert w.queue.suspensions > 0
    event("a destination died" if w.queue.suspensions else "no destination died")  # --hypothesis-show-statistics
