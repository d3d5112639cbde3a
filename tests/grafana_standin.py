"""A small stand-in for Grafana's HTTP API (9.x-11.x behaviour), for testing `deploy`.

Grafana cannot be installed here, so this follows the documented API closely enough for
what `watchkeeper deploy` relies on: Bearer/Basic auth (401 otherwise); folders by uid;
`POST /api/dashboards/db` with version preconditions (412 `version-mismatch` when the
posted version is stale and `overwrite` is false, 412 `name-exists` for a second dashboard
of the same title in a folder), versions incremented on every save, a save without
`folderUid` landing in the root folder; `GET/DELETE /api/dashboards/uid/:uid`, its
`/versions`; and `/api/search` filtered by tag. Tests can inject 5xx responses and dropped
connections, and make "UI edits" as a person would.

Awkward deployments, as met in the field (issue 8): a Grafana without the uid versions
endpoint (before 9.x: 404) or with it failing; a redirect of every request to another
origin; an SSO proxy in front (302 to an HTML login page on the same origin); something
that is not Grafana at all at that URL (HTML 404s), or a proxy answering `200 []`. Every
Authorization header received is recorded, to prove where credentials went.
"""

from __future__ import annotations

import base64
import copy
import json
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class State:
    token: str = "glsa_standin_secret_token"
    basic: tuple[str, str] = ("admin", "standin-password")
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)  # uid -> record
    next_id: int = 1
    faults: list[tuple[str, str, int]] = field(default_factory=list)  # method, prefix, status
    requests: list[tuple[str, str]] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)  # every Authorization received
    versions_status: int = 200  # 404: no uid versions endpoint (Grafana < 9); 500: failing
    redirect_to: str | None = None  # base URL every request is redirected to (302)
    sso_login: bool = False  # a login proxy: API calls get 302 to /login, an HTML page
    not_grafana: bool = False  # another web server: HTML 404 for everything
    # path prefix -> (status, JSON) answered instead of Grafana's (a proxy, a broken plugin)
    answers: dict[str, tuple[int, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, method: str, prefix: str, status: int = 503, times: int = 1) -> None:
        """The next `times` matching requests answer `status` (0: drop the connection)."""
        self.faults.extend([(method, prefix, status)] * times)

    def save(self, dashboard: dict[str, Any], folder_uid: str, user: str, message: str) -> dict:
        uid = dashboard["uid"]
        record = self.dashboards.get(uid)
        if record is None:
            record = {"id": self.next_id, "versions": []}
            self.next_id += 1
            self.dashboards[uid] = record
        version = len(record["versions"]) + 1
        stored = {**copy.deepcopy(dashboard), "id": record["id"], "version": version}
        record.update(dashboard=stored, folderUid=folder_uid)
        record["versions"].append({"version": version, "createdBy": user, "message": message,
                                   "uid": uid})
        return record

    def ui_edit(self, uid: str, **changes: Any) -> None:
        """What a person saving the dashboard in Grafana's UI does."""
        record = self.dashboards[uid]
        self.save({**record["dashboard"], **changes}, record["folderUid"], "admin", "")


LOGIN_PAGE = (b"<!doctype html><html><head><title>Sign in - Example SSO</title></head>"
              b"<body><form method=post action=/login><input name=user></form></body></html>")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _reply(self, status: int, body: Any) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: int, data: bytes, kind: str, location: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        if location:
            self.send_header("Location", location)
        self.end_headers()
        self.wfile.write(data)

    def _awkward(self, state: State, path: str) -> bool:
        """Answers of deployments that are not plain Grafana; True when one was sent."""
        if state.redirect_to:
            self._send(302, b"", "text/html", state.redirect_to + self.path)
        elif state.not_grafana:
            self._send(404, b"<html><body><h1>404 Not Found</h1>nginx</body></html>",
                       "text/html")
        elif state.sso_login and path == "/login":
            self._send(200, LOGIN_PAGE, "text/html; charset=utf-8")
        elif state.sso_login:
            self._send(302, b"", "text/html", "/login?rd=" + urllib.parse.quote(self.path))
        else:
            answer = next((a for prefix, a in state.answers.items() if path.startswith(prefix)),
                          None)
            if answer is None:
                return False
            self._reply(*answer)
        return True

    def _user(self) -> str | None:
        state = self.server.state
        header = self.headers.get("Authorization", "")
        if header == f"Bearer {state.token}":
            return "sa-watchkeeper"
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            if (user, password) == state.basic:
                return user
        return None

    def _handle(self, method: str) -> None:
        state = self.server.state
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        with state.lock:
            state.requests.append((method, url.path))
            if "Authorization" in self.headers:
                state.authorizations.append(self.headers["Authorization"])
            if self._awkward(state, url.path):
                return
            for index, (m, prefix, status) in enumerate(state.faults):
                if m == method and url.path.startswith(prefix):
                    del state.faults[index]
                    if status == 0:
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    return self._reply(status, {"message": "Internal Server Error"})
            user = self._user()
            if user is None:
                return self._reply(401, {"message": "Unauthorized"})
            status, reply = route(state, method, url.path,
                                  urllib.parse.parse_qs(url.query), body, user)
            self._reply(status, reply)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")


def route(state: State, method: str, path: str, query: dict[str, list[str]], body: Any,
          user: str) -> tuple[int, Any]:
    parts = path.strip("/").split("/")
    if parts[:2] == ["api", "folders"]:
        return _folders(state, method, parts[2:], body)
    if path == "/api/dashboards/db" and method == "POST":
        return _save(state, body, user)
    if parts[:3] == ["api", "dashboards", "uid"] and len(parts) >= 4:
        return _dashboard(state, method, parts[3], parts[4:])
    if path == "/api/search" and method == "GET":
        return 200, _search(state, query)
    return 404, {"message": "Not found"}


def _folders(state, method, rest, body):
    if method == "GET" and rest:
        folder = state.folders.get(rest[0])
        return (200, folder) if folder else (404, {"message": "folder not found",
                                                   "status": "not-found"})
    if method == "POST" and not rest:
        if body["uid"] in state.folders:
            return 409, {"message": "a folder with the same uid already exists"}
        folder = {"id": len(state.folders) + 1, "uid": body["uid"], "title": body["title"],
                  "version": 1}
        state.folders[body["uid"]] = folder
        return 200, folder
    return 404, {"message": "Not found"}


def _save(state, body, user):
    dashboard, overwrite = body["dashboard"], body.get("overwrite", False)
    folder_uid = body.get("folderUid") or ""
    if folder_uid and folder_uid not in state.folders:
        return 400, {"message": "folder not found", "status": "not-found"}
    uid = dashboard.get("uid")
    existing = state.dashboards.get(uid)
    if not overwrite:
        if existing is not None and dashboard.get("version") != existing["dashboard"]["version"]:
            return 412, {"status": "version-mismatch",
                         "message": "The dashboard has been changed by someone else"}
        for other_uid, record in state.dashboards.items():
            if (other_uid != uid and record["folderUid"] == folder_uid
                    and record["dashboard"].get("title") == dashboard.get("title")):
                return 412, {"status": "name-exists", "message": "A dashboard with the same "
                             "name in the folder already exists"}
    record = state.save(dashboard, folder_uid, user, body.get("message", ""))
    return 200, {"id": record["id"], "uid": uid, "status": "success",
                 "version": record["dashboard"]["version"], "url": f"/d/{uid}/x", "slug": "x"}


def _dashboard(state, method, uid, rest):
    record = state.dashboards.get(uid)
    if record is None:
        return 404, {"message": "Dashboard not found"}
    if rest == ["versions"] and method == "GET":
        if state.versions_status == 404:
            return 404, {"message": "Not found"}
        if state.versions_status != 200:
            return state.versions_status, {"message": "Internal Server Error"}
        return 200, {"continueToken": "", "versions": list(reversed(record["versions"]))}
    if rest:
        return 404, {"message": "Not found"}
    if method == "GET":
        return 200, {"dashboard": record["dashboard"],
                     "meta": {"folderUid": record["folderUid"], "version":
                              record["dashboard"]["version"], "slug": "x"}}
    if method == "DELETE":
        del state.dashboards[uid]
        return 200, {"title": record["dashboard"].get("title"), "message": "Dashboard deleted",
                     "id": record["id"]}
    return 404, {"message": "Not found"}


def _search(state, query):
    tags = set(query.get("tag", []))
    found = []
    for uid, record in sorted(state.dashboards.items()):
        dashboard = record["dashboard"]
        if tags <= set(dashboard.get("tags", [])):
            found.append({"id": record["id"], "uid": uid, "title": dashboard.get("title"),
                          "type": "dash-db", "tags": dashboard.get("tags", []),
                          "folderUid": record["folderUid"], "url": f"/d/{uid}/x"})
    return found


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: State


@contextmanager
def running(state: State | None = None) -> Iterator[tuple[str, State]]:
    """Serve on 127.0.0.1 at a random free port; yields (base URL, state)."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.state = state or State()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
