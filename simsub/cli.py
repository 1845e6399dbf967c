"""The ``simsub`` command.  Exit status: 0 done, 2 bad input, 1 unexpected failure."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from . import __version__
from .errors import ScenarioError
from .scenario import DEFAULT_SCENARIO, load_scenario, parse_overrides
from .units import parse_duration

EPILOG = """examples:
  simsub run                                   the built-in may-2012 scenario, its default policy
  simsub run --policy selective-1-5s           one of the scenario's policies
  simsub run scenarios/may-2012.toml --set populations.botnet.count=300 --horizon 6h
  simsub check scenarios/my-isp.toml           validate a scenario and list its policies
"""


class ArgumentError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message):  # exit 2 with one line, like scenario errors
        command = self.prog.removeprefix("simsub").strip()
        raise ArgumentError(f"{command + ': ' if command else ''}{message}")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="simsub", description="Simulate an ISP mail submission service (port 587) under attack "
                    "by bots with stolen passwords, and measure what tarpits and throttles cost and save.",
                    epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"simsub {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    run = sub.add_parser("run", help="run one scenario under one policy and write a result folder",
                         description="Run one replication and write summary.json, messages.csv.gz, "
                         "timeseries.csv, the resolved scenario.toml and two charts (throughput.png, "
                         "false_delay.png) to a result folder.")
    _scenario_arguments(run)
    run.add_argument("--policy", metavar="NAME", help="policy to apply (default: the scenario's default_policy)")
    run.add_argument("--seed", metavar="N", type=_seed, help="root random seed (default: the scenario's seed)")
    run.add_argument("--horizon", metavar="DUR", type=_duration,
                     help="simulated time during which clients start sessions, e.g. 6h (default: the scenario's)")
    run.add_argument("--out", metavar="DIR", type=Path,
                     help="result folder (default: results/SCENARIO/POLICY-seedN)")
    run.add_argument("--quiet", action="store_true", help="print only the result folder")

    check = sub.add_parser("check", help="validate a scenario file and list its policies",
                           description="Validate a scenario (with any --set overrides) without running it.")
    _scenario_arguments(check)
    return parser


def _scenario_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", nargs="?", metavar="SCENARIO",
                        help=f"scenario TOML file (default: the built-in {DEFAULT_SCENARIO})")
    parser.add_argument("--set", metavar="KEY=VALUE", action="append", dest="overrides", default=[],
                        help="override a scenario key, e.g. mta.process_limit=50 or populations.botnet.count=10 "
                        "(repeatable)")


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def _duration(text: str) -> str:
    try:
        if parse_duration(text) <= 0:
            raise ValueError(f"expected a duration > 0, got {text!r}")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


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


def _load(args):
    overrides = parse_overrides(args.overrides)
    if getattr(args, "horizon", None):
        overrides["scenario.horizon"] = args.horizon
    return load_scenario(args.scenario, overrides)


def command_run(args) -> int:
    from .api import run
    from .output import write_run

    scenario = _load(args)
    policy = scenario.policy_named(args.policy)
    seed = scenario.seed if args.seed is None else args.seed
    out = args.out or Path("results") / scenario.name / f"{policy}-seed{seed}"
    progress = Progress(f"{scenario.name}/{policy}", not args.quiet)
    result = run(scenario, policy=policy, seed=seed, progress=progress)
    progress.done()
    command = "simsub " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    folder = write_run(result, out, command)
    if not args.quiet:
        print(format_summary(result.summary))
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
    scenario = _load(args)
    print(f"{args.scenario or DEFAULT_SCENARIO + ' (built-in)'}: scenario {scenario.name!r} is valid; "
          f"horizon {scenario.horizon / 3600:g} h, {len(scenario.populations)} populations")
    for name, policy in scenario.policies.items():
        marker = " (default)" if name == scenario.default_policy else ""
        description = scenario.raw["policies"][name].get("description", "")
        print(f"  {name}{marker}: {description}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        handler = {"run": command_run, "check": command_check}[args.command]
        return handler(args)
    except ArgumentError as exc:
        print(f"simsub: error: {exc} (try 'simsub --help')", file=sys.stderr)
        return 2
    except ScenarioError as exc:
        print(f"simsub: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nsimsub: interrupted; no result folder was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
