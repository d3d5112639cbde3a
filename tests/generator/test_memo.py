"""`memo.Memo` gives exactly the files building the service directly gives: for services of
every spec we have (the committed one, the scenario specs with SLOs, jobs and every resolved
type, the benchmark's) under many names, tricky ones included, and for whole specs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from bench_spec import bench_spec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from watchkeeper import generate as gen
from watchkeeper import memo
from watchkeeper.load import load_spec
from watchkeeper.model import Service
from watchkeeper.parts import Parts

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "tests" / "generator" / "scenarios"
SPECS = [REPO / "spec" / "services.yaml", SCENARIOS / "shop.yaml",
         SCENARIOS / "slo_shop.yaml", SCENARIOS / "every_resolved_type.yaml",
         SCENARIOS / "checkout.yaml"]


def _write_bench(path: Path, count: int, budget_sets: int = 0) -> Path:
    path.write_text(yaml.safe_dump(bench_spec(count, budget_sets=budget_sets),
                                   sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> list[Service]:
    bench = _write_bench(tmp_path_factory.mktemp("bench") / "bench.yaml", 3)
    return [s for path in [*SPECS, bench] for s in load_spec(path, {}).services]


def render(service: Service, parts: Parts | None = None) -> dict[str, str]:
    """Every per-service file, built directly (from `parts` when given: see `memo.Render`)."""
    files: dict[str, str] = {}
    for output in gen.OUTPUTS.values():
        files.update(output.per_service(service, "spec.yaml", parts))
    return files


def renamed(service: Service, name: str) -> Service:
    """`service` called `name`, its selector values that were its name too."""
    old, selector = service.name, service.selector
    return dataclasses.replace(service, name=name, selector=dataclasses.replace(
        selector,
        matchers=tuple(dataclasses.replace(m, value=name) if m.value == old else m
                       for m in selector.matchers),
        example={k: name if v == old else v for k, v in selector.example.items()}))


# Names that are other things to YAML, PromQL or Grafana, words the generated text is full
# of, names at and past the dashboard uid's length, names inside the placeholder
TRICKY = ["y", "n", "yes", "no", "on", "off", "null", "true", "nan", "inf", "infinity",
          "i", "e1", "n-1", "http", "job", "service", "rules", "alerts", "latency", "cache",
          "wallets", "memory", "runtime", "svc", "a", "z", "zq", "memo", "go", "d",
          "a" * 37, "b" * 38, "c" * 40, "x-" * 18 + "y", "api-" * 9 + "a", "zqxjvkwmemo",
          "zqxjvkwmemo-2", "p99", "le", "for", "description", "model", "watchkeeper"]
NAMES = st.one_of(st.sampled_from(TRICKY),
                  st.from_regex(r"[a-z][a-z0-9-]{0,39}", fullmatch=True))


@pytest.fixture(scope="module")
def warm(bases) -> list[memo.Memo]:
    """A memo per base service holding its files under the placeholder (from `svc-x`)."""
    tables = [memo.Memo("spec.yaml") for _ in bases]
    for table, base in zip(tables, bases, strict=True):
        table.files(renamed(base, "svc-x"), render)
        assert table.misses == 1
    return tables


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_memo_gives_the_files_building_gives(bases, warm, data) -> None:
    index = data.draw(st.integers(0, len(bases) - 1))
    service = renamed(bases[index], data.draw(NAMES))
    hits = warm[index].hits
    assert warm[index].files(service, render) == render(service)
    # names the memo can stand for came from the held files, not from building
    assert warm[index].hits == hits + (memo.abstract(service) is not None)


@pytest.mark.parametrize("name", ["svc-1", "checkout-api", "ingest", "notifications"])
def test_usual_names_are_memoised(bases, name) -> None:
    """The guard does not turn the memo off for ordinary names (a test that always went
    the direct way would prove nothing above)."""
    assert all(memo.abstract(renamed(base, name)) is not None for base in bases)


@pytest.mark.parametrize("name", ["yes", "null", "nan", "inf", "n", "b" * 38])
def test_names_the_placeholder_cannot_stand_for(bases, name) -> None:
    """Words YAML reads as bool, null or number are quoted where a name is not; a name
    past 37 characters gets a hashed dashboard uid: these are built directly."""
    assert memo.abstract(renamed(bases[0], name)) is None


def test_name_inside_another_text_is_built_directly(bases) -> None:
    """A label or metric merely containing the name would be changed by putting the name
    back in; such services are built directly (and still the same)."""
    base = renamed(bases[0], "orders")
    for service in (dataclasses.replace(base, labels={**base.labels, "team": "orders-team"}),
                    dataclasses.replace(base, labels={**base.labels, "orders": "x"}),
                    dataclasses.replace(base, runbook_url="https://wiki/orders/{alert}")):
        assert memo.abstract(service) is None
        table = memo.Memo("spec.yaml")
        assert table.files(service, render) == render(service)
        assert table.files(service, render) == render(service)
        assert table.hits == table.misses == 0


def test_services_the_placeholder_cannot_stand_for_get_no_parts(bases) -> None:
    """Parts are keyed by the service without its budgets, name included: those of a
    service built under its own name could serve no other service, so none are looked up
    or held for it (nor counted against the parts of the others); a service built under
    the placeholder gets them, and both give the files building gives."""
    table = memo.Memo("spec.yaml")
    given: list[Parts | None] = []

    def spy(service: Service, parts: Parts | None) -> dict[str, str]:
        given.append(parts)
        return render(service, parts)

    refused = [renamed(bases[0], "yes"), renamed(bases[1], "b" * 38),
               dataclasses.replace(renamed(bases[0], "orders"), runbook_url="https://w/orders")]
    for service in refused:
        assert memo.abstract(service) is None
        assert table.files(service, spy) == render(service)
    assert given == [None] * len(refused)
    assert not table.parts._signals and not table.parts._groups._held
    assert table.files(renamed(bases[0], "orders"), spy) == render(renamed(bases[0], "orders"))
    assert given[-1] is table.parts and table.parts._signals


def test_placeholder_in_the_spec_name_turns_the_memo_off(bases) -> None:
    table = memo.Memo(f"{memo.PLACEHOLDER}.yaml")
    table.files(bases[0], render)
    assert table.files(bases[0], render) == render(bases[0])
    assert table.hits == table.misses == 0


def _budgets(base: Service, index: int, name: str) -> Service:
    """`base` called `name`, with the `index`-th set of budgets (a rate window of its own)."""
    return dataclasses.replace(base, name=name, rate_window=60.0 + index)


def _big(service: Service, parts: Parts | None = None) -> dict[str, str]:
    """Files of ~10,000 characters that show which service they came from."""
    return {f"{service.name}.yaml": f"{service.name} {service.rate_window}" + "x" * 10_000}


def test_memo_is_bounded_and_gives_up_when_services_do_not_repeat(bases) -> None:
    table = memo.Memo("spec.yaml", max_chars=41_000)
    for i in range(5):
        table.files(_budgets(bases[0], i, f"svc-{i}"), _big)
        assert table.chars <= table.max_chars
    assert len(table._held) == 3  # ~13,300 characters each with the key
    shown = 0
    for i in range(memo.PROBE + 5):  # every service with budgets of its own
        service = _budgets(bases[0], 10 + i, f"svc-{i}")
        shown += table.files(service, lambda s, parts: {"f": s.name}) == {"f": f"svc-{i}"}
    assert shown == memo.PROBE + 5
    assert not table.on and not table._held and table.chars == 0


@pytest.mark.parametrize("sets", [40, 100])
def test_budgets_taken_in_turn_hit_though_more_than_the_memo_holds(bases, sets) -> None:
    """Services taking more sets of budgets in turn than the memo holds (16 entries used to
    be its bound: each was dropped just before it came round again, no hit ever): the
    entries held from the first round hit in every later one, the rest take turns in one
    place, the memo never holds more than its bound and does not give up."""
    table = memo.Memo("spec.yaml", max_chars=20 * 13_600)
    built: list[str] = []

    def render(service: Service, parts: Parts | None) -> dict[str, str]:
        built.append(service.name)
        return _big(service)

    rounds = 4
    for turn in range(rounds):
        for index in range(sets):
            name = f"svc-{turn}-{index}"
            assert table.files(_budgets(bases[0], index, name), render) == _big(
                _budgets(bases[0], index, name))
            assert table.chars <= table.max_chars
    held = len(table._held)
    assert 15 <= held <= 20
    assert table.on
    # every round after the first: all but the one place taken in turn hit
    assert table.hits == (rounds - 1) * (held - 1)
    assert table.misses == len(built) == rounds * sets - table.hits


def test_services_grouped_by_budgets_hit_while_their_group_lasts(bases) -> None:
    """In a spec sorted by budgets a group's first service is built, the others hit, even
    once the memo is full of groups that will not come again."""
    table = memo.Memo("spec.yaml", max_chars=5 * 13_600)
    for index in range(30):
        for copy in range(4):
            table.files(_budgets(bases[0], index, f"svc-{index}-{copy}"), _big)
    assert table.misses == 30 and table.hits == 30 * 3


def test_texts_bigger_than_the_memo_are_built_each_time(bases) -> None:
    table = memo.Memo("spec.yaml", max_chars=5_000)
    for copy in range(3):
        service = _budgets(bases[0], 0, f"svc-{copy}")
        assert table.files(service, _big) == _big(service)
    assert table.misses == 3 and not table._held and table.chars == 0


@pytest.mark.parametrize("budget_sets", [0, 3])
def test_generate_with_and_without_memo(tmp_path, budget_sets) -> None:
    """Whole specs, in worker processes (70 services: the pool is used), byte for byte."""
    spec = load_spec(_write_bench(tmp_path / "spec.yaml", 70, budget_sets), {})
    assert gen.generate(spec, "spec.yaml") == gen.generate(spec, "spec.yaml", memo=False)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_every_spec_same_with_and_without_memo(path) -> None:
    spec = load_spec(path, {})
    assert gen.generate(spec, path.name) == gen.generate(spec, path.name, memo=False)


def test_an_error_names_the_service_not_the_placeholder(bases) -> None:
    """A builder's error reaches the user with the service's own name."""
    def failing(service: Service, parts: Parts | None) -> dict[str, str]:
        raise ValueError(f"{service.name}: cannot be built")

    with pytest.raises(ValueError, match=r"^orders: cannot be built$"):
        memo.Memo("spec.yaml").files(renamed(bases[0], "orders"), failing)


def test_a_service_no_pickle_holds_is_built_directly(bases) -> None:
    service = dataclasses.replace(bases[0], labels={**bases[0].labels, "x": lambda: 0})
    assert memo.abstract(service) is None
