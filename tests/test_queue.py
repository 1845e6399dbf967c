"""Behind the front end: mail queue, delivery, bounces, reputation lists, operator.

MODEL.md §2 "Queue and delivery" and §3 "Behind the front end".  Tiny
deterministic cases (constant delivery times, messages put into the queue at
known times) check the schedule to the second; property tests check the
limits and the conservation of recipients on random small scenarios; the
default scenario at a reduced scale checks the incident as a whole.

Two ways in:

* ``simsub.run`` with a one-shot bot (a bot that sends one message at a known
  time), through the real front end;
* a :class:`~simsub.model.world.World` stepped by hand, with messages handed to
  ``world.queue.accept`` at chosen times (integers, so that times are exact).
"""

from __future__ import annotations

import copy
import math
from collections import deque

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import simsub
from simsub.analysis.tables import deliveries_table
from simsub.model import world as world_module
from simsub.model.queue import Kind, MailQueue
from simsub.model.recorder import Recorder
from simsub.model.world import World
from simsub.scenario.loader import build_scenario

from .conftest import BASE, DEFAULT_SCENARIO

H = 0.1  # one-way delay of the "unknown" origin (rtt 200 ms)
LOCAL = 0.01  # s, delivery of a bounce to a local mailbox


# ----------------------------------------------------------------------------- building scenarios
QUIET_USERS = {"name": "users", "kind": "user", "count": 3, "origins": {"own": 1.0}, "messages_per_day": 1e-9}


def one_shot_bot(name="bot", **keys):
    """One bot, one message at t = 10 s exactly (it stops before its next session)."""
    base = {
        "name": name, "kind": "bot", "count": 1, "start": "10s", "stop": "20s", "ramp": "0s", "accounts": 1,
        "origins": {"unknown": 1.0}, "pause": "1h", "recipients": 1, "patience": "60s",
    }
    base.update(keys)
    return base


def dest(**keys):
    """A destination taking every recipient, 1 s per delivery request."""
    base = {"legit_share": 1.0, "spam_share": 1.0, "delivery_time": "1s"}
    base.update(keys)
    return base


def scenario(populations=None, *, queue=None, destinations=None, reputation=None, operator=None, policies=None,
             **scenario_keys):
    """A scenario with a mail queue (the same validation path as a TOML file)."""
    data = copy.deepcopy(BASE)
    data["populations"] = copy.deepcopy(populations or [QUIET_USERS])
    data["scenario"].update(scenario_keys)
    data["destinations"] = copy.deepcopy(destinations or {"d": dest()})
    if queue is not None:
        data["queue"] = copy.deepcopy(queue)
    if reputation is not None:
        data["reputation"] = copy.deepcopy(reputation)
    if operator is not None:
        data["operator"] = copy.deepcopy(operator)
    if policies:
        data["policies"].update(copy.deepcopy(policies))
    return build_scenario(data, "<test>", {})


# ----------------------------------------------------------------------------- driving a World by hand
def start_world(sc, policy="none", seed=1) -> World:
    w = World(sc, policy, seed, Recorder())
    w.start()
    return w


def inject(w: World, t: float, message_id: int, kind: Kind, split: dict[int, int], account: str = "acct",
           local_sender: bool | None = None) -> None:
    """Hand a message to the queue at time ``t`` as if smtpd had just accepted it."""
    local = (kind == Kind.LEGIT) if local_sender is None else local_sender

    def accept(_event=None):
        w.queue.accept(message_id, kind, account, local, dict(split))

    if t <= w.env.now:
        accept()
    else:
        w.env.timeout(t - w.env.now).callbacks.append(accept)


def trace(w: World, message_id: int, until: float) -> list[tuple]:
    """Step the world to ``until``; every change of the message's queue:
    ``(t, "active")``, ``(t, "deferred", retry_at)``, ``(t, "done")``."""
    log: list[tuple] = []
    message = None
    while w.env.peek() <= until:
        w.env.step()
        message = message or w.queue.messages.get(message_id)
        if message is None:
            continue
        state = (message.where, message.retry_at) if message.where == "deferred" else (message.where,)
        if not log or log[-1][1:] != state:
            log.append((w.env.now, *state))
    return log


def finish(w: World):
    """What ``simulate`` does at the end: record what is still queued; the deliveries table."""
    w.queue.finish_all()
    return deliveries_table(w.recorder)


def events(w: World) -> list[tuple[float, str, str]]:
    return sorted(w.recorder.events, key=lambda e: e[0])  # stable: in the order they happened


def next_scan(t: float, delay: float = 300.0) -> float:
    return math.ceil(t / delay) * delay


# ----------------------------------------------------------------------------- conservation
COLUMNS = ["delivered", "bounced", "purged", "expired", "queued"]


def assert_conservation(result) -> None:
    """Every recipient of every queued message is accounted for exactly once, and
    the queue holds exactly the messages the front end accepted."""
    d = result.deliveries
    m = result.messages
    assert d is not None
    assert (d[COLUMNS] >= 0).all().all(), d[(d[COLUMNS] < 0).any(axis=1)]
    assert d["message_id"].is_unique
    total = d[COLUMNS].sum(axis=1)
    assert (total == d["recipients"]).all(), d[total != d["recipients"]]
    front = d[d["message_id"] > 0]
    accepted = m[m["outcome"] == "accepted"]
    assert sorted(front["message_id"]) == sorted(accepted["message_id"]), "the queue holds exactly the accepted messages"
    joined = accepted.merge(front, on="message_id", suffixes=("_front", "_queue"))
    assert len(joined) == len(accepted)
    assert (joined["recipients_queue"] == joined["recipients_accepted"]).all()
    expected_kind = joined["kind_front"].astype(str).map({"user": "legit", "bot": "spam"})
    assert (joined["kind_queue"].astype(str) == expected_kind).all()
    assert (joined["accepted_s_queue"] <= joined["accepted_s_front"] + 1e-9).all()  # 250 left before it arrived
    notices = d[d["message_id"] < 0]
    assert set(notices["kind"].astype(str)) <= {"bounce", "double_bounce"}
    assert (notices["recipients"] == 1).all()
    q = result.summary["queue"]
    assert q["bounces"] == int((d["kind"] == "bounce").sum())
    double_rows = int((d["kind"] == "double_bounce").sum())
    if result.scenario.queue.double_bounce == "postmaster":
        assert double_rows == q["double_bounces"]
    else:
        assert double_rows == 0
    assert q["queued_at_end"] == int(d["queued"].sum())
    assert q["expired"] == int(d["expired"].sum())
    delivered = d["delivered"] > 0
    assert (d.loc[delivered, "last_delivery_s"] >= d.loc[delivered, "accepted_s"]).all()
    assert d.loc[~delivered, "last_delivery_s"].isna().all()
    complete = d["delivered"] == d["recipients"]
    assert d.loc[complete, "latency_s"].notna().all() and d.loc[~complete, "latency_s"].isna().all()


