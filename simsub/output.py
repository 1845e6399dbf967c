"""Write a run's folder atomically: complete, or not there at all.

Files go to a hidden temporary sibling first; only when every file is written
is it renamed to the requested name (replacing an older folder of that name).
A crash or Ctrl-C leaves no folder that looks complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import tomli_w

from .analysis.charts import delivery_latency_chart, false_delay_chart, queue_chart, throughput_chart
from .analysis.tables import listed_intervals
from .api import Result
from .errors import ScenarioError

FILES = ("summary.json", "messages.csv.gz", "timeseries.csv", "scenario.toml", "throughput.png", "false_delay.png")
#: Written too when the scenario follows mail behind the front end.
QUEUE_FILES = ("deliveries.csv.gz", "events.csv", "queue.png", "delivery_latency.png")


def check_output_target(target: Path, marker: str) -> None:
    """Refuse an output folder that holds something other than an earlier result.

    ``target`` may be missing, empty, or an earlier result folder (it has the
    file ``marker``, e.g. summary.json); anything else would be deleted when the
    new result replaces it.
    """
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise ScenarioError("--out", str(target), "exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not (target / marker).is_file():
        raise ScenarioError("--out", str(target), f"exists and is not a simsub result folder (no {marker}); it "
                            "would be replaced: choose another --out or remove it")
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ScenarioError("--out", str(target), f"cannot create its parent folder: {exc.strerror}") from None
    if not os.access(parent, os.W_OK):
        raise ScenarioError("--out", str(target), f"cannot write in {parent}")


@contextmanager
def atomic_folder(target: Path, marker: str | None = None):
    """Yield a temporary folder that becomes ``target`` when the block succeeds.

    With ``marker``, an existing ``target`` is replaced only if it is empty or an
    earlier result (it has that file): see :func:`check_output_target`."""
    target = Path(target)
    if marker is not None:
        check_output_target(target, marker)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp makes it private; a result folder is not
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        target.rename(old)
    staging.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_run(result: Result, target: Path, command: str | None = None) -> Path:
    """Write summary, tables, resolved scenario and charts of ``result`` to ``target``."""
    summary = dict(result.summary)
    if command:
        summary["run"] = {**summary["run"], "command": command}
    scenario = result.scenario
    title = f"{scenario.name} · policy {result.policy} · seed {result.seed}"
    with atomic_folder(target, marker="summary.json") as folder:
        result.messages.to_csv(folder / "messages.csv.gz", index=False, float_format="%.6f",
                               compression={"method": "gzip", "compresslevel": 1, "mtime": 0})
        result.timeseries.to_csv(folder / "timeseries.csv", index=False, float_format="%.6f")
        resolved = dict(scenario.raw)
        resolved["scenario"] = {**resolved.get("scenario", {}), "seed": result.seed, "default_policy": result.policy}
        with open(folder / "scenario.toml", "wb") as fh:
            fh.write(b"# The scenario exactly as run (overrides applied); `simsub run` on this file reproduces it.\n")
            tomli_w.dump(resolved, fh, multiline_strings=True)
        throughput_chart(result.timeseries, f"Throughput — {title}", scenario.mta.process_limit, scenario.bin,
                         folder / "throughput.png")
        false_delay_chart(result.messages, f"Legitimate false delay by origin — {title}", folder / "false_delay.png")
        if result.deliveries is not None:
            result.deliveries.to_csv(folder / "deliveries.csv.gz", index=False, float_format="%.6f",
                                     compression={"method": "gzip", "compresslevel": 1, "mtime": 0})
            result.events.to_csv(folder / "events.csv", index=False, float_format="%.3f")
            intervals = listed_intervals(result.events, result.summary["run"]["end_s"])
            names = list(scenario.reputation)
            queue_chart(result.timeseries, result.events, intervals, names, f"Mail queue — {title}",
                        folder / "queue.png")
            delivery_latency_chart(result.timeseries, result.events, intervals, names,
                                   f"Legitimate delivery latency — {title}", folder / "delivery_latency.png")
        with open(folder / "summary.json", "w", encoding="utf-8") as fh:
            json.dump(summary, fh, indent=2, sort_keys=False)
            fh.write("\n")
    return Path(target)
