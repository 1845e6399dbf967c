"""The benchmark suite, run as ``python -m benchmarks [--quick] [--out FILE]``.

Every figure is a ratio against a baseline measured in the same run, and
single-process times are CPU time of that process (time.process_time), so
other load on a shared machine hardly moves them; figure 4 is wall time by
nature:

0. model over skeleton: simsub's CPU per message on the default scenario over
   a minimal SimPy skeleton's playing the same workload (same arrivals and bot
   sessions, smtpd as a Resource, one timeout per session and per delivery
   request, no policy, no recording: ``benchmarks/skeleton.py``; the operator
   switched off in both, so they play the same sessions), fastest of
   interleaved runs, for ``simulate()`` alone and for the whole ``simsub.run``
   (result tables included);
1. engine efficiency (context only: it rewards events, not speed): simsub's
   events per second on the default scenario over bare SimPy's on a loop of
   plain timeouts with as many processes;
2. recipient independence: wall time per bot session with 100 recipients over
   one with 1 (the same sleep per RCPT);
3. scaling: the default scenario at 1x, 4x and 16x the populations (and the
   server, the thresholds that count its traffic and the destinations' rate
   limits per server, so each message makes the same work): time per
   recorded message relative to 1x (fastest of 3 interleaved runs per size),
   and peak memory (all Python allocations during ``simsub.run``, result
   tables included, traced) per recorded message — a recorded message is a
   row of the messages table or of the deliveries table (a message in the
   mail queue, bounces included);
4. parallel sweep efficiency: a 16-point sweep (`simsub.experiments.sweep`)
   with 2 worker processes over 1;
5. simulated time per wall second of the default scenario.

``--quick`` shrinks every size so the whole suite takes a minute or two (used
by CI to catch breakage, not to judge speed).  ``--only STEP …`` runs some of
the steps (skeleton: 0, engine: 1 and 5, recipients: 2, scaling: 3, parallel:
4), e.g. ``--only scaling`` for the memory figure alone; the report then goes to
``results/benchmarks-STEP….json`` unless ``--out`` says otherwise, so the full
report is not overwritten by a partial one.
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing
import os
import platform
import tracemalloc
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import simpy

import simsub
from simsub.scenario import default_scenario_path
from simsub.scenario.loader import build_scenario

import tomllib

from benchmarks import write_report

TARGETS = {
    "model_over_skeleton": "<= 2.0",
    "engine_efficiency": "context",
    "recipient_independence": "<= 1.2",
    "scaling_time_per_message": "within 0.8..1.2 of 1x",
    "memory_per_message_bytes": "<= 300",
    "parallel_speedup_2_workers": ">= 1.7",
}


# The suite's steps, in the order they run (``--only`` picks among them).
STEPS = ("skeleton", "engine", "recipients", "scaling", "parallel")


def default_raw() -> dict:
    with open(default_scenario_path(), "rb") as fh:
        return tomllib.load(fh)


def scaled(raw: dict, factor: int, horizon: str | float) -> simsub.Scenario:
    """The default scenario with populations, accounts and server capacity × factor.

    Everything that sets how much work a message makes is scaled with it, so the
    larger runs do the same work per message: the server (processes, accept
    queue, delivery agents), the thresholds that count its traffic (lists, the
    operator) and the destinations' per-server rate limits (a larger ISP sends
    from proportionally more addresses; unscaled, the 16x run would spend its time
    on deferrals and retries that the 1x run never sees)."""
    data = copy.deepcopy(raw)
    data["scenario"]["horizon"] = horizon
    for population in data["populations"]:
        population["count"] *= factor
        if "accounts" in population:
            population["accounts"] *= factor
    data["mta"]["process_limit"] *= factor
    data["mta"]["backlog"] *= factor
    if "queue" in data:
        data["queue"]["delivery_agents"] *= factor
        data["queue"]["destination_concurrency"] *= factor
        data["queue"]["active_limit"] *= factor
    for destination in data.get("destinations", {}).values():
        if "rate_limit" in destination:
            destination["rate_limit"]["messages"] *= factor
    for reputation in data.get("reputation", {}).values():
        reputation["threshold"] *= factor
    if "operator" in data:
        data["operator"]["threshold"] *= factor
        data["operator"]["reset_accounts"] *= factor
    return build_scenario(data, f"default x{factor}", {})


def recorded_messages(result: simsub.Result) -> int:
    """Rows of the messages table plus rows of the deliveries table (messages that
    entered the mail queue, bounces included): what figures 1 and 3 count per."""
    return len(result.messages) + (len(result.deliveries) if result.deliveries is not None else 0)


# ------------------------------------------------------------------------------------- 1
def bare_simpy_rate(processes: int, events: int) -> float:
    """Events per second of SimPy alone: ``processes`` loops of plain timeouts."""
    env = simpy.Environment()
    per_process = max(events // processes, 1)

    def loop(env, delay):
        for _ in range(per_process):
            yield env.timeout(delay)

    for i in range(processes):
        env.process(loop(env, 1.0 + i / processes))
    started = time.process_time()
    env.run()
    return processes * (per_process + 2) / (time.process_time() - started)


def engine_efficiency(raw: dict, horizon: str, baseline_events: int) -> dict:
    """Figure 1 (and 5); ``baseline_events``: size of each bare SimPy loop, about
    the model run's own event count."""
    scenario = scaled(raw, 1, horizon)
    processes = sum(p.count * p.parallel for p in scenario.populations if p.is_bot) + len(scenario.populations) + 1
    # Bare SimPy is timed right before and right after the model's run, and the two
    # rates averaged: a shared virtual machine's speed drifts over a minute or two.
    before = bare_simpy_rate(processes, baseline_events)
    result = simsub.run(scenario, policy="none")
    after = bare_simpy_rate(processes, baseline_events)
    run = result.summary["run"]
    cpu = run["cpu_s"]  # the simulation itself, as before; tables are built after it
    rate = run["events"] / cpu
    baseline = (before + after) / 2
    # Context for figure 1: sessions are computed in closed form, so a message
    # costs few SimPy events and the model's arithmetic is spread over them.
    messages = recorded_messages(result)
    return {"simsub_events_per_s": rate, "simpy_events_per_s": baseline,
            "simpy_events_per_s_before_after": [before, after],
            "engine_efficiency": rate / baseline, "events": run["events"],
            "recorded_messages": messages, "events_per_message": run["events"] / messages,
            "cpu_us_per_message": cpu / messages * 1e6, "simpy_us_per_event": 1e6 / baseline,
            "simulated_s_per_wall_s": run["end_s"] / cpu, "horizon": horizon}


