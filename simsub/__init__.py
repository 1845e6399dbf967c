"""simsub — a simulator of an ISP's mail submission service under attack by bots
that log in with stolen passwords, for tuning tarpits and throttles before
touching a production Postfix.

Public API::

    import simsub
    scenario = simsub.load_scenario("scenarios/may-2012.toml")
    result = simsub.run(scenario, policy="selective-1-5s", seed=1)
    result.summary["spam"]["recipients_accepted"]
    result.messages  # pandas DataFrame, one row per message
"""

__version__ = "0.1.0"

from .errors import ScenarioError  # noqa: E402
from .scenario import Scenario, load_scenario  # noqa: E402
from .api import Result, run  # noqa: E402

__all__ = ["Result", "Scenario", "ScenarioError", "__version__", "load_scenario", "run"]
