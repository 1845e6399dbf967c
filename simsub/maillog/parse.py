"""One pass over Postfix logs → sessions, messages, recipients, rejects, AUTH failures, anvil.

The join: an smtpd process is a (host, syslog service, pid); ``connect from``
starts a session on it (a new ``connect from`` on the same key starts the next
session: pid reuse), ``disconnect from`` ends it.  ``QUEUEID: client=`` starts a
message on the session's process; qmgr's ``from=… size=… nrcpt=…`` and
``removed`` lines complete it by queue id (short or long ids; an id seen again
after ``removed`` is a new message).  Delivery lines (``to=<…>, … status=…``)
are rows of their own, keyed by queue id.

Memory: only open sessions and messages still in the queue are kept; finished
rows go to :class:`~simsub.maillog.tables.Buffers`, which hand them on in chunks.
A message whose client hung up before the end of DATA is never queued (no qmgr
line follows): it is written out ``LIMBO_S`` seconds of log time after its
session ended (a day if cleanup had already logged it).
"""

from __future__ import annotations

import gc
import math
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Final

import pandas as pd

from . import events
from .lines import (GZIP_ERRORS, MAX_LINE, ClassicClock, LogError, LogFile, MONTHS, Rfc3339Clock, Seconds, epoch,
                    file_years, first_time, open_log, scan)
from .events import NO_COUNTS, Run, client
from .tables import Buffers, FrameSink

#: s of log time after a session's end before its never-queued messages are written out.
LIMBO_S: Final = 600.0
#: ... and when cleanup had logged the message (it may wait in the incoming queue that long).
LIMBO_CLEANED_S: Final = 86400.0
#: A step back in time larger than this (s) counts as timestamps going backwards
#: (syslog daemons interleave processes' lines by up to about a second).
BACKWARDS_TOLERANCE_S: Final = 1.0
#: Distinct other programs counted by name; the rest are counted together.
MAX_PROGRAM_KINDS: Final = 20
#: Lines between two progress reports.
PROGRESS_EVERY = 65536
#: The garbage collector's first threshold while a log is parsed (Python's default is 700).  The parse
#: makes a few container objects per line; nearly all are freed by reference counting, but rows wait in
#: their buffers for a chunk, so the count of new objects climbs and the collector would run every few
#: hundred lines, each third pass over everything the process holds (pandas alone is ~100k objects).
#: This many is a collection every few thousand lines: 10-17 % less CPU for the whole parse
#: (docs/maillog.md), and what a collection can free (cycles: none are made per line) stays small.
PARSE_GC_THRESHOLD: Final = 100_000
DIGITS: Final = frozenset("0123456789")
#: The characters from "!" to "~": none is white space (a set: compiled, comparing strings by order is a generic call).
PRINTABLE_ASCII: Final = frozenset(map(chr, range(0x21, 0x7F)))
#: What a line's program is to :meth:`Parser.feed`, which calls the handler of each kind directly (cheaper,
#: compiled, than calling a bound method kept in a table): not Postfix, a Postfix line only counted, ...
OTHER: Final = 0
COUNTED: Final = 1
SMTPD: Final = 2
QMGR: Final = 3
DELIVERY: Final = 4
CLEANUP: Final = 5
ANVIL: Final = 6
NAN: Final = math.nan


@dataclass
class ParsedLog:
    """The tables of docs/maillog.md and ``stats`` (lines read, used, skipped by kind, ...)."""
    sessions: pd.DataFrame
    messages: pd.DataFrame
    recipients: pd.DataFrame
    rejects: pd.DataFrame
    auth_failures: pd.DataFrame
    anvil: pd.DataFrame
    stats: dict = field(default_factory=dict)


class _Session:
    """An smtpd connection (one is made per ``connect from`` line: its attributes are set one per
    statement, which is faster than a tuple assignment, and ``messages`` stays None until it has one)."""
    __slots__ = ("id", "host", "service", "pid", "connect_s", "name", "address", "who", "method", "user", "end",
                 "lost_after", "messages")

    def __init__(self, sid: int, host: str, service: str, pid: int, connect_s: Seconds, name: str = "",
                 address: str = "", who: str | None = None):
        self.id = sid
        self.host = host
        self.service = service
        self.pid = pid
        self.connect_s = connect_s
        self.name = name
        self.address = address
        self.who = who  # the connect line's ``name[address]`` text (None without one)
        self.method = ""
        self.user = ""
        self.lost_after = ""
        self.end = "disconnect"
        self.messages: list[_Message] | None = None


