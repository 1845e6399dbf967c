"""The twin's parts that need no Postfix: the scaled scenario, the real-time SMTP client
(against a scripted asyncio server), the socket monitor, and the comparison table.
tests/test_postfix.py plays the twin against a real Postfix."""

from __future__ import annotations

import asyncio
import math
import os
import socket
import time

import numpy as np
import pytest

from simsub.twin.compare import METRICS, agrees, comparison_rows, format_table, twin_metrics
from simsub.cli import main
from simsub.errors import ScenarioError
from simsub.workload.clients import Client
from simsub.model.outcomes import Outcome, Step
from simsub.model.recorder import Recorder
from simsub.twin.monitor import SocketMonitor, SockDiag, sock_diag_available
from simsub.twin.scenario import twin_scenario
from simsub.twin.smtp import SmtpTarget, play_session, xtext


# ---------------------------------------------------------------- the scaled scenario
def test_twin_scenario_scales_load_and_capacity_and_drops_the_queue(may2012):
    twin = twin_scenario(may2012, duration=60, scale=0.1, start=12 * 3600)
    users, bots = twin.populations
    assert (users.count, bots.count, bots.accounts) == (2000, 10, 5)
    assert (twin.mta.process_limit, twin.mta.backlog) == (10, 100)  # Postfix's: max(maxproc, 100)
    assert twin.horizon == 60 and twin.bin == 60
    assert bots.start == 0 and bots.ramp == may2012.population("botnet").ramp  # the campaign starts at 12h
    assert users.diurnal[0] == may2012.population("subscribers").diurnal[12]  # hour 12 first
    assert twin.queue is None and twin.operator is None and twin.reputation == {} and twin.destinations == ()


def test_twin_scenario_mid_campaign_has_the_ramp_already_done(may2012):
    twin = twin_scenario(may2012, duration=60, start=12 * 3600 + 240)  # 4 of the 10 ramp minutes are over
    bots = twin.populations[1]
    assert bots.start == 0 and bots.ramp == pytest.approx(360)


def test_small_populations_keep_at_least_one_member(may2012):
    twin = twin_scenario(may2012, duration=60, scale=0.0001)
    assert [p.count for p in twin.populations] == [2, 1]
    assert twin.mta.process_limit == 1


@pytest.mark.parametrize("keys, where", [({"duration": 0}, "--duration"), ({"duration": 10, "scale": -1}, "--scale"),
                                         ({"duration": 10, "start": math.inf}, "--start")])
def test_twin_scenario_refuses_nonsense(may2012, keys, where):
    with pytest.raises(ScenarioError, match=where):
        twin_scenario(may2012, **keys)


def test_xtext_encodes_what_xclient_cannot_carry():
    assert xtext("alice") == "alice"
    assert xtext("a+b=c d") == "a+2Bb+3Dc+20d"


# ---------------------------------------------------------------- the real-time client
class ScriptedSmtpd:
    """An asyncio SMTP server that sleeps ``rcpt_sleep`` s before each RCPT reply,
    logs when each command arrived and when the client hung up."""

    def __init__(self, rcpt_sleep: float, replies: dict | None = None):
        self.rcpt_sleep = rcpt_sleep
        self.replies = replies or {}  # verb -> (sleep s, reply line) instead of the usual answer
        self.log: list[tuple[float, str]] = []
        self.closed_at: float | None = None

    async def handle(self, reader, writer):
        loop = asyncio.get_running_loop()
        writer.write(b"220 scripted ESMTP\r\n")
        data_mode = False
        while True:
            line = await reader.readline()
            if not line:
                self.closed_at = loop.time()
                break
            text = line.decode().strip()
            if data_mode:
                if text == ".":
                    data_mode = False
                    writer.write(b"250 2.0.0 Ok: queued\r\n")
                continue
            self.log.append((loop.time(), text.split()[0]))
            verb = text.split()[0].upper()
            if verb == "RCPT":
                await asyncio.sleep(self.rcpt_sleep)
            if verb in self.replies:
                pause, line = self.replies[verb]
                await asyncio.sleep(pause)
                writer.write(line.encode() + b"\r\n")
            elif verb in ("XCLIENT",):
                writer.write(b"220 scripted ESMTP\r\n")
            elif verb == "DATA":
                writer.write(b"354 go ahead\r\n")
                data_mode = True
            elif verb == "QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                writer.close()
                self.closed_at = loop.time()
                break
            else:
                writer.write(b"250 ok\r\n")
            try:
                await writer.drain()
            except ConnectionError:
                self.closed_at = loop.time()
                break


def _client(half_rtt: float, patience: float, talks: bool = False) -> Client:
    return Client(population=0, number=0, origin=0, hostname="unknown", address="100.64.0.1", mynetworks=False,
                  half_rtt=half_rtt, patience=patience, connect_timeout=10.0, talks=talks)


