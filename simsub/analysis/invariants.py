"""Conservation laws every run must obey, checked on its tables.

Used by ``simsub run --check`` (and ``simsub.run(..., check=True)``, or the
environment variable ``SIMSUB_CHECK=1`` for every run, experiments included)
and by the property tests over random small scenarios.  Each law returns a
plain-language violation; an empty list means the run is consistent.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..model.outcomes import Outcome

OUTCOMES = {o.name.lower() for o in Outcome}
#: Floating-point slack for times computed along different paths, seconds.
EPS = 1e-6


class InvariantError(AssertionError):
    """A run broke a conservation law: a bug in simsub, never bad input."""


def violations(result) -> list[str]:
    """Every broken law of ``result`` (a :class:`simsub.api.Result`)."""
    found: list[str] = []
    found += _one_outcome_each(result.messages, "message")
    found += _one_outcome_each(result.sessions, "session")
    found += _time_runs_forward(result)
    found += _slots_within_limit(result)
    if result.deliveries is not None:
        found += _recipients_accounted(result)
    for name, listing in result.summary.get("reputation", {}).items():
        if not 0 <= listing["listed_s"] <= result.summary["run"]["end_s"] + EPS:
            found.append(f"list {name}: listed for {listing['listed_s']} s, outside [0, the run's length]")
    return found


def check(result) -> None:
    """Raise :class:`InvariantError` listing every broken law."""
    found = violations(result)
    if found:
        raise InvariantError(f"{len(found)} invariant(s) broken in {result.scenario.name} / {result.policy} / "
                             f"seed {result.seed}: " + "; ".join(found))


def _one_outcome_each(table: pd.DataFrame, what: str) -> list[str]:
    outcome = table["outcome"].astype(str)
    bad = ~outcome.isin(OUTCOMES)
    return [f"{int(bad.sum())} {what}s without exactly one known outcome"] if bad.any() else []


def _time_runs_forward(result) -> list[str]:
    found = []
    m = result.messages
    end = result.summary["run"]["end_s"]
    if (m["end_s"] < m["first_attempt_s"] - EPS).any():
        found.append("a message ends before its first attempt")
    accepted = m["accepted_s"].notna()
    if (m.loc[accepted, "accepted_s"] < m.loc[accepted, "first_attempt_s"] - EPS).any():
        found.append("a message is accepted before its first attempt")
    if (m["first_attempt_s"] < -EPS).any() or (m["end_s"] > end + EPS).any():
        found.append("a message lies outside the run [0, end]")
    s = result.sessions
    if (s["slot_wait_s"] < -EPS).any() or (s["slot_hold_s"] < -EPS).any():
        found.append("a session waited or held a slot for negative time")
    t = result.timeseries["t_start_s"].to_numpy()
    if len(t) > 1 and (np.diff(t) <= 0).any():
        found.append("time-series bins do not run forward")
    if result.events is not None and len(result.events) and (np.diff(result.events["t_s"].to_numpy()) < -EPS).any():
        found.append("queue events are not in time order")
    return found


def _slots_within_limit(result) -> list[str]:
    limit = result.scenario.mta.process_limit
    peak = int(result.timeseries["busy_peak"].max()) if len(result.timeseries) else 0
    busy_mean = result.timeseries["busy_mean"].to_numpy()
    found = []
    if peak > limit:
        found.append(f"{peak} smtpd processes busy at once, above the process limit {limit}")
    if len(busy_mean) and (busy_mean > limit + EPS).any():
        found.append("mean busy smtpd processes above the process limit in a bin")
    return found


def _recipients_accounted(result) -> list[str]:
    d = result.deliveries
    found = []
    parts = d["delivered"] + d["bounced"] + d["purged"] + d["expired"] + d["queued"]
    if (parts != d["recipients"]).any():
        n = int((parts != d["recipients"]).sum())
        found.append(f"{n} queued messages whose recipients are not all delivered, bounced, purged, expired or "
                     "still queued")
    if (d[["delivered", "bounced", "purged", "expired", "queued"]] < 0).to_numpy().any():
        found.append("a negative recipient count in the mail queue")
    m = result.messages
    handed = int(m.loc[(m["outcome"].astype(str) == "accepted").to_numpy(), "recipients_accepted"].sum())
    kind = d["kind"].astype(str)
    queued = int(d.loc[kind.isin(["legit", "spam"]).to_numpy(), "recipients"].sum())
    if handed != queued:
        found.append(f"{handed} recipients accepted at the front end but {queued} entered the mail queue")
    return found
