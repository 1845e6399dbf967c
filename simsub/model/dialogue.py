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
* On a timeout a ``talk`` client sends its next command anyway.  Postfix 3.7
  (smtpd.c, ``smtpd_flag_ill_pipelining``; probed in docs/model.md) flags such
  improper pipelining only at the moment it *reads* EHLO or DATA: if the
  client's next command has arrived by then, the session is flagged for good
  and every later ``reject_unauth_pipelining`` rejects.  Bytes that arrive
  after the read — during a sleep of the restrictions that follow it — are
  never flagged.  (smtpd also looks once when it takes the connection, before
  the pre-banner restrictions; a simulated client never sends before it has a
  smtpd, so that look finds nothing.)
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
        "last_receipt", "_greeted",
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
        self.flag_time = INF  # server time smtpd flagged improper pipelining (INF: not yet)
        self.client_left: float | None = None
        self.server_end: float | None = None
        self.last_receipt = arrival
        self._greeted = False

    # ---------------------------------------------------------------- queries
    def server_start(self) -> float:
        """Server time at which handling of the next command (or banner) starts."""
        if not self._greeted:
            return self.server_free  # the smtpd starts on the banner at once
        return max(self.next_send + self.h, self.server_free)

    def pipelining_seen(self, t: float) -> bool:
        """Had smtpd flagged improper pipelining by server time ``t``?"""
        return self.flag_time <= t

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
        return self._reply(self.arrival, sent, self.connect_timeout)

    def prepare(self, strict: bool = False) -> float:
        """smtpd reads the next command, before its restrictions are evaluated
        (``strict``: EHLO or DATA, where smtpd looks for input behind it).
        Returns the server time at which handling starts."""
        if not self._greeted:
            return self.server_free  # the pre-banner restrictions run when smtpd takes the connection
        return self._read(strict)

    def command(self, delay: float, strict: bool = False) -> bool:
        """One command and its reply.  ``strict``: the client must wait for the
        reply before sending more (EHLO, DATA).  Returns False if the client hung up."""
        sent_at = self.next_send
        start = self._read(strict)
        return self._reply(sent_at, start + delay + self.reply_time, self.patience)

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
    def _read(self, strict: bool) -> float:
        """smtpd reads the command the client sent last; returns when.  Reading EHLO
        or DATA, it flags improper pipelining if the client's next command is
        already there: a talker sends it ``patience`` after this one unless the
        reply came first, and the reply is sent after this read, so it is there
        exactly when ``sent + patience + h`` is not later than the read."""
        sent_at = self.next_send
        start = max(sent_at + self.h, self.server_free)
        if strict and self.talks and sent_at + self.patience + self.h <= start < self.flag_time:
            self.flag_time = start
        return start

    def _reply(self, waiting_since: float, sent: float, limit: float) -> bool:
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
            return True
        self.client_left = gave_up
        self.server_end = max(sent, gave_up + self.h)
        return False
