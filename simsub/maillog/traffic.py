"""The submission traffic of a parsed maillog, labelled for fitting.

Input: the tables of :func:`simsub.maillog.parse.parse_maillog` (any object
with ``sessions``, ``messages``, ``recipients``... DataFrames and a ``stats``
dict; see the table contract in ``docs/calibrate.md``).  Output: a
:class:`Traffic` holding only the submission sessions and messages, each with
its account, origin class, address and network keys, and local day and hour.

Times stay in seconds since the Unix epoch; ``local_s`` adds the UTC offset
the user gave, so that days and hours are the server's own (classic syslog
stamps carry local time already and are read as UTC, so the offset is 0).
"""

from __future__ import annotations

import ipaddress
import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import ScenarioError

#: The origin classes, in the order they are written to a scenario.
ORIGIN_CLASSES = ("own", "home", "foreign", "unknown")
#: Origin classes a stolen password is suspicious from (no home rDNS).
SUSPECT_CLASSES = ("foreign", "unknown")

#: A last session start this far (hours) into its hour is a straggler, not a new hour of traffic.
TAIL_HOURS = 0.25

SESSION_COLUMNS = ("session_id", "service", "connect_s", "disconnect_s", "client_name", "client_address",
                   "sasl_username", "auth_tried", "mail_ok", "mail_tried", "rcpt_ok", "rcpt_tried")
MESSAGE_COLUMNS = ("queue_id", "session_id", "accepted_s", "client_name", "client_address", "sasl_username",
                   "nrcpt")


@dataclass(frozen=True)
class OriginRules:
    """How a client is put into an origin class (``ORIGIN_CLASSES``).

    ``own``: its address is in one of ``mynetworks``; ``unknown``: no reverse
    DNS (smtpd logs the name ``unknown``); ``home``: its name ends in one of
    ``home_suffixes`` (``jp`` matches ``x.ne.jp``); ``foreign``: any other name.
    """

    mynetworks: tuple = ()
    home_suffixes: tuple[str, ...] = ()

    @classmethod
    def parse(cls, mynetworks: str | None, home_domain: str | None) -> "OriginRules":
        networks = []
        for text in (mynetworks or "").split(","):
            if text.strip():
                try:
                    networks.append(ipaddress.ip_network(text.strip(), strict=False))
                except ValueError:
                    raise ScenarioError("--mynetworks", text.strip(), "expected an address range such as "
                                        "198.51.100.0/22 or 2001:db8::/32") from None
        suffixes = tuple(s.strip().lower().strip(".") for s in (home_domain or "").split(",") if s.strip(" ."))
        return cls(tuple(networks), suffixes)

    def classify(self, name: str, address: str) -> str:
        ip = _ip(address)
        if ip is not None and any(ip.version == n.version and ip in n for n in self.mynetworks):
            return "own"
        name = (name or "unknown").lower().rstrip(".")
        if name == "unknown":
            return "unknown"
        if any(name == s or name.endswith("." + s) for s in self.home_suffixes):
            return "home"
        return "foreign"


def _ip(address: str):
    try:
        return ipaddress.ip_address(str(address).split("%")[0])
    except ValueError:
        return None


def address_key(address: str) -> str:
    """The unit counted as one client address: an IPv4 address or an IPv6 /64.

    An IPv6 host changes its address inside its /64 (privacy extensions), so
    counting /64s keeps one phone from looking like many clients."""
    ip = _ip(address)
    if ip is None:
        return str(address)
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def network_key(address: str) -> str:
    """The unit counted as one network: an IPv4 /24 or an IPv6 /48."""
    ip = _ip(address)
    if ip is None:
        return str(address)
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


