"""The twin's chart: busy and waiting smtpd connections over time, Postfix against the model."""

from __future__ import annotations

from pathlib import Path

import matplotlib.ticker
# Figures are built without pyplot, so importing simsub never selects a matplotlib
# backend (a notebook keeps its own) and saving needs no display.
from matplotlib.figure import Figure
import numpy as np

from ..model.recorder import Recorder

#: Waits shorter than this (s) are left out of the chart: an idle smtpd takes a few
#: milliseconds to accept, which would draw a spike per session and hide real queueing.
MIN_WAIT_SHOWN = 0.05

POSTFIX_COLOR = "#d62728"
MODEL_COLOR = "#1f77b4"


def step_counts(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Times (s) and the number of intervals [start, end) open from each time on."""
    times = np.concatenate([starts, ends])
    changes = np.concatenate([np.ones(len(starts)), -np.ones(len(ends))])
    order = np.lexsort((changes, times))  # at equal times, ends first
    return np.concatenate([[0.0], times[order]]), np.concatenate([[0.0], np.cumsum(changes[order])])


def _intervals(recorder: Recorder) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    s = {k: np.asarray(v) for k, v in recorder.sessions.items()}
    arrival, wait, hold = s["arrival_s"], s["slot_wait_s"], s["slot_hold_s"]
    granted = arrival + wait
    held = hold > 0
    waited = wait >= MIN_WAIT_SHOWN
    return (granted[held], granted[held] + hold[held]), (arrival[waited], arrival[waited] + wait[waited])


def occupancy_chart(real: Recorder, model: Recorder, process_limit: int, title: str, path: Path) -> None:
    """Busy smtpd processes (top) and connections waiting for one (bottom), both sides."""
    fig = Figure(figsize=(10, 5.5))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    for recorder, label, color, style in ((model, "model", MODEL_COLOR, "-"), (real, "Postfix", POSTFIX_COLOR, "--")):
        busy, waiting = _intervals(recorder)
        t, n = step_counts(*busy)
        top.step(t, n, where="post", color=color, linestyle=style, label=label)
        t, n = step_counts(*waiting)
        bottom.step(t, n, where="post", color=color, linestyle=style, label=label)
    top.axhline(process_limit, color="0.5", linewidth=0.8, linestyle=":")
    top.annotate(f"process limit {process_limit}", (0, process_limit), xytext=(2, 3), textcoords="offset points",
                 fontsize=8, color="0.4")
    top.set_ylabel("busy smtpd")
    top.set_title(title)
    top.legend(loc="upper right", frameon=False)
    top.grid(alpha=0.3)
    bottom.set_ylabel(f"waiting for an smtpd\n(waits ≥ {MIN_WAIT_SHOWN * 1000:.0f} ms)")
    for axis in (top, bottom):
        axis.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    bottom.set_xlabel("time since the start of the run (s)")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
