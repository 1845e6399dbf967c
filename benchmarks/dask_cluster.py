"""``compare`` on a Dask cluster of separate processes against the local process pool.

Run as ``python -m benchmarks.dask_cluster [--policies A,B] [--replications R]
[--horizon DUR] [--workers N] [--rounds K] [--out FILE]``.

The benchmark starts a Dask scheduler (``python -m dask scheduler``) and up to
``--workers`` Dask workers (``python -m dask worker --nthreads 1``), each its
own process group, all on 127.0.0.1 on ports the system picks, the HTTP
endpoints too (the scheduler writes its address to a scheduler file the
workers read). It runs the same
``compare`` once with the local process pool of ``--workers`` processes and
once on the cluster with 1, 2, … ``--workers`` Dask workers (workers added
one at a time), each ``--rounds`` times, interleaved, the fastest run of each
kept (interference only ever makes a run slower). No run comes from a run
cache (``cache=None``: every run is computed). It then checks that every
variant gave the same result tables: the runs table and the summary table,
hashed without the two columns that say how a run was obtained (``wall_s``,
``cached``; a run's own timing, the summary's ``run`` section, is not in
these tables).

It reports, as JSON and as a table, each variant's wall time (s), the
speed-up of k Dask workers over 1 Dask worker (the ratio of wall times), and
over k - 1 workers (what the k-th worker added), and the time beyond the
runs: the wall time minus the runs' own wall times summed over the workers
(what the command and the executor add, plus uneven loads over k > 1
workers). The cluster is stopped on
exit, on error and on Ctrl-C or SIGTERM (SIGTERM to each process group, then
SIGKILL after 10 s); each process also asks Linux to end it if the benchmark
dies (PR_SET_PDEATHSIG), and workers leave when the scheduler is gone for 30 s.

The scheduler and the workers import the simsub this process imports
(``PYTHONPATH``), and each reports where it imported it from before any
timing, so the cluster runs the code being measured; a task also refuses to
run on other model code. The scheduler needs simsub because it unpickles
every task; the first compare on a new scheduler would pay that import
(reported apart, ``scheduler_first_import_s``), which the process pool,
forked from this process, does not.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from benchmarks import write_report

DEFAULT_POLICIES = ("none", "selective-1-5s", "throttle-100h")
UNTIMED_COLUMNS = ("wall_s", "cached")  # a run's time, and whether it came from a cache (never, here)
# Dask starts an HTTP server (/health, /metrics) in the scheduler and in each worker even with --no-dashboard;
# without an address the scheduler's listens on port 8787 of every interface (and warns and moves when another
# cluster holds it), a worker's on a free port of every interface. On loopback, on a port the system picks, it
# collides with nothing and is not exposed.
NO_DASHBOARD = ("--no-dashboard", "--dashboard-address", "127.0.0.1:0")
STOP_GRACE_S = 10.0  # SIGTERM, then SIGKILL after this many seconds
START_TIMEOUT_S = 60.0  # a scheduler or worker not up within this long is an error (spawning imports numpy, pandas…)


class ClusterError(RuntimeError):
    """The cluster did not start: which process, and the end of its log."""


# ------------------------------------------------------------------------------------- the cluster
# Each process starts through this: it asks Linux to SIGTERM it when the benchmark dies, even by SIGKILL
# (prctl PR_SET_PDEATHSIG = 1, kept across exec), then becomes ``python -m dask ARGS``.  Done in the
# child's own interpreter rather than as Popen's preexec_fn, which is unsafe once the Dask client's
# threads run.
LAUNCHER = ("import ctypes, os, signal, sys\n"
            "try:\n"
            "    ctypes.CDLL(None).prctl(1, signal.SIGTERM)\n"
            "except (OSError, AttributeError):\n"
            "    pass\n"
            "os.execv(sys.executable, [sys.executable, '-m', 'dask', *sys.argv[1:]])\n")


class Cluster:
    """A Dask scheduler and workers, each a separate process group started here.

    Use as a context manager: every process group is stopped on leaving it,
    however it is left.  ``groups()`` lists the process-group ids started, so
    a caller can check that none is left.
    """

    def __init__(self, python: str = sys.executable, root: Path | None = None):
        self.python = python
        self.root = Path(root) if root is not None else simsub_root()
        self.folder = Path(tempfile.mkdtemp(prefix="simsub-dask-"))
        self.scheduler_file = self.folder / "scheduler.json"
        self.scheduler: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.started: list[int] = []  # every process group id ever started
        self.address: str | None = None
        self._count = 0

    # -- processes
    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(self.root), *filter(None, [env.get("PYTHONPATH")])])
        log = open(self.folder / f"{name}.log", "wb")
        try:
            process = subprocess.Popen([self.python, "-c", LAUNCHER, *args], cwd=self.folder, env=env,
                                       stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        finally:
            log.close()
        self.started.append(process.pid)  # a new session: its group id is its pid
        return process

    def _log_tail(self, name: str, lines: int = 5) -> str:
        try:
            text = (self.folder / f"{name}.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])

    def start(self) -> "Cluster":
        self.scheduler = self._spawn("scheduler", [
            "scheduler", "--host", "127.0.0.1", "--port", "0", *NO_DASHBOARD,
            "--scheduler-file", str(self.scheduler_file)])
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.scheduler.poll() is not None:
                raise ClusterError(f"the Dask scheduler exited with status {self.scheduler.returncode}: "
                                   f"{self._log_tail('scheduler')}")
            try:
                self.address = json.loads(self.scheduler_file.read_text())["address"]
                break
            except (OSError, ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                raise ClusterError(f"the Dask scheduler did not start within {START_TIMEOUT_S:.0f} s: "
                                   f"{self._log_tail('scheduler')}")
            time.sleep(0.1)
        return self

    def add_worker(self) -> None:
        self._count += 1
        name = f"worker-{self._count}"
        local = self.folder / name
        local.mkdir()
        self.workers.append(self._spawn(name, [
            "worker", "--scheduler-file", str(self.scheduler_file), "--nthreads", "1", "--nworkers", "1",
            "--host", "127.0.0.1", *NO_DASHBOARD, "--name", name,
            "--local-directory", str(local), "--death-timeout", "30"]))

    def scale(self, client, count: int) -> None:
        """Exactly ``count`` workers, connected to the scheduler (workers are added or stopped)."""
        while len(self.workers) < count:
            self.add_worker()
        if len(self.workers) > count:
            _stop_groups(self.workers[count:])
            del self.workers[count:]
        deadline = time.monotonic() + START_TIMEOUT_S
        while len(client.scheduler_info(n_workers=-1)["workers"]) != count:
            for process in self.workers:
                if process.poll() is not None:
                    raise ClusterError(f"a Dask worker exited with status {process.returncode}: "
                                       f"{self._log_tail(process.args[process.args.index('--name') + 1])}")
            if time.monotonic() > deadline:
                raise ClusterError(f"{count} Dask workers did not connect within {START_TIMEOUT_S:.0f} s")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop every worker, then the scheduler; each process group in full."""
        workers, self.workers = self.workers, []
        _stop_groups(workers)
        if self.scheduler is not None:
            _stop_groups([self.scheduler])
            self.scheduler = None

    def groups(self) -> list[int]:
        return list(self.started)

    def __enter__(self) -> "Cluster":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)


