"""The run summary (``summary.json``): metric definitions from MODEL.md §4.

* **False delay** of a legitimate message: first attempt → final 250, minus the
  same dialogue with no policy delay and a free smtpd.  Percentiles are over
  accepted messages.
* **False-delay rate at x**: share of *all* legitimate messages delayed more
  than x; a message never accepted counts as delayed beyond every x.
* **Spam accepted**: spam recipients the server accepted for delivery (held or
  discarded messages are not counted: they will not be sent).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .tables import ACCEPTED_OUTCOMES

FALSE_DELAY_THRESHOLDS = {"1s": 1.0, "5s": 5.0, "30s": 30.0}


def _quantiles(values: np.ndarray) -> dict[str, float | None]:
    if len(values) == 0:
        return {"mean": None, "p50": None, "p95": None, "p99": None, "max": None}
    p50, p95, p99 = np.quantile(values, [0.5, 0.95, 0.99])
    return {"mean": float(values.mean()), "p50": float(p50), "p95": float(p95),
            "p99": float(p99), "max": float(values.max())}


def legit_metrics(messages: pd.DataFrame) -> dict:
    """Metrics of the legitimate messages in ``messages`` (any subset, e.g. one origin)."""
    outcome = messages["outcome"].astype(str)
    accepted = outcome.isin(ACCEPTED_OUTCOMES).to_numpy()
    delays = messages["false_delay_s"].to_numpy()[accepted]
    total = len(messages)
    rates = {}
    for label, threshold in FALSE_DELAY_THRESHOLDS.items():
        delayed = int((delays > threshold).sum()) + int((~accepted).sum())
        rates[label] = delayed / total if total else None
    failures = outcome[~accepted].value_counts()
    return {
        "messages": total,
        "accepted": int(accepted.sum()),
        "failed": int((~accepted).sum()),
        "failed_by_outcome": {k: int(v) for k, v in failures.items() if v},
        "held": int((outcome == "held").sum()),
        "recipients": int(messages["recipients"].sum()),
        "recipients_accepted": int(messages["recipients_accepted"].sum()),
        "attempts_mean": float(messages["attempts"].mean()) if total else None,
        "false_delay": _quantiles(delays),
        "false_delay_rate": rates,
        "slot_wait": _quantiles(messages["slot_wait_s"].to_numpy()),
    }


def spam_metrics(messages: pd.DataFrame, bots: int | None = None) -> dict:
    """Spam metrics; ``bots`` is the number of bots in the scenario (the share of
    bots succeeding counts those that never got to run a session as failing)."""
    outcome = messages["outcome"].astype(str)
    counts = outcome.value_counts()
    total = len(messages)
    accepted = int(counts.get("accepted", 0))
    by_bot = messages.assign(ok=(outcome == "accepted").to_numpy()).groupby(["population", "client"], observed=True)["ok"].any()
    return {
        "messages": total,
        "accepted": accepted,
        "held": int(counts.get("held", 0) + counts.get("discarded", 0)),
        "aborted": int(counts.get("timeout", 0) + counts.get("abandoned", 0)),
        "rejected": int(counts.get("rejected", 0) + counts.get("auth_failed", 0)),
        "auth_failed": int(counts.get("auth_failed", 0)),
        "deferred": int(counts.get("deferred", 0)),
        "refused": int(counts.get("refused", 0)),
        "recipients_attempted": int(messages["recipients"].sum()),
        "recipients_accepted": int(messages.loc[(outcome == "accepted").to_numpy(), "recipients_accepted"].sum()),
        "session_success_rate": accepted / total if total else None,
        "bots_succeeding": (float(by_bot.sum()) / (bots or len(by_bot))) if (bots or len(by_bot)) else None,
        "accounts_used": int(messages["account"].nunique()),
    }


def smtpd_metrics(sessions: pd.DataFrame, timeseries: pd.DataFrame, process_limit: int, end_s: float,
                  busy_peak: int) -> dict:
    outcome = sessions["outcome"].astype(str)
    served = ~outcome.isin(["refused", "abandoned"]).to_numpy()
    hold = sessions["slot_hold_s"].to_numpy()
    busy_area = float(hold.sum())
    return {
        "process_limit": process_limit,
        "connections": len(sessions),
        "refused": int((outcome == "refused").sum()),
        "abandoned": int((outcome == "abandoned").sum()),
        "busy_mean": busy_area / end_s if end_s > 0 else 0.0,
        "busy_peak": int(busy_peak),
        "queue_peak": int(timeseries["queue_peak"].max()) if len(timeseries) else 0,
        "session_mean_s": float(hold[served].mean()) if served.any() else None,
        "slot_wait_mean_s": float(sessions["slot_wait_s"].to_numpy()[served].mean()) if served.any() else None,
    }


def by_origin(messages: pd.DataFrame, metric) -> dict:
    return {str(origin): metric(group) for origin, group in messages.groupby("origin", observed=True)}


def build_summary(run: dict, messages: pd.DataFrame, sessions: pd.DataFrame, timeseries: pd.DataFrame,
                  process_limit: int, busy_peak: int, bots: int | None = None) -> dict:
    legit = messages[(messages["kind"] == "user").to_numpy()]
    spam = messages[(messages["kind"] == "bot").to_numpy()]
    summary = {
        "run": run,
        "legit": legit_metrics(legit),
        "spam": spam_metrics(spam, bots),
        "smtpd": smtpd_metrics(sessions, timeseries, process_limit, run["end_s"], busy_peak),
    }
    summary["legit"]["by_origin"] = by_origin(legit, _origin_brief)
    summary["spam"]["by_origin"] = by_origin(spam, lambda g: {
        "messages": len(g),
        "recipients_accepted": int(g.loc[(g["outcome"].astype(str) == "accepted").to_numpy(), "recipients_accepted"].sum()),
    })
    return summary


def _origin_brief(group: pd.DataFrame) -> dict:
    full = legit_metrics(group)
    return {
        "messages": full["messages"],
        "failed": full["failed"],
        "false_delay_p95": full["false_delay"]["p95"],
        "false_delay_rate": full["false_delay_rate"],
    }


def json_safe(value):
    """JSON-safe: NaN/inf become null, numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def behind_the_front_end(summary: dict, deliveries: pd.DataFrame, timeseries: pd.DataFrame, totals: dict,
                         intervals: dict[str, list[tuple[float, float]]], list_names: list[str],
                         events: pd.DataFrame) -> None:
    """Add the mail queue, delivery, reputation and operator metrics to ``summary``."""
    kind = deliveries["kind"].astype(str).to_numpy()
    legit = deliveries[kind == "legit"]
    spam = deliveries[kind == "spam"]
    summary["queue"] = {
        "peak_active": int(timeseries["mail_active_peak"].max()) if len(timeseries) else 0,
        "peak_deferred": int(timeseries["mail_deferred_peak"].max()) if len(timeseries) else 0,
        "bounces": int(totals.get("bounces", 0)),
        "double_bounces": int(totals.get("double_bounces", 0)),
        "purged": int(totals.get("purged", 0)),
        "expired": int(deliveries["expired"].sum()),
        "queued_at_end": int(deliveries["queued"].sum()),
        "delivery_attempts": int(totals.get("delivery_attempts", 0)),
        "suspended_recipients": int(totals.get("suspended_recipients", 0)),
        "suspensions": int(totals.get("suspensions", 0)),
    }
    latency = legit["latency_s"].dropna().to_numpy()
    summary["legit"]["delivery_latency"] = _quantiles(latency)
    summary["legit"]["recipients_delivered"] = int(legit["delivered"].sum())
    summary["legit"]["bounced"] = int(legit["bounced"].sum() + legit["expired"].sum())
    summary["legit"]["still_queued"] = int(legit["queued"].sum())
    summary["spam"]["recipients_delivered"] = int(spam["delivered"].sum())
    summary["spam"]["recipients_bounced"] = int(spam["bounced"].sum())
    summary["reputation"] = {
        name: {
            "listed_s": float(sum(b - a for a, b in intervals.get(name, []))),
            "listings": len(intervals.get(name, [])),
            "first_listed_at_s": intervals[name][0][0] if intervals.get(name) else None,
        }
        for name in list_names
    }
    if "detected_at_s" in totals:
        actions = events[events["event"] == "action"]
        summary["operator"] = {
            "detected_at_s": totals["detected_at_s"],
            "first_action_at_s": float(actions["t_s"].iloc[0]) if len(actions) else None,
            "actions": len(actions),
            "accounts_reset": int(totals.get("accounts_reset", 0)),
        }
