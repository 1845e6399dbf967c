"""What an experiment found, in plain sentences with numbers and 95 % intervals."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ..experiments.metrics import FALSE_DELAY_5S, SPAM_ACCEPTED, SPAM_REDUCTION
from ..experiments.types import Experiment, TuneOutcome
from . import data
from .advice import advice, interval_text, verdict
from .data import value
from .format import fmt_diff, fmt_interval, fmt_magnitude, fmt_param, fmt_threshold, fmt_value

#: The spam reduction a sweep looks for ("the smallest value reaching ..."); MODEL.md's "stops almost all of it".
SWEEP_TARGET = 0.95
#: How many failed runs a finding names before pointing to runs.csv.
FAILED_LISTED = 5


def findings(experiment: Experiment) -> list[str]:
    """Plain-language findings, one sentence each; failed runs first."""
    out = failed_findings(experiment)
    if experiment.kind == "compare" or not experiment.varied:
        out += compare_findings(experiment)
    elif experiment.kind == "tune" and experiment.tune is not None:
        out += tune_findings(experiment, experiment.tune)
    else:
        out += sweep_findings(experiment)
    if experiment.replications < 2:
        out.append(f"With {experiment.replications} replication there are no confidence intervals: "
                   "they need at least 2 replications, so every number is a single run's.")
    return out


# --------------------------------------------------------------------------- helpers

def _interval(row: Any, name: str, experiment: Experiment) -> str:
    return interval_text(experiment, row, name)


def _has(row: Any, name: str) -> bool:
    return math.isfinite(value(row, name))


def _describe(row: Any, names: list[str], experiment: Experiment) -> str:
    """"spam recipients cut 97.1% [96.0, 98.2], legit mail delayed > 5 s 0.3% [0.2, 0.4]"."""
    parts = [f"{data.short_label(data.metric_info(experiment, n))} {_interval(row, n, experiment)}"
             for n in names if _has(row, n)]
    return ", ".join(parts)


def _point_text(point: dict[str, Any]) -> str:
    return data.point_label(point) if point else "the scenario's values"


# --------------------------------------------------------------------------- failed runs

def failed_findings(experiment: Experiment) -> list[str]:
    failed = experiment.failed
    if failed is None or len(failed) == 0:
        return []
    names = data.varied_names(experiment)
    listed = []
    for record in failed.head(FAILED_LISTED).to_dict("records"):
        where = ", ".join([str(record.get("policy", "?"))]
                          + [f"{n} = {fmt_param(record.get(n))}" for n in names if n in record])
        error = str(record.get("error") or "no message").strip().splitlines()
        listed.append(f"{where}, replication {record.get('replication', '?')} (seed {record.get('seed', '?')}): "
                      f"{error[-1] if error else 'no message'}")
    more = len(failed) - len(listed)
    tail = f"; and {more} more" if more > 0 else ""
    return [f"FAILED: {len(failed)} of {len(experiment.distinct_runs)} runs failed and are left out of every number "
            f"below — {'; '.join(listed)}{tail} (details in runs.csv)."]


# --------------------------------------------------------------------------- compare

def compare_findings(experiment: Experiment) -> list[str]:
    table = data.wide(experiment)
    if table.empty:
        return ["The experiment produced no statistics (no run succeeded)."]
    baseline = experiment.baseline
    out: list[str] = []
    has_reduction = SPAM_REDUCTION in data.summary_metrics(experiment)
    if baseline is not None:
        base_rows = table[table["policy"] == baseline]
        if len(base_rows):
            row = base_rows.iloc[0]
            parts = []
            if _has(row, SPAM_ACCEPTED):
                parts.append(f"accepted {_interval(row, SPAM_ACCEPTED, experiment)} spam recipients per run")
            if _has(row, FALSE_DELAY_5S):
                parts.append(f"delayed {_interval(row, FALSE_DELAY_5S, experiment)} of legitimate mail "
                             "by more than 5 s")
            if parts:
                out.append(f"The baseline {baseline} {' and '.join(parts)}.")
    others = table[table["policy"] != baseline] if baseline is not None else table
    out += advice(experiment, table)
    if baseline is None:
        out.append("There is no baseline policy, so spam reduction and paired differences are not computed.")
    elif not has_reduction:
        base_rows = table[table["policy"] == baseline]
        none_accepted = len(base_rows) and value(base_rows.iloc[0], SPAM_ACCEPTED) == 0
        out.append(f"Spam reduction is not available: the baseline {baseline} accepted no spam recipients, so "
                   "there is nothing to reduce." if none_accepted else
                   "Spam reduction is not available in this experiment.")
    if has_reduction and baseline is not None:
        order = others.assign(_k=others[SPAM_REDUCTION].astype(float).fillna(-math.inf)).sort_values(
            "_k", ascending=False, kind="stable")
        for _, row in order.iterrows():
            out.append(_reduction_sentence(experiment, row))
    else:
        key = SPAM_ACCEPTED if SPAM_ACCEPTED in table.columns else None
        order = others.assign(_k=others[key].astype(float).fillna(math.inf)).sort_values(
            "_k", kind="stable") if key else others
        for _, row in order.iterrows():
            names = [n for n in (SPAM_ACCEPTED, FALSE_DELAY_5S) if _has(row, n)]
            if not names:
                names = [m.name for m in data.reported_metrics(experiment)[:2]]
            out.append(f"{row['policy']}: {_describe(row, names, experiment)}.")
    return out


def _reduction_sentence(experiment: Experiment, row: pd.Series) -> str:
    policy = row["policy"]
    mean, low, high = (value(row, SPAM_REDUCTION + s) for s in ("", ":low", ":high"))
    if not math.isfinite(mean):
        text = f"{policy}: spam reduction is not available"
    elif mean >= 0:
        text = f"{policy} cut spam recipients by {fmt_interval(mean, low, high, 'share')}"
    else:
        text = (f"{policy} let through {fmt_interval(-mean, -high, -low, 'share')} more spam recipients "
                f"than {experiment.baseline}")
    if _has(row, FALSE_DELAY_5S):
        text += f" at a 5 s false-delay rate of {_interval(row, FALSE_DELAY_5S, experiment)}"
    failed_low = value(row, "legit.failed:diff_low")
    if math.isfinite(failed_low) and failed_low > 0:
        more = fmt_magnitude(value(row, "legit.failed:diff"), failed_low, value(row, "legit.failed:diff_high"), "count")
        text += f", and {more} more legitimate messages were never accepted than under {experiment.baseline}"
    plainly = verdict(experiment, row)
    return text + (f": {plainly}." if plainly else ".")


# --------------------------------------------------------------------------- sweep

def sweep_findings(experiment: Experiment) -> list[str]:
    table = data.wide(experiment)
    if table.empty:
        return ["The experiment produced no statistics (no run succeeded)."]
    first = experiment.varied[0].name
    values = data.grid_values(experiment, first)
    numeric = all(data.is_number(v) for v in values)
    span = (f"from {fmt_param(values[0])} to {fmt_param(values[-1])}" if numeric and len(values) > 1
            else ", ".join(fmt_param(v) for v in values))
    others = [v.name for v in experiment.varied[1:]]
    together = "".join(f", together with {n} ({len(data.grid_values(experiment, n))} values)" for n in others)
    out = [f"{first} was varied over {len(values)} values ({span}){together}, for "
           f"{len(experiment.policies)} {'policy' if len(experiment.policies) == 1 else 'policies'}"
           f" on {experiment.replications} seeds each."]
    spam = data.spam_axis(experiment)
    policies = [p for p in experiment.policies if p != experiment.baseline] or list(experiment.policies)
    for policy, series in _series(experiment, table, policies, others):
        prefix = policy + "".join(f" at {n} = {fmt_param(series.iloc[0][n])}" for n in others)
        for name in (spam, FALSE_DELAY_5S):
            if name and name in series.columns:
                sentence = _change_sentence(experiment, series, first, name, prefix)
                if sentence:
                    out.append(sentence)
        if spam == SPAM_REDUCTION:
            out.append(_target_sentence(experiment, series, first, prefix, numeric))
    return out


def _series(experiment: Experiment, table: pd.DataFrame, policies: list[str], others: list[str]):
    """(policy, rows along the first varied parameter) for every policy and value of the other parameters."""
    for policy in policies:
        rows = table[table["policy"] == policy]
        if rows.empty:
            continue
        if not others:
            yield policy, rows.reset_index(drop=True)
            continue
        keys = rows[others].map(fmt_param).astype(str).agg("\x1f".join, axis=1)
        for key in dict.fromkeys(keys):
            yield policy, rows[(keys == key).to_numpy()].reset_index(drop=True)


def _change_sentence(experiment: Experiment, series: pd.DataFrame, x: str, name: str, prefix: str) -> str | None:
    metric = data.metric_info(experiment, name)
    rows = series[series[name].astype(float).notna()].reset_index(drop=True)
    if rows.empty:
        return None
    means = rows[name].astype(float).to_numpy()
    label = data.short_label(metric)
    if len(rows) == 1 or float(means.max() - means.min()) == 0.0:
        return f"{prefix}: {label} is {fmt_value(means[0], metric.unit)} at every {x}."
    steps = means[1:] - means[:-1]
    k = int(abs(steps).argmax())
    return (f"{prefix}: {label} goes from {fmt_value(means[0], metric.unit)} at {x} = {fmt_param(rows[x].iloc[0])} "
            f"to {fmt_value(means[-1], metric.unit)} at {x} = {fmt_param(rows[x].iloc[-1])}, changing most between "
            f"{fmt_param(rows[x].iloc[k])} and {fmt_param(rows[x].iloc[k + 1])} "
            f"({fmt_diff(steps[k], math.nan, math.nan, metric.unit)}).")


def _target_sentence(experiment: Experiment, series: pd.DataFrame, x: str, prefix: str, numeric: bool) -> str:
    target = fmt_threshold(SWEEP_TARGET, "share")
    reached = series[series[SPAM_REDUCTION].astype(float) >= SWEEP_TARGET]
    if len(reached):
        row = reached.iloc[0]
        which = "smallest" if numeric else "first"
        delay = (f", with {_interval(row, FALSE_DELAY_5S, experiment)} of legitimate mail delayed > 5 s"
                 if _has(row, FALSE_DELAY_5S) else "")
        return (f"{prefix}: the {which} {x} that cuts spam recipients by at least {target} is "
                f"{fmt_param(row[x])} ({_interval(row, SPAM_REDUCTION, experiment)}{delay}).")
    reductions = series[SPAM_REDUCTION].astype(float)
    if reductions.notna().any():
        row = series.loc[reductions.idxmax()]
        return (f"{prefix}: no {x} cut spam recipients by {target} or more; the most was "
                f"{_interval(row, SPAM_REDUCTION, experiment)} at {x} = {fmt_param(row[x])}.")
    return f"{prefix}: spam reduction is not available."


# --------------------------------------------------------------------------- tune

def tune_findings(experiment: Experiment, tune: TuneOutcome) -> list[str]:
    table = data.wide(experiment)
    shown = _tune_metrics(tune)
    requirement = " and ".join(tune.require) if tune.require else "no requirement"
    out: list[str] = []
    if tune.best:
        row = _row_at(experiment, table, tune.best)
        policy = data.tuned_policy(experiment)
        text = f"Recommended: {_point_text(data.grid_point(tune.best))} for {policy}"
        described = _describe(row, shown, experiment) if row is not None else ""
        if described:
            text += f" ({described})"
        if tune.runner_up:
            text += f"; runner-up {_point_text(data.grid_point(tune.runner_up))}"
            diff = tune.runner_up_difference or {}
            worse = _worse(experiment, tune, diff)
            if worse:
                text += f" is {worse}"
        else:
            text += "; no other grid point met the requirements, so there is no runner-up"
        out.append(text + ".")
        diff = tune.runner_up_difference or {}
        low, high = float(diff.get("ci_low", math.nan)), float(diff.get("ci_high", math.nan))
        if tune.runner_up and math.isfinite(low) and math.isfinite(high) and low <= 0 <= high and low < high:
            out.append(f"The {experiment.confidence:.0%} interval of that difference includes 0: with "
                       f"{experiment.replications} "
                       "replications the runner-up cannot be told apart from the recommendation, so either will do "
                       "(more replications would separate them).")
    else:
        closest = _closest(tune, ["policy", *data.varied_names(experiment)])
        if closest is None:
            out.append(f"No grid point met {requirement}.")
        else:
            row = _row_at(experiment, table, closest)
            described = _describe(row, shown, experiment) if row is not None else ""
            out.append(f"No grid point met {requirement}; the closest was {_point_text(data.grid_point(closest))}"
                       + (f" for {data.tuned_policy(experiment)}" if closest else "")
                       + (f" ({described})" if described else "") + ".")
    points = tune.points
    if points is not None and len(points) and "feasible" in points.columns:
        feasible = int(points["feasible"].astype(bool).sum())
        rounds = (f" after {tune.refinements} refinement round{'s' if tune.refinements != 1 else ''}"
                  if tune.refinements else "")
        goal = f"{'lowest' if tune.direction == 'minimize' else 'highest'} " \
               f"{data.short_label(data.metric_info(experiment, tune.objective))}"
        among = f"; among them the recommendation has the {goal}" if feasible and tune.best else ""
        out.append(f"{feasible} of {len(points)} grid points met {requirement}{rounds}{among}.")
    race = tune.race
    if race:
        dropped = race["dropped"]
        by_requirement = sum(1 for d in dropped if d["reason"] == "requirement")
        out.append(f"Racing made {race['runs']:,} of the full grid's {race['full_grid_runs']:,} runs "
                   f"({race['saved']:,} saved): it dropped {len(dropped)} "
                   f"point{'s' if len(dropped) != 1 else ''} early ({by_requirement} failing a requirement, "
                   f"{len(dropped) - by_requirement} losing on the objective); the best point is dropped with "
                   f"probability at most {race['alpha']:.0%}.")
    return out


def _tune_metrics(tune: TuneOutcome) -> list[str]:
    names: list[str] = []
    for text in tune.require:
        parsed = data.parse_requirement(text)
        if parsed and parsed[0] not in names:
            names.append(parsed[0])
    if tune.objective not in names:
        names.append(tune.objective)
    return names


def _row_at(experiment: Experiment, table: pd.DataFrame, point: dict[str, Any]) -> pd.Series | None:
    if table.empty:
        return None
    where = {"policy": data.tuned_policy(experiment), **data.grid_point(point)}
    rows = table[data.match(table, where).to_numpy()]
    return rows.iloc[0] if len(rows) else None


def _worse(experiment: Experiment, tune: TuneOutcome, diff: dict[str, float]) -> str:
    """"0.3 percentage points worse on legit mail delayed > 5 s [0.1, 0.5]" from runner-up minus best."""
    mean = float(diff.get("mean", math.nan))
    if not math.isfinite(mean):
        return ""
    low, high = float(diff.get("ci_low", math.nan)), float(diff.get("ci_high", math.nan))
    metric = data.metric_info(experiment, tune.objective)
    if mean == 0 and (not math.isfinite(low) or low == high == 0):
        return f"exactly as good on {data.short_label(metric)} on every seed"
    if tune.direction == "maximize":  # lower is worse: turn runner-up - best into "how much worse"
        mean, low, high = -mean, -high, -low
    word = "worse"
    if mean < 0:
        mean, low, high, word = -mean, -high, -low, "better"
    amount = fmt_magnitude(mean, low, high, metric.unit)
    number, _, bounds = amount.partition(" [")
    bounds = f" [{bounds}" if bounds else ""
    return f"{number} {word} on {data.short_label(metric)}{bounds}"


def _closest(tune: TuneOutcome, names: list[str]) -> dict[str, Any] | None:
    """The point meeting the most requirements, then missing the others by the least (relative to the threshold)."""
    points = tune.points
    if points is None or points.empty:
        return None
    point_cols = [c for c in names if c in points.columns]
    best_key, best_index = None, None
    for position, (index, row) in enumerate(points.iterrows()):
        met, shortfall = 0, 0.0
        for i, text in enumerate(tune.require):
            ok = bool(row.get(f"req_{i}_met", False))
            met += ok
            parsed = data.parse_requirement(text)
            got = value(row, f"req_{i}_mean")
            if not ok and parsed and math.isfinite(got):
                shortfall += abs(got - parsed[2]) / max(abs(parsed[2]), 1e-9)
            elif not ok:
                shortfall += math.inf
        key = (-met, shortfall, position)
        if best_key is None or key < best_key:
            best_key, best_index = key, index
    row = points.loc[best_index]
    return {c: row[c] for c in point_cols}
