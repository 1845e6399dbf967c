"""Hostile scenario files for ``tests/test_fuzz.py``: valid bases, mutations, and the contract.

A *case* is a base scenario (``tiny``: the ``TINY`` text of
``tests/test_experiments.py``; ``may``: ``scenarios/may-2012.toml`` shrunk to a
few clients and a 3-minute horizon, comments kept) plus a few *data-level*
mutations (on the parsed TOML dict, written back with ``tomli_w``) and at most
one *byte-level* mutation (on the file's bytes).  Every operation is a tuple of
plain values (a kind, an integer that selects the path or position, a payload),
applied deterministically, so Hypothesis can shrink a failing case and print it.

:func:`exercise` writes the case and holds the command line to its contract:

* ``simsub check FILE`` exits 0 (the scenario is valid) or 2;
* when 2: exactly one line on stderr, ``simsub: error: FILE: …`` naming the file
  and (when the file is valid TOML) the dotted key; nothing on stdout; no
  traceback; and ``simsub run FILE --out DIR --quiet`` refuses the same way and
  leaves no folder behind;
* when 0: ``simsub run`` with **caps applied as overrides after loading**
  (:func:`cap_arguments`: horizon at most 3 minutes, a few clients, few
  messages, recipients and retries, bots pausing at least 1 s, no round trip
  over 10 s, reply time over 1 s, retry interval over 10 min or bin under
  1 min; all chosen from the loaded scenario so they keep it valid) exits 0
  (or the resource guard refuses it as above) and writes a result folder
  whose ``scenario.toml`` passes ``check`` again;
* any exception escaping ``simsub.cli.main`` (other than ``SystemExit``), and
  any command taking longer than :data:`WATCHDOG_S` seconds, is a defect.

The fuzzed values themselves are never capped: only the run's size is.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import io
import re
import signal
import tomllib
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import tomli_w
from hypothesis import strategies as st

from simsub.cli import main
from simsub.distributions import Constant, Empirical, Geometric, Uniform
from simsub.scenario import load_scenario

REPO = Path(__file__).resolve().parents[1]
MAY_2012 = REPO / "scenarios" / "may-2012.toml"

#: Caps applied (as ``--horizon`` / ``--set`` overrides) when a fuzzed scenario is valid and is run.
HORIZON_CAP_S = 180.0
USERS_CAP = 50
BOTS_CAP = 3
MESSAGES_PER_DAY_CAP = 500.0
RETRIES_CAP = 3
PARALLEL_CAP = 2
RECIPIENTS_CAP = 100
PAUSE_FLOOR_S = 1.0
RTT_CAP_S = 10.0
REPLY_TIME_CAP_S = 1.0
RETRY_INTERVAL_CAP_S = 600.0
BIN_FLOOR_S = 60.0
#: A command that runs longer than this (wall clock) counts as a hang.
WATCHDOG_S = 30.0


# --------------------------------------------------------------------------- bases
def _edit(text: str, pairs: list[tuple[str, str]]) -> str:
    for old, new in pairs:
        if old not in text:
            raise AssertionError(f"edit target not in the base text: {old!r}")
        text = text.replace(old, new)
    return text


def tiny_text() -> str:
    from .test_experiments import TINY

    return TINY.replace("{horizon}", "3m")


def may_small_text() -> str:
    """may-2012.toml with a 3-minute horizon, 30 subscribers, 3 bots from 20 s,
    low reputation and operator thresholds (so lists and the operator act)."""
    return _edit(MAY_2012.read_text(encoding="utf-8"), [
        ('horizon = "24h"', 'horizon = "3m"'),
        ('bin = "5m"', 'bin = "1m"'),
        ("count = 20000", "count = 30"),
        ("messages_per_day = 4", "messages_per_day = 300"),
        ('count = 100\nstart = "12h"', 'count = 3\nstart = "20s"'),
        ('ramp = "10m"', 'ramp = "10s"'),
        ("accounts = 50 ", "accounts = 5 "),
        ("threshold = 20000", "threshold = 30"),
        ("threshold = 5000", "threshold = 3"),
        ('check_interval = "5m"', 'check_interval = "20s"'),
        ('reaction_delay = "2h"', 'reaction_delay = "20s"'),
        ('minimal_backoff = "300s"', 'minimal_backoff = "20s"'),
        ('queue_run_delay = "300s"', 'queue_run_delay = "20s"'),
    ])


BASES = {"tiny": tiny_text, "may": may_small_text}
_BASE_CACHE: dict[str, str] = {}


def base_text(name: str) -> str:
    if name not in _BASE_CACHE:
        _BASE_CACHE[name] = BASES[name]()
    return _BASE_CACHE[name]


# --------------------------------------------------------------------------- hostile values
EXTREME_NUMBERS = [0, -1, 1, -0.0, 0.5, 1e-300, 5e-324, 1e308, -1e308, 10**30, -(10**30), 2**63, 2**64,
                   -(2**63), float("nan"), float("inf"), float("-inf"), 86399, 86400, 24, 1.0000000001]
DURATION_TEXTS = ["5x", "-3s", "1e999s", "", " ", "5", "0s", "0", "nan", "inf", "-inf", "nan s", "5 S", "1e3ms",
                  "1e308d", "1e308", "1e308s", "-0s", "5 parsecs", "s", "ms", ".5m", "5.m", "1_000s", "0x10s",
                  "5s5", "\uff15s", "\u0663s", "1e-400s", "+5s", "--5s", "5 min", "1d1h", "5\ns", "5s\x00"]
RESTRICTION_TEXTS = ["sleep", "sleep -1", "sleep 1.5", "sleep 86400", "sleep 99999999999999999999999",
                     "sleep \u00b2", "sleep \u0663", "sleep 5", "sleep 0", "check_client_access",
                     "check_client_access pcre:", "check_client_access pcre:nosuch", "check_client_access hash:x",
                     "check_client_access pcre:tarpit", "check_sasl_access pcre:tarpit", "check_policy_service",
                     "check_policy_service nosuch", "check_policy_service ratelimit", "reject_unknown_client",
                     "PERMIT", "permit permit", ",,,", "reject_unauth_pipelining", "defer", "DISCARD",
                     "sleep 5, reject, , ", "permit_mynetworks sleep"]
PCRE_TEXTS = ["/(/ sleep 1", "/x/", "/x/ ", "/x/q OK", "!/x/ OK", "!", "/", "x/ OK", "/[/ OK",
              "/(?P<a>)(?P<a>)/ OK", "/\\/ OK", "/x/ sleep -1", "/./ check_client_access pcre:tarpit",
              "/x/ 4", "/x/ 450 busy", "/x/ 550 no", "/x/ DISCARD", "/x/ HOLD", "/x/ DUNNO", "/x/ ok",
              "# only a comment", "\n\n", "  leading continuation", "/x/ sleep 1\n  , reject",
              "/a{99999999999}/ OK", "/(?<=a+)/ OK", "/\\p{L}/ OK", "/x/mx OK", "/x/i OK", "/(?i)x/ OK",
              "/x/ ${sleep}", "/x/ $${1}", "|x| OK", "\x00/x/ OK", "/x/\x00 OK", "/x/ sleep \u00b2",
              "/" + "(" * 1000 + ")" * 1000 + "/ OK", "/\\.jp$/ sleep 1\n/./ sleep 5",
              "/./ check_policy_service nosuch", "/./ check_sasl_access pcre:tarpit"]
PARAM_REFS = ["${", "${}", "${nope}", "${1x}", "${a b}", "${sleep", "$${sleep}", "${sleep}", "x${sleep}y",
              "${sleep}${sleep}", "$", "$$", "${${sleep}}", "${horizon}", "${params}", "${ sleep }",
              "${sleep}}", "${\u00e9}", "${_}", "$${", "sleep ${sleep}", "${s}", "${bots}"]
HOSTNAMES = ["", "unknown", "UNKNOWN", "{n}", "{m}", "p{n}{n}.x", "p{n", "}", "a..b", ".a", "a.",
             "\u00fc.jp", "a b", "-", "{n}" * 500, "x" * 5000]
NETWORKS = ["", "10.0.0.0/8", "10.0.0.1/33", "::/0", "::1/128", "2001:db8::/32", "300.0.0.0/8", "10.0.0.0/-1",
            "0.0.0.0/0", "10.0.0.0/32", "fe80::1%eth0/64", "10.0.0.0/0x8"]
OTHER_STRINGS = ["user", "bot", "talk", "disconnect", "ratelimit", "distinct", "LOCK", "HOLD", "fixed",
                 "token_bucket", "sliding", "recipients", "client_address", "origin", "drop", "postmaster",
                 "queue_size", "bounces", "account_volume", "reject", "none", "tarpit", "users", "bots",
                 "\x00", "\n", "\u202e", "\ud7ff", "x" * 100_000]
OTHER_VALUES = [True, False, [], {}, [1, 2], [[]], {"a": 1}, {"dist": "constant"},
                {"dist": "uniform", "low": "5s", "high": "1s"}, {"dist": "lognormal", "median": "1s", "sigma": 40},
                {"dist": "lognormal", "median": "1e308", "sigma": 1}, {"dist": "geometric", "mean": 1e308},
                {"dist": "empirical", "points": [[1, 0.5], [1, 1.0]]}, {"dist": "empirical", "points": []},
                {"dist": "empirical", "points": [["1s", 0.2], ["2s", float("nan")]]},
                {"dist": "exponential", "mean": 5e-324}, {"dist": "uniform", "low": 1, "high": 10**30},
                datetime.date(2012, 5, 15), datetime.time(12, 0), datetime.datetime(2012, 5, 15, 12, 0),
                {"own": 0.5, "unknown": 0.5000000001}, {"own": 1e308, "unknown": -1e308}, {"own": 1e-10},
                {"own": 1.0, "nosuch": 0.0}, {"defer": 0.6, "reject": 0.6}, {"messages": 0, "window": "1m"}]
POOL = (EXTREME_NUMBERS + DURATION_TEXTS + RESTRICTION_TEXTS + PCRE_TEXTS + PARAM_REFS + HOSTNAMES + NETWORKS
        + OTHER_STRINGS + OTHER_VALUES)
KEY_NAMES = ["", " ", "a.b", "\u00e9", "x" * 300, "\n", "\x00", "populations", "name", "Name", "coutn", "count",
             "[x]", "a=b", '"', "'", "dist", "params", "horizon", "${sleep}", "description", "maps", "tarpit"]

_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=12)


def hostile_values() -> st.SearchStrategy:
    return st.one_of(
        st.sampled_from(POOL),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(),
        _text,
        st.lists(st.sampled_from(RESTRICTION_TEXTS + PCRE_TEXTS), max_size=4),
        st.dictionaries(st.sampled_from(["dist", "value", "low", "high", "mean", "median", "sigma", "points"]),
                        st.sampled_from(EXTREME_NUMBERS + DURATION_TEXTS), max_size=4),
    )


# --------------------------------------------------------------------------- operations
DATA_KINDS = ("tweak", "delete", "replace", "derive", "add_key", "duplicate", "nest", "long_array", "recipe",
              "param_ref")
BYTE_KINDS = ("truncate", "bad_utf8", "insert_text", "delete_span", "duplicate_line", "deep_text", "encoding")

INVALID_UTF8 = [b"\xff", b"\xfe", b"\xc3\x28", b"\xa0\xa1", b"\xe2\x28\xa1", b"\xf0\x28\x8c\xbc", b"\xed\xa0\x80",
                b"\xc0\xaf", b"\xf8\x88\x80\x80\x80", b"\x80", b"\xe3\x81"]
TOML_CHARS = "[]{}=\"'#.,\n\r\t \\$01x-_:\x00\x7f\u00e9\u3042"
SMALL_VALUES = [v for v in POOL if not isinstance(v, str) or len(v) <= 60]


def tweak_ops() -> st.SearchStrategy:
    return st.tuples(st.just("tweak"), st.integers(min_value=0, max_value=10_000), st.integers(0, 100))


def data_ops() -> st.SearchStrategy:
    sel = st.integers(min_value=0, max_value=10_000)
    return st.one_of(
        tweak_ops(),
        st.tuples(st.just("delete"), sel),
        st.tuples(st.just("replace"), sel, hostile_values()),
        st.tuples(st.just("derive"), sel, st.integers(0, len(DERIVATIONS) - 1)),
        st.tuples(st.just("add_key"), sel, st.sampled_from(KEY_NAMES) | _text, hostile_values()),
        st.tuples(st.just("duplicate"), sel),
        st.tuples(st.just("nest"), sel, st.sampled_from([1, 2, 10, 50, 60]), st.booleans()),
        st.tuples(st.just("long_array"), sel, st.sampled_from([0, 25, 1000, 5000]), st.sampled_from(SMALL_VALUES)),
        st.tuples(st.just("recipe"), st.integers(0, len(RECIPES) - 1), sel),
        st.tuples(st.just("param_ref"), sel, st.sampled_from(PARAM_REFS), st.sampled_from(PARAM_DECLARATIONS)),
    )


def byte_ops() -> st.SearchStrategy:
    pos = st.integers(min_value=0, max_value=1_000_000)
    return st.one_of(
        st.tuples(st.just("truncate"), pos),
        st.tuples(st.just("bad_utf8"), pos, st.sampled_from(INVALID_UTF8)),
        st.tuples(st.just("insert_text"), pos, st.text(alphabet=TOML_CHARS, min_size=1, max_size=8)),
        st.tuples(st.just("delete_span"), pos, st.integers(1, 200)),
        st.tuples(st.just("duplicate_line"), pos),
        st.tuples(st.just("deep_text"), pos, st.sampled_from(["[", "{a=", "[a.", "a."]), st.sampled_from([50, 3000])),
        st.tuples(st.just("encoding"), st.sampled_from(["utf-16", "latin-1-bom", "bom", "crlf", "cr"])),
    )


@dataclass(frozen=True)
class Case:
    base: str
    data: tuple = ()
    raw: tuple = ()

    @property
    def kinds(self) -> list[str]:
        return [op[0] for op in self.data] + [op[0] for op in self.raw]

    @property
    def data_level(self) -> bool:
        """Without byte-level mutations the file is valid TOML: every error must name a key."""
        return not self.raw


def cases() -> st.SearchStrategy:
    """A third each: plausible tweaks only (often valid: extremes reach the run), any data-level
    mutations (mostly refused), and a byte-level mutation after at most two data-level ones."""
    base = st.sampled_from(sorted(BASES))
    return st.one_of(
        st.builds(Case, base=base, data=st.lists(tweak_ops(), min_size=1, max_size=4).map(tuple)),
        st.builds(Case, base=base, data=st.lists(data_ops(), min_size=1, max_size=3).map(tuple)),
        st.builds(Case, base=base, data=st.lists(data_ops(), max_size=2).map(tuple),
                  raw=st.lists(byte_ops(), min_size=1, max_size=1).map(tuple)),
    )


# --------------------------------------------------------------------------- applying data operations
def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path below ``node`` (tables and arrays included), depth first."""
    found = []
    if isinstance(node, dict):
        items = list(node.items())
    elif isinstance(node, list):
        items = list(enumerate(node))
    else:
        return found
    for key, value in items:
        found.append(prefix + (key,))
        found.extend(paths(value, prefix + (key,)))
    return found


