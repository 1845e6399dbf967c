"""Debian's postfwd as a peer of ``simsub policyd``: the equivalent rule and a private process.

Used by the side-by-side tests and the load benchmark, never by the daemon.
postfwd's ``rate(KEY/MAX/SECONDS/ACTION)`` counts every request that reaches
the rule; ``rcpt(...)`` adds the request's ``recipient_count``.  The process is
postfwd2 (Debian's default: a preforking policy server plus a cache daemon that
holds the rate counters) or postfwd1 (one process); both listen on 127.0.0.1 only,
run as ``nobody`` from a private temporary folder, and every process of theirs
(one session) is stopped on exit.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from ..postfix.instance import free_port

POSTFWD = {"postfwd2": "/usr/sbin/postfwd2", "postfwd1": "/usr/sbin/postfwd1"}


def unavailable_reason(program: str = "postfwd2") -> str | None:
    """Why postfwd cannot run here, or None."""
    if not Path(POSTFWD[program]).exists():
        return "postfwd is not installed: as root, apt-get install -y postfwd (or `make postfwd`)"
    if os.geteuid() != 0:
        return "postfwd is started as root and drops to nobody; run as root"
    return None


def rate_rule(rule_id: str, key: str, limit: int, window: int, action: str, *, state: str = "RCPT",
              count: str = "rate", match: str = ".") -> str:
    """One postfwd rule for requests at ``state`` whose ``key`` matches the regex ``match``;
    ``count`` is ``rate`` (1 per request) or ``rcpt`` (the request's recipient_count)."""
    if int(limit) != limit or int(window) != window:
        raise ValueError("postfwd takes whole numbers for the limit and the window")
    return (f"id={rule_id}; protocol_state=={state}; {key}=~{match}; "
            f"action={count}({key}/{int(limit)}/{int(window)}/{action})")


class PostfwdRate:
    """postfwd 1.35's ``rate()`` counter, read from its source (``postfwd1``/``postfwd2``), as a
    test oracle: per lower-cased key, a window of ``window`` s opened by the request that finds
    none or finds it expired (``now > until``); every request counts ``units``; a request that
    would exceed ``limit`` is refused and not counted."""

    def __init__(self, limit: float, window: float):
        self.limit, self.window = limit, window
        self._windows: dict[str, list[float]] = {}  # key -> [count, until]

    def try_take(self, key: str, now: float, units: float = 1) -> bool:
        key = key.lower()
        entry = self._windows.get(key)
        if entry is None or now > entry[1]:
            self._windows[key] = [units, now + self.window]
            return units <= self.limit
        if entry[0] + units > self.limit:
            return False
        entry[0] += units
        return True


def request_stream(seed: int, messages: int, users: int = 20, spacing: float = 0.07,
                   mixed_case: bool = True) -> list[tuple[float, dict[str, str]]]:
    """A recorded Postfix request stream: (offset in s, attributes) for every RCPT of
    ``messages`` messages, one every ``spacing`` s (all RCPTs of a message at its time), from
    ``users`` logins (some written with capitals, as clients type them), 1-3 recipients each."""
    import random

    from .client import postfix_request

    rng = random.Random(seed)
    stream = []
    for number in range(messages):
        user = f"user{rng.randrange(users)}"
        if mixed_case and rng.random() < 0.2:
            user = user.capitalize()
        address = f"203.0.113.{rng.randrange(1, 250)}"
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            stream.append((round(number * spacing, 6), postfix_request(
                sasl_username=user, client_address=address, instance=f"{seed:X}.{number:06X}")))
    return stream


class Postfwd:
    """``with Postfwd(rules) as pf:`` postfwd on ``pf.address`` (127.0.0.1:PORT).

    postfwd2 runs with its default pool of policy children (Net::Server::PreFork's
    defaults, as Debian runs it)."""

    def __init__(self, rules: list[str], program: str = "postfwd2"):
        self.rules = rules
        self.program = program
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.folder: Path | None = None
        self.session: int | None = None

    def __enter__(self) -> "Postfwd":
        reason = unavailable_reason(self.program)
        if reason:
            raise RuntimeError(reason)
        self.folder = Path(tempfile.mkdtemp(prefix="simsub-postfwd-"))
        os.chmod(self.folder, 0o777)  # the children (nobody) write their pid and cache files here
        config = self.folder / "postfwd.cf"
        config.write_text("\n".join(self.rules) + "\n")
        os.chmod(config, 0o644)
        command = [POSTFWD[self.program], "--daemon", "-f", str(config), "--interface", "127.0.0.1",
                   "--port", str(self.port), "--cache=0", "--nodns", "-u", "nobody", "-g", "nogroup",
                   "--pidfile", str(self.folder / "master.pid"), "--noidlestats", "--norulestats"]
        if self.program == "postfwd2":
            # The rate counters live in the cache daemon; over TCP (its default unix socket
            # under /var/tmp is not usable by nobody here).
            command += ["--cache_proto", "tcp", "--cache_interface", "127.0.0.1", "--cache_port",
                        str(free_port())]
        # Not a pipe: the daemon keeps writing to its stdout, and a closed pipe would kill it.
        subprocess.run(command, cwd=self.folder, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=30)
        try:
            self._wait()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                pid = int((self.folder / "master.pid").read_text().split()[0])
                session = os.getsid(pid)
                if session == os.getsid(0):  # not daemonized: never signal our own session
                    raise RuntimeError(f"{self.program} did not start a session of its own")
                self.session = session
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except (OSError, ValueError, IndexError):
                time.sleep(0.05)
        raise RuntimeError(f"{self.program} did not listen on {self.address} within {timeout:g} s")

    def pids(self) -> list[int]:
        """Every process of this postfwd (its session: the master setsid()s when it daemonizes)."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.getsid(int(entry.name)) == self.session:
                        found.append(int(entry.name))
                except OSError:
                    continue
        return found

    def __exit__(self, *_exc) -> None:
        if self.session is not None:
            for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                for pid in self.pids():
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass
                deadline = time.monotonic() + wait
                while self.pids() and time.monotonic() < deadline:
                    time.sleep(0.05)
                if not self.pids():
                    break
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
