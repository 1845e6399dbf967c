"""Writing a run's large tables as CSV: the text of ``DataFrame.to_csv``, made faster.

``messages.csv.gz`` and ``deliveries.csv.gz`` hold a row per message (hundreds of
thousands in a day of the default scenario); pandas formats every value through a
Python call of its own and wrote them in about 4 s of CPU, more than the charts.
:func:`write_csv` writes the same characters (``frame.to_csv(index=False,
float_format=...)``, compared byte for byte in ``tests/test_csv_tables.py``) in
about a third of the time:

* a row is one ``"%d,%s,%.6f,..." % row`` in C instead of one Python call per value;
* a categorical column's labels are quoted (as csv quotes them) once per category,
  not once per row, and a row takes its label by code;
* a float column with NaN is formatted beforehand, its present values in one list
  comprehension and NaN as nothing (as pandas writes it); a float column without
  NaN is formatted inside the row;
* the text goes to gzip in large blocks (pandas writes it in small pieces).

A frame with a column of any other kind (strings, booleans, nullable integers…)
is written by pandas itself, so the output is the same whatever the frame.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd

#: Rows formatted per block: bounds the text held in memory (about 130 bytes a row).
BLOCK_ROWS = 65536
#: gzip level of the ``.csv.gz`` tables: for a day of the default scenario level 1
#: compresses the two tables in 0.3 s of CPU where 9 (gzip's default) takes 4.7 s,
#: for files 23 % larger (13.7 MB against 11.1 MB; docs/performance.md).
COMPRESSLEVEL = 1


def _quoted(text: str) -> str:
    """``text`` as one field of a row written by csv.writer with pandas' settings (quoted
    only when it holds the delimiter, a quote or a line-break character)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=os.linesep).writerow([text, ""])
    return buffer.getvalue()[:-len("," + os.linesep)]


def _plan(frame: pd.DataFrame, float_format: str) -> list[tuple[str, str, object]] | None:
    """Per column (kind, row-format piece, data), or None when a column is of a kind this
    writer does not format exactly as pandas does."""
    plan = []
    for name in frame.columns:
        column = frame[name]
        dtype = column.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            if not pd.api.types.is_string_dtype(dtype.categories.dtype):
                return None
            labels = np.array([_quoted(str(c)) for c in dtype.categories] + [""], dtype=object)  # code -1: NaN
            plan.append(("category", "%s", (labels, column.cat.codes.to_numpy())))
        elif isinstance(dtype, np.dtype) and dtype.kind in "iu":
            plan.append(("int", "%d", column.to_numpy()))
        elif isinstance(dtype, np.dtype) and dtype.kind == "f":
            values = column.to_numpy()
            missing = np.isnan(values)
            if missing.any():
                plan.append(("float_nan", "%s", (values, missing)))
            else:
                plan.append(("float", float_format, values))
        else:
            return None
    return plan


def _block(plan: list[tuple[str, str, object]], start: int, stop: int, float_format: str) -> list:
    """The block's columns as lists of Python values (or ready text) for the row format."""
    columns = []
    for kind, _, data in plan:
        if kind == "category":
            labels, codes = data
            columns.append(labels[codes[start:stop]].tolist())
        elif kind == "float_nan":
            values, missing = data
            text = np.full(stop - start, "", dtype=object)
            present = ~missing[start:stop]
            text[present] = [float_format % v for v in values[start:stop][present].tolist()]
            columns.append(text.tolist())
        else:
            columns.append(data[start:stop].tolist())
    return columns


def write_csv(frame: pd.DataFrame, path: Path, float_format: str, compresslevel: int | None = None) -> None:
    """Write ``frame`` to ``path`` exactly as ``frame.to_csv(path, index=False, float_format=float_format)``
    would; gzip-compressed at ``compresslevel`` (1-9; no time stamp in the header, so the same table
    gives the same bytes) when it is given.  ``float_format`` is a %-format such as ``"%.6f"``."""
    path = Path(path)
    plan = _plan(frame, float_format) if len(frame.columns) else None
    if plan is None:
        compression = None if compresslevel is None else {"method": "gzip", "compresslevel": compresslevel,
                                                          "mtime": 0}
        frame.to_csv(path, index=False, float_format=float_format, compression=compression)
        return
    line = ",".join(piece for _, piece, _ in plan) + os.linesep
    header = ",".join(_quoted(str(name)) for name in frame.columns) + os.linesep
    with open(path, "wb") as raw:
        out = raw if compresslevel is None else gzip.GzipFile(filename=path.name, mode="wb", fileobj=raw,
                                                               compresslevel=compresslevel, mtime=0)
        with out:
            out.write(header.encode("utf-8"))
            for start in range(0, len(frame), BLOCK_ROWS):
                stop = min(start + BLOCK_ROWS, len(frame))
                text = "".join(map(line.__mod__, zip(*_block(plan, start, stop, float_format))))
                out.write(text.encode("utf-8"))
