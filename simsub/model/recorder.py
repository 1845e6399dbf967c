"""The narrow interface through which the model reports what happened.

The model calls :meth:`Recorder.message`, :meth:`Recorder.session` and
:meth:`Recorder.sample` with plain numbers; the recorder keeps them in compact
typed columns (``array.array``: 8 bytes a value, no per-row objects).  Analysis
code turns the columns into tables; the model never computes statistics.

The rows of messages, sessions and deliveries (one per message or session, the
recorder's hot path) are first packed whole into a small buffer (one
``struct.pack`` a row, rather than one ``append`` call a field) and moved into
the columns every :data:`FLUSH_ROWS` rows and whenever a table is read, so a
reader always sees every row and memory stays that of the columns.
"""

from __future__ import annotations

import struct
from array import array
from typing import Any, Callable

import numpy as np

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


FLUSH_ROWS = 2048  # rows a table's buffer holds before they move to its columns (~200 kB at most)


class _Rows:
    """Rows of one table packed into a buffer (native sizes, no padding: the columns'
    own item formats, so every value is stored exactly as ``array.append`` stores it),
    moved into the table's columns by :meth:`flush`."""

    def __init__(self, columns: tuple[tuple[str, str], ...]):
        self.columns: dict[str, array] = {name: array(code) for name, code in columns}
        self.names = [name for name, _ in columns]
        self.pack: Callable[..., bytes] = struct.Struct("=" + "".join(code for _, code in columns)).pack
        self.dtype = np.dtype([(name, "=" + code) for name, code in columns])
        self.buffer = bytearray()
        self.count = 0  # rows in the buffer

    def flush(self) -> None:
        if self.count:
            _move(self.buffer, self.dtype, self.names, self.columns)
            del self.buffer[:]  # the view _move made is gone: the buffer may shrink
            self.count = 0


def _move(buffer: bytearray, dtype: Any, names: list[str], columns: dict[str, array]) -> None:
    """Append the rows packed in ``buffer`` to ``columns``, field by field."""
    rows = np.frombuffer(buffer, dtype=dtype)
    for name in names:
        columns[name].frombytes(rows[name].tobytes())


class Recorder:
    def __init__(self):
        self._messages = _Rows(MESSAGE_COLUMNS)
        self._sessions = _Rows(SESSION_COLUMNS)
        self._deliveries = _Rows(DELIVERY_COLUMNS)
        self.samples = {name: array(code) for name, code in SAMPLE_COLUMNS}
        self.events: list[tuple[float, str, str]] = []  # (t, what, detail): listings, operator actions
        self.totals: dict[str, float | int | None] = {}  # end-of-run counters of the queue and operator
        self.populations: list[str] = []
        self.population_kinds: list[str] = []
        self.origins: list[str] = []
        self.accounts: list[str] = []
        self._account_codes: dict[str, int] = {}

    # The tables' columns, every row recorded so far in them.
    @property
    def messages(self) -> dict[str, array]:
        self._messages.flush()
        return self._messages.columns

    @property
    def sessions(self) -> dict[str, array]:
        self._sessions.flush()
        return self._sessions.columns

    @property
    def deliveries(self) -> dict[str, array]:
        self._deliveries.flush()
        return self._deliveries.columns

    def account_code(self, name: str) -> int:
        code = self._account_codes.get(name)
        if code is None:
            code = self._account_codes[name] = len(self.accounts)
            self.accounts.append(name)
        return code

    def message(self, message_id, population, client, origin, account, recipients, first_attempt, end, accepted,
                attempts, outcome, step, recipients_accepted, ideal, slot_wait, policy_delay) -> None:
        """One finished message, in :data:`MESSAGE_COLUMNS` order (times in s)."""
        rows = self._messages
        rows.buffer += rows.pack(message_id, population, client, origin, account, recipients, first_attempt, end,
                                 accepted, attempts, outcome, step, recipients_accepted, ideal, slot_wait,
                                 policy_delay)
        rows.count += 1
        if rows.count >= FLUSH_ROWS:
            rows.flush()

    def session(self, population: int, arrival: float, outcome: int, slot_wait: float, slot_hold: float) -> None:
        rows = self._sessions
        rows.buffer += rows.pack(population, arrival, outcome, slot_wait, slot_hold)
        rows.count += 1
        if rows.count >= FLUSH_ROWS:
            rows.flush()

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
        rows = self._deliveries
        rows.buffer += rows.pack(message_id, kind, accepted, recipients, delivered, bounced, purged, expired, queued,
                                 last_delivery)
        rows.count += 1
        if rows.count >= FLUSH_ROWS:
            rows.flush()

    def event(self, t: float, what: str, detail: str) -> None:
        self.events.append((t, what, detail))

    def nbytes(self) -> int:
        """Memory held by the columns (for the memory benchmark)."""
        tables = (self.messages, self.sessions, self.samples, self.deliveries)
        return sum(col.itemsize * len(col) for table in tables for col in table.values())
