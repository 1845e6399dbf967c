"""Reputation lists (DNSBLs, big providers' own lists) that may list the server.

A list counts the spam recipients that destinations accept (they reach
mailboxes, where spam traps and user complaints see them; spam that is
rejected or deferred is not seen) in a sliding ``window``, to the minute (the counts
are kept per minute of simulated time).  Above ``threshold`` it lists
the server after ``detection_delay``.  It delists the server ``delist_delay``
after the operator asks, or by itself ``expiry`` after the last spam it saw.
While listed, every destination that consults it rejects (or defers) all mail
from the server, legitimate mail included, at the list's ``stage`` of the SMTP
dialogue (greeting, RCPT or DATA).
"""

from __future__ import annotations

from collections import deque

import simpy

from ..scenario.types import ReputationList
from .engine import timeout
from .recorder import Recorder

BUCKET = 60.0  # s: spam counts are kept per minute
STAGES = ("greeting", "rcpt", "data")  # where a destination can refuse the server, in dialogue order


class ListState:
    def __init__(self, config: ReputationList):
        self.config = config
        # What a destination consulting this list answers while it lists the server, and how
        # early in the dialogue (lower first; at a stage a rejection before a deferral):
        # fixed by the configuration, so worked out once rather than on every delivery.
        self.refusal: tuple[str, str] = (config.action, config.stage)
        self.rank: int = 2 * STAGES.index(config.stage) + (config.action != "reject")
        self.recent: deque[tuple[int, int]] = deque()  # (minute, spam recipients sent in it)
        self.recent_total = 0
        self.listed = False
        self.pending = False  # threshold crossed, listing on its way
        self.delist_requested = False


def first_refusal(states: list[ListState]) -> tuple[str, str] | None:
    """:meth:`Reputation.refusal` for the lists ``states`` a destination consults."""
    best: ListState | None = None
    for state in states:
        if state.listed and (best is None or state.rank < best.rank):
            best = state
    return None if best is None else best.refusal


class Reputation:
    def __init__(self, env: simpy.Environment, lists: dict[str, ReputationList], recorder: Recorder):
        self.env = env
        self.recorder = recorder
        self.lists = {name: ListState(config) for name, config in lists.items()}
        self.open_minutes: dict[int, int] = {}  # minute -> spam recipients sent in it, until it is over
        self.last_spam = -1.0

    # ------------------------------------------------------------------ queries
    def refusal(self, consulted: tuple[str, ...]) -> tuple[str, str] | None:
        """``(action, stage)`` of the refusal a destination consulting ``consulted`` gives, or None.

        The SMTP dialogue ends at the first refusal, so the earliest stage
        among the lists that have the server listed wins; at that stage a
        rejecting list wins over a deferring one."""
        return first_refusal(self.states(consulted))

    def states(self, consulted: tuple[str, ...]) -> list[ListState]:
        """The lists named ``consulted``, for :func:`first_refusal` (the mail queue keeps
        them per destination rather than looking each name up on every delivery)."""
        return [self.lists[name] for name in consulted]

    def listed_names(self) -> list[str]:
        return [name for name, state in self.lists.items() if state.listed]

    # ------------------------------------------------------------------ events
    def spam_sent(self, t: float, recipients: int) -> None:
        """Destinations accepted spam for ``recipients`` recipients at time ``t``.

        Counts are collected per minute of simulated time; the lists look at a
        minute when it is over, so the window is counted in whole minutes."""
        self.last_spam = t
        minute = int(t // BUCKET)
        if minute not in self.open_minutes:
            self.open_minutes[minute] = 0
            # The lists look at each minute when it is over.
            timeout(self.env, (minute + 1) * BUCKET - t).callbacks.append(lambda _e, m=minute: self._close_minute(m))  # type: ignore[misc]
        self.open_minutes[minute] += recipients

    def _close_minute(self, minute: int) -> None:
        count = self.open_minutes.pop(minute)
        for name, state in self.lists.items():
            config = state.config
            recent = state.recent
            recent.append((minute, count))
            state.recent_total += count
            oldest = minute - int(config.window // BUCKET)
            while recent and recent[0][0] <= oldest:
                state.recent_total -= recent.popleft()[1]
            if state.recent_total > config.threshold and not state.listed and not state.pending:
                state.pending = True
                timeout(self.env, config.detection_delay).callbacks.append(lambda _e, n=name: self._list(n))  # type: ignore[misc]

    def request_delisting(self) -> list[str]:
        """The operator asks every list that has the server listed to remove it."""
        asked = []
        for name, state in self.lists.items():
            if state.listed and not state.delist_requested:
                state.delist_requested = True
                asked.append(name)
                timeout(self.env, state.config.delist_delay).callbacks.append(
                    lambda _e, n=name: self._delist(n, "operator request"))  # type: ignore[misc]
        return asked

    # ------------------------------------------------------------------ internals
    def _list(self, name: str) -> None:
        state = self.lists[name]
        state.pending = False
        state.listed = True
        state.delist_requested = False
        self.recorder.event(self.env.now, "listed", name)
        self._schedule_expiry(name)

    def _schedule_expiry(self, name: str) -> None:
        state = self.lists[name]
        due = self.last_spam + state.config.expiry
        delay = max(due - self.env.now, 0.0)
        timeout(self.env, delay).callbacks.append(lambda _e, n=name: self._check_expiry(n))  # type: ignore[misc]

    def _check_expiry(self, name: str) -> None:
        state = self.lists[name]
        if not state.listed:
            return
        if self.env.now >= self.last_spam + state.config.expiry:
            self._delist(name, "expired")
        else:
            self._schedule_expiry(name)  # spam kept coming: look again later

    def _delist(self, name: str, why: str) -> None:
        state = self.lists[name]
        if not state.listed:
            return
        state.listed = False
        state.delist_requested = False
        state.recent.clear()  # a fresh start: only spam seen from now on can list the server again
        state.recent_total = 0
        self.recorder.event(self.env.now, "delisted", f"{name} ({why})")
