"""simsub.maillog.parse on the fixtures of tests/fixtures/maillog (see its README).

Expected values are read off the fixture lines by hand (times through
datetime.fromisoformat, not through the parser's own clock), or are checks
between independent lines of a real Postfix log: qmgr's nrcpt, the delivery
lines and the disconnect line's rcpt= count must agree.
"""

from __future__ import annotations

import gc
import gzip
import math
import os
import shutil
from collections import Counter
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.maillog import synthetic_lines
from simsub.cli import main
from simsub.maillog.lines import LogError, LogFile, scan
from simsub.maillog.parse import LIMBO_S, PARSE_GC_THRESHOLD, Parser, parse_into, parse_maillog
from simsub.maillog.tables import SCHEMA, Buffers, FrameSink, read_tables

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "maillog"
TABLES = tuple(SCHEMA)


def iso(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def fixture_lines(name: str) -> list[str]:
    return (FIXTURES / name).read_text().splitlines()


# ---------------------------------------------------------------- hand-made: RFC 3339 with an offset
@pytest.fixture(scope="module")
def rsyslog():
    return parse_maillog(FIXTURES / "rsyslog-rfc3339.log")


def test_rfc3339_sessions_keep_fractions_offsets_ipv6_and_how_they_ended(rsyslog):
    s = rsyslog.sessions.set_index("session_id")
    assert list(s.index) == [0, 1, 2]
    first = s.loc[0]
    assert first.connect_s == pytest.approx(iso("2026-03-09T00:14:37.101234+09:00"), abs=1e-6)
    assert first.disconnect_s == pytest.approx(iso("2026-03-09T00:14:38.300000+09:00"), abs=1e-6)
    assert (first.service, first.pid, first.host) == ("postfix/submission", 58426, "mx1")
    assert (first.client_name, first.client_address, first.sasl_method, first.sasl_username) == \
        ("unknown", "203.0.113.41", "LOGIN", "alice")
    assert (first.end, first.lost_after) == ("disconnect", "")
    counts = first[["ehlo", "helo", "starttls", "auth_ok", "auth_tried", "mail_ok", "mail_tried", "rcpt_ok",
                    "rcpt_tried", "data_ok", "data_tried", "rset", "quit", "commands_ok", "commands_tried"]]
    assert list(counts) == [1, 0, 0, 1, 1, 1, 1, 3, 3, 1, 1, 0, 1, 8, 8]
    v6 = s.loc[1]
    assert (v6.client_address, v6.end, v6.lost_after, v6.auth_ok, v6.auth_tried, v6.quit) == \
        ("2001:db8::7", "lost", "AUTH", 0, 2, 0)
    again = s.loc[2]  # the same smtpd pid as session 0: a new session
    assert (again.pid, again.client_name, again.end, again.lost_after, again.rcpt_ok, again.rcpt_tried) == \
        (58426, "h3.dsl.example-other.ne.jp", "timeout", "RSET", 0, 1)


def test_rfc3339_message_joins_qmgr_and_its_deferred_recipient(rsyslog):
    m = rsyslog.messages
    assert len(m) == 1  # the pickup message has no smtpd client= line
    row = m.iloc[0]
    assert (row.queue_id, row.session_id, row.sasl_username, row.sender, row["size"], row.nrcpt) == \
        ("008F1140088", 0, "alice", "alice@example.jp", 600, 3)
    assert row.accepted_s == pytest.approx(iso("2026-03-09T00:14:38.002+09:00"), abs=1e-6)
    assert row.removed_s == pytest.approx(iso("2026-03-09T00:44:39.01+09:00"), abs=1e-6)
    r = rsyslog.recipients
    assert list(r.status) == ["sent", "sent", "deferred", "bounced", "sent"]
    assert list(r.queue_id) == ["008F1140088"] * 3 + ["4Lx2Yk0Jv8z3hC1", "008F1140088"]
    assert r.orig_recipient[1] == "c@example.jp" and r.orig_recipient[0] == ""
    last = r.iloc[4]
    assert (last.recipient, last.delay_s, last.delay_before_qmgr_s, last.delay_in_qmgr_s, last.delay_connect_s,
            last.delay_transmit_s, last.dsn, last.detail) == ("dave@example.org", 1801, 1800, 0.01, 0.5, 0.49,
                                                               "2.0.0", "250 ok")


def test_rfc3339_rejects_auth_failures_and_anvil(rsyslog):
    rej = rsyslog.rejects.iloc[0]
    assert len(rsyslog.rejects) == 1
    assert (rej.session_id, rej.queue_id, rej.stage, rej.code, rej.dsn, rej.sender, rej.recipient, rej.helo,
            rej.action) == (2, "NOQUEUE", "RCPT", 450, "4.7.1", "carol@example.jp", "x@example.net", "laptop",
                            "reject")
    assert rej.reason == "<x@example.net>: Recipient address rejected: try later"
    a = rsyslog.auth_failures
    assert list(a.session_id) == [1, 1]
    assert list(a.sasl_method) == ["LOGIN", "PLAIN"]
    assert list(a.sasl_username) == ["bob@example.jp", ""]
    assert list(a.reason) == ["authentication failure", "UGFzc3dvcmQ6"]
    assert list(a.client_address) == ["2001:db8::7"] * 2
    v = rsyslog.anvil
    assert list(v.statistic) == ["connection rate", "connection count", "auth rate", "cache size"]
    assert list(v.value) == [2, 1, 2, 2]
    assert list(v.client) == ["submission:203.0.113.41", "submission:2001:db8::7", "submission:2001:db8::7", ""]
    # anvil writes its "at" time in the server's local time, like the line's stamp (+09:00)
    assert v.at_s[0] == iso("2026-03-09T00:14:37+09:00")
    assert v.at_s[3] == iso("2026-03-09T00:16:10+09:00")


def test_rfc3339_stats_count_what_was_skipped(rsyslog):
    stats = rsyslog.stats
    lines = fixture_lines("rsyslog-rfc3339.log")
    assert stats["lines_read"] == len(lines)
    assert stats["skipped_by_kind"]["other program: dovecot"] == 1
    assert stats["skipped_by_kind"]["other program: sshd"] == 1
    assert stats["lines_used"] == len(lines) - sum(stats["skipped_by_kind"].values())
    assert stats["first_s"] == pytest.approx(iso(lines[0].split()[0]), abs=1e-6)
    assert stats["last_s"] == pytest.approx(iso(lines[-1].split()[0]), abs=1e-6)
    assert stats["sessions_unfinished"] == 0 and stats["warnings"] == []


# ---------------------------------------------------------------- hand-made: journald, instances, pid reuse
@pytest.fixture(scope="module")
def journald():
    return parse_maillog(FIXTURES / "journald-instances.log")


def test_journald_instances_ports_and_pid_reuse(journald):
    s = journald.sessions.sort_values("session_id")
    assert list(s.service) == ["postfix", "postfix", "postfix/submission", "postfix/submission", "postfix-out"]
    assert list(s.pid) == [900, 900, 950, 950, 960]
    assert list(s.client_address) == ["192.0.2.26", "198.51.100.77", "198.51.100.1", "198.51.100.2", "127.0.0.1"]
    assert s.connect_s.iloc[0] == pytest.approx(iso("2026-06-01T08:00:00.000001+00:00"), abs=1e-6)
    assert list(s.commands_tried) == [5, 0, 10, 6, 5]
    assert journald.stats["sessions_by_service"] == {"postfix": 2, "postfix-out": 1, "postfix/submission": 2}


def test_journald_reject_stages_actions_and_milter(journald):
    r = journald.rejects.set_index("stage")
    assert list(journald.rejects.stage) == ["END-OF-MESSAGE", "CONNECT", "MAIL", "RCPT"]
    assert (r.loc["END-OF-MESSAGE", "action"], r.loc["END-OF-MESSAGE", "code"], r.loc["END-OF-MESSAGE", "dsn"],
            r.loc["END-OF-MESSAGE", "queue_id"], r.loc["END-OF-MESSAGE", "session_id"]) == \
        ("milter-reject", -1, "5.7.1", "1A2B3C4D5E", 0)
    assert (r.loc["CONNECT", "code"], r.loc["CONNECT", "session_id"], r.loc["CONNECT", "sender"]) == (554, 1, "")
    assert (r.loc["MAIL", "code"], r.loc["MAIL", "sender"], r.loc["MAIL", "recipient"]) == (553, "ceo@example.com", "")
    assert (r.loc["RCPT", "action"], r.loc["RCPT", "code"], r.loc["RCPT", "queue_id"]) == ("hold", -1, "9C8B7A6F5E")


def test_journald_messages_of_both_instances(journald):
    m = journald.messages.set_index("queue_id")
    assert m.loc["0D1E2F3A4B", "sasl_username"] == "erin" and m.loc["0D1E2F3A4B", "nrcpt"] == 1
    assert m.loc["7A7B7C7D7E", "session_id"] == 4 and m.loc["7A7B7C7D7E", "size"] == 2300
    for qid in ("1A2B3C4D5E", "9C8B7A6F5E"):  # milter-rejected, held: never in qmgr's active queue
        assert m.loc[qid, "nrcpt"] == -1 and math.isnan(m.loc[qid, "removed_s"])
    assert journald.stats["messages_never_queued"] == 2
    assert journald.stats["skipped_by_kind"] == {"other program: kernel": 1}


# ---------------------------------------------------------------- hand-made: rotation across a year end
def rotated(tmp_path: Path, mtimes: dict[str, str] | None) -> list[Path]:
    """The three rotated files in tmp_path with the given modification times (ISO, UTC)."""
    paths = []
    for name in ("maillog", "maillog.1.gz", "maillog.2.gz"):
        path = tmp_path / name
        shutil.copy(FIXTURES / name, path)
        if mtimes:
            t = iso(mtimes[name])
            os.utime(path, (t, t))
        paths.append(path)
    return paths


WRITTEN = {"maillog.2.gz": "2026-12-31T00:00:00+00:00", "maillog.1.gz": "2027-01-01T00:00:00+00:00",
           "maillog": "2027-01-01T00:05:00+00:00"}


def test_rotation_across_a_year_end_joins_the_cut_session(tmp_path):
    parsed = parse_maillog(rotated(tmp_path, WRITTEN))
    s = parsed.sessions.sort_values("session_id").reset_index(drop=True)
    assert list(s.client_address) == ["100.64.0.8", "100.64.0.9", "100.64.0.10", "100.64.0.11"]
    assert s.connect_s[0] == iso("2026-12-30T22:00:00+00:00")
    cut = s.iloc[1]  # connect in maillog.1.gz, disconnect in maillog
    assert (cut.connect_s, cut.disconnect_s) == (iso("2026-12-31T23:59:50+00:00"), iso("2027-01-01T00:00:02+00:00"))
    assert (cut.end, cut.sasl_username, cut.data_ok) == ("disconnect", "erin", 1)
    assert (s.end[2], s.lost_after[2]) == ("lost", "CONNECT")
    assert s.end[3] == "unfinished" and math.isnan(s.disconnect_s[3])
    assert parsed.stats["sessions_unfinished"] == 1
    m = parsed.messages.iloc[0]
    assert (m.session_id, m.removed_s) == (cut.session_id, iso("2027-01-01T00:00:00+00:00"))
    assert parsed.recipients.t_s[0] == iso("2027-01-01T00:00:00+00:00")  # the rollover inside maillog.1.gz
    assert [f["path"].rsplit("/", 1)[1] for f in parsed.stats["files"]] == ["maillog.2.gz", "maillog.1.gz", "maillog"]
    assert [f["year"] for f in parsed.stats["files"]] == [2026, 2026, 2027]


def test_rotated_files_in_any_order_and_with_year_give_the_same_tables(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    paths = rotated(tmp_path / "a", WRITTEN)
    reference = parse_maillog(paths)
    shuffled = parse_maillog([paths[1], paths[0], paths[2]])
    # copies without their dates (all written "now"), dated by --year instead
    same_time = rotated(tmp_path / "b", None)
    by_year = parse_maillog([same_time[0], same_time[2], same_time[1]], year=2026)
    for table in TABLES:
        pd.testing.assert_frame_equal(getattr(reference, table), getattr(shuffled, table))
        pd.testing.assert_frame_equal(getattr(reference, table), getattr(by_year, table))


# ---------------------------------------------------------------- produced by the real Postfix of simsub twin
def test_real_twin_log_sessions_messages_and_recipients_agree_line_by_line():
    parsed = parse_maillog(FIXTURES / "twin-sleep3.maillog", year=2026)
    s, m, r = parsed.sessions, parsed.messages, parsed.recipients
    played = s[s.client_address != "127.0.0.1"]  # XCLIENT replaced the loopback address
    assert len(s) - len(played) == 2  # the instance's readiness check and the reply-time probe
    assert (s.end == "disconnect").all() and parsed.stats["sessions_unfinished"] == 0
    assert sorted(m.session_id) == sorted(played.session_id)  # one message per played session
    per_message = r.groupby("queue_id").size()
    session = played.set_index("session_id")[["rcpt_ok", "sasl_username"]].add_suffix("_session")
    joined = m.set_index("queue_id").join(session, on="session_id")
    # qmgr's nrcpt, the delivery lines and the disconnect line's rcpt= are three independent lines
    assert (joined.nrcpt == per_message.reindex(joined.index)).all()
    assert (joined.nrcpt == joined.rcpt_ok_session).all()
    assert (joined.sasl_username == joined.sasl_username_session).all()
    assert (joined.removed_s >= joined.accepted_s).all()
    assert (r.status == "sent").all() and (r.relay == "none").all()
    assert parsed.stats["lines_used"] == parsed.stats["lines_read"] - 2  # postfix-script and master start lines


def test_real_twin_log_with_hangups_has_lost_sessions_and_never_queued_messages():
    lines = fixture_lines("twin-sleep5.maillog")
    parsed = parse_maillog(FIXTURES / "twin-sleep5.maillog", year=2026)
    s, m = parsed.sessions, parsed.messages
    lost = s[s.end == "lost"]
    assert len(lost) == sum("lost connection after RCPT" in line for line in lines)
    assert (lost.lost_after == "RCPT").all() and (lost.data_ok == 0).all()
    never = m[m.session_id.isin(lost.session_id)]
    assert len(never) == len(lost) and (never.nrcpt == -1).all() and never.removed_s.isna().all()
    assert parsed.stats["messages_never_queued"] == len(lost)
    queued = m[~m.session_id.isin(lost.session_id)]
    assert (queued.nrcpt > 0).all() and len(queued) == sum(": removed" in line for line in lines)


def test_real_twin_log_with_rejects_counts_each_refused_recipient():
    lines = fixture_lines("twin-refuse.maillog")
    parsed = parse_maillog(FIXTURES / "twin-refuse.maillog", year=2026)
    rej, s = parsed.rejects, parsed.sessions.set_index("session_id")
    assert len(rej) == sum("NOQUEUE: reject: RCPT" in line for line in lines)
    assert (rej.stage == "RCPT").all() and (rej.code == 450).all() and (rej.dsn == "4.7.1").all()
    per_session = rej.groupby("session_id").size()
    # each rejected RCPT is one the disconnect line counts as tried but not accepted
    assert (per_session == (s.rcpt_tried - s.rcpt_ok).reindex(per_session.index)).all()
    assert (rej.client_address == s.client_address.reindex(rej.session_id).values).all()


# ---------------------------------------------------------------- the command's files
def test_command_writes_the_same_tables_as_parse_maillog_and_the_same_bytes_twice(tmp_path, capsys):
    log = FIXTURES / "journald-instances.log"
    for out in ("a", "b"):
        assert main(["maillog", "parse", str(log), "--out", str(tmp_path / out)]) == 0
    printed = capsys.readouterr().out
    assert f"read {len(fixture_lines(log.name))} lines from 1 file" in printed and "sessions: 5" in printed
    tables = read_tables(tmp_path / "a")
    direct = parse_maillog(log)
    for table in TABLES:
        pd.testing.assert_frame_equal(tables[table], getattr(direct, table))
        assert (tmp_path / "a" / f"{table}.csv.gz").read_bytes() == (tmp_path / "b" / f"{table}.csv.gz").read_bytes()


def test_maillog_without_subcommand_prints_its_help(capsys):
    assert main(["maillog"]) == 2
    assert "parse" in capsys.readouterr().out


# ---------------------------------------------------------------- bounded state
def test_state_holds_only_open_sessions_and_queued_messages(tmp_path):
    path = tmp_path / "synthetic.log"
    path.write_text("".join(synthetic_lines(20_000, rate=1.0)))
    os.utime(path, (iso("2026-12-31T00:00:00+00:00"),) * 2)
    parser = Parser(Buffers(FrameSink()))
    log = scan(path, str(path))
    assert isinstance(log, LogFile)
    parser.feed(log, 2026)
    span = parser.latest_s - parser.first_s
    assert span > 4 * LIMBO_S  # long enough for never-queued messages to be written out on the way
    # Left: the sessions of the last seconds, and the never-queued messages of sessions that ended
    # less than LIMBO_S ago (a synthetic session lasts at most 4.1 s); every queued one was removed.
    assert len(parser.sessions) < 10
    assert parser.messages and all(m.nrcpt < 0 and m.accepted_s > parser.latest_s - LIMBO_S - 4.1
                                   for m in parser.messages.values())
    assert parser.never_queued > len(parser.messages)  # written out on the way: they did not pile up



class _ThresholdSink:
    """Records the collector's thresholds each time the parse hands it a chunk."""

    def __init__(self):
        self.seen: list[tuple[int, int, int]] = []

    def write(self, table, rows):
        self.seen.append(gc.get_threshold())


def test_the_parse_collects_garbage_less_often_and_gives_the_thresholds_back(tmp_path):
    before = gc.get_threshold()
    sink = _ThresholdSink()
    parse_into([FIXTURES / "twin-sleep5.maillog"], Buffers(sink), year=2026)
    assert sink.seen and all(t == (max(PARSE_GC_THRESHOLD, before[0]), *before[1:]) for t in sink.seen)
    assert gc.get_threshold() == before
    # also when the parse stops on bad input
    empty = tmp_path / "empty.log"
    empty.write_text("")
    with pytest.raises(LogError):
        parse_into([empty], Buffers(_ThresholdSink()))
    binary = tmp_path / "other.log"
    binary.write_text("Mar  9 00:14:37 host dovecot[1]: imap-login: Login\n")
    with pytest.raises(LogError):
        parse_into([binary], Buffers(_ThresholdSink()))
    assert gc.get_threshold() == before

def test_gzip_and_plain_give_the_same_tables(tmp_path):
    plain = FIXTURES / "twin-sleep5.maillog"
    packed = tmp_path / "twin.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    a, b = parse_maillog(plain, year=2026), parse_maillog(packed, year=2026)
    for table in TABLES:
        pd.testing.assert_frame_equal(getattr(a, table), getattr(b, table))
    assert Counter(a.sessions.end) == Counter(b.sessions.end)


# ---------------------------------------------------------------- clocks
def test_classic_clock_rolls_over_at_new_year_and_dates_a_late_line_in_the_old_year():
    from simsub.maillog.lines import ClassicClock
    clock = ClassicClock(2026)
    assert clock("Dec 31 23:59:59") == iso("2026-12-31T23:59:59+00:00")
    assert clock("Jan  1 00:00:01") == iso("2027-01-01T00:00:01+00:00")
    assert clock("Dec 31 23:59:58") == iso("2026-12-31T23:59:58+00:00")  # a late line: the year before
    assert clock("Jan 01 00:00:02") == iso("2027-01-01T00:00:02+00:00")  # and the clock stayed in 2027
    for bad in ("Foo 12 00:00:00", "Feb 29 12:00:00"):  # not a month; 2027 is no leap year
        with pytest.raises(ValueError):
            clock(bad)


@pytest.mark.parametrize("stamp, iso_text", [
    ("2026-03-09T00:14:37.101234+09:00", "2026-03-09T00:14:37.101234+09:00"),
    ("2026-03-09T00:14:37.5+0900", "2026-03-09T00:14:37.5+09:00"),
    ("2026-03-08T15:14:37Z", "2026-03-08T15:14:37+00:00"),
    ("2026-03-08T10:14:37.000001-05:00", "2026-03-08T10:14:37.000001-05:00"),
])
def test_rfc3339_clock_applies_fractions_and_offsets(stamp, iso_text):
    from simsub.maillog.lines import Rfc3339Clock
    assert Rfc3339Clock()(stamp) == pytest.approx(iso(iso_text), abs=1e-6)
