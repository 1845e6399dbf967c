"""Fit a scenario to a parsed Postfix maillog: ``calibrate(parsed, options) -> Calibration``.

A pure function of the parsed tables (see :mod:`simsub.maillog.traffic` for
what it reads) and the options: it selects the submission traffic, finds the
accounts that look stolen (:mod:`.stolen`), fits the legitimate users (origin
classes, volume classes, recipients, diurnal profile) and the bots (addresses,
accounts, start, pause, recipients) and keeps, for every number, the evidence
it came from.  :func:`simsub.maillog.scenario_text.scenario_toml` writes the
result as a commented scenario file.  Times are seconds.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ScenarioError
from .fit import diurnal_profile, effective_rtt, empirical_counts, empirical_durations, hour_exposure, volume_classes
from .stolen import DetectionOptions, flag_accounts
from .traffic import ORIGIN_CLASSES, OriginRules, Traffic, modal, select_traffic

#: Round trips when a class has too few timed sessions (MODEL.md §5: domestic
#: 10-20 ms, East Asia 50-100 ms, US 100-200 ms, Europe 250-300 ms).
DEFAULT_RTT = {"own": 0.010, "home": 0.020, "foreign": {"dist": "uniform", "low": 0.05, "high": 0.2},
               "unknown": {"dist": "uniform", "low": 0.1, "high": 0.3}}
#: Characters a scenario's hostname pattern may hold (besides ``{n}``).
_HOST_CHARACTERS = set(string.ascii_lowercase + string.digits + "-.")
#: Fewest single-message sessions with both ends logged for a fitted round trip.
MIN_TIMED_SESSIONS = 20
#: Fewest timed sessions per client for its own round trip from whole-second stamps: the
#: rounding error of its mean then has a standard deviation of at most 0.41 s / (6 + n) / √10
#: (18 ms for one recipient, 2.3 ms for a bot's 50), see ``_per_client_rtt``.
MIN_SESSIONS_PER_CLIENT = 10
#: Names of the volume classes, lightest first, by number of classes.
CLASS_NAMES = {1: ["users"], 2: ["light", "heavy"], 3: ["light", "regular", "heavy"],
               4: ["light", "regular", "heavy", "bulk"]}
#: Address ranges written for the origins: one /12 each, so that no two clients share an address.
NETWORKS = {"own": "10.0.0.0/12", "home": "10.16.0.0/12", "foreign": "10.32.0.0/12", "unknown": "10.48.0.0/12",
            "bot-own": "10.64.0.0/12", "bot-home": "10.80.0.0/12", "bot-foreign": "10.96.0.0/12",
            "bot-unknown": "10.112.0.0/12"}


@dataclass(frozen=True)
class CalibrateOptions:
    """What the log cannot say, and the detection thresholds.

    mynetworks: CIDRs of the own network, comma-separated; home_domain:
    rDNS suffixes of the home country (``jp``), comma-separated;
    utc_offset_s: added to the log's times to get the server's local time
    (0 for classic syslog stamps); service: substring of the smtpd
    syslog_name that marks submission; max_classes: most volume classes;
    reply_time: smtpd's time per reply (s) assumed when fitting round trips;
    bot_patience: the bots' reply timeout (not in a log), a duration text
    (``"4s"``) or a scenario distribution table (``{"dist": "lognormal",
    "median": "4s", "sigma": 0.15}``); bot_connect_timeout: how long bots wait
    for an smtpd to take the connection (same forms; None: not written, so the
    model uses their patience); bot_on_timeout: what a bot does when a reply
    is late, ``"disconnect"`` or ``"talk"`` (not in a log either).
    """

    mynetworks: str | None = None
    home_domain: str | None = None
    utc_offset_s: float = 0.0
    service: str = "submission"
    max_classes: int = 4
    detection: DetectionOptions = field(default_factory=DetectionOptions)
    name: str = "calibrated"
    seed: int = 0
    reply_time: float = 0.002
    bot_patience: str | dict = "60s"
    bot_connect_timeout: str | dict | None = None
    bot_on_timeout: str = "disconnect"
    source: str = "log"


@dataclass
class Section:
    """One table of the scenario: ordered values, a comment per key, comment lines above."""

    values: dict[str, Any]
    comments: dict[str, str] = field(default_factory=dict)
    header: list[str] = field(default_factory=list)

    def set(self, key: str, value: Any, comment: str = "") -> None:
        self.values[key] = value
        if comment:
            self.comments[key] = comment


@dataclass
class Calibration:
    """A fitted scenario and its evidence.

    scenario: the [scenario] table; origins: name -> Section; populations:
    the [[populations]] entries (users by volume class, then the botnet if
    any); mta: the [mta] table; policies: name -> Section; header: comment
    lines for the top of the file; flagged: one row per flagged account
    (:data:`simsub.maillog.stolen.FLAGGED_COLUMNS`); traffic: the labelled
    submission traffic it was fitted to.
    """

    scenario: Section
    origins: dict[str, Section]
    populations: list[Section]
    mta: Section
    policies: dict[str, Section]
    header: list[str]
    flagged: pd.DataFrame
    traffic: Traffic
    diurnal: list[float]
    legit_messages: int
    bot_messages: int


def calibrate(parsed, options: CalibrateOptions = CalibrateOptions()) -> Calibration:
    """Fit a scenario to ``parsed`` (a ParsedLog or any object with its DataFrames and ``stats``).

    Raises :class:`simsub.ScenarioError` when the log holds no submission traffic."""
    rules = OriginRules.parse(options.mynetworks, options.home_domain)
    traffic = select_traffic(parsed, rules, options.service, options.utc_offset_s, options.source)
    flagged, is_bot, bot_sessions = flag_accounts(traffic, options.detection)
    inside = (traffic.messages["accepted_s"] >= traffic.t0_s) & (traffic.messages["accepted_s"] < traffic.t0_s + traffic.horizon_s)
    legit = traffic.messages[~is_bot & inside]
    bots = traffic.messages[is_bot]
    if legit.empty:
        raise ScenarioError(options.source, None, f"no legitimate mail left: all {len(bots):,} submitted messages are "
                            f"from the {len(flagged)} accounts that look stolen; raise the detection thresholds "
                            "(--max-addresses, --max-suspect, --burst-factor)")

    weights, counts, exposure = diurnal_profile(legit["local_s"], traffic.t0_s + traffic.utc_offset_s, traffic.horizon_s)
    rotation = traffic.start_hour
    diurnal = [weights[(rotation + i) % 24] for i in range(24)]
    users = _user_populations(traffic, legit, diurnal, options)
    origins = {}
    for name in ORIGIN_CLASSES:
        if any(p.values["origins"].get(name) for p in users):
            user_sessions = traffic.sessions.drop(index=bot_sessions.index)
            origins[name] = _origin(name, name, traffic, user_sessions, legit, "account", rules, options)
    populations = list(users)
    if len(flagged):
        groups = campaigns(flagged, bots, bot_sessions)
        owners_taken = False  # only one campaign may take its logins from a user population (see _bot_population)
        for i, (accounts, addresses) in enumerate(groups):
            name = "botnet" if len(groups) == 1 else f"botnet{i + 1}"
            section, took = _bot_population(
                name, traffic, flagged[flagged["account"].isin(accounts)], bots[bots["account"].isin(accounts)],
                bot_sessions[bot_sessions["addr"].isin(addresses)], users, options, owners_taken, len(groups))
            owners_taken |= took
            populations.append(section)
        for cls in ORIGIN_CLASSES:
            if any(f"bot-{cls}" in p.values["origins"] for p in populations if p.values["kind"] == "bot"):
                origin = _origin(f"bot-{cls}", cls, traffic, bot_sessions, bots, "addr", rules, options)
                origin.header.insert(0, "Bots. " + _origin_title(cls, rules))
                origins[f"bot-{cls}"] = origin
    for name in [n for n in ORIGIN_CLASSES if n in origins]:
        origins[name].header.insert(0, _origin_title(name, rules))

    when = datetime.fromtimestamp(traffic.t0_s + traffic.utc_offset_s, tz=timezone.utc)
    scenario = Section({})
    scenario.set("name", options.name)
    scenario.set("description", f"Fitted by simsub calibrate to {options.source}: "
                 f"{len(legit):,} legitimate messages from {legit['account'].nunique():,} accounts"
                 + (f", {len(bots):,} messages of {len(flagged)} accounts that look stolen" if len(flagged) else ""))
    scenario.set("horizon", _duration_text(traffic.horizon_s),
                 f"time 0 = {when:%Y-%m-%d %H:%M} server time; whole hours to the log's last session start "
                 "(one in the first quarter of an hour is a straggler: its hour is left out)")
    scenario.set("seed", int(options.seed))
    scenario.set("default_policy", "none")
    scenario.set("bin", "5m")

    return Calibration(scenario=scenario, origins=origins, populations=populations,
                       mta=_mta(parsed, traffic), policies=_policies(traffic, legit, bots),
                       header=_header(parsed, traffic, legit, bots, flagged, options),
                       flagged=flagged, traffic=traffic, diurnal=diurnal,
                       legit_messages=len(legit), bot_messages=len(bots))


# ------------------------------------------------------------------ users
def _user_populations(traffic: Traffic, legit: pd.DataFrame, diurnal: list[float],
                      options: CalibrateOptions) -> list[Section]:
    per_account = legit.groupby("account").agg(messages=("queue_id", "size"),
                                               origin=("origin", modal))
    fit = volume_classes(per_account["messages"].to_numpy(), options.max_classes)
    classes = fit.classes
    # Each seen account joins the class under which its count is most likely.
    rates = np.array([c.rate for c in classes])
    shares = np.array([c.accounts for c in classes])
    k = per_account["messages"].to_numpy()[:, None]
    log_post = k * np.log(rates)[None, :] - rates[None, :] + np.log(shares)[None, :]
    per_account["class"] = np.argmax(log_post, axis=1)
    scale = 24 / sum(diurnal)  # the loader rescales the weights to a mean of 1
    exposure = float(np.dot(np.array(diurnal) * scale, hour_exposure(0.0, traffic.horizon_s)))
    names = CLASS_NAMES.get(len(classes), [f"volume{i + 1}" for i in range(len(classes))])
    day_counts = legit.groupby(["account", "day"]).size()
    tried = ", ".join(f"{k} → {b:,.1f}" for k, b in fit.tried)
    populations = []
    for i, (name, cls) in enumerate(zip(names, classes)):
        members = per_account[per_account["class"] == i]
        mail = legit[legit["account"].isin(set(members.index))]
        count = max(1, len(members), round(cls.accounts))  # never fewer clients than the log shows
        per_day = cls.rate * cls.accounts / count * 86400.0 / exposure
        section = Section({})
        section.header = [
            f"Volume class {i + 1} of {len(classes)} (Poisson mixture fitted to the messages per account of "
            f"{len(per_account):,} accounts, zero-truncated; BIC by classes: {tried}; lowest kept).",
            f"{len(members):,} accounts seen in this class sent {len(mail):,} messages; "
            f"messages per account over the log: {_quantiles(members['messages'])}.",
        ]
        if i == 0:
            section.header.append(f"Messages per account and day (all legitimate accounts): "
                                  f"{_quantiles(day_counts)}.")
        section.set("name", name)
        section.set("kind", "user")
        section.set("count", count, f"{len(members):,} seen + {max(0, count - len(members)):,} estimated to have "
                    f"sent nothing in the log (P(0) = e^-{cls.rate:.3g} = {math.exp(-cls.rate):.3g})")
        section.set("origins", _shares(members["origin"]), _share_evidence(members["origin"], "accounts"))
        section.set("messages_per_day", _round_sig(per_day, 6),
                    f"{cls.rate:.4g} messages per account over {traffic.horizon_s / 3600:g} h; rescaled by "
                    "the diurnal weights of the hours the horizon covers so the volume is the log's")
        section.set("diurnal", diurnal, _diurnal_comment(traffic))
        points = empirical_counts(mail["recipients"])
        section.set("recipients", {"dist": "empirical", "points": [list(p) for p in points]},
                    f"recipients of this class's {len(mail):,} messages (qmgr nrcpt), mean "
                    f"{mail['recipients'].mean():.3g}, max {mail['recipients'].max()}")
        section.set("patience", "60s", "not in a log: Outlook's 60 s reply timeout (MODEL.md §5)")
        section.set("connect_timeout", "60s", "not in a log: as patience")
        section.set("retries", 3, "not in a log: simsub's default")
        section.set("retry_interval", "5m", "not in a log: simsub's default")
        populations.append(section)
    return populations


# ------------------------------------------------------------------ bots
def campaigns(flagged: pd.DataFrame, bots: pd.DataFrame, sessions: pd.DataFrame) -> list[tuple[set, set]]:
    """The flagged accounts grouped into campaigns: (accounts, bot addresses), by first abuse.

    Two accounts are in one campaign when some address sent bot mail (or
    logged in, in a bot session) with both: one botnet working several
    stolen logins.  Unrelated compromises — a botnet on Monday, a single
    address bursting through another account on Friday — stay apart, each
    with its own start, pause and recipients."""
    parent = {a: a for a in flagged["account"]}

    def root(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    pairs = pd.concat([bots[["addr", "account"]], sessions.loc[sessions["account"] != "", ["addr", "account"]]])
    pairs = pairs[pairs["account"].isin(parent)].drop_duplicates()
    for _, group in pairs.groupby("addr"):
        accounts = list(group["account"])
        for other in accounts[1:]:
            parent[root(other)] = root(accounts[0])
    members: dict[str, set] = {}
    for a in parent:
        members.setdefault(root(a), set()).add(a)
    first = flagged.set_index("account")["first_abuse_s"]
    out = []
    for accounts in sorted(members.values(), key=lambda g: (min(first[a] for a in g), sorted(g))):
        out.append((accounts, set(pairs.loc[pairs["account"].isin(accounts), "addr"])))
    return out


def _bot_population(name: str, traffic: Traffic, flagged: pd.DataFrame, bots: pd.DataFrame, sessions: pd.DataFrame,
                    users: list[Section], options: CalibrateOptions, owners_taken: bool,
                    campaigns_count: int) -> tuple[Section, bool]:
    """One campaign as a bot population; also whether it took its logins from a user population."""
    addr_origin = pd.concat([sessions[["addr", "origin"]], bots[["addr", "origin"]]]).groupby("addr")["origin"].agg(modal)
    count = len(addr_origin)
    first_seen = pd.concat([sessions[["addr", "connect_s"]].rename(columns={"connect_s": "t"}),
                            bots[["addr", "accepted_s"]].rename(columns={"accepted_s": "t"})]).groupby("addr")["t"].min()
    start = float(flagged["first_abuse_s"].min())
    last = float(sessions["connect_s"].max() if len(sessions) else bots["accepted_s"].max())  # last session start
    # Workers start uniformly over [start, start + ramp): the 90th percentile of the addresses'
    # first appearances is then 0.9 ramp after the first one, robust to a late straggler.
    span = float(first_seen.quantile(0.9) - first_seen.min())
    ramp = span / 0.9
    parallel, gaps = _concurrency_and_gaps(sessions)

    section = Section({})
    which = ("" if campaigns_count == 1 else
             f" (campaign of {len(flagged)} of the flagged accounts: {', '.join(sorted(flagged['account'])[:5])}"
             f"{', ...' if len(flagged) > 5 else ''})")
    section.header = [
        f"Accounts that look stolen (see the .flagged.csv table next to this file){which}, as a botnet: "
        f"{len(bots):,} messages from {count} addresses, {bots['recipients'].sum():,} recipients.",
        "Rules and thresholds: " + _detection_text(options.detection) + ".",
    ]
    section.set("name", name)
    section.set("kind", "bot")
    section.set("count", count, "distinct client addresses the bots used (IPv6: /64s)")
    section.set("start", _duration_text(start - traffic.t0_s), "the first login from a bot address "
                f"({datetime.fromtimestamp(start + traffic.utc_offset_s, tz=timezone.utc):%Y-%m-%d %H:%M:%S})")
    section.set("ramp", _duration_text(ramp), f"90 % of the bot addresses first appeared within {span:.0f} s "
                "of the first (uniform starts over the ramp put the 90th percentile at 0.9 ramp)")
    if last < traffic.t0_s + traffic.horizon_s - 3600:
        section.set("stop", _duration_text(max(last - traffic.t0_s, start - traffic.t0_s + 1)),
                    "the start of the last bot session")
    section.set("accounts", len(flagged), "flagged accounts")
    owners = (flagged["owner_messages"] > 0).sum()
    biggest = max(users, key=lambda p: p.values["count"]) if users else None
    took = False
    if biggest is not None and owners * 2 >= len(flagged) and biggest.values["count"] >= len(flagged):
        if owners_taken:  # two campaigns would both take the population's first logins: the same accounts
            section.comments["accounts"] = (f"flagged accounts; {owners} also sent their owner's mail, but an "
                                            "earlier campaign already takes its logins from a user population")
        else:
            section.set("accounts_from", biggest.values["name"], f"{owners} of the {len(flagged)} accounts also "
                        "sent their owner's mail: the stolen logins are subscribers' (a lock or throttle hits the "
                        "owner too)")
            took = True
    section.set("origins", {f"bot-{k}": v for k, v in _shares(addr_origin).items()},
                _share_evidence(addr_origin, "bot addresses"))
    section.set("parallel", parallel, "median over bot addresses of their most sessions at once")
    if len(gaps):
        rtt_half = 0.5 * _mean_rtt(sessions, bots, options)
        pauses = np.asarray(gaps) + rtt_half + options.reply_time
        section.set("pause", _duration_value(pauses, 0.01), f"{len(gaps):,} gaps between an address's sessions "
                    f"(disconnect to next connect, median {np.median(gaps):.3g} s) plus the half round trip and "
                    "reply time between the client's last reply and smtpd's disconnect")
    else:
        section.set("pause", "1s", "no gap to measure (no address ran two sessions one after the other): "
                    "simsub's default")
    tries = sessions[(sessions["mail_tried"] >= 1) & (sessions["rcpt_tried"] >= 1)]
    if len(tries):
        per_message = np.maximum(1, np.round(tries["rcpt_tried"] / tries["mail_tried"])).astype(int)
        what = f"RCPT TO tried per MAIL in {len(tries):,} bot sessions"
    else:
        per_message, what = bots["recipients"], f"recipients of {len(bots):,} bot messages"
    section.set("recipients", {"dist": "empirical", "points": [list(p) for p in empirical_counts(per_message)]},
                f"{what}, mean {np.mean(per_message):.3g}")
    section.set("patience", options.bot_patience, "not in a log (--bot-patience): how long bots wait for a reply "
                "shows only under a tarpit, as 'lost connection' after the sleep")
    if options.bot_connect_timeout is not None:
        section.set("connect_timeout", options.bot_connect_timeout, "not in a log (--bot-connect-timeout): how "
                    "long bots wait for an smtpd to take the connection")
    section.set("on_timeout", options.bot_on_timeout, "not in a log (--bot-on-timeout): what a bot does when a "
                "reply is late")
    return section, took


def _concurrency_and_gaps(sessions: pd.DataFrame) -> tuple[int, list[float]]:
    """(median over addresses of the most sessions at once, gaps disconnect → next connect of one address)."""
    peaks, gaps = [], []
    timed = sessions.dropna(subset=["connect_s", "disconnect_s"]).sort_values(["addr", "connect_s"])
    for _, group in timed.groupby("addr"):
        starts, ends = group["connect_s"].to_numpy(), group["disconnect_s"].to_numpy()
        events = sorted([(s, 1) for s in starts] + [(e, -1) for e in ends], key=lambda x: (x[0], x[1]))
        level = peak = 0
        for _, step in events:
            level += step
            peak = max(peak, level)
        peaks.append(peak)
        if peak <= 1:
            gaps.extend((starts[1:] - ends[:-1]).tolist())
    parallel = max(1, int(np.median(peaks))) if peaks else 1
    return parallel, [g for g in gaps if g >= 0]


def _mean_rtt(sessions, messages, options) -> float:
    rtts = _session_rtts(sessions, messages, options, "addr")
    return float(rtts["rtt"].mean()) if len(rtts) >= 1 else 0.2


# ------------------------------------------------------------------ origins
def _origin_title(name: str, rules: OriginRules) -> str:
    return {"own": "Own network: client address in " + (", ".join(map(str, rules.mynetworks)) or "(no --mynetworks)"),
            "home": "Home-country reverse DNS: names ending in " + ", ".join("." + s for s in rules.home_suffixes),
            "foreign": "Foreign reverse DNS: any other name" + ("" if rules.home_suffixes else
                                                                 " (no --home-domain: every name counts as foreign)"),
            "unknown": "No reverse DNS: smtpd logs the name 'unknown'"}[name]


def _session_rtts(sessions: pd.DataFrame, messages: pd.DataFrame, options: CalibrateOptions, client: str) -> pd.DataFrame:
    """Per-session effective round trips of single-message sessions with both ends logged."""
    one = sessions[(sessions["mail_ok"] == 1) & sessions["disconnect_s"].notna()]
    n = one["rcpt_ok"].where(one["rcpt_ok"] >= 1)
    if n.isna().any():
        n = n.fillna(one["session_id"].map(messages.groupby("session_id")["recipients"].first()))
    one = one.assign(n=n).dropna(subset=["n"])
    rtt = effective_rtt(one["disconnect_s"] - one["connect_s"], one["n"], options.reply_time)
    return pd.DataFrame({"client": one[client].to_numpy(), "rtt": rtt, "origin": one["origin"].to_numpy(),
                         "n": one["n"].to_numpy(dtype=float)})


def _per_client_rtt(rtts: pd.DataFrame) -> pd.Series | None:
    """Each client's round trip from whole-second stamps, when the log resolves their spread; else None.

    Flooring both ends of a duration adds an error of variance 1/6 s² (triangular
    on [-1, 1]), i.e. (1/6)/(6+n)² to a session's round trip, which averages out
    over a client's sessions.  When the typical client (at least half of them) has
    :data:`MIN_SESSIONS_PER_CLIENT` timed sessions or more (bots, list owners) and
    the spread of those clients' means is more than twice the error left in them
    (variance over 4× the mean error variance), the means are kept, shrunk towards
    their average by the share of their variance that is error, so that neither
    their mean nor the clients' true spread is changed by the rounding.
    """
    noise = (1 / 6) / (6 + rtts["n"]) ** 2
    per = pd.DataFrame({"rtt": rtts["rtt"], "noise": noise, "client": rtts["client"]}).groupby("client").agg(
        mean=("rtt", "mean"), noise=("noise", "sum"), sessions=("rtt", "size"))
    many = per[per["sessions"] >= MIN_SESSIONS_PER_CLIENT]
    if len(many) < 2 or 2 * len(many) < len(per):
        return None
    error = float((many["noise"] / many["sessions"] ** 2).mean())  # variance of a client's mean
    spread = float(many["mean"].var(ddof=1))
    if not spread > 4 * error:
        return None
    centre = float(many["mean"].mean())
    return centre + (many["mean"] - centre) * math.sqrt(1 - error / spread)


def _origin(key: str, name: str, traffic: Traffic, sessions: pd.DataFrame, messages: pd.DataFrame, client: str,
            rules: OriginRules, options: CalibrateOptions) -> Section:
    """The origin table ``key`` for the clients of class ``name`` in ``sessions``/``messages``."""
    section = Section({})
    names = messages.loc[messages["origin"] == name, "client_name"]
    section.set("hostname", _hostname_pattern(names, name, rules), "" if name == "unknown" else
                f"the most common domain of {names.nunique():,} client names of this class")
    if name == "own" and rules.mynetworks:
        # The own network keeps its real range: permit_mynetworks, the export's mynetworks and a
        # replay of the log (which tells own clients by address) must all see the same network.
        largest = max(rules.mynetworks, key=lambda n: n.num_addresses)
        section.set("network", str(largest), "--mynetworks" + ("" if len(rules.mynetworks) == 1 else
                    f" (the largest of its {len(rules.mynetworks)} ranges: an origin has one)"))
    else:
        section.set("network", NETWORKS[key], "the model's address range, one address per client (the log's "
                    "addresses are not reused; address-keyed maps must be rewritten)")
    rtts = _session_rtts(sessions[sessions["origin"] == name], messages, options, client)
    if len(rtts) >= MIN_TIMED_SESSIONS:
        if traffic.resolution_s < 1.0:
            per_client = rtts.groupby("client")["rtt"].median()
            section.set("rtt", _duration_value(per_client, 0.001),
                        f"effective round trip of {len(per_client):,} clients (median over each one's "
                        f"{len(rtts):,} single-message sessions: duration = (6+n)·rtt + (7+n)·reply_time)")
        elif (per_client := _per_client_rtt(rtts)) is not None:
            section.set("rtt", _duration_value(per_client.clip(lower=0), 0.001),
                        f"effective round trip of {len(per_client):,} clients with at least "
                        f"{MIN_SESSIONS_PER_CLIENT} timed single-message sessions each (duration = (6+n)·rtt + "
                        "(7+n)·reply_time): the mean over each one's sessions, where whole-second stamps average "
                        "out, shrunk towards the clients' average by the rounding's share of their spread")
        else:
            section.set("rtt", round(float(rtts["rtt"].mean()), 4),
                        f"mean effective round trip of {len(rtts):,} single-message sessions (duration = "
                        "(6+n)·rtt + (7+n)·reply_time); whole-second stamps: their rounding averages out in "
                        "the mean, not in a spread, so a constant")
    else:
        section.set("rtt", DEFAULT_RTT[name], f"only {len(rtts)} timed single-message sessions "
                    f"(fewer than {MIN_TIMED_SESSIONS}): MODEL.md §5's round trip for this class")
    if name == "own":
        section.set("mynetworks", True, "matched by permit_mynetworks")
    return section


def _hostname_pattern(names: pd.Series, origin: str, rules: OriginRules) -> str:
    if origin == "unknown":
        return "unknown"
    domains = [n.lower().split(".", 1)[1] for n in names if "." in n and n != "unknown"]
    domains = ["".join(ch for ch in d if ch in _HOST_CHARACTERS).strip(".") for d in domains]
    domains = [d for d in domains if d]
    if not domains:
        if origin == "own" and len(names) and (names == "unknown").mean() > 0.5:
            return "unknown"
        suffix = rules.home_suffixes[0] if origin == "home" and rules.home_suffixes else "example"
        return f"h{{n}}.{origin}.{suffix}"
    return "h{n}." + pd.Series(domains).value_counts().index[0]


# ------------------------------------------------------------------ MTA, policies, header
def _mta(parsed, traffic: Traffic) -> Section:
    sessions = parsed.sessions.dropna(subset=["connect_s", "disconnect_s"])
    events = np.concatenate([np.stack([sessions["connect_s"], np.ones(len(sessions))], axis=1),
                             np.stack([sessions["disconnect_s"], -np.ones(len(sessions))], axis=1)])
    peak = 0
    if len(events):
        order = np.lexsort((events[:, 1], events[:, 0]))
        peak = int(np.max(np.cumsum(events[order, 1])))
    section = Section({})
    section.header = ["Not in a log: master.cf's maxproc, the accept queue and smtpd's time per reply."]
    section.set("process_limit", max(100, peak), f"at least the {peak} sessions the log shows at once "
                "(Postfix's default_process_limit is 100)")
    section.set("backlog", 100, "Postfix's default")
    section.set("reply_time", "2ms", "assumed when the round trips were fitted")
    return section


def _policies(traffic: Traffic, legit: pd.DataFrame, bots: pd.DataFrame) -> dict[str, Section]:
    none = Section({"description": "No restrictions beyond authentication (what the log's server is assumed to run)."})
    hour = np.floor((legit["accepted_s"] - traffic.t0_s) / 3600)
    legit_peak = int(legit.groupby([legit["account"], hour]).size().max())
    throttle = Section({})
    bot_note = ""
    if len(bots):
        bot_hour = np.floor((bots["accepted_s"] - traffic.t0_s) / 3600)
        bot_note = f"; the busiest stolen account sent {int(bots.groupby([bots['account'], bot_hour]).size().max())}"
    throttle.header = [f"The busiest legitimate account sent {legit_peak} messages in one clock hour of the log"
                       f"{bot_note}: a limit of {legit_peak} an hour would have deferred no legitimate message of the "
                       "log (simulated users, drawn at their class's rate, may still exceed it)."]
    throttle.set("description", f"{legit_peak} messages per hour per sasl_username (the log's legitimate peak); "
                 "beyond it, 4xx.")
    throttle.set("recipient_restrictions", ["check_policy_service ratelimit", "permit_sasl_authenticated", "reject"])
    throttle.set("services", {"ratelimit": {"type": "ratelimit", "key": "sasl_username", "count": "messages",
                                            "limit": legit_peak, "window": "1h", "algorithm": "fixed",
                                            "action": "DEFER"}})
    return {"none": none, "throttle-legit-peak": throttle}


def _header(parsed, traffic: Traffic, legit, bots, flagged, options: CalibrateOptions) -> list[str]:
    stats = getattr(parsed, "stats", {}) or {}
    lines = [f"{options.name} — a scenario fitted by `simsub calibrate` to {options.source}."]
    if stats:
        lines.append(f"Log: {stats.get('lines_read', '?'):,} lines read, {stats.get('lines_used', '?'):,} used."
                     if isinstance(stats.get("lines_read"), int) and isinstance(stats.get("lines_used"), int)
                     else "Log statistics: " + ", ".join(f"{k}={v}" for k, v in stats.items() if k != "files"))
    first = datetime.fromtimestamp(traffic.t0_s + traffic.utc_offset_s, tz=timezone.utc)
    lines += [
        f"Submission traffic: {len(traffic.sessions):,} sessions, {len(traffic.messages):,} messages; time 0 is "
        f"{first:%Y-%m-%d %H:%M} server time (UTC{traffic.utc_offset_s / 3600:+g} h of the log's clock), "
        f"horizon {traffic.horizon_s / 3600:g} h; stamps {'to the second' if traffic.resolution_s >= 1 else 'sub-second'}.",
        f"Legitimate: {len(legit):,} messages from {legit['account'].nunique():,} accounts; "
        f"flagged as stolen: {len(flagged)} accounts, {len(bots):,} messages.",
        "Not identifiable from a log, set to documented defaults below and marked 'not in a log': how long "
        "clients wait for a reply (patience, connect_timeout), what they do after a 4xx (retries), the bots' "
        "patience, and the smtpd process limit.  Round trips are effective ones fitted to session durations.",
    ]
    lines += traffic.notes
    return lines


# ------------------------------------------------------------------ formatting helpers
def _shares(values: pd.Series) -> dict[str, float]:
    """Shares of each origin class, rounded to 6 decimals, summing to exactly 1 (a class that rounds to 0 is left out)."""
    counts = values.value_counts()
    shares = {c: round(float(counts.get(c, 0) / counts.sum()), 6) for c in ORIGIN_CLASSES if counts.get(c, 0)}
    shares = {c: v for c, v in shares.items() if v > 0}
    top = max(shares, key=shares.get)
    shares[top] = round(1.0 - sum(v for k, v in shares.items() if k != top), 6)
    return shares


def _share_evidence(values: pd.Series, what: str) -> str:
    counts = values.value_counts()
    return f"{len(values):,} {what} by their most frequent origin: " + ", ".join(
        f"{c} {counts[c]:,}" for c in ORIGIN_CLASSES if counts.get(c, 0))


def _quantiles(values) -> str:
    values = np.asarray(values, dtype=float)
    if not len(values):
        return "none"
    q = np.quantile(values, [0.5, 0.9, 0.99])
    return f"median {q[0]:g}, p90 {q[1]:g}, p99 {q[2]:g}, max {values.max():g}, mean {values.mean():.3g}"


def _diurnal_comment(traffic: Traffic) -> str:
    return (f"legitimate messages per hour over the hours the log covers, mean 1; index 0 is "
            f"{traffic.start_hour:02d}:00 server time")


def _round_sig(x: float, digits: int) -> float:
    return float(f"{x:.{digits}g}")


def _duration_text(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds % 3600 == 0 and seconds:
        return f"{seconds / 3600:g}h"
    return f"{round(seconds, 3):g}s"


def _duration_value(samples, step: float) -> Any:
    """A constant when every sample rounds to one value, else an empirical distribution (seconds)."""
    samples = np.asarray(samples, dtype=float)
    if np.ptp(samples) < step:
        return f"{round(float(np.mean(samples)), 3):g}s"
    return {"dist": "empirical", "points": [list(p) for p in empirical_durations(samples, step=step)]}


def _detection_text(d: DetectionOptions) -> str:
    burst = (f"burst: > {d.burst_factor:g}× the median of ≥ {d.burst_history} other active days and ≥ "
             f"{d.burst_min} recipients" + ("" if d.burst_any_network else ", mostly from new networks"))
    return (f"spread: > {d.max_addresses} addresses or > {d.max_networks} networks a day; suspect: > "
            f"{d.max_suspect} addresses without home rDNS a day; {burst}")
