"""Validated scenario objects.  Times are seconds, rates are per second unless named."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from ..distributions import Distribution
from ..policy.policy import Policy


@dataclass(frozen=True)
class Origin:
    """How a client looks to the server: reverse DNS, address range, round trip."""

    name: str
    hostname: str  # pattern with {n}; "unknown" means no PTR record
    rtt: Distribution  # seconds, drawn once per client
    mynetworks: bool
    network: ipaddress.IPv4Network | ipaddress.IPv6Network

    def hostname_for(self, n: int) -> str:
        return self.hostname.replace("{n}", str(n))

    def address_for(self, n: int) -> str:
        return str(self.network[n % self.network.num_addresses])


@dataclass(frozen=True)
class Population:
    """A group of clients of one kind; see scenarios/README.md for every key."""

    name: str
    kind: str  # "user" or "bot"
    count: int
    origins: dict[str, float]  # origin name -> share, summing to 1
    recipients: Distribution  # per message (count >= 1)
    patience: Distribution  # s, longest wait for one reply, drawn per client
    connect_timeout: Distribution | None  # s, wait for the banner; None = patience
    on_timeout: str  # "disconnect" or "talk"
    # legitimate users
    messages_per_day: float = 0.0
    diurnal: tuple[float, ...] | None = None  # 24 hourly weights, mean 1
    retries: int = 0
    retry_interval: float = 300.0
    # bots
    start: float = 0.0
    stop: float | None = None
    accounts: int = 0
    accounts_from: str | None = None
    parallel: int = 1
    pause: Distribution | None = None
    ramp: float = 0.0

    @property
    def is_bot(self) -> bool:
        return self.kind == "bot"


@dataclass(frozen=True)
class MTA:
    """The submission service (master.cf entry) and smtpd's speed."""

    process_limit: int  # smtpd processes (maxproc)
    backlog: int  # connections that may wait in the accept queue
    reply_time: float  # s of server processing per reply


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    horizon: float  # s: arrivals and bot campaigns stop here; sessions then finish
    seed: int
    default_policy: str
    bin: float  # s, width of the time-series bins
    origins: dict[str, Origin]
    populations: tuple[Population, ...]
    mta: MTA
    policies: dict[str, Policy]
    source: Path | None = None
    raw: dict = field(default_factory=dict, repr=False)  # the resolved TOML data

    def population(self, name: str) -> Population:
        for population in self.populations:
            if population.name == name:
                return population
        raise KeyError(name)
