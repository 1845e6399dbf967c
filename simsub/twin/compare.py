"""The side-by-side table of ``simsub twin``: the same metrics from real Postfix and from the model.

Both sides are read from a :class:`~simsub.model.recorder.Recorder` filled the
same way, so one function computes every figure for both.  Counts must agree
exactly; times agree when they differ by at most 10 % or 0.2 s (the issue's
tolerance: the model leaves out fork/exec, scheduling and the socket
monitor's 4 ms sampling, which are milliseconds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..model.outcomes import Outcome
from ..model.recorder import Recorder

#: Relative and absolute tolerance for times (s) and occupancy (busy smtpd).
RELATIVE_TOLERANCE = 0.10
ABSOLUTE_TOLERANCE = 0.2

_ABORTED = (Outcome.TIMEOUT, Outcome.ABANDONED)


@dataclass(frozen=True)
class TwinMetric:
    key: str
    label: str
    unit: str  # "" for counts, "s", "busy smtpd"
    exact: bool  # a count: must agree exactly


METRICS = (
    TwinMetric("sessions", "sessions played", "", True),
    TwinMetric("spam_accepted", "spam messages accepted", "", True),
    TwinMetric("legit_accepted", "legitimate messages accepted", "", True),
    TwinMetric("bot_sessions_aborted", "bot sessions aborted (client hung up)", "", True),
    TwinMetric("legit_false_delay_p50", "legitimate false delay, median", "s", False),
    TwinMetric("legit_false_delay_p95", "legitimate false delay, 95th percentile", "s", False),
    TwinMetric("smtpd_wait_mean", "wait for a free smtpd, mean per session", "s", False),
    TwinMetric("smtpd_wait_p95", "wait for a free smtpd, 95th percentile", "s", False),
    TwinMetric("slot_hold_mean", "smtpd busy per session, mean", "s", False),
    TwinMetric("occupancy_mean", "busy smtpd processes, mean over the run", "busy smtpd", False),
    TwinMetric("occupancy_peak", "busy smtpd processes, peak", "busy smtpd", False),
)


def twin_metrics(recorder: Recorder, duration: float, peak_busy: int) -> dict[str, float]:
    """Every :data:`METRICS` figure of one side; ``duration`` (s) is the twin's horizon."""
    bots = np.array([kind == "bot" for kind in recorder.population_kinds] or [False])
    m = {name: np.asarray(col) for name, col in recorder.messages.items()}
    s = {name: np.asarray(col) for name, col in recorder.sessions.items()}
    is_bot_message = bots[m["population"]] if len(m["population"]) else np.zeros(0, bool)
    accepted = np.isin(m["outcome"], [o.value for o in Outcome if o.accepted])
    is_bot_session = bots[s["population"]] if len(s["population"]) else np.zeros(0, bool)
    aborted = np.isin(s["outcome"], [o.value for o in _ABORTED])
    legit_ok = accepted & ~is_bot_message
    false_delay = (m["accepted_s"] - m["first_attempt_s"] - m["ideal_s"])[legit_ok]
    waits = s["slot_wait_s"]
    holds = s["slot_hold_s"][s["slot_hold_s"] > 0]
    return {
        "sessions": float(len(waits)),
        "spam_accepted": float(np.sum(accepted & is_bot_message)),
        "legit_accepted": float(np.sum(legit_ok)),
        "bot_sessions_aborted": float(np.sum(aborted & is_bot_session)),
        "legit_false_delay_p50": _percentile(false_delay, 50),
        "legit_false_delay_p95": _percentile(false_delay, 95),
        "smtpd_wait_mean": float(np.mean(waits)) if len(waits) else math.nan,
        "smtpd_wait_p95": _percentile(waits, 95),
        "slot_hold_mean": float(np.mean(holds)) if len(holds) else math.nan,
        "occupancy_mean": float(np.sum(holds)) / duration,
        "occupancy_peak": float(peak_busy),
    }


def agrees(metric: TwinMetric, real: float, model: float) -> bool:
    """Do the two sides agree within the twin's tolerance?"""
    if math.isnan(real) or math.isnan(model):
        return math.isnan(real) and math.isnan(model)
    if metric.exact:
        return real == model
    return abs(real - model) <= max(RELATIVE_TOLERANCE * abs(model), ABSOLUTE_TOLERANCE)


def comparison_rows(real: dict[str, float], model: dict[str, float]) -> list[dict]:
    """One row per metric: both values, difference, relative difference, agreement."""
    rows = []
    for metric in METRICS:
        r, m = real[metric.key], model[metric.key]
        difference = r - m
        # Relative to the model; undefined when the model's value is (within rounding) zero.
        relative = difference / m if abs(m) > 1e-9 else (0.0 if difference == 0 else math.nan)
        rows.append({"metric": metric.key, "label": metric.label, "unit": metric.unit, "postfix": r, "model": m,
                     "difference": difference, "relative": relative, "agrees": agrees(metric, r, m),
                     "exact": metric.exact})
    return rows


def format_table(rows: list[dict], markdown: bool = False) -> str:
    """The side-by-side table, as aligned text or as Markdown."""
    header = ("metric", "Postfix", "model", "difference", "relative", "agrees")
    body = []
    for row in rows:
        unit = f" ({row['unit']})" if row["unit"] else ""
        body.append((row["label"] + unit, _value(row["postfix"], row), _value(row["model"], row),
                     _signed(row["difference"], row), _relative(row["relative"]),
                     "yes" if row["agrees"] else "NO"))
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * 4 + ":---:|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
    fmt = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(c) for c in body])


def _percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else math.nan


def _value(x: float, row: dict) -> str:
    if math.isnan(x):
        return "—"
    if abs(x) < 1e-9:
        x = 0.0  # rounding residue of a difference of times: no "-0.000"
    return f"{x:,.0f}" if row["exact"] else f"{x:.3f}"


def _signed(x: float, row: dict) -> str:
    if math.isnan(x):
        return "—"
    return f"{x:+,.0f}" if row["exact"] else f"{x:+.3f}"


def _relative(x: float) -> str:
    return "—" if math.isnan(x) else f"{x:+.1%}"
