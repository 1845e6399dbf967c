"""postfwd's ``rate``/``rcpt`` actions: a window that starts at a key's first request.

Semantics from the postfwd manual (postfwd.txt, ACTIONS: ``rate
(<item>/<max>/<time>/<action>)``: "creates a counter for the given <item>,
which will be increased any time a request containing it arrives. if it
exceeds <max> within <time> seconds it will return <action>"; ``rcpt`` is the
same "increased by the request's recipient_count attribute") and from
``set_rate2``/``check_rate`` in postfwd2 1.35 (Debian's package), which this
follows:

* the first request of a key creates ``count = units``, ``until = now + time``;
* a request with ``now > until`` renews the counter the same way: the window is
  ``[first, first + time]``, not aligned to multiples of ``time``, and a
  request exactly ``time`` seconds after the first still counts in it;
* inside the window the request is refused when ``count + units > max``, and a
  refused request adds nothing;
* creating or renewing stores ``units`` even when it is above ``max`` (a single
  ``rcpt`` request with more recipients than ``max``), and refuses it.

postfwd reads the clock in whole seconds; this counter takes any time.  postfwd3
(not Debian's 1.35) adds refused requests to the count too.
"""

from __future__ import annotations

from .base import Counter


class PostfwdRate(Counter):
    """postfwd ``rate``: at most ``limit`` units in ``[first, first + window]``, then a new window."""

    algorithm = "postfwd"

    def try_take(self, key: str, t: float, units: float = 1, limit: float | None = None) -> bool:
        limit = self._note_limit(key, limit) if limit is not None or self._limits else self.limit
        stored = self._state.get(key)
        if stored is None or t > stored[1]:
            self._state[key] = (float(units), t + self.window)
            return units <= limit
        # A time earlier than the latest seen is still inside the window: no renewal can have
        # happened after it, since every renewal sets ``until`` past its own time.
        count, until = stored
        if count + units > limit:
            return False
        self._state[key] = (count + units, until)
        return True

    def is_fresh(self, key: str, now: float) -> bool:
        return now > self._state[key][1]
