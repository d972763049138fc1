"""A transaction of one write operation runs on the caller's thread when the SQLite file's write lock
is free at that moment, and waits its turn on the writer thread when it is not; the WAL is still
checkpointed (by the writer thread)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

import hivemind_jobs as hm
from hivemind_jobs.errors import StorageError
from hivemind_jobs.storage.sqlite.backend import INLINE_ROWS, SQLiteStorage
from hivemind_jobs.storage.sqlite.worker import InlineWriter
from tests.sample_jobs import add


def _inline(hive: hm.HiveMind) -> InlineWriter:
    storage = hive.env().storage
    assert isinstance(storage, SQLiteStorage)
    inline = storage._require_engine().inline
    assert inline is not None
    return inline


async def test_a_create_commits_on_the_callers_thread_while_the_write_lock_is_free(sqlite_url: str) -> None:
    async with hm.HiveMind(sqlite_url) as hive:
        inline = _inline(hive)
        before = inline.commits
        ids = [await hive.jobs.create(add, n, 1) for n in range(5)]
        assert inline.commits == before + 5
        assert [(await hive.jobs.get(job_id)).state.name for job_id in ids] == ["Enqueued"] * 5
        # a transaction of several operations runs on the writer thread, as before
        async with hive.transaction() as tx:
            await tx.jobs.create(add, 1, 1)
            await tx.jobs.create(add, 2, 2)
        assert inline.commits == before + 5
        # so does a large batch (it would hold up the event loop); a small one runs here
        await hive.jobs.create_many([hm.call(add, n, 1) for n in range(INLINE_ROWS + 1)])
        assert inline.commits == before + 5
        await hive.jobs.create_many([hm.call(add, n, 1) for n in range(INLINE_ROWS)])
        assert inline.commits == before + 6
        assert await hive.jobs.count() == 7 + 2 * INLINE_ROWS + 1


async def test_a_create_waits_for_a_write_lock_held_elsewhere_on_the_writer_thread(sqlite_url: str) -> None:
    path = sqlite_url.removeprefix("sqlite:///")
    async with hm.HiveMind(sqlite_url) as hive:
        inline = _inline(hive)
        before = inline.commits
        other = sqlite3.connect(path, isolation_level=None)  # as another process would
        other.execute("BEGIN IMMEDIATE")
        loop_thread = threading.get_ident()
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        waiting = asyncio.create_task(hive.jobs.create(add, 1, 2))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        assert ticks >= 10, "the event loop was blocked while the write lock was held elsewhere"
        other.execute("COMMIT")
        other.close()
        job_id = await asyncio.wait_for(waiting, timeout=10)
        ticker.cancel()
        assert inline.commits == before  # it ran on the writer thread
        assert (await hive.jobs.get(job_id)).state.name == "Enqueued"
        assert threading.get_ident() == loop_thread


async def test_a_failed_inline_transaction_is_rolled_back_and_raised(sqlite_url: str) -> None:
    async with hm.HiveMind(sqlite_url) as hive:
        storage = hive.env().storage
        inline = _inline(hive)
        before = inline.commits

        def fails(connection: sqlite3.Connection) -> None:
            connection.execute(f"DELETE FROM {storage.queries.table('queue')}")
            connection.execute("SELECT * FROM no_such_table")

        await hive.jobs.create(add, 1, 2)
        with pytest.raises(StorageError, match="no such table"):
            inline.run(fails)
        assert inline.commits == before + 1
        # the connection is usable again, and the queue entry the failed transaction deleted is there
        await hive.jobs.create(add, 3, 4)
        assert inline.commits == before + 2
        colony = hive.colony(name="c", allow=hm.AllowList(modules=["tests.sample_jobs"]))
        colony.swarm("main", drones=2)
        await asyncio.wait_for(colony.run(burst=True), timeout=30)
        assert await hive.jobs.count_by_state() == {"Succeeded": 2}


async def test_the_wal_is_checkpointed_while_creates_commit_inline(sqlite_url: str) -> None:
    path = sqlite_url.removeprefix("sqlite:///")
    async with hm.HiveMind(sqlite_url) as hive:
        inline = _inline(hive)
        before = inline.commits
        for n in range(2000):
            await hive.jobs.create(add, n, 1)
        # most inline; those that came while the writer thread checkpointed went through it
        assert before + 1800 <= inline.commits <= before + 2000
        assert await hive.jobs.count() == 2000
        await asyncio.sleep(0.2)  # the last checkpoint asked for runs on the writer thread
        # 2,000 commits of several pages each, never checkpointed, would make a WAL of tens of MB
        assert Path(path + "-wal").stat().st_size < 8 * 1024 * 1024  # noqa: ASYNC240 (one stat)


async def test_no_inline_writes_with_synchronous_full(tmp_path: object) -> None:
    async with hm.HiveMind(f"sqlite:///{tmp_path}/full.db?synchronous=FULL") as hive:
        storage = hive.env().storage
        assert isinstance(storage, SQLiteStorage)
        assert storage._require_engine().inline is None
        job_id = await hive.jobs.create(add, 1, 2)
        assert (await hive.jobs.get(job_id)).state.name == "Enqueued"
