"""``simsub calibrate``: a scenario fitted to a Postfix maillog, commented with its evidence."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import ScenarioError
from .options import positive_duration, positive_number, positive_whole_number, whole_number

DESCRIPTION = """\
Fit a scenario to a Postfix maillog: origins (own network, home-country rDNS,
foreign rDNS, no rDNS) and their shares, the diurnal profile, messages per
account (as volume classes: a Poisson mixture), recipients per message,
effective round trips from session durations, and the accounts that look
stolen, turned into a bot population.  Every number is commented with the
evidence behind it.  Writes SCENARIO.toml and, next to it,
SCENARIO.flagged.csv (one row per flagged account with its reasons).
What a log cannot tell (patience, retries, process limit) is set to documented
defaults and marked so.  See docs/calibrate.md."""

EPILOG = """examples:
  simsub calibrate /var/log/maillog* --out my-isp.toml --mynetworks 198.51.100.0/22 --home-domain jp
  simsub calibrate maillog.1.gz maillog --year 2012 --out may.toml --max-addresses 20
  simsub compare my-isp.toml                   then compare policies on the fitted scenario
"""


def add_commands(sub) -> dict:
    """Add ``calibrate`` to the top-level subparsers ``sub``."""
    from ..maillog.stolen import DetectionOptions

    d = DetectionOptions()
    cal = sub.add_parser("calibrate", help="fit a commented scenario to a Postfix maillog",
                         description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    cal.add_argument("logs", nargs="+", metavar="LOG", help="maillog files, plain or .gz, in any order")
    cal.add_argument("--out", metavar="SCENARIO.toml", type=Path, required=True,
                     help="scenario file to write (the flagged-account table goes next to it as .flagged.csv)")
    cal.add_argument("--mynetworks", metavar="CIDR,...", help="the own network's address ranges (origin 'own')")
    cal.add_argument("--home-domain", metavar="SUFFIX,...",
                     help="rDNS suffixes of the home country, e.g. jp (origin 'home'; other names are 'foreign')")
    cal.add_argument("--year", metavar="Y", type=whole_number, help="year of classic syslog stamps (default: the file's date)")
    cal.add_argument("--utc-offset", metavar="HOURS", type=_hours, default=0.0,
                     help="add to the log's times to get the server's local time for days and hours (default 0: "
                     "classic syslog stamps are local time already)")
    cal.add_argument("--service", metavar="NAME", default="submission",
                     help="sessions whose syslog name contains NAME (or that log in) are submission (default "
                     "submission)")
    cal.add_argument("--name", metavar="NAME", help="scenario name (default: the --out file's stem)")
    cal.add_argument("--seed", metavar="N", type=whole_number, default=0, help="the scenario's seed (default 0)")
    cal.add_argument("--max-classes", metavar="K", type=positive_whole_number, default=4,
                     help="most volume classes (user populations) to fit (default 4)")
    cal.add_argument("--bot-patience", metavar="DUR", type=positive_duration, default="60s",
                     help="the bots' reply timeout, which a log does not show (default 60s)")
    cal.add_argument("--bot-connect-timeout", metavar="DUR", type=positive_duration,
                     help="how long bots wait for an smtpd to take the connection, which a log does not show "
                     "(default: their patience)")
    cal.add_argument("--bot-on-timeout", choices=("disconnect", "talk"), default="disconnect",
                     help="what a bot does when a reply is late, which a log does not show (default disconnect)")
    det = cal.add_argument_group("stolen-account detection (per account and server day)")
    det.add_argument("--max-addresses", metavar="N", type=positive_whole_number, default=d.max_addresses,
                     help=f"flag logins from more than N client addresses, IPv6 /64s (default {d.max_addresses})")
    det.add_argument("--max-networks", metavar="N", type=positive_whole_number, default=d.max_networks,
                     help=f"flag logins from more than N networks, IPv4 /24s or IPv6 /48s (default {d.max_networks})")
    det.add_argument("--max-suspect", metavar="N", type=positive_whole_number, default=d.max_suspect,
                     help="flag logins from more than N addresses without home rDNS (no rDNS or foreign) "
                     f"(default {d.max_suspect})")
    det.add_argument("--burst-factor", metavar="F", type=positive_number, default=d.burst_factor,
                     help="flag a day with more than F times the recipients of the account's median other active "
                     f"day (default {d.burst_factor:g})")
    det.add_argument("--burst-min", metavar="N", type=positive_whole_number, default=d.burst_min,
                     help=f"...and at least N recipients (default {d.burst_min})")
    det.add_argument("--burst-history", metavar="N", type=positive_whole_number, default=d.burst_history,
                     help=f"...when the account has at least N other active days (default {d.burst_history})")
    det.add_argument("--burst-any-network", action="store_true",
                     help="count a burst even when it came from networks the account used before (default: only "
                     "when most of it came from new networks, so that an owner's own mailing is not flagged)")
    cal.add_argument("--quiet", action="store_true", help="no progress and no summary; print only the files written")
    return {"calibrate": command_calibrate}


def _hours(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected hours such as 9 or -5.5, got {text!r}") from None
    if not -24 < value < 24:
        raise argparse.ArgumentTypeError(f"expected hours between -24 and 24, got {text!r}")
    return value


def command_calibrate(args) -> int:
    from ..maillog.calibrate import CalibrateOptions, calibrate
    from ..maillog.lines import LogError
    from ..maillog.parse import parse_maillog
    from ..maillog.scenario_text import write_calibration
    from ..maillog.stolen import DetectionOptions
    from ..maillog.traffic import OriginRules
    from ..units import parse_duration
    from .maillog import Progress

    out = Path(args.out)
    if out.exists() and not out.is_file():
        raise ScenarioError("--out", str(out), "exists and is not a file")
    source = ", ".join(Path(p).name for p in args.logs)
    options = CalibrateOptions(
        mynetworks=args.mynetworks, home_domain=args.home_domain, utc_offset_s=args.utc_offset * 3600.0,
        service=args.service, max_classes=args.max_classes, name=args.name or _stem(out), seed=args.seed,
        bot_patience=f"{parse_duration(args.bot_patience):g}s", source=source,
        bot_connect_timeout=(None if args.bot_connect_timeout is None else
                             f"{parse_duration(args.bot_connect_timeout):g}s"),
        bot_on_timeout=args.bot_on_timeout,
        detection=DetectionOptions(max_addresses=args.max_addresses, max_networks=args.max_networks,
                                   max_suspect=args.max_suspect, burst_factor=args.burst_factor,
                                   burst_min=args.burst_min, burst_history=args.burst_history,
                                   burst_any_network=args.burst_any_network))
    OriginRules.parse(options.mynetworks, options.home_domain)  # a bad range stops us before the (long) parse
    progress = None if args.quiet else Progress()
    try:
        parsed = parse_maillog([str(p) for p in args.logs], year=args.year, progress=progress)
    except LogError as exc:
        raise ScenarioError(exc.path, f"line {exc.line}" if exc.line else None, exc.message) from None
    finally:
        if progress:
            progress.done()
    for warning in parsed.stats.get("warnings", []):
        print(f"simsub: warning: {warning}", file=sys.stderr)
    calibration = calibrate(parsed, options)
    scenario_file, table_file = write_calibration(calibration, out)
    if not args.quiet:
        print(describe(calibration))
    print(f"scenario: {scenario_file}")
    print(f"flagged accounts: {table_file}")
    return 0


def _stem(out: Path) -> str:
    import re

    stem = out.name[:-5] if out.name.endswith(".toml") else out.stem
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.") or "calibrated"


def describe(calibration) -> str:
    """A few lines for the terminal: what was fitted."""
    t = calibration.traffic
    lines = [f"calibrate: {calibration.legit_messages:,} legitimate messages, {calibration.bot_messages:,} from "
             f"{len(calibration.flagged)} accounts that look stolen; horizon {t.horizon_s / 3600:g} h"]
    for p in calibration.populations:
        v = p.values
        if v["kind"] == "user":
            lines.append(f"  {v['name']}: {v['count']:,} users, {v['messages_per_day']:g} messages a day, origins "
                         + ", ".join(f"{k} {s:.1%}" for k, s in v["origins"].items()))
        else:
            lines.append(f"  {v['name']}: {v['count']:,} bot addresses, {v['accounts']} accounts, from {v['start']}")
    for row in calibration.flagged.head(10).itertuples(index=False):
        lines.append(f"  flagged {row.account}: {row.rules} ({row.bot_messages:,} messages from {row.bot_addresses} "
                     "addresses)")
    if len(calibration.flagged) > 10:
        lines.append(f"  ... and {len(calibration.flagged) - 10} more in the table")
    return "\n".join(lines)
