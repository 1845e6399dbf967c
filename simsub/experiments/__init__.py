"""Replicated, paired experiments: compare policies, sweep parameters, tune them.

``compare``, ``sweep`` and ``tune`` return an :class:`Experiment` (tables as
pandas DataFrames); :func:`simsub.report.write_experiment` writes it with its report.

The names below are imported on first use (PEP 562), not with the package: a
process that only runs tasks (a Dask worker or scheduler unpickling
:func:`simsub.experiments.execute.run_task`) then skips the statistics stack
(scipy), which the experiment functions need and a single run does not.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the lazy names are, for type checkers and readers
    from .study import compare, sweep
    from .tune import tune
    from .types import Experiment, Metric, TuneOutcome, Varied

#: public name → the module of this package that defines it
_HOMES = {"compare": ".study", "sweep": ".study", "tune": ".tune", "Experiment": ".types",
          "Metric": ".types", "TuneOutcome": ".types", "Varied": ".types"}

__all__ = ["Experiment", "Metric", "TuneOutcome", "Varied", "compare", "sweep", "tune"]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value  # later lookups find it without this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