# ------------------------------------------------------------------------------------- 0
def model_over_skeleton(raw: dict, horizon: str | float, rounds: int) -> dict:
    """Figure 0: simsub's CPU per message over the skeleton's, the same run's measurements."""
    from .skeleton import run_skeleton

    # Without the operator: its password resets end bot campaigns early in simsub (AUTH
    # fails), which the skeleton cannot know; without it both play the same sessions.
    data = copy.deepcopy(raw)
    data.pop("operator", None)
    scenario = scaled(data, 1, horizon)
    skeleton_cpu, simulate_cpu, process_cpu = [], [], []
    for _ in range(rounds):  # interleaved, so a drift in the machine's speed hits both
        skeleton = run_skeleton(scenario, scenario.seed)
        skeleton_cpu.append(skeleton["cpu_s"] / skeleton["sessions"])
        started = time.process_time()
        result = simsub.run(scenario, policy="none")
        process = time.process_time() - started
        messages = len(result.messages)
        simulate_cpu.append(result.summary["run"]["cpu_s"] / messages)
        process_cpu.append(process / messages)
    base = min(skeleton_cpu)
    return {"model_over_skeleton": min(simulate_cpu) / base, "run_over_skeleton": min(process_cpu) / base,
            "skeleton_us_per_message": base * 1e6, "simulate_us_per_message": min(simulate_cpu) * 1e6,
            "run_us_per_message": min(process_cpu) * 1e6, "messages": messages,
            "skeleton_sessions": skeleton["sessions"], "skeleton_delivery_timeouts": skeleton["delivery_timeouts"],
            "delivery_attempts": result.summary["queue"]["delivery_attempts"], "rounds": rounds, "horizon": horizon,
            "operator": "off (both play the same sessions)"}


