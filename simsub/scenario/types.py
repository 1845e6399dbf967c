"""Validated scenario objects.  Times are seconds, rates are per second unless named."""

from __future__ import annotations

import difflib
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from ..distributions import Constant, Distribution
from ..errors import ScenarioError
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
    # The defaults below are the scenario file's (the loader reads them from here:
    # population_default), so they are stated once.
    # legitimate users
    messages_per_day: float = 0.0
    diurnal: tuple[float, ...] | None = None  # 24 hourly weights, mean 1
    retries: int = 3
    retry_interval: float = 300.0  # s
    # bots
    start: float = 0.0  # s
    stop: float | None = None  # s
    accounts: int = 0
    accounts_from: str | None = None
    parallel: int = 1
    pause: Distribution = Constant(1.0)  # s
    ramp: float = 60.0  # s
    forged_sender: float = 1.0  # share of spam with a forged remote envelope sender

    @property
    def is_bot(self) -> bool:
        return self.kind == "bot"


def population_default(name: str):
    """The scenario file's default for population key ``name`` (a scalar, as in a file)."""
    value = Population.__dataclass_fields__[name].default
    return value.value if isinstance(value, Constant) else value


@dataclass(frozen=True)
class AnvilLimits:
    """smtpd's per-client limits, counted by anvil(8) per client address (Postfix names
    without the ``smtpd_client_`` prefix; 0 = no limit; Postfix's defaults)."""

    connection_count_limit: int = 50  # concurrent connections (smtpd_client_connection_count_limit)
    connection_rate_limit: int = 0  # connections per time unit
    message_rate_limit: int = 0  # MAIL FROM commands per time unit
    recipient_rate_limit: int = 0  # RCPT TO commands per time unit
    auth_rate_limit: int = 0  # AUTH commands per time unit
    rate_time_unit: float = 60.0  # s, anvil_rate_time_unit (whole seconds)
    # smtpd_client_event_limit_exceptions: None = $mynetworks (Postfix's default),
    # else these networks (empty: nobody is exempt).
    exceptions: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] | None = None

    @property
    def rates(self) -> bool:
        return bool(self.connection_rate_limit or self.message_rate_limit or self.recipient_rate_limit
                    or self.auth_rate_limit)


@dataclass(frozen=True)
class MTA:
    """The submission service (master.cf entry) and smtpd's speed."""

    process_limit: int  # smtpd processes (maxproc)
    backlog: int  # connections that may wait in the accept queue
    reply_time: float  # s of server processing per reply
    # smtpd's error throttling (Postfix 2.1+): once a session has made more than
    # soft_error_limit errors (4xx/5xx replies), every reply waits error_sleep_time s
    # first; at hard_error_limit errors smtpd answers 421 and hangs up.
    soft_error_limit: int = 10  # smtpd_soft_error_limit
    hard_error_limit: int = 20  # smtpd_hard_error_limit
    error_sleep_time: float = 1.0  # s, smtpd_error_sleep_time
    anvil: AnvilLimits = AnvilLimits()  # [mta.anvil]


@dataclass(frozen=True)
class QueueConfig:
    """The queue manager and delivery agents (Postfix parameter names, Postfix defaults)."""

    active_limit: int = 20000  # qmgr_message_active_limit (messages)
    delivery_agents: int = 100  # smtp delivery processes (default_process_limit)
    destination_concurrency: int = 20  # default_destination_concurrency_limit
    recipients_per_request: int = 50  # default_destination_recipient_limit
    minimal_backoff: float = 300.0  # s, minimal_backoff_time
    maximal_backoff: float = 4000.0  # s, maximal_backoff_time
    queue_run_delay: float = 300.0  # s, deferred queue scan interval
    maximal_queue_lifetime: float = 5 * 86400.0  # s
    bounce_queue_lifetime: float = 5 * 86400.0  # s
    double_bounce: str = "drop"  # "drop" (Postfix default) or "postmaster"
    initial_concurrency: int = 5  # initial_destination_concurrency: a destination's first window
    failed_cohort_limit: int = 1  # default_destination_concurrency_failed_cohort_limit (0: never dead)
    skip_5xx_greeting: bool = True  # smtp_skip_5xx_greeting: a 5xx banner is treated as 4xx


