"""Every command in README.md's ``sh`` blocks, and every ``python`` block, runs as written.

How, by kind of command:

* ``.venv/bin/simsub ARGS`` calls :func:`simsub.cli.main` with ARGS in a checkout-like folder
  (tests/commands.py, shared with the test of ``--help``'s examples), with its shorter-run options
  appended where the command simulates (argparse takes the last value).  ``sudo`` is dropped: the
  commands that need root are marked ``postfix``, which runs only as root (CI runs as root).
* A ``simsub`` command that is also one of ``simsub --help``'s examples, word for word, is run by
  tests/test_help_examples.py (with the same shortening and marks); here it is only checked to be
  there, so the suite does not run it twice.
* A command that reads what an earlier command of its block wrote (an argument under that
  command's ``--out``) runs after it, in the same folder, as a reader of the README would.
* ``make demo`` and ``make test`` cannot run inside the test suite (``make test`` *is* the suite,
  and ``make`` would build a virtual environment): their recipes are read from the Makefile and
  asserted, so the test fails when README and Makefile diverge, and ``make demo``'s command then
  runs like any other simsub command.
* The Debian set-up lines (``debconf-set-selections``, ``apt-get install``) are asserted to be
  what ``make postfix`` runs and then run as written with ``--checkonly`` / ``--simulate``
  appended, so they are checked without changing the system (marked ``postfix``).
* A ``python`` block is executed in the checkout-like folder, with ``scenario.horizon = 2m`` added
  to its scenario overrides and one replication per policy, the same shortening as ``--horizon 2m
  --replications 1`` on the command line.

:func:`test_the_readme_is_read_completely` lists what was recognised: a new README command fails it
until it is given a case here.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass

import pytest

from tests.commands import ROOT, SHORTER, epilog_commands, run_simsub

README = ROOT / "README.md"
MAKEFILE = ROOT / "Makefile"
SIMSUB = ".venv/bin/simsub"


# ------------------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class Command:
    """One command line of a README block (continuations joined, the ``# comment`` kept in ``line``)."""

    block: int          # index of its sh block in README.md
    line: str
    words: tuple[str, ...]  # shlex words, comment dropped

    @property
    def kind(self) -> str:
        words = self.words[1:] if self.words[0] == "sudo" else self.words
        if words[0] == SIMSUB:
            return "simsub"
        return "make" if words[0] == "make" else "shell"

    @property
    def argv(self) -> list[str]:
        """The arguments after ``simsub`` (``simsub`` commands only)."""
        words = list(self.words[1:] if self.words[0] == "sudo" else self.words)
        return words[1:]

    @property
    def name(self) -> str:
        """What the command is, for the list of recognised commands: ``simsub run``, ``make demo``,
        ``apt-get`` (the program a shell line runs last)."""
        if self.kind == "simsub":
            return "simsub " + (self.argv[0] if self.argv else "")
        if self.kind == "make":
            return "make " + self.words[1]
        programs = [w for w in self.words if not re.fullmatch(r"[A-Z_]+=.*", w) and w != "|"]
        after_pipe = self.words[self.words.index("|") + 1:] if "|" in self.words else programs
        return after_pipe[0]


def fenced_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.M | re.S)


def readme_commands(text: str | None = None) -> list[Command]:
    text = README.read_text(encoding="utf-8") if text is None else text
    commands = []
    for index, block in enumerate(fenced_blocks(text, "sh")):
        pending = ""
        for raw in block.splitlines():
            if raw.rstrip().endswith("\\"):
                pending += raw.rstrip()[:-1].strip() + " "
                continue
            line = (pending + raw.strip()).strip()
            pending = ""
            words = tuple(shlex.split(line, comments=True))
            if words:
                commands.append(Command(index, line, words))
        assert not pending, f"sh block {index} ends in a continuation"
    return commands


def without_comment(line: str) -> str:
    """The shell line without its trailing ``# comment`` (README comments follow two spaces)."""
    code = re.split(r"\s{2,}#", line)[0].rstrip()
    assert shlex.split(code) == shlex.split(line, comments=True), line
    return code


