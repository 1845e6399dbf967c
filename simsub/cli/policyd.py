"""``simsub policyd``: a policy's rate limits served to a real Postfix."""

from __future__ import annotations

import argparse
import asyncio
import difflib
from pathlib import Path

from ..errors import ScenarioError
from ..policyd.settings import scenario_log_only
from ..units import parse_duration
from .options import load_scenario_from, scenario_arguments

DESCRIPTION = """\
Serve a scenario policy's policy services (check_policy_service) to a real
Postfix: the Postfix policy delegation protocol on a TCP or unix socket, with
the model's own limiter objects driven by the wall clock.  Run it beside
Postfix in log-only mode first (--log-only: answers DUNNO, logs what it would
have answered); see docs/policyd.md.  Signals: SIGTERM/SIGINT stop after
writing the state, SIGHUP reloads the scenario keeping the counters of
unchanged services.  Deploy with the systemd unit and main.cf lines that
`simsub export-postfix` writes."""


def add_commands(sub) -> dict:
    p = sub.add_parser("policyd", help="serve a policy's rate limits to a real Postfix (policy delegation server)",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    scenario_arguments(p)
    p.add_argument("--policy", metavar="NAME", help="policy whose services to serve (default: the scenario's "
                   "default_policy)")
    p.add_argument("--listen", metavar="ADDR", default="127.0.0.1:10040",
                   help="HOST:PORT, [IPV6]:PORT or unix:PATH (default 127.0.0.1:10040; port 0 picks a free one)")
    p.add_argument("--state", metavar="FILE", type=Path,
                   help="keep the counters in FILE across restarts (written atomically; default: none)")
    p.add_argument("--state-interval", metavar="DUR", type=_seconds(minimum=0.0), default=10.0,
                   help="write the state this often when it changed (default 10s; a kill -9 loses at most "
                   "this much counting)")
    p.add_argument("--log-only", metavar="SERVICE,...", nargs="?", const="*", default=None,
                   help="answer DUNNO and log what the named services (all without a list) would have "
                   "answered; also [policies.NAME.policyd] log_only in the scenario")
    p.add_argument("--budget", metavar="DUR", type=_seconds(minimum=0.0), default=0.1,
                   help="longest time to decide one request; beyond it answer DUNNO and log (default 100ms; "
                   "0: no limit)")
    p.add_argument("--metrics", metavar="HOST:PORT",
                   help="serve Prometheus metrics at http://HOST:PORT/metrics (needs prometheus_client)")
    p.add_argument("--idle-timeout", metavar="DUR", type=_seconds(minimum=0.001), default=600.0,
                   help="close a connection idle this long (default 600s, above Postfix's max_idle of 300s)")
    p.add_argument("--request-timeout", metavar="DUR", type=_seconds(minimum=0.001), default=10.0,
                   help="close a connection whose started request is not complete after this long (default 10s)")
    p.add_argument("--max-connections", metavar="N", type=int, default=20_000,
                   help="refuse connections beyond N open ones (default 20000)")
    p.add_argument("--quiet", action="store_true", help="no line per decision (start, stop, reload, warnings and "
                   "errors are still logged)")
    return {"policyd": command_policyd}


def command_policyd(args) -> int:
    from ..policyd.logfmt import configure
    from ..policyd.server import Config, PolicyServer, parse_listen, raise_fd_limit

    scenario = load_scenario_from(args)  # validated now: a bad scenario exits 2 before anything listens
    _policy_name, log_only = _check(scenario, args)
    for option in ("listen", "metrics"):
        value = getattr(args, option)
        if value is not None:
            try:
                kind, _host, _port = parse_listen(value)
            except ValueError as exc:
                raise ScenarioError(f"--{option}", None, str(exc)) from None
            if option == "metrics" and kind == "unix":
                raise ScenarioError("--metrics", None, "expected HOST:PORT (the exporter speaks HTTP over TCP)")
    if args.metrics:
        from ..policyd.metrics import available
        if not available():
            raise ScenarioError("--metrics", None, "needs the Prometheus client library: "
                                "pip install 'simsub[policyd]' (or prometheus_client)")
    configure(decisions=not args.quiet)
    raise_fd_limit()
    config = Config(listen=args.listen, state=args.state, state_interval=args.state_interval, budget=args.budget,
                    idle_timeout=args.idle_timeout, request_timeout=args.request_timeout,
                    log_only=frozenset(log_only), metrics=args.metrics, max_connections=args.max_connections)
    server = PolicyServer(config, lambda: load_policy(args))
    try:
        asyncio.run(server.run())
    except OSError as exc:  # the address is taken, the socket folder is missing...
        raise ScenarioError("--listen", args.listen, f"cannot listen: {exc.strerror or exc}") from None
    return 0


def load_policy(args):
    """(policy, origins, log-only services) of the scenario as on the command line; read again
    on SIGHUP, so editing the scenario's [policies.NAME.policyd] log_only and a reload switches
    a service between log-only and enforcing."""
    from ..policyd.adapter import Origins

    scenario = load_scenario_from(args)
    policy_name, log_only = _check(scenario, args)
    return scenario.policies[policy_name], Origins.of_scenario(scenario), frozenset(log_only)


def _check(scenario, args) -> tuple[str, set[str]]:
    """The policy to serve and the services in log-only mode; ScenarioError for what cannot run."""
    policy_name = scenario.policy_named(args.policy)
    policy = scenario.policies[policy_name]
    source = scenario.label or scenario.name
    if not policy.services:
        with_services = sorted(n for n, p in scenario.policies.items() if p.services)
        raise ScenarioError(source, f"policies.{policy_name}",
                            "has no policy services (check_policy_service): nothing for the daemon to answer; "
                            f"policies with services: {', '.join(with_services) or 'none'}")
    log_only = set(scenario_log_only(scenario, policy_name))
    if args.log_only is not None:
        names = {"*"} if args.log_only == "*" else {n.strip() for n in args.log_only.split(",") if n.strip()}
        for name in sorted(names - {"*"}):
            if name not in policy.services:
                close = difflib.get_close_matches(name, list(policy.services), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ScenarioError("--log-only", name, f"policy {policy_name!r} has no service {name!r} "
                                    f"(services: {', '.join(sorted(policy.services))}){hint}")
        log_only |= names
    return policy_name, log_only


def _seconds(minimum: float):
    def parse(text: str) -> float:
        try:
            value = parse_duration(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a duration >= {minimum:g} s, got {text!r}")
        return value
    return parse
