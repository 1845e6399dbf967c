"""Write a :class:`~simsub.maillog.calibrate.Calibration` as a commented scenario TOML file.

Every fitted key gets the evidence it came from as a comment line above it,
so the file explains itself the way the shipped scenarios do.  Values are
rendered by hand (tomli_w writes no comments).  :func:`write_calibration`
saves the scenario and its flagged-account table atomically, after loading
the scenario back to check it.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ScenarioError
from ..scenario import load_scenario
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


def flagged_path(out: Path) -> Path:
    """SCENARIO.toml -> SCENARIO.flagged.csv (next to it)."""
    out = Path(out)
    stem = out.name[:-5] if out.name.endswith(".toml") else out.name
    return out.with_name(stem + ".flagged.csv")


def write_calibration(calibration, out: Path) -> tuple[Path, Path]:
    """Write the scenario and its flagged-account table atomically; check the scenario loads first.

    Both files are written to hidden temporary siblings, the scenario is
    loaded and validated from there, and only then are both renamed into
    place (the table first, so a complete scenario never sits next to a
    missing or stale table)."""
    out = Path(out)
    table = flagged_path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ScenarioError("--out", str(out), f"cannot create its folder: {exc.strerror}") from None
    if not os.access(out.parent, os.W_OK):
        raise ScenarioError("--out", str(out), f"cannot write in {out.parent}")
    staged = []
    try:
        for target, write in ((table, lambda f: calibration.flagged.to_csv(f, index=False)),
                              (out, lambda f: f.write(scenario_toml(calibration)))):
            handle = tempfile.NamedTemporaryFile("w", dir=out.parent, prefix=f".{target.name}.partial-",
                                                 suffix=".toml" if target == out else ".csv", delete=False,
                                                 encoding="utf-8", newline="")
            staged.append((handle.name, target))
            with handle:
                write(handle)
        try:
            load_scenario(staged[1][0])
        except ScenarioError as exc:  # a bug of calibrate, not of the input: say so plainly
            raise RuntimeError(f"the fitted scenario does not load ({exc}); please report this") from None
        for name, target in staged:
            os.chmod(name, 0o666 & ~_umask())
            os.replace(name, target)
        staged = []
    finally:
        for name, _ in staged:
            Path(name).unlink(missing_ok=True)
    return out, table


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
