"""TLS and basic auth from an exporter-toolkit web-config file (the Go exporters' format).

Supported keys: ``tls_server_config.{cert_file,key_file,client_ca_file,client_auth_type,
min_version,max_version}`` and ``basic_auth_users`` (bcrypt hashes). Other exporter-toolkit keys
(``http_server_config``, cipher settings) are accepted and ignored with a warning, so existing
files carry over. Relative paths are relative to the file, as in exporter-toolkit.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import ConfigError

log = logging.getLogger("watchkeeper_exporter")
_TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                 "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
_CLIENT_AUTH = {"": ssl.CERT_NONE, "NoClientCert": ssl.CERT_NONE,
                "RequestClientCert": ssl.CERT_OPTIONAL, "RequireAnyClientCert": ssl.CERT_REQUIRED,
                "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
                "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
_TLS_KEYS = {"cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version",
             "max_version"}


@dataclass
class WebConfig:
    tls: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict)
    _verified: set[bytes] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def authorized(self, user: str, password: str) -> bool:
        """bcrypt check, remembered for good credentials (bcrypt costs ~100 ms by design)."""
        import bcrypt

        hashed = self.users.get(user)
        if hashed is None:
            return False
        key = hashlib.sha256(f"{user}\0{password}".encode()).digest()
        with self._lock:
            if key in self._verified:
                return True
        if not bcrypt.checkpw(password.encode(), hashed):
            return False
        with self._lock:
            self._verified.add(key)
        return True


def load_web_config(path: str) -> WebConfig:
    import yaml

    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read web config {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"web config {path} must be a mapping")
    for key in set(data) - {"tls_server_config", "basic_auth_users"}:
        log.warning("web config: %s is not supported and is ignored", key)
    users = data.get("basic_auth_users") or {}
    if not isinstance(users, dict):
        raise ConfigError("web config: basic_auth_users must map user names to bcrypt hashes")
    tls = data.get("tls_server_config")
    return WebConfig(tls=_tls_context(tls, file.parent) if tls else None,
                     users={str(u): str(h).encode() for u, h in users.items()})


def _tls_context(tls: dict[str, Any], base: Path) -> ssl.SSLContext:
    for key in set(tls) - _TLS_KEYS:
        log.warning("web config: tls_server_config.%s is not supported and is ignored", key)
    if not tls.get("cert_file") or not tls.get("key_file"):
        raise ConfigError("web config: tls_server_config needs cert_file and key_file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(base / tls["cert_file"], base / tls["key_file"])
        if tls.get("client_ca_file"):
            context.load_verify_locations(base / tls["client_ca_file"])
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"web config: cannot load TLS files: {exc}") from None
    auth = tls.get("client_auth_type", "")
    if auth not in _CLIENT_AUTH:
        raise ConfigError(f"web config: unknown client_auth_type {auth!r}")
    context.verify_mode = _CLIENT_AUTH[auth]
    for key, attr in (("min_version", "minimum_version"), ("max_version", "maximum_version")):
        if tls.get(key):
            if tls[key] not in _TLS_VERSIONS:
                raise ConfigError(f"web config: unknown {key} {tls[key]!r}")
            setattr(context, attr, _TLS_VERSIONS[tls[key]])
    return context
