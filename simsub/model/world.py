"""Build one replication of a scenario under one policy, and run it.

Life cycle: draw every client's identity and every legitimate message from
named random streams (so they are the same under every policy), build the smtpd
pool, start the processes (user dispatchers, bot workers, a sampler), run until
the horizon, then let every session in flight finish.  Results go to a
:class:`~simsub.model.recorder.Recorder`.
"""

from __future__ import annotations

import copy
import gc
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import simpy

from ..scenario.types import Population, Scenario
from ..workload.clients import AccountNames, AccountPool, Client
from ..workload.rng import Streams, random01
from ..workload.trace import TraceClients, load_trace
from ..workload.synthetic import (bot_first_start, client_populations, next_bot_message, recipient_destinations,
                                  stolen_accounts, user_arrivals)
from .anvil import Anvil
from .dialogue import ideal_duration
from .engine import clock, process, run as run_events, timeout
from .operator import Operator
from .outcomes import Outcome
from .queue import Kind, MailQueue
from .reputation import Reputation
from .recorder import Recorder
from .session import ErrorLimits, SessionStages, smtp_session
from .smtpd import SmtpdPool

#: ``progress(sim_time_s, horizon_s, events)`` is called once per time-series bin.
ProgressCallback = Callable[[float, float, int], None]


@dataclass(frozen=True)
class RunInfo:
    events: int  # SimPy events scheduled (a few may still be pending when the run stops)
    end_s: float  # s: the horizon, or when the last session ended if that was later
    wall_s: float
    cpu_s: float = 0.0  # CPU time of this process during the run (what other load on the machine hardly moves)


def first_recipients(split: dict[int, int], accepted: int) -> dict[int, int]:
    """The destinations of the first ``accepted`` recipients (in destination order)."""
    result = {}
    for destination in sorted(split):
        take = min(split[destination], accepted)
        if take:
            result[destination] = take
        accepted -= take
    return result