# ------------------------------------------------------------------------------------- 2
def recipient_independence(minutes: int) -> dict:
    """Bots with 1 or 100 recipients and ``sleep 1`` per RCPT; the 1-recipient
    bots pause longer so that both run the same number of sessions, so the
    ratio of wall times is the ratio of costs per session."""
    per_rcpt = 1.0 + 0.2 + 0.002  # sleep + round trip + reply time, s

    def run(recipients: int, pause: float) -> tuple[float, int]:
        data = {
            "scenario": {"name": "rcpt", "horizon": f"{minutes}m", "seed": 1},
            "origins": {"unknown": {"hostname": "unknown", "rtt": "200ms"}},
            "populations": [{"name": "bots", "kind": "bot", "count": 200, "accounts": 10, "start": "0s",
                             "ramp": "10s", "origins": {"unknown": 1.0}, "pause": pause, "patience": "60s",
                             "recipients": recipients}],
            "mta": {"process_limit": 1000, "backlog": 1000},
            "policies": {"tarpit": {"recipient_restrictions": ["sleep 1"]}},
        }
        scenario = build_scenario(data, "rcpt", {})
        started = time.process_time()
        result = simsub.run(scenario, policy="tarpit")
        return time.process_time() - started, len(result.messages)

    wall_100, n100 = run(100, 1.0)
    wall_1, n1 = run(1, 1.0 + 99 * per_rcpt)
    return {"wall_1_rcpt_s": wall_1, "wall_100_rcpt_s": wall_100, "sessions": [n1, n100],
            "recipient_independence": (wall_100 / n100) / (wall_1 / n1)}


# ------------------------------------------------------------------------------------- 3
def _timed_run(args) -> dict:
    """In a fresh process: one run of one size, timed (CPU time of the process)."""
    factor, horizon = args
    scenario = scaled(default_raw(), factor, horizon)
    started = time.process_time()
    result = simsub.run(scenario, policy="none")
    wall = time.process_time() - started
    messages = recorded_messages(result)
    return {"wall_s": wall, "messages": messages, "events": result.summary["run"]["events"],
            "recorder_bytes": result.recorder_bytes}


def _traced_run(args) -> int:
    """In a fresh process: peak traced memory of one run (tracing slows it down, so it is not timed)."""
    factor, horizon = args
    scenario = scaled(default_raw(), factor, horizon)
    tracemalloc.start()
    simsub.run(scenario, policy="none")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def _in_fresh_process(function, args):
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, args).result()


def scaling(factors: list[int], horizon: str, rounds: int) -> dict:
    """Each size timed ``rounds`` times, the sizes interleaved (1x, 4x, 16x, 1x, …),
    and the fastest run of each size kept: this machine's speed drifts by tens of
    per cent over minutes, and interference only ever makes a run slower."""
    times: dict[int, list[float]] = {factor: [] for factor in factors}
    runs: dict[int, dict] = {}
    for _ in range(rounds):
        for factor in factors:
            run = _in_fresh_process(_timed_run, (factor, horizon))
            times[factor].append(run["wall_s"])
            runs[factor] = run  # the same counts every round (same seed)
    rows = []
    for factor in factors:
        row = {"factor": factor, **runs[factor], "wall_s": min(times[factor]), "wall_s_all": times[factor],
               "peak_traced_bytes": _in_fresh_process(_traced_run, (factor, horizon))}
        rows.append(row)
    base = rows[0]["wall_s"] / rows[0]["messages"]
    for row in rows:
        row["time_per_message_us"] = row["wall_s"] / row["messages"] * 1e6
        row["time_per_message_vs_1x"] = (row["wall_s"] / row["messages"]) / base
        row["memory_per_message_bytes"] = row["peak_traced_bytes"] / row["messages"]
        row["recorder_bytes_per_message"] = row["recorder_bytes"] / row["messages"]
    return {"horizon": horizon, "rounds": rounds, "sizes": rows}


# ------------------------------------------------------------------------------------- 4
def parallel_speedup(runs: int) -> dict:
    """A ``runs``-point sweep (``simsub.experiments.sweep`` of the default scenario cut
    to 12.5 h, policy selective-1-5s, bot count 50, 55, …) on 1 worker, then on 2."""
    from simsub.experiments import sweep

    walls = {}
    tables = {}
    for workers in (1, 2):
        started = time.perf_counter()
        experiment = sweep(None, "selective-1-5s", {"populations.botnet.count": [50 + 5 * i for i in range(runs)]},
                           replications=1, baseline=None, workers=workers, overrides={"horizon": 45000},
                           progress=False)
        walls[workers] = time.perf_counter() - started
        metrics = [c for c in experiment.runs.columns if "." in c]
        tables[workers] = experiment.runs.sort_values("populations.botnet.count")[metrics].reset_index(drop=True)
    assert tables[1].equals(tables[2]), "a run gave different results in another worker"
    return {"runs": runs, "wall_1_worker_s": walls[1], "wall_2_workers_s": walls[2],
            "parallel_speedup_2_workers": walls[1] / walls[2]}


