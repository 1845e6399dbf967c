"""The package's layers: every import points down (docs/architecture.md).

Each top-level unit of ``simsub`` (a subpackage or a module) sits in one layer;
it may import units of lower layers and its own modules, never a unit of its own
layer or above.  The import graph is read from the source with ``ast`` (imports
inside functions count too), so a new upward import fails here, naming the file,
the line and the two layers.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

import simsub

PACKAGE = Path(simsub.__file__).resolve().parent

#: Bottom to top.  Keep in step with the picture in docs/architecture.md.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("version", "build", "units", "errors"),  # foundations (build: compiled or pure-Python modules)
    ("distributions", "files"),  # random quantities of a scenario; result folders written atomically
    ("policy",),  # Postfix restrictions, maps and policy services (shared by model and daemon)
    ("scenario",),  # TOML -> validated Scenario
    ("estimate", "postfix", "maillog"),  # what reads a scenario without simulating it
    ("workload", "policyd"),  # who the clients are and what they send; the policy services served live
    ("model",),  # the SimPy model: simulates and records, computes no statistic
    ("analysis",),  # tables, summary, statistics, invariants of one run
    ("api",),  # run(): simulate + tabulate
    ("experiments",),  # compare, sweep, tune
    ("report",),  # result folders, charts, reports, maillogs of runs
    ("twin",),  # the model played against a real Postfix
    ("cli",),  # the command line
    ("__main__",),  # python -m simsub
)
LAYER_OF = {unit: i for i, units in enumerate(LAYERS) for unit in units}


def unit_of(module: str) -> str:
    """``simsub.model.world`` -> ``model``; the package facade is ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path, root: Path) -> str:
    return ".".join(("simsub",) + path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")


def imports_of(path: Path, root: Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, absolute module) of every simsub import in ``path`` (a file under ``root``)."""
    module = module_name(path, root)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "simsub"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                found += [(node.lineno, target)] if node.module else \
                    [(node.lineno, f"{target}.{a.name}") for a in node.names]
            elif node.module and node.module.split(".")[0] == "simsub":
                found.append((node.lineno, node.module))
    return found


def upward_imports(path: Path, root: Path = PACKAGE) -> list[str]:
    """Every import in ``path`` that does not point to a lower layer or its own unit."""
    here = unit_of(module_name(path, root))
    if here == "__init__":
        return []  # the facade re-exports the public API and may import anything
    wrong = []
    for line, module in imports_of(path, root):
        there = unit_of(module)
        if there != here and (there == "__init__" or LAYER_OF.get(there, 99) >= LAYER_OF[here]):
            wrong.append(f"{path.relative_to(root)}:{line} imports {module} "
                         f"(layer {LAYER_OF.get(there, '?')} '{there}' from layer {LAYER_OF[here]} '{here}')")
    return wrong


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_unit_has_a_layer():
    units = {unit_of(module_name(p, PACKAGE)) for p in SOURCES} - {"__init__"}
    missing = sorted(u for u in units if u not in LAYER_OF)
    assert not missing, f"give these a layer in LAYERS and docs/architecture.md: {missing}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    wrong = upward_imports(path)
    assert not wrong, "imports must point down (docs/architecture.md):\n" + "\n".join(wrong)


def test_the_checker_catches_upward_and_sideways_imports(tmp_path):
    """The check above can fail: a model module importing the report (up), a policy
    module importing the scenario (up, inside a function), and the maillog package
    importing the daemon (same layer) are each reported; a downward import is not."""
    root = tmp_path / "simsub"
    (root / "model").mkdir(parents=True)
    (root / "policy").mkdir()
    (root / "maillog").mkdir()
    (root / "model" / "probe.py").write_text("from ..report import write_run\nfrom ..workload.rng import Streams\n")
    (root / "policy" / "probe.py").write_text("def f():\n    from simsub.scenario import load_scenario\n")
    (root / "maillog" / "probe.py").write_text("from ..policyd import server\nfrom ..files import atomic_folder\n")
    assert [w.split(" (")[0] for w in upward_imports(root / "model" / "probe.py", root)] == \
        ["model/probe.py:1 imports simsub.report"]
    assert [w.split(" (")[0] for w in upward_imports(root / "policy" / "probe.py", root)] == \
        ["policy/probe.py:2 imports simsub.scenario"]
    assert [w.split(" (")[0] for w in upward_imports(root / "maillog" / "probe.py", root)] == \
        ["maillog/probe.py:1 imports simsub.policyd"]


def test_version_agrees_with_pyproject():
    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    assert project["version"] == simsub.__version__
