"""A run's result folder: summary, tables, the resolved scenario and charts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import tomli_w

from .csv_tables import COMPRESSLEVEL, write_csv
from .run_charts import delivery_latency_chart, false_delay_chart, queue_chart, throughput_chart
from ..api import Result
from ..files import atomic_folder

FILES = ("summary.json", "messages.csv.gz", "timeseries.csv", "scenario.toml", "throughput.png", "false_delay.png")
#: Written too when the scenario follows mail behind the front end.
QUEUE_FILES = ("deliveries.csv.gz", "events.csv", "queue.png", "delivery_latency.png")


def write_run(result: Result, target: Path, command: str | None = None,
              extra: Callable[[Path], None] | None = None) -> Path:
    """Write summary, tables, resolved scenario and charts of ``result`` to ``target``;
    ``extra(folder)`` writes more files into the folder before it appears."""
    summary = dict(result.summary)
    if command:
        summary["run"] = {**summary["run"], "command": command}
    scenario = result.scenario
    title = f"{scenario.name} · policy {result.policy} · seed {result.seed}"
    with atomic_folder(target, marker="summary.json") as folder:
        write_csv(result.messages, folder / "messages.csv.gz", "%.6f", COMPRESSLEVEL)
        write_csv(result.timeseries, folder / "timeseries.csv", "%.6f")
        resolved = dict(scenario.raw)
        resolved["scenario"] = {**resolved.get("scenario", {}), "seed": result.seed, "default_policy": result.policy}
        with open(folder / "scenario.toml", "wb") as fh:
            fh.write(b"# The scenario exactly as run (overrides applied); `simsub run` on this file reproduces it.\n")
            tomli_w.dump(resolved, fh, multiline_strings=True)
        throughput_chart(result.timeseries, f"Throughput — {title}", scenario.mta.process_limit, scenario.bin,
                         folder / "throughput.png")
        false_delay_chart(result.messages, f"Legitimate false delay by origin — {title}", folder / "false_delay.png")
        if result.deliveries is not None:
            write_csv(result.deliveries, folder / "deliveries.csv.gz", "%.6f", COMPRESSLEVEL)
            write_csv(result.events, folder / "events.csv", "%.3f")
            intervals = result.listed
            names = list(scenario.reputation)
            queue_chart(result.timeseries, result.events, intervals, names, f"Mail queue — {title}",
                        folder / "queue.png")
            delivery_latency_chart(result.timeseries, result.events, intervals, names,
                                   f"Legitimate delivery latency — {title}", folder / "delivery_latency.png")
        if extra is not None:
            extra(folder)
        with open(folder / "summary.json", "w", encoding="utf-8") as fh:
            json.dump(summary, fh, indent=2, sort_keys=False)
            fh.write("\n")
    return Path(target)
