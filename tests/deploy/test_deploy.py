"""`watchkeeper deploy` against the Grafana stand-in: plan, safe apply, drift, prune, retries,
and the secret never printed."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
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
    monkeypatch.setattr(deploy.time, "sleep", sleeps.append)  # retries without waiting
    with running() as (url, state):
        for name in ("GRAFANA_TOKEN", "GRAFANA_TOKEN_FILE", "GRAFANA_USER", "GRAFANA_PASSWORD"):
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
    assert "last saved by admin" in run.out and "--force overwrites" in run.out
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


def test_versions_endpoint_missing_falls_back_to_the_412():
    assert deploy._edited_elsewhere(_FakeClient(404, {"message": "Not found"}), "x") is None
    ours = [{"version": 4, "createdBy": "sa", "message": deploy.MESSAGE}]
    assert deploy._edited_elsewhere(_FakeClient(200, ours), "x") is None


def test_credentials_in_the_url_are_refused():
    with pytest.raises(deploy.DeployError) as error:
        deploy.base_url("https://admin:s3cret@grafana.example.com", {})
    assert "s3cret" not in str(error.value)
