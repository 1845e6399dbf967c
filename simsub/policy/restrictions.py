"""Restriction lists with Postfix semantics, compiled once and evaluated per request.

Vocabulary (postconf(5), access(5)):

* ``permit``, ``permit_mynetworks``, ``permit_sasl_authenticated`` — end the
  current list with PERMIT when they apply; later lists still run.
* ``reject``, ``defer``, ``reject_unauth_pipelining`` — end the whole stage.
* ``sleep N`` — block the smtpd process N seconds, then go on with the next item.
* ``check_client_access pcre:NAME`` — look up the client hostname, then the
  address; the first matching line of the first query that matches decides
  (a hostname match with DUNNO stops the address lookup).
* ``check_sasl_access pcre:NAME`` — look up the SASL login name.
* ``check_policy_service NAME`` — ask the policy service ``NAME``.

A map or service result is an access(5) action: ``OK``/``PERMIT``, ``DUNNO``,
``REJECT [text]``, ``DEFER [text]``, ``4NN text``, ``5NN text``, ``HOLD``,
``DISCARD`` or a restriction list such as ``sleep 5`` or
``sleep 1, reject_unauth_pipelining``.  HOLD and DISCARD mark the message and
continue like DUNNO, as smtpd does.

Evaluation is pure arithmetic on a start time: the delays of ``sleep`` items add
up, and each later item is evaluated at ``start + delay so far``.
"""

from __future__ import annotations

import difflib
import enum
import re
from dataclasses import dataclass, field
from typing import Iterable, Protocol

from .pcre_map import MapSyntaxError, PcreMap

#: Count modes of a rate-limit service that only make sense at some stages: the
#: recipient count of a message is only known from DATA on.
COUNT_STAGES = {"recipients_at_data": ("data", "end_of_data")}


class Result(enum.IntEnum):
    DUNNO = 0
    PERMIT = 1
    REJECT = 2
    DEFER = 3


