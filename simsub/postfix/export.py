"""Turn a simsub policy into the Postfix configuration an administrator deploys.

The result is three kinds of text: parameters for ``main.cf`` (one custom
parameter per restriction list, so master.cf's ``-o`` overrides stay short and
``postconf`` can show them), a ``submission`` entry for ``master.cf`` whose
``-o`` overrides apply the policy to port 587 only, and one ``pcre:`` file per
map.  A policy service (``check_policy_service NAME``) cannot be answered by
Postfix itself: it becomes ``check_policy_service inet:127.0.0.1:PORT`` with a
comment saying what the daemon listening there must decide.

The same texts configure the private instance of ``simsub twin``, so what is
compared with the model is what an administrator would deploy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..policy.policy import LIST_KEYS, Policy
from ..policy.pcre_map import closing_delimiter, logical_lines
from ..policy.restrictions import tokenize
from ..policy.services import COUNT_TEXT, DistinctSpec, RateLimitSpec
from . import policyd_deploy as deploy
from ..scenario.types import AnvilLimits, Scenario

#: simsub list key -> Postfix parameter.
POSTFIX_PARAMETER = {key: f"smtpd_{key}" for key in LIST_KEYS}

#: First local port suggested for policy services (policyd-style daemons).
POLICY_SERVICE_PORT = 10040

#: Restrictions that satisfy Postfix's rule that the relay or the recipient
#: list must be able to refuse mail; without one smtpd exits with a fatal
#: error at the first RCPT and the master throttles the service for 60 s.
_REFUSING = {"reject", "defer", "reject_unauth_destination", "defer_unauth_destination", "defer_if_permit"}


class ExportError(ValueError):
    """A policy Postfix cannot run as written; ``key`` names the scenario key."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(message)


@dataclass
class PostfixExport:
    """The files of one exported policy (text by relative path) and what to know about them."""

    policy: str
    main_cf: str
    master_cf: str
    maps: dict[str, str]  # file name (NAME.pcre) -> contents
    services: dict[str, str]  # service name -> inet:127.0.0.1:PORT
    notes: list[str] = field(default_factory=list)  # what Postfix alone does not do
    daemon: dict[str, str] = field(default_factory=dict)  # policyd/... files: unit, scenario, command

    def files(self) -> dict[str, str]:
        """Every file to write, by path relative to the export folder."""
        files = {"main.cf": self.main_cf, "master.cf": self.master_cf}
        files.update({f"maps/{name}": text for name, text in self.maps.items()})
        files.update(self.daemon)
        return files


def parameter_prefix(policy: str) -> str:
    """The prefix of the custom main.cf parameters of a policy (Postfix names: [a-z0-9_])."""
    return "simsub_" + re.sub(r"[^a-z0-9]+", "_", policy.lower()).strip("_")


