"""Charts of an experiment (compare, sweep, tune) and the Pareto front of its trade-off.

Every chart reads a *wide* table: one row per policy and grid point with, for
each metric ``M``, the columns ``M`` (mean over replications), ``M:low`` and
``M:high`` (the 95 % interval; NaN with one replication).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import matplotlib.ticker
# Figures are built without pyplot, so importing simsub never selects a matplotlib
# backend (a notebook keeps its own) and saving needs no display.
from matplotlib.figure import Figure
import numpy as np
import pandas as pd

from ..experiments.metrics import FALSE_DELAY_5S, SPAM_REDUCTION
from ..experiments.types import Metric


BASELINE_COLOR = "0.55"
POLICY_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
                 "#d62728", "#7f7f7f"]
LINESTYLES = ["-", "--", ":", "-."]
BEST_STYLE = dict(marker="*", s=320, facecolor="gold", edgecolor="black", linewidth=1.0, zorder=6)
RUNNER_UP_STYLE = dict(marker="D", s=90, facecolor="none", edgecolor="black", linewidth=1.5, zorder=6)
DPI = 110
#: The narrowest x range of a compare panel, per unit: differences smaller than this look small.
MIN_SPAN = {"share": 0.01, "count": 1.0, "seconds": 1.0, "hours": 1.0, "number": 1.0}


# --------------------------------------------------------------------------- Pareto front

def pareto_front(df: pd.DataFrame, x: str = FALSE_DELAY_5S, y: str = SPAM_REDUCTION,
                 maximize_y: bool = True) -> pd.DataFrame:
    """The rows of ``df`` no other row dominates: lower ``x`` and higher ``y`` (lower with ``maximize_y=False``).

    A row is dominated when another is at least as good on both and strictly
    better on one; rows with the same (x, y) do not dominate each other and are
    all kept.  Rows with a missing x or y are left out.  The front keeps the
    original index and columns, sorted by ascending ``x``.
    """
    xs_all = pd.to_numeric(df[x], errors="coerce").to_numpy(dtype=float)
    ys_all = pd.to_numeric(df[y], errors="coerce").to_numpy(dtype=float)
    valid = np.isfinite(xs_all) & np.isfinite(ys_all)
    positions = np.flatnonzero(valid)
    xs = xs_all[valid]
    ys = ys_all[valid] if maximize_y else -ys_all[valid]
    order = np.lexsort((-ys, xs))  # ascending x, then best y first
    keep: list[int] = []
    best_y, best_x = -math.inf, math.nan
    for i in order:
        if ys[i] > best_y:
            keep.append(i)
            best_y, best_x = ys[i], xs[i]
        elif ys[i] == best_y and xs[i] == best_x:
            keep.append(i)
    return df.iloc[positions[keep]]


# --------------------------------------------------------------------------- formatting

def _nice_step(span: float, bins: int = 5) -> float:
    raw = max(span, 1e-12) / bins
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)


def _format_axis(ax, which: str, unit: str, log: bool = False) -> None:
    """Ticks of one scale along the whole axis: % for shares, whole numbers for counts, and s, min or h
    for durations chosen by the axis' largest value (call after the data and limits are set)."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    low, high = ax.get_xlim() if which == "x" else ax.get_ylim()
    top = max(abs(low), abs(high))
    ticker = matplotlib.ticker
    if unit == "share":
        axis.set_major_formatter(ticker.FuncFormatter(lambda v, _p: f"{round(v * 100, 6):g}%"))
    elif unit == "seconds":
        factor, suffix = (3600.0, " h") if top >= 3 * 3600 else (60.0, " min") if top >= 300 else (1.0, " s")
        if not log:
            axis.set_major_locator(ticker.MultipleLocator(_nice_step((high - low) / factor) * factor))
        axis.set_major_formatter(ticker.FuncFormatter(lambda v, _p: f"{v / factor:g}{suffix}"))
    elif unit == "hours":
        axis.set_major_formatter(ticker.FuncFormatter(lambda v, _p: f"{v:g} h"))
    elif unit == "count":
        if not log:
            axis.set_major_locator(ticker.MaxNLocator(nbins=7, integer=True))
        axis.set_major_formatter(ticker.FuncFormatter(lambda v, _p: _short(v, unit)))
    else:
        axis.set_major_formatter(ticker.FuncFormatter(lambda v, _p: f"{v:,g}"))


