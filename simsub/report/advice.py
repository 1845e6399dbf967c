"""What a compare says to do: the recommendation, plain conclusions per policy, dominated policies.

Sentences only; the choice itself is :func:`simsub.experiments.ranking.rank`.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ..analysis.intervals import RUNS_RULE
from ..experiments.metrics import SPAM_REDUCTION
from ..experiments.ranking import Ranking, rank
from ..experiments.types import Experiment
from . import data
from .data import value
from .format import fmt_interval, fmt_magnitude, fmt_steady, fmt_threshold, fmt_value

BOTS = "spam.bots_succeeding"
#: A policy "does not stop the bots" when at least this share of them still get spam through.
MOST_BOTS = 0.5
#: ... and "stops almost all the spam" from this reduction on (MODEL.md's wording for sleep 5).
ALMOST_ALL = 0.95


def _label(experiment: Experiment, name: str) -> str:
    return data.short_label(data.metric_info(experiment, name))


def interval_cell(row: Any, name: str, unit: str) -> str:
    """"mean [low, high]" of metric ``name`` in a wide row (report.data); where every run gave the same
    value, that in words with the rule-of-three bound named as such (format.fmt_steady) — for tables and
    sentences alike."""
    mean, low, high = value(row, name), value(row, name + ":low"), value(row, name + ":high")
    rule = row.get(name + ":rule") if hasattr(row, "get") else None
    if rule == RUNS_RULE:
        return fmt_steady(mean, low, high, value(row, name + ":n"), unit)
    return fmt_interval(mean, low, high, unit)


def interval_text(experiment: Experiment, row: Any, name: str) -> str:
    """:func:`interval_cell` of ``name`` with the experiment's unit for it."""
    return interval_cell(row, name, data.metric_info(experiment, name).unit)


_interval = interval_text


def _requirement_words(experiment: Experiment, text: str) -> str:
    parsed = data.parse_requirement(text)
    if not parsed:
        return text
    metric, op, threshold = parsed
    unit = data.metric_info(experiment, metric).unit
    words = {">=": "at least", "<=": "at most", ">": "more than", "<": "less than", "==": "exactly"}[op]
    return f"{_label(experiment, metric)} {words} {fmt_threshold(threshold, unit)}"


def preference_words(experiment: Experiment, ranking: Ranking) -> str:
    prefs = ranking.preferences
    wanted = " and ".join(_requirement_words(experiment, t) for t in prefs.require) or "no requirement"
    costs = ", then ".join(f"{'least' if d == 'minimize' else 'most'} {_label(experiment, m)}"
                           for m, d in prefs.objectives)
    source = ("as asked" if prefs.given else
              "the defaults; say what matters with --require and --minimize/--maximize")
    return f"{wanted}; among those, {costs} ({source})"


