"""A colony process for the recurring exactly-once tests, and the job its occurrences run.

``python -m tests.recurring.procs URL SIDE_DB OFFSET_SECONDS SECONDS`` runs one colony on URL
for SECONDS; its clock is shifted by OFFSET_SECONDS (the scheduler must not care: it decides on
the database clock). Each occurrence of ``record_occurrence`` inserts its recurring id and
scheduled time into the SQLite side table in SIDE_DB, one row per execution.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from datetime import UTC, datetime, timedelta

import hivemind_jobs as hm

FAST = hm.ColonyOptions(
    poll_interval=timedelta(milliseconds=50),
    scheduler_interval=timedelta(milliseconds=100),
    state_sync_interval=timedelta(milliseconds=500),
    graceful_stop=timedelta(seconds=2),
)


class OffsetClock:
    """The system clock shifted by a fixed offset (a colony whose clock is wrong)."""

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


def create_side_table(path: str) -> None:
    with sqlite3.connect(path) as con:
        con.execute("PRAGMA journal_mode = WAL")
        con.execute("CREATE TABLE runs (recurring_id TEXT NOT NULL, scheduled_us INTEGER NOT NULL, pid INTEGER)")
    con.close()


def runs(path: str) -> list[tuple[str, int]]:
    with sqlite3.connect(path) as con:
        found = [(str(row[0]), int(row[1])) for row in con.execute("SELECT recurring_id, scheduled_us FROM runs")]
    con.close()
    return found


def record_occurrence(ctx: hm.JobContext, side: str) -> None:
    scheduled = ctx.job.get_property("hm.scheduled_at")
    assert isinstance(scheduled, datetime)
    micros = int(scheduled.timestamp() * 1_000_000)
    con = sqlite3.connect(side, timeout=60, isolation_level=None)
    try:
        con.execute(
            "INSERT INTO runs (recurring_id, scheduled_us, pid) VALUES (?, ?, ?)",
            (ctx.job.get_property("hm.recurring_id"), micros, os.getpid()),
        )
    finally:
        con.close()


async def run_colony(url: str, offset: float, seconds: float) -> None:
    hive = hm.HiveMind(url, clock=OffsetClock(timedelta(seconds=offset)))
    async with hive:
        colony = hive.colony(
            name=f"recurring-{os.getpid()}", allow=hm.AllowList(modules=["tests.recurring"]), options=FAST
        )
        colony.swarm("main", drones=4)
        task = asyncio.create_task(colony.run())
        await asyncio.sleep(seconds)
        colony.stop()
        await task


if __name__ == "__main__":
    asyncio.run(run_colony(sys.argv[1], float(sys.argv[3]), float(sys.argv[4])))
