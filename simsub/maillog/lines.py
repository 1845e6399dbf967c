"""Reading log files: plain or gzip, their first stamp, and syslog timestamps → epoch seconds.

Two stamp formats are read:

- classic syslog, ``Mar  9 00:14:37`` or ``Dec 02 19:55:25`` (Postfix's own
  ``maillog_file``), optionally with a fraction ``.123456``: no year and no zone.
  They are taken as UTC; the year comes from ``--year`` or from the file's
  modification time, and a step from December back to January starts a new year.
- RFC 3339, ``2026-12-02T19:55:25.123456+09:00`` (rsyslog's high precision
  format) or ``...+0900`` / ``...Z`` (journald's ``short-iso-precise``): the
  offset is applied, so times are UTC.

All times are float seconds since the Unix epoch (UTC).
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Final, NoReturn, Union

MONTHS = {name: i for i, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)}
#: Lines longer than this (characters) are no syslog lines (rsyslog's default limit is 8 KiB).
MAX_LINE: Final = 65536
#: How many lines the first-stamp scan reads before it gives up on a file.
SCAN_LINES = 2000
_EPOCH_ORDINAL: Final = datetime(1970, 1, 1).toordinal()
#: Stamps remembered by a clock before it forgets them all (lines come nearly in time order,
#: so recent seconds are what is looked up; a small cache keeps memory flat).
CACHE_SIZE: Final = 4096
#: The errors a damaged gzip stream raises while it is read.
GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)
#: Seconds (since the epoch, or an offset) as read: an int where the stamp is whole seconds
#: (classic stamps, an offset of RFC 3339), else a float.  Kept as they are, not made floats:
#: the tables' CSV text of 5 and 5.0 differ, and the compiled build would convert an int
#: passed as ``float``.
Seconds = Union[int, float]


class LogError(Exception):
    """Bad input that stops the parse: ``str()`` is one line naming the file and line."""

    def __init__(self, path: str, line: int | None, message: str):
        self.path, self.line, self.message = path, line, message
        where = f"{path}: line {line}" if line else path
        super().__init__(f"{where}: {message}")


def epoch(year: int, month: int, day: int, seconds_of_day: int) -> int:
    """Seconds since the epoch of a UTC date and a whole second of the day (s)."""
    return (datetime(year, month, day).toordinal() - _EPOCH_ORDINAL) * 86400 + seconds_of_day


class ClassicClock:
    """Classic stamps (``Mon dd hh:mm:ss``) → epoch seconds, with the year carried along.

    ``year`` is the year of the first stamp it is given.  A stamp more than six
    months before the previous one is in the next year (Dec → Jan); one more than
    six months after it is a late line of the previous year and does not move the
    clock.  Results are cached per distinct stamp (lines of one second share one).
    """

    def __init__(self, year: int):
        self.last_offset: Seconds = 0.0  # s east of UTC: classic stamps are taken as UTC
        self.year = year
        self.month = 0
        self.cache: dict[str, int] = {}
        # (year, month, day) → epoch seconds of its midnight: a busy log has a new stamp nearly every
        # second, and making a datetime for each costs more than the rest of the stamp's reading
        self.midnights: dict[tuple[int, int, int], int] = {}

    def __call__(self, key: str) -> int:
        """``key``: the 15 characters of the stamp; raises ValueError if they are none."""
        t = self.cache.get(key)
        if t is not None:
            return t
        month = MONTHS[key[:3]] if key[:3] in MONTHS else _bad(key)
        if key[3] != " " or key[6] != " " or key[9] != ":" or key[12] != ":":
            _bad(key)
        day, seconds = int(key[4:6]), int(key[7:9]) * 3600 + int(key[10:12]) * 60 + int(key[13:15])
        year = self.year
        if self.month and month < self.month - 6:
            year = self.year = year + 1
            self.cache.clear()
        elif self.month and month > self.month + 6:
            return epoch(year - 1, month, day, seconds)
        self.month = month
        midnight = self.midnights.get((year, month, day))
        if midnight is None:  # (epoch raises ValueError for a day the month does not have)
            if len(self.midnights) > CACHE_SIZE:
                self.midnights.clear()
            midnight = self.midnights[(year, month, day)] = epoch(year, month, day, 0)
        t = midnight + seconds
        if len(self.cache) > CACHE_SIZE:
            self.cache.clear()
        self.cache[key] = t
        return t


def _bad(key: str) -> NoReturn:
    raise ValueError(f"not a syslog stamp: {key!r}")


class Rfc3339Clock:
    """RFC 3339 stamps → epoch seconds (UTC); the date-and-second part is cached."""

    def __init__(self):
        self.cache: dict[str, float] = {}
        self.offsets: dict[str, Seconds] = {"": 0.0, "Z": 0.0, "z": 0.0}
        self.last_offset: Seconds = 0.0  # s east of UTC of the last stamp read

    def __call__(self, stamp: str) -> float:
        base = self.cache.get(stamp[:19])
        if base is None:
            base = self._base(stamp[:19])
        rest = stamp[19:]
        fraction = 0.0
        if rest[:1] == ".":
            end = 1
            while end < len(rest) and rest[end].isdigit():
                end += 1
            fraction = float(rest[:end])
            rest = rest[end:]
        offset = self.offsets.get(rest)
        if offset is None:
            offset = self._offset(rest)
        self.last_offset = offset
        return base + fraction - offset

    def _base(self, text: str) -> float:
        if len(text) != 19 or text[4] != "-" or text[10] not in "Tt ":
            raise ValueError(f"not an RFC 3339 stamp: {text!r}")
        t = epoch(int(text[:4]), int(text[5:7]), int(text[8:10]),
                  int(text[11:13]) * 3600 + int(text[14:16]) * 60 + int(text[17:19]))
        if len(self.cache) > CACHE_SIZE:
            self.cache.clear()
        self.cache[text] = t
        return t

    def _offset(self, text: str) -> Seconds:
        m = re.fullmatch(r"([+-])(\d\d):?(\d\d)", text)
        if not m:
            raise ValueError(f"not an RFC 3339 offset: {text!r}")
        value = (int(m[2]) * 3600 + int(m[3]) * 60) * (1 if m[1] == "+" else -1)
        self.offsets[text] = value
        return value


def stamp_format(line: str) -> str | None:
    """``"classic"``, ``"rfc3339"`` or None: the stamp a syslog line starts with."""
    if len(line) > 20 and line[:4].isdigit() and line[4] == "-" and line[10] in "Tt":
        return "rfc3339"
    if len(line) > 16 and line[:3] in MONTHS and line[3] == " " and line[9] == ":" and line[12] == ":":
        return "classic"
    return None


# ---------------------------------------------------------------- files
def open_log(path: Path) -> tuple[io.TextIOWrapper, BinaryIO]:
    """(text stream, raw binary file) of a plain or gzip log; gzip is told by its magic bytes.

    The raw file's ``tell()`` is the position on disk, for progress."""
    raw = open(path, "rb")
    gz = raw.read(2) == b"\x1f\x8b"
    raw.seek(0)
    binary = gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw
    return io.TextIOWrapper(binary, encoding="utf-8", errors="replace"), raw


