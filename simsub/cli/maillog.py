"""``simsub maillog parse``: a Postfix server's own log read into tables."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from ..errors import ScenarioError

#: The file that marks a folder as a parsed maillog (an --out holding it may be replaced).
PARSE_MARKER = "stats.json"
#: s between two progress lines when stderr is not a terminal (a terminal gets one updated line).
PROGRESS_INTERVAL_S = 30.0

PARSE_DESCRIPTION = """\
Read Postfix logs (syslog or Postfix's own maillog_file; plain or gzip-rotated,
in any order) in one pass and write tidy tables to a folder: sessions.csv.gz
(one row per smtpd connection, with the disconnect line's command counts),
messages.csv.gz (one per queue id an smtpd opened, with qmgr's sender, size and
nrcpt), recipients.csv.gz (one per delivery-status line), rejects.csv.gz,
auth_failures.csv.gz, anvil.csv.gz, and stats.json (lines read, used, skipped
by kind, sessions without an end, time span).  Lines of other programs are
counted and skipped.  See docs/maillog.md."""

EPILOG = """examples:
  simsub maillog parse /var/log/maillog /var/log/maillog.1.gz --out results/maillog/may
  simsub maillog parse mail.log.2.gz mail.log.1 mail.log --year 2025 --out parsed
  journalctl -u postfix -o short-iso-precise > pf.log && simsub maillog parse pf.log --out parsed
"""


def add_commands(sub) -> dict:
    """Add ``maillog`` (with its ``parse`` subcommand) to the top-level subparsers ``sub``."""
    maillog = sub.add_parser("maillog", help="read a Postfix maillog into tables (parse)",
                             description="Commands on a Postfix server's own log.")
    commands = maillog.add_subparsers(dest="maillog_command", metavar="COMMAND", parser_class=type(maillog))
    parse = commands.add_parser("parse", help="parse Postfix logs into session, message and recipient tables",
                                description=PARSE_DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    parse.add_argument("logs", nargs="+", metavar="LOG", type=Path,
                       help="log files, plain or gzip (rotated files in any order)")
    parse.add_argument("--out", metavar="DIR", type=Path,
                       help="result folder (default: results/maillog/NAME-OF-THE-FIRST-LOG)")
    parse.add_argument("--year", metavar="Y", type=_year,
                       help="year of the earliest line, for stamps without a year like 'Mar  9 00:14:37' "
                       "(default: from each file's modification time)")
    parse.add_argument("--quiet", action="store_true", help="no progress and no summary; print only the folder")
    maillog.set_defaults(maillog_parser=maillog)
    return {"maillog": command_maillog}


def command_maillog(args) -> int:
    if args.maillog_command is None:
        args.maillog_parser.print_help()
        return 2
    return command_parse(args)


def command_parse(args) -> int:
    out = args.out or Path("results") / "maillog" / _slug(args.logs[0].name)
    stats = parse_logs_to_folder(args.logs, out, args.year, args.quiet,
                                 "simsub " + " ".join(shlex.quote(a) for a in getattr(args, "argv", [])))
    if not args.quiet:
        for line in summary(stats):
            print(line)
    print(f"results: {out}")
    return 0


def parse_logs_to_folder(logs: list[Path], out: Path, year: int | None, quiet: bool, command: str) -> dict:
    """Parse ``logs`` into the tables of ``out`` (atomically), print the warnings; the stats."""
    from ..files import atomic_folder
    from ..maillog.lines import LogError
    from ..maillog.parse import parse_into
    from ..maillog.tables import Buffers, CsvSink

    progress = None if quiet else Progress()
    try:
        with atomic_folder(out, marker=PARSE_MARKER) as folder:
            sink = CsvSink(folder)
            try:
                stats = parse_into(logs, Buffers(sink), year, progress)
            finally:
                sink.close()
                if progress:
                    progress.done()
            stats = {"command": command, **stats}
            with open(folder / PARSE_MARKER, "w", encoding="utf-8") as fh:
                json.dump(stats, fh, indent=2)
                fh.write("\n")
    except LogError as exc:
        raise ScenarioError(exc.path, f"line {exc.line}" if exc.line else None, exc.message) from None
    for warning in stats["warnings"]:
        print(f"simsub: warning: {warning}", file=sys.stderr)
    return stats


def summary(stats: dict) -> list[str]:
    """What the parser recognised, in a few lines."""
    files = stats["files"]
    skipped = stats["skipped_by_kind"]
    formats = sorted({f"{f['format']} stamps" + (f", year {f['year']}" if f["year"] else "") for f in files})
    lines = [f"read {stats['lines_read']:,} lines from {len(files)} file{'s' * (len(files) != 1)} "
             f"({'; '.join(formats)}): {stats['lines_used']:,} used, {sum(skipped.values()):,} skipped"]
    width = max((len(k) for k in skipped), default=0)
    lines += [f"  {kind:<{width}}  {count:>9,}" for kind, count in skipped.items()]
    if stats["first_s"] is not None:
        first, last = stats["first_s"], stats["last_s"]
        lines.append(f"time span: {_utc(first)} to {_utc(last)} UTC ({_span(last - first)})")
    services = ", ".join(f"{n:,} {s}" for s, n in stats["sessions_by_service"].items())
    lines.append(f"sessions: {stats['sessions']:,}{f' ({services})' if services else ''}; "
                 f"{stats['sessions_unfinished']:,} without an end (cut by the log's end or rotation), "
                 f"{stats['sessions_without_connect']:,} without a start")
    lines.append(f"messages: {stats['messages']:,} ({stats['messages_never_queued']:,} never queued: the client "
                 f"left before the end of DATA); delivery lines: {stats['recipients']:,}; rejects: "
                 f"{stats['rejects']:,}; AUTH failures: {stats['auth_failures']:,}; anvil statistics: "
                 f"{stats['anvil']:,}")
    return lines


class Progress:
    """Lines read and MB/s on stderr: one updated line on a terminal, else a line every
    PROGRESS_INTERVAL_S seconds."""

    def __init__(self):
        self.tty = sys.stderr.isatty()
        self.started = self.last = time.monotonic()
        self.shown = False

    def __call__(self, lines: int, done: int, total: int, name: str) -> None:
        now = time.monotonic()
        if now - self.last < (0.5 if self.tty else PROGRESS_INTERVAL_S):
            return
        self.last = now
        elapsed = max(now - self.started, 1e-9)
        share = f" ({100 * done / total:.0f} %)" if total else ""
        text = (f"maillog: {lines:,} lines, {done / 1e6:,.0f} of {total / 1e6:,.0f} MB{share}, "
                f"{done / 1e6 / elapsed:.1f} MB/s, in {name}")
        if self.tty:
            print(f"\r{text}   ", end="", file=sys.stderr, flush=True)
        else:
            print(text, file=sys.stderr, flush=True)
        self.shown = True

    def done(self) -> None:
        if self.tty and self.shown:
            print(file=sys.stderr)


def _year(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a year like 2026, got {text!r}") from None
    if not 1970 <= value <= 9999:
        raise argparse.ArgumentTypeError(f"expected a year from 1970 to 9999, got {text!r}")
    return value


def _slug(name: str) -> str:
    stem = name.removesuffix(".gz")
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in stem) or "maillog"


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
