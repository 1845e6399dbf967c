"""The deferred-queue scan's shortcuts change nothing observable.

:meth:`MailQueue._scan_deferred` keeps deferred messages in buckets by retry
time, activates due messages on the spot while nothing waits in the incoming
queue, and defers again at once a message whose every destination is dead.
Postfix's plain order of work, kept here as the reference
(:class:`PlainScanQueue`), is: every deferred message with ``retry_at <= now``
goes to the incoming queue in (retry_at, id) order, then the queue is pumped.

Random cases are built to reach every branch of the shortcut: destinations that
die and revive while mail waits for them, mail that expires while its
destination is dead (its bounce must queue behind the rest of the scan), an
active queue so small that a scan fills it, deliveries long enough that mail
still waits in the incoming queue when the next scan comes, a backoff shorter
than the scan interval (a message deferred again in a scan must still wait for
the next one), and bounces to
forged senders (random draws).  Both queues must agree step by step on the
queue's state and counters, and at the end on every recorded table, the
queue's random stream and the number of events.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import simpy
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import simsub
from simsub.model import world as world_module
from simsub.model.queue import Kind, MailQueue, QueuedMessage
from simsub.model.recorder import Recorder
from simsub.model.reputation import Reputation
from simsub.model.world import _events

from .test_queue import dest, inject, scenario, small_scenarios, start_world


class PlainScanQueue(MailQueue):
    """The deferred-queue scan in Postfix's plain order of work (the reference).

    ``situations`` counts the scans that take the shortcut's fallbacks: due mail
    while other mail waits in the incoming queue or the active queue is full,
    and mail that expires while suspended with more due mail behind it; and the
    scans where the order of mail to dead destinations matters: after mail that is
    activated (the active queue's peak), and behind the point where the shortcut
    ends (the active queue filled, or a message went the long way)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.situations = {"incoming busy": 0, "active full": 0, "expires with mail behind": 0,
                           "suspended after live": 0, "suspended behind the shortcut's end": 0}

    def _scan_deferred(self):
        while True:
            yield self.env.timeout(self.config.queue_run_delay)
            self._plain_scan(self.env.now)

    def _plain_scan(self, now: float) -> None:
        due = sorted((m for m in self.messages.values() if m.where == "deferred" and m.retry_at <= now),
                     key=lambda m: (m.retry_at, m.id))
        if due:
            self.situations["incoming busy"] += bool(self.incoming)
            self.situations["active full"] += self.active >= self.active_limit
            self.situations["expires with mail behind"] += any(self._expires_suspended(m, now) for m in due[:-1])
            dead = [bool(m.todo) and self._dead(m) for m in due]
            self.situations["suspended after live"] += not self.incoming and self.active < self.active_limit and any(
                d and any(m.todo and not before for m, before in zip(due[:i], dead[:i])) for i, d in enumerate(dead))
            self.situations["suspended behind the shortcut's end"] += self._suspended_behind_end(due, dead, now)
        for message in due:
            self.deferred_count -= 1
            message.where = "incoming"
            self.incoming.append(message)
        if due:
            self._pump()

    def _dead(self, message) -> bool:
        return all(d != self.local and self.windows[d].window == 0 for d in message.todo)

    def _expires_suspended(self, message, now: float) -> bool:
        lifetime = (self.config.bounce_queue_lifetime if message.kind >= Kind.BOUNCE
                    else self.config.maximal_queue_lifetime)
        return now - message.accepted_at >= lifetime and self._dead(message)

    def _suspended_behind_end(self, due, dead, now: float) -> bool:
        """Mail to dead destinations due after the point where the scan's shortcut
        ends mid-scan: the active queue filled, or a message went the long way."""
        if self.incoming or self.active >= self.active_limit:
            return False  # no shortcut at all
        active = self.active
        for i, (m, d) in enumerate(zip(due, dead)):
            if m.todo and not d:
                active += 1
                ended = active >= self.active_limit
            else:
                ended = not d or self._expires_suspended(m, now)
            if ended:
                return any(dead[i + 1:])
        return False


def state(queue: MailQueue) -> tuple:
    """What the rest of the model and the recorder can see of the queue."""
    return (queue.sizes(), queue.peak_active, queue.peak_deferred, queue.suspended_recipients, queue.suspensions,
            queue.attempts, queue.bounces, queue.double_bounces, queue.waiting_requests, queue.agents_busy,
            tuple(w.window for w in queue.windows), queue.uniform.index)


def finished(w) -> dict:
    """The run's end as ``simulate`` makes it: columns byte for byte (NaN included)."""
    queue = w.queue
    queue.finish_all()
    r = w.recorder
    return {"deliveries": {k: v.tobytes() for k, v in r.deliveries.items()},
            "samples": {k: v.tobytes() for k, v in r.samples.items()},
            "totals": dict(r.totals), "events": _events(w.env), "rng": queue.rng.bit_generator.state,
            "where": {m.id: (m.where, m.retry_at) for m in queue.messages.values()}}


def _some_recipient(m: tuple) -> tuple:
    return m if sum(m[1:4]) else (m[0], 1, *m[2:])


# The tests that swap world's MailQueue for a reference class by patching the module,
# which the compiled world does not see (it would compare the compiled queue with itself),
# run in the pure-Python pass (SIMSUB_PURE_PYTHON=1), skipped with the reason otherwise.


@st.composite
def dying_cases(draw):
    """Messages (integer times) to two destinations that consult a list refusing at
    the greeting and one that takes everything; the list goes on and off.  Small
    active queues, long deliveries and short lifetimes make the rare paths common."""
    minimal = draw(st.sampled_from([1, 50, 100]))
    queue = {"active_limit": draw(st.integers(1, 4)), "delivery_agents": draw(st.integers(1, 4)),
             "destination_concurrency": draw(st.integers(1, 4)), "initial_concurrency": draw(st.integers(1, 4)),
             "recipients_per_request": draw(st.integers(1, 3)),
             "minimal_backoff": minimal, "maximal_backoff": minimal + draw(st.sampled_from([0, 100, 400])),
             "queue_run_delay": draw(st.sampled_from([50, 100, 137])),
             "maximal_queue_lifetime": draw(st.integers(100, 1000)),
             "bounce_queue_lifetime": draw(st.integers(100, 1000)),
             "double_bounce": draw(st.sampled_from(["drop", "postmaster"]))}
    delivery = draw(st.sampled_from(["1s", "7s", "120s", "120s"]))
    switches = sorted(draw(st.lists(st.integers(0, 3000), max_size=4)))
    messages = draw(st.lists(
        st.tuples(st.integers(0, 400), st.integers(0, 3), st.integers(0, 3), st.integers(0, 2),
                  st.sampled_from([Kind.LEGIT, Kind.SPAM]), st.booleans()).map(_some_recipient),
        min_size=10, max_size=60))
    return queue, delivery, switches, messages, draw(st.integers(0, 2**16))


def play(queue_class, case) -> tuple[list[tuple], dict, dict]:
    """Step a world with ``queue_class`` to 2 h: the queue's state after every step,
    the recorded end, and the reference's ``situations`` (empty for other queues)."""
    queue, delivery, switches, messages, seed = case
    reputation = {"bl": {"threshold": 10**9, "window": "1m", "expiry": "10d", "action": "defer", "stage": "greeting"}}
    destinations = {"d0": dest(lists=["bl"], delivery_time=delivery, legit_share=0.4, spam_share=0.4),
                    "d1": dest(lists=["bl"], delivery_time="3s", legit_share=0.3, spam_share=0.3),
                    "ok": dest(delivery_time=delivery, legit_share=0.3, spam_share=0.3)}
    sc = scenario(destinations=destinations, reputation=reputation, queue=queue, horizon="2h")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(world_module, "MailQueue", queue_class)
        w = start_world(sc, seed=seed)
    assert type(w.queue) is queue_class
    listing = w.queue.reputation.lists["bl"]
    listing.listed = True
    for k, t in enumerate(switches):  # off, on, off, … at these times
        w.env.timeout(t).callbacks.append(lambda _e, on=k % 2 == 1: setattr(listing, "listed", on))
    for i, (t, n0, n1, n_ok, kind, local) in enumerate(messages, start=1):
        inject(w, t, i, kind, {d: n for d, n in ((0, n0), (1, n1), (2, n_ok)) if n}, local_sender=local)
    steps = []
    while w.env.peek() <= 7200:
        w.env.step()
        steps.append((w.env.now, state(w.queue)))
    situations = w.queue.situations if isinstance(w.queue, PlainScanQueue) else {}
    return steps, finished(w), situations


@pytest.mark.pure_only
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dying_cases())
def test_the_scan_with_dead_destinations_matches_the_plain_order_of_work(case):
    plain_steps, plain_end, situations = play(PlainScanQueue, case)
    for situation, count in situations.items():
        event(f"{situation}: {'yes' if count else 'no'}")  # pytest --hypothesis-show-statistics
    steps, end, _ = play(MailQueue, case)
    for mine, reference in zip(steps, plain_steps):
        assert mine == reference
    assert len(steps) == len(plain_steps)
    assert end == plain_end