def export_policy(scenario: Scenario, policy_name: str, *, map_dir: str = "/etc/postfix/simsub",
                  listen: str = "submission", process_limit: int | None = None,
                  policy_endpoint: str = f"inet:127.0.0.1:{POLICY_SERVICE_PORT}") -> PostfixExport:
    """The Postfix configuration of ``scenario.policies[policy_name]``.

    ``map_dir``: where the map files will live on the server (absolute path);
    ``listen``: the master.cf service name or ``address:port``;
    ``process_limit``: the entry's maxproc (default: the scenario's ``mta.process_limit``);
    ``policy_endpoint``: where ``simsub policyd`` answers the policy's services.
    Raises :class:`ExportError` for a policy that Postfix would refuse to run.
    """
    policy = scenario.policies[policy_name]
    prefix = parameter_prefix(policy_name)
    # One daemon answers every service; several are told apart by policy_context.
    ports = deploy.service_arguments(policy, policy_endpoint) if policy.services else {}
    _check_can_refuse(policy)

    main = [f"# simsub policy {policy_name!r} of scenario {scenario.name!r}, exported by simsub export-postfix.",
            "# Add these lines to main.cf; master.cf's submission entry applies them to port 587 only."]
    description = _policy_description(scenario, policy_name)
    if description:
        main += [f"# {line}" for line in _wrap(description)]
    main.append("")
    mynetworks = [str(o.network) for o in scenario.origins.values() if o.mynetworks]
    if mynetworks:
        main += ["# Clients that permit_mynetworks lets through: the scenario's origins marked",
                 "# mynetworks = true.  Replace with your own access networks.",
                 f"mynetworks = {', '.join(mynetworks)}", ""]
    overrides = [f"smtpd_delay_reject={'yes' if policy.delay_reject else 'no'}"]
    mta = scenario.mta
    # The error throttling the model applies, where the scenario differs from Postfix's defaults.
    for parameter, value, default in (("smtpd_soft_error_limit", mta.soft_error_limit, 10),
                                      ("smtpd_hard_error_limit", mta.hard_error_limit, 20),
                                      ("smtpd_error_sleep_time", mta.error_sleep_time, 1.0)):
        if value != default:
            overrides.append(f"{parameter}={value:g}s" if parameter.endswith("time") else f"{parameter}={value}")
    if policy.services:
        overrides += [f"{parameter}={value}" for parameter, value, _why in deploy.CLIENT_OVERRIDES]
    overrides += _anvil_overrides(mta.anvil)
    if mta.anvil.rate_time_unit != 60.0:
        main += ["# anvil's rate window (read by anvil(8), so main.cf, not master.cf)",
                 f"anvil_rate_time_unit = {mta.anvil.rate_time_unit:g}s", ""]
    for key in LIST_KEYS:
        if key not in policy.lists:
            continue
        parameter = f"{prefix}_{key}"
        value = ", ".join(_postfix_items(policy.lists[key], map_dir, ports))
        main += [f"# {POSTFIX_PARAMETER[key]} for the submission service{_stage_note(key, policy)}",
                 f"{parameter} = {value}" if value else f"{parameter} ="]
        overrides.append(f"{POSTFIX_PARAMETER[key]}=${parameter}")
    classes: dict[str, str] = {}
    maps = {f"{name}.pcre": _map_file(name, text, map_dir, ports, policy_name, classes)
            for name, text in policy.maps.items()}
    if classes:
        main += ["# Map results that consult another table must be restriction classes in Postfix.",
                 f"smtpd_restriction_classes = {', '.join(classes)}"]
        main += [f"{name} = {value}" for name, value in classes.items()]
    notes = []
    for name, port in ports.items():
        spec = policy.services[name]
        note = (f"check_policy_service {port} (service {name!r}): {service_contract(spec)} "
                "`simsub policyd` answers it with the model's own counter (policyd/simsub-policyd.service).")
        notes.append(note)
        main += [f"# {line}" for line in _wrap(note)]
    for problem in deploy.placement_problems(policy):
        notes.append(problem)
        main += [f"# WARNING: {line}" for line in _wrap(problem)]
    main_cf = "\n".join(main).rstrip() + "\n"

    maxproc = scenario.mta.process_limit if process_limit is None else process_limit
    master = [f"# The submission service with simsub policy {policy_name!r}; replaces Debian's commented",
              "# submission entry.  chroot is off so the maps and any policy socket are reachable as written.",
              f"{listen} inet  n       -       n       -       {maxproc:<7} smtpd",
              "  -o syslog_name=postfix/submission",
              "  -o smtpd_sasl_auth_enable=yes"]
    master += [f"  -o {o}" for o in overrides]
    master_cf = "\n".join(master) + "\n"

    daemon = _daemon_files(scenario, policy_name, policy_endpoint) if policy.services else {}
    return PostfixExport(policy_name, main_cf, master_cf, maps, {name: policy_endpoint for name in ports}, notes,
                         daemon)


def service_contract(spec: RateLimitSpec | DistinctSpec) -> str:
    """What a policy daemon must answer to stand in for a simsub service, in one sentence."""
    action = "reject and disable the account" if spec.action == "LOCK" else f"answer action={spec.action}"
    if isinstance(spec, RateLimitSpec):
        per = COUNT_TEXT[spec.count]
        return (f"count one per {per} for each {spec.key_text}, at most {spec.limit:g} {spec.count} in a "
                f"{spec.algorithm_text} of {spec.window:g} s; beyond it {action}, else DUNNO "
                "(e.g. policyd-rate-limit or postfwd).")
    return (f"count the distinct {spec.distinct} values each sasl_username logs in from over the last "
            f"{spec.window:g} s; above {spec.limit} {action}, else DUNNO (one decision per message).")


# ---------------------------------------------------------------- internals
def _anvil_overrides(anvil) -> list[str]:
    """smtpd's per-client limits where the scenario differs from Postfix's defaults."""
    out = []
    for key in ("connection_count_limit", "connection_rate_limit", "message_rate_limit", "recipient_rate_limit",
                "auth_rate_limit"):
        value = getattr(anvil, key)
        if value != getattr(AnvilLimits(), key):
            out.append(f"smtpd_client_{key}={value}")
    if anvil.exceptions is not None:  # None: Postfix's default, $mynetworks
        out.append("smtpd_client_event_limit_exceptions=" + ",".join(str(n) for n in anvil.exceptions))
    return out


