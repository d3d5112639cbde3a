"""`watchkeeper deploy` against the Grafana stand-in: plan, safe apply, drift, prune, retries,
the secret never printed nor sent to another origin, and awkward answers (redirects, login
pages, missing endpoints) as exit 2 with one message."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import urllib3.util.retry
from watchkeeper import cli, deploy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from grafana_standin import State, running

REPO = Path(__file__).resolve().parents[2]
UIDS = ["wk-festivals-api", "wk-nextevent-api", "wk-overview", "wk-tickets-api"]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "dashboards", tmp_path / "dashboards")
    return tmp_path


@pytest.fixture
def grafana(monkeypatch):
    sleeps: list[float] = []
    monkeypatch.setattr(urllib3.util.retry.time, "sleep", sleeps.append)  # retries, no waiting
    with running() as (url, state):
        for name in ("GRAFANA_TOKEN", "GRAFANA_TOKEN_FILE", "GRAFANA_USER", "GRAFANA_PASSWORD",
                     "GRAFANA_PASSWORD_FILE"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("GRAFANA_URL", url)
        monkeypatch.setenv("GRAFANA_TOKEN", state.token)
        state.sleeps = sleeps
        yield state


class Run:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def wk(capsys, grafana):
    """Run `watchkeeper deploy`; every run also asserts that no secret was printed."""
    def run(*args: str) -> Run:
        code = cli.main(["deploy", *args])
        captured = capsys.readouterr()
        for secret in (grafana.token, grafana.basic[1]):
            assert secret not in captured.out + captured.err
        return Run(code, captured.out, captured.err)
    return run


def _posts(state: State) -> int:
    return sum(r == ("POST", "/api/dashboards/db") for r in state.requests)


def _line(out: str, uid: str) -> str:
    return next(line for line in out.splitlines() if f" {uid} " in line)


def test_dry_run_plans_creates_and_changes_nothing(wk, grafana, tree):
    run = wk(str(tree), "--dry-run")
    assert run.code == 0
    for uid in UIDS:
        assert _line(run.out, uid).split()[0] == "create"
    assert "to be created" in run.out
    assert "plan: 4 to create, 0 to update, 0 unchanged, 0 to delete" in run.out
    assert grafana.dashboards == {} and grafana.folders == {}
    assert all(method == "GET" for method, _ in grafana.requests)


def test_apply_creates_in_folder_then_rerun_is_unchanged(wk, grafana, tree):
    run = wk(str(tree))
    assert run.code == 0, run.out
    assert "applied: 4 created, 0 updated, 0 deleted, 0 unchanged, 0 drifted, 0 failed" in run.out
    assert "[1/4] wk-festivals-api: created (version 1)" in run.out
    assert set(grafana.dashboards) == set(UIDS)
    assert {r["folderUid"] for r in grafana.dashboards.values()} == {"watchkeeper"}
    posts = _posts(grafana)
    again = wk(str(tree), "--dry-run")
    assert "plan: 0 to create, 0 to update, 4 unchanged, 0 to delete" in again.out
    assert wk(str(tree)).code == 0
    assert _posts(grafana) == posts  # unchanged dashboards are never re-posted


def test_update_shows_diff_and_posts_read_version_without_overwrite(wk, grafana, tree):
    wk(str(tree))
    path = tree / "dashboards" / "tickets-api.json"
    dashboard = json.loads(path.read_text())
    next(p for p in dashboard["panels"] if p["id"] == 114)["description"] = "new budget"
    path.write_text(json.dumps(dashboard))
    plan = wk(str(tree), "--dry-run")
    assert _line(plan.out, "wk-tickets-api").split()[0] == "update"
    assert "- panel 'HTTP latency p99' changed" in plan.out
    assert "1 to update, 3 unchanged" in plan.out
    run = wk(str(tree))
    assert run.code == 0 and "wk-tickets-api: updated (version 2)" in run.out
    assert grafana.dashboards["wk-tickets-api"]["folderUid"] == "watchkeeper"


def test_ui_edit_is_drift_and_kept_until_force(wk, grafana, tree):
    wk(str(tree))
    grafana.ui_edit("wk-overview", title="edited by hand")
    run = wk(str(tree))
    assert run.code == 1
    assert _line(run.out, "wk-overview").split()[0] == "drift"
    assert "edited in Grafana since watchkeeper deployed it" in run.out
    assert "--force overwrites" in run.out
    assert grafana.dashboards["wk-overview"]["dashboard"]["title"] == "edited by hand"
    forced = wk(str(tree), "--force")
    assert forced.code == 0 and "wk-overview: updated" in forced.out
    assert grafana.dashboards["wk-overview"]["dashboard"]["title"] == "watchkeeper overview"


def test_edit_between_plan_and_apply_is_a_412_version_mismatch(grafana, tree):
    client = deploy.Client(os.environ["GRAFANA_URL"], deploy.credentials(
        {"GRAFANA_TOKEN": grafana.token}, None))
    local = deploy.load_local(tree)
    deploy.ensure_folder(client, "watchkeeper", "watchkeeper", dry_run=False)
    for action in deploy.plan(client, local, "watchkeeper", prune=False, force=False):
        deploy.apply(client, action, "watchkeeper", force=False)
    local[0]["description"] = "changed"
    action = deploy.plan(client, local, "watchkeeper", prune=False, force=False)[0]
    assert action.kind == "update"
    grafana.save({**grafana.dashboards[action.uid]["dashboard"], "refresh": "5s"}, "watchkeeper",
                 "sa-watchkeeper", deploy.MESSAGE)  # someone saves in between
    result, detail = deploy.apply(client, action, "watchkeeper", force=False)
    assert result == "drift" and detail.startswith("version-mismatch")
    assert grafana.dashboards[action.uid]["dashboard"]["refresh"] == "5s"


def test_same_title_elsewhere_is_name_exists(wk, grafana, tree):
    grafana.folders["watchkeeper"] = {"id": 1, "uid": "watchkeeper", "title": "watchkeeper"}
    grafana.save({"uid": "hand-made", "title": "watchkeeper overview", "tags": []},
                 "watchkeeper", "admin", "")
    run = wk(str(tree))
    assert run.code == 1
    assert "wk-overview: drift, not overwritten (name-exists" in run.out
    assert "hand-made" in grafana.dashboards


def test_prune_deletes_only_managed_dashboards(wk, grafana, tree):
    wk(str(tree))
    grafana.save({"uid": "wk-retired", "title": "retired", "tags": ["watchkeeper-managed"]},
                 "watchkeeper", "sa-watchkeeper", deploy.MESSAGE)
    grafana.save({"uid": "team-own", "title": "team's own", "tags": ["watchkeeper"]},
                 "watchkeeper", "admin", "")
    plain = wk(str(tree))
    assert _line(plain.out, "wk-retired").split()[0] == "orphan"
    assert "wk-retired" in grafana.dashboards
    plan = wk(str(tree), "--prune", "--dry-run")
    assert _line(plan.out, "wk-retired").split()[0] == "delete"
    assert "0 to create, 0 to update, 4 unchanged, 1 to delete" in plan.out
    assert "team-own" not in plan.out
    run = wk(str(tree), "--prune")
    assert run.code == 0 and "wk-retired: deleted" in run.out
    assert "wk-retired" not in grafana.dashboards and "team-own" in grafana.dashboards


def test_transient_failures_are_retried_with_bounded_backoff(wk, grafana, tree):
    grafana.fail("POST", "/api/dashboards/db", 503, times=2)
    grafana.fail("GET", "/api/dashboards/uid/", 0, times=1)  # dropped connection
    grafana.fail("GET", "/api/search", 502, times=1)
    run = wk(str(tree))
    assert run.code == 0, run.out + run.err
    assert "4 created" in run.out and "(4 retries)" in run.out
    assert grafana.sleeps and max(grafana.sleeps) <= 30


def test_interrupted_deploy_converges_on_rerun(wk, grafana, tree):
    grafana.fail("POST", "/api/dashboards/db", 500, times=100)
    failed = wk(str(tree))
    assert failed.code == 2 and failed.err.count("\n") == 1
    assert "failed after 5 attempts: HTTP 500" in failed.err
    grafana.faults.clear()
    assert wk(str(tree)).code == 0
    assert "4 unchanged" in wk(str(tree), "--dry-run").out


def test_secrets_never_printed_in_any_error(capsys, grafana, tree, monkeypatch):
    monkeypatch.setenv("GRAFANA_TOKEN", "glsa_wrong_but_secret")
    assert cli.main(["deploy", str(tree), "--dry-run"]) == 2
    out = capsys.readouterr()
    assert "Unauthorized" in out.err and "glsa_wrong_but_secret" not in out.out + out.err
    monkeypatch.delenv("GRAFANA_TOKEN")
    monkeypatch.setenv("GRAFANA_USER", "admin")
    monkeypatch.setenv("GRAFANA_PASSWORD", grafana.basic[1])
    assert cli.main(["deploy", str(tree), "--dry-run"]) == 0
    monkeypatch.setenv("GRAFANA_PASSWORD", "hunter2-secret")
    assert cli.main(["deploy", str(tree)]) == 2
    out = capsys.readouterr()
    assert "hunter2-secret" not in out.out + out.err
    assert grafana.basic[1] not in out.out + out.err


def test_token_file_and_usage_errors(wk, grafana, tree, tmp_path, monkeypatch):
    token_file = tmp_path / "token"
    token_file.write_text(grafana.token + "\n")
    monkeypatch.delenv("GRAFANA_TOKEN")
    assert wk(str(tree), "--dry-run", "--token-file", str(token_file)).code == 0
    missing = wk(str(tree), "--dry-run")
    assert missing.code == 2 and "no Grafana credentials" in missing.err
    monkeypatch.delenv("GRAFANA_URL")
    no_url = wk(str(tree), "--token-file", str(token_file))
    assert no_url.code == 2 and no_url.err.count("\n") == 1 and "Traceback" not in no_url.err


def test_dashboard_outside_folder_is_moved_back(wk, grafana, tree):
    wk(str(tree))
    grafana.dashboards["wk-overview"]["folderUid"] = ""
    plan = wk(str(tree), "--dry-run")
    assert "- folder '(root)' -> 'watchkeeper'" in plan.out
    assert wk(str(tree)).code == 0
    assert grafana.dashboards["wk-overview"]["folderUid"] == "watchkeeper"


class _FakeClient:
    """Answers the versions endpoint the way Grafana 9/10 (a list) or 11 (an object) does."""

    def __init__(self, status: int, payload):
        self.status, self.payload = status, payload

    def call(self, method, path, body=None):
        return self.status, self.payload


@pytest.mark.parametrize("payload", [
    [{"version": 3, "createdBy": "alice", "message": ""},
     {"version": 2, "createdBy": "sa", "message": deploy.MESSAGE}],
    {"continueToken": "", "versions": [{"version": 3, "createdBy": "alice", "message": ""}]},
])
def test_edits_by_others_recognised_in_both_versions_shapes(payload):
    assert deploy._edited_elsewhere(_FakeClient(200, payload), "x") == "alice"


def test_versions_endpoint_missing_is_unknown_not_ours():
    assert deploy._edited_elsewhere(_FakeClient(404, {"message": "Not found"}), "x") == \
        deploy.UNKNOWN
    assert deploy._edited_elsewhere(_FakeClient(200, []), "x") == deploy.UNKNOWN
    ours = [{"version": 4, "createdBy": "sa", "message": deploy.MESSAGE}]
    assert deploy._edited_elsewhere(_FakeClient(200, ours), "x") is None


def test_credentials_in_the_url_are_refused():
    with pytest.raises(deploy.DeployError) as error:
        deploy.base_url("https://admin:s3cret@grafana.example.com", {})
    assert "s3cret" not in str(error.value)


# --- issue 8: safe on the wire, fail-safe drift, offline plans --------------------------------


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_token_never_follows_a_redirect_to_another_origin(wk, grafana, tree, host):
    with running() as (other_url, other):
        port = other_url.rsplit(":", 1)[1]
        grafana.redirect_to = f"http://{host}:{port}"
        run = wk(str(tree), "--dry-run")
        assert run.code == 2 and "Traceback" not in run.err
        assert "was redirected to http://" in run.err and f":{port}/api/" in run.err
        assert "credentials were not sent there" in run.err
        assert other.authorizations == [] and other.dashboards == {}
    assert all(grafana.token in header for header in grafana.authorizations)


def test_sso_login_page_is_a_clear_error(wk, grafana, tree):
    grafana.sso_login = True
    run = wk(str(tree), "--dry-run")
    assert run.code == 2 and run.err.count("\n") == 1 and "Traceback" not in run.err
    url = os.environ["GRAFANA_URL"]
    assert f"GET {url}/api/folders/watchkeeper: expected JSON from Grafana's API" in run.err
    assert "text/html" in run.err and "Sign in - Example SSO" in run.err
    assert "after a redirect to" in run.err and "/login" in run.err


@pytest.mark.parametrize(("setup", "expected"), [
    ({"not_grafana": True}, "got HTTP 404 text/html"),
    ({"answers": {"/api/": (200, [])}}, "unexpected answer from Grafana (list: '[]')"),
    ({"answers": {"/api/": (200, {"status": "ok"})}},
     "unexpected answer from Grafana (an object without uid"),
])
def test_answers_that_are_not_grafanas_api(wk, grafana, tree, setup, expected):
    for key, value in setup.items():
        setattr(grafana, key, value)
    run = wk(str(tree))
    assert run.code == 2 and run.err.count("\n") == 1 and "Traceback" not in run.err
    assert expected in run.err
    assert _posts(grafana) == 0


def test_200_empty_list_for_a_dashboard_is_an_error_not_a_crash(wk, grafana, tree):
    wk(str(tree))
    grafana.answers["/api/dashboards/uid/wk-overview"] = (200, [])
    run = wk(str(tree), "--dry-run")
    assert run.code == 2 and "Traceback" not in run.err
    assert "reading dashboard" in run.err and "unexpected answer" in run.err


@pytest.mark.parametrize("versions_status", [404, 500])
def test_ui_edit_is_drift_without_the_versions_api(wk, grafana, tree, versions_status):
    assert wk(str(tree)).code == 0
    grafana.versions_status = versions_status
    grafana.ui_edit("wk-tickets-api", title="tweaked in the UI")
    run = wk(str(tree))
    assert run.code == 1
    assert _line(run.out, "wk-tickets-api").split()[0] == "drift"
    assert "edited in Grafana since watchkeeper deployed it" in run.out
    assert grafana.dashboards["wk-tickets-api"]["dashboard"]["title"] == "tweaked in the UI"
    assert "4 unchanged" not in run.out and "3 unchanged" in run.out


def test_deployed_without_hash_and_no_versions_api_is_drift(wk, grafana, tree):
    """Dashboards saved before hash tags existed: with no version history either, nobody can
    tell whether a person edited them, so they are not overwritten without --force."""
    assert wk(str(tree)).code == 0
    record = grafana.dashboards["wk-overview"]
    record["dashboard"]["tags"] = [t for t in record["dashboard"]["tags"]
                                   if not t.startswith(deploy.HASH_TAG)]
    record["dashboard"]["refresh"] = "1m"
    grafana.versions_status = 404
    run = wk(str(tree))
    assert run.code == 1 and "version history is unavailable" in run.out
    assert record["dashboard"]["refresh"] == "1m"
    assert wk(str(tree), "--force").code == 0


def test_hash_tag_is_stored_with_the_dashboard(wk, grafana, tree):
    assert wk(str(tree)).code == 0
    stored = grafana.dashboards["wk-overview"]["dashboard"]
    assert deploy.recorded_hash(stored) == deploy.content_hash(stored)
    local = json.loads((tree / "dashboards" / "overview.json").read_text())
    assert deploy.HASH_TAG not in json.dumps(local)  # only added on the wire


def test_offline_dry_run_needs_no_url_and_no_credentials(capsys, monkeypatch, tree):
    for name in ("GRAFANA_URL", "GRAFANA_TOKEN", "GRAFANA_TOKEN_FILE", "GRAFANA_USER",
                 "GRAFANA_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    assert cli.main(["deploy", str(tree), "--dry-run", "--offline"]) == 0
    out = capsys.readouterr().out
    assert "plan for (offline: an empty Grafana) (folder watchkeeper, to be created)" in out
    assert "plan: 4 to create, 0 to update, 0 unchanged, 0 to delete" in out
    assert cli.main(["deploy", str(tree), "--offline"]) == 2
    assert "add --dry-run" in capsys.readouterr().err


@pytest.mark.parametrize(("url", "expected"), [
    ("http://127.0.0.1:99999", "invalid port"),
    ("http://127.0.0.1:0", "invalid port"),
    ("ftp://grafana.example.com", "must look like https://"),
    ("https://grafana.example.com/?orgId=2", "must not have a query"),
])
def test_url_is_validated_before_anything_is_sent(wk, grafana, tree, url, expected):
    run = wk(str(tree), "--dry-run", "--url", url)
    assert run.code == 2 and expected in run.err and "Traceback" not in run.err


def test_unresolvable_host_is_named_and_not_retried(wk, grafana, tree):
    run = wk(str(tree), "--dry-run", "--url", "http://grafana.watchkeeper-test.invalid:3000")
    assert run.code == 2 and "Traceback" not in run.err
    assert "cannot reach Grafana at grafana.watchkeeper-test.invalid:3000" in run.err
    assert "does not resolve" in run.err
    assert grafana.sleeps == []  # failed at once, no backoff


def test_refused_connection_names_the_host(wk, grafana, tree):
    from servers import free_port

    port = free_port()
    run = wk(str(tree), "--dry-run", "--url", f"http://127.0.0.1:{port}")
    assert run.code == 2 and "Traceback" not in run.err
    assert f"cannot reach Grafana at 127.0.0.1:{port}: connection refused" in run.err


def test_password_from_a_file(wk, grafana, tree, tmp_path, monkeypatch):
    secret = tmp_path / "password"
    secret.write_text(grafana.basic[1] + "\n")
    monkeypatch.delenv("GRAFANA_TOKEN")
    monkeypatch.setenv("GRAFANA_USER", grafana.basic[0])
    monkeypatch.setenv("GRAFANA_PASSWORD_FILE", str(secret))
    assert wk(str(tree), "--dry-run").code == 0


def test_a_proxy_echoing_the_token_back_never_gets_it_printed(wk, grafana, tree):
    grafana.answers["/api/folders/"] = (200, {"echo": f"Bearer {grafana.token}"})
    run = wk(str(tree), "--dry-run")  # wk asserts the token is not in the output
    assert run.code == 2 and "an object without uid" in run.err and "***" in run.err
