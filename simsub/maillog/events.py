"""The Postfix messages the parser reads, one small parser per kind.

Each function takes the text after ``program[pid]: `` and returns the fields of
that kind of line, or None when the text is not of that kind.  The formats are
Postfix's own (smtpd.c, smtpd_check.c, smtpd_sasl_proto.c, qmgr_active.c,
log_adhoc.c, anvil.c); examples are in docs/maillog.md and in
tests/fixtures/maillog/.
"""

from __future__ import annotations

import re
from typing import Final

#: The daemons of a Postfix system (the last part of a syslog_name such as postfix/submission/smtpd).
# Constants the parse reads on every line are Final: compiled, they are read without a lookup in the
# module's dictionary.
POSTFIX_PROGRAMS = frozenset((
    "smtpd", "smtp", "lmtp", "qmgr", "oqmgr", "cleanup", "pickup", "local", "virtual", "pipe", "discard",
    "error", "retry", "bounce", "defer", "trace", "anvil", "scache", "tlsmgr", "tlsproxy", "postscreen",
    "dnsblog", "verify", "proxymap", "proxywrite", "master", "postfix-script", "postsuper", "sendmail",
    "postdrop", "showq", "flush", "qmqpd", "spawn", "postlogd", "postqueue", "postmap", "postalias",
    "postconf", "postmulti", "postlog", "postfix",
))
#: Programs whose ``QUEUEID: to=<...>`` lines are delivery attempts.
DELIVERY_PROGRAMS = frozenset(("smtp", "lmtp", "local", "virtual", "pipe", "discard", "error", "retry"))

#: The SMTP commands counted on a disconnect line → the sessions columns (ok, tried) or (value,).
DISCONNECT_COUNTS = {
    "ehlo": ("ehlo",), "helo": ("helo",), "starttls": ("starttls",), "auth": ("auth_ok", "auth_tried"),
    "mail": ("mail_ok", "mail_tried"), "rcpt": ("rcpt_ok", "rcpt_tried"), "data": ("data_ok", "data_tried"),
    "rset": ("rset",), "quit": ("quit",), "commands": ("commands_ok", "commands_tried"),
}

#: The count columns of the sessions table, in its order.
SESSION_COUNTS = tuple(column for columns in DISCONNECT_COUNTS.values() for column in columns)
_COUNT_SLOTS: Final = {name: tuple(SESSION_COUNTS.index(c) for c in columns)
                       for name, columns in DISCONNECT_COUNTS.items()}
_CLIENT = re.compile(r"(.*?)\[([^\]]*)\](?::\d+)?")  # what client() reads, without the regex
_DELIVERY: Final = re.compile(
    r"to=<(.*?)>,(?: orig_to=<(.*?)>,)? relay=([^,]*),(?: conn_use=\d+,)? delay=([\d.]+)"
    r"(?:, delays=([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+))?(?:, dsn=([\d.]+))?, status=([\w-]+) ?(.*)")
_REJECT: Final = re.compile(r"([\w-]+): (\S+) from (.*?)\[([^\]]*)\](?::\d+)?: (.*)")
_REPLY: Final = re.compile(r"(?:(\d{3}) )?(?:(\d\.\d{1,3}\.\d{1,3}) )?(.*)", re.S)
_TAIL_FIELD: Final = re.compile(r"(\w+)=(?:<(.*?)>|(\S*))")
_SASL_FAILED: Final = re.compile(r"(.*?)\[([^\]]*)\](?::\d+)?: SASL (\S+) authentication failed:? ?(.*)")
_ANVIL: Final = re.compile(
    r"statistics: max (.+?) (\d{1,18})(?:/\d+s)?(?: for \((.*)\))? at (\w{3} [ \d]\d \d\d:\d\d:\d\d)")
