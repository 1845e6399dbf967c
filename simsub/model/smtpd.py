"""The pool of smtpd processes with the kernel's accept queue in front of it.

``process_limit`` slots serve one client each.  A connection that finds them all
busy waits in the accept queue if fewer than ``backlog`` connections wait
already, else it is refused.  A waiting client that gets no smtpd within its
connect timeout hangs up and leaves the queue (abandoned).

The pool also keeps the time integral of busy slots (slot-seconds) and the
peaks since the last :meth:`sample`, so busy-slot statistics are exact without
recording every change.  It avoids SimPy's Resource to spare two events per
uncontended session.
"""

from __future__ import annotations

from collections import deque

import simpy

from .engine import clock, timeout

#: Returned by :meth:`SmtpdPool.connect` when a slot was free.
GRANTED = "granted"
#: Returned by :meth:`SmtpdPool.connect` when the accept queue was full.
REFUSED = "refused"


class SmtpdPool:
    def __init__(self, env: simpy.Environment, process_limit: int, backlog: int):
        self.env = env
        self.limit = process_limit
        self.backlog = backlog
        self.busy = 0
        self.queued = 0  # live waiters
        self._waiters: deque[simpy.Event] = deque()
        self._area = 0.0  # slot-seconds up to _last
        self._last = 0.0
        self.peak_busy = 0
        self.peak_queued = 0
        self.total_peak_busy = 0
        self._release_event = self._release_callback  # one bound method for every release_at

    # ------------------------------------------------------------------ clients
    def connect(self, connect_timeout: float):
        """Ask for a slot now.

        Returns :data:`GRANTED`, :data:`REFUSED`, or an event to yield whose value
        is True when a slot was granted and False when the client gave up after
        ``connect_timeout`` seconds.
        """
        if self.busy < self.limit:
            self._set_busy(self.busy + 1)
            return GRANTED
        if self.queued >= self.backlog:
            return REFUSED
        waiter = self.env.event()
        self._waiters.append(waiter)
        self.queued += 1
        if self.queued > self.peak_queued:
            self.peak_queued = self.queued
        timeout(self.env, connect_timeout).callbacks.append(lambda _e, w=waiter: self._give_up(w))  # type: ignore[misc]
        return waiter

    def release_at(self, when: float) -> None:
        """Free one slot at simulated time ``when`` (>= now)."""
        delay = when - clock(self.env)
        if delay <= 0:
            self._release()
        else:
            timeout(self.env, delay).callbacks.append(self._release_event)

    # ------------------------------------------------------------------ monitor
    def busy_area(self) -> float:
        """Slot-seconds accumulated from time 0 to now."""
        return self._area + self.busy * (clock(self.env) - self._last)

    def sample(self) -> tuple[int, int]:
        """Peak busy slots and peak queue length since the previous sample."""
        peaks = (self.peak_busy, self.peak_queued)
        self.peak_busy = self.busy
        self.peak_queued = self.queued
        return peaks

    # ------------------------------------------------------------------ internals
    def _set_busy(self, busy: int) -> None:
        now = clock(self.env)
        self._area += self.busy * (now - self._last)
        self._last = now
        self.busy = busy
        if busy > self.peak_busy:
            self.peak_busy = busy
            if busy > self.total_peak_busy:
                self.total_peak_busy = busy

    def _release_callback(self, _event) -> None:
        self._release()

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.triggered:  # hand the slot straight to the next client
                self.queued -= 1
                waiter.succeed(True)
                return
        self._set_busy(self.busy - 1)

    def _give_up(self, waiter: simpy.Event) -> None:
        if not waiter.triggered:
            self.queued -= 1
            waiter.succeed(False)