@pytest.mark.pure_only
def test_the_cases_reach_the_shortcut_and_its_fallbacks():
    """One case that takes each path, so the property test above is not vacuous:
    messages deferred again on the spot, live ones activated in the scan, mail that
    expires while suspended (the long way), scans that find the active queue full
    and mail waiting in the incoming queue."""
    seen = {"redeferred": 0, "activated": 0, "long way": 0}

    class CountingQueue(MailQueue):
        def _redefer(self, messages, recipients, now):
            seen["redeferred"] += len(messages)
            super()._redefer(messages, recipients, now)

        def _activate(self, message):
            seen["activated"] += self.env.now % self.config.queue_run_delay == 0 and message.retry_at > 0
            super()._activate(message)

        def _bounce(self, message, now):
            seen["long way"] += message.expired > 0
            super()._bounce(message, now)

    queue = {"active_limit": 3, "delivery_agents": 2, "destination_concurrency": 2, "initial_concurrency": 1,
             "recipients_per_request": 1, "minimal_backoff": 100, "maximal_backoff": 200, "queue_run_delay": 100,
             "maximal_queue_lifetime": 900, "bounce_queue_lifetime": 900, "double_bounce": "postmaster"}
    # Every 15 s for 10 minutes a message to a dead destination, every fourth with a
    # recipient at the live one too (120 s a delivery: the active queue fills); the
    # list is off from 400 s to 700 s.
    messages = [(t, 1, 0, int(t % 60 == 0), Kind.SPAM, t % 3 == 0) for t in range(0, 600, 15)]
    case = (queue, "120s", [400, 700], messages, 3)
    steps, end, _ = play(CountingQueue, case)
    assert all(seen.values()), seen
    plain_steps, plain_end, situations = play(PlainScanQueue, case)
    assert all(situations[k] for k in ("incoming busy", "active full", "expires with mail behind")), situations
    assert (steps, end) == (plain_steps, plain_end)


