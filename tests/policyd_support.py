"""Shared by the policyd tests: a server in a thread with a settable clock, and Postfix's
side of a message (which services it asks, in which order) played against the daemon and
against the model's own restriction evaluation."""

from __future__ import annotations

import random
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w

from simsub.policy.restrictions import PolicyServiceCall, Result
from simsub.policyd.adapter import Origins
from simsub.policyd.client import PolicyClient, postfix_request
from simsub.policyd.server import Config, PolicyServer
from simsub.policyd.thread import ServerThread

from .conftest import BASE, make_scenario

USERS = [{"name": "users", "kind": "user", "count": 1, "origins": {"own": 1.0}, "messages_per_day": 1,
          "recipients": 1}]

#: Three services at RCPT (a spread detector, a per-message and a per-recipient limit) and
#: a token bucket at DATA counting the message's accepted recipients.
MIXED = {
    "recipient_restrictions": ["check_policy_service spread", "check_policy_service msgs",
                               "check_policy_service rcpts", "permit_sasl_authenticated", "reject"],
    "data_restrictions": ["check_policy_service bucket"],
    "services": {
        "spread": {"type": "distinct", "distinct": "client_address", "limit": 3, "window": "40s",
                   "action": "DEFER"},
        "msgs": {"type": "ratelimit", "key": "sasl_username", "count": "messages", "limit": 4, "window": "30s",
                 "algorithm": "fixed", "action": "DEFER"},
        "rcpts": {"type": "ratelimit", "key": "client_address", "count": "recipients", "limit": 6,
                  "window": "20s", "algorithm": "sliding", "action": "REJECT"},
        "bucket": {"type": "ratelimit", "key": "sasl_username", "count": "recipients", "limit": 8,
                   "window": "60s", "algorithm": "token_bucket", "action": "DEFER"},
    },
}
THROTTLE = {
    "recipient_restrictions": ["check_policy_service msgs", "permit_sasl_authenticated", "reject"],
    "services": {"msgs": {"type": "ratelimit", "key": "sasl_username", "count": "messages", "limit": 3,
                          "window": "60s", "algorithm": "fixed", "action": "DEFER"}},
}


def scenario(**policies):
    return make_scenario(USERS, policies=policies)


