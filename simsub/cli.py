"""The ``simsub`` command.  Exit status: 0 done, 2 bad input, 1 unexpected failure."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from . import __version__
from .errors import ScenarioError
from .experiments.execute import Interrupted
from .scenario import DEFAULT_SCENARIO, load_scenario, parse_overrides
from .units import parse_duration

EPILOG = """examples:
  simsub run                                   the built-in may-2012 scenario, its default policy
  simsub run --policy selective-1-5s           one of the scenario's policies
  simsub run scenarios/may-2012.toml --set populations.botnet.count=300 --horizon 6h
  simsub check scenarios/my-isp.toml           validate a scenario and list its policies
  simsub compare                               every policy of the default scenario, 5 paired replications
  simsub compare --policies none,selective-1-5s --replications 10
  simsub sweep --policy selective --vary foreign_sleep=0:10:1
  simsub tune --policy selective --vary foreign_sleep=0:10:1 \\
      --require "spam.reduction>=0.95" --minimize legit.false_delay_rate.5s
  simsub export-postfix --policy selective-1-5s     the policy as main.cf/master.cf/pcre files
  simsub twin scenarios/twin-impatient.toml --set sleep=3   real Postfix vs the model (root)
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
    run.add_argument("--check", action="store_true",
                     help="verify the run's conservation laws (one outcome per message, recipients accounted for, "
                     "busy slots within the limit, time running forward); SIMSUB_CHECK=1 does it for every run")
    _budget_arguments(run)

    compare = sub.add_parser("compare", help="every policy on the same seeds: paired comparison report",
                             description="Run each policy on the same replications (common random numbers) and "
                             "write runs.csv, summary.csv (means, 95%% intervals, paired differences against the "
                             "baseline), charts and report.md / report.html.")
    _scenario_arguments(compare)
    compare.add_argument("--policies", metavar="A,B,...", type=_names,
                         help="policies to compare (default: all of the scenario's)")
    _experiment_arguments(compare, replications=5)

    sweep = sub.add_parser("sweep", help="one policy over a grid of parameter values, with trade-off chart",
                           description="Run a policy (and the baseline) at every point of a parameter grid, "
                           "each on the same replications, and chart every headline metric against the "
                           "varied parameter and spam reduction against false delay (Pareto front).")
    _scenario_arguments(sweep)
    _grid_arguments(sweep)
    _experiment_arguments(sweep, replications=3)

    tune = sub.add_parser("tune", help="find the parameter values that meet requirements at the least cost",
                          description="Search a parameter grid for the point that meets every --require "
                          "(on the mean over replications) with the best --minimize/--maximize objective; "
                          "report the recommendation, its intervals and how close the runner-up was.")
    _scenario_arguments(tune)
    _grid_arguments(tune)
    tune.add_argument("--require", metavar="EXPR", action="append", default=[],
                      help='a requirement METRIC OP NUMBER, e.g. "spam.reduction>=0.95" or '
                      '"legit.false_delay_rate.5s<=1%%" (repeatable)')
    goal = tune.add_mutually_exclusive_group(required=True)
    goal.add_argument("--minimize", metavar="METRIC", help="objective to minimise, e.g. legit.false_delay_rate.5s")
    goal.add_argument("--maximize", metavar="METRIC", help="objective to maximise, e.g. spam.reduction")
    tune.add_argument("--refine", metavar="N", type=_count, default=0,
                      help="after the grid, N rounds of trying points halfway to the best point's neighbours "
                      "(default 0)")
    _experiment_arguments(tune, replications=3)

    check = sub.add_parser("check", help="validate a scenario file and list its policies",
                           description="Validate a scenario (with any --set overrides) without running it.")
    _scenario_arguments(check)

    from .twin.commands import add_commands
    add_commands(sub, _scenario_arguments)
    from .policyd.commands import add_commands as add_policyd, command_policyd
    add_policyd(sub, _scenario_arguments); sub.choices["policyd"].set_defaults(handler=command_policyd)
    return parser


