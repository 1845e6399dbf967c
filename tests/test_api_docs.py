"""The API reference (make api-docs) builds from the docstrings without warnings,
and documents what notebook users call."""

from __future__ import annotations

import os
import subprocess
import sys


def test_api_reference_builds_and_documents_the_public_api(tmp_path):
    modules = ["simsub", "simsub.scenario", "simsub.workload", "simsub.analysis", "simsub.experiments",
               "simsub.report"]
    # From the sources: compiled functions keep no docstrings (the Makefile does the same).
    done = subprocess.run([sys.executable, "-m", "pdoc", "--docformat", "restructuredtext", "-o", str(tmp_path),
                           *modules], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "SIMSUB_PURE_PYTHON": "1"})
    assert done.returncode == 0, done.stderr
    assert "Warn" not in done.stderr, done.stderr
    top = (tmp_path / "simsub.html").read_text()
    assert "def run" in top or "run(" in top
    assert "common random numbers" in (tmp_path / "simsub" / "workload" / "synthetic.html").read_text()
    assert "write_experiment" in (tmp_path / "simsub" / "report.html").read_text()
