"""simsub.model.engine against SimPy itself: the same schedule played with SimPy's
``Timeout``, ``Process`` and ``Environment.run`` and with the engine's ``timeout``,
``process`` and ``run``
must process the same events in the same order, at the same times, with the same
event count, and fail the same way."""

from __future__ import annotations

import random

import pytest
import simpy

from simsub.model import engine


def simpy_timeout(env, delay, value=None):
    return env.timeout(delay, value)


def simpy_run(env, until):
    return env.run(until=until)


def simpy_process(env, generator):
    return env.process(generator)


def play(seed: int, timeout, run, process=simpy_process) -> tuple[list, int, object]:
    """A mixed schedule: processes yielding timeouts and plain events, callbacks on
    timeouts that make more timeouts, ties in time (integer delays) between all kinds.
    Returns the trace of (time, what), the events scheduled and run's value."""
    rng = random.Random(seed)
    env = simpy.Environment()
    trace: list = []
    done = env.event()
    signals = [env.event() for _ in range(5)]

    def proc(name: int):
        for step in range(rng.randint(1, 6)):
            choice = rng.random()
            if choice < 0.5:
                value = yield timeout(env, rng.randint(0, 4), (name, step))
                trace.append((env.now, "proc", name, step, value))
            elif choice < 0.7:
                yield env.timeout(rng.choice([0, 1, 2.5]))  # SimPy's own, mixed in
                trace.append((env.now, "simpy", name, step))
            else:
                signal = signals[rng.randrange(len(signals))]
                if not signal.triggered:
                    signal.succeed(name)
                    trace.append((env.now, "signal", name, step))
                else:
                    value = yield signal
                    trace.append((env.now, "woken", name, step, value))
        return name

    def callback(label):
        def fire(event):
            trace.append((env.now, "callback", label, event.value))
            if rng.random() < 0.4:
                timeout(env, rng.randint(0, 3), label + 1000).callbacks.append(callback(label + 1000))
        return fire

    def join(other, name: int):
        value = yield other  # a process waits for another one to end
        trace.append((env.now, "joined", name, value))

    procs = []
    for i in range(30):
        procs.append(process(env, proc(i)))
        timeout(env, rng.randint(0, 5), i).callbacks.append(callback(i))
    for i in range(0, 30, 3):
        process(env, join(procs[i], i))
    timeout(env, 9, "end").callbacks.append(lambda _e: done.succeed("finished"))
    timeout(env, 20, "after").callbacks.append(callback(-1))  # still pending when the run stops
    value = run(env, done)
    return trace, next(env._eid), value


@pytest.mark.parametrize("seed", range(20))
def test_same_order_times_and_count_as_simpy(seed):
    expected = play(seed, simpy_timeout, simpy_run)
    assert len(expected[0]) > 30
    for timeout, run in ((engine.timeout, simpy_run), (simpy_timeout, engine.run), (engine.timeout, engine.run)):
        assert play(seed, timeout, run) == expected
    for run in (simpy_run, engine.run):
        assert play(seed, engine.timeout, run, engine.process) == expected


def test_delay_reads_like_a_processed_timeout():
    env = simpy.Environment()
    event = engine.timeout(env, 2, "v")
    assert (event.value, event.ok, event.triggered, event.processed, event.defused) == ("v", True, True, False, False)
    seen = []
    event.callbacks.append(lambda e: seen.append((env.now, e.value)))
    assert engine.run(env, event) == "v"
    assert seen == [(2, "v")] and env.now == 2
    # Like SimPy, run puts ``until`` back (with no callbacks left) where it stopped.
    assert engine.run(env, engine.timeout(env, 1)) is None and event.processed
    with pytest.raises(ValueError, match="Negative delay -1"):
        engine.timeout(env, -1)


def crash(run, process=simpy_process):
    """A process fails and nobody waits for it."""
    env = simpy.Environment()

    def bad():
        yield env.timeout(1)
        raise KeyError("lost")

    process(env, bad())
    with pytest.raises(KeyError) as info:
        run(env, env.timeout(5))
    return info.value, env.now


def test_a_failed_event_nobody_defused_crashes_the_run_like_simpy():
    theirs, theirs_now = crash(simpy_run)
    assert theirs.args == ("lost",) and theirs_now == 1
    for run, process in ((engine.run, simpy_process), (simpy_run, engine.process), (engine.run, engine.process)):
        ours, ours_now = crash(run, process)
        assert ours.args == theirs.args and ours_now == theirs_now
        assert isinstance(ours.__cause__, KeyError) and ours.__cause__ is not ours  # a copy, caused by the original


def test_a_defused_failure_does_not_crash():
    # (SimPy's run takes only its own events as ``until``, so not an engine.process)
    for run, process in ((engine.run, engine.process), (engine.run, simpy_process), (simpy_run, simpy_process)):
        env = simpy.Environment()
        failing = env.event()

        def waiter(what):
            try:
                yield what
            except ValueError as error:
                return f"handled {error}"

        def failer():
            yield engine.timeout(env, 2)
            raise ValueError("y")

        proc = process(env, waiter(failing))
        env.timeout(1).callbacks.append(lambda _e: failing.fail(ValueError("x")))
        assert run(env, proc) == "handled x"
        # a process that fails, handled by the process waiting for it
        assert run(env, process(env, waiter(process(env, failer())))) == "handled y"
        assert env.now == 3


def test_failed_until_processed_until_and_empty_schedule():
    for run in (engine.run, simpy_run):
        env = simpy.Environment()
        until = env.event()
        env.timeout(1).callbacks.append(lambda _e: until.fail(OSError("down")))
        with pytest.raises(OSError, match="down"):
            run(env, until)

        env = simpy.Environment()
        until = env.timeout(1, "early")
        env.run()
        assert run(env, until) == "early"

        env = simpy.Environment()
        with pytest.raises(RuntimeError, match="No scheduled events left"):
            run(env, env.event())


def test_callbacks_added_to_until_after_the_start_run_on_resume():
    """SimPy stops at StopSimulation's callback and puts the later callbacks back."""
    results = []
    for run in (engine.run, simpy_run):
        env = simpy.Environment()
        until = env.event()
        trace = []

        def late(_e):
            until.callbacks.append(lambda e: trace.append(("late", env.now, e.value)))
            until.succeed("u")

        env.timeout(3).callbacks.append(late)
        env.timeout(4).callbacks.append(lambda _e: trace.append(("next", env.now)))
        assert run(env, until) == "u"
        assert trace == []
        env.run()
        results.append(trace)
    assert results[0] == results[1] == [("late", 3, "u"), ("next", 4)]