def _short(v: float, unit: str) -> str:
    """A compact number for ticks and bar labels."""
    if not math.isfinite(v):
        return "n/a"
    if unit == "share":
        pct = v * 100
        return f"{pct:.2g}%" if 0 < abs(pct) < 1 else f"{pct:.1f}%".replace(".0%", "%")
    if unit == "seconds":
        if abs(v) >= 7200:
            return f"{v / 3600:.1f} h"
        if abs(v) >= 120:
            return f"{v / 60:.1f} min"
        return f"{v:.2g} s" if 0 < abs(v) < 1 else f"{v:.1f} s"
    if unit == "hours":
        return f"{v:.1f} h"
    if unit == "count":
        if abs(v) >= 1e6:
            return f"{v / 1e6:.3g} M"
        return f"{v:,.0f}" if abs(v) >= 100 or float(v).is_integer() else f"{v:.1f}"
    return f"{v:,.1f}"


def _errors(table: pd.DataFrame, name: str) -> np.ndarray:
    """Asymmetric error lengths (2, n) from M:low / M:high; zero where an interval is missing."""
    def column(key: str) -> np.ndarray:
        if key not in table.columns:
            return np.full(len(table), np.nan)
        return pd.to_numeric(table[key], errors="coerce").to_numpy(dtype=float)

    mean, low, high = column(name), column(name + ":low"), column(name + ":high")
    below = np.where(np.isfinite(low), mean - low, 0.0)
    above = np.where(np.isfinite(high), high - mean, 0.0)
    return np.clip(np.vstack([below, above]), 0, None)


def _better(metric: Metric) -> str:
    return "higher is better" if metric.better == "higher" else "lower is better"


def _policy_colors(policies: Sequence[str], baseline: str | None) -> dict[str, str]:
    colors, k = {}, 0
    for policy in policies:
        if policy == baseline:
            colors[policy] = BASELINE_COLOR
        else:
            colors[policy] = POLICY_COLORS[k % len(POLICY_COLORS)]
            k += 1
    return colors


def _same(a: Any, b: Any) -> bool:
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=1e-12)
    except (TypeError, ValueError):
        return str(a) == str(b)


def _shared_label(texts: list[str], label_columns: Sequence[str]) -> str:
    """One label for the points drawn at the same place: "foreign_sleep = 2, 3 and 8 (same point)"."""
    if len(texts) == 1:
        return texts[0]
    if len(label_columns) == 1:
        listed = f"{', '.join(texts[:-1])} and {texts[-1]}"
        return f"{label_columns[0]} = {listed} (same point)"
    return " | ".join(f"({t})" for t in texts) + " (same point)"


