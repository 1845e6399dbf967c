"""Bad input behind the front end: [queue], [destinations.NAME], [reputation.NAME], [operator].

The same contract as tests/test_bad_input.py: ``simsub check FILE`` on a bad
scenario exits with status 2 and prints exactly one line,
``simsub: error: FILE: KEY: message``, and no traceback.

Each case starts from ``scenarios/may-2012.toml`` with its back end (the four
tables above) replaced by a fixed copy, ``BACK``, so that calibrating the
default scenario does not move the targets; one edit of the data makes it bad.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib

import pytest

from simsub.cli import main

from .conftest import DEFAULT_SCENARIO

PREFIX = "simsub: error: "
DELETE = object()

FRONT = {k: v for k, v in tomllib.loads(DEFAULT_SCENARIO.read_text(encoding="utf-8")).items()
         if k not in ("queue", "destinations", "reputation", "operator")}

BACK = {
    "queue": {"active_limit": 20000, "delivery_agents": 100, "destination_concurrency": 20,
              "recipients_per_request": 50, "minimal_backoff": "300s", "maximal_backoff": "4000s",
              "queue_run_delay": "300s", "maximal_queue_lifetime": "5d", "bounce_queue_lifetime": "5d",
              "double_bounce": "drop"},
    "destinations": {
        "bigmail": {"legit_share": 0.25, "spam_share": 0.25,
                    "delivery_time": {"dist": "uniform", "low": "300ms", "high": "1500ms"},
                    "legit": {"defer": 0.002, "reject": 0.002}, "spam": {"defer": 0.05, "reject": 0.30},
                    "rate_limit": {"messages": 600, "window": "1m"}, "lists": ["bigmail-reputation"]},
        "portal-jp": {"legit_share": 0.25, "spam_share": 0.25, "delivery_time": "500ms",
                      "lists": ["portal-jp-reputation"]},
        "isps-jp": {"legit_share": 0.5, "spam_share": 0.0, "lists": ["dnsbl"]},
        "elsewhere": {"legit_share": 0.0, "spam_share": 0.5, "lists": ["dnsbl"]},
    },
    "reputation": {
        "dnsbl": {"threshold": 20000, "window": "1h", "detection_delay": "30m", "action": "reject",
                  "expiry": "12h", "delist_delay": "1h"},
        "bigmail-reputation": {"threshold": 20000, "window": "1h", "expiry": "48h", "delist_delay": "24h"},
        "portal-jp-reputation": {"threshold": 20000, "window": "1h", "action": "defer", "expiry": "4h"},
    },
    "operator": {"rule": "queue_size", "threshold": 5000, "check_interval": "5m", "reaction_delay": "2h",
                 "window": "1h", "reset_accounts": 25, "suspicious_volume": 500, "mistake": 0.05, "purge": True,
                 "request_delisting": True},
}


# --------------------------------------------------------------------------- writing TOML
def _key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def to_toml(data: dict) -> str:
    """Every top-level key on one line, tables inline."""
    return "".join(f"{_key(k)} = {_value(v)}\n" for k, v in data.items())


def scenario_text(edits: dict | None = None) -> str:
    """FRONT + BACK with ``edits`` (dotted key -> value, or DELETE) applied."""
    data = copy.deepcopy(FRONT)
    data.update(copy.deepcopy(BACK))
    for dotted, value in (edits or {}).items():
        *parents, last = dotted.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return to_toml(data)


# --------------------------------------------------------------------------- running
def check(tmp_path, capsys, text: str, *extra: str):
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    code = main(["check", str(path), *extra])
    return path, code, capsys.readouterr()


def assert_bad_input(path, code, captured, key: str, needles=(), override: str | None = None) -> str:
    """Exit 2; one line ``simsub: error: FILE[ (--set KEY)]: KEY: ...`` with every needle; nothing else."""
    assert "Traceback" not in captured.err and "Traceback" not in captured.out, captured.err
    assert code == 2, f"exit status {code}, stderr:\n{captured.err}"
    lines = captured.err.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{captured.err}"
    source = f"{path} (--set {override})" if override else str(path)
    line = lines[0]
    assert line.startswith(f"{PREFIX}{source}: {key}: "), line
    for needle in needles:
        assert needle in line, f"{needle!r} not in the error line:\n{line}"
    assert captured.out == "", captured.out
    return line


def test_the_base_scenario_is_valid(tmp_path, capsys):
    path, code, captured = check(tmp_path, capsys, scenario_text())
    assert code == 0, captured.err
    assert captured.err == ""


def bad(case_id: str, edits: dict, key: str, *needles: str):
    return pytest.param(edits, key, needles, id=case_id)


D = "destinations.bigmail"
R = "reputation.dnsbl"
NO_DESTINATIONS = {"destinations": DELETE}

BAD = [
    # ---- unknown keys, with a suggestion
    bad("queue-unknown-key", {"queue.maximal_backof": "4000s"}, "queue.maximal_backof",
        "unknown key", "did you mean 'maximal_backoff'"),
    bad("destination-unknown-key", {f"{D}.legit_shar": 0.25}, f"{D}.legit_shar", "did you mean 'legit_share'"),
    bad("outcomes-unknown-key", {f"{D}.spam.rejct": 0.3}, f"{D}.spam.rejct", "did you mean 'reject'"),
    bad("rate-limit-unknown-key", {f"{D}.rate_limit.windw": "1m"}, f"{D}.rate_limit.windw", "did you mean 'window'"),
    bad("list-unknown-key", {f"{R}.treshold": 5}, f"{R}.treshold", "did you mean 'threshold'"),
    bad("operator-unknown-key", {"operator.reaction_dealy": "2h"}, "operator.reaction_dealy",
        "did you mean 'reaction_delay'"),
    bad("top-level-queues", {"queues": {}}, "queues", "did you mean 'queue'"),
    bad("top-level-destination", {"destination": {}}, "destination", "did you mean 'destinations'"),
    bad("top-level-reputations", {"reputations": {}}, "reputations", "did you mean 'reputation'"),
    bad("top-level-operater", {"operater": {}}, "operater", "did you mean 'operator'"),
    # ---- wrong types
    bad("queue-not-a-table", {"queue": 5}, "queue", "expected a table", "integer 5"),
    bad("destinations-not-a-table", {"destinations": 5}, "destinations", "at least one [destinations.NAME]"),
    bad("destinations-empty", {"destinations": {}}, "destinations", "at least one [destinations.NAME]"),
    bad("destination-not-a-table", {D: 0.25}, D, "expected a table"),
    bad("reputation-not-a-table", {"reputation": 5}, "reputation", "expected [reputation.NAME] tables"),
    bad("list-not-a-table", {R: "yes"}, R, "expected a table"),
    bad("operator-not-a-table", {"operator": True}, "operator", "expected a table"),
    bad("agents-string", {"queue.delivery_agents": "100"}, "queue.delivery_agents", "whole number", "string '100'"),
    bad("agents-fraction", {"queue.delivery_agents": 1.5}, "queue.delivery_agents", "whole number", "1.5"),
    bad("active-limit-bool", {"queue.active_limit": True}, "queue.active_limit", "boolean"),
    bad("backoff-bool", {"queue.minimal_backoff": True}, "queue.minimal_backoff", "True"),
    bad("double-bounce-bool", {"queue.double_bounce": True}, "queue.double_bounce", "expected a string"),
    bad("share-string", {f"{D}.legit_share": "25%"}, f"{D}.legit_share", "finite number", "string '25%'"),
    bad("outcomes-number", {f"{D}.legit": 0.002}, f"{D}.legit", "expected a table"),
    bad("defer-string", {f"{D}.spam.defer": "5%"}, f"{D}.spam.defer", "finite number"),
    bad("rate-limit-number", {f"{D}.rate_limit": 600}, f"{D}.rate_limit", "expected a table"),
    bad("rate-limit-messages-missing", {f"{D}.rate_limit": {"window": "1m"}}, f"{D}.rate_limit.messages", "is required"),
    bad("rate-limit-messages-fraction", {f"{D}.rate_limit.messages": 1.5}, f"{D}.rate_limit.messages", "whole number"),
    bad("lists-string", {f"{D}.lists": "dnsbl"}, f"{D}.lists", "expected a list of reputation list names"),
    bad("lists-number-inside", {f"{D}.lists": ["dnsbl", 5]}, f"{D}.lists", "expected a list of reputation list names"),
    bad("delivery-time-word", {f"{D}.delivery_time": "fast"}, f"{D}.delivery_time", "'fast'"),
    bad("delivery-time-dist-typo", {f"{D}.delivery_time": {"dist": "uniformm", "low": "1s", "high": "2s"}},
        f"{D}.delivery_time.dist", "did you mean 'uniform'"),
    bad("threshold-fraction", {f"{R}.threshold": 1.5}, f"{R}.threshold", "whole number"),
    bad("threshold-missing", {f"{R}.threshold": DELETE}, f"{R}.threshold", "is required"),
    bad("window-missing", {f"{R}.window": DELETE}, f"{R}.window", "is required"),
    bad("expiry-missing", {f"{R}.expiry": DELETE}, f"{R}.expiry", "is required"),
    bad("rule-number", {"operator.rule": 5}, "operator.rule", "expected a string"),
    bad("rule-missing", {"operator.rule": DELETE}, "operator.rule", "is required"),
    bad("threshold-string", {"operator.threshold": "5000 messages"}, "operator.threshold", "finite number"),
    bad("reset-accounts-fraction", {"operator.reset_accounts": 2.5}, "operator.reset_accounts", "whole number"),
    bad("purge-string", {"operator.purge": "yes"}, "operator.purge", "expected true or false"),
    bad("request-delisting-number", {"operator.request_delisting": 1}, "operator.request_delisting",
        "expected true or false"),
    # ---- zero and negative counts and durations
    bad("active-limit-zero", {"queue.active_limit": 0}, "queue.active_limit", ">= 1, got 0"),
    bad("agents-negative", {"queue.delivery_agents": -1}, "queue.delivery_agents", ">= 1, got -1"),
    bad("concurrency-zero", {"queue.destination_concurrency": 0}, "queue.destination_concurrency", ">= 1, got 0"),
    bad("recipients-per-request-zero", {"queue.recipients_per_request": 0}, "queue.recipients_per_request", ">= 1"),
    bad("minimal-backoff-zero", {"queue.minimal_backoff": "0s"}, "queue.minimal_backoff", "> 0"),
    bad("minimal-backoff-negative", {"queue.minimal_backoff": "-5m"}, "queue.minimal_backoff", "'-5m'"),
    bad("queue-run-delay-zero", {"queue.queue_run_delay": 0}, "queue.queue_run_delay", "> 0"),
    bad("queue-run-delay-unit", {"queue.queue_run_delay": "5 parsecs"}, "queue.queue_run_delay",
        "unknown unit 'parsecs'"),
    bad("lifetime-nan", {"queue.maximal_queue_lifetime": float("nan")}, "queue.maximal_queue_lifetime", "nan"),
    bad("bounce-lifetime-negative", {"queue.bounce_queue_lifetime": "-1d"}, "queue.bounce_queue_lifetime", "'-1d'"),
    bad("bounce-lifetime-inf", {"queue.bounce_queue_lifetime": float("inf")}, "queue.bounce_queue_lifetime", "inf"),
    bad("delivery-time-negative", {f"{D}.delivery_time": "-1s"}, f"{D}.delivery_time", "'-1s'"),
    bad("delivery-time-high-below-low", {f"{D}.delivery_time": {"dist": "uniform", "low": "2s", "high": "1s"}},
        f"{D}.delivery_time.high", "must be >= low"),
    bad("rate-limit-messages-zero", {f"{D}.rate_limit.messages": 0}, f"{D}.rate_limit.messages", ">= 1, got 0"),
    bad("rate-limit-window-zero", {f"{D}.rate_limit.window": "0s"}, f"{D}.rate_limit.window", "> 0"),
    bad("list-threshold-zero", {f"{R}.threshold": 0}, f"{R}.threshold", ">= 1, got 0"),
    bad("list-threshold-negative", {f"{R}.threshold": -100}, f"{R}.threshold", ">= 1, got -100"),
    bad("list-window-zero", {f"{R}.window": "0s"}, f"{R}.window", "> 0"),
    bad("list-window-under-a-minute", {f"{R}.window": "30s"}, f"{R}.window", "whole minutes", "30 s"),
    bad("list-window-not-whole-minutes", {f"{R}.window": "90s"}, f"{R}.window", "whole minutes", "90 s"),
    bad("list-detection-delay-negative", {f"{R}.detection_delay": "-30m"}, f"{R}.detection_delay", "'-30m'"),
    bad("list-expiry-zero", {f"{R}.expiry": "0s"}, f"{R}.expiry", "> 0"),
    bad("list-delist-delay-negative", {f"{R}.delist_delay": "-1h"}, f"{R}.delist_delay", "'-1h'"),
    bad("operator-threshold-zero", {"operator.threshold": 0}, "operator.threshold", "> 0, got 0"),
    bad("operator-threshold-negative", {"operator.threshold": -5}, "operator.threshold", "> 0, got -5"),
    bad("operator-window-zero", {"operator.window": "0s"}, "operator.window", "> 0"),
    bad("check-interval-zero", {"operator.check_interval": "0s"}, "operator.check_interval", "> 0"),
    bad("reaction-delay-negative", {"operator.reaction_delay": "-2h"}, "operator.reaction_delay", "'-2h'"),
    bad("reset-accounts-negative", {"operator.reset_accounts": -1}, "operator.reset_accounts", ">= 0, got -1"),
    bad("suspicious-volume-negative", {"operator.suspicious_volume": -1}, "operator.suspicious_volume", ">= 0"),
    # ---- probabilities out of [0, 1]
    bad("share-above-1", {f"{D}.legit_share": 1.5}, f"{D}.legit_share", "<= 1, got 1.5"),
    bad("share-negative", {f"{D}.spam_share": -0.25}, f"{D}.spam_share", ">= 0, got -0.25"),
    bad("defer-above-1", {f"{D}.legit.defer": 1.2}, f"{D}.legit.defer", "<= 1, got 1.2"),
    bad("defer-negative", {f"{D}.legit.defer": -0.1}, f"{D}.legit.defer", ">= 0, got -0.1"),
    bad("reject-above-1", {f"{D}.spam.reject": 1.5}, f"{D}.spam.reject", "<= 1, got 1.5"),
    bad("reject-nan", {f"{D}.spam.reject": float("nan")}, f"{D}.spam.reject", "finite number"),
    bad("mistake-above-1", {"operator.mistake": 1.5}, "operator.mistake", "<= 1, got 1.5"),
    bad("mistake-negative", {"operator.mistake": -0.05}, "operator.mistake", ">= 0, got -0.05"),
    # ---- defer + reject > 1
    bad("defer-plus-reject", {f"{D}.spam": {"defer": 0.75, "reject": 0.30}}, f"{D}.spam.reject",
        "defer + reject must be <= 1", "1.05"),
    bad("defer-plus-reject-legit", {"destinations.portal-jp.legit": {"defer": 1.0, "reject": 0.5}},
        "destinations.portal-jp.legit.reject", "defer + reject must be <= 1"),
    # ---- shares over the destinations
    bad("legit-shares-sum-1.1", {f"{D}.legit_share": 0.35}, "destinations.*.legit_share", "sum to 1.1"),
    bad("spam-shares-sum-0.9", {f"{D}.spam_share": 0.15}, "destinations.*.spam_share", "sum to 0.9"),
    bad("no-legitimate-recipients", {f"destinations.{d}.legit_share": 0.0 for d in BACK["destinations"]},
        "destinations.*.legit_share", "cover no legitimate recipients"),
    bad("no-spam-recipients", {f"destinations.{d}.spam_share": 0.0 for d in BACK["destinations"]},
        "destinations.*.spam_share", "cover no spam recipients"),
    # ---- names
    bad("list-name-with-space", {"reputation.my list": {"threshold": 5, "window": "1h", "expiry": "1h"}},
        "reputation.my list", "list names use letters, digits, '-' and '_'"),
    bad("destination-name-with-space", {"destinations.the rest": {"lists": []}}, "destinations.the rest",
        "destination names use letters, digits, '-' and '_'"),
    # ---- reputation lists named in `lists`
    bad("list-typo", {f"{D}.lists": ["bigmail-reputaton"]}, f"{D}.lists",
        "no reputation list named 'bigmail-reputaton'", "did you mean 'bigmail-reputation'"),
    bad("list-without-any-list", {"reputation": DELETE}, f"{D}.lists", "no reputation list named", "have: none"),
    # ---- [queue], [reputation], [operator] without [destinations]
    bad("queue-without-destinations", NO_DESTINATIONS, "queue", "needs [destinations.NAME] tables"),
    bad("reputation-without-destinations", {**NO_DESTINATIONS, "queue": DELETE}, "reputation",
        "needs [destinations.NAME] tables"),
    bad("operator-without-destinations", {**NO_DESTINATIONS, "queue": DELETE, "reputation": DELETE}, "operator",
        "needs [destinations.NAME] tables"),
    # ---- choices
    bad("operator-rule-typo", {"operator.rule": "queue_sise"}, "operator.rule",
        "expected one of queue_size, bounces, account_volume", "did you mean 'queue_size'"),
    bad("operator-rule-unknown", {"operator.rule": "load_average"}, "operator.rule", "expected one of"),
    bad("double-bounce-typo", {"queue.double_bounce": "postmastr"}, "queue.double_bounce",
        "did you mean 'postmaster'"),
    bad("list-action-typo", {f"{R}.action": "rejct"}, f"{R}.action", "did you mean 'reject'"),
    bad("list-action-unknown", {f"{R}.action": "discard"}, f"{R}.action", "expected one of reject, defer"),
    bad("list-stage-typo", {f"{R}.stage": "greting"}, f"{R}.stage", "expected one of greeting, rcpt, data",
        "did you mean 'greeting'"),
    bad("list-stage-number", {f"{R}.stage": 1}, f"{R}.stage", "expected a string"),
    bad("skip-5xx-string", {"queue.skip_5xx_greeting": "yes"}, "queue.skip_5xx_greeting", "expected true or false"),
    bad("cohort-limit-negative", {"queue.failed_cohort_limit": -1}, "queue.failed_cohort_limit", "whole number >= 0"),
    bad("initial-concurrency-zero", {"queue.initial_concurrency": 0}, "queue.initial_concurrency",
        "whole number >= 1"),
    # ---- backoff
    bad("maximal-backoff-below-minimal", {"queue.maximal_backoff": "200s"}, "queue.maximal_backoff",
        "must be >= minimal_backoff (300 s)"),
    bad("minimal-backoff-above-maximal", {"queue.minimal_backoff": "2h"}, "queue.maximal_backoff",
        "must be >= minimal_backoff (7200 s)"),
]


@pytest.mark.parametrize("edits, key, needles", BAD)
def test_bad_back_end(tmp_path, capsys, edits, key, needles):
    path, code, captured = check(tmp_path, capsys, scenario_text(edits))
    assert_bad_input(path, code, captured, key, needles)


# --------------------------------------------------------------------------- forged_sender (a bot key)
def with_bot_key(key: str, value, population: str = "botnet") -> str:
    data = copy.deepcopy(FRONT)
    data.update(copy.deepcopy(BACK))
    entry = next(p for p in data["populations"] if p["name"] == population)
    entry[key] = value
    return to_toml(data)


@pytest.mark.parametrize("value, needle", [(1.5, "<= 1, got 1.5"), (-0.5, ">= 0, got -0.5"), ("all", "string 'all'"),
                                           (True, "boolean")])
def test_bad_forged_sender(tmp_path, capsys, value, needle):
    path, code, captured = check(tmp_path, capsys, with_bot_key("forged_sender", value))
    assert_bad_input(path, code, captured, "populations.botnet.forged_sender", (needle,))


def test_forged_sender_is_a_bot_key(tmp_path, capsys):
    path, code, captured = check(tmp_path, capsys, with_bot_key("forged_sender", 0.5, "subscribers"))
    assert_bad_input(path, code, captured, "populations.subscribers.forged_sender", ("unknown key",))


# --------------------------------------------------------------------------- --set
BAD_SETS = [
    pytest.param("queue.delivery_agents=0", "queue.delivery_agents", "queue.delivery_agents", (">= 1, got 0",),
                 id="agents-zero"),
    pytest.param("queue.double_bounce=postmastr", "queue.double_bounce", "queue.double_bounce",
                 ("did you mean 'postmaster'",), id="double-bounce-typo"),
    pytest.param("queue.maximal_backoff=100s", "queue.maximal_backoff", "queue.maximal_backoff",
                 ("must be >= minimal_backoff",), id="maximal-backoff"),
    pytest.param("queue.delivery_agnts=5", "queue.delivery_agnts", "queue.delivery_agnts",
                 ("did you mean 'delivery_agents'",), id="queue-key-typo"),
    pytest.param("destinations.bigmail.spam.reject=2", "destinations.bigmail.spam.reject",
                 "destinations.bigmail.spam.reject", ("<= 1, got 2",), id="reject-above-1"),
    pytest.param("destinations.bigmail.lists=[\"dnsbll\"]", "destinations.bigmail.lists",
                 "destinations.bigmail.lists", ("did you mean 'dnsbl'",), id="lists-typo"),
    pytest.param("reputation.dnsbl.threshold=0", "reputation.dnsbl.threshold", "reputation.dnsbl.threshold",
                 (">= 1, got 0",), id="list-threshold-zero"),
    pytest.param("reputation.dnsbl.action=block", "reputation.dnsbl.action", "reputation.dnsbl.action",
                 ("expected one of reject, defer",), id="list-action"),
    pytest.param("operator.rule=queue", "operator.rule", "operator.rule", ("did you mean 'queue_size'",),
                 id="operator-rule"),
    pytest.param("operator.mistake=2", "operator.mistake", "operator.mistake", ("<= 1, got 2",), id="mistake"),
    pytest.param("populations.botnet.forged_sender=-1", "populations.botnet.forged_sender",
                 "populations.botnet.forged_sender", (">= 0, got -1",), id="forged-sender"),
]


@pytest.mark.parametrize("pair, override, key, needles", BAD_SETS)
def test_bad_set(tmp_path, capsys, pair, override, key, needles):
    path, code, captured = check(tmp_path, capsys, scenario_text(), "--set", pair)
    assert_bad_input(path, code, captured, key, needles, override=override)


# --------------------------------------------------------------------------- gaps found and closed
def test_a_destination_covering_no_recipients(tmp_path, capsys):
    path, code, captured = check(tmp_path, capsys, scenario_text({"destinations.nowhere": {"lists": ["dnsbl"]}}))
    assert_bad_input(path, code, captured, "destinations.nowhere", ("no recipients",))


def test_set_with_a_misspelt_destination_name(tmp_path, capsys):
    path, code, captured = check(tmp_path, capsys, scenario_text(), "--set", "destinations.bigmial.spam.reject=0.5")
    assert code == 2 and "destinations.bigmial" in captured.err, (code, captured.err)


@pytest.mark.parametrize("pair, key", [
    ("destinations.bigmail.legit_share=0.5", "destinations.*.legit_share"),
    ("destinations.bigmail.spam.defer=0.9", "destinations.bigmail.spam.reject"),
    ("queue.minimal_backoff=5000s", "queue.maximal_backoff"),
], ids=["share-sum", "defer-plus-reject", "minimal-above-maximal"])
def test_cross_key_errors_name_the_override(tmp_path, capsys, pair, key):
    path, code, captured = check(tmp_path, capsys, scenario_text(), "--set", pair)
    assert_bad_input(path, code, captured, key, override=pair.split("=")[0])


# --------------------------------------------------------------------------- the key reference
def test_reference_lists_every_key_behind_the_front_end():
    from simsub.scenario import loader

    text = (DEFAULT_SCENARIO.parent / "README.md").read_text(encoding="utf-8")
    keys = ("queue", "destinations", "reputation", "operator") + loader._QUEUE + loader._DESTINATION + loader._OUTCOMES + loader._RATE_LIMIT \
        + loader._LIST + loader._OPERATOR
    missing = sorted({k for k in keys if f"`{k}`" not in text})
    assert not missing, f"scenarios/README.md does not document {missing}"
    for table in ("[queue]", "[destinations.NAME]", "[reputation.NAME]", "[operator]"):
        assert f"### `{table}`" in text and f"\n{table} " in text, table
