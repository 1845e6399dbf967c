"""One Postfix request -> the scenario's policy services -> one access(5) action.

The services are the model's own objects (``policy.new_state().services``);
each is called as the model calls it, ``service.apply(request, t, verdict,
state, stage)`` with ``t`` the wall clock in seconds, and its
:class:`~simsub.policy.restrictions.Verdict` becomes the answer:

=====================  ==============================
verdict                action sent to Postfix
=====================  ==============================
nothing                ``DUNNO``
``Result.DEFER``       ``DEFER 4.7.1 <reason>`` (450)
``Result.REJECT``      ``REJECT 5.7.1 <reason>`` (554)
``hold``               ``HOLD <reason>``
=====================  ==============================

Which services a request goes to: the one named by its ``policy_context``
attribute (``check_policy_service { inet:..., policy_context=NAME }``, what
``export-postfix`` writes when a policy has several services); without one, all
of them in the order the policy's restriction lists call them, the first refusal
answering (a single-service policy needs no context).

A service in log-only mode is asked and counts as usual but its refusal is only
reported (``Decision.log_only``); the request goes on to the next service as
Postfix would go on with its list.

``LOCK`` (the model's account lock): the model refuses a locked account at AUTH,
which a policy server cannot see; the daemon answers every later request of
that login with REJECT instead.  Each service keeps its own set of locked logins
(so a log-only service's locks only report).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..policy.policy import LIST_KEYS, Policy
from ..policy.restrictions import PolicyState, Result, Verdict
from .adapter import MessageMemo, Origins, PolicyRequest

#: The services' log-only switch meaning "every service".
ALL = "*"


@dataclass
class Decision:
    """What to answer and why; ``service`` is the one that decided (empty for DUNNO)."""

    action: str = "DUNNO"
    service: str = ""
    log_only: list[tuple[str, str]] = field(default_factory=list)  # (service, action it would have sent)
    problem: str = ""  # why the request could not be decided (answered DUNNO)


def action_of(verdict: Verdict) -> str:
    """The access(5) action of a service's verdict."""
    reason = verdict.reason or "policy"
    if verdict.result == Result.REJECT:
        return f"REJECT 5.7.1 {reason}"
    if verdict.result == Result.DEFER:
        return f"DEFER 4.7.1 {reason}"
    if verdict.discard:
        return f"DISCARD {reason}"
    if verdict.hold:
        return f"HOLD {reason}"
    if verdict.result == Result.PERMIT:
        return "OK"
    return "DUNNO"


def service_order(policy: Policy) -> list[str]:
    """The policy's services in the order its restriction lists (then its maps) call them."""
    texts = [entry for key in LIST_KEYS for entry in policy.lists.get(key, [])] + list(policy.maps.values())
    order: list[str] = []
    for text in texts:
        for name in re.findall(r"check_policy_service[\s,]+([^\s,]+)", text, flags=re.IGNORECASE):
            if name in policy.services and name not in order:
                order.append(name)
    return order + sorted(set(policy.services) - set(order))


class Decider:
    """The services of one policy and their counters; :meth:`decide` answers one request.

    ``log_only``: names of services in log-only mode, or a set holding :data:`ALL`.
    ``services``/``locks``: counters to start from (a restored state or a reload);
    missing ones are built fresh from the policy."""

    def __init__(self, policy: Policy, origins: Origins, log_only: frozenset[str] = frozenset(),
                 services: dict | None = None, locks: dict[str, set[str]] | None = None,
                 memo: MessageMemo | None = None):
        self.policy = policy
        self.origins = origins
        fresh = policy.new_state().services
        self.services = {name: (services or {}).get(name, fresh[name]) for name in policy.services}
        self.locks = {name: set((locks or {}).get(name, ())) for name in policy.services}
        self.log_only = set(policy.services) if ALL in log_only else set(log_only) & set(policy.services)
        self.order = service_order(policy)
        self.memo = memo or MessageMemo()

    def decide(self, attributes: dict[str, str], t: float) -> Decision:
        """Answer one request at wall-clock time ``t`` (s since the epoch)."""
        request = PolicyRequest(attributes, self.origins, self.memo)
        context = attributes.get("policy_context", "")
        if context and context not in self.services:
            known = ", ".join(self.order) or "none"
            return Decision(problem=f"policy_context={context!r} names no service of this policy (services: {known})")
        names = [context] if context else self.order
        decision = Decision()
        user = request.sasl_username
        if user:
            for name in self.order:
                if user in self.locks[name]:
                    action = f"REJECT 5.7.1 {name}: login {user} is locked"
                    if name not in self.log_only:
                        decision.action, decision.service = action, name
                        return decision
                    decision.log_only.append((name, action))
        hold = None
        for name in names:
            verdict = Verdict()
            self.services[name].apply(request, t, verdict, PolicyState(self.services, self.locks[name]),
                                      request.stage)
            action = action_of(verdict)
            if action == "DUNNO":
                continue
            if name in self.log_only:
                decision.log_only.append((name, action))
            elif verdict.result in (Result.REJECT, Result.DEFER):
                decision.action, decision.service = action, name
                return decision
            elif hold is None:
                hold = (name, action)  # HOLD goes on with the list, as in smtpd; a later refusal wins
        if hold is not None:
            decision.service, decision.action = hold
        return decision

    def reloaded(self, policy: Policy, origins: Origins, log_only: frozenset[str]) -> tuple["Decider", list[str]]:
        """A decider for a new policy keeping the counters (and locks) of every service whose
        spec is unchanged; also the names of the services that start from zero."""
        kept = {name: service for name, service in self.services.items()
                if name in policy.services and getattr(service, "spec", None) == policy.services[name]}
        locks = {name: self.locks[name] for name in kept}
        fresh = sorted(set(policy.services) - set(kept))
        return Decider(policy, origins, log_only, kept, locks, self.memo), fresh
