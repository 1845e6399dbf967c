"""The narrow interface through which the model reports what happened.

The model calls :meth:`Recorder.message`, :meth:`Recorder.session` and
:meth:`Recorder.sample` with plain numbers; the recorder keeps them in compact
typed columns (``array.array``: 8 bytes a value, no per-row objects).  Analysis
code turns the columns into tables; the model never computes statistics.
"""

from __future__ import annotations

from array import array
from typing import Any, Callable

MESSAGE_COLUMNS = (
    ("message_id", "q"),  # also the id of its row in the deliveries table, if accepted
    ("population", "i"),  # index into Recorder.populations
    ("client", "q"),  # client number within the population
    ("origin", "i"),  # index into Recorder.origins
    ("account", "q"),  # index into Recorder.accounts
    ("recipients", "i"),
    ("first_attempt_s", "d"),
    ("end_s", "d"),  # when the client finished its last attempt
    ("accepted_s", "d"),  # final 250 reached the client; NaN if never
    ("attempts", "i"),
    ("outcome", "b"),  # Outcome code of the last attempt
    ("step", "b"),  # Step code where the last attempt ended
    ("recipients_accepted", "i"),
    ("ideal_s", "d"),  # dialogue time with no policy delay and a free smtpd
    ("slot_wait_s", "d"),  # waiting for an smtpd, all attempts
    ("policy_delay_s", "d"),  # sleeps imposed by restrictions, all attempts
)

SESSION_COLUMNS = (
    ("population", "i"),
    ("arrival_s", "d"),
    ("outcome", "b"),
    ("slot_wait_s", "d"),
    ("slot_hold_s", "d"),  # smtpd busy with this session (0 if none was given)
)

SAMPLE_COLUMNS = (
    ("t_s", "d"),  # end of the bin
    ("busy_area", "d"),  # slot-seconds from 0 to t_s
    ("busy_peak", "i"),
    ("queue_peak", "i"),  # accept queue (connections waiting for an smtpd)
    ("mail_incoming", "q"),  # mail queue sizes at t_s (messages)
    ("mail_active", "q"),
    ("mail_deferred", "q"),
    ("mail_active_peak", "q"),  # peaks within the bin
    ("mail_deferred_peak", "q"),
)

DELIVERY_COLUMNS = (
    ("message_id", "q"),  # front-end message id; bounces have negative ids
    ("kind", "b"),  # 0 legitimate, 1 spam, 2 bounce, 3 double bounce
    ("accepted_s", "d"),  # entered the mail queue
    ("recipients", "i"),
    ("delivered", "i"),
    ("bounced", "i"),
    ("purged", "i"),
    ("expired", "i"),
    ("queued", "i"),  # still in the queue when the run ended
    ("last_delivery_s", "d"),  # NaN if no recipient was delivered
)


class Recorder:
    def __init__(self):
        self.messages = {name: array(code) for name, code in MESSAGE_COLUMNS}
        self.sessions = {name: array(code) for name, code in SESSION_COLUMNS}
        self.samples = {name: array(code) for name, code in SAMPLE_COLUMNS}
        self.deliveries = {name: array(code) for name, code in DELIVERY_COLUMNS}
        self.events: list[tuple[float, str, str]] = []  # (t, what, detail): listings, operator actions
        self.totals: dict[str, float | int | None] = {}  # end-of-run counters of the queue and operator
        self.populations: list[str] = []
        self.population_kinds: list[str] = []
        self.origins: list[str] = []
        self.accounts: list[str] = []
        self._account_codes: dict[str, int] = {}
        # Each column's append, typed: compiled, a list of them is indexed natively.
        self._m: list[Callable[[Any], None]] = [self.messages[name].append for name, _ in MESSAGE_COLUMNS]
        self._s: list[Callable[[Any], None]] = [self.sessions[name].append for name, _ in SESSION_COLUMNS]
        self._d: list[Callable[[Any], None]] = [self.deliveries[name].append for name, _ in DELIVERY_COLUMNS]

    def account_code(self, name: str) -> int:
        code = self._account_codes.get(name)
        if code is None:
            code = self._account_codes[name] = len(self.accounts)
            self.accounts.append(name)
        return code

    def message(self, message_id, population, client, origin, account, recipients, first_attempt, end, accepted,
                attempts, outcome, step, recipients_accepted, ideal, slot_wait, policy_delay) -> None:
        """One finished message, in :data:`MESSAGE_COLUMNS` order (times in s)."""
        m = self._m
        m[0](message_id)
        m[1](population)
        m[2](client)
        m[3](origin)
        m[4](account)
        m[5](recipients)
        m[6](first_attempt)
        m[7](end)
        m[8](accepted)
        m[9](attempts)
        m[10](outcome)
        m[11](step)
        m[12](recipients_accepted)
        m[13](ideal)
        m[14](slot_wait)
        m[15](policy_delay)

    def session(self, population: int, arrival: float, outcome: int, slot_wait: float, slot_hold: float) -> None:
        s = self._s
        s[0](population)
        s[1](arrival)
        s[2](outcome)
        s[3](slot_wait)
        s[4](slot_hold)

    def sample(self, t: float, busy_area: float, busy_peak: int, queue_peak: int,
               mail: tuple[int, int, int] = (0, 0, 0), mail_peaks: tuple[int, int] = (0, 0)) -> None:
        """The state at the end of a time bin (``mail``: incoming, active, deferred)."""
        # object, not the float mypy infers: compiled, the ints would be turned into floats.
        values: tuple[object, ...] = (t, busy_area, busy_peak, queue_peak, *mail, *mail_peaks)
        for name, value in zip(("t_s", "busy_area", "busy_peak", "queue_peak", "mail_incoming", "mail_active",
                                "mail_deferred", "mail_active_peak", "mail_deferred_peak"), values):
            self.samples[name].append(value)

    def delivery(self, message_id, kind, accepted, recipients, delivered, bounced, purged, expired, queued,
                 last_delivery) -> None:
        """What became of one queued message's recipients (in :data:`DELIVERY_COLUMNS` order)."""
        d = self._d
        d[0](message_id)
        d[1](kind)
        d[2](accepted)
        d[3](recipients)
        d[4](delivered)
        d[5](bounced)
        d[6](purged)
        d[7](expired)
        d[8](queued)
        d[9](last_delivery)

    def event(self, t: float, what: str, detail: str) -> None:
        self.events.append((t, what, detail))

    def nbytes(self) -> int:
        """Memory held by the columns (for the memory benchmark)."""
        tables = (self.messages, self.sessions, self.samples, self.deliveries)
        return sum(col.itemsize * len(col) for table in tables for col in table.values())
