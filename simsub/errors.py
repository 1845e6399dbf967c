"""Errors that reach the user as one clear line, never as a traceback."""

from __future__ import annotations


class ScenarioError(Exception):
    """A problem with a scenario file or a command-line override.

    ``source`` names the file (or ``--set``), ``key`` the dotted key or ``line N``
    inside it, and the message says what was expected.  ``str()`` gives the single
    line the command-line tool prints before exiting with status 2.
    """

    def __init__(self, source: str, key: str | None, message: str):
        self.source = source
        self.key = key
        self.message = message
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {message}")