class _Message:
    __slots__ = ("qid", "session_id", "accepted_s", "name", "address", "user", "sender", "size", "nrcpt",
                 "cleaned", "ended")

    def __init__(self, qid: str, session_id: int, accepted_s: Seconds, name: str, address: str, user: str):
        self.qid = qid
        self.session_id = session_id
        self.accepted_s = accepted_s
        self.name = name
        self.address = address
        self.user = user
        self.sender = ""
        self.size = -1
        self.nrcpt = -1
        self.cleaned = False  # cleanup logged it
        self.ended = False  # its session has ended


class _Count:
    """The handler of lines that are only counted: calling it counts one line of ``kind`` in ``skipped``."""

    def __init__(self, skipped: Counter, kind: str):
        self.skipped = skipped
        self.kind = kind

    def __call__(self, *_args: object) -> None:
        self.skipped[self.kind] += 1


class Parser:
    """The join state machine; feed it files in time order, then :meth:`finish`."""

    def __init__(self, buffers: Buffers, progress=None):
        self.out = buffers
        self.progress = progress
        self.sessions: dict[tuple, _Session] = {}
        self.messages: dict[str, _Message] = {}
        # (deadline_s, message) of ended sessions' unqueued messages
        self.limbo: deque[tuple[float, _Message]] = deque()
        self.limbo_cleaned: deque[tuple[float, _Message]] = deque()
        self.next_session = 0
        self.skipped: Counter = Counter()
        # syslog tag → (kind of program, its counter if only counted, service, pid)
        self.tags: dict[str, tuple[int, _Count | None, str, int]] = {}
        self.kinds = {"smtpd": SMTPD, "qmgr": QMGR, "oqmgr": QMGR, "anvil": ANVIL, "cleanup": CLEANUP}
        for program in events.DELIVERY_PROGRAMS:
            self.kinds[program] = DELIVERY
        self.lines_read = 0
        self.bytes_done = 0
        self.bytes_total = 0
        self.first_s: Seconds = math.inf
        self.latest_s: Seconds = -math.inf
        self.backwards = 0
        self.backwards_first = ""  # file: line of the first step back
        self.backwards_max: Seconds = 0.0
        self.without_connect = 0
        self.unfinished = 0
        self.never_queued = 0
        self.services: Counter = Counter()  # smtpd sessions per service
        self.files: list[dict] = []
        self.warnings: list[str] = []
        self._clock: ClassicClock | Rfc3339Clock | None = None

    # ------------------------------------------------------------------ the pass
    def feed(self, log: LogFile, year: int | None) -> None:
        """Parse one file; ``year``: the year of its first classic stamp."""
        given_year = year
        if year is None:  # a file of RFC 3339 stamps: a stray classic one is in the year of its first
            year = datetime.fromtimestamp(first_time(log, None), tz=timezone.utc).year
        classic = ClassicClock(year)
        seconds_of = classic.cache.get  # the clock's cache, looked up inline: most lines hit it
        rfc = Rfc3339Clock()
        self._clock = rfc if log.format == "rfc3339" else classic  # anvil's local "at" times need its offset
        tags, tag_info, skipped, progress = self.tags, self._tag, self.skipped, self.progress
        latest, first = self.latest_s, self.first_s
        other = not_syslog = overlong = 0
        overlong_first = 0
        number = 0
        # Classic stamps repeat from line to line (one second of a busy log): the last one's time is kept,
        # and a line that starts with the same 15 characters is not sliced (no line starts with line breaks).
        last_key = "\n" * 15
        last_t: Seconds = 0.0
        t: Seconds  # the line's time (s)
        next_progress = self.lines_read + PROGRESS_EVERY
        text, raw = open_log(log.path)
        truncated = None
        try:
            with text:
                for line in text:
                    number += 1
                    if len(line) > MAX_LINE:
                        overlong += 1
                        overlong_first = overlong_first or number
                        continue
                    # Host, tag and text are cut by position (str.find and three slices, what
                    # line.split(" ", 2) after the stamp gives): fewer objects per line than a copy of the
                    # rest, a list and rstrip().  Compiled (the build the speed is judged on) this is
                    # faster; in pure Python it costs more bytecodes than one split (docs/maillog.md).
                    try:
                        if line[0] in DIGITS:
                            start = line.find(" ")
                            t = rfc(line[:start] if start >= 0 else line)
                            start = start + 1 if start >= 0 else len(line)
                        else:
                            if not line.startswith(last_key):
                                key = line[:15]
                                last_t = seconds_of(key) or classic(key)
                                last_key = key
                            t = last_t
                            if line[15] == " ":
                                start = 16
                            else:  # a fraction of a second after the stamp
                                cut = line.index(" ", 15)
                                t += float(line[15:cut])
                                start = cut + 1
                    except (ValueError, IndexError, KeyError, TypeError):
                        not_syslog += 1
                        continue
                    at = line.find(" ", start)
                    end = line.find(" ", at + 1) if at >= 0 else -1
                    if end < 0:  # fewer than three fields after the stamp
                        not_syslog += 1
                        continue
                    host = line[start:at]
                    tag = line[at + 1:end]
                    # the text without its line break: what rstrip() leaves when the character before the
                    # break is printable ASCII (else rstrip() itself, which also takes other white space)
                    stop = len(line) - 1
                    if stop > end + 1 and line[stop] == "\n" and line[stop - 1] in PRINTABLE_ASCII:
                        msg = line[end + 1:stop]
                    else:
                        msg = line[end + 1:].rstrip()
                    kind, count, service, pid = tags.get(tag) or tag_info(tag)
                    if t != latest:  # a line of another time than the one before (else nothing changes)
                        if t < latest:
                            if t < latest - BACKWARDS_TOLERANCE_S:
                                self._backwards(log, number, latest - t)
                        else:
                            latest = t
                        if t < first:
                            first = t
                        if progress and self.lines_read + number >= next_progress:
                            next_progress += PROGRESS_EVERY
                            progress(self.lines_read + number, self.bytes_done + raw.tell(), self.bytes_total,
                                     log.name)
                    if kind != OTHER:
                        try:
                            if kind == SMTPD:
                                self.smtpd(t, host, service, pid, msg)
                            elif kind == DELIVERY:
                                self.delivery(t, host, service, pid, msg)
                            elif kind == QMGR:
                                self.qmgr(t, host, service, pid, msg)
                            elif kind == CLEANUP:
                                self.cleanup(t, host, service, pid, msg)
                            elif kind == ANVIL:
                                self.anvil(t, host, service, pid, msg)
                            elif count is not None:
                                count()
                        except (ValueError, IndexError, KeyError):  # e.g. delay=1.2.3: a line no Postfix writes
                            skipped["postfix line not understood"] += 1
                    else:
                        other += 1
                        if count is not None:
                            count()
        except GZIP_ERRORS as exc:
            truncated = exc
        except OSError as exc:
            raise LogError(log.name, number + 1, f"cannot read it: {exc.strerror or exc}") from None
        finally:
            raw.close()
        self.latest_s, self.first_s = latest, first
        postfix = number - overlong - not_syslog - other  # every line is one of the four
        self.lines_read += number
        self.bytes_done += log.size
        if not_syslog:
            skipped["not a syslog line"] += not_syslog
        if overlong:
            skipped["line too long"] += overlong
            self.warnings.append(f"{log.name}: line {overlong_first}: longer than {MAX_LINE} characters, not a "
                                 f"syslog line: skipped ({overlong} such lines)")
        if truncated is not None:
            self.warnings.append(f"{log.name}: line {number + 1}: the gzip data ends early or is damaged "
                                 f"({_gzip_reason(truncated)}): the {number} lines before are used")
        self.files.append({"path": log.name, "format": log.format or "", "year": given_year, "lines": number,
                           "postfix_lines": postfix, "other_program_lines": other, "not_syslog_lines": not_syslog,
                           "truncated": truncated is not None})

    def _backwards(self, log: LogFile, number: int, step: Seconds) -> None:
        self.backwards += 1
        if not self.backwards_first:
            self.backwards_first = f"{log.name}: line {number}"
        self.backwards_max = max(self.backwards_max, step)

    def _tag(self, tag: str) -> tuple[int, _Count | None, str, int]:
        """``postfix/submission/smtpd[123]:`` → (kind, counter or None, service, pid), cached."""
        name, pid = tag[:-1] if tag.endswith(":") else tag, -1
        if name.endswith("]") and "[" in name:
            name, _, number = name[:-1].partition("[")
            number = number.partition(".")[0]
            pid = int(number) if number.isdigit() and len(number) <= 9 else -1
        service, _, program = name.rpartition("/")
        if service and program in events.POSTFIX_PROGRAMS:
            kind = self.kinds.get(program, COUNTED)
            info = (kind, self._counter(f"postfix {program} (not tabulated)") if kind == COUNTED else None, service,
                    pid)
        else:
            programs = {k for k in self.skipped if k.startswith("other program: ")}
            counted = f"other program: {name}"
            if counted not in programs and len(programs) >= MAX_PROGRAM_KINDS:
                counted = "other program: (more programs)"
            info = (OTHER, self._counter(counted), "", pid)
        if len(self.tags) > 50_000:  # a cache: pids make tags of long logs countless
            self.tags.clear()
        self.tags[tag] = info
        return info

    def _counter(self, kind: str) -> _Count:
        return _Count(self.skipped, kind)

    # ------------------------------------------------------------------ smtpd
    def _session(self, host: str, service: str, pid: int) -> _Session:
        """The open session of an smtpd process, or one whose connect is before the log's start."""
        s = self.sessions.get((host, service, pid))
        if s is None:
            s = self._open(host, service, pid, NAN)
            self.without_connect += 1
        return s

    def _open(self, host: str, service: str, pid: int, t: Seconds, name: str = "", address: str = "") -> _Session:
        s = _Session(self.next_session, host, service, pid, t, name, address)
        self.next_session += 1
        self.sessions[(host, service, pid)] = s
        self.services[service] += 1
        return s

    def smtpd(self, t: Seconds, host: str, service: str, pid: int, msg: str) -> None:
        # Most smtpd lines are connects and disconnects, then QUEUEID: client= lines: those are tried first.
        if msg.startswith("connect from "):
            key = (host, service, pid)
            old = self.sessions.pop(key, None)
            if old is not None:  # the same pid again without a disconnect line between
                self._end(old, NAN, None, "unfinished", t)
            who = msg[13:]
            name, address = client(who)
            self.sessions[key] = _Session(self.next_session, host, service, pid, t, name, address, who)
            self.next_session += 1
            self.services[service] += 1
            return
        if msg.startswith("disconnect from "):
            s = self.sessions.pop((host, service, pid), None)
            if s is None:
                s = self._open(host, service, pid, NAN)
                self.without_connect += 1
                del self.sessions[(host, service, pid)]
            who, _, counts = msg[16:].partition(" ")
            # XCLIENT may have changed who the client is since the connect.  The same text as the
            # connect's names the client the session already has (a message's client= only fills in
            # an address the connect did not give, and then this text gives none either).
            if who != s.who:
                name, address = client(who)
                if address:
                    s.name, s.address = name, address
            self._end(s, t, events.disconnect_run(counts), s.end, t)
            if (self.limbo and self.limbo[0][0] < t) or (self.limbo_cleaned and self.limbo_cleaned[0][0] < t):
                self._sweep(t)
            return
        qid, sep, rest = msg.partition(": ")
        # a queue id, but not the NOQUEUE: and warning: of the branches below (which have the form of one)
        if sep and qid != "NOQUEUE" and qid != "warning" and events.is_queue_id(qid):
            if rest.startswith("client="):
                self._message(t, self.sessions.get((host, service, pid)) or self._session(host, service, pid),
                              qid, rest)
            else:
                r = events.reject(rest)
                if r is None:
                    self.skipped["postfix smtpd (not tabulated)"] += 1
                else:
                    self._reject(t, self._session(host, service, pid).id, qid, r)
        elif msg.startswith("lost connection after ") or msg.startswith("timeout after "):
            lost = msg[0] == "l"
            command, _ = events.after_command(msg[22 if lost else 14:])
            s = self._session(host, service, pid)
            s.end, s.lost_after = ("lost" if lost else "timeout"), command
        elif msg.startswith("NOQUEUE: "):
            r = events.reject(msg[9:])
            if r is None:
                self.skipped["postfix smtpd (not tabulated)"] += 1
            else:
                self._reject(t, self._session(host, service, pid).id, "NOQUEUE", r)
        elif msg.startswith("warning: "):
            failure = events.sasl_failure(msg[9:])
            if failure is None:
                self.skipped["postfix smtpd warning (not tabulated)"] += 1
                return
            name, address, method, reason, user = failure
            s = self._session(host, service, pid)
            self.out.auth_failures.add((t, s.id, name, address, method, reason, user))
        else:
            self.skipped["postfix smtpd (not tabulated)"] += 1

    def _message(self, t: Seconds, s: _Session, qid: str, text: str) -> None:
        name, address, method, user = events.submission_client(text)
        old = self.messages.pop(qid, None)
        if old is not None:  # a short queue id used again before its removal was logged
            self._write_message(old, NAN)
        if user and not s.user:
            s.method, s.user = method, user
        if address and not s.address:
            s.name, s.address = name, address
        m = _Message(qid, s.id, t, name, address, user)
        self.messages[qid] = m
        if s.messages is None:
            s.messages = [m]
        else:
            s.messages.append(m)

    def _reject(self, t: Seconds, session_id: int, qid: str, r: tuple) -> None:
        """A row of rejects from :func:`events.reject`'s fields."""
        action, stage, name, address, code, dsn, reason, sender, recipient, helo = r
        self.out.rejects.add((t, session_id, qid, stage, code, dsn, reason, name, address, sender,
                              recipient, helo, action))

    def _end(self, s: _Session, t: Seconds, counts: Run | None, end: str, now: Seconds) -> None:
        """Write the session's row; ``now``: the current line's time (s), from which its messages that
        never reached qmgr wait ``LIMBO_S`` when ``t`` (its disconnect) is not known."""
        if end == "unfinished":
            self.unfinished += 1
        # the buffers' layout of a sessions row (tables.flat_rows): the counts are a run, their text made once
        self.out.sessions.add((s.id, s.host, s.service, s.pid, s.connect_s, t, s.name, s.address, s.method, s.user,
                               end, s.lost_after, counts or NO_COUNTS))
        if s.messages is None:
            return
        deadline = (t if t == t else now) + LIMBO_S
        for m in s.messages:
            m.ended = end != "unfinished"  # a client that left: what it began and did not end is lost
            if m.nrcpt < 0 and self.messages.get(m.qid) is m:
                self.limbo.append((deadline, m))

    def _sweep(self, now: Seconds) -> None:
        """Write out the messages that were never queued (their limbo is over)."""
        limbo = self.limbo
        while limbo and limbo[0][0] < now:
            _, m = limbo.popleft()
            if m.nrcpt >= 0 or self.messages.get(m.qid) is not m:
                continue
            if m.cleaned:
                self.limbo_cleaned.append((now + LIMBO_CLEANED_S - LIMBO_S, m))
                continue
            del self.messages[m.qid]
            self.never_queued += m.ended
            self._write_message(m, NAN)
        limbo = self.limbo_cleaned
        while limbo and limbo[0][0] < now:
            _, m = limbo.popleft()
            if m.nrcpt < 0 and self.messages.get(m.qid) is m:
                del self.messages[m.qid]
                self.never_queued += m.ended
                self._write_message(m, NAN)

    def _write_message(self, m: _Message, removed: Seconds) -> None:
        self.out.messages.add((m.qid, m.session_id, m.accepted_s, m.name, m.address, m.user, m.sender, m.size,
                               m.nrcpt, removed))

    # ------------------------------------------------------------------ queue and delivery
    def qmgr(self, t: Seconds, host: str, service: str, pid: int, msg: str) -> None:
        cut = msg.find(": ")  # what msg.partition(": ") cuts, the rest read in place
        qid = msg[:cut]
        m = self.messages.get(qid) if cut >= 0 else None
        if m is None:
            self.skipped["postfix qmgr: message not received by smtpd in this log"] += 1
        elif events.starts_at(msg, "from=", cut + 2):
            queued = events.qmgr_from(msg, cut + 2)
            if queued is None:  # e.g. from=<>, status=expired, returned to sender
                self.skipped["postfix qmgr (not tabulated)"] += 1
            elif m.nrcpt < 0:  # later from= lines are the same message leaving the deferred queue
                m.sender, m.size, m.nrcpt = queued
        elif len(msg) == cut + 9 and msg.endswith("removed"):  # the rest is "removed"
            del self.messages[qid]
            self._write_message(m, t)
        else:
            self.skipped["postfix qmgr (not tabulated)"] += 1

    def cleanup(self, t: Seconds, host: str, service: str, pid: int, msg: str) -> None:
        qid, sep, rest = msg.partition(": ")
        m = self.messages.get(qid) if sep else None
        r = events.reject(rest) if rest.startswith("milter-") else None
        if r is not None:
            self._reject(t, m.session_id if m else -1, qid, r)
            return
        if m is not None and rest.startswith("message-id="):
            m.cleaned = True
            return
        self.skipped["postfix cleanup (not tabulated)"] += 1

    def delivery(self, t: Seconds, host: str, service: str, pid: int, msg: str) -> None:
        cut = msg.find(": ")  # what msg.partition(": ") cuts, read in place
        d = events.delivery_parts(msg, cut + 2) if cut >= 0 and events.starts_at(msg, "to=<", cut + 2) else None
        if d is None:
            self.skipped["postfix delivery agent (not tabulated)"] += 1
            return
        to, middle, status, detail = d
        # the buffers' layout of a recipients row (tables.flat_rows): the middle is a run, its text made once
        self.out.recipients.add((msg[:cut], t, to, middle, status, detail))

    def anvil(self, t: Seconds, host: str, service: str, pid: int, msg: str) -> None:
        a = events.anvil(msg)
        if a is None:
            self.skipped["postfix anvil (not tabulated)"] += 1
            return
        statistic, value, client, at = a
        self.out.anvil.add((t, statistic, value, service, client,
                            _at_time(at, t, getattr(self._clock, "last_offset", 0.0))))

    # ------------------------------------------------------------------ the end
    def finish(self) -> None:
        """Write out what is still open: sessions as "unfinished", messages without ``removed``."""
        for s in self.sessions.values():
            self._end(s, NAN, None, "unfinished", self.latest_s)  # its messages are written out below
        self.sessions.clear()
        for m in self.messages.values():
            if m.nrcpt < 0 and m.ended:
                self.never_queued += 1
            self._write_message(m, NAN)
        self.messages.clear()
        self.out.finish()

    def stats(self) -> dict:
        skipped = dict(sorted(self.skipped.items(), key=lambda kv: (-kv[1], kv[0])))
        counts = self.out.counts
        return {
            "lines_read": self.lines_read,
            "lines_used": self.lines_read - sum(skipped.values()),
            "skipped_by_kind": skipped,
            "sessions": counts["sessions"],
            "sessions_unfinished": self.unfinished,
            "sessions_without_connect": self.without_connect,
            "sessions_by_service": dict(sorted(self.services.items())),
            "messages": counts["messages"],
            "messages_never_queued": self.never_queued,
            "recipients": counts["recipients"],
            "rejects": counts["rejects"],
            "auth_failures": counts["auth_failures"],
            "anvil": counts["anvil"],
            "first_s": self.first_s if self.first_s != math.inf else None,
            "last_s": self.latest_s if self.latest_s != -math.inf else None,
            "time_backwards": {"lines": self.backwards, "first": self.backwards_first,
                               "largest_step_s": self.backwards_max},
            "files": self.files,
            "warnings": self.warnings,
        }