class World:
    """Everything one replication needs; the processes read it, the recorder gets results."""

    def __init__(self, scenario: Scenario, policy_name: str, seed: int, recorder: Recorder,
                 progress: ProgressCallback | None = None):
        self.scenario = scenario
        self.env = simpy.Environment()
        self.policy = scenario.policies[policy_name]
        self.policy_state = self.policy.new_state()
        self.stages = SessionStages(self.policy.stages)
        self.pool = SmtpdPool(self.env, scenario.mta.process_limit, scenario.mta.backlog)
        self.reply_time = scenario.mta.reply_time
        mta = scenario.mta
        self.error_limits = ErrorLimits(mta.soft_error_limit, mta.hard_error_limit, mta.error_sleep_time)
        self.anvil = Anvil(mta.anvil)
        self.recorder = recorder
        self.streams = Streams(seed)
        self.progress = progress
        self.active = 0  # user messages in flight and bot workers still running
        self._message_ids = 0
        recorder.populations = [p.name for p in scenario.populations]
        recorder.population_kinds = [p.kind for p in scenario.populations]
        recorder.origins = list(scenario.origins)
        self.users: dict[str, Any] = client_populations(scenario, self.streams)  # TraceClients too
        self.last_end = 0.0  # s, when the latest session ended (client or server side)
        self.end_s = 0.0  # s, end of the run: the horizon, or the end of the last session if later
        self.reset_accounts: set[str] = set()  # passwords reset by the operator
        self.queue = self.reputation = self.operator = None
        if scenario.queue is not None:
            self.reputation = Reputation(self.env, scenario.reputation, recorder)
            self.queue = MailQueue(self.env, scenario.queue, scenario.destinations, self.reputation, recorder,
                                   self.streams.get("queue"))
            if scenario.operator is not None:
                legit = AccountNames([(p.name, p.count) for p in scenario.populations if not p.is_bot])
                self.operator = Operator(self.env, scenario.operator, self.queue, self.reputation,
                                         self.reset_accounts, legit, recorder, self.streams.get("operator"))
        self.done = self.env.event()  # triggered when the last session is over

    # ---------------------------------------------------------------- shared state
    def account_locked(self, account: str) -> bool:
        return account in self.policy_state.locked_accounts or account in self.reset_accounts

    def to_queue(self, result, message_id: int, kind: Kind, account: str, local_sender: bool,
                 split: dict[int, int], half_rtt: float) -> None:
        """Hand an accepted message to the mail queue at the moment smtpd accepted it."""
        if self.queue is None or result.outcome != Outcome.ACCEPTED:
            return
        if result.recipients_accepted < sum(split.values()):
            split = first_recipients(split, result.recipients_accepted)
        when = result.accepted_at - half_rtt  # the 250 left smtpd half a round trip earlier
        timeout(self.env, max(when - clock(self.env), 0.0)).callbacks.append(
            lambda _e: self.queue.accept(message_id, kind, account, local_sender, split))  # type: ignore[union-attr]

    def next_message_id(self) -> int:
        self._message_ids += 1
        return self._message_ids

    # ---------------------------------------------------------------- processes
    def start(self) -> None:
        if self.queue is not None:
            self.queue.start()
        if self.operator is not None:
            self.operator.start()
        trace = self.scenario.trace
        for i, population in enumerate(self.scenario.populations):
            if trace is not None and population.name in (trace.users, trace.bots):
                process(self.env, self._replay(i, population))
            elif population.is_bot:
                self._start_bots(i, population)
            else:
                process(self.env, self._dispatch_users(i, population))
        process(self.env, self._sampler())

    def _replay(self, index: int, population: Population):
        """The logged submissions that replace ``population`` (:mod:`simsub.workload.trace`):
        each arrives at its logged time (open loop, bots included) from its logged client
        and login; a legitimate one retries like the population's users, a bot's does not."""
        env = self.env
        spec = self.scenario.trace
        trace = load_trace(str(spec.tables), spec.digest, spec.flagged)  # type: ignore[union-attr]
        part = trace.bots if population.is_bot else trace.users
        clients = TraceClients(self.scenario, index, population, part, self.streams)
        self.users[population.name] = clients
        retries = 0 if population.is_bot else population.retries
        self.active += 1
        for t, n, account, recipients in zip(part.t_s.tolist(), part.client.tolist(), part.account,
                                             part.recipients.tolist()):
            if t >= self.scenario.horizon:
                break
            if t > clock(env):
                yield timeout(env, t - clock(env))
            self.active += 1
            process(env, self._user_message(clients.client(n), recipients, None, account, retries))
        self.active -= 1

    def _dispatch_users(self, index: int, population: Population):
        env = self.env
        users = self.users[population.name]
        rng = self.streams.get("arrivals", population.name)
        times, clients, recipients = user_arrivals(population, self.scenario.horizon, rng)
        # The (messages x destinations) matrix stays numpy until each row is used: as lists of lists made
        # at once it held ~60 B more per user message for the whole day (figure 3's memory per message).
        splits = None
        if self.queue is not None:
            splits = recipient_destinations(recipients, self.queue.legit_shares, rng)
        self.active += 1
        for i, (t, n, r) in enumerate(zip(times.tolist(), clients.tolist(), recipients.tolist())):
            if t > clock(env):
                yield timeout(env, t - clock(env))
            self.active += 1
            split = None if splits is None else {d: c for d, c in enumerate(splits[i].tolist()) if c}
            process(env, self._user_message(users.client(n), r, split))
        self.active -= 1

    def _user_message(self, client: Client, recipients: int, split: dict[int, int] | None,
                      account: str | None = None, retries: int | None = None):
        """One legitimate message: sessions until it is accepted, refused for good, or out of
        retries (default: its population's).  ``account``: the login, default the client's own."""
        env = self.env
        population = self.scenario.populations[client.population]
        if retries is None:
            retries = population.retries
        account = client.sasl_username if account is None else account
        first = clock(env)
        message_id = self.next_message_id()
        attempts = 0
        slot_wait = policy_delay = 0.0
        while True:
            attempts += 1
            result = yield from smtp_session(self, client, account, message_id, recipients, True)
            slot_wait += result.slot_wait
            policy_delay += result.policy_delay
            if not result.outcome.temporary or attempts > retries:
                break
            yield timeout(env, max(result.client_end - clock(env), 0.0) + population.retry_interval)
        if split is not None:
            self.to_queue(result, message_id, Kind.LEGIT, account, True, split, client.half_rtt)
        self.recorder.message(
            message_id, client.population, client.number, client.origin, self.recorder.account_code(account),
            recipients, first, result.client_end, result.accepted_at, attempts, result.outcome, result.step,
            result.recipients_accepted, ideal_duration(recipients, client.half_rtt, self.reply_time),
            slot_wait, policy_delay,
        )
        self.active -= 1

    def _start_bots(self, index: int, population: Population) -> None:
        accounts = AccountPool(stolen_accounts(population))
        bots = self.users[population.name]
        for b in range(population.count):
            bot = bots.client(b)
            bot.sasl_username = ""
            for w in range(population.parallel):
                process(self.env, self._bot_worker(population, bot, accounts, self.streams.get("bot", population.name, b, w)))

    def _bot_worker(self, population: Population, bot: Client, accounts: AccountPool, rng: np.random.Generator):
        """A closed loop: session, pause, session … from ``start`` to ``stop``."""
        env = self.env
        self.active += 1
        stop = min(population.stop if population.stop is not None else math.inf, self.scenario.horizon)
        first_start = bot_first_start(population, rng)
        if first_start >= stop:
            self.active -= 1
            return
        yield timeout(env, first_start)
        while True:
            draw = next_bot_message(population, accounts, rng)
            if draw is None:
                break  # every stolen account is dead: the campaign is over
            account, recipients, pause = draw
            if self.queue is not None:  # drawn every session, so later draws do not depend on outcomes
                split = self.queue.split(recipients, True, rng)
                local_sender = random01(rng) >= population.forged_sender
            first = clock(env)
            message_id = self.next_message_id()
            result = yield from smtp_session(self, bot, account, message_id, recipients, False)
            if self.queue is not None:
                self.to_queue(result, message_id, Kind.SPAM, account, local_sender, split, bot.half_rtt)
            self.recorder.message(
                message_id, bot.population, bot.number, bot.origin, self.recorder.account_code(account),
                recipients, first, result.client_end, result.accepted_at, 1, result.outcome, result.step,
                result.recipients_accepted, ideal_duration(recipients, bot.half_rtt, self.reply_time),
                result.slot_wait, result.policy_delay,
            )
            if result.outcome == Outcome.AUTH_FAILED:
                accounts.drop(account)
            next_start = max(result.client_end, clock(env)) + pause
            if next_start >= stop:
                break  # the campaign is over before the next session would start
            yield timeout(env, next_start - clock(env))
        self.active -= 1

    def _sampler(self):
        """Reads the smtpd pool once per bin (monitoring from outside the behaviour)."""
        env = self.env
        width = self.scenario.bin
        horizon = self.scenario.horizon
        queue = self.queue
        while True:
            yield timeout(env, width)
            finished = clock(env) >= horizon and self.active == 0 and self.pool.busy == 0 and self.pool.queued == 0
            # The last bin ends with the run: at the horizon or when the last session ended.
            t = max(horizon, self.last_end) if finished else clock(env)
            busy_peak, queue_peak = self.pool.sample()
            if queue is None:
                self.recorder.sample(t, self.pool.busy_area(), busy_peak, queue_peak)
            else:
                self.recorder.sample(t, self.pool.busy_area(), busy_peak, queue_peak, queue.sizes(),
                                     queue.sample_peaks())
            if self.progress is not None:
                self.progress(t, horizon, _events(env))
            if finished:
                self.end_s = t
                self.done.succeed()
                return


