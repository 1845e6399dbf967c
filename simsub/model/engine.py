"""SimPy's event loop and its timeout, compiled with the model.

A run schedules about 1.3 million SimPy events a simulated day, 1.1 million of
them timeouts.  SimPy's own ``Timeout.__init__``, ``Environment.schedule``,
``Environment.step`` and ``Environment.run`` are interpreted Python, and so cost
an interpreted frame or two per event even when the model around them is
compiled.  This module does the same work without them:

* :func:`timeout` schedules a :class:`Delay`, a small event that carries what
  SimPy's loop and ``Process._resume`` read (``callbacks``, ``_ok``,
  ``_value``), on ``env._queue`` under the key SimPy's ``Timeout`` would use
  (``now + delay``, ``NORMAL``, the next id of ``env._eid``), so events are
  processed in the same order and the event count stays SimPy's;
* :func:`run` is ``env.run(until=event)`` with ``Environment.step`` inlined.

Both read SimPy internals (``_queue``, ``_eid``, ``_now``) that are not public
API; ``simpy<5`` is pinned in pyproject.toml and tests/test_engine.py checks
both against SimPy's own on mixed schedules, so a release that changes them
fails a test.  SimPy's events (``env.event()``, processes) still go through
this loop unchanged.  Times are in seconds, as everywhere in the model.
"""

from __future__ import annotations

from heapq import heappop, heappush
from typing import Any

import simpy
from simpy.core import EmptySchedule, StopSimulation

#: SimPy's priority of ordinary events (``simpy.events.NORMAL``): a timeout's.
NORMAL = 1
#: The priority SimPy gives an event it puts back after ``StopSimulation``.
_RESUMED = -1


class Delay:
    """A triggered event processed ``delay`` s after it was made (SimPy's ``Timeout``
    without its interpreted constructor); make it with :func:`timeout`.

    Processes may yield it and callbacks may be appended to ``callbacks`` until it
    is processed (then ``callbacks`` is None), as with any SimPy event.  It always
    succeeds, with ``value``.
    """

    callbacks: Any  # the callables to call when processed; None once processed (as in SimPy)
    _ok: bool
    _value: Any
    _delay: Any

    def __init__(self, delay: Any, value: Any) -> None:
        self.callbacks = []
        self._ok = True
        self._value = value
        self._delay = delay

    @property
    def value(self) -> Any:
        return self._value

    @property
    def ok(self) -> bool:
        return self._ok

    @property
    def triggered(self) -> bool:
        return True

    @property
    def processed(self) -> bool:
        return self.callbacks is None

    @property
    def defused(self) -> bool:
        return False

    def __repr__(self) -> str:
        value = "" if self._value is None else f", value={self._value!r}"
        return f"<Delay({self._delay}{value})>"


def timeout(env: simpy.Environment, delay: Any, value: Any = None) -> Delay:
    """``env.timeout(delay, value)``: a :class:`Delay` scheduled ``delay`` s (>= 0) from now.

    ``delay`` is untyped on purpose: an int stays an int, as in SimPy, so that
    ``now + delay`` is the same number SimPy's ``Environment.schedule`` computes.
    """
    if delay < 0:
        raise ValueError(f"Negative delay {delay}")
    event = Delay(delay, value)
    queue: list[Any] = env._queue  # SimPy types its entries as holding its own events
    heappush(queue, (env._now + delay, NORMAL, next(env._eid), event))
    return event


def run(env: simpy.Environment, until: Any) -> Any:
    """``env.run(until=until)`` for an event ``until``: process events in SimPy's
    order until ``until`` has been processed, and return its value.

    Like SimPy: an ``until`` already processed returns its value at once; a failed
    event no process defused is raised again as a copy whose ``__cause__`` is the
    original (SimPy's step); a failed ``until`` raises its exception; no events
    left before ``until`` raises RuntimeError.  The loop stops the way SimPy's does,
    through ``StopSimulation.callback`` appended to ``until``'s callbacks, so
    callbacks added to ``until`` after this call started are put back and its event
    rescheduled, as SimPy's step does, and ``env.run()`` may continue from there.
    """
    if until.callbacks is None:
        return until.value
    until.callbacks.append(StopSimulation.callback)
    queue: list[Any] = env._queue
    try:
        while True:
            try:
                now, _priority, _eid, event = heappop(queue)
            except IndexError:
                raise EmptySchedule from None
            env._now = now
            if isinstance(event, Delay):
                # A Delay always succeeds, and only ``until`` carries StopSimulation's callback.
                delay_callbacks = event.callbacks
                event.callbacks = None
                if event is not until:
                    assert delay_callbacks is not None
                    for callback in delay_callbacks:
                        callback(event)
                    continue
                _call(env, event, delay_callbacks)
                continue
            callbacks = event.callbacks
            event.callbacks = None
            _call(env, event, callbacks)
            if not event._ok and not hasattr(event, "_defused"):
                # The event failed and no process handled it: crash, as SimPy's step does.
                exc = type(event._value)(*event._value.args)
                exc.__cause__ = event._value
                raise exc
    except StopSimulation as stop:
        return stop.args[0]
    except EmptySchedule:
        raise RuntimeError(f'No scheduled events left but "until" event was not triggered: {until}') from None


def _call(env: simpy.Environment, event: Any, callbacks: Any) -> None:
    """Call ``event``'s callbacks; on StopSimulation put the rest back, as SimPy's step does."""
    i = 0
    try:
        for callback in callbacks:
            i += 1
            callback(event)
    except StopSimulation:
        event.callbacks = callbacks[i:]
        queue: list[Any] = env._queue
        heappush(queue, (env._now, _RESUMED, next(env._eid), event))
        raise
