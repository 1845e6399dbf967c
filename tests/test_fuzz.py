"""Input fuzzing: hostile scenario files give a valid run or one clean refusal, never a crash.

Hypothesis mutates two valid bases (``TINY`` of ``test_experiments.py`` with a
3-minute horizon, and ``scenarios/may-2012.toml`` shrunk to a few clients and a
3-minute horizon with its queue, lists and operator) at the data level —
delete, replace with hostile values (0, negative, 1e308, 10**30, nan, inf,
broken durations, restriction and pcre lines, ``${...}`` references, dates,
tables and arrays), derive (negate, blow up, change type), add unknown keys,
duplicate entries (two populations with one name), nest 50-60 levels deep,
long arrays, and recipes such as a map that refers to itself — and at the byte
level (truncate, invalid UTF-8, random characters, duplicated lines, deep
nesting in the text, other encodings).  ``tests/fuzz_cases.py`` builds the
cases and holds the command line to its contract (see its docstring):
``simsub check`` and ``simsub run`` either accept the file and run it, **with
its size capped by overrides applied after loading** (horizon 3 minutes, a few
clients, messages and recipients, bots pausing at least 1 s, no round trip
over 10 s…), or exit 2 with one line naming the file (and the dotted key) and
leave no folder; an exception escaping ``main`` or a command running longer
than 30 s is a defect.

The plain tests below are the regression tests of the defects the fuzzing
found, each on the smallest file that showed it.
"""

from __future__ import annotations

import copy
import json
import tempfile
import time
import tomllib
from pathlib import Path

import pytest
import tomli_w
from hypothesis import HealthCheck, settings
from hypothesis import given

from . import fuzz_cases as fc

REPO = Path(__file__).resolve().parents[1]
DEFAULT_EXAMPLES = 300
SLOW_EXAMPLES = 4000
#: In the slow run, every this many valid cases also draws the run's charts.
CHART_EVERY = 100
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                     HealthCheck.filter_too_much])


# --------------------------------------------------------------------------- regression tests
def _data(base: str = "may") -> dict:
    return tomllib.loads(fc.base_text(base))


def _refused(tmp_path: Path, blob: bytes | str, *needles: str, argv_extra=()) -> str:
    """``check`` and ``run`` both refuse the file: exit 2, one line naming the file and the
    needles, no folder.  Returns the line."""
    if isinstance(blob, str):
        blob = blob.encode("utf-8")
    path = tmp_path / "scenario.toml"
    path.write_bytes(blob)
    out = tmp_path / "out" / "result"
    lines = []
    for argv in (["check", str(path), *argv_extra], ["run", str(path), "--out", str(out), "--quiet", *argv_extra]):
        result = fc.call(argv)
        fc.check_refusal(result, path, None, overridden=bool(argv_extra))
        line = result.err.strip()
        for needle in needles:
            assert needle in line, f"{needle!r} not in {line!r}"
        lines.append(line)
    assert not out.exists() and not out.parent.exists()
    return lines[0]


def _edited(data: dict, *pairs) -> str:
    data = copy.deepcopy(data)
    for path, value in pairs:
        fc._set(data, path, value)
    return tomli_w.dumps(data)


def _map_line(tmp_path, line: str, *needles):
    data = _data()
    data["policies"]["selective-3s"]["maps"]["tarpit"] = f"/\\.jp$/ sleep 1\n{line}\n"
    return _refused(tmp_path, tomli_w.dumps(data), "policies.selective-3s.maps.tarpit", *needles)


# pcre maps: re.compile raises more than re.error
def test_pcre_repetition_count_too_large_is_refused(tmp_path):
    # was: OverflowError("the repetition number is too large") escaping main
    _map_line(tmp_path, "/a{99999999999}/ sleep 5", "line 2", "too large")


def test_pcre_nested_too_deep_is_refused(tmp_path):
    # was: RecursionError from the regex parser escaping main
    _map_line(tmp_path, "/" + "(" * 1000 + ")" * 1000 + "/ sleep 5", "line 2", "nested too deeply")


