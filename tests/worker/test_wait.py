"""Waiting for results: ``jobs.wait``, ``create_ref`` handles and the blocking twin, on every backend."""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

import hivemind_jobs as hm
from hivemind_jobs.client.waiting import ResultWaiters, result_waiters
from tests.worker import jobs
from tests.worker.conftest import ALLOW, FAST, colony_of


@asynccontextmanager
async def running(colony: hm.Colony) -> AsyncIterator[None]:
    """The colony runs while the block does (a wait needs someone to run the job)."""
    task = asyncio.ensure_future(colony.run())
    for _ in range(1000):  # a stop asked for before the run starts would be forgotten
        if colony.status == hm.ColonyStatus.RUNNING:
            break
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        colony.stop()
        await task


async def test_wait_returns_the_result_decoded_with_the_return_annotation(whive: hm.HiveMind) -> None:
    ref = await whive.jobs.create_ref(jobs.make_invoice, 7)
    listed = await whive.jobs.create_ref(jobs.async_invoices, 2)
    plain = await whive.jobs.create(jobs.add, 2, 3)
    assert isinstance(ref.id, int) and int(ref) == ref.id
    async with running(colony_of(whive)):
        invoice = await ref.result(timeout=30)
        invoices = await listed.result(timeout=30)
        total = await whive.jobs.wait(plain, timeout=30)
    assert invoice == jobs.Invoice(7, datetime.date(2026, 1, 7))
    assert invoices == [jobs.Invoice(1, datetime.date(2026, 1, 1)), jobs.Invoice(2, datetime.date(2026, 1, 2))]
    assert total == 5
    # by id: as stored without a hint (an unregistered class is not built), typed with one
    assert isinstance(await whive.jobs.wait(ref.id), hm.UndecodedValue)
    assert await whive.jobs.wait(ref.id, jobs.Invoice) == invoice
    # several waiters of one job and of several jobs share one reader
    many = [await whive.jobs.create_ref(jobs.add, n, 1) for n in range(5)]
    waits = [asyncio.ensure_future(ref.result(timeout=30)) for ref in many + many]
    await asyncio.sleep(0.05)
    assert result_waiters(whive.jobs.environment).waiting == {ref.id for ref in many}
    async with running(colony_of(whive)):
        assert await asyncio.gather(*waits) == [n + 1 for n in range(5)] * 2
    assert result_waiters(whive.jobs.environment).waiting == frozenset()


async def test_a_failed_job_raises_with_the_stored_exception(whive: hm.HiveMind) -> None:
    job_id = await whive.jobs.create(jobs.boom, "the printer is on fire")
    async with running(colony_of(whive)):
        with pytest.raises(hm.JobFailedError) as raised:
            await whive.jobs.wait(job_id, timeout=30)
    error = raised.value
    assert error.job_id == job_id and error.state == "Failed"
    assert error.exception_type == "builtins.ValueError"
    assert error.exception_message == "the printer is on fire"
    assert error.traceback is not None and "raise ValueError(message)" in error.traceback
    assert "failed with builtins.ValueError: the printer is on fire" in str(error)
    assert isinstance(error, hm.JobNotSucceededError)


async def test_a_deleted_job_raises(whive: hm.HiveMind) -> None:
    job_id = await whive.jobs.create(jobs.note, "never runs")
    waiting = asyncio.ensure_future(whive.jobs.wait(job_id, timeout=30))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await whive.jobs.delete(job_id, reason="not needed")
    with pytest.raises(hm.JobDeletedError, match="was deleted \\(not needed\\)") as raised:
        await waiting
    assert raised.value.state == "Deleted" and raised.value.reason == "not needed"
    with pytest.raises(hm.JobDeletedError):  # already final: answered by the first read
        await whive.jobs.wait(job_id)


async def test_timeout_raises_within_bounds_and_leaves_the_job_alone(whive: hm.HiveMind) -> None:
    job_id = await whive.jobs.create(jobs.note, "not yet")
    started = time.monotonic()
    with pytest.raises(hm.JobWaitTimeoutError, match=f"job {job_id} did not finish within 0.3 s") as raised:
        await whive.jobs.wait(job_id, timeout=datetime.timedelta(seconds=0.3))
    elapsed = time.monotonic() - started
    assert isinstance(raised.value, TimeoutError)
    assert 0.3 <= elapsed < 3.0
    assert isinstance((await whive.jobs.get(job_id)).state, hm.Enqueued)
    assert result_waiters(whive.jobs.environment).waiting == frozenset()