def _reads(command: Command, folder: str) -> bool:
    """Whether an argument of ``command`` other than its own ``--out`` is ``folder`` or inside it."""
    words = command.words
    inputs = [w for i, w in enumerate(words) if i == 0 or words[i - 1] != "--out"]
    return any(w == folder or w.startswith(folder + "/") for w in inputs)


def prerequisites(command: Command, commands: list[Command]) -> list[Command]:
    """The earlier commands of ``command``'s block whose ``--out`` folder it reads, transitively, in order."""
    earlier = [c for c in commands if c.block == command.block and commands.index(c) < commands.index(command)]
    needed: list[Command] = []
    for other in reversed(earlier):
        if "--out" not in other.words:
            continue
        out = other.words[other.words.index("--out") + 1]
        if any(_reads(reader, out) for reader in (command, *needed)):
            needed.insert(0, other)
    return needed


# ------------------------------------------------------------------------------------ Makefile
def makefile_variables(text: str) -> dict[str, str]:
    return {m[1]: m[2].strip() for m in re.finditer(r"^(\w+)\s*[:?]?=\s*(.*)$", text, flags=re.M)}


def expand(text: str, variables: dict[str, str]) -> str:
    """``$(NAME)`` replaced by its value until none of the Makefile's variables is left."""
    while True:
        done = re.sub(r"\$\((\w+)\)", lambda m: variables.get(m[1], m[0]), text)
        if done == text:
            return text
        text = done


def make_target(name: str, text: str | None = None) -> tuple[list[str], list[str]]:
    """``name``'s prerequisites and recipe lines, variables expanded."""
    text = MAKEFILE.read_text(encoding="utf-8") if text is None else text
    variables = makefile_variables(text)
    for m in re.finditer(r"^([^\s:#=]+):(?!=)(.*)\n((?:\t.*\n)*)", text, flags=re.M):
        if expand(m[1], variables) == name:
            prerequisites = [expand(p, variables) for p in m[2].split()]
            return prerequisites, [expand(line.strip(), variables) for line in m[3].splitlines()]
    raise AssertionError(f"Makefile has no target {name}")


def postfix_setup_lines() -> list[str]:
    """The two set-up commands of ``make postfix`` (the branch for root with apt-get), as a shell runs them."""
    _, recipe = make_target("postfix")
    text = " ".join(line.rstrip("\\").strip() for line in recipe)
    debconf = re.search(r"echo \"postfix [^\"]*\" \| debconf-set-selections", text)[0]
    apt = re.search(r"DEBIAN_FRONTEND=noninteractive apt-get install [^;|>&]*", text)[0].strip()
    return [debconf, apt]


# ------------------------------------------------------------------------------------- the list
COMMANDS = readme_commands()

#: Every command of README.md's sh blocks, in order.  A new one fails here until it has a case below.
RECOGNISED = [
    "make demo", "make test",
    "simsub run", "simsub run", "simsub run", "simsub run", "simsub check", "simsub --help",
    "simsub compare", "simsub compare", "simsub sweep", "simsub tune",
    "simsub export-postfix", "simsub export-postfix", "simsub twin",
    "debconf-set-selections", "apt-get",
    "simsub run", "simsub maillog", "simsub replay",
]


def test_the_readme_is_read_completely():
    assert [c.name for c in COMMANDS] == RECOGNISED
    tune = next(c for c in COMMANDS if c.name == "simsub tune")
    assert tune.argv[-4:] == ["--require", "spam.reduction>=0.95", "--minimize", "legit.false_delay_rate.5s"]
    assert len(fenced_blocks(README.read_text(encoding="utf-8"), "python")) == 2
    assert len(CASES) == len(COMMANDS)  # every command has exactly one case
    # ... of which these are run by the test of --help's examples, word for word the same
    assert [c.name for c in COMMANDS if in_the_epilog(c)] == [
        "simsub run", "simsub run", "simsub check", "simsub compare", "simsub sweep", "simsub tune",
        "simsub export-postfix", "simsub twin"]


