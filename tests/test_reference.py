"""The committed reference report (results/reference/) is what the current code produces.

`make reference` regenerates it.  A change in the model's behaviour shows up
here as a failing test, to be explained and the reference regenerated, not
hidden.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

import simsub
from simsub.experiments.design import replication_seed
from simsub.experiments.metrics import flatten_summary
from simsub.scenario import load_scenario

from .conftest import REPO

REFERENCE = REPO / "results" / "reference" / "may-2012-compare"


def reference_runs() -> pd.DataFrame:
    return pd.read_csv(REFERENCE / "runs.csv")


def test_the_reference_report_is_complete():
    record = json.loads((REFERENCE / "experiment.json").read_text())
    scenario = load_scenario(None)
    assert record["command"] == "simsub compare --out results/reference/may-2012-compare --cache results/.simsub-runs"
    assert record["seeds"] == [replication_seed(scenario.seed, r) for r in range(record["replications"])]
    assert list(record["policies"]) == list(scenario.policies)
    runs = reference_runs()
    assert len(runs) == len(scenario.policies) * record["replications"] and (runs["status"] == "ok").all()
    for name in ("report.md", "report.html", "summary.csv", "compare.png"):
        assert (REFERENCE / name).is_file(), name
    report = (REFERENCE / "report.md").read_text()
    assert all(finding in report for finding in record["findings"])


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["none", "selective-1-5s"])
def test_the_current_code_reproduces_the_reference_runs(policy):
    """Replication 0 of two policies, every metric, to the precision runs.csv keeps (10 digits)."""
    runs = reference_runs()
    row = runs[(runs["policy"] == policy) & (runs["replication"] == 0)].iloc[0]
    flat = flatten_summary(simsub.run(None, policy=policy, seed=int(row["seed"])).summary)
    different = {}
    for metric, value in flat.items():
        stored = row.get(metric, math.nan)
        if math.isnan(value) and math.isnan(stored):
            continue
        if not math.isclose(value, stored, rel_tol=1e-9, abs_tol=1e-9):
            different[metric] = (stored, value)
    assert not different, f"changed since `make reference` (reference, now): {different}"
