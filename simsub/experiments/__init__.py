"""Replicated, paired experiments: compare policies, sweep parameters, tune them.

``compare``, ``sweep`` and ``tune`` return an :class:`Experiment` (tables as
pandas DataFrames); :func:`simsub.report.write_experiment` writes it with its report.
"""

from .study import compare, sweep
from .tune import tune
from .types import Experiment, Metric, TuneOutcome, Varied

__all__ = ["Experiment", "Metric", "TuneOutcome", "Varied", "compare", "sweep", "tune"]