# restrictions: sleep takes ASCII digits only
@pytest.mark.parametrize("argument", ["\u00b2", "\u0663", "\uff15"])
def test_sleep_with_non_ascii_digits_is_refused(tmp_path, argument):
    # was: '²'.isdigit() is true but int('²') raised ValueError (a traceback); '٣' was read as 3
    data = _data()
    data["policies"]["uniform-5s"]["recipient_restrictions"] = [f"sleep {argument}", "permit"]
    _refused(tmp_path, tomli_w.dumps(data), "policies.uniform-5s.recipient_restrictions", "whole seconds")


def test_sleep_in_map_result_with_non_ascii_digit_is_refused(tmp_path):
    _map_line(tmp_path, "/./ sleep \u00b2", "line 2")


# error messages: an empty key must still be named
def test_empty_key_is_named(tmp_path):
    # was: 'FILE: unknown key (known here: …)' with no key at all
    _refused(tmp_path, '"" = 0\n' + fc.base_text("tiny"), 'scenario.toml: "": unknown key')
    data = _data("tiny")
    data["mta"][" "] = 1
    _refused(tmp_path, tomli_w.dumps(data), 'mta." ": unknown key')
    data = _data("tiny")
    data["\n"] = 1
    _refused(tmp_path, tomli_w.dumps(data), '"\\n": unknown key')


@pytest.mark.parametrize("key", ["a\x85b", "a\u2028b", "a\u2029b", "a\x0bb", "a\x1cb", "a\x9fb"])
def test_keys_with_unicode_line_breaks_keep_the_error_on_one_line(tmp_path, key):
    # was: NEL (U+0085) and the line/paragraph separators went through unescaped, so the error
    # took two lines for any reader that splits lines as Python does
    data = _data()
    data["origins"]["foreign"]["rtt"][key] = []
    _refused(tmp_path, tomli_w.dumps(data), "origins.foreign.rtt.a\\", "not 'a\\")


def test_set_key_with_a_line_break_keeps_the_error_on_one_line(tmp_path):
    path = tmp_path / "scenario.toml"
    path.write_text(fc.base_text("may"), encoding="utf-8")
    result = fc.call(["check", str(path), "--set", "populations.no\x85such.count=1"])
    fc.check_refusal(result, path, None, overridden=True)
    assert "populations.no\\x85such.count" in result.err


# --set addresses an array-of-tables entry by the name it gets from a parameter
def test_set_addresses_a_population_named_by_a_parameter(tmp_path):
    # was: 'no entry named 'users' in populations (have: ${s}, bots)', though the scenario calls
    # the population 'users' everywhere else (errors, results); the fuzz runs' caps hit it
    text = fc.base_text("tiny").replace('name = "users"', 'name = "${s}"')
    text = text.replace("sleep = 0", 'sleep = 0\ns = "users"')
    path = tmp_path / "scenario.toml"
    path.write_text(text, encoding="utf-8")
    result = fc.call(["check", str(path), "--set", "populations.users.count=3"])
    assert result.code == 0, result.err
    result = fc.call(["check", str(path), "--set", "populations.users.count=0"])
    fc.check_refusal(result, path, None, overridden=True)
    assert "populations.users.count: expected a whole number >= 1, got 0" in result.err


# nesting deeper than the loader's recursion
@pytest.mark.parametrize("text", [
    "[" + ".".join(["a"] * 3000) + "]\nb = 1\n",  # tables in tables, as headers
    ".".join(["a"] * 3000) + " = 1\n",  # dotted keys
])
def test_deeply_nested_tables_are_refused(tmp_path, text):
    # was: RecursionError in copy.deepcopy escaping main
    _refused(tmp_path, text + fc.base_text("tiny"), "a.a.a.a…", "nested more than 64 levels")


def test_deeply_nested_set_value_is_refused(tmp_path):
    path = tmp_path / "scenario.toml"
    path.write_text(fc.base_text("tiny"), encoding="utf-8")
    for value in ("[" * 3000, "[" * 100 + "]" * 100):
        result = fc.call(["check", str(path), "--set", f"mta.x={value}"])
        assert result.escaped is None, result.escaped
        assert result.code == 2 and len(result.err.splitlines()) == 1 and "nested" in result.err


def test_nesting_a_few_levels_deep_is_an_unknown_key(tmp_path):
    data = _data("tiny")
    data["mta"]["x"] = fc._deep(50, table=True)
    _refused(tmp_path, tomli_w.dumps(data), "mta.x: unknown key")


