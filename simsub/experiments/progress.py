"""Progress of an experiment on stderr: a one-line bar with ETA on a terminal, one line per finished run
otherwise (a log, CI, ``make demo > log``), nothing when asked to be quiet."""

from __future__ import annotations

import sys
import time


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ProgressBar:
    """``[#########.........] 12/30 runs (4 from cache, 1 failed) 1:02 elapsed, ETA 2:10``.

    The ETA counts only runs computed in this invocation, so runs read from
    the cache do not make it optimistic.
    """

    WIDTH = 24

    def __init__(self, total: int, label: str = "runs", enabled: bool | None = None, stream=None,
                 names: dict[str, str] | None = None):
        self.stream = stream or sys.stderr
        tty = self.stream.isatty()
        self.enabled = (tty if enabled is None else enabled) and total > 1 and tty
        #: Not a terminal: a line per run computed here (runs from the cache are counted in one line at the end).
        self.lines = enabled is not False and not tty and total >= 1
        self.names = names or {}
        self.total = total
        self.label = label
        self.done = self.cached = self.failed = 0
        self.started = time.perf_counter()
        self.last_draw = 0.0

    def __call__(self, record: dict, cached: bool) -> None:
        self.done += 1
        self.cached += cached
        self.failed += record.get("status") != "ok"
        self.draw(force=self.done == self.total)
        if self.lines and not cached:
            self.write_line(record)

    def write_line(self, record: dict) -> None:
        """``run 3/30 finished: none, replication 2 (seed 123) in 12.3 s; 0:41 elapsed, ETA 5:10``."""
        elapsed = time.perf_counter() - self.started
        computed = self.done - self.cached
        remaining = self.total - self.done
        eta = f", ETA {_clock(elapsed / computed * remaining)}" if computed and remaining else ""
        what = "finished" if record.get("status") == "ok" else "FAILED"
        name = self.names.get(record.get("key", ""), record.get("key", "")[:12])
        took = record.get("wall_s")
        took = f" in {took:.1f} s" if isinstance(took, (int, float)) else ""
        self.stream.write(f"run {self.done}/{self.total} {what}: {name}{took}; {_clock(elapsed)} elapsed{eta}\n")
        self.stream.flush()

    def line(self) -> str:
        elapsed = time.perf_counter() - self.started
        computed = self.done - self.cached
        remaining = self.total - self.done
        filled = int(self.WIDTH * self.done / self.total) if self.total else self.WIDTH
        parts = [f"{self.cached} from cache"] if self.cached else []
        if self.failed:
            parts.append(f"{self.failed} failed")
        extra = f" ({', '.join(parts)})" if parts else ""
        eta = f", ETA {_clock(elapsed / computed * remaining)}" if computed and remaining else ""
        return (f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {self.done}/{self.total} {self.label}{extra} "
                f"{_clock(elapsed)} elapsed{eta}")

    def draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if force or now - self.last_draw >= 0.25:
            self.last_draw = now
            self.stream.write("\r" + self.line() + "\x1b[K")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.done:
            self.stream.write("\n")
            self.stream.flush()
        if self.lines and self.cached:
            self.stream.write(f"{self.cached} of {self.total} runs were read from the cache\n")
            self.stream.flush()
