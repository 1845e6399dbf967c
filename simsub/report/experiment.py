"""The report of an experiment as a document: findings, what was run, tables, charts, how to read it."""

from __future__ import annotations

import math
from typing import Any, Sequence

import pandas as pd

from .experiment_charts import pareto_front
from ..experiments.metrics import FALSE_DELAY_5S, SPAM_REDUCTION
from ..experiments.ranking import rank
from ..experiments.types import Experiment, Metric, TuneOutcome
from . import data
from .data import value
from .document import Bullets, Code, Document, Heading, Image, Link, Paragraph, Table
from .figures import Figure
from .advice import interval_cell
from .findings import findings
from .format import fmt_diff, fmt_duration, fmt_param, fmt_threshold, fmt_value

RUNS_CSV = "runs.csv"
SUMMARY_CSV = "summary.csv"
SEEDS_LISTED = 100
TUNE_POINTS_LISTED = 15

#: What each headline metric means, for "How to read this".
MEANINGS = {
    "spam.recipients_accepted": "spam recipients the server accepted for delivery in a run: the harm it will emit",
    SPAM_REDUCTION: "1 − spam recipients accepted under the policy ÷ under the baseline policy, on the same seed "
                    "(and grid point)",
    "spam.bots_succeeding": "share of the scenario's bots that got at least one message accepted",
    "legit.false_delay_rate.1s": "share of legitimate messages with a false delay above 1 s (never accepted counts "
                                 "as delayed)",
    "legit.false_delay_rate.5s": "share of legitimate messages with a false delay above 5 s (never accepted counts "
                                 "as delayed)",
    "legit.false_delay_rate.30s": "share of legitimate messages with a false delay above 30 s (never accepted "
                                  "counts as delayed)",
    "legit.false_delay.p95": "95th percentile of the false delay of accepted legitimate messages",
    "legit.failed": "legitimate messages never accepted (rejected, deferred past their retries, timed out, "
                    "refused, abandoned, account locked)",
    "smtpd.busy_mean": "mean number of smtpd processes busy over the run",
    "smtpd.refused": "connections refused because every smtpd was busy and the accept queue was full",
    "queue.peak_deferred": "largest number of messages in the deferred mail queue",
    "legit.delivery_latency.p95": "95th percentile of acceptance-to-delivery time of delivered legitimate messages",
    "legit.bounced": "legitimate recipients that bounced (rejected or expired, e.g. while the server was listed)",
    "reputation.listed_h_total": "hours the server spent listed, summed over the reputation lists",
}

#: Two delays a reader confuses: the user's wait at submission and the mail's wait behind the front end.
SUBMISSION_VS_DELIVERY = (
    "Two different delays: the false delay is what the sender feels at submission — the extra seconds until the "
    "server answers 250 because of the policy; the delivery latency is what the mail waits after it was accepted, "
    "until the recipient's provider takes it (queueing, retries, deferrals while the server is on a blocklist). "
    "A policy can add 0 s at submission while the mail waits hours behind the front end.")

#: Headline metrics grouped for tables, by the start of their name.
GROUPS = (("Spam", ("spam.",)), ("Legitimate mail", ("legit.",)),
          ("Server, queue and reputation", ("smtpd.", "queue.", "reputation.", "operator.")))
GROUP_COLUMNS = 5

UNITS = {"share": "share (%)", "count": "count", "seconds": "seconds", "hours": "hours", "number": "number"}


def title(experiment: Experiment) -> str:
    names = ", ".join(v.name for v in experiment.varied)
    if experiment.kind == "compare" or not experiment.varied:
        return f"Policy comparison — {experiment.scenario_name}"
    if experiment.kind == "tune":
        return f"Tuning {names} — {experiment.scenario_name}"
    return f"Parameter sweep of {names} — {experiment.scenario_name}"


def build_document(experiment: Experiment, table: pd.DataFrame, figures: Sequence[Figure],
                   problems: Sequence[str] = ()) -> Document:
    doc = Document(title(experiment))
    doc.add(Heading(1, title(experiment)), Paragraph(_intro(experiment)))
    doc.add(Heading(2, "Findings"), Bullets(findings(experiment)))
    failed = experiment.failed
    if len(failed):
        doc.add(Heading(2, f"Failed runs ({len(failed)})"), Paragraph(
            "These runs raised an error; they are left out of every mean, interval and difference. "
            f"Their rows in {RUNS_CSV} have status \"failed\" and the error."), _failed_table(experiment))
    doc.add(*_what_was_run(experiment))
    doc.add(*_results(experiment, table))
    if experiment.kind == "tune" and experiment.tune is not None:
        doc.add(*_recommendation(experiment, experiment.tune, table))
    doc.add(*_tradeoff(experiment, table, figures))
    rest = [f for f in figures if f.kind != "tradeoff"]
    if rest or problems:
        doc.add(Heading(2, "Charts"))
        for figure in rest:
            doc.add(Image(figure.path, figure.alt, figure.caption))
        for problem in problems:
            doc.add(Paragraph(problem))
    doc.add(*_how_to_read(experiment))
    doc.add(*_files(figures))
    return doc