# ============================================================================= 1. retry schedule
DEFER_ALL = {"d": dest(spam={"defer": 1.0}, legit={"defer": 1.0})}


def test_retry_schedule_backoff_clamped_at_both_ends_and_waits_for_the_scan():
    """A message the destination always defers, put in the queue at t = 0 (1 s per attempt).

    Each pass ends at t; the next attempt is due at t + clamp(age, 300, 4000)
    and starts at the first deferred-queue scan (every 300 s) at or after it."""
    w = start_world(scenario(destinations=DEFER_ALL, horizon="10h"))
    inject(w, 0, 1, Kind.SPAM, {0: 1})
    log = trace(w, 1, until=16000)
    expected = [
        (0.0, "active"),
        (1.0, "deferred", 301.0),  # age 1 s: minimal_backoff 300 s
        (600.0, "active"),  # due at 301, waits for the scan at 600
        (601.0, "deferred", 1202.0),  # age 601 s
        (1500.0, "active"),
        (1501.0, "deferred", 3002.0),  # age 1501 s
        (3300.0, "active"),
        (3301.0, "deferred", 6602.0),  # age 3301 s
        (6900.0, "active"),
        (6901.0, "deferred", 10901.0),  # age 6901 s: maximal_backoff 4000 s
        (11100.0, "active"),
        (11101.0, "deferred", 15101.0),  # age 11101 s: still 4000 s
        (15300.0, "active"),
        (15301.0, "deferred", 19301.0),
    ]
    assert log == expected
    for (t_end, _, retry_at), (t_next, _) in zip(log[1::2], log[2::2]):
        assert retry_at == t_end + min(max(t_end, 300.0), 4000.0)
        assert t_next == next_scan(retry_at)


def test_retry_due_exactly_at_a_scan_is_taken_by_that_scan():
    w = start_world(scenario(destinations=DEFER_ALL, queue={"minimal_backoff": "299s"}))
    inject(w, 0, 1, Kind.LEGIT, {0: 2})
    assert trace(w, 1, until=400) == [(0.0, "active"), (1.0, "deferred", 300.0), (300.0, "active"),
                                      (301.0, "deferred", 602.0)]


def test_retry_schedule_follows_the_queue_settings():
    """queue_run_delay 100 s, backoff 50..250 s."""
    queue = {"minimal_backoff": "50s", "maximal_backoff": "250s", "queue_run_delay": "100s"}
    w = start_world(scenario(destinations=DEFER_ALL, queue=queue))
    inject(w, 0, 1, Kind.SPAM, {0: 1})
    log = trace(w, 1, until=1000)
    assert log[:7] == [(0.0, "active"), (1.0, "deferred", 51.0), (100.0, "active"), (101.0, "deferred", 202.0),
                       (300.0, "active"), (301.0, "deferred", 551.0), (600.0, "active")]


def test_bot_message_enters_the_queue_when_smtpd_sends_its_250_and_is_retried():
    """Through the front end: the queue's clock starts half a round trip before
    the client saw the 250; the first retry is due 300 s after the first pass."""
    sc = scenario([one_shot_bot(recipients=3)], destinations=DEFER_ALL, horizon="2h")
    w = start_world(sc)
    log = trace(w, 1, until=3000)
    result = simsub.run(sc, seed=1)
    msg = result.messages.iloc[0]
    assert msg.outcome == "accepted" and msg.first_attempt_s == pytest.approx(10.0)
    q0 = msg.accepted_s - H
    assert log[0] == pytest.approx((q0, "active"))
    assert log[1][0] == pytest.approx(q0 + 1.0) and log[1][2] == pytest.approx(q0 + 301.0)
    assert log[2] == (600.0, "active")
    age = 601.0 - q0
    assert log[3][0] == 601.0 and log[3][2] == pytest.approx(601.0 + age)
    assert log[4] == (next_scan(601.0 + age), "active")
    # at the end of the run the message is still queued
    (row,) = result.deliveries.itertuples()
    assert row.message_id == msg.message_id and row.kind == "spam"
    assert row.accepted_s == pytest.approx(q0, abs=1e-9)
    assert (row.recipients, row.queued, row.delivered) == (3, 3, 0)
    assert math.isnan(row.last_delivery_s)
    assert result.summary["queue"]["queued_at_end"] == 3


def test_only_accepted_messages_are_queued_not_held_or_discarded():
    policies = {
        "hold": {"recipient_restrictions": ["check_client_access pcre:m"], "maps": {"m": "/./ HOLD"}},
        "discard": {"recipient_restrictions": ["check_client_access pcre:m"], "maps": {"m": "/./ DISCARD"}},
    }
    sc = scenario([one_shot_bot(recipients=4)], policies=policies, horizon="10m")
    for policy, outcome in (("hold", "held"), ("discard", "discarded"), ("none", "accepted")):
        result = simsub.run(sc, policy=policy, seed=1)
        assert list(result.messages["outcome"].astype(str)) == [outcome]
        assert len(result.deliveries) == (1 if outcome == "accepted" else 0)
        assert_conservation(result)


