"""Postfix ``pcre:`` access tables (pcre_table(5)) as far as simsub needs them.

Each line is ``/regex/flags result``; ``!/regex/`` negates the match; lines
starting with whitespace continue the previous line; ``#`` starts a comment.
Postfix matches case-insensitively unless the ``i`` flag toggles it off, and
the **first matching line wins**.  Python's ``re`` stands in for PCRE; the
patterns used in access maps (anchors, classes, alternation) behave the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FLAG_BITS = {"m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}


def logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, text) of each rule: comments and blank lines dropped, lines
    that start with whitespace joined to the rule before them (a first line that
    starts with whitespace is a rule of its own)."""
    logical: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        if raw[0].isspace() and logical:
            start, previous = logical[-1]
            logical[-1] = (start, previous + " " + raw.strip())
        else:
            logical.append((number, raw.strip()))
    return logical


class MapSyntaxError(ValueError):
    """A malformed map line; ``line`` is 1-based within the map text."""

    def __init__(self, line: int, reason: str):
        self.line = line
        super().__init__(reason)


@dataclass(frozen=True)
class MapRule:
    pattern: re.Pattern[str]
    negate: bool
    result: str
    line: int

    def matches(self, query: str) -> bool:
        return (self.pattern.search(query) is not None) != self.negate


class PcreMap:
    """An ordered list of rules; :meth:`lookup` returns the first match's result."""

    def __init__(self, name: str, rules: list[MapRule]):
        self.name = name
        self.rules = rules

    @classmethod
    def parse(cls, name: str, text: str) -> "PcreMap":
        return cls(name, [_parse_rule(number, line) for number, line in logical_lines(text)])

    def lookup(self, query: str) -> str | None:
        for rule in self.rules:
            if rule.matches(query):
                return rule.result
        return None


def _parse_rule(number: int, line: str) -> MapRule:
    negate = line.startswith("!")
    body = line[1:] if negate else line
    if not body or body[0].isalnum() or body[0].isspace():
        raise MapSyntaxError(number, f"expected '/regex/ result', got {line!r}")
    delimiter = body[0]
    end = closing_delimiter(body, delimiter)
    if end < 0:
        raise MapSyntaxError(number, f"regex is not closed with {delimiter!r}: {line!r}")
    regex = body[1:end]
    rest = body[end + 1 :]
    flags_text = re.match(r"[A-Za-z]*", rest).group(0)
    result = rest[len(flags_text) :].strip()
    if not result:
        raise MapSyntaxError(number, f"no result after the regex: {line!r}")
    ignore_case = True  # pcre_table(5): matching is case-insensitive by default
    bits = 0
    for flag in flags_text:
        if flag == "i":
            ignore_case = not ignore_case
        elif flag in _FLAG_BITS:
            bits |= _FLAG_BITS[flag]
        else:
            raise MapSyntaxError(number, f"unsupported regex flag {flag!r} (use i, m, s or x)")
    if ignore_case:
        bits |= re.IGNORECASE
    try:
        pattern = re.compile(regex, bits)
    except re.error as exc:
        raise MapSyntaxError(number, f"invalid regex /{regex}/: {exc}") from None
    except OverflowError as exc:  # a repetition count such as {99999999999}
        raise MapSyntaxError(number, f"invalid regex /{_clip(regex)}/: {exc}") from None
    except RecursionError:  # parentheses nested too deep for the regex parser
        raise MapSyntaxError(number, f"invalid regex /{_clip(regex)}/: nested too deeply") from None
    return MapRule(pattern, negate, result, number)


def _clip(text: str, length: int = 60) -> str:
    return text if len(text) <= length else text[:length] + "…"


def closing_delimiter(body: str, delimiter: str) -> int:
    """Index of the delimiter that closes the regex opened by ``body[0]`` (backslash escapes
    skipped), or -1."""
    i = 1
    while i < len(body):
        if body[i] == "\\":
            i += 2
            continue
        if body[i] == delimiter:
            return i
        i += 1
    return -1
