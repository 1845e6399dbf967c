"""Write a Postfix 3.7 maillog of a simulated run (``simsub run --maillog``).

What a real submission server would have logged for the run, line for line in
Postfix's own formats (smtpd.c, smtpd_check.c, smtpd_sasl_glue.c, qmgr,
log_adhoc.c, bounce): ``connect from``, ``QUEUEID: client=…, sasl_method=LOGIN,
sasl_username=…``, ``NOQUEUE: reject: STAGE from …`` (4xx and 5xx), SASL
failures, ``lost connection after …``, ``too many errors after …``, cleanup
``message-id=``, qmgr ``from=, size=, nrcpt=``, delivery lines with ``delay=``,
``delays=``, ``dsn=``, ``status=``, ``sender non-delivery notification``,
``status=expired, returned to sender``, qmgr ``removed`` and ``disconnect from
… ehlo=1 auth=1 mail=1 rcpt=n/m data=1 quit=1 commands=x/y``.

The input is the run's tables (messages, sessions, deliveries, events), its
scenario, policy and seed; client names and addresses are drawn again from the
same named random streams as in the run (:class:`ClientPopulation`).  What the
tables do not record is derived and documented in ``docs/maillog-writer.md``
(which session of a message a retry was, where inside a session a sleep fell,
which recipient went where).  Times are seconds of simulated time; simulated 0
is ``MaillogOptions.start`` on the wall clock.  The same inputs give the same
bytes.
"""

from __future__ import annotations

import bisect
import gzip
import heapq
import io
import math
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Iterator

import numpy as np
import pandas as pd

from ..workload.rng import Streams
from ..workload.synthetic import ClientPopulation

#: Simulated time 0 of every scenario unless told otherwise: the day of the
#: default scenario (15 May 2012, when the bots arrived), midnight UTC.
DEFAULT_START = datetime(2012, 5, 15, tzinfo=timezone.utc)
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
MX_NETWORK = "198.18.0."  # benchmarking range (RFC 2544): the destinations' MX hosts, never a client
MAX_USE = 100  # Postfix max_use: a daemon process exits after this many clients
MAX_IDLE = 100.0  # s, Postfix max_idle: an idle smtpd exits after this long
CLEANUP_S = 0.01  # s, cleanup's share of delays= (before the queue manager)


@dataclass(frozen=True)
class MaillogOptions:
    """How the log looks; none of it changes what happened."""

    start: datetime = DEFAULT_START  # wall-clock time (UTC) of simulated t = 0
    host: str = "mail"  # the syslog host field
    rfc3339: bool = False  # 2012-05-15T00:00:01.250000+00:00 instead of "May 15 00:00:01"
    service: str = "postfix/submission"  # smtpd's syslog_name (master.cf: -o syslog_name=postfix/submission)
    domain: str = "example-isp.ne.jp"  # the ISP's mail domain: senders are ACCOUNT@domain


