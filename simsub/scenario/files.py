"""Reading a scenario file: bytes → UTF-8 → TOML data, each failure one clear error."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

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
    source = str(path) if path is not None else f"{DEFAULT_SCENARIO} (built-in)"
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
    return raw, source
