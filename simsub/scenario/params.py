"""Scenario parameters: a ``[params]`` table of defaults, ``${name}`` in string values.

A scenario file may declare

.. code-block:: toml

    [params]
    bots = 100
    foreign_sleep = 5

and refer to a parameter in any string value of the file (not in keys), at any
depth, in arrays and arrays of tables too:

* a string that is exactly one reference, ``count = "${bots}"``, becomes the
  parameter's value with its type (here the integer 100);
* a reference inside a longer string is replaced by the value's text
  (:func:`param_text`): ``"/./ sleep ${foreign_sleep}"`` → ``"/./ sleep 5"``;
* ``$${`` is a literal ``${``; a ``$`` not followed by ``{`` is left alone
  (pcre maps anchor with ``$``);
* parameter values are taken literally: they cannot refer to other parameters.

The loader applies ``--set`` overrides first (``NAME=VALUE`` or
``params.NAME=VALUE`` set a parameter), then substitutes, then validates.
Errors here are :class:`ParamError` (a dotted key and a message); the loader
turns them into :class:`~simsub.errors.ScenarioError` naming the file.
"""

from __future__ import annotations

import difflib
import numbers
import re
from dataclasses import dataclass, field
from typing import Any, Union

from ..errors import ScenarioError

Value = Union[bool, int, float, str]

PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Names that would make ``--set NAME=VALUE`` ambiguous: the shortcuts and the top-level tables.
RESERVED = {
    "horizon": "--set horizon=… already means scenario.horizon",
    "seed": "--set seed=… already means scenario.seed",
}
# The loader's top-level tables (``loader._TOP``; a test keeps the two equal).
_TOP_TABLES = ("scenario", "origins", "populations", "mta", "policies", "queue", "destinations", "reputation",
               "operator", "trace", "params")
ESCAPE_HINT = "write $${ for a literal ${"


class ParamError(ValueError):
    """A problem with a parameter or a reference; ``key`` is the dotted key where it is."""

    def __init__(self, key: str, message: str):
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}")


@dataclass
class Resolution:
    """The outcome of :func:`substitute`.

    ``data``: the scenario with every reference replaced and every ``$${``
    turned into ``${`` (what is validated); ``raw``: the same for writing back
    as TOML (literal ``${`` escaped again as ``$${``, ``[params]`` holding
    ``params``), so loading it again gives the same scenario; ``params``: the
    values used; ``uses``: parameter name → dotted keys that refer to it.
    """

    data: dict
    raw: dict
    params: dict[str, Value]
    uses: dict[str, list[str]] = field(default_factory=dict)


# --------------------------------------------------------------------------- values
def param_text(value: Value) -> str:
    """The text a value takes inside a longer string.

    Integers as written (``5``); floats with a whole value without the ``.0``
    (``3.0`` → ``3``, so ``sleep ${s}`` stays a valid Postfix sleep) and others
    as Python's shortest round-trip form (``0.25``, ``1e-07``); booleans as
    TOML writes them (``true``, ``false``); strings as they are.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return value


def check_value(key: str, value: Any) -> Value:
    """A parameter value as a plain ``bool``, ``int``, ``float`` or ``str`` (numpy scalars
    are converted), else :class:`ParamError` at ``key``."""
    if isinstance(value, bool):
        return value
    if type(value).__name__ == "bool_":  # numpy.bool_
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, str):
        return str(value)
    raise ParamError(key, f"expected a number, a string or a boolean, got {_show(value)}")


def check_params(table: Any) -> dict[str, Value]:
    """Validate a ``[params]`` table; returns the declared names and values."""
    if not isinstance(table, dict):
        raise ParamError("params", f"expected a table of parameters, e.g. [params] bots = 100; got {_show(table)}")
    values = {}
    for name, value in table.items():
        key = f"params.{name}"
        if not PARAM_NAME.match(name):
            raise ParamError(key, "parameter names use letters, digits and '_' and do not start with a digit")
        if name in RESERVED or name in _TOP_TABLES:
            why = RESERVED.get(name, f"--set {name}=… sets the [{name}] table")
            raise ParamError(key, f"{name!r} is reserved ({why}); choose another name")
        values[name] = check_value(key, value)
    return values


def declared_params(raw: dict, source: str = "<scenario>") -> dict[str, Value]:
    """The parameters a parsed scenario declares, with their default values (``{}`` without
    ``[params]``).  A bad ``[params]`` table raises :class:`ScenarioError` naming ``source``."""
    if "params" not in raw:
        return {}
    try:
        return check_params(raw["params"])
    except ParamError as exc:
        raise ScenarioError(source, exc.key, exc.message) from None


def resolve_params(raw: dict, values: dict[str, Any] | None = None, source: str = "<scenario>") -> Resolution:
    """Substitute the parameters of a parsed scenario, with ``values`` replacing some
    defaults (names must be declared).  No other validation: that is the loader's job."""
    try:
        params = check_params(raw["params"]) if "params" in raw else {}
        for name, value in (values or {}).items():
            if name not in params:
                raise ParamError(f"params.{name}", undeclared(name, params))
            params[name] = check_value(f"params.{name}", value)
        return substitute(raw, params)
    except ParamError as exc:
        raise ScenarioError(source, exc.key, exc.message) from None


