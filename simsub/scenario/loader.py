"""Load a scenario file, apply ``--set`` overrides, validate every key.

Every problem becomes one :class:`~simsub.errors.ScenarioError` that names the
file and the dotted key (or the line, for syntax errors) and says what was
expected; unknown keys get a "did you mean" suggestion.
"""

from __future__ import annotations

import copy
import hashlib
import difflib
import ipaddress
import math
import re
import tomllib
from pathlib import Path
from typing import Any

from ..distributions import Distribution, DistributionSpecError, parse_distribution
from ..errors import ScenarioError
from ..policy.policy import LIST_KEYS, compile_policy
from ..policy.restrictions import PolicyConfigError
from ..policy.services import ACTIONS, COUNTS, DISTINCT, KEYS, DistinctSpec, RateLimitSpec
from ..policy.ratelimit import ALGORITHMS
from ..units import format_duration, parse_duration
from .files import check_depth, default_scenario_path, one_line, read_scenario_file
from .params import ParamError, check_params, check_value, substitute, substitute_text, undeclared
from .types import (MTA, TRACE_FILES, AnvilLimits, Destination, OperatorConfig, Origin, Outcomes, Population,
                    QueueConfig, ReputationList, Scenario, TraceSpec, population_default)

_MISSING = object()


# --------------------------------------------------------------------------- overrides
def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """``["mta.process_limit=50", "horizon=2h"]`` → ``{"mta.process_limit": 50, ...}``.

    Values are read as TOML values when they parse as one (``50``, ``true``,
    ``"x"``, ``[1, 2]``), otherwise kept as plain strings (``2h``, ``sleep 5``).
    """
    result: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ScenarioError("--set", pair, "expected KEY=VALUE, e.g. mta.process_limit=50")
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        except RecursionError:
            raise ScenarioError("--set", _one_line(key), "the value is nested too deeply") from None
        result[key] = value
    return result


_SHORTCUTS = {"horizon": "scenario.horizon", "seed": "scenario.seed"}


