"""How a session, and a message, ended.  Codes are small ints for compact columns."""

from __future__ import annotations

import enum


class Outcome(enum.IntEnum):
    ACCEPTED = 0  # final 250 after end of data: the server will send it
    HELD = 1  # accepted into the hold queue (HOLD action): not sent
    DISCARDED = 2  # accepted and silently discarded (DISCARD action)
    REJECTED = 3  # a 5xx answer (restriction, policy service)
    DEFERRED = 4  # a 4xx answer
    TIMEOUT = 5  # the client stopped waiting for a reply and hung up
    REFUSED = 6  # all smtpd busy and the accept queue full
    ABANDONED = 7  # the client gave up waiting for a free smtpd
    AUTH_FAILED = 8  # the account was locked or its password reset

    @property
    def accepted(self) -> bool:
        return self in (Outcome.ACCEPTED, Outcome.HELD, Outcome.DISCARDED)

    @property
    def temporary(self) -> bool:
        """Worth a retry by a legitimate mail client."""
        return self in (Outcome.DEFERRED, Outcome.TIMEOUT, Outcome.REFUSED, Outcome.ABANDONED)


class Step(enum.IntEnum):
    """The SMTP step at which a session ended."""

    QUEUE = 0  # waiting for an smtpd
    BANNER = 1
    EHLO = 2
    AUTH = 3
    MAIL = 4
    RCPT = 5
    DATA = 6
    END_OF_DATA = 7
    QUIT = 8  # completed the dialogue
