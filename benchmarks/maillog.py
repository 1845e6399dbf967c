"""Maillog parsing speed and memory, run as ``python -m benchmarks.maillog [--quick] [--out FILE]``.

A synthetic Postfix log (classic stamps; submission sessions of subscribers who
log in and send to 1-3 recipients, bots whose logins fail or who hang up after
RCPT, 450 rejects, port-25 sessions, other programs' lines, anvil statistics)
is written to a temporary folder at two sizes, ten times apart.

1. throughput: lines per CPU second of ``simsub maillog parse``'s work (parse and
   write the gzip CSV tables), and of the parse alone (rows built, then dropped),
   next to a plain loop that only reads and splits the same lines (``for line in
   file: line.split()``), all in this process, fastest of ``--repeat`` interleaved
   runs each; the ratio is what counts (goal >= 1/3);
2. memory: the peak resident size (ru_maxrss) of a fresh process that parses the
   small log and of one that parses the large one (goal: flat, ratio near 1).
"""

from __future__ import annotations

import argparse
import heapq
import importlib
import itertools
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _stamp(t: float) -> str:
    g = time.gmtime(t)
    return f"{MONTHS[g.tm_mon - 1]} {g.tm_mday:2d} {g.tm_hour:02d}:{g.tm_min:02d}:{g.tm_sec:02d}"


def synthetic_lines(count: int, seed: int = 1, start: float = 1_772_928_000.0, host: str = "mx1",
                    rate: float = 20.0):
    """About ``count`` lines of a busy submission server's log (an iterator of str with newlines).

    ``rate`` sessions start per second on average (Poisson); every process id is reused (pids cycle through
    a few thousand), queue ids are unique, and times only go forward."""
    rng = random.Random(seed)
    t = start
    pid = 10_000
    queue = 0
    emitted = 0
    pending: list[tuple[float, int, str]] = []  # a heap of the lines of sessions in flight
    order = itertools.count()

    def line(at: float, program: str, p: int, text: str) -> tuple[float, int, str]:
        return at, next(order), f"{_stamp(at)} {host} {program}[{p}]: {text}\n"

    while emitted < count:
        t += rng.expovariate(rate)
        pid = 10_000 + (pid - 10_000 + 1) % 3000
        kind = rng.random()
        if kind < 0.6:
            who = (f"p{rng.randrange(5000)}.dial.example-isp.ne.jp",
                   f"198.51.{rng.randrange(100, 104)}.{rng.randrange(256)}")
        else:
            who = ("unknown", f"100.64.{rng.randrange(256)}.{rng.randrange(256)}")
        client = f"{who[0]}[{who[1]}]"
        smtpd = "postfix/submission/smtpd"
        out = [line(t, smtpd, pid, f"connect from {client}")]
        at = t + 0.2
        if kind < 0.6:  # a subscriber sends one message
            queue += 1
            qid = f"{queue:011X}"
            n = rng.randint(1, 3)
            user = f"user{rng.randrange(20000)}"
            out.append(line(at, smtpd, pid, f"{qid}: client={client}, sasl_method=LOGIN, sasl_username={user}"))
            out.append(line(at + 0.1, "postfix/cleanup", 300 + pid % 7, f"{qid}: message-id=<{qid}@example.jp>"))
            out.append(line(at + 0.2, "postfix/qmgr", 200, f"{qid}: from=<{user}@example.jp>, size="
                            f"{rng.randrange(400, 90000)}, nrcpt={n} (queue active)"))
            out.append(line(at + 0.3, smtpd, pid, f"disconnect from {client} ehlo=1 auth=1 mail=1 rcpt={n} data=1 "
                            f"quit=1 commands={5 + n}"))
            for r in range(n):
                d = 0.5 + rng.random()
                out.append(line(at + 0.2 + d, "postfix/smtp", 400 + r, f"{qid}: to=<r{r}@example.net>, "
                                f"relay=mx.example.net[192.0.2.26]:25, delay={d + 0.2:.2g}, "
                                f"delays=0.2/0.01/0.1/{d - 0.11:.2g}, "
                                "dsn=2.0.0, status=sent (250 2.0.0 Ok: queued)"))
            out.append(line(at + 2.0, "postfix/qmgr", 200, f"{qid}: removed"))
        elif kind < 0.8:  # a bot whose stolen password no longer works
            out.append(line(at, smtpd, pid, f"warning: {client}: SASL LOGIN authentication failed: "
                            "UGFzc3dvcmQ6"))
            out.append(line(at + 0.1, smtpd, pid, f"lost connection after AUTH from {client}"))
            out.append(line(at + 0.1, smtpd, pid, f"disconnect from {client} ehlo=1 auth=0/1 commands=1/2"))
        elif kind < 0.9:  # a bot that hangs up during the tarpit after RCPT
            queue += 1
            qid = f"{queue:011X}"
            out.append(line(at, smtpd, pid, f"{qid}: client={client}, sasl_method=LOGIN, sasl_username=user"
                            f"{rng.randrange(20)}"))
            out.append(line(at + 4.0, smtpd, pid, f"lost connection after RCPT from {client}"))
            out.append(line(at + 4.0, smtpd, pid, f"disconnect from {client} ehlo=1 auth=1 mail=1 rcpt=1 "
                            "commands=4"))
        else:  # rejected at RCPT
            out.append(line(at, smtpd, pid, f"NOQUEUE: reject: RCPT from {client}: 450 4.7.1 <{client}>: Client host "
                            "rejected: try again later; from=<a@example.jp> to=<b@example.net> proto=ESMTP "
                            "helo=<pc>"))
            out.append(line(at + 0.1, smtpd, pid, f"disconnect from {client} ehlo=1 auth=1 mail=1 rcpt=0/1 quit=1 "
                            "commands=4/5"))
        if rng.random() < 0.05:
            out.append(line(t, "dovecot", 1201, f"imap-login: Login: user=<user{rng.randrange(20000)}>, method=PLAIN"))
        if rng.random() < 0.01:
            out.append(line(t, "postfix/anvil", 500, f"statistics: max connection rate 3/60s for "
                            f"(submission:{who[1]}) at {_stamp(t - 60)}"))
        for item in out:
            heapq.heappush(pending, item)
        # lines of sessions still in flight stay pending; the rest are written in time order
        while pending and pending[0][0] < t:
            yield heapq.heappop(pending)[2]
            emitted += 1
    while pending:
        yield heapq.heappop(pending)[2]