@pytest.mark.pure_only
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_scenarios())
def test_whole_runs_match_the_plain_order_of_work(case):
    """Through the front end, with reputation lists, rate limits, operators and purges."""
    sc, policy, seed = case
    tables = []
    for queue_class in (PlainScanQueue, MailQueue):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(world_module, "MailQueue", queue_class)
            result = simsub.run(sc, policy=policy, seed=seed)
        run = {k: v for k, v in result.summary["run"].items() if k not in ("wall_s", "cpu_s", "events_per_s")}
        tables.append((result.messages.to_csv(), result.deliveries.to_csv(), result.timeseries.to_csv(),
                       result.events.to_csv() if result.events is not None else None,
                       json.dumps({**result.summary, "run": run}, sort_keys=True, default=str)))
    assert tables[0] == tables[1]


# --------------------------------------------------------------------------- one scan, by hand
NOW = 1000.0  # s, when the scan runs
SCAN_QUEUE = {"delivery_agents": 2, "destination_concurrency": 2, "initial_concurrency": 1,
              "recipients_per_request": 1, "minimal_backoff": 100, "maximal_backoff": 4000, "queue_run_delay": 300,
              "maximal_queue_lifetime": 5000, "bounce_queue_lifetime": 5000, "double_bounce": "drop"}
# Destination 0 is dead, 1 takes everything; per kind of message, its recipients per destination.
TODO = {"dead": {0: 2}, "live": {1: 1}, "mixed": {0: 1, 1: 1}, "expired": {0: 1}}

