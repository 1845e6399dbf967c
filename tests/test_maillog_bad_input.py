"""Bad input to ``simsub maillog parse``, through the real command line (``simsub.cli.main``).

Unusable input: exit 2, one ``simsub: error:`` line naming the file (and the
line where there is one), no result folder and no partial folder.  Usable
input with a damaged part: exit 0, the result folder, and a ``simsub: warning:``
line naming the file, the line and the count.  Never a traceback.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from simsub.cli import main

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "maillog"
TWIN = FIXTURES / "twin-sleep3.maillog"
PREFIX = "simsub: error: "


def parse(capsys, logs, out: Path, *extra):
    code = main(["maillog", "parse", *map(str, logs), "--out", str(out), *extra])
    return code, capsys.readouterr()


def assert_error(code, captured, needles, out: Path) -> str:
    assert "Traceback" not in captured.err + captured.out, captured.err
    assert code == 2, f"exit status {code}, stderr:\n{captured.err}"
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(PREFIX), captured.err
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in the error line:\n{lines[0]}"
    assert captured.out == ""
    assert not out.exists(), "a result folder was written despite the error"
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(".")], "partial folder left behind"
    return lines[0]


def assert_warning(code, captured, needles, out: Path) -> dict:
    """Exit 0 with a result folder and one warning line holding every needle; returns stats.json."""
    assert "Traceback" not in captured.err + captured.out, captured.err
    assert code == 0, captured.err
    warnings = [line for line in captured.err.splitlines() if line.startswith("simsub: warning: ")]
    assert any(all(n in w for n in needles) for w in warnings), f"no warning with {needles}:\n{captured.err}"
    return json.loads((out / "stats.json").read_text())


def twin_lines() -> list[str]:
    return TWIN.read_text().splitlines(keepends=True)


# ---------------------------------------------------------------- unusable: exit 2
def test_empty_file(tmp_path, capsys):
    log = tmp_path / "maillog"
    log.write_text("")
    out = tmp_path / "out"
    assert_error(*parse(capsys, [log], out), (str(log), "empty"), out)


def test_missing_file(tmp_path, capsys):
    log = tmp_path / "nosuch.log"
    out = tmp_path / "out"
    assert_error(*parse(capsys, [log], out), (str(log), "cannot read it", "No such file"), out)


def test_binary_file_names_the_line_of_the_nul_byte(tmp_path, capsys):
    log = tmp_path / "maillog"
    lines = twin_lines()
    log.write_bytes("".join(lines[:3]).encode() + b"\x00\x01\x02\xff" * 100)
    out = tmp_path / "out"
    assert_error(*parse(capsys, [log], out), (str(log), "line 4", "binary"), out)


def test_exim_log(tmp_path, capsys):
    out = tmp_path / "out"
    log = FIXTURES / "exim-mainlog"
    assert_error(*parse(capsys, [log], out), (str(log), "Exim"), out)


def test_sendmail_log(tmp_path, capsys):
    out = tmp_path / "out"
    log = FIXTURES / "sendmail.log"
    assert_error(*parse(capsys, [log], out), (str(log), "no Postfix line among 2 lines", "sendmail",
                                              "Sendmail log"), out)


def test_postfix_log_without_any_smtpd_traffic(tmp_path, capsys):
    log = tmp_path / "maillog"
    log.write_text("".join(line for line in twin_lines() if "/smtpd[" not in line))
    out = tmp_path / "out"
    assert_error(*parse(capsys, [log], out), (str(log), "no smtpd session and no received message"), out)


def test_gzip_truncated_before_its_first_line(tmp_path, capsys):
    log = tmp_path / "maillog.1.gz"
    log.write_bytes(gzip.compress(TWIN.read_bytes())[:15])
    out = tmp_path / "out"
    line = assert_error(*parse(capsys, [log], out), (str(log),), out)
    assert "empty" in line or "no Postfix line" in line


@pytest.mark.parametrize("year", ["20x6", "1969", "-1"])
def test_bad_year(tmp_path, capsys, year):
    out = tmp_path / "out"
    assert_error(*parse(capsys, [TWIN], out, "--year", year), ("--year", "expected a year"), out)


def test_out_is_a_folder_of_something_else(tmp_path, capsys):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("keep me")
    code, captured = parse(capsys, [TWIN], out)
    assert code == 2 and "not a simsub result folder" in captured.err
    assert (out / "thesis.tex").read_text() == "keep me"


# ---------------------------------------------------------------- usable with a damaged part: a warning
def test_truncated_gzip_keeps_the_lines_before_the_cut(tmp_path, capsys):
    lines = twin_lines() * 40  # enough data that the cut falls well inside the stream
    data = gzip.compress("".join(lines).encode())
    log = tmp_path / "maillog.1.gz"
    log.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    stats = assert_warning(*parse(capsys, [log], out, "--year", "2026"), (str(log), "gzip data ends early",
                                                                           "lines before are used"), out)
    assert 0 < stats["lines_read"] < len(lines)
    assert stats["files"][0]["truncated"]


def test_a_line_of_one_megabyte_is_skipped_with_a_warning(tmp_path, capsys):
    lines = twin_lines()
    lines.insert(10, "Dec 02 19:55:26 twin postfix/submission/smtpd[5212]: " + "x" * 1_000_000 + "\n")
    log = tmp_path / "maillog"
    log.write_text("".join(lines))
    out = tmp_path / "out"
    stats = assert_warning(*parse(capsys, [log], out, "--year", "2026"), (str(log), "line 11", "longer than",
                                                                           "1 such line"), out)
    reference = tmp_path / "reference"
    assert main(["maillog", "parse", str(TWIN), "--out", str(reference), "--year", "2026", "--quiet"]) == 0
    expected = json.loads((reference / "stats.json").read_text())
    assert stats["skipped_by_kind"]["line too long"] == 1
    for key in ("sessions", "messages", "recipients"):
        assert stats[key] == expected[key]


def test_timestamps_going_backwards_are_counted_and_located(tmp_path, capsys):
    later = (FIXTURES / "twin-sleep5.maillog").read_text().splitlines(keepends=True)
    log = tmp_path / "maillog"
    log.write_text("".join(later + twin_lines()))  # an earlier log appended to a later one
    out = tmp_path / "out"
    stats = assert_warning(*parse(capsys, [log], out, "--year", "2026"),
                           (str(log), f"line {len(later) + 1}", "time goes backwards"), out)
    assert stats["time_backwards"]["lines"] > 0


def test_an_empty_and_a_foreign_file_among_good_ones_are_skipped(tmp_path, capsys):
    empty = tmp_path / "maillog.2"
    empty.write_text("")
    log = tmp_path / "maillog"
    shutil.copy(TWIN, log)
    out = tmp_path / "out"
    code, captured = parse(capsys, [empty, FIXTURES / "exim-mainlog", log], out, "--year", "2026")
    stats = assert_warning(code, captured, (str(empty), "empty", "skipped"), out)
    assert f"{FIXTURES / 'exim-mainlog'}: not a syslog log: this looks like an Exim log" in captured.err
    assert [f["path"] for f in stats["files"]] == [str(log)]


def test_a_log_without_submission_service_warns_but_is_parsed(tmp_path, capsys):
    log = tmp_path / "maillog"
    log.write_text(TWIN.read_text().replace("postfix/submission/smtpd", "postfix/smtpd"))
    out = tmp_path / "out"
    stats = assert_warning(*parse(capsys, [log], out, "--year", "2026"), ("no session on a service named",
                                                                           "AUTH"), out)
    assert stats["sessions_by_service"] == {"postfix": 19}


def test_progress_goes_to_stderr_when_it_is_not_a_terminal(tmp_path, capsys, monkeypatch):
    import simsub.cli.maillog as commands
    import simsub.maillog.parse as parse_module
    monkeypatch.setattr(commands, "PROGRESS_INTERVAL_S", 0.0)
    monkeypatch.setattr(parse_module, "PROGRESS_EVERY", 50)
    out = tmp_path / "out"
    code, captured = parse(capsys, [TWIN], out, "--year", "2026")
    assert code == 0
    progress = [line for line in captured.err.splitlines() if line.startswith("maillog: ")]
    assert progress and "lines" in progress[0] and "MB/s" in progress[0]


MANGLED = """\
Dec 02 19:55:26 twin postfix/smtp[5219]: 446B520C200: to=<r0@example.net>, relay=none, delay=0.0.7, delays=0.06/0.01/0/0, dsn=2.0.0, status=sent (x)
Dec 02 19:55:26 twin postfix/qmgr[5210]: 446B520C200: from=<x>, size=99999999999999999999999, nrcpt=3 (queue active)
Dec 02 19:55:26 twin postfix/anvil[5210]: statistics: max connection rate 99999999999999999999/60s for (smtp:1.2.3.4) at Dec 02 19:55:20
Dec 02 19:55:26 twin postfix/submission/smtpd[5212]: disconnect from unknown[127.0.0.1] ehlo=1 commands=99999999999999999999999/1
Dec 02 19:55:26 twin postfix/submission/smtpd[99999999999999999999]: connect from
Dec 02 19:55:26 twin postfix/submission/smtpd[77]: NOQUEUE: reject: RCPT from
Dec 02 19:55:26 twin postfix/submission/smtpd[77]: warning: [: SASL  authentication failed:
"""


def test_mangled_postfix_lines_are_counted_not_fatal(tmp_path, capsys):
    log = tmp_path / "maillog"
    log.write_text(TWIN.read_text() + MANGLED)
    out = tmp_path / "out"
    code, captured = parse(capsys, [log], out, "--year", "2026")
    assert code == 0 and "Traceback" not in captured.err, captured.err
    stats = json.loads((out / "stats.json").read_text())
    assert stats["lines_read"] == len(twin_lines()) + MANGLED.count("\n")
    assert stats["skipped_by_kind"]["postfix line not understood"] == 1  # delay=0.0.7
    from simsub.maillog.tables import read_tables
    tables = read_tables(out)  # every number fits its column
    assert tables["sessions"].commands_tried.max() < 10**9
    assert len(tables["anvil"]) == 0 and len(tables["rejects"]) == 0
