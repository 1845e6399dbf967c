"""The report of an experiment: its charts, report.md and a self-contained report.html."""

from __future__ import annotations

from pathlib import Path

from ..experiments.types import Experiment
from . import data
from .document import to_html, to_markdown
from .experiment import build_document
from .figures import write_figures

REPORT_MD = "report.md"
REPORT_HTML = "report.html"


def write_report(experiment: Experiment, folder: Path) -> list[Path]:
    """Write the charts (PNG) and report.md and report.html into `folder` (exists, empty of these names);
    return the paths written."""
    folder = Path(folder)
    table = data.wide(experiment)
    figures, problems = write_figures(experiment, table, folder)
    doc = build_document(experiment, table, figures, problems)
    md = folder / REPORT_MD
    md.write_text(to_markdown(doc, folder), encoding="utf-8")
    page = folder / REPORT_HTML
    page.write_text(to_html(doc), encoding="utf-8")
    return [f.path for f in figures] + [md, page]