@pytest.mark.parametrize("slow", ["legit", "spam"])
def test_legitimate_and_spam_recipients_go_where_their_shares_say(slow):
    """Destination "l" gets every legitimate recipient, "s" every spam one; the
    one named by ``slow`` defers everything, the other accepts everything."""
    defer = {"legit": {"defer": 1.0}, "spam": {"defer": 1.0}}
    destinations = {
        "l": dest(legit_share=1.0, spam_share=0.0, **(defer if slow == "legit" else {})),
        "s": dest(legit_share=0.0, spam_share=1.0, **(defer if slow == "spam" else {})),
    }
    users = {"name": "users", "kind": "user", "count": 5, "origins": {"own": 1.0}, "messages_per_day": 300}
    bots = one_shot_bot(stop="50m", pause="30s", recipients={"dist": "uniform", "low": 1, "high": 60})
    result = simsub.run(scenario([users, bots], destinations=destinations, horizon="1h"), seed=3)
    d = result.deliveries
    kind = d["kind"].astype(str)
    assert (kind == "legit").sum() > 10 and (kind == "spam").sum() > 10
    stuck = d[kind == slow]
    through = d[kind == ("spam" if slow == "legit" else "legit")]
    assert (stuck["delivered"] == 0).all() and (stuck["queued"] == stuck["recipients"]).all()
    assert (through["delivered"] == through["recipients"]).all()
    assert_conservation(result)


# ============================================================================= 2. bounces
REJECT_SPAM = {"d": dest(spam={"reject": 1.0})}


@pytest.mark.parametrize("per_request", [50, 2])
def test_one_bounce_per_message_per_pass(per_request):
    """7 rejected recipients of one message, in one request or in four: one bounce."""
    sc = scenario([one_shot_bot(recipients=7, forged_sender=0.0)], destinations=REJECT_SPAM,
                  queue={"recipients_per_request": per_request}, horizon="10m")
    result = simsub.run(sc, seed=1)
    d = result.deliveries
    spam = d[d["kind"] == "spam"].iloc[0]
    assert (spam.recipients, spam.bounced, spam.delivered) == (7, 7, 0)
    bounces = d[d["kind"] == "bounce"]
    assert len(bounces) == 1 and result.summary["queue"]["bounces"] == 1
    bounce = bounces.iloc[0]
    assert bounce.message_id < 0 and bounce.recipients == 1
    # not forged: to the victim's local mailbox, always accepted, 10 ms
    assert bounce.delivered == 1 and bounce.latency_s == pytest.approx(LOCAL)
    assert bounce.accepted_s == pytest.approx(spam.accepted_s + 1.0)  # when the pass ended
    assert result.summary["queue"]["double_bounces"] == 0


def test_one_bounce_per_pass_across_destinations_and_passes():
    """Destination 0 rejects, destination 1 defers until expiry at 1000 s:
    pass 1 (ends at 1 s) bounces the rejected recipients; the pass at 1500 s
    finds the message expired and bounces the rest.  Two bounces, no more."""
    destinations = {"a": dest(spam={"reject": 1.0}, spam_share=0.5, legit_share=0.5),
                    "b": dest(spam={"defer": 1.0}, spam_share=0.5, legit_share=0.5)}
    w = start_world(scenario(destinations=destinations, queue={"maximal_queue_lifetime": "1000s"}))
    inject(w, 0, 1, Kind.SPAM, {0: 3, 1: 4}, local_sender=True)
    log = trace(w, 1, until=2000)
    assert log == [(0.0, "active"), (1.0, "deferred", 301.0), (600.0, "active"), (601.0, "deferred", 1202.0),
                   (1500.0, "active"), (1501.0, "done")]
    d = finish(w)
    message = d[d["message_id"] == 1].iloc[0]
    assert (message.bounced, message.expired, message.delivered, message.queued) == (3, 4, 0, 0)
    bounces = d[d["kind"] == "bounce"]
    assert sorted(bounces["accepted_s"]) == [1.0, 1501.0]
    assert w.queue.bounces == 2


def test_rejections_and_expiry_in_the_same_pass_give_two_notices():
    """As implemented (and as Postfix's qmgr does: bounce_flush for the hard
    failures, then defer_flush for the expired rest): two notices."""
    destinations = {"a": dest(spam={"reject": 1.0}, spam_share=0.5, legit_share=0.5),
                    "b": dest(spam={"defer": 1.0}, spam_share=0.5, legit_share=0.5)}
    w = start_world(scenario(destinations=destinations, queue={"maximal_queue_lifetime": "1s"}))
    inject(w, 0, 1, Kind.SPAM, {0: 2, 1: 2}, local_sender=True)
    assert trace(w, 1, until=100) == [(0.0, "active"), (1.0, "done")]
    d = finish(w)
    assert w.queue.bounces == 2
    assert (d["kind"] == "bounce").sum() == 2


@pytest.mark.parametrize("double_bounce", ["drop", "postmaster"])
def test_bounce_to_a_forged_sender_that_fails_is_a_double_bounce(double_bounce):
    """Forged sender: the bounce goes to a remote destination (drawn by
    spam_share) and is judged as spam there: rejected, it is a double bounce."""
    sc = scenario([one_shot_bot(recipients=5)], destinations=REJECT_SPAM,
                  queue={"double_bounce": double_bounce}, horizon="10m")
    result = simsub.run(sc, seed=1)
    d = result.deliveries
    assert result.summary["queue"]["bounces"] == 1
    assert result.summary["queue"]["double_bounces"] == 1
    bounce = d[d["kind"] == "bounce"].iloc[0]
    assert (bounce.delivered, bounce.bounced) == (0, 1)
    doubles = d[d["kind"] == "double_bounce"]
    if double_bounce == "drop":
        assert len(doubles) == 0
    else:
        (row,) = doubles.itertuples()
        assert row.delivered == 1 and row.message_id < 0
        assert row.accepted_s == pytest.approx(bounce.accepted_s + 1.0)  # the bounce's pass took 1 s
        assert row.latency_s == pytest.approx(LOCAL)  # to the local postmaster
    assert_conservation(result)


def test_bounce_to_a_forged_sender_goes_to_a_remote_destination_drawn_by_spam_share():
    """The spam is rejected at "d"; its bounce goes to "x" (all of spam_share),
    which accepts it after 1 s: delivered remotely, not to a local mailbox."""
    destinations = {"d": dest(spam={"reject": 1.0}, spam_share=0.0),
                    "x": dest(legit_share=0.0, spam_share=1.0, delivery_time="2s")}
    w = start_world(scenario(destinations=destinations))
    inject(w, 0, 1, Kind.SPAM, {0: 5}, local_sender=False)
    w.env.run(until=100)
    d = finish(w)
    bounce = d[d["kind"] == "bounce"].iloc[0]
    assert (bounce.accepted_s, bounce.delivered, bounce.latency_s) == (1.0, 1, 2.0)
    assert w.queue.double_bounces == 0


