"""``simsub replay``: a server's own maillog replayed through candidate policies."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import ScenarioError
from ..scenario import DEFAULT_SCENARIO
from .maillog import PARSE_MARKER, _slug, _year, parse_logs_to_folder
from .options import command_line, policy_names, positive_whole_number, whole_number

DESCRIPTION = """\
Replay a Postfix maillog through candidate policies.  Every authenticated
submission the log shows (accepted messages, and transactions refused before a
queue id) arrives at its logged time from its logged client name and address
with its logged login and recipient count, and goes through each policy in the
model; what a log cannot say (how long a client waits, whether it retries, its
round trip) comes from the base scenario's populations (default: the built-in
%s's subscribers and botnet).  Logins given with --flagged replay as the bots'
mail.  Writes compare/ (the paired comparison and its report), scenario.toml
(the replay scenario: `simsub compare` runs it again), accounts.csv and
accounts.md (login by login: the legitimate senders each policy would have
delayed or refused, how much of the flagged accounts' mail it would have
stopped).  The logs are parsed first into OUT-trace/ (or give a folder that
`simsub maillog parse` wrote).  See docs/replay.md.""" % DEFAULT_SCENARIO

EPILOG = """examples:
  simsub replay /var/log/maillog --flagged alice,bob --policies none,selective-1-5s,throttle-100h
  simsub replay results/maillog/may scenarios/my-isp.toml --policy throttle --replications 5
"""


def add_commands(sub) -> dict:
    replay = sub.add_parser("replay", help="replay a Postfix maillog through candidate policies",
                            description=DESCRIPTION, epilog=EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    replay.add_argument("inputs", nargs="+", metavar="LOG [SCENARIO]",
                        help="log files (plain or gzip), or one folder of parsed tables; a last argument ending "
                        "in .toml is the base scenario (default: the built-in one)")
    replay.add_argument("--policy", metavar="NAME", action="append", default=[],
                        help="a policy to replay through (repeatable; default: every policy of the scenario)")
    replay.add_argument("--policies", metavar="A,B,...", type=policy_names, default=[],
                        help="policies to replay through, comma-separated")
    replay.add_argument("--flagged", metavar="LOGIN,...", default="",
                        help="logins whose logged mail is the bots' (stolen accounts), comma-separated")
    replay.add_argument("--flagged-file", metavar="CSV", type=Path,
                        help="a table with a column 'account' (or 'sasl_username') of flagged logins, e.g. the "
                        "one simsub calibrate writes")
    replay.add_argument("--detect", action="store_true",
                        help="flag the logins that look stolen by simsub calibrate's rules with their defaults "
                        "(many addresses or networks a day, many without home rDNS, bursts from new networks; "
                        "docs/calibrate.md); adds to --flagged")
    replay.add_argument("--users", metavar="NAME", help="the scenario's user population the log's legitimate mail "
                        "replaces (default: its first)")
    replay.add_argument("--bots", metavar="NAME", help="the scenario's bot population the flagged mail replaces "
                        "(default: its first)")
    replay.add_argument("--year", metavar="Y", type=_year,
                        help="year of the earliest line, for stamps without a year (default: each file's date)")
    replay.add_argument("--replications", metavar="R", type=positive_whole_number, default=3,
                        help="seeds for what the log cannot say (patience, round trips) per policy (default 3)")
    replay.add_argument("--seed", metavar="N", type=whole_number, help="root seed (default: the scenario's)")
    replay.add_argument("--out", metavar="DIR", type=Path, help="output folder (default: results/replay/LOG-NAME)")
    replay.add_argument("--cache", metavar="DIR", type=Path,
                        help="where finished runs are kept (default: .simsub-runs beside the output folder)")
    replay.add_argument("--workers", metavar="N", type=positive_whole_number,
                        help="local worker processes (default: all cores)")
    replay.add_argument("--quiet", action="store_true", help="no progress; print only the output folder")
    return {"replay": command_replay}


def _split_inputs(inputs: list[Path]) -> tuple[list[Path], Path | None]:
    logs = [Path(p) for p in inputs]
    scenario = None
    if len(logs) > 1 and logs[-1].suffix == ".toml":
        scenario = logs.pop()
    for path in logs:
        if path.suffix == ".toml":
            raise ScenarioError(str(path), None, "a scenario file goes last, after the logs")
    return logs, scenario


def _flagged(args) -> list[str]:
    names = [n.strip() for n in args.flagged.split(",") if n.strip()]
    if args.flagged_file is not None:
        import pandas as pd

        try:
            table = pd.read_csv(args.flagged_file, dtype=str, keep_default_na=False)
        except (OSError, ValueError) as exc:
            raise ScenarioError(str(args.flagged_file), None, f"cannot be read as a CSV table: {exc}") from None
        column = next((c for c in ("account", "sasl_username") if c in table.columns), None)
        if column is None:
            raise ScenarioError(str(args.flagged_file), None, "has no column 'account' or 'sasl_username'")
        names += [n for n in table[column].tolist() if n]
    return names


def detect_stolen(tables: Path) -> list[str]:
    """The logins of a parsed log that calibrate's detection flags (its default rules)."""
    from ..maillog.calibrate import CalibrateOptions
    from ..maillog.parse import ParsedLog
    from ..maillog.stolen import flag_accounts
    from ..maillog.tables import read_tables
    from ..maillog.traffic import OriginRules, select_traffic

    options = CalibrateOptions(source=str(tables))
    parsed = ParsedLog(**read_tables(tables))
    traffic = select_traffic(parsed, OriginRules.parse(options.mynetworks, options.home_domain), options.service,
                             options.utc_offset_s, options.source)
    flagged, _is_bot, _sessions = flag_accounts(traffic, options.detection)
    return sorted(flagged["account"].tolist())


