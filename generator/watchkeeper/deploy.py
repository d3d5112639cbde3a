"""`watchkeeper deploy`: plan, then apply, generated dashboards to Grafana safely.

Written against Grafana's HTTP API as served by Grafana 9.x to 11.x (and still by 12):
`/api/folders`, `/api/search`, `/api/dashboards/db`, `/api/dashboards/uid/:uid` and its
`/versions`. Safety rules, and why:

* Plan first, always: each dashboard is `create`, `update` (with a short diff),
  `unchanged` (compared without `id`/`version`, and never re-posted) or `delete`.
* Updates post the version read with `overwrite: false`, so an edit made in between is a
  412 from Grafana and is reported as drift, not overwritten. Dashboards whose latest
  version was saved by someone else (not by watchkeeper) are drift too. `--force` overwrites.
* `folderUid` is always sent: an update without it moves the dashboard to the root folder.
* Only dashboards tagged `watchkeeper-managed` are ever deleted, and only with `--prune`.
* Connection errors, timeouts and 5xx retry with bounded exponential backoff; a re-run
  after an interruption converges because unchanged dashboards are skipped.
* The secret is sent only in the Authorization header, and every line printed passes
  through `redact`, so it never reaches output, logs or error messages.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watchkeeper.dashboards.ids import MANAGED_TAG

DEFAULT_FOLDER_UID = "watchkeeper"
DEFAULT_FOLDER_TITLE = "watchkeeper"
MESSAGE = "watchkeeper deploy"  # version message marking saves made by this tool
VOLATILE = ("id", "version")


class DeployError(Exception):
    """A user-facing problem (missing URL or credentials, unreachable Grafana): exit 2."""


# --- Credentials and HTTP -----------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """The Authorization header and the secret strings that must never be printed."""

    header: str = field(repr=False)
    secrets: tuple[str, ...] = field(repr=False)
    kind: str = "token"

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "***")
        return text


def credentials(env: Mapping[str, str], token_file: str | None) -> Credentials:
    """Service-account token (GRAFANA_TOKEN or a token file) or basic auth, in that order."""
    token = env.get("GRAFANA_TOKEN", "").strip()
    path = token_file or env.get("GRAFANA_TOKEN_FILE")
    if not token and path:
        try:
            token = Path(path).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise DeployError(f"cannot read the token file {path}: {error.strerror}") from None
        if not token:
            raise DeployError(f"the token file {path} is empty")
    if token:
        return Credentials(f"Bearer {token}", (token,), "token")
    user, password = env.get("GRAFANA_USER", ""), env.get("GRAFANA_PASSWORD", "")
    if user and password:
        pair = base64.b64encode(f"{user}:{password}".encode()).decode()
        return Credentials(f"Basic {pair}", (password, pair), "basic auth")
    raise DeployError("no Grafana credentials: set GRAFANA_TOKEN, pass --token-file, or set "
                      "GRAFANA_USER and GRAFANA_PASSWORD")


def base_url(flag: str | None, env: Mapping[str, str]) -> str:
    url = (flag or env.get("GRAFANA_URL", "")).strip().rstrip("/")
    if not url:
        raise DeployError("no Grafana URL: pass --url or set GRAFANA_URL")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DeployError("the Grafana URL must look like https://grafana.example.com")
    if parts.username or parts.password:
        raise DeployError("put credentials in GRAFANA_TOKEN or GRAFANA_USER/GRAFANA_PASSWORD, "
                          "not in the Grafana URL")
    return url


@dataclass
class Client:
    """Grafana HTTP API calls with bounded retries on connection errors, timeouts and 5xx."""

    url: str
    creds: Credentials
    attempts: int = 5
    backoff: float = 0.5  # seconds before the second attempt; doubles each time
    timeout: float = 10.0
    sleep: Callable[[float], None] = field(default=lambda seconds: time.sleep(seconds))
    retried: int = 0

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        problem = ""
        for attempt in range(self.attempts):
            if attempt:
                self.retried += 1
                self.sleep(min(self.backoff * 2 ** (attempt - 1), 30.0))
            request = urllib.request.Request(self.url + path, data=data, method=method, headers={
                "Authorization": self.creds.header, "Accept": "application/json",
                "Content-Type": "application/json", "User-Agent": "watchkeeper"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return response.status, _json(response.read())
            except urllib.error.HTTPError as error:
                payload = _json(error.read())
                if error.code < 500:
                    return error.code, payload
                problem = f"HTTP {error.code}"
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                reason = getattr(error, "reason", error)
                problem = type(reason).__name__ if not str(reason) else str(reason)
        raise DeployError(self.creds.redact(
            f"{method} {path} failed after {self.attempts} attempts: {problem}"))


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _message(payload: Any, status: int) -> str:
    if isinstance(payload, dict) and payload.get("message"):
        return str(payload["message"])
    return f"HTTP {status}"


# --- Plan ----------------------------------------------------------------------------------


@dataclass
class Action:
    kind: str  # create | update | unchanged | delete | orphan | drift
    uid: str
    title: str
    changes: list[str] = field(default_factory=list)
    dashboard: dict[str, Any] | None = None  # what would be posted
    remote_id: int | None = None
    remote_version: int | None = None


def load_local(root: Path) -> list[dict[str, Any]]:
    """The generated dashboards under `root/dashboards/` (provisioning files excluded)."""
    folder = root / "dashboards"
    files = sorted(folder.glob("*.json"))
    if not files:
        raise DeployError(f"no dashboards in {folder}/; run `watchkeeper generate` first")
    dashboards = []
    for path in files:
        try:
            dashboard = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as error:
            raise DeployError(f"{path}: not valid JSON ({error})") from None
        if not isinstance(dashboard, dict) or not dashboard.get("uid"):
            raise DeployError(f"{path}: a dashboard needs a uid")
        if MANAGED_TAG not in dashboard.get("tags", []):
            dashboard["tags"] = [*dashboard.get("tags", []), MANAGED_TAG]
        dashboards.append(dashboard)
    return dashboards


def normalized(dashboard: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in dashboard.items() if k not in VOLATILE}


def changes(old: Mapping[str, Any], new: Mapping[str, Any], limit: int = 6) -> list[str]:
    """A short, human diff: changed settings, and panels added, removed or changed."""
    out = [f"{key} changed" for key in sorted(set(old) | set(new))
           if key not in (*VOLATILE, "panels") and old.get(key) != new.get(key)]
    before = {p.get("id"): p for p in old.get("panels", [])}
    after = {p.get("id"): p for p in new.get("panels", [])}
    for pid in sorted(set(before) | set(after), key=str):
        title = (after.get(pid) or before.get(pid) or {}).get("title", "")
        if pid not in before:
            out.append(f"panel {title!r} added")
        elif pid not in after:
            out.append(f"panel {title!r} removed")
        elif before[pid] != after[pid]:
            out.append(f"panel {title!r} changed")
    if len(out) > limit:
        out = [*out[:limit], f"{len(out) - limit} more"]
    return out


def _edited_elsewhere(client: Client, uid: str) -> str | None:
    """Who saved the latest version, when it was not watchkeeper (None: ours or unknown)."""
    status, payload = client.call("GET", f"/api/dashboards/uid/{uid}/versions?limit=1")
    if status != 200:
        return None  # older Grafana without the uid endpoint: rely on the 412 alone
    versions = payload.get("versions", []) if isinstance(payload, dict) else payload
    if not versions:
        return None
    latest = max(versions, key=lambda v: v.get("version", 0))
    if str(latest.get("message", "")).startswith(MESSAGE):
        return None
    return str(latest.get("createdBy") or "someone")


def plan(client: Client, local: list[dict[str, Any]], folder_uid: str,
         prune: bool, force: bool) -> list[Action]:
    actions = []
    for dashboard in local:
        uid, title = dashboard["uid"], dashboard.get("title", "")
        status, payload = client.call("GET", f"/api/dashboards/uid/{urllib.parse.quote(uid)}")
        if status == 404:
            actions.append(Action("create", uid, title, dashboard=dashboard))
            continue
        if status != 200:
            raise DeployError(f"reading dashboard {uid}: {_message(payload, status)}")
        remote, meta = payload["dashboard"], payload.get("meta", {})
        diff = changes(remote, dashboard)
        if meta.get("folderUid", "") != folder_uid:
            diff.insert(0, f"folder {meta.get('folderUid') or '(root)'!r} -> {folder_uid!r}")
        kind = "update" if diff else "unchanged"
        if kind == "update" and not force and (who := _edited_elsewhere(client, uid)):
            kind, diff = "drift", [f"last saved by {who}, not watchkeeper", *diff]
        actions.append(Action(kind, uid, title, diff, dashboard, remote.get("id"),
                              remote.get("version")))
    wanted = {d["uid"] for d in local}
    tag = urllib.parse.quote(MANAGED_TAG)
    status, found = client.call("GET", f"/api/search?type=dash-db&tag={tag}&limit=5000")
    if status != 200:
        raise DeployError(f"searching managed dashboards: {_message(found, status)}")
    for item in sorted(found or [], key=lambda i: i.get("uid", "")):
        if item.get("uid") not in wanted and MANAGED_TAG in item.get("tags", []):
            actions.append(Action("delete" if prune else "orphan", item["uid"],
                                  item.get("title", "")))
    return actions


# --- Apply ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    done: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    drifted: int = 0

    def count(self, key: str) -> None:
        self.done[key] = self.done.get(key, 0) + 1


def ensure_folder(client: Client, uid: str, title: str, dry_run: bool) -> str:
    status, payload = client.call("GET", f"/api/folders/{urllib.parse.quote(uid)}")
    if status == 200:
        return "exists"
    if status != 404:
        raise DeployError(f"reading folder {uid}: {_message(payload, status)}")
    if dry_run:
        return "create"
    status, payload = client.call("POST", "/api/folders", {"uid": uid, "title": title})
    if status not in (200, 409, 412):  # 409/412: created meanwhile by another run
        raise DeployError(f"creating folder {uid}: {_message(payload, status)}")
    return "created"


def apply(client: Client, action: Action, folder_uid: str, force: bool) -> tuple[str, str]:
    """Carry out one action; returns (result, detail) with result ok | drift | failed."""
    if action.kind == "delete":
        status, payload = client.call("DELETE", f"/api/dashboards/uid/{action.uid}")
        return ("ok", "deleted") if status in (200, 404) else ("failed", _message(payload, status))
    assert action.dashboard is not None
    dashboard = {**action.dashboard, "id": action.remote_id}
    if action.kind == "create":
        dashboard.pop("version", None)
    else:
        dashboard["version"] = action.remote_version
    body = {"dashboard": dashboard, "folderUid": folder_uid, "overwrite": force,
            "message": MESSAGE}
    status, payload = client.call("POST", "/api/dashboards/db", body)
    if status == 200:
        verb = "created" if action.kind == "create" else "updated"
        return "ok", f"{verb} (version {payload.get('version')})"
    if status == 412:
        why = payload.get("status", "") if isinstance(payload, dict) else ""
        return "drift", f"{why or 'precondition failed'}: {_message(payload, status)}"
    return "failed", _message(payload, status)


@dataclass(frozen=True)
class Options:
    folder_uid: str = DEFAULT_FOLDER_UID
    folder_title: str = DEFAULT_FOLDER_TITLE
    dry_run: bool = False
    force: bool = False
    prune: bool = False


PLAN_WORDS = {"create": "create", "update": "update", "unchanged": "unchanged",
              "delete": "delete", "orphan": "orphan", "drift": "drift"}


def _plan_line(action: Action) -> str:
    line = f"  {action.kind:<9}  {action.uid:<28} {action.title}"
    if action.kind == "orphan":
        line += "  (managed, not in the spec; --prune deletes it)"
    if action.kind == "drift":
        line += "  (edited outside watchkeeper; skipped, --force overwrites)"
    if action.changes:
        line += "\n" + "\n".join(f"             - {change}" for change in action.changes)
    return line


def run(root: Path, client: Client, options: Options, say: Callable[[str], None]) -> int:
    """Plan, print it, and (unless dry-run) apply it. Returns the number of failures."""
    def out(text: str) -> None:
        say(client.creds.redact(text))

    local = load_local(root)
    folder = ensure_folder(client, options.folder_uid, options.folder_title, dry_run=True)
    actions = plan(client, local, options.folder_uid, options.prune, options.force)
    out(f"plan for {client.url} (folder {options.folder_uid}"
        f"{', to be created' if folder == 'create' else ''}):")
    for action in actions:
        out(_plan_line(action))
    counts = {k: sum(a.kind == k for a in actions) for k in PLAN_WORDS}
    out(f"plan: {counts['create']} to create, {counts['update']} to update, "
        f"{counts['unchanged']} unchanged, {counts['delete']} to delete"
        + (f", {counts['drift']} drifted" if counts["drift"] else "")
        + (f", {counts['orphan']} orphaned" if counts["orphan"] else ""))
    if options.dry_run:
        out("dry run: nothing was changed")
        return counts["drift"]
    ensure_folder(client, options.folder_uid, options.folder_title, dry_run=False)
    todo = [a for a in actions if a.kind in ("create", "update", "delete")]
    outcome = Outcome(drifted=counts["drift"])
    for index, action in enumerate(todo, 1):
        result, detail = apply(client, action, options.folder_uid, options.force)
        if result == "ok":
            outcome.count(action.kind)
        elif result == "drift":
            outcome.drifted += 1
            detail = f"drift, not overwritten ({detail}); re-run with --force to overwrite"
        else:
            outcome.failed += 1
            detail = f"FAILED: {detail}"
        out(f"[{index}/{len(todo)}] {action.uid}: {detail}")
    done = outcome.done
    out(f"applied: {done.get('create', 0)} created, {done.get('update', 0)} updated, "
        f"{done.get('delete', 0)} deleted, {counts['unchanged']} unchanged, "
        f"{outcome.drifted} drifted, {outcome.failed} failed"
        + (f" ({client.retried} retries)" if client.retried else ""))
    return outcome.failed + outcome.drifted
