"""Storage URLs: which backend serves them, and how to show them without secrets."""

from __future__ import annotations

from urllib.parse import urlsplit

from hivemind_jobs.core.text import redact_secrets
from hivemind_jobs.errors import ConfigurationError

__all__ = ["BACKENDS", "redact_secrets", "redact_url", "url_scheme"]

#: URL scheme -> "module:class" of the backend, imported only when an environment uses it.
BACKENDS: dict[str, str] = {
    "sqlite": "hivemind_jobs.storage.sqlite.backend:SQLiteStorage",
    "postgresql": "hivemind_jobs.storage.postgres.backend:PostgresStorage",
    "postgres": "hivemind_jobs.storage.postgres.backend:PostgresStorage",
    "mysql": "hivemind_jobs.storage.mysql.backend:MySQLStorage",
    "mariadb": "hivemind_jobs.storage.mysql.backend:MySQLStorage",
}


def url_scheme(url: str) -> str:
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError(f"storage URL {redact_url(str(url))!r} has no scheme; use e.g. sqlite:///hivemind.db")
    scheme = urlsplit(url).scheme.lower()
    base = scheme.split("+", 1)[0]
    if base not in BACKENDS:
        raise ConfigurationError(f"no storage backend for {scheme!r} URLs (known: {', '.join(sorted(BACKENDS))})")
    return base


def redact_url(url: str) -> str:
    """The URL with its password replaced by ``***``, wherever it is given: in the user info
    (``user:***@host``) or as a query parameter (``?password=***``); for logs, errors and pages."""
    return redact_secrets(str(url))