def _value_text(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


# --------------------------------------------------------------------------- compare

def compare_chart(table: pd.DataFrame, metrics: Sequence[Metric], policies: Sequence[str], baseline: str | None,
                  title: str, path: Path) -> None:
    """Small multiples: one panel per metric, one horizontal bar per policy with its 95 % interval."""
    metrics = [m for m in metrics if m.name in table.columns]
    policies = [p for p in policies if p in set(table["policy"])]
    n = max(len(metrics), 1)
    ncols = 1 if n == 1 else 2
    nrows = math.ceil(n / ncols)
    panel_h = 0.32 * len(policies) + 1.1
    fig = Figure(figsize=(11 if ncols == 2 else 7, panel_h * nrows + 0.8), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    needed = [c for m in metrics for c in (m.name, m.name + ":low", m.name + ":high", m.name + ":rule")
              if c in table.columns]
    rows = table[["policy", *needed]].drop_duplicates("policy").set_index("policy").reindex(policies)
    colors = _policy_colors(policies, baseline)
    ypos = np.arange(len(policies))
    for ax, metric in zip(axes.flat, metrics):
        means = pd.to_numeric(rows[metric.name], errors="coerce").to_numpy(dtype=float)
        err = _errors(rows, metric.name)
        if metric.name != SPAM_REDUCTION and _all_zero(means, err):
            _zero_panel(ax, metric, policies, baseline)
            continue
        ax.barh(ypos, np.nan_to_num(means), xerr=err if np.any(err > 0) else None,
                color=[colors[p] for p in policies], height=0.6,
                error_kw=dict(ecolor="black", capsize=3, linewidth=1))
        ax.set_yticks(ypos)
        ax.set_yticklabels([f"{p} (baseline)" if p == baseline else p for p in policies], fontsize=8)
        for label, policy in zip(ax.get_yticklabels(), policies):
            if policy == baseline:
                label.set_fontweight("bold")
        ax.invert_yaxis()
        ax.set_title(f"{metric.label} ({_better(metric)})", fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(alpha=0.3, axis="x")
        ax.axvline(0, color="black", linewidth=0.8)
        finite = np.isfinite(means)
        # Bounds from identical runs (the rule of three) can reach far past the data; they must not set
        # the scale: their whiskers run off the panel's edge instead.
        scaled = _varied_rows(rows, metric.name) * err
        lo = min(0.0, float(np.min((means - scaled[0])[finite]))) if finite.any() else 0.0
        hi = max(0.0, float(np.max((means + scaled[1])[finite]))) if finite.any() else 1.0
        # Each panel on its own data range, but never narrower than the floor: a 0.01 % difference
        # must not fill a panel as 40 % does next to it.
        span = max(hi - lo, MIN_SPAN.get(metric.unit, 0.0)) or 1.0
        hi = max(hi, lo + span)
        right = hi + 0.3 * span
        if metric.unit == "share" and hi <= 1:
            right = min(right, 1.15)  # room for the labels, not for impossible shares
        if metric.unit == "count":
            right = max(right, 1.0)  # whole-number ticks even when every value is 0
        ax.set_xlim(lo - (0.05 * span if lo < 0 else 0.0), right)
        _format_axis(ax, "x", metric.unit)
        for y, v, e in zip(ypos, means, scaled[1]):  # beside the whisker, or the bar when it runs off
            ax.annotate(_short(v, metric.unit), (max(v + e, 0) if math.isfinite(v) else 0, y), xytext=(3, 0),
                        textcoords="offset points", va="center", fontsize=7)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    fig.suptitle(title)
    fig.savefig(path, dpi=DPI)


def _varied_rows(rows: pd.DataFrame, name: str) -> np.ndarray:
    """1 where the interval is a t interval over runs that differed (or its rule is unknown), else 0."""
    if name + ":rule" not in rows.columns:
        return np.ones(len(rows))
    return np.asarray([0.0 if isinstance(r, str) and r.startswith("no variation") else 1.0
                       for r in rows[name + ":rule"]])


def _all_zero(means: np.ndarray, err: np.ndarray) -> bool:
    """Every policy's mean is 0 (the metrics are never negative, so every run gave 0)."""
    finite = np.isfinite(means)
    return bool(finite.any() and np.all(means[finite] == 0))


def _zero_panel(ax, metric: Metric, policies: Sequence[str], baseline: str | None) -> None:
    """A metric that is 0 for every policy: said in words, not drawn on an axis with nothing to scale it
    (the upper bounds of the intervals are in the tables)."""
    ax.set_title(f"{metric.label} ({_better(metric)})", fontsize=9)
    ax.text(0.5, 0.5, f"all zero: 0 in every run of every policy ({len(policies)})", transform=ax.transAxes,
            ha="center", va="center", fontsize=9, color="0.3")
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)


# --------------------------------------------------------------------------- sweep

def sweep_chart(table: pd.DataFrame, metric: Metric, x: str, x_values: Sequence[Any], others: Sequence[str],
                policies: Sequence[str], baseline: str | None, title: str, path: Path,
                marks: dict[str, Any] | None = None) -> None:
    """``metric`` against the varied parameter ``x``: one line per policy and value of the ``others``,
    with a shaded 95 % band.  ``marks`` maps "recommended" / "runner-up" to an index of ``table``."""
    numeric = all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in x_values)

    def position(v: Any) -> float:
        if numeric:
            return float(v)
        return float(next((i for i, s in enumerate(x_values) if _same(v, s)), np.nan))

    fig = Figure(figsize=(9, 5.2))
    ax = fig.subplots()
    colors = _policy_colors(policies, baseline)
    data = table[table[metric.name].notna()] if metric.name in table.columns else table.iloc[0:0]
    means = pd.to_numeric(data[metric.name], errors="coerce") if len(data) else pd.Series(dtype=float)
    # counts spanning orders of magnitude (spam accepted: millions to thousands) on a log axis
    log = bool(metric.unit == "count" and len(means) and (means > 0).all() and means.min() * 100 < means.max())
    floor = float(means.min()) / 3 if log else 0.0
    for policy in policies:
        rows = data[data["policy"] == policy]
        if rows.empty:
            continue
        groups = [((), rows)] if not others else list(rows.groupby(list(others), sort=False, dropna=False))
        for k, (key, group) in enumerate(groups):
            key = key if isinstance(key, tuple) else (key,)
            group = group.assign(_x=group[x].map(position)).sort_values("_x")
            xs = group["_x"].to_numpy(dtype=float)
            mean = pd.to_numeric(group[metric.name], errors="coerce").to_numpy(dtype=float)
            low = pd.to_numeric(group.get(metric.name + ":low"), errors="coerce").to_numpy(dtype=float) \
                if metric.name + ":low" in group else np.full(len(group), np.nan)
            high = pd.to_numeric(group.get(metric.name + ":high"), errors="coerce").to_numpy(dtype=float) \
                if metric.name + ":high" in group else np.full(len(group), np.nan)
            steady = _varied_rows(group, metric.name) == 0  # identical runs: a rule-of-three bound, no band
            low, high = np.where(steady, np.nan, low), np.where(steady, np.nan, high)
            label = policy + (" (baseline)" if policy == baseline else "")
            if others:
                label += ", " + ", ".join(f"{n} = {_value_text(v)}" for n, v in zip(others, key))
            style = LINESTYLES[k % len(LINESTYLES)]
            is_base = policy == baseline
            ax.plot(xs, mean, color=colors[policy], linestyle="--" if is_base and not others else style,
                    marker="o", markersize=4, linewidth=1.2 if is_base else 1.8, label=label)
            if log:  # a band reaching 0 or below ends at the bottom of the axis
                low = np.where(low > 0, low, floor)
            band = np.isfinite(low) & np.isfinite(high)
            if band.any():
                ax.fill_between(xs, np.where(band, low, mean), np.where(band, high, mean), color=colors[policy],
                                alpha=0.15 if not is_base else 0.1, linewidth=0)
    _mark(ax, table, marks or {}, metric.name, lambda row: position(row[x]))
    if numeric:
        ax.set_xticks([float(v) for v in x_values] if len(x_values) <= 15 else ax.get_xticks())
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _p: f"{v:g}"))
    else:
        ax.set_xticks(range(len(x_values)))
        ax.set_xticklabels([_value_text(v) for v in x_values])
    if log:
        ax.set_yscale("log")
        ax.set_ylim(bottom=floor)
    _format_axis(ax, "y", metric.unit, log=log)
    ax.set_xlabel(x)
    ax.set_ylabel(f"{metric.label}\n({_better(metric)})")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=True, framealpha=0.9, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)


