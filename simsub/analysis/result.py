"""One replication's results: the recorder's columns turned into tables and a summary.

:func:`tabulate` is the one place that knows the order of the analysis steps
(tables, time series, what happened behind the front end, the summary); the
model only records, and :func:`simsub.api.run` only runs and calls this.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ..model.recorder import Recorder
from ..scenario import Scenario
from .summary import behind_the_front_end, build_summary, json_safe
from .tables import (add_queue_series, deliveries_table, events_table, listed_intervals, messages_table,
                     sessions_table, timeseries_table)


@dataclass
class Result:
    """One replication: the summary dict and tidy tables (pandas DataFrames).

    ``messages``: one row per message; ``sessions``: one row per connection;
    ``timeseries``: one row per time bin; with a mail queue, ``deliveries``: one
    row per queued message (bounces included), ``events``: listings,
    delistings and operator actions, and ``listed``: per reputation list the
    (start, end) times it had the server listed.  Times are seconds of
    simulated time.
    """

    scenario: Scenario
    policy: str
    seed: int
    summary: dict
    messages: pd.DataFrame
    sessions: pd.DataFrame
    timeseries: pd.DataFrame
    deliveries: pd.DataFrame | None = None
    events: pd.DataFrame | None = None
    listed: dict[str, list[tuple[float, float]]] | None = None
    recorder_bytes: int = field(default=0, repr=False)


def tabulate(scenario: Scenario, policy: str, seed: int, recorder: Recorder, run: dict) -> Result:
    """The tables and summary of a finished run; ``run`` is the summary's ``run`` section
    (scenario, policy, seed, ``end_s`` and the run's bookkeeping)."""
    messages = messages_table(recorder)
    sessions = sessions_table(recorder)
    kinds = {p.name: p.kind for p in scenario.populations}
    timeseries = timeseries_table(recorder, messages, sessions, scenario.bin, kinds)
    busy_peak = int(timeseries["busy_peak"].max()) if len(timeseries) else 0
    deliveries = events = listed = None
    if scenario.queue is not None:
        deliveries = deliveries_table(recorder)
        events = events_table(recorder)
        listed = listed_intervals(events, run["end_s"])
        timeseries = add_queue_series(timeseries, recorder, deliveries, scenario.bin, listed)
    bots = sum(p.count for p in scenario.populations if p.is_bot)
    summary = build_summary(run, messages, sessions, timeseries, scenario.mta.process_limit, busy_peak, bots)
    if scenario.queue is not None:
        behind_the_front_end(summary, deliveries, timeseries, recorder.totals, listed, list(scenario.reputation),
                             events)
    return Result(scenario, policy, seed, json_safe(summary), messages, sessions, timeseries, deliveries, events,
                  listed, recorder.nbytes())
