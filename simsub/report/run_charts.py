"""The two charts of a run: throughput over time, and legitimate false delay."""

from __future__ import annotations

from pathlib import Path

import matplotlib.ticker
# Figures are built without pyplot, so importing simsub never selects a matplotlib
# backend (a notebook keeps its own) and saving needs no display.
from matplotlib.figure import Figure
import numpy as np
import pandas as pd

from ..analysis.summary import FALSE_DELAY_THRESHOLDS
from ..analysis.tables import ACCEPTED_OUTCOMES

LEGIT_COLOR = "#1f77b4"
SPAM_COLOR = "#d62728"


def throughput_chart(timeseries: pd.DataFrame, title: str, process_limit: int, bin_width: float,
                     path: Path) -> None:
    """Accepted recipients per bin (legit, spam) above smtpd slots busy."""
    hours = timeseries["t_start_s"].to_numpy() / 3600.0
    step = dict(where="post")
    fig = Figure(figsize=(10, 6.5))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    minutes = bin_width / 60
    top.step(hours, timeseries["spam_recipients_accepted"], color=SPAM_COLOR, label="spam", **step)
    top.step(hours, timeseries["legit_recipients_accepted"], color=LEGIT_COLOR, label="legitimate", **step)
    top.set_yscale("symlog", linthresh=10)
    top.set_ylim(bottom=0)
    top.set_ylabel(f"recipients accepted\nper {minutes:g} min (symlog)")
    top.legend(loc="upper left", frameon=False)
    top.grid(alpha=0.3)
    top.set_title(title)

    bottom.fill_between(hours, timeseries["busy_peak"], step="post", color="0.85", label="busy (peak in bin)")
    bottom.step(hours, timeseries["busy_mean"], color="black", label="busy (mean in bin)", **step)
    if timeseries["queue_peak"].max() > 0:
        bottom.step(hours, timeseries["queue_peak"], color="#ff7f0e", label="accept queue (peak)", **step)
    bottom.axhline(process_limit, color="black", linestyle="--", linewidth=1)
    bottom.annotate(f"process limit {process_limit}", (hours[-1] if len(hours) else 0, process_limit),
                    xytext=(0, 3), textcoords="offset points", fontsize=8, ha="right")
    bottom.set_ylim(0, max(process_limit, int(timeseries["queue_peak"].max() or 0)) * 1.15)
    bottom.set_ylabel("smtpd processes")
    bottom.set_xlabel("simulated time (h)")
    bottom.legend(loc="center left", frameon=True, framealpha=0.9, fontsize=8)
    bottom.grid(alpha=0.3)
    if len(hours):
        bottom.set_xlim(0, hours[-1] + minutes / 60)
        bottom.set_xticks(np.arange(0, hours[-1] + 1e-9, max(1, round(hours[-1] / 12))))
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def false_delay_chart(messages: pd.DataFrame, title: str, path: Path) -> None:
    """Share of legitimate messages delayed more than x, one curve per origin.

    Both axes are logarithmic so that a policy that delays 0.1% of messages is
    as visible as one that delays all of them.  Messages never accepted count
    as delayed beyond every x, so a curve's right-hand plateau is its failure
    share.
    """
    legit = messages[(messages["kind"] == "user").to_numpy()]
    fig = Figure(figsize=(8, 5))
    ax = fig.subplots()
    xs = np.logspace(-2, 4, 400)  # 10 ms to ~3 h
    largest = 1
    any_delay = False
    for origin, group in legit.groupby("origin", observed=True):
        accepted = group["outcome"].astype(str).isin(ACCEPTED_OUTCOMES).to_numpy()
        delays = np.sort(group["false_delay_s"].to_numpy()[accepted])
        failed = int((~accepted).sum())
        n = len(group)
        largest = max(largest, n)
        share = (len(delays) - np.searchsorted(delays, xs, side="right") + failed) / n
        delayed = bool(share.max() > 0)
        any_delay |= delayed
        p95 = np.quantile(delays, 0.95) if len(delays) else float("nan")
        note = "" if delayed else " (none delayed > 10 ms)"
        ax.step(xs, share * 100, where="post",
                label=f"{origin}: {n:,} msgs, p95 {p95:.2f} s, {failed:,} failed{note}")
    for label, x in FALSE_DELAY_THRESHOLDS.items():
        ax.axvline(x, color="0.6", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(50 / largest, 150)  # from half a message of the largest group to 100%
    ax.autoscale(False)  # keep these limits even when every curve is zero
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda y, _: f"{y:g}%"))
    ax.set_xticks([0.01, 0.1, 1, 5, 30, 300, 3600])
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_seconds_label))
    ax.set_xlabel("false delay x (log scale)")
    ax.set_ylabel("legitimate messages delayed more than x (log scale)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="major")
    if not any_delay:
        ax.text(0.5, 0.5, f"no legitimate message was delayed by more than {xs[0] * 1000:g} ms",
                transform=ax.transAxes, ha="center", va="center", fontsize=11, color="0.3")
    ax.legend(loc="upper right", frameon=True, framealpha=0.9, fontsize=8, title="client origin",
              title_fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _seconds_label(x: float, _pos) -> str:
    if x >= 3600:
        return f"{x / 3600:g} h"
    if x >= 60:
        return f"{x / 60:g} min"
    if x >= 1:
        return f"{x:g} s"
    return f"{x * 1000:g} ms"


LIST_COLORS = ["#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22"]


def _with_listing_strip(intervals: dict[str, list[tuple[float, float]]], names: list[str]):
    """A figure with a thin strip on top: one row per reputation list, a bar while listed."""
    rows = max(len(names), 1)
    fig = Figure(figsize=(10, 5.5 + 0.25 * rows))
    strip, ax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [0.35 * rows + 0.3, 5]})
    for i, name in enumerate(names):
        spans = intervals.get(name, [])
        strip.broken_barh([(a / 3600, (b - a) / 3600) for a, b in spans], (i - 0.35, 0.7),
                          color=LIST_COLORS[i % len(LIST_COLORS)])
    strip.set_yticks(range(len(names)))
    strip.set_yticklabels(names, fontsize=8)
    strip.set_ylim(rows - 0.5, -0.5)
    strip.set_title("server listed on", fontsize=9, loc="left")
    strip.grid(alpha=0.3, axis="x")
    return fig, strip, ax