# (active limit, messages active, mail waiting in the incoming queue, the deferred
# messages as (retry_at, id, kind)); the deferred ones are put in the buckets in the
# order given (not the scan's), and those after ``NOW`` are not due.
SCANS = {
    "the active queue fills mid-scan": (4, 1, False, [
        (950.0, 6, "dead"), (900.0, 5, "dead"), (940.0, 8, "dead"), (905.0, 3, "live"), (910.0, 9, "dead"),
        (930.0, 4, "mixed"), (910.0, 2, "dead"), (920.0, 7, "live"), (1001.0, 10, "dead")]),
    "expired mail in the middle": (10, 0, False, [
        (930.0, 4, "dead"), (920.0, 3, "expired"), (900.0, 1, "dead"), (910.0, 2, "live"), (925.0, 5, "live")]),
    "dead mail after live mail": (10, 2, False, [(910.0, 2, "dead"), (900.0, 1, "live"), (905.0, 3, "live")]),
    "dead mail only": (10, 0, False, [(910.0, 2, "dead"), (900.0, 1, "dead"), (1200.0, 3, "dead")]),
    "mail waits in the incoming queue": (10, 0, True, [(910.0, 2, "dead"), (900.0, 1, "live")]),
    "the active queue is full": (2, 2, False, [(910.0, 2, "dead"), (900.0, 1, "live"), (920.0, 3, "dead")]),
}


def one_scan(queue_class, layout) -> tuple[MailQueue, list]:
    """A queue at ``NOW`` in the state ``layout`` describes, then a scan, and another
    one after the deliveries it started: the queue's state after each."""
    active_limit, active, waiting, deferred = layout
    shares = {"legit_share": 0.5, "spam_share": 0.5}
    sc = scenario(destinations={"d0": dest(**shares), "d1": dest(**shares)}, queue={**SCAN_QUEUE, "active_limit": active_limit})
    env = simpy.Environment()
    recorder = Recorder()
    queue = queue_class(env, sc.queue, sc.destinations, Reputation(env, sc.reputation, recorder), recorder,
                        np.random.default_rng(1))
    env.run(until=NOW)
    queue.windows[0].window = queue.window_limit[0] = 0  # dead
    queue.active = queue.peak_active = active  # messages being delivered (their requests left out)
    for retry_at, message_id, kind in deferred:
        accepted = NOW - (SCAN_QUEUE["maximal_queue_lifetime"] if kind == "expired" else 200 + 97 * message_id)
        message = QueuedMessage(message_id, Kind.SPAM, "a", False, accepted, dict(TODO[kind]))
        queue.messages[message_id] = message
        queue._defer(message, retry_at)
    if waiting:  # put there without a pump (which would activate it at once while the active queue has room)
        message = queue.messages[100] = QueuedMessage(100, Kind.LEGIT, "b", True, NOW, {1: 1})
        queue.incoming.append(message)
    states = []
    for t in (NOW, NOW + 300):
        if t > env.now:
            env.run(until=t)
        (queue._plain_scan if isinstance(queue, PlainScanQueue) else queue._scan)(t)
        states.append((
            [m.id for m in queue.incoming], queue.active, queue.peak_active, queue.peak_deferred,
            queue.suspended_recipients, queue.waiting_requests, queue.attempts, queue.bounces,
            {m.id: (m.where, m.retry_at, dict(m.todo), m.in_flight) for m in queue.messages.values()}))
    return queue, states


@pytest.mark.parametrize("layout", SCANS.values(), ids=SCANS.keys())
def test_one_scan_matches_the_plain_order_of_work(layout):
    """Mail to dead destinations is deferred again in the buckets' order, the rest in
    (retry_at, id) order; the queue must end as the plain order leaves it, the active
    queue's peak included (what the last suspended message in order would see)."""
    _, states = one_scan(MailQueue, layout)
    _, plain = one_scan(PlainScanQueue, layout)
    assert states == plain


def test_the_hand_made_scans_reach_what_they_are_for():
    reference = {name: one_scan(PlainScanQueue, layout)[0].situations for name, layout in SCANS.items()}
    assert reference["the active queue fills mid-scan"]["suspended behind the shortcut's end"]
    assert reference["the active queue fills mid-scan"]["suspended after live"]
    assert reference["expired mail in the middle"]["suspended behind the shortcut's end"]
    assert reference["dead mail after live mail"]["suspended after live"]
    assert reference["mail waits in the incoming queue"]["incoming busy"]
    assert reference["the active queue is full"]["active full"]
