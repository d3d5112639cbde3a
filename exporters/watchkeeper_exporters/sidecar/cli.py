"""``watchkeeper-exporter``: command-line entry point of the sidecar."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Any

from .config import ENV_PREFIX, ConfigError, Settings, TargetSpec, build_settings
from .exporter import Exporter
from .targets import PgBouncerTarget, PostgresTarget, RedisTarget, Target
from .webconfig import WebConfig, load_web_config

log = logging.getLogger("watchkeeper_exporter")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        """One line and exit status 2, without the usage block."""
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="watchkeeper-exporter",
                description="Export Redis, PostgreSQL and PgBouncer metrics for watchkeeper. "
                            f"Flags can also be set as {ENV_PREFIX}<FLAG> environment variables "
                            "(repeatable ones separated by ';').")
    p.add_argument("--listen", help="HOST:PORT to serve /metrics on (default 127.0.0.1:9464)")
    p.add_argument("--redis", action="append", metavar="[NAME=]URL",
                   help="Redis target, repeatable; URL may be @FILE")
    p.add_argument("--postgres", action="append", metavar="[NAME=]DSN",
                   help="PostgreSQL target, repeatable; DSN may be @FILE")
    p.add_argument("--pgbouncer", action="append", metavar="[NAME=]DSN",
                   help="PgBouncer admin console target (dbname=pgbouncer), repeatable")
    p.add_argument("--password-file", action="append", metavar="TARGET=PATH",
                   help="read the password of target TARGET from PATH")
    p.add_argument("--config", help="YAML config file")
    p.add_argument("--web-config", help="exporter-toolkit web config (TLS, basic auth)")
    p.add_argument("--timeout", help="per-target scrape timeout, e.g. 5s (default 5s)")
    p.add_argument("--top-queries", help="pg_stat_statements query classes kept (default 20)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def _target(spec: TargetSpec, settings: Settings) -> Target:
    if spec.kind == "redis":
        return RedisTarget(spec.name, spec.url, settings.timeout, spec.password)
    if spec.kind == "postgres":
        return PostgresTarget(spec.name, spec.url, settings.timeout, spec.password,
                              top_queries=settings.top_queries)
    return PgBouncerTarget(spec.name, spec.url, settings.timeout, spec.password)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    try:
        settings = build_settings(args)
        web = load_web_config(settings.web_config) if settings.web_config else WebConfig()
        targets = [_target(spec, settings) for spec in settings.targets]
    except ConfigError as exc:
        print(f"watchkeeper-exporter: error: {exc}", file=sys.stderr)
        return 2
    if not targets:
        print("watchkeeper-exporter: error: no targets; give --redis, --postgres or "
              "--pgbouncer", file=sys.stderr)
        return 2
    return _serve(settings, Exporter(targets, settings.timeout), web)


def _serve(settings: Settings, exporter: Exporter, web: WebConfig) -> int:
    from .server import make_server

    try:
        server = make_server(settings.listen, exporter, web)
    except OSError as exc:
        print(f"watchkeeper-exporter: error: cannot listen on "
              f"{settings.listen[0]}:{settings.listen[1]}: {exc.strerror}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def shutdown(signum: int, frame: Any) -> None:
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    host, port = server.server_address[:2]
    scheme = "https" if web.tls else "http"
    log.info("serving %s://%s:%s/metrics for %d targets: %s", scheme, host, port,
             len(exporter.targets), ", ".join(f"{t.kind}:{t.name}" for t in exporter.targets))
    server.serve_forever()
    exporter.close()
    server.server_close()
    return 0
