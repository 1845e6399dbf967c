"""A Postfix policy request seen as the model's :class:`~simsub.policy.restrictions.Request`.

The services read ``client.address``, ``client.hostname``, ``client.origin``,
``sasl_username``, ``recipient_count``, ``message_id`` and ``decisions`` (their
one-decision-per-message memo, keyed by ``(service name, message_id)``).  Postfix
gives the first ones directly; a message is identified by its ``instance``
attribute, which SMTPD_POLICY_README promises stays the same for every request
about one message delivery (RCPT after RCPT, then DATA and END-OF-MESSAGE).
"""

from __future__ import annotations

import functools
import ipaddress
from collections import OrderedDict
from dataclasses import dataclass

#: protocol_state -> the model's stage name (simsub.policy.policy.STAGES).
STAGE_OF = {"CONNECT": "connect", "EHLO": "helo", "HELO": "helo", "MAIL": "mail", "RCPT": "rcpt",
            "DATA": "data", "END-OF-MESSAGE": "end_of_data", "BDAT": "data"}


@dataclass(slots=True)
class PolicyClient:
    """The model's ``ClientView`` for a real client."""

    hostname: str
    address: str
    mynetworks: bool
    origin: str  # the scenario origin whose network holds the address, else the /24 or /64


class Origins:
    """Maps a client address to the scenario's origin name, as the model's clients carry one.

    ``networks``: (origin name, network, mynetworks) in the scenario's order.  An
    address outside every origin gets its /24 (IPv4) or /64 (IPv6) as origin, the
    unit operators count "distinct networks" in."""

    def __init__(self, networks: list[tuple[str, object, bool]]):
        self.networks = networks
        # Parsing an address costs more than deciding; the same clients come back all day.
        self.classify = functools.lru_cache(maxsize=1 << 16)(self._classify)

    @classmethod
    def of_scenario(cls, scenario) -> "Origins":
        return cls([(name, o.network, o.mynetworks) for name, o in scenario.origins.items()])

    def _classify(self, address: str) -> tuple[str, bool]:
        """(origin name, mynetworks) of ``address``."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return address, False
        for name, network, mynetworks in self.networks:
            if ip.version == network.version and ip in network:
                return name, mynetworks
        prefix = 24 if ip.version == 4 else 64
        return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False)), False


class Decisions(OrderedDict):
    """The services' per-message memo (``(service name, message id) -> allowed``), shared by
    all messages and holding the most recent ``capacity`` entries."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        if len(self) > self.capacity:
            self.popitem(last=False)


class MessageMemo:
    """``instance`` -> message id for the most recent ``capacity`` messages, and their decisions.

    Without an ``instance`` every request is a message of its own.  A message is
    forgotten after ``capacity`` newer ones: Postfix finishes a message within
    seconds, so 100,000 is hours of mail on a busy server.  One flat table of
    plain values (no dict per message) keeps Python's garbage collector from
    pausing the daemon to walk hundreds of thousands of small containers."""

    def __init__(self, capacity: int = 100_000):
        self.capacity = capacity
        self._messages: OrderedDict[str, int] = OrderedDict()
        self.decisions = Decisions(4 * capacity)  # a few services per message
        self._next_id = 0

    def get(self, instance: str) -> tuple[int, Decisions]:
        if instance:
            found = self._messages.get(instance)
            if found is not None:
                self._messages.move_to_end(instance)
                return found, self.decisions
        self._next_id += 1
        if instance:
            self._messages[instance] = self._next_id
            if len(self._messages) > self.capacity:
                self._messages.popitem(last=False)
        return self._next_id, self.decisions

    def __len__(self) -> int:
        return len(self._messages)


class PolicyRequest:
    """What the services may ask about one Postfix request (the model's ``Request``)."""

    __slots__ = ("client", "sasl_username", "sender", "message_id", "recipient_count", "decisions", "stage",
                 "attributes")

    def __init__(self, attributes: dict[str, str], origins: Origins, memo: MessageMemo):
        address = attributes.get("client_address", "")
        origin, mynetworks = origins.classify(address)
        self.client = PolicyClient(attributes.get("client_name", "unknown") or "unknown", address, mynetworks,
                                   origin)
        self.sasl_username = attributes.get("sasl_username", "")
        self.sender = attributes.get("sender", "")
        self.message_id, self.decisions = memo.get(attributes.get("instance", ""))
        try:
            self.recipient_count = max(int(attributes.get("recipient_count", "0") or 0), 0)
        except ValueError:
            self.recipient_count = 0
        state = attributes.get("protocol_state", "").upper()
        self.stage = STAGE_OF.get(state, state.lower())
        self.attributes = attributes

    def pipelining_seen(self, t: float) -> bool:
        # Only reject_unauth_pipelining asks, and Postfix evaluates that itself.
        return False
