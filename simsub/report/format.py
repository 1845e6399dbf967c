"""Numbers as people read them: by unit, with 95 % intervals, "n/a" for missing.

``share`` (0..1) prints as a percentage ("99.2%"), differences of shares as
percentage points ("-0.3 pp"); ``count`` with thousands separators;
``seconds`` as s, min or h depending on size; ``hours`` as h; ``number`` with
one decimal.  An interval prints in the scale of its mean, without repeating
the unit: "2.4 s [2.1, 2.7]".  A missing bound (one replication) prints the
mean alone; an infinite one (identical runs of an unbounded metric) prints ∞.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

NA = "n/a"


@dataclass(frozen=True)
class _Scale:
    factor: float
    suffix: str
    decimals: int


def _finite(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _scale(unit: str, values: tuple[float, ...], diff: bool = False) -> _Scale:
    """How to print ``values`` (a mean and its bounds) of ``unit``; the first finite value sets the size."""
    finite = [abs(float(v)) for v in values if _finite(v)]
    size = finite[0] if finite else 0.0
    if unit == "share":
        pct = size * 100
        return _Scale(100.0, " pp" if diff else "%", 2 if 0 < pct < 0.1 else 1)
    if unit == "count":  # whole when the mean is: a bound such as 45 % of a ceiling stays whole too
        integral = float(values[0]).is_integer() if _finite(values[0]) else all(
            float(v).is_integer() for v in values if _finite(v))
        return _Scale(1.0, "", 0 if (integral or size >= 100) else 1)
    if unit == "seconds":
        if size >= 7200:
            return _Scale(1 / 3600, " h", 1)
        if size >= 120:
            return _Scale(1 / 60, " min", 1)
        return _Scale(1.0, " s", 2 if 0 < size < 1 else 1)
    if unit == "hours":
        return _Scale(1.0, " h", 2 if 0 < size < 0.1 else 1)
    return _Scale(1.0, "", 2 if 0 < size < 0.1 else 1)


def _number(value: float, scale: _Scale, signed: bool) -> str:
    x = round(float(value) * scale.factor, scale.decimals) + 0.0  # + 0.0: no "-0.0"
    text = f"{abs(x):,.{scale.decimals}f}"
    if x < 0:
        return "-" + text
    if signed and x > 0:
        return "+" + text
    return text


def fmt_value(value: Any, unit: str) -> str:
    """One value with its unit: 0.992 share -> "99.2%", 13320 seconds -> "3.7 h"."""
    if not _finite(value):
        return NA
    scale = _scale(unit, (value,))
    return _number(value, scale, False) + scale.suffix


def fmt_interval(mean: Any, low: Any, high: Any, unit: str) -> str:
    """"mean [low, high]" in the mean's scale; the mean alone when a bound is missing."""
    return _with_interval(mean, low, high, unit, signed=False)


def fmt_diff(mean: Any, low: Any, high: Any, unit: str) -> str:
    """A signed difference with its interval; shares in percentage points: "-99.2 pp [-99.4, -98.9]"."""
    return _with_interval(mean, low, high, unit, signed=True)


def _bound(x: Any, scale: _Scale, signed: bool) -> str:
    """A bound in the mean's scale; an infinite one (nothing in the runs bounds the mean) as ∞."""
    if _finite(x):
        return _number(x, scale, signed)
    return "∞" if float(x) > 0 else "-∞"


def _has_bounds(low: Any, high: Any) -> bool:
    """Both bounds present (NaN: one replication) and at least one of them finite."""
    try:
        low, high = float(low), float(high)
    except (TypeError, ValueError):
        return False
    return not (math.isnan(low) or math.isnan(high)) and (math.isfinite(low) or math.isfinite(high))


def _with_interval(mean: Any, low: Any, high: Any, unit: str, signed: bool) -> str:
    """The mean in its scale, then "[low, high]" when there are bounds; signed values are differences."""
    if not _finite(mean):
        return NA
    scale = _scale(unit, (mean, low, high), diff=signed)
    text = _number(mean, scale, signed) + scale.suffix
    if _has_bounds(low, high):
        text += f" [{_bound(low, scale, signed)}, {_bound(high, scale, signed)}]"
    return text


def fmt_steady(mean: Any, low: Any, high: Any, n: Any, unit: str) -> str:
    """A metric every one of ``n`` runs gave the same value of, in words: "0 (same in all 5 runs; rule of
    three: ≤ 36,266)", "15.0 s (same in all 5 runs; rule of three: ≥ 8.2 s)".  The bounds (analysis.intervals' rule of three over runs) reach as far as the metric
    can go, so bare, "0 [0, 36,266]" reads as if the runs had spread that far; here each finite side is
    named as the rule's bound, an infinite one (nothing bounds the metric) is left out."""
    if not _finite(mean):
        return NA
    scale = _scale(unit, (mean, low, high))
    text = _number(mean, scale, False) + scale.suffix
    runs = f"all {int(float(n))} runs" if _finite(n) else "all runs"
    lower = _finite(low) and float(low) < float(mean)
    upper = _finite(high) and float(high) > float(mean)
    if lower and upper:
        bound = f"[{_number(low, scale, False)}, {_number(high, scale, False)}]"
    elif upper:
        bound = f"≤ {_number(high, scale, False)}{scale.suffix}"
    elif lower:
        bound = f"≥ {_number(low, scale, False)}{scale.suffix}"
    else:
        return f"{text} (same in {runs})"
    return f"{text} (same in {runs}; rule of three: {bound})"


def fmt_magnitude(mean: Any, low: Any, high: Any, unit: str) -> str:
    """An unsigned amount with its interval, shares spelled out: "0.3 percentage points [0.1, 0.5]"."""
    if not _finite(mean):
        return NA
    scale = _scale(unit, (mean, low, high), diff=True)
    suffix = " percentage points" if unit == "share" else scale.suffix
    text = _number(mean, scale, False) + suffix
    if _has_bounds(low, high):
        text += f" [{_bound(low, scale, False)}, {_bound(high, scale, False)}]"
    return text


def fmt_param(value: Any) -> str:
    """A parameter value as typed: 4.0 -> "4", 0.25 -> "0.25", "5s" -> "5s"."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalars
        try:
            return fmt_param(value.item())
        except (TypeError, ValueError):
            pass
    return str(value)


def fmt_duration(seconds: Any) -> str:
    """Wall-clock time: "42.1 s", "3 min 12 s", "1 h 05 min"."""
    if not _finite(seconds):
        return NA
    s = float(seconds)
    if s < 59.95:
        return f"{s:.1f} s"
    if s < 3599.5:
        minutes, rest = divmod(int(round(s)), 60)
        return f"{minutes} min {rest:02d} s"
    hours, rest = divmod(int(round(s / 60)), 60)
    return f"{hours} h {rest:02d} min"


def fmt_threshold(value: float, unit: str) -> str:
    """A requirement's threshold in the metric's unit (0.95 share -> "95%")."""
    text = fmt_value(value, unit)
    return text.replace(".0%", "%") if unit == "share" else text
