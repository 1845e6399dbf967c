"""simsub policyd under bad clients: each gets DUNNO or a closed connection and a log line,
and the server keeps answering everyone else."""

from __future__ import annotations

import logging
import random
import socket
import time

import pytest

from simsub.policyd.client import PolicyClient, postfix_request
from simsub.policyd.protocol import MAX_ATTRIBUTES, MAX_LINE, MAX_REQUEST, format_request

from .policyd_support import THROTTLE, Clock, Daemon, raise_fd_limit, scenario, serve, write_scenario

GOOD = postfix_request(sasl_username="alice", instance="x1")


def _raw(server) -> socket.socket:
    host, _, port = server.address.rpartition(":")
    return socket.create_connection((host, int(port)), timeout=5)


def _closed(sock: socket.socket, timeout: float = 5.0) -> bool:
    """True when the server closed the connection (EOF or reset) within ``timeout`` s."""
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _events(caplog, event: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if f"event={event} " in r.getMessage() + " "]


@pytest.fixture
def server(caplog):
    caplog.set_level(logging.INFO, logger="simsub.policyd")
    with serve(scenario(throttle=THROTTLE), "throttle", clock=Clock(60.0), request_timeout=0.5,
               idle_timeout=1.0) as running:
        yield running


def test_a_slow_client_is_cut_off_and_others_are_answered_meanwhile(server, caplog):
    slow = _raw(server)
    slow.sendall(b"request=smtpd_access_policy\nsasl_username=slow\n")  # ... and nothing more
    started = time.monotonic()
    with PolicyClient(server.address) as other:
        assert other.ask(GOOD) == "DUNNO"
    assert _closed(slow)
    assert 0.45 <= time.monotonic() - started < 3.0  # request_timeout = 0.5 s
    (line,) = _events(caplog, "slow_request")
    assert "then=closed" in line and "timeout_s=0.5" in line


def test_a_megabyte_without_a_newline_closes_the_connection(server, caplog):
    flood = _raw(server)
    try:
        flood.sendall(b"a" * 1_000_000)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server already closed it: that is the point
    assert _closed(flood)
    assert f"limit_bytes={MAX_REQUEST}" in _events(caplog, "request_too_long")[0]
    with PolicyClient(server.address) as other:
        assert other.ask(GOOD) == "DUNNO"


def test_binary_junk_ending_in_an_empty_line_gets_dunno_and_the_connection_stays_usable(server, caplog):
    with PolicyClient(server.address) as client:
        client.sock.sendall(b"\x00\xff\x13junk\n\x89PNG\r\n\n")
        assert client.read_answer() == "DUNNO"
        assert client.ask(GOOD) == "DUNNO"  # the next request is read normally
    assert "not UTF-8" in _events(caplog, "unreadable_request")[0]


