"""The mail administrator: notices trouble, then resets passwords and cleans up.

Every ``check_interval`` the operator looks at one indicator: the number of
queued messages (``queue_size``), the bounces generated in the last ``window``
(``bounces``), or the most recipients accepted for one account in the last
``window`` (``account_volume``).  Above ``threshold`` it acts
``reaction_delay`` later: among the accounts with more than
``suspicious_volume`` recipients in the last ``window``, it resets the
passwords of the ``reset_accounts`` with the most (each pick is, with
probability ``mistake``, a random legitimate account instead), purges their
queued mail and asks the lists that have the server listed to delist it.  It
keeps watching and acts again, after another ``reaction_delay``, while the
indicator stays high.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import simpy

from ..scenario.types import OperatorConfig
from .engine import timeout
from .queue import MailQueue
from .recorder import Recorder
from .reputation import Reputation


class Operator:
    def __init__(self, env: simpy.Environment, config: OperatorConfig, queue: MailQueue, reputation: Reputation,
                 locked: set[str], legit_accounts: Sequence[str], recorder: Recorder, rng: np.random.Generator):
        self.env = env
        self.config = config
        self.queue = queue
        self.reputation = reputation
        self.locked = locked  # shared with the front end: AUTH fails for these
        self.legit_accounts = legit_accounts
        self.recorder = recorder
        self.rng = rng
        self.detected_at: float | None = None
        self.accounts_reset: list[str] = []
        # The queue keeps what this operator reads, for as long as it looks back.
        queue.volume_window = config.window
        if config.rule == "bounces":
            queue.bounce_window = config.window

    def finish(self) -> None:
        """At the end of the run: record when the operator noticed and how many passwords it reset."""
        self.recorder.totals.update(detected_at_s=self.detected_at, accounts_reset=len(self.accounts_reset))

    def start(self) -> None:
        self.env.process(self._watch())

    def indicator(self) -> float:
        config = self.config
        now = self.env.now
        if config.rule == "queue_size":
            return float(len(self.queue.messages))
        if config.rule == "bounces":
            log = self.queue.bounce_log
            while log and log[0] <= now - config.window:
                log.popleft()
            return float(len(log))
        volumes = self.volumes()
        return float(max(volumes.values(), default=0))

    def volumes(self) -> Counter:
        """Recipients accepted per account in the last ``window``."""
        now = self.env.now
        volume = self.queue.volume
        while volume and volume[0][0] <= now - self.config.window:
            volume.popleft()
        counts: Counter = Counter()
        for _, account, recipients in volume:
            counts[account] += recipients
        return counts

    def _watch(self):
        config = self.config
        while True:
            yield timeout(self.env, config.check_interval)
            value = self.indicator()
            if value <= config.threshold:
                continue
            if self.detected_at is None:
                self.detected_at = self.env.now
            self.recorder.event(self.env.now, "detected", f"{config.rule} = {value:g} > {config.threshold:g}")
            yield timeout(self.env, config.reaction_delay)
            self._act()

    def _act(self) -> None:
        config = self.config
        top = [account for account, volume in self.volumes().most_common()
               if volume > config.suspicious_volume and account not in self.locked]
        chosen = []
        for account in top[: config.reset_accounts]:
            if config.mistake and self.rng.random() < config.mistake and self.legit_accounts:
                account = self.legit_accounts[int(self.rng.integers(len(self.legit_accounts)))]
            chosen.append(account)
        self.locked.update(chosen)
        self.accounts_reset.extend(chosen)
        purged = self.queue.purge(set(chosen)) if config.purge else 0
        asked = self.reputation.request_delisting() if config.request_delisting else []
        self.recorder.event(self.env.now, "action",
                            f"reset {len(chosen)} accounts, purged {purged} recipients, asked {', '.join(asked) or 'no list'} to delist")
