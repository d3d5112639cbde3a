"""Sidecar configuration: flags, environment, YAML, secret files, redaction, bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest
from watchkeeper_exporters.sidecar.cli import _parser
from watchkeeper_exporters.sidecar.config import ConfigError, build_settings
from watchkeeper_exporters.sidecar.secrets import redact


def settings(argv: list[str], env: dict[str, str] | None = None):
    return build_settings(_parser().parse_args(argv), env or {})


def test_flags_env_and_file_targets_combine(tmp_path) -> None:
    (tmp_path / "pw").write_text("from-file\n")
    (tmp_path / "dsn").write_text("postgresql://u@db:5432/app\n")
    (tmp_path / "c.yml").write_text(f"""
timeout: 2s
listen: 0.0.0.0:9999
targets:
  postgres:
    - name: main
      url_file: {tmp_path}/dsn
      password_file: {tmp_path}/pw
  pgbouncer:
    - postgresql://u:p@bouncer:6432/pgbouncer
""")
    s = settings(["--config", str(tmp_path / "c.yml"), "--redis", "cache=redis://r:6379/0",
                  "--listen", "127.0.0.1:9100"],
                 {"WATCHKEEPER_EXPORTER_REDIS": "redis://a:1;other=redis://b:2",
                  "WATCHKEEPER_EXPORTER_TIMEOUT": "750ms"})
    assert s.listen == ("127.0.0.1", 9100)            # flag beats file
    assert s.timeout == 0.75                          # env beats file
    by_name = {t.name: t for t in s.targets}
    assert set(by_name) == {"main", "bouncer:6432/pgbouncer", "a:1", "other", "cache"}
    assert by_name["main"].password == "from-file"
    assert by_name["main"].url == "postgresql://u@db:5432/app"


@pytest.mark.parametrize(("argv", "message"), [
    (["--redis", "http://x"], "not a redis://"),
    (["--redis", "redis://a:1", "--redis", "redis://a:1"], "used twice"),
    (["--redis", "redis://a:1", "--timeout", "soon"], "duration"),
    (["--redis", "redis://a:1", "--listen", "nowhere"], "HOST:PORT"),
    (["--redis", "r=@/nonexistent/url"], "cannot read"),
    (["--redis", "redis://a:1", "--password-file", "zzz=/tmp/x"], "known target"),
])
def test_bad_settings_raise_config_error(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings(argv)


@pytest.mark.parametrize("argv", [
    ["--timeout", "abc", "--redis", "redis://127.0.0.1:1"],
    ["--no-such-flag"],
    [],
    ["--config", "/nonexistent.yml"],
    ["--redis", "redis://127.0.0.1:1", "--web-config", "/nonexistent-web.yml"],
    ["--postgres", "postgresql://u:TopSecret99@h/db", "--postgres",
     "postgresql://u:TopSecret99@h/db"],
])
def test_cli_bad_input_exits_2_with_one_line(argv: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "watchkeeper_exporters.sidecar", *argv],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert proc.stderr.startswith("watchkeeper-exporter: error:")
    assert "TopSecret99" not in proc.stderr


def test_default_names_never_include_credentials() -> None:
    s = settings(["--postgres", "host=db port=5433 dbname=app user=u password=TopSecret99",
                  "--postgres", "postgresql://u:TopSecret99@db2:5432/app"])
    assert [t.name for t in s.targets] == ["db:5433/app", "db2:5432/app"]


@pytest.mark.parametrize(("dsn", "expected"), [
    ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
    ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
    ("redis://h:6379/0?password=pw&db=1", "redis://h:6379/0?password=***&db=1"),
    ("host=h password='p w' user=u", "host=h password=*** user=u"),
    ("postgresql://u@h/db", "postgresql://u@h/db"),
])
def test_redact(dsn: str, expected: str) -> None:
    assert redact(dsn) == expected
