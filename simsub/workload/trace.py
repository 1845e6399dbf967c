"""A replayed maillog: the logged submissions, played through a candidate policy.

Where :mod:`simsub.workload.synthetic` draws clients and messages from a
scenario's populations, a trace takes them from a Postfix maillog parsed by
``simsub maillog parse`` (:mod:`simsub.maillog`): every authenticated
submission the log shows arrives at its logged time, from its logged client
(reverse-DNS name and address, as the restrictions see them), with its logged
login and recipient count.  Two kinds of logged transaction are replayed:

* a message smtpd accepted (a queue id in a session with a login);
* a transaction that got no queue id in a session with a login: refused
  (``NOQUEUE: reject``) or abandoned (the client hung up, e.g. during a sleep),
  with the recipients the session tried.

Each arrives when its session connected: what came after depended on the
policy in force when the log was written, which is what a replay replaces.

What a log cannot say comes from the scenario, documented in docs/replay.md:
how long a client waits for a reply and what it does then (its population's
``patience``, ``on_timeout``, ``retries``, ``retry_interval``) and its round
trip (its origin's ``rtt``).  Those are drawn per client from named streams
(``trace-clients/POPULATION``), so every policy replays the same clients
(common random numbers).

Times: seconds since 00:00 UTC of the day of the first replayed message.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from ..maillog.tables import read_tables
from ..scenario.types import TRACE_FILES, Origin, Population, Scenario
from .clients import Client
from .rng import Streams

#: The parsed tables a trace reads (written by ``simsub maillog parse``; the loader checks the files).
TRACE_TABLES = tuple(name.removesuffix(".csv.gz") for name in TRACE_FILES)
DAY_S = 86400.0


@dataclass(frozen=True)
class TraceMessages:
    """One kind of logged submissions (legitimate or flagged), in time order.

    ``t_s``: arrival (s since 00:00 UTC of the trace's first day); ``client``:
    index into ``clients``; ``account``: the login; ``recipients``: at least 1.
    """

    t_s: np.ndarray
    client: np.ndarray
    account: tuple[str, ...]
    recipients: np.ndarray
    clients: tuple[tuple[str, str], ...]  # (client_name, client_address), in order of first appearance
    accepted_in_log: np.ndarray  # bool: the logged message reached qmgr (False: refused or abandoned)

    def __len__(self) -> int:
        return len(self.t_s)


@dataclass(frozen=True)
class Trace:
    """The replayable part of a parsed maillog, split into legitimate and flagged mail."""

    users: TraceMessages
    bots: TraceMessages
    day_start_s: float  # Unix time of 00:00 UTC of the first replayed message's day
    end_s: float  # s after day_start_s: the last replayed arrival
    skipped: dict  # transactions not replayed, by reason

    @property
    def horizon_s(self) -> float:
        """A horizon that covers every replayed arrival (whole seconds)."""
        return float(np.floor(self.end_s)) + 1.0


def build_trace(sessions: pd.DataFrame, messages: pd.DataFrame, rejects: pd.DataFrame,
                flagged: frozenset[str] = frozenset()) -> Trace:
    """The trace of parsed tables (columns as in docs/maillog.md); logins in ``flagged``
    are the bots' mail, every other login legitimate mail.

    A replayed message arrives when its session connected (the client's own timing:
    what came after depended on the policy in force).  One per queue id of a session
    with a login, with the session's attempted recipients (``rcpt=x/y``'s y) when the
    session carried one message, else qmgr's ``nrcpt``; and one per session with a
    login that tried recipients but got no queue id (refused, or the client gave up),
    with its attempted recipients.  ``rejects`` is read for sessions cut by the log's
    start (no session row)."""
    skipped: dict[str, int] = {}
    logged_in = sessions[sessions["sasl_username"] != ""]
    skipped["sessions without a login (not submission, or AUTH failed)"] = int(len(sessions) - len(logged_in))
    per_session = messages.groupby("session_id").size()
    mine = messages[messages["session_id"].isin(logged_in["session_id"])]
    session = logged_in.set_index("session_id")
    alone = mine["session_id"].map(per_session).to_numpy() == 1
    tried = mine["session_id"].map(session["rcpt_tried"]).to_numpy()
    first_of_session = ~mine.duplicated("session_id").to_numpy()
    rows = [pd.DataFrame({
        "t": np.where(first_of_session, mine["session_id"].map(session["connect_s"]).to_numpy(),
                      mine["accepted_s"].to_numpy()),
        "name": mine["session_id"].map(session["client_name"]).to_numpy(),
        "address": mine["session_id"].map(session["client_address"]).to_numpy(),
        "account": mine["session_id"].map(session["sasl_username"]).to_numpy(),
        "recipients": np.where(alone & (tried > 0), tried, mine["nrcpt"].to_numpy()),
        # a queue id that qmgr never saw was abandoned: smtpd opened it at the first accepted
        # RCPT, then found the client gone (e.g. it hung up during a sleep)
        "accepted": mine["nrcpt"].to_numpy() > 0})]
    # Messages whose session began before the log did: replayed when smtpd took them.
    orphans = messages[(messages["session_id"] < 0) & (messages["sasl_username"] != "")]
    rows.append(pd.DataFrame({"t": orphans["accepted_s"].to_numpy(), "name": orphans["client_name"].to_numpy(),
                              "address": orphans["client_address"].to_numpy(),
                              "account": orphans["sasl_username"].to_numpy(), "recipients": orphans["nrcpt"].to_numpy(),
                              "accepted": True}))
    # Transactions without a queue id: refused (NOQUEUE reject) or abandoned (the client left).
    without = logged_in[~logged_in["session_id"].isin(per_session.index) & (logged_in["rcpt_tried"] > 0)]
    skipped["sessions with a login and no recipient tried"] = int(
        (~logged_in["session_id"].isin(per_session.index) & (logged_in["rcpt_tried"] <= 0)).sum())
    rows.append(pd.DataFrame({"t": without["connect_s"].to_numpy(), "name": without["client_name"].to_numpy(),
                              "address": without["client_address"].to_numpy(),
                              "account": without["sasl_username"].to_numpy(),
                              "recipients": without["rcpt_tried"].to_numpy(), "accepted": False}))
    rows = pd.concat(rows, ignore_index=True)
    unknown = (rows["recipients"] < 1).to_numpy() | ~np.isfinite(rows["t"].to_numpy())
    skipped["transactions with no recipient count or time"] = int(unknown.sum())
    rows = rows[~unknown]
    if rows.empty:
        return Trace(_messages(rows), _messages(rows), 0.0, 0.0, skipped)
    rows = rows.sort_values(["t", "account"], kind="stable").reset_index(drop=True)
    day_start = float(np.floor(rows["t"].iloc[0] / DAY_S) * DAY_S)
    rows["t"] = rows["t"] - day_start
    is_bot = rows["account"].isin(flagged).to_numpy()
    return Trace(_messages(rows[~is_bot]), _messages(rows[is_bot]), day_start, float(rows["t"].iloc[-1]), skipped)


def _messages(rows: pd.DataFrame) -> TraceMessages:
    pairs = list(zip(rows["name"].tolist(), rows["address"].tolist())) if len(rows) else []
    numbers: dict[tuple[str, str], int] = {}
    client = np.array([numbers.setdefault(p, len(numbers)) for p in pairs], dtype=np.int64)
    return TraceMessages(
        t_s=rows["t"].to_numpy(dtype=float) if len(rows) else np.empty(0),
        client=client,
        account=tuple(rows["account"].tolist()) if len(rows) else (),
        recipients=rows["recipients"].to_numpy(dtype=np.int64) if len(rows) else np.empty(0, dtype=np.int64),
        clients=tuple(numbers),
        accepted_in_log=rows["accepted"].to_numpy(dtype=bool) if len(rows) else np.empty(0, dtype=bool),
    )


@lru_cache(maxsize=4)
def load_trace(folder: str, digest: str, flagged: frozenset[str]) -> Trace:
    """The trace of a parsed-tables folder (cached per process: a compare runs many
    replications on it; ``digest`` is part of the key so changed files are re-read)."""
    tables = read_tables(Path(folder), TRACE_TABLES)
    return build_trace(tables["sessions"], tables["messages"], tables["rejects"], flagged)


def origin_of(name: str, address: str, origins: list[Origin]) -> int:
    """The scenario origin a logged client belongs to (index into ``origins``).

    In order: an own-network origin (``mynetworks = true``) whose address range
    holds the address (the other origins' ranges are the model's invented
    addresses, not the real ones); for a client without reverse DNS, the origin
    whose hostname is ``unknown``; else the origin whose hostname pattern shares the most
    trailing labels with the name (``p{n}.dial.example.ne.jp`` and
    ``host.example.ne.jp`` share ``example.ne.jp``); ties and no shared label go
    to the first origin that is neither own network nor ``unknown``.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        ip = None
    if ip is not None:
        for i, origin in enumerate(origins):
            if origin.mynetworks and ip.version == origin.network.version and ip in origin.network:
                return i
    if name == "unknown":
        for i, origin in enumerate(origins):
            if origin.hostname == "unknown":
                return i
    labels = name.lower().split(".")
    best, best_shared = None, 0
    for i, origin in enumerate(origins):
        if origin.hostname == "unknown" or origin.mynetworks:
            continue
        pattern = origin.hostname.lower().split(".")
        shared = 0
        while (shared < min(len(labels), len(pattern)) and labels[-1 - shared] == pattern[-1 - shared]
               and "{n}" not in pattern[-1 - shared]):
            shared += 1
        if shared > best_shared:
            best, best_shared = i, shared
    if best is not None:
        return best
    for i, origin in enumerate(origins):
        if origin.hostname != "unknown" and not origin.mynetworks:
            return i
    return 0


