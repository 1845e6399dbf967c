"""Scenario parameters: ``[params]`` defaults, ``${name}`` references, ``--set NAME=VALUE``.

Each test writes a small scenario file to ``tmp_path`` (``TEXT`` below, with
targeted edits) and loads it the way the command line does.
"""

from __future__ import annotations

import copy
import datetime
import tomllib

import numpy as np
import pytest
import tomli_w

import simsub
from simsub.cli import main
from simsub.errors import ScenarioError
from simsub.scenario import declared_params, load_scenario, param_text, parse_overrides, resolve_params
from simsub.scenario.loader import build_scenario

from .conftest import BASE, DEFAULT_SCENARIO
from .test_dialogue import bot

TEXT = r"""
[params]
users = 50
bots = 2
foreign_sleep = 5
patience = 4.5
own_is_mine = true
label = "x"

[scenario]
name = "params-${label}"
horizon = "10m"
description = "costs $${dollars} and $5"

[origins.home]
hostname = "p{n}.dial.example.ne.jp"
rtt = "10ms"
mynetworks = "${own_is_mine}"

[origins.nowhere]
hostname = "unknown"
rtt = "200ms"

[[populations]]
name = "users"
kind = "user"
count = "${users}"
origins = { home = 1.0 }
messages_per_day = 10

[[populations]]
name = "bots"
kind = "bot"
count = "${bots}"
origins = { nowhere = 1.0 }
accounts = 2
accounts_from = "users"
patience = "${patience}"
recipients = 3

[policies.none]

[policies.tarpit]
recipient_restrictions = ["permit_mynetworks", "check_client_access pcre:tarpit", "permit_sasl_authenticated", "reject"]
[policies.tarpit.maps]
tarpit = '''
/\.jp$/   sleep 1
/./       sleep ${foreign_sleep}
'''
"""


def write(tmp_path, text=TEXT, *pairs, name="s.toml"):
    """``TEXT`` with the first occurrence of each ``old`` replaced by ``new``, written to a file."""
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path, *pairs, overrides=None):
    return load_scenario(write(tmp_path, TEXT, *pairs), overrides or {})


def error(tmp_path, *pairs, overrides=None) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        load(tmp_path, *pairs, overrides=overrides)
    assert "\n" not in str(info.value)
    return info.value


# --------------------------------------------------------------------------- substitution
def test_a_whole_value_reference_keeps_the_type(tmp_path):
    scenario = load(tmp_path)
    assert scenario.population("users").count == 50 and type(scenario.population("users").count) is int
    assert scenario.population("bots").patience.mean == pytest.approx(4.5)
    assert scenario.origins["home"].mynetworks is True
    assert scenario.raw["populations"][1]["count"] == 2  # the integer, not "2"
    assert scenario.raw["origins"]["home"]["mynetworks"] is True
    assert scenario.name == "params-x"
    assert scenario.params == {"users": 50, "bots": 2, "foreign_sleep": 5, "patience": 4.5, "own_is_mine": True,
                               "label": "x"}


def test_a_reference_in_a_map_line_is_the_sleep_that_runs(tmp_path):
    scenario = load(tmp_path, ("foreign_sleep = 5", "foreign_sleep = 4"))
    assert scenario.policies["tarpit"].maps["tarpit"] == "/\\.jp$/   sleep 1\n/./       sleep 4\n"
    # One bot from the unknown origin, 3 recipients: 4 s of sleep per RCPT TO.
    data = copy.deepcopy(BASE)
    data["params"] = {"s": 4}
    data["populations"] = [bot(recipients=3)]
    data["policies"]["tarpit"] = {
        "recipient_restrictions": ["check_client_access pcre:tarpit", "permit_sasl_authenticated", "reject"],
        "maps": {"tarpit": "/\\.jp$/ sleep 1\n/./ sleep ${s}\n"},
    }
    for sleep in (4, 2):
        tiny = build_scenario(data, "<test>", {"s": sleep})
        message = simsub.run(tiny, policy="tarpit", seed=1).messages.iloc[0]
        assert message.outcome == "accepted"
        assert message.policy_delay_s == pytest.approx(3 * sleep)


