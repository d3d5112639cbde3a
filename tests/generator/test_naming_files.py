"""Names of the rule and promtool test files: what each part of a name says, and that the
service a file belongs to is read back from it (`generate --shard` keeps a service's files
together by that)."""

from __future__ import annotations

from watchkeeper import naming, shard


def test_a_group_is_named_by_its_service_and_section():
    assert naming.group_stem("svc-7", "svc-7-http") == "svc-7.http"
    assert naming.group_stem("svc-7", "svc-7-slo-report") == "svc-7.slo-report"
    assert naming.rules_path("svc-7.http") == "alerts/svc-7.http.rules.yml"
    assert naming.listed_rules("svc-7.http") == "../svc-7.http.rules.yml"
    assert naming.test_path("svc-7.http") == "alerts/tests/svc-7.http.test.yml"


def test_a_shared_test_file_names_every_group_once_service_first():
    stems = ["svc-7.http", "svc-7.database", "svc-7.cache", "svc-7.availability"]
    assert naming.shared_test_stem(stems) == "svc-7.http+database+cache+availability"
    assert naming.shared_test_stem(["svc-7.leak"]) == "svc-7.leak"


def test_with_and_apart_name_what_else_a_file_lists():
    assert naming.with_stem("svc-7.leak", ["svc-7.runtime"]) == "svc-7.leak.with-runtime"
    assert (naming.with_stem("svc-7.leak", ["svc-7.runtime", "svc-7.http"])
            == "svc-7.leak.with-runtime+http")
    assert naming.apart_stem("svc-7.http+database") == "svc-7.http+database.apart"


def test_the_shard_reads_the_service_back_from_every_kind_of_name():
    """Service names may contain dashes and digits and end like a section (`a-http`); the
    service is everything before the first dot, so `a` and `a-http` never mix."""
    services = ["a", "a-http", "svc-7"]
    for service in services:
        stem = naming.group_stem(service, f"{service}-http")
        other = naming.group_stem(service, f"{service}-runtime")
        paths = [naming.rules_path(stem), naming.test_path(stem),
                 naming.test_path(naming.shared_test_stem([stem, other])),
                 naming.test_path(naming.with_stem(stem, [other])),
                 naming.test_path(naming.apart_stem(naming.shared_test_stem([other, stem])))]
        for path in paths:
            assert shard._owner(path, set(services)) == service, path


def test_parse_path_inverts_every_kind_of_name():
    """`naming.parse_path` gives back the service and section each builder above put in,
    and tells a rule file from a test file; shared files are nobody's."""
    stem = naming.group_stem("a-http", "a-http-slo-report")
    other = naming.group_stem("a-http", "a-http-runtime")
    cases = {
        naming.rules_path(stem): ("a-http", "slo-report", False),
        naming.test_path(stem): ("a-http", "slo-report", True),
        naming.test_path(naming.shared_test_stem([stem, other])):
            ("a-http", "slo-report+runtime", True),
        naming.test_path(naming.with_stem(stem, [other])):
            ("a-http", "slo-report.with-runtime", True),
        naming.test_path(naming.apart_stem(stem)): ("a-http", "slo-report.apart", True),
    }
    for path, expected in cases.items():
        assert naming.parse_path(path) == expected, path
    for path in ("alerts/alertmanager.yml", "alerts/alertmanager-routes.yml",
                 "dashboards/a-http.json", "alerts/a-http.http.test.yml",
                 "alerts/tests/a-http.http.rules.yml", "alerts/tests/sub/a.http.test.yml"):
        assert naming.parse_path(path) is None, path


def test_the_backtest_groups_rule_files_by_the_service_read_back(tmp_path):
    """The backtest replays each service's rule groups: every group of the generated rule
    files lands under the service named in its file, none under a test file or another
    service (`a` and `a-http` never mix)."""
    from watchkeeper.backtest import source

    spec = tmp_path / "spec.yaml"
    service = ("  - name: {}\n    selector: {{job: {}}}\n    language: go\n"
               "    http: {{error_ratio: {{warning: 1%, critical: 5%}}}}\n"
               "    runtime: {{cpu: {{warning: 70%, critical: 90%}}}}\n")
    spec.write_text("version: 1\ndefaults:\n  alertmanager: {receivers: none}\nservices:\n"
                    + service.format("a", "a") + service.format("a-http", "a-http"))
    documents = source.generated_documents(str(spec))
    assert sorted(documents) == ["a", "a-http"]
    for service, document in documents.items():
        names = [g["name"] for g in document["groups"]]
        assert names and all(n.startswith(f"{service}-") for n in names), names
        assert {f"{service}-http", f"{service}-runtime"} <= set(names), names
