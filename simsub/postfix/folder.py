"""The folder ``simsub export-postfix`` writes: the exported files and how to deploy them."""

from __future__ import annotations

from pathlib import Path

from ..files import atomic_folder
from .export import PostfixExport

#: The file that marks a folder as an export (and says how to deploy it).
EXPORT_MARKER = "simsub-export.txt"


def write_export(export: PostfixExport, target: Path, instructions: str) -> Path:
    """Write the exported files and the install instructions to ``target`` (atomically)."""
    with atomic_folder(target, marker=EXPORT_MARKER) as folder:
        write_export_files(folder, export)
        (folder / EXPORT_MARKER).write_text(instructions)
    return Path(target)


def write_export_files(folder: Path, export: PostfixExport) -> None:
    for name, text in export.files().items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
