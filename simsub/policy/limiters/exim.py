"""Exim's ``ratelimit`` ACL condition: an exponentially smoothed rate.

Semantics from the Exim specification, chapter "Access control lists",
section "Rate limiting incoming messages" (``ratelimit = limit / period /
per_mail|per_rcpt / leaky|strict / key``), and from ``acl_ratelimit()`` in
Exim's src/src/acl.c, which this follows line by line:

* the first event of a key sets ``rate = count``;
* a later event ``i`` seconds after the previous stored one sets
  ``rate = (1 - a) * count / (i/p) + a * rate_prev`` with ``a = exp(-i/p)``,
  a rate in units per period ``p`` (the brief's ``a' = 1 - a`` form with the
  rate per second multiplied by ``p``); if that is below ``count`` (a long
  silence) the rate restarts at ``count``;
* the key is over the limit when ``rate >= limit`` ("clients sending at the
  limit are considered to be over the limit"), so a burst at one instant passes
  ``ceil(limit) - 1`` events;
* ``leaky`` (Exim's default): a refused event does not update the stored rate
  and time, so a sender who keeps retrying gets through as soon as the rate
  has decayed; ``strict``: every event is stored, refused or not, so a sender
  must stop sending to get under the limit.

Per_mail versus per_rcpt is not a property of the counter but of what one
unit is (the service's ``count``): Exim's per_rcpt in the RCPT ACL counts each
recipient, in the DATA ACL all recipients of the message at once.
"""

from __future__ import annotations

import math
from typing import Any

from .base import Counter

#: Margin under which :meth:`EximRate.is_fresh` still calls a key fresh, so that
#: rounding cannot make a dropped key decide differently from a kept one.
_FRESH_MARGIN = 1e-9


class EximRate(Counter):
    """Exim-style smoothed rate: ``limit`` units per ``window`` s (Exim's period); leaky unless ``strict``."""

    algorithm = "exim"

    def __init__(self, limit: float, window: float, strict: bool = False):
        super().__init__(limit, window)
        self.strict = strict

    def try_take(self, key: str, t: float, units: float = 1, limit: float | None = None) -> bool:
        limit = self._note_limit(key, limit) if limit is not None or self._limits else self.limit
        stored = self._state.get(key)
        if stored is None:
            rate, last = float(units), t
        else:
            previous, last = stored
            if t > last:
                x = (t - last) / self.window
                # -expm1(-x) is 1 - exp(-x) without the cancellation Exim's C has for tiny x.
                rate = -math.expm1(-x) * units / x + math.exp(-x) * previous
                last = t
            else:
                # Exim clamps a zero or negative interval to 1e-9 s; the formula's
                # limit as the interval goes to 0 is the previous rate plus this event.
                rate = previous + units
            rate = max(rate, units)
        allowed = rate < limit
        if allowed or self.strict:
            self._state[key] = (rate, last)
        return allowed

    def rate(self, key: str) -> float:
        """The stored rate (units per window) of ``key``; 0 for an unseen key."""
        stored = self._state.get(key)
        return stored[0] if stored else 0.0

    def is_fresh(self, key: str, now: float) -> bool:
        # With units >= 1, the next rate is max(units, smoothed) = units, as for an
        # unseen key, once exp(-x) * rate + (1 - exp(-x)) / x <= 1; both terms only
        # fall as x grows, so it stays true for every later request.
        previous, last = self._state[key]
        if now <= last:
            return False
        x = (now - last) / self.window
        return math.exp(-x) * previous + -math.expm1(-x) / x <= 1 - _FRESH_MARGIN

    def params(self) -> dict[str, Any]:
        return {**super().params(), "strict": self.strict}
