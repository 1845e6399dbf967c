"""One log line per event, ``key=value`` pairs (logfmt), for journald and log shippers."""

from __future__ import annotations

import logging
import time

LOGGER = logging.getLogger("simsub.policyd")


def kv(**fields) -> str:
    """``k=v`` pairs; values with spaces, quotes or ``=`` are double-quoted."""
    parts = []
    for key, value in fields.items():
        text = f"{value:.6f}" if isinstance(value, float) else str(value)
        if not text or any(c in text for c in ' "=\\') or not text.isprintable():
            text = '"' + "".join(_escape(c) for c in text) + '"'
        parts.append(f"{key}={text}")
    return " ".join(parts)


def _escape(c: str) -> str:
    if c in '"\\':
        return "\\" + c
    return c if c.isprintable() else c.encode("unicode_escape").decode("ascii")


def log(level: int, event: str, **fields) -> None:
    if LOGGER.isEnabledFor(level):
        LOGGER.log(level, kv(event=event, **fields))


class LogfmtFormatter(logging.Formatter):
    """``ts=... level=... event=...`` with the UTC time to the millisecond."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        return f"ts={ts} level={record.levelname.lower()} {record.getMessage()}"


def configure(stream=None, level: int = logging.INFO, decisions: bool = True) -> None:
    """Send the daemon's log lines to ``stream`` (default stderr: journald keeps them under systemd);
    ``decisions=False`` leaves out the line per decision."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LogfmtFormatter())
    if not decisions:
        handler.addFilter(lambda record: not record.getMessage().startswith("event=decision "))
    LOGGER.handlers[:] = [handler]
    LOGGER.setLevel(level)
    LOGGER.propagate = False
