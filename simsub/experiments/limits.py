"""Where a metric's values can lie, and what bounds them, for the intervals of an experiment.

:func:`simsub.analysis.intervals.interval` needs, per metric, its possible
range and, for a share, the number of trials behind it.  These come from the
metric's unit and, for some metrics, from another column of the same run:

* a share's trials: ``legit.false_delay_rate.*`` is a share of the run's
  ``legit.messages``; ``legit.by_origin.O.false_delay_rate.*`` of
  ``legit.by_origin.O.messages``; ``spam.bots_succeeding`` of the scenario's bots.
* a count's ceiling: spam recipients accepted never exceed those attempted,
  legitimate failures the legitimate messages, refused connections the
  connections, bounced legitimate recipients the accepted ones.  A ceiling makes
  the "no variation" bound finite (see the intervals module).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .metrics import SPAM_REDUCTION, guess_unit

#: count metric -> the column of the same run that it can never exceed
CEILINGS = {
    "spam.recipients_accepted": "spam.recipients_attempted",
    "legit.failed": "legit.messages",
    "smtpd.refused": "smtpd.connections",
    "legit.bounced": "legit.recipients_accepted",
}


def possible_range(name: str) -> tuple[float, float]:
    """[low, high] of a metric's values: shares in [0, 1] (spam reduction may be negative), everything else ≥ 0."""
    if guess_unit(name) == "share":
        return (-math.inf if name == SPAM_REDUCTION else 0.0), 1.0
    return 0.0, math.inf


def trials_column(name: str) -> str | None:
    """The column counting the trials a share is a proportion of (None: unknown or a constant)."""
    parts = name.split(".")
    if name.startswith("legit.false_delay_rate."):
        return "legit.messages"
    if name.startswith("legit.by_origin.") and len(parts) == 5 and parts[3] == "false_delay_rate":
        return f"legit.by_origin.{parts[2]}.messages"
    return None


def bounds_for(group: pd.DataFrame, name: str, bots: int | None = None) -> dict:
    """Keyword arguments ``low``, ``high``, ``trials`` of the interval of ``name`` over ``group``'s runs."""
    low, high = possible_range(name)
    trials = None
    column = trials_column(name)
    if column is not None and column in group:
        counted = pd.to_numeric(group[column], errors="coerce").to_numpy(dtype=float)
        if np.isfinite(counted).all():
            trials = float(counted.sum())
    elif name == "spam.bots_succeeding" and bots:
        trials = float(bots * len(group))
    ceiling = CEILINGS.get(name)
    if ceiling is not None and ceiling in group:
        tops = pd.to_numeric(group[ceiling], errors="coerce").to_numpy(dtype=float)
        if len(tops) and np.isfinite(tops).all():
            high = float(tops.max())
    return {"low": low, "high": high, "trials": trials}


def difference_range(name: str, group: pd.DataFrame) -> tuple[float, float]:
    """The range of a paired difference of ``name``: [low − high, high − low] of its values."""
    bounds = bounds_for(group, name)
    return bounds["low"] - bounds["high"], bounds["high"] - bounds["low"]
