"""``python -m benchmarks.policyd``: simsub policyd beside postfwd under load, on loopback.

The same recorded request stream (:func:`simsub.policyd.peer.request_stream`: RCPT
requests of 2,000 logins, as Postfix 3.7 writes them) is sent to each server over
1, 10 and 100 persistent connections, as that many smtpd processes would: each
connection sends a request, waits for the answer, sends the next.  Reported per
server and concurrency: requests per second (answered requests / wall time) and
the 50th and 99th percentile of the time from sending a request to reading its
answer.  The policy is may-2012's ``throttle-100h`` (100 messages per hour per
login, fixed window, DEFER) in simsub; postfwd gets the equivalent
``rate(sasl_username/100/3600/DEFER ...)``.

Servers: ``simsub policyd`` (its own process, as deployed: decision lines logged to
a file, default 100 ms budget), postfwd2 (Debian's default: preforking children
plus a cache daemon holding the counters) and postfwd1 (one process).  The load
generator is one asyncio process on the same machine: on a small machine it
competes with the server for the CPU, so the figures are a floor, comparable
between servers of the same run.

Bounded: at most ``--requests`` per level and ``--seconds`` of sending per level
(whichever comes first); loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LEVELS = (1, 10, 100)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = min(len(ordered) - 1, max(0, int(round(q / 100 * (len(ordered) - 1)))))
    return ordered[rank]


async def _load(address: str, requests: list[bytes], connections: int, seconds: float) -> dict:
    """Send ``requests`` over ``connections`` connections (round robin); stop after ``seconds``."""
    host, _, port = address.rpartition(":")
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    errors = 0

    async def worker(share: list[bytes]) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, int(port), limit=1 << 16)
        try:
            for request in share:
                if time.perf_counter() > deadline:
                    break
                sent = time.perf_counter()
                writer.write(request)
                answer = await reader.readuntil(b"\n\n")
                latencies.append(time.perf_counter() - sent)
                if not answer.startswith(b"action="):
                    errors += 1
        finally:
            writer.close()

    shares = [requests[i::connections] for i in range(connections)]
    started = time.perf_counter()
    await asyncio.gather(*(worker(share) for share in shares))
    wall = time.perf_counter() - started
    return {"connections": connections, "requests": len(latencies), "errors": errors, "wall_s": wall,
            "rps": len(latencies) / wall, "p50_ms": _percentile(latencies, 50) * 1e3,
            "p99_ms": _percentile(latencies, 99) * 1e3}


class _Simsub:
    """simsub policyd in its own process on a free port."""

    def __init__(self, folder: Path):
        self.log = folder / "policyd.log"
        self.process = None
        self.address = ""

    def __enter__(self):
        command = [sys.executable, "-m", "simsub", "policyd", "--policy", "throttle-100h", "--listen", "127.0.0.1:0"]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            match = re.search(r"event=listening address=(\S+)", self.log.read_text(errors="replace"))
            if match:
                self.address = match.group(1)
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"simsub policyd exited:\n{self.log.read_text()}")
            time.sleep(0.05)
        raise RuntimeError("simsub policyd did not start")

    def __exit__(self, *_exc):
        self.process.terminate()
        self.process.wait(30)


def run(requests_per_level: int, seconds: float, servers: list[str]) -> dict:
    from simsub.policyd.peer import Postfwd, rate_rule, request_stream, unavailable_reason
    from simsub.policyd.protocol import format_request

    stream = [format_request(r) for _t, r in request_stream(seed=2012, messages=requests_per_level, users=2000,
                                                              spacing=0.0)][:requests_per_level]
    rule = rate_rule("THROTTLE", "sasl_username", 100, 3600, "DEFER 4.7.1 ratelimit: over 100 messages/3600s")
    results: dict[str, list[dict]] = {}
    notes = []
    with tempfile.TemporaryDirectory(prefix="simsub-bench-policyd-") as tmp:
        for name in servers:
            if name.startswith("postfwd") and unavailable_reason(name):
                notes.append(f"{name}: skipped, {unavailable_reason(name)}")
                continue
            server = _Simsub(Path(tmp)) if name == "simsub" else Postfwd([rule], program=name)
            with server:
                results[name] = []
                for connections in LEVELS:
                    # A new counter state per level would need a restart; the stream's logins are
                    # many, so few requests are over the limit at any level (as on a real server).
                    row = asyncio.run(_load(server.address, stream, connections, seconds))
                    results[name].append(row)
                    print(f"{name:9} {connections:4} conn: {row['rps']:8.0f} req/s  p50 {row['p50_ms']:7.3f} ms  "
                          f"p99 {row['p99_ms']:7.3f} ms  ({row['requests']} requests, {row['errors']} errors)",
                          file=sys.stderr)
    return {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "cpus": os.cpu_count(),
            "python": platform.python_version(), "requests_per_level": requests_per_level,
            "seconds_per_level": seconds, "results": results, "notes": notes}


def table(report: dict) -> str:
    lines = ["| server | connections | requests/s | p50 (ms) | p99 (ms) | requests |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, rows in report["results"].items():
        for row in rows:
            lines.append(f"| {name} | {row['connections']} | {row['rps']:.0f} | {row['p50_ms']:.3f} | "
                         f"{row['p99_ms']:.3f} | {row['requests']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.policyd", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000, help="most requests per level (default 20000)")
    parser.add_argument("--seconds", type=float, default=15.0, help="most seconds of sending per level (default 15)")
    parser.add_argument("--servers", default="simsub,postfwd2,postfwd1",
                        help="comma-separated: simsub, postfwd2, postfwd1 (default all three)")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    report = run(args.requests, args.seconds, [s.strip() for s in args.servers.split(",") if s.strip()])
    report["command"] = "python -m benchmarks.policyd " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"simsub policyd load benchmark, {report['date']}, {report['cpus']} CPUs, Python {report['python']}")
    print(table(report))
    for note in report["notes"]:
        print(f"note: {note}")
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
