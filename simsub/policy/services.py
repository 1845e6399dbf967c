"""Policy services (``check_policy_service``): a policyd-style rate limiter.

Postfix sends the service one request per restriction evaluation; the service
answers DUNNO or an action.  :class:`RateLimitService` counts messages or
recipients per ``sasl_username`` or ``client_address`` and, beyond the limit,
answers DEFER (4xx), REJECT (5xx), HOLD (accept into the hold queue) or LOCK
(disable the account, then reject).
"""

from __future__ import annotations

from dataclasses import dataclass

from .ratelimit import ALGORITHMS
from .restrictions import PolicyState, Request, Result, Verdict

KEYS = ("sasl_username", "client_address")
COUNTS = ("messages", "recipients")
ACTIONS = ("DEFER", "REJECT", "HOLD", "LOCK")


@dataclass(frozen=True)
class RateLimitSpec:
    """Validated configuration; ``window`` in seconds."""

    name: str
    key: str
    count: str
    limit: float
    window: float
    algorithm: str
    action: str

    def build(self) -> "RateLimitService":
        return RateLimitService(self)


class RateLimitService:
    """Runtime counter state for one run."""

    def __init__(self, spec: RateLimitSpec):
        self.spec = spec
        self.counter = ALGORITHMS[spec.algorithm](spec.limit, spec.window)
        self.refusals = 0

    def apply(self, request: Request, t: float, verdict: Verdict, state: PolicyState, stage: str) -> bool:
        spec = self.spec
        key = request.sasl_username if spec.key == "sasl_username" else request.client.address
        if spec.count == "messages" or stage != "rcpt":
            # One decision per message (policyd counts a message at its first
            # RCPT); later requests for the same message get the same answer.
            memo = (spec.name, request.message_id)
            allowed = request.decisions.get(memo)
            if allowed is None:
                units = 1 if spec.count == "messages" else max(request.recipient_count, 1)
                allowed = self.counter.try_take(key, t, units)
                request.decisions[memo] = allowed
        else:
            allowed = self.counter.try_take(key, t, 1)
        if allowed:
            return False
        self.refusals += 1
        verdict.reason = f"{spec.name}: over {spec.limit:g} {spec.count}/{spec.window:g}s"
        if spec.action == "HOLD":
            verdict.hold = True
            return False
        if spec.action == "LOCK":
            state.locked_accounts.add(request.sasl_username)
            verdict.result = Result.REJECT
            return True
        verdict.result = Result.DEFER if spec.action == "DEFER" else Result.REJECT
        return True