@dataclass
class Traffic:
    """Submission traffic of one log, labelled.

    sessions: the submission sessions, with added columns ``account`` (the
    login, "" if none), ``origin``, ``addr``, ``net``, ``local_s`` (connect
    time plus the UTC offset), ``day`` and ``hour`` (local).
    messages: the messages those sessions (or a login) submitted, with
    ``account`` (the login, else ``[address]`` for mail submitted without
    one), ``recipients`` (qmgr's nrcpt, else the delivery lines' distinct
    recipients, else the session's accepted RCPTs, else 1), ``origin``,
    ``addr``, ``net``, ``local_s``, ``day``, ``hour``.
    t0_s: start of the scenario (epoch seconds): the whole local hour of the
    first submission event.  horizon_s: whole hours from t0_s to the end of
    the hour of the last session start (to its start if that is within its
    first ``TAIL_HOURS``), at least one.
    """

    sessions: pd.DataFrame
    messages: pd.DataFrame
    auth_failures: pd.DataFrame
    t0_s: float
    horizon_s: float
    utc_offset_s: float
    resolution_s: float
    notes: list[str]

    @property
    def start_hour(self) -> int:
        """Local hour of day at scenario time 0."""
        return int(((self.t0_s + self.utc_offset_s) // 3600) % 24)

    @property
    def days(self) -> float:
        return self.horizon_s / 86400.0


def check_columns(parsed, source: str) -> None:
    """Refuse input that does not follow the parsed-maillog table contract."""
    for table, columns in (("sessions", SESSION_COLUMNS), ("messages", MESSAGE_COLUMNS)):
        frame = getattr(parsed, table, None)
        if not isinstance(frame, pd.DataFrame):
            raise ScenarioError(source, table, "expected a table of the parsed log (a pandas DataFrame)")
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ScenarioError(source, table, f"missing column(s) {', '.join(missing)}")


def select_traffic(parsed, rules: OriginRules, service: str = "submission", utc_offset_s: float = 0.0,
                   source: str = "log") -> Traffic:
    """Keep the submission sessions and their messages, and label them.

    A session is a submission session when its service name contains
    ``service`` or it tried AUTH or logged in; a message is kept when its
    session is one, or it carries a login.  Raises :class:`ScenarioError` when
    nothing is left (a log with no submission traffic).
    """
    check_columns(parsed, source)
    sessions = parsed.sessions
    text = sessions["service"].fillna("").astype(str)
    login = sessions["sasl_username"].fillna("").astype(str)
    keep = text.str.contains(service, regex=False) | (pd.to_numeric(sessions["auth_tried"]).fillna(-1) > 0) | (login != "")
    sessions = sessions[keep].copy()
    sessions["account"] = sessions["sasl_username"].fillna("").astype(str)
    messages = parsed.messages
    ids = set(sessions["session_id"].tolist())
    m_login = messages["sasl_username"].fillna("").astype(str)
    messages = messages[messages["session_id"].isin(ids) | (m_login != "")].copy()
    if messages.empty:
        kinds = "" if sessions.empty else f" ({len(sessions)} submission sessions, none submitted a message)"
        raise ScenarioError(source, None, "no submission traffic: no message was submitted on a service named "
                            f"*{service}* or with a SASL login{kinds}; is this the log of a submission server? "
                            "(--service names the smtpd instance)")
    by_session = sessions.set_index("session_id")
    login = messages["sasl_username"].fillna("").astype(str)
    from_session = messages["session_id"].map(by_session["account"]).fillna("")
    account = login.where(login != "", from_session)
    messages["account"] = account.where(account != "", "[" + messages["client_address"].astype(str) + "]")
    messages["recipients"] = _recipients(messages, getattr(parsed, "recipients", None), by_session)
    origin_cache: dict = {}
    for frame, time_column in ((sessions, "connect_s"), (messages, "accepted_s")):
        _label(frame, time_column, rules, utc_offset_s, origin_cache)
    failures = getattr(parsed, "auth_failures", None)
    failures = failures.copy() if isinstance(failures, pd.DataFrame) else pd.DataFrame(columns=["client_address"])
    failures["addr"] = failures["client_address"].astype(str).map(address_key) if len(failures) else []

    times = pd.concat([sessions["connect_s"], sessions["disconnect_s"], messages["accepted_s"]]).dropna()
    t0 = math.floor((float(times.min()) + utc_offset_s) / 3600) * 3600 - utc_offset_s
    last_start = float(pd.concat([sessions["connect_s"], messages["accepted_s"]]).dropna().max())
    # Up to the end of the hour of the last session start, unless that start is within the first
    # quarter of its hour: then it is a straggler (a retry or a session in flight at the end of a
    # simulated day), and the horizon ends at that hour's start.
    horizon = max(1, math.ceil((last_start - t0) / 3600 - TAIL_HOURS)) * 3600.0
    notes = []
    dropped = int((messages["accepted_s"] >= t0 + horizon).sum())
    if dropped:
        notes.append(f"{dropped} message(s) after the last whole hour are outside the horizon")
    return Traffic(sessions, messages, failures, t0, horizon, utc_offset_s, _resolution(times), notes)


def _label(frame: pd.DataFrame, time_column: str, rules: OriginRules, utc_offset_s: float, cache: dict) -> None:
    names = frame["client_name"].fillna("unknown").astype(str).replace("", "unknown")
    addresses = frame["client_address"].fillna("").astype(str)
    pairs = pd.Series(list(zip(names, addresses)), index=frame.index, dtype=object)
    for pair in pairs.unique():  # each distinct client once: a big log repeats them
        if pair not in cache:
            cache[pair] = (rules.classify(*pair), address_key(pair[1]), network_key(pair[1]))
    labels = pairs.map(cache)
    frame["client_name"] = names
    frame["origin"] = [label[0] for label in labels]
    frame["addr"] = [label[1] for label in labels]
    frame["net"] = [label[2] for label in labels]
    frame["local_s"] = frame[time_column].astype(float) + utc_offset_s
    frame["day"] = np.floor(frame["local_s"] / 86400).astype("Int64")
    frame["hour"] = (np.floor(frame["local_s"] / 3600) % 24).astype("Int64")


def _recipients(messages: pd.DataFrame, recipients: pd.DataFrame | None, sessions: pd.DataFrame) -> pd.Series:
    """Recipients per message: qmgr nrcpt, else delivery lines, else the session's RCPTs, else 1."""
    nrcpt = pd.to_numeric(messages["nrcpt"], errors="coerce")
    result = nrcpt.where(nrcpt >= 1)
    if isinstance(recipients, pd.DataFrame) and len(recipients) and result.isna().any():
        distinct = recipients.groupby("queue_id")["recipient"].nunique()
        result = result.fillna(messages["queue_id"].map(distinct))
    if result.isna().any():
        single = sessions[(sessions["mail_ok"] == 1) & (sessions["rcpt_ok"] >= 1)]["rcpt_ok"]
        result = result.fillna(messages["session_id"].map(single))
    return result.fillna(1).astype(int).clip(lower=1)


def _resolution(times: pd.Series) -> float:
    """1.0 when every stamp is a whole second (classic syslog), else the finest step seen (<1 s)."""
    fractions = np.asarray(times, dtype=float) % 1.0
    return 1.0 if np.all(np.isclose(fractions, 0.0) | np.isclose(fractions, 1.0)) else 1e-6


def modal(values: pd.Series) -> str:
    """The most frequent value (ties: the first in ``ORIGIN_CLASSES`` order, then alphabetical)."""
    counts = Counter(values)
    order = {c: i for i, c in enumerate(ORIGIN_CLASSES)}
    return min(counts, key=lambda v: (-counts[v], order.get(v, len(order)), v))