# integers beyond the float range (TOML integers have no limit)
HUGE = 10**400


@pytest.mark.parametrize("path, needle", [
    (("mta", "reply_time"), "mta.reply_time"),
    (("populations", 0, "messages_per_day"), "populations.subscribers.messages_per_day"),
    (("populations", 0, "recipients"), "populations.subscribers.recipients"),
    (("populations", 1, "forged_sender"), "populations.botnet.forged_sender"),
    (("populations", 0, "origins", "own"), "populations.subscribers.origins.own"),
    (("populations", 0, "diurnal", 3), "populations.subscribers.diurnal"),
    (("populations", 1, "patience", "sigma"), "populations.botnet.patience.sigma"),
    (("operator", "threshold"), "operator.threshold"),
    (("destinations", "bigmail", "legit", "defer"), "destinations.bigmail.legit.defer"),
])
def test_integers_beyond_the_float_range_are_refused(tmp_path, path, needle):
    # was: OverflowError('int too large to convert to float') from math.isfinite/float()
    _refused(tmp_path, _edited(_data(), (path, HUGE)), needle)


def test_diurnal_weights_adding_up_to_infinity_are_refused(tmp_path):
    # was: accepted, then every weight rescaled to 0: no legitimate mail at all
    _refused(tmp_path, _edited(_data(), (("populations", 0, "diurnal"), [1e308] * 24)),
             "populations.subscribers.diurnal", "finite")


# durations so long that the simulation clock overflows to infinity
@pytest.mark.parametrize("path, value, needle", [
    (("origins", "own", "rtt"), "1e300s", "origins.own.rtt"),
    (("origins", "unknown", "rtt", "high"), 1e308, "origins.unknown.rtt.high"),
    (("mta", "reply_time"), 10**30, "mta.reply_time"),
    (("populations", 0, "retry_interval"), "1e12s", "populations.subscribers.retry_interval"),
    (("scenario", "horizon"), "1e300s", "scenario.horizon"),
])
def test_durations_beyond_31_years_are_refused(tmp_path, path, value, needle):
    # was: accepted; the run never ended (round trips of 1e300 s put the clock at infinity)
    _refused(tmp_path, _edited(_data(), (path, value)), needle, "at most 1e+09 s")


def test_lognormal_with_a_mean_beyond_31_years_is_refused(tmp_path):
    patience = {"dist": "lognormal", "median": "4s", "sigma": 30}
    _refused(tmp_path, _edited(_data(), (("populations", 1, "patience"), patience)),
             "populations.botnet.patience.sigma", "too large")


# recipients beyond numpy's integers
@pytest.mark.parametrize("recipients, needle", [
    (10**30, "populations.botnet.recipients"),
    (2**63, "populations.botnet.recipients"),
    ({"dist": "uniform", "low": 30, "high": 10**30}, "populations.botnet.recipients.high"),
    ({"dist": "geometric", "mean": 1e308}, "populations.botnet.recipients.mean"),
    ({"dist": "empirical", "points": [[1, 0.5], [10**30, 1.0]]}, "populations.botnet.recipients.points[1]"),
])
def test_recipient_counts_beyond_a_million_are_refused(tmp_path, recipients, needle):
    # was: accepted; the run died with OverflowError / ValueError from numpy
    _refused(tmp_path, _edited(_data(), (("populations", 1, "recipients"), recipients)), needle, "at most 1,000,000")


# periodic processes and windows that stall the clock or overflow a counter
@pytest.mark.parametrize("path, value, needle", [
    (("scenario", "bin"), 1e-300, "at least 1s"),
    (("scenario", "bin"), "1e300s", "at most"),
    (("scenario", "bin"), "2d", "at most 1d"),
    (("queue", "queue_run_delay"), 1e-300, "at least 1s"),
    (("operator", "check_interval"), "1e-300s", "at least 1s"),
    (("destinations", "bigmail", "rate_limit", "window"), 5e-324, "at least 1ms"),
    (("policies", "throttle-100h", "services", "ratelimit", "window"), 5e-324, "at least 1ms"),
])
def test_intervals_that_stall_the_clock_are_refused(tmp_path, path, value, needle):
    # was: accepted; the run hung (bins, scans or checks every 1e-300 s) or died with
    # OverflowError('cannot convert float infinity to integer') in the fixed-window counter
    key = ".".join(str(p) for p in path)
    _refused(tmp_path, _edited(_data(), (path, value)), key, needle)


