"""Which build of the simulation's hot modules runs: compiled with mypyc, or pure Python.

The install step compiles the modules listed in pyproject.toml with mypyc
(hatch_build.py) and records them in ``_compiled.json`` beside this file.  Both
builds give bit-identical results; the compiled one is faster.  The pure-Python
modules run instead of the compiled ones when:

- ``SIMSUB_PURE_PYTHON=1`` is set when simsub is imported (one installation runs
  both builds: the tests run against each);
- a listed source changed after the build (an edited checkout): the stale
  extension modules would hide the edit, so all listed modules run from their
  sources and a warning on stderr says to reinstall;
- nothing was compiled (the build fell back to pure Python, or the package runs
  from a plain source tree).

:data:`KIND` is ``"compiled"`` or ``"pure"``, :data:`DESCRIPTION` says why in a
few words (``simsub --version`` prints it).  The choice is made once, when simsub
is first imported, before any listed module is.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from pathlib import Path

#: Set to 1 at import (or build) time for the pure-Python build.
PURE_ENV = "SIMSUB_PURE_PYTHON"
_HERE = Path(__file__).resolve().parent
_MANIFEST = _HERE / "_compiled.json"


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Loads the listed modules from their ``.py`` sources even where a compiled
    extension module of the same name sits beside them (which the normal path
    finder would prefer)."""

    def __init__(self, modules: frozenset[str]):
        self.modules = modules

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.modules or not path:
            return None
        for directory in path:
            source = Path(directory) / (fullname.rsplit(".", 1)[-1] + ".py")
            if source.is_file():
                return importlib.util.spec_from_file_location(fullname, source)
        return None


def _stale(modules: dict[str, str], extensions: list[str]) -> list[str]:
    """The listed sources that differ from the ones compiled, and missing extension files."""
    root = _HERE.parent
    changed = []
    for module, digest in modules.items():
        source = root / (module.replace(".", "/") + ".py")
        if not source.is_file() or hashlib.sha256(source.read_bytes()).hexdigest() != digest:
            changed.append(str(source.relative_to(root)))
    changed += [f"{e} (missing)" for e in extensions if not (root / e).is_file()]
    return changed


def _choose() -> tuple[str, str, frozenset[str]]:
    """(kind, description, listed modules) for this process; installs the source
    finder when the listed modules must run from their sources."""
    try:
        manifest = json.loads(_MANIFEST.read_text())
    except FileNotFoundError:
        return "pure", "pure Python (not compiled: no compiled build installed)", frozenset()
    if not manifest.get("compiled"):
        return "pure", f"pure Python (not compiled: {manifest.get('reason', 'unknown reason')})", frozenset()
    modules = frozenset(manifest["modules"])
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        why = f"{PURE_ENV}={os.environ[PURE_ENV]}"
    else:
        stale = _stale(manifest["modules"], manifest.get("extensions", []))
        if not stale:
            return "compiled", f"compiled with mypyc ({len(modules)} modules)", modules
        shown = ", ".join(stale[:3]) + (f" and {len(stale) - 3} more" if len(stale) > 3 else "")
        why = "compiled modules out of date"
        print(f"simsub: warning: {shown} changed since the compiled build: running all compiled modules "
              "from their sources (pure Python, slower); recompile with: .venv/bin/python -m pip install -e .",
              file=sys.stderr)
    sys.meta_path.insert(0, _SourceFinder(modules))
    return "pure", f"pure Python ({why})", modules


KIND, DESCRIPTION, MODULES = _choose()


def loaded_kinds() -> dict[str, str]:
    """{listed module already imported: "compiled" or "pure"}, read from the modules
    themselves (an extension module's file is not a ``.py``), to check :data:`KIND`."""
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    return {name: "compiled" if str(getattr(sys.modules[name], "__file__", "")).endswith(suffixes) else "pure"
            for name in sorted(MODULES) if name in sys.modules}
