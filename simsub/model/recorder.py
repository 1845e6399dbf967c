"""The narrow interface through which the model reports what happened.

The model calls :meth:`Recorder.message`, :meth:`Recorder.session` and
:meth:`Recorder.sample` with plain numbers; the recorder keeps them in compact
typed columns (``array.array``: 8 bytes a value, no per-row objects).  Analysis
code turns the columns into tables; the model never computes statistics.
"""

from __future__ import annotations

from array import array

MESSAGE_COLUMNS = (
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
    ("queue_peak", "i"),
)


class Recorder:
    def __init__(self):
        self.messages = {name: array(code) for name, code in MESSAGE_COLUMNS}
        self.sessions = {name: array(code) for name, code in SESSION_COLUMNS}
        self.samples = {name: array(code) for name, code in SAMPLE_COLUMNS}
        self.populations: list[str] = []
        self.population_kinds: list[str] = []
        self.origins: list[str] = []
        self.accounts: list[str] = []
        self._account_codes: dict[str, int] = {}
        self._m = [self.messages[name].append for name, _ in MESSAGE_COLUMNS]
        self._s = [self.sessions[name].append for name, _ in SESSION_COLUMNS]

    def account_code(self, name: str) -> int:
        code = self._account_codes.get(name)
        if code is None:
            code = self._account_codes[name] = len(self.accounts)
            self.accounts.append(name)
        return code

    def message(self, population, client, origin, account, recipients, first_attempt, end, accepted,
                attempts, outcome, step, recipients_accepted, ideal, slot_wait, policy_delay) -> None:
        """One finished message, in :data:`MESSAGE_COLUMNS` order (times in s)."""
        m = self._m
        m[0](population)
        m[1](client)
        m[2](origin)
        m[3](account)
        m[4](recipients)
        m[5](first_attempt)
        m[6](end)
        m[7](accepted)
        m[8](attempts)
        m[9](outcome)
        m[10](step)
        m[11](recipients_accepted)
        m[12](ideal)
        m[13](slot_wait)
        m[14](policy_delay)

    def session(self, population: int, arrival: float, outcome: int, slot_wait: float, slot_hold: float) -> None:
        s = self._s
        s[0](population)
        s[1](arrival)
        s[2](outcome)
        s[3](slot_wait)
        s[4](slot_hold)

    def sample(self, t: float, busy_area: float, busy_peak: int, queue_peak: int) -> None:
        self.samples["t_s"].append(t)
        self.samples["busy_area"].append(busy_area)
        self.samples["busy_peak"].append(busy_peak)
        self.samples["queue_peak"].append(queue_peak)

    def nbytes(self) -> int:
        """Memory held by the columns (for the memory benchmark)."""
        tables = (self.messages, self.sessions, self.samples)
        return sum(col.itemsize * len(col) for table in tables for col in table.values())