def recommendation(experiment: Experiment, table: pd.DataFrame, ranking: Ranking) -> list[str]:
    rows = {row["policy"]: row for _, row in table.iterrows()}
    out = []
    if ranking.recommended is None:
        closest = ranking.closest
        text = f"No policy meets what was asked ({preference_words(experiment, ranking)})"
        if closest is not None and closest in rows:
            shown = [data.parse_requirement(t)[0] for t in ranking.preferences.require if data.parse_requirement(t)]
            described = ", ".join(f"{_label(experiment, m)} {_interval(experiment, rows[closest], m)}"
                                  for m in dict.fromkeys(shown))
            text += f"; the closest is {closest}" + (f" ({described})" if described else "")
        return [text + "."]
    best = ranking.recommended
    row = rows.get(best)
    names = list(dict.fromkeys([data.parse_requirement(t)[0] for t in ranking.preferences.require
                                if data.parse_requirement(t)] + [m for m, _ in ranking.preferences.objectives]))
    described = ", ".join(f"{_label(experiment, m)} {_interval(experiment, row, m)}"
                          for m in names if row is not None and math.isfinite(value(row, m)))
    others = len(ranking.feasible) - 1
    text = (f"Recommended: {best} ({described}). Ranked by {preference_words(experiment, ranking)}; "
            f"{others} other {'policy meets' if others == 1 else 'policies meet'} the requirements")
    if ranking.runner_up is not None and ranking.difference is not None and ranking.decided_by:
        metric = data.metric_info(experiment, ranking.decided_by)
        d = ranking.difference
        direction = dict(ranking.preferences.objectives).get(ranking.decided_by, "minimize")
        mean, low, high = d.mean, d.low, d.high
        if direction == "maximize":
            mean, low, high = -mean, -high, -low
        word = "worse" if mean >= 0 else "better"
        if mean < 0:
            mean, low, high = -mean, -high, -low
        amount = fmt_magnitude(mean, low, high, metric.unit)
        number, _, bounds = amount.partition(" [")
        text += (f"; the runner-up {ranking.runner_up} is {number} {word} on {_label(experiment, metric.name)}"
                 + (f" [{bounds}" if bounds else ""))
        if math.isfinite(d.low) and math.isfinite(d.high) and d.low <= 0 <= d.high:
            text += (f", an interval that contains 0: with {experiment.replications} replications the two cannot "
                     "be told apart on it, so either will do (more replications would separate them)")
        elif not (math.isfinite(d.low) or math.isfinite(d.high)) and experiment.replications > 1:
            text += ", the same on every seed"
    out.append(text + ".")
    for text in ranking.preferences.require:
        got = ranking.requirement_values.get(text, {}).get(best)
        parsed = data.parse_requirement(text)
        if not got or not parsed:
            continue
        mean, low, high, _ = got
        _, op, threshold = parsed
        straddles = (op in (">=", ">") and not math.isnan(low) and low < threshold) or (
            op in ("<=", "<") and not math.isnan(high) and high > threshold)
        if straddles:
            out.append(f"Uncertain: {best} meets {_requirement_words(experiment, text)} on the mean, but its "
                       f"{experiment.confidence:.0%} interval {_interval(experiment, row, parsed[0])} reaches past "
                       f"{fmt_threshold(threshold, data.metric_info(experiment, parsed[0]).unit)}; more "
                       "replications would tell whether it really does.")
    return out


def verdict(experiment: Experiment, row: Any) -> str:
    """The plain conclusion about one policy, to end its sentence of numbers: "it does not stop the bots
    (93% of them still get spam through); it keeps the server 25.1 h on blocklists and bounces 40,123
    legitimate recipients".  Empty when the experiment has neither the bots nor the spam reduction."""
    bots, cut = value(row, BOTS), value(row, SPAM_REDUCTION)
    if math.isfinite(bots) and bots >= MOST_BOTS:
        text = f"it does not stop the bots ({fmt_value(bots, 'share')} of them still get spam through)"
    elif math.isfinite(cut) and cut >= ALMOST_ALL:
        text = "it stops almost all the spam" + ("" if not math.isfinite(bots) else ", no bot gets any through"
                                                 if bots == 0 else
                                                 f", though {fmt_value(bots, 'share')} of the bots get some through")
    elif math.isfinite(cut):
        text = "it stops part of the spam" + (f"; {fmt_value(bots, 'share')} of the bots still get some through"
                                              if math.isfinite(bots) else "")
    else:
        return ""
    costs = []
    listed, bounced = value(row, "reputation.listed_h_total"), value(row, "legit.bounced")
    if math.isfinite(listed) and listed > 0:
        costs.append(f"keeps the server {fmt_value(listed, 'hours')} on blocklists")
    if math.isfinite(bounced) and bounced > 0:
        costs.append(f"bounces {fmt_value(bounced, 'count')} legitimate recipients")
    return text + (f"; it {' and '.join(costs)}" if costs else "")


def dominated(experiment: Experiment, ranking: Ranking) -> list[str]:
    out = []
    for policy, (by, worse) in ranking.dominated.items():
        where = ", ".join(_label(experiment, m) for m in worse)
        how = (f"paired {experiment.confidence:.0%} intervals" if experiment.replications > 1 else
               "one run each, so on the values alone: no intervals")
        out.append(f"{policy} is dominated by {by}: {policy} is clearly better on no headline metric and clearly "
                   f"worse on {where} ({how}); choose {by} instead unless more replications show otherwise.")
    return out


def advice(experiment: Experiment, table: pd.DataFrame) -> list[str]:
    """The recommendation, then the dominated policies (each policy's plain conclusion ends its own
    sentence: :func:`verdict`)."""
    if table.empty or "runs" not in experiment.__dict__ or experiment.runs is None or not len(experiment.runs):
        return []
    ranking = rank(experiment)
    return recommendation(experiment, table, ranking) + dominated(experiment, ranking)
