"""The SQLite writer thread never wedges: callers cancelled at any point, while other transactions
run, always leave the file unlocked and every later write working."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from pathlib import Path

import pytest

import hivemind_jobs as hm
from tests.sample_jobs import add


def _file_is_writable(path: str, timeout: float = 2.0) -> bool:
    """Whether another connection (as another process would) gets the write lock in time."""
    connection = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        connection.close()


def _path(url: str) -> str:
    return url.removeprefix("sqlite:///")


async def test_a_caller_cancelled_behind_another_transaction_does_not_wedge_the_writer(sqlite_url: str) -> None:
    async with hm.HiveMind(sqlite_url) as hive:
        storage = hive.env().storage

        async def create_in_own_transaction() -> None:
            async with hive.transaction() as tx:
                await tx.jobs.create(add, 1, 2)

        async with storage.transaction() as first:
            await first.job_state_counts()  # the first transaction is open on the writer
            waiting = asyncio.create_task(create_in_own_transaction())
            await asyncio.sleep(0.05)  # its first operation waits behind the open transaction
            waiting.cancel()
            await asyncio.sleep(0.05)  # and so does its rollback
        with pytest.raises(asyncio.CancelledError):
            await waiting
        job_id = await asyncio.wait_for(hive.jobs.create(add, 3, 4), timeout=5)
        assert (await hive.jobs.get(job_id)).state.name == "Enqueued"
        assert await hive.jobs.count() == 1  # the cancelled transaction wrote nothing
        assert _file_is_writable(_path(sqlite_url))


async def test_random_cancellations_never_leave_the_file_locked(sqlite_url: str) -> None:
    rng = random.Random(20261204)
    async with hm.HiveMind(sqlite_url) as hive:
        committed: list[int] = []
        cancelled = 0

        async def worker(number: int) -> None:
            async with hive.transaction() as tx:
                ids = []
                for _ in range(rng.randint(1, 3)):
                    ids.append(await tx.jobs.create(add, number, 1))
                    if rng.random() < 0.5:
                        await asyncio.sleep(rng.random() * 0.004)
            committed.extend(ids)

        async def single(number: int) -> None:
            committed.append(await hive.jobs.create(add, number, 2))

        for _ in range(6):
            tasks = [
                asyncio.create_task(worker(n) if rng.random() < 0.7 else single(n)) for n in range(rng.randint(20, 40))
            ]
            await asyncio.sleep(rng.random() * 0.003)
            for task in tasks:
                if rng.random() < 0.4:
                    await asyncio.sleep(rng.random() * 0.002)
                    task.cancel()
            done, pending = await asyncio.wait(tasks, timeout=20)
            assert not pending, f"{len(pending)} transactions never finished: the writer is wedged"
            for task in done:
                if task.cancelled():
                    cancelled += 1
                elif task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            started = time.monotonic()
            assert await asyncio.wait_for(hive.jobs.create(add, 0, 0), timeout=5)
            assert time.monotonic() - started < 5
            committed.append(-1)  # the probe job
            assert _file_is_writable(_path(sqlite_url))
        # every transaction that reported a commit is there; one cancelled while its commit was on
        # its way may have committed too (its caller cannot know), never more than those
        assert cancelled > 20
        stored = await hive.jobs.count()
        assert len(committed) <= stored <= len(committed) + 3 * cancelled
        for job_id in committed:
            if job_id > 0:
                assert await hive.jobs.try_get(job_id) is not None


def test_an_abandoned_transaction_is_rolled_back_by_the_writer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from hivemind_jobs.storage.sqlite.worker import ConnectionWorker, TransactionToken

    path = tmp_path / "abandoned.db"

    def connect() -> sqlite3.Connection:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA journal_mode = WAL")
        return connection

    worker = ConnectionWorker("test-writer", connect, "BEGIN IMMEDIATE", idle_timeout=0.3)

    async def scenario() -> None:
        token = TransactionToken()
        await worker.submit(token, lambda connection: connection.execute("CREATE TABLE t (x INTEGER)"))
        # the caller vanishes: no commit, no rollback
        assert not _file_is_writable(str(path), timeout=0.05)
        await asyncio.sleep(0.6)
        assert _file_is_writable(str(path))
        with pytest.raises(hm.StorageError, match="already finished"):
            await worker.submit(token, lambda connection: connection.execute("SELECT 1"))
        other = TransactionToken()
        await worker.submit(other, lambda connection: connection.execute("CREATE TABLE u (x INTEGER)"))
        await worker.finish(other, commit=True)

    with caplog.at_level("ERROR", logger="hivemind_jobs.storage.sqlite"):
        asyncio.run(scenario())
    worker.close()
    assert any("rolled back" in record.getMessage() for record in caplog.records)
    tables = {row[0] for row in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"u"}
