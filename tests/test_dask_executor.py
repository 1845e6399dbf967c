"""The Dask executor (``--dask``, simsub/experiments/execute.py): ``--dask local`` binds no dashboard port,
and the executor waits for its runs on its own Dask client, whatever client its caller has open.
Nothing here is timed."""

from __future__ import annotations

import os
import warnings

import pandas as pd

from simsub.experiments import compare
from simsub.experiments.execute import DaskExecutor
from tests.listeners import DASHBOARD_PORT, dashboard_port_taken, descendants, is_loopback, listening

OPTIONS = {"policies": ["none", "selective-1-5s"], "replications": 1, "overrides": {"scenario.horizon": "10m"},
           "cache": None, "progress": False}


def _metrics(experiment) -> pd.DataFrame:
    runs = experiment.runs.sort_values(["policy", "replication"]).reset_index(drop=True)
    return runs[["policy", "replication", "seed"] + sorted(c for c in runs.columns if "." in c)]


def test_a_local_cluster_binds_no_dashboard_port_and_listens_on_loopback_only():
    """With the dashboard port already held (as by another cluster), ``--dask local`` starts without Dask's
    "Port 8787 is already in use" warning, gives the inline tables, and its scheduler and worker processes
    listen only on loopback ports other than the dashboard's."""
    me = os.getpid()
    with dashboard_port_taken():
        before = listening([me])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            executor = DaskExecutor("local", 1)
            try:
                opened = listening([me, *descendants(me)]) - before
                on_dask = compare(executor=executor, **OPTIONS)
            finally:
                executor.close()
    assert "Dask local cluster" in on_dask.executor
    pd.testing.assert_frame_equal(_metrics(on_dask), _metrics(compare(workers=1, **OPTIONS)), check_exact=True)
    # the scheduler's and the worker's connections and HTTP servers: at least four listeners
    assert len(opened) >= 4, opened
    assert all(is_loopback(address) for address, _ in opened), opened
    assert DASHBOARD_PORT not in {port for _, port in opened}, opened
    assert not [str(w.message) for w in caught if "already in use" in str(w.message)]


def test_the_executor_waits_on_its_own_client_beside_the_callers(monkeypatch):
    """A caller with a Dask client of its own open (a notebook's ``with Client(...)``): the executor neither
    replaces it as the default client nor tracks its runs on that client's event loop (which only wakes
    with its own traffic, so results came late), and gives the same tables."""
    import distributed

    loops = []
    real = distributed.as_completed

    def spy(futures, *args, **kwargs):
        loops.append(kwargs.get("loop"))
        return real(futures, *args, **kwargs)

    monkeypatch.setattr(distributed, "as_completed", spy)
    executor = DaskExecutor("local", 1)
    try:
        with distributed.Client(executor.cluster.scheduler_address) as callers:
            assert distributed.default_client() is callers
            on_dask = compare(executor=executor, **OPTIONS)
            assert distributed.default_client() is callers
    finally:
        executor.close()
    assert loops == [executor.client.loop] and executor.client.loop is not callers.loop
    pd.testing.assert_frame_equal(_metrics(on_dask), _metrics(compare(workers=1, **OPTIONS)), check_exact=True)


def test_a_process_that_only_runs_tasks_does_not_import_the_statistics_stack():
    """A Dask scheduler or worker unpickles ``run_task`` and so imports ``simsub.experiments.execute``; that
    import, and the modules a run needs, leave scipy (the paired intervals' statistics, 1-2 s to import)
    unloaded, while the package's public names still resolve on first use."""
    import subprocess
    import sys

    code = ("import sys\n"
            "import simsub.experiments.execute\n"
            "from simsub.api import run\n"
            "from simsub.scenario.loader import build_scenario\n"
            "from simsub.experiments.design import code_fingerprint\n"
            "print(sorted(m for m in sys.modules if m == 'scipy' or m.startswith('scipy.')))\n"
            "import simsub.experiments as e\n"
            "print(e.compare.__module__, e.tune.__module__, e.Experiment.__module__)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded, names = done.stdout.splitlines()
    assert loaded == "[]"
    assert names == "simsub.experiments.study simsub.experiments.tune simsub.experiments.types"
