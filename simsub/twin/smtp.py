"""One SMTP session against a real smtpd, played in real time with asyncio.

The client behaves as the model's client does (:mod:`simsub.model.dialogue`):
it waits for each reply at most ``patience`` (the banner at most
``connect_timeout`` from the connection attempt), then hangs up or — a
``talk`` client — sends its next command anyway; it does not pipeline RCPT TO;
after the final 250 it sends QUIT without waiting for the 221.  The client's
half round trip ``h`` is emulated: each command is written ``h`` after the
client sends it and each reply counts as received ``h`` after it arrived, so a
loopback connection behaves like the client's network path.

Its disguise comes from XCLIENT (Postfix's XCLIENT_README): right after the
first banner it sets NAME (``[UNAVAILABLE]`` for a client without reverse DNS),
ADDR and LOGIN, which makes smtpd start the session again as that client,
logged in: anvil counts the new address, the pre-banner restrictions
(``smtpd_delay_reject = no``) run for it, and the reply to XCLIENT is the
client's banner (smtpd.c: ``xclient_cmd`` jumps back to the start of
``smtpd_proto``).  The private instance lets 127.0.0.1 itself through the
pre-banner restrictions.  The model's AUTH round trip is played as RSET,
not NOOP: smtpd looks for pipelined input after reading NOOP (like EHLO and
DATA), and not after AUTH or RSET.  Client times are seconds since
the start of the run (``clock()``).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from dataclasses import dataclass
from typing import Callable

from ..workload.clients import Client
from ..model.outcomes import Outcome, Step

NAN = math.nan


@dataclass
class RealSession:
    """What the client saw of one session (times: s since the run started, client clock)."""

    message: int  # index of the message this attempt belongs to
    population: int
    arrival: float
    outcome: Outcome
    step: Step
    client_end: float  # when the client was done (QUIT sent, or gave up)
    accepted_at: float = NAN  # final 250 received
    recipients_accepted: int = 0
    banner_at: float = NAN  # first 220 received
    client_port: int = 0  # the connection's local port (to find it in the socket monitor)
    connected: bool = True  # TCP connection established
    trace: object = None  # the socket monitor's record of the server side, if watched


class SmtpTarget:
    """Where to connect and how to name things in the dialogue."""

    def __init__(self, host: str, port: int, clock: Callable[[], float],
                 watch: Callable[[int], object] | None = None):
        self.host = host
        self.port = port
        self.clock = clock
        self.watch = watch  # called with the local port of each new connection
        self.open: set[asyncio.StreamWriter] = set()  # connections not closed yet

    async def close_all(self, grace: float = 0.5) -> None:
        """Let the hang-ups already scheduled happen (each ``h`` after its client
        left), then close whatever is still open."""
        deadline = self.clock() + grace
        while self.open and self.clock() < deadline:
            await asyncio.sleep(0.01)
        for writer in list(self.open):
            writer.close()
        self.open.clear()


def xtext(value: str) -> str:
    """RFC 1891 xtext, as XCLIENT attribute values need."""
    return "".join(c if 33 <= ord(c) <= 126 and c not in "+=" else "".join(f"+{b:02X}" for b in c.encode())
                   for c in value)


class _Link:
    """A connection whose replies are matched to commands in order, with ``h`` emulated."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, h: float,
                 clock: Callable[[], float], open_set: set):
        self.open_set = open_set
        self.reader = reader
        self.writer = writer
        self.h = h
        self.clock = clock
        self.loop = asyncio.get_running_loop()
        self.pending: deque[asyncio.Future] = deque()
        self.task = asyncio.create_task(self._read())
        self.left: asyncio.Future | None = None  # set to the time a talker is done talking

    def expect(self) -> asyncio.Future:
        """A future for the next reply (code, arrival time; code None if the connection was lost)."""
        future = self.loop.create_future()
        self.pending.append(future)
        if self.task.done():
            future.set_result((None, self.clock()))
        return future

    def send(self, line: str, delayed: bool = True) -> asyncio.Future:
        """Send a command (on the wire ``h`` later unless ``delayed`` is False) and expect its reply."""
        future = self.expect()
        self.write(line, delayed)
        return future

    def write(self, line: str, delayed: bool = True) -> None:
        data = line.encode("ascii") + b"\r\n"
        if delayed and self.h > 0:
            self.loop.call_later(self.h, self._write, data)
        else:
            self._write(data)

    def hang_up(self, after: float | None = None) -> None:
        """Close the connection; the FIN leaves ``h`` later (or ``after`` s)."""
        self.loop.call_later(self.h if after is None else after, self._close)

    async def wait(self, future: asyncio.Future, since: float, limit: float, emulate: bool = True):
        """The reply as the client sees it: (code, receipt time) if it was received by
        ``since + limit`` (client clock), else None at ``since + limit``."""
        h = self.h if emulate else 0.0
        deadline = since + limit - h  # latest arrival the client still sees in time
        if not future.done():
            await asyncio.wait({future}, timeout=max(deadline - self.clock(), 0.0))
        if future.done():
            code, arrived = future.result()
            if arrived <= deadline:
                await _sleep_until(self.clock, arrived + h)
                return code, arrived + h
        await _sleep_until(self.clock, since + limit)
        return None

    def close_now(self) -> None:
        self.task.cancel()

    # ------------------------------------------------------------------ internals
    def _write(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    def _close(self) -> None:
        self.open_set.discard(self.writer)
        if not self.writer.is_closing():
            self.writer.close()

    async def _read(self) -> None:
        try:
            while True:
                code = await _read_reply(self.reader)
                arrived = self.clock()
                while self.pending and self.pending[0].done():
                    self.pending.popleft()
                if self.pending:
                    self.pending.popleft().set_result((code, arrived))
        except (asyncio.IncompleteReadError, ConnectionError, OSError, ValueError):
            pass
        finally:
            now = self.clock()
            while self.pending:
                future = self.pending.popleft()
                if not future.done():
                    future.set_result((None, now))


async def _read_reply(reader: asyncio.StreamReader) -> int:
    """One (possibly multi-line) SMTP reply; returns its code."""
    while True:
        line = await reader.readuntil(b"\n")
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3])


