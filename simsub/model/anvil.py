"""anvil(8): smtpd's per-client connection count and event rates, as Postfix 3.7 counts them.

What anvil.c and smtpd.c do (read in the source, measured in
tests/test_anvil_postfix.py; docs/model.md):

* One entry per client address (per service).  Every connection smtpd takes
  from a client that is not exempt (``smtpd_client_event_limit_exceptions``,
  default ``$mynetworks``) counts, and so does every MAIL FROM, RCPT TO and
  AUTH command — refused ones too: anvil counts first and smtpd compares after.
* The limit is exceeded when the count *including this event* is above it:
  the connection gets ``421 4.7.0 … too many connections`` before the banner
  (before any pre-banner restriction), MAIL ``450 4.7.1 … too much mail``, RCPT
  ``450 4.7.1 … too many recipients``, AUTH ``450 4.7.1 … too many AUTH
  commands``; the command's restrictions are not evaluated.
* The rates share one fixed window per client: it starts at the client's first
  event, on anvil's clock of whole seconds, and ends when that clock has passed
  ``start + anvil_rate_time_unit``; the next event opens a new window.  The
  simulated clock stands in for anvil's: its whole seconds are ``floor(t)``.
* The connection count is the number of the client's connections an smtpd
  holds, this one included; a connection stops counting when its smtpd is done.

Times are seconds of simulated (server) time.
"""

from __future__ import annotations

import ipaddress
import math

from ..scenario.types import AnvilLimits

#: The events anvil counts.
CONNECTION, MAIL, RCPT, AUTH = "connection", "mail", "rcpt", "auth"


class _Client:
    __slots__ = ("start", "counts", "open")

    def __init__(self):
        self.start = -math.inf  # whole second the current window started
        self.counts = {CONNECTION: 0, MAIL: 0, RCPT: 0, AUTH: 0}
        self.open: list[list[float]] = []  # [end] of connections an smtpd holds (inf: not known yet)


class Anvil:
    """The per-client counters of one run; ``exempt(client)`` says who is not counted."""

    def __init__(self, limits: AnvilLimits):
        self.limits = limits
        self.unit = limits.rate_time_unit
        self.rate_limit = {CONNECTION: limits.connection_rate_limit, MAIL: limits.message_rate_limit,
                           RCPT: limits.recipient_rate_limit, AUTH: limits.auth_rate_limit}
        # With no rate limit at all the rate windows are never compared, so connect()
        # need not keep them; with no count limit it need not track open connections.
        self._rates = limits.rates
        self._count_limit = limits.connection_count_limit
        self._clients: dict[str, _Client] = {}
        self._exempt: dict[str, bool] = {}

    def exempt(self, client) -> bool:
        """Not counted: ``$mynetworks`` by default, else the listed networks."""
        if self.limits.exceptions is None:
            return client.mynetworks
        known = self._exempt.get(client.address)
        if known is None:
            ip = ipaddress.ip_address(client.address)
            known = self._exempt[client.address] = any(ip in net for net in self.limits.exceptions)
        return known

    def limited(self, event: str) -> bool:
        """Whether smtpd checks ``event`` at all (a limit of 0 is off)."""
        return self.rate_limit[event] > 0

    def connect(self, address: str, t: float) -> tuple[list[float] | None, bool]:
        """smtpd takes a connection at ``t``: (handle to close it with, refused?); the
        handle is None when no count limit is set (nothing to close)."""
        entry = self._clients.get(address)
        if entry is None:
            entry = self._clients[address] = _Client()
        over_rate = self._rates and self._count(entry, CONNECTION, t) > self.rate_limit[CONNECTION] > 0
        if self._count_limit <= 0:
            return None, over_rate
        entry.open = [end for end in entry.open if end[0] > t]
        handle = [math.inf]
        entry.open.append(handle)
        return handle, over_rate or len(entry.open) > self._count_limit

    @staticmethod
    def close(handle: list[float], t: float) -> None:
        """The smtpd of that connection is done at ``t``."""
        handle[0] = t

    def event(self, address: str, what: str, t: float) -> bool:
        """A MAIL, RCPT or AUTH command read at ``t``: True when its rate limit refuses it."""
        entry = self._clients.get(address)
        if entry is None:  # not counted at connect (cannot happen in a session); count from here
            entry = self._clients[address] = _Client()
        return self._count(entry, what, t) > self.rate_limit[what] > 0

    def _count(self, entry: _Client, what: str, t: float) -> int:
        second = math.floor(t)
        if entry.start + self.unit < second:  # anvil: start + time_unit < now -> a new window
            entry.start = second
            for key in entry.counts:
                entry.counts[key] = 0
        entry.counts[what] += 1
        return entry.counts[what]
