"""Keeping credentials out of logs, labels and error messages."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&]*", re.IGNORECASE)
MASK = "***"


def redact(dsn: str) -> str:
    """``dsn`` (URL or libpq key=value string) with any password replaced by ``***``."""
    if "://" not in dsn:
        return _KV_PASSWORD.sub(rf"\g<1>{MASK}", dsn)
    parts = urlsplit(dsn)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":" + MASK
        elif userinfo:
            userinfo = userinfo if parts.scheme.startswith("postgres") else MASK
        netloc = f"{userinfo}@{host}"
    query = _QUERY_PASSWORD.sub(rf"\g<1>{MASK}", "?" + parts.query)[1:] if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with every known secret masked; libraries sometimes echo DSNs in errors."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


def url_password(url: str) -> str | None:
    """The password embedded in a URL or key=value DSN, so it can be scrubbed from errors."""
    if "://" in url:
        return urlsplit(url).password or _query_password(urlsplit(url).query)
    match = _KV_PASSWORD.search(url)
    return match.group(2).strip("'") if match else None


def _query_password(query: str) -> str | None:
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if key.lower() == "password":
            return value
    return None
