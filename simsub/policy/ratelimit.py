"""Rate-limit counters for a policyd-style policy service.

Each counter answers one question: may ``key`` spend ``units`` more at time ``t``
(seconds) without exceeding ``limit`` per ``window`` seconds?  Units are only
spent when the answer is yes, so a client that is refused does not dig itself
deeper (that is how postfwd and policyd-rate-limit count).

Times passed to one counter are expected to be non-decreasing per key; a
slightly earlier time (another session's per-recipient check computed a few
seconds ahead) is clamped to the latest one seen, which errs towards the limit.
"""

from __future__ import annotations

from collections import deque


class FixedWindow:
    """Counts per window ``[k*window, (k+1)*window)``; resets at each boundary."""

    def __init__(self, limit: float, window: float):
        self.limit = limit
        self.window = window
        self._state: dict[str, tuple[int, float]] = {}

    def try_take(self, key: str, t: float, units: float = 1) -> bool:
        index = int(t // self.window)
        window_index, used = self._state.get(key, (index, 0.0))
        index = max(index, window_index)  # a slightly earlier time counts in the latest window
        if index > window_index:
            window_index, used = index, 0.0
        if used + units > self.limit:
            self._state[key] = (window_index, used)
            return False
        self._state[key] = (window_index, used + units)
        return True


class SlidingWindow:
    """Counts the units spent in the last ``window`` seconds, ``(t - window, t]``."""

    def __init__(self, limit: float, window: float):
        self.limit = limit
        self.window = window
        self._events: dict[str, deque[tuple[float, float]]] = {}
        self._used: dict[str, float] = {}
        self._latest: dict[str, float] = {}

    def try_take(self, key: str, t: float, units: float = 1) -> bool:
        t = max(t, self._latest.get(key, t))
        self._latest[key] = t
        events = self._events.setdefault(key, deque())
        used = self._used.get(key, 0.0)
        while events and events[0][0] <= t - self.window:
            used -= events.popleft()[1]
        if used + units > self.limit:
            self._used[key] = used
            return False
        events.append((t, units))
        self._used[key] = used + units
        return True


class TokenBucket:
    """A bucket of ``limit`` tokens refilled at ``limit / window`` tokens per second.

    ``limit = 60, window = "60s"`` is "1 per second, burst 60".  A full bucket
    lets a burst of ``limit`` through at once.
    """

    def __init__(self, limit: float, window: float):
        self.limit = limit
        self.rate = limit / window
        self._state: dict[str, tuple[float, float]] = {}

    def try_take(self, key: str, t: float, units: float = 1) -> bool:
        tokens, last = self._state.get(key, (self.limit, t))
        if t > last:
            tokens = min(self.limit, tokens + (t - last) * self.rate)
            last = t
        if tokens >= units:
            self._state[key] = (tokens - units, last)
            return True
        self._state[key] = (tokens, last)
        return False


ALGORITHMS = {"fixed": FixedWindow, "sliding": SlidingWindow, "token_bucket": TokenBucket}