def command_replay(args) -> int:
    from ..experiments.replay import replay, replay_scenario_data, write_scenario
    from ..files import check_output_target
    from ..report.replay import REPLAY_MARKER, hurt_counts, write_replay

    logs, base = _split_inputs(args.inputs)
    out = args.out or Path("results") / "replay" / _slug(logs[0].name)
    check_output_target(out, REPLAY_MARKER)
    cache = args.cache or out.parent / ".simsub-runs"
    if len(logs) == 1 and (logs[0] / PARSE_MARKER).is_file():
        tables = logs[0]
    else:
        for path in logs:
            if path.is_dir():
                raise ScenarioError(str(path), None, f"is a folder without {PARSE_MARKER}: give log files or a "
                                    "folder written by simsub maillog parse")
        tables = out.parent / f"{out.name}-trace"
        stats = parse_logs_to_folder(logs, tables, args.year, args.quiet, command_line(args))
        if not args.quiet:
            print(f"parsed {stats['lines_read']:,} lines into {tables}", file=sys.stderr)
    flagged = _flagged(args)
    if args.detect:
        detected = detect_stolen(tables)
        flagged += detected
        if not args.quiet:
            print(f"detected {len(detected)} logins that look stolen: {', '.join(detected[:10]) or 'none'}"
                  f"{' …' if len(detected) > 10 else ''}", file=sys.stderr)
    data, scenario = replay_scenario_data(base, tables, flagged, args.users, args.bots)
    policies = list(dict.fromkeys([scenario.policy_named(p) for p in args.policy + args.policies])) or None
    # The scenario lives beside the output while the runs compute, so workers rebuild it from a file.
    staging = out.parent / f".{out.name}.scenario.toml"
    write_scenario(data, staging)
    try:
        result = replay(staging, policies, args.replications, seed=args.seed, workers=args.workers,
                        cache=cache, progress=False if args.quiet else None, command=command_line(args))
    finally:
        staging.unlink(missing_ok=True)
    folder = write_replay(result, data, out, command_line(args))
    if not args.quiet:
        trace = result.trace
        print(f"replay: {len(trace.users):,} legitimate and {len(trace.bots):,} flagged submissions, "
              f"{len(result.experiment.policies)} policies, {args.replications} replications")
        for policy, (hurt, total) in hurt_counts(result.accounts).items():
            flagged = result.accounts[(result.accounts["policy"] == policy) & (result.accounts["kind"] == "flagged")]
            stopped = ""
            if len(flagged) and flagged["recipients"].sum():
                share = 1 - flagged["recipients_accepted"].sum() / flagged["recipients"].sum()
                stopped = f"; {share:.1%} of the flagged accounts' recipients stopped"
            print(f"  {policy}: {hurt:,} of {total:,} legitimate senders delayed > 5 s or refused{stopped}")
    print(f"report: {folder / 'compare' / 'report.html'}; accounts: {folder / 'accounts.md'}")
    return 0
