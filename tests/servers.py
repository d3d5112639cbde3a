"""Real servers for tests, started on 127.0.0.1 and free ports, stopped afterwards.

Ports come from :func:`free_port`: outside the kernel's ephemeral range and reserved for the
life of the test process that asked, so no other xdist worker takes one, even while a server
a test stopped waits to restart on it.

redis-server, PostgreSQL (initdb + pg_ctl in a temporary directory), pgbouncer, a TCP server
that accepts and never answers, the ``watchkeeper-exporter`` sidecar and the sample
instrumented ASGI app. PostgreSQL and PgBouncer refuse to run as root, so when the tests run as
root their binaries run as the ``postgres`` system user (or ``nobody``) via ``runuser``.

The contract test uses :func:`instrumented_stack`, which starts all of it and returns the two
``/metrics`` URLs.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import glob
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "exporters"
HOST = "127.0.0.1"
PG_USER, PG_PASSWORD, PG_DB = "watch", "s3cret-Pw-7781", "app"


# --- ports ----------------------------------------------------------------------------------
# A port from bind(("127.0.0.1", 0)) is free only until the socket closes: the kernel hands
# the same ephemeral range to every other bind(0) and to every outgoing connection, so with
# pytest-xdist's workers (and other checkouts' test runs) a port can be taken between
# free_port() and the server's bind, or while a server a test stopped waits to restart on
# it. So ports come from outside the kernel's ephemeral range, where nothing but this
# allocator hands them out, and each is reserved, for the life of the process that asked,
# by a lock on its byte of one shared file (POSIX record locks: released by the kernel when
# the process ends, however it ends). A stopped server's port stays reserved until its test
# process ends, so a restart on the same port finds it free.
PORT_LOCK_FILE = Path(tempfile.gettempdir()) / "wk-test-ports.lock"
PORT_FLOOR = 10000  # below: well-known services' registered ports


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range for bind(0) and outgoing connections (Linux's default if unknown)."""
    with contextlib.suppress(OSError, ValueError):
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    return 32768, 60999


@functools.cache
def port_candidates() -> tuple[int, ...]:
    """Ports free_port() may hand out: unprivileged, not in the ephemeral range."""
    low, high = _ephemeral_range()
    return tuple(p for p in range(PORT_FLOOR, 65536) if not low <= p <= high)


@dataclass
class _Reservations:
    """This process's reserved ports and the open lock file holding them."""

    pid: int = field(default_factory=os.getpid)
    fd: int | None = None
    held: set[int] = field(default_factory=set)

    def reserve(self, port: int) -> bool:
        """Locks ``port``'s byte unless another process holds it or we already gave it out."""
        if port in self.held:
            return False
        if self.fd is None:
            self.fd = _open_lock_file()
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, port)
        except OSError:  # held by another live process
            return False
        self.held.add(port)
        return True


def _open_lock_file() -> int:
    """The shared lock file, open for writing (locks need it); one of this user's own when
    another user's is there and closed to us."""
    try:
        fd = os.open(PORT_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:
        return os.open(PORT_LOCK_FILE.with_name(f"wk-test-ports-{os.getuid()}.lock"),
                       os.O_RDWR | os.O_CREAT, 0o600)
    with contextlib.suppress(OSError):  # past the umask, for other users' runs
        os.fchmod(fd, 0o666)
    return fd


_reservations = _Reservations()
_pick = random.Random()  # seeded from the OS: per process


def reserve_port(port: int) -> bool:
    """Reserves ``port`` for this process: False when another test process holds it or this
    one already handed it out."""
    global _reservations
    if _reservations.pid != os.getpid():  # a forked child holds none of its parent's locks
        _reservations = _Reservations()
    return _reservations.reserve(port)


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on, reserved for this process until it ends
    (never handed out again, here or in another test process, so a server stopped and
    restarted on it finds it free)."""
    candidates = port_candidates()
    start = _pick.randrange(len(candidates))  # processes start apart, then walk on
    for port in candidates[start:] + candidates[:start]:
        if reserve_port(port) and _bindable(port):
            return port
    raise RuntimeError(f"no free port left in {PORT_FLOOR}-65535 outside the ephemeral range")


def wait_for_port(port: int, timeout: float = 15.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {HOST}:{port} after {timeout}s")


def _stop(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _unprivileged() -> tuple[list[str], int | None, int | None]:
    """(command prefix, uid, gid) to run PostgreSQL/PgBouncer as a non-root user."""
    if os.geteuid() != 0:
        return [], None, None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return ["runuser", "-u", name, "--"], entry.pw_uid, entry.pw_gid
    raise RuntimeError("running as root and no postgres/nobody user to run PostgreSQL as")


def _owned_tmpdir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    _, uid, gid = _unprivileged()
    if uid is not None:
        os.chown(path, uid, gid)
    path.chmod(0o700)
    return path


# --- Redis -------------------------------------------------------------------------------

@dataclass
class RedisServer:
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    password: str | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        auth = ["--requirepass", self.password] if self.password else []
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", HOST, "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--protected-mode", "no", *auth],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, proc=self.proc)

    def kill(self) -> None:
        """SIGKILL, as a crash would (no clean shutdown)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- PostgreSQL ----------------------------------------------------------------------------

def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"PostgreSQL's {name} not found; run scripts/install-test-deps.sh")
    return path


