"""Accounts that look stolen, and the bot traffic that used them.

Three rules, each on one account and one local day, each with its threshold
(:class:`DetectionOptions`; ``docs/calibrate.md`` gives the reasoning):

* **spread** — logins from more than ``max_addresses`` client addresses
  (IPv6: /64s) or more than ``max_networks`` networks (IPv4 /24, IPv6 /48).
* **suspect** — logins from more than ``max_suspect`` distinct addresses
  without home reverse DNS (no rDNS at all, or a foreign name).
* **burst** — more than ``burst_factor`` times the recipients of the
  account's median other active day, at least ``burst_min`` recipients, and
  (unless ``burst_any_network``) mostly from networks the account did not
  use on its other days.  Needs ``burst_history`` other active days.

A login is a session with a successful AUTH or a message carrying a
``sasl_username``.  Which of a flagged account's addresses are the bots' and
which its owner's: see :func:`bot_addresses`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from .traffic import SUSPECT_CLASSES, Traffic

FLAGGED_COLUMNS = ("account", "rules", "reasons", "days", "addresses", "networks", "suspect_addresses",
                   "recipients", "first_abuse", "first_abuse_s", "bot_addresses", "bot_messages", "bot_recipients",
                   "owner_messages", "bot_addresses_with_auth_failures")


@dataclass(frozen=True)
class DetectionOptions:
    """Thresholds of the stolen-account rules (per account and local day)."""

    max_addresses: int = 10
    max_networks: int = 6
    max_suspect: int = 3
    burst_factor: float = 10.0
    burst_min: int = 500
    burst_history: int = 2
    burst_any_network: bool = False


def logins(traffic: Traffic) -> pd.DataFrame:
    """One row per login event: account, t_s, day, addr, net, origin (sessions with a login, and messages)."""
    columns = ["account", "t_s", "day", "addr", "net", "origin"]
    s = traffic.sessions[traffic.sessions["account"] != ""].rename(columns={"connect_s": "t_s"})
    m = traffic.messages[~traffic.messages["account"].str.startswith("[")].rename(columns={"accepted_s": "t_s"})
    return pd.concat([s[columns], m[columns]], ignore_index=True)


def day_label(day: int) -> str:
    return datetime.fromtimestamp(int(day) * 86400, tz=timezone.utc).date().isoformat()


def account_days(traffic: Traffic) -> pd.DataFrame:
    """Per account and local day: distinct addresses, networks, suspect addresses, messages, recipients."""
    events = logins(traffic)
    grouped = events.groupby(["account", "day"])
    table = pd.DataFrame({"addresses": grouped["addr"].nunique(), "networks": grouped["net"].nunique()})
    suspect = events[events["origin"].isin(SUSPECT_CLASSES)].groupby(["account", "day"])["addr"].nunique()
    table["suspect_addresses"] = suspect.reindex(table.index).fillna(0).astype(int)
    mail = traffic.messages.groupby(["account", "day"])
    table["messages"] = mail.size().reindex(table.index).fillna(0).astype(int)
    table["recipients"] = mail["recipients"].sum().reindex(table.index).fillna(0).astype(int)
    return table.reset_index()


def detect(traffic: Traffic, options: DetectionOptions) -> pd.DataFrame:
    """Flagged account-days: account, day, rule, reason (one row per rule that fired)."""
    days = account_days(traffic)
    rows = []
    for r in days.itertuples(index=False):
        when = day_label(r.day)
        if r.addresses > options.max_addresses or r.networks > options.max_networks:
            rows.append((r.account, r.day, "spread", f"{when}: logins from {r.addresses} addresses "
                         f"(limit {options.max_addresses}) in {r.networks} networks (limit {options.max_networks})"))
        if r.suspect_addresses > options.max_suspect:
            rows.append((r.account, r.day, "suspect", f"{when}: logins from {r.suspect_addresses} addresses "
                         f"without home rDNS (limit {options.max_suspect})"))
    rows += _bursts(traffic, days, options)
    return pd.DataFrame(rows, columns=["account", "day", "rule", "reason"])


def _bursts(traffic: Traffic, days: pd.DataFrame, options: DetectionOptions) -> list[tuple]:
    rows = []
    candidates = days[days["recipients"] >= options.burst_min]
    if candidates.empty:
        return rows
    wanted = set(candidates["account"])
    active = days[(days["messages"] > 0) & days["account"].isin(wanted)]
    by_account = dict(tuple(active.groupby("account")))
    messages = traffic.messages[traffic.messages["account"].isin(wanted)]
    for r in candidates.itertuples(index=False):
        history = by_account.get(r.account)
        other = history[history["day"] != r.day] if history is not None else None
        if other is None or len(other) < options.burst_history:
            continue
        baseline = float(np.median(other["recipients"]))
        if r.recipients <= options.burst_factor * max(baseline, 1.0):
            continue
        mine = messages[messages["account"] == r.account]
        known = set(mine.loc[mine["day"] != r.day, "net"])
        today = mine[mine["day"] == r.day]
        new_share = today.loc[~today["net"].isin(known), "recipients"].sum() / max(1, today["recipients"].sum())
        if not options.burst_any_network and new_share < 0.5:
            continue
        rows.append((r.account, r.day, "burst", f"{day_label(r.day)}: {r.recipients} recipients, {r.recipients / max(baseline, 1):.0f}× "
                     f"the median {baseline:g} of its {len(other)} other active days (limit {options.burst_factor:g}×, "
                     f"at least {options.burst_min}); {new_share:.0%} from networks new to the account"))
    return rows


def bot_addresses(traffic: Traffic, hits: pd.DataFrame) -> dict[str, set[str]]:
    """The addresses of each flagged account that the bots used.

    Addresses the account used on days no rule fired are its owner's.  If the
    account shares an address with another flagged account (one botnet using
    several stolen logins), its bots are exactly its shared addresses and the
    others are its owner's.  Otherwise every address of its flagged days that
    the owner did not use on other days is a bot's (all of them if none is
    left, e.g. a burst from the owner's own network with ``burst_any_network``).
    """
    events = logins(traffic)
    flagged_days = set(zip(hits["account"], hits["day"]))
    events = events[events["account"].isin(set(hits["account"]))]
    on_flagged = np.array([(a, d) in flagged_days for a, d in zip(events["account"], events["day"])], dtype=bool)
    bad = events[on_flagged]
    users_of = bad.groupby("addr")["account"].nunique()
    shared = set(users_of[users_of >= 2].index)
    result = {}
    for account, group in bad.groupby("account"):
        seen = set(group["addr"])
        owner = set(events.loc[(events["account"] == account) & ~on_flagged, "addr"])
        if seen & shared:
            result[account] = seen & shared
        else:
            result[account] = (seen - owner) or seen
    return result


def flag_accounts(traffic: Traffic, options: DetectionOptions) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
    """Detect, then split the flagged accounts' traffic between bots and owners.

    Returns (flagged table with ``FLAGGED_COLUMNS``, a boolean Series over
    ``traffic.messages`` marking bot messages, the bot sessions).  A bot message
    is a flagged account's message from one of its bot addresses at or after
    its first abuse (the first login from such an address on a flagged day).
    """
    hits = detect(traffic, options)
    is_bot = pd.Series(False, index=traffic.messages.index)
    if hits.empty:
        return pd.DataFrame(columns=FLAGGED_COLUMNS), is_bot, traffic.sessions.iloc[0:0]
    bots = bot_addresses(traffic, hits)
    events = logins(traffic)
    events = events[events["account"].isin(bots)]
    events_of = dict(tuple(events.groupby("account")))
    candidates = traffic.messages[traffic.messages["account"].isin(bots)]
    messages_of = dict(tuple(candidates.groupby("account")))
    failing = set(traffic.auth_failures["addr"]) if len(traffic.auth_failures) else set()
    rows = []
    for account, group in hits.groupby("account", sort=True):
        addrs = bots[account]
        mine = events_of[account]
        flagged_days = set(group["day"])
        start = float(mine.loc[mine["addr"].isin(addrs) & mine["day"].isin(flagged_days), "t_s"].min())
        messages = messages_of.get(account, candidates.iloc[0:0])
        mask = messages["addr"].isin(addrs) & (messages["accepted_s"] >= start)
        is_bot[mask[mask].index] = True
        day_rows = mine[mine["day"].isin(flagged_days)]
        rows.append({
            "account": account,
            "rules": ",".join(sorted(set(group["rule"]))),
            "reasons": "; ".join(group["reason"]),
            "days": ",".join(day_label(d) for d in sorted(flagged_days)),
            "addresses": int(day_rows["addr"].nunique()),
            "networks": int(day_rows["net"].nunique()),
            "suspect_addresses": int(day_rows.loc[day_rows["origin"].isin(SUSPECT_CLASSES), "addr"].nunique()),
            "recipients": int(messages.loc[messages["day"].isin(flagged_days), "recipients"].sum()),
            "first_abuse": datetime.fromtimestamp(start + traffic.utc_offset_s, tz=timezone.utc)
            .replace(tzinfo=None).isoformat(timespec="seconds"),  # server time, as the days
            "first_abuse_s": start,
            "bot_addresses": len(addrs),
            "bot_messages": int(mask.sum()),
            "bot_recipients": int(messages.loc[mask, "recipients"].sum()),
            "owner_messages": int((~mask).sum()),
            "bot_addresses_with_auth_failures": len(addrs & failing),
        })
    flagged = pd.DataFrame(rows, columns=FLAGGED_COLUMNS)
    all_bot = set().union(*bots.values())
    sessions = traffic.sessions
    start = flagged["first_abuse_s"].min()
    bot_sessions = sessions[sessions["addr"].isin(all_bot) & (sessions["connect_s"] >= start)
                            & (sessions["account"].isin(set(flagged["account"])) | (sessions["account"] == ""))]
    return flagged, is_bot, bot_sessions