# --------------------------------------------------------------------------- intro and set-up

def _grid_size(experiment: Experiment) -> int:
    size = 1
    for v in experiment.varied:
        size *= max(len(data.grid_values(experiment, v.name)), 1)
    return size


def _intro(experiment: Experiment) -> str:
    runs = len(experiment.distinct_runs)
    failed = len(experiment.failed)
    grid = (f" × {_grid_size(experiment)} grid points" if experiment.varied else "")
    policies = len(experiment.policies)
    race = _race(experiment)
    upto = "up to " if race else ""
    text = (f"Scenario {experiment.scenario_name}: {policies} {'policy' if policies == 1 else 'policies'}{grid} × "
            f"{upto}{experiment.replications} {'replication' if experiment.replications == 1 else 'replications'}, "
            f"{runs:,} runs" + (f" (racing; the full grid is {race['full_grid_runs']:,})" if race else ""))
    text += f", of which {failed:,} failed." if failed else ", all completed."
    return text + " Findings come first; what was run, the tables and the charts follow."


def _failed_table(experiment: Experiment) -> Table:
    names = data.varied_names(experiment)
    rows = []
    for record in experiment.failed.to_dict("records"):
        error = " ".join(str(record.get("error") or "").split())
        rows.append([str(record.get("policy", "")), *[fmt_param(record.get(n)) for n in names],
                     str(record.get("replication", "")), str(record.get("seed", "")), error])
    return Table(["policy", *names, "replication", "seed", "error"], rows,
                 ["left", *["right"] * len(names), "right", "right", "left"])


def _what_was_run(experiment: Experiment) -> list:
    blocks: list = [Heading(2, "What was run")]
    blocks.append(Paragraph(f"Scenario {experiment.scenario_name}, from {experiment.scenario_label}."
                            + (f" {experiment.scenario_description}" if experiment.scenario_description else "")))
    if experiment.scenario_facts:
        blocks.append(Bullets([f"{key}: {text}" for key, text in experiment.scenario_facts.items()]))
    blocks.append(Heading(3, "Policies"))
    rows = [[p, "baseline" if p == experiment.baseline else "", experiment.policy_descriptions.get(p, "")]
            for p in experiment.policies]
    blocks.append(Table(["policy", "role", "what it does"], rows))
    if experiment.baseline is None:
        blocks.append(Paragraph("There is no baseline policy: spam reduction and paired differences are not "
                                "computed."))
    else:
        blocks.append(Paragraph(f"Spam reduction and differences are measured against the baseline "
                                f"{experiment.baseline}."))
    if experiment.varied:
        blocks.append(Heading(3, "Varied parameters"))
        rows = []
        for v in experiment.varied:
            declared = ", ".join(fmt_param(x) for x in v.values)
            added = [x for x in data.grid_values(experiment, v.name)
                     if not any(data.same(x, d) for d in v.values)]
            rows.append([v.name, declared + (f" (refinement added {', '.join(fmt_param(x) for x in added)})"
                                             if added else "")])
        blocks.append(Table(["parameter", "values"], rows))
        if _race(experiment):
            blocks.append(Paragraph("Every value (every combination, with several parameters) ran its first "
                                    "replications; racing then stopped the points that could not win (see "
                                    "\"Racing\" under the recommendation)."))
        else:
            blocks.append(Paragraph("Every combination of these values was run for every policy (the grid)."
                                    if len(experiment.varied) > 1 else
                                    "Every value was run for every policy."))
    if experiment.params:
        blocks.append(Paragraph("Scenario parameters before varying:"))
        blocks.append(Bullets([f"{k} = {fmt_param(v)}" for k, v in experiment.params.items()]))
    if experiment.overrides:
        blocks.append(Paragraph("Overrides of the scenario file (--set):"))
        blocks.append(Bullets([f"{k} = {fmt_param(v)}" for k, v in experiment.overrides.items()]))
    blocks.append(Heading(3, "Replications and seeds"))
    seeds = [str(s) for s in experiment.seeds]
    shown = ", ".join(seeds[:SEEDS_LISTED]) + (f", … ({len(seeds) - SEEDS_LISTED} more in {RUNS_CSV})"
                                               if len(seeds) > SEEDS_LISTED else "")
    what = "policy and grid point" if experiment.varied else "policy"
    blocks.append(Paragraph(
        f"{experiment.replications} {'replication' if experiment.replications == 1 else 'replications'} from root "
        f"seed {experiment.root_seed}; the seeds of the replications are {shown}. Common random numbers: every "
        + (f"{what} ran on the same seeds, in this order (a point racing dropped on the first ones only)"
           if _race(experiment) else f"{what} ran on the same {len(seeds)} {'seed' if len(seeds) == 1 else 'seeds'}")
        + ", so the users, their messages and the bots are the same in every run and differences are paired, "
        "seed by seed."))
    runs = experiment.runs
    cached = int(runs["cached"].astype(bool).sum()) if "cached" in runs.columns and len(runs) else 0
    blocks.append(Bullets([
        f"simsub version: {experiment.version}",
        f"executor: {experiment.executor}",
        f"wall time of this invocation: {fmt_duration(experiment.wall_s)}",
        f"compute time of the runs (summed over runs, where they ran): {fmt_duration(experiment.compute_s)}"
        + (f", of which {fmt_duration(experiment.cached_compute_s)} by earlier invocations whose runs were read "
           "from the cache" if cached else ""),
        f"runs: {len(runs):,}" + (f" ({cached:,} read from an earlier invocation)" if cached else ""),
        f"confidence level of intervals: {experiment.confidence:.0%}",
    ]))
    blocks.append(Paragraph("To reproduce this experiment:"))
    blocks.append(Code(experiment.command))
    return blocks