class Clock:
    """The services' time, set by the test before each request."""

    def __init__(self, t: float = 0.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


@contextmanager
def serve(scn, policy: str, clock=None, load=None, **options):
    """A PolicyServer for ``scn``'s ``policy`` (or what ``load()`` gives) on a free loopback port, in a thread."""
    load = load or (lambda: (scn.policies[policy], Origins.of_scenario(scn)))
    options.setdefault("listen", "127.0.0.1:0")
    config = Config(clock=clock or Clock(), **options)
    server = PolicyServer(config, load)
    thread = ServerThread(server)
    with thread:
        server.thread = thread
        yield server


@dataclass
class Message:
    t: float  # s
    account: str
    address: str
    recipients: int
    instance: str = ""


def random_messages(seed: int, n: int = 80, accounts: int = 4, addresses: int = 6) -> list[Message]:
    """Messages at increasing times, several per second at times, so windows fill and roll over."""
    rng = random.Random(seed)
    t, out = 1_000.0, []
    for i in range(n):
        t += rng.choice([0.0, 0.5, 1.0, 2.0, 4.0, 9.0])
        out.append(Message(round(t, 3), f"user{rng.randrange(accounts)}", f"203.0.113.{rng.randrange(addresses)}",
                           rng.randint(1, 4), f"{i:05X}.A{i}"))
    return out


@dataclass
class Outcome:
    """Per message: each RCPT's result and the DATA result ("" when DATA was not reached)."""

    rcpts: list[str] = field(default_factory=list)
    data: str = ""


def _word(action_or_result) -> str:
    if isinstance(action_or_result, Result):
        return {Result.REJECT: "REJECT", Result.DEFER: "DEFER"}.get(action_or_result, "DUNNO")
    word = action_or_result.split()[0].upper()
    return word if word in ("REJECT", "DEFER") else "DUNNO"


def _services_of(stage) -> list[str]:
    return [item.name for items in stage.lists for item in items if isinstance(item, PolicyServiceCall)]


class _ModelClient:
    def __init__(self, address: str, origin: str):
        self.hostname, self.address, self.mynetworks, self.origin = "unknown", address, False, origin


class _ModelRequest:
    """The model's Request for one message (what simsub.model.session.Transaction gives)."""

    def __init__(self, client, account: str, message_id: int):
        self.client, self.sasl_username, self.message_id = client, account, message_id
        self.recipient_count = 0
        self.decisions: dict = {}

    def pipelining_seen(self, t: float) -> bool:
        return False


def play_model(scn, policy_name: str, messages: list[Message]) -> list[Outcome]:
    """The model's own evaluation (Stage.evaluate on policy.new_state()) of each message."""
    policy = scn.policies[policy_name]
    state = policy.new_state()
    origins = Origins.of_scenario(scn)
    outcomes = []
    for number, m in enumerate(messages):
        outcome = Outcome()
        if m.account in state.locked_accounts:  # the model refuses a locked login at AUTH
            outcomes.append(Outcome(["REJECT"] * m.recipients))
            continue
        request = _ModelRequest(_ModelClient(m.address, origins.classify(m.address)[0]), m.account, number)
        for i in range(m.recipients):
            outcome.rcpts.append(_word(policy.stages["rcpt"].evaluate(request, m.t + 0.01 * i, state).result))
        request.recipient_count = outcome.rcpts.count("DUNNO")
        if request.recipient_count:
            outcome.data = _word(policy.stages["data"].evaluate(request, m.t + 0.05, state).result)
        outcomes.append(outcome)
    return outcomes


def play_daemon(scn, policy_name: str, messages: list[Message], client: PolicyClient, clock: Clock,
                with_context: bool = True) -> list[Outcome]:
    """Postfix's side: at each RCPT, then at DATA, ask the stage's services in list order
    (each with its policy_context) until one refuses."""
    policy = scn.policies[policy_name]
    rcpt_services, data_services = _services_of(policy.stages["rcpt"]), _services_of(policy.stages["data"])
    outcomes = []

    def stage(services, state, t, m, count) -> str:
        clock.t = t
        for name in services:
            action = client.ask(postfix_request(protocol_state=state, client_address=m.address,
                                                sasl_username=m.account, instance=m.instance,
                                                recipient_count=count,
                                                policy_context=name if with_context else ""))
            if _word(action) != "DUNNO":
                return _word(action)
        return "DUNNO"

    for m in messages:
        outcome = Outcome([stage(rcpt_services, "RCPT", m.t + 0.01 * i, m, 0) for i in range(m.recipients)])
        accepted = outcome.rcpts.count("DUNNO")
        if accepted and data_services:
            outcome.data = stage(data_services, "DATA", m.t + 0.05, m, accepted)
        elif accepted:
            outcome.data = "DUNNO"
        outcomes.append(outcome)
    return outcomes


# ---------------------------------------------------------------- the daemon as a process

REPO = Path(__file__).resolve().parents[1]


def write_scenario(path: Path, **policies) -> Path:
    """A scenario file holding ``policies`` (and the tiny base scenario)."""
    data = {**BASE, "populations": USERS, "policies": {"none": {}, **policies}}
    path.write_text(tomli_w.dumps(data, multiline_strings=True))
    return path


class Daemon:
    """``simsub policyd`` as its own process, as systemd would run it; ``log`` is its stderr."""

    def __init__(self, scenario: Path, policy: str, *options: str, log: Path):
        self.log_path = log
        self.command = [sys.executable, "-m", "simsub", "policyd", str(scenario), "--policy", policy,
                        "--listen", "127.0.0.1:0", *options]
        self.process: subprocess.Popen | None = None
        self.address = ""

    def start(self, timeout: float = 30.0) -> "Daemon":
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command, cwd=REPO, stdout=log, stderr=log)
        try:
            self.address = self.wait_for(r"event=listening address=(\S+)", timeout, offset).group(1)
        except BaseException:
            self.__exit__()  # `with` does not call __exit__ when __enter__ fails
            raise
        return self

    def wait_for(self, pattern: str, timeout: float = 30.0, offset: int = 0) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.log_path.read_text(errors="replace")[offset:])
            if match:
                return match
            if self.process.poll() is not None:
                raise AssertionError(f"the daemon exited ({self.process.returncode}):\n{self.log_path.read_text()}")
            time.sleep(0.02)
        raise AssertionError(f"no {pattern!r} in the daemon's log within {timeout} s:\n{self.log_path.read_text()}")

    def send(self, sig: int) -> None:
        self.process.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)

    def __enter__(self) -> "Daemon":
        return self.start()

    def __exit__(self, *_exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def raise_fd_limit() -> int:
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
