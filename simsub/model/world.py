"""Build one replication of a scenario under one policy, and run it.

Life cycle: draw every client's identity and every legitimate message from
named random streams (so they are the same under every policy), build the smtpd
pool, start the processes (user dispatchers, bot workers, a sampler), run until
the horizon, then let every session in flight finish.  Results go to a
:class:`~simsub.model.recorder.Recorder`.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import simpy

from ..scenario.types import Population, Scenario
from .clients import AccountPool, Client
from .dialogue import ideal_duration
from .outcomes import Outcome
from .recorder import Recorder
from .rng import Streams
from .session import smtp_session
from .smtpd import SmtpdPool

#: ``progress(sim_time_s, horizon_s, events)`` is called once per time-series bin.
ProgressCallback = Callable[[float, float, int], None]


@dataclass(frozen=True)
class RunInfo:
    events: int  # SimPy events scheduled (and processed: the run drains)
    end_s: float  # simulated time when the last session ended
    wall_s: float


class ClientPopulation:
    """Per-client attributes of one population, drawn once, clients built lazily."""

    def __init__(self, scenario: Scenario, index: int, population: Population, streams: Streams):
        self.index = index
        self.population = population
        origins = list(scenario.origins.values())
        self.origins = origins
        self.origin_codes = [list(scenario.origins).index(name) for name in population.origins]
        rng = streams.get("clients", population.name)
        n = population.count
        shares = np.array(list(population.origins.values()))
        which = rng.choice(len(shares), size=n, p=shares / shares.sum())
        self.origin_of = np.array(self.origin_codes)[which]
        rtts = np.stack([np.broadcast_to(o.rtt.sample(rng, n), (n,)) for o in origins])
        self.rtt = rtts[self.origin_of, np.arange(n)]
        self.patience = np.broadcast_to(population.patience.sample(rng, n), (n,)).astype(float)
        if population.connect_timeout is None:
            self.connect_timeout = self.patience
        else:
            self.connect_timeout = np.broadcast_to(population.connect_timeout.sample(rng, n), (n,)).astype(float)
        self._clients: dict[int, Client] = {}

    def client(self, n: int) -> Client:
        client = self._clients.get(n)
        if client is None:
            origin = self.origins[self.origin_of[n]]
            client = Client(
                population=self.index,
                number=n,
                origin=int(self.origin_of[n]),
                hostname=origin.hostname_for(n),
                address=origin.address_for(n),
                mynetworks=origin.mynetworks,
                half_rtt=float(self.rtt[n]) / 2,
                patience=float(self.patience[n]),
                connect_timeout=float(self.connect_timeout[n]),
                talks=self.population.on_timeout == "talk",
                sasl_username=f"{self.population.name}{n}",
            )
            self._clients[n] = client
        return client


def user_arrivals(population: Population, horizon: float, rng: np.random.Generator):
    """Poisson message arrivals over [0, horizon): times (s), client numbers, recipients.

    The rate is ``count × messages_per_day / 86400`` per second, shaped by the
    24 hourly ``diurnal`` weights (mean 1) when given.
    """
    rate = population.count * population.messages_per_day / 86400.0
    edges = np.arange(0.0, horizon, 3600.0)
    widths = np.minimum(edges + 3600.0, horizon) - edges
    weights = np.ones(len(edges))
    if population.diurnal is not None:
        weights = np.array([population.diurnal[int(e // 3600) % 24] for e in edges])
    counts = rng.poisson(rate * widths * weights)
    times = np.concatenate([e + w * rng.random(c) for e, w, c in zip(edges, widths, counts)]) if len(edges) else np.empty(0)
    times.sort()
    clients = rng.integers(0, population.count, size=len(times))
    recipients = np.broadcast_to(population.recipients.sample(rng, len(times)), (len(times),)).astype(np.int64)
    return times, clients, recipients


class World:
    """Everything one replication needs; the processes read it, the recorder gets results."""

    def __init__(self, scenario: Scenario, policy_name: str, seed: int, recorder: Recorder,
                 progress: ProgressCallback | None = None):
        self.scenario = scenario
        self.env = simpy.Environment()
        self.policy = scenario.policies[policy_name]
        self.policy_state = self.policy.new_state()
        self.pool = SmtpdPool(self.env, scenario.mta.process_limit, scenario.mta.backlog)
        self.reply_time = scenario.mta.reply_time
        self.recorder = recorder
        self.streams = Streams(seed)
        self.progress = progress
        self.active = 0  # user messages in flight and bot workers still running
        self._message_ids = 0
        recorder.populations = [p.name for p in scenario.populations]
        recorder.population_kinds = [p.kind for p in scenario.populations]
        recorder.origins = list(scenario.origins)
        self.users = {
            p.name: ClientPopulation(scenario, i, p, self.streams)
            for i, p in enumerate(scenario.populations)
        }

    # ---------------------------------------------------------------- shared state
    def account_locked(self, account: str) -> bool:
        return account in self.policy_state.locked_accounts

    def next_message_id(self) -> int:
        self._message_ids += 1
        return self._message_ids

    # ---------------------------------------------------------------- processes
    def start(self) -> None:
        for i, population in enumerate(self.scenario.populations):
            if population.is_bot:
                self._start_bots(i, population)
            else:
                self.env.process(self._dispatch_users(i, population))
        self.env.process(self._sampler())

    def _dispatch_users(self, index: int, population: Population):
        env = self.env
        users = self.users[population.name]
        times, clients, recipients = user_arrivals(population, self.scenario.horizon, self.streams.get("arrivals", population.name))
        self.active += 1
        for t, n, r in zip(times.tolist(), clients.tolist(), recipients.tolist()):
            if t > env.now:
                yield env.timeout(t - env.now)
            self.active += 1
            env.process(self._user_message(users.client(n), r))
        self.active -= 1

    def _user_message(self, client: Client, recipients: int):
        env = self.env
        population = self.scenario.populations[client.population]
        first = env.now
        message_id = self.next_message_id()
        attempts = 0
        slot_wait = policy_delay = 0.0
        while True:
            attempts += 1
            result = yield from smtp_session(self, client, client.sasl_username, message_id, recipients, True)
            slot_wait += result.slot_wait
            policy_delay += result.policy_delay
            if not result.outcome.temporary or attempts > population.retries:
                break
            yield env.timeout(max(result.client_end - env.now, 0.0) + population.retry_interval)
        self.recorder.message(
            client.population, client.number, client.origin, self.recorder.account_code(client.sasl_username),
            recipients, first, result.client_end, result.accepted_at, attempts, result.outcome, result.step,
            result.recipients_accepted, ideal_duration(recipients, client.half_rtt, self.reply_time),
            slot_wait, policy_delay,
        )
        self.active -= 1

    def _start_bots(self, index: int, population: Population) -> None:
        if population.accounts_from is not None:
            names = [f"{population.accounts_from}{k}" for k in range(population.accounts)]
        else:
            names = [f"{population.name}-stolen{k}" for k in range(population.accounts)]
        accounts = AccountPool(names)
        bots = self.users[population.name]
        for b in range(population.count):
            bot = bots.client(b)
            bot.sasl_username = ""
            for w in range(population.parallel):
                self.env.process(self._bot_worker(population, bot, accounts, self.streams.get("bot", population.name, b, w)))

    def _bot_worker(self, population: Population, bot: Client, accounts: AccountPool, rng: np.random.Generator):
        """A closed loop: session, pause, session … from ``start`` to ``stop``."""
        env = self.env
        self.active += 1
        stop = min(population.stop if population.stop is not None else math.inf, self.scenario.horizon)
        yield env.timeout(population.start + population.ramp * rng.random())
        while env.now < stop:
            account = accounts.pick(rng.random())
            if account is None:
                break  # every stolen account is dead: the campaign is over
            recipients = int(population.recipients.sample(rng))
            pause = float(population.pause.sample(rng))
            first = env.now
            result = yield from smtp_session(self, bot, account, self.next_message_id(), recipients, False)
            self.recorder.message(
                bot.population, bot.number, bot.origin, self.recorder.account_code(account),
                recipients, first, result.client_end, result.accepted_at, 1, result.outcome, result.step,
                result.recipients_accepted, ideal_duration(recipients, bot.half_rtt, self.reply_time),
                result.slot_wait, result.policy_delay,
            )
            if result.outcome == Outcome.AUTH_FAILED:
                accounts.drop(account)
            yield env.timeout(max(result.client_end - env.now, 0.0) + pause)
        self.active -= 1

    def _sampler(self):
        """Reads the smtpd pool once per bin (monitoring from outside the behaviour)."""
        env = self.env
        width = self.scenario.bin
        horizon = self.scenario.horizon
        while True:
            yield env.timeout(width)
            busy_peak, queue_peak = self.pool.sample()
            self.recorder.sample(env.now, self.pool.busy_area(), busy_peak, queue_peak)
            if self.progress is not None:
                self.progress(env.now, horizon, _events(env))
            if env.now >= horizon and self.active == 0 and self.pool.busy == 0 and self.pool.queued == 0:
                return


def _events(env: simpy.Environment) -> int:
    # SimPy numbers every scheduled event from one counter (``env._eid``);
    # peeking at a copy costs nothing, unlike stepping the loop by hand to count.
    return next(copy.copy(env._eid))


def simulate(scenario: Scenario, policy: str, seed: int, recorder: Recorder,
             progress: ProgressCallback | None = None) -> RunInfo:
    """Run one replication; fills ``recorder`` and returns run statistics."""
    started = time.perf_counter()
    world = World(scenario, policy, seed, recorder, progress)
    world.start()
    world.env.run()
    return RunInfo(events=_events(world.env), end_s=world.env.now, wall_s=time.perf_counter() - started)