def _at_time(stamp: str, t: float, offset: Seconds) -> Seconds:
    """The epoch seconds of anvil's ``at Mon dd hh:mm:ss`` (local time ``offset`` s east of UTC, like
    the line's stamp): the latest such time not after the line's."""
    try:
        t += offset
        year = datetime.fromtimestamp(t, tz=timezone.utc).year
        month, day = MONTHS[stamp[:3]], int(stamp[4:6])
        seconds = int(stamp[7:9]) * 3600 + int(stamp[10:12]) * 60 + int(stamp[13:15])
        at = epoch(year, month, day, seconds)
        return (epoch(year - 1, month, day, seconds) if at > t + 86400 else at) - offset
    except (KeyError, ValueError, OverflowError, OSError):
        return NAN


def _gzip_reason(exc: Exception) -> str:
    return "truncated" if isinstance(exc, EOFError) else str(exc) or type(exc).__name__


# ---------------------------------------------------------------- files in, tables out
def order_files(paths, year: int | None = None) -> tuple[list[tuple[LogFile, int | None]], list[str]]:
    """Scan ``paths`` and put them in time order (by first stamp): [(file, year of its classic stamps)].

    Files with no syslog line are left out with a warning, unless none has one (LogError)."""
    logs = [scan(Path(p), str(p)) for p in paths]
    if not logs:
        raise LogError("maillog", None, "no log file given")
    usable = [log for log in logs if log.format]
    warnings = [f"{log.name}: {_why_unusable(log)}: skipped" for log in logs if not log.format]
    if not usable:
        log = logs[0]
        raise LogError(log.name, 1 if not log.empty else None, _why_unusable(log))
    years = file_years(usable, year)
    usable.sort(key=lambda log: (first_time(log, years.get(log.name)), -log.rotation, log.name))
    return [(log, years.get(log.name)) for log in usable], warnings


