"""A compiled policy: which restriction lists run at which SMTP command."""

from __future__ import annotations

from dataclasses import dataclass, field

from .restrictions import Compiler, PolicyState, Stage
from .services import DistinctSpec, RateLimitSpec

#: SMTP commands at which smtpd evaluates restrictions, in dialogue order.
#: ``connect`` is before the 220 banner (only with ``smtpd_delay_reject = no``).
STAGES = ("connect", "helo", "mail", "rcpt", "data", "end_of_data")

#: Scenario keys of the restriction lists (Postfix's ``smtpd_*_restrictions``).
LIST_KEYS = (
    "client_restrictions",
    "helo_restrictions",
    "sender_restrictions",
    "relay_restrictions",
    "recipient_restrictions",
    "data_restrictions",
    "end_of_data_restrictions",
)


@dataclass
class Policy:
    """Immutable after compilation; :meth:`new_state` gives per-run counters."""

    name: str
    delay_reject: bool
    stages: dict[str, Stage]
    services: dict[str, RateLimitSpec | DistinctSpec] = field(default_factory=dict)
    lists: dict[str, list[str]] = field(default_factory=dict)
    maps: dict[str, str] = field(default_factory=dict)

    def new_state(self) -> PolicyState:
        return PolicyState(services={n: s.build() for n, s in self.services.items()})

    @property
    def is_empty(self) -> bool:
        return all(stage.empty for stage in self.stages.values())


def compile_policy(
    name: str,
    delay_reject: bool,
    lists: dict[str, list[str]],
    maps: dict[str, str],
    services: dict[str, RateLimitSpec | DistinctSpec],
) -> Policy:
    """Compile restriction texts into :class:`Stage` objects.

    With ``smtpd_delay_reject = yes`` (Postfix default) the client, helo and
    sender lists run at every RCPT TO, before the relay and recipient lists;
    with ``no`` they run at connect (before the banner), EHLO and MAIL FROM.
    Raises :class:`PolicyConfigError` naming the offending key.
    """
    compiler = Compiler(maps, services)
    stage_of = {
        "client_restrictions": "rcpt" if delay_reject else "connect",
        "helo_restrictions": "rcpt" if delay_reject else "helo",
        "sender_restrictions": "rcpt" if delay_reject else "mail",
        "relay_restrictions": "rcpt",
        "recipient_restrictions": "rcpt",
        "data_restrictions": "data",
        "end_of_data_restrictions": "end_of_data",
    }
    per_stage: dict[str, list] = {s: [] for s in STAGES}
    for key in LIST_KEYS:  # Postfix's evaluation order within a stage
        if key in lists:
            stage = stage_of[key]
            per_stage[stage].append(compiler.restriction_list(lists[key], key, stage))
    # Maps defined but unused are still checked, so a typo in one is not silent.
    for map_name in maps:
        for rule in compiler.table(map_name, f"maps.{map_name}").rules:
            compiler.action(rule.result, f"maps.{map_name}", rule.line, "rcpt")
    stages = {s: Stage(per_stage[s]) for s in STAGES}
    return Policy(name, delay_reject, stages, dict(services), dict(lists), dict(maps))
