"""The parsed tables' columns, and row buffers that hand chunks of rows to a sink.

Rows are tuples in the order of the table's columns, but for two (:data:`LAID_OUT`), where a run
of columns that repeats from row to row is one :class:`~simsub.maillog.events.Run` (the columns and
their CSV text, made once per distinct run): a recipients row in the buffers is (queue_id, t_s,
recipient, middle, status, detail), ``middle`` the run of the 8 columns from orig_recipient to dsn
(:func:`~simsub.maillog.events.delivery_parts`: most delivery lines repeat their relay, delays and
dsn), and a sessions row is its 12 first columns then the run of its 15 command counts
(:func:`~simsub.maillog.events.disconnect_run`).  Formatting numbers is most of writing a row;
``"%s" % run`` is the run's text, made once.  :func:`flat_rows` gives the rows in column order,
:func:`laid_out_row` the other way.  A buffer keeps at most
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

from .events import SESSION_COUNTS as _COUNTS
from .events import run_of

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
#: Rows per chunk: enough to make writing a chunk cheap, few enough that a chunk's rows are still in the
#: processor's caches when they are written and freed.  5,000 cost a quarter more CPU for parse and write
#: than 250 (a thousand: nearly as little): the six buffers' rows (tuples and strings, a few hundred bytes
#: a row) outgrew the caches between being made and being written (docs/maillog.md).
CHUNK: Final = 250
#: Rows a :class:`FrameSink` gathers per table before it makes them a DataFrame (a frame per chunk would be
#: many small frames: pandas' cost per frame, then per frame in the concatenation).
FRAME_ROWS: Final = 50_000
_DTYPES = {"f": np.float64, "i": np.int64, "s": object}


def columns(table: str) -> list[str]:
    return [name for name, _ in SCHEMA[table]]


#: Tables whose rows the buffers hold in another layout than the columns': table → (first column of
#: the run, columns in it) (see the module's docstring).
LAID_OUT: Final = {"recipients": (3, 8), "sessions": (12, len(_COUNTS))}


def flat_rows(table: str, rows: list[tuple]) -> list[tuple]:
    """``rows`` as the buffers hold them → in the order of the table's columns."""
    if table == "recipients":
        return [row[:3] + row[3].values + row[4:] for row in rows]
    if table == "sessions":
        return [row[:12] + row[12].values for row in rows]
    return rows


def laid_out_row(table: str, row: tuple) -> tuple:
    """A row in the order of the table's columns → as the buffers hold it (the parser makes these
    itself, a run's text once per distinct run)."""
    if table not in LAID_OUT:
        return row
    first, width = LAID_OUT[table]
    return (*row[:first], run_of(tuple(row[first:first + width])), *row[first + width:])


def frame(table: str, rows: list[tuple]) -> pd.DataFrame:
    """A DataFrame of ``rows`` with the table's columns and types (also when there are none)."""
    names = columns(table)
    df = pd.DataFrame.from_records(rows, columns=names) if rows else pd.DataFrame({n: [] for n in names})
    return df.astype({name: _DTYPES[kind] for name, kind in SCHEMA[table]})


class FrameSink:
    """Keeps every row, ``FRAME_ROWS`` at a time as a DataFrame; :meth:`result` is one DataFrame per table."""

    def __init__(self):
        self.chunks: dict[str, list[pd.DataFrame]] = {table: [] for table in SCHEMA}
        self.pending: dict[str, list[tuple]] = {table: [] for table in SCHEMA}

    def write(self, table: str, rows: list[tuple]) -> None:
        pending = self.pending[table]
        pending += flat_rows(table, rows)
        if len(pending) >= FRAME_ROWS:
            self._frame(table)

    def _frame(self, table: str) -> None:
        self.chunks[table].append(frame(table, self.pending[table]))
        self.pending[table] = []

    def result(self) -> dict[str, pd.DataFrame]:
        for table, pending in self.pending.items():
            if pending:
                self._frame(table)
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
    that in C (a :class:`~simsub.maillog.events.Run` in a laid-out row is its columns' text, made once),
    and a chunk whose text has exactly the separators' commas and no quote or line break goes out at
    once.  Any other chunk is written row by row, with csv.writer for the rows that need quoting."""

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
            # a laid-out row: a run of columns is one field (its text has the commas between them)
            laid_out = ",".join(["%s"] * (width - LAID_OUT[table][1] + 1)) if table in LAID_OUT else line
            self.files[table] = (raw, text, writer, line, width - 1, laid_out)

    def write(self, table: str, rows: list[tuple]) -> None:
        _, text, writer, line, commas, laid_out = self.files[table]
        chunk = "\n".join([laid_out % row for row in rows])  # the same text as line % flat row
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


class Buffer:
    """The rows of one table waiting for their chunk (at most ``CHUNK``), handed to ``sink`` when full;
    ``count``: rows handed on so far."""

    def __init__(self, table: str, sink):
        self.table = table
        self.sink = sink
        self.rows: list[tuple] = []
        self.count = 0

    def add(self, row: tuple) -> None:
        rows = self.rows
        rows.append(row)
        if len(rows) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        rows = self.rows
        if rows:
            self.count += len(rows)
            self.sink.write(self.table, rows)
            self.rows = []


class Buffers:
    """One :class:`Buffer` per table, flushed to ``sink`` chunk by chunk; ``counts`` rows per table.

    The parser adds rows to the tables' buffers directly (``buffers.recipients.add(row)``: an attribute,
    not a lookup by the table's name per row)."""

    def __init__(self, sink):
        self.sink = sink
        self.tables = {table: Buffer(table, sink) for table in SCHEMA}
        self.sessions = self.tables["sessions"]
        self.messages = self.tables["messages"]
        self.recipients = self.tables["recipients"]
        self.rejects = self.tables["rejects"]
        self.auth_failures = self.tables["auth_failures"]
        self.anvil = self.tables["anvil"]

    @property
    def counts(self) -> dict[str, int]:
        """Rows handed to the sink per table."""
        return {table: buffer.count for table, buffer in self.tables.items()}

    def add(self, table: str, row: tuple) -> None:
        self.tables[table].add(row)

    def flush(self, table: str) -> None:
        self.tables[table].flush()

    def finish(self) -> None:
        for buffer in self.tables.values():
            buffer.flush()


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