def test_legitimate_rejections_bounce_to_the_local_user():
    destinations = {"d": dest(legit={"reject": 1.0})}
    users = {"name": "users", "kind": "user", "count": 5, "origins": {"own": 1.0}, "messages_per_day": 200,
             "recipients": 3}
    result = simsub.run(scenario([users], destinations=destinations, horizon="1h"), seed=2)
    d = result.deliveries
    legit = d[d["kind"] == "legit"]
    bounces = d[d["kind"] == "bounce"]
    assert len(legit) > 5 and (legit["bounced"] == 3).all()
    assert len(bounces) == len(legit)  # one per message
    assert (bounces["delivered"] == 1).all() and np.allclose(bounces["latency_s"], LOCAL)
    assert result.summary["queue"]["double_bounces"] == 0
    assert_conservation(result)


# ============================================================================= 3. expiry
def test_expiry_after_maximal_queue_lifetime():
    """Lifetime 1000 s: passes at 0, 600 and 1500 s; at the end of the third the
    message is 1501 s old and expires; its bounce (local sender) is delivered."""
    w = start_world(scenario(destinations=DEFER_ALL, queue={"maximal_queue_lifetime": "1000s"}))
    inject(w, 0, 1, Kind.LEGIT, {0: 2})
    log = trace(w, 1, until=5000)
    assert log == [(0.0, "active"), (1.0, "deferred", 301.0), (600.0, "active"), (601.0, "deferred", 1202.0),
                   (1500.0, "active"), (1501.0, "done")]
    d = finish(w)
    message = d[d["message_id"] == 1].iloc[0]
    assert (message.recipients, message.expired, message.delivered, message.bounced, message.queued) == (2, 2, 0, 0, 0)
    bounce = d[d["kind"] == "bounce"].iloc[0]
    assert bounce.accepted_s == 1501.0 and bounce.delivered == 1


def test_a_message_whose_age_equals_the_lifetime_expires():
    """age >= lifetime: at 601 s, a lifetime of 601 s is reached."""
    w = start_world(scenario(destinations=DEFER_ALL, queue={"maximal_queue_lifetime": "601s"}))
    inject(w, 0, 1, Kind.LEGIT, {0: 1})
    assert trace(w, 1, until=2000) == [(0.0, "active"), (1.0, "deferred", 301.0), (600.0, "active"), (601.0, "done")]


def test_bounces_expire_after_bounce_queue_lifetime():
    """The spam is rejected (bounce at 1 s); the destination's rate limit (one
    request a day) defers the bounce, which expires after bounce_queue_lifetime
    (500 s), not maximal_queue_lifetime (5 d): a double bounce."""
    destinations = {"d": dest(spam={"reject": 1.0}, rate_limit={"messages": 1, "window": "1d"})}
    w = start_world(scenario(destinations=destinations, queue={"bounce_queue_lifetime": "500s"}))
    inject(w, 0, 1, Kind.SPAM, {0: 3}, local_sender=False)
    bounce_id = -1  # bounces get negative ids, from -1
    log = trace(w, bounce_id, until=3000)
    assert log == [(1.0, "active"), (2.0, "deferred", 302.0), (600.0, "active"), (601.0, "done")]
    d = finish(w)
    bounce = d[d["message_id"] == bounce_id].iloc[0]
    assert (bounce.expired, bounce.accepted_s) == (1, 1.0)
    assert w.queue.double_bounces == 1 and w.queue.bounces == 1


# ============================================================================= 4. concurrency limits
def test_concurrency_limits_are_reached_and_not_exceeded():
    """100 recipients in requests of 10, split over two destinations: 10
    requests.  4 agents, 3 per destination: 2 + 2 at once, three waves of 1 s."""
    destinations = {"a": dest(legit_share=0.5, spam_share=0.5), "b": dest(legit_share=0.5, spam_share=0.5)}
    queue = {"delivery_agents": 4, "destination_concurrency": 3, "recipients_per_request": 10}
    w = start_world(scenario(destinations=destinations, queue=queue))
    inject(w, 0, 1, Kind.LEGIT, {0: 50, 1: 50})
    assert w.queue.agents_busy == 4 and w.queue.busy_per_destination[:2] == [2, 2]
    w.env.run(until=10)
    d = finish(w)
    assert d.iloc[0].last_delivery_s == 3.0 and d.iloc[0].delivered == 100

    queue["destination_concurrency"] = 1  # now the destinations are the bottleneck: five waves
    w = start_world(scenario(destinations=destinations, queue=queue))
    inject(w, 0, 1, Kind.LEGIT, {0: 50, 1: 50})
    assert w.queue.agents_busy == 2 and w.queue.busy_per_destination[:2] == [1, 1]
    w.env.run(until=10)
    assert finish(w).iloc[0].last_delivery_s == 5.0


class CheckedQueue(MailQueue):
    """A MailQueue that checks the limits after every dispatch and records the
    size of every delivery request."""

    instances: list["CheckedQueue"] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.dispatches = 0
        self.request_sizes: list[int] = []
        sizes = self.request_sizes

        class Requests(deque):
            def append(self, item):
                sizes.append(item[-1])
                super().append(item)

        self.requests = [Requests() for _ in self.requests]
        CheckedQueue.instances.append(self)

    def _scan(self, now: float) -> None:
        # The scan reads a message's todo_mask and pending count instead of walking its todo.
        for m in self.messages.values():
            assert m.todo_mask == sum(1 << d for d in m.todo), (m.id, m.todo_mask, m.todo)
            if m.where == "deferred" and not m.rejected_now and not m.purged:
                assert m.pending == sum(m.todo.values()), (m.id, m.pending, m.todo)
        super()._scan(now)

    def _dispatch(self) -> None:
        super()._dispatch()
        self.dispatches += 1
        config = self.config
        assert self.agents_busy <= config.delivery_agents
        assert all(busy <= config.destination_concurrency for busy in self.busy_per_destination), self.busy_per_destination
        assert self.agents_busy == sum(self.busy_per_destination)
        assert self.active <= config.active_limit


DURATIONS = st.sampled_from(["0s", "100ms", "1s", "7s", {"dist": "uniform", "low": "100ms", "high": "5s"},
                             {"dist": "exponential", "mean": "2s"}])


