"""Hash the result tables of the reference runs, to prove a refactor changed no result.

Run from a checkout's root, before and after the change, and compare the output::

    .venv/bin/python -m tests.reference_hashes > /tmp/before.txt
    ... change the code ...
    .venv/bin/python -m tests.reference_hashes > /tmp/after.txt
    diff /tmp/before.txt /tmp/after.txt && echo bit-identical

Each line is ``run table sha256``: the table written as CSV with full float
precision (``%.17g``), so any change in any value changes the hash.  Wall and
CPU times are the only columns left out (they differ between any two runs).
"""

from __future__ import annotations

import hashlib
import json
import sys

import simsub

# (scenario file, policy, horizon override or None): the default scenario under the
# three kinds of policy (none, tarpit, throttle) to 16 h, past the bots' start and the
# operator's first rounds, and two library scenarios with a service and with many origins.
REFERENCE_RUNS = (
    ("scenarios/may-2012.toml", "none", "16h"),
    ("scenarios/may-2012.toml", "selective-1-5s", "16h"),
    ("scenarios/may-2012.toml", "throttle-100h", "16h"),
    ("scenarios/adaptive-bots.toml", None, None),
    ("scenarios/heavy-legit.toml", None, None),
)
UNTIMED = ("wall_s", "cpu_s", "events_per_s")


def table_hash(frame) -> str:
    return hashlib.sha256(frame.to_csv(index=False, float_format="%.17g").encode()).hexdigest()


def summary_hash(summary: dict) -> str:
    run = {k: v for k, v in summary["run"].items() if k not in UNTIMED}
    return hashlib.sha256(json.dumps({**summary, "run": run}, sort_keys=True, default=str).encode()).hexdigest()


def main() -> None:
    for path, policy, horizon in REFERENCE_RUNS:
        overrides = {"horizon": horizon} if horizon else None
        result = simsub.run(simsub.load_scenario(path, overrides), policy=policy)
        name = f"{path.rsplit('/', 1)[-1]}:{result.policy}"
        for table in ("messages", "sessions", "timeseries", "deliveries", "events"):
            frame = getattr(result, table)
            if frame is not None:
                print(name, table, table_hash(frame), flush=True)
        print(name, "summary", summary_hash(result.summary), flush=True)
        print(name, "events_scheduled", result.summary["run"]["events"], flush=True)


if __name__ == "__main__":
    sys.exit(main())
