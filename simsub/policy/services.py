"""Policy services (``check_policy_service``): a rate limiter and a spread detector.

Postfix sends the service one request per restriction evaluation; the service
answers DUNNO or an action.  :class:`RateLimitService` counts messages or
recipients per key (``sasl_username``, ``client_address``, the client's
network, ``sender``, or a combination of them) with one of the counters of
:mod:`.ratelimit`; :class:`DistinctService` counts the distinct client
addresses (or origins) an account logs in from.  Beyond the limit either
answers DEFER (4xx), REJECT (5xx), HOLD (accept into the hold queue) or LOCK
(disable the account, then reject).

Both offer ``state()``/``load_state()`` (a JSON-serialisable snapshot) and
``expire(now)`` (forget keys that no longer affect any decision), so that a
long-running policy daemon can persist its counters and keep memory bounded.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

from .limiters.base import StateError
from .ratelimit import ALGORITHMS
from .restrictions import PolicyState, Request, Result, Verdict

KEYS = ("sasl_username", "client_address", "client_network", "sender")
DISTINCT = ("client_address", "origin")  # what a DistinctService counts per account
#: What one unit is: a message (decided at its first request), a recipient (each RCPT
#: at the RCPT stage, all recipients at once elsewhere), or all recipients of the
#: message at DATA (only in data or end-of-data restrictions).
COUNTS = ("messages", "recipients", "recipients_at_data")
#: How an export's contract sentence says what one unit is ("count one per ...").
COUNT_TEXT = {"messages": "message (at its first RCPT)", "recipients": "recipient",
              "recipients_at_data": "recipient, all of a message's at once at DATA,"}
ACTIONS = ("DEFER", "REJECT", "HOLD", "LOCK")
#: Counting per client network: IPv4 /24, IPv6 /64 (what one customer line or host usually has).
NETWORK_PREFIX = {4: 24, 6: 64}
KEY_SEPARATOR = "|"  # joins the values of a combined key


@dataclass(frozen=True)
class RateLimitSpec:
    """Validated configuration; ``window`` in seconds.

    ``key`` is one request attribute or a tuple of them (counted per
    combination).  ``strict`` applies to the ``exim`` algorithm, ``burst`` to
    ``leaky_bucket``.  ``overrides``: (value, limit) pairs; a key whose value
    (or, for a combined key, one of whose values) is listed gets that limit.
    """

    name: str
    key: str | tuple[str, ...]
    count: str
    limit: float
    window: float
    algorithm: str
    action: str
    strict: bool = False
    burst: float | None = None
    overrides: tuple[tuple[str, float], ...] = ()

    @property
    def fields(self) -> tuple[str, ...]:
        return (self.key,) if isinstance(self.key, str) else tuple(self.key)

    @property
    def key_text(self) -> str:
        """The key for people: ``sasl_username`` or ``sasl_username+client_network``."""
        return "+".join(self.fields)

    @property
    def algorithm_text(self) -> str:
        """The algorithm for people, as in "at most 100 messages in a fixed window of 3600 s"."""
        return {"postfwd": "postfwd window (opened by each key's first request)",
                "quota": "policyd v2 quota (linear decay) period",
                "leaky_bucket": f"Rspamd-style leaky-bucket period (burst {self.burst or self.limit:g})",
                "exim": f"smoothed Exim-style ({'strict' if self.strict else 'leaky'}) period",
        }.get(self.algorithm, f"{self.algorithm} window")

    def build(self) -> "RateLimitService":
        return RateLimitService(self)

    def counter(self):
        """A fresh counter of this spec's algorithm."""
        cls = ALGORITHMS[self.algorithm]
        if self.algorithm == "exim":
            return cls(self.limit, self.window, strict=self.strict)
        if self.algorithm == "leaky_bucket":
            return cls(self.limit, self.window, burst=self.burst)
        return cls(self.limit, self.window)


