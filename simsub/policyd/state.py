"""The services' counters on disk, so that a restart does not hand every login a fresh quota.

The file is a pickle of the service objects themselves (whatever limiter they
hold) and their locked logins, behind a header with a format number.  Written
atomically: to a temporary file in the same folder, flushed and fsync'ed, renamed
over the old one, and the folder fsync'ed — a crash leaves the old file or the
new one, never half of one.

Pickle runs code named in the file when it is read: the file must be written by
the daemon only (it is created mode 0600; keep its folder root-only).  A file
from another format or that does not unpickle (an upgrade moved a class) is not
used: the daemon logs why, renames it ``FILE.unreadable`` and starts from zero.
"""

from __future__ import annotations

import os
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__

#: Bump when the payload's layout changes; a file of another format is not read.
FORMAT = 1
MAGIC = "simsub-policyd-state"


class StateError(Exception):
    """A state file that cannot be used; the message names the file and why."""


@dataclass
class Snapshot:
    """Counters read from a state file (``saved_at``: s since the epoch)."""

    services: dict = field(default_factory=dict)  # name -> service object
    locks: dict[str, set[str]] = field(default_factory=dict)
    saved_at: float = 0.0
    version: str = ""


def dumps(services: dict, locks: dict[str, set[str]]) -> bytes:
    """The bytes of a state file (taken in the event loop: a consistent snapshot)."""
    payload = {"magic": MAGIC, "format": FORMAT, "simsub": __version__, "saved_at": time.time(),
               "services": dict(services), "locks": {k: set(v) for k, v in locks.items()}}
    return pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)


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
        payload = pickle.loads(data)
    except Exception as exc:  # any unpickling failure: truncated, foreign, a class that moved
        raise StateError(f"{path}: not a simsub policyd state file ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict) or payload.get("magic") != MAGIC:
        raise StateError(f"{path}: not a simsub policyd state file")
    if payload.get("format") != FORMAT:
        raise StateError(f"{path}: state format {payload.get('format')!r} (simsub {payload.get('simsub')}), "
                         f"this daemon reads format {FORMAT}")
    return Snapshot(payload["services"], payload["locks"], payload["saved_at"], payload["simsub"])


def set_aside(path: Path) -> Path:
    """Rename an unusable state file out of the way (kept for inspection)."""
    target = Path(f"{path}.unreadable")
    os.replace(path, target)
    return target


def matching(snapshot: Snapshot, specs: dict) -> tuple[dict, dict, list[str]]:
    """The snapshot's services (and locks) whose spec equals the policy's; and the names dropped."""
    services, locks, dropped = {}, {}, []
    for name, service in snapshot.services.items():
        if name in specs and getattr(service, "spec", None) == specs[name]:
            services[name] = service
            locks[name] = snapshot.locks.get(name, set())
        else:
            dropped.append(name)
    return services, locks, sorted(dropped)