@pytest.mark.parametrize("value, text", [
    (5, "5"), (-2, "-2"), (3.0, "3"), (0.25, "0.25"), (1e-7, "1e-07"), (0.1, "0.1"),
    (True, "true"), (False, "false"), ("5s", "5s"), ("", ""),
])
def test_text_of_a_value_inside_a_string(value, text):
    assert param_text(value) == text
    resolution = resolve_params({"params": {"v": value}, "x": {"y": "[${v}]"}})
    assert resolution.data["x"]["y"] == f"[{text}]"


def test_references_in_arrays_nested_tables_and_arrays_of_tables():
    raw = {"params": {"n": 3, "s": "sleep 2"},
           "a": [["${s}", "x ${n}"], {"deep": {"deeper": ["${n}"]}}],
           "populations": [{"name": "p", "count": "${n}", "patience": {"dist": "uniform", "low": "${n}", "high": "9s"}}]}
    data = resolve_params(raw).data
    assert data["a"] == [["sleep 2", "x 3"], {"deep": {"deeper": [3]}}]
    assert data["populations"][0] == {"name": "p", "count": 3, "patience": {"dist": "uniform", "low": 3, "high": "9s"}}
    assert data["params"] == raw["params"]


def test_keys_are_not_substituted():
    data = resolve_params({"params": {"n": 1}, "t": {"${n}": "${n}"}}).data
    assert data["t"] == {"${n}": 1}


def test_dollar_dollar_brace_is_a_literal_and_other_dollars_stay(tmp_path):
    scenario = load(tmp_path)
    assert scenario.description == "costs ${dollars} and $5"
    assert "/\\.jp$/" in scenario.policies["tarpit"].maps["tarpit"]  # the pcre anchor
    data = resolve_params({"params": {"n": 1}, "t": ["$", "$$", "a$b", "$$${n}", "$${n}${n}", "${n}$", "x$$$${n}"]}).data
    assert data["t"] == ["$", "$$", "a$b", "$${n}", "${n}1", "1$", "x$$${n}"]