# bots whose cycle takes no simulated time
@pytest.mark.parametrize("pause", [0, "0s", {"dist": "uniform", "low": 0, "high": 0}, 1e-300])
def test_bots_whose_sessions_take_no_time_are_refused(tmp_path, pause):
    # was: accepted; with no round trip, no reply time and no pause the bots started sessions
    # forever at one instant (the run hung)
    data = _data("tiny")
    for origin in data["origins"].values():
        origin["rtt"] = 0
    data["mta"]["reply_time"] = 0
    data["populations"][1]["pause"] = pause
    _refused(tmp_path, tomli_w.dumps(data), "populations.bots.pause", "without end")


def test_bots_with_a_small_pause_still_run(tmp_path):
    """The control for the case above: 1 ms of pause is enough to move the clock."""
    data = _data("tiny")
    for origin in data["origins"].values():
        origin["rtt"] = 0
    data["mta"]["reply_time"] = 0
    data["populations"][1]["pause"] = "1ms"
    data["scenario"]["horizon"] = "10s"
    assert fc._exercise(tomli_w.dumps(data).encode(), tmp_path, data_level=True, with_charts=False) == "valid"


# --------------------------------------------------------------------------- the fuzz tests
@pytest.mark.parametrize("base", sorted(fc.BASES))
def test_bases_are_valid_and_run(base, tmp_path):
    """The control: the unmutated bases pass check and run (with charts) without any cap."""
    blob = fc.base_text(base).encode("utf-8")
    assert fc.cap_arguments_for(blob, tmp_path) == []
    assert fc._exercise(blob, tmp_path, data_level=True, with_charts=True) == "valid"


@settings(max_examples=DEFAULT_EXAMPLES, **SETTINGS)
@given(case=fc.cases())
def test_fuzzed_scenarios_run_or_are_refused_cleanly(case):
    with tempfile.TemporaryDirectory() as folder:
        fc.exercise(case, Path(folder))


@pytest.mark.slow
def test_fuzzed_scenarios_many(capsys):
    """Many more cases; the counts go to results/fuzz-report.json."""
    stats = fc.Stats()
    started = time.perf_counter()

    @settings(max_examples=SLOW_EXAMPLES, **SETTINGS)
    @given(case=fc.cases())
    def body(case):
        draw = stats.outcomes["valid"] % CHART_EVERY == CHART_EVERY - 1
        with tempfile.TemporaryDirectory() as folder:
            outcome = fc.exercise(case, Path(folder), with_charts=draw)
        stats.record(case, outcome, charts_drawn=draw and outcome == "valid")

    body()
    report = {"examples_configured": SLOW_EXAMPLES, **stats.as_dict(),
              "wall_s": round(time.perf_counter() - started, 1),
              "caps": {"horizon_s": fc.HORIZON_CAP_S, "users": fc.USERS_CAP, "bots": fc.BOTS_CAP,
                       "messages_per_day": fc.MESSAGES_PER_DAY_CAP, "retries": fc.RETRIES_CAP,
                       "parallel": fc.PARALLEL_CAP, "recipients_over": fc.RECIPIENTS_CAP,
                       "pause_floor_s": fc.PAUSE_FLOOR_S, "rtt_over_s": fc.RTT_CAP_S,
                       "reply_time_over_s": fc.REPLY_TIME_CAP_S, "retry_interval_over_s": fc.RETRY_INTERVAL_CAP_S,
                       "bin_under_s": fc.BIN_FLOOR_S, "watchdog_s": fc.WATCHDOG_S}}
    out = REPO / "results" / "fuzz-report.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    with capsys.disabled():
        print(f"\nfuzz report ({out}):\n{json.dumps(report, indent=2)}")
    assert stats.total >= SLOW_EXAMPLES
    assert stats.outcomes["valid"] > 0 and stats.outcomes["refused"] > 0