@dataclass
class LogFile:
    """A log file as the first scan saw it."""
    path: Path
    name: str  # as given on the command line
    size: int  # bytes on disk
    mtime: float  # s since the epoch
    gzip: bool
    format: str | None  # "classic", "rfc3339" or None (no stamped line in the first lines)
    first_stamp: str  # the first stamp as written ("" if none)
    first_line: int  # its line number (1-based, 0 if none)
    empty: bool
    first_text: str = ""  # the first non-blank line (for telling what the file is)

    @property
    def rotation(self) -> int:
        """The rotation number in the name (maillog.3.gz → 3, maillog → 0): older files have larger ones."""
        m = re.search(r"\.(\d+)(?:\.gz)?$", self.path.name)
        return int(m[1]) if m else 0


def scan(path: Path, name: str) -> LogFile:
    """Read the first lines of ``path``: its format, first stamp, and whether it is text at all.

    Raises LogError for a missing or unreadable file and for binary data."""
    try:
        stat = path.stat()
        with open(path, "rb") as fh:
            gz = fh.read(2) == b"\x1f\x8b"
    except OSError as exc:
        raise LogError(name, None, f"cannot read it: {exc.strerror}") from None
    if path.is_dir():
        raise LogError(name, None, "is a folder, not a log file")
    fmt, first, first_line, first_text, lines = None, "", 0, "", 0
    try:
        text, raw = open_log(path)
        with text:
            head = _peek_bytes(text)
            if b"\x00" in head:
                at = head[:head.index(b"\x00")].count(b"\n") + 1
                raise LogError(name, at, "binary data (a NUL byte), not a text log"
                               + (" (a gzip file inside gzip?)" if head[:2] == b"\x1f\x8b" else ""))
            for lines, line in enumerate(text, start=1):
                if not first_text and line.strip():
                    first_text = line[:200].rstrip("\n")
                fmt = stamp_format(line)
                if fmt:
                    first, first_line = line[:19] if fmt == "rfc3339" else line[:15], lines
                    if fmt == "rfc3339":
                        first = line.split(" ", 1)[0]
                    break
                if lines >= SCAN_LINES:
                    break
    except GZIP_ERRORS:
        pass  # a damaged gzip stream: the main pass reports where it ends
    except OSError as exc:
        raise LogError(name, None, f"cannot read it: {exc.strerror or exc}") from None
    return LogFile(path, name, stat.st_size, stat.st_mtime, gz, fmt, first, first_line, lines == 0 and not first_text,
                   first_text)


