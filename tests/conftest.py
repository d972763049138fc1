from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

import hivemind_jobs as hm


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'hive.db'}"


@pytest_asyncio.fixture
async def hive(db_url: str) -> AsyncIterator[hm.HiveMind]:
    async with hm.HiveMind(db_url) as hive:
        yield hive