_QMGR_FROM: Final = re.compile(r"from=<(.*?)>, size=(\d{1,18}), nrcpt=(\d{1,18})")  # 64-bit integers at most
#: The verbs of smtpd access-restriction and milter actions that name a stage (``NOQUEUE: reject: RCPT from``).
REJECT_ACTIONS: Final = frozenset(("reject", "reject_warning", "hold", "discard", "milter-reject", "milter-discard",
                            "milter-hold"))


class Run:
    """A run of a table row's columns and their CSV text, made once and shared by the rows that repeat it
    (a session's command counts, a delivery line's relay, delays and dsn): ``values`` the columns,
    ``text`` what the CSV writer makes of them, ``str()`` of each joined by commas (when none needs
    quoting).  ``str()`` of a run is its text, so ``"%s" % run`` writes the columns without formatting
    their numbers again (:class:`~simsub.maillog.tables.CsvSink`)."""
    __slots__ = ("values", "text")

    def __init__(self, values: tuple, text: str):
        self.values = values
        self.text = text

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Run({self.values!r}, {self.text!r})"


def run_of(values: tuple) -> Run:
    """The run of ``values``, its text made as the CSV writer makes it."""
    return Run(values, ",".join(["%s"] * len(values)) % values)


def starts_at(text: str, prefix: str, at: int) -> bool:
    """``text.startswith(prefix, at)`` for ``at`` >= 0, as a search bounded to ``len(prefix)`` characters: compiled,
    ``startswith`` with a position is a generic method call (its arguments parsed from a tuple) costing several
    times what ``find`` with bounds costs."""
    return text.find(prefix, at, at + len(prefix)) == at


def client(text: str) -> tuple[str, str]:
    """``name[address]`` (``unknown[2001:db8::1]`` too) → (name, address); ("", "") if not one.

    What ``_CLIENT.match`` finds, without a regex: the name ends at the first ``[`` and the
    address at the first ``]`` after it (the text of a log line has no line break).  Two
    ``partition`` calls cost half of two ``find`` calls and two slices."""
    name, bracket, rest = text.partition("[")
    if bracket:
        address, bracket, _ = rest.partition("]")
        if bracket:
            return name, address
    return "", ""


def disconnect_counts(text: str) -> tuple[int, ...] | None:
    """``ehlo=1 auth=0/1 ... commands=3/4`` → the sessions table's count columns (SESSION_COUNTS order,
    0 for a command not used); None when the line has no counts (Postfix before 3.0 logged none)."""
    run = disconnect_run(text)
    return None if run is None else run.values


def disconnect_run(text: str) -> Run | None:
    """:func:`disconnect_counts` as a :class:`Run` (the counts and their CSV text), or None."""
    # A server's sessions repeat a few dialogues over and over: remember the answers.
    try:
        return _counts_seen[text]
    except KeyError:
        pass
    if len(_counts_seen) > 10_000:
        _counts_seen.clear()
    counts = _disconnect_counts(text)
    run = _counts_seen[text] = None if counts is None else run_of(counts)
    return run


_counts_seen: Final[dict[str, Run | None]] = {}
#: The counts of a session whose disconnect line gave none (-1: missing).
NO_COUNTS: Final = run_of((-1,) * len(SESSION_COUNTS))


def _disconnect_counts(text: str) -> tuple[int, ...] | None:
    counts = [0] * len(SESSION_COUNTS)
    seen = False
    for token in text.split():
        name, eq, value = token.partition("=")
        slots = _COUNT_SLOTS.get(name)
        if slots is None:
            continue  # noop, xclient, bdat, vrfy, ...: only in commands=
        ok, _, tried = value.partition("/")
        if not ok.isdigit() or (tried and not tried.isdigit()) or len(ok) > 9 or len(tried) > 9:
            return None  # not Postfix's counts (and beyond the table's 64-bit integers)
        counts[slots[0]] = int(ok)
        if len(slots) == 2:
            counts[slots[1]] = int(tried) if tried else counts[slots[0]]
        seen = True
    return tuple(counts) if seen else None


