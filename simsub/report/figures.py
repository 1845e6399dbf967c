"""Which charts a report has, their file names and their captions (what to look for)."""

from __future__ import annotations

import re
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from . import experiment_charts as charts
from ..experiments.types import Experiment
from . import data
from ..experiments.metrics import FALSE_DELAY_5S

COMPARE_CHART = "compare.png"
TRADEOFF_CHART = "tradeoff.png"


@dataclass(frozen=True)
class Figure:
    path: Path
    alt: str
    caption: str
    kind: str  # "compare", "sweep" or "tradeoff"


def sweep_chart_name(metric_name: str) -> str:
    """``sweep-spam_reduction.png`` for ``spam.reduction``."""
    return "sweep-" + re.sub(r"[^A-Za-z0-9]+", "_", metric_name).strip("_") + ".png"


def chart_names(experiment: Experiment) -> list[str]:
    """The PNG file names a report of ``experiment`` writes (when the data allows each chart)."""
    names = []
    if experiment.kind == "compare" or not experiment.varied:
        names.append(COMPARE_CHART)
    else:
        names += [sweep_chart_name(m.name) for m in data.reported_metrics(experiment)]
    if data.spam_axis(experiment) and FALSE_DELAY_5S in data.summary_metrics(experiment):
        names.append(TRADEOFF_CHART)
    return names


def marks(experiment: Experiment, table: pd.DataFrame) -> dict[str, Any]:
    """Index in ``table`` of the tune's recommended point and runner-up."""
    found: dict[str, Any] = {}
    tune = experiment.tune
    if experiment.kind != "tune" or tune is None or table.empty:
        return found
    for name, point in (("recommended", tune.best), ("runner-up", tune.runner_up)):
        if point:
            where = {"policy": data.tuned_policy(experiment), **data.grid_point(point)}
            rows = table.index[data.match(table, where).to_numpy()]
            if len(rows):
                found[name] = rows[0]
    return found


def _replication_note(experiment: Experiment) -> str:
    if experiment.replications < 2:
        return "There is a single replication, so no interval is drawn (intervals need at least 2)."
    return f"Means over {experiment.replications} replications with their {experiment.confidence:.0%} intervals."


def _off_front_note(experiment: Experiment) -> str:
    left_out = data.off_front(experiment)
    if not left_out:
        return ""
    return (f" The baseline {left_out[0]} (grey) is drawn for reference but is not part of the front: its spam "
            "reduction is 0 by definition.")


def write_figures(experiment: Experiment, table: pd.DataFrame, folder: Path) -> tuple[list[Figure], list[str]]:
    """Draw every chart into ``folder``; return the figures and a note for each chart that failed."""
    figures: list[Figure] = []
    problems: list[str] = []
    policies = list(experiment.policies)
    baseline = experiment.baseline
    metrics = data.reported_metrics(experiment)
    name = experiment.scenario_name
    note = _replication_note(experiment)
    level = f"{experiment.confidence:.0%}"
    tuned = marks(experiment, table)
    mark_note = (" The gold star is the recommended point, the open diamond the runner-up."
                 if tuned else "")

    def draw(path: Path, kind: str, alt: str, caption: str, fn, *args, **kwargs) -> None:
        try:
            fn(*args, path=path, **kwargs)
        except Exception as exc:  # a chart must not cost the rest of the report
            warnings.warn(f"chart {path.name} failed: {exc}\n{traceback.format_exc()}", RuntimeWarning,
                          stacklevel=2)
            problems.append(f"The chart {path.name} could not be drawn ({type(exc).__name__}: {exc}).")
            return
        figures.append(Figure(path, alt, caption, kind))

    if table.empty:
        return figures, ["No chart: the experiment has no statistics (no run succeeded)."]

    if experiment.kind == "compare" or not experiment.varied:
        base = (f" The baseline {baseline} is grey and bold." if baseline else "")
        draw(folder / COMPARE_CHART, "compare", f"Headline metrics per policy — {name}",
             f"One panel per headline metric, one bar per policy. {note}{base} Each panel title says whether "
             "lower or higher is better. Look for the policies that do well on the spam panels without doing "
             "badly on the legitimate-mail panels; where two policies' whiskers do not overlap, the difference "
             "is clear (the paired-difference table is sharper still). A whisker that runs off its panel is a "
             "bound from runs that all gave the same value (rule of three): too wide to set the panel's scale. "
             "Each panel has its own scale (never narrower than 1 percentage point, 1 count or 1 s): read the "
             "numbers at the bars before comparing lengths across panels.",
             charts.compare_chart, table, metrics, policies, baseline, f"Policy comparison — {name}")
    else:
        x = experiment.varied[0].name
        x_values = data.grid_values(experiment, x)
        others = [v.name for v in experiment.varied[1:]]
        per = "one line per policy" + (f" and value of {', '.join(others)}" if others else "")
        for metric in metrics:
            draw(folder / sweep_chart_name(metric.name), "sweep", f"{metric.label} against {x}",
                 f"{metric.label} against {x}, {per}. {note} The shaded band is the {level} interval (none where "
                 "every run gave the same value). "
                 f"Look for where a line bends or crosses a level you care about: beyond the bend, moving {x} "
                 f"further buys little.{mark_note}",
                 charts.sweep_chart, table, metric, x, x_values, others, policies, baseline,
                 f"{metric.label} — {name}", marks=tuned)

    spam = data.spam_axis(experiment)
    if spam and FALSE_DELAY_5S in data.summary_metrics(experiment):
        x_metric = data.metric_info(experiment, FALSE_DELAY_5S)
        y_metric = data.metric_info(experiment, spam)
        swept = bool(experiment.varied)
        where = ("one policy at one grid point, labelled with its parameter values" if swept
                 else "one policy")
        up = "up means more spam cut" if spam != data.SPAM_ACCEPTED else "down means less spam accepted"
        draw(folder / TRADEOFF_CHART, "tradeoff", "Trade-off: spam against legitimate mail delayed > 5 s",
             f"Each point is {where}; right means more legitimate mail delayed by more than 5 s, {up}. "
             f"Error bars are {level} intervals in both directions. The black step line is the Pareto front: "
             "a point on it cannot gain on one axis without losing on the other, and every point off it is beaten "
             f"on both by a point on it.{_off_front_note(experiment)}{mark_note}",
             charts.tradeoff_chart, table, x_metric, y_metric, data.varied_names(experiment), policies, baseline,
             f"Trade-off — {name}", marks=tuned, off_front=data.off_front(experiment))
    return figures, problems