def _peek_bytes(text: io.TextIOWrapper, size: int = 65536) -> bytes:
    """The first ``size`` bytes under a text stream, which is then rewound to its start."""
    buffer: Any = text.buffer  # a binary file, or whatever was wrapped
    data = buffer.read(size) if hasattr(buffer, "read") else b""
    buffer.seek(0)
    return data


def first_time(log: LogFile, year: int | None) -> float:
    """Epoch seconds of a file's first stamp; a classic one in ``year`` (or the mtime's, see
    :func:`mtime_year`)."""
    if log.format == "rfc3339":
        return Rfc3339Clock()(log.first_stamp)
    if log.format == "classic":
        return ClassicClock(year if year is not None else mtime_year(log))(log.first_stamp)
    return float("inf")


def mtime_year(log: LogFile) -> int:
    """The year of a classic file's first stamp from its modification time: the file was last
    written at its mtime, so its first line is in that year unless its date is later in the year
    than the mtime (then it is in the year before)."""
    written = datetime.fromtimestamp(log.mtime, tz=timezone.utc)
    month = MONTHS.get(log.first_stamp[:3], 1)
    day = int(log.first_stamp[4:6] or 1)
    later = (month, day) > (written.month, written.day + 1)  # a day's slack for zones east of UTC
    return written.year - 1 if later else written.year


def file_years(logs: list[LogFile], year: int | None) -> dict[str, int]:
    """The year of each classic file's first stamp (keyed by name).

    Without ``year`` each file's own modification time says it (:func:`mtime_year`).
    With ``year`` (the year of the earliest line), the classic files are put in the order
    they were written (rotation number, larger first: maillog.2.gz before maillog.1 before
    maillog; then modification time) and the year advances whenever a file starts in an
    earlier month than the one before it."""
    classic = [log for log in logs if log.format == "classic"]
    if year is None:
        return {log.name: mtime_year(log) for log in classic}
    years, current, last_month = {}, year, 0
    for log in sorted(classic, key=lambda f: (-f.rotation, f.mtime, f.name)):
        month = MONTHS[log.first_stamp[:3]]
        if last_month and month < last_month:
            current += 1
        last_month = month
        years[log.name] = current
    return years


