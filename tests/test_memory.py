"""What a run keeps in memory: nothing that grows with the run unless it must.

The figures themselves (bytes per recorded message at 1x, 4x, 16x) are the
benchmark's (``python -m benchmarks``); these tests pin the properties they rest on:

* the model makes no reference cycles per message, which is what lets
  :func:`simsub.model.world.simulate` pause Python's cyclic garbage collector
  during a run without the run's memory growing;
* the queue keeps the operator's logs only as far back as the operator looks;
* the deferred queue holds each message once, as itself (in a long listing most
  of the mail queue is deferred at the benchmark's peak);
* the operator's list of legitimate logins is not a list of strings.
"""

from __future__ import annotations

import copy
import gc
import types

import pytest

from simsub import load_scenario
from simsub.workload.clients import AccountNames
from simsub.model.outcomes import Outcome
from simsub.model.queue import Kind
from simsub.model.recorder import Recorder
from simsub.model.world import World
from simsub.scenario.loader import build_scenario

from .conftest import BASE
from .test_queue import dest, inject, scenario, start_world
from .test_queue_dead import refusing_world


def _bots_only(horizon: str):
    """Ten bots in a closed loop against a mail queue, a policy that refuses some
    recipients, and no users: the set of clients is the same however long it runs,
    so only per-message garbage can grow with the horizon."""
    data = copy.deepcopy(BASE)
    data["scenario"]["horizon"] = horizon
    data["populations"] = [{"name": "bots", "kind": "bot", "count": 10, "start": "0s", "ramp": "10s",
                            "accounts": 5, "origins": {"unknown": 1.0}, "pause": "5s", "recipients": 20,
                            "patience": "60s"}]
    data["destinations"] = {"d": dest(delivery_time="500ms", spam={"defer": 0.2, "reject": 0.3})}
    data["queue"] = {}
    return build_scenario(data, "<memory>", {})


def _busy_default(horizon: str):
    """The default scenario squeezed so that every path runs: subscribers and
    bots from t = 0, a rate-limit service (throttle-100h: a stage that waits for
    simulated time), 5 smtpd and a short accept queue (waits, refusals,
    abandoned connections), the mail queue, lists and the operator (acting within
    minutes)."""
    return load_scenario(None, {
        "horizon": horizon, "populations.subscribers.count": 2000, "populations.subscribers.messages_per_day": 200,
        "populations.botnet.start": "0s", "populations.botnet.ramp": "1m", "populations.botnet.count": 20,
        "populations.botnet.patience": "60s", "populations.botnet.connect_timeout": "1s",
        "mta.process_limit": 5, "mta.backlog": 5,
        "operator.threshold": 10, "operator.check_interval": "1m", "operator.reaction_delay": "2m",
    })


SCENARIOS = {"bots, no policy": (_bots_only, "none"), "default squeezed, rate-limit service": (_busy_default, "throttle-100h")}


def _cyclic_garbage_of_a_run(build, policy: str, horizon: str) -> tuple[int, int, int]:
    """(objects in reference cycles that a run with the collector off left behind,
    not counting the world itself, which is still in use; messages; sessions)."""
    gc.collect()
    was_on = gc.isenabled()
    gc.disable()
    try:
        recorder = Recorder()
        world = World(build(horizon), policy, 1, recorder)
        world.start()
        world.env.run(until=world.done)
        garbage = gc.collect()  # the world is still referenced: only dead cycles count
        del world
        return garbage, len(recorder.messages["message_id"]), len(recorder.sessions["arrival_s"])
    finally:
        if was_on:
            gc.enable()


@pytest.mark.parametrize("name", SCENARIOS)
def test_a_run_makes_no_reference_cycles_per_message(name):
    """With the collector paused during a run, cycles made per message would pile
    up unseen; a run twice as long must leave no more of them."""
    build, policy = SCENARIOS[name]
    short, short_messages, _ = _cyclic_garbage_of_a_run(build, policy, "10m")
    long, long_messages, long_sessions = _cyclic_garbage_of_a_run(build, policy, "20m")
    assert long_messages > 1.8 * short_messages > 100
    # Fewer than one cyclic object per 20 extra messages (a cycle made per message leaves at least one each).
    assert long - short < 0.05 * (long_messages - short_messages), (short, long, short_messages, long_messages)


def test_the_squeezed_default_runs_the_paths_the_cycle_test_needs():
    """Waits for an smtpd, refusals and give-ups, the service, the operator: otherwise
    the cycle test above would not look at them."""
    recorder = Recorder()
    world = World(_busy_default("10m"), "throttle-100h", 1, recorder)
    world.start()
    world.env.run(until=world.done)
    outcomes = set(recorder.sessions["outcome"].tolist())
    waits = sum(1 for w in recorder.sessions["slot_wait_s"] if w > 0)
    assert {Outcome.REFUSED, Outcome.ABANDONED, Outcome.ACCEPTED} <= {Outcome(o) for o in outcomes}
    assert waits > 0
    assert any(what == "action" for _, what, _ in recorder.events)  # the operator acted
    assert world.policy_state.services  # the rate-limit service counted


