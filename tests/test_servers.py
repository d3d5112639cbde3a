"""tests/servers.py hands out ports no other test process can take (pytest-xdist's workers,
other checkouts' runs): outside the kernel's ephemeral range, reserved until the process that
asked ends, so a server stopped mid-test restarts on its port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import servers

HOLD = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    import servers
    print(*[servers.free_port() for _ in range({count})], *[
        servers.reserve_port(int(p)) for p in sys.argv[1:]], flush=True)
    sys.stdin.read()  # hold the reservations until told to end
""")


def holder(count: int, *ports: int) -> tuple[subprocess.Popen, list[str]]:
    """Another test process: reserves `count` ports, tries to reserve `ports`, and holds
    them until its stdin closes; returns it and what it printed."""
    code = HOLD.format(tests=str(servers.REPO / "tests"), count=count)
    proc = subprocess.Popen([sys.executable, "-c", code, *map(str, ports)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().split()


def end(proc: subprocess.Popen) -> None:
    proc.stdin.close()
    proc.wait(10)


def test_ports_come_from_outside_the_ephemeral_range_and_are_never_given_twice():
    low, high = servers._ephemeral_range()
    ports = [servers.free_port() for _ in range(100)]
    assert [p for p in ports if low <= p <= high] == []  # bind(0) and connect() use those
    assert len(set(ports)) == len(ports)


def test_a_port_another_process_holds_is_not_handed_out_until_it_ends():
    proc, printed = holder(30)
    try:
        theirs = {int(p) for p in printed}
        assert len(theirs) == 30
        assert [p for p in theirs if servers.reserve_port(p)] == []
        assert theirs.isdisjoint(servers.free_port() for _ in range(300))
    finally:
        end(proc)
    assert all(servers.reserve_port(p) for p in theirs)  # released with the process


def test_a_stopped_server_restarts_on_its_port_while_others_ask_for_ports():
    redis = servers.RedisServer()
    redis.start()
    try:
        redis.kill()  # down, its port unbound: what a restart scenario leaves
        proc, printed = holder(200, redis.port)
        end(proc)
        assert printed[-1] == "False"  # the port stays ours while stopped
        assert str(redis.port) not in printed[:-1]
        redis.start()  # same port
        with servers.socket.create_connection((servers.HOST, redis.port), 5) as conn:
            conn.sendall(b"PING\r\n")
            assert conn.recv(64) == b"+PONG\r\n"
    finally:
        redis.stop()


def http_daemon(folder, log_path=None) -> servers.Daemon:
    """A cheap real daemon: Python's http.server, which logs each request to stderr."""
    port = servers.free_port()
    return servers.Daemon([sys.executable, "-m", "http.server", "--bind", servers.HOST,
                           "--directory", str(folder), str(port)], port, "/",
                          log_path=log_path)


def test_a_stopped_daemon_leaves_no_log_behind_and_its_text_stays_readable(tmp_path):
    """The log a daemon made for itself goes when it is stopped (a run starts hundreds of
    them); what it said, over a restart too, is still there for a failure message."""
    daemon = http_daemon(tmp_path)
    logs = []
    try:
        for life in ("first", "second"):
            daemon.start()
            logs.append(daemon.log_path)
            assert logs[-1].is_file()
            assert servers.get(f"{daemon.url}/{life}")[0] == 404
            daemon.stop()
            assert not logs[-1].exists()
    finally:
        daemon.stop()
    assert '"GET /first HTTP' in daemon.log() and '"GET /second HTTP' in daemon.log()


def test_a_daemon_that_fails_to_start_says_why_and_leaves_no_log(tmp_path):
    port = servers.free_port()
    daemon = servers.Daemon([sys.executable, "-c", "print('no config here'); exit(3)"], port)
    try:
        daemon.start(timeout=20)
    except RuntimeError as error:
        assert "no config here" in str(error)
    else:
        raise AssertionError("a daemon that exited at once was taken for started")
    assert daemon.log_path is None and not daemon.running()


def test_a_log_the_caller_named_is_kept(tmp_path):
    mine = tmp_path / "daemon.log"
    daemon = http_daemon(tmp_path, mine).start()
    daemon.stop()
    assert mine.is_file() and daemon.log_path == mine


def test_a_test_run_ended_by_sigterm_stops_its_servers_and_removes_their_logs(tmp_path):
    """SIGTERM to pytest (a CI job's timeout) tears fixtures down as Ctrl-C does
    (tests/conftest.py): a server, in a session of its own, would else outlive the run."""
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", str(servers.REPO / "tests" / "held_daemon.py"), "-q",
         "-s", "-p", "no:cacheprovider", f"--basetemp={tmp_path / 'run'}"],
        cwd=servers.REPO, stdout=subprocess.PIPE, text=True)
    pid, log = None, None
    try:
        for line in run.stdout:
            if line.startswith("up "):
                break
        else:
            raise AssertionError(f"the held test never started its server ({run.wait(60)})")
        pid, log = int(line.split()[1]), Path(line.split()[2])
        assert log.is_file()
        run.send_signal(signal.SIGTERM)
        run.stdout.read()
        assert run.wait(60) == pytest.ExitCode.INTERRUPTED
        deadline = time.monotonic() + 30
        while _state(pid) not in ("", "Z"):
            assert time.monotonic() < deadline, "the server outlived the test run"
            time.sleep(0.1)
        assert not log.exists()
    finally:  # this test's processes and files go, whatever failed
        if run.poll() is None:
            run.kill()
            run.wait()
        if pid is not None and _state(pid) not in ("", "Z"):
            os.kill(pid, signal.SIGKILL)
            log.unlink(missing_ok=True)


def _state(pid: int) -> str:
    """A process's state letter (Z: ended, not yet reaped), or "" when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][:1]
    except (FileNotFoundError, IndexError):
        return ""