def _stop_groups(processes: list[subprocess.Popen]) -> None:
    """SIGTERM each process's group (a Dask worker's nanny has a child), all at once so that they shut down
    side by side; SIGKILL the groups still there after STOP_GRACE_S."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        left = []
        for process in processes:
            try:
                os.killpg(process.pid, sig)
                left.append(process)
            except ProcessLookupError:
                process.poll()
        deadline = time.monotonic() + STOP_GRACE_S
        while left and time.monotonic() < deadline:
            for process in left:
                process.poll()  # reaps the group leader, which group_alive would otherwise count as a zombie
            left = [p for p in left if group_alive(p.pid)]
            time.sleep(0.05)
        if not left:
            break
        processes = left
    for process in processes:
        try:
            process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            pass


def simsub_root() -> Path:
    """The folder holding the simsub package this process imports: the workers import the same one."""
    import simsub

    return Path(simsub.__file__).resolve().parent.parent


def group_alive(group: int) -> bool:
    """Whether any process of process group ``group`` still exists (a zombie not yet reaped counts)."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _where_simsub_is() -> str:
    """Run on each worker before timing: import what a run needs and hash the model code once (as the
    process pool's workers inherit from this process), and say where simsub came from."""
    import simsub
    import simsub.api  # noqa: F401  (imported here so that no timed run pays for it)
    import simsub.experiments.execute  # noqa: F401
    import simsub.scenario.loader  # noqa: F401
    from simsub.experiments.design import code_fingerprint

    code_fingerprint()
    return simsub.__file__