def _mark(ax, table: pd.DataFrame, marks: dict[str, Any], y: str, xpos, x: str | None = None) -> None:
    """Star the recommended point and ring the runner-up."""
    for name, style in (("recommended", BEST_STYLE), ("runner-up", RUNNER_UP_STYLE)):
        index = marks.get(name)
        if index is None or index not in table.index or y not in table.columns:
            continue
        row = table.loc[index]
        yv = float(row[y]) if pd.notna(row[y]) else math.nan
        xv = float(row[x]) if x is not None else xpos(row)
        if math.isfinite(xv) and math.isfinite(yv):
            ax.scatter([xv], [yv], label=name, **style)


# --------------------------------------------------------------------------- trade-off

def tradeoff_chart(table: pd.DataFrame, x_metric: Metric, y_metric: Metric, label_columns: Sequence[str],
                   policies: Sequence[str], baseline: str | None, title: str, path: Path,
                   marks: dict[str, Any] | None = None, off_front: Sequence[str] = ()) -> pd.DataFrame:
    """Every policy and grid point at (legit false-delay rate, spam reduction) with 95 % intervals both ways,
    labelled with its parameter values, and the Pareto front (of the policies not in ``off_front``) as a
    step line.  Returns the front."""
    x, y = x_metric.name, y_metric.name
    maximize_y = y_metric.better == "higher"
    points = table[pd.to_numeric(table[x], errors="coerce").notna() & pd.to_numeric(table[y], errors="coerce").notna()]
    front = pareto_front(points[~points["policy"].isin(list(off_front))], x, y, maximize_y=maximize_y)
    colors = _policy_colors(policies, baseline)
    fig = Figure(figsize=(9, 6))
    ax = fig.subplots()
    for policy in policies:
        rows = points[points["policy"] == policy]
        if rows.empty:
            continue
        xerr, yerr = _errors(rows, x), _errors(rows, y)
        ax.errorbar(rows[x].astype(float), rows[y].astype(float), xerr=xerr if np.any(xerr > 0) else None,
                    yerr=yerr if np.any(yerr > 0) else None,
                    fmt="o", color=colors[policy], ecolor=colors[policy], elinewidth=1, capsize=2, markersize=5,
                    label=policy + (" (baseline)" if policy == baseline else ""), alpha=0.9)
        labels: dict[tuple[float, float], list[str]] = {}  # points at the same place share one label
        for _, row in rows.iterrows():
            text = ", ".join(_value_text(row[c]) for c in label_columns) if label_columns else str(policy)
            labels.setdefault((float(row[x]), float(row[y])), []).append(text)
        for (px, py), texts in labels.items():
            ax.annotate(_shared_label(texts, label_columns), (px, py), xytext=(4, 4), textcoords="offset points", fontsize=7,
                        color="0.2")
    if len(front):
        fx = front[x].astype(float).to_numpy()
        fy = front[y].astype(float).to_numpy()
        right = max(float(points[x].astype(float).max()), fx[-1])
        ax.step(np.append(fx, right), np.append(fy, fy[-1]), where="post", color="black", linewidth=1.2,
                linestyle="-", alpha=0.7, label="Pareto front", zorder=1)
    _mark(ax, table, marks or {}, y, None, x=x)
    _format_axis(ax, "x", x_metric.unit)
    _format_axis(ax, "y", y_metric.unit)
    ax.set_xlabel(f"{x_metric.label} ({_better(x_metric)})")
    ax.set_ylabel(f"{y_metric.label} ({_better(y_metric)})")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=True, framealpha=0.9, loc="best", title_fontsize=8,
              title=f"points labelled with {', '.join(label_columns)}" if label_columns else None)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return front

