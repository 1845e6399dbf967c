"""``simsub compare``, ``sweep`` and ``tune``: experiments over paired replications."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import ScenarioError
from ..scenario import parse_overrides
from .options import (budget_arguments, command_line, confidence_level, load_scenario_from, policy_names,
                      positive_duration, positive_whole_number, scenario_arguments, whole_number)


def add_commands(sub) -> dict:
    compare = sub.add_parser("compare", help="every policy on the same seeds: paired comparison report",
                             description="Run each policy on the same replications (common random numbers) and "
                             "write runs.csv, summary.csv (means, confidence intervals, paired differences against the "
                             "baseline), charts and report.md / report.html.")
    scenario_arguments(compare)
    compare.add_argument("--policies", metavar="A,B,...", type=policy_names,
                         help="policies to compare (default: all of the scenario's)")
    _experiment_arguments(compare, replications=5)
    preference_arguments(compare)

    sweep = sub.add_parser("sweep", help="one policy over a grid of parameter values, with trade-off chart",
                           description="Run a policy (and the baseline) at every point of a parameter grid, "
                           "each on the same replications, and chart every headline metric against the "
                           "varied parameter and spam reduction against false delay (Pareto front).")
    scenario_arguments(sweep)
    _grid_arguments(sweep)
    _experiment_arguments(sweep, replications=3)

    tune = sub.add_parser("tune", help="find the parameter values that meet requirements at the least cost",
                          description="Search a parameter grid for the point that meets every --require "
                          "(on the mean over replications) with the best --minimize/--maximize objective; "
                          "report the recommendation, its intervals and how close the runner-up was.")
    scenario_arguments(tune)
    _grid_arguments(tune)
    tune.add_argument("--require", metavar="EXPR", action="append", default=[],
                      help='a requirement METRIC OP NUMBER, e.g. "spam.reduction>=0.95" or '
                      '"legit.false_delay_rate.5s<=1%%" (repeatable)')
    goal = tune.add_mutually_exclusive_group(required=True)
    goal.add_argument("--minimize", metavar="METRIC", help="objective to minimise, e.g. legit.false_delay_rate.5s")
    goal.add_argument("--maximize", metavar="METRIC", help="objective to maximise, e.g. spam.reduction")
    tune.add_argument("--refine", metavar="N", type=whole_number, default=0,
                      help="after the grid, N rounds of trying points halfway to the best point's neighbours "
                      "(default 0)")
    tune.add_argument("--race", action=argparse.BooleanOptionalAction, default=True,
                      help="after the first 3 replications, run further ones only at points still in contention: "
                      "drop a point once it fails a requirement or loses on the objective with confidence (the best "
                      "point is dropped with probability at most 1 - --confidence; docs/experiments.md, \"Racing\"); "
                      "--no-race runs every replication at every point (default: --race)")
    # 10, not a sweep's 3: racing spends them only where the call is close, so the README example costs
    # what 3 did without racing, and a close call gets the replications that can separate it
    _experiment_arguments(tune, replications=10)
    return {"compare": command_compare, "sweep": command_sweep, "tune": command_tune}


def _grid_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", metavar="NAME", help="the policy to vary (default: the scenario's default_policy)")
    parser.add_argument("--vary", metavar="NAME=START:STOP:STEP", action="append", default=[],
                        help="a [params] name or dotted key and its values: START:STOP:STEP (inclusive) or a,b,c "
                        "(repeatable: the grid is every combination)")


def _experiment_arguments(parser: argparse.ArgumentParser, replications: int) -> None:
    parser.add_argument("--replications", metavar="R", type=positive_whole_number, default=replications,
                        help=f"replications (seeds) per policy and grid point (default {replications})")
    parser.add_argument("--baseline", metavar="NAME",
                        help="policy that spam reduction and paired differences are measured against "
                        "(default: the scenario's policy named 'none', if any)")
    parser.add_argument("--seed", metavar="N", type=whole_number,
                        help="root seed the replication seeds derive from (default: the scenario's seed)")
    parser.add_argument("--out", metavar="DIR", type=Path, help="output folder (default: results/SCENARIO/COMMAND...)")
    parser.add_argument("--cache", metavar="DIR", type=Path,
                        help="where finished runs are kept for resuming (default: .simsub-runs beside the output "
                        "folder)")
    parser.add_argument("--workers", metavar="N", type=positive_whole_number,
                        help="local worker processes (default: all cores)")
    parser.add_argument("--dask", metavar="ADDRESS",
                        help="run on a Dask distributed scheduler (tcp://host:8786), or 'local' to start a local "
                        "cluster of --workers processes; needs pip install 'simsub[dask]'")
    parser.add_argument("--horizon", metavar="DUR", type=positive_duration,
                        help="simulated time during which clients start sessions, e.g. 6h (default: the scenario's)")
    parser.add_argument("--confidence", metavar="LEVEL", type=confidence_level, default=0.95,
                        help="confidence level of the intervals, e.g. 0.9 or 90%% (default 0.95)")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress or findings; print only where the report is")
    budget_arguments(parser)


def preference_arguments(parser: argparse.ArgumentParser) -> None:
    """What the admin says matters, for the compare report's ranking and recommendation."""
    parser.add_argument("--require", metavar="EXPR", action="append", default=[],
                        help='a requirement METRIC OP NUMBER the recommended policy must meet on the mean, e.g. '
                        '"spam.reduction>=90%%" (repeatable; default: spam.reduction>=95%% when there is a '
                        'baseline)')
    parser.add_argument("--minimize", metavar="METRIC", action=_Objective, dest="objectives", default=[],
                        help="a cost to keep low, most important first, in order with --maximize (repeatable; "
                        "default: legit.false_delay_rate.5s, legit.failed and, with a mail queue, legit.bounced "
                        "and reputation.listed_h_total)")
    parser.add_argument("--maximize", metavar="METRIC", action=_Objective, dest="objectives", default=[],
                        help="a metric to keep high, e.g. spam.reduction (repeatable, in order with --minimize)")


