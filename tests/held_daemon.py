"""Not collected by a test run (no test_ prefix): run by tests/test_servers.py, in a pytest
of its own, as a test holding a running server when the run is terminated."""

from __future__ import annotations

import sys
import time

import servers


def test_holds_a_daemon_until_the_run_is_stopped(tmp_path):
    port = servers.free_port()
    daemon = servers.Daemon([sys.executable, "-m", "http.server", "--bind", servers.HOST,
                             "--directory", str(tmp_path), str(port)], port, "/").start()
    try:
        print("up", daemon.proc.pid, daemon.log_path, flush=True)
        time.sleep(120)
    finally:
        daemon.stop()
