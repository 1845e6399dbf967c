"""The parsed tables' columns, and row buffers that hand chunks of rows to a sink.

Rows are tuples in the order of the table's columns, but for one: a recipients row in the buffers is
(queue_id, t_s, recipient, the middle's CSV text, status, detail, middle), where ``middle`` is the
tuple of the 8 columns from orig_recipient to dsn, whose text the parser made once per distinct
middle (:func:`~simsub.maillog.events.delivery_parts`): formatting floats is most of writing a row,
and most delivery lines repeat their relay, delays and dsn.  :func:`flat_rows` gives the rows in column
order.  A buffer keeps at most
``CHUNK`` rows; each full chunk goes to the sink, which either makes it a
DataFrame and keeps it (:class:`FrameSink`, for
:func:`~simsub.maillog.parse.parse_maillog`) or appends it to a gzip CSV file
(:class:`CsvSink`, for the command: memory stays flat however long the log).
Types: ``f`` float (NaN when missing), ``i`` int (-1 when missing), ``s`` text
("" when missing).  In the CSV files floats are written exactly (Python's
shortest repr) and a missing float is ``nan``; :func:`read_tables` reads a
folder back into the same DataFrames.
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from .events import MIDDLE_CSV
from .events import SESSION_COUNTS as _COUNTS

#: table → ((column, type), ...), see docs/maillog.md for what each column means.
SCHEMA: dict[str, tuple[tuple[str, str], ...]] = {
    "sessions": (("session_id", "i"), ("host", "s"), ("service", "s"), ("pid", "i"), ("connect_s", "f"),
                 ("disconnect_s", "f"), ("client_name", "s"), ("client_address", "s"), ("sasl_method", "s"),
                 ("sasl_username", "s"), ("end", "s"), ("lost_after", "s")) + tuple((c, "i") for c in _COUNTS),
    "messages": (("queue_id", "s"), ("session_id", "i"), ("accepted_s", "f"), ("client_name", "s"),
                 ("client_address", "s"), ("sasl_username", "s"), ("sender", "s"), ("size", "i"), ("nrcpt", "i"),
                 ("removed_s", "f")),
    "recipients": (("queue_id", "s"), ("t_s", "f"), ("recipient", "s"), ("orig_recipient", "s"), ("relay", "s"),
                   ("delay_s", "f"), ("delay_before_qmgr_s", "f"), ("delay_in_qmgr_s", "f"),
                   ("delay_connect_s", "f"), ("delay_transmit_s", "f"), ("dsn", "s"), ("status", "s"),
                   ("detail", "s")),
    "rejects": (("t_s", "f"), ("session_id", "i"), ("queue_id", "s"), ("stage", "s"), ("code", "i"), ("dsn", "s"),
                ("reason", "s"), ("client_name", "s"), ("client_address", "s"), ("sender", "s"),
                ("recipient", "s"), ("helo", "s"), ("action", "s")),
    "auth_failures": (("t_s", "f"), ("session_id", "i"), ("client_name", "s"), ("client_address", "s"),
                      ("sasl_method", "s"), ("reason", "s"), ("sasl_username", "s")),
    "anvil": (("t_s", "f"), ("statistic", "s"), ("value", "i"), ("service", "s"), ("client", "s"),
              ("at_s", "f")),
}
#: Rows per chunk: enough to make writing cheap, few enough that the six buffers stay small.
CHUNK: Final = 5_000
_DTYPES = {"f": np.float64, "i": np.int64, "s": object}


def columns(table: str) -> list[str]:
    return [name for name, _ in SCHEMA[table]]


#: Tables whose rows the buffers hold in another layout than the columns' (see the module's docstring).
LAID_OUT: Final = frozenset(("recipients",))


def flat_rows(table: str, rows: list[tuple]) -> list[tuple]:
    """``rows`` as the buffers hold them → in the order of the table's columns."""
    if table == "recipients":
        return [row[:3] + row[6] + row[4:6] for row in rows]
    return rows


def recipient_row(row: tuple) -> tuple:
    """A recipients row in the order of the columns → as the buffers hold it (the parser makes these
    itself, the middle's text once per distinct middle)."""
    middle = tuple(row[3:11])
    return (*row[:3], MIDDLE_CSV % middle, row[11], row[12], middle)


def frame(table: str, rows: list[tuple]) -> pd.DataFrame:
    """A DataFrame of ``rows`` with the table's columns and types (also when there are none)."""
    names = columns(table)
    df = pd.DataFrame.from_records(rows, columns=names) if rows else pd.DataFrame({n: [] for n in names})
    return df.astype({name: _DTYPES[kind] for name, kind in SCHEMA[table]})


class FrameSink:
    """Keeps every chunk; :meth:`result` is one DataFrame per table."""

    def __init__(self):
        self.chunks: dict[str, list[pd.DataFrame]] = {table: [] for table in SCHEMA}

    def write(self, table: str, rows: list[tuple]) -> None:
        self.chunks[table].append(frame(table, flat_rows(table, rows)))

    def result(self) -> dict[str, pd.DataFrame]:
        return {table: pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else
                (chunks[0] if chunks else frame(table, [])) for table, chunks in self.chunks.items()}

    def close(self) -> None:
        pass