class TraceClients:
    """The logged clients of one kind as model clients: the logged name and address,
    their origin's round trip and their population's temper, drawn per client."""

    def __init__(self, scenario: Scenario, index: int, population: Population, part: TraceMessages,
                 streams: Streams):
        origins = list(scenario.origins.values())
        rng = streams.get("trace-clients", population.name)
        n = len(part.clients)
        self.index, self.population, self.part = index, population, part
        self.origin_of = np.array([origin_of(name, address, origins) for name, address in part.clients],
                                  dtype=np.int64)
        rtts = np.stack([np.broadcast_to(o.rtt.sample(rng, n), (n,)) for o in origins]) if n else np.empty((0, 0))
        self.rtt = rtts[self.origin_of, np.arange(n)] if n else np.empty(0)
        self.patience = np.broadcast_to(population.patience.sample(rng, n), (n,)).astype(float)
        timeout = population.connect_timeout
        self.connect_timeout = (self.patience if timeout is None
                                else np.broadcast_to(timeout.sample(rng, n), (n,)).astype(float))
        self.origins = origins
        self._clients: dict[int, Client] = {}

    def client(self, n: int) -> Client:
        client = self._clients.get(n)
        if client is None:
            name, address = self.part.clients[n]
            origin = int(self.origin_of[n])
            client = Client(population=self.index, number=n, origin=origin, hostname=name, address=address,
                            mynetworks=self.origins[origin].mynetworks, half_rtt=float(self.rtt[n]) / 2,
                            patience=float(self.patience[n]), connect_timeout=float(self.connect_timeout[n]),
                            talks=self.population.on_timeout == "talk")
            self._clients[n] = client
        return client
