from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest
import pytest_asyncio

import hivemind_jobs as hm
from tests.worker import jobs

FAST = hm.ColonyOptions(
    poll_interval=timedelta(milliseconds=50),
    watch_interval=timedelta(milliseconds=100),
    graceful_stop=timedelta(seconds=2),
    state_sync_interval=timedelta(milliseconds=200),
)
ALLOW = hm.AllowList(modules=["tests.worker"])


@pytest.fixture(autouse=True)
def clear_recorder() -> Iterator[None]:
    jobs.RAN.clear()
    jobs.GATES.clear()
    yield
    jobs.RAN.clear()
    jobs.GATES.clear()


@pytest_asyncio.fixture
async def whive(db_url: str) -> AsyncIterator[hm.HiveMind]:
    """A hive whose locks expire after 2 s (test scale)."""
    options = hm.Options(lock_timeout=timedelta(seconds=2), retry=hm.RetryPolicy(max_retries=0))
    async with hm.HiveMind(db_url, options=options) as hive:
        yield hive


def colony_of(hive: hm.HiveMind, drones: int = 4, **options: object) -> hm.Colony:
    colony = hive.colony(name="test", allow=ALLOW, options=_options(**options))
    colony.swarm("main", drones=drones)
    return colony


def _options(**changes: object) -> hm.ColonyOptions:
    import dataclasses

    return dataclasses.replace(FAST, **changes)  # type: ignore[arg-type]
