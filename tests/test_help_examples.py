"""Every command of ``simsub --help``'s examples runs as written.

How (a checkout-like folder, shorter horizons appended where a command simulates): tests/commands.py,
shared with the test of README.md's commands.
"""

from __future__ import annotations

import pytest

from simsub.cli import main
from tests.commands import epilog_commands, run_simsub


def test_the_epilog_is_read_completely():
    commands = epilog_commands()
    assert [c[1] for c in commands] == ["run", "run", "run", "check", "compare", "compare", "sweep", "tune",
                                        "export-postfix", "twin"]
    tune = next(c for c in commands if c[1] == "tune")
    assert tune[-4:] == ["--require", "spam.reduction>=0.95", "--minimize", "legit.false_delay_rate.5s"]


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
    run_simsub(command[1:], capsys)


@pytest.mark.postfix
@pytest.mark.slow
@pytest.mark.parametrize("command", [c for c in epilog_commands() if c[1] == "twin"], ids=" ".join)
def test_the_twin_example_runs_as_written(command, project_like, capsys):
    import os
    import shutil

    if os.geteuid() != 0 or not shutil.which("postfix", path="/usr/sbin:/usr/bin"):
        pytest.skip("needs root and Postfix (make postfix)")
    assert main(command[1:]) == 0, capsys.readouterr().err
