"""The policy server: asyncio, one event loop, every connection a task.

Why asyncio rather than threads: the service objects are plain Python
structures the model mutates without locks, and one decision takes a few
microseconds — a single event loop runs them in order with no locking, and an
idle Postfix connection costs a few kilobytes instead of a thread's stack
(Postfix keeps one open per smtpd process for up to ``smtpd_policy_service_max_idle``).

Life cycle (:meth:`PolicyServer.run`): load the policy, restore the counters from
the state file, listen, then answer until SIGTERM/SIGINT.  SIGHUP reloads the
scenario and keeps the counters of every service whose spec is unchanged.  The
state is written every ``state_interval`` seconds when something changed and
once more at shutdown.  :class:`~.thread.ServerThread` runs a server in a thread of
the calling process (tests, and the twin, on a free port).

Faults (each logged, the other connections unaffected): a request that cannot
be read or an internal error is answered DUNNO (fail open); a request over
:data:`~.protocol.MAX_REQUEST` bytes, one that takes longer than
``request_timeout`` to arrive or an answer the client does not read within it
close the connection; a connection idle for ``idle_timeout`` is closed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..policy.policy import Policy
from . import state as state_file
from .adapter import Origins
from .decide import Decider, Decision
from .logfmt import log
from .metrics import Metrics, record
from .protocol import MAX_ATTRIBUTES, MAX_REQUEST, format_answer, parse_request

INFO, WARNING, ERROR = logging.INFO, logging.WARNING, logging.ERROR

#: What the loader callback returns: the policy to serve, the scenario's origins and, optionally,
#: the services in log-only mode (else ``Config.log_only``) — read again at every SIGHUP.
Loaded = tuple[Policy, Origins] | tuple[Policy, Origins, frozenset[str]]


@dataclass
class Config:
    """Options of one server; times in seconds."""

    listen: str = "127.0.0.1:10040"  # HOST:PORT, [V6]:PORT or unix:PATH; port 0 picks a free one
    state: Path | None = None
    state_interval: float = 10.0
    budget: float = 0.1  # most time to decide one request; 0: no limit
    idle_timeout: float = 600.0  # above Postfix's smtpd_policy_service_max_idle (300 s)
    request_timeout: float = 10.0  # for the rest of a started request, and for the client to read the answer
    log_only: frozenset[str] = field(default_factory=frozenset)
    metrics: str | None = None  # HOST:PORT of the Prometheus exporter
    max_connections: int = 20_000
    clock: Callable[[], float] = time.time  # the services' time in s (tests and replays set their own)


def parse_listen(text: str) -> tuple[str, str, int]:
    """``HOST:PORT``/``[V6]:PORT``/``unix:PATH`` -> (kind, host or path, port); ValueError if malformed."""
    if text.startswith("unix:"):
        path = text[len("unix:"):]
        if not path:
            raise ValueError("unix: needs a socket path, e.g. unix:/run/simsub-policyd.sock")
        return "unix", path, 0
    text = text.removeprefix("inet:")
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"expected HOST:PORT, [IPV6]:PORT or unix:PATH, got {text!r}")
    return "inet", host, int(port)


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to its hard limit (each connection is a descriptor)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    return soft


class PolicyServer:
    """One daemon: ``load()`` gives the policy (called again on SIGHUP/:meth:`reload`)."""

    def __init__(self, config: Config, load: Callable[[], Loaded]):
        self.config = config
        self.load = load
        self.decider: Decider | None = None
        self.metrics: Metrics | None = None
        self.address = ""  # what it listens on, once started ("127.0.0.1:10040", "unix:/path")
        self.port = 0
        self.metrics_port = 0
        self.dirty = False  # counters changed since the last save
        self.ready = threading.Event()
        self._server: asyncio.base_events.Server | None = None
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._saver: asyncio.Task | None = None
        self._save_lock: asyncio.Lock | None = None
        self._unknown_seen: set[str] = set()

    # ------------------------------------------------------------------ life cycle
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._save_lock = asyncio.Lock()
        policy, origins, log_only = self._load()
        services, locks = self._restore(policy)
        self.decider = Decider(policy, origins, log_only, services, locks)
        if self.config.metrics:
            from .metrics import available
            if not available():
                raise RuntimeError("--metrics needs the Prometheus client library: pip install prometheus_client")
            self.metrics = Metrics(lambda: (self.decider.services, len(self.decider.memo)))
            _kind, host, port = parse_listen(self.config.metrics)
            self.metrics_port = self.metrics.serve(host, port)
        kind, host, port = parse_listen(self.config.listen)
        if kind == "unix":
            if os.path.exists(host) and _is_socket(host):
                os.unlink(host)  # a socket left by an earlier run
            self._server = await asyncio.start_unix_server(self._connection, path=host, limit=MAX_REQUEST)
            os.chmod(host, 0o666)  # smtpd runs as the postfix user; guard access with the folder's mode
            self.address = f"unix:{host}"
        else:
            self._server = await asyncio.start_server(self._connection, host=host, port=port, limit=MAX_REQUEST,
                                                      backlog=1024, reuse_address=True)
            sockname = self._server.sockets[0].getsockname()
            self.port = sockname[1]
            self.address = f"[{sockname[0]}]:{self.port}" if ":" in sockname[0] else f"{sockname[0]}:{self.port}"
        if self.config.state is not None and self.config.state_interval > 0:
            self._saver = asyncio.create_task(self._save_periodically())
        log(INFO, "listening", address=self.address, policy=policy.name, services=",".join(self.decider.order),
            log_only=",".join(sorted(self.decider.log_only)) or "none",
            state=self.config.state or "none", metrics=self.metrics_port or "none", pid=os.getpid())
        self.ready.set()

    async def run(self, signals: bool = True) -> None:
        """Start, answer until :meth:`request_stop` (SIGTERM, SIGINT), then shut down."""
        await self.start()
        if signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop, sig.name)
            loop.add_signal_handler(signal.SIGHUP, self.reload)
        try:
            await self._stop.wait()
        finally:
            await self.shutdown()

    def request_stop(self, why: str = "stop") -> None:
        log(INFO, "stopping", reason=why)
        self._stop.set()

    async def shutdown(self) -> None:
        """Stop listening, close every connection, write the state one last time."""
        if self._server is not None:
            self._server.close()
        if self._saver is not None:
            self._saver.cancel()
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()
        if self.config.state is not None:
            async with self._save_lock:
                self._save_now()
        if self.metrics is not None:
            self.metrics.close()
        if self.address.startswith("unix:"):
            try:
                os.unlink(self.address[len("unix:"):])
            except OSError:
                pass
        log(INFO, "stopped", address=self.address)

    def reload(self) -> None:
        """Load the scenario again; keep the counters of services whose spec did not change."""
        try:
            policy, origins, log_only = self._load()
        except Exception as exc:  # a broken scenario must not take the running daemon down
            log(ERROR, "reload_failed", reason=str(exc) or type(exc).__name__, kept="the running policy")
            return
        self.decider, fresh = self.decider.reloaded(policy, origins, log_only)
        kept = sorted(set(self.decider.services) - set(fresh))
        log(INFO, "reloaded", policy=policy.name, kept=",".join(kept) or "none", reset=",".join(fresh) or "none",
            log_only=",".join(sorted(self.decider.log_only)) or "none")
        self.dirty = True

    def _load(self) -> tuple[Policy, Origins, frozenset[str]]:
        loaded = self.load()
        return loaded[0], loaded[1], frozenset(loaded[2]) if len(loaded) > 2 else self.config.log_only

    # ------------------------------------------------------------------ state
    def _restore(self, policy: Policy) -> tuple[dict, dict]:
        path = self.config.state
        if path is None:
            return {}, {}
        try:
            snapshot = state_file.load(path)
        except state_file.StateError as exc:
            aside = state_file.set_aside(Path(path)) if Path(path).exists() else None
            log(WARNING, "state_unreadable", reason=str(exc), moved_to=aside or "none", counters="start from zero")
            return {}, {}
        if snapshot is None:
            log(INFO, "state_new", file=path)
            return {}, {}
        services, locks, dropped = state_file.matching(snapshot, policy.services)
        log(INFO, "state_restored", file=path, saved_at=round(snapshot.saved_at, 3),
            age_s=round(time.time() - snapshot.saved_at, 3), services=",".join(sorted(services)) or "none",
            dropped=",".join(dropped) or "none")
        return services, locks

    def _save_now(self) -> None:
        data = state_file.dumps(self.decider.services, self.decider.locks)
        state_file.write_atomic(self.config.state, data)
        self.dirty = False
        if self.metrics is not None:
            self.metrics.saves.inc()
            self.metrics.last_save.set(time.time())

    async def _save_periodically(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.config.state_interval)
            if not self.dirty:
                continue
            async with self._save_lock:
                try:
                    # The snapshot is taken in the loop (consistent); the disk work in a thread.
                    data = state_file.dumps(self.decider.services, self.decider.locks)
                    self.dirty = False
                    await loop.run_in_executor(None, state_file.write_atomic, self.config.state, data)
                    if self.metrics is not None:
                        self.metrics.saves.inc()
                        self.metrics.last_save.set(time.time())
                except Exception as exc:  # a full disk must not stop the answers
                    self.dirty = True
                    log(ERROR, "state_save_failed", file=self.config.state, reason=str(exc))

    # ------------------------------------------------------------------ connections
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = _peer(writer)
        if len(self._writers) >= self.config.max_connections:
            log(WARNING, "connection_refused", peer=peer, reason=f"{self.config.max_connections} connections open")
            writer.close()
            return
        self._writers.add(writer)
        if self.metrics is not None:
            self.metrics.connections.inc()
        try:
            await self._requests(reader, writer, peer)
        except (ConnectionError, OSError):
            pass  # the client went away; nothing to answer
        finally:
            self._writers.discard(writer)
            if self.metrics is not None:
                self.metrics.connections.dec()
            writer.close()

    async def _requests(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str) -> None:
        # asyncio.timeout() rather than wait_for(): no task per await (a third of the CPU per request).
        config = self.config
        while True:
            try:
                async with asyncio.timeout(config.idle_timeout):
                    first = await reader.readline()
            except TimeoutError:
                log(INFO, "idle_close", peer=peer, idle_s=config.idle_timeout)
                return
            except (ValueError, asyncio.LimitOverrunError):  # the StreamReader's limit
                log(WARNING, "request_too_long", peer=peer, limit_bytes=MAX_REQUEST, then="closed")
                return
            if not first:
                return  # the client closed the connection between requests
            try:
                async with asyncio.timeout(config.request_timeout):
                    lines = await _rest_of_request(reader, first)
            except TimeoutError:
                log(WARNING, "slow_request", peer=peer, timeout_s=config.request_timeout, then="closed")
                return
            except (ValueError, asyncio.LimitOverrunError):
                log(WARNING, "request_too_long", peer=peer, limit_bytes=MAX_REQUEST, then="closed")
                return
            except asyncio.IncompleteReadError:
                log(WARNING, "request_cut_short", peer=peer, then="closed")
                return
            except _TooManyLines:
                log(WARNING, "too_many_lines", peer=peer, limit=MAX_ATTRIBUTES, then="closed")
                return
            writer.write(self.answer(lines, peer))
            if writer.transport.get_write_buffer_size():  # not all sent at once: wait, within limits
                try:
                    async with asyncio.timeout(config.request_timeout):
                        await writer.drain()
                except TimeoutError:
                    log(WARNING, "answer_not_read", peer=peer, timeout_s=config.request_timeout, then="closed")
                    return

    def answer(self, lines: list[bytes], peer: str = "") -> bytes:
        """The answer to one request's lines; never raises (fails open with DUNNO)."""
        started = time.perf_counter()
        decision: Decision | None = None
        result = "ok"
        try:
            parsed = parse_request(lines)
            if parsed.problem:
                result = "unreadable"
                log(WARNING, "unreadable_request", peer=peer, reason=parsed.problem, action="DUNNO")
            else:
                for name in parsed.unknown:
                    if name not in self._unknown_seen:  # once per name: Postfix sends it with every request
                        self._unknown_seen.add(name)
                        log(INFO, "unknown_attribute", peer=peer, name=name, then="ignored (logged once)")
                decision = self.decider.decide(parsed.attributes, self.config.clock())
                self.dirty = True
                elapsed = time.perf_counter() - started
                if decision.problem:
                    result = "unreadable"
                    log(WARNING, "undecidable_request", peer=peer, reason=decision.problem, action="DUNNO")
                elif self.config.budget and elapsed > self.config.budget:
                    log(WARNING, "over_budget", peer=peer, took_s=round(elapsed, 6), budget_s=self.config.budget,
                        would=decision.action, action="DUNNO")
                    result, decision = "over_budget", Decision(service=decision.service)
                else:
                    self._log_decision(decision, parsed.attributes)
        except Exception as exc:  # fail open: Postfix must not wait on our bug
            result, decision = "error", None
            log(ERROR, "internal_error", peer=peer, error=f"{type(exc).__name__}: {exc}", action="DUNNO")
        action = decision.action if decision is not None and result == "ok" else "DUNNO"
        record(self.metrics, result, decision if result == "ok" else None, time.perf_counter() - started)
        return format_answer(action)

    def _log_decision(self, decision: Decision, attributes: dict[str, str]) -> None:
        who = dict(sasl_username=attributes.get("sasl_username", ""),
                   client_address=attributes.get("client_address", ""),
                   protocol_state=attributes.get("protocol_state", ""), instance=attributes.get("instance", ""))
        if decision.action != "DUNNO":
            log(INFO, "decision", mode="enforce", service=decision.service, action=decision.action, **who)
        for service, action in decision.log_only:
            log(INFO, "decision", mode="log_only", service=service, would=action, action="DUNNO", **who)