def test_a_command_that_reads_an_earlier_one_s_output_runs_after_it():
    parse, replay = (next(c for c in COMMANDS if c.name == name) for name in ("simsub maillog", "simsub replay"))
    assert [c.name for c in prerequisites(replay, COMMANDS)] == ["simsub run", "simsub maillog"]
    assert [c.name for c in prerequisites(parse, COMMANDS)] == ["simsub run"]
    assert all(prerequisites(c, COMMANDS) == [] for c in COMMANDS[:10])


def in_the_epilog(command: Command) -> bool:
    """Whether tests/test_help_examples.py runs ``command`` already (the same words after ``simsub``)."""
    return command.kind == "simsub" and ["simsub", *command.argv] in epilog_commands()


def _marks(command: Command) -> list:
    argv = command.argv if command.kind == "simsub" else []
    marks = []
    if in_the_epilog(command):
        return marks  # nothing runs here
    if command.kind == "shell" or command.words[0] == "sudo" or "--check" in argv:
        marks.append(pytest.mark.postfix)
    # The twin plays in real time (about a minute); everything else is shortened to seconds, so make demo,
    # the Quick start's first command, runs in the default suite.
    if argv and argv[0] == "twin":
        marks.append(pytest.mark.slow)
    return marks


def _id(command: Command) -> str:
    return " ".join(command.words)


CASES = [pytest.param(c, id=_id(c), marks=_marks(c)) for c in COMMANDS]


# -------------------------------------------------------------------------------------- running
def needs_postfix() -> None:
    from simsub.postfix.instance import unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(str(reason))


def demo_argv() -> list[str]:
    """What ``make demo`` runs, as ``simsub`` arguments: its recipe read from the Makefile."""
    _, recipe = make_target("demo")
    assert len(recipe) == 1, recipe
    words = shlex.split(recipe[0])
    assert words[0] == SIMSUB, recipe
    return words[1:]


def test_make_demo_runs_the_compare_the_readme_describes():
    """The Quick start's account of ``make demo``: ``simsub compare`` of the default scenario, writing
    results/may-2012/compare/report.html, after installing simsub into .venv."""
    prerequisites_, _ = make_target("demo")
    assert demo_argv() == ["compare"]
    assert prerequisites_ == [".venv/.installed"]
    quick_start = README.read_text(encoding="utf-8").split("## Quick start")[1].split("\n## ")[0]
    assert "`make demo` runs `simsub compare`" in quick_start
    assert "results/may-2012/compare/report.html" in quick_start


def test_make_test_is_the_suite_with_the_tools_the_quick_start_names():
    """``make test`` runs this suite after ``make tools``; the Quick start names every Debian package that
    installs and every Python package the virtual environment gets."""
    prerequisites_, recipe = make_target("test")
    assert recipe == [".venv/bin/python -m pytest"]
    assert prerequisites_ == [".venv/.installed", "tools"]
    tools, _ = make_target("tools")
    debian = []
    for tool in tools:
        _, lines = make_target(tool)
        text = " ".join(lines)
        debian += re.findall(r"apt-get install -y -q ([a-z0-9 -]+?) *(?:>|$)", text)
        debian += re.findall(r"\$\(call apt_tool,[^,]*,([a-z0-9-]+),", text)
    packages = sorted({p for group in debian for p in group.split()})
    assert packages == ["pflogsumm", "postfix", "postfix-pcre", "postfwd"]
    quick_start = README.read_text(encoding="utf-8").split("## Quick start")[1].split("\n## ")[0]
    assert all(f"`{p}`" in quick_start for p in packages), packages
    assert f"installs {['no', 'one', 'two', 'three', 'four', 'five'][len(packages)]} Debian packages" in quick_start
    _, install = make_target(".venv/.installed")
    assert any("pip install --quiet -e '.[test]'" in line for line in install), install
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["test"]
    names = {re.match(r"[A-Za-z0-9_.-]+", spec)[0] for spec in wanted}
    missing = [n for n in sorted(names) if f"`{n}`" not in quick_start]
    assert not missing, f"the Quick start does not say make installs {missing}"