def write_log(path: Path, lines: int, seed: int = 1) -> int:
    """Write about ``lines`` synthetic lines to ``path``; return the count written."""
    n = 0
    with open(path, "w", encoding="utf-8") as fh:
        for n, text in enumerate(synthetic_lines(lines, seed), start=1):
            fh.write(text)
    # a fixed modification time in the log's year, so the classic stamps are dated the same every run
    os.utime(path, (1_798_000_000, 1_798_000_000))
    return n


def read_and_split(path: Path) -> int:
    """The baseline: read every line and split it on white space, nothing else."""
    n = 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line.split()
            n += 1
    return n


def parse_to_folder(path: Path, folder: Path) -> dict:
    """What ``simsub maillog parse`` does, without the command line: parse and write the tables."""
    from simsub.maillog.parse import parse_into
    from simsub.maillog.tables import Buffers, CsvSink

    sink = CsvSink(folder)
    try:
        return parse_into([path], Buffers(sink))
    finally:
        sink.close()


class _Drop:
    """A sink that drops the rows: the parse alone."""

    def write(self, table, rows):
        pass


def parse_only(path: Path) -> dict:
    from simsub.maillog.parse import parse_into
    from simsub.maillog.tables import Buffers

    return parse_into([path], Buffers(_Drop()))


def cpu(fn, *args) -> tuple[float, object]:
    started = time.process_time()
    result = fn(*args)
    return time.process_time() - started, result


def throughput(path: Path, lines: int, repeat: int) -> dict:
    parse_only(path)  # imports and compiled patterns, outside the measure
    base_times, parse_times, only_times = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeat):
            base_times.append(cpu(read_and_split, path)[0])
            parse_times.append(cpu(parse_to_folder, path, Path(tmp))[0])
            only_times.append(cpu(parse_only, path)[0])
    base, parse, only = min(base_times), min(parse_times), min(only_times)
    return {"lines": lines, "read_split_lines_per_cpu_s": lines / base, "parse_lines_per_cpu_s": lines / parse,
            "ratio": base / parse, "parse_only_lines_per_cpu_s": lines / only, "parse_only_ratio": base / only,
            "goal": ">= 0.333"}


def peak_rss(path: Path) -> int:
    """Peak resident size (bytes) of a fresh process that parses ``path`` into a temporary folder."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.maillog", "--child", str(path)], capture_output=True,
                          text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    return int(done.stdout.strip().splitlines()[-1])


def _child(path: Path) -> None:
    importlib.import_module("simsub.maillog.parse")  # its imports come before the parse, as in the command
    with tempfile.TemporaryDirectory() as tmp:
        parse_to_folder(path, Path(tmp))
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.maillog", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20k and 200k lines instead of 200k and 2M")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs per measure (fastest counts)")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child)
        return 0
    small, large = (20_000, 200_000) if args.quick else (200_000, 2_000_000)
    with tempfile.TemporaryDirectory() as tmp:
        paths, written = {}, {}
        for size in (small, large):
            paths[size] = Path(tmp) / f"maillog-{size}"
            written[size] = write_log(paths[size], size)
            print(f"synthetic log: {written[size]:,} lines, {paths[size].stat().st_size / 1e6:.0f} MB", file=sys.stderr)
        speed = throughput(paths[small], written[small], args.repeat)
        rss = {size: peak_rss(paths[size]) for size in (small, large)}
    figures = {
        "machine": platform.platform(), "python": platform.python_version(),
        "throughput": speed,
        "memory": {"small_lines": small, "large_lines": large, "small_peak_rss_bytes": rss[small],
                   "large_peak_rss_bytes": rss[large], "ratio": rss[large] / rss[small], "goal": "about 1 (flat)"},
    }
    print(f"throughput ({speed['lines']:,} lines, fastest of {args.repeat}): read+split "
          f"{speed['read_split_lines_per_cpu_s']:,.0f} lines/CPU s; parse and write tables "
          f"{speed['parse_lines_per_cpu_s']:,.0f} lines/CPU s, ratio {speed['ratio']:.2f}; parse alone "
          f"{speed['parse_only_lines_per_cpu_s']:,.0f} lines/CPU s, ratio {speed['parse_only_ratio']:.2f} "
          "(goal >= 0.33)")
    print(f"peak memory: {rss[small] / 1e6:.0f} MB for {small:,} lines, {rss[large] / 1e6:.0f} MB for {large:,} "
          f"lines, ratio {rss[large] / rss[small]:.2f} (goal: flat)")
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
