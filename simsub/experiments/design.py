"""The plan of an experiment: seeds, parameter grids and the key of each run.

Everything here is pure and cheap, so an experiment validates its whole plan
before the first run starts.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import re
import tomllib
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ScenarioError
from ..scenario.types import Scenario
from .types import Varied

#: More grid points than this is almost certainly a typo in a --vary range.
MAX_GRID_POINTS = 10_000


def replication_seed(root_seed: int, replication: int) -> int:
    """The seed of replication ``replication`` (0-based) under ``root_seed``.

    It depends on nothing else — not the policy, not the parameter values, not
    the executor or the order of runs — so every policy and grid point of an
    experiment sees the same random numbers (common random numbers).
    """
    state = np.random.SeedSequence([int(root_seed), int(replication)]).generate_state(1, dtype=np.uint32)
    return int(state[0])


# --------------------------------------------------------------------------- --vary
def parse_vary(text: str) -> Varied:
    """``NAME=START:STOP:STEP`` (inclusive, numbers) or ``NAME=a,b,c`` → :class:`Varied`.

    List values are read as TOML values when they parse as one (``3``, ``2.5``,
    ``true``, ``"x"``), otherwise kept as strings (``5s``, ``sleep 3``).
    """
    name, sep, spec = text.partition("=")
    name = name.strip()
    if not sep or not name or not spec.strip():
        raise ScenarioError("--vary", text, "expected NAME=START:STOP:STEP or NAME=a,b,c, e.g. foreign_sleep=0:10:1")
    spec = spec.strip()
    if ":" in spec and "," not in spec:
        values = _range(spec, text)
    else:
        values = tuple(_value(item.strip()) for item in spec.split(","))
        if any(item == "" for item in values):
            raise ScenarioError("--vary", text, "has an empty value in its list")
    return Varied(name, values)


def _value(item: str) -> Any:
    try:
        return tomllib.loads(f"v = {item}")["v"]
    except tomllib.TOMLDecodeError:
        return item


def _range(spec: str, text: str) -> tuple[Any, ...]:
    """``START:STOP:STEP`` of the ``--vary`` option ``text`` (named in errors), inclusive."""
    parts = spec.split(":")
    if len(parts) != 3:
        raise ScenarioError("--vary", text, "a range is START:STOP:STEP with three numbers, e.g. 0:10:1")
    try:
        start, stop, step = (Decimal(p.strip()) for p in parts)
    except InvalidOperation:
        raise ScenarioError("--vary", text, f"range bounds must be numbers, got {spec!r}") from None
    if not all(x.is_finite() for x in (start, stop, step)):
        raise ScenarioError("--vary", text, "range bounds must be finite numbers")
    if step <= 0:
        raise ScenarioError("--vary", text, f"STEP must be > 0, got {step}")
    if stop < start:
        raise ScenarioError("--vary", text, f"empty range: STOP {stop} is below START {start}")
    count = int((stop - start) / step) + 1
    if count > MAX_GRID_POINTS:
        raise ScenarioError("--vary", text, f"{count:,} values; at most {MAX_GRID_POINTS:,}")
    integral = all(x == x.to_integral_value() for x in (start, step))
    values = [start + i * step for i in range(count)]
    return tuple(int(v) if integral else float(v) for v in values)


#: Columns of runs.csv and summary.csv a varied name must not shadow.
RESERVED = ("policy", "replication", "seed", "status", "error", "cached", "wall_s", "key", "metric", "n", "mean",
            "ci_low", "ci_high", "ci_rule", "diff_mean", "diff_low", "diff_high", "diff_n", "scenario.seed", "params")
_ALIASES = {"horizon": "scenario.horizon"}


def canonical(varied: Varied) -> Varied:
    """One spelling per setting (``params.x`` → ``x``, ``horizon`` → ``scenario.horizon``),
    plain Python values (NumPy scalars from the API become int/float/str/bool), and
    checks: no reserved name, no value twice (``150`` and ``150.0`` are the same)."""
    name = varied.name.strip()
    name = name[len("params."):] if name.startswith("params.") else _ALIASES.get(name, name)
    if name in RESERVED:
        why = ("seeds come from --seed and --replications" if name in ("seed", "scenario.seed")
               else "it names a column of the result tables; rename the parameter")
        raise ScenarioError("--vary", varied.name, f"cannot be varied: {why}")
    values = tuple(v.item() if hasattr(v, "item") else v for v in varied.values)
    if not values:
        raise ScenarioError("--vary", varied.name, "has no values")
    for i, value in enumerate(values):
        if any(value == other for other in values[:i]):
            raise ScenarioError("--vary", varied.name, f"lists the value {value!r} twice")
    return Varied(name, values)


def grid(varied: tuple[Varied, ...]) -> list[dict[str, Any]]:
    """Every combination of the varied values, first name slowest; ``[{}]`` when nothing varies."""
    names = [v.name for v in varied]
    if len(set(names)) != len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        raise ScenarioError("--vary", duplicate, "is varied twice; give all its values in one --vary")
    points = [dict(zip(names, combo)) for combo in itertools.product(*(v.values for v in varied))]
    if len(points) > MAX_GRID_POINTS:
        raise ScenarioError("--vary", ", ".join(names), f"{len(points):,} grid points; at most {MAX_GRID_POINTS:,}")
    return points


# --------------------------------------------------------------------------- run keys
@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """A hash of the simsub code that decides a run's summary.

    Part of every run key, so a finished run computed by other model code is
    never reused.  Reports, charts, experiments and the command line are left
    out: they do not change what a run measures.
    """
    import platform

    import simpy

    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    # Random streams and float results are reproducible within these versions.
    digest.update(f"{platform.python_version()} numpy {np.__version__} simpy {simpy.__version__}".encode())
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package).as_posix()
        if relative.startswith(("report/", "experiments/", "cli/", "cli.py", "output.py")) or "charts" in relative:
            continue
        digest.update(relative.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def run_key(scenario: Scenario, policy: str, seed: int) -> str:
    """The key under which one run's result is stored: a hash of what decides it.

    That is the resolved scenario (parameters substituted, overrides applied)
    minus what a run does not read — its name and description, the other
    policies, the parameter table itself — plus the policy, the seed and the
    code fingerprint.  Two grid points that leave a policy unchanged therefore
    share its runs.
    """
    data = copy.deepcopy(scenario.raw)
    data.pop("params", None)
    head = dict(data.get("scenario", {}))
    for key in ("name", "description", "seed", "default_policy"):
        head.pop(key, None)
    data["scenario"] = head
    data["policies"] = {policy: data.get("policies", {}).get(policy)}
    text = json.dumps({"scenario": data, "policy": policy, "seed": int(seed), "code": code_fingerprint()},
                      sort_keys=True, default=_canonical, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _canonical(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return str(value)  # dates and times from TOML


_SAFE = re.compile(r"[^A-Za-z0-9_.=-]+")


def slug(text: str) -> str:
    """A file-name-safe version of ``text`` (for default output folder names)."""
    return _SAFE.sub("_", text).strip("_") or "x"