@st.composite
def quarters(draw, parts: int):
    """``parts`` shares that are multiples of 1/4 and sum to exactly 1."""
    cuts = sorted(draw(st.lists(st.integers(0, 4), min_size=parts - 1, max_size=parts - 1)))
    edges = [0, *cuts, 4]
    return [(b - a) / 4 for a, b in zip(edges, edges[1:])]


@st.composite
def outcomes(draw):
    defer = draw(st.integers(0, 8))
    reject = draw(st.integers(0, 8 - defer))
    return {"defer": defer / 8, "reject": reject / 8}


@st.composite
def small_scenarios(draw):
    lists = {
        f"l{i}": {
            "threshold": draw(st.integers(1, 200)),
            "window": draw(st.sampled_from(["1m", "2m", "5m"])),
            "detection_delay": draw(st.sampled_from(["0s", "1m", "10m"])),
            "action": draw(st.sampled_from(["reject", "defer"])),
            "expiry": draw(st.sampled_from(["1m", "10m", "1h"])),
            "delist_delay": draw(st.sampled_from(["0s", "5m"])),
        }
        for i in range(draw(st.integers(0, 2)))
    }
    n = draw(st.integers(1, 3))
    legit, spam = draw(quarters(n)), draw(quarters(n))
    # A destination that receives nothing is an input error; such draws are not scenarios.
    assume(all(legit[i] + spam[i] > 0 for i in range(n)))
    destinations = {}
    for i in range(n):
        d = {"legit_share": legit[i], "spam_share": spam[i], "delivery_time": draw(DURATIONS),
             "legit": draw(outcomes()), "spam": draw(outcomes()),
             "lists": draw(st.lists(st.sampled_from(sorted(lists)), unique=True)) if lists else []}
        if draw(st.booleans()):
            d["rate_limit"] = {"messages": draw(st.integers(1, 5)), "window": draw(st.sampled_from(["10s", "1m", "5m"]))}
        destinations[f"d{i}"] = d
    minimal = draw(st.integers(30, 600))
    queue = {
        "active_limit": draw(st.integers(1, 20)),
        "delivery_agents": draw(st.integers(1, 6)),
        "destination_concurrency": draw(st.integers(1, 4)),
        "recipients_per_request": draw(st.integers(1, 10)),
        "minimal_backoff": minimal,
        "maximal_backoff": minimal + draw(st.integers(0, 3000)),
        "queue_run_delay": draw(st.integers(10, 300)),
        "maximal_queue_lifetime": draw(st.integers(60, 3600)),
        "bounce_queue_lifetime": draw(st.integers(60, 3600)),
        "double_bounce": draw(st.sampled_from(["drop", "postmaster"])),
    }
    users = {"name": "users", "kind": "user", "count": draw(st.integers(1, 10)),
             "origins": {"own": 0.5, "unknown": 0.5}, "messages_per_day": draw(st.integers(20, 300)),
             "recipients": draw(st.sampled_from([1, 3, {"dist": "geometric", "mean": 1.5}])), "retries": 1}
    populations = [users]
    if draw(st.booleans()):
        accounts = draw(st.integers(1, users["count"]))
        populations.append({
            "name": "bots", "kind": "bot", "count": draw(st.integers(1, 3)), "start": draw(st.sampled_from(["0s", "5m"])),
            "ramp": "1m", "accounts": accounts, "accounts_from": "users", "origins": {"unknown": 1.0},
            "pause": draw(st.sampled_from(["5s", "20s", "1m"])), "patience": "60s",
            "recipients": {"dist": "uniform", "low": 1, "high": draw(st.integers(1, 60))},
            "forged_sender": draw(st.sampled_from([0.0, 0.5, 1.0])),
        })
    operator = None
    if draw(st.booleans()):
        operator = {
            "rule": draw(st.sampled_from(["queue_size", "bounces", "account_volume"])),
            "threshold": draw(st.integers(1, 50)), "window": "10m",
            "check_interval": draw(st.sampled_from(["1m", "5m"])),
            "reaction_delay": draw(st.sampled_from(["0s", "2m"])),
            "reset_accounts": draw(st.integers(0, 3)), "suspicious_volume": draw(st.integers(0, 50)),
            "mistake": draw(st.sampled_from([0.0, 0.5])), "purge": draw(st.booleans()),
            "request_delisting": draw(st.booleans()),
        }
    policies = {
        "limit": {"recipient_restrictions": ["check_policy_service rl", "permit_sasl_authenticated", "reject"],
                  "services": {"rl": {"type": "ratelimit", "count": "recipients", "limit": 20, "window": "10m",
                                      "action": "REJECT"}}},
        "hold": {"recipient_restrictions": ["check_client_access pcre:m"], "maps": {"m": "/^unknown$/ HOLD"}},
    }
    sc = scenario(populations, queue=queue, destinations=destinations, reputation=lists, operator=operator,
                  policies=policies, horizon=draw(st.sampled_from(["20m", "40m", "1h"])))
    return sc, draw(st.sampled_from(["none", "limit", "hold"])), draw(st.integers(0, 2**16))


@pytest.mark.pure_only  # swaps world's MailQueue for CheckedQueue
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_scenarios())
def test_limits_and_conservation_on_random_small_scenarios(case):
    sc, policy, seed = case
    CheckedQueue.instances.clear()
    original = world_module.MailQueue
    world_module.MailQueue = CheckedQueue
    try:
        result = simsub.run(sc, policy=policy, seed=seed)
    finally:
        world_module.MailQueue = original
    (queue,) = CheckedQueue.instances
    if len(result.deliveries):
        assert queue.dispatches > 0, "the check never ran: MailQueue._dispatch was renamed?"
        assert queue.request_sizes, "no delivery request seen: MailQueue.requests changed?"
    assert all(isinstance(n, int) and 1 <= n <= sc.queue.recipients_per_request for n in queue.request_sizes)
    assert_conservation(result)


# ============================================================================= 5. conservation at scale
REDUCED = {"populations.subscribers.count": 2000, "populations.botnet.count": 20, "scenario.horizon": "20h"}
ATTACK_START = 12 * 3600.0