def test_simulate_leaves_the_collector_as_it_found_it():
    from simsub.model.world import simulate

    sc = _bots_only("1m")
    assert gc.isenabled()
    simulate(sc, "none", 1, Recorder())
    assert gc.isenabled()
    gc.disable()
    try:
        simulate(sc, "none", 1, Recorder())
        assert not gc.isenabled()
    finally:
        gc.enable()


# ----------------------------------------------------------------------------- the operator's logs
def test_without_an_operator_the_queue_keeps_no_volume_or_bounce_log():
    # Every spam recipient is rejected: each message bounces once.
    w = start_world(scenario(horizon="1h", destinations={"d": dest(spam={"reject": 1.0})}))
    for k in range(5):
        w.env.run(until=10.0 * (k + 1))
        w.queue.accept(k + 1, Kind.SPAM, "acct", False, {0: 3})
    w.env.run(until=200.0)
    assert w.queue.bounces == 5
    assert len(w.queue.volume) == 0 and len(w.queue.bounce_log) == 0


@pytest.mark.parametrize("rule", ["account_volume", "bounces"])
def test_the_queue_keeps_the_operators_logs_for_its_window_only(rule):
    """Entries at or before now - window go when the next one comes (the operator
    itself drops the same entries when it looks: ``t <= now - window``)."""
    operator = {"rule": rule, "threshold": 1e9, "window": "60s", "check_interval": "1h"}
    # Every spam recipient is rejected: each message bounces once.
    w = start_world(scenario(horizon="1h", destinations={"d": dest(spam={"reject": 1.0})}, operator=operator))
    times = [10.0, 40.0, 70.0, 100.0, 130.0]
    for k, t in enumerate(times):
        w.env.run(until=t)
        w.queue.accept(k + 1, Kind.SPAM, f"acct{k}", False, {0: 2})
    assert [entry[0] for entry in w.queue.volume] == [100.0, 130.0]  # 70 <= 130 - 60 went
    if rule == "bounces":
        w.env.run(until=200.0)  # the bounces of the messages accepted at 100 and 130 s: 1 s delivery later
        assert list(w.queue.bounce_log) == [101.0, 131.0]  # 71 <= 131 - 60 went when 131 came
    else:
        assert w.queue.bounce_window is None and len(w.queue.bounce_log) == 0


# ----------------------------------------------------------------------------- the deferred queue
def _deferred_and_entries(queue):
    deferred = [m for m in queue.messages.values() if m.where == "deferred"]
    entries = [m for bucket in queue.deferred_buckets.values() for m in bucket]
    return deferred, entries


def test_the_deferred_queue_holds_each_message_once_as_itself():
    """A dead destination keeps 300 messages of two senders deferred through several
    scans (each scan defers the suspended ones again at once, into a later bucket).
    Each deferred message is held by the queue's ``messages`` and by one bucket, as
    itself: a (retry_at, id, message) entry per message, or a second index by id,
    cost 88 and ~40 bytes per deferred message (20 and 8 B per recorded message of
    the benchmark's 1x run, whose peak has 18,000 messages deferred).  A purged
    message's entry goes at the scan that reaches its bucket."""
    w = refusing_world()
    for i in range(1, 301):
        inject(w, i, i, Kind.LEGIT, {0: 1}, account="a" if i % 3 else "b")
    w.env.run(until=2050)  # scans every 300 s; the destination dies again at each retry
    queue = w.queue
    deferred, entries = _deferred_and_entries(queue)
    assert len(deferred) > 250 and queue.deferred_count == len(deferred)
    assert sorted(map(id, entries)) == sorted(map(id, deferred))  # each once, and nothing else
    gc.collect()
    buckets = {id(bucket) for bucket in queue.deferred_buckets.values()}
    sample = deferred[::25]
    ours = (deferred, entries, sample)
    for message in sample:
        # (a suspended generator's local variable, such as the scan's last message, is no index)
        holders = [h for h in gc.get_referrers(message)
                   if not any(h is o for o in ours) and not isinstance(h, (types.GeneratorType, types.FrameType))]
        assert len(holders) == 2, [type(h).__name__ for h in holders]
        assert any(h is queue.messages for h in holders) and any(id(h) in buckets for h in holders)

    purged = queue.purge({"b"})
    assert purged == 100
    deferred, entries = _deferred_and_entries(queue)
    assert queue.deferred_count == len(deferred) == 200 and len(entries) == 300  # not yet scanned
    w.env.run(until=w.env.now + 2 * queue.config.queue_run_delay)
    deferred, entries = _deferred_and_entries(queue)
    assert queue.deferred_count == len(deferred) and sorted(map(id, entries)) == sorted(map(id, deferred))
    assert all(m.account == "a" for m in deferred)


# ----------------------------------------------------------------------------- legitimate logins
def test_account_names_are_the_logins_in_population_order():
    names = AccountNames([("subscribers", 3), ("business", 2)])
    expected = ["subscribers0", "subscribers1", "subscribers2", "business0", "business1"]
    assert len(names) == 5
    assert list(names) == expected
    assert [names[i] for i in range(-5, 0)] == expected
    with pytest.raises(IndexError):
        names[5]
    with pytest.raises(IndexError):
        names[-6]
    assert len(AccountNames([])) == 0
