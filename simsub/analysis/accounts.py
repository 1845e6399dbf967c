"""What a policy does to each login: the account-by-account view of a replayed maillog.

Admins ask "what would this rule have done to yesterday's mail?" and "who
would it have hurt?".  :func:`account_impact` answers per ``sasl_username``
from one run's messages table: for a legitimate sender, how many of its
messages were delayed or never accepted (and why); for a flagged (stolen)
account, how much of its logged mail the policy stopped.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .tables import ACCEPTED_OUTCOMES

#: Delays (s) an account's messages are counted against.
DELAY_THRESHOLDS_S = (5.0, 30.0)


def account_impact(messages: pd.DataFrame) -> pd.DataFrame:
    """One row per (kind, account): messages and recipients, accepted, delayed > 5 s and
    > 30 s (legitimate mail; false delay as in the summary), never accepted with the
    outcomes, and the share of recipients the policy stopped.  Sorted: legitimate
    accounts most hurt first, then flagged accounts least stopped first."""
    if messages.empty:
        return pd.DataFrame(columns=["kind", "account", "messages", "recipients", "accepted", "delayed_5s",
                                     "delayed_30s", "never_accepted", "why_not", "recipients_accepted",
                                     "stopped_share", "max_false_delay_s"])
    frame = messages.assign(
        accepted_flag=messages["outcome"].astype(str).isin(ACCEPTED_OUTCOMES).to_numpy(),
        kind=messages["kind"].astype(str), account=messages["account"].astype(str),
        outcome=messages["outcome"].astype(str))
    rows = []
    for (kind, account), group in frame.groupby(["kind", "account"], sort=True):
        accepted = group["accepted_flag"].to_numpy()
        delay = group["false_delay_s"].to_numpy()
        failed = group.loc[~accepted, "outcome"].value_counts()
        recipients = int(group["recipients"].sum())
        got = int(group["recipients_accepted"].sum())
        rows.append({
            "kind": "legit" if kind == "user" else "flagged",
            "account": account,
            "messages": len(group),
            "recipients": recipients,
            "accepted": int(accepted.sum()),
            # a message never accepted counts as delayed beyond every threshold, as in the summary
            "delayed_5s": int(((delay > DELAY_THRESHOLDS_S[0]) | ~accepted).sum()),
            "delayed_30s": int(((delay > DELAY_THRESHOLDS_S[1]) | ~accepted).sum()),
            "never_accepted": int((~accepted).sum()),
            "why_not": ", ".join(f"{n} {o}" for o, n in failed.items()),
            "recipients_accepted": got,
            "stopped_share": 1.0 - got / recipients if recipients else np.nan,
            "max_false_delay_s": float(np.nanmax(delay)) if kind == "user" and np.isfinite(delay).any() else np.nan,
        })
    table = pd.DataFrame(rows)
    legit = table[table["kind"] == "legit"].sort_values(["never_accepted", "delayed_5s", "messages"],
                                                        ascending=False, kind="stable")
    flagged = table[table["kind"] == "flagged"].sort_values(["stopped_share", "recipients"], kind="stable")
    return pd.concat([legit, flagged], ignore_index=True)
