"""Reading an ``Experiment``: metrics by name, grid points, and a wide table of its summary.

The summary is long (one row per policy, varied values and ``metric``); the
report and the charts want one row per policy and grid point with, for each
metric ``M``, the columns ``M`` (mean), ``M:low``, ``M:high`` (cut to the
metric's possible range), ``M:n``, ``M:rule`` (how the interval was made) and, with a baseline, ``M:diff``,
``M:diff_low``, ``M:diff_high``.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Any, Iterable

import pandas as pd

from ..experiments.metrics import SPAM_ACCEPTED, SPAM_REDUCTION, guess_unit, metric_named
from ..experiments.types import Experiment, Metric
from .format import fmt_param

#: The column of ``Experiment.summary`` that names the metric of a row.
METRIC_COLUMN = "metric"

_SUMMARY_FIELDS = {"mean": "", "ci_low": ":low", "ci_high": ":high", "n": ":n",
                   "diff_mean": ":diff", "diff_low": ":diff_low", "diff_high": ":diff_high", "ci_rule": ":rule"}


def metric_info(experiment: Experiment, name: str) -> Metric:
    """The experiment's own description of ``name``, else the project's, else a guess from the name."""
    for metric in experiment.metrics:
        if metric.name == name:
            return metric
    known = metric_named(name)
    if known:
        return known
    return Metric(name, name, guess_unit(name), "lower")


def short_label(metric: Metric) -> str:
    """The label without its parenthesis, for sentences: "spam recipients cut"."""
    return re.sub(r"\s*\([^)]*\)", "", metric.label).strip() or metric.name


def varied_names(experiment: Experiment) -> list[str]:
    return [v.name for v in experiment.varied]


def summary_metrics(experiment: Experiment) -> set[str]:
    """Metrics with at least one mean in the summary."""
    summary = experiment.summary
    if summary is None or METRIC_COLUMN not in summary.columns or "mean" not in summary.columns:
        return set()
    return set(summary.loc[summary["mean"].notna(), METRIC_COLUMN].astype(str))


def reported_metrics(experiment: Experiment) -> list[Metric]:
    """The headline metrics that have at least one value in the summary, in report order."""
    present = summary_metrics(experiment)
    return [m for m in experiment.metrics if m.name in present]


def is_number(value: Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def same(a: Any, b: Any) -> bool:
    """Whether two parameter values are the same grid value (4 == 4.0, "5s" == "5s")."""
    if is_number(a) and is_number(b):
        fa, fb = float(a), float(b)
        if math.isnan(fa) or math.isnan(fb):
            return math.isnan(fa) and math.isnan(fb)
        return math.isclose(fa, fb, rel_tol=1e-12, abs_tol=1e-12)
    return fmt_param(a) == fmt_param(b)


def grid_values(experiment: Experiment, name: str) -> list[Any]:
    """The values ``name`` took in the summary (refinements included): numeric ascending, else as declared."""
    seen: list[Any] = []
    sources: list[Iterable[Any]] = []
    declared = next((v.values for v in experiment.varied if v.name == name), ())
    sources.append(declared)
    for frame in (experiment.summary, experiment.runs):
        if frame is not None and name in frame.columns:
            sources.append(frame[name].tolist())
    for source in sources:
        for value in source:
            if not any(same(value, s) for s in seen):
                seen.append(value)
    if seen and all(is_number(v) for v in seen):
        return sorted(seen, key=float)
    return seen


def point_label(point: dict[str, Any]) -> str:
    """"foreign_sleep = 4, jp_sleep = 1"."""
    return ", ".join(f"{name} = {fmt_param(value)}" for name, value in point.items())


def match(frame: pd.DataFrame, point: dict[str, Any]) -> pd.Series:
    """Rows of ``frame`` at ``point`` (varied name -> value; ``policy`` allowed)."""
    mask = pd.Series(True, index=frame.index)
    for name, value in point.items():
        if name in frame.columns:
            mask &= frame[name].map(lambda v, value=value: same(v, value)).astype(bool)
    return mask


def wide(experiment: Experiment) -> pd.DataFrame:
    """One row per policy and grid point, columns as described in the module docstring."""
    keys = ["policy", *varied_names(experiment)]
    summary = experiment.summary
    if summary is None or summary.empty or METRIC_COLUMN not in summary.columns:
        return pd.DataFrame(columns=keys)
    rows: dict[tuple, dict[str, Any]] = {}
    ranges: dict[str, tuple[float | None, float | None]] = {}
    for record in summary.to_dict("records"):
        key = tuple(fmt_param(record.get(k)) for k in keys)
        row = rows.setdefault(key, {k: record.get(k) for k in keys})
        name = str(record[METRIC_COLUMN])
        if name not in ranges:
            ranges[name] = possible_range(name, metric_info(experiment, name).unit)
        for field, suffix in _SUMMARY_FIELDS.items():
            if field in record:
                row[name + suffix] = record[field]
        for suffix in (":low", ":high"):
            row[name + suffix] = _clip(row.get(name + suffix), *ranges[name])
    frame = pd.DataFrame(list(rows.values()))
    order = {p: i for i, p in enumerate(experiment.policies)}
    sort_cols = ["_policy_order"]
    order_cols = {"_policy_order": frame["policy"].map(lambda p: order.get(p, len(order)))}
    for name in keys[1:]:
        values = grid_values(experiment, name)
        order_cols[f"_order_{name}"] = frame[name].map(
            lambda v, values=values: next((i for i, s in enumerate(values) if same(v, s)), len(values)))
        sort_cols.append(f"_order_{name}")
    frame = pd.concat([frame, pd.DataFrame(order_cols, index=frame.index)], axis=1)
    frame = frame.sort_values(sort_cols, kind="stable").drop(columns=sort_cols).reset_index(drop=True)
    return frame.copy()  # one block per dtype, not one per column added


def _clip(x: Any, low: float | None, high: float | None) -> float:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return math.nan
    if math.isnan(x):
        return x
    if low is not None:
        x = max(x, low)
    if high is not None:
        x = min(x, high)
    return x


def possible_range(name: str, unit: str) -> tuple[float | None, float | None]:
    """Where a metric's values can lie; interval bounds are cut there (a t interval knows no bounds).

    Shares lie in [0, 1] (spam reduction may be negative: more spam than the
    baseline); counts, durations and numbers are never negative.
    """
    if unit == "share":
        return (None if name == SPAM_REDUCTION else 0.0), 1.0
    return 0.0, None


def value(row: pd.Series | dict, column: str) -> float:
    """A number of a wide row; NaN when missing."""
    got = row.get(column, math.nan) if hasattr(row, "get") else math.nan
    try:
        return float(got)
    except (TypeError, ValueError):
        return math.nan


def tuned_policy(experiment: Experiment) -> str | None:
    """The policy a tune varied."""
    return experiment.tune.policy if experiment.tune is not None else None


def grid_point(point: dict[str, Any] | None) -> dict[str, Any]:
    """A tune point without its policy (if it names one)."""
    return {k: v for k, v in (point or {}).items() if k != "policy"}


def spam_axis(experiment: Experiment) -> str | None:
    """The spam metric of the trade-off: the reduction when there is a baseline, else spam accepted."""
    present = summary_metrics(experiment)
    if SPAM_REDUCTION in present:
        return SPAM_REDUCTION
    if SPAM_ACCEPTED in present:
        return SPAM_ACCEPTED
    return None


def off_front(experiment: Experiment) -> list[str]:
    """Policies left out of the Pareto front: the baseline when the spam axis is measured against it
    (its reduction is 0 by definition)."""
    if experiment.baseline is not None and spam_axis(experiment) == SPAM_REDUCTION:
        return [experiment.baseline]
    return []


_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9_.\-]+?)\s*(>=|<=|==|>|<)\s*(.+?)\s*$")


def parse_requirement(text: str) -> tuple[str, str, float] | None:
    """"spam.reduction>=0.95" -> ("spam.reduction", ">=", 0.95); None if it does not parse."""
    found = _REQUIREMENT.match(text)
    if not found:
        return None
    try:
        return found.group(1), found.group(2), float(found.group(3).rstrip("%")) / (
            100.0 if found.group(3).endswith("%") else 1.0)
    except ValueError:
        return None