class CsvSink:
    """Appends each chunk to ``FOLDER/TABLE.csv.gz`` (header once; gzip without a time stamp, so the
    same log gives the same bytes).

    The bytes are those of :func:`csv.writer` (``lineterminator="\\n"``), written faster: a row whose
    fields hold no comma, quote or line break needs no quoting, so it is the fields' ``str()`` joined
    by commas (``str()`` of a float is its shortest repr, as csv writes it); ``"%s,%s,..." % row`` makes
    that in C, and a chunk whose text has exactly the separators' commas and no quote or line break
    goes out at once.  Any other chunk is written row by row, with csv.writer for the rows that need
    quoting.

    Formatting numbers is most of the cost, and some runs of columns repeat from row to row (a
    session's 15 command counts: :data:`REPEATING`): the text of each distinct run is made once and
    remembered (:class:`_RunTexts`), the rest of the row around it."""

    def __init__(self, folder: Path):
        self.files = {}
        for table in SCHEMA:
            raw = open(Path(folder) / f"{table}.csv.gz", "wb")
            gz = gzip.GzipFile(filename="", mode="wb", compresslevel=1, fileobj=raw, mtime=0)
            text = io.TextIOWrapper(gz, encoding="utf-8", newline="")
            writer = csv.writer(text, lineterminator="\n")
            writer.writerow(columns(table))
            width = len(SCHEMA[table])
            line = ",".join(["%s"] * width)
            first = REPEATING.get(table)
            run = None if first is None else ("%s," * first, first, _RunTexts(width - first))
            # the recipients' buffered rows: the middle's 8 columns are one text (their 7 commas in it)
            laid_out = ",".join(["%s"] * (width - 7)) if table in LAID_OUT else None
            self.files[table] = (raw, text, writer, line, width - 1, run, laid_out)

    def write(self, table: str, rows: list[tuple]) -> None:
        _, text, writer, line, commas, run, laid_out = self.files[table]
        if laid_out is not None:  # the same text as line % flat row
            chunk = "\n".join([laid_out % row[:6] for row in rows])
        elif run is None:
            chunk = "\n".join([line % row for row in rows])
        else:  # the same text as line % row
            head, first, texts = run
            chunk = "\n".join([head % row[:first] + texts[row[first:]] for row in rows])
        if (chunk.count(",") == commas * len(rows) and chunk.count("\n") == len(rows) - 1 and '"' not in chunk
                and "\r" not in chunk):
            text.write(chunk + "\n")
            return
        for row in flat_rows(table, rows):
            plain = line % row
            if plain.count(",") == commas and '"' not in plain and "\n" not in plain and "\r" not in plain:
                text.write(plain + "\n")
            else:
                writer.writerow(row)

    def close(self) -> None:
        for raw, text, *_ in self.files.values():
            text.close()
            raw.close()
        self.files = {}


#: table → first column of a run of columns, to the row's end, that takes few distinct values, where equal
#: values (==) give equal text: a session's command counts are ints only (never a bool or a float, where
#: 1 == 1.0 == True and 0.0 == -0.0 would be written differently).
REPEATING = {"sessions": columns("sessions").index(_COUNTS[0])}
#: Distinct runs a :class:`_RunTexts` remembers before it forgets them all (memory stays flat).
RUN_TEXTS: Final = 10_000


class _RunTexts(dict):
    """A run of column values (a tuple) → its CSV text, made on first use."""

    def __init__(self, width: int):
        super().__init__()
        self.line = ",".join(["%s"] * width)

    def __missing__(self, run: tuple) -> str:
        if len(self) >= RUN_TEXTS:
            self.clear()
        text = self[run] = self.line % run
        return text


class Buffers:
    """One row buffer per table, flushed to ``sink`` chunk by chunk; ``counts`` rows per table."""

    def __init__(self, sink):
        self.sink = sink
        self.rows: dict[str, list[tuple]] = {table: [] for table in SCHEMA}
        self.counts = {table: 0 for table in SCHEMA}

    def add(self, table: str, row: tuple) -> None:
        rows = self.rows[table]
        rows.append(row)
        if len(rows) >= CHUNK:
            self.flush(table)

    def flush(self, table: str) -> None:
        rows = self.rows[table]
        if rows:
            self.counts[table] += len(rows)
            self.sink.write(table, rows)
            self.rows[table] = []

    def finish(self) -> None:
        for table in SCHEMA:
            self.flush(table)


def read_tables(folder: Path, names=None) -> dict[str, pd.DataFrame]:
    """The tables a :class:`CsvSink` wrote to ``folder`` (all, or those in ``names``), with their
    types ("" stays "", nan is NaN)."""
    tables = {}
    for table, spec in SCHEMA.items():
        if names is not None and table not in names:
            continue
        dtypes = {name: _DTYPES[kind] if kind != "s" else str for name, kind in spec}
        na = {name: ["nan"] for name, kind in spec if kind == "f"}
        tables[table] = pd.read_csv(Path(folder) / f"{table}.csv.gz", dtype=dtypes, keep_default_na=False,
                                    na_values=na).astype({name: _DTYPES[kind] for name, kind in spec})
    return tables
