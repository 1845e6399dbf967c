"""``simsub twin``: the same small scenario against a private Postfix and in the model.

Steps: scale the scenario down (:func:`~simsub.twin.scenario.twin_scenario`);
start a private Postfix with the exported policy; measure its time per reply
with a probe session (it becomes the model's ``mta.reply_time``); run the model
(fast, and it tells how many sessions the real run will play); play the
populations in real time against Postfix while a socket monitor watches which
connections the smtpd processes hold; stop Postfix; fill a Recorder from what
the clients and the monitor saw; compare (:mod:`simsub.twin.compare`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import socket
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

from .compare import comparison_rows, twin_metrics
from ..errors import ScenarioError
from ..model.outcomes import Outcome, Step
from ..model.recorder import Recorder
from ..model.world import simulate
from ..postfix.export import PostfixExport
from ..postfix.instance import PostfixError, PrivatePostfix
from ..scenario.types import Scenario
from .monitor import SocketMonitor
from .player import Player
from .scenario import twin_scenario

#: Most sessions a twin run may play: each is a real connection and an asyncio task.
MAX_SESSIONS = 5000
#: Most sessions at once (file descriptors, and the two cores Postfix shares with the client).
MAX_CONCURRENT = 400


@dataclass
class TwinResult:
    scenario: Scenario  # the scaled-down scenario both sides played (reply_time as measured)
    policy: str
    seed: int
    reply_time: float  # s per reply, measured on the private instance
    real: Recorder
    model: Recorder
    real_metrics: dict[str, float]
    model_metrics: dict[str, float]
    rows: list[dict]
    wall_s: float
    maillog: str = ""
    drift_s: float = math.nan  # largest |real - model| start time of the same bot session
    export: PostfixExport | None = None  # the configuration the private Postfix ran
    notes: list[str] = field(default_factory=list)

    @property
    def agrees(self) -> bool:
        return all(row["agrees"] for row in self.rows)


def default_duration(scenario: Scenario) -> float:
    """The twin's real time by default (s): the scenario's horizon up to 10 min, else 60 s."""
    return scenario.horizon if scenario.horizon <= 600 else 60.0


def run_twin(scenario: Scenario, policy: str, *, duration: float | None = None, scale: float = 1.0,
             start: float = 0.0, seed: int | None = None, progress=None, keep: bool = False) -> TwinResult:
    """Play ``policy`` of ``scenario`` against real Postfix and in the model; see the module docstring.

    ``duration`` (s of real time) defaults to :func:`default_duration`.

    Raises ScenarioError for a policy or size the twin cannot play, PostfixError
    when the private instance cannot run.
    """
    label = scenario.label or scenario.name
    seed = scenario.seed if seed is None else seed
    duration = default_duration(scenario) if duration is None else duration
    base = twin_scenario(scenario, duration=duration, scale=scale, start=start)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        daemon = _policy_daemon(base, policy, stack)
        endpoint = {"policy_endpoint": f"inet:{daemon.server.address}"} if daemon else {}
        postfix = stack.enter_context(PrivatePostfix(base, policy, process_limit=base.mta.process_limit, keep=keep,
                                                     **endpoint))
        reply_time = probe_reply_time(postfix.port)
        twin = dataclasses.replace(base, mta=dataclasses.replace(base.mta, reply_time=reply_time))
        model = Recorder()
        info = simulate(twin, policy, seed, model)
        _check_size(twin, model, label)
        monitor = SocketMonitor(postfix.port).start()
        try:
            player = Player(twin, seed, "127.0.0.1", postfix.port, monitor.watch)
            if daemon:
                # The daemon's services count on the run's clock, as the model's do on simulated
                # time: seconds since the player started (windows and decay agree with the model).
                daemon.clock = lambda: time.monotonic() - player.started_at
            asyncio.run(player.play(progress))
            # Let the last smtpd finish the sleep it started for a client that hung up.
            _wait_idle(monitor, timeout=max(60.0, 2 * duration))
            still_open = monitor.busy()
        finally:
            monitor.stop()
        if monitor.error is not None:
            raise PostfixError(f"the socket monitor failed, so the server side was not measured: {monitor.error!r}")
        maillog = postfix.log_text()
        export = postfix.export
    real = real_recorder(player, monitor, twin)
    real_peak = monitor.peak_held
    model_peak = max(model.samples["busy_peak"], default=0)
    real_metrics = twin_metrics(real, twin.horizon, real_peak)
    model_metrics = twin_metrics(model, twin.horizon, model_peak)
    result = TwinResult(twin, policy, seed, reply_time, real, model, real_metrics, model_metrics,
                        comparison_rows(real_metrics, model_metrics), time.monotonic() - started, maillog,
                        bot_drift(real, model, twin), export)
    if real.totals["monitor_missed"]:
        result.notes.append(f"{real.totals['monitor_missed']} greeted sessions were held too briefly for the socket "
                            "monitor to see; their smtpd time is the client's session time")
    if still_open:
        result.notes.append(f"{still_open} connections were still open when the twin stopped waiting for them")
    if info.end_s > 3 * duration:
        result.notes.append(f"sessions in flight at the horizon ran until {info.end_s:.0f} s in the model")
    return result


class _Daemon:
    """``simsub policyd`` beside the private Postfix; its services count on ``clock``,
    which the run sets once the player knows when it started."""

    def __init__(self, server):
        self.server = server
        self.clock: Callable[[], float] = lambda: 0.0

    def now(self) -> float:
        return self.clock()


def _policy_daemon(scenario: Scenario, policy: str, stack: contextlib.ExitStack) -> _Daemon | None:
    """For a policy with services: ``simsub policyd`` serving the same service objects on a free
    loopback port (in a thread of this process), so the private Postfix asks it as production
    would; None for a policy without services."""
    compiled = scenario.policies[policy]
    if not compiled.services:
        return None
    from ..policyd.adapter import Origins
    from ..policyd.server import Config, PolicyServer
    from ..policyd.thread import ServerThread

    daemon = _Daemon(None)
    server = PolicyServer(Config(listen="127.0.0.1:0", clock=lambda: daemon.now(), budget=0.0),
                          lambda: (compiled, Origins.of_scenario(scenario)))
    daemon.server = stack.enter_context(ServerThread(server))
    return daemon


def probe_reply_time(port: int, commands: int = 20) -> float:
    """Median round trip (s) of NOOP on the instance: smtpd's time per reply on loopback."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        reader = s.makefile("rb")
        _reply(reader)
        s.sendall(b"EHLO probe.simsub.invalid\r\n")
        _reply(reader)
        times = []
        for _ in range(commands):
            t = time.perf_counter()
            s.sendall(b"NOOP\r\n")
            _reply(reader)
            times.append(time.perf_counter() - t)
        # The players disguise themselves with XCLIENT: make sure the instance allows it.
        s.sendall(b"XCLIENT NAME=probe.simsub.invalid\r\n")
        code = _reply(reader)
        if code != 220:
            raise PostfixError(f"XCLIENT refused by the private Postfix (reply {code}); is 127.0.0.1 in "
                               "smtpd_authorized_xclient_hosts?")
        s.sendall(b"QUIT\r\n")
    return statistics.median(times)


