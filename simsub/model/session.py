"""One SMTP session against the submission service, as a SimPy process fragment.

The session asks the smtpd pool for a slot, then plays the dialogue
(:mod:`simsub.model.dialogue`) step by step, evaluating the policy's restriction
stages on the way.  It yields to the simulation only (a) while waiting for a free
smtpd and (b) before a stage that consults a policy service, so that shared
counters are read and written at the right simulated time.  Everything else is
arithmetic, which keeps the events per session constant whatever the number of
recipients.  The smtpd slot is released at the time the server side ends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..policy.restrictions import Result, Stage, Verdict
from .clients import Client
from .dialogue import Dialogue
from .outcomes import Outcome, Step
from .smtpd import GRANTED, REFUSED

NAN = math.nan
_NO_VERDICT = Verdict()
_REFUSAL = {Result.REJECT: Outcome.REJECTED, Result.DEFER: Outcome.DEFERRED}


@dataclass(slots=True)
class SessionResult:
    outcome: Outcome
    step: Step
    client_end: float  # s, when the client was done with this session
    accepted_at: float = NAN  # s, final 250 reached the client
    recipients_accepted: int = 0
    slot_wait: float = 0.0  # s waiting for an smtpd
    policy_delay: float = 0.0  # s of sleeps imposed on this session


class Transaction:
    """What restrictions may ask about the session (a Postfix policy request)."""

    __slots__ = ("client", "sasl_username", "message_id", "recipient_count", "decisions", "dialogue", "discarded")

    def __init__(self, client: Client, account: str, message_id: int, dialogue: Dialogue):
        self.client = client
        self.sasl_username = account
        self.message_id = message_id
        self.recipient_count = 0
        self.decisions: dict = {}
        self.dialogue = dialogue
        self.discarded = False  # a DISCARD action stops all further evaluation

    def pipelining_seen(self, t: float) -> bool:
        return self.dialogue.pipelining_seen(t)


def _verdict(env, stage: Stage, name: str, tx: Transaction, state, strict: bool = False):
    """Generator: the verdict of ``stage`` for the command the client sends next.

    Cacheable stages are evaluated once per client.  A stage that consults a
    policy service first lets simulated time catch up with the server's clock.
    After a DISCARD nothing more is evaluated.
    """
    if stage.empty or tx.discarded:
        return _NO_VERDICT
    if stage.cacheable:
        verdicts = tx.client.verdicts
        cached = verdicts.get(name)
        if cached is None:
            cached = verdicts[name] = stage.evaluate(tx, 0.0, state)
        return cached
    start = tx.dialogue.prepare(strict)
    if stage.stateful and start > env.now:
        yield env.timeout(start - env.now)
    return stage.evaluate(tx, start, state)


def smtp_session(world, client: Client, account: str, message_id: int, recipients: int, all_or_nothing: bool):
    """Generator: run one session now; returns a :class:`SessionResult`.

    ``all_or_nothing``: a legitimate mail client gives up the transaction when
    any recipient is refused (and retries later); a bot sends to whichever
    recipients were accepted.
    """
    env = world.env
    arrival = env.now
    grant = world.pool.connect(client.connect_timeout)
    if grant is REFUSED:
        world.recorder.session(client.population, arrival, Outcome.REFUSED, 0.0, 0.0)
        return SessionResult(Outcome.REFUSED, Step.QUEUE, arrival)
    if grant is not GRANTED:
        if not (yield grant):
            world.recorder.session(client.population, arrival, Outcome.ABANDONED, env.now - arrival, 0.0)
            world.last_end = max(world.last_end, env.now)
            return SessionResult(Outcome.ABANDONED, Step.QUEUE, env.now, slot_wait=env.now - arrival)
    start = env.now
    dialogue = Dialogue(arrival, start, client.half_rtt, world.reply_time, client.patience,
                        client.connect_timeout, client.talks)
    tx = Transaction(client, "", message_id, dialogue)  # the login is known after AUTH
    stages = world.policy.stages
    state = world.policy_state
    delay = 0.0  # sleeps imposed, s
    hold = discard = False
    outcome = None
    accepted_rcpts = 0
    accepted_at = NAN

    # Banner: with smtpd_delay_reject = no the client list runs before it.
    step = Step.BANNER
    v = yield from _verdict(env, stages["connect"], "connect", tx, state, strict=True)
    delay += v.delay
    hold |= v.hold
    discard |= v.discard
    tx.discarded = discard
    alive = dialogue.banner(v.delay)
    if alive:
        outcome = _REFUSAL.get(v.result)

    if alive and outcome is None:
        step = Step.EHLO
        v = yield from _verdict(env, stages["helo"], "helo", tx, state, strict=True)
        delay += v.delay
        hold |= v.hold
        discard |= v.discard
        tx.discarded = discard
        alive = dialogue.command(v.delay, strict=True)
        if alive:
            outcome = _REFUSAL.get(v.result)

    if alive and outcome is None:
        step = Step.AUTH
        alive = dialogue.command(0.0)
        if alive and world.account_locked(account):
            outcome = Outcome.AUTH_FAILED
        tx.sasl_username = account

    if alive and outcome is None:
        step = Step.MAIL
        v = yield from _verdict(env, stages["mail"], "mail", tx, state)
        delay += v.delay
        hold |= v.hold
        discard |= v.discard
        tx.discarded = discard
        alive = dialogue.command(v.delay)
        if alive:
            outcome = _REFUSAL.get(v.result)

    if alive and outcome is None:
        step = Step.RCPT
        stage = stages["rcpt"]
        rejected = deferred = 0
        if stage.same_for_each_recipient:
            # One verdict for all recipients; closed-form timeline.
            v = yield from _verdict(env, stage, "rcpt", tx, state)
            delay += v.delay * recipients
            hold |= v.hold
            discard |= v.discard
            tx.discarded = discard
            alive = dialogue.repeat(recipients, v.delay)
            if v.result == Result.REJECT:
                rejected = recipients
            elif v.result == Result.DEFER:
                deferred = recipients
            else:
                accepted_rcpts = recipients
        else:
            # A verdict per recipient (a service counting recipients, or a
            # pipelining check); only the first needs the clock to catch up.
            v = yield from _verdict(env, stage, "rcpt", tx, state)
            for i in range(recipients):
                if i:
                    v = _NO_VERDICT if tx.discarded else stage.evaluate(tx, dialogue.prepare(), state)
                delay += v.delay
                hold |= v.hold
                discard |= v.discard
                tx.discarded = discard
                if not dialogue.command(v.delay):
                    alive = False
                    break
                if v.result == Result.REJECT:
                    rejected += 1
                elif v.result == Result.DEFER:
                    deferred += 1
                else:
                    accepted_rcpts += 1
        tx.recipient_count = accepted_rcpts
        if alive and (accepted_rcpts == 0 or (all_or_nothing and accepted_rcpts < recipients)):
            outcome = Outcome.REJECTED if rejected else Outcome.DEFERRED

    if alive and outcome is None:
        step = Step.DATA
        v = yield from _verdict(env, stages["data"], "data", tx, state, strict=True)
        delay += v.delay
        hold |= v.hold
        discard |= v.discard
        tx.discarded = discard
        alive = dialogue.command(v.delay, strict=True)
        if alive:
            outcome = _REFUSAL.get(v.result)

    if alive and outcome is None:
        step = Step.END_OF_DATA
        v = yield from _verdict(env, stages["end_of_data"], "end_of_data", tx, state)
        delay += v.delay
        hold |= v.hold
        discard |= v.discard
        tx.discarded = discard
        alive = dialogue.command(v.delay)
        if alive:
            outcome = _REFUSAL.get(v.result)
            if outcome is None:
                step = Step.QUIT
                accepted_at = dialogue.last_receipt
                outcome = Outcome.DISCARDED if discard else Outcome.HELD if hold else Outcome.ACCEPTED

    if alive:
        dialogue.quit()
    else:
        outcome = Outcome.TIMEOUT
    world.pool.release_at(dialogue.server_end)
    world.last_end = max(world.last_end, dialogue.server_end, dialogue.client_left)
    slot_wait = start - arrival
    world.recorder.session(client.population, arrival, outcome, slot_wait, dialogue.server_end - start)
    return SessionResult(
        outcome=outcome,
        step=step,
        client_end=dialogue.client_left,
        accepted_at=accepted_at,
        recipients_accepted=accepted_rcpts if outcome.accepted else 0,
        slot_wait=slot_wait,
        policy_delay=delay,
    )
