"""A minimal SimPy skeleton of a scenario's workload: the yardstick for what simsub adds.

The skeleton plays the same messages simsub plays, drawn from the same named
random streams with the same functions (:mod:`simsub.workload.synthetic`):

* users: the same arrival times, clients and recipient counts, and the same
  destinations of their recipients;
* bots: each worker starts when simsub's does and draws the same account,
  recipients, pause, destinations and forged-sender flag per session; its next
  session starts ``pause`` after the end of the last one;
* smtpd is a ``simpy.Resource`` with the scenario's process limit;
* one timeout per session: the dialogue's duration with no sleeps and no policy
  (:func:`simsub.model.dialogue.ideal_duration`);
* one timeout per delivery request of the message's first pass (its
  recipients per destination in requests of ``recipients_per_request``, each the
  destination's mean delivery time), with no agent limit and no retries;
* no policy, no queue manager, no operator, no recording beyond three counters.

So the skeleton's CPU per message is the cost of the workload's bare event
traffic; simsub's CPU per message over it is what the model adds.  Bots whose
accounts the operator resets fail AUTH in simsub and end their campaigns
early (on the default day simsub then plays 201,086 sessions, the skeleton
296,512): compare them on a scenario without an operator, where both play
exactly the same sessions (benchmarks/suite.py does; tests/test_skeleton.py
checks it).
"""

from __future__ import annotations

import math
import time

import numpy as np
import simpy

from simsub.model.dialogue import ideal_duration
from simsub.scenario.types import Scenario
from simsub.workload.clients import AccountPool
from simsub.workload.rng import Streams
from simsub.workload.synthetic import (bot_first_start, client_populations, next_bot_message,
                                       recipient_destinations, stolen_accounts, user_arrivals)


class Skeleton:
    def __init__(self, scenario: Scenario, seed: int):
        self.scenario = scenario
        self.env = simpy.Environment()
        self.smtpd = simpy.Resource(self.env, capacity=scenario.mta.process_limit)
        self.streams = Streams(seed)
        self.clients = client_populations(scenario, self.streams)
        self.reply_time = scenario.mta.reply_time
        destinations = scenario.destinations
        self.legit_shares = np.array([d.legit_share for d in destinations])
        self.spam_shares = np.array([d.spam_share for d in destinations])
        self.delivery_means = [_mean_delivery_time(d.delivery_time) for d in destinations]
        self.per_request = scenario.queue.recipients_per_request if scenario.queue is not None else 0
        self.sessions = 0
        self.deliveries = 0

    def run(self) -> dict:
        """Play the workload; CPU seconds (this process) and the counts."""
        started = time.process_time()
        for population in self.scenario.populations:
            if population.is_bot:
                accounts = AccountPool(stolen_accounts(population))
                rtt = self.clients[population.name].rtt
                for b in range(population.count):
                    for w in range(population.parallel):
                        rng = self.streams.get("bot", population.name, b, w)
                        self.env.process(self._bot(population, float(rtt[b]) / 2, accounts, rng))
            else:
                self.env.process(self._users(population))
        self.env.run()
        cpu = time.process_time() - started
        return {"cpu_s": cpu, "sessions": self.sessions, "delivery_timeouts": self.deliveries}

    def _users(self, population):
        env = self.env
        rng = self.streams.get("arrivals", population.name)
        times, clients, recipients = user_arrivals(population, self.scenario.horizon, rng)
        splits = None if not self.per_request else recipient_destinations(recipients, self.legit_shares, rng)
        rtt = self.clients[population.name].rtt
        for i, (t, n, r) in enumerate(zip(times.tolist(), clients.tolist(), recipients.tolist())):
            if t > env.now:
                yield env.timeout(t - env.now)
            split = None if splits is None else splits[i].tolist()
            env.process(self._session(r, float(rtt[n]) / 2, split))

    def _bot(self, population, half_rtt: float, accounts: AccountPool, rng: np.random.Generator):
        env = self.env
        stop = min(population.stop if population.stop is not None else math.inf, self.scenario.horizon)
        first_start = bot_first_start(population, rng)
        if first_start >= stop:
            return
        yield env.timeout(first_start)
        while True:
            draw = next_bot_message(population, accounts, rng)
            if draw is None:
                return
            _account, recipients, pause = draw
            split = None
            if self.per_request:  # the same draws as simsub's, in the same order
                split = rng.multinomial(recipients, self.spam_shares).tolist()
                rng.random()  # forged sender or not
            yield from self._session(recipients, half_rtt, split)
            if env.now + pause >= stop:
                return
            yield env.timeout(pause)

    def _session(self, recipients: int, half_rtt: float, split: list[int] | None):
        env = self.env
        with self.smtpd.request() as slot:
            yield slot
            yield env.timeout(ideal_duration(recipients, half_rtt, self.reply_time))
        self.sessions += 1
        if split is not None:
            timeout, per_request, means = env.timeout, self.per_request, self.delivery_means
            for d, count in enumerate(split):
                for _ in range(-(-count // per_request)):
                    timeout(means[d])
                    self.deliveries += 1


def _mean_delivery_time(distribution) -> float:
    """The distribution's mean (s), estimated from a fixed sample: the skeleton needs a
    plausible duration, not the exact one."""
    return float(np.mean(distribution.sample(np.random.default_rng(0), 1000)))


def run_skeleton(scenario: Scenario, seed: int) -> dict:
    return Skeleton(scenario, seed).run()