def _why_unusable(log: LogFile) -> str:
    if log.empty:
        return "empty (no lines)"
    return f"not a syslog log: {events.describe_foreign(log.first_text)}"


def check_usable(stats: dict, names: list[str]) -> None:
    """Raise LogError when the log holds nothing to tabulate (no Postfix line, or no smtpd session and
    no message); add a warning when no session is on a submission service."""
    files = stats["files"]
    if not any(f["postfix_lines"] for f in files):
        where = files[0]["path"] if files else names[0]
        programs = [k.removeprefix("other program: ") for k in stats["skipped_by_kind"] if k.startswith("other ")]
        what = events.describe_programs(programs)
        raise LogError(where, None, f"no Postfix line among {stats['lines_read']:,} lines{what}; expected lines "
                       "like 'Mar  9 00:14:37 host postfix/smtpd[123]: connect from ...'")
    if not stats["sessions"] and not stats["messages"]:
        raise LogError(files[0]["path"], None, f"no smtpd session and no received message among "
                       f"{sum(f['postfix_lines'] for f in files):,} Postfix lines (no 'connect from', no "
                       "'QUEUEID: client=' line): nothing to tabulate")
    services = stats["sessions_by_service"]
    if services and not any("submission" in s for s in services):
        stats["warnings"].append(
            f"no session on a service named *submission* (services: {', '.join(services)}); calibrate and replay "
            "take sessions with AUTH as submission sessions")


