"""simsub — a simulator of an ISP's mail submission service under attack by bots
that log in with stolen passwords, for tuning tarpits and throttles before
touching a production Postfix.

Public API::

    import simsub
    scenario = simsub.load_scenario("scenarios/may-2012.toml")
    result = simsub.run(scenario, policy="selective-1-5s", seed=1)
    result.summary["spam"]["recipients_accepted"]
    result.messages  # pandas DataFrame, one row per message

    experiment = simsub.compare(policies=["none", "selective-1-5s"], replications=5)
    simsub.write_experiment(experiment, "results/my-comparison")
"""

# First: it decides, before any compiled module is imported, whether they run compiled
# or from their sources (SIMSUB_PURE_PYTHON=1; see simsub.build).
from . import build  # noqa: I001
from .api import Result, run
from .errors import ScenarioError
from .scenario import Scenario, load_scenario
from .version import __version__

#: Loaded on first use, so that ``import simsub`` stays light (no matplotlib, no executors).
_LAZY = {"compare": "simsub.experiments", "sweep": "simsub.experiments", "tune": "simsub.experiments",
         "write_run": "simsub.report", "write_experiment": "simsub.report"}

# The lazy names are attributes, not in __all__, so that tools walking __all__ (the API
# reference) need not import them to list the package.
__all__ = ["Result", "Scenario", "ScenarioError", "__version__", "load_scenario", "run"]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'simsub' has no attribute {name!r}")
