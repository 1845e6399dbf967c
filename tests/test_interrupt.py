"""Ctrl-C during an experiment, with real signals to a real ``simsub compare``.

The command runs in its own session (as a shell's foreground job is its own
process group), so a signal to the group reaches the parent and its workers
as Ctrl-C in a terminal does.  After one or many SIGINTs (or a SIGTERM to the
parent alone) it must: stop at once, exit 130 with one message and no
traceback, keep the runs that finished in the cache, write no result folder,
and leave no process of its session behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Enough runs (6 policies x 4 replications) that the command is far from done when interrupted;
#: a 3 h horizon makes each run take about a second.
COMMAND = ["compare", "--horizon", "3h", "--replications", "4", "--workers", "2"]
#: How long stopping may take: killing two workers and printing one line, on a loaded machine.
STOP_WITHIN_S = 5.0


def session_members(session: int) -> list[int]:
    """Pids of live processes in ``session`` (from /proc: field 6 of stat is the session id)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[3]) == session and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def start(tmp_path: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "simsub", *COMMAND, "--out", str(tmp_path / "out"),
                             "--cache", str(tmp_path / "cache")], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_finished_runs(proc: subprocess.Popen, count: int) -> list[str]:
    """Read stderr until ``count`` "run k/N finished" lines (stderr is not a terminal: one line per run)."""
    lines = []
    deadline = time.monotonic() + 300
    while sum(" finished: " in line for line in lines) < count:
        line = proc.stderr.readline()
        assert line, f"the command ended early: {''.join(lines)}"
        lines.append(line)
        assert time.monotonic() < deadline
    return lines


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc to find leftover processes")
@pytest.mark.parametrize("signals", [("SIGINT", 1), ("SIGINT", 6), ("SIGTERM", 1)], ids=lambda s: f"{s[1]}x{s[0]}")
def test_interrupt_stops_at_once_and_keeps_finished_runs(tmp_path, signals):
    name, times = signals
    proc = start(tmp_path)
    try:
        before = wait_for_finished_runs(proc, 2)
        sent = time.monotonic()
        for _ in range(times):
            if name == "SIGINT":
                os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group
            else:
                os.kill(proc.pid, signal.SIGTERM)  # kill PID: the parent alone
            time.sleep(0.05)
        try:  # orphaned workers would keep the pipes open: wait with a limit
            out, rest = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail("the command or its workers did not stop within 60 s")
        code = proc.returncode
        took = time.monotonic() - sent
        time.sleep(0.5)  # killed workers need a moment to disappear from /proc
        left = session_members(proc.pid)
    finally:
        try:  # whatever is left of the command's group (it is its own session), including orphans
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    err = "".join(before) + rest
    assert code == 130, err
    assert "Traceback" not in err and "Traceback" not in out, err
    assert "runs finished and are kept" in rest
    assert took < STOP_WITHIN_S, f"took {took:.1f} s to stop"
    assert left == [], f"processes of the command are still running: {left}"
    kept = list((tmp_path / "cache").rglob("*.json"))
    finished = sum(" finished: " in line for line in err.splitlines())
    assert len(kept) >= finished >= 2
    assert not (tmp_path / "out").exists()
