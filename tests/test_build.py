"""The compiled build (mypyc) and the pure-Python one give bit-identical results.

``make`` compiles the modules listed in pyproject.toml (hatch_build.py);
``SIMSUB_PURE_PYTHON=1`` at import time runs the same installation from its
sources (simsub.build).  The comparison below fails when the compiled build is not
actually loaded, so a build that silently fell back to pure Python cannot pass it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import simsub
from simsub import build
from tests.conftest import REPO

#: Prints the build, how each listed module was loaded, and the hash of every table of
#: a run of the default scenario past the bots' start (noon) with a tarpit policy.
PROBE = """
import json, simsub
from simsub import build
from tests.reference_hashes import table_hash
result = simsub.run(simsub.load_scenario("scenarios/may-2012.toml", {"horizon": "13h"}),
                    policy="selective-1-5s", seed=3)
hashes = {t: table_hash(getattr(result, t)) for t in ("messages", "sessions", "timeseries", "deliveries", "events")
          if getattr(result, t) is not None}
print(json.dumps({"kind": build.KIND, "loaded": build.loaded_kinds(), "hashes": hashes,
                  "spam": result.summary["spam"]["messages"]}))
"""


def _probe(pure: bool) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != build.PURE_ENV}
    if pure:
        env[build.PURE_ENV] = "1"
    return subprocess.Popen([sys.executable, "-c", PROBE], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.skipif(os.environ.get(build.PURE_ENV, "") not in ("", "0"),
                    reason=f"{build.PURE_ENV} is set: this pass tests the pure build; "
                           "the comparison with the compiled one runs in the default pass")
def test_compiled_and_pure_builds_give_identical_tables():
    assert build.KIND == "compiled", (
        f"simsub is not running compiled ({build.DESCRIPTION}); install it with `make` or "
        f"`pip install -e .` (needs a C compiler), or run the suite with {build.PURE_ENV}=1")
    compiled, pure = _probe(pure=False), _probe(pure=True)  # in parallel
    outputs = []
    for process in (compiled, pure):
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err
        outputs.append(json.loads(out))
    compiled_run, pure_run = outputs
    assert compiled_run["kind"] == "compiled" and set(compiled_run["loaded"].values()) == {"compiled"}, compiled_run
    assert pure_run["kind"] == "pure" and set(pure_run["loaded"].values()) == {"pure"}, pure_run
    # The model modules the run needs were imported (and so checked above).
    assert {"simsub.model.queue", "simsub.model.session", "simsub.model.world"} <= compiled_run["loaded"].keys()
    assert compiled_run["spam"] > 0  # the bots ran: the comparison covers their part of the model
    assert compiled_run["hashes"] == pure_run["hashes"]


#: Parses Postfix logs of the fixtures with the command's writer and prints how the parser's modules
#: were loaded and the SHA-256 of every file written (stats.json without its command line).  Classic
#: stamps give int times and RFC 3339 ones floats, which the CSV text tells apart (5 and 5.0): a
#: compiled build that turned one into the other would differ here.
PARSE_PROBE = """
import hashlib, json, sys, tempfile
from pathlib import Path
from simsub import build
from simsub.maillog.parse import parse_into
from simsub.maillog.tables import Buffers, CsvSink
logs = {"rotated": ["maillog.2.gz", "maillog.1.gz", "maillog"], "rfc3339": ["rsyslog-rfc3339.log"],
        "instances": ["journald-instances.log"], "twin": ["twin-refuse.maillog"]}
hashes = {}
for name, files in logs.items():
    with tempfile.TemporaryDirectory() as tmp:
        sink = CsvSink(Path(tmp))
        try:
            stats = parse_into([Path("tests/fixtures/maillog") / f for f in files], Buffers(sink), year=2026)
        finally:
            sink.close()
        hashes[name] = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(tmp).iterdir())}
        hashes[name]["stats"] = hashlib.sha256(json.dumps(stats, sort_keys=True).encode()).hexdigest()
print(json.dumps({"loaded": {m: k for m, k in build.loaded_kinds().items() if ".maillog." in m}, "hashes": hashes}))
"""


@pytest.mark.skipif(os.environ.get(build.PURE_ENV, "") not in ("", "0"),
                    reason=f"{build.PURE_ENV} is set: the comparison with the compiled build runs in the default pass")
def test_compiled_and_pure_parsers_write_identical_tables():
    assert build.KIND == "compiled", f"simsub is not running compiled ({build.DESCRIPTION})"
    env = {k: v for k, v in os.environ.items() if k != build.PURE_ENV}
    runs = []
    for extra in ({}, {build.PURE_ENV: "1"}):
        done = subprocess.run([sys.executable, "-c", PARSE_PROBE], cwd=REPO, env={**env, **extra}, text=True,
                              capture_output=True, timeout=600)
        assert done.returncode == 0, done.stderr
        runs.append(json.loads(done.stdout))
    compiled_run, pure_run = runs
    parser_modules = {"simsub.maillog.parse", "simsub.maillog.lines", "simsub.maillog.events", "simsub.maillog.tables"}
    assert parser_modules <= compiled_run["loaded"].keys(), compiled_run["loaded"]
    assert set(compiled_run["loaded"].values()) == {"compiled"}, compiled_run["loaded"]
    assert set(pure_run["loaded"].values()) == {"pure"}, pure_run["loaded"]
    assert all(len(files) == 7 for files in compiled_run["hashes"].values())  # six tables and the stats
    assert compiled_run["hashes"] == pure_run["hashes"]


def test_this_process_loaded_the_build_it_reports():
    import simsub.model.queue  # noqa: F401  (a listed module, so that there is one to check)

    assert set(build.loaded_kinds().values()) == {build.KIND}, (build.KIND, build.loaded_kinds())


def test_version_names_the_build():
    out = subprocess.run([sys.executable, "-m", "simsub", "--version"], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == f"simsub {simsub.__version__} ({build.DESCRIPTION})"


def test_a_source_edited_after_the_build_is_noticed(tmp_path, monkeypatch):
    """An edited source makes the whole compiled build stale (its extension would hide
    the edit); so does a missing extension file; unchanged sources do not."""
    package = tmp_path / "simsub"
    (package / "model").mkdir(parents=True)
    source = package / "model" / "queue.py"
    source.write_text("X = 1\n")
    (package / "model" / "queue.so").write_text("")
    monkeypatch.setattr(build, "_HERE", package)
    import hashlib

    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    assert build._stale({"simsub.model.queue": digest}, ["simsub/model/queue.so"]) == []
    source.write_text("X = 2\n")
    assert build._stale({"simsub.model.queue": digest}, ["simsub/model/queue.so"]) == ["simsub/model/queue.py"]
    assert build._stale({}, ["simsub/model/gone.so"]) == ["simsub/model/gone.so (missing)"]
