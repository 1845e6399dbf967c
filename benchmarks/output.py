"""What writing a run's result folder costs, run as
``python -m benchmarks.output [--horizon DUR] [--rounds N]``.

One run of the default scenario (to ``--horizon``, default its own 24 h), then
``--rounds`` alternating rounds, each writing the two large tables
(``messages.csv.gz``, ``deliveries.csv.gz``) with pandas' ``to_csv`` (what
``simsub run`` used before) and with :func:`simsub.report.csv_tables.write_csv`,
both at gzip level 1.  Prints the median CPU seconds of each, their ratio (the
baseline is measured in the same run, so a busy machine slows both), the sizes,
and the CPU seconds of the whole folder (``write_run``: tables and charts)
against the simulation's.  Exits 1 if the decompressed text of the two writers
differs.  Figures: docs/performance.md.
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import tempfile
import time
from pathlib import Path

import simsub
from simsub.report.csv_tables import COMPRESSLEVEL, write_csv
from simsub.report.run_folder import write_run
from simsub.scenario import default_scenario_path

TABLES = ("messages", "deliveries")


def pandas_writer(frame, path: Path) -> None:
    frame.to_csv(path, index=False, float_format="%.6f",
                 compression={"method": "gzip", "compresslevel": COMPRESSLEVEL, "mtime": 0})


def new_writer(frame, path: Path) -> None:
    write_csv(frame, path, "%.6f", COMPRESSLEVEL)


def cpu(function, *args) -> float:
    started = time.process_time()
    function(*args)
    return time.process_time() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.output", description=__doc__.split("\n\n")[0])
    parser.add_argument("--horizon", help="simulated horizon, e.g. 6h (default: the scenario's)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    args = parser.parse_args(argv)
    overrides = {"horizon": args.horizon} if args.horizon else None
    started = time.process_time()
    result = simsub.run(simsub.load_scenario(default_scenario_path(), overrides))
    simulate_s = time.process_time() - started
    times: dict[str, list[float]] = {"pandas": [], "write_csv": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for _ in range(args.rounds):
            for name, writer in (("pandas", pandas_writer), ("write_csv", new_writer)):
                times[name].append(sum(cpu(writer, getattr(result, t), folder / f"{name}-{t}.csv.gz")
                                       for t in TABLES))
        same = all(gzip.decompress((folder / f"pandas-{t}.csv.gz").read_bytes())
                   == gzip.decompress((folder / f"write_csv-{t}.csv.gz").read_bytes()) for t in TABLES)
        sizes = {t: (folder / f"write_csv-{t}.csv.gz").stat().st_size for t in TABLES}
        rows = {t: len(getattr(result, t)) for t in TABLES}
        folder_s = cpu(write_run, result, folder / "run")
    old, new = statistics.median(times["pandas"]), statistics.median(times["write_csv"])
    print(f"run: {result.summary['run']['horizon_s'] / 3600:g} h, simulate+tabulate {simulate_s:.2f} s CPU")
    for t in TABLES:
        print(f"  {t}.csv.gz: {rows[t]:,} rows, {sizes[t] / 1e6:.2f} MB")
    print(f"two tables, median of {args.rounds}: pandas to_csv {old:.3f} s, write_csv {new:.3f} s CPU; "
          f"ratio {old / new:.2f}")
    print(f"whole folder (tables + charts): {folder_s:.2f} s CPU = {folder_s / (simulate_s + folder_s):.0%} "
          "of simulate + write")
    print("decompressed text identical" if same else "TEXT DIFFERS")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