def after_command(text: str) -> tuple[str, str]:
    """``RCPT from host[addr]`` or ``DATA (0 bytes) from host[addr]`` → ("RCPT", "host[addr]")."""
    command, _, rest = text.partition(" ")
    _, _, who = rest.rpartition(" from ")
    return command, who


def submission_client(text: str) -> tuple[str, str, str, str]:
    """``client=name[addr], sasl_method=LOGIN, sasl_username=alice`` → (name, address, method, user)."""
    fields = text.split(", ")
    name, address = client(fields[0][7:])
    if len(fields) == 3 and fields[1][:12] == "sasl_method=" and fields[2][:14] == "sasl_username=":
        return name, address, fields[1][12:], fields[2][14:]  # the usual form, without the loop below
    method = user = ""
    for field in fields[1:]:
        if field.startswith("sasl_method="):
            method = field[12:]
        elif field.startswith("sasl_username="):
            user = field[14:]
    return name, address, method, user


def delivery(text: str):
    """``to=<r>, [orig_to=<o>,] relay=..., delay=.., delays=a/b/c/d, dsn=.., status=.. (detail)``
    → (to, orig_to, relay, delay, a, b, c, d, dsn, status, detail) with numbers as floats (NaN if absent)."""
    d = delivery_parts(text)
    if d is None:
        return None
    to, middle, status, detail = d
    return (to, *middle.values, status, detail)


def delivery_parts(text: str, start: int = 0) -> tuple[str, Run, str, str] | None:
    """What :func:`delivery` reads, as (to, middle, status, detail): ``middle`` is the :class:`Run` of
    (orig_to, relay, delay, a, b, c, d, dsn), the recipients table's columns between the recipient and
    the status, with their CSV text ``"%s,%s,%s,%s,%s,%s,%s,%s" % values`` (what the CSV writer would
    make of those columns when none needs quoting; see :class:`~simsub.maillog.tables.CsvSink`).

    Most delivery lines of a log repeat the same relay, delays and dsn: the part between the
    recipient and ``, status=`` is parsed once and remembered with its CSV text
    (:func:`_delivery_middle`), so the floats of a repeated middle are not formatted again.  The
    result is what ``_DELIVERY`` gives; any line the shortcut is not sure of goes through it.

    ``start``: where the fields begin in ``text`` (read in place: the same as ``text[start:]``)."""
    cut = text.find(">,", start)
    status_at = text.find(", status=", cut + 2)
    if cut > start + 3 and status_at > 0 and starts_at(text, "to=<", start):
        middle_text = text[cut + 2:status_at]
        known = _middles.get(middle_text)
        if known is None:
            known = _delivery_middle(middle_text)
        space = text.find(" ", status_at + 9)  # what text[status_at + 9:].partition(" ") cuts
        if space < 0:
            status, detail = text[status_at + 9:], ""
        elif text[space + 1:space + 2] == "(" and text[-1] == ")":
            status, detail = text[status_at + 9:space], text[space + 2:-1]
        else:
            status, detail = text[status_at + 9:space], text[space + 1:]
        if known is not None and status in STATUSES:
            return text[start + 4:cut], known, status, detail
    return _delivery_regex_parts(text, start)


#: The delivery statuses Postfix logs (all ``[\w-]+``, so a known one is the whole regex group).
STATUSES: Final = frozenset(("sent", "deferred", "bounced", "expired", "deliverable", "undeliverable", "softbounce"))
#: The ``_DELIVERY`` regex from after the recipient's ``>,`` up to ``, status=``, anchored at both ends.
_MIDDLE: Final = re.compile(
    r"(?: orig_to=<(.*?)>,)? relay=([^,]*),(?: conn_use=\d+,)? delay=([\d.]+)"
    r"(?:, delays=([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+))?(?:, dsn=([\d.]+))?")
#: The text of a middle → the run of its fields.
_middles: Final[dict[str, Run]] = {}
#: How a middle's fields are written in a CSV row (str() of each, as csv.writer and ``%s`` write them).
MIDDLE_CSV: Final = ",".join(["%s"] * 8)


