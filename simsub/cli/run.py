"""``simsub run`` and ``simsub check``: one replication, or a scenario validated."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..scenario import DEFAULT_SCENARIO
from .options import (budget_arguments, command_line, load_scenario_from, positive_duration, scenario_arguments,
                      whole_number)


def add_commands(sub) -> dict:
    run = sub.add_parser("run", help="run one scenario under one policy and write a result folder",
                         description="Run one replication and write summary.json, messages.csv.gz, "
                         "timeseries.csv, the resolved scenario.toml and two charts (throughput.png, "
                         "false_delay.png) to a result folder.")
    scenario_arguments(run)
    run.add_argument("--policy", metavar="NAME", help="policy to apply (default: the scenario's default_policy)")
    run.add_argument("--seed", metavar="N", type=whole_number, help="root random seed (default: the scenario's seed)")
    run.add_argument("--horizon", metavar="DUR", type=positive_duration,
                     help="simulated time during which clients start sessions, e.g. 6h (default: the scenario's)")
    run.add_argument("--out", metavar="DIR", type=Path,
                     help="result folder (default: results/SCENARIO/POLICY-seedN)")
    run.add_argument("--quiet", action="store_true", help="print only the result folder")
    run.add_argument("--check", action="store_true",
                     help="verify the run's conservation laws (one outcome per message, recipients accounted for, "
                     "busy slots within the limit, time running forward); SIMSUB_CHECK=1 does it for every run")
    budget_arguments(run)
    maillog_arguments(run)

    check = sub.add_parser("check", help="validate a scenario file and list its policies",
                           description="Validate a scenario (with any --set overrides) without running it.")
    scenario_arguments(check)
    return {"run": command_run, "check": command_check}


class Progress:
    """Simulated time reached and events per second, on stderr."""

    def __init__(self, label: str, enabled: bool):
        self.label = label
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.started = time.perf_counter()
        self.last = 0.0
        self.next_share = 0.25

    def __call__(self, now: float, horizon: float, events: int) -> None:
        if not self.enabled:
            return
        wall = time.perf_counter() - self.started
        share = min(now / horizon, 1.0)
        line = (f"{self.label}: simulated {now / 3600:6.2f} h of {horizon / 3600:g} h ({share:4.0%}), "
                f"{events:,} events, {events / max(wall, 1e-9):,.0f} events/s")
        if self.tty:
            if wall - self.last >= 0.2 or share >= 1:
                self.last = wall
                sys.stderr.write("\r" + line)
                sys.stderr.flush()
        elif share >= self.next_share:
            self.next_share += 0.25
            print(line, file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.enabled and self.tty:
            sys.stderr.write("\n")


def command_run(args) -> int:
    from ..api import run
    from ..files import check_output_target
    from ..report.maillog import write_maillog
    from ..report.run_folder import write_run

    scenario = load_scenario_from(args)
    policy = scenario.policy_named(args.policy)
    seed = scenario.seed if args.seed is None else args.seed
    out = args.out or Path("results") / scenario.name / f"{policy}-seed{seed}"
    check_output_target(out, "summary.json")
    if not args.force:
        from ..estimate import check_budget

        check_budget(scenario, args.max_events)
    progress = Progress(f"{scenario.name}/{policy}", not args.quiet)
    result = run(scenario, policy=policy, seed=seed, progress=progress, check=True if args.check else None)
    progress.done()
    maillog = maillog_path(args)
    # A maillog that goes into the result folder is written inside it, before the folder appears.
    extra = (lambda staging: write_maillog(result, staging / "maillog", maillog_options(args))) \
        if maillog == Path("maillog") else None
    folder = write_run(result, out, command_line(args), extra=extra)
    if maillog is not None and extra is None:
        write_maillog(result, maillog, maillog_options(args))
    if not args.quiet:
        print(format_summary(result.summary))
    if maillog is not None:
        print(f"maillog: {folder / 'maillog' if extra else maillog}")
    print(f"results: {folder}")
    return 0


def format_summary(summary: dict) -> str:
    run, legit, spam, smtpd = summary["run"], summary["legit"], summary["spam"], summary["smtpd"]
    fd = legit["false_delay"]
    rate = legit["false_delay_rate"]

    def pct(x):
        return "n/a" if x is None else f"{x:.1%}"

    def sec(x):
        return "n/a" if x is None else f"{x:.2f} s"

    lines = [
        f"{run['scenario']} · policy {run['policy']} · seed {run['seed']} · "
        f"{run['events']:,} events in {run['wall_s']:.1f} s ({run['events_per_s'] or 0:,.0f}/s)",
        f"  spam:   {spam['recipients_accepted']:,} of {spam['recipients_attempted']:,} recipients accepted; "
        f"{spam['messages']:,} bot sessions: {spam['accepted']:,} accepted, {spam['aborted']:,} aborted, "
        f"{spam['rejected']:,} rejected, {spam['deferred']:,} deferred",
        f"  legit:  {legit['accepted']:,} of {legit['messages']:,} messages accepted ({legit['failed']:,} failed); "
        f"false delay p50 {sec(fd['p50'])}, p95 {sec(fd['p95'])}; delayed >1 s {pct(rate['1s'])}, "
        f">5 s {pct(rate['5s'])}, >30 s {pct(rate['30s'])}",
        f"  smtpd:  busy mean {smtpd['busy_mean']:.1f}, peak {smtpd['busy_peak']} of {smtpd['process_limit']}; "
        f"{smtpd['connections']:,} connections, {smtpd['refused']:,} refused, {smtpd['abandoned']:,} abandoned",
    ]
    if "queue" in summary:
        queue = summary["queue"]
        listed = ", ".join(f"{name} {v['listed_s'] / 3600:.1f} h" for name, v in summary["reputation"].items()) or "no lists"
        lines.append(f"  queue:  peak {queue['peak_active']:,} active, {queue['peak_deferred']:,} deferred; "
                     f"{queue['bounces']:,} bounces; legit delivery p95 {sec(legit['delivery_latency']['p95'])}, "
                     f"{legit['bounced']:,} legit recipients bounced; listed: {listed}")
        operator = summary.get("operator")
        if operator and operator["first_action_at_s"] is not None:
            t = operator["first_action_at_s"]
            lines.append(f"  operator: noticed at {operator['detected_at_s'] / 3600:.2f} h, first acted at {t / 3600:.2f} h, "
                         f"{operator['accounts_reset']} passwords reset")
    return "\n".join(lines)


def command_check(args) -> int:
    scenario = load_scenario_from(args)
    print(f"{args.scenario or DEFAULT_SCENARIO + ' (built-in)'}: scenario {scenario.name!r} is valid; "
          f"horizon {scenario.horizon / 3600:g} h, {len(scenario.populations)} populations")
    for name, policy in scenario.policies.items():
        marker = " (default)" if name == scenario.default_policy else ""
        description = scenario.raw["policies"][name].get("description", "")
        print(f"  {name}{marker}: {description}")
    return 0




# ---------------------------------------------------------------------------- --maillog
def maillog_arguments(parser) -> None:
    """``--maillog [FILE]`` and its look options (simsub.report.maillog)."""
    from ..report.maillog import DEFAULT_START, MaillogOptions

    parser.add_argument("--maillog", nargs="?", const="", default=None, metavar="FILE",
                        help="also write a Postfix-format maillog of the run, to FILE (gzip if it ends in .gz) or "
                        "to 'maillog' in the result folder")
    parser.add_argument("--maillog-start", metavar="DATE", type=_maillog_start, default=DEFAULT_START,
                        help="wall-clock time of simulated time 0, UTC unless a zone is given "
                        "(default 2012-05-15T00:00:00Z)")
    parser.add_argument("--maillog-host", metavar="NAME", default=MaillogOptions.host,
                        help=f"host name in every line (default {MaillogOptions.host})")
    parser.add_argument("--maillog-rfc3339", action="store_true",
                        help="RFC 3339 time stamps with microseconds instead of classic syslog 'May 15 00:00:01'")


def _maillog_start(text: str):
    from ..report.maillog import parse_start

    try:
        return parse_start(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def maillog_path(args) -> Path | None:
    """Where --maillog asks for the log: None (not asked), ``maillog`` (in the result folder), or a file."""
    if args.maillog is None:
        return None
    return Path(args.maillog) if args.maillog else Path("maillog")


def maillog_options(args):
    from ..report.maillog import MaillogOptions

    return MaillogOptions(start=args.maillog_start, host=args.maillog_host, rfc3339=args.maillog_rfc3339)