@lru_cache(maxsize=1 << 16)
def client_network(address: str) -> str:
    """The /24 (IPv4) or /64 (IPv6) network of ``address``; a non-IP address stands for itself."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    return str(ipaddress.ip_network(f"{ip}/{NETWORK_PREFIX[ip.version]}", strict=False))


def _sender(request: Request) -> str:
    # The model has no envelope sender: its clients send as their login, as a
    # submission service with reject_sender_login_mismatch enforces.  A policy
    # daemon's requests carry the real ``sender`` attribute.
    sender = getattr(request, "sender", None)
    return request.sasl_username if sender is None else sender


_FIELD: dict[str, Callable[[Request], str]] = {
    "sasl_username": lambda r: r.sasl_username,
    "client_address": lambda r: r.client.address,
    "client_network": lambda r: client_network(r.client.address),
    "sender": _sender,
}


def key_function(fields: tuple[str, ...]) -> Callable[[Request], tuple[str, ...]]:
    """Request -> the values of ``fields``."""
    getters = [_FIELD[f] for f in fields]
    return lambda request: tuple(g(request) for g in getters)


class RateLimitService:
    """Runtime counter state for one run (or one daemon)."""

    def __init__(self, spec: RateLimitSpec):
        self.spec = spec
        self.counter = spec.counter()
        self.refusals = 0
        self._values = key_function(spec.fields)
        self._overrides = dict(spec.overrides)

    def key_and_limit(self, request: Request) -> tuple[str, float | None]:
        """The counter key of ``request`` and its limit (None: the spec's own)."""
        values = self._values(request)
        key = values[0] if len(values) == 1 else KEY_SEPARATOR.join(values)
        if not self._overrides:
            return key, None
        limit = self._overrides.get(key)
        if limit is None:
            limit = next((self._overrides[v] for v in values if v in self._overrides), None)
        return key, limit

    def apply(self, request: Request, t: float, verdict: Verdict, state: PolicyState, stage: str) -> bool:
        spec = self.spec
        key, limit = self.key_and_limit(request)
        if spec.count == "recipients" and stage == "rcpt":
            allowed = self.counter.try_take(key, t, 1, limit)
        else:
            # One decision per message (policyd counts a message at its first
            # RCPT); later requests for the same message get the same answer.
            memo = (spec.name, request.message_id)
            allowed = request.decisions.get(memo)
            if allowed is None:
                units = 1 if spec.count == "messages" else max(request.recipient_count, 1)
                allowed = self.counter.try_take(key, t, units, limit)
                request.decisions[memo] = allowed
        if allowed:
            return False
        self.refusals += 1
        shown = spec.limit if limit is None else limit
        return _refuse(spec.action, f"{spec.name}: over {shown:g} {spec.count}/{spec.window:g}s",
                       request, verdict, state)

    # -------------------------------------------------------------- daemon support
    def state(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot: the counter's keys and the refusals so far."""
        return {"type": "ratelimit", "counter": self.counter.state(), "refusals": self.refusals}

    def load_state(self, snapshot: dict[str, Any]) -> None:
        """Restore :meth:`state` of a service with the same algorithm and parameters (else StateError)."""
        if snapshot.get("type") != "ratelimit":
            raise StateError(f"snapshot of a {snapshot.get('type')!r} service, not a ratelimit one")
        self.counter.load_state(snapshot["counter"])
        self.refusals = int(snapshot.get("refusals", 0))

    def expire(self, now: float) -> int:
        """Forget keys whose counters are back to a new key's at ``now`` (s); how many were dropped."""
        return self.counter.expire(now)

    def __len__(self) -> int:
        return len(self.counter)


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
        _forget_up_to(seen, t - self.spec.window)
        return len(seen)

    # -------------------------------------------------------------- daemon support
    def state(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot: per account, [value, last seen] oldest first."""
        spec = self.spec
        return {"type": "distinct", "params": {"distinct": spec.distinct, "limit": spec.limit, "window": spec.window},
                "seen": {account: [[v, t] for v, t in seen.items()] for account, seen in self.seen.items()},
                "refusals": self.refusals}

    def load_state(self, snapshot: dict[str, Any]) -> None:
        """Restore :meth:`state` of a detector with the same parameters (else StateError)."""
        spec = self.spec
        params = {"distinct": spec.distinct, "limit": spec.limit, "window": spec.window}
        if snapshot.get("type") != "distinct" or snapshot.get("params") != params:
            raise StateError(f"snapshot {snapshot.get('type')!r} {snapshot.get('params')} is not of this "
                             f"distinct service {params}")
        self.seen = {str(account): OrderedDict((str(v), float(t)) for v, t in pairs)
                     for account, pairs in snapshot["seen"].items()}
        self.refusals = int(snapshot.get("refusals", 0))

    def expire(self, now: float) -> int:
        """Forget values last seen a window or more before ``now`` (s), and accounts left with none.

        Returns how many accounts were dropped."""
        dropped = []
        for account, seen in self.seen.items():
            _forget_up_to(seen, now - self.spec.window)
            if not seen:
                dropped.append(account)
        for account in dropped:
            del self.seen[account]
        return len(dropped)

    def __len__(self) -> int:
        return len(self.seen)


def _forget_up_to(seen: OrderedDict[str, float], horizon: float) -> None:
    """Drop values last seen at or before ``horizon`` (s); ``seen`` is oldest first."""
    while seen:
        oldest, last = next(iter(seen.items()))
        if last > horizon:
            break
        del seen[oldest]