def _import_on_scheduler() -> tuple[float, str]:
    """Run in the scheduler before timing: import the module a run's task names. The scheduler unpickles
    every task it is sent, so the first compare on a new scheduler imports simsub there, with the
    scheduler's event loop stopped meanwhile; done here, the first timed Dask compare does not pay it.
    The import's time (s) and where simsub came from."""
    started = time.perf_counter()
    import simsub
    import simsub.experiments.execute  # noqa: F401

    return time.perf_counter() - started, simsub.__file__


def _warm_up(client) -> set[str]:
    """Run ``_where_simsub_is`` as a task on every worker (the path a run takes: the worker's thread
    pool, serialisation both ways), so the first timed run pays no first-task costs; where each
    worker's simsub is."""
    futures = [client.submit(_where_simsub_is, pure=False, workers=[address], allow_other_workers=False)
               for address in client.scheduler_info(n_workers=-1)["workers"]]
    return set(client.gather(futures))


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the benchmark like Ctrl-C does: through ``finally``, so the cluster is stopped."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ------------------------------------------------------------------------------------- the tables
def tables_hash(experiment) -> dict[str, str]:
    """sha256 of the runs and summary tables (CSV, floats at full precision), without the timing columns."""
    runs = experiment.runs.drop(columns=[c for c in UNTIMED_COLUMNS if c in experiment.runs.columns])
    runs = runs.sort_values(["policy", "replication"], kind="stable").reset_index(drop=True)
    summary = experiment.summary[~experiment.summary["metric"].isin(UNTIMED_COLUMNS)]
    summary = summary.sort_values(["policy", "metric"], kind="stable").reset_index(drop=True)
    digest = {name: hashlib.sha256(frame.to_csv(index=False, float_format="%.17g").encode()).hexdigest()
              for name, frame in (("runs", runs), ("summary", summary))}
    return digest


def _runs_time(experiment) -> dict[str, float]:
    """The runs' own wall times (s, each measured in its worker), summed: when this grows with the
    workers, the cores were shared (with each other or with other load on the machine)."""
    return {"runs_wall_s": float(experiment.runs["wall_s"].sum())}


def _compare(options: dict, **executor) -> tuple[float, object]:
    from simsub.experiments import compare

    started = time.perf_counter()
    experiment = compare(cache=None, progress=False, **options, **executor)
    wall = time.perf_counter() - started
    if experiment.runs["cached"].any():  # cache=None keeps nothing, so this would be a bug in the benchmark
        raise RuntimeError("a run came from a run cache")
    failed = experiment.runs[experiment.runs["status"] != "ok"]
    if len(failed):
        raise RuntimeError(f"{len(failed)} runs failed, e.g. {failed['error'].iloc[0]}")
    return wall, experiment


