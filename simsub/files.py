"""Result folders that appear complete or not at all.

Files go to a hidden temporary sibling first; only when every file is written
is it renamed to the requested name (replacing an older folder of that name).
A crash or Ctrl-C leaves no folder that looks complete.  Every command that
writes a folder (run, compare, twin, maillog parse…) goes through here.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import ScenarioError


def check_output_target(target: Path, marker: str) -> None:
    """Refuse an output folder that holds something other than an earlier result.

    ``target`` may be missing, empty, or an earlier result folder (it has the
    file ``marker``, e.g. summary.json); anything else would be deleted when the
    new result replaces it.
    """
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise ScenarioError("--out", str(target), "exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not (target / marker).is_file():
        raise ScenarioError("--out", str(target), f"exists and is not a simsub result folder (no {marker}); it "
                            "would be replaced: choose another --out or remove it")
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ScenarioError("--out", str(target), f"cannot create its parent folder: {exc.strerror}") from None
    if not os.access(parent, os.W_OK):
        raise ScenarioError("--out", str(target), f"cannot write in {parent}")


@contextmanager
def atomic_folder(target: Path, marker: str | None = None):
    """Yield a temporary folder that becomes ``target`` when the block succeeds.

    With ``marker``, an existing ``target`` is replaced only if it is empty or an
    earlier result (it has that file): see :func:`check_output_target`."""
    target = Path(target)
    if marker is not None:
        check_output_target(target, marker)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp makes it private; a result folder is not
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        target.rename(old)
    staging.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
