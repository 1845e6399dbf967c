"""Running documented commands as written: shared by the tests of ``simsub --help``'s examples
(tests/test_help_examples.py) and of README.md's commands (tests/test_readme_commands.py).

A command runs in a fresh folder with ``scenarios`` linked to the project's (the ``project_like``
fixture of tests/conftest.py), so relative paths work as they do in a checkout and results land in
the temporary folder.  Where running as written would take minutes (a simulated day per run; dozens
of runs), :data:`SHORTER` options are appended: argparse takes the last value, so the command is
otherwise unchanged.  Which commands get them is decided by what they are, not by name.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from simsub.cli import EPILOG

ROOT = Path(__file__).resolve().parents[1]

#: Options appended to the subcommands that simulate, keyed by subcommand; the rest (check,
#: export-postfix, maillog parse) run exactly as written.  2 simulated minutes of the default
#: scenario are about 35 sessions; one replication per policy is enough to exercise the report.
SHORTER = {"run": ["--horizon", "2m"], "compare": ["--horizon", "2m", "--replications", "1"],
           "sweep": ["--horizon", "2m", "--replications", "1"],
           "tune": ["--horizon", "2m", "--replications", "1"],
           # a replay's length is its log's (a shortened run's); only the seeds per policy are cut
           "replay": ["--replications", "1"]}


def shortened(argv: list[str]) -> list[str]:
    """``argv`` (the arguments after ``simsub``) with :data:`SHORTER`'s options for its subcommand."""
    return list(argv) + (SHORTER.get(argv[0], []) if argv else [])


def run_simsub(argv: list[str], capsys) -> None:
    """``simsub ARGV`` through :func:`simsub.cli.main`, shortened (``--help`` exits 0 after printing): exit
    status 0 and nothing on stderr that reads as an error or a traceback."""
    from simsub.cli import main

    try:
        status = main(shortened(argv))
    except SystemExit as stop:  # argparse's --help
        status = stop.code
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "Traceback" not in captured.err and "error" not in captured.err.lower(), captured.err


def make_project_like(tmp_path: Path) -> Path:
    """``tmp_path`` with ``scenarios`` linked to the project's; returns it."""
    (tmp_path / "scenarios").symlink_to(ROOT / "scenarios")
    return tmp_path


def epilog_commands(text: str = EPILOG) -> list[list[str]]:
    """The example commands: lines starting with "simsub", backslash continuations joined, the
    explanation after two or more spaces dropped."""
    lines = text.splitlines()
    commands, pending = [], ""
    for line in lines:
        stripped = line.strip()
        if not pending and not stripped.startswith("simsub "):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        command = pending + stripped
        pending = ""
        words = shlex.split(re.split(r"\s{2,}(?=[a-z(])", command)[0] if "  " in command else command)
        commands.append(words)
    return commands
