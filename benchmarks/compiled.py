"""The compiled build (mypyc) against the pure-Python one: CPU per message of a default run.

Each measurement is a fresh process running ``simsub.run(None, seed=1)`` (the default
scenario's 24 h with its default policy), with ``SIMSUB_PURE_PYTHON=1`` for the pure
build, from the same installation.  The two builds alternate (``--pairs`` pairs,
compiled first), so a drift in the machine's speed hits both; the figure is the
ratio of the medians, pure over compiled (> 1: the compiled build is faster).  Each
child also checks that it ran the build it was asked for and that both builds
produced the same messages table.

    python -m benchmarks.compiled [--pairs 3] [--horizon 24h] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

CHILD = """
import json, time, simsub
from simsub import build
from tests.reference_hashes import table_hash
overrides = {"horizon": %r} if %r else None
scenario = simsub.load_scenario("scenarios/may-2012.toml", overrides)
started = time.process_time()
result = simsub.run(scenario, seed=1)
process = time.process_time() - started
print(json.dumps({"kind": build.KIND, "loaded": sorted(set(build.loaded_kinds().values())),
                  "messages": len(result.messages), "simulate_cpu_s": result.summary["run"]["cpu_s"],
                  "run_cpu_s": process, "hash": table_hash(result.messages)}))
"""

ROOT = Path(__file__).resolve().parents[1]


def measure(pure: bool, horizon: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "SIMSUB_PURE_PYTHON"}
    if pure:
        env["SIMSUB_PURE_PYTHON"] = "1"
    out = subprocess.run([sys.executable, "-c", CHILD % (horizon, horizon)], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True).stdout
    child = json.loads(out)
    want = "pure" if pure else "compiled"
    if child["kind"] != want or child["loaded"] != [want]:
        sys.exit(f"benchmarks.compiled: asked for the {want} build, the child ran {child['kind']} "
                 f"(modules: {child['loaded']}); is the compiled build installed (make)?")
    return child


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compiled", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=3, help="alternating compiled/pure pairs (default 3)")
    parser.add_argument("--horizon", help="override the scenario's horizon (default: its 24h)")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    runs: dict[str, list[dict]] = {"compiled": [], "pure": []}
    for i in range(args.pairs):
        for kind in ("compiled", "pure"):
            runs[kind].append(measure(kind == "pure", args.horizon))
            r = runs[kind][-1]
            print(f"pair {i + 1} {kind:8s}: {r['messages']} messages, simulate {r['simulate_cpu_s']:.1f} s CPU, "
                  f"run {r['run_cpu_s']:.1f} s CPU", flush=True)
    if len({r["hash"] for rs in runs.values() for r in rs}) != 1:
        sys.exit("benchmarks.compiled: the builds' messages tables differ")

    def per_message(kind: str, key: str) -> float:
        return statistics.median(r[key] / r["messages"] for r in runs[kind])

    figures = {
        "simulate_pure_over_compiled": per_message("pure", "simulate_cpu_s") / per_message("compiled", "simulate_cpu_s"),
        "run_pure_over_compiled": per_message("pure", "run_cpu_s") / per_message("compiled", "run_cpu_s"),
        "pair_ratios": [round(p["simulate_cpu_s"] / c["simulate_cpu_s"], 3)
                        for c, p in zip(runs["compiled"], runs["pure"])],
        "compiled_simulate_us_per_message": per_message("compiled", "simulate_cpu_s") * 1e6,
        "pure_simulate_us_per_message": per_message("pure", "simulate_cpu_s") * 1e6,
        "messages": runs["compiled"][0]["messages"], "pairs": args.pairs, "horizon": args.horizon or "scenario's",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}",
    }
    print(json.dumps(figures, indent=1))
    if args.out:
        args.out.write_text(json.dumps({"figures": figures, "runs": runs}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    started = time.monotonic()
    status = main()
    print(f"({time.monotonic() - started:.0f} s)", file=sys.stderr)
    sys.exit(status)
