"""What the commands share: the argument parser that exits 2 with one line, option
types, the scenario arguments, and loading a scenario from the parsed options."""

from __future__ import annotations

import argparse
import shlex

from ..scenario import DEFAULT_SCENARIO, load_scenario, parse_overrides
from ..units import parse_duration


class ArgumentError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message):  # exit 2 with one line, like scenario errors
        command = self.prog.removeprefix("simsub").strip()
        raise ArgumentError(f"{command + ': ' if command else ''}{message}")


def scenario_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", nargs="?", metavar="SCENARIO",
                        help=f"scenario TOML file (default: the built-in {DEFAULT_SCENARIO})")
    parser.add_argument("--set", metavar="KEY=VALUE", action="append", dest="overrides", default=[],
                        help="override a scenario key, e.g. mta.process_limit=50 or populations.botnet.count=10 "
                        "(repeatable)")


def budget_arguments(parser: argparse.ArgumentParser) -> None:
    from ..estimate import DEFAULT_MAX_EVENTS

    parser.add_argument("--max-events", metavar="N", type=positive_whole_number, default=DEFAULT_MAX_EVENTS,
                        help=f"refuse a run estimated beyond N simulated events or half the machine's memory "
                        f"(default {DEFAULT_MAX_EVENTS:.0e}: about two hours)")
    parser.add_argument("--force", action="store_true", help="run even beyond --max-events and the memory guard")


def policy_names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected policy names separated by commas, got {text!r}")
    return names


def positive_whole_number(text: str) -> int:
    value = whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def whole_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def confidence_level(text: str) -> float:
    """0.9 or 90% -> 0.9; strictly between 0 and 1."""
    try:
        value = float(text.rstrip("%")) / (100.0 if text.endswith("%") else 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a level between 0 and 1, e.g. 0.95 or 95%, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a level between 0 and 1, e.g. 0.95 or 95%, got {text!r}")
    return value


def positive_duration(text: str) -> str:
    try:
        if parse_duration(text) <= 0:
            raise ValueError(f"expected a duration > 0, got {text!r}")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def non_negative_duration(text: str) -> float:
    """A duration >= 0 in seconds, e.g. ``12h``."""
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a duration >= 0, got {text!r}")
    return value


def positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def load_scenario_from(args):
    """The scenario named by the parsed options, with --set and --horizon applied."""
    overrides = parse_overrides(args.overrides)
    if getattr(args, "horizon", None):
        overrides["scenario.horizon"] = args.horizon
    return load_scenario(args.scenario, overrides)


def command_line(args) -> str:
    """The command as typed (for reports and summary.json: it reproduces the result)."""
    return "simsub " + " ".join(shlex.quote(a) for a in args.argv)


