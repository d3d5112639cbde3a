"""`parts.Parts` gives exactly the files building each service directly gives, while services
share some budgets and not others, and a builder reading a budget it does not declare fails
instead of reusing a part built for other budgets."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_memo import SPECS, _write_bench, render
from watchkeeper import generate as gen
from watchkeeper import memo, parts, rules
from watchkeeper.load import load_spec
from watchkeeper.model import Service
from watchkeeper.signals import SIGNALS, common, leak


def _parts_memo() -> memo.Memo:
    """A memo that looks up no whole service: every file comes through `Parts`."""
    made = memo.Memo("spec.yaml")
    made.on = False
    return made


def _through(made: memo.Memo, service: Service) -> dict[str, str]:
    return made.files(service, render)


def _same_in_turn(services: list[Service]) -> memo.Memo:
    """Every service through one run's parts, in order, equal to building it directly."""
    made = _parts_memo()
    for service in services:
        assert _through(made, service) == render(service), service.name
    return made


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> list[Service]:
    """40 benchmark services: every service's set of budgets differs, each signal's budget
    repeats (3 to 11 values)."""
    path = _write_bench(tmp_path_factory.mktemp("bench") / "bench.yaml", 40)
    return list(load_spec(path, {}).services)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_every_spec_gives_the_files_building_gives(path: Path) -> None:
    services = list(load_spec(path, {}).services)
    made = _same_in_turn(services + services)  # the second round from held parts
    # services under the placeholder (the others get no parts: see memo.Memo.files), not
    # with links (copies: built)
    shaped = [s for s in services if memo.abstract(s) is not None]
    if shaped and not any(s.runbook_url or s.grafana_url for s in services):
        assert made.parts._same["tests"].hits >= len(shaped)


def test_bench_services_reuse_parts_and_give_the_same_files(bench) -> None:
    made = _same_in_turn(bench)
    # a test that always built directly would prove nothing
    latency = made.parts._signals["latency build"]
    assert latency.hits >= len(bench) - 5 and latency.misses <= 5
    assert made.parts._groups.hits > 0
    assert made.parts._same["rules"].hits > 0 and made.parts._same["estimate"].hits > 0
    assert made.parts._signals["latency charts"].hits >= len(bench) - 5
    # each chart's panel text at its place, made once (dashboards/build.py): still looked
    # up past the first services, whose charts are all new (the default probe gave up
    # within four services), and found for most panels of the later ones
    panels = made.parts._same["panel"]
    assert panels.on and panels.hits >= 12 * (len(bench) - 5)
    assert made.parts._same["frame"].hits == len(bench) - 1
    assert len(made.parts._leaves) <= parts.MAX_LEAVES


@pytest.mark.parametrize("budget_sets", [0, 3])
def test_whole_bench_spec_with_and_without_memo(tmp_path, budget_sets) -> None:
    spec = load_spec(_write_bench(tmp_path / "b.yaml", 30, budget_sets), {})
    assert gen.generate(spec, "b.yaml") == gen.generate(spec, "b.yaml", memo=False)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_single_budgets_changing_between_services(bench, data) -> None:
    """Services drawn from benchmark services, each with some budgets swapped for another
    service's (one budget apart from an earlier service, or several), go through one
    run's parts in turn and each gives the files building it directly gives."""
    paths = sorted(bench[0].budgets)
    services = []
    for index in range(data.draw(st.integers(2, 6))):
        base = data.draw(st.sampled_from(bench))
        budgets = dict(base.budgets)
        for path in data.draw(st.lists(st.sampled_from(paths), max_size=3)):
            budgets[path] = data.draw(st.sampled_from(bench)).budgets[path]
        if data.draw(st.booleans()):
            budgets.pop(data.draw(st.sampled_from(paths)))
        services.append(dataclasses.replace(base, name=f"svc-x{index}", budgets=budgets,
                                            selector=dataclasses.replace(
                                                base.selector,
                                                matchers=tuple(dataclasses.replace(
                                                    m, value=f"svc-x{index}")
                                                    for m in base.selector.matchers),
                                                example={**base.selector.example,
                                                         "job": f"svc-x{index}"})))
    _same_in_turn(services)


def _swap(monkeypatch, name: str, **changes) -> None:
    """The registry as `rules` sees it, with signal `name` changed."""
    swapped = tuple(dataclasses.replace(s, **changes) if s.name == name else s
                    for s in SIGNALS)
    monkeypatch.setattr(rules, "SIGNALS", swapped)


def test_reading_an_undeclared_budget_fails(monkeypatch, bench) -> None:
    latency = next(s for s in SIGNALS if s.name == "latency")

    def peeks(service: Service):
        service.budget("runtime.memory")  # not latency's: a part keyed without it
        return latency.build(service)

    _swap(monkeypatch, "latency", build=peeks)
    with pytest.raises(parts.UndeclaredRead, match=r"runtime\.memory"):
        _through(_parts_memo(), bench[0])


def test_walking_every_budget_fails(monkeypatch, bench) -> None:
    errors = next(s for s in SIGNALS if s.name == "errors")

    def walks(service: Service):
        list(service.budgets.values())
        return errors.build(service)

    _swap(monkeypatch, "errors", build=walks)
    with pytest.raises(parts.UndeclaredRead, match="without declaring"):
        _through(_parts_memo(), bench[0])


def test_a_signal_without_its_declared_reads_fails(monkeypatch, bench) -> None:
    """The leak reads the runtime counts' budgets (`Signal.reads`); without declaring
    them its build fails rather than being keyed without them."""
    _swap(monkeypatch, "leak", reads=())
    with pytest.raises(parts.UndeclaredRead, match="runtime"):
        _through(_parts_memo(), bench[0])


def test_a_signal_declaring_every_budget_still_gives_the_same_files(monkeypatch,
                                                                    bench) -> None:
    _swap(monkeypatch, "leak", reads=None)
    _same_in_turn(bench[:6])


def test_views_carry_the_steps_of_the_whole_service(bench) -> None:
    service = bench[1]
    seen = parts.Parts().service(service)
    view = seen.view("test", frozenset())
    # worked by hand for the bench spec: every `for` and rate window 5m, so half of them
    # (2m30s, also the cap); leak windows 1h, so 1h/8 = 7m30s, above the 5m ceiling: 5m
    assert common.test_step(view) == common.test_step(service) == 150
    assert common.leak_test_step(view) == common.leak_test_step(service) == 300
    assert leak.SIGNAL.reads and set(leak.SIGNAL.reads) <= {
        key.path for s in SIGNALS if s.name == "runtime" for key in s.keys}


def test_tables_are_bounded_and_give_up_when_nothing_repeats() -> None:
    table = parts._Table(size=4)
    for key in range(3):
        table.put(key, key)
        assert table.get(key) == key
    for key in range(3, 10):
        assert table.get(key) is None
        table.put(key, key)
        assert len(table._held) <= 4
    assert table.get(0) == 0  # the entries with hits stayed
    for key in range(10, 10 + parts.PROBE):
        table.get(key)
    assert not table.on and not table._held
    table.put("late", 1)
    assert table.get("late") is None
