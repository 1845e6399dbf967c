"""The timeline of one SMTP session, computed with arithmetic instead of events.

Conventions (all times in seconds of simulated time):

* ``h`` is half the client's round trip: a command reaches the server ``h`` after
  the client sends it, a reply reaches the client ``h`` after the server sends it.
* The server handles one command at a time.  Handling costs the policy delay of
  that command (the ``sleep`` total of its restrictions) plus ``reply_time``,
  and starts when both the command has arrived and the previous reply is out.
* A client waits for each reply at most ``patience``.  The banner is waited for
  at most ``connect_timeout``, counted from the connection attempt, so it covers
  the wait for a free smtpd *and* any sleep before the banner.
* On a timeout a ``disconnect`` client hangs up; the server notices only when it
  finishes its current step (the end of the sleep) or when the FIN arrives,
  whichever is later, so the smtpd slot stays busy until then.
* On a timeout a ``talk`` client sends its next command anyway.  Doing so before
  the banner, before the EHLO reply or before the 354 reply to DATA is the
  improper pipelining that ``reject_unauth_pipelining`` detects; the server sees
  it when the early bytes arrive (``h`` after they were sent).
* Clients do not pipeline RCPT TO: each recipient costs one round trip.
* After the final reply the client sends QUIT and does not wait for the 221;
  the server frees its slot after handling QUIT.

Because recipients repeat the same step, :meth:`Dialogue.repeat` advances
through ``n`` of them in closed form: the cost of a session does not grow with
its number of recipients.
"""

from __future__ import annotations

import math

INF = math.inf


def ideal_duration(recipients: int, half_rtt: float, reply_time: float) -> float:
    """Seconds from connection to the final 250 with no sleeps and a free smtpd.

    Banner (``reply_time + h``) then EHLO, AUTH, MAIL, ``recipients`` × RCPT,
    DATA and end-of-data, one round trip plus ``reply_time`` each.
    """
    return reply_time + half_rtt + (5 + recipients) * (2 * half_rtt + reply_time)


class Dialogue:
    """Client and server clocks of one session; see the module docstring."""

    __slots__ = (
        "arrival", "h", "reply_time", "patience", "connect_timeout", "talks",
        "next_send", "server_free", "flag_time", "client_left", "server_end",
        "last_receipt", "_wait_from", "_wait_limit", "_wait_strict", "_greeted",
    )

    def __init__(self, arrival: float, slot_time: float, half_rtt: float, reply_time: float,
                 patience: float, connect_timeout: float, talks: bool):
        self.arrival = arrival
        self.h = half_rtt
        self.reply_time = reply_time
        self.patience = patience
        self.connect_timeout = connect_timeout
        self.talks = talks
        self.next_send = arrival  # placeholder until the banner arrives
        self.server_free = slot_time
        self.flag_time = INF  # earliest arrival of improperly pipelined input
        self.client_left: float | None = None
        self.server_end: float | None = None
        self.last_receipt = arrival
        # The wait in progress, for pipelining checks made during a sleep.
        self._wait_from = arrival
        self._wait_limit = connect_timeout
        self._wait_strict = True
        self._greeted = False

    # ---------------------------------------------------------------- queries
    def server_start(self) -> float:
        """Server time at which handling of the next command (or banner) starts."""
        if not self._greeted:
            return self.server_free  # the smtpd starts on the banner at once
        return max(self.next_send + self.h, self.server_free)

    def pipelining_seen(self, t: float) -> bool:
        """Has improperly pipelined input reached the server by server time ``t``?"""
        if self.flag_time <= t:
            return True
        return (self.talks and self._wait_strict
                and self._wait_from + self._wait_limit + self.h <= t)

    @property
    def ended(self) -> bool:
        return self.server_end is not None

    # ---------------------------------------------------------------- steps
    def banner(self, delay: float) -> bool:
        """Send the 220 banner after ``delay`` s of pre-banner restrictions.

        Returns False when the client hung up before the banner arrived.
        """
        sent = self.server_free + delay + self.reply_time
        self._greeted = True
        return self._reply(self.arrival, sent, self.connect_timeout, strict=True)

    def prepare(self, strict: bool = False) -> float:
        """Announce the next command before its restrictions are evaluated, so
        that ``pipelining_seen`` knows which reply the client is waiting for.
        Returns the server time at which handling starts."""
        if not self._greeted:
            return self.server_free  # the wait for the banner is already set up
        self._wait_from, self._wait_limit, self._wait_strict = self.next_send, self.patience, strict
        return max(self.next_send + self.h, self.server_free)

    def command(self, delay: float, strict: bool = False) -> bool:
        """One command and its reply.  ``strict``: the client must wait for the
        reply before sending more (EHLO, DATA).  Returns False if the client hung up."""
        sent_at = self.next_send
        self._wait_from, self._wait_limit, self._wait_strict = sent_at, self.patience, strict
        start = max(sent_at + self.h, self.server_free)
        return self._reply(sent_at, start + delay + self.reply_time, self.patience, strict)

    def repeat(self, count: int, delay: float) -> bool:
        """``count`` identical pipelinable commands (RCPT TO), in closed form."""
        if count <= 0:
            return True
        if not self.command(delay):
            return False
        if count == 1:
            return True
        step = 2 * self.h + delay + self.reply_time  # one round trip per RCPT
        if step <= self.patience and self.next_send == self.last_receipt:
            # The client got the first reply in time, so the server is idle when
            # each later RCPT arrives and every one takes exactly ``step``.
            self.server_free += (count - 1) * step
            self.last_receipt += (count - 1) * step
            self.next_send = self.last_receipt
            return True
        # Otherwise the first reply came late, which only a talking client
        # survives (a waiting client's first wait is never shorter than
        # ``step``); it runs ahead of the server, one step at a time.
        for _ in range(count - 1):
            self.command(delay)
        return True

    def quit(self, delay: float = 0.0, unread: bool = False) -> None:
        """Client sends QUIT and leaves; the server frees the slot after the 221
        (sent ``delay`` s late when smtpd is slowing down an erring client;
        ``unread``: smtpd says 421 and closes without waiting for the QUIT)."""
        start = self.server_free if unread else max(self.next_send + self.h, self.server_free)
        self.client_left = self.next_send
        self.server_end = start + delay + self.reply_time

    def server_hangup(self, delay: float) -> bool:
        """smtpd's last word: ``delay`` s after its previous reply it sends 421 and
        closes, without waiting for the client's next command (Postfix checks the
        hard error limit before reading one).  The client, which sent its next
        command when it got the previous reply, reads the 421 if it comes within
        its patience.  Returns False if the client had given up first."""
        sent = self.server_free + delay + self.reply_time
        self.server_free = self.server_end = sent
        receipt = sent + self.h
        if self.talks or receipt - self.next_send <= self.patience:
            self.client_left = self.last_receipt = receipt
            return True
        self.client_left = self.next_send + self.patience
        return False

    # ---------------------------------------------------------------- internals
    def _reply(self, waiting_since: float, sent: float, limit: float, strict: bool) -> bool:
        receipt = sent + self.h
        self.server_free = sent
        if receipt - waiting_since <= limit:
            self.next_send = receipt
            self.last_receipt = receipt
            return True
        gave_up = waiting_since + limit
        if self.talks:
            self.next_send = gave_up
            self.last_receipt = receipt
            if strict:
                self.flag_time = min(self.flag_time, gave_up + self.h)
            return True
        self.client_left = gave_up
        self.server_end = max(sent, gave_up + self.h)
        return False