def _parent(data: dict, path: tuple):
    node = data
    for part in path[:-1]:
        node = node[part]
    return node


def _get(data: dict, path: tuple):
    return _parent(data, path)[path[-1]]


def _set(data: dict, path: tuple, value: Any) -> None:
    _parent(data, path)[path[-1]] = value


def _derive(value: Any, how: int) -> Any:
    return DERIVATIONS[how](value)


def _negate(v):
    if isinstance(v, bool):
        return not v
    if isinstance(v, (int, float)):
        return -v if v else -1
    if isinstance(v, str):
        return "-" + v
    return -1


def _huge(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return 10**30 if not isinstance(v, str) else v + "e308"
    return v * 10**30 if isinstance(v, int) else v * 1e300


def _zero(v):
    return {bool: False, int: 0, float: 0.0, str: "", list: [], dict: {}}.get(type(v), 0)


DERIVATIONS = [
    _negate,
    _huge,
    lambda v: str(v) if not isinstance(v, str) else v + "x",
    lambda v: float(v) if isinstance(v, (int, float)) else 0.5,
    lambda v: [v],
    lambda v: {"value": v},
    _zero,
    lambda v: (not v) if isinstance(v, bool) else True,
    lambda v: f"{v}x" if not isinstance(v, (dict, list)) else "x",
    lambda v: float("nan"),
    lambda v: v[:1] if isinstance(v, (list, str)) else v,
    lambda v: v * 2 if isinstance(v, (list, str)) else v,
]

PARAM_DECLARATIONS = [None, ("s", "users"), ("s", "bots"), ("bots", 3), ("sleep", "5s"), ("sleep", 1e308),
                      ("sleep", float("nan")), ("sleep", {"a": 1}), ("sleep", [1]), ("horizon", 1),
                      ("1x", 2), ("s", "${sleep}"), ("s", "$${x}"), ("s", "x\ny")]


def _deep(depth: int, table: bool) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value} if table else [value]
    return value


