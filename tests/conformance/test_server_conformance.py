"""PostgreSQL and MariaDB pass the storage conformance suite (a fresh schema or database per test)."""

from __future__ import annotations

import pytest

from hivemind_jobs.storage import open_storage
from hivemind_jobs.testing.conformance import StorageConformance, StorageFactory


class TestPostgresConformance(StorageConformance):
    @pytest.fixture
    def storage_factory(self, postgres_url: str) -> StorageFactory:
        return lambda prefix: open_storage(postgres_url, environment=prefix.strip("_"), table_prefix=prefix)


class TestMariaDBConformance(StorageConformance):
    @pytest.fixture
    def storage_factory(self, mariadb_url: str) -> StorageFactory:
        return lambda prefix: open_storage(mariadb_url, environment=prefix.strip("_"), table_prefix=prefix)