def parse_into(paths, buffers: Buffers, year: int | None = None, progress=None) -> dict:
    """Parse ``paths`` into ``buffers``; return the stats (raises LogError on unusable input)."""
    ordered, warnings = order_files(paths, year)
    parser = Parser(buffers, progress)
    parser.warnings.extend(warnings)
    parser.bytes_total = sum(log.size for log, _ in ordered)
    thresholds = gc.get_threshold()
    gc.set_threshold(max(PARSE_GC_THRESHOLD, thresholds[0]), *thresholds[1:])
    try:
        for log, log_year in ordered:
            parser.feed(log, log_year)
        parser.finish()
    finally:
        gc.set_threshold(*thresholds)
    stats = parser.stats()
    if parser.backwards:
        tb = stats["time_backwards"]
        stats["warnings"].append(f"{tb['first']}: time goes backwards ({tb['lines']:,} lines earlier than one before "
                                 f"them by more than {BACKWARDS_TOLERANCE_S:g} s, at most {tb['largest_step_s']:g} "
                                 "s): are files repeated or out of order? durations may be wrong")
    check_usable(stats, [str(p) for p in paths])
    return stats


def parse_maillog(paths, year: int | None = None, progress=None) -> ParsedLog:
    """Parse Postfix logs (plain or gzip, any order) into DataFrames; see docs/maillog.md.

    ``year``: the year of the earliest classic stamp (default: from the files' modification
    times).  ``progress(lines, bytes_done, bytes_total, file)`` is called now and then.
    Raises :class:`~simsub.maillog.lines.LogError` for input with nothing to tabulate."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    sink = FrameSink()
    stats = parse_into(paths, Buffers(sink), year, progress)
    tables = sink.result()
    return ParsedLog(**tables, stats=stats)
