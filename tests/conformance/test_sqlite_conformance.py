"""SQLite passes the storage conformance suite (a real database file per test)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hivemind_jobs.storage.sqlite import SQLiteStorage
from hivemind_jobs.testing.conformance import StorageConformance, StorageFactory


class TestSQLiteConformance(StorageConformance):
    @pytest.fixture
    def storage_factory(self, tmp_path: Path) -> StorageFactory:
        path = tmp_path / "conformance.db"
        return lambda prefix: SQLiteStorage(path, environment=prefix.strip("_"), table_prefix=prefix)
