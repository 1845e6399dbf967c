"""Fingerprints of what ``simsub maillog parse`` writes, run as
``python -m benchmarks.maillog_tables [--log FILE]... [--out FILE] [--compare FILE]``.

For speed work on the parser: every change must leave the tables byte-identical.
Run it before the change with ``--out before.json`` and after it with ``--compare
before.json``; it exits 1 when any fingerprint differs and names the inputs.

Inputs: each log of tests/fixtures/maillog* alone, the rotated set together, the
benchmark's synthetic log (200k lines, :func:`benchmarks.maillog.write_log`), a log
of 60,000 fixture lines mutated at random (brackets, commas, quotes, stray stamps,
fractions, other programs' names: what the shortcuts must decide), and each
``--log``.  Each is parsed by the command in a fresh process (``--year 2026``), and
the fingerprint is the SHA-256 of every file written (stats.json without its
``command``), of the exit status and of stderr (paths of this checkout and of the
temporary folder replaced).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from .maillog import write_log

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
#: What a mutation inserts (see tests/test_maillog_fast_paths.py), and pieces of a line's head.
PIECES = (",", '"', ">,", ", status=sent", ", status=", "[", "]", "[192.0.2.1]", " orig_to=<o@example.jp>,",
          " conn_use=2,", "\u0661\u0662", "1.2.3", " ", ">", "<", ": ", "=", "/", "(x)", "\u00e9", ", delays=1/2/3/4",
          ", dsn=5.0.0", "status=weird", "0", "-1", "relay=none, delay=1", "\t", "NOQUEUE: ", "connect from ",
          "disconnect from ", ".5", "smtpd", "postfix/", "[12]:", ":")


def fixture_logs() -> list[Path]:
    return [p for p in sorted((FIXTURES / "maillog").iterdir()) + sorted((FIXTURES / "maillog-real").glob("*.log"))
            if p.suffix != ".md"]


def write_mutated(path: Path, count: int = 60_000, seed: int = 7) -> None:
    """``count`` fixture lines, 70 % of them mutated one to three times (classic stamps 80 % of the time)."""
    lines = []
    for log in fixture_logs():
        data = gzip.open(log, "rt").read() if log.suffix == ".gz" else log.read_text(errors="replace")
        lines += data.splitlines()
    classic = [line for line in lines if line[:1].isalpha()]
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        text = rng.choice(classic if rng.random() < 0.8 else lines)
        if rng.random() < 0.7:
            for _ in range(rng.randint(1, 3)):
                at = rng.randrange(len(text) + 1)
                if rng.random() < 0.7:
                    text = text[:at] + rng.choice(PIECES) + text[at:]
                else:
                    text = text[:at] + text[at + rng.randint(1, 6):]
        out.append(text.replace("\n", " ").replace("\r", " "))
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


def fingerprint(paths: list[Path], folders: dict[str, str]) -> dict:
    """Parse ``paths`` with the command in a fresh process; the SHA-256 (16 hex digits) of what came out,
    ``folders`` (path → placeholder) replaced in stderr and stats.json (they name the files)."""

    def same_paths(text: str) -> str:
        for folder, placeholder in folders.items():
            text = text.replace(folder, placeholder)
        return text

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "parsed"
        done = subprocess.run([sys.executable, "-m", "simsub", "maillog", "parse", *map(str, paths), "--out",
                               str(out), "--quiet", "--year", "2026"], cwd=ROOT, capture_output=True, text=True)
        prints = {"exit": done.returncode, "stderr": _hash(same_paths(done.stderr).encode())}
        if out.exists():
            for path in sorted(out.iterdir()):
                data = path.read_bytes()
                if path.name == "stats.json":
                    stats = json.loads(data)
                    stats.pop("command", None)
                    data = same_paths(json.dumps(stats, sort_keys=True)).encode()
                prints[path.name] = _hash(data)
        return prints


def _hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.maillog_tables", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log", type=Path, action="append", default=[], metavar="FILE",
                        help="also parse this log (repeatable)")
    parser.add_argument("--out", type=Path, help="write the fingerprints as JSON")
    parser.add_argument("--compare", type=Path, metavar="FILE", help="fingerprints written before (--out)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        synthetic, mutated = Path(tmp) / "synthetic.log", Path(tmp) / "mutated.log"
        write_log(synthetic, 200_000)
        write_mutated(mutated)
        for path in (synthetic, mutated):  # a fixed mtime, as the fixtures' years do not depend on it either
            os.utime(path, (1_798_000_000, 1_798_000_000))
        inputs = {f"fixture {p.name}": [p] for p in fixture_logs()}
        inputs["fixtures rotated"] = [FIXTURES / "maillog" / n for n in ("maillog", "maillog.1.gz", "maillog.2.gz")]
        inputs["synthetic 200k lines"] = [synthetic]
        inputs["mutated fixture lines"] = [mutated]
        inputs.update({str(p): [p] for p in args.log})
        prints = {}
        for name, paths in inputs.items():
            print(f"parsing {name} ...", file=sys.stderr, flush=True)
            prints[name] = fingerprint(paths, {tmp: "<TMP>", str(ROOT): "<ROOT>"})
    if args.out:
        args.out.write_text(json.dumps(prints, indent=1) + "\n")
    if not args.compare:
        if not args.out:
            print(json.dumps(prints, indent=1))
        return 0
    before = json.loads(args.compare.read_text())
    differ = [name for name in sorted(set(before) | set(prints)) if before.get(name) != prints.get(name)]
    for name in differ:
        print(f"differs: {name}: {before.get(name)} -> {prints.get(name)}")
    print(f"{len(prints) - len(differ)} of {len(prints)} inputs give the same bytes" + (" (a --log of one run"
          " and not the other counts as differing)" if set(before) != set(prints) else ""))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