async def _sleep_until(clock: Callable[[], float], t: float) -> None:
    delay = t - clock()
    if delay > 0:
        await asyncio.sleep(delay)


def _refusal(code: int | None) -> Outcome | None:
    """The outcome a reply ends the session with, or None for a positive reply."""
    if code is None:
        return Outcome.TIMEOUT  # the server hung up without a reply
    if code >= 500:
        return Outcome.REJECTED
    if code >= 400:
        return Outcome.DEFERRED
    return None


async def play_session(target: SmtpTarget, client: Client, account: str, message: int, recipients: int,
                       all_or_nothing: bool, left: asyncio.Future | None = None) -> RealSession:
    """Play one session now; see the module docstring.

    ``left``: a future that a talking client resolves with its client-clock time
    when it has said QUIT, before it waits for the replies it has not read yet
    (the model's talker is gone then and its next session may start)."""
    clock = target.clock
    arrival = clock()
    result = RealSession(message, client.population, arrival, Outcome.REFUSED, Step.QUEUE, arrival, connected=False)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(target.host, target.port),
                                                timeout=client.connect_timeout)
    except (OSError, asyncio.TimeoutError):
        # Refused, or no SYN-ACK because the accept queue is full: the model's REFUSED.
        result.client_end = clock()
        return result
    result.connected = True
    target.open.add(writer)
    result.client_port = writer.get_extra_info("sockname")[1]
    if target.watch is not None:
        result.trace = target.watch(result.client_port)
    link = _Link(reader, writer, client.half_rtt, clock, target.open)
    link.left = left
    try:
        await _dialogue(link, result, client, account, recipients, all_or_nothing)
    finally:
        link.close_now()
    return result


