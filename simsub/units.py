"""Durations with units: ``250ms``, ``5s``, ``10m``, ``2h``, ``1d`` or plain seconds."""

from __future__ import annotations

import math
import re

#: Seconds per unit suffix.
UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}

#: The longest duration accepted (about 31.7 years).  Longer ones are typos such as ``1e300s``:
#: added up on the simulation clock they overflow to infinity and the run never ends.
MAX_SECONDS = 1e9

_DURATION = re.compile(r"^\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-z]*)\s*$")


def parse_duration(value: object) -> float:
    """Return ``value`` in seconds.

    Accepts an int or float (seconds) or a string such as ``"250ms"``, ``"5s"``,
    ``"10m"``, ``"2h"``, ``"1d"`` (a bare number string means seconds).  Raises
    ``ValueError`` with a readable reason for anything else, including NaN, inf,
    negative values and durations beyond :data:`MAX_SECONDS`.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '5s' or a number of seconds, got {_clip(value)}")
    if isinstance(value, (int, float)):
        try:
            seconds = float(value)
        except OverflowError:  # a TOML integer beyond the float range, such as 10**400
            seconds = math.inf
    elif isinstance(value, str):
        match = _DURATION.match(value.lower())
        if not match:
            raise ValueError(
                f"expected a duration such as '250ms', '5s', '10m', '2h' or '1d', got {_clip(value)}"
            )
        number, unit = match.groups()
        if unit and unit not in UNIT_SECONDS:
            raise ValueError(
                f"unknown unit {unit!r} in {_clip(value)}; use one of {', '.join(UNIT_SECONDS)}"
            )
        seconds = float(number) * UNIT_SECONDS[unit or "s"]
    else:
        raise ValueError(f"expected a duration such as '5s' or a number of seconds, got {_clip(value)}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"expected a finite, non-negative duration, got {_clip(value)}")
    if seconds > MAX_SECONDS:
        raise ValueError(f"expected a duration of at most {MAX_SECONDS:g} s (about 31 years), got {_clip(value)}")
    return seconds


def _clip(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "…"


def format_duration(seconds: float) -> str:
    """Render seconds compactly for reports (``90`` → ``"1.5m"``)."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size:
            return f"{seconds / size:g}{unit}"
    return f"{seconds * 1000:g}ms"