def _delivery_middle(text: str) -> Run | None:
    """``relay=..., delay=.., delays=a/b/c/d, dsn=..`` → the run of (orig_to, relay, delay, a, b, c, d,
    dsn), or None when the text is not of that form (then the whole line goes through the regex, which
    may still read it: a recipient with ``>,`` in it)."""
    m = _MIDDLE.fullmatch(text)
    if not m:
        return None
    nan = float("nan")
    try:
        middle = (m[1] or "", m[2], float(m[3]), float(m[4]) if m[4] else nan, float(m[5]) if m[5] else nan,
                  float(m[6]) if m[6] else nan, float(m[7]) if m[7] else nan, m[8] or "")
    except ValueError:  # delay=1.2.3: the whole line decides (not read, or not understood)
        return None
    if len(_middles) > 10_000:  # a cache: keep memory flat
        _middles.clear()
    known = _middles[text] = Run(middle, MIDDLE_CSV % middle)
    return known


def _delivery_regex(text: str):
    """What ``_DELIVERY`` reads, as :func:`delivery`'s fields (the reference of the shortcut)."""
    d = _delivery_regex_parts(text)
    if d is None:
        return None
    to, middle, status, detail = d
    return (to, *middle.values, status, detail)


def _delivery_regex_parts(text: str, start: int = 0) -> tuple[str, Run, str, str] | None:
    m = _DELIVERY.match(text, start)
    if not m:
        return None
    nan = float("nan")
    detail = m[11]
    if detail[:1] == "(" and detail[-1:] == ")":
        detail = detail[1:-1]
    middle = (m[2] or "", m[3], float(m[4]), float(m[5]) if m[5] else nan, float(m[6]) if m[6] else nan,
              float(m[7]) if m[7] else nan, float(m[8]) if m[8] else nan, m[9] or "")
    return m[1], Run(middle, MIDDLE_CSV % middle), m[10], detail


def reject(text: str):
    """``reject: RCPT from host[addr]: 450 4.7.1 <x>: why; from=<s> to=<r> proto=ESMTP helo=<h>``
    → (action, stage, name, address, code, dsn, reason, sender, recipient, helo); None if not one."""
    m = _REJECT.match(text)
    if not m or m[1] not in REJECT_ACTIONS:
        return None
    body = m[5]
    cut = body.rfind("; from=<")
    if cut < 0:
        cut = body.rfind("; proto=")
    sender = recipient = helo = ""
    if cut >= 0:
        sender, recipient, helo = tail_fields(body[cut + 2:])
        body = body[:cut]
    reply = _REPLY.match(body)  # milter-reject and hold lines may have no code, or no code and no dsn
    assert reply is not None  # every text matches (all of it optional)
    code, dsn, reason = int(reply[1] or -1), reply[2] or "", reply[3]
    return m[1], m[2], m[3], m[4], code, dsn, reason, sender, recipient, helo


def tail_fields(text: str) -> tuple[str, str, str]:
    """``from=<s> to=<r> proto=ESMTP helo=<h>`` → (sender, recipient, helo), "" for a field not there.

    The fields ``_TAIL_FIELD.finditer`` finds; the usual tail (``from=``, ``to=`` as smtpd writes them, no
    ``<`` or ``>`` inside a value) is read by one regex match that is sure to give the same."""
    m = _TAIL.fullmatch(text)
    if m:
        return m[1] or "", m[2] or "", m[3]
    return _tail_fields_regex(text)


#: The usual reject tail; a value with no ``<`` or ``>`` ends where ``_TAIL_FIELD``'s ``<(.*?)>`` ends it.
_TAIL: Final = re.compile(r"(?:from=<([^<>]*)> )?(?:to=<([^<>]*)> )?proto=\w* helo=<([^<>]*)>")


def _tail_fields_regex(text: str) -> tuple[str, str, str]:
    fields = {}
    for f in _TAIL_FIELD.finditer(text):
        fields[f[1]] = f[2] if f[2] is not None else f[3]
    return fields.get("from", ""), fields.get("to", ""), fields.get("helo", "")