def split_overrides(overrides: dict[str, Any], declared: dict[str, Any], source: str | None = None
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separate parameter overrides (``NAME`` or ``params.NAME``) from dotted keys.

    Returns ``(parameter values, other overrides)``.  ``declared`` is the
    scenario's ``[params]``: setting a parameter it does not declare, or an
    undotted key that is neither a parameter, a shortcut (``horizon``,
    ``seed``) nor a top-level table, is an error naming the parameters.
    """
    values: dict[str, Any] = {}
    others: dict[str, Any] = {}
    for key, value in overrides.items():
        where = _one_line(f"{source} (--set {key})" if source else "--set")
        if key == "params" or key.startswith("params."):
            name = key[len("params."):]
            if key == "params" or not name or "." in name:
                raise ScenarioError(where, _one_line(key), "set one parameter at a time: NAME=VALUE or params.NAME=VALUE")
            if name not in declared:
                raise ScenarioError(where, _one_line(key), _one_line(undeclared(name, declared, overriding=True)))
        elif "." not in key and key in declared:
            name = key
        elif "." not in key and key not in _SHORTCUTS and key not in _TOP:
            raise ScenarioError(where, _one_line(key), _one_line(undeclared(
                key, declared, overriding=True, also=f"other keys take their dotted name, e.g. mta.process_limit=50; "
                f"shortcuts: {', '.join(_SHORTCUTS)}")))
        else:
            others[key] = value
            continue
        try:
            values[name] = check_value(f"params.{name}", value)
        except ParamError as exc:
            raise ScenarioError(where, _one_line(exc.key), _one_line(exc.message)) from None
    return values, others


def apply_overrides(data: dict, overrides: dict[str, Any], source: str | None = None,
                    params: dict[str, Any] | None = None) -> set[str]:
    """Set dotted keys in ``data`` in place; arrays of tables are addressed by name.

    Returns the set of dotted keys that were set, for error messages.  ``source``
    (the scenario file) is named in errors next to the ``--set`` key.  ``params`` (the
    parameter values) resolve names written as references (``name = "${group}"``), so that
    such an entry is addressed by the name it gets, as in error messages.
    """
    touched = set()
    for dotted, value in overrides.items():
        dotted = _SHORTCUTS.get(dotted, dotted)
        where = _one_line(f"{source} (--set {dotted})" if source else "--set")
        shown = _one_line(dotted)
        parts = dotted.split(".")
        node: Any = data
        path: list[str] = []
        for part in parts[:-1]:
            path.append(part)
            if isinstance(node, list):
                match = [t for t in node if isinstance(t, dict) and _entry_name(t, params) == part]
                if not match:
                    names = [str(_entry_name(t, params)) for t in node if isinstance(t, dict)]
                    raise ScenarioError(where, shown, f"no entry named {part!r} in {_one_line('.'.join(path[:-1]))} (have: {_one_line(', '.join(names))}){_hint(part, names)}")
                node = match[0]
            elif isinstance(node, dict):
                if part not in node and len(path) > 1 and node and all(isinstance(v, dict) for v in node.values()):
                    # A table of named tables (origins, destinations, policies, lists):
                    # a name that is not there is a typo, not a new entry.
                    raise ScenarioError(where, shown, f"no entry named {part!r} in {_one_line('.'.join(path[:-1]))} (have: {_one_line(', '.join(node))}){_hint(part, node)}")
                node = node.setdefault(part, {})
            else:
                raise ScenarioError(where, shown, _one_line(f"{'.'.join(path[:-1])} is not a table"))
        if isinstance(node, list):
            raise ScenarioError(where, shown, _one_line(f"{'.'.join(parts[:-1])} is a list of tables; name an entry, e.g. populations.NAME.count"))
        if not isinstance(node, dict):
            raise ScenarioError(where, shown, _one_line(f"{'.'.join(parts[:-1])} is not a table"))
        node[parts[-1]] = value
        touched.add(dotted)
    return touched


def _entry_name(entry: dict, params: dict[str, Any] | None) -> Any:
    """The ``name`` of an array-of-tables entry, with ``${...}`` references resolved when possible."""
    name = entry.get("name")
    if params is not None and isinstance(name, str) and "${" in name:
        try:
            name = substitute_text(name, "name", params)
        except ParamError:
            pass  # the loader reports the broken reference at its key
    return name


def _one_line(text: str) -> str:
    """Escape line breaks and other control characters (from quoted TOML keys) so an error stays one line."""
    return one_line(text)


def _hint(word: str, choices) -> str:
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


# --------------------------------------------------------------------------- reading
class Section:
    """One TOML table under validation: typed getters that report full keys."""

    def __init__(self, loader: "Loader", prefix: str, data: Any, known: tuple[str, ...]):
        self.loader = loader
        self.prefix = prefix
        if not isinstance(data, dict):
            loader.fail(prefix, f"expected a table, got {_show(data)}")
        self.data = data
        for key in data:
            if key not in known:
                loader.fail(self.key(key), f"unknown key{_hint(key, known)} (known here: {', '.join(known)})")

    def key(self, name: str) -> str:
        if not str(name).strip():  # an empty or blank key ("" = 1) would vanish from the message
            name = f'"{name}"'
        return f"{self.prefix}.{name}" if self.prefix else name

    def has(self, name: str) -> bool:
        return name in self.data

    def raw(self, name: str, default: Any = _MISSING) -> Any:
        if name not in self.data:
            if default is _MISSING:
                self.loader.fail(self.key(name), "is required")
            return default
        return self.data[name]

    def string(self, name: str, default: Any = _MISSING, choices: tuple[str, ...] | None = None) -> str:
        value = self.raw(name, default)
        if not isinstance(value, str):
            self.loader.fail(self.key(name), f"expected a string, got {_show(value)}")
        if choices and value not in choices:
            self.loader.fail(self.key(name), f"expected one of {', '.join(choices)}, got {value!r}{_hint(value, choices)}")
        return value

    def boolean(self, name: str, default: Any = _MISSING) -> bool:
        value = self.raw(name, default)
        if not isinstance(value, bool):
            self.loader.fail(self.key(name), f"expected true or false, got {_show(value)}")
        return value

    def integer(self, name: str, default: Any = _MISSING, minimum: int = 0) -> int:
        value = self.raw(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.loader.fail(self.key(name), f"expected a whole number >= {minimum}, got {_show(value)}")
        if value < minimum:
            self.loader.fail(self.key(name), f"expected a whole number >= {minimum}, got {value}")
        return value

    def number(self, name: str, default: Any = _MISSING, minimum: float = 0.0, exclusive: bool = False,
               maximum: float | None = None) -> float:
        value = self.raw(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
            self.loader.fail(self.key(name), f"expected a finite number, got {_show(value)}")
        if value < minimum or (exclusive and value == minimum):
            relation = ">" if exclusive else ">="
            self.loader.fail(self.key(name), f"expected a number {relation} {minimum:g}, got {value}")
        if maximum is not None and value > maximum:
            self.loader.fail(self.key(name), f"expected a number <= {maximum:g}, got {value}")
        return float(value)

    def duration(self, name: str, default: Any = _MISSING, positive: bool = True, minimum: float = 0.0,
                 maximum: float | None = None) -> float:
        """A duration in seconds; ``minimum``/``maximum`` (s) bound it where a tiny or huge value
        would stall the simulation clock (periodic processes) or overflow a counter."""
        value = self.raw(name, default)
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.loader.fail(self.key(name), str(exc))
        if positive and seconds <= 0:
            self.loader.fail(self.key(name), f"expected a duration > 0, got {_clip(value)}")
        if seconds < minimum:
            self.loader.fail(self.key(name), f"expected a duration of at least {format_duration(minimum)}, got {_clip(value)}")
        if maximum is not None and seconds > maximum:
            self.loader.fail(self.key(name), f"expected a duration of at most {format_duration(maximum)}, got {_clip(value)}")
        return seconds

    def distribution(self, name: str, flavour: str, default: Any = _MISSING, positive: bool = False) -> Distribution:
        value = self.raw(name, default)
        try:
            dist = parse_distribution(value, flavour)  # type: ignore[arg-type]
        except DistributionSpecError as exc:
            sub = f"{self.key(name)}.{exc.subkey}" if exc.subkey else self.key(name)
            self.loader.fail(sub, str(exc))
        if positive and dist.mean <= 0:
            self.loader.fail(self.key(name), f"expected a duration > 0, got {value!r}")
        return dist

    def table(self, name: str, known: tuple[str, ...], default: Any = _MISSING) -> "Section":
        return Section(self.loader, self.key(name), self.raw(name, default), known)


def _clip(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "…"


def _finite(value: Any) -> bool:
    """A finite number; TOML integers beyond the float range (``10**400``) are not (math.isfinite
    would raise OverflowError on them)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _show(value: Any) -> str:
    text = repr(value)
    kind = type(value).__name__
    kind = {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "dict": "table", "list": "array"}.get(kind, kind)
    return f"{kind} {text[:60]}{'…' if len(text) > 60 else ''}"


class Loader:
    def __init__(self, source: str, overridden: set[str], uses: dict[str, list[str]] | None = None):
        self.source = source
        self.overridden = overridden
        # parameter name -> dotted keys whose values refer to it (for errors caused by a parameter override)
        self.uses = uses or {}

    def fail(self, key: str | None, message: str):
        source = self.source
        culprit = self._override_behind(key) if key else None
        if culprit:
            source = f"{source} (--set {culprit})"
        raise ScenarioError(_one_line(source), key and _one_line(key), _one_line(message))

    def _override_behind(self, key: str) -> str | None:
        """The --set key most likely behind an error on ``key``: the same key, a
        parent or child of it, else the one sharing the longest dotted prefix
        (a check across keys, such as shares that must sum to 1)."""
        for o in sorted(self.overridden):
            if key == o or key.startswith(o + ".") or o.startswith(key + "."):
                return o
        # A parameter set by --set and used at, above or below ``key``.
        bare = re.sub(r"\[\d+\]", "", key.split(" line ")[0]).split(".")
        for o in sorted(self.overridden):
            if o.startswith("params."):
                for use in self.uses.get(o[len("params."):], ()):
                    parts = re.sub(r"\[\d+\]", "", use).split(".")
                    if all(a == b or "*" in (a, b) for a, b in zip(bare, parts)):
                        return o
        best, best_length = None, 0
        parts = key.split(".")
        for o in sorted(self.overridden):
            common = 0
            for a, b in zip(parts, o.split(".")):
                if a != b and a != "*":
                    break
                common += 1
            if common > best_length:
                best, best_length = o, common
        return best


# --------------------------------------------------------------------------- scenario
_TOP = ("scenario", "origins", "populations", "mta", "policies", "queue", "destinations", "reputation", "operator",
        "trace", "params")
_TRACE = ("tables", "users", "bots", "flagged", "sha256")
_SCENARIO = ("name", "description", "horizon", "seed", "default_policy", "bin")
_ORIGIN = ("hostname", "rtt", "mynetworks", "network", "description")
_POPULATION_COMMON = ("name", "kind", "count", "origins", "recipients", "patience", "connect_timeout",
                      "on_timeout", "description")
_POPULATION_USER = ("messages_per_day", "diurnal", "retries", "retry_interval")
_POPULATION_BOT = ("start", "stop", "accounts", "accounts_from", "parallel", "pause", "ramp", "forged_sender")
_MTA = ("process_limit", "backlog", "reply_time", "soft_error_limit", "hard_error_limit", "error_sleep_time",
        "anvil")
_ANVIL = ("connection_count_limit", "connection_rate_limit", "message_rate_limit", "recipient_rate_limit",
          "auth_rate_limit", "rate_time_unit", "exceptions")
_POLICY = ("description", "smtpd_delay_reject", "maps", "services", "policyd") + LIST_KEYS  # policyd: the daemon's own settings
_SERVICE = ("type", "key", "count", "limit", "window", "algorithm", "action", "strict", "burst", "overrides",
            "description")
#: Service keys that only one algorithm has.
_ALGORITHM_ONLY = {"strict": "exim", "burst": "leaky_bucket"}
_DISTINCT_SERVICE = ("type", "key", "distinct", "limit", "window", "action", "description")
#: Shortest interval of a periodic process (deferred-queue scans, operator checks): shorter ones
#: flood the event queue and, once the clock is large, stop advancing it (t + interval == t).
MIN_PERIOD_S = 1.0
#: Longest time-series bin: the run notices its end at a bin boundary, and until then the mail
#: queue and the operator keep working.
MAX_BIN_S = 86400.0
#: Shortest rate-limit window: a fixed window's index, t // window, must stay a finite number.
MIN_WINDOW_S = 0.001
_HOSTNAME = re.compile(r"^(unknown|[A-Za-z0-9{}\-]+(\.[A-Za-z0-9{}\-]+)*)$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")


def load_scenario(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Scenario:
    """Read and validate a scenario file (``None`` = the built-in default).

    ``overrides`` maps dotted keys to values, as ``--set`` does.  Raises
    :class:`ScenarioError` for any problem; never returns a partial scenario.
    """
    raw, source = read_scenario_file(path)
    file = Path(path) if path is not None else default_scenario_path()
    return build_scenario(raw, source, overrides or {}, file)


def _whole_seconds(section, name: str, default: str) -> float:
    """A duration Postfix reads as whole seconds (smtpd_error_sleep_time), at most a day like sleep."""
    seconds = section.duration(name, default, positive=False, maximum=86399.0)
    if seconds != int(seconds):
        section.loader.fail(section.key(name), f"expected whole seconds, as Postfix takes them, got {seconds:g} s")
    return seconds


def _anvil(section) -> AnvilLimits:
    """``[mta.anvil]``: anvil's per-client limits; see scenarios/README.md."""
    default = AnvilLimits()
    limits = {name: section.integer(name, getattr(default, name)) for name in _ANVIL[:5]}
    unit = section.duration("rate_time_unit", "60s", minimum=1.0)
    if unit != int(unit):
        section.loader.fail(section.key("rate_time_unit"), f"expected whole seconds, as Postfix takes them, got {unit:g} s")
    raw = section.raw("exceptions", "mynetworks")
    exceptions = None
    if raw != "mynetworks":
        if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
            section.loader.fail(section.key("exceptions"), 'expected "mynetworks" or a list of address ranges '
                                f'such as ["192.0.2.0/24"] ([] = nobody is exempt), got {_show(raw)}')
        networks = []
        for i, text in enumerate(raw):
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError as exc:
                section.loader.fail(f"{section.key('exceptions')}[{i}]", f"expected an address range, {exc}")
        exceptions = tuple(networks)
    return AnvilLimits(**limits, rate_time_unit=unit, exceptions=exceptions)


def build_scenario(raw: dict, source: str, overrides: dict[str, Any], file: Path | None = None) -> Scenario:
    """Validate already-parsed TOML data (the part of :func:`load_scenario` after reading).

    Order: overrides (parameters and dotted keys), then ``${name}`` substitution
    (:mod:`.params`), then validation.
    """
    check_depth(raw, source)
    data = copy.deepcopy(raw)
    loader = Loader(source, set())
    try:
        declared = check_params(data["params"]) if "params" in data else {}
    except ParamError as exc:
        loader.fail(exc.key, exc.message)
    values, dotted = split_overrides(overrides, declared, source)
    loader.overridden = (apply_overrides(data, dotted, source, {**declared, **values})
                         | {f"params.{name}" for name in values})
    for key, value in dotted.items():
        check_depth(value, _one_line(f"{source} (--set {key})"), _SHORTCUTS.get(key, key))
    try:
        resolution = substitute(data, {**declared, **values})
    except ParamError as exc:
        loader.fail(exc.key, exc.message)
    loader.uses = resolution.uses
    data = resolution.data
    top = Section(loader, "", data, _TOP)

    head = top.table("scenario", _SCENARIO)
    name = head.string("name")
    horizon = head.duration("horizon")
    seed = head.integer("seed", 0)
    # A bin is also the step at which the end of the run is noticed: a tiny one stalls the
    # clock, a huge one keeps the mail queue and the operator running long after the horizon.
    bin_width = head.duration("bin", "5m", minimum=MIN_PERIOD_S, maximum=MAX_BIN_S)

    origins_raw = top.raw("origins")
    if not isinstance(origins_raw, dict) or not origins_raw:
        loader.fail("origins", "expected at least one [origins.NAME] table")
    origins = {}
    for index, origin_name in enumerate(origins_raw):
        origins[origin_name] = _origin(top.table("origins", tuple(origins_raw)), origin_name, index)

    populations_raw = top.raw("populations")
    if not isinstance(populations_raw, list) or not populations_raw:
        loader.fail("populations", "expected at least one [[populations]] table")
    populations: list[Population] = []
    for index, entry in enumerate(populations_raw):
        populations.append(_population(loader, index, entry, origins, populations))
    _check_accounts(loader, populations)

    mta_section = top.table("mta", _MTA, {})
    mta = MTA(
        process_limit=mta_section.integer("process_limit", 100, minimum=1),
        backlog=mta_section.integer("backlog", 100, minimum=0),
        reply_time=mta_section.duration("reply_time", "2ms", positive=False),
        soft_error_limit=mta_section.integer("soft_error_limit", 10, minimum=1),
        hard_error_limit=mta_section.integer("hard_error_limit", 20, minimum=1),
        error_sleep_time=_whole_seconds(mta_section, "error_sleep_time", "1s"),
        anvil=_anvil(mta_section.table("anvil", _ANVIL, {})),
    )

    _check_bot_cycles(loader, populations, origins, mta)

    policies_raw = top.raw("policies")
    if not isinstance(policies_raw, dict) or not policies_raw:
        loader.fail("policies", "expected at least one [policies.NAME] table")
    policies = {}
    for policy_name in policies_raw:
        if not _NAME.match(policy_name):
            loader.fail(f"policies.{policy_name}", "policy names use letters, digits, '-' and '_'")
        policies[policy_name] = _policy(loader, Section(loader, f"policies.{policy_name}", policies_raw[policy_name], _POLICY), policy_name)
    default_policy = head.string("default_policy", next(iter(policies)))
    if default_policy not in policies:
        loader.fail("scenario.default_policy", f"no policy named {default_policy!r} (have: {', '.join(policies)}){_hint(default_policy, policies)}")

    queue, destinations, reputation, operator = _behind_the_front_end(loader, top)
    trace = _trace(loader, top, populations, file, queue is not None)
    if trace is not None:  # the resolved data names the tables by content, so cached runs follow them
        resolution.raw["trace"] = {**resolution.raw["trace"], "tables": str(trace.tables.resolve()),
                                   "sha256": trace.digest}

    return Scenario(
        name=name,
        description=head.string("description", ""),
        horizon=horizon,
        seed=seed,
        default_policy=default_policy,
        bin=bin_width,
        origins=origins,
        populations=tuple(populations),
        mta=mta,
        policies=policies,
        queue=queue,
        destinations=destinations,
        reputation=reputation,
        operator=operator,
        trace=trace,
        source=file,
        raw=resolution.raw,
        label=source,
        params=resolution.params,
    )


def _trace(loader: Loader, top: Section, populations: list[Population], file: Path | None,
           has_queue: bool) -> TraceSpec | None:
    """``[trace]``: a parsed maillog whose submissions replace a user and a bot population."""
    if not top.has("trace"):
        return None
    section = top.table("trace", _TRACE)
    if has_queue:
        loader.fail("trace", "a replayed maillog covers the front end only: remove [queue] (and [[destinations]], "
                    "[reputation], [operator]) from a scenario with [trace]")
    folder = Path(section.string("tables"))
    if not folder.is_absolute() and file is not None:
        folder = Path(file).parent / folder
    missing = [name for name in TRACE_FILES if not (folder / name).is_file()]
    if missing:
        loader.fail(section.key("tables"), f"{folder} is not a folder of parsed maillog tables (missing "
                    f"{', '.join(missing)}; make one with: simsub maillog parse LOG... --out {folder})")
    by_name = {p.name: p for p in populations}
    chosen = {}
    for key, kind in (("users", "user"), ("bots", "bot")):
        name = section.string(key) if section.has(key) else None
        if name is not None and (name not in by_name or by_name[name].kind != kind):
            have = [p.name for p in populations if p.kind == kind]
            loader.fail(section.key(key), f"no {kind} population named {name!r} (have: {', '.join(have) or 'none'})")
        chosen[key] = name
    if chosen["users"] is None and chosen["bots"] is None:
        loader.fail("trace", "name the population the logged mail replaces: users = \"NAME\" and/or bots = \"NAME\"")
    flagged = section.raw("flagged", [])
    if not isinstance(flagged, list) or not all(isinstance(a, str) and a for a in flagged):
        loader.fail(section.key("flagged"), "expected a list of logins, e.g. [\"alice\", \"bob\"]")
    if flagged and chosen["bots"] is None:
        loader.fail(section.key("flagged"), "flagged logins replay as bots: name the bot population (bots = \"NAME\")")
    digest = hashlib.sha256()
    for name in TRACE_FILES:
        digest.update(name.encode())
        digest.update((folder / name).read_bytes())
    stated = section.string("sha256") if section.has("sha256") else None
    if stated is not None and stated != digest.hexdigest():
        loader.fail(section.key("sha256"), f"the tables in {folder} changed since this scenario was written "
                    "(their sha256 differs); remove the key to accept the new tables")
    return TraceSpec(folder, chosen["users"], chosen["bots"], frozenset(flagged), digest.hexdigest())


def _origin(origins: Section, name: str, index: int) -> Origin:
    section = origins.table(name, _ORIGIN)
    hostname = section.string("hostname")
    if not _HOSTNAME.match(hostname) or re.sub(r"\{n\}", "", hostname).count("{") or re.sub(r"\{n\}", "", hostname).count("}"):
        section.loader.fail(section.key("hostname"), f"expected a hostname pattern such as 'p{{n}}.example.ne.jp' or 'unknown', got {hostname!r}")
    network_text = section.string("network", f"10.{index % 256}.0.0/16")
    try:
        network = ipaddress.ip_network(network_text, strict=False)
    except ValueError as exc:
        section.loader.fail(section.key("network"), f"expected an address range such as '192.0.2.0/24': {exc}")
    return Origin(
        name=name,
        hostname=hostname,
        rtt=section.distribution("rtt", "duration"),
        mynetworks=section.boolean("mynetworks", False),
        network=network,
    )


def _population(loader: Loader, index: int, entry: Any, origins: dict, previous: list[Population]) -> Population:
    prefix = f"populations[{index}]"
    if isinstance(entry, dict) and isinstance(entry.get("name"), str):
        prefix = f"populations.{entry['name']}"
    kind = entry.get("kind") if isinstance(entry, dict) else None
    # Until kind is known to be valid, accept the keys of both kinds so that the
    # error below is about kind itself.
    extra = _POPULATION_USER if kind == "user" else _POPULATION_BOT if kind == "bot" else _POPULATION_USER + _POPULATION_BOT
    section = Section(loader, prefix, entry, _POPULATION_COMMON + extra)
    name = section.string("name")
    if not _NAME.match(name):
        loader.fail(section.key("name"), "population names use letters, digits, '-' and '_'")
    if any(p.name == name for p in previous):
        loader.fail(section.key("name"), f"population name {name!r} is used twice")
    kind = section.string("kind", choices=("user", "bot"))
    shares_raw = section.raw("origins")
    if not isinstance(shares_raw, dict) or not shares_raw:
        loader.fail(section.key("origins"), "expected a table of origin shares, e.g. { own = 0.8, unknown = 0.2 }")
    shares = {}
    for origin_name, share in shares_raw.items():
        key = f"{section.key('origins')}.{origin_name}"
        if origin_name not in origins:
            loader.fail(key, f"no origin named {origin_name!r} (have: {', '.join(origins)}){_hint(origin_name, origins)}")
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not _finite(share) or share < 0:
            loader.fail(key, f"expected a share between 0 and 1, got {_show(share)}")
        shares[origin_name] = float(share)
    total = sum(shares.values())
    if abs(total - 1.0) > 1e-9:
        loader.fail(section.key("origins"), f"shares must sum to 1, they sum to {total:g}")
    common = dict(
        name=name,
        kind=kind,
        count=section.integer("count", minimum=1),
        origins=shares,
        recipients=section.distribution("recipients", "count", 1),
        patience=section.distribution("patience", "duration", "60s" if kind == "user" else _MISSING, positive=True),
        connect_timeout=section.distribution("connect_timeout", "duration", positive=True) if section.has("connect_timeout") else None,
        on_timeout=section.string("on_timeout", "disconnect", choices=("disconnect", "talk")),
    )
    if kind == "user":
        diurnal = None
        if section.has("diurnal"):
            weights = section.raw("diurnal")
            if (not isinstance(weights, list) or len(weights) != 24
                    or any(isinstance(w, bool) or not isinstance(w, (int, float)) or not _finite(w) or w < 0 for w in weights)
                    or sum(weights) <= 0 or not _finite(sum(weights))):
                loader.fail(section.key("diurnal"), "expected 24 finite, non-negative hourly weights, not all zero")
            mean = sum(weights) / 24
            diurnal = tuple(float(w) / mean for w in weights)
        return Population(
            **common,
            messages_per_day=section.number("messages_per_day", minimum=0, exclusive=True),
            diurnal=diurnal,
            retries=section.integer("retries", population_default("retries"), minimum=0),
            retry_interval=section.duration("retry_interval", population_default("retry_interval")),
        )
    start = section.duration("start", population_default("start"), positive=False)
    stop = section.duration("stop") if section.has("stop") else None
    if stop is not None and stop <= start:
        loader.fail(section.key("stop"), f"must be later than start ({start:g} s)")
    pause = section.distribution("pause", "duration", population_default("pause"))
    return Population(
        **common,
        start=start,
        stop=stop,
        accounts=section.integer("accounts", minimum=1),
        accounts_from=section.string("accounts_from") if section.has("accounts_from") else None,
        parallel=section.integer("parallel", population_default("parallel"), minimum=1),
        pause=pause,
        ramp=section.duration("ramp", population_default("ramp"), positive=False),
        forged_sender=section.number("forged_sender", population_default("forged_sender"), maximum=1.0),
    )


def _check_accounts(loader: Loader, populations: list[Population]) -> None:
    users = {p.name: p for p in populations if p.kind == "user"}
    for p in populations:
        if p.accounts_from is None:
            continue
        key = f"populations.{p.name}.accounts_from"
        if p.accounts_from not in users:
            loader.fail(key, f"no user population named {p.accounts_from!r} (have: {', '.join(users) or 'none'}){_hint(p.accounts_from, users)}")
        if users[p.accounts_from].count < p.accounts:
            loader.fail(key, f"{p.accounts_from!r} has {users[p.accounts_from].count} users, fewer than the {p.accounts} accounts to steal")


#: Shortest mean bot cycle (pause plus a session's replies) accepted; the resource guard
#: (simsub.estimate) assumes at least this much.  A bot whose sessions and pauses take no
#: simulated time would start sessions forever at one instant.
MIN_BOT_CYCLE_S = 0.001
#: Replies in the shortest bot session: banner, EHLO, AUTH, MAIL, RCPT, DATA, end of data, QUIT.
_REPLIES_PER_SESSION = 8


def _check_bot_cycles(loader: Loader, populations: list[Population], origins: dict, mta: MTA) -> None:
    for p in populations:
        if not p.is_bot:
            continue
        rtt = min(origins[name].rtt.mean for name, share in p.origins.items() if share > 0)
        cycle = p.pause.mean + _REPLIES_PER_SESSION * (rtt + mta.reply_time)
        if cycle < MIN_BOT_CYCLE_S:
            loader.fail(f"populations.{p.name}.pause",
                        f"a bot session plus its pause would take {cycle:g} s of simulated time (pause, round "
                        f"trips and mta.reply_time all about 0), so the bots would start sessions without end; "
                        f"give pause, the origins' rtt or mta.reply_time a value (at least "
                        f"{format_duration(MIN_BOT_CYCLE_S)} in all)")


def _policy(loader: Loader, section: Section, name: str):
    delay_reject = section.boolean("smtpd_delay_reject", True)
    lists = {}
    for key in LIST_KEYS:
        if section.has(key):
            value = section.raw(key)
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                loader.fail(section.key(key), f"expected a list of restriction strings, got {_show(value)}")
            lists[key] = value
    maps_raw = section.raw("maps", {})
    if not isinstance(maps_raw, dict) or not all(isinstance(v, str) for v in maps_raw.values()):
        loader.fail(section.key("maps"), "expected a table of map texts, e.g. tarpit = '''/./ sleep 5'''")
    services = {}
    services_raw = section.raw("services", {})
    if not isinstance(services_raw, dict):
        loader.fail(section.key("services"), f"expected a table of services, got {_show(services_raw)}")
    for service_name, body in services_raw.items():
        where = f"{section.key('services')}.{service_name}"
        kind = Section(loader, where, body, _SERVICE + _DISTINCT_SERVICE).string("type", choices=("ratelimit", "distinct"))
        if kind == "distinct":
            s = Section(loader, where, body, _DISTINCT_SERVICE)
            s.string("key", "sasl_username", choices=("sasl_username",))
            limit = s.number("limit", minimum=1)
            if limit != int(limit):
                loader.fail(s.key("limit"), f"expected a whole number of distinct values, got {limit}")
            services[service_name] = DistinctSpec(
                name=service_name,
                distinct=s.string("distinct", "client_address", choices=DISTINCT),
                limit=int(limit),
                window=s.duration("window"),
                action=s.string("action", "DEFER", choices=ACTIONS),
            )
            continue
        services[service_name] = _ratelimit_service(loader, Section(loader, where, body, _SERVICE), service_name)
    try:
        return compile_policy(name, delay_reject, lists, dict(maps_raw), services)
    except PolicyConfigError as exc:
        loader.fail(section.key(exc.key), str(exc))


def _ratelimit_service(loader: Loader, s: Section, name: str) -> RateLimitSpec:
    algorithm = s.string("algorithm", "fixed", choices=tuple(ALGORITHMS))
    for option, owner in _ALGORITHM_ONLY.items():
        if s.has(option) and algorithm != owner:
            loader.fail(s.key(option), f"only algorithm {owner!r} has {option!r} (this service's algorithm is {algorithm!r})")
    limit = s.number("limit", minimum=0, exclusive=True)
    return RateLimitSpec(
        name=name,
        key=_service_key(loader, s),
        count=s.string("count", "messages", choices=COUNTS),
        limit=limit,
        window=s.duration("window", minimum=MIN_WINDOW_S),  # t // window must stay finite
        algorithm=algorithm,
        action=s.string("action", "DEFER", choices=ACTIONS),
        strict=s.boolean("strict", False),
        burst=s.number("burst", minimum=0, exclusive=True) if s.has("burst") else None,
        overrides=_overrides(loader, s),
    )


def _service_key(loader: Loader, s: Section) -> str | tuple[str, ...]:
    """``key``: one request attribute, or a list of them counted per combination."""
    value = s.raw("key", "sasl_username")
    if isinstance(value, str):
        return s.string("key", "sasl_username", choices=KEYS)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        loader.fail(s.key("key"), f"expected one of {', '.join(KEYS)} or a list of them, got {_show(value)}")
    for field in value:
        if field not in KEYS:
            loader.fail(s.key("key"), f"expected a list of {', '.join(KEYS)}, got {field!r}{_hint(field, KEYS)}")
    if len(set(value)) < len(value):
        loader.fail(s.key("key"), f"lists an attribute twice: {value}")
    return value[0] if len(value) == 1 else tuple(value)


def _overrides(loader: Loader, s: Section) -> tuple[tuple[str, float], ...]:
    """``overrides = { "listowner1" = 2000 }``: key values with their own limit."""
    table = s.raw("overrides", {})
    if not isinstance(table, dict):
        loader.fail(s.key("overrides"), f"expected a table of key value = limit, e.g. {{ \"listowner1\" = 2000 }}, got {_show(table)}")
    section = Section(loader, s.key("overrides"), table, tuple(table))
    result = []
    for value, limit in table.items():
        where = section.key(value)
        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not _finite(limit) or limit <= 0:
            loader.fail(where, f"expected a limit > 0 for this key value, got {_show(limit)}")
        result.append((value, float(limit)))
    return tuple(result)


# --------------------------------------------------------------------------- behind the front end
_QUEUE = ("active_limit", "delivery_agents", "destination_concurrency", "recipients_per_request",
          "minimal_backoff", "maximal_backoff", "queue_run_delay", "maximal_queue_lifetime",
          "bounce_queue_lifetime", "double_bounce", "initial_concurrency", "failed_cohort_limit",
          "skip_5xx_greeting")
_DESTINATION = ("legit_share", "spam_share", "delivery_time", "legit", "spam", "rate_limit", "lists", "description")
_OUTCOMES = ("defer", "reject")
_RATE_LIMIT = ("messages", "window")
_LIST = ("threshold", "window", "detection_delay", "action", "stage", "expiry", "delist_delay", "description")
_OPERATOR = ("rule", "threshold", "window", "check_interval", "reaction_delay", "reset_accounts",
             "suspicious_volume", "mistake", "purge", "request_delisting", "description")


def _behind_the_front_end(loader: Loader, top: Section):
    """[queue], [destinations.*], [reputation.*], [operator]: all or nothing.

    Without destinations accepted mail is not followed further; a queue,
    reputation lists or an operator then make no sense and are errors.
    """
    if not top.has("destinations"):
        for key in ("queue", "reputation", "operator"):
            if top.has(key):
                loader.fail(key, "needs [destinations.NAME] tables: without destinations accepted mail is not delivered")
        return None, (), {}, None
    q = top.table("queue", _QUEUE, {})
    defaults = QueueConfig()
    queue = QueueConfig(
        active_limit=q.integer("active_limit", defaults.active_limit, minimum=1),
        delivery_agents=q.integer("delivery_agents", defaults.delivery_agents, minimum=1),
        destination_concurrency=q.integer("destination_concurrency", defaults.destination_concurrency, minimum=1),
        recipients_per_request=q.integer("recipients_per_request", defaults.recipients_per_request, minimum=1),
        minimal_backoff=q.duration("minimal_backoff", defaults.minimal_backoff),
        maximal_backoff=q.duration("maximal_backoff", defaults.maximal_backoff),
        queue_run_delay=q.duration("queue_run_delay", defaults.queue_run_delay, minimum=MIN_PERIOD_S),
        maximal_queue_lifetime=q.duration("maximal_queue_lifetime", defaults.maximal_queue_lifetime),
        bounce_queue_lifetime=q.duration("bounce_queue_lifetime", defaults.bounce_queue_lifetime),
        double_bounce=q.string("double_bounce", defaults.double_bounce, choices=("drop", "postmaster")),
        initial_concurrency=q.integer("initial_concurrency", defaults.initial_concurrency, minimum=1),
        failed_cohort_limit=q.integer("failed_cohort_limit", defaults.failed_cohort_limit, minimum=0),
        skip_5xx_greeting=q.boolean("skip_5xx_greeting", defaults.skip_5xx_greeting),
    )
    if queue.maximal_backoff < queue.minimal_backoff:
        loader.fail("queue.maximal_backoff", f"must be >= minimal_backoff ({queue.minimal_backoff:g} s)")

    reputation = {}
    lists_raw = top.raw("reputation", {})
    if not isinstance(lists_raw, dict):
        loader.fail("reputation", f"expected [reputation.NAME] tables, got {_show(lists_raw)}")
    for list_name in lists_raw:
        if not _NAME.match(list_name):
            loader.fail(f"reputation.{list_name}", "list names use letters, digits, '-' and '_'")
        r = top.table("reputation", tuple(lists_raw)).table(list_name, _LIST)
        window = r.duration("window")
        if window < 60 or window % 60:
            loader.fail(r.key("window"), f"lists count spam per minute: expected whole minutes (at least 1m), got {window:g} s")
        reputation[list_name] = ReputationList(
            name=list_name,
            threshold=r.integer("threshold", minimum=1),
            window=window,
            detection_delay=r.duration("detection_delay", 0, positive=False),
            action=r.string("action", "reject", choices=("reject", "defer")),
            stage=r.string("stage", "rcpt", choices=("greeting", "rcpt", "data")),
            expiry=r.duration("expiry"),
            delist_delay=r.duration("delist_delay", 0, positive=False),
        )

    destinations_raw = top.raw("destinations")
    if not isinstance(destinations_raw, dict) or not destinations_raw:
        loader.fail("destinations", "expected at least one [destinations.NAME] table")
    section = top.table("destinations", tuple(destinations_raw))
    destinations = []
    for dest_name in destinations_raw:
        if not _NAME.match(dest_name):
            loader.fail(f"destinations.{dest_name}", "destination names use letters, digits, '-' and '_'")
        d = section.table(dest_name, _DESTINATION)
        lists = d.raw("lists", [])
        if not isinstance(lists, list) or not all(isinstance(x, str) for x in lists):
            loader.fail(d.key("lists"), f"expected a list of reputation list names, got {_show(lists)}")
        for list_name in lists:
            if list_name not in reputation:
                loader.fail(d.key("lists"), f"no reputation list named {list_name!r} (have: {', '.join(reputation) or 'none'}){_hint(list_name, reputation)}")
        rate_limit = None
        if d.has("rate_limit"):
            rl = d.table("rate_limit", _RATE_LIMIT)
            rate_limit = (rl.integer("messages", minimum=1), rl.duration("window", minimum=MIN_WINDOW_S))
        destinations.append(Destination(
            name=dest_name,
            legit_share=d.number("legit_share", 0.0, maximum=1.0),
            spam_share=d.number("spam_share", 0.0, maximum=1.0),
            delivery_time=d.distribution("delivery_time", "duration", "1s"),
            legit=_outcomes(d, "legit"),
            spam=_outcomes(d, "spam"),
            rate_limit=rate_limit,
            lists=tuple(lists),
        ))
    for kind in ("legit", "spam"):
        total = sum(getattr(dest, f"{kind}_share") for dest in destinations)
        if total == 0:
            loader.fail(f"destinations.*.{kind}_share", f"the destinations cover no {'legitimate' if kind == 'legit' else 'spam'} recipients: give some destination a {kind}_share > 0")
        if abs(total - 1.0) > 1e-9:
            loader.fail(f"destinations.*.{kind}_share", f"shares must sum to 1 over the destinations, they sum to {total:g}")
    for dest in destinations:
        if dest.legit_share == 0 and dest.spam_share == 0:
            loader.fail(f"destinations.{dest.name}", "this destination covers no recipients: give it a legit_share or a spam_share > 0")

    operator = None
    if top.has("operator"):
        o = top.table("operator", _OPERATOR)
        operator = OperatorConfig(
            rule=o.string("rule", choices=("queue_size", "bounces", "account_volume")),
            threshold=o.number("threshold", minimum=0, exclusive=True),
            window=o.duration("window", "1h"),
            check_interval=o.duration("check_interval", "5m", minimum=MIN_PERIOD_S),
            reaction_delay=o.duration("reaction_delay", "1h", positive=False),
            reset_accounts=o.integer("reset_accounts", 10, minimum=0),
            suspicious_volume=o.number("suspicious_volume", 500),
            mistake=o.number("mistake", 0.0, maximum=1.0),
            purge=o.boolean("purge", True),
            request_delisting=o.boolean("request_delisting", True),
        )
    return queue, tuple(destinations), reputation, operator


def _outcomes(d: Section, kind: str) -> Outcomes:
    table = d.table(kind, _OUTCOMES, {})
    defer = table.number("defer", 0.0, maximum=1.0)
    reject = table.number("reject", 0.0, maximum=1.0)
    if defer + reject > 1.0 + 1e-12:
        d.loader.fail(table.key("reject"), f"defer + reject must be <= 1 (accept is the rest), got {defer + reject:g}")
    return Outcomes(defer, reject)
