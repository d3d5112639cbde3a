"""`test_file(packed=True)`: the test groups `lanes_apart` gives for the set of every rule
group of a shared test file are what `pack` makes of them again with the same rules, so
the shared file is packed once (see `lanes_apart`'s docstring for why). Checked on every
shared file of every spec we have and of benchmark services of each kind; the subsets,
whose rules are fewer, are packed again and not checked here."""

from __future__ import annotations

from pathlib import Path

from bench_spec import bench_spec
from watchkeeper import generate as gen
from watchkeeper.load import load_spec
from watchkeeper.rule_tests import lanes_apart, layout, pack
from watchkeeper.rules import build_groups
from watchkeeper.signals.common import test_step as step_of

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "tests" / "generator" / "scenarios"
SPECS = [REPO / "spec" / "services.yaml", SCENARIOS / "shop.yaml",
         SCENARIOS / "slo_shop.yaml", SCENARIOS / "every_resolved_type.yaml",
         SCENARIOS / "checkout.yaml"]


def _bench_services(count: int, **kinds):
    return bench_spec(count, **kinds)


def _services(tmp_path):
    import yaml

    for path in SPECS:
        yield from load_spec(path).services
    for index, kinds in enumerate([{}, {"unique": True}, {"budget_sets": 3}]):
        path = tmp_path / f"bench{index}.yaml"
        path.write_text(yaml.safe_dump(_bench_services(12, **kinds), sort_keys=False))
        yield from load_spec(path).services


def test_every_groups_lanes_are_packed_as_they_are(tmp_path):
    shared = 0
    for service in _services(tmp_path):
        groups = build_groups(service)
        for members in layout(groups, step_of(service)):
            if len(members) < 2:
                continue
            needed = {id(g) for m in members
                      for g in gen._groups_checked(m, groups, service.name)}
            checked = [g for g in groups if id(g) in needed]
            lanes = lanes_apart(members, checked)
            scenarios, reading = lanes[0]
            if len(reading) != len(checked):
                continue  # no test group reads every group
            assert pack(scenarios, checked) == scenarios, service.name
            shared += 1
    assert shared >= 20  # the bench services' http+database+cache+availability files


def test_the_files_are_the_same_packed_once_or_twice(tmp_path, monkeypatch):
    """The whole output of benchmark services, with `test_file` told to pack every time
    (the code before) and as it is now: byte for byte the same."""
    import yaml
    from watchkeeper import rule_tests

    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(_bench_services(20), sort_keys=False))
    spec = load_spec(path)
    now = gen.generate(spec, "bench.yaml", memo=False)
    test_file, told = rule_tests.test_file, []

    def always(*args, **kwargs):
        told.append(kwargs.get("packed", False))
        return test_file(*args, **{**kwargs, "packed": False})

    monkeypatch.setattr(gen, "test_file", always)
    assert gen.generate(spec, "bench.yaml", memo=False) == now
    assert told.count(True) >= 20  # one shared file a service skipped its second packing
