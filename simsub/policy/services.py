"""Policy services (``check_policy_service``): a rate limiter and a spread detector.

Postfix sends the service one request per restriction evaluation; the service
answers DUNNO or an action.  :class:`RateLimitService` counts messages or
recipients per ``sasl_username`` or ``client_address``;
:class:`DistinctService` counts the distinct client addresses (or origins) an
account logs in from.  Beyond the limit either answers DEFER (4xx), REJECT
(5xx), HOLD (accept into the hold queue) or LOCK (disable the account, then
reject).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from .ratelimit import ALGORITHMS
from .restrictions import PolicyState, Request, Result, Verdict

KEYS = ("sasl_username", "client_address")
DISTINCT = ("client_address", "origin")  # what a DistinctService counts per account
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
        return _refuse(spec.action, f"{spec.name}: over {spec.limit:g} {spec.count}/{spec.window:g}s",
                       request, verdict, state)


def _refuse(action: str, reason: str, request: Request, verdict: Verdict, state: PolicyState) -> bool:
    """Apply a service's action; True when it ends the restriction list."""
    verdict.reason = reason
    if action == "HOLD":
        verdict.hold = True
        return False
    if action == "LOCK":
        state.locked_accounts.add(request.sasl_username)
        verdict.result = Result.REJECT
        return True
    verdict.result = Result.DEFER if action == "DEFER" else Result.REJECT
    return True


@dataclass(frozen=True)
class DistinctSpec:
    """Validated configuration of a spread detector; ``window`` in seconds.

    The answer to bots that keep every stolen account under a per-user rate
    limit by spreading over many accounts and addresses: legitimate users log
    in from a handful of addresses a day, a shared stolen account from hundreds
    (operators report abuse as "over 1,000 mails from more than 30 addresses in
    an hour").
    """

    name: str
    distinct: str  # "client_address" or "origin"
    limit: int  # most distinct values allowed per account in the window
    window: float
    action: str

    def build(self) -> "DistinctService":
        return DistinctService(self)


class DistinctService:
    """Distinct client addresses (or origins) per ``sasl_username`` in the last ``window`` s.

    One decision per message, at its first evaluation.  The address of a
    refused message still counts: it was seen logging in.  Requests without a
    login get DUNNO.
    """

    def __init__(self, spec: DistinctSpec):
        self.spec = spec
        # account -> {address: last seen}, oldest first, so expiry pops from the front
        self.seen: dict[str, OrderedDict[str, float]] = {}
        self.refusals = 0

    def apply(self, request: Request, t: float, verdict: Verdict, state: PolicyState, stage: str) -> bool:
        spec = self.spec
        account = request.sasl_username
        if not account:
            return False
        memo = (spec.name, request.message_id)
        allowed = request.decisions.get(memo)
        if allowed is None:
            allowed = self._count(account, request, t) <= spec.limit
            request.decisions[memo] = allowed
        if allowed:
            return False
        self.refusals += 1
        return _refuse(spec.action, f"{spec.name}: over {spec.limit} {spec.distinct}s/{spec.window:g}s",
                       request, verdict, state)

    def _count(self, account: str, request: Request, t: float) -> int:
        seen = self.seen.get(account)
        if seen is None:
            seen = self.seen[account] = OrderedDict()
        client = request.client
        value = client.address if self.spec.distinct == "client_address" else str(getattr(client, "origin", ""))
        if value in seen:
            t = max(t, seen[value])
            seen.move_to_end(value)
        seen[value] = t
        horizon = t - self.spec.window
        while seen:
            oldest, last = next(iter(seen.items()))
            if last > horizon:
                break
            del seen[oldest]
        return len(seen)