def test_random_bytes_get_only_dunno_answers_or_a_closed_connection(server, caplog):
    junk = random.Random(18).randbytes(200_000)
    sock = _raw(server)
    try:
        sock.sendall(junk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # already closed by the server
    received = b""
    sock.settimeout(5)
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    answers = [a for a in received.split(b"\n\n") if a]
    assert all(a == b"action=DUNNO" for a in answers)
    assert _events(caplog, "unreadable_request") or _events(caplog, "request_too_long")
    with PolicyClient(server.address) as other:
        assert other.ask(GOOD) == "DUNNO"


def test_an_unknown_attribute_is_ignored_and_logged_once(server, caplog):
    with PolicyClient(server.address) as client:
        answers = [client.ask({**GOOD, "instance": f"u{i}", "x_future": "1"}) for i in range(4)]
    assert [a.split()[0] for a in answers] == ["DUNNO", "DUNNO", "DUNNO", "DEFER"]  # decided as usual
    (line,) = _events(caplog, "unknown_attribute")
    assert "name=x_future" in line


def test_a_request_without_request_attribute_gets_dunno(server, caplog):
    request = {k: v for k, v in GOOD.items() if k != "request"}
    with PolicyClient(server.address) as client:
        assert client.ask(request) == "DUNNO"
        assert client.ask(GOOD) == "DUNNO"
    assert "no request=smtpd_access_policy" in _events(caplog, "unreadable_request")[0]


def test_a_request_that_never_ends_is_cut_at_the_size_limit(server, caplog):
    sock = _raw(server)
    try:
        sock.sendall(b"".join(f"a{i}=x\n".encode() for i in range(20_000)))  # about 180 KB, no empty line
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert _closed(sock)
    assert f"limit_bytes={MAX_REQUEST}" in _events(caplog, "request_too_long")[0]


def test_too_many_lines_or_a_line_too_long_get_dunno(server, caplog):
    with PolicyClient(server.address) as client:
        client.sock.sendall(b"request=smtpd_access_policy\n" + b"".join(f"a{i}=x\n".encode()
                                                                          for i in range(MAX_ATTRIBUTES)) + b"\n")
        assert client.read_answer() == "DUNNO"
        assert client.ask({**GOOD, "sender": "x" * (MAX_LINE + 1)}) == "DUNNO"
        assert client.ask(GOOD) == "DUNNO"  # still usable
    problems = _events(caplog, "unreadable_request")
    assert f"more than {MAX_ATTRIBUTES} lines" in problems[0] and f"longer than {MAX_LINE} bytes" in problems[1]


def test_a_crlf_client_is_read_line_by_line(server):
    with PolicyClient(server.address) as client:
        client.sock.sendall(b"request=smtpd_access_policy\r\nsasl_username=telnet\r\n\r\n")
        assert client.read_answer() == "DUNNO"
        client.sock.sendall(b"request=smtpd_access_policy\n\n")  # a one-line request
        assert client.read_answer() == "DUNNO"


def test_connections_beyond_the_limit_are_closed_at_once(caplog):
    caplog.set_level(logging.INFO, logger="simsub.policyd")
    with serve(scenario(throttle=THROTTLE), "throttle", clock=Clock(60.0), max_connections=2) as server:
        with PolicyClient(server.address) as a, PolicyClient(server.address) as b:
            assert a.ask(GOOD) == b.ask(GOOD) == "DUNNO"  # both accepted (and counted) by now
            third = _raw(server)
            assert _closed(third)
            assert a.ask(GOOD) == "DUNNO"
    assert "2 connections open" in _events(caplog, "connection_refused")[0]


def test_an_idle_connection_is_closed_after_the_idle_timeout(server, caplog):
    sock = _raw(server)
    started = time.monotonic()
    assert _closed(sock)
    assert 0.95 <= time.monotonic() - started < 3.0
    assert _events(caplog, "idle_close")


def test_a_client_that_hangs_up_mid_request_is_logged(server, caplog):
    sock = _raw(server)
    sock.sendall(b"request=smtpd_access_policy\n")
    sock.close()
    deadline = time.monotonic() + 3
    while not _events(caplog, "request_cut_short") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _events(caplog, "request_cut_short")


@pytest.mark.parametrize("count", [1000, pytest.param(10_000, marks=pytest.mark.slow)])
def test_thousands_of_idle_connections_and_the_server_still_answers(tmp_path, count):
    """As many idle connections as the file limit allows, up to ``count`` (the daemon raises its
    own limit to the hard limit; this process does the same for its client ends).  10,000
    take about 10 s here: slow."""
    limit = raise_fd_limit()
    wanted = min(count, limit - 200)
    assert wanted >= 1000, f"the open-file limit ({limit}) allows too few connections for this test"
    path = write_scenario(tmp_path / "s.toml", throttle=THROTTLE)
    with Daemon(path, "throttle", "--budget", "0", log=tmp_path / "log") as daemon:
        host, _, port = daemon.address.rpartition(":")
        idle = []
        try:
            for _ in range(wanted):
                idle.append(socket.create_connection((host, int(port)), timeout=10))
            started = time.monotonic()
            with PolicyClient(daemon.address) as client:
                assert client.ask(GOOD) == "DUNNO"
            assert time.monotonic() - started < 2.0
            for sock in (idle[0], idle[len(idle) // 2], idle[-1]):  # the idle ones still work
                sock.sendall(format_request({**GOOD, "instance": "y"}))
                assert sock.recv(100).startswith(b"action=")
        finally:
            for sock in idle:
                sock.close()
        assert daemon.stop() == 0
    print(f"{wanted} idle connections held (open-file limit {limit})")
