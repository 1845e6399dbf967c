"""Everything a person or a tool reads: result folders, charts and reports.

``write_run(result, folder)`` writes a run's folder (tables, resolved scenario,
charts); ``write_experiment(experiment, folder)`` writes an experiment's tables,
``experiment.json`` and its report; ``write_report(experiment, folder)`` writes
the charts and report.md / report.html alone; ``findings(experiment)`` gives the
plain-language findings.  Nothing below this layer imports it.
"""

from .documents import REPORT_HTML, REPORT_MD, write_report
from .experiment_folder import write_experiment
from .figures import chart_names
from .findings import findings
from .run_folder import write_run

__all__ = ["write_report", "write_experiment", "write_run", "findings", "chart_names", "REPORT_MD", "REPORT_HTML"]