async def test_unknown_jobs_and_bad_arguments_are_refused(whive: hm.HiveMind) -> None:
    with pytest.raises(hm.JobNotFoundError, match="background job 987654 does not exist"):
        await whive.jobs.wait(987654, timeout=5)
    job_id = await whive.jobs.create(jobs.note, "x")
    with pytest.raises(hm.ConfigurationError, match="timeout must not be negative"):
        await whive.jobs.wait(job_id, timeout=-1)
    with pytest.raises(hm.ConfigurationError, match="timeout must be seconds"):
        await whive.jobs.wait(job_id, timeout="soon")  # type: ignore[call-overload]
    async with whive.transaction() as tx:
        with pytest.raises(hm.TransactionError, match="wait outside it"):
            await tx.jobs.wait(job_id, timeout=1)


async def test_a_retried_failure_is_waited_through(db_url: str) -> None:
    options = hm.Options(retry=hm.RetryPolicy(max_retries=2, delays=[datetime.timedelta(0)]))
    async with hm.HiveMind(db_url, options=options) as hive:
        ref = await hive.jobs.create_ref(jobs.flaky, 1)  # fails once, then succeeds
        colony = hive.colony(name="retrying", allow=ALLOW, options=FAST)
        colony.swarm("main", drones=2)
        async with running(colony):
            assert await ref.result(timeout=30) == 2


async def test_postgres_wakes_waiters_by_notification(postgres_url: str) -> None:
    async with hm.HiveMind(postgres_url) as hive:
        waiters = result_waiters(hive.jobs.environment)
        assert waiters.notified_poll >= 5.0 > ResultWaiters.max_poll
        job_id = await hive.jobs.create(jobs.note, "deleted soon")
        waiting = asyncio.ensure_future(hive.jobs.wait(job_id, timeout=30))
        await asyncio.sleep(1.0)  # the reader has read (and again once its listener connected); it sleeps now
        reads = waiters.reads
        started = time.monotonic()
        async with hm.HiveMind(postgres_url) as other:  # another process's connection deletes it
            await other.jobs.delete(job_id)
        with pytest.raises(hm.JobDeletedError):
            await waiting
        assert time.monotonic() - started < 2.5  # well before the 5 s poll
        assert waiters.reads - reads <= 2  # the notification's read (and a late listener connect's)


def test_blocking_facade_waits(db_url: str) -> None:
    with hm.SyncHiveMind(db_url) as hive:
        ref = hive.jobs.create_ref(jobs.make_invoice, 3)
        failing = hive.jobs.options(retry=hm.RetryPolicy(max_retries=0)).create(jobs.boom, "sync boom")
        with pytest.raises(hm.JobWaitTimeoutError):
            ref.result(timeout=0.2)
        with pytest.raises(hm.JobNotFoundError):
            hive.jobs.wait(987654)

        async def work() -> None:
            async with hm.HiveMind(db_url) as worker:
                colony = worker.colony(name="sync-worker", allow=ALLOW, options=FAST)
                colony.swarm("main", drones=2)
                await colony.run(burst=True)

        asyncio.run(work())
        assert ref.result(timeout=30) == jobs.Invoice(3, datetime.date(2026, 1, 3))
        with pytest.raises(hm.JobFailedError, match="sync boom"):
            hive.jobs.wait(failing, timeout=30)


async def test_postgres_notifies_a_batch_of_finished_jobs_once(postgres_url: str) -> None:
    async with hm.HiveMind(postgres_url) as hive:
        job_ids = [await hive.jobs.create(jobs.note, str(n)) for n in range(3)]
        kept = await hive.jobs.create(jobs.note, "kept")
        received: list[frozenset[int] | None] = []
        unsubscribe = hive.jobs.environment.storage.subscribe_finished(received.append)
        assert unsubscribe is not None
        for _ in range(500):  # the listener reports a (re)connect first: from then on it listens
            if received:
                break
            await asyncio.sleep(0.01)
        assert received == [None]
        waits = [asyncio.ensure_future(hive.jobs.wait(job_id, timeout=30)) for job_id in job_ids]
        await asyncio.sleep(0.5)
        started = time.monotonic()
        async with hm.HiveMind(postgres_url) as other:  # one bulk save: one statement for the batch
            result = await other.jobs.delete_where(hm.job.id.in_(job_ids), batch_size=10)
        assert result.changed == 3
        outcomes = await asyncio.gather(*waits, return_exceptions=True)
        assert all(isinstance(outcome, hm.JobDeletedError) for outcome in outcomes)
        assert time.monotonic() - started < 2.5  # well before the 5 s poll
        for _ in range(200):
            if len(received) > 1:
                break
            await asyncio.sleep(0.01)
        assert received[1:] == [frozenset(job_ids)]  # one notification, the batch's ids, not the kept job
        assert kept not in received[1]
        unsubscribe()