def undeclared(name: str, params: dict, overriding: bool = False, also: str = "") -> str:
    """Why ``name`` is not a parameter, naming the declared ones (and the closest);
    ``also`` is added inside the parentheses."""
    if not params:
        why = also if overriding else ESCAPE_HINT
        return f"no parameter named {name!r}: the scenario has no [params] table{f' ({why})' if why else ''}"
    also = f"; {also}" if also else ""
    return f"no parameter named {name!r} (declared in [params]: {', '.join(params)}{also}){_hint(name, params)}"


# --------------------------------------------------------------------------- substitution
def substitute(data: dict, params: dict[str, Value]) -> Resolution:
    """Replace the references in every string value of ``data`` (not in ``[params]``)."""
    uses: dict[str, list[str]] = {}
    resolved: dict = {}
    raw: dict = {}
    for key, value in data.items():
        if key == "params":
            resolved[key], raw[key] = dict(params), dict(params)
        else:
            resolved[key] = _walk(value, key, params, uses)
            raw[key] = _escape_all(resolved[key])
    return Resolution(data=resolved, raw=raw, params=dict(params), uses=uses)


def _walk(value: Any, key: str, params: dict, uses: dict) -> Any:
    if isinstance(value, str):
        return substitute_text(value, key, params, uses)
    if isinstance(value, dict):
        return {k: _walk(v, f"{key}.{k}", params, uses) for k, v in value.items()}
    if isinstance(value, list):
        out = []
        for index, item in enumerate(value):
            item_key = f"{key}[{index}]"
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                # Arrays of tables are named by their ``name`` (as the loader and --set do).
                name = substitute_text(item["name"], f"{item_key}.name", params)
                if isinstance(name, str):
                    item_key = f"{key}.{name}"
            out.append(_walk(item, item_key, params, uses))
        return out
    return value


def substitute_text(text: str, key: str, params: dict[str, Value], uses: dict | None = None) -> Any:
    """``text`` with its references replaced; a lone reference gives the typed value."""
    if "$" not in text:
        return text
    pieces: list[str] = []
    lone: Value | None = None
    i = 0
    while True:
        j = text.find("${", i)
        if j < 0:
            pieces.append(text[i:])
            break
        if j > i and text[j - 1] == "$":  # $${ → a literal ${
            pieces.append(text[i:j - 1] + "${")
            i = j + 2
            continue
        pieces.append(text[i:j])
        end = text.find("}", j + 2)
        where = f"line {text.count(chr(10), 0, j) + 1}: " if "\n" in text else ""
        if end < 0:
            shown = _clip(text[j:], 24)
            raise ParamError(key, f"{where}reference {shown!r} has no closing '}}': expected ${{NAME}} ({ESCAPE_HINT})")
        name = text[j + 2:end]
        if not PARAM_NAME.match(name):
            raise ParamError(key, f"{where}malformed reference {_clip(text[j:end + 1], 40)!r}: expected ${{NAME}} with a "
                                  f"name of letters, digits and '_' not starting with a digit ({ESCAPE_HINT})")
        if name not in params:
            raise ParamError(key, f"{where}{undeclared(name, params)}")
        if uses is not None and key not in uses.setdefault(name, []):
            uses[name].append(key)
        value = params[name]
        if j == 0 and end == len(text) - 1:
            lone = value
        pieces.append(param_text(value))
        i = end + 1
    if lone is not None:
        return lone
    return "".join(pieces)


def escape(text: str) -> str:
    """The inverse of substitution without references: ``${`` → ``$${``."""
    return text.replace("${", "$${")


def _escape_all(value: Any) -> Any:
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, dict):
        return {k: _escape_all(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escape_all(v) for v in value]
    return value


# --------------------------------------------------------------------------- helpers
def _hint(word: str, choices) -> str:
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _clip(text: str, length: int) -> str:
    return text if len(text) <= length else text[:length] + "…"


def _show(value: Any) -> str:
    text = repr(value)
    kind = type(value).__name__
    kind = {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "dict": "table",
            "list": "array"}.get(kind, kind)
    return f"{kind} {text[:60]}{'…' if len(text) > 60 else ''}"