def _events(env: simpy.Environment) -> int:
    """SimPy events scheduled so far (a few still pending when the run stops are included).

    SimPy numbers every scheduled event from one counter, ``env._eid``, which is
    not public API: peeking at a copy costs nothing, while counting ourselves
    (a ``schedule`` override) would add a Python call to every event of every
    run.  The dependence stays here, pinned by ``simpy<5`` in pyproject.toml, and
    tests/test_theory.py checks the figure against ``schedule`` calls counted one by one, so
    a SimPy release that changes the counter's meaning fails a test instead of
    reporting a wrong number.
    """
    return next(copy.copy(env._eid))


def simulate(scenario: Scenario, policy: str, seed: int, recorder: Recorder,
             progress: ProgressCallback | None = None) -> RunInfo:
    """Run one replication; fills ``recorder`` and returns run statistics."""
    started = time.perf_counter()
    cpu_started = time.process_time()
    # Python's cyclic garbage collector finds nothing to free during a run (the
    # model makes no reference cycles per message: tests/test_memory.py), but
    # each of its full passes walks every live object, so in large runs it cost
    # a fifth of the time.  It is paused from building the world to freeing it.
    collector_was_on = gc.isenabled()
    gc.disable()
    try:
        world = World(scenario, policy, seed, recorder, progress)
        world.start()
        # Stop when the front end is done: abandoned connect timers and the mail
        # queue's retries would otherwise keep the clock running.
        run_events(world.env, world.done)  # env.run(until=world.done) without an interpreted step per event
        if world.queue is not None:
            world.queue.finish_all()
        if world.operator is not None:
            world.operator.finish()
        info = RunInfo(events=_events(world.env), end_s=world.end_s, wall_s=time.perf_counter() - started,
                       cpu_s=time.process_time() - cpu_started)
        # The finished world is one web of reference cycles (processes, events and
        # the environment point at each other).  Free it now, so that the result
        # tables are not built on top of it.  Made with the collector paused, it is
        # all in the youngest generation, and collecting that generation alone
        # costs time in proportion to the world; a full collection walks all the
        # process holds (60 ms with pandas loaded: more than a small run takes).
        del world
        if collector_was_on:  # (a caller that turned the collector off keeps it off)
            gc.collect(0)
    finally:
        if collector_was_on:
            gc.enable()
    return info
