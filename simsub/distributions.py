"""Small distribution objects: ``sample(rng, size)`` and an analytic ``mean``.

A scenario writes a distribution as a table, ``{ dist = "lognormal", median = "4s",
sigma = 0.15 }``, or as a plain number or duration (a constant).  Each object is
validated when it is built and knows its mean, so tests can compare simulated
averages with theory.  Two flavours exist: *durations* (seconds, non-negative
floats) and *counts* (integers >= 1, e.g. recipients per message).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np

from .units import MAX_SECONDS, parse_duration

Flavour = Literal["duration", "count"]


class Distribution:
    """Base class: ``sample`` draws values, ``mean`` is the analytic mean."""

    @property
    def mean(self) -> float:
        raise NotImplementedError

    def sample(self, rng: np.random.Generator, size: int | None = None):
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Constant(Distribution):
    value: float

    @property
    def mean(self) -> float:
        return self.value

    def sample(self, rng, size=None):
        if size is None:
            return self.value
        return np.full(size, self.value)

    def describe(self) -> str:
        return f"constant {self.value:g}"


@dataclass(frozen=True)
class Uniform(Distribution):
    """Continuous on [low, high) for durations; integers low..high inclusive for counts."""

    low: float
    high: float
    integer: bool = False

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2

    def sample(self, rng, size=None):
        if self.integer:
            return rng.integers(int(self.low), int(self.high) + 1, size=size)
        return rng.uniform(self.low, self.high, size=size)

    def describe(self) -> str:
        return f"uniform {self.low:g}..{self.high:g}"


@dataclass(frozen=True)
class Exponential(Distribution):
    mean_value: float

    @property
    def mean(self) -> float:
        return self.mean_value

    def sample(self, rng, size=None):
        return rng.exponential(self.mean_value, size=size)

    def describe(self) -> str:
        return f"exponential mean {self.mean_value:g}"


@dataclass(frozen=True)
class LogNormal(Distribution):
    """Parameterised by its median and the sigma of the underlying normal."""

    median: float
    sigma: float

    @property
    def mean(self) -> float:
        return self.median * math.exp(self.sigma**2 / 2)

    def cdf(self, x: float) -> float:
        """P(X <= x); used by tests to predict which share of clients gives up."""
        if x <= 0:
            return 0.0
        if self.sigma == 0:
            return 1.0 if x >= self.median else 0.0
        z = (math.log(x) - math.log(self.median)) / self.sigma
        return 0.5 * (1 + math.erf(z / math.sqrt(2)))

    def sample(self, rng, size=None):
        return rng.lognormal(math.log(self.median), self.sigma, size=size)

    def describe(self) -> str:
        return f"lognormal median {self.median:g} sigma {self.sigma:g}"


@dataclass(frozen=True)
class Geometric(Distribution):
    """Counts 1, 2, 3, … with P(k) = p (1-p)^(k-1) and mean 1/p."""

    mean_value: float

    @property
    def mean(self) -> float:
        return self.mean_value

    def sample(self, rng, size=None):
        return rng.geometric(1.0 / self.mean_value, size=size)

    def describe(self) -> str:
        return f"geometric mean {self.mean_value:g}"


@dataclass(frozen=True)
class Empirical(Distribution):
    """Points ``(x, F(x))`` of a cumulative distribution function.

    Durations interpolate linearly between points (an atom of mass F(x0) sits at
    x0); counts take exactly the listed values with probability F(xi) - F(xi-1).
    """

    xs: tuple[float, ...]
    cdf_values: tuple[float, ...]
    integer: bool = False

    @property
    def mean(self) -> float:
        xs, fs = self.xs, self.cdf_values
        total = xs[0] * fs[0]
        for i in range(1, len(xs)):
            mass = fs[i] - fs[i - 1]
            total += mass * (xs[i] if self.integer else (xs[i] + xs[i - 1]) / 2)
        return total

    def sample(self, rng, size=None):
        u = rng.random(size=size)
        xs = np.asarray(self.xs)
        fs = np.asarray(self.cdf_values)
        if self.integer:
            idx = np.searchsorted(fs, u, side="right")
            values = xs[np.minimum(idx, len(xs) - 1)].astype(np.int64)
        else:
            values = np.interp(u, fs, xs)
        return values if size is not None else values.item()

    def describe(self) -> str:
        return f"empirical with {len(self.xs)} points"


class DistributionSpecError(ValueError):
    """Raised with ``(subkey, reason)`` so the caller can name the full key."""

    def __init__(self, subkey: str | None, reason: str):
        self.subkey = subkey
        super().__init__(reason)


#: The largest count a count distribution may produce or average (recipients per message):
#: larger ones overflow numpy's 64-bit integers, or the memory of a run, when messages are drawn.
MAX_COUNT = 1_000_000

_KNOWN = ("constant", "uniform", "exponential", "lognormal", "geometric", "empirical")
_PARAMS = {
    "constant": {"value"},
    "uniform": {"low", "high"},
    "exponential": {"mean"},
    "lognormal": {"median", "sigma"},
    "geometric": {"mean"},
    "empirical": {"points"},
}


def _number(value: object, subkey: str, flavour: Flavour) -> float:
    if flavour == "duration":
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise DistributionSpecError(subkey, str(exc)) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DistributionSpecError(subkey, f"expected a number, got {value!r}")
    if not _finite(value):
        raise DistributionSpecError(subkey, f"expected a finite number, got {_clip(value)}")
    return float(value)


def _finite(value: int | float) -> bool:  # not float: compiled, a huge int would fail to convert
    try:
        return math.isfinite(value)
    except OverflowError:  # a TOML integer beyond the float range, such as 10**400
        return False


def _clip(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "…"


def parse_distribution(spec: object, flavour: Flavour) -> Distribution:
    """Build a distribution from a scenario value.

    ``flavour="duration"`` accepts durations with units and requires values >= 0;
    ``flavour="count"`` requires integer-valued counts >= 1.  Errors raise
    :class:`DistributionSpecError` naming the offending sub-key.
    """
    if not isinstance(spec, dict):
        value = _number(spec, None, flavour)  # type: ignore[arg-type]
        return _check_constant(value, flavour)
    if "dist" not in spec:
        raise DistributionSpecError(
            "dist", f"a distribution table needs 'dist', one of {', '.join(_KNOWN)}"
        )
    kind = spec["dist"]
    if kind not in _KNOWN:
        close = difflib.get_close_matches(str(kind), _KNOWN, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise DistributionSpecError("dist", f"unknown distribution {kind!r}{hint} (one of {', '.join(_KNOWN)})")
    allowed = _PARAMS[kind]
    for key in spec:
        if key != "dist" and key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise DistributionSpecError(key, f"'{kind}' takes {', '.join(sorted(allowed))}, not {key!r}{hint}")
    for key in allowed:
        if key not in spec:
            raise DistributionSpecError(key, f"'{kind}' needs {key!r}")
    builder: Callable[[dict, Flavour], Distribution] = _BUILDERS[kind]
    return builder(spec, flavour)


def _check_constant(value: float, flavour: Flavour) -> Distribution:
    if flavour == "count" and (value < 1 or value != int(value)):
        raise DistributionSpecError(None, f"expected a whole number >= 1, got {value:g}")
    if flavour == "count" and value > MAX_COUNT:
        raise DistributionSpecError(None, f"expected a count of at most {MAX_COUNT:,}, got {value:g}")
    return Constant(int(value) if flavour == "count" else value)


def _build_constant(spec, flavour):
    try:
        return _check_constant(_number(spec["value"], "value", flavour), flavour)
    except DistributionSpecError as exc:
        raise DistributionSpecError("value", str(exc)) from None


def _build_uniform(spec, flavour):
    low = _number(spec["low"], "low", flavour)
    high = _number(spec["high"], "high", flavour)
    if high < low:
        raise DistributionSpecError("high", f"must be >= low ({low:g}), got {high:g}")
    if flavour == "count":
        for key, value in (("low", low), ("high", high)):
            if value < 1 or value != int(value):
                raise DistributionSpecError(key, f"expected a whole number >= 1, got {value!r}")
            if value > MAX_COUNT:
                raise DistributionSpecError(key, f"expected a count of at most {MAX_COUNT:,}, got {value:g}")
        return Uniform(low, high, integer=True)
    return Uniform(low, high)


def _build_exponential(spec, flavour):
    if flavour == "count":
        raise DistributionSpecError("dist", "counts take constant, uniform, geometric or empirical")
    mean = _number(spec["mean"], "mean", flavour)
    if mean <= 0:
        raise DistributionSpecError("mean", f"must be > 0, got {mean:g}")
    return Exponential(mean)


def _build_lognormal(spec, flavour):
    if flavour == "count":
        raise DistributionSpecError("dist", "counts take constant, uniform, geometric or empirical")
    median = _number(spec["median"], "median", flavour)
    if median <= 0:
        raise DistributionSpecError("median", f"must be > 0, got {median:g}")
    sigma = spec["sigma"]  # dimensionless, so never a duration
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not _finite(sigma) or sigma < 0:
        raise DistributionSpecError("sigma", f"expected a finite number >= 0, got {sigma!r}")
    try:
        mean = median * math.exp(sigma**2 / 2)
    except OverflowError:
        mean = math.inf
    if not math.isfinite(mean):
        raise DistributionSpecError("sigma", f"is too large: the mean would be infinite, got {sigma!r}")
    if mean > MAX_SECONDS:
        raise DistributionSpecError("sigma", f"is too large: the mean would be {mean:.3g} s, beyond "
                                             f"{MAX_SECONDS:g} s, got {sigma!r}")
    return LogNormal(median, float(sigma))


def _build_geometric(spec, flavour):
    if flavour != "count":
        raise DistributionSpecError("dist", "geometric is for counts (whole numbers >= 1)")
    mean = _number(spec["mean"], "mean", flavour)
    if mean < 1:
        raise DistributionSpecError("mean", f"must be >= 1 (the smallest count is 1), got {mean:g}")
    if mean > MAX_COUNT:
        raise DistributionSpecError("mean", f"must be at most {MAX_COUNT:,}, got {mean:g}")
    return Geometric(mean)


def _build_empirical(spec, flavour):
    points = spec["points"]
    if not isinstance(points, list) or len(points) < 1:
        raise DistributionSpecError("points", "expected a list of [x, F(x)] pairs")
    xs, fs = [], []
    for i, point in enumerate(points):
        if not isinstance(point, list) or len(point) != 2:
            raise DistributionSpecError(f"points[{i}]", f"expected [x, F(x)], got {point!r}")
        x = _number(point[0], f"points[{i}]", flavour)
        f = point[1]
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 <= f <= 1:
            raise DistributionSpecError(f"points[{i}]", f"F(x) must be a number in [0, 1], got {f!r}")
        if xs and x <= xs[-1]:
            raise DistributionSpecError(f"points[{i}]", "x values must increase")
        if fs and f < fs[-1]:
            raise DistributionSpecError(f"points[{i}]", "F(x) values must not decrease")
        if flavour == "count" and (x < 1 or x != int(x)):
            raise DistributionSpecError(f"points[{i}]", f"counts must be whole numbers >= 1, got {x!r}")
        if flavour == "count" and x > MAX_COUNT:
            raise DistributionSpecError(f"points[{i}]", f"counts must be at most {MAX_COUNT:,}, got {x:g}")
        xs.append(x)
        fs.append(float(f))
    if fs[-1] != 1.0:
        raise DistributionSpecError("points", f"the last F(x) must be 1, got {fs[-1]:g}")
    return Empirical(tuple(xs), tuple(fs), integer=flavour == "count")


_BUILDERS = {
    "constant": _build_constant,
    "uniform": _build_uniform,
    "exponential": _build_exponential,
    "lognormal": _build_lognormal,
    "geometric": _build_geometric,
    "empirical": _build_empirical,
}
