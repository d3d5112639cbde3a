"""Test files of a service (`generate._test_files`): every scenario of every rule group is
tested exactly once, whichever file it lands in: its group's own, a shared one, a lane
apart from a shared one, or the host's file that lanes are given to (`rule_tests.host`);
and each file lists the rule file of every alert its test groups check."""

from __future__ import annotations

from collections import Counter

import yaml
from test_pack_once import _services
from watchkeeper import generate as gen
from watchkeeper import naming
from watchkeeper.rules import build_groups


def test_every_scenario_is_tested_once_in_a_file_listing_what_it_checks(tmp_path):
    hosted = 0
    for service in _services(tmp_path):
        groups = build_groups(service)
        # names of merged scenarios (already some of a group's, see `pack`) are joined
        expected = Counter(n for g in groups for s in g.scenarios for n in s.name.split("; "))
        found: Counter[str] = Counter()
        files = gen.service_alert_files(service, "")
        alerts = {path.removeprefix("alerts/"): yaml.safe_load(text)
                  for path, text in files.items() if path.endswith(".rules.yml")}
        defined = {rule["alert"] for rules in alerts.values() for group in rules["groups"]
                   for rule in group["rules"] if "alert" in rule}
        for path, text in files.items():
            if not path.startswith("alerts/tests/"):
                continue
            test = yaml.safe_load(text)
            loaded = {rule["alert"] for listed in test["rule_files"]
                      for group in alerts[listed.removeprefix("../")]["groups"]
                      for rule in group["rules"] if "alert" in rule}
            for group in test["tests"]:
                found.update(group["name"].split("; "))
                checked = {check["alertname"] for check in group.get("alert_rule_test", ())
                           } & defined  # (an alert of no group here: checked not firing)
                assert checked <= loaded, (path, checked - loaded)
            stem = path.removeprefix("alerts/tests/").removesuffix(".test.yml")
            own = naming.group_stem(service.name, f"{service.name}-runtime")
            hosted += stem.startswith(own + "+")
        assert found == expected, service.name
    assert hosted >= 20  # runtime's file holds another group's lanes apart