async def _dialogue(link: _Link, result: RealSession, client: Client, account: str, recipients: int,
                    all_or_nothing: bool) -> None:
    clock = link.clock
    patience = client.patience

    def give_up(step: Step, at: float) -> None:
        result.outcome, result.step, result.client_end = Outcome.TIMEOUT, step, at
        link.hang_up()

    def refused(step: Step, outcome: Outcome) -> None:
        result.outcome, result.step = outcome, step
        quit_at = clock()
        link.write("QUIT")
        link.hang_up(link.h + 0.001)
        result.client_end = quit_at

    # The first banner is for 127.0.0.1 (the instance lets it through any pre-banner
    # restriction); waited for at most connect_timeout from the connection attempt.
    first = await link.wait(link.expect(), result.arrival, client.connect_timeout, emulate=False)
    if first is None:
        give_up(Step.QUEUE, result.arrival + client.connect_timeout)  # ABANDONED or TIMEOUT: the monitor tells
        return
    if first[0] != 220:
        raise RuntimeError(f"the private Postfix greeted 127.0.0.1 with {first[0]}, not 220")

    # The disguise.  XCLIENT makes smtpd start the session again as that client: anvil
    # counts its address, the pre-banner restrictions run for it, and the reply to
    # XCLIENT is its banner (220), or their refusal, or anvil's 421.  The client's round
    # trip is emulated on this reply, its banner.
    name = "[UNAVAILABLE]" if client.hostname == "unknown" else client.hostname
    banner_future = link.send(f"XCLIENT NAME={xtext(name)} ADDR={client.address} LOGIN={xtext(account)}",
                              delayed=False)
    banner = await link.wait(banner_future, result.arrival, client.connect_timeout)
    # Every command with its reply and when the client moved on from it: a talker
    # settles its session from these at the end (see _settle_talker).
    moves: list[tuple[Step, asyncio.Future, float]] = []
    if banner is None:
        if not client.talks:
            give_up(Step.BANNER, result.arrival + client.connect_timeout)
            return
        moves.append((Step.BANNER, banner_future, result.arrival + client.connect_timeout))  # talks on
    else:
        code, result.banner_at = banner
        if (outcome := _refusal(code)) is not None:
            return refused(Step.BANNER, outcome)

    helo = client.hostname if client.hostname != "unknown" else f"[{client.address}]"

    async def command(step: Step, line: str | None):
        """Send (``line`` None: the message body, answered at end of data), wait as the client
        does; returns the reply or None when it timed out (a hang-up was then scheduled,
        unless the client talks)."""
        sent = clock()
        if line is None:
            link.write("Subject: simsub twin\r\n\r\nA message played by simsub twin.\r\n.")
            future = link.expect()
        else:
            future = link.send(line)
        reply = await link.wait(future, sent, patience)
        moves.append((step, future, sent + patience if reply is None else reply[1]))
        if reply is None and not client.talks:
            give_up(step, sent + patience)
        return reply

    for step, line in ((Step.EHLO, f"EHLO {helo}"), (Step.AUTH, "RSET"),
                       (Step.MAIL, f"MAIL FROM:<{xtext(account)}@example.invalid>")):
        reply = await command(step, line)
        if reply is None:
            if client.talks:
                continue  # a talking client sends its next command anyway
            return
        if (outcome := _refusal(reply[0])) is not None:
            if client.talks:
                return await _settle_talker(link, result, moves, recipients, all_or_nothing)
            return refused(step, outcome)

    accepted = rejected = 0
    talked = False
    for k in range(recipients):
        reply = await command(Step.RCPT, f"RCPT TO:<r{k}@example.net>")
        if reply is None:
            if not client.talks:
                return
            talked = True
            continue
        code = reply[0]
        if client.talks and (code is None or code == 421):
            return await _settle_talker(link, result, moves, recipients, all_or_nothing)
        if code is None:
            return give_up(Step.RCPT, clock())
        if code == 421:  # "too many errors" (or shutting down): smtpd closes the connection
            result.outcome, result.step, result.client_end = Outcome.DEFERRED, Step.RCPT, reply[1]
            return link.hang_up(0.0)
        if code < 400:
            accepted += 1
        elif code >= 500:
            rejected += 1
    refuse_now = accepted == 0 or (all_or_nothing and accepted < recipients)
    if client.talks:
        if refuse_now and not talked:  # every reply is in: settled now; else the talker sends DATA
            return await _settle_talker(link, result, moves, recipients, all_or_nothing)
    elif refuse_now:
        return refused(Step.RCPT, Outcome.REJECTED if rejected else Outcome.DEFERRED)

    for step, line in ((Step.DATA, "DATA"), (Step.END_OF_DATA, None)):
        reply = await command(step, line)
        if reply is None and not client.talks:
            return
        if reply is not None and (outcome := _refusal(reply[0])) is not None:
            if client.talks:
                return await _settle_talker(link, result, moves, recipients, all_or_nothing)
            return refused(step, outcome)
    if client.talks:
        return await _settle_talker(link, result, moves, recipients, all_or_nothing)
    result.outcome, result.step = Outcome.ACCEPTED, Step.QUIT
    result.accepted_at = reply[1]
    result.recipients_accepted = accepted
    result.client_end = clock()
    link.write("QUIT")
    link.hang_up(link.h + 0.001)


async def _settle_talker(link: _Link, result: RealSession, moves: list, recipients: int,
                         all_or_nothing: bool) -> None:
    """A talking client's session, decided as the model decides it.

    A talker does not wait for replies, so it learns late what smtpd said; the
    model's talker stops at the first refusal, at the step refused, leaving when it
    moved on from that step.  Here the client says QUIT, waits until smtpd has
    answered everything (replies come in order), then walks its commands the same
    way.  (The real talker did send the commands after a refusal it had not seen
    yet; smtpd answered them with errors the model does not count.)"""
    link.write("QUIT")
    if link.left is not None and not link.left.done():
        link.left.set_result(link.clock())
    pending = [future for _, future, _ in moves if not future.done()]
    if pending:
        await asyncio.wait(pending, timeout=600.0)
    link.hang_up(0.0)
    accepted = rejected = 0
    rcpt_left = None  # when the client moved on from its last RCPT

    def decide(outcome: Outcome, step: Step, left: float) -> None:
        result.outcome, result.step, result.client_end = outcome, step, left

    for step, future, left in moves:
        code = future.result()[0] if future.done() else None
        if step != Step.RCPT and rcpt_left is not None:
            if accepted == 0 or (all_or_nothing and accepted < recipients):
                return decide(Outcome.REJECTED if rejected else Outcome.DEFERRED, Step.RCPT, rcpt_left)
            rcpt_left = None
        if code is None:
            return decide(Outcome.TIMEOUT, step, left)  # the connection was lost
        if code == 421 or (step != Step.RCPT and code >= 400):
            return decide(_refusal(code), step, left)
        if step == Step.RCPT:
            accepted += code < 400
            rejected += code >= 500
            rcpt_left = left
        elif step == Step.END_OF_DATA:
            decide(Outcome.ACCEPTED, Step.QUIT, left)
            result.accepted_at = future.result()[1] + link.h
            result.recipients_accepted = accepted
            return
    decide(Outcome.TIMEOUT, moves[-1][0] if moves else Step.EHLO, moves[-1][2] if moves else result.arrival)
