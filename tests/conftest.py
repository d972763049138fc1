from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

import hivemind_jobs as hm
from tests import backends


@pytest.fixture(params=backends.selected())
def backend_name(request: pytest.FixtureRequest) -> str:
    """Each backend-parametrised test runs on SQLite, PostgreSQL and MariaDB."""
    name: str = request.param
    return name


def _skip_unless_selected(backend: str) -> None:
    """Tests that name a backend themselves (``postgres_url``, a parametrize of ``backend_name``)
    follow HIVEMIND_TEST_BACKENDS too: a deselected server is never touched."""
    if backend not in backends.selected():
        pytest.skip(f"{backend} is not in HIVEMIND_TEST_BACKENDS")


@pytest.fixture
def backend_url(backend_name: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of the test's backend (dropped afterwards)."""
    _skip_unless_selected(backend_name)
    with backends.database_url(backend_name, tmp_path) as url:
        yield url


@pytest.fixture
def db_url(backend_url: str) -> str:
    return backend_url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """For tests about SQLite itself (its file, its URL options, its single writer)."""
    return f"sqlite:///{tmp_path / 'hive.db'}"


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    _skip_unless_selected("postgres")
    with backends.database_url("postgres", tmp_path) as url:
        yield url


@pytest.fixture
def mariadb_url(tmp_path: Path) -> Iterator[str]:
    _skip_unless_selected("mariadb")
    with backends.database_url("mariadb", tmp_path) as url:
        yield url


@pytest_asyncio.fixture
async def hive(db_url: str) -> AsyncIterator[hm.HiveMind]:
    async with hm.HiveMind(db_url) as hive:
        yield hive


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "docs_build: builds the documentation site with mkdocs --strict (tests/test_docs.py)"
    )
