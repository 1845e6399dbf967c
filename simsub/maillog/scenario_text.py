"""Write a :class:`~simsub.maillog.calibrate.Calibration` as a commented scenario TOML file.

Every fitted key gets the evidence it came from as a comment line above it,
so the file explains itself the way the shipped scenarios do.  Values are
rendered by hand (tomli_w writes no comments); the result is checked by
parsing it back in the tests and by ``simsub calibrate`` before it is saved.
"""

from __future__ import annotations

import json
import math
import re
import textwrap
from typing import Any

import numpy as np

from .calibrate import Calibration, Section

WIDTH = 100
_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def scenario_toml(calibration: Calibration) -> str:
    """The scenario as TOML text, with comments (loads with :func:`simsub.load_scenario`)."""
    out: list[str] = []
    out += _comment(calibration.header, "")
    out.append("")
    out += _table("scenario", calibration.scenario)
    out.append("# " + "-" * 69 + " origins")
    for name, section in calibration.origins.items():
        out += _table(f"origins.{_key(name)}", section)
    out.append("# " + "-" * 65 + " populations")
    for section in calibration.populations:
        out += _table("populations", section, array=True)
    out.append("# " + "-" * 73 + " MTA")
    out += _table("mta", calibration.mta)
    out.append("# " + "-" * 68 + " policies")
    for name, section in calibration.policies.items():
        out += _table(f"policies.{_key(name)}", section)
    return "\n".join(out).rstrip() + "\n"


def _table(name: str, section: Section, array: bool = False) -> list[str]:
    lines = _comment(section.header, "")
    lines.append(f"[[{name}]]" if array else f"[{name}]")
    subtables = []
    for key, value in section.values.items():
        if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            subtables.append((key, value))
            continue
        lines += _comment([section.comments[key]], "") if key in section.comments else []
        lines.append(f"{_key(key)} = {_value(value, len(_key(key)) + 3)}")
    lines.append("")
    for key, tables in subtables:
        for sub, values in tables.items():
            lines += _table(f"{name}.{_key(key)}.{_key(sub)}", Section(values))
    return lines


def _comment(paragraphs: list[str], indent: str) -> list[str]:
    lines = []
    for text in paragraphs:
        lines += textwrap.wrap(text, WIDTH - 2 - len(indent), initial_indent=indent + "# ",
                               subsequent_indent=indent + "# ", break_on_hyphens=False) or [indent + "#"]
    return lines


def _key(key: str) -> str:
    return key if _BARE.match(key) else json.dumps(key, ensure_ascii=False)


def _value(value: Any, column: int = 0) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write {value!r} to a scenario")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, (list, tuple)):
        items = [_value(v) for v in value]
        one_line = "[" + ", ".join(items) + "]"
        if column + len(one_line) <= WIDTH:
            return one_line
        return _wrapped(items, column)
    if isinstance(value, dict):
        inner = ", ".join(f"{_key(k)} = {_value(v, column)}" for k, v in value.items())
        if "\n" not in inner and column + len(inner) + 4 > WIDTH:
            # a long array inside: let it span lines (valid inside an inline table's value)
            parts = []
            for k, v in value.items():
                text = _value(v, 0)
                if isinstance(v, (list, tuple)) and len(text) > WIDTH // 2:
                    text = _wrapped([_value(x) for x in v], 4)
                parts.append(f"{_key(k)} = {text}")
            inner = ", ".join(parts)
        return "{ " + inner + " }"
    raise TypeError(f"cannot write a {type(value).__name__} to a scenario")


def _wrapped(items: list[str], column: int) -> str:
    """A multi-line array: as many items per line as fit in WIDTH."""
    lines, line = [], ""
    for item in items:
        piece = item + ","
        if line and len(line) + 1 + len(piece) + 4 > WIDTH:
            lines.append(line)
            line = piece
        else:
            line = f"{line} {piece}" if line else piece
    lines.append(line)
    return "[\n" + "\n".join("    " + text for text in lines) + "\n]"