def parse_start(text: str) -> datetime:
    """``2012-05-15``, ``2012-05-15T08:00``, ``2012-05-15 08:00:00+09:00`` → an aware UTC datetime.

    A value without a zone is UTC.  Raises ``ValueError`` with a one-line message."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"maillog start {text!r}: expected a date or date-time like 2012-05-15 or "
                         "2012-05-15T08:00:00+09:00") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


# ---------------------------------------------------------------------------- formats
def format_delay(seconds: float) -> str:
    """Postfix's format_tv(…, 2 significant digits, delay_logging_resolution_limit 2)."""
    micros = max(int(round(seconds * 1_000_000)), 0)
    sec, usec = divmod(micros, 1_000_000)
    ures, wid = 10_000, 100
    if sec > 0:
        n = 1
        while sec >= n and n <= wid // 10:
            n *= 10
        ures = (1_000_000 // wid) * n
    else:
        while usec >= wid * ures:
            ures *= 10
    if ures > 1:
        usec += ures // 2
        if usec >= 1_000_000:
            sec += 1
            usec -= 1_000_000
    text = str(sec)
    if usec >= ures:
        digits = []
        rem, n = usec, 100_000
        while rem >= ures and n > 0:
            digits.append(str(rem // n))
            rem %= n
            n //= 10
        text += "." + "".join(digits)
    return text


class Stamps:
    """Simulated seconds → syslog time stamps (cached per second for the classic form)."""

    def __init__(self, start: datetime, rfc3339: bool):
        self.start = start
        self.rfc3339 = rfc3339
        self._second = None
        self._text = ""

    def __call__(self, t: float) -> str:
        micros = int(round(t * 1_000_000))
        if self.rfc3339:
            when = self.start + timedelta(microseconds=micros)
            return when.strftime("%Y-%m-%dT%H:%M:%S.%f") + "+00:00"
        second = micros // 1_000_000  # syslog truncates to the second
        if second != self._second:
            when = self.start + timedelta(seconds=second)
            self._second = second
            self._text = f"{MONTHS[when.month - 1]} {when.day:>2} {when:%H:%M:%S}"
        return self._text


def queue_id(t: float, serial: int) -> str:
    """A Postfix short queue id: 5 hex digits of the microseconds, then an "inode" (unique per serial)."""
    usec = int(round(t * 1_000_000)) % 1_000_000
    return f"{usec:05X}{0x100000 + serial % 0xF00000:X}"


def command_stats(counts: list[tuple[str, int, int]]) -> str:
    """`` ehlo=1 auth=0/1 … commands=x/y`` as smtpd_format_cmd_stats writes it (Postfix's command order)."""
    parts, ok_all, tried_all = [], 0, 0
    for name, ok, tried in counts:
        if tried:
            parts.append(f" {name}={ok}" if ok == tried else f" {name}={ok}/{tried}")
            ok_all += ok
            tried_all += tried
    parts.append(f" commands={ok_all}" if ok_all == tried_all and tried_all else f" commands={ok_all}/{tried_all}")
    return "".join(parts)


# ---------------------------------------------------------------------------- processes
class Pids:
    """Plausible process ids: a counter that skips a few numbers (other processes) and wraps."""

    def __init__(self, first: int = 2200):
        self.next = first
        self.count = 0

    def new(self) -> int:
        pid = self.next
        self.count += 1
        self.next += 1 + (self.count * 7) % 4
        if self.next > 32767:
            self.next = 300
        return pid


class SmtpdPool:
    """Which smtpd process serves each session: idle processes are reused (the most
    recently freed first), a process exits after ``MAX_USE`` sessions or ``MAX_IDLE`` s idle."""

    def __init__(self, pids: Pids):
        self.pids = pids
        self.busy: list[tuple[float, int, int]] = []  # heap of (free at, pid, uses)
        self.idle: list[tuple[float, int, int]] = []  # stack of (freed at, pid, uses)

    def take(self, start: float, end: float) -> int:
        while self.busy and self.busy[0][0] <= start:
            freed, pid, uses = heapq.heappop(self.busy)
            if uses < MAX_USE:
                self.idle.append((freed, pid, uses))
        self.idle.sort()  # freed times can arrive out of order; the most recent last
        self.idle = [p for p in self.idle if start - p[0] <= MAX_IDLE]
        if self.idle:
            _, pid, uses = self.idle.pop()
        else:
            pid, uses = self.pids.new(), 0
        heapq.heappush(self.busy, (end, pid, uses + 1))
        return pid


class Rotating:
    """A daemon whose process is replaced every ``MAX_USE`` jobs (cleanup, bounce, local)."""

    def __init__(self, pids: Pids):
        self.pids = pids
        self.pid = pids.new()
        self.uses = 0

    def take(self) -> int:
        if self.uses == MAX_USE:
            self.pid, self.uses = self.pids.new(), 0
        self.uses += 1
        return self.pid


# ---------------------------------------------------------------------------- clients
class Clients:
    """Each client's name, address and round trip, drawn again from the run's named streams."""

    def __init__(self, scenario, seed: int):
        streams = Streams(seed)
        numbering: dict[int, int] = {}
        # Same order and shared numbering as World, so the same draws come out.
        self.populations = [ClientPopulation(scenario, i, p, streams, numbering)
                            for i, p in enumerate(scenario.populations)]
        self._cache: dict[tuple[int, int], tuple[str, str, float]] = {}

    def get(self, population: int, n: int) -> tuple[str, str, float]:
        """(hostname or "unknown", address, round trip in s)."""
        key = (population, n)
        found = self._cache.get(key)
        if found is None:
            c = self.populations[population].client(n)
            found = self._cache[key] = (c.hostname, c.address, 2 * c.half_rtt)
        return found


# ---------------------------------------------------------------------------- which session is which
def message_sessions(messages: pd.DataFrame, sessions: pd.DataFrame, scenario) -> list[list[int]]:
    """Per message (row order of ``messages``), the rows of ``sessions`` that were its attempts, in order.

    A message's first attempt starts at its ``first_attempt_s`` (the same float:
    exact).  A legitimate retry is not linked to its message in the tables: each
    left-over session of a population is given to the message of that population,
    with attempts left, whose previous attempt ended ``retry_interval`` before it
    began — nearest such expected start first (exact when retries do not overlap).
    """
    s_pop = sessions["population"].cat.codes.to_numpy()
    s_arr = sessions["arrival_s"].to_numpy()
    s_out = sessions["outcome"].astype(str).to_numpy()
    s_end = s_arr + sessions["slot_wait_s"].to_numpy() + sessions["slot_hold_s"].to_numpy()
    by_start: dict[tuple[int, float], list[int]] = {}
    for row in range(len(sessions)):
        by_start.setdefault((int(s_pop[row]), float(s_arr[row])), []).append(row)
    m_pop = messages["population"].cat.codes.to_numpy()
    m_first = messages["first_attempt_s"].to_numpy()
    m_attempts = messages["attempts"].to_numpy()
    result: list[list[int]] = []
    for i in range(len(messages)):
        rows = by_start.get((int(m_pop[i]), float(m_first[i])))
        result.append([rows.pop(0)] if rows else [])
    used = {r for rs in result for r in rs}
    retry_interval = [p.retry_interval if not p.is_bot else 0.0 for p in scenario.populations]
    for pop in range(len(scenario.populations)):
        waiting = sorted(i for i in np.flatnonzero((m_pop == pop) & (m_attempts > 1)) if result[i])
        if not waiting:
            continue

        def expected(i: int) -> float:
            last = result[i][-1]
            ended = s_arr[last] if s_out[last] == "refused" else s_end[last]
            return float(ended) + retry_interval[pop]

        slots = sorted((expected(i), i) for i in waiting)
        leftovers = [r for r in np.flatnonzero(s_pop == pop) if r not in used]
        for row in sorted(leftovers, key=lambda r: (s_arr[r], r)):
            if not slots:
                break
            k = bisect.bisect_left(slots, (float(s_arr[row]), -1))
            candidates = [j for j in (k - 1, k) if 0 <= j < len(slots)]
            j = min(candidates, key=lambda j: (abs(slots[j][0] - s_arr[row]), slots[j][1]))
            _, i = slots.pop(j)
            result[i].append(int(row))
            if len(result[i]) < m_attempts[i]:
                bisect.insort(slots, (expected(i), i))
    return result


# ---------------------------------------------------------------------------- reply texts
_STAGE_LISTS = {
    "connect": ("client_restrictions",),
    "helo": ("helo_restrictions",),
    "mail": ("sender_restrictions",),
    "rcpt": ("relay_restrictions", "recipient_restrictions"),
    "data": ("data_restrictions",),
    "end_of_data": ("end_of_data_restrictions",),
}


class Replies:
    """The refusal a stage gives, in smtpd_check.c's words.  The tables keep only
    outcome (4xx/5xx) and the stage; the restriction that refused is guessed from
    the policy's lists: ``reject_unauth_pipelining`` there → 503 "Improper use of
    SMTP command pipelining"; a bare ``defer`` → 450 "Try again later"; a RCPT
    stage with ``check_client_access`` and no policy service → "Client host
    rejected"; otherwise the access-map text "Access denied" with the stage's
    usual reply class."""

    def __init__(self, policy):
        lists = policy.lists
        entries = {stage: " ".join(e for key in keys for e in lists.get(key, []))
                   for stage, keys in _STAGE_LISTS.items()}
        if policy.delay_reject:  # client, helo and sender lists all run at RCPT
            entries["rcpt"] = " ".join(entries[s] for s in ("connect", "helo", "mail", "rcpt"))
        self.entries = entries
        actions = {getattr(spec, "action", "") for spec in policy.services.values()}
        self.partial_code = "554" if actions and actions <= {"REJECT", "LOCK"} else "450"

    def text(self, stage: str, rejected: bool, client: str, helo: str, sender: str, recipient: str) -> str:
        """The reply text, e.g. ``450 4.7.1 <r0@x>: Recipient address rejected: Access denied``."""
        words = self.entries.get(stage, "")
        name, what = {
            "connect": (client, "Client host"),
            "helo": (helo, "Helo command"),
            "mail": (sender, "Sender address"),
            "data": ("DATA", "Data command"),
            "end_of_data": ("END-OF-MESSAGE", "End-of-data"),
        }.get(stage, (recipient, "Recipient address"))
        if stage == "rcpt" and "check_client_access" in words and "check_policy_service" not in words:
            name, what = client, "Client host"
        if rejected and "reject_unauth_pipelining" in words:
            return f"503 5.5.0 <{name}>: {what} rejected: Improper use of SMTP command pipelining"
        if not rejected and "defer" in words.split() and "check_" not in words:
            return f"450 4.3.2 <{name}>: {what} rejected: Try again later"  # the defer restriction
        code = "554 5.7.1" if rejected else "450 4.7.1"
        return f"{code} <{name}>: {what} rejected: Access denied"


# ---------------------------------------------------------------------------- the writer
def delivery_records(deliveries: pd.DataFrame | None) -> list[tuple]:
    """The deliveries table as tuples: (accepted_s, message_id, kind, delivered, bounced,
    purged, expired, queued, last_delivery_s)."""
    if deliveries is None:
        return []
    d = deliveries
    return list(zip(d["accepted_s"].to_numpy(), d["message_id"].to_numpy(), d["kind"].astype(str).to_numpy(),
                    d["delivered"].to_numpy(), d["bounced"].to_numpy(), d["purged"].to_numpy(),
                    d["expired"].to_numpy(), d["queued"].to_numpy(), d["last_delivery_s"].to_numpy()))


@dataclass
class _Message:
    """What the queue side needs of a message the front end accepted."""

    qid: str
    sender: str
    recipients: list[str]
    size: int


class Writer:
    """Turns one run's tables into time-ordered log lines (see :func:`maillog_lines`)."""

    def __init__(self, scenario, policy: str, seed: int, messages: pd.DataFrame, sessions: pd.DataFrame,
                 deliveries: pd.DataFrame | None, events: pd.DataFrame | None, options: MaillogOptions):
        self.scenario = scenario
        self.messages = messages
        self.sessions = sessions
        self.events = events
        self.options = options
        self.replies = Replies(scenario.policies[policy])
        pol = scenario.policies[policy]
        connect_words = " ".join(pol.lists.get("client_restrictions", []))
        self.sleep_before_banner = (not pol.delay_reject) and "sleep" in connect_words
        self.clients = Clients(scenario, seed)
        self.reply_time = scenario.mta.reply_time
        self.hard_errors = scenario.mta.hard_error_limit
        pids = Pids()
        self.pids = pids
        self.master = pids.new()
        self.qmgr = pids.new()
        self.smtpd = SmtpdPool(pids)
        self.cleanup = Rotating(pids)
        self.bounce = Rotating(pids)
        self.local = Rotating(pids)
        self.postsuper = Rotating(pids)
        agents = scenario.queue.delivery_agents if scenario.queue is not None else 1
        self.smtp = [Rotating(pids) for _ in range(min(agents, 8))]
        self.serial = 0
        self.seq = 0
        self.heap: list[tuple[float, int, str]] = []
        self.stamps = Stamps(options.start, options.rfc3339)
        self.prefix = f" {options.host} "
        self.destinations = [d.name for d in scenario.destinations]
        self._purges = self._purge_times()
        self._relays: dict[str, str] = {}
        for kind in ("legit", "spam"):  # cumulative destination shares, for _recipient
            shares = np.array([getattr(d, f"{kind}_share") for d in scenario.destinations], dtype=float)
            setattr(self, f"_{kind}_cumulative", list(np.cumsum(shares) / shares.sum()) if len(shares) else [])
        self.records = delivery_records(deliveries)
        self.by_message = {int(rec[1]): rec for rec in self.records if rec[2] in ("legit", "spam")}

    # -- output plumbing
    def emit(self, t: float, program: str, pid: int, text: str) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, f"{program}[{pid}]: {text}"))

    def flush(self, until: float) -> Iterator[str]:
        heap, stamps, prefix = self.heap, self.stamps, self.prefix
        while heap and heap[0][0] <= until:
            t, _, text = heapq.heappop(heap)
            yield stamps(t) + prefix + text + "\n"

    def lines(self) -> Iterator[str]:
        m = self.messages
        attempts = message_sessions(m, self.sessions, self.scenario)
        children = self._bounce_children()
        cols = {name: m[name].to_numpy() for name in ("message_id", "client", "recipients", "accepted_s",
                                                    "recipients_accepted")}
        pops = m["population"].cat.codes.to_numpy()
        accounts = m["account"].astype(str).to_numpy()
        outcomes = m["outcome"].astype(str).to_numpy()
        steps = m["step"].astype(str).to_numpy()
        bots = (m["kind"] == "bot").to_numpy()
        s_out = self.sessions["outcome"].astype(str).to_numpy()
        s_arr = self.sessions["arrival_s"].to_numpy()
        s_wait = self.sessions["slot_wait_s"].to_numpy()
        s_hold = self.sessions["slot_hold_s"].to_numpy()
        orphans = sorted(children.pop(None, []), key=lambda r: (r[0], r[1]))
        self.emit(0.0, "postfix/master", self.master, "daemon started -- version 3.7.11, configuration /etc/postfix")
        # Sessions in the order smtpd took them (so that processes are handed out in
        # time order); every line of a session, and of its message in the queue, comes
        # at or after that moment, so what is older can be written out.
        plan = sorted((float(s_arr[row] + s_wait[row]), i, k, row)
                      for i, rows in enumerate(attempts) for k, row in enumerate(rows))
        for start, i, k, row in plan:
            while orphans and orphans[0][0] <= start:
                self._queued(orphans.pop(0), None, children)
            yield from self.flush(start)
            name, address, rtt = self.clients.get(int(pops[i]), int(cols["client"][i]))
            mid = int(cols["message_id"][i])
            last = k == len(attempts[i]) - 1
            outcome = outcomes[i] if last else s_out[row]
            step = steps[i] if last else "rcpt"  # earlier attempts: where a 4xx or timeout usually falls
            msg = self._session(mid, name, address, rtt, accounts[i], f"{accounts[i]}@{self.options.domain}",
                                int(cols["recipients"][i]), bool(bots[i]), outcome, step,
                                int(cols["recipients_accepted"][i]) if last else 0,
                                float(cols["accepted_s"][i]) if last else math.nan,
                                start, start + float(s_hold[row]), s_out[row])
            queued = self.by_message.get(mid) if msg is not None and last else None
            if queued is not None:
                self._queued(queued, msg, children)
        for orphan in orphans:
            self._queued(orphan, None, children)
        yield from self.flush(math.inf)

    # -- the smtpd side
    def _session(self, mid: int, name: str, address: str, rtt: float, account: str, sender: str, n: int,
                 spam: bool, outcome: str, step: str, accepted: int, accepted_at: float, start: float, end: float,
                 session_outcome: str) -> _Message | None:
        """One connection's smtpd lines; returns the queued message if it was accepted."""
        if session_outcome in ("refused", "abandoned"):
            return None  # the kernel refused it, or the client left before an smtpd took it: smtpd never saw it
        client = f"{name}[{address}]"
        helo = name if name != "unknown" else f"[{address}]"
        pid = self.smtpd.take(start, end)
        service = f"{self.options.service}/smtpd"
        r, h = self.reply_time, rtt / 2
        recipients = [self._recipient(mid, k, spam) for k in range(n)]

        # Server times of the replies to command j (0 banner, 1 EHLO, 2 AUTH, 3 MAIL,
        # 4.. RCPT, then DATA, end of data, QUIT) with no sleeps, then the sleeps the
        # run had (known only as a total: the span to the final 250, or to the end)
        # added where the policy puts them: before the banner, or over the RCPTs.
        j_data = 4 + n
        events: list[tuple[int, str]] = []
        stats = {"ehlo": [0, 0], "auth": [0, 0], "mail": [0, 0], "rcpt": [0, 0], "data": [0, 0], "quit": [0, 0]}
        qid = None
        reason = None  # "lost connection" / "too many errors" with where

        def ok(cmd, good=1, tried=1):
            stats[cmd][0] += good
            stats[cmd][1] += tried

        refused = outcome in ("rejected", "deferred")
        rejected = outcome == "rejected"
        timeout = outcome == "timeout"
        order = ["banner", "ehlo", "auth", "mail", "rcpt", "data", "end_of_data", "quit"]
        reached = order.index(step) if step in order else 0
        j_last = 0
        if step == "banner":
            if refused:
                text = self.replies.text("connect", rejected, client, helo, sender, "")
                if text.startswith("503 "):  # smtpd logs what it found waiting when it flagged the pipelining
                    events.append((0, f"improper command pipelining after CONNECT from {{c}}: EHLO {helo}\\r\\n"))
                events.append((0, "NOQUEUE: reject: CONNECT from {c}: " + text + "; proto=SMTP"))
            elif timeout:
                reason = "lost connection after CONNECT"
        # EHLO, AUTH and MAIL FROM: one command each, and what smtpd logs when it fails.
        failures = {
            "ehlo": lambda: ("NOQUEUE: reject: EHLO from {c}: "
                             + self.replies.text("helo", rejected, client, helo, sender, "")
                             + f"; proto=SMTP helo=<{helo}>"),  # checked before EHLO sets ESMTP
            "auth": lambda: ("warning: {c}: SASL LOGIN authentication failed: authentication failure, "
                             f"sasl_username={account}"),
            "mail": lambda: ("NOQUEUE: reject: MAIL from {c}: "
                             + self.replies.text("mail", rejected, client, helo, sender, "")
                             + f"; from=<{sender}> proto=ESMTP helo=<{helo}>"),
        }
        for j, cmd in enumerate(("ehlo", "auth", "mail"), start=1):
            if reached < j:
                break
            j_last = j
            if step == cmd and (outcome == "auth_failed" if cmd == "auth" else refused):
                ok(cmd, 0)
                line = failures[cmd]()
                if cmd == "ehlo" and ": 503 " in line:  # smtpd logs what it found waiting behind EHLO
                    events.append((j, "improper command pipelining after EHLO from {c}: AUTH LOGIN\\r\\n"))
                events.append((j, line))
            else:
                ok(cmd)
                if step == cmd and timeout:
                    reason = f"lost connection after {cmd.upper()}"
        if reached >= 4:
            action = {"held": "hold", "discarded": "discard"}.get(outcome)
            if action:  # logged while the first RCPT is checked, before the queue file exists
                events.append((4, f"NOQUEUE: {action}: RCPT from {{c}}: <{recipients[0]}>: Recipient address "
                                  f"triggers {action.upper()} action; from=<{sender}> to=<{recipients[0]}> "
                                  f"proto=ESMTP helo=<{helo}>"))
            if step == "rcpt" and timeout:
                # An impatient client hangs up waiting for a (slow) reply: smtpd finishes
                # that RCPT and then finds the connection gone (as the twin's Postfix logs).
                good, bad = 1, 0
                reason = "lost connection after RCPT"
            elif step == "rcpt" and refused:
                good, bad = 0, min(n, self.hard_errors)
            else:
                good = accepted if outcome in ("accepted", "held", "discarded") else n
                bad = min(n - good, self.hard_errors - 1)
            code_rejected = rejected if step == "rcpt" else self.replies.partial_code.startswith("5")
            for k in range(good + bad):
                j = 4 + k
                if k < good:
                    if qid is None:
                        qid = queue_id(start + j * (rtt + r), self._next_serial())
                        events.append((j, f"{qid}: client={{c}}, sasl_method=LOGIN, sasl_username={account}"))
                else:
                    events.append((j, f"{qid or 'NOQUEUE'}: reject: RCPT from {{c}}: "
                                   + self.replies.text("rcpt", code_rejected, client, helo, sender, recipients[k])
                                   + f"; from=<{sender}> to=<{recipients[k]}> proto=ESMTP helo=<{helo}>"))
            ok("rcpt", good, good + bad)
            j_last = 3 + good + bad
            if bad >= self.hard_errors:
                reason = "too many errors after RCPT"
        if reached >= 5:
            j_last = j_data
            if step == "data" and refused:
                ok("data", 0)
                text = self.replies.text("data", rejected, client, helo, sender, "")
                if text.startswith("503 "):
                    events.append((j_data, f"improper command pipelining after DATA from {{c}}: "
                                           f"From: <{sender}>\\r\\n"))
                events.append((j_data, f"{qid or 'NOQUEUE'}: reject: DATA from {{c}}: " + text
                               + f"; from=<{sender}> proto=ESMTP helo=<{helo}>"))
            elif step == "end_of_data" and refused:
                ok("data", 0)  # data_cmd covers the content and the final reply: it failed
            else:
                ok("data")
                if step == "data" and timeout:
                    reason = "lost connection after DATA"
        if reached >= 6:
            j_last = j_data + 1
            if step == "end_of_data" and refused:
                events.append((j_last, f"{qid}: reject: END-OF-MESSAGE from {{c}}: "
                               + self.replies.text("end_of_data", rejected, client, helo, sender, "")
                               + f"; from=<{sender}> proto=ESMTP helo=<{helo}>"))
            # a client that hangs up waiting for the final 250: smtpd logs no "lost connection" there
        if reason is None and not timeout:
            ok("quit")
            j_last += 1

        # Times.
        def ideal(j: int) -> float:
            return start + r + j * (rtt + r)

        accepted_here = outcome in ("accepted", "held", "discarded") and not math.isnan(accepted_at)
        anchor_j, anchor_t = (j_data + 1, accepted_at - h) if accepted_here else (j_last, end)
        slack = max(anchor_t - ideal(anchor_j), 0.0)
        rcpts = max(min(anchor_j, j_data) - 4, 0) if anchor_j >= 4 else 0

        def when(j: int) -> float:
            if self.sleep_before_banner or anchor_j == 0:
                extra = slack
            elif rcpts and j >= 4:
                extra = slack * min(j - 3, rcpts) / rcpts
            else:
                extra = slack if j >= anchor_j else 0.0
            return min(max(ideal(j) + extra, start), end)

        self.emit(start, service, pid, f"connect from {client}")
        for j, text in events:
            self.emit(when(j), service, pid, text.replace("{c}", client))
        if reason is not None:
            self.emit(end, service, pid, f"{reason} from {client}")
        counts = [(c, stats[c][0], stats[c][1]) for c in ("ehlo", "auth", "mail", "rcpt", "data", "quit")]
        self.emit(end, service, pid, f"disconnect from {client}{command_stats(counts)}")
        if outcome != "accepted" or not accepted_here or qid is None:
            return None
        t_eod = accepted_at - h
        size = 900 + (mid * 2654435761) % 4096  # content is not modelled: a plausible, fixed size per message
        queued = recipients[:accepted]
        moment = self.options.start + timedelta(seconds=t_eod)
        self.emit(t_eod, "postfix/cleanup", self.cleanup.take(),
                  f"{qid}: message-id=<{moment:%Y%m%d%H%M%S}.{qid}@{self.options.domain}>")
        self.emit(t_eod, "postfix/qmgr", self.qmgr, f"{qid}: from=<{sender}>, size={size}, nrcpt={len(queued)} "
                  "(queue active)")
        return _Message(qid, sender, queued, size)

    def _next_serial(self) -> int:
        self.serial += 1
        return self.serial

    def _recipient(self, mid: int, k: int, spam: bool) -> str:
        """Recipient k of message ``mid``; the tables do not say which destination each
        went to, so destinations are dealt out by their legitimate (or spam) shares."""
        if not self.destinations:
            return f"r{k}@example.net"
        u = ((mid * 7 + k * 13) % 100 + 0.5) / 100  # deterministic, evenly spread over (0, 1)
        cumulative = self._spam_cumulative if spam else self._legit_cumulative
        name = self.destinations[min(bisect.bisect_left(cumulative, u), len(cumulative) - 1)]
        return f"r{k}.m{mid}@{name}.example"

    # -- the queue side
    def _bounce_children(self) -> dict:
        """Bounces are not linked to the message they report on.  A message needs one
        for its rejected recipients (expected soon after it was queued) and one when it
        expires (expected a queue lifetime after); each bounce, in time order, goes to
        the earliest such expectation already due; one left over (a later pass) goes to
        the latest message due, or stands alone."""
        children: dict = {}
        recs = self.records
        queue = self.scenario.queue
        for child_kind, parent_kinds, lifetime in (
                ("bounce", ("legit", "spam"), queue.maximal_queue_lifetime if queue else 0.0),
                ("double_bounce", ("bounce",), queue.bounce_queue_lifetime if queue else 0.0)):
            slots = []
            for rec in recs:
                if rec[2] in parent_kinds:
                    if rec[4] > 0:
                        slots.append((float(rec[0]), int(rec[1])))
                    if rec[6] > 0:
                        slots.append((float(rec[0]) + lifetime, int(rec[1])))
            slots.sort()
            bounces = sorted((rec for rec in recs if rec[2] == child_kind), key=lambda rec: (rec[0], rec[1]))
            due: list[tuple[float, int]] = []
            k = 0
            last_parent = None
            for b in bounces:
                while k < len(slots) and slots[k][0] <= b[0]:
                    due.append(slots[k])
                    k += 1
                if due:
                    last_parent = due.pop(0)[1]
                children.setdefault(last_parent, []).append(b)
        return children

    def _purge_times(self) -> list[float]:
        if self.events is None or not len(self.events):
            return []
        ev = self.events
        return sorted(float(t) for t, what in zip(ev["t_s"], ev["event"]) if what == "action")

    def _queued(self, rec, msg: _Message | None, children: dict) -> None:
        """Delivery lines of one queued message (or bounce), its bounces and its removal."""
        t_in, mid, kind, delivered, bounced, purged, expired, queued, last = rec
        mid = int(mid)
        if msg is None:  # a bounce: from the mailer daemon, to the sender of what bounced
            qid = queue_id(t_in, self._next_serial())
            msg = _Message(qid, "", [f"postmaster@{self.options.domain}" if kind == "double_bounce"
                                     else f"sender{-mid}@{self.options.domain}"], 2200 + (-mid * 97) % 2048)
            self.emit(t_in, "postfix/cleanup", self.cleanup.take(),
                      f"{qid}: message-id=<{(self.options.start + timedelta(seconds=t_in)):%Y%m%d%H%M%S}"
                      f".{qid}@{self.options.host}.{self.options.domain}>")
            self.emit(t_in, "postfix/qmgr", self.qmgr, f"{qid}: from=<>, size={msg.size}, nrcpt=1 (queue active)")
        qid = msg.qid
        rcpts = list(msg.recipients)
        mine = children.get(mid, []) if kind in ("legit", "spam", "bounce") else []
        bounce_at = [float(b[0]) for b in mine]
        local = kind in ("bounce", "double_bounce")
        t_done = t_in
        k = 0

        def group(t: float, count: int, status: str, dsn: str, detail, agent_time: float = 0.3) -> None:
            """``count`` recipients' lines with one outcome at one time; ``detail(host)`` is the reply."""
            nonlocal t_done, k
            if count <= 0:
                return
            total = max(t - t_in, 0.0)
            p = min(total, CLEANUP_S)
            x = min(total - p, agent_time)
            delays = (f"delay={format_delay(total)}, delays={format_delay(p)}/{format_delay(total - p - x)}/0/"
                      f"{format_delay(x)}, dsn={dsn}, status={status}")
            program, pid = ("postfix/local", self.local.take()) if local else \
                ("postfix/smtp", self.smtp[self.serial % len(self.smtp)].take())
            for _ in range(count):
                to = rcpts[k % len(rcpts)]
                k += 1
                relay = "local" if local else self._relay(to)
                self.emit(t, program, pid, f"{qid}: to=<{to}>, relay={relay}, {delays} ({detail(relay)})")
            t_done = max(t_done, t)

        t_last = float(last) if not math.isnan(last) else t_in
        if local:
            group(t_last, int(delivered), "sent", "2.0.0", lambda relay: "delivered to mailbox", 0.01)
        else:
            queued_as = f"250 2.0.0 Ok: queued as {queue_id(t_last, mid)}"
            group(t_last, int(delivered), "sent", "2.0.0", lambda relay: queued_as)
        group(bounce_at[0] if bounce_at else t_last, int(bounced), "bounced", "5.7.1",
              lambda relay: f"host {relay.rsplit(':', 1)[0]} said: 550 5.7.1 Message rejected "
                            "(in reply to end of DATA command)")
        # The table keeps no deferral times: one deferred line per recipient that was
        # still queued at the end or expired, a second after it entered the queue.
        group(min(t_in + 1.0, bounce_at[-1] if bounce_at and expired else math.inf), int(expired) + int(queued),
              "deferred", "4.7.0", lambda relay: f"host {relay.rsplit(':', 1)[0]} said: 421 4.7.0 Try again later "
                                                 "(in reply to end of DATA command)")
        if expired:
            t_exp = bounce_at[-1] if bounce_at else t_done
            self.emit(t_exp, "postfix/qmgr", self.qmgr, f"{qid}: from=<{msg.sender}>, status=expired, "
                      "returned to sender")
            t_done = max(t_done, t_exp)
        for b in mine:
            t_b = float(b[0])
            notice = "postmaster" if b[2] == "double_bounce" else "sender"
            child = _Message(queue_id(t_b, self._next_serial()), "",
                             [f"postmaster@{self.options.domain}" if notice == "postmaster"
                              else (msg.sender or f"postmaster@{self.options.domain}")],
                             2200 + (-int(b[1]) * 97) % 2048)
            self.emit(t_b, "postfix/bounce", self.bounce.take(),
                      f"{qid}: {notice} non-delivery notification: {child.qid}")
            self.emit(t_b, "postfix/cleanup", self.cleanup.take(),
                      f"{child.qid}: message-id=<{(self.options.start + timedelta(seconds=t_b)):%Y%m%d%H%M%S}"
                      f".{child.qid}@{self.options.host}.{self.options.domain}>")
            self.emit(t_b, "postfix/qmgr", self.qmgr, f"{child.qid}: from=<>, size={child.size}, nrcpt=1 "
                      "(queue active)")
            self._queued(b, child, children)
        if purged:
            t_p = next((t for t in self._purges if t >= t_in), t_done)
            self.emit(max(t_p, t_done), "postfix/postsuper", self.postsuper.take(), f"{qid}: removed")
        elif not queued:
            self.emit(t_done, "postfix/qmgr", self.qmgr, f"{qid}: removed")

    def _relay(self, to: str) -> str:
        domain = to.rsplit("@", 1)[1]
        found = self._relays.get(domain)
        if found is None:
            found = self._relays[domain] = self._relay_of(domain)
        return found

    def _relay_of(self, domain: str) -> str:
        name = domain.removesuffix(".example")
        k = self.destinations.index(name) + 1 if name in self.destinations else 254
        return f"mx.{domain}[{MX_NETWORK}{k}]:25"


def maillog_lines(scenario, policy: str, seed: int, messages: pd.DataFrame, sessions: pd.DataFrame,
                  deliveries: pd.DataFrame | None = None, events: pd.DataFrame | None = None,
                  options: MaillogOptions | None = None) -> Iterator[str]:
    """The run's maillog, line by line (each ends with a newline), in time order."""
    return Writer(scenario, policy, seed, messages, sessions, deliveries, events, options or MaillogOptions()).lines()


def write_lines(lines, fh: IO[str]) -> int:
    """Write ``lines`` to a text file object; returns how many."""
    count = 0
    for line in lines:
        fh.write(line)
        count += 1
    return count


def write_maillog(result, path: str | Path, options: MaillogOptions | None = None) -> int:
    """Write the maillog of ``result`` (a :class:`simsub.api.Result`) to ``path``
    (gzip if the name ends in ``.gz``), atomically; returns the number of lines."""
    path = Path(path)
    lines = maillog_lines(result.scenario, result.policy, result.seed, result.messages, result.sessions,
                          result.deliveries, result.events, options)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.partial-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as raw:
            if path.name.endswith(".gz"):
                # mtime=0 and no file name in the header: the same run gives the same bytes
                with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz, \
                        io.TextIOWrapper(gz, encoding="utf-8", newline="\n") as fh:
                    count = write_lines(lines, fh)
            else:
                with io.TextIOWrapper(raw, encoding="utf-8", newline="\n") as fh:
                    count = write_lines(lines, fh)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return count