# --------------------------------------------------------------------------- tables

def _groups(metrics: Sequence[Metric]) -> list[tuple[str, list[Metric]]]:
    """Metrics in the named groups, at most GROUP_COLUMNS per table."""
    out: list[tuple[str, list[Metric]]] = []
    left = list(metrics)
    for name, prefixes in GROUPS:
        members = [m for m in left if m.name.startswith(prefixes)]
        left = [m for m in left if m not in members]
        out += _chunks(name, members)
    out += _chunks("Other", left)
    return out


def _chunks(name: str, members: list[Metric]) -> list[tuple[str, list[Metric]]]:
    chunks = [members[i:i + GROUP_COLUMNS] for i in range(0, len(members), GROUP_COLUMNS)]
    return [(name if len(chunks) == 1 else f"{name}, table {k + 1} of {len(chunks)}", c)
            for k, c in enumerate(chunks)]


def _cell(row: Any, metric: Metric) -> str:
    return interval_cell(row, metric.name, metric.unit)


def _diff_cell(row: Any, metric: Metric) -> str:
    return fmt_diff(value(row, metric.name + ":diff"), value(row, metric.name + ":diff_low"),
                    value(row, metric.name + ":diff_high"), metric.unit)


def _interval_note(experiment: Experiment) -> str:
    if experiment.replications < 2:
        return ("Each cell is the value of the single run: intervals need at least 2 replications, so none is "
                "shown.")
    return (f"Each cell is the mean over {experiment.replications} replications and its "
            f"{experiment.confidence:.0%} interval [low, high]; n/a means the metric does not apply or every run "
            "failed. A cell without an interval had fewer than 2 successful runs; ∞ means the runs were all "
            "the same and nothing bounds the metric (see How to read this). A group of more than "
            f"{GROUP_COLUMNS} metrics is split over tables headed \"table 1 of 2\", \"table 2 of 2\".")


