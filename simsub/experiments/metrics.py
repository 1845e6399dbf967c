"""Which numbers of a run an experiment keeps, and which it puts in front.

A run's ``summary.json`` is a nested dict; experiments flatten it to dotted
names (``legit.false_delay_rate.5s``) and add the metrics that need more than
one run (``spam.reduction``, against the baseline policy on the same seed).
"""

from __future__ import annotations

import math
from typing import Any

from .types import Metric

#: Derived against the baseline: 1 - spam recipients accepted / the baseline's, same seed and point.
SPAM_REDUCTION = "spam.reduction"
#: The harm: spam recipients the server accepted, per run.
SPAM_ACCEPTED = "spam.recipients_accepted"
#: The cost: share of legitimate messages delayed more than 5 s (failed ones included).
FALSE_DELAY_5S = "legit.false_delay_rate.5s"

#: The metrics reports and charts lead with, in this order.
HEADLINE: tuple[Metric, ...] = (
    Metric(SPAM_ACCEPTED, "spam recipients accepted", "count", "lower"),
    Metric(SPAM_REDUCTION, "spam recipients cut (vs baseline)", "share", "higher"),
    Metric("spam.bots_succeeding", "bots that got spam accepted", "share", "lower"),
    Metric("legit.false_delay_rate.1s", "legit mail delayed > 1 s", "share", "lower"),
    Metric(FALSE_DELAY_5S, "legit mail delayed > 5 s", "share", "lower"),
    Metric("legit.false_delay_rate.30s", "legit mail delayed > 30 s", "share", "lower"),
    Metric("legit.false_delay.p95", "legit false delay p95", "seconds", "lower"),
    Metric("legit.failed", "legit messages never accepted", "count", "lower"),
    Metric("smtpd.busy_mean", "smtpd processes busy (mean)", "number", "lower"),
    Metric("smtpd.refused", "connections refused (no free smtpd)", "count", "lower"),
)
#: Added to the headline when the scenario follows mail behind the front end.
HEADLINE_QUEUE: tuple[Metric, ...] = (
    Metric("queue.peak_deferred", "deferred queue peak (messages)", "count", "lower"),
    Metric("legit.delivery_latency.p95", "legit delivery latency p95", "seconds", "lower"),
    Metric("legit.bounced", "legit recipients bounced", "count", "lower"),
    Metric("reputation.listed_h_total", "hours listed (sum over lists)", "hours", "lower"),
)

#: Leaves of ``summary.json`` that describe the run rather than measure it.
_NOT_METRICS = ("run.",)


def flatten_summary(summary: dict) -> dict[str, float]:
    """Every numeric leaf of ``summary`` by dotted name; None becomes NaN.

    ``reputation.listed_h_total`` is added when the summary has lists.
    """
    flat: dict[str, float] = {}

    def walk(node: Any, prefix: str) -> None:
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(value, name + ".")
            elif name.startswith(_NOT_METRICS) or isinstance(value, str):
                continue
            elif value is None:
                flat[name] = math.nan
            elif isinstance(value, (bool, int, float)):
                flat[name] = float(value)

    walk(summary, "")
    if "reputation" in summary:
        flat["reputation.listed_h_total"] = sum(v["listed_s"] for v in summary["reputation"].values()) / 3600.0
    return flat


def headline_for(has_queue: bool, has_baseline: bool) -> tuple[Metric, ...]:
    metrics = HEADLINE + (HEADLINE_QUEUE if has_queue else ())
    return tuple(m for m in metrics if has_baseline or m.name != SPAM_REDUCTION)


def metric_named(name: str) -> Metric | None:
    for metric in HEADLINE + HEADLINE_QUEUE:
        if metric.name == name:
            return metric
    return None


def guess_unit(name: str) -> str:
    """The unit of any flattened metric name (for bounds checks and formatting)."""
    known = metric_named(name)
    if known:
        return known.unit
    leaf = name.rsplit(".", 1)[-1]
    if "rate" in name or leaf in ("bots_succeeding", "reduction"):
        return "share"
    if leaf.endswith("_s") or leaf in ("mean", "p50", "p95", "p99", "max"):
        return "seconds"
    if leaf.endswith("_h_total"):
        return "hours"
    if leaf in ("busy_mean",):
        return "number"
    return "count"


def known_metrics(scenario) -> set[str]:
    """Every metric name a run of ``scenario`` reports (plus ``spam.reduction``), for
    checking ``--require``/``--minimize`` before any run.  A test keeps this in
    step with :func:`flatten_summary` of real runs."""
    quantiles = ("mean", "p50", "p95", "p99", "max")
    rates = ("1s", "5s", "30s")
    names = {f"legit.{k}" for k in ("messages", "accepted", "failed", "held", "recipients", "recipients_accepted",
                                     "attempts_mean")}
    names |= {f"legit.{group}.{q}" for group in ("false_delay", "slot_wait") for q in quantiles}
    names |= {f"legit.false_delay_rate.{r}" for r in rates}
    for origin in scenario.origins:
        names |= {f"legit.by_origin.{origin}.{k}" for k in ("messages", "failed", "false_delay_p95")}
        names |= {f"legit.by_origin.{origin}.false_delay_rate.{r}" for r in rates}
        names |= {f"spam.by_origin.{origin}.{k}" for k in ("messages", "recipients_accepted")}
    names |= {f"spam.{k}" for k in ("messages", "accepted", "held", "aborted", "rejected", "auth_failed", "deferred",
                                    "refused", "recipients_attempted", "recipients_accepted", "session_success_rate",
                                    "bots_succeeding", "accounts_used")}
    names.add(SPAM_REDUCTION)
    names |= {f"smtpd.{k}" for k in ("process_limit", "connections", "refused", "abandoned", "busy_mean", "busy_peak",
                                     "queue_peak", "session_mean_s", "slot_wait_mean_s")}
    if scenario.queue is not None:
        names |= {f"legit.delivery_latency.{q}" for q in quantiles}
        names |= {f"legit.{k}" for k in ("recipients_delivered", "bounced", "still_queued")}
        names |= {f"spam.{k}" for k in ("recipients_delivered", "recipients_bounced")}
        names |= {f"queue.{k}" for k in ("peak_active", "peak_deferred", "bounces", "double_bounces", "purged",
                                         "expired", "queued_at_end", "delivery_attempts", "suspended_recipients",
                                         "suspensions")}
        for name in scenario.reputation:
            names |= {f"reputation.{name}.{k}" for k in ("listed_s", "listings", "first_listed_at_s")}
        names.add("reputation.listed_h_total")
        if scenario.operator is not None:
            names |= {f"operator.{k}" for k in ("detected_at_s", "first_action_at_s", "actions", "accounts_reset")}
    return names
