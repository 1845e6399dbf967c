"""Behind the front end: Postfix's queue manager, delivery agents and bounces.

Accepted messages enter the *incoming* queue and move to the *active* queue
while it holds fewer than ``active_limit`` messages.  Each active message is
split into delivery requests: per destination, at most
``recipients_per_request`` recipients each.  A free delivery agent takes the
next request of the next destination (round robin) that is below its
concurrency limit; the attempt takes the destination's ``delivery_time``.

The destination answers per recipient: accept, defer (4xx) or reject (5xx),
with its probabilities for legitimate or spam mail — unless the server is
listed on a reputation list the destination consults (then it refuses
everything, at the list's ``stage``) or the server exceeds the destination's
rate limit (then it defers).

Each remote destination has Postfix's concurrency window
(:mod:`.destination_window`): slow start, feedback, and the *dead* state.  A
refusal at the greeting that defers (a 4xx banner, or a 5xx one with
``skip_5xx_greeting``) is a connection-level failure: negative feedback, and a
whole failed cohort marks the destination dead.  While it is dead its waiting
requests and the recipients of newly activated messages are deferred without
an attempt ("delivery temporarily suspended"), until ``minimal_backoff`` after
it died or until a delivery still in progress succeeds.  Refusals at RCPT or
DATA, and every other outcome, are positive feedback (Postfix's
``smtp_rcpt_fail``/``smtp_mesg_fail`` do not throttle).

When all requests of a message are done, one *pass* is over:

* rejected recipients produce one bounce to the envelope sender (a bounce that
  itself fails is a double bounce, dropped or sent to the postmaster);
* deferred recipients wait in the *deferred* queue until
  ``now + clamp(age, minimal_backoff, maximal_backoff)`` and then for the next
  deferred-queue scan (every ``queue_run_delay``); past
  ``maximal_queue_lifetime`` they expire and bounce instead.

Delivery uses callbacks on timeouts rather than processes: one event per
delivery request.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from typing import Final, cast

import numpy as np
import simpy
from mypy_extensions import mypyc_attr

from ..policy.ratelimit import FixedWindow
from ..scenario.types import Destination, QueueConfig
from .destination_window import DestinationWindow
from .engine import Delay, clock, timeout
from .recorder import Recorder
from .reputation import Reputation, first_refusal

NAN: Final = math.nan
LOCAL_DELIVERY_TIME: Final = 0.01  # s, local(8) delivery of a bounce to a mailbox of the ISP

# A message's kind as the queue keeps it: a plain int (compiled, an int compares and indexes
# natively, an enum member through Python), with the values of Kind below.
LEGIT: Final = 0
SPAM: Final = 1
BOUNCE: Final = 2  # a non-delivery report to the original envelope sender
DOUBLE_BOUNCE: Final = 3  # a failed bounce, sent to the postmaster


class Kind(enum.IntEnum):
    LEGIT = LEGIT
    SPAM = SPAM
    BOUNCE = BOUNCE
    DOUBLE_BOUNCE = DOUBLE_BOUNCE


class Draws:
    """Draws from ``sample(rng, size)`` fetched a block at a time: numpy is fast
    per block and slow per scalar, and delivery needs millions of scalars."""

    __slots__ = ("rng", "sample", "block", "values", "index")

    def __init__(self, rng: np.random.Generator, sample, block: int = 4096):
        self.rng = rng
        self.sample = sample
        self.block = block
        self.values: list[float] = []
        self.index = 0

    def next(self) -> float:
        if self.index == len(self.values):
            self.values = self.sample(self.rng, self.block).tolist()
            self.index = 0
        value = self.values[self.index]
        self.index += 1
        return value

    def take(self, n: int) -> list[float]:
        """The next ``n`` draws, the same values ``n`` calls of :meth:`next` would give."""
        start, stop = self.index, self.index + n
        if stop <= len(self.values):
            self.index = stop
            return self.values[start:stop]
        return [self.next() for _ in range(n)]


class QueuedMessage:
    """One message in the mail queue; counts are recipients."""

    __slots__ = ("id", "kind", "account", "local_sender", "accepted_at", "recipients", "todo", "todo_mask",
                 "in_flight", "rejected_now", "delivered", "bounced", "purged", "expired", "last_delivery",
                 "retry_at", "where")

    def __init__(self, message_id: int, kind: int, account: str, local_sender: bool, accepted_at: float,
                 todo: dict[int, int]):
        self.id = message_id
        self.kind = kind  # a Kind's value
        self.account = account
        self.local_sender = local_sender  # bounces go to a local mailbox
        self.accepted_at = accepted_at
        self.todo = todo  # destination index -> recipients to attempt in the next pass
        # Bit d set: destination d is in ``todo``; kept with it wherever ``todo`` changes, so the
        # deferred-queue scan tells mail to dead destinations without walking each message's dict.
        mask = 0
        recipients = 0
        for d, count in todo.items():  # a loop, not sum(): compiled, sum() is a call through Python
            mask |= 1 << d
            recipients += count
        self.todo_mask = mask
        self.recipients = recipients
        self.in_flight = 0  # delivery requests of the current pass not yet done
        self.rejected_now = 0  # recipients rejected in the current pass
        self.delivered = 0
        self.bounced = 0
        self.purged = 0
        self.expired = 0
        self.last_delivery = NAN
        self.retry_at = 0.0
        self.where = "incoming"  # incoming, active, deferred, done

    @property
    def pending(self) -> int:
        """Recipients not yet delivered, bounced (or about to: rejected in this pass), purged or expired."""
        return self.recipients - self.delivered - self.bounced - self.rejected_now - self.purged - self.expired


# Compiled, a class takes subclasses written in Python only when it says so (the tests check the
# queue's limits in one).
@mypyc_attr(allow_interpreted_subclasses=True)
class MailQueue:
    def __init__(self, env: simpy.Environment, config: QueueConfig, destinations: tuple[Destination, ...],
                 reputation: Reputation, recorder: Recorder, rng: np.random.Generator):
        self.env = env
        self.config = config
        self.destinations = destinations
        self.reputation = reputation
        self.recorder = recorder
        self.rng = rng
        n = len(destinations)
        self.spam_shares = np.array([d.spam_share for d in destinations])
        self.legit_shares = np.array([d.legit_share for d in destinations])
        self.local = n  # request queue of the ISP's own mailboxes (bounces to local senders)
        # (message, recipients) per request; typed, so that compiled code reads them natively.
        self.requests: list[deque[tuple[QueuedMessage, int]]] = [deque() for _ in range(n + 1)]
        self.busy_per_destination = [0] * (n + 1)
        # qmgr's in-core queue per remote destination; local(8) keeps the fixed limit.
        self.windows = [DestinationWindow(config.initial_concurrency, config.destination_concurrency,
                                          config.failed_cohort_limit) for _ in destinations]
        # Deliveries each destination may have in progress now (read on every dispatch).
        self.window_limit = [w.window for w in self.windows] + [config.destination_concurrency]
        self.skip_5xx_greeting = config.skip_5xx_greeting
        self.attempts = 0  # delivery requests that reached a destination (local ones included)
        self.suspended_recipients = 0  # recipients deferred without an attempt (destination dead)
        self.suspensions = 0  # times a destination was declared dead
        self.limits = [FixedWindow(d.rate_limit[0], d.rate_limit[1]) if d.rate_limit else None for d in destinations]
        # Per destination, indexed by Kind: cumulative (accept, accept + defer) thresholds for
        # one uniform draw.  Bounces (and double bounces) fare as spam does.
        self.outcome_p = [
            [_thresholds(d.legit), _thresholds(d.spam), _thresholds(d.spam), _thresholds(d.spam)]
            for d in destinations
        ]
        self.spam_cumulative = np.cumsum(self.spam_shares / self.spam_shares.sum()).tolist()
        self.uniform = Draws(rng, lambda r, n: r.random(n))
        self.delivery_times = [Draws(rng, d.delivery_time.sample) for d in destinations]
        self.lists = [d.lists for d in destinations]  # the reputation lists each destination consults
        # The same lists' states, looked up once: a delivery reads them without a dict lookup per name.
        self.list_states = [reputation.states(d.lists) for d in destinations]
        self.waiting_requests = 0
        self.agents_busy = 0
        # Read on every delivery: plain attributes, not lookups through config.
        self.active_limit = config.active_limit
        self.delivery_agents = config.delivery_agents
        self.destination_concurrency = config.destination_concurrency
        self.recipients_per_request = config.recipients_per_request
        self.double_bounce_to_postmaster = config.double_bounce == "postmaster"
        # Read for every suspended message a scan defers again (millions in a long listing).
        self.minimal_backoff = config.minimal_backoff  # s
        self.maximal_backoff = config.maximal_backoff  # s
        self.lifetime_of_kind = [config.maximal_queue_lifetime, config.maximal_queue_lifetime,
                                 config.bounce_queue_lifetime, config.bounce_queue_lifetime]  # s, indexed by Kind
        # The round robin's scan order from each starting destination ((n + 1)² entries:
        # nothing for the tens of destinations a scenario has).
        self._scan_orders = [[(start + step) % (n + 1) for step in range(n + 1)] for start in range(n + 1)]
        self._on_delivered = self._delivered  # one bound method for every delivery's callback
        self.incoming: deque[QueuedMessage] = deque()
        self.active = 0
        # Messages in the deferred queue: they are in ``messages`` with ``where == "deferred"``
        # and in ``deferred_buckets``; a third index of them by id cost a dict entry each.
        self.deferred_count = 0
        # Deferred messages in buckets of ceil(retry_at / width), so a scan takes only the
        # buckets that can hold due ones (ceil, not floor: a scan at a multiple of the width,
        # as every periodic one is, finds its last bucket all due, where with floor it
        # would be all but due and copied back, each message visited twice) (a heap of every deferred message costs a sift
        # through ~17 levels per retry).  A bucket holds the messages alone, not
        # (retry_at, id, message) entries: in a long listing most of the queue sits here
        # (18,000 messages at the 1x benchmark's peak), and an entry cost 88 bytes each.
        # Entries of messages purged meanwhile are skipped when they come up.
        self.deferred_buckets: dict[int, list[QueuedMessage]] = {}
        self.bucket_width = config.queue_run_delay  # s
        self.low_bucket = math.floor(env.now / self.bucket_width)  # no bucket below this one holds an entry
        self.messages: dict[int, QueuedMessage] = {}  # every message still queued, by id
        self._next_id = -1  # bounces get negative ids, front-end messages keep theirs
        self._rr = 0
        self._pumping = False
        self._pump_again = False
        self.peak_active = 0
        self.peak_deferred = 0
        self.bounces = 0
        self.double_bounces = 0
        self.purged = 0
        # Kept only for an operator that looks at them, and only as far back as it looks
        # (its window, s): kept whole, they would grow with every message of the run.
        self.volume: deque[tuple[float, str, int]] = deque()  # (accepted at, account, recipients)
        self.volume_window: float | None = None
        self.bounce_log: deque[float] = deque()  # when each bounce was generated
        self.bounce_window: float | None = None

    # ------------------------------------------------------------------ entry points
    def accept(self, message_id: int, kind: int, account: str, local_sender: bool, split: dict[int, int]) -> None:
        """A message the front end accepted (``split``: destination index -> recipients).

        The queue keeps ``split`` as the message's own (its recipients still to go): the
        caller hands over a dict it no longer uses (each message's split is drawn anew)."""
        now = clock(self.env)  # env.now without SimPy's interpreted property
        message = QueuedMessage(message_id, kind, account, local_sender, now, split)
        if self.volume_window is not None:
            volume, oldest = self.volume, now - self.volume_window
            volume.append((now, account, message.recipients))
            while volume and volume[0][0] <= oldest:
                volume.popleft()
        self._enqueue(message)

    def split(self, recipients: int, spam: bool, rng: np.random.Generator) -> dict[int, int]:
        """Draw the destinations of ``recipients`` recipients from ``rng``."""
        counts = rng.multinomial(recipients, self.spam_shares if spam else self.legit_shares).tolist()
        return {i: c for i, c in enumerate(counts) if c}  # tolist: plain ints, without a numpy scalar each

    def purge(self, accounts: set[str]) -> int:
        """Delete the queued mail of ``accounts``; returns the recipients purged."""
        total = 0
        for message in list(self.messages.values()):
            if message.account in accounts and message.kind <= SPAM:  # not a bounce
                pending = message.pending
                message.purged += pending
                total += pending
                message.todo = {}
                message.todo_mask = 0
                if message.where == "deferred":
                    self.deferred_count -= 1
                    self._finish(message)
                elif message.where == "incoming":
                    self.incoming.remove(message)
                    self._finish(message)
                # active: its outstanding requests are dropped when they come up
        self.purged += total
        self._pump()
        return total

    def start(self) -> None:
        self.env.process(self._scan_deferred())

    def sizes(self) -> tuple[int, int, int]:
        return len(self.incoming), self.active, self.deferred_count

    def sample_peaks(self) -> tuple[int, int]:
        peaks = (self.peak_active, self.peak_deferred)
        self.peak_active = self.active
        self.peak_deferred = self.deferred_count
        return peaks

    def finish_all(self) -> None:
        """At the end of the run: record every message still queued, and the queue's totals."""
        for message in list(self.messages.values()):
            self._record(message)
        self.recorder.totals.update(bounces=self.bounces, double_bounces=self.double_bounces, purged=self.purged,
                                    delivery_attempts=self.attempts, suspended_recipients=self.suspended_recipients,
                                    suspensions=self.suspensions)

    # ------------------------------------------------------------------ queue movement
    def _enqueue(self, message: QueuedMessage) -> None:
        self.messages[message.id] = message
        message.where = "incoming"
        self.incoming.append(message)
        self._pump()

    def _pump(self) -> None:
        """Admit incoming messages and start deliveries until nothing more can move.

        Finishing one message can admit the next, and so on; the loop (not
        recursion) keeps long chains of such steps off the call stack."""
        if self._pumping:
            self._pump_again = True
            return
        if (not self.incoming or self.active >= self.active_limit) and (
                not self.waiting_requests or self.agents_busy >= self.delivery_agents):
            return  # nothing can move (most calls, after a delivery that started nothing new)
        self._pumping = True
        try:
            again = True
            while again:
                self._pump_again = False
                limit = self.active_limit
                while self.incoming and self.active < limit:
                    self._activate(self.incoming.popleft())
                self._dispatch()
                again = self._pump_again
        finally:
            self._pumping = False

    def _activate(self, message: QueuedMessage) -> None:
        message.where = "active"
        self.active += 1
        if self.active > self.peak_active:
            self.peak_active = self.active
        per_request = self.recipients_per_request
        message.rejected_now = 0
        todo = message.todo
        windows = self.windows
        local = self.local
        dead = 0  # the destinations whose recipients stay in ``todo``
        for destination, count in todo.items():
            if destination != local and windows[destination].window == 0:
                # qmgr_message_resolve: "This queue is dead. Defer delivery to this recipient."
                dead |= 1 << destination
                self.suspended_recipients += count
                continue
            while count > 0:
                chunk = min(count, per_request)
                self.requests[destination].append((message, chunk))
                self.waiting_requests += 1
                message.in_flight += 1
                count -= chunk
        # ``todo`` keeps the dead destinations' entries, in their order: kept whole if every
        # destination is dead, emptied in place if none is (no new dict per activation).
        if dead != message.todo_mask:
            if dead:
                message.todo = {d: c for d, c in todo.items() if dead >> d & 1}
            else:
                todo.clear()
            message.todo_mask = dead
        if message.in_flight == 0:
            self._end_pass(message)

    def _scan_deferred(self):
        """Postfix scans the deferred queue every queue_run_delay (:meth:`_scan`)."""
        delay = self.config.queue_run_delay
        env = self.env
        while True:
            yield timeout(env, delay)
            self._scan(clock(env))

    def _scan(self, now: float) -> None:
        """One scan of the deferred queue at ``now`` (s).

        Postfix's order of work is: move the due messages (``retry_at <= now``) to the
        incoming queue in (retry_at, id) order, then activate them one by one while the
        active queue has room, then start deliveries.  While nothing else waits in the
        incoming queue and the active queue has room, a due message would be the very
        next one activated, so it is activated here at once; that skips a trip through
        the incoming queue, and a message whose every destination is dead (most of
        them, in a long listing) is deferred again on the spot by :meth:`_redefer`,
        without the general pass.  Only a message that would bounce at activation
        (expired while suspended) goes the long way, and every message after it, so
        its bounce queues behind them as before.  Nothing in the scan draws a random
        number, records a message or pumps the queue (one pump follows it, as in the
        plain order), so the sequence of everything observable is the one of the
        plain order of work.

        Deferring a suspended message again changes nothing the other due messages
        depend on (the incoming queue, the active count, the windows): each one's new
        state depends on itself only, the counter it adds to is a sum, and the peak of
        the active queue a maximum.  So only the other due messages are sorted, and
        the suspended ones are deferred again in whatever order the buckets hold them,
        with the peak of the active queue that the last of them in (retry_at, id)
        order would have seen.  Where the shortcut ends (the active queue full, or a
        message sent the long way), every due message after that point, suspended or
        not, goes to the incoming queue in order, as in the plain order of work."""
        suspended, recipients, others = self._take_due(now)
        if not suspended and not others:
            return
        incoming = self.incoming
        if incoming or self.active >= self.active_limit or self._pumping:
            # No shortcut: everything due goes to the incoming queue.
            later = others + [(m.retry_at, m.id, m) for m in suspended]
        else:
            others.sort()
            active_before = self.active
            activated = 0
            end = len(others)  # the index of the message after which the shortcut ends (len: it does not)
            # Activating a message with a live destination only queues requests: no window
            # changes in this loop, so the mask holds for all of it.
            live = self._live_destinations()
            for j in range(len(others)):
                message = others[j][2]
                self.deferred_count -= 1
                if message.todo_mask & live:  # a live destination
                    self._activate(message)  # requests only: no pass ends, nothing bounces
                    activated += 1
                    if self.active < self.active_limit:
                        continue
                else:  # expired while suspended, or not a deferred message's usual state
                    message.where = "incoming"
                    incoming.append(message)
                end = j
                break
            later = []
            if end < len(others):
                end_at, end_id, _message = others[end]
                before: list[QueuedMessage] = []
                for m in suspended:
                    if m.retry_at < end_at or (m.retry_at == end_at and m.id < end_id):
                        before.append(m)
                    else:
                        later.append((m.retry_at, m.id, m))
                        for count in m.todo.values():
                            recipients -= count
                suspended = before
                later.extend(others[end + 1:])
            if suspended:
                # In order, each would count as active for the instant of its pass, on top
                # of the others activated before it: the last one sees the most.
                seen = active_before
                if activated:
                    last_at, last_id = _latest(suspended)
                    for j in range(activated):
                        retry_at, message_id, _message = others[j]
                        if retry_at > last_at or (retry_at == last_at and message_id > last_id):
                            break
                        seen += 1
                if seen >= self.peak_active:
                    self.peak_active = seen + 1
                self._redefer(suspended, recipients, now)
        if later:
            later.sort()
            for _retry_at, _message_id, message in later:
                self.deferred_count -= 1
                message.where = "incoming"
                incoming.append(message)
        self._pump()

    def _take_due(self, now: float) -> tuple[list[QueuedMessage], int, list[tuple[float, int, QueuedMessage]]]:
        """The deferred messages due at ``now`` (s), out of the buckets: (those whose
        every destination is dead and that :meth:`_redefer` may defer again at once,
        their recipients, the others as (retry_at, id, message), unsorted).

        A message is due if ``retry_at <= now``; since ceil(x / width) never decreases
        as x grows (the rounded division does not either), every due message is in a
        bucket up to ceil(now / width), and only that last bucket can also hold messages
        not yet due (they stay): with ``now`` a multiple of the width, as at every
        periodic scan, it holds retry_at in (now - width, now], all due.  A message
        purged while deferred leaves its entry behind, which is dropped here; no other
        message leaves the deferred queue but through this method, so a deferred
        message has exactly one entry."""
        buckets = self.deferred_buckets
        lifetime_of_kind = self.lifetime_of_kind
        top = math.ceil(now / self.bucket_width)
        suspended: list[QueuedMessage] = []
        recipients = 0
        others: list[tuple[float, int, QueuedMessage]] = []
        live = self._live_destinations()  # no window changes during a scan
        for b in range(self.low_bucket, top + 1):
            bucket = buckets.pop(b, None)
            if bucket is None:
                continue
            later: list[QueuedMessage] = []
            for message in bucket:
                if message.where != "deferred":
                    continue  # purged
                if message.retry_at > now:
                    later.append(message)
                    continue
                # Suspended: every destination dead, in a deferred message's usual state,
                # and not expiring (an expired message bounces: the long way).  In that
                # state (no rejection waiting to bounce, nothing purged) the recipients left
                # in ``todo`` are the pending ones: each of the others was delivered or
                # bounced when its request ended.
                mask = message.todo_mask
                if (mask and not mask & live and not message.rejected_now and not message.purged
                        and now - message.accepted_at < lifetime_of_kind[message.kind]):
                    suspended.append(message)
                    recipients += message.pending
                else:
                    others.append((message.retry_at, message.id, message))
            if later:
                buckets[b] = later
        self.low_bucket = top
        return suspended, recipients, others

    def _defer(self, message: QueuedMessage, retry_at: float) -> None:
        """Put ``message`` in the deferred queue until ``retry_at`` (s)."""
        message.retry_at = retry_at
        message.where = "deferred"
        self.deferred_count += 1
        self._bucket(math.ceil(retry_at / self.bucket_width)).append(message)
        if self.deferred_count > self.peak_deferred:
            self.peak_deferred = self.deferred_count

    def _bucket(self, b: int) -> list[QueuedMessage]:
        """The deferred messages' bucket ``b`` (ceil(retry_at / bucket_width)), made if it is new."""
        if b < self.low_bucket:  # only a retry_at before the last scan's now (s), which is never
            self.low_bucket = b
        bucket = self.deferred_buckets.get(b)
        if bucket is None:
            bucket = self.deferred_buckets[b] = []
        return bucket

    def _live_destinations(self) -> int:
        """A mask of the destinations mail can go to now: bit d set if d is local or a
        live remote destination (window > 0); compared with a message's ``todo_mask``."""
        live = 1 << self.local
        for d, window in enumerate(self.windows):
            if window.window:
                live |= 1 << d
        return live

    def _redefer(self, messages: list[QueuedMessage], recipients: int, now: float) -> None:
        """Defer again at once due ``messages`` (from :meth:`_take_due`, with their
        ``recipients``) whose every destination is dead, as :meth:`_activate` and :meth:`_end_pass` would: every
        recipient is suspended, the pass ends at once, and (not expired) the message
        goes back to the deferred queue with its new ``retry_at`` (s).  The caller
        updates the active queue's peak.  The messages never left the deferred queue
        (its count and peak stay as they were); only their entries move to new buckets."""
        minimal_backoff = self.minimal_backoff
        maximal_backoff = self.maximal_backoff
        width = self.bucket_width
        last_b = -1
        bucket: list[QueuedMessage] = []
        for message in messages:
            retry_at = now + min(max(now - message.accepted_at, minimal_backoff), maximal_backoff)
            message.retry_at = retry_at
            b = math.ceil(retry_at / width)
            if b != last_b:  # mostly the same bucket as the last one: old mail waits maximal_backoff
                last_b = b
                bucket = self._bucket(b)
            bucket.append(message)
        self.suspended_recipients += recipients

    # ------------------------------------------------------------------ delivery
    def _dispatch(self) -> None:
        agents = self.delivery_agents
        if self.agents_busy >= agents or not self.waiting_requests:
            return  # the common case after a delivery: nothing to start
        limit = self.window_limit
        requests = self.requests
        busy = self.busy_per_destination
        env = self.env
        while self.agents_busy < agents and self.waiting_requests:
            # Round robin over destinations, skipping those at their concurrency window.
            for d in self._scan_orders[self._rr]:
                if requests[d] and busy[d] < limit[d]:
                    break
            else:
                return  # nothing can start now
            self._rr = d + 1 if d != self.local else 0
            message, count = requests[d].popleft()
            self.waiting_requests -= 1
            if message.purged and message.kind <= SPAM and message.pending == 0:
                self._request_done(message)
                continue
            self.agents_busy += 1
            self.attempts += 1
            busy[d] += 1
            duration = LOCAL_DELIVERY_TIME if d == self.local else self.delivery_times[d].next()
            timeout(env, duration, (message, d, count)).callbacks.append(self._on_delivered)

    def _delivered(self, event: Delay) -> None:
        """A delivery request is over; ``event.value`` is (message, destination, recipients)."""
        # Typed as the engine's Delay (what :meth:`_dispatch` schedules): compiled, its value is
        # read natively rather than by name.
        message, d, count = cast("tuple[QueuedMessage, int, int]", event._value)
        self.agents_busy -= 1
        self.busy_per_destination[d] -= 1
        now = clock(self.env)
        if message.purged and message.pending == 0:  # purged while the request was on its way
            # (unpurged, the request's own recipients are still pending)
            self._request_done(message)
            self._pump()
            return
        if d == self.local:
            accepted, deferred, rejected = count, 0, 0
        else:
            states = self.list_states[d]
            refusal = first_refusal(states) if states else None
            limit = self.limits[d]
            site_failure = False  # smtp_site_fail with a soft error: the queue manager throttles
            if refusal is not None:
                action, stage = refusal
                if stage == "greeting" and (action == "defer" or self.skip_5xx_greeting):
                    accepted, deferred, rejected = 0, count, 0
                    site_failure = True
                elif action == "reject":  # a 5xx banner without skipping, or every RCPT / the DATA refused
                    accepted, deferred, rejected = 0, 0, count
                else:
                    accepted, deferred, rejected = 0, count, 0
            elif limit is not None and not limit.try_take("server", now):
                accepted, deferred, rejected = 0, count, 0
            else:
                accept, defer = self.outcome_p[d][message.kind]
                accepted = deferred = 0
                uniform = self.uniform
                for _ in range(count):  # each recipient: accept, defer or reject
                    u = uniform.next()  # the draws uniform.take(count) would give, without the list
                    if u < accept:
                        accepted += 1
                    elif u < defer:
                        deferred += 1
                rejected = count - accepted - deferred
            if accepted and message.kind == SPAM:
                # Lists learn of spam that reaches mailboxes: spam traps, user complaints.
                self.reputation.spam_sent(now, accepted)
            self._feedback(d, site_failure)
        if accepted:
            message.delivered += accepted
            message.last_delivery = now
        if deferred:
            message.todo[d] = message.todo.get(d, 0) + deferred
            message.todo_mask |= 1 << d
        message.rejected_now += rejected
        message.in_flight -= 1
        if message.in_flight == 0:
            self._end_pass(message)
        self._pump()

    # ------------------------------------------------------------------ destination feedback
    def _feedback(self, d: int, site_failure: bool) -> None:
        """qmgr_deliver_update after a request to remote destination ``d`` is over
        (its agent already released: ``busy`` no longer counts it)."""
        window = self.windows[d]
        busy = self.busy_per_destination[d]
        if site_failure:
            # qmgr_deliver_update throttles only a queue that is ready (not already dead)
            if window.window and window.throttle():
                self.suspensions += 1
                self.window_limit[d] = 0
                self._defer_todo(d)
                generation = window.generation
                timeout(self.env, self.config.minimal_backoff).callbacks.append(
                    lambda _e: self._revive(d, generation))
        else:
            window.unthrottle(busy + 1)  # Postfix counts the finishing delivery as still busy
        if window.window and not self.requests[d] and busy == 0:
            window.reset()  # qmgr_entry_done: an empty queue that is not dead is discarded
        self.window_limit[d] = window.window

    def _revive(self, d: int, generation: int) -> None:
        """qmgr_queue_unthrottle_wrapper: the dead-destination timer went off."""
        window = self.windows[d]
        if window.window or window.generation != generation:
            return  # a successful delivery brought it back meanwhile
        window.unthrottle(self.busy_per_destination[d])
        if not self.requests[d] and self.busy_per_destination[d] == 0:
            window.reset()
        self.window_limit[d] = window.window
        self._pump()

    def _defer_todo(self, d: int) -> None:
        """qmgr_defer_todo: defer every request waiting for the dead destination ``d``."""
        waiting = self.requests[d]
        self.waiting_requests -= len(waiting)
        while waiting:
            message, count = waiting.popleft()
            if not message.purged:
                message.todo[d] = message.todo.get(d, 0) + count
                message.todo_mask |= 1 << d
                self.suspended_recipients += count
            self._request_done(message)

    def _request_done(self, message: QueuedMessage) -> None:
        message.in_flight -= 1
        if message.in_flight == 0:
            self._end_pass(message)

    def _end_pass(self, message: QueuedMessage) -> None:
        now: float = clock(self.env)  # typed: compiled, the arithmetic below is on doubles, not Python objects
        self.active -= 1
        if message.rejected_now:
            message.bounced += message.rejected_now
            self._bounce(message, now)
            message.rejected_now = 0
        if message.pending and not message.purged:
            age = now - message.accepted_at
            if age >= self.lifetime_of_kind[message.kind]:
                message.expired += message.pending
                message.todo = {}
                message.todo_mask = 0
                self._bounce(message, now)
                self._finish(message)
            else:
                self._defer(message, now + min(max(age, self.minimal_backoff), self.maximal_backoff))
        else:
            self._finish(message)

    def _bounce(self, message: QueuedMessage, now: float) -> None:
        """One non-delivery report per message per pass."""
        if message.kind == DOUBLE_BOUNCE:
            return  # Postfix never bounces a double bounce
        if message.kind == BOUNCE:
            self.double_bounces += 1
            if self.double_bounce_to_postmaster:
                self._new_bounce(DOUBLE_BOUNCE, {self.local: 1}, now)
            return
        self.bounces += 1
        if self.bounce_window is not None:
            log, oldest = self.bounce_log, now - self.bounce_window
            log.append(now)
            while log and log[0] <= oldest:
                log.popleft()
        if message.local_sender:
            target = {self.local: 1}
        else:  # a forged sender somewhere out there
            target = {min(_bisect_right(self.spam_cumulative, self.uniform.next()), self.local - 1): 1}
        self._new_bounce(BOUNCE, target, now)

    def _new_bounce(self, kind: int, target: dict[int, int], now: float) -> None:
        bounce = QueuedMessage(self._next_id, kind, "", True, now, target)
        self._next_id -= 1
        self._enqueue(bounce)

    def _finish(self, message: QueuedMessage) -> None:
        message.where = "done"
        self._record(message)
        del self.messages[message.id]

    def _record(self, message: QueuedMessage) -> None:
        # Recipients rejected in a pass still open at the end have not bounced yet: still queued.
        self.recorder.delivery(message.id, message.kind, message.accepted_at, message.recipients,
                               message.delivered, message.bounced, message.purged, message.expired,
                               message.pending + message.rejected_now, message.last_delivery)


def _latest(messages: list[QueuedMessage]) -> tuple[float, int]:
    """The largest (retry_at, id) of ``messages`` (not empty)."""
    last_at, last_id = messages[0].retry_at, messages[0].id
    for m in messages:
        if m.retry_at > last_at or (m.retry_at == last_at and m.id > last_id):
            last_at, last_id = m.retry_at, m.id
    return last_at, last_id


def _bisect_right(cumulative: list[float], x: float) -> int:
    """bisect.bisect_right(cumulative, x) for a non-decreasing list: the entries <= ``x``
    (a few, one per destination; compiled, a loop beats a call through Python)."""
    i = 0
    n = len(cumulative)
    while i < n and cumulative[i] <= x:
        i += 1
    return i


def _thresholds(outcomes) -> tuple[float, float]:
    """A uniform u < first: accept; < second: defer; else reject."""
    return outcomes.accept, outcomes.accept + outcomes.defer
