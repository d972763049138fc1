"""Retention cleanup (``run_maintenance`` and the maintenance daemon) on every backend.

Jobs count as old by the time their current state was elected, which the library stamps with the
environment's clock: a second hive on the same database whose clock runs two days behind creates
and runs the old jobs (retention one day), so no test waits for jobs to age. Log records and
occurrence keys are stamped by the database clock, so that test keeps a one-second retention
and waits it out once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import hivemind_jobs as hm
from hivemind_jobs.daemons import maintenance
from hivemind_jobs.daemons.maintenance import MaintenanceReport, lease_name, run_maintenance
from hivemind_jobs.errors import StorageError
from hivemind_jobs.storage.protocol import ColonyUpsert, DaemonLogRow, LeaseAcquire, OccurrenceInsert
from tests import backends
from tests.worker import jobs
from tests.worker.conftest import ALLOW, FAST

RETENTION = hm.Options(
    retention=timedelta(days=1),
    lock_timeout=timedelta(seconds=2),
    retry=hm.RetryPolicy(max_retries=0),
)
#: every table that holds rows of a job, and the column naming the job
JOB_TABLES = {
    "job": "id",
    "job_state": "job_id",
    "job_property": "job_id",
    "job_data": "job_id",
    "job_log": "job_id",
    "job_action": "job_id",
    "queue": "job_id",
    "job_continuation": "parent_id",
}


class BehindClock:
    """The system clock, ``behind`` in the past: what this hive elects is already old."""

    def __init__(self, behind: timedelta) -> None:
        self.behind = behind

    def now(self) -> datetime:
        return datetime.now(UTC) - self.behind


@asynccontextmanager
async def hives(url: str, options: hm.Options = RETENTION) -> AsyncIterator[tuple[hm.HiveMind, hm.HiveMind]]:
    """(now, old): two hives on ``url``; ``old`` elects states two days in the past."""
    async with (
        hm.HiveMind(url, options=options) as hive,
        hm.HiveMind(url, options=options, clock=BehindClock(timedelta(days=2))) as old,
    ):
        yield hive, old


def worker(hive: hm.HiveMind, **options: object) -> hm.Colony:
    colony = hive.colony(name="maint", allow=ALLOW, options=dataclasses.replace(FAST, **options))  # type: ignore[arg-type]
    colony.swarm("main", drones=4)
    return colony


async def until(condition: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


def rows_of(url: str, job_ids: list[int]) -> dict[str, int]:
    """How many rows of each job table belong to ``job_ids`` (non-zero counts only)."""
    marks = ", ".join("?" * len(job_ids))
    counts = {}
    for name, column in JOB_TABLES.items():
        sql = f"SELECT COUNT(*) FROM {backends.table(url, name)} WHERE {column} IN ({marks})"
        counts[name] = int(backends.raw(url, sql, *job_ids)[0][0])
    return {name: count for name, count in counts.items() if count}


def job_count(url: str) -> int:
    return backends.count(url, "job")


async def pass_of(hive: hm.HiveMind, holder: str = "test", **options: object) -> MaintenanceReport:
    return await run_maintenance(hive.env(), holder, **options)  # type: ignore[arg-type]


async def test_old_completed_jobs_go_with_their_rows_others_stay(db_url: str) -> None:
    async with hives(db_url) as (hive, old):
        # Old jobs a colony ran: logs, job data, a property; one failed; one still running.
        logged = await old.jobs.create(jobs.with_context, "old")
        with_data = await old.jobs.create(jobs.flaky, 0)
        with_property = await old.jobs.create(jobs.async_with_context)
        failed = await old.jobs.create(jobs.boom, "old")
        running = await old.jobs.create(jobs.sleeper, 30.0)
        # Old jobs changed through the client: deleted, a parent that succeeded, enqueued, locked.
        deleted = await old.jobs.options(queue="parked").create(jobs.add, 1, 2)
        assert await old.jobs.delete(deleted) is hm.DeleteResult.DELETED
        parent = await old.jobs.options(queue="parked").create(jobs.add, 1, 2)
        child = await old.jobs.options(after=hm.After(parent), queue="parked").create(jobs.add, 3, 4)
        assert await old.jobs.change_state(parent, hm.Succeeded(result=3))
        enqueued = await old.jobs.options(queue="parked").create(jobs.add, 5, 6)
        locked_id = await old.jobs.options(state=hm.Succeeded()).create(jobs.add, 7, 8)
        # Young completed jobs.
        young = [await hive.jobs.options(state=hm.Succeeded()).create(jobs.add, 1, 1)]
        young.append(await hive.jobs.options(queue="parked").create(jobs.add, 2, 2))
        assert await hive.jobs.delete(young[-1]) is hm.DeleteResult.DELETED

        colony = worker(old)
        async with colony:
            await until(lambda: states_are(old, {logged, with_data, with_property}, hm.Succeeded))
            await until(lambda: states_are(old, {failed}, hm.Failed))
            await until(lambda: states_are(old, {running}, hm.Executing))
            elected = (await old.jobs.get(logged)).states[-1].elected_at
            assert elected is not None and elected < datetime.now(UTC) - timedelta(days=1)
            assert await old.jobs.get_logs(logged) and await old.jobs.try_get_data(with_data, "attempt") == 1
            removed = [logged, with_data, with_property, deleted, parent]
            assert set(rows_of(db_url, removed)) == {
                "job",
                "job_state",
                "job_property",
                "job_data",
                "job_log",
            }
            locked = await hive.jobs.try_lock(locked_id)
            assert locked is not None

            report = await pass_of(hive)
            assert report.lease == lease_name(0) and report.finished and not report.lease_lost
            assert report.jobs == len(removed) and report.batches["jobs"] == 1
            assert rows_of(db_url, removed) == {}
            for job_id in removed:
                assert await hive.jobs.try_get(job_id) is None
            kept = [failed, running, child, enqueued, locked_id, *young]
            assert len(await hive.jobs.search(hm.job.id.in_(kept))) == len(kept)
            assert isinstance((await hive.jobs.get(running)).state, hm.Executing)
            assert isinstance((await hive.jobs.get(child)).state, hm.Enqueued)

            await locked.release()
            again = await pass_of(hive)
            assert again.jobs == 1 and await hive.jobs.try_get(locked_id) is None
            nothing = await pass_of(hive)
            assert nothing.finished and nothing.removed == 0 and nothing.batches == again.batches
            colony.stop(fast=True)
        assert job_count(db_url) == len(kept) - 1


async def states_are(hive: hm.HiveMind, job_ids: set[int], kind: type[hm.State]) -> bool:
    for job_id in job_ids:
        if not isinstance((await hive.jobs.get(job_id)).state, kind):
            return False
    return True


async def test_batches_of_the_given_size_one_transaction_each(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with hives(db_url) as (hive, old):
        succeeded = old.jobs.options(state=hm.Succeeded())
        for start in range(0, 2000, 1000):
            await succeeded.create_many(hm.call(jobs.add, i, 0) for i in range(start, start + 1000))
        await old.jobs.options(state=hm.Deleted()).create_many(hm.call(jobs.add, i, 0) for i in range(500))
        storage = hive.env().storage
        transactions = 0
        open_transaction = storage.transaction

        def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal transactions
            transactions += 1
            return open_transaction(*args, **kwargs)

        monkeypatch.setattr(storage, "transaction", counted)
        report = await pass_of(hive, batch=1000)
        assert report.jobs == 2500 and report.batches == {"jobs": 3, "daemon_logs": 1, "occurrence_keys": 1}
        assert report.total_batches == 5 and report.removed == 2500 and job_count(db_url) == 0
        assert transactions == 1 + report.total_batches + 1  # take the lease, the batches, release it

        await succeeded.create_many(hm.call(jobs.add, i, 0) for i in range(2000))
        report = await pass_of(hive, batch=1000)
        assert report.jobs == 2000 and report.batches["jobs"] == 3  # the third, empty batch ends it
        assert "removed 2,000 jobs, 0 job logs, 0 daemon logs, 0 occurrence keys in 5 batches" in report.summary()


async def test_no_retention_keeps_every_job(db_url: str) -> None:
    async with hives(db_url, dataclasses.replace(RETENTION, retention=None)) as (hive, old):
        await old.jobs.options(state=hm.Succeeded()).create_many(hm.call(jobs.add, i, 0) for i in range(20))
        await old.jobs.options(state=hm.Deleted()).create_many(hm.call(jobs.add, i, 0) for i in range(5))
        report = await pass_of(hive, batch=10)
        assert report.lease == lease_name(0) and report.finished
        assert report.jobs == 0 and "jobs" not in report.batches and report.removed == 0
        assert job_count(db_url) == 25


async def test_other_retention_states(db_url: str) -> None:
    options = dataclasses.replace(RETENTION, retention_states=("Failed",))
    async with hives(db_url, options) as (hive, old):
        failed = await old.jobs.options(state=hm.Failed(message="gave up")).create(jobs.add, 1, 1)
        succeeded = await old.jobs.options(state=hm.Succeeded()).create(jobs.add, 1, 1)
        assert (await pass_of(hive)).jobs == 1
        assert await hive.jobs.try_get(failed) is None and await hive.jobs.try_get(succeeded) is not None


async def test_log_and_occurrence_key_retention(db_url: str) -> None:
    second = timedelta(seconds=1)
    options = hm.Options(
        retention=None,
        job_log_retention=second,
        daemon_log_retention=second,
        catch_up_window=second,
        clock_skew_allowance=timedelta(0),
        occurrence_key_retention=second,
    )
    async with hm.HiveMind(db_url, options=options) as hive:
        environment = hive.env()
        job_id = await hive.jobs.create(jobs.add, 1, 2)
        colony_id = "host:1:maint"
        scheduled = datetime(2030, 1, 1, tzinfo=UTC)

        async def write(label: str, count: int, hour: int) -> None:
            for number in range(count):
                await hive.jobs.add_log(job_id, f"{label} {number}")
            async with environment.storage.transaction() as tx:
                await tx.colony_upsert(ColonyUpsert(colony_id, "maint", "host", 1, "running", "{}"))
                rows = [DaemonLogRow(colony_id, "d", logging.WARNING, f"{label} {n}") for n in range(count)]
                await tx.daemon_log_insert(rows)
                for number in range(count):
                    key = OccurrenceInsert("nightly", scheduled + timedelta(hours=hour, minutes=number), None)
                    assert await tx.occurrence_insert(key)

        await write("old", 7, 0)
        await asyncio.sleep(1.3)  # these rows carry the database's time: let them age past one second
        await write("young", 2, 1)

        report = await pass_of(hive, batch=3)
        assert (report.job_logs, report.daemon_logs, report.occurrence_keys, report.jobs) == (7, 7, 7, 0)
        assert report.batches == {"job_logs": 3, "daemon_logs": 3, "occurrence_keys": 3}
        assert [entry.message for entry in await hive.jobs.get_logs(job_id)] == ["young 0", "young 1"]
        logs = await hive.colonies.daemon_logs(colony_id)
        assert [entry.message for entry in logs] == ["young 0", "young 1"]
        occurrences = backends.raw(db_url, f"SELECT COUNT(*) FROM {backends.table(db_url, 'recurring_occurrence')}")
        assert occurrences[0][0] == 2
        async with environment.storage.transaction() as tx:
            assert await tx.occurrence_insert(OccurrenceInsert("nightly", scheduled, None))  # pruned: free again
            assert not await tx.occurrence_insert(OccurrenceInsert("nightly", scheduled + timedelta(hours=1), None))
        assert await hive.jobs.try_get(job_id) is not None


async def test_job_logs_live_with_their_job_by_default(db_url: str) -> None:
    options = hm.Options(retention=None, daemon_log_retention=timedelta(seconds=1))
    async with hm.HiveMind(db_url, options=options) as hive:
        job_id = await hive.jobs.create(jobs.add, 1, 2)
        await hive.jobs.add_log(job_id, "kept")
        await asyncio.sleep(1.1)
        report = await pass_of(hive)
        assert "job_logs" not in report.batches and report.job_logs == 0
        assert len(await hive.jobs.get_logs(job_id)) == 1


async def test_a_held_lease_bounds_how_many_passes_run(db_url: str) -> None:
    async with hives(db_url) as (hive, old):
        environment = hive.env()
        await old.jobs.options(state=hm.Succeeded()).create_many(hm.call(jobs.add, i, 0) for i in range(30))
        async with environment.storage.transaction() as tx:  # another colony is in the middle of a pass
            assert await tx.lease_acquire(LeaseAcquire(lease_name(0), "other", timedelta(minutes=1)))

        blocked = await pass_of(hive, concurrency=1)
        assert blocked.lease is None and not blocked.finished and blocked.batches == {}
        assert job_count(db_url) == 30

        second = await pass_of(hive, concurrency=2, batch=10)
        assert second.lease == lease_name(1) and second.jobs == 30 and job_count(db_url) == 0

        async with environment.storage.transaction() as tx:  # the pass released its lease; "other" still holds its own
            assert await tx.lease_acquire(LeaseAcquire(lease_name(1), "someone", timedelta(seconds=1)))
            assert not await tx.lease_acquire(LeaseAcquire(lease_name(0), "someone", timedelta(seconds=1)))
            assert await tx.lease_acquire(LeaseAcquire(lease_name(0), "other", timedelta(seconds=1), release=True))
            assert await tx.lease_acquire(LeaseAcquire(lease_name(1), "someone", timedelta(seconds=1), release=True))
        assert (await pass_of(hive, concurrency=1)).lease == lease_name(0)


async def test_concurrent_passes_share_out_the_leases(db_url: str) -> None:
    async with hives(db_url) as (hive, old):
        environment = hive.env()

        async def load() -> None:
            await old.jobs.options(state=hm.Succeeded()).create_many(hm.call(jobs.add, i, 0) for i in range(600))

        async def two_passes(concurrency: int) -> list[MaintenanceReport]:
            passes = (
                run_maintenance(environment, holder, batch=50, concurrency=concurrency, pause=0.05)
                for holder in ("colony-a", "colony-b")
            )
            # Both end before the hive closes, whatever one of them raised.
            outcomes = await asyncio.gather(*passes, return_exceptions=True)
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
            return [outcome for outcome in outcomes if isinstance(outcome, MaintenanceReport)]

        await load()
        reports = await two_passes(1)
        working = [report for report in reports if report.lease is not None]
        assert len(working) == 1 and working[0].jobs == 600 and working[0].finished
        assert sum(report.jobs for report in reports) == 600 and job_count(db_url) == 0

        await load()
        reports = await two_passes(2)
        assert sorted(str(report.lease) for report in reports) == [lease_name(0), lease_name(1)]
        # Both may work at once. A batch can come back short because the other pass holds the rows
        # it skipped (on a small MariaDB table its full scan locks every candidate, so one pass may
        # find nothing): that pass ends, and the other removes what it holds.
        assert all(report.finished for report in reports)
        assert sum(report.jobs for report in reports) == 600 and job_count(db_url) == 0


async def test_an_expired_lease_is_taken_over(db_url: str) -> None:
    async with hives(db_url) as (hive, old):
        await old.jobs.options(state=hm.Succeeded()).create(jobs.add, 1, 1)
        async with hive.env().storage.transaction() as tx:  # a colony died during its pass
            assert await tx.lease_acquire(LeaseAcquire(lease_name(0), "dead", timedelta(milliseconds=300)))
        assert (await pass_of(hive)).lease is None
        await asyncio.sleep(0.5)
        report = await pass_of(hive)
        assert report.lease == lease_name(0) and report.jobs == 1


async def test_a_pass_stops_between_batches_when_asked(db_url: str) -> None:
    async with hives(db_url) as (hive, old):
        await old.jobs.options(state=hm.Succeeded()).create_many(hm.call(jobs.add, i, 0) for i in range(500))
        stopping = asyncio.Event()
        asyncio.get_running_loop().call_later(0.2, stopping.set)
        report = await pass_of(hive, batch=10, pause=0.05, stopping=stopping)
        assert not report.finished and 0 < report.jobs < 500 and report.seconds < 1.0
        assert job_count(db_url) == 500 - report.jobs
        assert (await pass_of(hive, holder="next")).lease == lease_name(0)  # released on the way out
        assert (await pass_of(hive, stopping=stopping)).lease is None


async def test_a_lost_lease_ends_the_pass(db_url: str) -> None:
    async with hives(db_url) as (hive, old):
        await old.jobs.options(state=hm.Succeeded()).create_many(hm.call(jobs.add, i, 0) for i in range(1000))
        environment = hive.env()

        async def usurp() -> None:
            # As if our lease had expired during a stalled batch and another colony had taken it.
            await asyncio.sleep(0.3)
            async with environment.storage.transaction() as tx:
                assert await tx.lease_acquire(LeaseAcquire(lease_name(0), "test", timedelta(seconds=1), release=True))
                assert await tx.lease_acquire(LeaseAcquire(lease_name(0), "usurper", timedelta(minutes=1)))

        usurper = asyncio.create_task(usurp())
        report = await pass_of(hive, batch=10, lease_ttl=timedelta(milliseconds=300), pause=0.02)
        await usurper
        assert report.lease_lost and not report.finished and 10 <= report.jobs < 1000
        assert "(lease lost)" in report.summary()
        async with environment.storage.transaction() as tx:  # not released: it is the usurper's now
            assert not await tx.lease_acquire(LeaseAcquire(lease_name(0), "third", timedelta(seconds=1)))


async def test_bad_arguments_are_refused(db_url: str) -> None:
    async with hm.HiveMind(db_url) as hive:
        for options in ({"batch": 0}, {"batch": 100_001}, {"concurrency": 0}, {"pause": -1.0}):
            with pytest.raises(hm.ConfigurationError):
                await pass_of(hive, **options)
        with pytest.raises(hm.ConfigurationError):
            await pass_of(hive, lease_ttl=timedelta(0))


async def test_the_daemon_cleans_up_while_the_colony_keeps_working(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hivemind_jobs.daemon")
    async with hives(db_url) as (hive, old):
        for start in range(0, 1200, 400):
            await old.jobs.options(state=hm.Succeeded()).create_many(
                hm.call(jobs.add, i, 0) for i in range(start, start + 400)
            )
        colony = worker(hive, maintenance_interval=timedelta(milliseconds=300), maintenance_batch=100)
        # every colony runs the maintenance daemon (hm.maintenance)
        new: list[int] = []
        async with colony:
            deadline = time.monotonic() + 20
            while job_count(db_url) > len(new) or len(new) < 40:
                assert time.monotonic() < deadline, "the old jobs were not removed in time"
                new.append(await hive.jobs.create(jobs.add, len(new), 1))
                await asyncio.sleep(0.02)
            await until(lambda: states_are(hive, set(new), hm.Succeeded))
        assert job_count(db_url) == len(new) and colony.succeeded == len(new)
        ours = [record for record in caplog.records if record.name.startswith("hivemind_jobs.daemon.")]
        assert not [record for record in ours if record.levelno >= logging.WARNING]
        summaries = [record.getMessage() for record in ours if record.name.endswith(".maintenance")]
        assert summaries and all(message.startswith("maintenance: removed ") for message in summaries)


async def test_the_daemon_retries_after_an_error(
    db_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0
    original = maintenance.run_maintenance

    async def failing_once(*args: object, **kwargs: object) -> MaintenanceReport:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise StorageError("the database went away")
        return await original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(maintenance, "run_maintenance", failing_once)
    async with hives(db_url) as (hive, old):
        await old.jobs.options(state=hm.Succeeded()).create_many(hm.call(jobs.add, i, 0) for i in range(10))
        colony = worker(hive, maintenance_interval=timedelta(milliseconds=200))
        # every colony runs the maintenance daemon (hm.maintenance)
        async with colony:
            await until(lambda: _no_jobs(db_url))
        warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
        assert any("maintenance could not run" in message and "went away" in message for message in warnings)
        logs = await hive.colonies.daemon_logs(colony.id, daemon="hm.maintenance")
        assert any("went away" in entry.message for entry in logs)  # persisted with the colony


async def _no_jobs(url: str) -> bool:
    return job_count(url) == 0
