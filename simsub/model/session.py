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
from typing import TYPE_CHECKING

from ..policy.restrictions import Result, Stage, Verdict
from ..workload.clients import Client
from .anvil import AUTH, MAIL, RCPT
from .dialogue import Dialogue
from .engine import clock, timeout
from .outcomes import Outcome, Step
from .smtpd import GRANTED, REFUSED

if TYPE_CHECKING:  # world imports this module; typed, the compiled build reads its attributes directly
    from .world import World

NAN = math.nan
_NO_VERDICT = Verdict()
_REFUSAL = {Result.REJECT: Outcome.REJECTED, Result.DEFER: Outcome.DEFERRED}
#: A command anvil's rate limit refuses: 450 4.7.1, no restriction evaluated.
_ANVIL_DEFER = Verdict(result=Result.DEFER, reason="anvil rate limit")


class SessionResult:
    """What one session came to.  A plain class, not a dataclass: the compiled build
    would run a dataclass's generated ``__init__`` as interpreted Python, once per session."""

    __slots__ = ("outcome", "step", "client_end", "accepted_at", "recipients_accepted", "slot_wait", "policy_delay")

    def __init__(self, outcome: Outcome, step: Step, client_end: float, accepted_at: float = NAN,
                 recipients_accepted: int = 0, slot_wait: float = 0.0, policy_delay: float = 0.0):
        self.outcome = outcome
        self.step = step
        self.client_end = client_end  # s, when the client was done with this session
        self.accepted_at = accepted_at  # s, final 250 reached the client
        self.recipients_accepted = recipients_accepted
        self.slot_wait = slot_wait  # s waiting for an smtpd
        self.policy_delay = policy_delay  # s of sleeps imposed on this session


class ErrorLimits:
    """smtpd's error throttling: from ``soft`` errors (4xx/5xx replies) in a session on,
    every reply waits ``sleep`` s; at ``hard`` errors smtpd answers 421 and hangs up
    (smtpd_soft_error_limit, smtpd_hard_error_limit, smtpd_error_sleep_time)."""

    __slots__ = ("soft", "hard", "sleep")

    def __init__(self, soft: int, hard: int, sleep: float):
        self.soft, self.hard, self.sleep = soft, hard, sleep


_NO_LIMITS = ErrorLimits(soft=1 << 62, hard=1 << 62, sleep=0.0)


class SessionStage:
    """A policy's stage with what the session asks it every command as native attributes
    (a :class:`Stage` is interpreted: each read of its flags is a dictionary lookup)."""

    __slots__ = ("stage", "name", "empty", "cacheable", "stateful", "same_for_each_recipient")

    def __init__(self, stage: Stage, name: str):
        self.stage = stage
        self.name = name  # the key of its verdicts cached per client
        self.empty: bool = stage.empty
        self.cacheable: bool = stage.cacheable
        self.stateful: bool = stage.stateful
        self.same_for_each_recipient: bool = stage.same_for_each_recipient


class SessionStages:
    """A policy's stages, one attribute per SMTP command (a run builds it once)."""

    __slots__ = ("connect", "helo", "mail", "rcpt", "data", "end_of_data")

    def __init__(self, stages: dict[str, Stage]):
        self.connect = SessionStage(stages["connect"], "connect")
        self.helo = SessionStage(stages["helo"], "helo")
        self.mail = SessionStage(stages["mail"], "mail")
        self.rcpt = SessionStage(stages["rcpt"], "rcpt")
        self.data = SessionStage(stages["data"], "data")
        self.end_of_data = SessionStage(stages["end_of_data"], "end_of_data")


