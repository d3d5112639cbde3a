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