def test_no_params_table_and_no_references_is_unchanged():
    scenario = load_scenario(DEFAULT_SCENARIO)
    assert scenario.params == {}
    assert "params" not in scenario.raw
    assert scenario.raw == tomllib.loads(DEFAULT_SCENARIO.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- errors in the file
@pytest.mark.parametrize("old, new, key, needles", [
    ("sleep ${foreign_sleep}", "sleep ${foreign_slep}", "policies.tarpit.maps.tarpit",
     ("line 2", "no parameter named 'foreign_slep'", "declared in [params]: users, bots", "did you mean 'foreign_sleep'")),
    ('count = "${bots}"', 'count = "${bot}"', "populations.bots.count", ("did you mean 'bots'",)),
    ('"reject"]', '"reject", "sleep ${nope}"]', "policies.tarpit.recipient_restrictions[4]", ("no parameter named 'nope'",)),
    ('rtt = "200ms"', 'rtt = { dist = "uniform", low = "${lo}", high = "1s" }', "origins.nowhere.rtt.low", ("'lo'",)),
    ('name = "bots"', 'name = "${label}-bots"\nbogus = "${bogus}"', "populations.x-bots.bogus", ("'bogus'",)),
])
def test_undeclared_reference_names_the_key(tmp_path, old, new, key, needles):
    exc = error(tmp_path, (old, new))
    assert exc.key == key
    for needle in needles:
        assert needle in exc.message


def test_undeclared_reference_without_a_params_table(tmp_path):
    text = TEXT.split("[scenario]", 1)[1]
    with pytest.raises(ScenarioError) as info:
        load_scenario(write(tmp_path, "[scenario]" + text))
    assert info.value.key == "scenario.name"
    assert "no [params] table" in info.value.message and "$${" in info.value.message


@pytest.mark.parametrize("reference, needle", [
    ("${", "no closing '}'"), ("${foreign_sleep", "no closing '}'"), ("${1x}", "malformed reference '${1x}'"),
    ("${a b}", "malformed reference '${a b}'"), ("${}", "malformed reference '${}'"),
])
def test_malformed_reference(tmp_path, reference, needle):
    exc = error(tmp_path, ("sleep ${foreign_sleep}", f"sleep {reference}"))
    assert exc.key == "policies.tarpit.maps.tarpit"
    assert needle in exc.message and "line 2" in exc.message


@pytest.mark.parametrize("line, key, needle", [
    ("bad = { a = 1 }", "params.bad", "got table"),
    ("bad = [1, 2]", "params.bad", "got array"),
    ("bad = 2012-05-15T12:00:00", "params.bad", "got datetime"),
    ("bad = 2012-05-15", "params.bad", "got date"),
    ('"1x" = 1', "params.1x", "parameter names use letters"),
    ('"a-b" = 1', "params.a-b", "parameter names use letters"),
    ("seed = 1", "params.seed", "reserved"),
    ("mta = 1", "params.mta", "reserved"),
])
def test_bad_parameter(tmp_path, line, key, needle):
    exc = error(tmp_path, ("[params]\n", f"[params]\n{line}\n"))
    assert (exc.key, exc.source) == (key, str(tmp_path / "s.toml"))
    assert needle in exc.message


def test_params_must_be_a_table(tmp_path):
    exc = error(tmp_path, ("[params]\n", "params = 3\n[parameters]\n"))
    assert exc.key == "params" and "expected a table of parameters" in exc.message


# --------------------------------------------------------------------------- overrides
@pytest.mark.parametrize("pair", ["foreign_sleep=3", "params.foreign_sleep=3"])
def test_set_a_parameter(tmp_path, pair):
    scenario = load(tmp_path, overrides=parse_overrides([pair, "bots=1", "label=y"]))
    assert "sleep 3" in scenario.policies["tarpit"].maps["tarpit"]
    assert scenario.population("bots").count == 1
    assert scenario.name == "params-y"
    assert scenario.params["foreign_sleep"] == 3 and scenario.raw["params"]["foreign_sleep"] == 3


def test_set_a_parameter_from_python_with_numpy_values(tmp_path):
    scenario = load(tmp_path, overrides={"foreign_sleep": np.int64(2), "patience": np.float64(6.0)})
    assert "sleep 2" in scenario.policies["tarpit"].maps["tarpit"]
    assert type(scenario.params["foreign_sleep"]) is int and type(scenario.params["patience"]) is float
    tomli_w.dumps(scenario.raw)  # plain Python values only


def test_a_dotted_override_may_use_a_parameter(tmp_path):
    scenario = load(tmp_path, overrides={"mta.process_limit": "${users}", "foreign_sleep": 2,
                                         "policies.none.recipient_restrictions": "sleep ${foreign_sleep}"})
    assert scenario.mta.process_limit == 50
    assert scenario.raw["policies"]["none"]["recipient_restrictions"] == "sleep 2"


@pytest.mark.parametrize("overrides, key, needles", [
    ({"foreign_slep": 3}, "foreign_slep", ("no parameter named 'foreign_slep'", "declared in [params]: users, bots",
                                           "did you mean 'foreign_sleep'", "dotted name", "horizon")),
    ({"params.foreign_slep": 3}, "params.foreign_slep", ("did you mean 'foreign_sleep'",)),
    ({"params": {"bots": 1}}, "params", ("one parameter at a time",)),
    ({"params.bots.x": 1}, "params.bots.x", ("one parameter at a time",)),
    ({"bots": [1]}, "params.bots", ("expected a number, a string or a boolean, got array",)),
])
def test_bad_parameter_override(tmp_path, overrides, key, needles):
    exc = error(tmp_path, overrides=overrides)
    assert exc.key == key
    assert exc.source == f"{tmp_path / 's.toml'} (--set {next(iter(overrides))})"
    for needle in needles:
        assert needle in exc.message


def test_unknown_undotted_override_without_params(tmp_path):
    with pytest.raises(ScenarioError) as info:
        load_scenario(DEFAULT_SCENARIO, {"foreign_sleep": 3})
    assert info.value.key == "foreign_sleep" and "no [params] table" in info.value.message


def test_an_error_caused_by_a_parameter_names_the_override(tmp_path):
    exc = error(tmp_path, overrides=parse_overrides(["foreign_sleep=0.5"]))
    assert exc.source.endswith("(--set params.foreign_sleep)")
    assert exc.key.startswith("policies.tarpit.maps.tarpit") and "'0.5'" in exc.message
    exc = error(tmp_path, overrides={"bots": 0})
    assert (exc.key, exc.source.endswith("(--set params.bots)")) == ("populations.bots.count", True)


def test_shortcuts_and_dotted_keys_still_work(tmp_path):
    scenario = load(tmp_path, overrides={"horizon": "20m", "seed": 3, "populations.bots.count": 4})
    assert (scenario.horizon, scenario.seed, scenario.population("bots").count) == (1200, 3, 4)


# --------------------------------------------------------------------------- written back
def test_the_resolved_raw_reloads_to_the_same_scenario(tmp_path):
    first = load(tmp_path, overrides={"foreign_sleep": 3, "patience": 7.5, "mta.backlog": "${bots}"})
    assert first.raw["params"] == first.params
    assert first.raw["scenario"]["description"] == "costs $${dollars} and $5"  # escaped again for TOML
    assert first.raw["policies"]["tarpit"]["maps"]["tarpit"].endswith("sleep 3\n")
    again = write(tmp_path, tomli_w.dumps(first.raw, multiline_strings=True), name="again.toml")
    second = load_scenario(again)
    assert second.raw == first.raw
    assert second.params == first.params
    assert second.description == first.description == "costs ${dollars} and $5"
    assert second.population("bots") == first.population("bots")
    assert second.mta == first.mta and second.mta.backlog == 2
    assert second.policies["tarpit"].maps == first.policies["tarpit"].maps


def test_simsub_run_writes_a_scenario_toml_that_reloads(tmp_path, capsys):
    path = write(tmp_path)
    out = tmp_path / "out"
    code = main(["run", str(path), "--policy", "tarpit", "--out", str(out), "--quiet", "--set", "foreign_sleep=2"])
    assert code == 0, capsys.readouterr().err
    first = load_scenario(path, {"foreign_sleep": 2})
    written = load_scenario(out / "scenario.toml")
    assert written.params == first.params
    assert {**written.raw, "scenario": {}} == {**first.raw, "scenario": {}}
    assert written.policies["tarpit"].maps == first.policies["tarpit"].maps


# --------------------------------------------------------------------------- helpers and the command line
def test_declared_params_and_resolve_params():
    raw = tomllib.loads(TEXT)
    assert declared_params(raw) == {"users": 50, "bots": 2, "foreign_sleep": 5, "patience": 4.5, "own_is_mine": True,
                                    "label": "x"}
    assert declared_params({"scenario": {}}) == {}
    with pytest.raises(ScenarioError, match=r"^f\.toml: params\.bad: expected a number"):
        declared_params({"params": {"bad": datetime.date(2012, 5, 15)}}, "f.toml")
    resolution = resolve_params(raw, {"bots": 9})
    assert resolution.params["bots"] == 9 and resolution.data["populations"][1]["count"] == 9
    assert resolution.uses["foreign_sleep"] == ["policies.tarpit.maps.tarpit"]
    assert resolution.uses["label"] == ["scenario.name"]
    named = resolve_params({"params": {"b": "bots"}, "populations": [{"name": "${b}", "x": "${b}"}]})
    assert named.uses["b"] == ["populations.bots.name", "populations.bots.x"]
    with pytest.raises(ScenarioError, match="did you mean 'bots'"):
        resolve_params(raw, {"bot": 9})


def test_check_on_the_command_line(tmp_path, capsys):
    path = write(tmp_path)
    assert main(["check", str(path), "--set", "bots=1", "--set", "params.foreign_sleep=3"]) == 0
    captured = capsys.readouterr()
    assert "scenario 'params-x' is valid" in captured.out and captured.err == ""

    assert main(["check", str(path), "--set", "foreign_slep=1"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err and captured.out == ""
    assert lines[0].startswith(f"simsub: error: {path} (--set foreign_slep): foreign_slep: no parameter named")
    assert "did you mean 'foreign_sleep'" in lines[0]

    bad = write(tmp_path, TEXT, ("sleep ${foreign_sleep}", "sleep ${1x}"), name="bad.toml")
    assert main(["check", str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"simsub: error: {bad}: policies.tarpit.maps.tarpit: line 2: malformed reference '${{1x}}'")
    assert len(captured.err.splitlines()) == 1


def test_reserved_names_follow_the_loaders_top_level_tables():
    from simsub.scenario import loader, params

    assert set(params._TOP_TABLES) == set(loader._TOP)
    assert set(params.RESERVED) == set(loader._SHORTCUTS)