@dataclass(frozen=True)
class Outcomes:
    """Per-recipient probabilities at a destination; accept is the remainder."""

    defer: float
    reject: float

    @property
    def accept(self) -> float:
        return 1.0 - self.defer - self.reject


@dataclass(frozen=True)
class Destination:
    """A remote domain (or the ISP's own mailboxes, ``local``)."""

    name: str
    legit_share: float  # share of legitimate recipients
    spam_share: float  # share of spam recipients (and of forged senders)
    delivery_time: Distribution  # s per delivery request
    legit: Outcomes
    spam: Outcomes  # also used for bounces to forged senders
    rate_limit: tuple[int, float] | None  # (requests, window s): defer beyond
    lists: tuple[str, ...]  # reputation lists it consults


@dataclass(frozen=True)
class ReputationList:
    """A DNSBL or a provider's own list of the server's address."""

    name: str
    threshold: int  # spam recipients sent within ``window`` that get the server listed
    window: float  # s
    detection_delay: float  # s from crossing the threshold to the listing
    action: str  # "reject" or "defer": what consulting destinations do while listed
    expiry: float  # s after the last spam seen, the list drops the entry by itself
    delist_delay: float  # s from the operator's request to the delisting
    stage: str = "rcpt"  # where consulting destinations refuse: "greeting", "rcpt" or "data"


@dataclass(frozen=True)
class OperatorConfig:
    """The mail administrator: a detection rule, a reaction delay, actions."""

    rule: str  # "queue_size", "bounces" or "account_volume"
    threshold: float  # messages queued, bounces in ``window``, or recipients per account in ``window``
    window: float  # s
    check_interval: float  # s
    reaction_delay: float  # s from detection to action
    reset_accounts: int  # passwords reset per action (the accounts with most recipients in ``window``)
    suspicious_volume: float  # only accounts with more recipients than this in ``window`` are suspects
    mistake: float  # chance that each reset hits a random legitimate account instead
    purge: bool  # delete the queued mail of the reset accounts
    request_delisting: bool


#: The parsed-maillog tables a replayed trace reads (``simsub maillog parse`` writes them).
TRACE_FILES = ("sessions.csv.gz", "messages.csv.gz", "rejects.csv.gz")


@dataclass(frozen=True)
class TraceSpec:
    """A replayed maillog (``[trace]``): the logged submissions replace two populations.

    See docs/replay.md and :mod:`simsub.workload.trace`."""

    tables: Path  # folder of parsed maillog tables
    users: str | None  # the user population whose clients and mail the log's legitimate mail replaces
    bots: str | None  # the bot population whose sessions the flagged accounts' mail replaces
    flagged: frozenset[str]  # logins whose logged mail is the bots'
    digest: str  # sha256 of the table files (part of every run key)


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
    queue: QueueConfig | None = None  # None: accepted mail is not followed further
    destinations: tuple[Destination, ...] = ()
    reputation: dict[str, ReputationList] = field(default_factory=dict)
    operator: OperatorConfig | None = None
    trace: TraceSpec | None = None  # None: every population is synthetic
    source: Path | None = None
    raw: dict = field(default_factory=dict, repr=False)  # the resolved TOML data: overrides applied, ${name} substituted, [params] as used
    label: str = ""  # how errors name the file ("may-2012.toml (built-in)", or the path as given)
    params: dict = field(default_factory=dict)  # [params] values used (defaults with overrides); read only

    def policy_named(self, name: str | None) -> str:
        """``name`` (default: ``default_policy``) if the scenario defines it, else a ScenarioError."""
        name = name or self.default_policy
        if name not in self.policies:
            close = difflib.get_close_matches(name, list(self.policies), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ScenarioError(self.label or self.name, "--policy",
                                f"no policy named {name!r} (have: {', '.join(self.policies)}){hint}")
        return name

    def population(self, name: str) -> Population:
        for population in self.populations:
            if population.name == name:
                return population
        raise KeyError(name)