VALID_INTS = [1, 0, 2, 3, 7, 24, 100, 86399, 10**6, 10**30, 2**63, 2**64]
VALID_FLOATS = [0.5, 0.0, 1.0, 1e-9, 1e-300, 0.999999, 1e6, 1e308, 5e-324]
VALID_DURATIONS = ["1s", "0s", "0", "1ms", "1e-6s", "61s", "1h", "1d", "1e9s", "1e300s", "1e308", "5e-324s", "86399"]
_DURATION_LIKE = re.compile(r"^\s*[-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?\s*[a-zA-Z]*\s*$")


def _tweak(value: Any, k: int) -> Any:
    """A plausible value of the same type: often still valid, sometimes at an extreme."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return VALID_INTS[k % len(VALID_INTS)]
    if isinstance(value, float):
        return VALID_FLOATS[k % len(VALID_FLOATS)]
    if isinstance(value, str):
        if _DURATION_LIKE.match(value):
            return VALID_DURATIONS[k % len(VALID_DURATIONS)]
        return OTHER_STRINGS[k % (len(OTHER_STRINGS) - 5)]
    return value


def _leaves(data: dict) -> list[tuple]:
    return [p for p in paths(data) if not isinstance(_get(data, p), (dict, list))]


def _tables(data: dict) -> list[tuple]:
    return [p for p in [()] + paths(data) if isinstance(_get(data, p) if p else data, dict)]


def _strings(data: dict) -> list[tuple]:
    return [p for p in paths(data) if isinstance(_get(data, p), str)]


def _policies(data: dict) -> dict:
    policies = data.get("policies")
    if not isinstance(policies, dict):
        policies = data["policies"] = {}
    return policies


def _first_policy(data: dict) -> dict:
    policies = _policies(data)
    for value in policies.values():
        if isinstance(value, dict):
            return value
    policies["p"] = {}
    return policies["p"]


def _populations(data: dict) -> list:
    pops = data.get("populations")
    return [p for p in pops if isinstance(p, dict)] if isinstance(pops, list) else []


def _recipe_dup_population(data, n):
    pops = data.get("populations")
    if isinstance(pops, list) and pops:
        pops.append(copy.deepcopy(pops[n % len(pops)]))


def _recipe_rename_population(data, n):
    pops = _populations(data)
    if len(pops) >= 2:
        pops[1]["name"] = pops[0].get("name")


def _recipe_self_map(data, n):
    policy = _first_policy(data)
    policy.setdefault("maps", {})
    if isinstance(policy["maps"], dict):
        policy["maps"]["self"] = "/./ check_client_access pcre:self"
    policy["recipient_restrictions"] = ["check_client_access pcre:self"] if n % 2 else "permit"


def _recipe_mutual_maps(data, n):
    policy = _first_policy(data)
    policy["maps"] = {"a": "/./ check_sasl_access pcre:b", "b": "/x/ OK\n/./ check_client_access pcre:a"}
    if n % 2:
        policy["client_restrictions"] = ["check_client_access pcre:a"]


def _recipe_default_policy(data, n):
    head = data.get("scenario")
    if isinstance(head, dict):
        head["default_policy"] = ["nosuch", "", "users", "None", "NONE", "tarpit"][n % 6]


def _recipe_accounts_from(data, n):
    pops = _populations(data)
    bots = [p for p in pops if p.get("kind") == "bot"]
    if bots:
        bots[0]["accounts_from"] = [bots[0].get("name"), "nosuch", "", "Users"][n % 4]
        if n % 5 == 0:
            bots[0]["accounts"] = 10**9


def _recipe_undefined_service(data, n):
    policy = _first_policy(data)
    policy["recipient_restrictions"] = ["check_policy_service " + ["nosuch", "rl"][n % 2]]
    body = {"type": ["ratelimit", "distinct", "nosuch"][n % 3], "limit": [0.5, 1e308, 10**30, 1][n % 4],
            "window": ["1h", "1e-300s", 5e-324, "0s"][n % 4], "algorithm": "token_bucket", "distinct": "origin"}
    policy["services"] = {"rl": body}


def _recipe_service_extremes(data, n):
    policy = _first_policy(data)
    policy["recipient_restrictions"] = ["check_policy_service rl", "permit"]
    algorithm = ["fixed", "sliding", "token_bucket"][n % 3]
    limit = [1e308, 5e-324, 1, 10**30, 1e-300][n % 5]
    window = ["1e-300s", 5e-324, "1ms", 1e308, "1d"][(n // 5) % 5]
    policy["services"] = {"rl": {"type": "ratelimit", "key": ["sasl_username", "client_address"][n % 2],
                                 "count": ["messages", "recipients"][(n // 2) % 2], "limit": limit,
                                 "window": window, "algorithm": algorithm, "action": ["DEFER", "HOLD", "LOCK"][n % 3]}}


def _recipe_distinct_extremes(data, n):
    policy = _first_policy(data)
    policy["recipient_restrictions"] = ["check_policy_service d"]
    policy["services"] = {"d": {"type": "distinct", "limit": [1, 1e308, 10**30, 1.5, 2**63][n % 5],
                                "window": ["1e-300s", "1d", 1e308][n % 3], "action": "LOCK",
                                "distinct": ["origin", "client_address"][n % 2]}}


def _recipe_shares(data, n):
    pops = _populations(data)
    if pops:
        origins = data.get("origins") if isinstance(data.get("origins"), dict) else {}
        names = list(origins) or ["own"]
        first = names[0]
        last = names[-1]
        pops[n % len(pops)]["origins"] = [
            {first: 0.5, last: 0.5000000001} if first != last else {first: 0.9999999999},
            {first: 1.0 - 1e-10},
            {first: 1e308, last: 1e308},
            {first: 1.0, last: 0.0},
        ][n % 4]


def _recipe_long_lists(data, n):
    policy = _first_policy(data)
    if n % 2:
        policy["recipient_restrictions"] = ["sleep 0"] * 5000 + ["permit"]
    else:
        policy["maps"] = {"big": "\n".join(f"/x{i}/ sleep {i % 3}" for i in range(2000)) + "\n/./ OK"}
        policy["recipient_restrictions"] = ["check_client_access pcre:big"]


def _recipe_sleep_chain(data, n):
    """Sleeps that add up to far beyond any horizon (smtpd stays busy for them)."""
    policy = _first_policy(data)
    policy["client_restrictions"] = ["sleep 86399"] * [1, 3][n % 2]
    policy["smtpd_delay_reject"] = bool(n % 3)


def _recipe_populations_table(data, n):
    pops = data.get("populations")
    if isinstance(pops, list):
        data["populations"] = {str(p.get("name", i)) if isinstance(p, dict) else str(i): p
                               for i, p in enumerate(pops)} if n % 2 else pops[:0]


def _recipe_destinations(data, n):
    dests = data.get("destinations")
    if isinstance(dests, dict) and dests:
        name = list(dests)[n % len(dests)]
        dest = dests[name]
        if isinstance(dest, dict):
            [lambda: dest.update(lists=[name]), lambda: dest.update(legit_share=1.0),
             lambda: dest.update(rate_limit={"messages": 10**30, "window": "1e-300s"}),
             lambda: dest.update(delivery_time={"dist": "exponential", "mean": "1e308"}),
             lambda: dest.update(spam={"defer": 1.0, "reject": 0.0})][n % 5]()
    else:
        data["operator"] = {"rule": "bounces", "threshold": 1}


def _recipe_params(data, n):
    data["params"] = [{"x": {"a": 1}}, {"horizon": 1}, {"1x": 1}, {"s": "${t}", "t": "u"}, {"params": 2},
                      {"": 1}, {"a b": 1}, {"s": datetime.date(2012, 5, 15)}, [], "x"][n % 10]


def _recipe_zero_time_bots(data, n):
    """Bots whose sessions take no simulated time: no round trip, no reply time, no pause."""
    for origin in (data.get("origins") or {}).values():
        if isinstance(origin, dict):
            origin["rtt"] = 0
    mta = data.setdefault("mta", {})
    if isinstance(mta, dict):
        mta["reply_time"] = 0
    for p in _populations(data):
        if p.get("kind") == "bot":
            p["pause"] = [0, "0s", {"dist": "uniform", "low": 0, "high": 0}][n % 3]


RECIPES = [_recipe_dup_population, _recipe_rename_population, _recipe_self_map, _recipe_mutual_maps,
           _recipe_default_policy, _recipe_accounts_from, _recipe_undefined_service, _recipe_service_extremes,
           _recipe_distinct_extremes, _recipe_shares, _recipe_long_lists, _recipe_sleep_chain,
           _recipe_populations_table, _recipe_destinations, _recipe_params, _recipe_zero_time_bots]


MAX_PATHS = 20_000  # a long array of long arrays would make the file (and the case) huge


def apply_data_op(data: dict, op: tuple) -> str:
    """Apply one operation in place; returns what it did (for failure messages)."""
    kind = op[0]
    if kind == "recipe":
        _, which, n = op
        RECIPES[which](data, n)
        return f"recipe {RECIPES[which].__name__}({n})"
    if kind == "param_ref":
        _, sel, ref, declaration = op
        strings = _strings(data) or [("scenario", "name")]
        path = strings[sel % len(strings)]
        if declaration is not None:
            params = data.setdefault("params", {})
            if isinstance(params, dict):
                params[declaration[0]] = copy.deepcopy(declaration[1])
        try:
            _set(data, path, ref)
        except (KeyError, IndexError, TypeError):
            return "param_ref: no place"
        return f"param_ref {path} = {ref!r} with {declaration!r}"
    if kind == "tweak":
        _, sel, k = op
        leaves = _leaves(data) or [("scenario", "name")]
        path = leaves[sel % len(leaves)]
        try:
            _set(data, path, _tweak(_get(data, path), k))
        except (KeyError, IndexError, TypeError):
            return "tweak: no place"
        return f"tweak {path} = {_get(data, path)!r:.60}"
    if kind == "add_key":
        _, sel, key, value = op
        tables = _tables(data)
        path = tables[sel % len(tables)]
        (_get(data, path) if path else data)[key] = copy.deepcopy(value)
        return f"add_key {path + (key,)} = {value!r:.80}"
    all_paths = paths(data)
    if not all_paths or len(all_paths) > MAX_PATHS:
        return f"{kind}: skipped ({len(all_paths)} paths)"
    path = all_paths[op[1] % len(all_paths)]
    parent = _parent(data, path)
    if kind == "delete":
        del parent[path[-1]]
    elif kind == "replace":
        parent[path[-1]] = copy.deepcopy(op[2])  # pool values are shared: never mutate them
    elif kind == "derive":
        parent[path[-1]] = _derive(parent[path[-1]], op[2])
    elif kind == "duplicate":
        value = copy.deepcopy(parent[path[-1]])
        if isinstance(parent, list):
            parent.append(value)
        else:
            parent[f"{path[-1]}-copy"] = value
    elif kind == "nest":
        parent[path[-1]] = _deep(op[2], op[3])
    elif kind == "long_array":
        parent[path[-1]] = [copy.deepcopy(op[3]) for _ in range(op[2])]
    else:
        raise ValueError(kind)
    return f"{kind} {path}"


# --------------------------------------------------------------------------- applying byte operations
def apply_byte_op(blob: bytes, op: tuple) -> bytes:
    kind = op[0]
    n = len(blob)
    if kind == "truncate":
        return blob[: op[1] % (n + 1)]
    if kind == "bad_utf8":
        p = op[1] % (n + 1)
        return blob[:p] + op[2] + blob[p:]
    if kind == "insert_text":
        p = op[1] % (n + 1)
        return blob[:p] + op[2].encode("utf-8") + blob[p:]
    if kind == "delete_span":
        p = op[1] % (n + 1)
        return blob[:p] + blob[p + op[2]:]
    if kind == "duplicate_line":
        lines = blob.splitlines(keepends=True)
        if not lines:
            return blob
        i = op[1] % len(lines)
        return b"".join(lines[: i + 1] + [lines[i]] + lines[i + 1:])
    if kind == "deep_text":
        lines = blob.splitlines(keepends=True)
        i = op[1] % (len(lines) + 1)
        opener, depth = op[2], op[3]
        if opener == "[":
            junk = "x = " + "[" * depth + "]" * depth + "\n"
        elif opener == "{a=":
            junk = "x = " + "{a=" * depth + "1" + "}" * depth + "\n"
        elif opener == "[a.":
            junk = "[" + ".".join(["a"] * depth) + "]\nb = 1\n"
        else:
            junk = ".".join(["a"] * depth) + " = 1\n"
        return b"".join(lines[:i] + [junk.encode()] + lines[i:])
    if kind == "encoding":
        text = blob.decode("utf-8", errors="surrogateescape")
        how = op[1]
        if how == "utf-16":
            return text.encode("utf-16", errors="surrogatepass")
        if how == "latin-1-bom":
            return b"\xef\xbb\xbf" + text.encode("latin-1", errors="replace")
        if how == "bom":
            return b"\xef\xbb\xbf" + blob
        if how == "crlf":
            return blob.replace(b"\n", b"\r\n")
        return blob.replace(b"\n", b"\r")
    raise ValueError(kind)


def build(case: Case) -> tuple[bytes, list[str]]:
    """The file's bytes and a description of each operation."""
    text = base_text(case.base)
    done = []
    if case.data:
        data = tomllib.loads(text)
        for op in case.data:
            before = copy.deepcopy(data)
            try:
                done.append(apply_data_op(data, op))
                tomli_w.dumps(data)
            except (TypeError, ValueError, KeyError, IndexError, RecursionError) as exc:
                # tomli_w cannot write it (or the recipe found nothing to change): skip this one.
                data = before
                done.append(f"skipped {op[0]}: {type(exc).__name__}")
        text = tomli_w.dumps(data)
    blob = text.encode("utf-8")
    for op in case.raw:
        blob = apply_byte_op(blob, op)
        done.append(f"{op[0]} {op[1:]!r:.80}")
    return blob, done