def _daemon_files(scenario: Scenario, policy_name: str, endpoint: str) -> dict[str, str]:
    """The daemon's unit, its command line and the scenario it reads (overrides resolved)."""
    import shlex

    import tomli_w

    file_name = re.sub(r"[^A-Za-z0-9._-]+", "_", scenario.name) + ".toml"
    command = deploy.daemon_command(f"{deploy.SCENARIO_DIR}/{file_name}", policy_name, endpoint)
    resolved = dict(scenario.raw)
    resolved["scenario"] = {**resolved.get("scenario", {}), "default_policy": policy_name}
    toml = ("# The scenario simsub policyd reads (overrides applied); install as "
            f"{deploy.SCENARIO_DIR}/{file_name}\n" + tomli_w.dumps(resolved, multiline_strings=True))
    return {"policyd/simsub-policyd.service": deploy.systemd_unit(command, scenario.name, policy_name),
            f"policyd/{file_name}": toml,
            "policyd/command.txt": shlex.join(command) + "\n"}


def _check_can_refuse(policy: Policy) -> None:
    """Postfix exits at the first RCPT unless the relay or recipient list can refuse."""
    relay = policy.lists.get("relay_restrictions")
    if relay is None:
        return  # Postfix's default relay list ends in defer_unauth_destination
    words = {t.lower() for entry in relay + policy.lists.get("recipient_restrictions", []) for t in tokenize(entry)}
    if not words & _REFUSING:
        raise ExportError("relay_restrictions", "neither relay_restrictions nor recipient_restrictions contains "
                          "reject, defer or reject_unauth_destination: Postfix's smtpd exits with a fatal error at "
                          "the first RCPT TO (and the master stops the service for 60 s); end one of them with "
                          "'reject'")


def _postfix_items(entries: list[str], map_dir: str, ports: dict[str, str]) -> list[str]:
    """A restriction list with map and service names replaced by what Postfix reads."""
    tokens = [t for entry in entries for t in tokenize(entry)]
    items, i = [], 0
    while i < len(tokens):
        word = tokens[i]
        name = word.lower()
        if name in ("sleep", "check_client_access", "check_sasl_access", "check_policy_service") and i + 1 < len(tokens):
            argument = tokens[i + 1]
            if name == "check_policy_service":
                argument = ports.get(argument, argument)
            elif name != "sleep":
                argument = f"pcre:{map_dir}/{argument.partition(':')[2]}.pcre"
            items.append(f"{name} {argument}")
            i += 2
        else:
            items.append(name)
            i += 1
    return items


def _map_file(name: str, text: str, map_dir: str, ports: dict[str, str], policy: str,
              classes: dict[str, str]) -> str:
    """A pcre map as Postfix reads it, one rule per line.

    A result that is a restriction list naming a lookup table or a policy service
    cannot stay in the map (Postfix answers "451 4.3.5 Server configuration error":
    no lookup tables inside access maps); it becomes a restriction class, added to
    ``classes`` (class name -> restriction list), and the rule names the class."""
    out = [f"# pcre map {name!r} of simsub policy {policy!r}: first matching line wins; the client's",
           "# hostname is looked up first (\"unknown\" without reverse DNS), then its address."]
    for number, line in logical_lines(text):
        pattern, result = _split_rule(line)
        first = result.split()[0].upper() if result.split() else ""
        if first and not (first in ("OK", "PERMIT", "DUNNO", "REJECT", "DEFER", "HOLD", "DISCARD") or first[:1].isdigit()):
            result = ", ".join(_postfix_items([result], map_dir, ports))
            if ":" in result:
                class_name = f"{parameter_prefix(policy)}_{re.sub(r'[^a-z0-9]+', '_', name.lower())}_line{number}"
                classes[class_name] = result
                result = class_name
        out.append(f"{pattern}\t{result}")
    return "\n".join(out).rstrip() + "\n"


def _split_rule(line: str) -> tuple[str, str]:
    """``/regex/flags result`` -> (pattern with flags, result); the regex may contain spaces."""
    negate = line.startswith("!")
    body = line[1:] if negate else line
    end = closing_delimiter(body, body[0]) + 1  # the model's parser accepted the rule: it is closed
    while end < len(body) and not body[end].isspace():
        end += 1  # flags
    return line[: end + negate], body[end:].strip()


def _stage_note(key: str, policy: Policy) -> str:
    if key in ("client_restrictions", "helo_restrictions", "sender_restrictions"):
        return " (evaluated at each RCPT TO: smtpd_delay_reject = yes)" if policy.delay_reject else \
            " (smtpd_delay_reject = no: " + {"client_restrictions": "before the banner",
                                             "helo_restrictions": "at EHLO",
                                             "sender_restrictions": "at MAIL FROM"}[key] + ")"
    if key in ("relay_restrictions", "recipient_restrictions"):
        return " (evaluated at each RCPT TO: a sleep here costs its seconds per recipient)"
    return ""


def _policy_description(scenario: Scenario, policy_name: str) -> str:
    raw = scenario.raw.get("policies", {}).get(policy_name, {})
    return str(raw.get("description", "")) if isinstance(raw, dict) else ""


def _wrap(text: str, width: int = 96) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return lines + ([line] if line else [])
