"""Storage: the protocol every backend implements, and backend loading by URL scheme."""

from __future__ import annotations

import importlib

from hivemind_jobs.storage.protocol import Capabilities, Storage, StorageInfo, Transaction
from hivemind_jobs.storage.url import BACKENDS, redact_url, url_scheme

__all__ = ["Capabilities", "Storage", "StorageInfo", "Transaction", "open_storage", "redact_url"]


def open_storage(url: str, *, environment: str, table_prefix: str) -> Storage:
    """Create (not yet open) the storage for ``url``; the backend module is imported lazily."""
    module_name, _, class_name = BACKENDS[url_scheme(url)].partition(":")
    backend = getattr(importlib.import_module(module_name), class_name)
    storage: Storage = backend.from_url(url, environment=environment, table_prefix=table_prefix)
    return storage
