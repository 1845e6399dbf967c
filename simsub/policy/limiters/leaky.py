"""Rspamd's ``ratelimit`` module: a leaky bucket with a burst and a leak rate.

Semantics from Rspamd's documentation (modules/ratelimit: ``bucket = { burst =
N; rate = "M / period"; }``) and its Redis scripts
``lualib/redis_scripts/ratelimit_check.lua`` and ``ratelimit_update.lua``:

* a key's bucket holds a level ``b`` and the time of the last hit ``l``;
* at a message the bucket first leaks ``(now - l) * rate`` (never below 0);
* the message is refused when ``level + units > burst``; otherwise its units are
  added to the level (Rspamd adds them when the scan ends, keeping a count of
  pending messages meanwhile; here check and update are one step).

With ``burst = limit`` and ``rate = limit / window`` this is the token bucket
(tokens = burst - level).  Not modelled: Rspamd's dynamic multipliers that
grow or shrink burst and rate with ham/spam verdicts, and its first message of
a new bucket, which Rspamd passes whatever its size (here a message larger
than the burst is always refused, as from an empty bucket).
"""

from __future__ import annotations

from typing import Any

from .base import Counter


class LeakyBucket(Counter):
    """Rspamd-style leaky bucket: leaks ``limit / window`` units per second, holds up to ``burst`` units.

    ``burst`` defaults to ``limit``.  A per-key limit scales the leak rate and
    the burst by the same factor.
    """

    algorithm = "leaky_bucket"

    def __init__(self, limit: float, window: float, burst: float | None = None):
        super().__init__(limit, window)
        self.burst = float(limit if burst is None else burst)
        self.rate = limit / window

    def _shape(self, limit: float) -> tuple[float, float]:
        """(burst, leak rate per second) for a key whose limit is ``limit``."""
        if limit == self.limit:
            return self.burst, self.rate
        return self.burst * limit / self.limit, limit / self.window

    def try_take(self, key: str, t: float, units: float = 1, limit: float | None = None) -> bool:
        limit = self._note_limit(key, limit) if limit is not None or self._limits else self.limit
        burst, rate = self._shape(limit)
        level, last = self._state.get(key, (0.0, t))
        if t > last:  # an earlier time leaks nothing
            level = max(0.0, level - (t - last) * rate)
            last = t
        if level + units > burst:
            self._state[key] = (level, last)
            return False
        self._state[key] = (level + units, last)
        return True

    def is_fresh(self, key: str, now: float) -> bool:
        level, last = self._state[key]
        return now >= last and level - (now - last) * self._shape(self.limit_of(key))[1] <= 0

    def params(self) -> dict[str, Any]:
        return {**super().params(), "burst": self.burst}
