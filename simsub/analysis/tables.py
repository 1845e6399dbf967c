"""Tidy pandas tables from the recorder's columns."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..model.outcomes import Outcome, Step
from ..model.recorder import Recorder

OUTCOME_NAMES = [o.name.lower() for o in Outcome]
STEP_NAMES = [s.name.lower() for s in Step]
ACCEPTED_OUTCOMES = ("accepted", "held", "discarded")


def _categorical(codes, names: list[str]) -> pd.Categorical:
    return pd.Categorical.from_codes(np.asarray(codes, dtype=np.int64), categories=names)


def messages_table(recorder: Recorder) -> pd.DataFrame:
    """One row per message: a legitimate message (all its attempts) or a bot session.

    ``false_delay_s`` (legitimate, accepted messages only) is the time from the
    first attempt to the final 250 minus ``ideal_s``, the same dialogue with no
    policy delay and a free smtpd (MODEL.md §4).
    """
    cols = recorder.messages
    kinds = np.array(recorder.population_kinds)[np.asarray(cols["population"], dtype=np.int64)] if len(cols["population"]) else np.array([], dtype=str)
    frame = pd.DataFrame({
        "message_id": np.asarray(cols["message_id"], dtype=np.int64),
        "population": _categorical(cols["population"], recorder.populations),
        "kind": pd.Categorical(kinds, categories=["user", "bot"]),
        "client": np.asarray(cols["client"], dtype=np.int64),
        "origin": _categorical(cols["origin"], recorder.origins),
        "account": _categorical(cols["account"], recorder.accounts),
        "recipients": np.asarray(cols["recipients"], dtype=np.int64),
        "first_attempt_s": np.asarray(cols["first_attempt_s"]),
        "end_s": np.asarray(cols["end_s"]),
        "accepted_s": np.asarray(cols["accepted_s"]),
        "attempts": np.asarray(cols["attempts"], dtype=np.int64),
        "outcome": _categorical(cols["outcome"], OUTCOME_NAMES),
        "step": _categorical(cols["step"], STEP_NAMES),
        "recipients_accepted": np.asarray(cols["recipients_accepted"], dtype=np.int64),
        "ideal_s": np.asarray(cols["ideal_s"]),
        "slot_wait_s": np.asarray(cols["slot_wait_s"]),
        "policy_delay_s": np.asarray(cols["policy_delay_s"]),
    })
    frame = frame.sort_values(["first_attempt_s", "message_id"], kind="stable").reset_index(drop=True)
    legit = (frame["kind"] == "user").to_numpy()
    delay = frame["accepted_s"].to_numpy() - frame["first_attempt_s"].to_numpy() - frame["ideal_s"].to_numpy()
    # The ideal time is the same sum in another order; round away the float
    # dust (to 1 µs) so that a 5 s sleep is exactly 5 s against a 5 s threshold.
    delay = np.round(delay, 6) + 0.0  # + 0.0 turns -0.0 into 0.0
    frame["false_delay_s"] = np.where(legit, delay, np.nan)
    return frame


def sessions_table(recorder: Recorder) -> pd.DataFrame:
    """One row per connection attempt (a legitimate retry is a new session)."""
    cols = recorder.sessions
    return pd.DataFrame({
        "population": _categorical(cols["population"], recorder.populations),
        "arrival_s": np.asarray(cols["arrival_s"]),
        "outcome": _categorical(cols["outcome"], OUTCOME_NAMES),
        "slot_wait_s": np.asarray(cols["slot_wait_s"]),
        "slot_hold_s": np.asarray(cols["slot_hold_s"]),
    })


def timeseries_table(recorder: Recorder, messages: pd.DataFrame, sessions: pd.DataFrame,
                     bin_width: float, kinds: dict[str, str]) -> pd.DataFrame:
    """Per time bin: smtpd slots busy (mean, peak), accept queue peak, connections,
    refused and abandoned connections, recipients and messages accepted by kind."""
    t_end = np.asarray(recorder.samples["t_s"])
    area = np.asarray(recorder.samples["busy_area"])
    n = len(t_end)
    t_start = np.concatenate([[0.0], t_end[:-1]]) if n else t_end
    widths = t_end - t_start
    busy_mean = np.diff(np.concatenate([[0.0], area])) / np.where(widths > 0, widths, 1)
    frame = pd.DataFrame({
        "t_start_s": t_start,
        "t_end_s": t_end,
        "busy_mean": busy_mean,
        "busy_peak": np.asarray(recorder.samples["busy_peak"], dtype=np.int64),
        "queue_peak": np.asarray(recorder.samples["queue_peak"], dtype=np.int64),
    })

    def per_bin(times: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        idx = np.floor(times / bin_width).astype(np.int64)
        keep = (idx >= 0) & (idx < n)
        return np.bincount(idx[keep], weights=None if weights is None else weights[keep], minlength=n)[:n]

    session_kind = sessions["population"].map(kinds).astype(str).to_numpy()
    arrivals = sessions["arrival_s"].to_numpy()
    outcome = sessions["outcome"].astype(str).to_numpy()
    for kind, label in (("user", "legit"), ("bot", "spam")):
        mine = session_kind == kind
        frame[f"{label}_connections"] = per_bin(arrivals[mine]).astype(np.int64)
        frame[f"{label}_refused"] = per_bin(arrivals[mine & (outcome == "refused")]).astype(np.int64)
        frame[f"{label}_abandoned"] = per_bin(arrivals[mine & (outcome == "abandoned")]).astype(np.int64)
        rows = (messages["kind"] == kind).to_numpy() & messages["outcome"].isin(["accepted"]).to_numpy()
        accepted_at = messages["accepted_s"].to_numpy()[rows]
        frame[f"{label}_messages_accepted"] = per_bin(accepted_at).astype(np.int64)
        frame[f"{label}_recipients_accepted"] = per_bin(
            accepted_at, messages["recipients_accepted"].to_numpy()[rows].astype(float)).astype(np.int64)
    return frame


DELIVERY_KINDS = ["legit", "spam", "bounce", "double_bounce"]


def deliveries_table(recorder: Recorder) -> pd.DataFrame:
    """One row per message that entered the mail queue: what became of its recipients.

    ``delivered + bounced + purged + expired + queued == recipients`` for every
    row (conservation); ``latency_s`` is acceptance to the last delivery, for
    messages whose recipients were all delivered.
    """
    cols = recorder.deliveries
    frame = pd.DataFrame({
        "message_id": np.asarray(cols["message_id"], dtype=np.int64),
        "kind": _categorical(cols["kind"], DELIVERY_KINDS),
        "accepted_s": np.asarray(cols["accepted_s"]),
        "recipients": np.asarray(cols["recipients"], dtype=np.int64),
        "delivered": np.asarray(cols["delivered"], dtype=np.int64),
        "bounced": np.asarray(cols["bounced"], dtype=np.int64),
        "purged": np.asarray(cols["purged"], dtype=np.int64),
        "expired": np.asarray(cols["expired"], dtype=np.int64),
        "queued": np.asarray(cols["queued"], dtype=np.int64),
        "last_delivery_s": np.asarray(cols["last_delivery_s"]),
    })
    complete = (frame["delivered"] == frame["recipients"]).to_numpy()
    frame["latency_s"] = np.where(complete, frame["last_delivery_s"] - frame["accepted_s"], np.nan)
    return frame.sort_values(["accepted_s", "message_id"], kind="stable").reset_index(drop=True)


def events_table(recorder: Recorder) -> pd.DataFrame:
    """Listings, delistings and operator actions, in time order."""
    return pd.DataFrame(recorder.events, columns=["t_s", "event", "detail"]).sort_values("t_s", kind="stable")


def listed_intervals(events: pd.DataFrame, end_s: float) -> dict[str, list[tuple[float, float]]]:
    """Per reputation list, the (start, end) times it had the server listed."""
    intervals: dict[str, list[tuple[float, float]]] = {}
    open_since: dict[str, float] = {}
    for t, event, detail in events.itertuples(index=False):
        if t >= end_s:
            break  # the queue may run a little past the end of the run; the run ends at end_s
        name = detail.split(" (")[0]  # "NAME" or "NAME (why)"; list names have no spaces
        if event == "listed":
            open_since[name] = t
        elif event == "delisted" and name in open_since:
            intervals.setdefault(name, []).append((open_since.pop(name), t))
    for name, start in open_since.items():
        intervals.setdefault(name, []).append((start, end_s))
    return intervals


def add_queue_series(frame: pd.DataFrame, recorder: Recorder, deliveries: pd.DataFrame, bin_width: float,
                     intervals: dict[str, list[tuple[float, float]]]) -> pd.DataFrame:
    """Mail queue sizes, recipients delivered, legitimate latency and listings per bin."""
    n = len(frame)
    samples = recorder.samples
    for name in ("mail_incoming", "mail_active", "mail_deferred", "mail_active_peak", "mail_deferred_peak"):
        frame[name] = np.asarray(samples[name], dtype=np.int64)
    kind = deliveries["kind"].astype(str).to_numpy()
    last = deliveries["last_delivery_s"].to_numpy()
    idx = np.floor(np.nan_to_num(last, nan=-1) / bin_width).astype(np.int64)
    for label in ("legit", "spam"):
        mine = (kind == label) & (idx >= 0) & (idx < n)
        frame[f"{label}_recipients_delivered"] = np.bincount(
            idx[mine], weights=deliveries["delivered"].to_numpy()[mine], minlength=n)[:n].astype(np.int64)
    legit = deliveries[kind == "legit"]
    accepted_bin = np.floor(legit["accepted_s"].to_numpy() / bin_width).astype(np.int64)
    latency = legit["latency_s"].to_numpy()
    p50 = np.full(n, np.nan)
    p95 = np.full(n, np.nan)
    for b in np.unique(accepted_bin):
        if 0 <= b < n:
            values = latency[(accepted_bin == b) & ~np.isnan(latency)]
            if len(values):
                p50[b], p95[b] = np.quantile(values, [0.5, 0.95])
    frame["legit_latency_p50_s"] = p50
    frame["legit_latency_p95_s"] = p95
    valid = (accepted_bin >= 0) & (accepted_bin < n)
    total = np.bincount(accepted_bin[valid], weights=legit["recipients"].to_numpy()[valid], minlength=n)[:n]
    failed = np.bincount(accepted_bin[valid], weights=(legit["bounced"] + legit["expired"]).to_numpy()[valid],
                         minlength=n)[:n]
    frame["legit_bounced_share"] = np.where(total > 0, failed / np.where(total > 0, total, 1), np.nan)
    starts = frame["t_start_s"].to_numpy()
    ends = frame["t_end_s"].to_numpy()
    for name, spans in intervals.items():
        listed = np.zeros(n)
        for a, b in spans:
            listed += np.clip(np.minimum(ends, b) - np.maximum(starts, a), 0, None)
        frame[f"listed_{name}"] = listed / np.where(ends > starts, ends - starts, 1)  # share of the bin
    return frame