@pytest.fixture(scope="module")
def incident():
    """The default scenario at a tenth of its clients and a fifth of its bots, to
    20:00.  The operator notices at 13:45 and, with its 2 h reaction, acts at
    15:45; portal-jp's list (a deferring one) lets the server go 4 h after the
    request, at 19:45, and the legitimate mail it held back is delivered then.
    (At 14:00 or 16:00 neither has happened yet, and the latency test fails.)"""
    sc = simsub.load_scenario(DEFAULT_SCENARIO, REDUCED)
    return {policy: simsub.run(sc, policy=policy) for policy in ("none", "selective-1-5s")}


@pytest.mark.parametrize("policy", ["none", "selective-1-5s"])
def test_conservation_on_the_default_scenario(incident, policy):
    result = incident[policy]
    assert len(result.deliveries) > 1000
    assert_conservation(result)


# ============================================================================= 6. reputation lists and rate limits
def listing_world(threshold=40, window="1m", detection="5m", expiry="1h", action="reject", **queue):
    reputation = {"dnsbl": {"threshold": threshold, "window": window, "detection_delay": detection,
                            "expiry": expiry, "action": action}}
    return start_world(scenario(destinations={"d": dest(lists=["dnsbl"])}, reputation=reputation, queue=queue))


def test_listing_at_the_end_of_the_minute_plus_detection_delay_and_delisting_by_expiry():
    """50 spam recipients delivered at 6 s (minute 0) > threshold 40: listed at
    60 + 300 s; no more spam: delisted 1 h after the last spam, at 3606 s."""
    w = listing_world()
    inject(w, 5, 1, Kind.SPAM, {0: 50})
    w.env.run(until=5000)
    assert events(w) == [(360.0, "listed", "dnsbl"), (3606.0, "delisted", "dnsbl (expired)")]


@pytest.mark.parametrize("recipients, listed", [(40, False), (41, True)])
def test_listing_needs_more_than_the_threshold(recipients, listed):
    w = listing_world(threshold=40)
    inject(w, 5, 1, Kind.SPAM, {0: recipients})
    w.env.run(until=1000)
    assert [e[1] for e in events(w)][:1] == (["listed"] if listed else [])


@pytest.mark.parametrize("window, listed_at", [("1m", None), ("2m", 120.0 + 300.0)])
def test_the_window_counts_whole_minutes(window, listed_at):
    """30 spam recipients in minute 0 and 30 in minute 1, threshold 50: a
    one-minute window never sees more than 30; a two-minute window sees 60
    when minute 1 is over."""
    w = listing_world(threshold=50, window=window)
    inject(w, 5, 1, Kind.SPAM, {0: 30})
    inject(w, 65, 2, Kind.SPAM, {0: 30})
    w.env.run(until=1000)
    listed = [t for t, what, _ in events(w) if what == "listed"]
    assert listed == ([] if listed_at is None else [listed_at])


def test_spam_that_keeps_coming_postpones_the_expiry():
    """Expiry counts from the last spam that reached a mailbox: spam rejected by
    a destination that consults the list is not seen, spam delivered elsewhere is."""
    reputation = {"dnsbl": {"threshold": 40, "window": "1m", "detection_delay": "0s", "expiry": "10m"}}
    w = start_world(scenario(destinations={"d": dest(lists=["dnsbl"], spam_share=0.5, legit_share=1.0),
                                           "other": dest(spam_share=0.5, legit_share=0.0)},
                             reputation=reputation))
    inject(w, 5, 1, Kind.SPAM, {0: 50})  # delivered at 6: listed at 60
    inject(w, 300, 2, Kind.SPAM, {0: 1})  # rejected by "d" (listed) at 301: not seen
    inject(w, 400, 3, Kind.SPAM, {1: 1})  # delivered by "other" at 401: seen
    w.env.run(until=3000)
    assert events(w) == [(60.0, "listed", "dnsbl"), (1001.0, "delisted", "dnsbl (expired)")]


@pytest.mark.parametrize("action", ["reject", "defer"])
def test_a_listed_server_has_even_legitimate_mail_rejected_or_deferred(action):
    """Listed at 360 s, delisted at 3606 s.  A legitimate message put in the
    queue at 400 s is rejected (one bounce), or deferred until the first pass
    after the delisting: 400, 900, 1500, 2700 and 5100 s."""
    w = listing_world(action=action)
    inject(w, 5, 1, Kind.SPAM, {0: 50})
    inject(w, 400, 2, Kind.LEGIT, {0: 3})
    w.env.run(until=8000)
    d = finish(w)
    legit = d[d["message_id"] == 2].iloc[0]
    if action == "reject":
        assert (legit.bounced, legit.delivered) == (3, 0)
        assert w.queue.bounces == 1
    else:
        assert (legit.delivered, legit.bounced) == (3, 0)
        assert legit.last_delivery_s == 5101.0 and legit.latency_s == 4701.0
        assert w.queue.bounces == 0


def test_listing_and_delisting_through_the_simulator_with_an_operator_request():
    """One bot sends 50 spam recipients at ~10 s, delivered within minute 0:
    the list (threshold 40, no detection delay) lists the server at 60 s.  The
    operator's first check (120 s) sees the account's 50 recipients > 10,
    reacts 1 min later (180 s): resets the account, asks for delisting, which
    takes 10 min: delisted at 780 s."""
    reputation = {"dnsbl": {"threshold": 40, "window": "1m", "detection_delay": "0s", "expiry": "1d",
                            "delist_delay": "10m"}}
    operator = {"rule": "account_volume", "threshold": 10, "window": "1h", "check_interval": "2m",
                "reaction_delay": "1m", "reset_accounts": 5, "suspicious_volume": 10}
    sc = scenario([one_shot_bot(recipients=50)], destinations={"d": dest(lists=["dnsbl"])}, reputation=reputation,
                  operator=operator, horizon="20m")
    result = simsub.run(sc, seed=1)
    ev = [tuple(row) for row in result.events.itertuples(index=False)]
    assert [e for e in ev if e[1] in ("listed", "delisted")] == [(60.0, "listed", "dnsbl"),
                                                                  (780.0, "delisted", "dnsbl (operator request)")]
    assert [e for e in ev if e[1] == "detected"][0] == (120.0, "detected", "account_volume = 50 > 10")
    action = [e for e in ev if e[1] == "action"][0]
    assert action == (180.0, "action", "reset 1 accounts, purged 0 recipients, asked dnsbl to delist")
    assert result.summary["reputation"]["dnsbl"] == {"listed_s": 720.0, "listings": 1, "first_listed_at_s": 60.0}
    assert result.summary["operator"]["first_action_at_s"] == 180.0
    assert result.summary["operator"]["detected_at_s"] == 120.0
    listed = result.timeseries["listed_dnsbl"].to_numpy()
    assert listed[:4] == pytest.approx([240 / 300, 1.0, 180 / 300, 0.0])


