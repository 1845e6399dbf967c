"""compare.png's panels: own scale with a floor, an all-zero metric in words; shared trade-off labels."""

from __future__ import annotations

import pandas as pd
import pytest

from simsub.experiments.types import Metric
from simsub.report import experiment_charts
from simsub.report.experiment_charts import MIN_SPAN, _shared_label, compare_chart

METRICS = [Metric("a.big", "big share", "share", "lower"), Metric("a.tiny", "tiny share", "share", "lower"),
           Metric("a.zero", "always zero", "count", "lower")]


@pytest.fixture
def drawn(monkeypatch, tmp_path):
    figures = []
    monkeypatch.setattr(experiment_charts.Figure, "savefig", lambda self, *a, **k: figures.append(self))
    table = pd.DataFrame({"policy": ["none", "p"], "a.big": [0.40, 0.10], "a.tiny": [0.002, 0.001],
                          "a.zero": [0.0, 0.0], "a.zero:low": [0.0, 0.0], "a.zero:high": [5.0, 5.0]})
    compare_chart(table, METRICS, ["none", "p"], "none", "t", tmp_path / "c.png")
    return {ax.get_title().split(" (")[0]: ax for ax in figures[0].axes if ax.get_title()}


def test_each_panel_has_its_own_range_but_not_below_the_floor(drawn):
    assert drawn["big share"].get_xlim()[1] == pytest.approx(0.40 * 1.3)  # its data and room for labels
    right = drawn["tiny share"].get_xlim()[1]
    assert right >= MIN_SPAN["share"]  # 0.2 % does not fill the panel
    assert right < 0.40  # ... nor is it drawn on the big panel's scale


def test_an_all_zero_panel_says_so_instead_of_an_axis(drawn):
    ax = drawn["always zero"]
    assert any("all zero" in t.get_text() for t in ax.texts)
    assert list(ax.get_xticks()) == [] and not ax.patches  # no bars, no scale


def test_points_at_one_place_share_a_readable_label():
    assert _shared_label(["2", "3", "4", "5", "8"], ["foreign_sleep"]) == \
        "foreign_sleep = 2, 3, 4, 5 and 8 (same point)"
    assert _shared_label(["4"], ["foreign_sleep"]) == "4"


def test_a_bound_from_identical_runs_does_not_set_the_scale(monkeypatch, tmp_path):
    figures = []
    monkeypatch.setattr(experiment_charts.Figure, "savefig", lambda self, *a, **k: figures.append(self))
    metric = Metric("legit.failed", "never accepted", "count", "lower")
    table = pd.DataFrame({"policy": ["none", "throttle"], "legit.failed": [0.0, 9.7],
                          "legit.failed:low": [0.0, 0.9], "legit.failed:high": [20_761.0, 18.4],
                          "legit.failed:rule": ["no variation: rule of three over runs", "t"]})
    compare_chart(table, [metric], ["none", "throttle"], "none", "t", tmp_path / "c.png")
    right = figures[0].axes[0].get_xlim()[1]
    assert 18.4 < right < 100  # the t whisker fits; the 20,761 bound runs off the edge