class Transaction:
    """What restrictions may ask about the session (a Postfix policy request)."""

    __slots__ = ("client", "sasl_username", "message_id", "recipient_count", "decisions", "dialogue",
                 "delay", "hold", "discarded", "errors", "limits")

    def __init__(self, client: Client, account: str, message_id: int, dialogue: Dialogue,
                 limits: ErrorLimits | None = None):
        self.client = client
        self.sasl_username = account
        self.message_id = message_id
        self.recipient_count = 0
        self.decisions: dict = {}
        self.dialogue = dialogue
        self.delay = 0.0  # s of sleeps imposed so far
        self.hold = False  # a HOLD action put the message on hold
        self.discarded = False  # a DISCARD action: accepted, dropped, nothing more evaluated
        self.errors = 0  # 4xx/5xx replies so far in this session
        self.limits = limits or _NO_LIMITS

    def pipelining_seen(self, t: float) -> bool:
        return self.dialogue.pipelining_seen(t)

    def error_pause(self) -> float:
        """Seconds smtpd waits before its next reply (error throttling)."""
        return self.limits.sleep if self.errors >= self.limits.soft else 0.0

    @property
    def too_many_errors(self) -> bool:
        return self.errors >= self.limits.hard

    def note(self, verdict: Verdict, times: int = 1) -> None:
        """Add a verdict's sleeps (``times`` over) and message flags to the session."""
        if verdict is _NO_VERDICT:  # nothing to add (most commands under most policies)
            return
        self.delay += verdict.delay * times
        self.hold |= verdict.hold
        self.discarded |= verdict.discard


def _verdict_now(stage: SessionStage, tx: Transaction, state, strict: bool = False) -> Verdict | None:
    """The verdict of ``stage`` for the command the client sends next, or None
    when the stage consults a policy service: then simulated time must first
    catch up with the server's clock (:func:`_verdict_on_time`).

    Cacheable stages are evaluated once per client.  After a DISCARD nothing
    more is evaluated.  This is a plain function, not a generator, because
    almost every verdict needs no simulated time and generators cost time to make.
    """
    if stage.empty or tx.discarded:
        return _NO_VERDICT
    if stage.cacheable:
        verdicts = tx.client.verdicts
        if verdicts is None:
            verdicts = tx.client.verdicts = {}
        cached = verdicts.get(stage.name)
        if cached is None:
            cached = verdicts[stage.name] = stage.stage.evaluate(tx, 0.0, state)
        return cached
    if stage.stateful:
        return None
    return stage.stage.evaluate(tx, tx.dialogue.prepare(strict), state)


def _verdict_on_time(env, stage: SessionStage, tx: Transaction, state, strict: bool = False):
    """Generator: a stateful stage's verdict, evaluated when the server reaches the
    command.  Only for a stage :func:`_verdict_now` answered None for (it skips
    the checks for empty, discarded and cacheable that function makes)."""
    start = tx.dialogue.prepare(strict)
    if start > clock(env):
        yield timeout(env, start - clock(env))
    return stage.stage.evaluate(tx, start, state)


def _catch_up(env, t: float):
    """Generator: let simulated time reach server time ``t``, so that counters shared
    between sessions (anvil's) are updated in time order."""
    if t > clock(env):
        yield timeout(env, t - clock(env))


def _refuse_recipients(tx: Transaction, verdict: Verdict, recipients: int) -> tuple[bool, int]:
    """RCPT TO × ``recipients``, each refused (4xx/5xx): each is an error, so the
    first ones go at full speed, then smtpd waits before every reply, and at the
    hard limit it answers the next command with 421 and hangs up.
    Returns (client still there, recipients answered)."""
    dialogue, limits = tx.dialogue, tx.limits
    # Closed form for each phase: before the soft limit no pause, then a constant one.
    fast = min(recipients, max(min(limits.soft, limits.hard) - tx.errors, 0))
    alive = True
    if fast:
        tx.note(verdict, fast)
        alive = dialogue.repeat(fast, verdict.delay)
        tx.errors += fast
    answered = fast
    slow = min(recipients - answered, max(limits.hard - tx.errors, 0))
    if alive and slow:
        tx.note(verdict, slow)
        alive = dialogue.repeat(slow, verdict.delay + tx.error_pause())
        tx.errors += slow
        answered += slow
    if alive and answered < recipients:
        alive = dialogue.server_hangup(tx.error_pause())
    return alive, answered


def _command_now(stage: SessionStage, tx: Transaction, state, strict: bool = False):
    """One command (EHLO, MAIL FROM, DATA, end of data) with its stage's
    restrictions: (client still there, refusal outcome or None), or None when
    the stage must wait for simulated time (then use :func:`_command_on_time`)."""
    if tx.too_many_errors:  # smtpd answers 421 instead and hangs up
        return tx.dialogue.server_hangup(tx.error_pause()), Outcome.DEFERRED
    verdict = _verdict_now(stage, tx, state, strict)
    return None if verdict is None else _answer(tx, verdict, strict)


