"""The run folder's fast CSV writer writes exactly the text of ``DataFrame.to_csv``.

Users and tests compare tables written by earlier versions (which used pandas'
``to_csv``); only the gzip bytes around the text may differ.
"""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from simsub.api import run
from simsub.report.csv_tables import BLOCK_ROWS, _plan, write_csv


def expected(frame: pd.DataFrame, float_format: str) -> bytes:
    return frame.to_csv(index=False, float_format=float_format).encode("utf-8")


def written(frame: pd.DataFrame, tmp_path, float_format: str, compresslevel: int | None) -> bytes:
    path = tmp_path / ("t.csv.gz" if compresslevel else "t.csv")
    write_csv(frame, path, float_format, compresslevel)
    data = path.read_bytes()
    if compresslevel:
        assert data[:2] == b"\x1f\x8b"
        data = gzip.decompress(data)
    return data


def awkward_floats(n: int, rng: np.random.Generator) -> np.ndarray:
    """Floats where %-formatting is easy to get wrong: signs, zeros, NaN, infinities, halfway cases,
    the largest and smallest magnitudes, and random values over many decades."""
    special = np.array([0.0, -0.0, -1e-9, 1e-9, 0.5, 1.5, 2.5, -2.5, 0.0000005, 0.0000015, 0.0000025,
                        1234.5678905, np.nan, np.inf, -np.inf, 1e300, -1e300, 5e-324, 2.0 ** 53, 0.1, 0.7])
    rest = rng.standard_normal(n) * 10.0 ** rng.integers(-8, 12, n)
    # decimal halfway points at 0, 3 and 6 decimals (x.5, x.xxx5, x.xxxxxx5), which the nearest
    # binary value lies just above or below
    halfway = (rng.integers(-10 ** 9, 10 ** 9, n) + 0.5) / 10.0 ** rng.choice([0, 3, 6], n)
    values = np.concatenate([special, rest, halfway])
    values[rng.random(len(values)) < 0.1] = np.nan
    return values


def awkward_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    floats = awkward_floats(n, rng)
    m = len(floats)
    labels = ["plain", "with,comma", 'with "quote"', "with\nnewline", "", " spaced ", "ünïcode"]
    codes = rng.integers(-1, len(labels), m)  # -1: a missing value
    return pd.DataFrame({
        "id": np.concatenate([[np.iinfo(np.int64).min, np.iinfo(np.int64).max, 0, -1],
                              rng.integers(-2 ** 62, 2 ** 62, m - 4)]),
        "x": floats,
        "y": np.abs(np.nan_to_num(floats, nan=1.0, posinf=2.0, neginf=3.0)),  # no NaN: formatted in the row
        "label": pd.Categorical.from_codes(codes, categories=labels),
        "small": rng.integers(0, 10, m).astype(np.int32),
        "column, quoted": np.zeros(m, dtype=np.uint8),
        "big": np.full(m, np.iinfo(np.uint64).max, dtype=np.uint64),
    })


@pytest.mark.parametrize("float_format", ["%.6f", "%.3f", "%.0f", "%.15f", "%.17g"])
@pytest.mark.parametrize("compresslevel", [None, 1, 9])
def test_awkward_values_as_pandas_writes_them(tmp_path, float_format, compresslevel):
    frame = awkward_frame(2000, seed=len(float_format) + (compresslevel or 0))
    assert _plan(frame, float_format) is not None  # written by the fast path, not handed to pandas
    assert written(frame, tmp_path, float_format, compresslevel) == expected(frame, float_format)


def test_more_rows_than_a_block(tmp_path):
    frame = awkward_frame(2 * BLOCK_ROWS + 17, seed=5)
    assert written(frame, tmp_path, "%.6f", 1) == expected(frame, "%.6f")


def test_frames_it_leaves_to_pandas(tmp_path):
    """Columns of other kinds (strings, booleans, nullable integers, numeric categories) and empty frames."""
    frames = [
        pd.DataFrame({"t_s": [1.25, np.nan], "event": pd.array(["listed", None], dtype="string"),
                      "detail": ["a, b", 'say "x"']}),
        pd.DataFrame({"flag": [True, False], "v": [0.5, 1.0]}),
        pd.DataFrame({"n": pd.array([1, None], dtype="Int64")}),
        pd.DataFrame({"c": pd.Categorical([1.5, 2.5])}),
        pd.DataFrame({"a": np.array([], dtype=float), "b": np.array([], dtype=np.int64)}),
        pd.DataFrame(),
    ]
    for frame in frames:
        for level in (None, 1):
            assert written(frame, tmp_path, "%.3f", level) == expected(frame, "%.3f"), frame.dtypes


def test_a_runs_tables_as_pandas_writes_them(tmp_path, may2012):
    """The tables of a short default run (messages, sessions, time series, deliveries, and the events,
    none in half an hour: a header only)."""
    from simsub.scenario.loader import build_scenario

    scenario = build_scenario(may2012.raw, "may-2012", {"horizon": "30m", "populations.subscribers.count": 3000,
                                                        "populations.botnet.start": "10m"})
    result = run(scenario, policy="selective-1-5s", seed=3)
    tables = {"messages": "%.6f", "sessions": "%.6f", "timeseries": "%.6f", "deliveries": "%.6f", "events": "%.3f"}
    for name, float_format in tables.items():
        frame = getattr(result, name)
        assert len(frame) > 0 or name == "events", name
        assert written(frame, tmp_path, float_format, 1) == expected(frame, float_format), name
