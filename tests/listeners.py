"""Which TCP ports a set of processes listens on, read from Linux's /proc: shared by the tests of the
Dask executor (tests/test_dask_executor.py) and of the Dask cluster benchmark
(tests/test_dask_cluster_benchmark.py), which check that no dashboard port is bound."""

from __future__ import annotations

import ipaddress
import os
import socket
from contextlib import contextmanager
from typing import Iterable, Iterator

DASHBOARD_PORT = 8787  # Dask's default dashboard (HTTP) port
LISTEN = "0A"  # the TCP state LISTEN in /proc/net/tcp


def _listening_sockets() -> dict[str, tuple[str, int]]:
    """Every listening TCP socket of the machine: socket inode -> (address, port)."""
    found = {}
    for name, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        try:
            with open(name) as fh:
                lines = fh.read().splitlines()[1:]
        except OSError:  # no IPv6
            continue
        for line in lines:
            fields = line.split()
            if fields[3] != LISTEN:
                continue
            address, port = fields[1].split(":")
            # the address is in the kernel's byte order, 32-bit word by word
            raw = b"".join(int(address[i:i + 8], 16).to_bytes(4, "little") for i in range(0, 8 * (width // 4), 8))
            found[fields[9]] = (str(ipaddress.ip_address(raw)), int(port, 16))
    return found


def listening(pids: Iterable[int]) -> set[tuple[str, int]]:
    """(address, port) of each TCP socket listening that one of ``pids`` holds open."""
    sockets = _listening_sockets()
    held = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:  # the process has ended
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in sockets:
                held.add(sockets[target[8:-1]])
    return held


def descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (children, grandchildren…), from each process's parent in /proc."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    parents[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    found, frontier = [], [pid]
    while frontier:
        children = [p for p, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def in_group(groups: Iterable[int]) -> list[int]:
    """The processes whose process group is one of ``groups``."""
    wanted, found = set(groups), []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    if int(fh.read().rsplit(")", 1)[1].split()[3]) in wanted:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return found


def is_loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback


@contextmanager
def dashboard_port_taken() -> Iterator[None]:
    """Hold the dashboard port on 127.0.0.1 for the block, as another Dask cluster would; if something
    already holds it the port is taken anyway."""
    sock = socket.socket()
    try:
        try:
            sock.bind(("127.0.0.1", DASHBOARD_PORT))
            sock.listen()
        except OSError:
            pass
        yield
    finally:
        sock.close()