def _results(experiment: Experiment, table: pd.DataFrame) -> list:
    metrics = data.reported_metrics(experiment)
    blocks: list = [Heading(2, "Results")]
    if table.empty or not metrics:
        blocks.append(Paragraph("No statistics: no run succeeded, or the summary has none of the headline "
                                "metrics."))
        return blocks
    missing = [m.label for m in experiment.metrics if m not in metrics]
    blocks.append(Paragraph(_interval_note(experiment)))
    names = {m.name for m in metrics}
    if "legit.false_delay.p95" in names and "legit.delivery_latency.p95" in names:
        blocks.append(Paragraph(SUBMISSION_VS_DELIVERY))
    if missing:
        blocks.append(Paragraph(f"Not available in this experiment: {', '.join(missing)}."))
    if experiment.kind == "compare" or not experiment.varied:
        for group, members in _groups(metrics):
            blocks.append(Table(["policy", *[m.label for m in members]],
                                [[row["policy"], *[_cell(row, m) for m in members]] for _, row in table.iterrows()],
                                ["left", *["right"] * len(members)], caption=group))
        blocks += _difference_tables(experiment, table, metrics)
    else:
        names = data.varied_names(experiment)
        for policy in experiment.policies:
            rows = table[table["policy"] == policy]
            if rows.empty:
                continue
            role = " (baseline)" if policy == experiment.baseline else ""
            blocks.append(Heading(3, f"{policy}{role}"))
            for group, members in _groups(metrics):
                blocks.append(Table([*names, *[m.label for m in members]],
                                    [[*[fmt_param(row[n]) for n in names], *[_cell(row, m) for m in members]]
                                     for _, row in rows.iterrows()],
                                    ["right"] * (len(names) + len(members)), caption=group))
    return blocks


def _difference_tables(experiment: Experiment, table: pd.DataFrame, metrics: Sequence[Metric]) -> list:
    baseline = experiment.baseline
    if baseline is None:
        return [Paragraph("No baseline: no paired differences.")]
    diffs = [m for m in metrics if m.name != SPAM_REDUCTION and (m.name + ":diff") in table.columns]
    others = table[table["policy"] != baseline]
    if not diffs or others.empty:
        return []
    blocks: list = [Heading(3, f"Difference from the baseline {baseline}"), Paragraph(
        f"Policy minus {baseline}, run against run on the same seed, with the {experiment.confidence:.0%} interval "
        "of the paired difference; shares are in percentage points (pp). An interval that does not contain 0 is a "
        "difference these replications can tell apart from chance.")]
    for group, members in _groups(diffs):
        blocks.append(Table(["policy", *[m.label for m in members]],
                            [[row["policy"], *[_diff_cell(row, m) for m in members]] for _, row in others.iterrows()],
                            ["left", *["right"] * len(members)], caption=group))
    return blocks


# --------------------------------------------------------------------------- tune

def _recommendation(experiment: Experiment, tune: TuneOutcome, table: pd.DataFrame) -> list:
    blocks: list = [Heading(2, "Recommendation")]
    objective = data.metric_info(experiment, tune.objective)
    items = []
    for text in tune.require:
        parsed = data.parse_requirement(text)
        if parsed:
            metric = data.metric_info(experiment, parsed[0])
            items.append(f"requirement: {metric.label} {parsed[1]} {fmt_threshold(parsed[2], metric.unit)} "
                         f"({text}), on the mean over replications")
        else:
            items.append(f"requirement: {text}")
    items.append(f"objective: {tune.direction} {objective.label} ({tune.objective}) among the points meeting "
                 "every requirement")
    items.append("recommended: " + (f"{data.point_label(data.grid_point(tune.best))} for "
                                    f"{data.tuned_policy(experiment)}" if tune.best
                                    else "none (no grid point met every requirement)"))
    if tune.runner_up:
        items.append(f"runner-up: {data.point_label(data.grid_point(tune.runner_up))}")
        diff = tune.runner_up_difference or {}
        items.append(f"runner-up minus recommended, {objective.label} (paired, same seeds): "
                     + fmt_diff(diff.get("mean", math.nan), diff.get("ci_low", math.nan),
                                diff.get("ci_high", math.nan), objective.unit))
    if tune.refinements:
        items.append(f"refinement rounds: {tune.refinements} (points added around the best)")
    blocks.append(Bullets(items))
    blocks += _racing(experiment, tune)
    points = tune.points
    if points is None or points.empty:
        return blocks
    names = [n for n in ["policy", *data.varied_names(experiment)] if n in points.columns]
    req_metrics = [data.parse_requirement(t) for t in tune.require]
    raced = tune.race is not None and "n" in points.columns
    columns = [*names, "meets all", *(["replications"] if raced else []), f"{objective.label} (mean)"]
    for i, text in enumerate(tune.require):
        columns.append(f"{text} (mean, met)")
    rows = []
    for _, row in points.head(TUNE_POINTS_LISTED).iterrows():
        cells = [fmt_param(row[n]) for n in names]
        cells.append("yes" if bool(row.get("feasible", False)) else "no")
        if raced:
            cells.append(f"{int(row['n'])}" + (" (dropped)" if row.get("dropped") else ""))
        cells.append(fmt_value(value(row, "objective_mean"), objective.unit))
        for i, parsed in enumerate(req_metrics):
            unit = data.metric_info(experiment, parsed[0]).unit if parsed else "number"
            met = "met" if bool(row.get(f"req_{i}_met", False)) else "not met"
            cells.append(f"{fmt_value(value(row, f'req_{i}_mean'), unit)}, {met}")
        rows.append(cells)
    more = len(points) - TUNE_POINTS_LISTED
    blocks.append(Table(columns, rows, [*["right"] * len(names), "left", *(["right"] if raced else []), "right",
                                        *["right"] * len(tune.require)],
                        caption="Grid points, best first" + (f" (the first {TUNE_POINTS_LISTED} of {len(points)})"
                                                             if more > 0 else "")))
    return blocks