@dataclass
class Postgres:
    port: int
    datadir: Path
    superuser_password: str

    def dsn(self, user: str = PG_USER, password: str = PG_PASSWORD, dbname: str = PG_DB) -> str:
        return f"postgresql://{user}:{password}@{HOST}:{self.port}/{dbname}"

    def sqlalchemy_url(self) -> str:
        return self.dsn().replace("postgresql://", "postgresql+psycopg://", 1)

    def superuser_dsn(self, dbname: str = "postgres") -> str:
        return self.dsn("postgres", self.superuser_password, dbname)


@contextlib.contextmanager
def postgres_server(max_connections: int = 50) -> Iterator[Postgres]:
    """A throwaway cluster with user ``watch``/database ``app`` and pg_stat_statements."""
    import psycopg

    prefix, uid, gid = _unprivileged()
    root = _owned_tmpdir("wk-pg-")
    datadir, pwfile = root / "data", root / "pw"
    superuser_password = "su-" + os.urandom(6).hex()
    pwfile.write_text(superuser_password + "\n")
    if uid is not None:
        os.chown(pwfile, uid, gid)
    port = free_port()
    subprocess.run([*prefix, _pg_bin("initdb"), "-D", str(datadir), "-U", "postgres",
                    "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    options = (f"-p {port} -k {root} -c listen_addresses={HOST} -c fsync=off "
               "-c shared_preload_libraries=pg_stat_statements "
               f"-c max_connections={max_connections}")
    subprocess.run([*prefix, _pg_bin("pg_ctl"), "-D", str(datadir), "-o", options,
                    "-l", str(root / "log"), "-w", "-t", "30", "start"],
                   check=True, stdout=subprocess.DEVNULL)
    pg = Postgres(port, datadir, superuser_password)
    try:
        with psycopg.connect(pg.superuser_dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {PG_USER} LOGIN PASSWORD '{PG_PASSWORD}'")
            conn.execute(f"GRANT pg_monitor TO {PG_USER}")
            conn.execute(f"CREATE DATABASE {PG_DB} OWNER {PG_USER}")
        with psycopg.connect(pg.superuser_dsn(PG_DB), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
        yield pg
    finally:
        subprocess.run([*prefix, _pg_bin("pg_ctl"), "-D", str(datadir), "-m", "immediate",
                        "-w", "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(root, ignore_errors=True)


# --- PgBouncer -----------------------------------------------------------------------------

@dataclass
class PgBouncer:
    port: int

    def admin_dsn(self) -> str:
        return f"postgresql://{PG_USER}:{PG_PASSWORD}@{HOST}:{self.port}/pgbouncer"

    def app_dsn(self) -> str:
        return f"postgresql://{PG_USER}:{PG_PASSWORD}@{HOST}:{self.port}/{PG_DB}"


@contextlib.contextmanager
def pgbouncer_server(pg: Postgres) -> Iterator[PgBouncer]:
    prefix, uid, gid = _unprivileged()
    root = _owned_tmpdir("wk-pgb-")
    port = free_port()
    (root / "users.txt").write_text(f'"{PG_USER}" "{PG_PASSWORD}"\n')
    (root / "pgbouncer.ini").write_text(f"""[databases]
{PG_DB} = host={HOST} port={pg.port} dbname={PG_DB}
[pgbouncer]
listen_addr = {HOST}
listen_port = {port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {root}/users.txt
admin_users = {PG_USER}
pool_mode = transaction
default_pool_size = 5
logfile = {root}/pgbouncer.log
pidfile = {root}/pgbouncer.pid
""")
    for name in ("users.txt", "pgbouncer.ini"):
        if uid is not None:
            os.chown(root / name, uid, gid)
    proc = subprocess.Popen([*prefix, "pgbouncer", str(root / "pgbouncer.ini")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, proc=proc)
        yield PgBouncer(port)
    finally:
        _stop(proc)
        shutil.rmtree(root, ignore_errors=True)


# --- a target that accepts and never answers -----------------------------------------------

@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """Accepts TCP connections and never sends a byte; yields the port."""
    listener = socket.socket()
    listener.bind((HOST, 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                conn, _ = listener.accept()
                held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


# --- the sidecar and the sample app ----------------------------------------------------------

@dataclass
class Process:
    proc: subprocess.Popen
    port: int
    scheme: str = "http"
    stderr_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{HOST}:{self.port}"

    @property
    def metrics_url(self) -> str:
        return self.base_url + "/metrics"

    def stderr(self) -> str:
        return self.stderr_path.read_text() if self.stderr_path else ""


def _python_env(extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHKEEPER_EXPORTER_")}
    env.update(extra or {})
    return env


@contextlib.contextmanager
def sidecar(*args: str, env: dict[str, str] | None = None,
            tls: bool = False) -> Iterator[Process]:
    """Runs ``python -m watchkeeper_exporters.sidecar --listen 127.0.0.1:PORT ARGS``."""
    port = free_port()
    fd, name = tempfile.mkstemp(prefix="wk-sidecar-", suffix=".log")
    os.close(fd)
    log = Path(name)
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "watchkeeper_exporters.sidecar", "--listen",
             f"{HOST}:{port}", *args], stdout=subprocess.DEVNULL, stderr=err,
            env=_python_env(env))
    try:
        wait_for_port(port, proc=proc)
        yield Process(proc, port, "https" if tls else "http", log)
    finally:
        _stop(proc)
        log.unlink(missing_ok=True)


@contextlib.contextmanager
def asgi_app(env: dict[str, str] | None = None) -> Iterator[Process]:
    """The sample ASGI app (examples/exporters/asgi_app.py) under uvicorn."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "asgi_app:app", "--app-dir", str(EXAMPLES),
         "--host", HOST, "--port", str(port), "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_python_env(env))
    try:
        wait_for_port(port, proc=proc)
        yield Process(proc, port)
    finally:
        proc.send_signal(signal.SIGINT)
        _stop(proc)


def get(url: str, timeout: float = 10.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def post(url: str, data: bytes, method: str = "POST", timeout: float = 10.0) -> tuple[int, str]:
    """A request with a body (JSON admin endpoints); errors are returned, not raised."""
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@dataclass
class Stack:
    app_metrics_url: str
    sidecar_metrics_url: str
    app: Process
    sidecar: Process
    redis: RedisServer
    postgres: Postgres
    pgbouncer: PgBouncer


def exercise_app(base_url: str) -> None:
    """Requests that touch every instrumented path: routes, DB, both cache levels, jobs."""
    for path in ("/items/1", "/items/1", "/items/2", "/jobs/run", "/jobs/fail", "/nope",
                 "/boom", "/health"):
        get(base_url + path)


@contextlib.contextmanager
def instrumented_stack() -> Iterator[Stack]:
    """Redis, PostgreSQL, PgBouncer, the sample ASGI app (DB + L1/L2 cache + jobs) and the
    sidecar watching all three servers, with the app already exercised once.

    ``stack.app_metrics_url`` and ``stack.sidecar_metrics_url`` are ready to scrape.
    """
    with redis_server() as redis, postgres_server() as pg, pgbouncer_server(pg) as bouncer:
        app_env = {"DATABASE_URL": pg.sqlalchemy_url(), "REDIS_URL": redis.url}
        with asgi_app(app_env) as app, sidecar(
                "--redis", f"sessions={redis.url}", "--postgres", f"main={pg.dsn()}",
                "--pgbouncer", f"bouncer={bouncer.admin_dsn()}", "--timeout", "3s") as side:
            exercise_app(app.base_url)
            yield Stack(app.metrics_url, side.metrics_url, app, side, redis, pg, bouncer)


# --- Prometheus, Alertmanager and restartable services (tests/e2e, make demo) ----------------

def wait_for_http(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    """Polls ``url`` until it answers 200 (readiness endpoints)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} was ready")
        with contextlib.suppress(OSError):
            if get(url, timeout=1.0)[0] == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout}s")


# Characters of a stopped daemon's log kept in memory for `Daemon.log` once its file is gone
# (failure messages quote the last few thousand).
LOG_KEPT = 1 << 16


@dataclass
class Daemon:
    """A long-running server binary with its log in a file; restartable on the same port.

    Without a ``log_path`` of the caller's, the log is a temporary file of its own, removed
    when the daemon is stopped: a test run starts hundreds of daemons and must leave no log
    behind. Its text stays readable through `log` (the last `LOG_KEPT` characters of every
    start, restarts included), which is what failure messages quote."""

    argv: list[str]
    port: int
    ready_path: str = "/-/ready"
    log_path: Path | None = None
    env: dict[str, str] | None = None
    proc: subprocess.Popen | None = None
    _own_log: bool = field(default=False, repr=False)  # log_path made here: removed at stop
    _earlier: str = field(default="", repr=False)  # text of the removed logs of past starts

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 30.0) -> Daemon:
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="wk-daemon-", suffix=".log")
            os.close(fd)
            self.log_path, self._own_log = Path(name), True
        with self.log_path.open("a") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                         env=_python_env(self.env), start_new_session=True)
        try:
            wait_for_http(self.url + self.ready_path, timeout, self.proc)
        except Exception:
            self.stop()
            raise RuntimeError(f"{self.argv[0]} did not start:\n{self.log()[-3000:]}") from None
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash would (the log stays: a restart appends to it)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        """Stops the process (SIGINT, then SIGTERM, then SIGKILL) and removes the log file
        made by `start` (its text kept for `log`)."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGINT)
            _stop(self.proc)
        if self._own_log and self.log_path is not None:
            self._earlier = self.log()[-LOG_KEPT:]
            self.log_path.unlink(missing_ok=True)
            self.log_path, self._own_log = None, False

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        """Everything the daemon wrote, over its starts (of a removed log: its last
        `LOG_KEPT` characters)."""
        current = ""
        if self.log_path is not None:
            with contextlib.suppress(FileNotFoundError):
                current = self.log_path.read_text(errors="replace")
        return self._earlier + current


def prometheus_daemon(config: Path, port: int | None = None) -> Daemon:
    """Prometheus with ``config``, TSDB in a temporary directory next to it."""
    port = port or free_port()
    data = config.parent / "prometheus-data"
    return Daemon(["prometheus", f"--config.file={config}", f"--storage.tsdb.path={data}",
                   f"--web.listen-address={HOST}:{port}", "--web.enable-lifecycle",
                   "--log.level=warn"], port)


def alertmanager_daemon(config: Path, port: int | None = None) -> Daemon:
    """Alertmanager with clustering disabled (no gossip port opened)."""
    port = port or free_port()
    data = config.parent / "alertmanager-data"
    return Daemon(["prometheus-alertmanager", f"--config.file={config}",
                   f"--storage.path={data}", f"--web.listen-address={HOST}:{port}",
                   "--cluster.listen-address=", "--log.level=warn"], port)


def uvicorn_daemon(module: str, app_dir: Path, env: dict[str, str],
                   port: int | None = None) -> Daemon:
    """``uvicorn module:app`` on 127.0.0.1, ready once ``/health`` answers."""
    port = port or free_port()
    return Daemon([sys.executable, "-m", "uvicorn", f"{module}:app", "--app-dir", str(app_dir),
                   "--host", HOST, "--port", str(port), "--log-level", "warning",
                   "--no-access-log"], port, "/health", env=env)


def sidecar_daemon(*args: str, port: int | None = None) -> Daemon:
    """The ``watchkeeper-exporter`` sidecar, ready once ``/healthz`` answers."""
    port = port or free_port()
    return Daemon([sys.executable, "-m", "watchkeeper_exporters.sidecar", "--listen",
                   f"{HOST}:{port}", *args], port, "/healthz")
