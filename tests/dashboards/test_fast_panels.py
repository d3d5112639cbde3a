"""The time series built as plain data (`build._timeseries_data`, the hot path) write the
same text as the same panels built with grafanalib (`build._timeseries`, the builder of
record), for every chart of several specs: the committed one, the scenario specs (SLOs,
every resolved type), and the benchmark's services whose budgets differ."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from bench_spec import bench_spec
from watchkeeper.dashboards import build, grafana
from watchkeeper.load import load_spec

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "tests" / "generator" / "scenarios"
SPECS = [REPO / "spec" / "services.yaml", SCENARIOS / "shop.yaml",
         SCENARIOS / "slo_shop.yaml", SCENARIOS / "every_resolved_type.yaml",
         SCENARIOS / "checkout.yaml"]


def _bench_spec(tmp_path: Path) -> Path:
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(bench_spec(12), sort_keys=False), encoding="utf-8")
    return path


def _charts(spec_path: Path):
    for service in load_spec(spec_path, {}).services:
        for _, charts in build.layout(service):
            yield from (chart for chart in charts if chart.kind != "heatmap")


def _same(chart, x=12, y=17, width=build.WIDTH) -> None:
    fast = grafana.to_text(build._timeseries_data(chart, x, y, width))
    assert fast == grafana.to_text(build._timeseries(chart, x, y, width)), chart.title


@pytest.mark.parametrize("spec_path", SPECS, ids=lambda p: p.name)
def test_plain_panels_write_what_grafanalib_writes(spec_path):
    charts = list(_charts(spec_path))
    assert charts
    for chart in charts:
        _same(chart)


def test_plain_panels_of_differing_budgets(tmp_path):
    charts = list(_charts(_bench_spec(tmp_path)))
    assert len({(c.title, c.budget) for c in charts}) > len({c.title for c in charts})
    for chart in charts:
        _same(chart, x=0, y=3, width=2 * build.WIDTH)


def test_plain_panels_without_description_budget_or_queries():
    chart = next(c for c in _charts(SPECS[0]) if c.budget is not None)
    for changed in (replace(chart, description=None), replace(chart, budget=None),
                    replace(chart, queries=()), replace(chart, unit="reqps")):
        _same(changed)


def test_skeletons_are_not_changed_by_building():
    before = grafana.to_text(grafana.skeleton("timeseries"))
    for chart in _charts(SPECS[0]):
        build._timeseries_data(chart, 0, 0)
    assert grafana.to_text(grafana.skeleton("timeseries")) == before