def _race(experiment: Experiment) -> dict | None:
    return experiment.tune.race if experiment.kind == "tune" and experiment.tune is not None else None


def _racing(experiment: Experiment, tune: TuneOutcome) -> list:
    """How many runs racing made against the full grid, and which points it dropped, when and why."""
    race = tune.race
    if not race:
        return []
    alpha = race["alpha"]
    tests = ", ".join(f"{m:,}" for m in race["tests"])
    blocks: list = [Heading(3, "Racing"), Paragraph(
        f"Every point ran the first {race['first_replications']} replications; after each further replication only "
        f"the points still in contention ran the next. A point was dropped once a one-sided bound showed that it "
        f"fails a requirement, or that it is worse on the objective than a point shown to meet every requirement "
        f"(paired, same seeds). Each such statement errs with probability at most α/M, with α = {alpha:.3g} "
        f"(1 − confidence) and M = {tests} (the statements that could drop the best point: looks × (requirements × "
        f"points + points − 1){', per race' if len(race['tests']) > 1 else ''}), so the point with the best "
        f"expected objective among those meeting the requirements is dropped with probability at most {alpha:.3g} "
        "(Bonferroni). Points that were not dropped ran every replication: their numbers are the full grid's.")]
    saved = race["saved"]
    share = saved / race["full_grid_runs"] if race["full_grid_runs"] else 0.0
    blocks.append(Bullets([
        f"runs made: {race['runs']:,} of the full grid's {race['full_grid_runs']:,} ({saved:,} saved, {share:.0%}); "
        f"of the tuned policy: {race['policy_runs']:,} of {race['policy_runs_full_grid']:,}",
        f"points dropped: {len(race['dropped'])}"]))
    if race["dropped"]:
        names = data.varied_names(experiment)
        rounds = len(race["tests"]) > 1
        rows = []
        for d in race["dropped"]:
            point = ", ".join(f"{n}={fmt_param(d['point'].get(n))}" for n in names)
            rows.append([point, *([str(d["race"]) if d["race"] else "grid"] if rounds else []),
                         str(d["replications"]), d["reason"], d["why"]])
        blocks.append(Table(["point", *(["race"] if rounds else []), "after replications", "because", "evidence"],
                            rows, ["left", *(["left"] if rounds else []), "right", "left", "left"],
                            caption="Points racing dropped, in the order it dropped them"))
    return blocks


# --------------------------------------------------------------------------- trade-off

def _tradeoff(experiment: Experiment, table: pd.DataFrame, figures: Sequence[Figure]) -> list:
    figure = next((f for f in figures if f.kind == "tradeoff"), None)
    spam = data.spam_axis(experiment)
    if figure is None or spam is None:
        return []
    x_metric = data.metric_info(experiment, FALSE_DELAY_5S)
    y_metric = data.metric_info(experiment, spam)
    left_out = data.off_front(experiment)
    candidates = table[~table["policy"].isin(left_out)]
    front = pareto_front(candidates, FALSE_DELAY_5S, spam, maximize_y=y_metric.better == "higher")
    names = data.varied_names(experiment)
    blocks: list = [Heading(2, "Trade-off: spam against legitimate mail delayed"),
                    Image(figure.path, figure.alt, figure.caption)]
    what = "policies and grid points" if names else "policies"
    without = f" other than the baseline {left_out[0]}" if left_out else ""
    ranking = rank(experiment) if not names and len(experiment.runs) else None
    blocks.append(Paragraph(
        f"The Pareto front: the {len(front)} of {len(candidates)} {what}{without} that no other beats on both "
        f"{y_metric.label} and {x_metric.label} (judged on the means). Every other point is worse on one axis and "
        "no better on the other than some point of the front. The front looks at these two metrics only"
        + (": a policy on it can still be dominated on all the headline metrics together (legitimate mail "
           "bounced, hours listed, ...) or miss what was asked (see the recommendation in Findings); the last "
           "column says so. Choose among the points of the front that are neither." if not names else
           "; the tables above show what each point costs on the other metrics.")))
    rows = [[row["policy"], *[fmt_param(row[n]) for n in names], _cell(row, y_metric), _cell(row, x_metric)]
            + ([_standing(row["policy"], ranking)] if ranking else [])
            for _, row in front.iterrows()]
    extra = ["on all headline metrics and what was asked"] if ranking else []
    blocks.append(Table(["policy", *names, y_metric.label, x_metric.label, *extra], rows,
                        ["left", *["right"] * (len(names) + 2), *["left"] * len(extra)],
                        caption="Pareto front, least legitimate delay first"))
    return blocks


