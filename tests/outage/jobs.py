"""The job the outage tests run (importable as ``tests.outage.jobs``): counts its runs."""

from __future__ import annotations

import asyncio
from collections import Counter

#: runs per job number (cleared by the tests)
RUNS: Counter[int] = Counter()


async def tick(number: int) -> int:
    await asyncio.sleep(0.02)
    RUNS[number] += 1
    return number
