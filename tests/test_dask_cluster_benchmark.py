"""The Dask cluster benchmark (benchmarks/dask_cluster.py) works: its cluster of separate scheduler and
worker processes starts, gives the process pool's tables, and is gone afterwards, also after an error.
Nothing here is timed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from benchmarks.dask_cluster import Cluster, group_alive, measure, tables_hash
from tests.commands import ROOT
from tests.listeners import DASHBOARD_PORT, dashboard_port_taken, in_group, is_loopback, listening


def test_the_cluster_gives_the_pools_tables_and_leaves_no_process():
    seen = []
    report = measure(policies=("none", "selective-1-5s"), replications=1, horizon="1h", workers=2,
                     on_cluster=seen.append)
    [cluster] = seen
    assert [v["variant"] for v in report["variants"]] == ["pool-2", "dask-1", "dask-2"]
    assert report["identical_tables"]
    assert len({(v["tables"]["runs"], v["tables"]["summary"]) for v in report["variants"]}) == 1
    assert report["compare"]["runs"] == 2
    dask_2 = report["variants"][2]
    assert dask_2["speedup_vs_1_worker"] == pytest.approx(report["variants"][1]["wall_s"] / dask_2["wall_s"])
    assert "speedup_vs_one_fewer_worker" in dask_2
    assert isinstance(report["scheduler_first_import_s"], float)
    assert dask_2["beyond_runs_s"] == pytest.approx(dask_2["wall_s"] - dask_2["runs_wall_s"] / 2)
    # a scheduler and two workers were started, as process groups of their own, and none is left
    groups = cluster.groups()
    assert len(groups) == 3 and os.getpgrp() not in groups
    assert [g for g in groups if group_alive(g)] == []


def test_the_cluster_is_stopped_when_the_benchmark_fails():
    seen = []
    with pytest.raises(RuntimeError, match="stop here"):
        with Cluster() as cluster:
            seen.append(cluster)
            from distributed import Client

            with Client(cluster.address, timeout=60) as client:
                cluster.scale(client, 1)
                assert all(group_alive(g) for g in cluster.groups())
                raise RuntimeError("stop here")
    assert len(seen[0].groups()) == 2
    assert [g for g in seen[0].groups() if group_alive(g)] == []


def test_the_cluster_binds_no_dashboard_port_and_listens_on_loopback_only():
    """With the dashboard port already held (as by another cluster), the scheduler and a worker start
    without Dask's "Port 8787 is already in use" warning, and every process of theirs listens only on
    loopback ports other than the dashboard's."""
    from distributed import Client

    with dashboard_port_taken(), Cluster() as cluster:
        with Client(cluster.address, timeout=60) as client:
            cluster.scale(client, 1)
            opened = listening(in_group(cluster.groups()))
        logs = {path.name: path.read_text(errors="replace") for path in cluster.folder.glob("*.log")}
    # the scheduler's connections and HTTP server, the worker's too, and its nanny's connections
    assert len(opened) >= 5, opened
    assert all(is_loopback(address) for address, _ in opened), opened
    assert DASHBOARD_PORT not in {port for _, port in opened}, opened
    assert set(logs) == {"scheduler.log", "worker-1.log"}
    assert not [name for name, text in logs.items() if "already in use" in text]


def _processes_mentioning(text: str) -> list[int]:
    """Pids of the processes whose command line contains ``text``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    if text.encode() in fh.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


def test_sigterm_stops_the_benchmark_and_its_cluster(tmp_path):
    """SIGTERM (as from a job runner; Ctrl-C's KeyboardInterrupt takes the same path) while a compare runs
    on the cluster: the benchmark exits, and the scheduler's and the worker's process groups are gone."""
    script = tmp_path / "bench.py"
    folder_file = tmp_path / "folder"
    script.write_text(
        "import sys\n"
        "from benchmarks import dask_cluster\n"
        "def up(cluster):\n"
        f"    open({str(folder_file)!r}, 'w').write(str(cluster.folder))\n"
        "try:\n"
        "    dask_cluster.measure(policies=('none',), replications=1, horizon='13h', workers=1, on_cluster=up)\n"
        "except KeyboardInterrupt:\n"
        "    sys.exit(130)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        groups: list[int] = []
        while len(groups) < 2:  # the scheduler and the worker, each started with its folder on its command line
            assert process.poll() is None, process.stdout.read().decode(errors="replace")[-2000:]
            assert time.monotonic() < deadline, "the cluster did not come up"
            time.sleep(0.2)
            if folder_file.exists() and folder_file.read_text():
                groups = _processes_mentioning(folder_file.read_text())
        assert all(group_alive(g) for g in groups)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 130
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert [g for g in groups if group_alive(g)] == []


def _experiment(value: float, wall: float, cached: bool):
    class Experiment:
        runs = pd.DataFrame({"policy": ["none", "none"], "replication": [0, 1], "seed": [1, 2],
                             "status": ["ok", "ok"], "cached": [cached, cached], "wall_s": [wall, wall * 2],
                             "spam.recipients_accepted": [value, 3.0]})
        summary = pd.DataFrame({"policy": ["none"], "metric": ["spam.recipients_accepted"], "n": [2],
                                "mean": [value], "ci_low": [0.5], "ci_high": [3.5]})

    return Experiment()


def test_the_tables_hash_ignores_how_runs_were_obtained_but_no_value():
    reference = tables_hash(_experiment(1.0, wall=5.0, cached=False))
    assert tables_hash(_experiment(1.0, wall=7.5, cached=True)) == reference
    # the smallest change of a float (one unit in the last place) changes both hashes
    changed = tables_hash(_experiment(float.fromhex("0x1.0000000000001p+0"), wall=5.0, cached=False))
    assert changed["runs"] != reference["runs"] and changed["summary"] != reference["summary"]
