"""What the unique-job process test runs in each child process (importable under spawn)."""

from __future__ import annotations

import asyncio
from typing import Any

import hivemind_jobs as hm
from tests import sample_jobs as jobs


def create_unique(db_url: str, barrier: Any, results: Any) -> None:
    """Open the environment, wait for every sibling, then create the same unique job."""

    async def run() -> int:
        async with hm.HiveMind(db_url) as hive:
            client = hive.jobs.options(unique=hm.Unique())
            await asyncio.to_thread(barrier.wait, 60)
            return await client.create(jobs.add, 40, b=2)

    try:
        results.put(("ok", asyncio.run(run())))
    except BaseException as error:  # reported to the test, which fails with it
        results.put(("error", repr(error)))
