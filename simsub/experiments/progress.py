"""A one-line progress bar with ETA on stderr, for commands with many runs.

Quiet when stderr is not a terminal (logs, CI) or when asked to be.
"""

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

    def __init__(self, total: int, label: str = "runs", enabled: bool | None = None, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = (self.stream.isatty() if enabled is None else enabled) and total > 1
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
