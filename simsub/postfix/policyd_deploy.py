"""What ``export-postfix`` writes to deploy ``simsub policyd`` beside Postfix.

* the ``check_policy_service`` argument of each service: the daemon's address,
  with ``policy_context=NAME`` (Postfix >= 3.1) when the policy has several
  services, so one daemon tells them apart;
* the submission entry's ``-o`` overrides for the policy client (Postfix >= 3.0
  for ``default_action``): fail open with DUNNO when the daemon is down or slow
  (Postfix's own default, "451 4.3.5 Server configuration problem", would stop
  all submission), a 5 s timeout instead of 100 s, idle connections closed
  after 300 s (the daemon keeps them 600 s, so Postfix always closes first);
* the daemon's command line and a systemd unit, in log-only mode: the first
  deployment only logs what it would answer;
* warnings for a service placed where Postfix never asks it (after
  ``permit_sasl_authenticated`` every logged-in client is already permitted).
"""

from __future__ import annotations

import shlex

from ..policy.policy import LIST_KEYS, Policy
from ..policy.restrictions import tokenize

#: (parameter, value, why) of the policy client, set on the submission entry only.
CLIENT_OVERRIDES = (
    ("smtpd_policy_service_default_action", "DUNNO", "fail open: a dead daemon must not stop submission"),
    ("smtpd_policy_service_timeout", "5s", "the daemon answers in under 100 ms; Postfix's default is 100 s"),
    ("smtpd_policy_service_max_idle", "300s", "below the daemon's --idle-timeout (600 s)"),
    ("smtpd_policy_service_max_ttl", "1000s", "reconnect now and then (Postfix's default)"),
)

#: Where the exported unit expects things on the server.
SCENARIO_DIR = "/etc/simsub"
STATE_FILE = "/var/lib/simsub-policyd/state.pickle"

#: Restrictions after which a check_policy_service in the same list is never
#: reached for a logged-in client (all clients of port 587 are).
_PERMITTING = ("permit_sasl_authenticated", "permit")


def service_arguments(policy: Policy, endpoint: str) -> dict[str, str]:
    """Service name -> what follows ``check_policy_service`` in Postfix."""
    names = sorted(policy.services)
    if len(names) == 1:
        return {names[0]: endpoint}
    return {name: f"{{ {endpoint}, policy_context={name} }}" for name in names}


def daemon_command(scenario_file: str, policy: str, endpoint: str, *, log_only: bool = True,
                   state: str = STATE_FILE, program: str = "/usr/local/bin/simsub") -> list[str]:
    """The daemon's command line for a Postfix ``inet:HOST:PORT`` endpoint."""
    listen = endpoint.removeprefix("inet:")
    command = [program, "policyd", scenario_file, "--policy", policy, "--listen", listen, "--state", state,
               "--metrics", "127.0.0.1:9101"]
    return command + (["--log-only"] if log_only else [])


def systemd_unit(command: list[str], scenario: str, policy: str) -> str:
    """A systemd service for the daemon (DynamicUser: no account to create; state under /var/lib)."""
    return f"""\
# simsub policyd for policy {policy!r} of scenario {scenario!r}.
# Install: cp simsub-policyd.service /etc/systemd/system/ && systemctl daemon-reload
#          && systemctl enable --now simsub-policyd
# It starts in log-only mode (--log-only: answers DUNNO, logs "event=decision mode=log_only
# would=..."): watch `journalctl -u simsub-policyd` for a few days, then remove --log-only and
# `systemctl restart simsub-policyd` (the counters are kept in the state file).
# `systemctl reload simsub-policyd` re-reads the scenario and keeps unchanged services' counters.
[Unit]
Description=simsub policy server for Postfix (policy {policy})
Before=postfix.service
After=network.target

[Service]
Type=simple
ExecStart={shlex.join(command)}
ExecReload=/bin/kill -HUP $MAINPID
KillSignal=SIGTERM
TimeoutStopSec=30
Restart=on-failure
RestartSec=1
DynamicUser=yes
StateDirectory=simsub-policyd
StateDirectoryMode=0700
LimitNOFILE=65536
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
"""


def placement_problems(policy: Policy) -> list[str]:
    """Services placed where Postfix never asks them for a logged-in client."""
    problems = []
    for key in LIST_KEYS:
        seen_permit = None
        tokens = [t for entry in policy.lists.get(key, []) for t in tokenize(entry)]
        for i, token in enumerate(t.lower() for t in tokens):
            if token in _PERMITTING and seen_permit is None:
                seen_permit = token
            elif token == "check_policy_service" and seen_permit and i + 1 < len(tokens):
                problems.append(f"{key}: check_policy_service {tokens[i + 1]} comes after {seen_permit}, which "
                                "already permits every logged-in client: Postfix never asks the service about "
                                "submission mail (the model does not either); put it before")
    return problems
