"""A scripted raw-socket SMTP client, to measure what a real smtpd does at controlled moments.

The twin's player behaves like the model's clients; a probe does exactly what
its script says instead: send these bytes now, wait this long, wait for the
next reply.  That is what it takes to find out *when* Postfix notices input
(``reject_unauth_pipelining``) or counts an event (anvil), independently of the
model's conventions.  Times are seconds since the connection was made
(wall clock, ``time.monotonic``).

A script is a sequence of steps:

* ``Send(text)`` writes ``text`` (lines joined with CRLF, a final CRLF added);
* ``Pause(seconds)`` waits;
* ``Reply()`` waits (at most ``timeout`` s) until one more reply has arrived
  than had been waited for so far.

Every reply (multi-line replies as one) is recorded with its code, its last
line and its arrival time, whether or not the script waited for it.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Send:
    text: str


@dataclass(frozen=True)
class Pause:
    seconds: float


@dataclass(frozen=True)
class Reply:
    timeout: float = 10.0


@dataclass
class ProbeReply:
    code: int
    text: str  # the last line, without CRLF
    at: float  # s since the connection was made


@dataclass
class ProbeResult:
    replies: list[ProbeReply] = field(default_factory=list)
    closed_at: float | None = None  # when the server closed the connection, if it did

    def codes(self) -> list[int]:
        return [r.code for r in self.replies]

    def first(self, code_class: int) -> ProbeReply | None:
        """The first reply whose code starts with ``code_class`` (4 or 5), or None."""
        return next((r for r in self.replies if r.code // 100 == code_class), None)


def probe(port: int, script: list, *, host: str = "127.0.0.1", linger: float = 0.5,
          proxy: str | None = None) -> ProbeResult:
    """Run ``script`` against ``host:port`` and return every reply seen.

    ``linger``: seconds to keep listening after the script ends (for replies
    to the last commands sent).  ``proxy``: a HAProxy v1 header line sent
    first, before anything else (``PROXY TCP4 src dst sport dport``).
    """
    result = ProbeResult()
    sock = socket.create_connection((host, port), timeout=30)
    t0 = time.monotonic()
    arrived = threading.Condition()

    def read() -> None:
        buffer = b""
        try:
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    text = line.decode("ascii", "replace").rstrip("\r")
                    if len(text) >= 4 and text[3] == "-":
                        continue  # a continuation line: the reply is not over
                    with arrived:
                        result.replies.append(ProbeReply(int(text[:3]), text, time.monotonic() - t0))
                        arrived.notify_all()
        except OSError:
            pass
        with arrived:
            result.closed_at = time.monotonic() - t0
            arrived.notify_all()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if proxy is not None:
            sock.sendall(proxy.encode("ascii") + b"\r\n")
        waited = 0
        for step in script:
            if isinstance(step, Send):
                try:
                    sock.sendall(step.text.replace("\n", "\r\n").encode("ascii") + b"\r\n")
                except OSError:
                    break
            elif isinstance(step, Pause):
                time.sleep(step.seconds)
            elif isinstance(step, Reply):
                waited += 1
                with arrived:
                    arrived.wait_for(lambda: len(result.replies) >= waited or result.closed_at is not None,
                                     timeout=step.timeout)
            else:
                raise TypeError(f"unknown probe step {step!r}")
        deadline = time.monotonic() + linger
        with arrived:
            while result.closed_at is None and time.monotonic() < deadline:
                arrived.wait(timeout=max(deadline - time.monotonic(), 0.0))
    finally:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
        reader.join(timeout=2)
    return result