def _rounds(cluster: Cluster, options: dict, workers: int, rounds: int, walls: dict, busy: dict, hashes: dict,
            where: set, scheduler: dict, on_cluster, log) -> int:
    """Every variant ``rounds`` times, interleaved; fills ``walls``, ``busy``, ``hashes``, ``where`` and
    ``scheduler`` (its first import of simsub); returns the number of runs of one compare."""
    from distributed import Client

    if on_cluster is not None:
        on_cluster(cluster)
    with Client(cluster.address, timeout=START_TIMEOUT_S) as client:
        scheduler["import_s"], scheduler_simsub = client.run_on_scheduler(_import_on_scheduler)
        where.add(scheduler_simsub)
        for round_ in range(rounds):
            name = f"pool-{workers}"
            log(f"round {round_ + 1}/{rounds}: local process pool, {workers} workers")
            wall, experiment = _compare(options, workers=workers)
            if wall <= min(walls.get(name, [wall])):
                busy[name] = _runs_time(experiment)
            walls.setdefault(name, []).append(wall)
            hashes[name] = tables_hash(experiment)
            runs = len(experiment.runs)
            for count in range(1, workers + 1):
                cluster.scale(client, count)
                where |= _warm_up(client)
                name = f"dask-{count}"
                log(f"round {round_ + 1}/{rounds}: Dask, {count} worker{'s' if count > 1 else ''}")
                wall, experiment = _compare(options, dask=cluster.address)
                if f"{count} workers" not in experiment.executor:
                    raise RuntimeError(f"expected {count} Dask workers, ran on {experiment.executor}")
                if wall <= min(walls.get(name, [wall])):
                    busy[name] = _runs_time(experiment)
                walls.setdefault(name, []).append(wall)
                hashes[name] = tables_hash(experiment)
            cluster.scale(client, 1)  # the next round starts again from 1 worker
    return runs


def measure(scenario: str | None = None, policies: tuple[str, ...] = DEFAULT_POLICIES, replications: int = 2,
            horizon: str | None = "13h", workers: int | None = None, rounds: int = 1, python: str = sys.executable,
            on_cluster=None, log=lambda text: None) -> dict:
    """The benchmark's figures (see the module docstring); ``workers``: the most workers (default: the cores).

    ``on_cluster(cluster)`` is called once the cluster is up (tests use it to see its processes).
    """
    from simsub.experiments.execute import Interrupted

    import simsub
    from simsub.errors import ScenarioError

    workers = workers or os.cpu_count() or 1
    overrides = {"scenario.horizon": horizon} if horizon else None
    checked = simsub.load_scenario(scenario, overrides)  # bad input fails here, before a cluster starts
    for policy in policies:
        try:
            checked.policy_named(policy)
        except ScenarioError as exc:  # named after this command's option, as simsub compare does
            raise ScenarioError(exc.source, "--policies", exc.message) from None
    options = {"scenario": scenario, "policies": list(policies), "replications": replications,
               "overrides": overrides}
    walls: dict[str, list[float]] = {}
    busy: dict[str, dict[str, float]] = {}  # the runs' own time, of the fastest round
    hashes: dict[str, dict[str, str]] = {}
    where: set[str] = set()
    scheduler: dict[str, float] = {}
    try:
        with _terminate_as_interrupt(), Cluster(python=python) as cluster:
            runs = _rounds(cluster, options, workers, rounds, walls, busy, hashes, where, scheduler,
                           on_cluster, log)
    except Interrupted:  # Ctrl-C or SIGTERM during a compare, which stopped its runs; the cluster is stopped too
        raise KeyboardInterrupt from None
    own = str((simsub_root() / "simsub" / "__init__.py").resolve())
    if {str(Path(w).resolve()) for w in where} != {own}:
        raise RuntimeError(f"the Dask scheduler and workers imported simsub from {sorted(where)}, not from {own}")
    reference = hashes[f"pool-{workers}"]
    dask_1 = min(walls["dask-1"])
    variants = []
    for name, times in walls.items():
        row = {"variant": name, "executor": "local process pool" if name.startswith("pool") else "Dask cluster",
               "workers": int(name.split("-")[1]), "wall_s": min(times), "wall_s_all": times, **busy[name],
               "tables": hashes[name], "identical_to_pool": hashes[name] == reference}
        # what the command spent beyond its runs' share per worker: its own work (planning, tables) and the
        # executor's (start, waiting for results, close), plus uneven loads when workers > 1
        row["beyond_runs_s"] = row["wall_s"] - row["runs_wall_s"] / row["workers"]
        if name.startswith("dask"):
            k = row["workers"]
            row["speedup_vs_1_worker"] = dask_1 / row["wall_s"]
            if k > 1:
                row["speedup_vs_one_fewer_worker"] = min(walls[f"dask-{k - 1}"]) / row["wall_s"]
        variants.append(row)
    pool_wall = min(walls[f"pool-{workers}"])
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "compare": {"scenario": scenario or "built-in default", "policies": list(policies),
                    "replications": replications, "horizon": horizon, "runs": runs, "run_cache": "none"},
        "workers": workers, "rounds": rounds,
        "identical_tables": all(v["identical_to_pool"] for v in variants),
        "dask_over_pool_same_workers": min(walls[f"dask-{workers}"]) / pool_wall,
        "scheduler_first_import_s": scheduler["import_s"],
        "variants": variants,
    }


