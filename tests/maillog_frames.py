"""Schema-conformant parsed-maillog tables built from synthetic sessions (no parser needed).

``parsed_log(sessions)`` takes a list of :class:`Session` and returns an object
with the ``sessions``, ``messages``, ``recipients``, ``rejects``,
``auth_failures`` and ``anvil`` DataFrames and ``stats`` dict of the parser's
table contract, so calibrate's tests do not depend on the parser.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pandas as pd

SESSION_COLUMNS = ["session_id", "host", "service", "pid", "connect_s", "disconnect_s", "client_name",
                   "client_address", "sasl_method", "sasl_username", "end", "lost_after", "ehlo", "helo",
                   "starttls", "auth_ok", "auth_tried", "mail_ok", "mail_tried", "rcpt_ok", "rcpt_tried", "data_ok",
                   "data_tried", "rset", "quit", "commands_ok", "commands_tried"]
MESSAGE_COLUMNS = ["queue_id", "session_id", "accepted_s", "client_name", "client_address", "sasl_username",
                   "sender", "size", "nrcpt", "removed_s"]
RECIPIENT_COLUMNS = ["queue_id", "t_s", "recipient", "orig_recipient", "relay", "delay_s", "delay_before_qmgr_s",
                     "delay_in_qmgr_s", "delay_connect_s", "delay_transmit_s", "dsn", "status", "detail"]
REJECT_COLUMNS = ["t_s", "session_id", "queue_id", "stage", "code", "dsn", "reason", "client_name", "client_address",
                  "sender", "recipient", "helo", "action"]
AUTH_FAILURE_COLUMNS = ["t_s", "session_id", "client_name", "client_address", "sasl_method", "reason",
                        "sasl_username"]
ANVIL_COLUMNS = ["t_s", "statistic", "value", "service", "client", "at_s"]


@dataclass
class Session:
    """One synthetic smtpd session: a login (or a failed one) and one message per entry of ``messages``.

    ``messages`` lists the recipients of each message; ``duration`` is
    connect to disconnect in seconds (None: never disconnected)."""

    connect_s: float
    client_name: str
    client_address: str
    sasl_username: str = ""
    messages: list[int] = field(default_factory=lambda: [1])
    duration: float | None = 1.0
    service: str = "postfix/submission"
    auth_failed: bool = False


def parsed_log(sessions: list[Session], extra_stats: dict | None = None, deliveries: bool = True) -> SimpleNamespace:
    """The parsed tables of ``sessions``; ``deliveries=False`` leaves out the delivery lines (recipients table)."""
    s_rows, m_rows, r_rows, f_rows = [], [], [], []
    queue = 0
    for sid, s in enumerate(sessions):
        login = "" if s.auth_failed else s.sasl_username
        messages = [] if s.auth_failed else s.messages
        n_rcpt = int(sum(messages))
        commands = 2 + len(messages) * 2 + n_rcpt + 1
        s_rows.append([sid, "mx", s.service, 1000 + sid, s.connect_s,
                       np.nan if s.duration is None else s.connect_s + s.duration, s.client_name, s.client_address,
                       "PLAIN" if login else "", login, "disconnect" if s.duration is not None else "unfinished", "",
                       1, -1, -1, 1 if login else 0, 1 if (login or s.auth_failed) else 0, len(messages),
                       len(messages), n_rcpt, n_rcpt,
                       len(messages), len(messages), -1, 1, commands, commands + (1 if s.auth_failed else 0)])
        if s.auth_failed:
            f_rows.append([s.connect_s, sid, s.client_name, s.client_address, "LOGIN",
                           "UGFzc3dvcmQ6", ""])
        for i, n in enumerate(messages):
            qid = f"{queue:011X}"
            queue += 1
            t = s.connect_s + (s.duration or 1.0) * (i + 0.5) / (len(messages) + 1)
            if float(s.connect_s).is_integer() and float(s.duration or 0).is_integer():
                t = float(np.floor(t))  # whole-second stamps (classic syslog) throughout
            m_rows.append([qid, sid, t, s.client_name, s.client_address, login, f"{login}@example.jp", 600, n, t + 1])
            for r in range(n if deliveries else 0):
                r_rows.append([qid, t + 1, f"rcpt{r}@example.com", "", "mx.example.com[192.0.2.26]:25", 1.0, 0.01,
                               0.01, 0.1, 0.9, "2.0.0", "sent", "250 ok"])
    times = [s.connect_s for s in sessions]
    stats = {"lines_read": 10 * len(sessions), "lines_used": 8 * len(sessions), "skipped_by_kind": {},
             "sessions_unfinished": sum(s.duration is None for s in sessions),
             "first_s": min(times, default=np.nan), "last_s": max(times, default=np.nan), "files": ["synthetic.log"]}
    stats.update(extra_stats or {})
    return SimpleNamespace(
        sessions=_frame(s_rows, SESSION_COLUMNS), messages=_frame(m_rows, MESSAGE_COLUMNS),
        recipients=_frame(r_rows, RECIPIENT_COLUMNS), rejects=_frame([], REJECT_COLUMNS),
        auth_failures=_frame(f_rows, AUTH_FAILURE_COLUMNS), anvil=_frame([], ANVIL_COLUMNS), stats=stats)


def _frame(rows, columns) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns)


# ----------------------------------------------------------------- synthetic worlds
ORIGIN_LOOKS = {
    "own": ("p{n}.dial.example-isp.ne.jp", "198.51.{hi}.{lo}"),
    "home": ("h{n}.dsl.example-other.ne.jp", "203.0.{hi}.{lo}"),
    "foreign": ("host{n}.broadband.example.cn", "192.0.{hi}.{lo}"),
    "unknown": ("unknown", "100.64.{hi}.{lo}"),
}
MYNETWORKS = "198.51.0.0/16"


def client(origin: str, n: int) -> tuple[str, str]:
    """(client name, address) of client ``n`` of an origin class: distinct addresses for n < 65536."""
    name, address = ORIGIN_LOOKS[origin]
    return name.format(n=n), address.format(hi=n // 256 % 256, lo=n % 256)


def user_sessions(rng: np.random.Generator, accounts: dict[str, tuple[str, int, float]], days: int = 1,
                  t0: float = 1_336_953_600.0, diurnal=None, recipients_mean: float = 1.5,
                  duration=lambda rng, n: 0.1 * (6 + n)) -> list[Session]:
    """Poisson mail of users: ``accounts`` maps login -> (origin, client number, messages per day).

    Times follow ``diurnal`` (24 weights, default flat) from local midnight
    ``t0``; recipients are geometric with ``recipients_mean``."""
    weights = np.ones(24) if diurnal is None else np.asarray(diurnal, dtype=float)
    weights = weights / weights.sum()
    out = []
    for login, (origin, n, per_day) in accounts.items():
        name, address = client(origin, n)
        k = rng.poisson(per_day * days)
        hours = rng.choice(24, size=k, p=weights)
        day = rng.integers(0, days, size=k)
        times = t0 + day * 86400 + hours * 3600 + rng.uniform(0, 3600, size=k)
        for t in np.sort(times):
            r = int(rng.geometric(1 / recipients_mean))
            out.append(Session(float(t), name, address, login, [r], duration(rng, r)))
    return out


def botnet_sessions(rng: np.random.Generator, accounts: list[str], clients: list[tuple[str, str]], start: float,
                    end: float, pause: float = 10.0, recipients=(30, 70), rtt: float = 0.2,
                    ramp: float = 600.0) -> list[Session]:
    """Bots in a loop session, pause, session... from ``start`` + U[0, ramp) to ``end``.

    Each session logs in with a random stolen account and sends one message
    to U{recipients} recipients; it lasts (6 + n) × rtt."""
    out = []
    for name, address in clients:
        t = start + rng.uniform(0, ramp)
        while t < end:
            n = int(rng.integers(recipients[0], recipients[1] + 1))
            d = (6 + n) * rtt
            out.append(Session(float(t), name, address, str(rng.choice(accounts)), [n], d))
            t += d + pause
    return out