def _play(rcpt_sleep: float, client: Client, recipients: int, replies: dict | None = None):
    async def scenario():
        server = ScriptedSmtpd(rcpt_sleep, replies)
        listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        start = loop.time()
        target = SmtpTarget("127.0.0.1", port, lambda: loop.time() - start)
        result = await play_session(target, client, "alice", 1, recipients, False)
        await target.close_all()
        for _ in range(300):  # until the server has seen the end of the connection
            if server.closed_at is not None:
                break
            await asyncio.sleep(0.01)
        listener.close()
        return result, server, start
    return asyncio.run(scenario())


def test_patient_client_gets_its_mail_through_with_emulated_round_trips():
    h = 0.05
    result, server, start = _play(0.2, _client(h, patience=5.0), recipients=3)
    assert result.outcome == Outcome.ACCEPTED and result.recipients_accepted == 3
    # Banner, then EHLO, RSET, MAIL, 3 × RCPT, DATA, end of data: 8 round trips of 2h, plus 3 sleeps.
    expected = h + 8 * 2 * h + 3 * 0.2
    assert result.accepted_at == pytest.approx(expected, abs=0.05)
    # Commands reach the server h after the client sent them: the first RCPT arrives one
    # round trip after MAIL's.
    arrivals = {verb: t - start for t, verb in server.log}
    assert arrivals["EHLO"] == pytest.approx(2 * h, abs=0.02)
    assert [verb for _, verb in server.log] == ["XCLIENT", "EHLO", "RSET", "MAIL", "RCPT", "RCPT", "RCPT", "DATA",
                                                "QUIT"]


def test_impatient_client_hangs_up_at_its_patience_and_the_server_learns_h_later():
    h = 0.05
    result, server, start = _play(1.0, _client(h, patience=0.4), recipients=3)
    assert (result.outcome, result.step) == (Outcome.TIMEOUT, Step.RCPT)
    rcpt_sent = h + 3 * 2 * h  # after banner, EHLO, RSET, MAIL
    assert result.client_end == pytest.approx(rcpt_sent + 0.4, abs=0.03)
    # The server finished its sleep first (1 s after the RCPT arrived), then saw the hang-up.
    assert server.closed_at - start >= rcpt_sent + h + 1.0 - 0.02


def test_talking_client_sends_on_and_learns_late_which_recipients_were_taken():
    result, server, start = _play(0.3, _client(0.0, patience=0.1, talks=True), recipients=2)
    assert result.outcome == Outcome.ACCEPTED and result.recipients_accepted == 2
    verbs = [verb for _, verb in server.log]
    assert verbs == ["XCLIENT", "EHLO", "RSET", "MAIL", "RCPT", "RCPT", "DATA", "QUIT"]
    # It did not wait: RCPT, RCPT, DATA, the message and QUIT went out 0.1 s apart (its
    # patience), so it was done 0.4 s after the first RCPT, before the final 250, which
    # came after both 0.3 s sleeps (the server reads one command at a time).
    first_rcpt = next(t for t, verb in server.log if verb == "RCPT") - start
    assert result.client_end == pytest.approx(first_rcpt + 0.4, abs=0.03)
    assert result.accepted_at == pytest.approx(first_rcpt + 0.6, abs=0.05)


def test_talker_refused_late_at_mail_ends_there_as_in_the_model():
    """MAIL answered 550 after 0.3 s: the talker (patience 0.1 s) sent its RCPTs meanwhile,
    but like the model's talker it ends REJECTED at MAIL, leaving when it moved on from MAIL."""
    result, server, start = _play(0.0, _client(0.0, patience=0.1, talks=True), recipients=2,
                                  replies={"MAIL": (0.3, "550 5.7.1 no")})
    assert (result.outcome, result.step) == (Outcome.REJECTED, Step.MAIL)
    mail_sent = next(t for t, verb in server.log if verb == "MAIL") - start
    assert result.client_end == pytest.approx(mail_sent + 0.1, abs=0.03)


def test_talker_whose_recipients_were_all_refused_is_refused_at_rcpt():
    result, _, _ = _play(0.0, _client(0.0, patience=0.1, talks=True), recipients=3,
                         replies={"RCPT": (0.15, "450 4.7.1 later")})
    assert (result.outcome, result.step) == (Outcome.DEFERRED, Step.RCPT)


def test_connection_refused_is_the_models_refused():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connect is refused

    async def scenario():
        loop = asyncio.get_running_loop()
        target = SmtpTarget("127.0.0.1", port, loop.time)
        return await play_session(target, _client(0.0, 1.0), "alice", 1, 1, True)
    result = asyncio.run(scenario())
    assert result.outcome == Outcome.REFUSED and not result.connected