def _reply(reader) -> int:
    while True:
        line = reader.readline()
        if not line:
            raise PostfixError("the private Postfix closed the probe connection")
        if line[3:4] != b"-":
            return int(line[:3])


def _check_size(twin: Scenario, model: Recorder, label: str) -> None:
    sessions = len(model.sessions["arrival_s"])
    if sessions > MAX_SESSIONS:
        raise ScenarioError(label, "--scale", f"the twin would play {sessions:,} sessions in real time (at most "
                            f"{MAX_SESSIONS:,}); use a smaller --scale or --duration")
    peak = max(model.samples["busy_peak"], default=0) + max(model.samples["queue_peak"], default=0)
    if peak > MAX_CONCURRENT:
        raise ScenarioError(label, "--scale", f"the twin would hold about {peak} connections at once (at most "
                            f"{MAX_CONCURRENT}); use a smaller --scale")


def _wait_idle(monitor: SocketMonitor, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while monitor.busy() and time.monotonic() < deadline:
        time.sleep(0.02)


def real_recorder(player: Player, monitor: SocketMonitor, twin: Scenario) -> Recorder:
    """A Recorder of the real run, filled as the model fills its own.

    The smtpd side of each session (when a process took the connection and
    when it let go) comes from the socket monitor; a client that got no banner
    is ABANDONED if no smtpd had taken its connection, else it timed out at
    the banner.  Times are s since the start of the run.
    """
    recorder = Recorder()
    recorder.populations = [p.name for p in twin.populations]
    recorder.population_kinds = [p.kind for p in twin.populations]
    recorder.origins = list(twin.origins)
    offset = player.started_at
    slot_wait: dict[int, float] = {}
    last_session = {}
    missed = 0
    for session in sorted(player.sessions, key=lambda s: s.arrival):
        wait = hold = 0.0
        trace = session.trace
        gave_up_at = session.client_end + offset  # monotonic s
        if trace is not None and trace.accepted_at is not None and (
                not math.isnan(session.banner_at) or trace.accepted_at <= gave_up_at):
            wait = max(trace.accepted_at - offset - session.arrival, 0.0)
            hold = max(trace.released_at - trace.accepted_at, 0.0)
            if session.step == Step.QUEUE and session.outcome == Outcome.TIMEOUT:
                session.step = Step.BANNER  # an smtpd had it: it timed out at the banner
        elif session.connected and not math.isnan(session.banner_at):
            # Greeted, so an smtpd had it, but for less than the monitor's sampling interval.
            missed += 1
            hold = session.client_end - session.arrival
        elif session.connected:
            # No smtpd took the connection while the client waited (one may have
            # taken it afterwards, found the client gone and let go at once).
            wait = session.client_end - session.arrival
            if session.outcome == Outcome.TIMEOUT and session.step == Step.QUEUE:
                session.outcome = Outcome.ABANDONED
        recorder.session(session.population, session.arrival, session.outcome, wait, hold)
        slot_wait[session.message] = slot_wait.get(session.message, 0.0) + wait
        last_session[session.message] = session
    for m in sorted(player.messages, key=lambda m: m.first_attempt):
        last = last_session[m.message]
        recorder.message(m.message, m.population, m.client, m.origin, recorder.account_code(m.account), m.recipients,
                         m.first_attempt, m.end, m.accepted_at, m.attempts, last.outcome, last.step,
                         m.recipients_accepted, m.ideal, slot_wait[m.message], math.nan)
    recorder.totals["monitor_missed"] = missed
    return recorder


def bot_drift(real: Recorder, model: Recorder, twin: Scenario) -> float:
    """Largest difference (s) between the real and the model start time of the k-th session of the
    same bot: how far the closed loops drifted apart (the model leaves out milliseconds per session)."""
    def starts(recorder: Recorder) -> dict[tuple[int, int], list[float]]:
        out: dict[tuple[int, int], list[float]] = {}
        m = recorder.messages
        for pop, client, first in zip(m["population"], m["client"], m["first_attempt_s"]):
            if recorder.population_kinds[pop] == "bot":
                out.setdefault((pop, client), []).append(first)
        return {k: sorted(v) for k, v in out.items()}
    a, b = starts(real), starts(model)
    drift = [abs(x - y) for key in a.keys() & b.keys() for x, y in zip(a[key], b[key])]
    return max(drift, default=math.nan)