class _Objective(argparse.Action):
    """--minimize/--maximize in the order given: [(metric, "minimize"), ...]."""

    def __call__(self, parser, namespace, values, option_string=None):
        objectives = list(getattr(namespace, self.dest) or [])
        objectives.append((values, option_string.lstrip("-")))
        setattr(namespace, self.dest, objectives)


def _experiment_options(args, scenario_name: str, default_folder: str) -> dict:
    from ..experiments.design import slug
    from ..files import check_output_target

    out = args.out or Path("results") / slug(scenario_name) / default_folder
    cache = args.cache or Path(out).parent / ".simsub-runs"
    check_output_target(out, "experiment.json")
    if Path(cache).resolve().is_relative_to(Path(out).resolve()):
        raise ScenarioError("--cache", str(cache), f"is inside the output folder {out}, which each run replaces")
    if Path(cache).exists() and not Path(cache).is_dir():
        raise ScenarioError("--cache", str(cache), "exists and is not a folder")
    overrides = parse_overrides(args.overrides)
    if args.horizon:
        overrides["scenario.horizon"] = args.horizon
    return {"scenario": args.scenario, "overrides": overrides, "replications": args.replications,
            "baseline": args.baseline if args.baseline else "auto", "seed": args.seed, "workers": args.workers,
            "dask": args.dask, "cache": cache, "progress": False if args.quiet else None,
            "command": command_line(args), "max_events": None if args.force else args.max_events,
            "confidence": args.confidence}, out


def _finish_experiment(experiment, out: Path, quiet: bool) -> int:
    from ..report import findings, write_experiment

    folder = write_experiment(experiment, out)
    failed = experiment.failed
    distinct = experiment.distinct_runs  # grid points that leave a policy unchanged share its runs
    if not quiet:
        computed = int((~distinct["cached"]).sum())
        print(f"{experiment.kind}: {experiment.scenario_name}, {len(experiment.policies)} policies, "
              f"{experiment.replications} replications, {len(distinct)} runs ({computed} computed, "
              f"{len(distinct) - computed} from cache) in {experiment.wall_s:.1f} s on {experiment.executor}; "
              f"the runs took {experiment.compute_s:.1f} s of compute"
              + (f" ({experiment.cached_compute_s:.1f} s of it in earlier invocations)"
                 if len(distinct) > computed else ""))
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


def command_compare(args) -> int:
    from ..experiments import compare

    scenario = load_scenario_from(args)
    for name in args.policies or ():
        try:
            scenario.policy_named(name)
        except ScenarioError as exc:  # the option the user typed, not run's --policy
            raise ScenarioError(exc.source, "--policies", exc.message) from None
    options, out = _experiment_options(args, scenario.name, "compare")
    experiment = compare(policies=args.policies, require=args.require, objectives=args.objectives, **options)
    return _finish_experiment(experiment, out, args.quiet)


def _grid_command(args, kind: str, **extra):
    from ..experiments import sweep, tune
    from ..experiments.design import parse_vary, slug

    scenario = load_scenario_from(args)
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
                         refine=args.refine, race=args.race)