def _mark_operator(axes, events: pd.DataFrame) -> None:
    detected = events[events["event"] == "detected"]
    actions = events.loc[events["event"] == "action", "t_s"].to_numpy()
    for k, axis in enumerate(axes):
        label = k == len(axes) - 1
        if len(detected):
            axis.axvline(detected["t_s"].iloc[0] / 3600, color="0.3", linestyle=":", linewidth=1.2,
                         label="operator notices" if label else None)
        for j, t in enumerate(actions):
            axis.axvline(t / 3600, color="black", linestyle="--", linewidth=1,
                         label="operator resets accounts, purges, asks to delist" if label and j == 0 else None)


def queue_chart(timeseries: pd.DataFrame, events: pd.DataFrame, intervals: dict[str, list[tuple[float, float]]],
                list_names: list[str], title: str, path: Path) -> None:
    """Messages in the active, deferred and incoming queues over time, with listings and operator actions."""
    hours = timeseries["t_end_s"].to_numpy() / 3600.0
    fig, strip, ax = _with_listing_strip(intervals, list_names)
    ax.plot(hours, timeseries["mail_deferred"], color="#ff7f0e", label="deferred queue")
    ax.plot(hours, timeseries["mail_active"], color="#1f77b4", label="active queue")
    if timeseries["mail_incoming"].max() > 0:
        ax.plot(hours, timeseries["mail_incoming"], color="#2ca02c", label="incoming (waiting for the active queue)")
    _mark_operator([strip, ax], events)
    ax.set_xlabel("simulated time (h)")
    ax.set_ylabel("messages in the mail queue")
    ax.set_ylim(bottom=0)
    ax.set_xlim(0, hours[-1] if len(hours) and hours[-1] > 0 else 1)  # one bin (a run shorter than a bin): no zero-width axis
    fig.suptitle(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def delivery_latency_chart(timeseries: pd.DataFrame, events: pd.DataFrame,
                           intervals: dict[str, list[tuple[float, float]]], list_names: list[str], title: str,
                           path: Path) -> None:
    """Legitimate delivery latency (acceptance to final delivery) by the time the message was accepted,
    with the share of legitimate recipients that bounced."""
    hours = timeseries["t_start_s"].to_numpy() / 3600.0
    fig, strip, ax = _with_listing_strip(intervals, list_names)
    p50 = timeseries["legit_latency_p50_s"].to_numpy()
    p95 = timeseries["legit_latency_p95_s"].to_numpy()
    ax.step(hours, p95, where="post", color="#d62728", label="p95 of delivered messages")
    ax.step(hours, p50, where="post", color="#1f77b4", label="median of delivered messages")
    ax.axhline(1800, color="0.4", linestyle="--", linewidth=1)
    ax.annotate("30 min", (hours[0] if len(hours) else 0, 1800), xytext=(3, 3), textcoords="offset points",
                fontsize=8, color="0.3")
    _mark_operator([strip, ax], events)
    ax.set_yscale("log")
    finite = np.concatenate([p50[np.isfinite(p50)], p95[np.isfinite(p95)]])
    top = max(float(finite.max()) if len(finite) else 1.0, 3600.0) * 2
    ax.set_ylim(0.1, top)
    ticks = [t for t in (0.1, 1, 10, 60, 600, 3600, 6 * 3600, 86400) if t < top]
    ax.set_yticks(ticks)
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_seconds_label))
    ax.set_xlabel("time the message was accepted (h)")
    ax.set_ylabel("legitimate delivery latency (log scale)")
    ax.set_xlim(0, hours[-1] if len(hours) and hours[-1] > 0 else 1)  # one bin (a run shorter than a bin): no zero-width axis
    ax.grid(alpha=0.3, which="major")
    bounced = timeseries.get("legit_bounced_share")
    handles, labels = ax.get_legend_handles_labels()
    if bounced is not None and np.nanmax(bounced.to_numpy(), initial=0) > 0:
        share = ax.twinx()
        share.fill_between(hours, bounced.to_numpy() * 100, step="post", color="0.5", alpha=0.25, lw=0,
                           label="legitimate recipients bounced (%)")
        share.set_ylim(0, 100)
        share.set_ylabel("bounced (% of legitimate recipients)")
        h2, l2 = share.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, loc="upper left", fontsize=8, framealpha=0.9)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
