"""SimPy's event loop, timeout and process, compiled with the model.

A run schedules about 1.3 million SimPy events a simulated day, 1.1 million of
them timeouts.  SimPy's own ``Timeout.__init__``, ``Environment.schedule``,
``Environment.step``, ``Environment.run`` and ``Process._resume`` are interpreted
Python, and so cost an interpreted frame or two per event even when the model around them is
compiled.  This module does the same work without them:

* :func:`timeout` schedules a :class:`Delay`, a small event that carries what
  SimPy's loop and ``Process._resume`` read (``callbacks``, ``_ok``,
  ``_value``), on ``env._queue`` under the key SimPy's ``Timeout`` would use
  (``now + delay``, ``NORMAL``, the next id of ``env._eid``), so events are
  processed in the same order and the event count stays SimPy's;
* :func:`run` is ``env.run(until=event)`` with ``Environment.step`` inlined;
* :func:`process` is ``env.process(generator)``, with a :class:`Process` whose
  resumption is compiled too;
* :func:`clock` is ``env.now``.

:class:`Delay` and :class:`Process` are not subclasses of ``simpy.Event`` (the
compiled build cannot derive a native class from an interpreted one): a process
may yield them and callbacks may be added to them, but SimPy's
``env.run(until=...)`` and its condition events (``AllOf``, ``AnyOf``, ``&``,
``|``) do not take them; the model uses neither with them.

All of this reads SimPy internals (``_queue``, ``_eid``, ``_now``) that are not public
API; ``simpy<5`` is pinned in pyproject.toml and tests/test_engine.py checks
them against SimPy's own on mixed schedules, so a release that changes them
fails a test.  SimPy's own events (``env.event()``, its timeouts and
processes) go through this loop unchanged.  Times are in seconds, as everywhere in the model.
"""

from __future__ import annotations

from heapq import heappop, heappush
from typing import Any

import simpy
from simpy.core import EmptySchedule, StopSimulation
from simpy.events import PENDING

#: SimPy's priority of ordinary events (``simpy.events.NORMAL``): a timeout's.
NORMAL = 1
#: SimPy's priority of a process's start (``simpy.events.URGENT``).
_URGENT = 0
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


class Process:
    """SimPy's ``Process`` (``env.process(generator)``) without its interpreted
    ``__init__`` and ``_resume``: runs ``generator``, resuming it with the value of
    each event it yields (throwing a failed event's exception into it), and is
    itself an event that is triggered when the generator returns or raises.

    It schedules what SimPy's does, in the same order and with the same ids: an
    initialising event now at ``URGENT`` priority, and itself at ``NORMAL`` when
    the generator ends.  A failure that no process waits for crashes the run
    (:func:`run`, as SimPy's step).  Not supported: ``interrupt``.
    """

    callbacks: Any  # as SimPy's events: None once processed
    _ok: bool
    _value: Any
    _defused: bool  # left unset (``hasattr`` is False) until a process waiting for this one handles its failure
    _generator: Any
    _target: Any  # the event the generator waits for; None once it has ended
    env: simpy.Environment

    def __init__(self, env: simpy.Environment, generator: Any) -> None:
        self.env = env
        self._generator = generator
        self.callbacks = []
        self._ok = True
        self._value = PENDING
        start = Delay(0, None)  # SimPy's Initialize: processed before anything else scheduled now
        start.callbacks.append(self._resume)
        queue: list[Any] = env._queue
        heappush(queue, (env._now, _URGENT, next(env._eid), start))
        self._target = start

    @property
    def value(self) -> Any:
        return self._value

    @property
    def ok(self) -> bool:
        return self._ok

    @property
    def triggered(self) -> bool:
        return self._value is not PENDING

    @property
    def processed(self) -> bool:
        return self.callbacks is None

    @property
    def is_alive(self) -> bool:
        return self._value is PENDING

    @property
    def target(self) -> Any:
        return self._target

    def _resume(self, event: Any) -> None:
        """SimPy's ``Process._resume``: the callback of the event the generator waits for."""
        env = self.env
        env._active_proc = self  # type: ignore[assignment]  # (SimPy types it as its own Process)
        while True:
            try:
                if event._ok:
                    event = self._generator.send(event._value)
                else:
                    # The process has to handle the failure (or fail itself); it gets
                    # a copy of the exception, as in SimPy.
                    event._defused = True
                    exc = type(event._value)(*event._value.args)
                    exc.__cause__ = event._value
                    event = self._generator.throw(exc)
            except StopIteration as stop:
                event = None
                self._ok = True
                self._value = stop.args[0] if len(stop.args) else None
                self._schedule_end()
                break
            except BaseException as error:
                event = None
                self._ok = False
                self._value = error
                self._schedule_end()
                break
            try:
                if event.callbacks is not None:
                    event.callbacks.append(self._resume)  # not yet processed: wait for it
                    break
            except AttributeError:
                if hasattr(event, "callbacks"):
                    raise
                raise RuntimeError(f'Invalid yield value "{event}"') from None
        self._target = event
        env._active_proc = None

    def _schedule_end(self) -> None:
        env = self.env
        queue: list[Any] = env._queue
        heappush(queue, (env._now, NORMAL, next(env._eid), self))

    def __repr__(self) -> str:
        return f"<Process({getattr(self._generator, '__name__', self._generator)!r})>"


def process(env: simpy.Environment, generator: Any) -> Process:
    """``env.process(generator)``: a :class:`Process` that starts now."""
    return Process(env, generator)


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


def clock(env: simpy.Environment) -> Any:
    """``env.now``, the simulated time in s, without a call to SimPy's interpreted
    ``now`` property (several per message: the model reads the clock often)."""
    return env._now


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
            if not queue:
                raise EmptySchedule
            # Typed, so the compiled build reads the entry and walks the callbacks
            # without the generic iteration protocol.
            entry: tuple[Any, Any, Any, Any] = heappop(queue)
            env._now = entry[0]
            event = entry[3]
            if isinstance(event, Delay) and event is not until:
                # A Delay always succeeds, and it carries no StopSimulation callback.
                delay_callbacks: list[Any] = event.callbacks
                event.callbacks = None
                for callback in delay_callbacks:
                    callback(event)
                continue
            callbacks: list[Any] = event.callbacks
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


def _call(env: simpy.Environment, event: Any, callbacks: list[Any]) -> None:
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
