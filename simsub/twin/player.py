"""The scenario's populations, played in real time against a real smtpd.

The player draws exactly what the model draws — the same clients (names,
addresses, round trips, patience) from
:func:`~simsub.workload.synthetic.client_populations` with the same seed, the
users' message arrivals from :func:`~simsub.workload.synthetic.user_arrivals`,
each bot worker's sessions from
:func:`~simsub.workload.synthetic.next_bot_message` on the same named streams — and
behaves as the model's processes do: a user retries a temporarily failed
message after ``retry_interval`` up to ``retries`` times; a bot worker runs
session, pause, session… from its start until the horizon.  Only the SMTP
sessions themselves are real (:mod:`simsub.twin.smtp`).
"""

from __future__ import annotations

import asyncio
import functools
import math
from dataclasses import dataclass

from ..workload.clients import AccountPool, Client
from ..model.dialogue import ideal_duration
from ..model.outcomes import Outcome, Step
from ..workload.rng import Streams
from ..workload.synthetic import (bot_first_start, client_populations, next_bot_message, stolen_accounts,
                                  user_arrivals)
from ..scenario.types import Population, Scenario
from .smtp import RealSession, SmtpTarget, play_session, _sleep_until


@dataclass
class RealMessage:
    """One message as the client experienced it, over all its attempts (times: s since start)."""

    message: int
    population: int
    client: int
    origin: int
    account: str
    recipients: int
    first_attempt: float
    end: float
    accepted_at: float
    attempts: int
    outcome: Outcome
    step: Step
    recipients_accepted: int
    ideal: float


class Player:
    """Plays ``scenario``'s clients drawn with ``seed`` against ``host:port`` (the policy is the server's)."""

    def __init__(self, scenario: Scenario, seed: int, host: str, port: int, watch=None):
        # With a mail queue the model's bots draw more per session (destinations, sender),
        # and the streams would diverge: the twin plays the front end only.
        if scenario.queue is not None:
            raise ValueError("the twin player plays front-end scenarios only (see twin_scenario)")
        self.scenario = scenario
        # The clients and random streams exactly as the model draws them for this seed.
        self.streams = Streams(seed)
        self.clients = client_populations(scenario, self.streams)
        self.reply_time = scenario.mta.reply_time
        self.host = host
        self.port = port
        self.watch = watch  # the socket monitor's watch(client_port), if any
        self.sessions: list[RealSession] = []
        self.messages: list[RealMessage] = []
        self.started_at = math.nan  # loop.time() at the start of the run (monotonic s)
        self._next_message = 0
        self._settling: list[asyncio.Task] = []  # talkers' sessions settling after their QUIT

    async def play(self, progress=None) -> None:
        """Play every population until the horizon, then let every session finish."""
        loop = asyncio.get_running_loop()
        self.started_at = loop.time()
        target = SmtpTarget(self.host, self.port, lambda: loop.time() - self.started_at, self.watch)
        tasks = []
        for population in self.scenario.populations:
            if population.is_bot:
                tasks += self._bot_workers(target, population)
            else:
                tasks.append(asyncio.create_task(self._dispatch_users(target, population)))
        if progress is not None:
            ticker = asyncio.create_task(self._tick(target, progress))
        try:
            await asyncio.gather(*tasks)
            await asyncio.gather(*self._settling)  # talkers' sessions still waiting for replies
            await target.close_all()
        finally:
            for task in tasks + self._settling:
                task.cancel()
            if progress is not None:
                ticker.cancel()

    # ---------------------------------------------------------------- populations
    async def _dispatch_users(self, target: SmtpTarget, population: Population) -> None:
        users = self.clients[population.name]
        rng = self.streams.get("arrivals", population.name)
        times, clients, recipients = user_arrivals(population, self.scenario.horizon, rng)
        messages = []
        for t, n, r in zip(times.tolist(), clients.tolist(), recipients.tolist()):
            await _sleep_until(target.clock, t)
            messages.append(asyncio.create_task(self._user_message(target, users.client(n), r)))
        await asyncio.gather(*messages)

    async def _user_message(self, target: SmtpTarget, client: Client, recipients: int) -> None:
        population = self.scenario.populations[client.population]
        message = self._new_message()
        first = target.clock()
        attempts = 0
        while True:
            attempts += 1
            result = await self._session(target, client, client.sasl_username, message, recipients, True)
            if not result.outcome.temporary or attempts > population.retries:
                break
            await _sleep_until(target.clock, max(result.client_end, target.clock()) + population.retry_interval)
        self._record(message, client, client.sasl_username, recipients, first, result, attempts)

    def _bot_workers(self, target: SmtpTarget, population: Population) -> list[asyncio.Task]:
        accounts = AccountPool(stolen_accounts(population))
        bots = self.clients[population.name]
        tasks = []
        for b in range(population.count):
            bot = bots.client(b)
            for w in range(population.parallel):
                rng = self.streams.get("bot", population.name, b, w)
                tasks.append(asyncio.create_task(self._bot_worker(target, population, bot, accounts, rng)))
        return tasks

    async def _bot_worker(self, target: SmtpTarget, population: Population, bot: Client, accounts: AccountPool,
                          rng) -> None:
        stop = min(population.stop if population.stop is not None else math.inf, self.scenario.horizon)
        first_start = bot_first_start(population, rng)
        if first_start >= stop:
            return
        await _sleep_until(target.clock, first_start)
        while True:
            draw = next_bot_message(population, accounts, rng)
            if draw is None:
                return
            account, recipients, pause = draw
            message = self._new_message()
            first = target.clock()
            # A talker is done when it has said QUIT, before smtpd has answered everything
            # (then the session settles in the background, as in the model, where the
            # talker's next session does not wait for replies it never waited for).
            left = asyncio.get_running_loop().create_future()
            session = asyncio.create_task(self._session(target, bot, account, message, recipients, False, left))
            await asyncio.wait({session, left}, return_when=asyncio.FIRST_COMPLETED)
            record = functools.partial(self._record, message, bot, account, recipients, first)
            if not session.done():
                self._settling.append(session)
                session.add_done_callback(lambda task, record=record: task.cancelled() or record(task.result(), 1))
                next_start = max(left.result(), target.clock()) + pause
            else:
                result = session.result()
                record(result, 1)
                if result.outcome == Outcome.AUTH_FAILED:
                    accounts.drop(account)
                next_start = max(result.client_end, target.clock()) + pause
            if next_start >= stop:
                return
            await _sleep_until(target.clock, next_start)

    # ---------------------------------------------------------------- bookkeeping
    async def _session(self, target, client, account, message, recipients, all_or_nothing, left=None) -> RealSession:
        result = await play_session(target, client, account, message, recipients, all_or_nothing, left)
        self.sessions.append(result)
        return result

    def _new_message(self) -> int:
        self._next_message += 1
        return self._next_message

    def _record(self, message: int, client: Client, account: str, recipients: int, first: float,
                result: RealSession, attempts: int) -> None:
        self.messages.append(RealMessage(
            message, client.population, client.number, client.origin, account, recipients, first,
            result.client_end, result.accepted_at, attempts, result.outcome, result.step,
            result.recipients_accepted if result.outcome.accepted else 0,
            ideal_duration(recipients, client.half_rtt, self.reply_time)))

    async def _tick(self, target: SmtpTarget, progress) -> None:
        while True:
            progress(target.clock(), self.scenario.horizon, len(self.sessions))
            await asyncio.sleep(1.0)