def test_rate_limit_defers_requests_beyond_the_limit_in_a_fixed_window():
    """2 requests per minute (fixed windows from t = 0), 5 one-recipient
    requests at once: 2 delivered at 1 s; 3 deferred, retried at 600 s (window
    [600, 660)): 2 more at 601 s; the last one at 1501 s."""
    destinations = {"d": dest(rate_limit={"messages": 2, "window": "1m"})}
    queue = {"recipients_per_request": 1, "destination_concurrency": 5}
    w = start_world(scenario(destinations=destinations, queue=queue))
    inject(w, 0, 1, Kind.LEGIT, {0: 5})
    log = trace(w, 1, until=3000)
    assert log == [(0.0, "active"), (1.0, "deferred", 301.0), (600.0, "active"), (601.0, "deferred", 1202.0),
                   (1500.0, "active"), (1501.0, "done")]
    d = finish(w)
    assert (d.iloc[0].delivered, d.iloc[0].last_delivery_s) == (5, 1501.0)


def test_spam_sent_exactly_at_a_minute_boundary_does_not_erase_the_previous_minute():
    """Destination "a" (30 s per request) delivers 40 spam recipients at 30 s,
    "b" (60 s) 40 more at exactly 60 s.  Minute 0 had 40 > 30: listed at
    60 + 300 s.  (Constant delivery times that divide a minute do this; the
    spam at 60 s once reset the count before minute 0 was closed.)"""
    destinations = {"a": dest(legit_share=0.5, spam_share=0.5, delivery_time="30s", lists=["dnsbl"]),
                    "b": dest(legit_share=0.5, spam_share=0.5, delivery_time="60s", lists=["dnsbl"])}
    reputation = {"dnsbl": {"threshold": 30, "window": "1m", "detection_delay": "5m", "expiry": "1h"}}
    w = start_world(scenario(destinations=destinations, reputation=reputation))
    inject(w, 0, 1, Kind.SPAM, {0: 40, 1: 40})
    w.env.run(until=1000)
    assert [(t, what) for t, what, _ in events(w)][:1] == [(360.0, "listed")]


# ============================================================================= 7. the operator
def operator_run(reset_accounts: int, **keys):
    """Three bots, each with its own stolen account, whose spam is deferred
    (so it stays queued): "big" 50 recipients every ~31 s, "mid" 20 every
    ~25 s, "small" 1 a minute.  The operator checks every 5 min; its first
    check (300 s) sees big's volume > 100, it acts at 360 s."""
    bots = [
        one_shot_bot("big", recipients=50, pause="20s", stop="8m"),
        one_shot_bot("mid", recipients=20, pause="20s", stop="8m"),
        one_shot_bot("small", recipients=1, pause="1m", stop="8m"),
    ]
    operator = {"rule": "account_volume", "threshold": 100, "window": "10m", "check_interval": "5m",
                "reaction_delay": "1m", "reset_accounts": reset_accounts, "suspicious_volume": 100, **keys}
    sc = scenario([QUIET_USERS, *bots], destinations={"d": dest(spam={"defer": 1.0})}, operator=operator,
                  horizon="8m", bin="1m")
    return simsub.run(sc, seed=1)


@pytest.mark.parametrize("reset_accounts, expected", [(1, ["big-stolen0"]), (2, ["big-stolen0", "mid-stolen0"]),
                                                      (5, ["big-stolen0", "mid-stolen0"])])
def test_operator_resets_the_top_accounts_above_the_suspicious_volume(reset_accounts, expected):
    result = operator_run(reset_accounts)
    m = result.messages
    d = result.deliveries.merge(m[["message_id", "account"]], on="message_id")
    d["account"] = d["account"].astype(str)
    ev = [tuple(row) for row in result.events.itertuples(index=False)]
    # detected at the first check, on the top account's volume; acted a minute later, once
    big_by_300 = int(d.loc[(d["account"] == "big-stolen0") & (d["accepted_s"] <= 300), "recipients"].sum())
    assert ev[0] == (300.0, "detected", f"account_volume = {big_by_300} > 100")
    actions = [e for e in ev if e[1] == "action"]
    assert len(actions) == 1 and actions[0][0] == 360.0
    assert f"reset {len(expected)} accounts" in actions[0][2]
    assert result.summary["operator"]["accounts_reset"] == len(expected)
    # the small account is never a suspect (its volume is below 100)
    volumes = d[d["accepted_s"] <= 360].groupby("account")["recipients"].sum()
    assert volumes["big-stolen0"] > volumes["mid-stolen0"] > 100 >= volumes["small-stolen0"]

    purged_total = 0
    for account in ("big-stolen0", "mid-stolen0", "small-stolen0"):
        mine = d[d["account"] == account]
        before = mine[mine["accepted_s"] < 360]
        after = mine[mine["accepted_s"] > 360]
        sessions = m[m["account"].astype(str) == account]
        late = sessions[sessions["first_attempt_s"] > 360]
        if account in expected:
            # queued mail purged; mail still accepted by a session that passed AUTH before 360 s stays
            assert len(before) > 0 and (before["purged"] == before["recipients"]).all()
            assert (after["purged"] == 0).all()
            purged_total += int(before["purged"].sum())
            # the next session fails AUTH; the bot drops the account and, having no other, stops
            assert list(late["outcome"].astype(str)) == ["auth_failed"]
        else:
            assert (mine["purged"] == 0).all() and (mine["queued"] == mine["recipients"]).all()
            assert (late["outcome"].astype(str) == "accepted").all() and len(late) > 0
    assert f"purged {purged_total} recipients" in actions[0][2]
    assert result.summary["queue"]["purged"] == purged_total
    assert_conservation(result)


