"""Build hook: compile the simulation's hot modules with mypyc, or fall back to pure Python.

hatchling runs this for every wheel build, editable (``pip install -e .``, what
``make`` does) or not.  The modules to compile are listed once, in pyproject.toml
(``[tool.hatch.build.targets.wheel.hooks.custom] compile``).  It writes
``simsub/_compiled.json``, which :mod:`simsub.build` reads at import time:

- compiled: the extension modules (one per listed module, plus the shared
  ``simsub__mypyc`` library mypyc puts their code in) and each source's sha256,
  so that a source edited after the build is noticed and run from its source;
- pure: why not (``SIMSUB_PURE_PYTHON=1`` at build time, or the compiler failed).

A failed compilation never fails the install: the package is then the pure-Python
one, which gives identical results, only slower; the reason is printed on stderr
(``pip install -v`` shows it) and ``simsub --version`` repeats it.

In an editable install the package is imported from the source tree, so the
extension modules are copied next to their sources (as ``setup.py build_ext
--inplace`` would); a later pure build removes them again.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

MANIFEST = "simsub/_compiled.json"
PURE_ENV = "SIMSUB_PURE_PYTHON"
GROUP = "simsub"  # mypyc's shared library: the top-level extension module simsub__mypyc


def _say(message: str) -> None:
    bar = "=" * 78
    print(f"\n{bar}\nsimsub build: {message}\n{bar}\n", file=sys.stderr, flush=True)


class CompiledBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        sources = sorted({p for pattern in self.config.get("compile", [])
                          for p in glob.glob(pattern, root_dir=root)})
        editable = version == "editable"
        if editable:
            _remove_inplace(root)
        if os.environ.get(PURE_ENV, "") not in ("", "0"):
            _say(f"{PURE_ENV}={os.environ[PURE_ENV]}: building the pure-Python package (nothing compiled)")
            self._write(root, build_data, editable, {"compiled": False, "reason": f"built with {PURE_ENV} set"})
            return
        work = Path(tempfile.mkdtemp(prefix="simsub-mypyc-"))
        try:
            try:
                built = _compile(root, sources, work)
            except (Exception, SystemExit) as exc:  # setuptools reports compiler errors as SystemExit
                traceback.print_exc(file=sys.stderr)
                detail = "see the messages above" if isinstance(exc, SystemExit) else str(exc).strip()[:100]
                reason = f"compiling with mypyc failed ({type(exc).__name__}: {detail})"
                _say(f"{reason}.\nBuilding the PURE-PYTHON package instead: identical results, slower.")
                self._write(root, build_data, editable, {"compiled": False, "reason": reason})
                return
            manifest = {
                "compiled": True,
                "modules": {_module(s): hashlib.sha256((root / s).read_bytes()).hexdigest() for s in sources},
                "extensions": sorted(built),
            }
            build_data["pure_python"] = False
            build_data["infer_tag"] = True
            for relative, path in built.items():
                if editable:
                    shutil.copy2(path, root / relative)
                else:
                    build_data["force_include"][str(path)] = relative
            self._write(root, build_data, editable, manifest)
            print(f"simsub build: compiled {len(sources)} modules with mypyc", file=sys.stderr)
        finally:
            if editable:
                shutil.rmtree(work, ignore_errors=True)
            else:
                self._work = work  # the wheel is assembled from it after this returns

    def finalize(self, version: str, build_data: dict, artifact_path: str) -> None:
        work = getattr(self, "_work", None)
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)

    def _write(self, root: Path, build_data: dict, editable: bool, manifest: dict) -> None:
        text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
        if editable:
            (root / MANIFEST).write_text(text)
        else:
            path = Path(tempfile.mkdtemp(prefix="simsub-manifest-")) / "_compiled.json"
            path.write_text(text)
            build_data["force_include"][str(path)] = MANIFEST


def _module(source: str) -> str:
    return source.removesuffix(".py").replace("/", ".")


def _remove_inplace(root: Path) -> None:
    """Forget an earlier editable build's extension modules and manifest."""
    manifest = root / MANIFEST
    if manifest.exists():
        for relative in json.loads(manifest.read_text()).get("extensions", []):
            (root / relative).unlink(missing_ok=True)
        manifest.unlink()


def _compile(root: Path, sources: list[str], work: Path) -> dict[str, Path]:
    """Compile ``sources`` (paths relative to ``root``); {path in the wheel: built file}."""
    if not sources:
        raise RuntimeError("no module to compile (the compile list in pyproject.toml matched no file)")
    from mypyc.build import mypycify  # imported here so that a broken mypy only means a pure build
    from setuptools import Distribution
    from setuptools.command.build_ext import build_ext

    cwd = os.getcwd()
    os.chdir(root)  # mypycify wants paths relative to the project (module names follow from them)
    try:
        extensions = mypycify([f"--config-file={root / 'pyproject.toml'}", *sources],
                              group_name=GROUP, target_dir=str(work / "c"))
        command = build_ext(Distribution({"name": "simsub", "ext_modules": extensions}))
        command.build_lib = str(work / "lib")
        command.build_temp = str(work / "temp")
        command.parallel = os.cpu_count() or 1
        command.ensure_finalized()
        command.run()
    finally:
        os.chdir(cwd)
    lib = work / "lib"
    return {p.relative_to(lib).as_posix(): p for p in lib.rglob("*") if p.is_file()}
