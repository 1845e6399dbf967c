"""Bad input on the command line: one clear line, exit status 2, no result folder.

The contract (issue): a missing file, TOML syntax errors, unknown keys (with a
"did you mean" suggestion), wrong types, negative or zero counts and durations,
shares that do not sum to 1, a restriction or map name that does not exist, an
unknown policy, malformed pcre lines: each gives one clear message naming the
file and the key (or line), and exit status 2 — never a traceback, never a
result folder.

Every case runs the real command line in-process (``simsub.cli.main``) on a
scenario file derived from ``scenarios/may-2012.toml`` by one targeted edit.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

import simsub
from simsub.cli import main
from simsub.scenario import parse_overrides

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "scenarios" / "may-2012.toml"
TEXT = DEFAULT.read_text(encoding="utf-8")
PREFIX = "simsub: error: "


# --------------------------------------------------------------------------- helpers
def edit(*pairs: tuple[str, str]) -> str:
    """may-2012.toml with the first occurrence of each ``old`` replaced by ``new``."""
    text = TEXT
    for old, new in pairs:
        if old not in text:
            raise AssertionError(f"edit target not in may-2012.toml: {old!r}")
        text = text.replace(old, new, 1)
    return text


def line_of(text: str, marker: str) -> int:
    """1-based line number of the first line containing ``marker``."""
    return text[: text.index(marker)].count("\n") + 1


def case(case_id: str, *pairs: tuple[str, str], expect: tuple[str, ...]):
    """A scenario text with targeted edits and the texts its error line must contain."""
    return pytest.param(edit(*pairs), expect, id=case_id)


def argv_for(command: str, scenario: Path | str, out: Path, needles=(), extra=()) -> list[str]:
    """``run`` (short horizon, explicit --out) or ``check`` on ``scenario``.

    ``--horizon`` is an override of scenario.horizon, so it is left out when the
    case is about that key (it would hide the bad value).
    """
    if command == "check":
        return ["check", str(scenario), *extra]
    horizon = [] if any("scenario.horizon" in n for n in needles) else ["--horizon", "10m"]
    return ["run", str(scenario), "--out", str(out), *horizon, *extra]


def invoke(capsys, argv: list[str]):
    code = main(argv)
    return code, capsys.readouterr()


def assert_bad_input(code: int, captured, needles, out: Path | None = None) -> str:
    """Exit 2, exactly one ``simsub: error:`` line naming every needle, no result folder."""
    assert "Traceback" not in captured.err and "Traceback" not in captured.out, captured.err
    assert code == 2, f"exit status {code}, stderr:\n{captured.err}"
    lines = captured.err.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{captured.err}"
    line = lines[0]
    assert line.startswith(PREFIX), line
    for needle in needles:
        assert needle in line, f"{needle!r} not in the error line:\n{line}"
    assert captured.out == "", f"unexpected output on stdout:\n{captured.out}"
    if out is not None:
        assert not out.exists(), "a result folder was written despite the error"
        hidden = [p.name for p in out.parent.iterdir() if p.name.startswith(".")]
        assert not hidden, f"partial folders left behind: {hidden}"
    return line


@pytest.fixture(params=["run", "check"])
def command(request):
    return request.param


# --------------------------------------------------------------------------- reading the file
def test_missing_file(tmp_path, capsys, command):
    path = tmp_path / "nosuch.toml"
    out = tmp_path / "out"
    code, captured = invoke(capsys, argv_for(command, path, out))
    assert_bad_input(code, captured, (str(path), "no such file"), out)


def test_directory_instead_of_file(tmp_path, capsys, command):
    path = tmp_path / "scenario.toml"
    path.mkdir()
    out = tmp_path / "out"
    code, captured = invoke(capsys, argv_for(command, path, out))
    assert_bad_input(code, captured, (str(path), "is a directory"), out)


def test_not_utf8(tmp_path, capsys, command):
    marker = 'name = "may-2012"'
    path = tmp_path / "latin1.toml"
    path.write_bytes(TEXT.encode().replace(marker.encode(), b'name = "may-2012 \xe9t\xe9"', 1))
    out = tmp_path / "out"
    code, captured = invoke(capsys, argv_for(command, path, out))
    assert_bad_input(code, captured, (str(path), f"line {line_of(TEXT, marker)}", "UTF-8"), out)


SYNTAX = [
    pytest.param(edit(("process_limit = 100", "process_limit = = 100")), "process_limit = = 100", id="bad-value"),
    pytest.param(edit(("[mta]", "[mta")), "[mta", id="unclosed-table-header"),
    pytest.param(edit(('seed = 20120515', 'seed = 20120515\nseed = 1')), "seed = 1\n", id="duplicate-key"),
    pytest.param(edit(('name = "botnet"', 'name = "botnet')), 'name = "botnet', id="unterminated-string"),
]


@pytest.mark.parametrize("text, marker", SYNTAX)
def test_toml_syntax_error_names_the_line(tmp_path, capsys, command, text, marker):
    path = tmp_path / "broken.toml"
    path.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    code, captured = invoke(capsys, argv_for(command, path, out))
    assert_bad_input(code, captured, (str(path), f"line {line_of(text, marker)}", "TOML syntax error"), out)


# --------------------------------------------------------------------------- scenario keys
BAD_SCENARIOS = [
    # ---- whole file
    pytest.param("", ("scenario", "is required"), id="empty-file"),
    # ---- unknown keys, with a suggestion when a close key exists
    case("unknown-top-level-key", ("[mta]", "[mtaa]"), expect=("mtaa", "unknown key", "did you mean 'mta'")),
    case("unknown-scenario-key", ('default_policy = "none"', 'default_polcy = "none"'),
         expect=("scenario.default_polcy", "did you mean 'default_policy'")),
    case("unknown-mta-key", ("process_limit = 100", "proces_limit = 100"),
         expect=("mta.proces_limit", "did you mean 'process_limit'")),
    case("unknown-population-key", ('pause = "10s"', 'pasue = "10s"'),
         expect=("populations.botnet.pasue", "did you mean 'pause'")),
    case("unknown-user-key", ("messages_per_day = 4", "messages_per_dya = 4"),
         expect=("populations.subscribers.messages_per_dya", "did you mean 'messages_per_day'")),
    case("bot-key-in-user-population", ("retries = 3\n", "retries = 3\nparallel = 2\n"),
         expect=("populations.subscribers.parallel", "unknown key")),
    case("unknown-origin-key", ("mynetworks = true", "mynetwork = true"),
         expect=("origins.own.mynetwork", "did you mean 'mynetworks'")),
    case("unknown-policy-key", ('recipient_restrictions = ["sleep 5"', 'recipient_restriction = ["sleep 5"'),
         expect=("policies.uniform-5s.recipient_restriction", "did you mean 'recipient_restrictions'")),
    case("unknown-service-key", ('algorithm = "fixed"', 'algoritm = "fixed"'),
         expect=("policies.throttle-100h.services.ratelimit.algoritm", "did you mean 'algorithm'")),
    case("unknown-distribution-key", ("sigma = 0.15", "sigm = 0.15"),
         expect=("populations.botnet.patience.sigm", "did you mean 'sigma'")),
    # ---- wrong types
    case("string-for-count", ("count = 100\n", 'count = "100"\n'),
         expect=("populations.botnet.count", "expected a whole number", "string '100'")),
    case("number-for-hostname", ('hostname = "unknown"', "hostname = 42"),
         expect=("origins.unknown.hostname", "expected a string")),
    case("list-for-maps", ("[policies.none]\n", '[policies.none]\nmaps = ["tarpit"]\n'),
         expect=("policies.none.maps", "expected a table")),
    case("number-for-map-text", ("[policies.none]\n", "[policies.none]\nmaps = { tarpit = 5 }\n"),
         expect=("policies.none.maps", "expected a table of map texts")),
    case("bool-for-limit", ("\nlimit = 100\n", "\nlimit = true\n"),
         expect=("policies.throttle-100h.services.ratelimit.limit", "boolean")),
    case("bool-for-process-limit", ("process_limit = 100", "process_limit = true"),
         expect=("mta.process_limit", "boolean")),
    case("bool-for-duration", ('retry_interval = "5m"', "retry_interval = true"),
         expect=("populations.subscribers.retry_interval", "True")),
    case("string-for-bool", ("mynetworks = true", 'mynetworks = "yes"'),
         expect=("origins.own.mynetworks", "expected true or false")),
    case("float-for-seed", ("seed = 20120515", "seed = 1.5"), expect=("scenario.seed", "whole number")),
    case("number-in-restriction-list", ('recipient_restrictions = ["sleep 5",', "recipient_restrictions = [5,"),
         expect=("policies.uniform-5s.recipient_restrictions", "expected a list of restriction strings")),
    case("string-for-origin-shares", ("origins = { unknown = 0.75, foreign = 0.22, jp = 0.03 }", 'origins = "unknown"'),
         expect=("populations.botnet.origins", "expected a table")),
    case("key-with-line-break", ("process_limit = 100", '"proces\\nlimit" = 100'),
         expect=("mta.proces\\nlimit", "unknown key")),
    case("number-for-population-name", ('name = "botnet"', "name = 7"), expect=("populations[1].name", "expected a string")),
    case("string-for-recipients", ('recipients = { dist = "geometric", mean = 1.5 }', 'recipients = "5"'),
         expect=("populations.subscribers.recipients", "expected a number")),
    # ---- zero and negative counts
    case("count-zero", ("count = 100\n", "count = 0\n"), expect=("populations.botnet.count", ">= 1, got 0")),
    case("count-negative", ("count = 100\n", "count = -5\n"), expect=("populations.botnet.count", ">= 1, got -5")),
    case("process-limit-zero", ("process_limit = 100", "process_limit = 0"), expect=("mta.process_limit", ">= 1")),
    case("backlog-negative", ("backlog = 100", "backlog = -1"), expect=("mta.backlog", ">= 0")),
    case("accounts-zero", ("accounts = 50", "accounts = 0"), expect=("populations.botnet.accounts", ">= 1")),
    case("parallel-zero", ("parallel = 1", "parallel = 0"), expect=("populations.botnet.parallel", ">= 1")),
    case("retries-negative", ("retries = 3", "retries = -1"), expect=("populations.subscribers.retries", ">= 0")),
    case("messages-per-day-zero", ("messages_per_day = 4", "messages_per_day = 0"),
         expect=("populations.subscribers.messages_per_day", "> 0")),
    case("recipients-zero", ('recipients = { dist = "geometric", mean = 1.5 }', "recipients = 0"),
         expect=("populations.subscribers.recipients", ">= 1")),
    case("limit-zero", ("\nlimit = 100\n", "\nlimit = 0\n"),
         expect=("policies.throttle-100h.services.ratelimit.limit", "> 0")),
    # ---- durations: zero, negative, broken units, NaN and infinity
    case("horizon-zero", ('horizon = "24h"', 'horizon = "0s"'), expect=("scenario.horizon", "> 0")),
    case("horizon-negative", ('horizon = "24h"', 'horizon = "-3s"'), expect=("scenario.horizon", "non-negative", "'-3s'")),
    case("horizon-nan", ('horizon = "24h"', "horizon = nan"), expect=("scenario.horizon", "nan")),
    case("retry-interval-zero", ('retry_interval = "5m"', 'retry_interval = "0s"'),
         expect=("populations.subscribers.retry_interval", "> 0")),
    case("retry-interval-negative", ('retry_interval = "5m"', 'retry_interval = "-3s"'),
         expect=("populations.subscribers.retry_interval", "'-3s'")),
    case("retry-interval-negative-number", ('retry_interval = "5m"', "retry_interval = -3"),
         expect=("populations.subscribers.retry_interval", "non-negative")),
    case("retry-interval-parsecs", ('retry_interval = "5m"', 'retry_interval = "5 parsecs"'),
         expect=("populations.subscribers.retry_interval", "unknown unit 'parsecs'")),
    case("retry-interval-abc", ('retry_interval = "5m"', 'retry_interval = "abc"'),
         expect=("populations.subscribers.retry_interval", "'abc'")),
    case("retry-interval-nan", ('retry_interval = "5m"', "retry_interval = nan"),
         expect=("populations.subscribers.retry_interval", "nan")),
    case("retry-interval-inf", ('retry_interval = "5m"', "retry_interval = inf"),
         expect=("populations.subscribers.retry_interval", "inf")),
    case("number-nan", ("messages_per_day = 4", "messages_per_day = nan"),
         expect=("populations.subscribers.messages_per_day", "finite number")),
    case("number-inf", ("\nlimit = 100\n", "\nlimit = inf\n"),
         expect=("policies.throttle-100h.services.ratelimit.limit", "finite number")),
    case("share-nan", ("jp = 0.03 }", "jp = nan }"), expect=("populations.botnet.origins.jp", "between 0 and 1")),
    case("sigma-nan", ("sigma = 0.15", "sigma = nan"), expect=("populations.botnet.patience.sigma", "finite number")),
    case("recipients-inf", ("low = 30, high = 70", "low = 30, high = inf"),
         expect=("populations.botnet.recipients.high", "finite number")),
    case("sleep-nan", ('"sleep 5"', '"sleep nan"'), expect=("policies.uniform-5s.recipient_restrictions", "'nan'")),
    case("bin-minus-inf", ('bin = "5m"', "bin = -inf"), expect=("scenario.bin", "-inf")),
    case("reply-time-negative", ('reply_time = "2ms"', 'reply_time = "-2ms"'), expect=("mta.reply_time", "'-2ms'")),
    case("window-zero", ('limit = 100\nwindow = "1h"', 'limit = 100\nwindow = "0s"'),
         expect=("policies.throttle-100h.services.ratelimit.window", "> 0")),
    case("rtt-negative", ('rtt = "10ms"', "rtt = -0.01"), expect=("origins.own.rtt", "non-negative")),
    case("patience-zero", ('patience = "60s"', 'patience = "0s"'), expect=("populations.subscribers.patience", "> 0")),
    case("start-negative", ('start = "12h"', 'start = "-1h"'), expect=("populations.botnet.start", "'-1h'")),
    case("stop-before-start", ('start = "12h"', 'start = "12h"\nstop = "6h"'),
         expect=("populations.botnet.stop", "later than start")),
    # ---- distribution tables
    case("dist-unknown", ('dist = "lognormal"', 'dist = "lognormale"'),
         expect=("populations.botnet.patience.dist", "did you mean 'lognormal'")),
    case("dist-missing", ('dist = "lognormal", ', ""), expect=("populations.botnet.patience.dist", "needs 'dist'")),
    case("dist-missing-param", (", sigma = 0.15 }", " }"), expect=("populations.botnet.patience.sigma", "needs 'sigma'")),
    case("lognormal-negative-median", ('median = "4s"', 'median = "-4s"'),
         expect=("populations.botnet.patience.median", "'-4s'")),
    case("lognormal-negative-median-number", ('median = "4s"', "median = -4"),
         expect=("populations.botnet.patience.median", "non-negative")),
    case("lognormal-zero-median", ('median = "4s"', 'median = "0s"'),
         expect=("populations.botnet.patience.median", "> 0")),
    case("lognormal-negative-sigma", ("sigma = 0.15", "sigma = -0.15"),
         expect=("populations.botnet.patience.sigma", ">= 0")),
    case("lognormal-huge-sigma", ("sigma = 0.15", "sigma = 1000"),
         expect=("populations.botnet.patience.sigma", "too large")),
    case("uniform-high-below-low", ('low = "100ms", high = "300ms"', 'low = "300ms", high = "100ms"'),
         expect=("origins.unknown.rtt.high", "must be >= low")),
    case("uniform-count-high-below-low", ("low = 30, high = 70", "low = 70, high = 30"),
         expect=("populations.botnet.recipients.high", "must be >= low")),
    case("uniform-count-fraction", ("low = 30, high = 70", "low = 1.5, high = 70"),
         expect=("populations.botnet.recipients.low", "whole number")),
    case("geometric-mean-below-1", ("mean = 1.5", "mean = 0.5"),
         expect=("populations.subscribers.recipients.mean", ">= 1")),
    case("exponential-for-count", ('dist = "geometric", mean = 1.5', 'dist = "exponential", mean = 1.5'),
         expect=("populations.subscribers.recipients.dist", "counts take")),
    case("geometric-for-duration", ('{ dist = "lognormal", median = "4s", sigma = 0.15 }', '{ dist = "geometric", mean = 4 }'),
         expect=("populations.botnet.patience.dist", "geometric is for counts")),
    case("empirical-last-not-1", ('patience = "60s"', 'patience = { dist = "empirical", points = [["30s", 0.5], ["60s", 0.9]] }'),
         expect=("populations.subscribers.patience.points", "must be 1")),
    case("empirical-decreasing", ('patience = "60s"', 'patience = { dist = "empirical", points = [["30s", 0.5], ["60s", 0.2]] }'),
         expect=("populations.subscribers.patience.points[1]", "must not decrease")),
    case("constant-bad-value", ('pause = "10s"', 'pause = { dist = "constant", value = "abc" }'),
         expect=("populations.botnet.pause.value", "'abc'")),
    # ---- origin shares
    case("shares-sum-0.9", ("own = 0.80", "own = 0.70"), expect=("populations.subscribers.origins", "sum to 0.9")),
    case("shares-sum-1.1", ("own = 0.80", "own = 0.90"), expect=("populations.subscribers.origins", "sum to 1.1")),
    case("share-unknown-origin", ("jp = 0.03 }", "jpn = 0.03 }"),
         expect=("populations.botnet.origins.jpn", "no origin named 'jpn'", "did you mean 'jp'")),
    case("share-negative", ("unknown = 0.75, foreign = 0.22", "unknown = 1.0, foreign = -0.03"),
         expect=("populations.botnet.origins.foreign", "between 0 and 1")),
    case("share-string", ("jp = 0.03 }", 'jp = "3%" }'), expect=("populations.botnet.origins.jp", "string '3%'")),
    # ---- populations
    case("duplicate-population-name", ('name = "botnet"', 'name = "subscribers"'),
         expect=("populations.subscribers.name", "used twice")),
    case("accounts-from-unknown", ('accounts_from = "subscribers"', 'accounts_from = "subscriber"'),
         expect=("populations.botnet.accounts_from", "did you mean 'subscribers'")),
    case("more-accounts-than-users", ("accounts = 50", "accounts = 50000"),
         expect=("populations.botnet.accounts_from", "fewer than the 50000")),
    case("kind-typo", ('kind = "user"', 'kind = "usr"'), expect=("populations.subscribers.kind", "did you mean 'user'")),
    case("kind-missing", ('kind = "user"\n', ""), expect=("populations.subscribers.kind", "is required")),
    case("count-missing", ("count = 100\n", ""), expect=("populations.botnet.count", "is required")),
    case("on-timeout-typo", ('on_timeout = "disconnect"', 'on_timeout = "disconect"'),
         expect=("populations.botnet.on_timeout", "did you mean 'disconnect'")),
    case("diurnal-23-hours", ("0.8]\n", "]\n"), expect=("populations.subscribers.diurnal", "24")),
    # ---- origins
    case("hostname-pattern", ('hostname = "unknown"', 'hostname = "no such host"'),
         expect=("origins.unknown.hostname", "hostname pattern")),
    case("network-bad", ('network = "192.0.2.0/24"', 'network = "192.0.2.0/33"'),
         expect=("origins.foreign.network", "address range")),
    # ---- restrictions, maps and services of a policy
    case("restriction-typo", ('["permit_mynetworks", "check_client_access', '["permit_mynetwork", "check_client_access'),
         expect=("policies.selective-1-5s.recipient_restrictions", "did you mean 'permit_mynetworks'")),
    case("map-not-defined", ("check_client_access pcre:tarpit", "check_client_access pcre:missing_map"),
         expect=("policies.selective-1-5s.recipient_restrictions", "map 'missing_map' is not defined")),
    case("map-type-not-pcre", ("check_client_access pcre:tarpit", "check_client_access hash:tarpit"),
         expect=("policies.selective-1-5s.recipient_restrictions", "pcre:NAME")),
    case("service-not-defined", ("check_policy_service ratelimit", "check_policy_service nosuch"),
         expect=("policies.throttle-100h.recipient_restrictions", "policy service 'nosuch' is not defined")),
    case("sleep-abc", ('"sleep 5"', '"sleep abc"'),
         expect=("policies.uniform-5s.recipient_restrictions", "'sleep' needs whole seconds", "'abc'")),
    case("sleep-fraction", ('"sleep 5"', '"sleep 0.5"'),
         expect=("policies.uniform-5s.recipient_restrictions", "whole seconds", "'0.5'")),
    case("map-loop", ("/./       sleep 5", "/./       check_client_access pcre:tarpit"),
         expect=("maps.tarpit", "loop")),
    case("sleep-negative", ('"sleep 5"', '"sleep -1"'), expect=("policies.uniform-5s.recipient_restrictions", "'-1'")),
    case("sleep-without-argument", ('"reject_unauth_pipelining"]', '"reject_unauth_pipelining", "sleep"]'),
         expect=("policies.pregreet-1s.client_restrictions", "'sleep' needs an argument")),
    case("delay-reject-not-bool", ("smtpd_delay_reject = false", 'smtpd_delay_reject = "no"'),
         expect=("policies.pregreet-1s.smtpd_delay_reject", "expected true or false")),
    case("service-type-typo", ('type = "ratelimit"', 'type = "ratelimiter"'),
         expect=("policies.throttle-100h.services.ratelimit.type", "did you mean 'ratelimit'")),
    case("service-algorithm-typo", ('algorithm = "fixed"', 'algorithm = "token-bucket"'),
         expect=("policies.throttle-100h.services.ratelimit.algorithm", "did you mean 'token_bucket'")),
    case("service-action-typo", ('action = "DEFER"', 'action = "DEFFER"'),
         expect=("policies.throttle-100h.services.ratelimit.action", "did you mean 'DEFER'")),
    case("service-key-typo", ('key = "sasl_username"', 'key = "sasl_user"'),
         expect=("policies.throttle-100h.services.ratelimit.key", "did you mean 'sasl_username'")),
    case("policy-name-with-space", ("[policies.none]", '[policies."no ne"]'), expect=("policies.no ne", "policy names")),
    case("default-policy-missing", ('default_policy = "none"', 'default_policy = "nonee"'),
         expect=("scenario.default_policy", "no policy named 'nonee'", "did you mean 'none'")),
    # ---- malformed pcre map lines (line numbers count from the first line of the map text)
    case("pcre-unclosed-regex", ("/\\.jp$/   sleep 1", "/\\.jp$   sleep 1"),
         expect=("policies.selective-1-5s.maps.tarpit", "line 1", "not closed")),
    case("pcre-invalid-regex", ("/./       sleep 5", "/(/ sleep 5"),
         expect=("policies.selective-1-5s.maps.tarpit", "line 2", "invalid regex")),
    case("pcre-no-result", ("/./       sleep 5", "/./"), expect=("policies.selective-1-5s.maps.tarpit", "line 2", "no result")),
    case("pcre-no-delimiter", ("/./       sleep 5", "dot sleep 5"),
         expect=("policies.selective-1-5s.maps.tarpit", "line 2", "expected '/regex/ result'")),
    case("pcre-bad-flag", ("/./       sleep 5", "/./q sleep 5"),
         expect=("policies.selective-1-5s.maps.tarpit", "line 2", "unsupported regex flag 'q'")),
    case("pcre-bad-result", ("/./       sleep 5", "/./ slep 5"),
         expect=("policies.selective-1-5s.maps.tarpit", "line 2", "did you mean 'sleep'")),
    case("pcre-bad-line-in-unused-map", ("[policies.none]\n", "[policies.none]\nmaps = { unused = '''\n/./ DUNNO\n/(/ sleep 5\n''' }\n"),
         expect=("policies.none.maps.unused", "line 2", "invalid regex")),
]


@pytest.mark.parametrize("text, needles", BAD_SCENARIOS)
def test_bad_scenario(tmp_path, capsys, command, text, needles):
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    code, captured = invoke(capsys, argv_for(command, path, out, needles))
    assert_bad_input(code, captured, (str(path), *needles), out)


# --------------------------------------------------------------------------- policy choice
def test_unknown_policy_option(tmp_path, capsys):
    path = tmp_path / "may.toml"
    path.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "out"
    code, captured = invoke(capsys, argv_for("run", path, out, extra=["--policy", "selective-15s"]))
    assert_bad_input(code, captured, (str(path), "--policy", "no policy named 'selective-15s'",
                                      "did you mean 'selective-1-5s'"), out)


# --------------------------------------------------------------------------- --set
BAD_SETS = [
    pytest.param("populations.nosuch.count=1", ("--set populations.nosuch.count", "no entry named 'nosuch'"), id="unknown-entry"),
    pytest.param("populations.botnt.count=1", ("populations.botnt.count", "did you mean 'botnet'"), id="entry-typo"),
    pytest.param("mta.process_limit=-1", ("--set mta.process_limit", "mta.process_limit", ">= 1, got -1"), id="invalid-value"),
    pytest.param("mta.process_limit=many", ("--set mta.process_limit", "string 'many'"), id="wrong-type"),
    pytest.param("mta.proces_limit=50", ("--set mta.proces_limit", "did you mean 'process_limit'"), id="unknown-key"),
    pytest.param("nosuch.x=1", ("--set nosuch.x", "nosuch: unknown key"), id="unknown-table"),
    pytest.param("horizon=0s", ("--set scenario.horizon", "scenario.horizon", "> 0"), id="shortcut-horizon-zero"),
    pytest.param("seed=-1", ("--set scenario.seed", "scenario.seed", ">= 0"), id="shortcut-seed-negative"),
    pytest.param("populations.botnet=5", ("--set populations.botnet", "list of tables"), id="list-of-tables"),
    pytest.param("scenario.horizon.x=1", ("--set scenario.horizon.x", "scenario.horizon is not a table"), id="through-a-value"),
    pytest.param("populations.botnet.patience.sigma=-1", ("--set populations.botnet.patience.sigma",
                                                          "populations.botnet.patience.sigma"), id="distribution-param"),
    pytest.param("populations.subscribers.origins.own=0.7", ("--set populations.subscribers.origins.own",
                                                             "populations.subscribers.origins", "sum to 0.9"), id="shares"),
]


@pytest.mark.parametrize("pair, needles", BAD_SETS)
def test_bad_set(tmp_path, capsys, command, pair, needles):
    path = tmp_path / "may.toml"
    path.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "out"
    code, captured = invoke(capsys, argv_for(command, path, out, needles, extra=["--set", pair]))
    assert_bad_input(code, captured, (str(path), *needles), out)


@pytest.mark.parametrize("pair", ["populations.botnet.count", "=5"], ids=["no-equals", "empty-key"])
def test_set_syntax(tmp_path, capsys, command, pair):
    # Not about the file: the message names --set and the text given.
    out = tmp_path / "out"
    code, captured = invoke(capsys, argv_for(command, DEFAULT, out, extra=["--set", pair]))
    assert_bad_input(code, captured, ("--set", pair, "KEY=VALUE"), out)


# --------------------------------------------------------------------------- command-line arguments
BAD_ARGUMENTS = [
    pytest.param(["--seed", "-1"], "--seed", id="seed-negative"),
    pytest.param(["--seed", "abc"], "--seed", id="seed-abc"),
    pytest.param(["--horizon", "0s"], "--horizon", id="horizon-zero"),
    pytest.param(["--horizon", "5 parsecs"], "--horizon", id="horizon-parsecs"),
    pytest.param(["--horizon", "abc"], "--horizon", id="horizon-abc"),
    pytest.param(["--frobnicate"], "--frobnicate", id="unknown-option"),
]


def _run_with(tmp_path, arguments):
    out = tmp_path / "out"
    return ["run", str(DEFAULT), "--out", str(out), *arguments], out


@pytest.mark.parametrize("arguments, option", BAD_ARGUMENTS)
def test_bad_argument_exits_2_without_traceback(tmp_path, capsys, arguments, option):
    argv, out = _run_with(tmp_path, arguments)
    code, captured = invoke(capsys, argv)
    assert code == 2
    assert "Traceback" not in captured.err
    assert "usage:" not in captured.err  # no usage dump
    assert option in captured.err
    assert not out.exists()


@pytest.mark.parametrize("arguments, option", BAD_ARGUMENTS)
def test_bad_argument_is_one_error_line(tmp_path, capsys, arguments, option):
    argv, out = _run_with(tmp_path, arguments)
    code, captured = invoke(capsys, argv)
    assert_bad_input(code, captured, (option,), out)


def test_unknown_command_exits_2(capsys):
    code, captured = invoke(capsys, ["frobnicate"])
    assert code == 2
    assert "Traceback" not in captured.err
    assert "frobnicate" in captured.err


# --------------------------------------------------------------------------- the good side
def test_check_default_scenario_lists_policies(capsys):
    code, captured = invoke(capsys, ["check"])
    assert code == 0, captured.err
    assert captured.err == ""
    policies = tomllib.loads(TEXT)["policies"]
    for name in policies:
        assert f"  {name}" in captured.out
    assert "none (default)" in captured.out


def test_check_file_with_set(capsys):
    code, captured = invoke(capsys, ["check", str(DEFAULT), "--set", "populations.botnet.count=10",
                                     "--set", "mta.process_limit=50"])
    assert code == 0, captured.err
    assert captured.err == ""
    assert str(DEFAULT) in captured.out


def test_set_is_applied():
    scenario = simsub.load_scenario(DEFAULT, {"populations.botnet.count": 10})
    assert scenario.population("botnet").count == 10
    assert scenario.population("subscribers").count == 20000
    assert scenario.raw["populations"][1]["count"] == 10


def test_set_text_is_parsed_and_shortcuts_apply():
    overrides = parse_overrides(["populations.botnet.count=10", "horizon=2h", "seed=7",
                                 "policies.uniform-5s.recipient_restrictions=sleep 3"])
    assert overrides["populations.botnet.count"] == 10
    scenario = simsub.load_scenario(DEFAULT, overrides)
    assert scenario.population("botnet").count == 10
    assert scenario.horizon == 7200
    assert scenario.seed == 7
    assert scenario.policies["uniform-5s"].lists["recipient_restrictions"] == ["sleep 3"]


def test_set_does_not_touch_the_file(tmp_path):
    path = tmp_path / "may.toml"
    path.write_text(TEXT, encoding="utf-8")
    simsub.load_scenario(path, {"populations.botnet.count": 10})
    assert path.read_text(encoding="utf-8") == TEXT


def test_valid_run_writes_the_folder(tmp_path, capsys):
    """The control for the cases above: a good run does create --out (and nothing hidden)."""
    out = tmp_path / "out"
    code, captured = invoke(capsys, ["run", str(DEFAULT), "--out", str(out), "--horizon", "10m", "--quiet",
                                     "--set", "populations.subscribers.count=100",
                                     "--set", "populations.botnet.accounts=10"])
    assert code == 0, captured.err
    assert out.is_dir()
    assert (out / "summary.json").is_file()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


# --------------------------------------------------------------------------- the key reference
README = REPO / "scenarios" / "README.md"


def test_reference_lists_every_key():
    from simsub.scenario import loader

    text = README.read_text(encoding="utf-8")
    keys = (loader._SCENARIO + loader._ORIGIN + loader._POPULATION_COMMON + loader._POPULATION_USER
            + loader._POPULATION_BOT + loader._MTA + loader._POLICY + loader._SERVICE)
    missing = sorted({k for k in keys if f"`{k}`" not in text})
    assert not missing, f"scenarios/README.md does not document {missing}"


def test_reference_minimal_scenario_is_valid(tmp_path, capsys):
    text = README.read_text(encoding="utf-8")
    example = text.split("## A minimal scenario", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "tiny.toml"
    path.write_text(example, encoding="utf-8")
    code, captured = invoke(capsys, ["check", str(path)])
    assert code == 0, captured.err