def sasl_failure(text: str):
    """``host[addr]: SASL LOGIN authentication failed: why[, sasl_username=u]``
    → (name, address, method, reason, username); None if not one."""
    m = _SASL_FAILED.match(text)
    if not m:
        return None
    reason, user = m[4], ""
    cut = reason.rfind(", sasl_username=")
    if cut >= 0:
        reason, user = reason[:cut], reason[cut + 16:]
    return m[1], m[2], m[3], reason, user


def anvil(text: str):
    """``statistics: max connection rate 1/60s for (submission:203.0.113.41) at Mar  9 00:14:37``
    → (statistic, value, client, at-stamp); None if not one."""
    m = _ANVIL.match(text)
    if not m:
        return None
    return m[1], int(m[2]), m[3] or "", m[4]


def qmgr_from(text: str, start: int = 0):
    """``from=<s>, size=600, nrcpt=3 (queue active)`` → (sender, size, nrcpt); None if not one.
    ``start``: where the fields begin in ``text`` (the same as ``text[start:]``).

    What ``_QMGR_FROM`` reads, cut with ``str.find`` where the line has the usual form: the first
    ``>, size=`` ends the sender, the size's digits (``\\d``: ``str.isdecimal``) run up to the first
    ``, nrcpt=``, and the recipients' digits up to a space or the end; any other line goes through the
    regex (whose lazy sender may end at a later ``>, size=``)."""
    if starts_at(text, "from=<", start):
        cut = text.find(">, size=", start + 6)
        comma = text.find(", nrcpt=", cut + 8) if cut >= 0 else -1
        if comma > 0 and 0 < comma - cut - 8 <= 18:
            size = text[cut + 8:comma]
            space = text.find(" ", comma + 8)
            nrcpt = text[comma + 8:] if space < 0 else text[comma + 8:space]
            sender = text[start + 6:cut]
            if 0 < len(nrcpt) <= 18 and size.isdecimal() and nrcpt.isdecimal() and "\n" not in sender:
                return sender, int(size), int(nrcpt)
    return _qmgr_from_regex(text, start)


def _qmgr_from_regex(text: str, start: int = 0):
    """What ``_QMGR_FROM`` reads (the reference of :func:`qmgr_from`'s shortcut)."""
    m = _QMGR_FROM.match(text, start)
    return (m[1], int(m[2]), int(m[3])) if m else None


def is_queue_id(text: str) -> bool:
    """Short (hex, e.g. 446B520C200) or long (e.g. 4Lx2Yk0Jv8z3hC1) Postfix queue ids."""
    return 5 <= len(text) <= 20 and text.isalnum() and text.isascii()


_EXIM = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?(?: [+-]\d{4})?(?: \[\d+\])? "
                   r"(?:[0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4} |Start queue run|exim |SMTP connection)")


def describe_foreign(first_line: str) -> str:
    """What a file without syslog stamps looks like, from its first line (for error messages)."""
    shown = first_line[:60] + ("..." if len(first_line) > 60 else "")
    if _EXIM.match(first_line):
        return f"this looks like an Exim log (line 1: {shown!r}); simsub reads Postfix logs"
    return (f"line 1 is {shown!r}; expected a stamp like 'Mar  9 00:14:37' or '2026-03-09T00:14:37.123456+09:00' "
            "then a host and a program")


def describe_programs(programs: list[str]) -> str:
    """", from sendmail, sm-mta (a Sendmail log?)" for the programs of a log without Postfix lines."""
    if not programs:
        return ""
    text = f" (programs: {', '.join(programs[:5])}{', ...' if len(programs) > 5 else ''}"
    if any(p.split("/")[-1] in ("sendmail", "sm-mta", "sm-msp-queue") for p in programs):
        text += ": this looks like a Sendmail log"
    elif any(p.startswith("exim") for p in programs):
        text += ": this looks like an Exim log"
    return text + ")"
