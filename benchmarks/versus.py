"""``simsub compare`` now against an earlier commit, the two builds alternated in one run.

Run as ``python -m benchmarks.versus [--baseline COMMIT] [--pairs N] [--quick]
[--venv PATH] [--args "COMPARE OPTIONS"] [--out FILE]``.

The baseline (default 0856011, before the speed work of issue 19) is exported
from git into a temporary folder (``git archive``: an export, not a registered
worktree, so the repository's metadata is left untouched) and installed with
its own pyproject.toml into a virtual environment of its own, its
dependencies pinned to the versions this interpreter has (so the two builds
differ in simsub's code only). ``--venv PATH`` keeps that environment at PATH
and reuses it on the next call (it records which commit it holds). The current
build is the checkout this module is in, run by this interpreter (or
``--python``) with the checkout first on ``PYTHONPATH``; each build reports
where it imported simsub from, and that goes into the JSON (the run stops if
either imported the other's).

Each pair runs ``python -m simsub compare`` once per build, in the order
baseline–current, then current–baseline in the next pair (and so on), so a
drift in the machine's speed does not favour one build. Every invocation gets
a fresh ``--out`` and ``--cache`` folder, so no run comes from a run cache
(the report's ``from_cache`` count is checked to be 0). By default the
command is the README's plain ``simsub compare`` (every policy of the
built-in scenario, the default replications, all cores): the two builds may
then run different numbers of policies or replications, so the report gives
what each ran, and two ratios:

* ``speedup_wall``, ``speedup_cpu`` — baseline time over current time for
  the whole invocation (> 1: the current build is faster);
* ``speedup_wall_per_run``, ``speedup_cpu_per_run`` — the same with each time
  divided by the number of runs that invocation computed (policies ×
  replications).

Each is given for wall time and for CPU time of the process tree (user +
system, the compare process and its worker processes, from
``getrusage(RUSAGE_CHILDREN)`` before and after the invocation): the median
over pairs and every pair's. The JSON also has, per invocation, the runs' own
wall times summed (``runs_wall_s``, from runs.csv): the rest of the time is
the invocation's own (start-up, planning, statistics, report and charts).

``--args`` passes the same options to both builds (e.g. ``--policies
none,selective-1-5s --replications 5``), which makes the two ratios equal when
both builds accept them. The horizon is cut with ``--set
scenario.horizon=…``, which both builds accept (0856011 has no ``--horizon``
option). ``--quick`` cuts the simulated day to 12 h 5 min (the bots start at
noon) and runs one pair, about 2 minutes on 2 cores (plus a minute to build
the baseline's environment unless ``--venv`` holds it): a check that the
benchmark works, not a figure.

Ctrl-C or SIGTERM stops the compare in progress (its process group) and
removes the temporary folder.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from benchmarks import write_report

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "0856011"
QUICK_HORIZON = "43500s"  # 12 h 5 min: the bots (who start at noon) play their first 5 minutes
MARKER = "simsub-baseline.json"  # in a kept venv: the commit it holds


class BenchError(RuntimeError):
    """A step of the benchmark failed; the message names it."""


class BadInput(BenchError):
    """An option names no usable commit, environment or interpreter (exit status 2)."""


def _git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchError(f"git {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def export_commit(commit: str, target: Path) -> None:
    """The files of ``commit`` under ``target`` (git archive, extracted)."""
    target.mkdir(parents=True)
    archive = subprocess.Popen(["git", "-C", str(ROOT), "archive", "--format=tar", commit], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    with tarfile.open(fileobj=archive.stdout, mode="r|") as tar:
        tar.extractall(target, filter="data")
    _, error = archive.communicate()
    if archive.returncode != 0:
        raise BenchError(f"git archive {commit}: {error.decode(errors='replace').strip()}")


def _pinned_versions(python: str) -> str:
    """``pip freeze`` of ``python``'s environment without editable installs: what the baseline is pinned to."""
    done = subprocess.run([python, "-m", "pip", "freeze", "--exclude-editable"], capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchError(f"pip freeze: {done.stderr.strip()}")
    return "\n".join(line for line in done.stdout.splitlines()
                     if line and not line.startswith(("-e ", "#")) and not line.lower().startswith("simsub"))


def baseline_venv(commit: str, sha: str, venv: Path, work: Path, log=print) -> Path:
    """A virtual environment at ``venv`` with simsub at ``commit`` installed; reused if it holds ``sha``."""
    python = venv / "bin" / "python"
    marker = venv / MARKER
    try:
        if json.loads(marker.read_text())["commit"] == sha and python.exists():
            log(f"reusing {venv} (simsub at {sha[:12]})")
            return python
    except (OSError, ValueError, KeyError):
        pass
    if venv.exists() and any(venv.iterdir()):
        raise BadInput(f"--venv {venv}: exists and does not hold simsub at {sha[:12]} (remove it or pick another)")
    source = work / "baseline-src"
    log(f"exporting {commit} to {source}")
    export_commit(sha, source)
    log(f"creating {venv} and installing simsub at {sha[:12]} (dependencies pinned to this interpreter's)")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    constraints = work / "constraints.txt"
    constraints.write_text(_pinned_versions(sys.executable) + "\n")
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-c", str(constraints), str(source)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchError(f"pip install of the baseline failed: {done.stderr.strip()[-500:]}")
    marker.write_text(json.dumps({"commit": sha}) + "\n")
    return python


class Build:
    """How to run one build's ``simsub``: interpreter, working folder and environment."""

    def __init__(self, name: str, commit: str, python: str, cwd: Path, pythonpath: Path | None):
        self.name = name
        self.commit = commit
        self.python = python
        self.cwd = cwd
        self.env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        if pythonpath is not None:
            self.env["PYTHONPATH"] = str(pythonpath)
        self.simsub = self._where()

    def _where(self) -> str:
        try:
            done = subprocess.run([self.python, "-c", "import simsub; print(simsub.__file__)"], cwd=self.cwd,
                                  env=self.env, capture_output=True, text=True)
        except OSError as exc:
            raise BadInput(f"--python {self.python}: {exc.strerror}") from None
        if done.returncode != 0:
            raise BenchError(f"{self.name}: cannot import simsub: {done.stderr.strip()[-300:]}")
        return done.stdout.strip()

    def describe(self) -> dict:
        return {"commit": self.commit, "python": self.python, "simsub": self.simsub}


def run_compare(build: Build, arguments: list[str], work: Path, index: int) -> dict:
    """One ``simsub compare`` of ``build`` with fresh output and cache folders: times and what it ran."""
    out = work / f"{build.name}-{index}"
    cache = work / f"{build.name}-{index}-cache"
    command = [build.python, "-m", "simsub", "compare", *arguments, "--out", str(out), "--cache", str(cache),
               "--quiet"]
    errors = work / f"{build.name}-{index}.stderr"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with open(errors, "wb") as stderr:
        # Its own process group, so that an interruption stops the compare and its worker processes.
        process = subprocess.Popen(command, cwd=build.cwd, env=build.env, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
        try:
            process.wait()
        except BaseException:
            _stop_group(process)
            raise
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if process.returncode != 0:
        raise BenchError(f"{build.name}: simsub compare exited with status {process.returncode}: "
                         f"{errors.read_text(errors='replace').strip()[-500:]}")
    try:
        record = json.loads((out / "experiment.json").read_text())
    except (OSError, ValueError) as exc:
        raise BenchError(f"{build.name}: no readable {out / 'experiment.json'}: {exc}") from None
    runs = record["runs"]
    if runs["from_cache"]:
        raise BenchError(f"{build.name}: {runs['from_cache']} runs came from a cache; the benchmark gives each "
                         "invocation a fresh one, so this is a bug")
    if runs["failed"]:
        raise BenchError(f"{build.name}: {runs['failed']} runs failed")
    with open(out / "runs.csv", newline="", encoding="utf-8") as fh:
        runs_wall = sum(float(row["wall_s"]) for row in csv.DictReader(fh) if row.get("wall_s"))
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"build": build.name, "wall_s": wall, "cpu_s": cpu, "runs_wall_s": runs_wall, "runs": runs["total"],
            "policies": list(record["policies"]), "replications": record["replications"],
            "overrides": record.get("overrides", {}), "executor": record.get("executor", "")}


def _stop_group(process: subprocess.Popen) -> None:
    """Ctrl-C for the compare's process group (it stops its workers), SIGKILL if it is not gone in 10 s."""
    for sig, grace in ((signal.SIGINT, 10.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue


def _terminate_as_interrupt(signum, frame):
    raise KeyboardInterrupt


def measure(baseline: str = BASELINE, pairs: int = 3, quick: bool = False, venv: Path | None = None,
            arguments: list[str] | None = None, horizon: str | None = None, python: str | None = None,
            log=print) -> dict:
    """The figures of the module docstring; ``python``: the current build's interpreter (default: this one)."""
    try:
        sha = _git("rev-parse", "--verify", "--quiet", f"{baseline}^{{commit}}")
    except BenchError:
        raise BadInput(f"--baseline {baseline}: not a commit of {ROOT}") from None
    head = _git("rev-parse", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    horizon = horizon or (QUICK_HORIZON if quick else None)
    arguments = list(arguments or []) + ([f"--set=scenario.horizon={horizon}"] if horizon else [])
    with tempfile.TemporaryDirectory(prefix="simsub-versus-") as folder:
        work = Path(folder)
        baseline_python = baseline_venv(baseline, sha, Path(venv) if venv else work / "venv", work, log)
        neutral = work / "cwd"  # the baseline runs here, where no simsub source is
        neutral.mkdir()
        builds = {"baseline": Build("baseline", sha, str(baseline_python), neutral, None),
                  "current": Build("current", head + ("+uncommitted" if dirty else ""), python or sys.executable, ROOT,
                                  ROOT)}
        if Path(builds["baseline"].simsub).resolve().is_relative_to(ROOT):
            raise BenchError(f"the baseline imported simsub from this checkout ({builds['baseline'].simsub})")
        if not Path(builds["current"].simsub).resolve().is_relative_to(ROOT):
            raise BadInput(f"the current build imported simsub from {builds['current'].simsub}, not {ROOT}")
        rows = []
        for index in range(pairs):
            order = ("baseline", "current") if index % 2 == 0 else ("current", "baseline")
            got = {}
            for name in order:
                log(f"pair {index + 1}/{pairs}: {name} …")
                got[name] = run_compare(builds[name], arguments, work, index)
                log(f"pair {index + 1}/{pairs}: {name} {got[name]['runs']} runs, {got[name]['wall_s']:.1f} s wall, "
                    f"{got[name]['cpu_s']:.1f} s CPU")
            rows.append({"pair": index + 1, "order": list(order), **{n: got[n] for n in ("baseline", "current")},
                         **ratios(got["baseline"], got["current"])})
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "command": "python -m simsub compare " + " ".join(shlex.quote(a) for a in arguments),
        "quick": quick, "horizon": horizon or "the scenario's",
        "builds": {name: build.describe() for name, build in builds.items()},
        "ran": {name: {k: rows[-1][name][k] for k in ("policies", "replications", "runs", "executor")}
                for name in ("baseline", "current")},
        "pairs": rows,
        "median": {key: statistics.median(r[key] for r in rows) for key in RATIOS},
        "ratios": RATIOS,
    }


RATIOS = {
    "speedup_wall": "baseline wall time / current wall time, whole invocation",
    "speedup_cpu": "baseline CPU time / current CPU time (process tree), whole invocation",
    "speedup_wall_per_run": "the same per computed run: (baseline wall / its runs) / (current wall / its runs)",
    "speedup_cpu_per_run": "the same per computed run: (baseline CPU / its runs) / (current CPU / its runs)",
}


def ratios(baseline: dict, current: dict) -> dict:
    """Speed-ups of current over baseline (> 1: current is faster)."""
    return {
        "speedup_wall": baseline["wall_s"] / current["wall_s"],
        "speedup_cpu": baseline["cpu_s"] / current["cpu_s"],
        "speedup_wall_per_run": (baseline["wall_s"] / baseline["runs"]) / (current["wall_s"] / current["runs"]),
        "speedup_cpu_per_run": (baseline["cpu_s"] / baseline["runs"]) / (current["cpu_s"] / current["runs"]),
    }


def format_table(report: dict) -> str:
    ran = report["ran"]
    lines = [f"command: {report['command']}  (fresh --out and --cache each time)"]
    for name in ("baseline", "current"):
        b, r = report["builds"][name], ran[name]
        lines.append(f"{name:<8} {b['commit'][:12]}: {len(r['policies'])} policies x {r['replications']} "
                     f"replications = {r['runs']} runs on {r['executor']}")
    lines.append(f"{'pair':<5} {'order':<18} {'baseline wall/CPU s':>20} {'current wall/CPU s':>20} "
                 f"{'speed-up wall':>14} {'CPU':>6} {'per run: wall':>14} {'CPU':>6}")
    lines.append("-" * 112)
    for row in report["pairs"]:
        b, c = row["baseline"], row["current"]
        lines.append(f"{row['pair']:<5} {'-'.join(row['order']):<18} {b['wall_s']:>10.1f}/{b['cpu_s']:<9.1f} "
                     f"{c['wall_s']:>10.1f}/{c['cpu_s']:<9.1f} {row['speedup_wall']:>14.2f} {row['speedup_cpu']:>6.2f} "
                     f"{row['speedup_wall_per_run']:>14.2f} {row['speedup_cpu_per_run']:>6.2f}")
    m = report["median"]
    lines.append(f"{'median':<5} {'':<18} {'':>20} {'':>20} {m['speedup_wall']:>14.2f} {m['speedup_cpu']:>6.2f} "
                 f"{m['speedup_wall_per_run']:>14.2f} {m['speedup_cpu_per_run']:>6.2f}")
    lines.append("speed-up = baseline time / current time (> 1: the current build is faster); "
                 "per run: each time divided by the runs it computed")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.versus", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default=BASELINE, help=f"commit to compare against (default {BASELINE})")
    parser.add_argument("--pairs", type=int, help="baseline/current pairs, order alternating (default 3; --quick 1)")
    parser.add_argument("--quick", action="store_true",
                        help=f"simulated day cut to {QUICK_HORIZON} (12 h 5 min), 1 pair: checks that it works")
    parser.add_argument("--horizon", help="cut the simulated day to this (--set scenario.horizon=…, both builds)")
    parser.add_argument("--args", default="", metavar="OPTIONS",
                        help="the same compare options for both builds, e.g. \"--policies none,selective-1-5s\"")
    parser.add_argument("--venv", type=Path, help="keep the baseline's virtual environment here and reuse it")
    parser.add_argument("--python", help="the current build's interpreter, e.g. a venv where the build step of "
                        "this checkout ran (default: this one); the checkout is first on its PYTHONPATH")
    parser.add_argument("--out", type=Path, default=Path("results/versus.json"), help="JSON output file")
    args = parser.parse_args(argv)
    pairs = args.pairs if args.pairs is not None else (1 if args.quick else 3)
    if pairs < 1:
        parser.error("--pairs must be at least 1")
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)  # clean up (compare, temporary folder) as on Ctrl-C
    try:
        report = measure(args.baseline, pairs, args.quick, args.venv, shlex.split(args.args), args.horizon,
                         args.python, log=lambda text: print(f"versus: {text}", file=sys.stderr, flush=True))
    except BenchError as exc:
        print(f"versus: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, BadInput) else 1
    except KeyboardInterrupt:
        print("versus: interrupted; the compare in progress is stopped", file=sys.stderr)
        return 130
    write_report(args.out, report, format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
