"""The ``simsub calibrate`` command (registered by :mod:`simsub.cli`)."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from ..errors import ScenarioError

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


def add_commands(sub) -> None:
    from ..cli import _count_positive, _duration, _seed
    from ..twin.commands import _scale as _positive  # a finite number > 0

    from .stolen import DetectionOptions

    d = DetectionOptions()
    cal = sub.add_parser("calibrate", help="fit a commented scenario to a Postfix maillog",
                         description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    cal.add_argument("logs", nargs="+", metavar="LOG", help="maillog files, plain or .gz, in any order")
    cal.add_argument("--out", metavar="SCENARIO.toml", type=Path, required=True,
                     help="scenario file to write (the flagged-account table goes next to it as .flagged.csv)")
    cal.add_argument("--mynetworks", metavar="CIDR,...", help="the own network's address ranges (origin 'own')")
    cal.add_argument("--home-domain", metavar="SUFFIX,...",
                     help="rDNS suffixes of the home country, e.g. jp (origin 'home'; other names are 'foreign')")
    cal.add_argument("--year", metavar="Y", type=_seed, help="year of classic syslog stamps (default: the file's date)")
    cal.add_argument("--utc-offset", metavar="HOURS", type=_hours, default=0.0,
                     help="add to the log's times to get the server's local time for days and hours (default 0: "
                     "classic syslog stamps are local time already)")
    cal.add_argument("--service", metavar="NAME", default="submission",
                     help="sessions whose syslog name contains NAME (or that log in) are submission (default "
                     "submission)")
    cal.add_argument("--name", metavar="NAME", help="scenario name (default: the --out file's stem)")
    cal.add_argument("--seed", metavar="N", type=_seed, default=0, help="the scenario's seed (default 0)")
    cal.add_argument("--max-classes", metavar="K", type=_count_positive, default=4,
                     help="most volume classes (user populations) to fit (default 4)")
    cal.add_argument("--bot-patience", metavar="DUR", type=_duration, default="60s",
                     help="the bots' reply timeout, which a log does not show (default 60s)")
    det = cal.add_argument_group("stolen-account detection (per account and server day)")
    det.add_argument("--max-addresses", metavar="N", type=_count_positive, default=d.max_addresses,
                     help=f"flag logins from more than N client addresses, IPv6 /64s (default {d.max_addresses})")
    det.add_argument("--max-networks", metavar="N", type=_count_positive, default=d.max_networks,
                     help=f"flag logins from more than N networks, IPv4 /24s or IPv6 /48s (default {d.max_networks})")
    det.add_argument("--max-suspect", metavar="N", type=_count_positive, default=d.max_suspect,
                     help="flag logins from more than N addresses without home rDNS (no rDNS or foreign) "
                     f"(default {d.max_suspect})")
    det.add_argument("--burst-factor", metavar="F", type=_positive, default=d.burst_factor,
                     help="flag a day with more than F times the recipients of the account's median other active "
                     f"day (default {d.burst_factor:g})")
    det.add_argument("--burst-min", metavar="N", type=_count_positive, default=d.burst_min,
                     help=f"...and at least N recipients (default {d.burst_min})")
    det.add_argument("--burst-history", metavar="N", type=_count_positive, default=d.burst_history,
                     help=f"...when the account has at least N other active days (default {d.burst_history})")
    det.add_argument("--burst-any-network", action="store_true",
                     help="count a burst even when it came from networks the account used before (default: only "
                     "when most of it came from new networks, so that an owner's own mailing is not flagged)")
    cal.add_argument("--quiet", action="store_true", help="print only the files written")
    cal.set_defaults(handler=command_calibrate)


def _hours(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected hours such as 9 or -5.5, got {text!r}") from None
    if not -24 < value < 24:
        raise argparse.ArgumentTypeError(f"expected hours between -24 and 24, got {text!r}")
    return value


def flagged_path(out: Path) -> Path:
    """SCENARIO.toml -> SCENARIO.flagged.csv (next to it)."""
    out = Path(out)
    stem = out.name[:-5] if out.name.endswith(".toml") else out.name
    return out.with_name(stem + ".flagged.csv")


def command_calibrate(args) -> int:
    from ..units import parse_duration
    from .calibrate import CalibrateOptions, calibrate
    from .stolen import DetectionOptions

    out = Path(args.out)
    if out.exists() and not out.is_file():
        raise ScenarioError("--out", str(out), "exists and is not a file")
    for log in args.logs:
        if not Path(log).is_file():
            raise ScenarioError(log, None, "no such file" if not Path(log).exists() else "not a file")
    source = ", ".join(Path(p).name for p in args.logs)
    options = CalibrateOptions(
        mynetworks=args.mynetworks, home_domain=args.home_domain, utc_offset_s=args.utc_offset * 3600.0,
        service=args.service, max_classes=args.max_classes, name=args.name or _stem(out), seed=args.seed,
        bot_patience=f"{parse_duration(args.bot_patience):g}s", source=source,
        detection=DetectionOptions(max_addresses=args.max_addresses, max_networks=args.max_networks,
                                   max_suspect=args.max_suspect, burst_factor=args.burst_factor,
                                   burst_min=args.burst_min, burst_history=args.burst_history,
                                   burst_any_network=args.burst_any_network))
    from .parse import parse_maillog  # lazily: the parser is only needed here

    parsed = parse_maillog([str(p) for p in args.logs], year=args.year)
    if len(parsed.sessions) == 0 and len(parsed.messages) == 0:
        stats = getattr(parsed, "stats", {}) or {}
        raise ScenarioError(source, None, f"no Postfix smtpd session or message found ({stats.get('lines_read', '?')} "
                            f"lines read, {stats.get('lines_used', '?')} used): is this a Postfix maillog?")
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


def write_calibration(calibration, out: Path) -> tuple[Path, Path]:
    """Write the scenario and its flagged-account table atomically; check the scenario loads first.

    Both files are written to hidden temporary siblings, the scenario is
    loaded and validated from there, and only then are both renamed into
    place (the table first, so a complete scenario never sits next to a
    missing or stale table)."""
    from ..scenario import load_scenario
    from .scenario_text import scenario_toml

    out = Path(out)
    table = flagged_path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ScenarioError("--out", str(out), f"cannot create its folder: {exc.strerror}") from None
    if not os.access(out.parent, os.W_OK):
        raise ScenarioError("--out", str(out), f"cannot write in {out.parent}")
    staged = []
    try:
        for target, write in ((table, lambda f: calibration.flagged.to_csv(f, index=False)),
                              (out, lambda f: f.write(scenario_toml(calibration)))):
            handle = tempfile.NamedTemporaryFile("w", dir=out.parent, prefix=f".{target.name}.partial-",
                                                 suffix=".toml" if target == out else ".csv", delete=False,
                                                 encoding="utf-8", newline="")
            staged.append((handle.name, target))
            with handle:
                write(handle)
        try:
            load_scenario(staged[1][0])
        except ScenarioError as exc:  # a bug of calibrate, not of the input: say so plainly
            raise RuntimeError(f"the fitted scenario does not load ({exc}); please report this") from None
        for name, target in staged:
            os.chmod(name, 0o666 & ~_umask())
            os.replace(name, target)
        staged = []
    finally:
        for name, _ in staged:
            Path(name).unlink(missing_ok=True)
    return out, table


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