def _scenario_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", nargs="?", metavar="SCENARIO",
                        help=f"scenario TOML file (default: the built-in {DEFAULT_SCENARIO})")
    parser.add_argument("--set", metavar="KEY=VALUE", action="append", dest="overrides", default=[],
                        help="override a scenario key, e.g. mta.process_limit=50 or populations.botnet.count=10 "
                        "(repeatable)")


def _grid_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", metavar="NAME", help="the policy to vary (default: the scenario's default_policy)")
    parser.add_argument("--vary", metavar="NAME=START:STOP:STEP", action="append", default=[],
                        help="a [params] name or dotted key and its values: START:STOP:STEP (inclusive) or a,b,c "
                        "(repeatable: the grid is every combination)")


def _experiment_arguments(parser: argparse.ArgumentParser, replications: int) -> None:
    parser.add_argument("--replications", metavar="R", type=_count_positive, default=replications,
                        help=f"replications (seeds) per policy and grid point (default {replications})")
    parser.add_argument("--baseline", metavar="NAME",
                        help="policy that spam reduction and paired differences are measured against "
                        "(default: the scenario's policy named 'none', if any)")
    parser.add_argument("--seed", metavar="N", type=_seed,
                        help="root seed the replication seeds derive from (default: the scenario's seed)")
    parser.add_argument("--out", metavar="DIR", type=Path, help="output folder (default: results/SCENARIO/COMMAND...)")
    parser.add_argument("--cache", metavar="DIR", type=Path,
                        help="where finished runs are kept for resuming (default: .simsub-runs beside the output "
                        "folder)")
    parser.add_argument("--workers", metavar="N", type=_count_positive,
                        help="local worker processes (default: all cores)")
    parser.add_argument("--dask", metavar="ADDRESS",
                        help="run on a Dask distributed scheduler (tcp://host:8786), or 'local' to start a local "
                        "cluster of --workers processes; needs pip install 'simsub[dask]'")
    parser.add_argument("--quiet", action="store_true", help="no progress bar; print only the output folder")
    _budget_arguments(parser)


def _budget_arguments(parser: argparse.ArgumentParser) -> None:
    from .estimate import DEFAULT_MAX_EVENTS

    parser.add_argument("--max-events", metavar="N", type=_count_positive, default=DEFAULT_MAX_EVENTS,
                        help=f"refuse a run estimated beyond N simulated events or half the machine's memory "
                        f"(default {DEFAULT_MAX_EVENTS:.0e}: about two hours)")
    parser.add_argument("--force", action="store_true", help="run even beyond --max-events and the memory guard")


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected policy names separated by commas, got {text!r}")
    return names


def _count(text: str) -> int:
    return _seed(text)


def _count_positive(text: str) -> int:
    value = _seed(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


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

    from .output import check_output_target

    scenario = _load(args)
    policy = scenario.policy_named(args.policy)
    seed = scenario.seed if args.seed is None else args.seed
    out = args.out or Path("results") / scenario.name / f"{policy}-seed{seed}"
    check_output_target(out, "summary.json")
    if not args.force:
        from .estimate import check_budget

        check_budget(scenario, args.max_events)
    progress = Progress(f"{scenario.name}/{policy}", not args.quiet)
    result = run(scenario, policy=policy, seed=seed, progress=progress, check=True if args.check else None)
    progress.done()
    folder = write_run(result, out, _command_line(args))
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


def _command_line(args) -> str:
    """The command as typed (for reports and summary.json: it reproduces the result)."""
    return "simsub " + " ".join(shlex.quote(a) for a in args.argv)


def _experiment_options(args, scenario_name: str, default_folder: str) -> dict:
    from .experiments.design import slug

    from .output import check_output_target

    out = args.out or Path("results") / slug(scenario_name) / default_folder
    cache = args.cache or Path(out).parent / ".simsub-runs"
    check_output_target(out, "experiment.json")
    if Path(cache).resolve().is_relative_to(Path(out).resolve()):
        raise ScenarioError("--cache", str(cache), f"is inside the output folder {out}, which each run replaces")
    if Path(cache).exists() and not Path(cache).is_dir():
        raise ScenarioError("--cache", str(cache), "exists and is not a folder")
    return {"scenario": args.scenario, "overrides": parse_overrides(args.overrides), "replications": args.replications,
            "baseline": args.baseline if args.baseline else "auto", "seed": args.seed, "workers": args.workers,
            "dask": args.dask, "cache": cache, "progress": False if args.quiet else None,
            "command": _command_line(args), "max_events": None if args.force else args.max_events}, out


def _finish_experiment(experiment, out: Path, quiet: bool) -> int:
    from .experiments.output import write_experiment
    from .report import findings

    folder = write_experiment(experiment, out)
    failed = experiment.failed
    distinct = experiment.distinct_runs  # grid points that leave a policy unchanged share its runs
    if not quiet:
        computed = int((~distinct["cached"]).sum())
        print(f"{experiment.kind}: {experiment.scenario_name}, {len(experiment.policies)} policies, "
              f"{experiment.replications} replications, {len(distinct)} runs ({computed} computed, "
              f"{len(distinct) - computed} from cache) in {experiment.wall_s:.1f} s on {experiment.executor}")
        for line in findings(experiment):
            print(f"  - {line}")
    print(f"report: {folder / 'report.html'}")
    if len(failed):
        print(f"simsub: error: {len(failed)} of {len(distinct)} runs failed:", file=sys.stderr)
        for _, row in failed.head(20).iterrows():
            where = ", ".join(f"{v.name}={row[v.name]}" for v in experiment.varied)
            print(f"  {row['policy']}{' ' + where if where else ''} replication {row['replication']} "
                  f"(seed {row['seed']}): {row['error']}", file=sys.stderr)
        return 1
    return 0


def _scenario_name(args) -> str:
    return _load(args).name


def command_compare(args) -> int:
    from .experiments import compare

    options, out = _experiment_options(args, _scenario_name(args), "compare")
    experiment = compare(policies=args.policies, **options)
    return _finish_experiment(experiment, out, args.quiet)


def _grid_command(args, kind: str, **extra):
    from .experiments import sweep, tune
    from .experiments.design import parse_vary, slug

    scenario = _load(args)
    varied = [parse_vary(v) for v in args.vary]
    policy = scenario.policy_named(args.policy)
    folder = f"{kind}-{policy}-{'-'.join(slug(v.name) for v in varied)}"
    options, out = _experiment_options(args, scenario.name, folder)
    experiment = {"sweep": sweep, "tune": tune}[kind](policy=policy, vary=varied, **options, **extra)
    return _finish_experiment(experiment, out, args.quiet)


def command_sweep(args) -> int:
    return _grid_command(args, "sweep")


def command_tune(args) -> int:
    return _grid_command(args, "tune", require=args.require, minimize=args.minimize, maximize=args.maximize,
                         refine=args.refine)


def command_check(args) -> int:
    scenario = _load(args)
    print(f"{args.scenario or DEFAULT_SCENARIO + ' (built-in)'}: scenario {scenario.name!r} is valid; "
          f"horizon {scenario.horizon / 3600:g} h, {len(scenario.populations)} populations")
    for name, policy in scenario.policies.items():
        marker = " (default)" if name == scenario.default_policy else ""
        description = scenario.raw["policies"][name].get("description", "")
        print(f"  {name}{marker}: {description}")
    return 0


def command_export_postfix(args) -> int:
    from .twin.commands import command_export_postfix as export
    return export(args, _load, _command_line)


def command_twin(args) -> int:
    from .twin.commands import command_twin as twin
    return twin(args, _load, _command_line)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        args = parser.parse_args(argv)
        args.argv = argv
        if args.command is None:
            parser.print_help()
            return 2
        handler = {"run": command_run, "check": command_check, "compare": command_compare,
                   "sweep": command_sweep, "tune": command_tune, "export-postfix": command_export_postfix,
                   "twin": command_twin}.get(args.command) or args.handler
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
    except BrokenPipeError:  # output piped into `head` or similar: stop quietly
        sys.stderr.close()
        return 1
    except Interrupted as exc:
        print(f"\nsimsub: interrupted; {exc.finished} of {exc.total} runs finished and are kept; run the same "
              "command again to compute only the rest", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
