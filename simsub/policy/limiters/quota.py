"""policyd v2 (cluebringer) quotas: a counter that decays linearly between updates.

Semantics from cluebringer's ``cbp/modules/Quotas.pm`` (policyd 2.0.x, RCPT
state, ``MessageCount`` limits) and its documentation ("Quotas" module: track
key, period, counter limit):

* a key's record holds ``Counter`` and ``LastUpdate``;
* at a request, ``elapsed = now - LastUpdate`` (negative counts as 0); the
  current count is 0 when ``elapsed > period``, else
  ``Counter * (1 - elapsed / period)``;
* the request is refused when that current count is already **above** the
  limit (``current > CounterLimit``), checked before this request is added:
  a burst at one instant passes ``floor(limit) + 1`` messages, and a request of
  many units (recipients counted at DATA) passes whenever the count is not yet
  above the limit;
* only an accepted request writes the record: ``Counter = current + units``,
  ``LastUpdate = now``.  A refused one changes nothing.

The decay is applied to the whole counter at each update, so it is not a
sliding window: a steady sender at rate r settles where the decay per update
equals one message, at ``Counter ≈ r * period`` only for sparse traffic.
"""

from __future__ import annotations

from .base import Counter


class DecayingQuota(Counter):
    """policyd v2 quota: ``limit`` units per ``window`` s with linear decay since the last update."""

    algorithm = "quota"

    def try_take(self, key: str, t: float, units: float = 1, limit: float | None = None) -> bool:
        limit = self._note_limit(key, limit) if limit is not None or self._limits else self.limit
        stored = self._state.get(key)
        if stored is None:
            self._state[key] = (float(units), t)  # a new record starts at this request
            return True
        counter, last = stored
        # Quotas.pm treats a negative elapsed time as none elapsed; keeping the
        # later LastUpdate (instead of writing the earlier time) does the same for later requests.
        t = max(t, last)
        elapsed = t - last
        current = 0.0 if elapsed > self.window else counter * (1 - elapsed / self.window)
        if current > limit:
            return False
        self._state[key] = (current + units, t)
        return True

    def is_fresh(self, key: str, now: float) -> bool:
        # From elapsed >= period on the current count is 0: the request is
        # accepted and stored as (units, t), exactly as for a new record.
        return now - self._state[key][1] >= self.window
