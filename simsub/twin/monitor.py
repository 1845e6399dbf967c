"""Watch, from outside, when an smtpd process holds each connection (Linux sock_diag).

A connection to the submission port that no process has accepted yet sits in
the kernel's accept queue: its server-side socket has no inode.  Once an smtpd
accepts it, the socket gets an inode, which it keeps until the smtpd closes it
— also while the smtpd finishes a ``sleep`` for a client that has already hung
up.  Asking the kernel every few milliseconds about each connection the
client opened (an exact NETLINK_SOCK_DIAG lookup by address and ports, about
10 µs; reading /proc/net/tcp instead walks the whole connection table, 4 ms on
this kind of machine) gives, per connection, when an smtpd took it and when it
let go: the server's side of the session, which the client cannot see.
Times are ``time.monotonic()`` seconds.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass

_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_NLMSG_ERROR = 2
_TCP_LISTEN = 10
#: TCP states in which the server side has closed its socket (FIN_WAIT1/2, TIME_WAIT, CLOSE, LAST_ACK, CLOSING).
_SERVER_CLOSED = {4, 5, 6, 7, 9, 11}
_NO_COOKIE = 0xFFFFFFFF


@dataclass
class ConnectionTrace:
    """The server side of one connection (monotonic s; NaN-free once accepted)."""

    client_port: int
    accepted_at: float | None = None  # first seen held by a process
    released_at: float | None = None  # last seen held by a process


class SockDiag:
    """Exact lookups of TCP sockets on 127.0.0.1 through NETLINK_SOCK_DIAG."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG)
        self._loopback = socket.inet_aton("127.0.0.1") + bytes(12)

    def lookup(self, local_port: int, remote_port: int) -> tuple[int, int] | None:
        """(TCP state, inode) of the socket 127.0.0.1:local_port <-> 127.0.0.1:remote_port,
        or None if there is no such connection.  The inode is 0 while no process
        holds the socket (accept queue, or closed by its process)."""
        sockid = (struct.pack("!HH", local_port, remote_port) + self._loopback + self._loopback
                  + struct.pack("=III", 0, _NO_COOKIE, _NO_COOKIE))
        request = struct.pack("=BBBBI", socket.AF_INET, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF) + sockid
        self.sock.send(struct.pack("=IHHII", 16 + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 0, 0) + request)
        data = self.sock.recv(8192)
        kind = struct.unpack_from("=H", data, 4)[0]
        if kind == _NLMSG_ERROR:
            return None
        state = data[17]
        if state == _TCP_LISTEN:  # no connection: the lookup fell back to the listener
            return None
        return state, struct.unpack_from("=I", data, 16 + 4 + 48 + 16)[0]

    def inode(self, local_port: int, remote_port: int) -> int | None:
        """The inode alone (see :meth:`lookup`)."""
        found = self.lookup(local_port, remote_port)
        return None if found is None else found[1]

    def close(self) -> None:
        self.sock.close()


def sock_diag_available() -> bool:
    try:
        SockDiag().close()
        return True
    except OSError:
        return False


class SocketMonitor:
    """Samples every watched connection to ``port`` each ``interval`` s, in a thread.

    The client calls :meth:`watch` with its local port as soon as it is
    connected; a connection is dropped from the watch list once no process
    holds it any more after it was held.
    """

    def __init__(self, port: int, interval: float = 0.003):
        self.port = port
        self.interval = interval
        self.traces: list[ConnectionTrace] = []
        self.samples = 0
        self.error: Exception | None = None  # what stopped the sampling thread, if anything
        self._watched: list[ConnectionTrace] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._diag = SockDiag()
        self._thread = threading.Thread(target=self._run, name="simsub-socket-monitor", daemon=True)

    def start(self) -> "SocketMonitor":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._diag.close()

    def watch(self, client_port: int) -> ConnectionTrace:
        trace = ConnectionTrace(client_port)
        with self._lock:
            self.traces.append(trace)
            self._watched.append(trace)
        return trace

    @property
    def peak_held(self) -> int:
        """Most connections held by smtpd processes at one moment (from the traces)."""
        events = []
        for trace in self.traces:
            if trace.accepted_at is not None:
                events += [(trace.accepted_at, 1), (trace.released_at, -1)]
        events.sort(key=lambda e: (e[0], -e[1]))  # a connection seen until t still holds at t
        held = peak = 0
        for _, change in events:
            held += change
            peak = max(peak, held)
        return peak

    def busy(self) -> int:
        """Connections still watched (waiting for or held by an smtpd)."""
        with self._lock:
            return len(self._watched)

    def _run(self) -> None:
        try:
            self._sample_until_stopped()
        except Exception as exc:  # noqa: BLE001 - reported by the twin, which then refuses its table
            self.error = exc
            with self._lock:
                self._watched = []  # nobody waits for connections the monitor no longer sees

    def _sample_until_stopped(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                watched = list(self._watched)
            finished = []
            for trace in watched:
                found = self._diag.lookup(self.port, trace.client_port)
                # The time of this lookup, not of the sweep: a slot handed from one
                # connection to the next during a sweep must not look like two at once.
                seen = time.monotonic()
                if found is not None and found[1]:
                    if trace.accepted_at is None:
                        trace.accepted_at = seen
                    trace.released_at = seen
                elif found is None or trace.accepted_at is not None or found[0] in _SERVER_CLOSED:
                    # The smtpd let go (or held it too briefly to be seen, or it never reached one).
                    finished.append(trace)
            if finished:
                gone = {id(t) for t in finished}
                with self._lock:
                    self._watched = [t for t in self._watched if id(t) not in gone]
            self.samples += 1
            self._stop.wait(self.interval)
