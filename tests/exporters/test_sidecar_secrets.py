"""Sidecar secrets from environment variables (issue 8), next to the existing files: a DSN
as `env:VAR`, `--password-file TARGET=env:VAR`, `url_env`/`password_env` in the YAML config;
the password never on the command line (visible in `ps`)."""

from __future__ import annotations

from pathlib import Path

import pytest
import servers
from metrics_text import value
from watchkeeper_exporters.sidecar.cli import _parser
from watchkeeper_exporters.sidecar.config import ConfigError, build_settings


def settings(argv: list[str], env: dict[str, str]):
    return build_settings(_parser().parse_args(argv), env)


def test_urls_and_passwords_from_environment_variables(tmp_path) -> None:
    (tmp_path / "c.yml").write_text("""
targets:
  postgres:
    - name: main
      url_env: MAIN_DSN
      password_env: MAIN_PASSWORD
""")
    env = {"MAIN_DSN": "postgresql://watch@db:5432/app", "MAIN_PASSWORD": "Env-Secret-1",
           "CACHE_URL": "redis://r:6379/0", "CACHE_PASSWORD": "Env-Secret-2",
           "WATCHKEEPER_EXPORTER_POSTGRES": "other=env:OTHER_DSN",
           "OTHER_DSN": "postgresql://u:Env-Secret-3@db2:5432/app"}
    s = settings(["--config", str(tmp_path / "c.yml"), "--redis", "cache=env:CACHE_URL",
                  "--password-file", "cache=env:CACHE_PASSWORD"], env)
    by_name = {t.name: t for t in s.targets}
    assert by_name["main"].url == "postgresql://watch@db:5432/app"
    assert by_name["main"].password == "Env-Secret-1"
    assert by_name["cache"].url == "redis://r:6379/0"
    assert by_name["cache"].password == "Env-Secret-2"
    assert by_name["other"].url == "postgresql://u:Env-Secret-3@db2:5432/app"


@pytest.mark.parametrize("argv", [
    ["--postgres", "main=env:UNSET_DSN"],
    ["--redis", "c=redis://r:1", "--password-file", "c=env:UNSET_PASSWORD"],
])
def test_unset_variable_is_a_config_error_naming_it(argv) -> None:
    with pytest.raises(ConfigError, match="environment variable 'UNSET_"):
        settings(argv, {})


def test_postgres_dsn_from_env_keeps_the_password_off_argv(postgres) -> None:
    dsn = postgres.dsn()
    password = dsn.split(":")[2].split("@")[0]
    with servers.sidecar("--postgres", "main=env:WK_TEST_PG_DSN",
                         env={"WK_TEST_PG_DSN": dsn}) as side:
        status, body = servers.get(side.metrics_url, timeout=10)
        argv = Path(f"/proc/{side.proc.pid}/cmdline").read_bytes().decode()
    assert status == 200
    assert value(body, "pg_up", target="main") == 1
    assert password not in argv and "env:WK_TEST_PG_DSN" in argv