def _standing(policy: str, ranking) -> str:
    """"recommended", "dominated by X", "misses the requirements" or "a candidate"."""
    if policy == ranking.recommended:
        return "recommended"
    if policy in ranking.dominated:
        return f"dominated by {ranking.dominated[policy][0]}"
    if policy not in ranking.feasible:
        return "misses the requirements"
    return "runner-up" if policy == ranking.runner_up else "a candidate"


# --------------------------------------------------------------------------- reading help and files

def _how_to_read(experiment: Experiment) -> list:
    blocks: list = [Heading(2, "How to read this")]
    blocks.append(Bullets([
        "False delay of a legitimate message: the extra seconds it waited because of the policy — time from the "
        "user's first attempt to the server's final 250 for that message, minus the time the same dialogue takes "
        "with no policy delay and a free server (an smtpd available at once). It includes sleeps, waiting for a "
        "free smtpd, and retries after deferrals or timeouts.",
        "False-delay rate at x: the share of all legitimate messages whose false delay is more than x (1 s, 5 s, "
        "30 s); a message that was never accepted counts as delayed beyond every x.",
        "Spam recipients accepted: recipients of bot messages the server accepted for delivery — the harm it will "
        "send out.",
        "Spam reduction (spam recipients cut): 1 − spam recipients accepted under the policy ÷ those accepted under "
        "the baseline policy on the same seed (and grid point); 100% means no spam got through, 0% no change, "
        "negative more spam than the baseline.",
        f"{experiment.confidence:.0%} intervals: where the runs differ, Student t intervals over the replications "
        "(mean ± t × standard deviation ÷ √n), cut at what is possible (0% to 100% for shares, 0 for counts and "
        "durations). Where every run gave the same value, a t interval would have width 0 and claim too much: "
        "a share of messages then gets the exact binomial bound over all the runs' messages (0 of N delayed: at "
        "most about 3/N, the rule of three), and any other metric the rule of three over runs (at most about 3/n "
        "of runs could give another value; the bound reaches as far as the metric can go, ∞ if nothing bounds "
        "it). Such a cell says so in words: in \"0 (same in all 5 runs; rule of three: ≤ B)\" every run gave 0, "
        "and B is what so few identical runs cannot rule out for the mean, not a value any run reached. "
        "Differences from the baseline are paired — computed seed by seed, policy minus baseline, and the "
        "interval is taken over those differences — so they are narrower than two separate intervals suggest. "
        "With a single replication there are no intervals.",
        SUBMISSION_VS_DELIVERY,
        "Every number is a mean over runs of the same scenario with different seeds; it is not a forecast for a "
        "real server beyond what the scenario describes.",
    ]))
    rows = [[m.label, m.name, UNITS.get(m.unit, m.unit), m.better, MEANINGS.get(m.name, "")]
            for m in experiment.metrics]
    blocks.append(Table(["metric", "name in summary.csv", "unit", "better", "meaning"], rows,
                        caption="Headline metrics"))
    return blocks


def _files(figures: Sequence[Figure]) -> list:
    items: list = [
        Link(RUNS_CSV, f"{RUNS_CSV} — one row per run: policy, varied values, replication, seed, status, error, "
                       "and every metric"),
        Link(SUMMARY_CSV, f"{SUMMARY_CSV} — one row per policy, grid point and metric: n, mean, 95% interval, and "
                          "the paired difference from the baseline"),
        Link("report.md", "report.md — this report as Markdown (charts as separate files)"),
        Link("report.html", "report.html — this report as one self-contained page"),
    ]
    items += [Link(f.path.name, f"{f.path.name} — {f.alt}") for f in figures]
    return [Heading(2, "Files"), Bullets(items)]
