"""Transactions span any number of client calls; nothing is visible elsewhere before commit."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

import hivemind_jobs as hm
from tests import backends
from tests import sample_jobs as jobs


def raw_job_count(db_url: str) -> int:
    """Count jobs through a second, independent connection."""
    return backends.count(db_url, "job")


async def test_commit_on_clean_exit_and_invisible_before(hive: hm.HiveMind, db_url: str) -> None:
    async with hive.transaction() as tx:
        first = await tx.jobs.create(jobs.do_stuff)
        second = await tx.jobs.options(queue="other").create(jobs.do_stuff)
        await tx.jobs.set_data(first, "k", 1)
        assert await tx.jobs.get_data(first, "k") == 1  # the transaction sees its own writes
        assert await hive.jobs.try_get(first) is None  # another connection of this process does not
        assert raw_job_count(db_url) == 0  # nor does another connection altogether
    assert raw_job_count(db_url) == 2
    assert (await hive.jobs.get(second)).queue == "other"


async def test_rollback_on_exception(hive: hm.HiveMind, db_url: str) -> None:
    with pytest.raises(KeyError):
        async with hive.transaction() as tx:
            await tx.jobs.create(jobs.do_stuff)
            await tx.jobs.create(jobs.do_stuff)
            raise KeyError("abort")
    assert raw_job_count(db_url) == 0
    assert await hive.jobs.queue_stats() == []  # the queue entries went with them


async def test_explicit_rollback_and_commit(hive: hm.HiveMind, db_url: str) -> None:
    async with hive.transaction() as tx:
        await tx.jobs.create(jobs.do_stuff)
        await tx.rollback()
        with pytest.raises(hm.TransactionError):
            await tx.jobs.create(jobs.do_stuff)
    assert raw_job_count(db_url) == 0
    async with hive.transaction() as tx:
        await tx.jobs.create(jobs.do_stuff)
        await tx.commit()
        assert raw_job_count(db_url) == 1
    assert raw_job_count(db_url) == 1


async def test_the_seed_resubmit_example(hive: hm.HiveMind) -> None:
    job_id = await hive.jobs.options(state=hm.Failed(message="first attempt")).create(jobs.do_stuff)
    async with hive.transaction() as tx, tx.jobs.get_with_lock(job_id, requester="ResubmitHandler") as failed_job:
        if isinstance(failed_job.state, hm.Failed) and await failed_job.change_state(
            hm.Deleted(reason="Job is being resubmitted")
        ):
            await failed_job.save()
            new_job_id = await tx.jobs.create(jobs.do_stuff)
            await tx.jobs.options(after=hm.After(new_job_id, on=hm.Continue.SUCCEEDED)).create(jobs.do_stuff)
    assert (await hive.jobs.count_by_state()) == {"Deleted": 1, "Enqueued": 1, "Awaiting": 1}


@pytest_asyncio.fixture
async def sqlite_hive(sqlite_url: str) -> AsyncIterator[hm.HiveMind]:
    async with hm.HiveMind(sqlite_url) as hive:
        yield hive


async def test_opening_a_second_write_transaction_in_the_same_task_is_refused(sqlite_hive: hm.HiveMind) -> None:
    """SQLite has one writer: a second write transaction of the same task would wait forever."""
    hive = sqlite_hive
    async with hive.transaction() as tx:
        await tx.jobs.create(jobs.do_stuff)
        with pytest.raises(hm.TransactionError, match="already has a write transaction open"):
            await hive.jobs.create(jobs.do_stuff)  # would wait for `tx` forever
        await tx.jobs.create(jobs.do_stuff)  # the open transaction is still usable
    assert (await hive.jobs.count_by_state()) == {"Enqueued": 2}


@pytest.mark.parametrize("backend_name", ["postgres", "mariadb"])
async def test_a_task_may_open_a_second_transaction_on_a_server(hive: hm.HiveMind) -> None:
    """On a server database each transaction has its own connection: no waiting on oneself."""
    async with hive.transaction() as tx:
        await tx.jobs.create(jobs.do_stuff)
        await hive.jobs.create(jobs.do_stuff)  # commits on its own
        assert (await hive.jobs.count_by_state()) == {"Enqueued": 1}
    assert (await hive.jobs.count_by_state()) == {"Enqueued": 2}


async def test_other_tasks_wait_for_the_transaction(sqlite_hive: hm.HiveMind) -> None:
    """SQLite's single writer: another task's write waits until the open transaction ends."""
    import asyncio

    hive = sqlite_hive

    order: list[str] = []

    async def outside() -> None:
        await hive.jobs.create(jobs.do_stuff)
        order.append("outside committed")

    async with hive.transaction() as tx:
        await tx.jobs.create(jobs.do_stuff)
        task = asyncio.create_task(outside())
        await asyncio.sleep(0.1)
        order.append("transaction still open")
    await task
    assert order == ["transaction still open", "outside committed"]


async def test_a_transaction_object_is_entered_once(hive: hm.HiveMind) -> None:
    tx = hive.transaction()
    async with tx:
        pass
    with pytest.raises(hm.TransactionError):
        async with tx:
            pass
    with pytest.raises(hm.TransactionError, match="not open"):
        await hive.transaction().jobs.create(jobs.do_stuff)


async def test_storage_must_be_opened(db_url: str) -> None:
    hive = hm.HiveMind(db_url)
    with pytest.raises(hm.TransactionError, match="async with hive"):
        await hive.jobs.create(jobs.do_stuff)


async def test_cancelled_calls_never_leave_the_writer_blocked(hive: hm.HiveMind) -> None:
    """A call cancelled while its operation runs still ends its transaction (commit or rollback)."""
    import asyncio

    parent = await hive.jobs.create(jobs.do_stuff)
    await hive.jobs.options(after=hm.After(parent)).create(jobs.do_stuff)  # saves will have follow-up work
    for attempt in range(30):
        task = asyncio.create_task(hive.jobs.create(jobs.do_stuff))
        await asyncio.sleep(0.0002 * attempt)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        change = asyncio.create_task(hive.jobs.change_state(parent, hm.Idle() if attempt % 2 else hm.Enqueued()))
        await asyncio.sleep(0.0002 * attempt)
        change.cancel()
        await asyncio.gather(change, return_exceptions=True)
    # the writer is free: a normal call completes promptly
    job_id = await asyncio.wait_for(hive.jobs.create(jobs.do_stuff), timeout=5)
    assert (await hive.jobs.get(job_id)).state.name == "Enqueued"
    assert (await hive.jobs.get(parent)).locked_by is None
