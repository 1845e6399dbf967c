"""How big a run will be, from the scenario alone: the resource guard.

A typo such as ``count = 20000000`` should not take the machine down: before
running, the command line estimates the sessions, SimPy events and memory of
a run and refuses one beyond the budget unless ``--force``.  The estimate is
rough (a factor of two either way) and deliberately leans high: every bot
session is assumed to take no longer than its pause and round trips (no
policy delay), so bots start as many sessions as they could.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from .errors import ScenarioError
from .scenario.types import Scenario

#: Default budget of simulated events per run: about two hours at 45,000 events/s (isp-large's
#: full day is estimated at 2.2e8; may-2012 with a user count typed 1,000 times too large at 7e8).
DEFAULT_MAX_EVENTS = 300_000_000
#: SimPy events per front-end session (connection, commands, slot release), measured on may-2012.
EVENTS_PER_SESSION = 4.0
#: Events per queued message and destination it reaches (delivery requests, retries, bounces).
EVENTS_PER_DELIVERY = 2.0
#: Memory per session, bytes: recorder columns and tables (benchmark figure 3: under 300 B per recorded message)
#: plus the client object a first session builds (5 million one-message users took 5.8 GB).
BYTES_PER_MESSAGE = 1200
#: Events per second a run makes on the development machine (for the time in the message).
EVENTS_PER_SECOND = 45_000


@dataclass(frozen=True)
class Estimate:
    sessions: float
    events: float
    memory_bytes: float
    largest: str = ""  # the population that contributes the most events

    def describe(self) -> str:
        minutes = self.events / EVENTS_PER_SECOND / 60
        return (f"about {self.sessions:,.0f} sessions and {self.events:.2g} simulated events (roughly "
                f"{_duration(minutes)} and {self.memory_bytes / 2**30:.1f} GiB of memory)")


def _duration(minutes: float) -> str:
    if minutes < 1:
        return "under a minute"
    if minutes < 120:
        return f"{minutes:.0f} min"
    return f"{minutes / 60:.0f} h"


def estimate(scenario: Scenario) -> Estimate:
    """Expected sessions, events and memory of one run of ``scenario``."""
    days = scenario.horizon / 86400.0
    destinations = max(len(scenario.destinations), 1) if scenario.queue is not None else 0
    sessions = events = 0.0
    by_population: dict[str, float] = {}
    for population in scenario.populations:
        before = events
        recipients = max(population.recipients.mean, 1.0)
        if population.is_bot:
            stop = min(population.stop if population.stop is not None else math.inf, scenario.horizon)
            active = max(stop - population.start, 0.0)
            rtt = min((o.rtt.mean for name, o in scenario.origins.items() if name in population.origins),
                      default=0.0)
            cycle = (population.pause.mean if population.pause is not None else 0.0) + \
                (5 + recipients) * (rtt + scenario.mta.reply_time)
            per_worker = active / max(cycle, 1e-3)
            count = population.count * population.parallel * per_worker
        else:
            count = population.count * population.messages_per_day * days * (1 + 0.1 * population.retries)
        sessions += count
        events += count * EVENTS_PER_SESSION
        if destinations:
            shares = [d.spam_share if population.is_bot else d.legit_share for d in scenario.destinations]
            total = sum(shares) or 1.0
            # Expected destinations that n recipients reach: sum of 1 - (1 - p_i)^n.
            reached = sum(1 - (1 - s / total) ** recipients for s in shares)
            events += count * EVENTS_PER_DELIVERY * reached
        by_population[population.name] = events - before
    largest = max(by_population, key=by_population.get, default="")
    return Estimate(sessions, events, sessions * BYTES_PER_MESSAGE, largest)


def memory_budget() -> float:
    """Half the machine's physical memory, bytes (a run's tables are built after it, in the same process)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def check_budget(scenario: Scenario, max_events: float = DEFAULT_MAX_EVENTS, where: str = "") -> Estimate:
    """The estimate of ``scenario``; a ScenarioError if it is beyond the budget (events or memory)."""
    found = estimate(scenario)
    memory = memory_budget()
    if found.events > max_events or found.memory_bytes > memory:
        limit = (f"the budget of {max_events:.2g} events" if found.events > max_events
                 else f"half this machine's memory ({memory / 2**30:.0f} GiB)")
        raise ScenarioError(scenario.label or scenario.name, f"populations.{found.largest}" if found.largest else None,
                            f"{where}this run would take {found.describe()}, most of it this population's, beyond "
                            f"{limit}; check its count, messages_per_day (or pause) and the horizon, or run it "
                            "anyway with --force (or raise --max-events)")
    return found
