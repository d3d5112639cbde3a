"""`watchkeeper deploy`: plan, then apply, generated dashboards to Grafana safely.

Written against Grafana's HTTP API as served by Grafana 9.x to 11.x (and still by 12):
`/api/folders`, `/api/search`, `/api/dashboards/db`, `/api/dashboards/uid/:uid` and its
`/versions`. Safety rules, and why:

* Plan first, always: each dashboard is `create`, `update` (with a short diff),
  `unchanged` (compared without `id`/`version`, and never re-posted) or `delete`.
* Updates post the version read with `overwrite: false`, so an edit made in between is a
  412 from Grafana and is reported as drift, not overwritten. Every deployed dashboard
  carries a `watchkeeper-sha256:` tag (Grafana keeps tags): content that no longer matches
  it was edited in Grafana, which is drift even where the versions API is missing; without
  the tag, the versions API decides, and when it cannot, it is drift (fail safe).
  `--force` overwrites.
* `folderUid` is always sent: an update without it moves the dashboard to the root folder.
* Only dashboards tagged `watchkeeper-managed` are ever deleted, and only with `--prune`.
* Connection errors, timeouts and 5xx retry with bounded exponential backoff (urllib3's
  Retry); a name that does not resolve is not retried. A re-run after an interruption
  converges because unchanged dashboards are skipped.
* The secret is sent only in the Authorization header and only to the configured origin:
  it is dropped on a redirect to another scheme, host or port, and such a redirect is an
  error. Every line printed passes through `redact`.
* Every answer must be JSON of the documented shape; a login page, a proxy or a wrong URL
  is one DeployError naming the URL and what came back (exit 2), never a traceback.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, NameResolutionError
from urllib3.util.retry import Retry
from watchkeeper.naming import MANAGED_TAG

DEFAULT_FOLDER_UID = "watchkeeper"
DEFAULT_FOLDER_TITLE = "watchkeeper"
MESSAGE = "watchkeeper deploy"  # version message marking saves made by this tool
VOLATILE = ("id", "version")
# Tag carrying a digest of the dashboard as deployed: Grafana keeps tags through API and UI
# saves, so an edit made in Grafana is recognised even without its versions API.
HASH_TAG = "watchkeeper-sha256:"
RETRY_STATUSES = (500, 502, 503, 504)
MAX_BACKOFF = 30.0


class DeployError(Exception):
    """A user-facing problem (missing URL or credentials, unreachable Grafana, an answer
    that is not Grafana's API): one line, exit 2."""


# --- Credentials and URL --------------------------------------------------------------------


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


NO_CREDENTIALS = Credentials("", (), "none")


def _secret(env: Mapping[str, str], name: str, file_flag: str | None = None) -> str:
    """`name` from the environment, else from the file named by the flag or `<name>_FILE`
    (secrets never need to be on a command line)."""
    value = env.get(name, "").strip()
    path = file_flag or env.get(f"{name}_FILE")
    if value or not path:
        return value
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as error:
        raise DeployError(f"cannot read {name} from the file {path}: {error.strerror}") from None
    if not value:
        raise DeployError(f"the file {path} ({name}) is empty")
    return value


def credentials(env: Mapping[str, str], token_file: str | None) -> Credentials:
    """Service-account token (GRAFANA_TOKEN, --token-file or GRAFANA_TOKEN_FILE) or basic
    auth (GRAFANA_USER with GRAFANA_PASSWORD or GRAFANA_PASSWORD_FILE), in that order."""
    token = _secret(env, "GRAFANA_TOKEN", token_file)
    if token:
        return Credentials(f"Bearer {token}", (token,), "token")
    user = env.get("GRAFANA_USER", "")
    password = _secret(env, "GRAFANA_PASSWORD") if user else ""
    if user and password:
        pair = base64.b64encode(f"{user}:{password}".encode()).decode()
        return Credentials(f"Basic {pair}", (password, pair), "basic auth")
    raise DeployError("no Grafana credentials: set GRAFANA_TOKEN or GRAFANA_TOKEN_FILE, pass "
                      "--token-file, or set GRAFANA_USER and GRAFANA_PASSWORD (or "
                      "GRAFANA_PASSWORD_FILE)")


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


def base_url(flag: str | None, env: Mapping[str, str]) -> str:
    """The Grafana base URL, checked before anything is sent."""
    url = (flag or env.get("GRAFANA_URL", "")).strip().rstrip("/")
    if not url:
        raise DeployError("no Grafana URL: pass --url or set GRAFANA_URL")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DeployError("the Grafana URL must look like https://grafana.example.com")
    if parts.username or parts.password:
        raise DeployError("put credentials in GRAFANA_TOKEN or GRAFANA_USER/GRAFANA_PASSWORD, "
                          "not in the Grafana URL")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 0 < port < 65536:
        raise DeployError(f"the Grafana URL {url} has an invalid port (1 to 65535)")
    if parts.query or parts.fragment:
        raise DeployError(f"the Grafana URL {url} must not have a query or fragment")
    return url


# --- HTTP --------------------------------------------------------------------------------------


class _Retry(Retry):
    """urllib3's bounded retries with exponential backoff, except that a name that does not
    resolve fails at once (retrying a typo five times only delays the message) and a
    server's Retry-After is capped like the backoff."""

    def increment(self, method=None, url=None, response=None, error=None, _pool=None,
                  _stacktrace=None):
        if isinstance(error, NameResolutionError):
            raise MaxRetryError(_pool, url, error) from error
        return super().increment(method, url, response, error, _pool, _stacktrace)

    def get_retry_after(self, response):
        after = super().get_retry_after(response)
        return None if after is None else min(after, MAX_BACKOFF)


class _Session(requests.Session):
    """Authorization goes to the configured origin only: requests already drops it when a
    redirect changes host, and here also when it changes scheme or port (requests keeps it
    on an http to https upgrade)."""

    def should_strip_auth(self, old_url: str, new_url: str) -> bool:
        return _origin(old_url) != _origin(new_url)


class _Auth(requests.auth.AuthBase):
    def __init__(self, header: str):
        self.header = header

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if self.header:
            request.headers["Authorization"] = self.header
        return request


@dataclass
class Client:
    """Grafana HTTP API calls: retries (urllib3) on connection errors, timeouts and 5xx;
    every answer must be JSON from the configured origin, else DeployError naming the URL
    and what came back."""

    url: str
    creds: Credentials
    attempts: int = 5
    backoff: float = 0.5  # urllib3 backoff factor: 0, 1, 2, 4 s ... (capped at 30 s)
    timeout: float = 10.0
    retried: int = 0
    session: requests.Session = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.session = _Session()
        retry = _Retry(total=self.attempts - 1, status_forcelist=RETRY_STATUSES,
                       allowed_methods=None, backoff_factor=self.backoff,
                       backoff_max=MAX_BACKOFF, raise_on_status=False,
                       raise_on_redirect=False, redirect=5)
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.auth = _Auth(self.creds.header)
        self.session.headers.update({"Accept": "application/json",
                                     "User-Agent": "watchkeeper"})

    @property
    def host(self) -> str:
        parts = urllib.parse.urlsplit(self.url)
        return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """(status, decoded JSON). 4xx answers are returned for the caller to judge; 5xx
        after the last retry, unreachable hosts and non-JSON answers raise DeployError."""
        target = self.url + path
        try:
            response = self.session.request(method, target, json=body, timeout=self.timeout)
        except requests.RequestException as error:
            raise DeployError(self.creds.redact(
                f"{method} {target}: cannot reach Grafana at {self.host}: "
                f"{_reason(error)}")) from None
        history = getattr(response.raw, "retries", None)
        self.retried += len(history.history) if history is not None else 0
        if _origin(response.url) != _origin(self.url):
            raise DeployError(self.creds.redact(
                f"{method} {target} was redirected to {response.url}, another scheme, host or "
                f"port (the credentials were not sent there); use the URL Grafana answers on"))
        if response.status_code in RETRY_STATUSES:
            raise DeployError(self.creds.redact(
                f"{method} {target} failed after {self.attempts} attempts: "
                f"HTTP {response.status_code}"))
        return response.status_code, self._json(method, target, response)

    def _json(self, method: str, target: str, response: requests.Response) -> Any:
        if response.status_code in (204,) or (not response.content and
                                              response.status_code < 300):
            return None
        try:
            return response.json()
        except ValueError:
            pass
        kind = response.headers.get("Content-Type", "no content type").split(";")[0]
        via = f" (after a redirect to {response.url})" if response.history else ""
        raise DeployError(self.creds.redact(
            f"{method} {target}: expected JSON from Grafana's API, got HTTP "
            f"{response.status_code} {kind}{via}: {_snippet(response.text)!r}; is the URL "
            "Grafana's, and not a login page or proxy in front of it?"))


def _reason(error: BaseException) -> str:
    """The innermost cause of a requests/urllib3 error, in words."""
    seen = error
    while True:
        inner = getattr(seen, "reason", None) or (seen.args[0] if seen.args and isinstance(
            seen.args[0], BaseException) else None)
        if inner is None or inner is seen:
            break
        seen = inner
    if isinstance(seen, NameResolutionError | socket.gaierror):
        return "the host name does not resolve (DNS)"
    text = str(seen)
    if "Connection refused" in text:
        return "connection refused"
    if isinstance(seen, requests.Timeout) or "timed out" in text.lower():
        return "timed out"
    return text.split(": ", 1)[-1] if ": " in text else (text or type(seen).__name__)


def _snippet(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat[:limit] + ("..." if len(flat) > limit else "")


def _message(payload: Any, status: int) -> str:
    if isinstance(payload, dict) and payload.get("message"):
        return str(payload["message"])
    return f"HTTP {status}"


def _expect_object(payload: Any, what: str, keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """An answer Grafana documents as a JSON object (with `keys`), or DeployError."""
    if not isinstance(payload, dict) or any(key not in payload for key in keys):
        shape = type(payload).__name__ if not isinstance(payload, dict) else \
            f"an object without {', '.join(k for k in keys if k not in payload)}"
        raise DeployError(f"{what}: unexpected answer from Grafana ({shape}: "
                          f"{_snippet(json.dumps(payload))!r}); is the URL Grafana's API?")
    return payload


class OfflineClient:
    """An empty Grafana, for `deploy --dry-run --offline`: every dashboard and the folder are
    missing, nothing is managed yet. Needs neither a URL nor credentials."""

    def __init__(self, url: str = "(offline: an empty Grafana)"):
        self.url, self.creds, self.retried = url, NO_CREDENTIALS, 0

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        if method != "GET":
            raise DeployError("offline: nothing can be applied; use --dry-run")
        if path.startswith("/api/search"):
            return 200, []
        return 404, {"message": "not found (offline)"}


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
    """The generated dashboards under `root/dashboards/` (provisioning files excluded), each
    tagged as managed and with the digest of its content."""
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
        tags = [t for t in dashboard.get("tags", []) if not str(t).startswith(HASH_TAG)]
        if MANAGED_TAG not in tags:
            tags.append(MANAGED_TAG)
        dashboard["tags"] = tags
        dashboard["tags"] = [*tags, HASH_TAG + content_hash(dashboard)]
        dashboards.append(dashboard)
    return dashboards


def content_hash(dashboard: Mapping[str, Any]) -> str:
    """Digest of what watchkeeper deploys: the dashboard without `id`, `version` and the
    hash tag itself, in canonical JSON (so Grafana's formatting does not matter)."""
    body = {k: v for k, v in dashboard.items() if k not in VOLATILE}
    body["tags"] = [t for t in body.get("tags", []) if not str(t).startswith(HASH_TAG)]
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def recorded_hash(dashboard: Mapping[str, Any]) -> str | None:
    tags = dashboard.get("tags") or []
    return next((str(t)[len(HASH_TAG):] for t in tags if str(t).startswith(HASH_TAG)), None)


def normalized(dashboard: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in dashboard.items() if k not in VOLATILE}


def changes(old: Mapping[str, Any], new: Mapping[str, Any], limit: int = 6) -> list[str]:
    """A short, human diff: changed settings, and panels added, removed or changed."""
    out = [f"{key} changed" for key in sorted(set(old) | set(new))
           if key not in (*VOLATILE, "panels") and old.get(key) != new.get(key)]
    before = {p.get("id"): p for p in old.get("panels", []) if isinstance(p, dict)}
    after = {p.get("id"): p for p in new.get("panels", []) if isinstance(p, dict)}
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


UNKNOWN = "unknown"


def _edited_elsewhere(client: Client, uid: str) -> str | None:
    """Who saved the latest version when it was not watchkeeper; None when it was;
    UNKNOWN when Grafana cannot say (no versions endpoint, an error, an odd answer)."""
    try:
        status, payload = client.call("GET", f"/api/dashboards/uid/{uid}/versions?limit=1")
    except DeployError:
        return UNKNOWN
    if status != 200:
        return UNKNOWN
    versions = payload.get("versions", []) if isinstance(payload, dict) else payload
    if not isinstance(versions, list) or not versions or \
            not all(isinstance(v, dict) for v in versions):
        return UNKNOWN
    latest = max(versions, key=lambda v: v.get("version", 0))
    if str(latest.get("message", "")).startswith(MESSAGE):
        return None
    return str(latest.get("createdBy") or "someone")


def _drift(client: Client, uid: str, remote: Mapping[str, Any]) -> str | None:
    """Why the dashboard in Grafana is not what watchkeeper last deployed, or None.

    The hash tag decides when present (it survives any save that keeps the tags); without
    it the versions API is asked, and when that cannot answer it is drift: fail safe."""
    recorded = recorded_hash(remote)
    if recorded is not None:
        if recorded == content_hash(remote):
            return None
        return "edited in Grafana since watchkeeper deployed it (content no longer matches " \
               "its hash tag)"
    who = _edited_elsewhere(client, uid)
    if who is None:
        return None
    if who == UNKNOWN:
        return "no watchkeeper hash tag and Grafana's version history is unavailable, so an " \
               "edit in Grafana cannot be ruled out"
    return f"last saved by {who}, not watchkeeper"


def plan(client: Client, local: list[dict[str, Any]], folder_uid: str,
         prune: bool, force: bool) -> list[Action]:
    actions = []
    for dashboard in local:
        uid, title = dashboard["uid"], dashboard.get("title", "")
        what = f"reading dashboard {uid}"
        status, payload = client.call("GET", f"/api/dashboards/uid/{urllib.parse.quote(uid)}")
        if status == 404:
            actions.append(Action("create", uid, title, dashboard=dashboard))
            continue
        if status != 200:
            raise DeployError(f"{what}: {_message(payload, status)}")
        payload = _expect_object(payload, what, ("dashboard",))
        remote = _expect_object(payload["dashboard"], what)
        meta = payload.get("meta") if isinstance(payload.get("meta"), dict) else {}
        diff = changes(remote, dashboard)
        if meta.get("folderUid", "") != folder_uid:
            diff.insert(0, f"folder {meta.get('folderUid') or '(root)'!r} -> {folder_uid!r}")
        kind = "update" if diff else "unchanged"
        if kind == "update" and not force and (why := _drift(client, uid, remote)):
            kind, diff = "drift", [why, *diff]
        actions.append(Action(kind, uid, title, diff, dashboard, remote.get("id"),
                              remote.get("version")))
    wanted = {d["uid"] for d in local}
    tag = urllib.parse.quote(MANAGED_TAG)
    status, found = client.call("GET", f"/api/search?type=dash-db&tag={tag}&limit=5000")
    if status != 200:
        raise DeployError(f"searching managed dashboards: {_message(found, status)}")
    if not isinstance(found, list) or not all(isinstance(i, dict) for i in found):
        raise DeployError(f"searching managed dashboards: unexpected answer from Grafana "
                          f"({_snippet(json.dumps(found))!r}); expected a JSON list")
    for item in sorted(found, key=lambda i: str(i.get("uid", ""))):
        if item.get("uid") not in wanted and MANAGED_TAG in (item.get("tags") or []):
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
        _expect_object(payload, f"reading folder {uid}", ("uid",))
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
        version = payload.get("version") if isinstance(payload, dict) else None
        return "ok", f"{verb} (version {version})"
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


def run(root: Path, client: Client | OfflineClient, options: Options,
        say: Callable[[str], None]) -> int:
    """Plan, print it, and (unless dry-run) apply it. Returns the number of failures.
    Error messages quote what servers answered, so they are redacted too."""
    try:
        return _run(root, client, options, say)
    except DeployError as error:
        raise DeployError(client.creds.redact(str(error))) from None


def _run(root: Path, client: Client | OfflineClient, options: Options,
         say: Callable[[str], None]) -> int:
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