@pytest.mark.parametrize("command", CASES)
def test_every_readme_command_runs(command, project_like, capsys):
    if command.kind == "make":
        if command.name == "make test":
            # this suite is what make test runs: test_make_test_is_the_suite_... asserts the recipe
            assert make_target("test")[1] == [".venv/bin/python -m pytest"]
            return
        run_simsub(demo_argv(), capsys)
        assert (project_like / "results" / "may-2012" / "compare" / "report.html").is_file()
        return
    if command.kind == "shell":
        run_setup_line(command)
        return
    if in_the_epilog(command):
        assert not prerequisites(command, COMMANDS)  # it runs alone there
        return
    if any(m.name == "postfix" for m in _marks(command)):
        needs_postfix()
    for earlier in prerequisites(command, COMMANDS):
        run_simsub(earlier.argv, capsys)
    run_simsub(command.argv, capsys)


#: What each set-up line gets appended so that it checks instead of changing the system.
CHECK_ONLY = {"debconf-set-selections": "--checkonly", "apt-get": "--simulate"}


def run_setup_line(command: Command) -> None:
    """A Debian set-up line of the README: what ``make postfix`` runs, run with its check-only option."""
    code = without_comment(command.line)
    assert shlex.split(code) in [[w for w in shlex.split(line) if w != "-q"] for line in postfix_setup_lines()], code
    if os.geteuid() != 0 or not shutil.which("apt-get") or not shutil.which("debconf-set-selections"):
        pytest.skip("needs root on Debian (apt-get, debconf-set-selections)")
    done = subprocess.run(["bash", "-c", f"{code} {CHECK_ONLY[command.name]}"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr


def test_measured_durations_are_stated_in_one_place():
    """How long a command takes is said once, in the Quick start's table; elsewhere the README points there,
    so a re-measurement changes one line."""
    text = README.read_text(encoding="utf-8")
    table = text.split("### How long things take")[1].split("\n## ")[0]
    rest = text.replace(table, "")
    measured = r"\d[\d.,]*\s?(?:s|min|minutes|h|hours)\s+(?:of\s+)?(?:CPU|compute|wall)"
    assert re.findall(measured, table)  # the pattern finds the table's own figures
    assert not re.findall(measured, rest), "a duration outside 'How long things take'"
    assert rest.count("(#how-long-things-take)") >= 5


# ------------------------------------------------------------------------------- python blocks
PYTHON_BLOCKS = fenced_blocks(README.read_text(encoding="utf-8"), "python")


@pytest.mark.parametrize("source", PYTHON_BLOCKS, ids=[f"python block {i + 1}" for i in range(len(PYTHON_BLOCKS))])
def test_every_readme_python_block_runs(source, project_like, monkeypatch):
    import simsub
    import simsub.experiments

    horizon = SHORTER["run"][SHORTER["run"].index("--horizon") + 1]
    load = simsub.load_scenario

    def shorter_load(path=None, overrides=None):
        return load(path, {**(overrides or {}), "scenario.horizon": horizon})

    def shorter(study):
        def call(*args, **kwargs):
            kwargs["overrides"] = {**(kwargs.get("overrides") or {}), "scenario.horizon": horizon}
            kwargs["replications"] = 1
            return study(*args, **kwargs)
        return call

    monkeypatch.setattr(simsub, "load_scenario", shorter_load)
    for name in ("compare", "sweep", "tune"):
        monkeypatch.setattr(simsub.experiments, name, shorter(getattr(simsub.experiments, name)))
    namespace: dict = {}
    exec(compile(source, "README.md python block", "exec"), namespace)
    # what the block names exists and is what the README says it is
    if "result" in namespace:
        result = namespace["result"]
        assert result.policy == "selective-1-5s" and len(result.messages) > 0
        assert result.scenario.horizon == 120.0  # the shortening reached the run
    if "experiment" in namespace:
        experiment = namespace["experiment"]
        assert sorted(experiment.runs["policy"].unique()) == ["none", "selective-1-5s"]
        assert experiment.replications == 1  # the shortening reached the study
        assert (project_like / "results" / "my-comparison" / "report.html").is_file()
