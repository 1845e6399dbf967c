"""``simsub calibrate``: files written atomically, bad input refused with exit 2.

The parser is replaced by a stand-in that returns synthetic tables, so most
of these tests exercise the command, not the parser; the last ones run the
real parser on unusable logs and on a real Postfix log of the twin.
"""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import simsub
from simsub.cli import main
from simsub.maillog.lines import LogError
from simsub.maillog.parse import parse_maillog

from .maillog_frames import MYNETWORKS, Session, botnet_sessions, client, parsed_log, user_sessions

T0 = 1_336_953_600.0


def _log():
    rng = np.random.default_rng(7)
    accounts = {f"user{i}": (str(o), i, 4.0) for i, o in
                enumerate(rng.choice(["own", "home", "unknown"], p=[0.8, 0.15, 0.05], size=300))}
    sessions = user_sessions(rng, accounts, t0=T0)
    bots = [client("unknown", 4000 + i) for i in range(15)]
    sessions += botnet_sessions(rng, ["user0", "user1"], bots, T0 + 12 * 3600, T0 + 14 * 3600, pause=20.0)
    return parsed_log(sorted(sessions, key=lambda s: s.connect_s), deliveries=False)


@pytest.fixture
def parser(monkeypatch):
    """Replace the parser by a stand-in that returns ``parser.result`` (or raises it, if an exception)."""
    calls = []
    state = types.SimpleNamespace(result=_log(), calls=calls)

    def parse_maillog(paths, year=None, progress=None):
        calls.append((list(paths), year))
        if isinstance(state.result, Exception):
            raise state.result
        return state.result

    monkeypatch.setattr("simsub.maillog.parse.parse_maillog", parse_maillog)
    return state


def _logs(tmp_path):
    paths = [tmp_path / "maillog.1.gz", tmp_path / "maillog"]
    for p in paths:
        p.write_bytes(b"placeholder: the stand-in parser does not read it\n")
    return [str(p) for p in paths]


def _run(tmp_path, *extra):
    return main(["calibrate", *_logs(tmp_path), "--mynetworks", MYNETWORKS, "--home-domain", "jp", *extra])


def test_writes_a_loadable_scenario_and_the_flagged_table(parser, tmp_path, capsys):
    out = tmp_path / "fitted" / "my-isp.toml"
    assert _run(tmp_path, "--out", str(out), "--year", "2012") == 0
    assert parser.calls == [(_logs(tmp_path), 2012)]
    scenario = simsub.load_scenario(out)
    assert scenario.name == "my-isp"
    assert [p.name for p in scenario.populations][-1] == "botnet"
    table = pd.read_csv(tmp_path / "fitted" / "my-isp.flagged.csv")
    assert sorted(table["account"]) == ["user0", "user1"]
    assert set(table["rules"]) == {"spread,suspect"}  # one day: no history for the burst rule
    assert sorted(p.name for p in out.parent.iterdir()) == ["my-isp.flagged.csv", "my-isp.toml"]  # nothing left over
    printed = capsys.readouterr().out
    assert f"scenario: {out}" in printed and "flagged user0" in printed


def test_same_input_same_files(parser, tmp_path):
    first, second = tmp_path / "a" / "x.toml", tmp_path / "b" / "x.toml"
    assert _run(tmp_path, "--out", str(first), "--quiet") == 0
    assert _run(tmp_path, "--out", str(second), "--quiet") == 0
    assert first.read_bytes() == second.read_bytes()
    assert first.with_name("x.flagged.csv").read_bytes() == second.with_name("x.flagged.csv").read_bytes()


def test_options_reach_the_fit(parser, tmp_path):
    out = tmp_path / "x.toml"
    assert _run(tmp_path, "--out", str(out), "--quiet", "--max-addresses", "100", "--max-networks", "100",
                "--max-suspect", "100", "--burst-min", "1000000", "--seed", "9", "--bot-patience", "4s") == 0
    scenario = simsub.load_scenario(out)
    assert scenario.seed == 9
    assert [p.kind for p in scenario.populations] == ["user"] * len(scenario.populations)  # nothing flagged
    assert len(pd.read_csv(tmp_path / "x.flagged.csv")) == 0


def test_an_existing_scenario_is_replaced(parser, tmp_path):
    out = tmp_path / "x.toml"
    out.write_text("old")
    assert _run(tmp_path, "--out", str(out), "--quiet") == 0
    assert simsub.load_scenario(out).populations


def _refused(capsys, out, *needles):
    err = capsys.readouterr().err
    assert err.startswith("simsub: error: ") and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err
    assert not out.exists() and not out.with_name(out.stem + ".flagged.csv").exists()
    assert not [p for p in out.parent.glob(".*partial*")]


