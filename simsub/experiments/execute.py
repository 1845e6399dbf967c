"""Running an experiment's runs: in this process, a local process pool, or Dask.

Every run is an independent unit of work described by a :class:`Task` (plain
data: the parsed scenario file, the overrides, policy and seed), so any
executor gives bit-for-bit the same summaries in any order.  Finished runs are
stored one file per run under their key; an interrupted experiment resumes by
skipping every key already stored.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import signal
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import ScenarioError


@dataclass(frozen=True)
class Task:
    """One run: everything a worker needs, as plain picklable data."""

    key: str
    raw: dict  # the scenario file as parsed TOML, before overrides
    label: str  # how errors name the file
    overrides: dict[str, Any]  # --set overrides and this grid point's values
    policy: str
    seed: int
    code: str = ""  # the model-code fingerprint of the planner; a worker with other code refuses the task


def run_task(task: Task) -> dict:
    """Run ``task`` and return a JSON-safe record; never raises for a failing run.

    ``{"key", "status": "ok", "summary", "wall_s"}`` or
    ``{"key", "status": "failed", "error", "traceback", "wall_s"}``.
    """
    started = time.perf_counter()
    try:
        from ..api import run
        from ..scenario.loader import build_scenario
        from .design import code_fingerprint

        if task.code and task.code != code_fingerprint():
            # A Dask worker with another simsub version: its result would be stored under a key
            # that promises this code's result.
            raise RuntimeError(f"this worker runs other simsub model code (fingerprint {code_fingerprint()}, "
                               f"expected {task.code}); install the same simsub version on every worker")
        scenario = build_scenario(task.raw, task.label, task.overrides)
        result = run(scenario, policy=task.policy, seed=task.seed)
        return {"key": task.key, "status": "ok", "summary": result.summary,
                "wall_s": time.perf_counter() - started}
    except Exception as exc:  # a failing run is a result, not a crash of the experiment
        return {"key": task.key, "status": "failed", "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(limit=8), "wall_s": time.perf_counter() - started}


class RunCache:
    """Finished runs, one JSON file per key: ``DIR/ab/abcdef….json``.

    Files are written to a temporary name and renamed, so a run killed while
    writing leaves no file that looks finished.  Failed runs are not stored:
    running the command again retries them.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        path = self.path(key)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return record if record.get("status") == "ok" and record.get("key") == key else None

    def put(self, record: dict) -> None:
        if record.get("status") != "ok":
            return
        path = self.path(record["key"])
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{record['key']}.", suffix=".partial", dir=path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as fh:
                json.dump(record, fh, allow_nan=False)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


# --------------------------------------------------------------------------- executors
class InlineExecutor:
    """Runs one task after the other in this process (``--workers 1``)."""

    description = "this process (1 worker)"

    def results(self, tasks: list[Task]) -> Iterator[dict]:
        for task in tasks:
            yield run_task(task)

    def close(self) -> None:
        pass


