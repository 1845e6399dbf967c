"""Reading a scenario file: bytes → UTF-8 → TOML data, each failure one clear error."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from importlib import resources

from ..errors import ScenarioError

DEFAULT_SCENARIO = "may-2012.toml"


def default_scenario_path() -> Path:
    """The built-in default scenario, from the installed package or the checkout."""
    packaged = resources.files("simsub").joinpath("scenarios", DEFAULT_SCENARIO)
    if packaged.is_file():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parents[2] / "scenarios" / DEFAULT_SCENARIO
    return checkout


def read_scenario_file(path: str | Path | None) -> tuple[dict, str]:
    """``(parsed TOML data, label)`` of ``path`` (None: the built-in default).

    The label is how errors name the file: the path as given, or
    ``may-2012.toml (built-in)``.  Nothing is validated beyond TOML syntax.
    """
    file = Path(path) if path is not None else default_scenario_path()
    source = one_line(str(path)) if path is not None else f"{DEFAULT_SCENARIO} (built-in)"
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise ScenarioError(source, None, "no such file") from None
    except IsADirectoryError:
        raise ScenarioError(source, None, "is a directory, expected a .toml scenario file") from None
    except OSError as exc:
        raise ScenarioError(source, None, f"cannot read: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ScenarioError(source, f"line {line}", "is not valid UTF-8 text") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        where = f"line {match.group(1)}, column {match.group(2)}" if match else None
        reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise ScenarioError(source, where, f"TOML syntax error: {reason}") from None
    except RecursionError:
        raise ScenarioError(source, None, "TOML nesting is too deep") from None
    check_depth(raw, source)
    return raw, source


#: Tables and arrays nested deeper than this are refused: no scenario key needs more than a
#: handful of levels, and the loader (copying, substituting, validating) walks them recursively.
MAX_DEPTH = 64


def check_depth(data: Any, source: str, prefix: str = "") -> None:
    """Refuse ``data`` if its tables and arrays nest more than :data:`MAX_DEPTH` levels deep,
    naming the first few keys of the path (checked without recursion)."""
    stack: list[tuple[Any, tuple, int]] = [(data, (), 0)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, dict):
            children = node.items()
        elif isinstance(node, list):
            children = enumerate(node)
        else:
            continue
        if depth > MAX_DEPTH:
            key = _dotted(((prefix,) if prefix else ()) + path[:4])
            raise ScenarioError(source, f"{key}…", f"tables or arrays nested more than {MAX_DEPTH} levels deep")
        for key, value in children:
            if isinstance(value, (dict, list)):
                stack.append((value, path + (key,), depth + 1))


def _dotted(path: tuple) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return one_line(text)


#: Characters that end a line for some reader: C0 and C1 controls (NEL, U+0085, included) and the
#: Unicode line and paragraph separators (str.splitlines breaks at all of them).
_BREAKS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    """``text`` with every line-breaking or control character escaped (``\\n``, ``\\x85``), so that
    an error naming a key or file with such characters stays one line."""
    return _BREAKS.sub(lambda m: repr(m.group())[1:-1], text)