def test_the_parsers_refusal_is_one_line_and_exit_2(parser, tmp_path, capsys):
    parser.result = LogError("maillog.1.gz", 3, "not a Postfix log: expected 'Mon dd hh:mm:ss host program[pid]:'")
    out = tmp_path / "x.toml"
    assert _run(tmp_path, "--out", str(out)) == 2
    _refused(capsys, out, "maillog.1.gz: line 3: not a Postfix log")


def test_a_log_without_submission_traffic(parser, tmp_path, capsys):
    port25 = [Session(T0 + 60 * i, *client("foreign", i), "", [1], service="postfix/smtpd") for i in range(50)]
    parser.result = parsed_log(port25)
    out = tmp_path / "x.toml"
    assert _run(tmp_path, "--out", str(out)) == 2
    _refused(capsys, out, "no submission traffic", "--service")


@pytest.mark.parametrize("args, needle", [
    (["--mynetworks", "198.51.100.0/33"], "--mynetworks: 198.51.100.0/33"),
    (["--utc-offset", "30"], "--utc-offset"),
    (["--burst-factor", "0"], "--burst-factor"),
    (["--max-addresses", "0"], "--max-addresses"),
])
def test_bad_options(parser, tmp_path, capsys, args, needle):
    out = tmp_path / "x.toml"
    assert main(["calibrate", *_logs(tmp_path), "--out", str(out), *args]) == 2
    _refused(capsys, out, needle)


def test_bad_out(parser, tmp_path, capsys):
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    assert main(["calibrate", *_logs(tmp_path), "--out", str(folder)]) == 2
    assert "exists and is not a file" in capsys.readouterr().err


# ---------------------------------------------------------------- with the real parser
FIXTURES = Path(__file__).parent / "fixtures" / "maillog"


@pytest.mark.parametrize("name, needle", [
    ("missing.log", "missing.log"),
    ("empty.log", "empty.log"),
    ("exim-mainlog", "exim-mainlog"),
])
def test_unusable_logs_through_the_real_parser(tmp_path, capsys, name, needle):
    log = FIXTURES / name if (FIXTURES / name).exists() else tmp_path / name
    if name == "empty.log":
        log.write_bytes(b"")
    out = tmp_path / "x.toml"
    assert main(["calibrate", str(log), "--out", str(out), "--quiet"]) == 2
    _refused(capsys, out, needle)


def test_a_real_postfix_log_calibrates_into_a_scenario_that_runs(tmp_path, capsys):
    """The twin's real Postfix maillog (1 s stamps, XCLIENT sessions) through parser and calibrate."""
    out = tmp_path / "twin.toml"
    assert main(["calibrate", str(FIXTURES / "twin-sleep3.maillog"), "--year", "2026", "--out", str(out),
                 "--mynetworks", "198.51.100.0/22", "--home-domain", "jp", "--quiet"]) == 0
    scenario = simsub.load_scenario(out)
    parsed = parse_maillog([FIXTURES / "twin-sleep3.maillog"], year=2026)
    logins = parsed.messages["sasl_username"]
    users = [p for p in scenario.populations if p.kind == "user"]
    assert sum(p.count for p in users) >= logins[logins != ""].nunique()
    result = simsub.run(scenario, policy="none", seed=1)
    assert result.summary["legit"]["messages"] > 0


@pytest.mark.parametrize("logs", [["rsyslog-rfc3339.log"], ["journald-instances.log"],
                                  ["maillog.2.gz", "maillog.1.gz", "maillog"], ["twin-refuse.maillog"],
                                  ["twin-sleep5.maillog"]])
def test_every_postfix_fixture_calibrates_into_a_loadable_scenario(tmp_path, logs):
    out = tmp_path / "x.toml"
    assert main(["calibrate", *[str(FIXTURES / name) for name in logs], "--year", "2025", "--home-domain", "jp",
                 "--out", str(out), "--quiet"]) == 0
    assert simsub.load_scenario(out).populations


def test_what_a_log_cannot_tell_about_the_bots_is_given(parser, tmp_path):
    out = tmp_path / "x.toml"
    assert _run(tmp_path, "--out", str(out), "--quiet", "--bot-patience", "4s", "--bot-connect-timeout", "30s",
                "--bot-on-timeout", "talk") == 0
    (bot,) = [p for p in simsub.load_scenario(out).populations if p.is_bot]
    assert bot.on_timeout == "talk"
    assert bot.patience.sample(np.random.default_rng(0), 3).tolist() == [4.0] * 3
    assert bot.connect_timeout.sample(np.random.default_rng(0), 3).tolist() == [30.0] * 3
    default = tmp_path / "y.toml"
    assert _run(tmp_path, "--out", str(default), "--quiet") == 0
    (bot,) = [p for p in simsub.load_scenario(default).populations if p.is_bot]
    assert bot.on_timeout == "disconnect" and bot.connect_timeout is None  # the model then uses their patience