def test_operator_without_purge_leaves_the_mail_queued():
    result = operator_run(2, purge=False)
    action = result.events[result.events["event"] == "action"].iloc[0]
    assert action.t_s == 360.0 and action.detail.startswith("reset 2 accounts, purged 0 recipients")
    d = result.deliveries
    assert (d["purged"] == 0).all() and (d["queued"] == d["recipients"]).all()
    failed = result.messages[result.messages["outcome"] == "auth_failed"]
    assert sorted(failed["account"].astype(str)) == ["big-stolen0", "mid-stolen0"]


def test_operator_mistakes_reset_legitimate_accounts_instead():
    """mistake = 1: every pick is a random legitimate login; the bots go on."""
    result = operator_run(2, mistake=1.0)
    assert result.summary["operator"]["accounts_reset"] == 2
    m = result.messages
    assert (m["outcome"] == "accepted").all()
    assert result.summary["queue"]["purged"] == 0  # the users had nothing queued


@pytest.mark.parametrize("rule, value", [("queue_size", 3), ("bounces", 3), ("account_volume", 12)])
def test_operator_indicators(rule, value):
    """Three messages put in the queue at 30 s by one account (12 recipients:
    5 + 5 + 2), all rejected (3 bounces, delivered
    locally at once) or deferred (3 messages queued).  First check at 60 s."""
    outcome = {"reject": 1.0} if rule == "bounces" else {"defer": 1.0}
    operator = {"rule": rule, "threshold": 2, "window": "1m", "check_interval": "1m", "reaction_delay": "0s",
                "reset_accounts": 0}
    w = start_world(scenario(destinations={"d": dest(spam=outcome)}, operator=operator))
    for i, n in enumerate((5, 5, 2), start=1):
        inject(w, 30, i, Kind.SPAM, {0: n}, account="acct", local_sender=True)
    w.env.run(until=200)
    ev = events(w)
    assert ev[0] == (60.0, "detected", f"{rule} = {value} > 2")
    assert ev[1] == (60.0, "action", "reset 0 accounts, purged 0 recipients, asked no list to delist")
    # the window is one minute: at the next check (120 s) bounces and volumes have aged out; the queue has not
    assert [e[0] for e in ev if e[1] == "detected"] == ([60.0, 120.0, 180.0] if rule == "queue_size" else [60.0])


def test_recipients_rejected_in_a_pass_still_open_at_the_end_are_counted():
    """1 agent, 1 recipient per request, 100 s each, all rejected: when the run
    ends at 300 s, 2 of 5 recipients are rejected in the open pass (not bounced
    yet) and 3 wait: all 5 count as still queued."""
    destinations = {"d": dest(spam={"reject": 1.0}, delivery_time="100s")}
    sc = scenario([one_shot_bot(recipients=5)], destinations=destinations,
                  queue={"delivery_agents": 1, "recipients_per_request": 1}, horizon="5m")
    result = simsub.run(sc, seed=1)
    (row,) = result.deliveries.itertuples()
    assert (row.recipients, row.queued, row.bounced, row.delivered) == (5, 5, 0, 0)
    assert result.summary["queue"]["bounces"] == 0


def test_purging_a_message_in_the_middle_of_a_pass_counts_each_recipient_once():
    """One agent, one recipient per request, three rejected recipients: at
    1.5 s one is rejected, two are waiting.  The purge takes those two; the
    rejected one is bounced (once)."""
    destinations = {"d": dest(spam={"reject": 1.0})}
    w = start_world(scenario(destinations=destinations, queue={"delivery_agents": 1, "recipients_per_request": 1}))
    inject(w, 0, 1, Kind.SPAM, {0: 3}, account="victim", local_sender=True)
    w.env.run(until=1.5)
    assert w.queue.purge({"victim"}) == 2
    w.env.run(until=100)
    d = finish(w)
    row = d[d["message_id"] == 1].iloc[0]
    assert (row.bounced, row.purged, row.queued, row.delivered) == (1, 2, 0, 0)
    assert w.queue.bounces == 1


# ============================================================================= 8. the May 2012 incident
def attack_latency(result) -> np.ndarray:
    d = result.deliveries
    legit = d[(d["kind"] == "legit") & (d["accepted_s"] >= ATTACK_START)]
    return legit["latency_s"].dropna().to_numpy()


def test_incident_without_a_policy_grows_the_queue(incident):
    none, selective = incident["none"], incident["selective-1-5s"]
    ts = none.timeseries
    before = int(ts.loc[ts["t_end_s"] <= ATTACK_START, "mail_deferred_peak"].max())
    normal = max(before, selective.summary["queue"]["peak_deferred"], 10)
    assert none.summary["queue"]["peak_deferred"] >= 100 * normal, (none.summary["queue"], before)


def test_incident_without_a_policy_gets_the_server_listed(incident):
    reputation = incident["none"].summary["reputation"]
    assert any(r["listings"] >= 1 and r["listed_s"] > 0 for r in reputation.values()), reputation
    assert all(r["first_listed_at_s"] is None or r["first_listed_at_s"] > ATTACK_START for r in reputation.values())


def test_incident_without_a_policy_makes_the_operator_act(incident):
    none = incident["none"]
    operator = none.summary["operator"]
    assert operator["detected_at_s"] is not None and operator["detected_at_s"] > ATTACK_START
    assert operator["actions"] >= 1 and operator["accounts_reset"] >= 1
    assert operator["first_action_at_s"] == pytest.approx(operator["detected_at_s"] + 2 * 3600)
    assert none.summary["queue"]["purged"] > 0


def test_incident_without_a_policy_delays_legitimate_delivery(incident):
    """Legitimate messages accepted from 12:00 and delivered: p95 latency over
    30 min without a policy; a few seconds before the attack, and with
    selective tarpitting."""
    none = incident["none"]
    latency = attack_latency(none)
    assert len(latency) > 50
    assert np.quantile(latency, 0.95) > 1800.0
    d = none.deliveries
    before = d[(d["kind"] == "legit") & (d["accepted_s"] < ATTACK_START)]["latency_s"].dropna()
    assert np.quantile(before, 0.95) < 60.0
    assert np.quantile(attack_latency(incident["selective-1-5s"]), 0.95) < 60.0


def test_incident_with_selective_tarpitting_never_lists_the_server(incident):
    selective = incident["selective-1-5s"]
    assert all(r["listings"] == 0 and r["listed_s"] == 0 for r in selective.summary["reputation"].values())
    assert "listed" not in set(selective.events["event"])
    assert selective.summary["operator"]["actions"] == 0