def _ignore_interrupts() -> None:
    """Worker initializer: Ctrl-C reaches every process of the terminal's group; only the parent acts on
    it (it stops the workers), so a worker never prints a KeyboardInterrupt traceback of its own.

    SIGTERM goes back to the default action (end the process, silently): a forked worker inherits the
    command's handler, which turns SIGTERM into KeyboardInterrupt, and the parent stops its workers with
    SIGTERM (:meth:`PoolExecutor.abort`) — with that handler a worker waiting for its next run printed a
    traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class PoolExecutor:
    """A local process pool of ``workers`` processes."""

    def __init__(self, workers: int):
        self.workers = workers
        self.description = f"local process pool, {workers} workers"
        self.pool: cf.ProcessPoolExecutor | None = None

    def results(self, tasks: list[Task]) -> Iterator[dict]:
        if self.pool is None:  # kept for the next call (tune's refinement rounds)
            self.pool = cf.ProcessPoolExecutor(max_workers=self.workers, initializer=_ignore_interrupts)
        futures = {self.pool.submit(run_task, task): task for task in tasks}
        for future in cf.as_completed(futures):
            task = futures[future]
            try:
                yield future.result()
            except cf.process.BrokenProcessPool as exc:
                yield _lost(task, f"worker process died ({exc})")
            except Exception as exc:
                yield _lost(task, f"{type(exc).__name__}: {exc}")

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    def abort(self) -> None:
        """Stop at once (Ctrl-C): end the workers mid-run and drop the queued tasks; nothing is left running.
        Runs in flight are lost (they were not finished, so not cached); finished ones are in the cache."""
        pool, self.pool = self.pool, None
        if pool is None:
            return
        processes = list((getattr(pool, "_processes", None) or {}).values())
        for process in processes:
            process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)


LOCAL_HTTP_ADDRESS = "127.0.0.1:0"  # where ``--dask local``'s scheduler serves HTTP: loopback, a free port


class DaskExecutor:
    """A Dask distributed cluster: an existing scheduler, or ``local`` (started here)."""

    def __init__(self, address: str, workers: int):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ScenarioError("--dask", address, "needs Dask distributed: pip install 'simsub[dask]'") from None
        self.cluster = None
        try:
            if address == "local":
                import logging

                # No dashboard, and its HTTP server (which Dask starts even without one, for /health and
                # /metrics) on a loopback port the system picks: dashboard_address=None would bind 8787
                # (and warn and move when another cluster holds it).
                self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                            dashboard_address=LOCAL_HTTP_ADDRESS, scheduler_kwargs={"dashboard": False},
                                            silence_logs=logging.ERROR)
                self.client = Client(self.cluster, set_as_default=False)
            else:
                # set_as_default=False: the caller's own Dask client (a notebook's) stays the one its code uses.
                self.client = Client(address, timeout=5, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            if self.cluster is not None:
                self.cluster.close()
            raise ScenarioError("--dask", address, f"cannot reach the Dask scheduler: {exc}") from None
        workers_now = len(self.client.scheduler_info().get("workers", {}))
        self.description = f"Dask {'local cluster' if address == 'local' else address}, {workers_now} workers"

    def results(self, tasks: list[Task]) -> Iterator[dict]:
        from distributed import as_completed

        futures = {self.client.submit(run_task, task, key=f"simsub-run-{task.key}", pure=False): task for task in tasks}
        # This client's own event loop: as_completed otherwise tracks the futures on the loop of Dask's
        # current client, which is another one when the caller has a Client of its own open (a notebook,
        # the Dask benchmark); that loop is only woken by its own traffic, and every result then came up
        # to 3 s late, all at once (see docs/experiments.md, "Dask").
        for future in as_completed(list(futures), loop=self.client.loop):
            task = futures[future]
            try:
                yield future.result()
            except Exception as exc:
                yield _lost(task, f"{type(exc).__name__}: {exc}")

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _lost(task: Task, error: str) -> dict:
    return {"key": task.key, "status": "failed", "error": error, "traceback": "", "wall_s": 0.0}


def open_executor(workers: int | None = None, dask: str | None = None):
    """The executor for ``--workers``/``--dask``; a ScenarioError (exit 2) if Dask cannot be reached."""
    workers = workers or os.cpu_count() or 1
    if dask:
        return DaskExecutor(dask, workers)
    return InlineExecutor() if workers == 1 else PoolExecutor(workers)


class Interrupted(Exception):
    """Ctrl-C during an experiment; finished runs are kept in the cache."""

    def __init__(self, finished: int, total: int):
        super().__init__(f"{finished} of {total} runs finished")
        self.finished = finished
        self.total = total


def execute(tasks: list[Task], cache: RunCache, executor, on_result: Callable[[dict, bool], None] | None = None
            ) -> dict[str, dict]:
    """Records of every task by key: from ``cache`` where stored, else computed by ``executor``.

    ``on_result(record, cached)`` is called once per task as it finishes
    (progress).  Ctrl-C raises :class:`Interrupted` after the executor has
    stopped; what finished is in the cache.
    """
    records: dict[str, dict] = {}
    missing: list[Task] = []
    for task in tasks:
        if task.key in records:
            continue
        stored = cache.get(task.key)
        if stored is not None:
            stored["cached"] = True
            records[task.key] = stored
            if on_result:
                on_result(stored, True)
        else:
            missing.append(task)
            records[task.key] = None  # type: ignore[assignment]
    missing = list({t.key: t for t in missing}.values())
    try:
        for record in executor.results(missing):
            record["cached"] = False
            cache.put(record)
            records[record["key"]] = record
            if on_result:
                on_result(record, False)
    except KeyboardInterrupt:
        finished = sum(1 for r in records.values() if r is not None)
        try:  # stop at once: do not wait for the runs in flight
            getattr(executor, "abort", executor.close)()
        except BaseException:
            pass
        raise Interrupted(finished, len(records)) from None
    return records