class _TooManyLines(Exception):
    pass


async def _rest_of_request(reader: asyncio.StreamReader, first: bytes) -> list[bytes]:
    """The lines of the request that begins with ``first`` (each with its newline; the last
    one empty).  Postfix writes LF lines: the rest comes in one read up to the empty line (one
    byte first, so that the empty line after a one-line request is not mistaken for half of
    the separator).  A CRLF client (a person testing with telnet) is read line by line."""
    if not first.strip(b"\r\n"):
        return [first]
    if first.endswith(b"\r\n"):
        lines = [first]
        while lines[-1].strip(b"\r\n"):
            if len(lines) > MAX_ATTRIBUTES:
                raise _TooManyLines
            line = await reader.readline()
            if not line:
                raise asyncio.IncompleteReadError(b"", None)
            lines.append(line)
        return lines
    head = await reader.readexactly(1)
    if head == b"\n":
        return [first, head]
    rest = await reader.readuntil(b"\n\n")
    return [first, *(head + rest).splitlines(keepends=True)]


def _peer(writer: asyncio.StreamWriter) -> str:
    name = writer.get_extra_info("peername")
    if isinstance(name, tuple) and len(name) >= 2:
        return f"{name[0]}:{name[1]}"
    return "unix"


def _is_socket(path: str) -> bool:
    import stat
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False