def format_table(report: dict) -> str:
    c = report["compare"]
    lines = [f"compare: {c['scenario']}, policies {','.join(c['policies'])}, {c['replications']} replications, "
             f"horizon {c['horizon'] or 'the scenario’s'}: {c['runs']} runs, none from a cache; "
             f"fastest of {report['rounds']} round(s)",
             f"{'variant':<22} {'wall s':>8} {'vs 1 worker':>12} {'vs one fewer':>13} {'runs sum s':>11} "
             f"{'beyond s':>9}  tables",
             "-" * 100]
    for v in report["variants"]:
        label = (f"pool, {v['workers']} processes" if v["variant"].startswith("pool")
                 else f"Dask, {v['workers']} worker{'s' if v['workers'] > 1 else ''}")
        first = f"{v['speedup_vs_1_worker']:.2f}x" if "speedup_vs_1_worker" in v else ""
        added = f"{v['speedup_vs_one_fewer_worker']:.2f}x" if "speedup_vs_one_fewer_worker" in v else ""
        same = "reference" if v["variant"].startswith("pool") else ("identical" if v["identical_to_pool"]
                                                                    else "DIFFERENT")
        lines.append(f"{label:<22} {v['wall_s']:>8.1f} {first:>12} {added:>13} {v['runs_wall_s']:>11.1f} "
                     f"{v['beyond_runs_s']:>9.1f}  {same} "
                     f"({v['tables']['runs'][:8]}/{v['tables']['summary'][:8]})")
    lines.append(f"Dask with {report['workers']} workers over the pool with as many: "
                 f"{report['dask_over_pool_same_workers']:.2f} of its wall time; runs sum s: the runs' own "
                 "wall times summed (flat across rows when the cores were not shared); beyond s: wall s "
                 "minus runs sum s over the workers (the command's and the executor's own time, and uneven loads)")
    lines.append(f"the scheduler's first import of simsub (once per scheduler, done before timing): "
                 f"{report['scheduler_first_import_s']:.1f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dask_cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", nargs="?", help="scenario file (default: the built-in one)")
    parser.add_argument("--policies", default=",".join(DEFAULT_POLICIES),
                        help=f"policies to compare (default {','.join(DEFAULT_POLICIES)})")
    parser.add_argument("--replications", type=int, default=2, help="replications per policy (default 2)")
    parser.add_argument("--horizon", default="13h",
                        help="simulated time of client arrivals (default 13h: the bots start at noon); "
                        "'scenario' keeps the scenario's")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="the most workers: the pool's size, and Dask from 1 up to it (default: the cores)")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds, the fastest kept (default 1)")
    parser.add_argument("--out", type=Path, default=Path("results/dask_cluster.json"), help="JSON output file")
    args = parser.parse_args(argv)
    for name in ("replications", "workers", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    from simsub.errors import ScenarioError

    try:
        report = measure(args.scenario, tuple(p for p in args.policies.split(",") if p), args.replications,
                         None if args.horizon == "scenario" else args.horizon, args.workers, args.rounds,
                         log=lambda text: print(f"dask_cluster: {text}", file=sys.stderr, flush=True))
    except ScenarioError as exc:
        print(f"dask_cluster: error: {exc}", file=sys.stderr)
        return 2
    except ClusterError as exc:
        print(f"dask_cluster: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dask_cluster: interrupted; the cluster is stopped", file=sys.stderr)
        return 130
    write_report(args.out, report, format_table(report))
    return 0 if report["identical_tables"] else 1


if __name__ == "__main__":
    sys.exit(main())