# --------------------------------------------------------------------------- running the command line
class Hang(Exception):
    pass


@contextlib.contextmanager
def watchdog(seconds: float):
    def alarm(signum, frame):
        raise Hang(f"no answer within {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


CHARTS = ("throughput_chart", "false_delay_chart", "queue_chart", "delivery_latency_chart")


@contextlib.contextmanager
def charts(enabled: bool):
    """Charts cost about 2 s a run; most fuzz runs skip them (the data they plot are still computed)."""
    if enabled:
        yield
        return
    with mock.patch.multiple("simsub.report.run_folder", **{name: lambda *a, **k: None for name in CHARTS}):
        yield


@dataclass
class Call:
    argv: list[str]
    code: Any
    out: str
    err: str
    escaped: str | None = None  # traceback of an exception that escaped main


def call(argv: list[str]) -> Call:
    out, err = io.StringIO(), io.StringIO()
    escaped = None
    code: Any = None
    try:
        with watchdog(WATCHDOG_S), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    except SystemExit as exc:
        code = exc.code
    except BaseException:  # noqa: BLE001 - anything escaping main is the defect being looked for
        escaped = traceback.format_exc()
    return Call(argv, code, out.getvalue(), err.getvalue(), escaped)


def _upper(dist) -> float:
    """The largest value a distribution gives (its mean when unbounded)."""
    if isinstance(dist, Constant):
        return dist.value
    if isinstance(dist, Uniform):
        return dist.high
    if isinstance(dist, Empirical):
        return max(dist.xs)
    if isinstance(dist, Geometric):
        return dist.mean * 20
    return dist.mean * 20


def cap_arguments(path: Path) -> list[str]:
    """``--horizon``/``--set`` arguments that keep a valid scenario's run small (and still valid).

    Counts: a few clients and messages, few recipients and retries, bots pausing at least 1 s.
    Simulated time: the horizon, and what makes sessions outlast it by far (round trips over
    10 s, a reply time over 1 s, retry intervals over 10 min, bins under 1 min): the run samples
    the smtpd pool once per bin until the last session is over.
    """
    scenario = load_scenario(path)
    args = []
    if scenario.horizon > HORIZON_CAP_S:
        args += ["--horizon", f"{HORIZON_CAP_S:g}s"]
    sets: list[str] = []
    if scenario.bin < BIN_FLOOR_S:
        sets.append("scenario.bin=1m")
    if scenario.mta.reply_time > REPLY_TIME_CAP_S:
        sets.append("mta.reply_time=2ms")
    for name, origin in scenario.origins.items():
        if _upper(origin.rtt) > RTT_CAP_S:
            sets.append(f"origins.{name}.rtt=100ms")
    counts = {p.name: min(p.count, USERS_CAP) for p in scenario.populations if not p.is_bot}
    for p in scenario.populations:
        key = f"populations.{p.name}"
        cap = BOTS_CAP if p.is_bot else USERS_CAP
        if p.count > cap:
            sets.append(f"{key}.count={cap}")
        if _upper(p.recipients) > RECIPIENTS_CAP:
            sets.append(f"{key}.recipients=3")
        if p.is_bot:
            if p.parallel > PARALLEL_CAP:
                sets.append(f"{key}.parallel={PARALLEL_CAP}")
            accounts = min(p.accounts, counts[p.accounts_from] if p.accounts_from in counts else 5)
            if accounts < p.accounts:
                sets.append(f"{key}.accounts={accounts}")
            if p.pause.mean < PAUSE_FLOOR_S:
                sets.append(f"{key}.pause={PAUSE_FLOOR_S:g}s")
        else:
            if p.messages_per_day > MESSAGES_PER_DAY_CAP:
                sets.append(f"{key}.messages_per_day={MESSAGES_PER_DAY_CAP:g}")
            if p.retries > RETRIES_CAP:
                sets.append(f"{key}.retries={RETRIES_CAP}")
            if p.retry_interval > RETRY_INTERVAL_CAP_S:
                sets.append(f"{key}.retry_interval=5m")
    for pair in sets:
        args += ["--set", pair]
    return args


def cap_arguments_for(blob: bytes, folder: Path) -> list[str]:
    path = folder / "capped.toml"
    path.write_bytes(blob)
    return cap_arguments(path)


# --------------------------------------------------------------------------- the contract
_TOP = ("scenario", "origins", "populations", "mta", "policies", "queue", "destinations", "reputation", "operator",
        "params")


class Defect(AssertionError):
    pass


def _one_line(text: str) -> str:
    return re.sub("[\x00-\x1f\x7f-\x9f\u2028\u2029]", lambda m: repr(m.group())[1:-1], text)


def check_refusal(result: Call, path: Path, top_keys: list[str] | None, overridden: bool = False) -> None:
    """Exit 2, one line naming the file (and with ``top_keys``, a dotted key), no traceback."""
    if result.escaped:
        raise Defect(f"exception escaped main({result.argv}):\n{result.escaped}")
    if result.code != 2:
        raise Defect(f"exit status {result.code!r}, expected 0 or 2; stderr: {result.err[-2000:]}")
    lines = result.err.splitlines()
    if len(lines) != 1 or not result.err.endswith("\n"):
        raise Defect(f"expected exactly one line on stderr, got {len(lines)}: {result.err[:2000]!r}")
    if "Traceback" in result.err:
        raise Defect(f"traceback on stderr: {result.err[:2000]}")
    if result.out:
        raise Defect(f"stdout is not empty on a refusal: {result.out[:500]!r}")
    prefix = f"simsub: error: {path}: "
    line = lines[0]
    if overridden and line.startswith(f"simsub: error: {path} (--set "):
        return
    if not line.startswith(prefix):
        raise Defect(f"error line does not start with {prefix!r}: {line!r}")
    if top_keys is not None:
        rest = line[len(prefix):]
        heads = set(_TOP) | {_one_line(k if k.strip() else f'"{k}"') for k in top_keys}  # "" and "\n" are quoted
        if not any(rest.startswith(h) and rest[len(h):len(h) + 1] in (".", "[", ":", " ") for h in heads if h):
            if not any(rest.startswith(f"{h}: ") for h in heads):
                raise Defect(f"error line names no dotted key of the scenario: {line!r}")


def exercise(case: Case, folder: Path, with_charts: bool = False) -> str:
    """Write the case, hold ``check`` and ``run`` to the contract; returns 'valid', 'refused' or
    'guarded' (valid, but the resource guard refused the run: exit 2, one line, no folder)."""
    blob, done = build(case)
    try:
        return _exercise(blob, folder, case.data_level, with_charts)
    except Defect as exc:
        text = blob.decode("utf-8", errors="backslashreplace")
        raise Defect(f"{exc}\n--- operations: {done}\n--- file ({len(blob)} bytes):\n{text[:3000]}") from None


def _exercise(blob: bytes, folder: Path, data_level: bool, with_charts: bool) -> str:
    path = folder / "scenario.toml"
    path.write_bytes(blob)
    out = folder / "out" / "result"
    checked = call(["check", str(path)])
    top_keys = None
    if data_level:
        top_keys = list(tomllib.loads(blob.decode("utf-8")))
    if checked.escaped is None and checked.code == 0:
        if checked.err:
            raise Defect(f"check of a valid scenario wrote to stderr: {checked.err[:1000]!r}")
        try:
            caps = cap_arguments(path)
        except Exception:  # noqa: BLE001
            raise Defect(f"check said valid but loading it raised:\n{traceback.format_exc()}") from None
        argv = ["run", str(path), "--out", str(out), "--quiet", *caps]
        with charts(with_charts):
            ran = call(argv)
        if ran.escaped:
            raise Defect(f"exception escaped main({argv}):\n{ran.escaped}")
        if ran.code == 2 and "this run would take" in ran.err:
            # The resource guard refused the run: a refusal too, held to the same contract.
            check_refusal(ran, path, None, overridden=True)
            if out.exists():
                raise Defect(f"refused run left a result folder {out}")
            _no_leftovers(out)
            return "guarded"
        if ran.code != 0:
            raise Defect(f"run of a valid scenario ({argv}) exited {ran.code!r}: {ran.err[-2000:]}")
        if not (out / "summary.json").is_file():
            raise Defect(f"run exited 0 but wrote no summary.json in {out}")
        _no_leftovers(out)
        again = call(["check", str(out / "scenario.toml")])
        if again.escaped or again.code != 0:
            raise Defect(f"the result's scenario.toml does not check: {again.escaped or again.err}")
        return "valid"
    check_refusal(checked, path, top_keys)
    ran = call(["run", str(path), "--out", str(out), "--quiet"])
    check_refusal(ran, path, top_keys)
    if out.exists():
        raise Defect(f"refused run left a result folder {out}")
    _no_leftovers(out)
    return "refused"


def _no_leftovers(out: Path) -> None:
    if out.parent.is_dir():
        stray = [p.name for p in out.parent.iterdir() if p.name != out.name]
        if stray:
            raise Defect(f"left behind beside the result folder: {stray}")


# --------------------------------------------------------------------------- statistics
@dataclass
class Stats:
    total: int = 0
    outcomes: dict = field(default_factory=lambda: {"valid": 0, "refused": 0, "guarded": 0})
    by_kind: dict = field(default_factory=dict)
    by_base: dict = field(default_factory=dict)
    with_charts: int = 0

    def record(self, case: Case, outcome: str, charts_drawn: bool = False) -> None:
        self.total += 1
        self.outcomes[outcome] += 1
        self.with_charts += int(charts_drawn)
        for kind in sorted(set(case.kinds)):
            self.by_kind.setdefault(kind, {"valid": 0, "refused": 0, "guarded": 0})[outcome] += 1
        self.by_base.setdefault(case.base, {"valid": 0, "refused": 0, "guarded": 0})[outcome] += 1

    def as_dict(self) -> dict:
        return {"cases": self.total, **self.outcomes, "runs_with_charts": self.with_charts,
                "by_mutation_kind": dict(sorted(self.by_kind.items())), "by_base": self.by_base}
