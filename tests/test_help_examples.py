"""Every command of ``simsub --help``'s examples runs as written.

The commands run in a fresh folder with ``scenarios`` linked to the project's, so
relative paths work as they do in a checkout and results land in the temporary
folder.  Where running as written would take minutes (a simulated day per run;
dozens of runs), ``--horizon 2m`` (and ``--replications 1`` for experiments) is
appended: argparse takes the last value, so the command is otherwise unchanged.
Which commands get it is decided below, by what they are, not by name.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from simsub.cli import EPILOG, main

ROOT = Path(__file__).resolve().parents[1]
#: Commands that simulate; the rest (check, export-postfix) run exactly as written.
SIMULATING = {"run": ["--horizon", "2m"], "compare": ["--horizon", "2m", "--replications", "1"],
              "sweep": ["--horizon", "2m", "--replications", "1"],
              "tune": ["--horizon", "2m", "--replications", "1"]}


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


def test_the_epilog_is_read_completely():
    commands = epilog_commands()
    assert [c[1] for c in commands] == ["run", "run", "run", "check", "compare", "compare", "sweep", "tune",
                                        "export-postfix", "twin"]
    tune = next(c for c in commands if c[1] == "tune")
    assert tune[-4:] == ["--require", "spam.reduction>=0.95", "--minimize", "legit.false_delay_rate.5s"]


@pytest.fixture
def project_like(tmp_path, monkeypatch):
    (tmp_path / "scenarios").symlink_to(ROOT / "scenarios")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _cases():
    """Compares are slow-marked (about 8 s each with a pool and a report); sweep and tune, whose examples
    once named a policy and a file that do not exist, stay in the default run."""
    for command in epilog_commands():
        if command[1] == "twin":
            continue
        yield pytest.param(command, id=" ".join(command),
                           marks=[pytest.mark.slow] if command[1] == "compare" else [])


@pytest.mark.parametrize("command", list(_cases()))
def test_every_help_example_runs(command, project_like, capsys):
    argv = command[1:] + SIMULATING.get(command[1], [])
    assert main(argv) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error" not in err.lower()


@pytest.mark.postfix
@pytest.mark.slow
@pytest.mark.parametrize("command", [c for c in epilog_commands() if c[1] == "twin"], ids=" ".join)
def test_the_twin_example_runs_as_written(command, project_like, capsys):
    import os
    import shutil

    if os.geteuid() != 0 or not shutil.which("postfix", path="/usr/sbin:/usr/bin"):
        pytest.skip("needs root and Postfix (make postfix)")
    assert main(command[1:]) == 0, capsys.readouterr().err