def _command_on_time(env, stage: SessionStage, tx: Transaction, state, strict: bool = False):
    """Generator: :func:`_command_now` for a stage that consults a policy service."""
    verdict = yield from _verdict_on_time(env, stage, tx, state, strict)
    return _answer(tx, verdict, strict)


def _answer(tx: Transaction, verdict: Verdict, strict: bool) -> tuple[bool, Outcome | None]:
    """smtpd replies to the command after the verdict's sleeps (and its error pause)."""
    if verdict is _NO_VERDICT:  # no sleep, no flag, no refusal: skip the interpreted Verdict's attributes
        return tx.dialogue.command(0.0 + tx.error_pause(), strict), None
    tx.note(verdict)
    alive = tx.dialogue.command(verdict.delay + tx.error_pause(), strict)
    refusal = _REFUSAL.get(verdict.result) if alive else None
    if refusal is not None:
        tx.errors += 1
    return alive, refusal


def smtp_session(world: World, client: Client, account: str, message_id: int, recipients: int, all_or_nothing: bool):
    """Generator: run one session now; returns a :class:`SessionResult`.

    ``all_or_nothing``: a legitimate mail client gives up the transaction when
    any recipient is refused (and retries later); a bot sends to whichever
    recipients were accepted.
    """
    env = world.env
    arrival = clock(env)
    grant = world.pool.connect(client.connect_timeout)
    if grant is REFUSED:
        world.recorder.session(client.population, arrival, Outcome.REFUSED, 0.0, 0.0)
        return SessionResult(Outcome.REFUSED, Step.QUEUE, arrival)
    if grant is not GRANTED:
        if not (yield grant):
            world.recorder.session(client.population, arrival, Outcome.ABANDONED, clock(env) - arrival, 0.0)
            world.last_end = max(world.last_end, clock(env))
            return SessionResult(Outcome.ABANDONED, Step.QUEUE, clock(env), slot_wait=clock(env) - arrival)
    start = clock(env)
    dialogue = Dialogue(arrival, start, client.half_rtt, world.reply_time, client.patience,
                        client.connect_timeout, client.talks)
    tx = Transaction(client, "", message_id, dialogue, world.error_limits)  # the login is known after AUTH
    stages = world.stages
    state = world.policy_state
    outcome = None
    accepted_rcpts = 0
    accepted_at = NAN
    anvil = world.anvil
    counted = not anvil.exempt(client)  # smtpd_client_event_limit_exceptions

    # anvil's connection limits come first: 421 instead of the banner, before any restriction.
    step = Step.BANNER
    anvil_handle = None
    if counted:
        anvil_handle, refused = anvil.connect(client.address, start)
        if refused:
            alive = dialogue.banner(0.0)
            if alive:  # the 421, and smtpd closes the connection
                outcome = Outcome.DEFERRED
                dialogue.server_end, dialogue.client_left = dialogue.server_free, dialogue.last_receipt

    # Banner: with smtpd_delay_reject = no the client list runs before it.
    if outcome is None and not dialogue.ended:
        v = _verdict_now(stages.connect, tx, state, strict=True)
        if v is None:
            v = yield from _verdict_on_time(env, stages.connect, tx, state, strict=True)
        tx.note(v)
        alive = dialogue.banner(v.delay)
        if alive:
            outcome = _REFUSAL.get(v.result)

    if alive and outcome is None:
        step = Step.EHLO
        alive, outcome = (_command_now(stages.helo, tx, state, strict=True)
                          or (yield from _command_on_time(env, stages.helo, tx, state, strict=True)))

    if alive and outcome is None:
        step = Step.AUTH
        if counted and anvil.limited(AUTH):
            yield from _catch_up(env, dialogue.prepare())
        if counted and anvil.limited(AUTH) and anvil.event(client.address, AUTH, dialogue.prepare()):
            alive, outcome = _answer(tx, _ANVIL_DEFER, False)
        else:
            alive = dialogue.command(0.0)
            if alive and world.account_locked(account):
                outcome = Outcome.AUTH_FAILED
            tx.sasl_username = account

    if alive and outcome is None:
        step = Step.MAIL
        if counted and anvil.limited(MAIL):
            yield from _catch_up(env, dialogue.prepare())
        if counted and anvil.limited(MAIL) and anvil.event(client.address, MAIL, dialogue.prepare()):
            alive, outcome = _answer(tx, _ANVIL_DEFER, False)
        else:
            alive, outcome = (_command_now(stages.mail, tx, state)
                              or (yield from _command_on_time(env, stages.mail, tx, state)))

    if alive and outcome is None:
        step = Step.RCPT
        stage = stages.rcpt
        rejected = deferred = 0
        anvil_rcpt = counted and anvil.limited(RCPT)  # each RCPT counted, and refused beyond the rate
        if stage.same_for_each_recipient and not anvil_rcpt:
            # One verdict for all recipients; closed-form timeline.
            v = _verdict_now(stage, tx, state)
            if v is None:
                v = yield from _verdict_on_time(env, stage, tx, state)
            if v.result in (Result.REJECT, Result.DEFER):
                alive, answered = _refuse_recipients(tx, v, recipients)
                if v.result == Result.REJECT:
                    rejected = answered
                else:
                    deferred = answered
            else:
                tx.note(v, recipients)
                alive = dialogue.repeat(recipients, v.delay + tx.error_pause())
                accepted_rcpts = recipients
        else:
            # A verdict per recipient (a service counting recipients, a pipelining
            # check, anvil's recipient rate); only the first needs the clock to catch up.
            if anvil_rcpt:
                yield from _catch_up(env, dialogue.prepare())
            first = True
            for i in range(recipients):
                if tx.too_many_errors:  # smtpd answers 421 and hangs up
                    alive = dialogue.server_hangup(tx.error_pause())
                    break
                if anvil_rcpt and anvil.event(client.address, RCPT, dialogue.prepare()):
                    v = _ANVIL_DEFER  # 450 4.7.1 before any restriction
                elif first:
                    first = False
                    v = _verdict_now(stage, tx, state)
                    if v is None:
                        v = yield from _verdict_on_time(env, stage, tx, state)
                else:
                    v = _NO_VERDICT if tx.discarded else stage.stage.evaluate(tx, dialogue.prepare(), state)
                tx.note(v)
                if not dialogue.command(v.delay + tx.error_pause()):
                    alive = False
                    break
                if v.result == Result.REJECT:
                    rejected += 1
                    tx.errors += 1
                elif v.result == Result.DEFER:
                    deferred += 1
                    tx.errors += 1
                else:
                    accepted_rcpts += 1
        tx.recipient_count = accepted_rcpts
        if alive and dialogue.ended:
            outcome = Outcome.DEFERRED  # "421 too many errors": the server hung up
        elif alive and (accepted_rcpts == 0 or (all_or_nothing and accepted_rcpts < recipients)):
            outcome = Outcome.REJECTED if rejected else Outcome.DEFERRED

    if alive and outcome is None:
        step = Step.DATA
        alive, outcome = (_command_now(stages.data, tx, state, strict=True)
                          or (yield from _command_on_time(env, stages.data, tx, state, strict=True)))

    if alive and outcome is None:
        step = Step.END_OF_DATA
        alive, outcome = (_command_now(stages.end_of_data, tx, state)
                          or (yield from _command_on_time(env, stages.end_of_data, tx, state)))
        if alive and outcome is None:
            step = Step.QUIT
            accepted_at = dialogue.last_receipt
            outcome = Outcome.DISCARDED if tx.discarded else Outcome.HELD if tx.hold else Outcome.ACCEPTED

    if alive and not dialogue.ended:
        # After the hard error limit smtpd sends its 421 without reading the QUIT.
        dialogue.quit(tx.error_pause(), unread=tx.too_many_errors)
    elif not alive:
        outcome = Outcome.TIMEOUT
    # Every path above set these (for the type checker, which cannot follow them).
    server_end, client_left = dialogue.server_end, dialogue.client_left
    assert outcome is not None and server_end is not None and client_left is not None
    world.pool.release_at(server_end)
    if anvil_handle is not None:
        anvil.close(anvil_handle, server_end)
    world.last_end = max(world.last_end, server_end, client_left)
    slot_wait = start - arrival
    world.recorder.session(client.population, arrival, outcome, slot_wait, server_end - start)
    return SessionResult(
        outcome=outcome,
        step=step,
        client_end=client_left,
        accepted_at=accepted_at,
        recipients_accepted=accepted_rcpts if outcome.accepted else 0,
        slot_wait=slot_wait,
        policy_delay=tx.delay,
    )
