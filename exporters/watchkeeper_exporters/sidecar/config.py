"""Sidecar configuration from flags, environment variables and a YAML file.

Targets from all three sources are combined; scalar settings take the flag, else the
environment, else the file, else the default. Any mistake raises :class:`ConfigError`, which
the CLI reports as one line with exit status 2.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .secrets import redact

KINDS = ("redis", "postgres", "pgbouncer")
ENV_PREFIX = "WATCHKEEPER_EXPORTER_"
DEFAULT_LISTEN = "127.0.0.1:9464"
#: Below Prometheus' default scrape_timeout (10 s), leaving room for the exposition itself.
DEFAULT_TIMEOUT = 5.0
_KV_PAIR = re.compile(r"(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")


class ConfigError(Exception):
    """A user mistake in flags, environment or config files (exit status 2)."""


@dataclass
class TargetSpec:
    kind: str
    name: str
    url: str
    password: str | None = None


@dataclass
class Settings:
    listen: tuple[str, int]
    timeout: float
    targets: list[TargetSpec] = field(default_factory=list)
    web_config: str | None = None
    top_queries: int = 20


ENV_REF = "env:"  # `env:NAME` in place of a URL, DSN or password: read it from $NAME


def _read_env(name: str, what: str, env: dict[str, str] | None = None) -> str:
    """A secret from an environment variable (off argv and out of files)."""
    value = (os.environ if env is None else env).get(name, "").strip()
    if not name or not value:
        raise ConfigError(f"{what}: environment variable {name or '(no name)'!r} is unset "
                          "or empty")
    return value


def _read_secret(path: str, what: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} file {path}: {exc.strerror}") from None


def default_name(kind: str, url: str) -> str:
    """``host:port[/db]`` of a URL, never including credentials; used as the target label."""
    if "://" not in url:
        pairs = dict(_KV_PAIR.findall(url))
        host = pairs.get("host", "localhost").strip("'")
        port = pairs.get("port", "").strip("'")
        dbname = pairs.get("dbname", "").strip("'")
        name = f"{host}:{port}" if port else host
        return f"{name}/{dbname}" if dbname else name
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    name = f"{host}:{parts.port}" if parts.port else host
    path = parts.path.strip("/")
    return f"{name}/{path}" if path and kind != "redis" else name


def parse_target(kind: str, value: str, env: dict[str, str] | None = None) -> TargetSpec:
    """``[NAME=]URL`` where URL may be ``@PATH`` to read it from a file or ``env:VAR`` to read
    it from an environment variable (either keeps the password off argv)."""
    name, url = "", value.strip()
    head, sep, rest = url.partition("=")
    if sep and "://" not in head and " " not in head and "@" not in head and head \
            and head.lower() not in {"host", "dbname", "user", "port", "password"}:
        name, url = head, rest
    if url.startswith("@"):
        url = _read_secret(url[1:], f"{kind} URL")
    elif url.startswith(ENV_REF):
        url = _read_env(url[len(ENV_REF):], f"--{kind}", env)
    if not url:
        raise ConfigError(f"--{kind}: empty URL")
    if kind == "redis" and not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"--redis: {redact(url)!r} is not a redis://, rediss:// or unix:// URL")
    return TargetSpec(kind, name or default_name(kind, url), url)


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"--listen: expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def parse_duration(value: Any, what: str = "--timeout") -> float:
    """Seconds as a number or Go-style ``500ms``/``5s``/``1m``."""
    text = str(value).strip()
    scale = 1.0
    for suffix, factor in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
        if text.endswith(suffix):
            text, scale = text[: -len(suffix)], factor
            break
    try:
        seconds = float(text) * scale
    except ValueError:
        raise ConfigError(f"{what}: expected a duration like 5s or 500ms, got {value!r}") from None
    if not 0 < seconds <= 600:
        raise ConfigError(f"{what}: must be between 0 and 600 seconds, got {value!r}")
    return seconds


def _file_targets(data: dict[str, Any], path: str,
                  env: dict[str, str] | None = None) -> list[TargetSpec]:
    targets = data.get("targets") or {}
    if not isinstance(targets, dict):
        raise ConfigError(f"{path}: targets must map redis/postgres/pgbouncer to lists")
    specs = []
    for kind, entries in targets.items():
        if kind not in KINDS:
            raise ConfigError(f"{path}: unknown target kind {kind!r} (use {', '.join(KINDS)})")
        for entry in entries or []:
            specs.append(_file_target(kind, entry, path, env))
    return specs


def _file_target(kind: str, entry: Any, path: str,
                 env: dict[str, str] | None = None) -> TargetSpec:
    if isinstance(entry, str):
        return parse_target(kind, entry, env)
    if not isinstance(entry, dict):
        raise ConfigError(f"{path}: each {kind} target is a URL or a mapping")
    url = entry.get("url") or entry.get("dsn")
    if entry.get("url_file"):
        url = _read_secret(entry["url_file"], f"{kind} URL")
    if entry.get("url_env"):
        url = _read_env(str(entry["url_env"]), f"{path}: url_env", env)
    if not url:
        raise ConfigError(f"{path}: a {kind} target needs url, dsn, url_file or url_env")
    spec = parse_target(kind, str(url), env)
    spec.name = str(entry.get("name") or spec.name)
    if entry.get("password_file"):
        spec.password = _read_secret(entry["password_file"], "password")
    if entry.get("password_env"):
        spec.password = _read_env(str(entry["password_env"]), f"{path}: password_env", env)
    return spec


def load_file(path: str) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping")
    unknown = set(data) - {"listen", "timeout", "targets", "web_config", "top_queries"}
    if unknown:
        raise ConfigError(f"config {path}: unknown keys {', '.join(sorted(unknown))}")
    return data


def _env_targets(env: dict[str, str]) -> list[TargetSpec]:
    """``WATCHKEEPER_EXPORTER_REDIS="a=redis://…;b=redis://…"`` (``;`` or newlines)."""
    specs = []
    for kind in KINDS:
        raw = env.get(ENV_PREFIX + kind.upper(), "")
        for item in raw.replace("\n", ";").split(";"):
            if item.strip():
                specs.append(parse_target(kind, item, env))
    return specs


def build_settings(args: Any, env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ) if env is None else env
    config_path = args.config or env.get(ENV_PREFIX + "CONFIG")
    data = load_file(config_path) if config_path else {}

    def pick(flag: Any, key: str, default: Any) -> Any:
        for value in (flag, env.get(ENV_PREFIX + key.upper()), data.get(key)):
            if value not in (None, ""):
                return value
        return default

    targets = _file_targets(data, config_path or "", env) + _env_targets(env)
    for kind in KINDS:
        targets += [parse_target(kind, v, env) for v in getattr(args, kind) or []]
    env_files = [i for i in env.get(ENV_PREFIX + "PASSWORD_FILE", "").split(";") if i.strip()]
    _apply_password_files(targets, (args.password_file or []) + env_files, env)
    _check_unique(targets)
    top = pick(args.top_queries, "top_queries", 20)
    if not str(top).isdigit() or int(top) < 1:
        raise ConfigError(f"--top-queries: expected a positive integer, got {top!r}")
    return Settings(listen=parse_listen(str(pick(args.listen, "listen", DEFAULT_LISTEN))),
                    timeout=parse_duration(pick(args.timeout, "timeout", DEFAULT_TIMEOUT)),
                    targets=targets, web_config=pick(args.web_config, "web_config", None),
                    top_queries=int(top))


def _apply_password_files(targets: list[TargetSpec], items: list[str],
                          env: dict[str, str]) -> None:
    """``TARGET=PATH`` (or ``TARGET=env:VAR``) items of --password-file."""
    by_name = {t.name: t for t in targets}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or name not in by_name:
            raise ConfigError(f"--password-file: expected TARGET=PATH for a known target, "
                              f"got {item.split('=')[0]!r}")
        by_name[name].password = (_read_env(path[len(ENV_REF):], "--password-file", env)
                                  if path.startswith(ENV_REF) else _read_secret(path, "password"))


def _check_unique(targets: list[TargetSpec]) -> None:
    seen: set[str] = set()
    for t in targets:
        if t.name in seen:
            raise ConfigError(f"target name {t.name!r} is used twice; name targets NAME=URL")
        seen.add(t.name)