# ------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the suite runs (CI)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON output file (default results/benchmarks.json, or results/benchmarks-STEP….json "
                             "with --only)")
    parser.add_argument("--only", nargs="+", choices=STEPS, metavar="STEP",
                        help=f"run only these steps ({', '.join(STEPS)})")
    args = parser.parse_args(argv)
    out = args.out
    if out is None:
        out = Path("results/benchmarks.json" if not args.only else f"results/benchmarks-{'-'.join(args.only)}.json")
    raw = default_raw()
    quick = args.quick
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "simsub": simsub.__version__,
        "quick": quick,
        "targets": TARGETS,
    }
    steps = [
        ("skeleton", lambda: model_over_skeleton(raw, 45000 if quick else "24h", 1 if quick else 2)),
        ("engine", lambda: engine_efficiency(raw, 45000 if quick else "24h", 400_000 if quick else 2_000_000)),
        ("recipients", lambda: recipient_independence(5 if quick else 30)),
        ("scaling", lambda: scaling([1, 2] if quick else [1, 4, 16], 44100 if quick else "13h", 2 if quick else 3)),
        ("parallel", lambda: parallel_speedup(4 if quick else 16)),
    ]
    assert [name for name, _ in steps] == list(STEPS)
    for name, step in steps:
        if args.only and name not in args.only:
            continue
        print(f"benchmark: {name} …", file=sys.stderr, flush=True)
        report[name] = step()
    write_report(out, report, format_table(report))
    return 0


def format_table(report: dict) -> str:
    """The figures of the steps in ``report`` (all of them, or those of ``--only``)."""
    engine, rcpt, scale, par = (report.get(name) for name in ("engine", "recipients", "scaling", "parallel"))
    skeleton = report.get("skeleton")
    rows = []
    if skeleton:
        rows += [
            ("0. simsub / skeleton CPU per message: simulate()",
             f"{skeleton['model_over_skeleton']:.2f} ({skeleton['simulate_us_per_message']:.1f} / "
             f"{skeleton['skeleton_us_per_message']:.1f} µs)", TARGETS["model_over_skeleton"]),
            ("0. simsub / skeleton CPU per message: whole simsub.run",
             f"{skeleton['run_over_skeleton']:.2f} ({skeleton['run_us_per_message']:.1f} µs)", "report"),
        ]
    if engine:
        rows += [
            ("1. engine efficiency (simsub / bare SimPy events per s)",
             f"{engine['engine_efficiency']:.3f} ({engine['simsub_events_per_s']:,.0f} / "
             f"{engine['simpy_events_per_s']:,.0f})", TARGETS["engine_efficiency"]),
            ("   context: SimPy events and CPU per recorded message",
             f"{engine['events_per_message']:.2f} ev, {engine['cpu_us_per_message']:.1f} µs "
             f"(SimPy: {engine['simpy_us_per_event']:.2f} µs/ev)", "report"),
        ]
    if rcpt:
        rows.append(("2. recipient independence (wall per session, 100 / 1 rcpt)",
                     f"{rcpt['recipient_independence']:.2f}", TARGETS["recipient_independence"]))
    for row in scale["sizes"] if scale else ():
        rows.append((f"3. scaling {row['factor']}x: time per message vs 1x",
                     f"{row['time_per_message_vs_1x']:.2f} ({row['time_per_message_us']:.0f} µs/msg)",
                     TARGETS["scaling_time_per_message"]))
        rows.append((f"3. scaling {row['factor']}x: peak memory per recorded message",
                     f"{row['memory_per_message_bytes']:,.0f} B (columns {row['recorder_bytes_per_message']:.0f} B)",
                     TARGETS["memory_per_message_bytes"]))
    if par:
        rows.append(("4. parallel sweep: 2 workers over 1", f"{par['parallel_speedup_2_workers']:.2f}",
                     TARGETS["parallel_speedup_2_workers"]))
    if engine:
        rows.append(("5. simulated time per wall second", f"{engine['simulated_s_per_wall_s']:,.0f} s/s", "report"))
    width = max(len(r[0]) for r in rows)
    lines = [f"{'figure'.ljust(width)}  {'measured':<40}  target", "-" * (width + 52)]
    lines += [f"{a.ljust(width)}  {b:<40}  {c}" for a, b, c in rows]
    return "\n".join(lines)

