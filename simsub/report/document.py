"""A tiny document model rendered to Markdown and to one self-contained HTML page.

Blocks hold plain text; the renderers escape it.  Images are files: Markdown
refers to them by a path relative to the report folder, HTML embeds them as
``data:image/png;base64`` so that the page works offline and when mailed.
Nothing refers to an external resource.
"""

from __future__ import annotations

import base64
import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, Union


@dataclass(frozen=True)
class Link:
    """A link to a file next to the report (relative name), usable as a bullet item."""

    href: str
    text: str


@dataclass(frozen=True)
class Heading:
    level: int  # 1..4
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: Sequence[Union[str, Link]]


@dataclass(frozen=True)
class Table:
    columns: Sequence[str]
    rows: Sequence[Sequence[str]]
    align: Sequence[str] = ()  # "left" or "right" per column; default left
    caption: str = ""


@dataclass(frozen=True)
class Image:
    path: Path  # the PNG file
    alt: str
    caption: str = ""


@dataclass(frozen=True)
class Code:
    text: str


Block = Union[Heading, Paragraph, Bullets, Table, Image, Code]


@dataclass
class Document:
    title: str  # the HTML page title
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)


# --------------------------------------------------------------------------- Markdown

_MD_INLINE = re.compile(r"([\\`*<])")


def _md_text(text: str) -> str:
    """Escape what would turn plain text into markup (HTML tags, code spans, emphasis, links)."""
    return _MD_INLINE.sub(r"\\\1", str(text))


def _md_cell(text: str) -> str:
    return _md_text(text).replace("|", "\\|").replace("\n", " ")


def _md_link(link: Link) -> str:
    return f"[{_md_text(link.text)}](<{link.href}>)" if " " in link.href else f"[{_md_text(link.text)}]({link.href})"


def to_markdown(doc: Document, folder: Path) -> str:
    """The document as Markdown; image paths relative to ``folder`` (where report.md goes)."""
    out: list[str] = []
    for block in doc.blocks:
        if isinstance(block, Heading):
            out.append("#" * max(1, min(block.level, 6)) + " " + _md_text(block.text))
        elif isinstance(block, Paragraph):
            out.append(_md_text(block.text))
        elif isinstance(block, Bullets):
            out.append("\n".join("* " + (_md_link(item) if isinstance(item, Link) else _md_text(item))
                                 for item in block.items))
        elif isinstance(block, Table):
            lines = []
            if block.caption:
                lines.append(_md_text(block.caption) + "\n")
            lines.append("| " + " | ".join(_md_cell(c) for c in block.columns) + " |")
            aligns = _aligns(block)
            lines.append("|" + "|".join("---:" if a == "right" else "---" for a in aligns) + "|")
            for row in block.rows:
                lines.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
            out.append("\n".join(lines))
        elif isinstance(block, Image):
            rel = Path(os.path.relpath(block.path, folder)).as_posix()
            text = f"![{_md_text(block.alt)}]({rel})"
            if block.caption:
                text += "\n\n*" + _md_text(block.caption) + "*"
            out.append(text)
        elif isinstance(block, Code):
            fence = "```"
            while fence in block.text:
                fence += "`"
            out.append(f"{fence}sh\n{block.text}\n{fence}")
        else:  # pragma: no cover - a programming error
            raise TypeError(f"unknown block {block!r}")
    return "\n\n".join(out) + "\n"


def _aligns(table: Table) -> list[str]:
    aligns = list(table.align) + ["left"] * (len(table.columns) - len(table.align))
    return aligns[:len(table.columns)]


# --------------------------------------------------------------------------- HTML

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; line-height: 1.45;
       color: #222; max-width: 1000px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.7em; border-bottom: 2px solid #ddd; padding-bottom: .2em; }
h2 { font-size: 1.35em; margin-top: 1.8em; border-bottom: 1px solid #eee; }
h3 { font-size: 1.1em; margin-top: 1.4em; }
table { border-collapse: collapse; margin: .8em 0 1.2em; font-size: .9em; }
caption { text-align: left; font-weight: 600; padding-bottom: .3em; }
th, td { border: 1px solid #d8d8d8; padding: .25em .6em; vertical-align: top; }
th { background: #f0f0f0; }
tbody tr:nth-child(even) { background: #f8f8f8; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
figure { margin: 1.2em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .9em; color: #444; margin-top: .3em; }
pre { background: #f4f4f4; padding: .7em; overflow-x: auto; white-space: pre-wrap; word-break: break-all; }
li { margin-bottom: .25em; }
"""


def _h(text: str) -> str:
    return html.escape(str(text), quote=True)


def to_html(doc: Document) -> str:
    """The document as one HTML page with inline CSS and embedded images; no external resources."""
    body: list[str] = []
    for block in doc.blocks:
        if isinstance(block, Heading):
            level = max(1, min(block.level, 6))
            body.append(f"<h{level}>{_h(block.text)}</h{level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{_h(block.text)}</p>")
        elif isinstance(block, Bullets):
            items = "".join(
                f'<li><a href="{_h(item.href)}">{_h(item.text)}</a></li>' if isinstance(item, Link)
                else f"<li>{_h(item)}</li>" for item in block.items)
            body.append(f"<ul>{items}</ul>")
        elif isinstance(block, Table):
            aligns = _aligns(block)
            cls = [' class="num"' if a == "right" else "" for a in aligns]
            head = "".join(f"<th{c}>{_h(col)}</th>" for col, c in zip(block.columns, cls))
            rows = "".join("<tr>" + "".join(f"<td{c}>{_h(cell)}</td>" for cell, c in zip(row, cls)) + "</tr>"
                           for row in block.rows)
            caption = f"<caption>{_h(block.caption)}</caption>" if block.caption else ""
            body.append(f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif isinstance(block, Image):
            data = base64.b64encode(Path(block.path).read_bytes()).decode("ascii")
            caption = f"<figcaption>{_h(block.caption)}</figcaption>" if block.caption else ""
            body.append(f'<figure><img src="data:image/png;base64,{data}" alt="{_h(block.alt)}">{caption}</figure>')
        elif isinstance(block, Code):
            body.append(f"<pre><code>{_h(block.text)}</code></pre>")
        else:  # pragma: no cover - a programming error
            raise TypeError(f"unknown block {block!r}")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{_h(doc.title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")
