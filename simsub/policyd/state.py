"""The services' counters on disk, so that a restart does not hand every login a fresh quota.

The file is JSON: per service its spec (as text, to restore only a service whose
configuration is unchanged) and the counters its own ``state()`` gives (the same
method every limiter of :mod:`simsub.policy` has), and the locked logins, behind
a header with a format number.  JSON runs no code when read, unlike a pickle.
Written atomically: to a temporary file in the same folder, flushed and
fsync'ed, renamed over the old one, and the folder fsync'ed — a crash leaves the
old file or the new one, never half of one; mode 0600.  A file from another
format or that does not parse is not used: the daemon logs why, renames it
``FILE.unreadable`` and starts from zero.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..version import __version__

#: Bump when the payload's layout changes; a file of another format is not read.
FORMAT = 2
MAGIC = "simsub-policyd-state"


class StateError(Exception):
    """A state file that cannot be used; the message names the file and why."""


@dataclass
class Snapshot:
    """Counters read from a state file (``saved_at``: s since the epoch)."""

    services: dict = field(default_factory=dict)  # name -> {"spec": text, "state": the service's state()}
    locks: dict[str, set[str]] = field(default_factory=dict)
    saved_at: float = 0.0
    version: str = ""


def dumps(services: dict, locks: dict[str, set[str]]) -> bytes:
    """The bytes of a state file (taken in the event loop: a consistent snapshot)."""
    payload = {"magic": MAGIC, "format": FORMAT, "simsub": __version__, "saved_at": time.time(),
               "services": {name: {"spec": repr(service.spec), "state": service.state()}
                            for name, service in services.items()},
               "locks": {k: sorted(v) for k, v in locks.items()}}
    return json.dumps(payload, separators=(",", ":")).encode()


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: tmp file, fsync, rename, fsync of the folder."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def load(path: Path) -> Snapshot | None:
    """The snapshot in ``path``, None when there is no file; StateError when it cannot be used."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"{path}: cannot read the state file: {exc.strerror}") from None
    try:
        payload = json.loads(data)
    except ValueError as exc:  # truncated, foreign, not text
        raise StateError(f"{path}: not a simsub policyd state file ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict) or payload.get("magic") != MAGIC:
        raise StateError(f"{path}: not a simsub policyd state file")
    if payload.get("format") != FORMAT:
        raise StateError(f"{path}: state format {payload.get('format')!r} (simsub {payload.get('simsub')}), "
                         f"this daemon reads format {FORMAT}")
    return Snapshot(payload["services"], {k: set(v) for k, v in payload["locks"].items()}, payload["saved_at"],
                    payload["simsub"])


def set_aside(path: Path) -> Path:
    """Rename an unusable state file out of the way (kept for inspection)."""
    target = Path(f"{path}.unreadable")
    os.replace(path, target)
    return target


def matching(snapshot: Snapshot, specs: dict) -> tuple[dict, dict, list[str]]:
    """The snapshot's services (and locks) whose spec equals the policy's; and the names dropped."""
    from ..policy.limiters.base import StateError as CounterStateError

    services, locks, dropped = {}, {}, []
    for name, entry in snapshot.services.items():
        if name in specs and isinstance(entry, dict) and entry.get("spec") == repr(specs[name]):
            service = specs[name].build()
            try:
                service.load_state(entry["state"])
            except (CounterStateError, KeyError, TypeError, ValueError):
                dropped.append(name)
                continue
            services[name] = service
            locks[name] = snapshot.locks.get(name, set())
        else:
            dropped.append(name)
    return services, locks, sorted(dropped)