class PolicyConfigError(ValueError):
    """A policy that cannot be compiled; ``key`` is relative to the policy table."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(message)


class ClientView(Protocol):
    """What a restriction may know about the client (smtpd's ``state``)."""

    hostname: str
    address: str
    mynetworks: bool


class Request(Protocol):
    """One evaluation request: a client, its login and its current message."""

    @property  # read-only here, so that a request's own client class may stand in for ClientView
    def client(self) -> ClientView: ...

    sasl_username: str
    message_id: int
    recipient_count: int
    decisions: dict
    # Optional: ``sender`` (the envelope sender).  The model's requests have none;
    # a service keyed on it then uses ``sasl_username`` (see services._sender).

    def pipelining_seen(self, t: float) -> bool: ...


@dataclass(slots=True)
class Verdict:
    """The outcome of a stage: total sleep (s), decision, message flags, and why."""

    delay: float = 0.0
    result: Result = Result.DUNNO
    hold: bool = False
    discard: bool = False
    reason: str = ""


@dataclass
class PolicyState:
    """Per-run mutable state of one policy: service counters and locked accounts."""

    services: dict = field(default_factory=dict)
    locked_accounts: set[str] = field(default_factory=set)


# --------------------------------------------------------------------------- items
class Item:
    """One restriction; ``apply`` updates ``verdict`` and returns True to stop the list."""

    stateful = False  # needs evaluation at the right simulated time (policy services)
    time_dependent = False  # result depends on when it is evaluated
    per_recipient = False  # may answer differently for each RCPT of one message
    uses_login = False  # depends on the SASL login, which a bot changes every session

    def apply(self, request: Request, t: float, verdict: Verdict, state: PolicyState) -> bool:
        raise NotImplementedError


class Sleep(Item):
    def __init__(self, seconds: float):
        self.seconds = seconds

    def apply(self, request, t, verdict, state):
        verdict.delay += self.seconds
        return False


class Decide(Item):
    """permit / reject / defer (unconditional)."""

    def __init__(self, result: Result, reason: str):
        self.result = result
        self.reason = reason

    def apply(self, request, t, verdict, state):
        verdict.result = self.result
        verdict.reason = self.reason
        return True


class Hold(Item):
    """HOLD from an access map: mark the message for the hold queue, continue like DUNNO."""

    def apply(self, request, t, verdict, state):
        verdict.hold = True
        return False


class Discard(Item):
    """DISCARD from an access map: accept and throw the message away.

    As in smtpd_check.c, it answers OK and no restriction after it (in this
    list, later lists or later stages) is evaluated."""

    def apply(self, request, t, verdict, state):
        verdict.discard = True
        verdict.result = Result.PERMIT
        verdict.reason = "DISCARD"
        return True


class PermitMynetworks(Item):
    def apply(self, request, t, verdict, state):
        if request.client.mynetworks:
            verdict.result = Result.PERMIT
            verdict.reason = "permit_mynetworks"
            return True
        return False


class PermitSaslAuthenticated(Item):
    def apply(self, request, t, verdict, state):
        if request.sasl_username:
            verdict.result = Result.PERMIT
            verdict.reason = "permit_sasl_authenticated"
            return True
        return False


class RejectUnauthPipelining(Item):
    time_dependent = True

    def apply(self, request, t, verdict, state):
        if request.pipelining_seen(t + verdict.delay):
            verdict.result = Result.REJECT
            verdict.reason = "reject_unauth_pipelining"
            return True
        return False


class Sequence(Item):
    """A nested restriction list (an access-map result such as ``sleep 5, reject``)."""

    def __init__(self, items: list[Item]):
        self.items = items
        self.stateful = any(i.stateful for i in items)
        self.time_dependent = any(i.time_dependent for i in items)
        self.per_recipient = any(i.per_recipient for i in items)
        self.uses_login = any(i.uses_login for i in items)

    def apply(self, request, t, verdict, state):
        for item in self.items:
            if item.apply(request, t, verdict, state):
                return True
        return False


class MapLookup(Item):
    """check_client_access / check_sasl_access against a compiled pcre map."""

    def __init__(self, table: PcreMap, actions: dict[int, Item], what: str):
        self.table = table
        self.actions = actions  # rule line -> compiled action
        self.what = what
        self.stateful = any(a.stateful for a in actions.values())
        self.time_dependent = any(a.time_dependent for a in actions.values())
        self.per_recipient = any(a.per_recipient for a in actions.values())
        self.uses_login = what == "sasl" or any(a.uses_login for a in actions.values())

    def queries(self, request: Request) -> Iterable[str]:
        if self.what == "client":
            return (request.client.hostname, request.client.address)
        # Postfix looks up the login only once the client has authenticated.
        return (request.sasl_username,) if request.sasl_username else ()

    def apply(self, request, t, verdict, state):
        for query in self.queries(request):
            for rule in self.table.rules:
                if rule.matches(query):
                    return self.actions[rule.line].apply(request, t, verdict, state)
        return False


class PolicyServiceCall(Item):
    stateful = True
    uses_login = True

    def __init__(self, name: str, stage: str, per_recipient: bool):
        self.name = name
        self.stage = stage
        self.per_recipient = per_recipient  # counts recipients one RCPT at a time

    def apply(self, request, t, verdict, state):
        service = state.services[self.name]
        return service.apply(request, t + verdict.delay, verdict, state, self.stage)


# --------------------------------------------------------------------------- parsing
RESTRICTION_NAMES = (
    "permit",
    "reject",
    "defer",
    "permit_mynetworks",
    "permit_sasl_authenticated",
    "reject_unauth_pipelining",
    "sleep",
    "check_client_access",
    "check_sasl_access",
    "check_policy_service",
)
_TAKES_ARGUMENT = {"sleep", "check_client_access", "check_sasl_access", "check_policy_service"}
_ACTION_WORDS = ("OK", "PERMIT", "DUNNO", "REJECT", "DEFER", "HOLD", "DISCARD")


def tokenize(text: str) -> list[str]:
    """Split a main.cf-style restriction text on commas and whitespace."""
    return [t for t in re.split(r"[\s,]+", text.strip()) if t]


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


class Compiler:
    """Turns restriction texts, maps and services of one policy into items."""

    def __init__(self, maps: dict[str, str], services: dict):
        self.map_texts = maps
        self.services = services
        self.service_names = set(services)
        self._maps: dict[str, PcreMap] = {}
        self._compiling: list[str] = []  # maps whose results are being compiled, to catch loops

    def table(self, name: str, key: str) -> PcreMap:
        if name not in self._maps:
            if name not in self.map_texts:
                hint = _suggest(name, self.map_texts)
                defined = ", ".join(sorted(self.map_texts)) or "none"
                raise PolicyConfigError(key, f"map {name!r} is not defined in this policy's maps (defined: {defined}){hint}")
            try:
                self._maps[name] = PcreMap.parse(name, self.map_texts[name])
            except MapSyntaxError as exc:
                raise PolicyConfigError(f"maps.{name}", f"line {exc.line}: {exc}") from None
        return self._maps[name]

    def restriction_list(self, entries: list[str], key: str, stage: str) -> list[Item]:
        tokens: list[str] = []
        for entry in entries:
            tokens.extend(tokenize(entry))
        return self._items(tokens, key, stage)

    def _items(self, tokens: list[str], key: str, stage: str) -> list[Item]:
        items: list[Item] = []
        i = 0
        while i < len(tokens):
            word = tokens[i]
            name = word.lower()
            if name not in RESTRICTION_NAMES:
                raise PolicyConfigError(key, f"unknown restriction {word!r}{_suggest(name, RESTRICTION_NAMES)}")
            argument = None
            if name in _TAKES_ARGUMENT:
                if i + 1 >= len(tokens):
                    raise PolicyConfigError(key, f"{word!r} needs an argument")
                argument = tokens[i + 1]
                i += 1
            items.append(self._item(name, argument, key, stage))
            i += 1
        return items

    def _item(self, name: str, argument: str | None, key: str, stage: str) -> Item:
        if name == "permit":
            return Decide(Result.PERMIT, "permit")
        if name == "reject":
            return Decide(Result.REJECT, "reject")
        if name == "defer":
            return Decide(Result.DEFER, "defer")
        if name == "permit_mynetworks":
            return PermitMynetworks()
        if name == "permit_sasl_authenticated":
            return PermitSaslAuthenticated()
        if name == "reject_unauth_pipelining":
            return RejectUnauthPipelining()
        if name == "sleep":
            # Postfix takes whole seconds only (anything else is a server
            # configuration error at run time).
            # ASCII digits only: str.isdigit() also accepts '²' and '٣', which int() refuses or reads.
            if not re.fullmatch(r"[0-9]+", argument) or int(argument) >= 86400:
                raise PolicyConfigError(key, f"'sleep' needs whole seconds from 0 to 86399, as in Postfix, got {argument!r}")
            return Sleep(float(int(argument)))
        if name in ("check_client_access", "check_sasl_access"):
            kind, _, map_name = argument.partition(":")
            if kind != "pcre" or not map_name:
                raise PolicyConfigError(key, f"{name} takes 'pcre:NAME' (a map of this policy), got {argument!r}")
            table = self.table(map_name, key)
            if map_name in self._compiling:
                chain = " -> ".join(self._compiling + [map_name])
                raise PolicyConfigError(f"maps.{map_name}", f"maps refer to each other in a loop ({chain})")
            self._compiling.append(map_name)
            try:
                actions = {rule.line: self.action(rule.result, f"maps.{map_name}", rule.line, stage) for rule in table.rules}
            finally:
                self._compiling.pop()
            return MapLookup(table, actions, "client" if name == "check_client_access" else "sasl")
        assert name == "check_policy_service"
        if argument not in self.service_names:
            hint = _suggest(argument, self.service_names)
            defined = ", ".join(sorted(self.service_names)) or "none"
            raise PolicyConfigError(key, f"policy service {argument!r} is not defined in this policy's services (defined: {defined}){hint}")
        count = getattr(self.services[argument], "count", "messages")
        stages = COUNT_STAGES.get(count)
        if stages and stage not in stages:
            raise PolicyConfigError(key, f"policy service {argument!r} counts {count}, which Postfix only knows at "
                                         f"DATA: use it in data_restrictions or end_of_data_restrictions, not at the "
                                         f"{stage} stage")
        per_recipient = stage == "rcpt" and count == "recipients"
        return PolicyServiceCall(argument, stage, per_recipient)

    def action(self, text: str, key: str, line: int | None, stage: str) -> Item:
        """Compile an access(5) result (map line or service answer)."""
        where = f"{key}" + (f" line {line}" if line else "")
        words = text.split()
        head = words[0].upper()
        if head in ("OK", "PERMIT") or head.isdigit() and not re.fullmatch(r"[45]\d\d", head):
            return Decide(Result.PERMIT, "OK")
        if head == "DUNNO":
            return Sequence([])
        if head == "REJECT" or re.fullmatch(r"5\d\d", head):
            return Decide(Result.REJECT, text)
        if head == "DEFER" or re.fullmatch(r"4\d\d", head):
            return Decide(Result.DEFER, text)
        if head == "HOLD":
            return Hold()
        if head == "DISCARD":
            return Discard()
        try:
            return Sequence(self._items(tokenize(text), where, stage))
        except PolicyConfigError as exc:
            raise PolicyConfigError(
                where, f"result {text!r} is neither an access(5) action ({', '.join(_ACTION_WORDS)}, 4NN/5NN text) nor a restriction list: {exc}"
            ) from None


# --------------------------------------------------------------------------- stages
class Stage:
    """All restriction lists Postfix evaluates at one SMTP command, in order."""

    def __init__(self, lists: list[list[Item]]):
        self.lists = [lst for lst in lists if lst]
        all_items = [i for lst in self.lists for i in lst]
        self.empty = not all_items
        self.stateful = any(i.stateful for i in all_items)
        self.time_dependent = any(i.time_dependent for i in all_items)
        # Whether every RCPT of one message gets the verdict of the first one:
        # true unless an item depends on the time or counts single recipients
        # (a message-counting service answers once per message).
        self.same_for_each_recipient = not (self.time_dependent or any(i.per_recipient for i in all_items))
        # Stateless, time-independent stages that do not look at the login give
        # the same verdict for the same client every time, so the model may
        # evaluate them once per client.
        self.cacheable = not (self.stateful or self.time_dependent or any(i.uses_login for i in all_items))

    def evaluate(self, request: Request, t: float, state: PolicyState) -> Verdict:
        """Evaluate at server time ``t`` (s); ``verdict.delay`` is the total sleep."""
        verdict = Verdict()
        for items in self.lists:
            verdict.result = Result.DUNNO
            for item in items:
                if item.apply(request, t, verdict, state):
                    break
            if verdict.result in (Result.REJECT, Result.DEFER) or verdict.discard:
                break
        if verdict.result == Result.PERMIT:
            verdict.result = Result.DUNNO  # a PERMIT only ends its own list
        return verdict
