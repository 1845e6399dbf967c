"""Rate-limit counters for a policyd-style policy service.

Each counter answers one question: may ``key`` spend ``units`` more at time ``t``
(seconds) without exceeding ``limit`` per ``window`` seconds?  In the three
counters of this module units are only spent when the answer is yes, so a
client that is refused does not dig itself deeper (as postfwd 1.35 and
policyd-rate-limit count).  The counters of the field tools (Exim, policyd v2,
Rspamd, postfwd) are in :mod:`simsub.policy.limiters`; ``ALGORITHMS`` names
them all.  See docs/limiters.md for a comparison.

Times passed to one counter are expected to be non-decreasing per key; a
slightly earlier time (another session's per-recipient check computed a few
seconds ahead) counts as the latest one seen, which errs towards the limit.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from .limiters.base import Counter
from .limiters.exim import EximRate
from .limiters.leaky import LeakyBucket
from .limiters.postfwd import PostfwdRate
from .limiters.quota import DecayingQuota


class FixedWindow(Counter):
    """Counts per window ``[k*window, (k+1)*window)``; resets at each boundary."""

    algorithm = "fixed"

    def try_take(self, key: str, t: float, units: float = 1, limit: float | None = None) -> bool:
        limit = self._note_limit(key, limit) if limit is not None or self._limits else self.limit
        index = int(t // self.window)
        window_index, used = self._state.get(key, (index, 0.0))
        # A slightly earlier time (index < window_index) counts in the latest window.
        if index > window_index:
            window_index, used = index, 0.0
        if used + units > limit:
            self._state[key] = (window_index, used)
            return False
        self._state[key] = (window_index, used + units)
        return True

    def is_fresh(self, key: str, now: float) -> bool:
        return self._state[key][0] < int(now // self.window)


class SlidingWindow(Counter):
    """Counts the units spent in the last ``window`` seconds, ``(t - window, t]``."""

    algorithm = "sliding"

    def __init__(self, limit: float, window: float):
        super().__init__(limit, window)
        self._events: dict[str, deque[tuple[float, float]]] = {}
        self._used: dict[str, float] = {}
        self._latest: dict[str, float] = {}
        self._state = self._latest  # one entry per key: what __len__ and expire() walk

    def try_take(self, key: str, t: float, units: float = 1, limit: float | None = None) -> bool:
        limit = self._note_limit(key, limit) if limit is not None or self._limits else self.limit
        t = max(t, self._latest.get(key, t))  # the late time clamp: keeps the deque in time order
        self._latest[key] = t
        events = self._events.setdefault(key, deque())
        used = self._used.get(key, 0.0)
        while events and events[0][0] <= t - self.window:
            used -= events.popleft()[1]
        if used + units > limit:
            self._used[key] = used
            return False
        events.append((t, units))
        self._used[key] = used + units
        return True

    def is_fresh(self, key: str, now: float) -> bool:
        events = self._events.get(key)
        return not events or events[-1][0] <= now - self.window

    def _drop(self, key: str) -> None:
        super()._drop(key)  # removes _latest (= _state)
        self._events.pop(key, None)
        self._used.pop(key, None)

    def _dump_keys(self) -> dict[str, Any]:
        return {key: [self._latest[key], self._used.get(key, 0.0), [list(e) for e in self._events.get(key, ())]]
                for key in self._latest}

    def _load_keys(self, keys: dict[str, Any]) -> None:
        self._latest.clear()
        self._events.clear()
        self._used.clear()
        for key, (latest, used, events) in keys.items():
            self._latest[str(key)] = float(latest)
            self._used[str(key)] = float(used)
            self._events[str(key)] = deque((float(a), float(b)) for a, b in events)


class TokenBucket(Counter):
    """A bucket of ``limit`` tokens refilled at ``limit / window`` tokens per second.

    ``limit = 60, window = "60s"`` is "1 per second, burst 60".  A full bucket
    lets a burst of ``limit`` through at once.  A per-key limit scales both.
    """

    algorithm = "token_bucket"

    def __init__(self, limit: float, window: float):
        super().__init__(limit, window)
        self.rate = limit / window

    def try_take(self, key: str, t: float, units: float = 1, limit: float | None = None) -> bool:
        limit = self._note_limit(key, limit) if limit is not None or self._limits else self.limit
        rate = self.rate if limit == self.limit else limit / self.window
        tokens, last = self._state.get(key, (limit, t))
        if t > last:  # an earlier time refills nothing (and takes no tokens back)
            tokens = min(limit, tokens + (t - last) * rate)
            last = t
        if tokens >= units:
            self._state[key] = (tokens - units, last)
            return True
        self._state[key] = (tokens, last)
        return False

    def is_fresh(self, key: str, now: float) -> bool:
        tokens, last = self._state[key]
        limit = self.limit_of(key)
        return now >= last and tokens + (now - last) * (limit / self.window) >= limit


ALGORITHMS: dict[str, type[Counter]] = {
    "fixed": FixedWindow,
    "sliding": SlidingWindow,
    "token_bucket": TokenBucket,
    "exim": EximRate,
    "quota": DecayingQuota,
    "leaky_bucket": LeakyBucket,
    "postfwd": PostfwdRate,
}