# ---------------------------------------------------------------- the socket monitor
needs_sock_diag = pytest.mark.skipif(not sock_diag_available(), reason="NETLINK_SOCK_DIAG is not available (Linux only)")


@needs_sock_diag
def test_sock_diag_tells_queued_from_held_from_closed():
    diag = SockDiag()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        client_port = client.getsockname()[1]
        assert diag.inode(port, client_port) == 0  # in the accept queue
        server_side, _ = listener.accept()
        assert diag.inode(port, client_port) == os.fstat(server_side.fileno()).st_ino
        server_side.close()
        time.sleep(0.05)
        assert not diag.inode(port, client_port)  # closed by the server: no process holds it
        client.close()
    assert diag.inode(port, 1) is None
    diag.close()


@needs_sock_diag
def test_monitor_times_when_a_process_held_the_connection():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        monitor = SocketMonitor(port, interval=0.002).start()
        client = socket.create_connection(("127.0.0.1", port))
        trace = monitor.watch(client.getsockname()[1])
        time.sleep(0.2)  # queued
        accepted = time.monotonic()
        server_side, _ = listener.accept()
        time.sleep(0.3)  # held
        released = time.monotonic()
        server_side.close()
        time.sleep(0.1)
        monitor.stop()
        client.close()
    assert trace.accepted_at == pytest.approx(accepted, abs=0.02)
    assert trace.released_at == pytest.approx(released, abs=0.02)
    assert monitor.peak_held == 1 and monitor.busy() == 0


# ---------------------------------------------------------------- the comparison table
def _recorder(kinds, sessions, messages) -> Recorder:
    recorder = Recorder()
    recorder.populations = [f"p{i}" for i in range(len(kinds))]
    recorder.population_kinds = list(kinds)
    for row in sessions:
        recorder.session(*row)
    for population, first, accepted, ideal, outcome in messages:
        recorder.message(0, population, 0, 0, 0, 1, first, first, accepted, 1, outcome, Step.QUIT, 1, ideal, 0.0, 0.0)
    return recorder


def test_twin_metrics_by_hand():
    recorder = _recorder(
        ["user", "bot"],
        sessions=[(0, 0.0, Outcome.ACCEPTED, 1.0, 2.0), (1, 0.0, Outcome.TIMEOUT, 0.0, 5.0),
                  (1, 1.0, Outcome.ABANDONED, 3.0, 0.0), (1, 2.0, Outcome.ACCEPTED, 0.0, 3.0)],
        messages=[(0, 0.0, 4.0, 1.0, Outcome.ACCEPTED), (0, 1.0, 3.0, 1.0, Outcome.ACCEPTED),
                  (1, 2.0, 5.0, 1.0, Outcome.ACCEPTED), (0, 0.0, math.nan, 1.0, Outcome.REJECTED)])
    m = twin_metrics(recorder, duration=10.0, peak_busy=2)
    assert (m["sessions"], m["spam_accepted"], m["legit_accepted"], m["bot_sessions_aborted"]) == (4, 1, 2, 2)
    assert m["legit_false_delay_p50"] == pytest.approx(np.percentile([3.0, 1.0], 50))
    assert m["smtpd_wait_mean"] == pytest.approx(1.0)
    assert m["slot_hold_mean"] == pytest.approx(10 / 3)
    assert m["occupancy_mean"] == pytest.approx(1.0) and m["occupancy_peak"] == 2


def test_agreement_rules():
    count = next(x for x in METRICS if x.exact)
    time_metric = next(x for x in METRICS if x.key == "smtpd_wait_mean")
    assert agrees(count, 3, 3) and not agrees(count, 3, 4)
    assert agrees(time_metric, 0.19, 0.0) and not agrees(time_metric, 0.21, 0.0)  # 0.2 s absolute
    assert agrees(time_metric, 10.9, 10.0) and not agrees(time_metric, 11.1, 10.0)  # 10 %
    assert agrees(time_metric, math.nan, math.nan) and not agrees(time_metric, 1.0, math.nan)


def test_table_shows_both_sides_and_flags_disagreement():
    real = {x.key: 1.0 for x in METRICS}
    model = dict(real, spam_accepted=2.0)
    rows = comparison_rows(real, model)
    spam = next(r for r in rows if r["metric"] == "spam_accepted")
    assert spam["difference"] == -1 and spam["relative"] == pytest.approx(-0.5) and not spam["agrees"]
    text = format_table(rows)
    assert "spam messages accepted" in text and "NO" in text and "-50.0%" in text
    assert format_table(rows, markdown=True).splitlines()[1].startswith("|---|")


def test_twin_seed_is_checked_like_simsub_runs(capsys):
    assert main(["twin", "--seed", "-3"]) == 2
    assert "--seed: expected a whole number >= 0" in capsys.readouterr().err
