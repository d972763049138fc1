"""Conformance of the maintenance operations: purging old jobs and old log rows, and the leases that
bound how many colonies clean up at once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from hivemind_jobs.storage.protocol import (
    DaemonLogList,
    DaemonLogRow,
    JobActionInsert,
    JobActionList,
    JobDataGet,
    JobDataSet,
    JobLogList,
    JobLogRow,
    JobPurge,
    JobUniqueSet,
    LeaseAcquire,
    LogPurge,
    OccurrenceInsert,
    Storage,
)
from hivemind_jobs.testing.conformance.recurring import MOMENT
from hivemind_jobs.testing.conformance.support import (
    LONG,
    ConformanceBase,
    StorageFactory,
    colony_row,
    new_job,
    utc_now,
)

__all__ = ["MaintenanceConformance"]

DAY = timedelta(days=1)


class MaintenanceConformance(ConformanceBase):
    """Old rows go in bounded batches, locked jobs stay, and a lease has one holder at a time."""

    @staticmethod
    async def lease(storage: Storage, name: str, holder: str, ttl: timedelta = LONG, *, release: bool = False) -> bool:
        async with storage.transaction() as tx:
            return await tx.lease_acquire(LeaseAcquire(name, holder, ttl, release))

    # ------------------------------------------------------------------ jobs
    async def test_job_purge_deletes_old_unlocked_jobs_in_the_given_states(self, storage: Storage) -> None:
        now = utc_now()
        ids = await self.insert(
            storage,
            new_job(state="Succeeded", enqueue=False, elected_at=now - 3 * DAY),  # 0: purged
            new_job(state="Succeeded", enqueue=False, elected_at=now - 2 * DAY),  # 1: purged, owns rows
            new_job(state="Deleted", enqueue=False, elected_at=now - 4 * DAY),  # 2: purged
            new_job(state="Failed", enqueue=False, elected_at=now - 5 * DAY),  # 3: another state
            new_job(state="Succeeded", enqueue=False, elected_at=now - DAY / 2),  # 4: too recent
            new_job(state="Succeeded", enqueue=False, elected_at=now - 6 * DAY, lock_owner="holder"),  # 5: locked
            new_job(state="Enqueued", elected_at=now - 7 * DAY),  # 6: another state, queued
        )
        [child] = await self.insert(storage, new_job(state="Awaiting", enqueue=False, awaiting_parent=ids[1]))
        async with storage.transaction() as tx:
            await tx.job_data_set(JobDataSet(ids[1], "result", '{"ok": true}'))
            await tx.job_log_insert([JobLogRow(ids[1], 20, "done")])
            await tx.job_action_insert(JobActionInsert(ids[1], "exec", "stop", "{}"))
        purge = JobPurge(("Succeeded", "Deleted"), DAY, limit=1)
        async with storage.transaction() as tx:
            assert await tx.job_purge(purge) == 1
        async with storage.transaction() as tx:
            assert await tx.job_purge(JobPurge(("Succeeded", "Deleted"), DAY, limit=10)) == 2
            assert await tx.job_purge(JobPurge(("Succeeded", "Deleted"), DAY, limit=10)) == 0
            assert await tx.job_purge(JobPurge((), DAY)) == 0
        async with storage.transaction(readonly=True) as tx:
            left = [record.id for record in await tx.job_get_many([*ids, child])]
            assert await tx.job_data_get(JobDataGet(ids[1], "result")) is None
            assert await tx.job_log_list(JobLogList(ids[1])) == []
            assert await tx.job_action_list(JobActionList((ids[1],))) == []
            assert await tx.continuation_list(child) == []
            counts = await tx.job_state_counts()
        assert left == [*ids[3:], child]
        assert counts == {"Failed": 1, "Succeeded": 2, "Enqueued": 1, "Awaiting": 1}
        assert await self.claim(storage, (("global",),), 10) == [ids[6]]

    async def test_job_purge_releases_the_unique_keys_of_the_jobs_it_deletes(self, storage: Storage) -> None:
        now = utc_now()
        done, in_period, kept = await self.insert(
            storage,
            *(new_job(state="Succeeded", enqueue=False, elected_at=now - 3 * DAY) for _ in range(2)),
            new_job(state="Succeeded", enqueue=False, elected_at=now - DAY / 2),  # too recent to purge
        )
        held = {"done": (done, None), "period": (in_period, now + DAY), "kept": (kept, None)}
        async with storage.transaction() as tx:
            for key, (job_id, until) in held.items():
                await tx.job_unique_claim(key)
                assert await tx.job_unique_set(JobUniqueSet(key, job_id, ("Enqueued",), until))
        async with storage.transaction() as tx:
            assert await tx.job_purge(JobPurge(("Succeeded",), DAY)) == 2
        async with storage.transaction() as tx:
            # a purged job's key is free again; a key whose period runs stays held, as does a kept job's
            assert (await tx.job_unique_claim("done")).job_id is None
            assert (await tx.job_unique_claim("period")).job_id == in_period
            assert (await tx.job_unique_claim("kept")).job_id == kept

    async def test_job_purge_measures_age_on_the_database_clock(self, storage: Storage) -> None:
        async with storage.transaction(readonly=True) as tx:
            now = await tx.clock_now()
        ids = await self.insert(
            storage,
            new_job(state="Succeeded", enqueue=False, elected_at=now - timedelta(seconds=30)),
            new_job(state="Succeeded", enqueue=False, elected_at=now + timedelta(milliseconds=300)),
        )
        async with storage.transaction() as tx:
            assert await tx.job_purge(JobPurge(("Succeeded",), timedelta(seconds=10))) == 1
            assert await tx.job_purge(JobPurge(("Succeeded",), timedelta(0))) == 0
        await asyncio.sleep(0.5)
        async with storage.transaction() as tx:
            assert await tx.job_purge(JobPurge(("Succeeded",), timedelta(0))) == 1
            assert await tx.job_get_many(ids) == []

    # ------------------------------------------------------------------ logs and occurrence keys
    async def test_log_purge_deletes_old_job_logs_in_batches(self, storage: Storage) -> None:
        old = utc_now() - 2 * DAY
        [job_id] = await self.insert(storage, new_job())
        async with storage.transaction() as tx:
            await tx.colony_upsert(colony_row("c-1"))
            await tx.job_log_insert([JobLogRow(job_id, 20, f"old{i}", created_at=old) for i in range(3)])
            await tx.job_log_insert([JobLogRow(job_id, 20, "recent", created_at=utc_now() - DAY / 2)])
            await tx.job_log_insert([JobLogRow(job_id, 20, f"new{i}") for i in range(2)])
            await tx.daemon_log_insert([DaemonLogRow("c-1", "scheduler", 20, "old", created_at=old)])
        async with storage.transaction() as tx:
            assert await tx.log_purge(LogPurge("job_log", DAY, limit=2)) == 2
            assert await tx.log_purge(LogPurge("job_log", DAY, limit=2)) == 1
            assert await tx.log_purge(LogPurge("job_log", DAY, limit=2)) == 0
        async with storage.transaction(readonly=True) as tx:
            logs = await tx.job_log_list(JobLogList(job_id))
            daemon_logs = await tx.daemon_log_list(DaemonLogList("c-1"))
        assert [entry.message for entry in logs] == ["recent", "new0", "new1"]
        assert [entry.message for entry in daemon_logs] == ["old"]  # another table: untouched

    async def test_log_purge_deletes_old_daemon_logs(self, storage: Storage) -> None:
        old = utc_now() - 2 * DAY
        [job_id] = await self.insert(storage, new_job())
        async with storage.transaction() as tx:
            await tx.colony_upsert(colony_row("c-1"))
            await tx.colony_upsert(colony_row("c-2"))
            await tx.daemon_log_insert(
                [
                    DaemonLogRow("c-1", "scheduler", 20, "old1", created_at=old),
                    DaemonLogRow("c-2", "monitor", 30, "old2", created_at=old - DAY),
                    DaemonLogRow("c-1", "scheduler", 20, "recent", created_at=old + 1.5 * DAY),
                    DaemonLogRow("c-1", "scheduler", 20, "new"),
                ]
            )
            await tx.job_log_insert([JobLogRow(job_id, 20, "old job log", created_at=old)])
        async with storage.transaction() as tx:
            assert await tx.log_purge(LogPurge("daemon_log", DAY)) == 2
            assert await tx.log_purge(LogPurge("daemon_log", DAY)) == 0
        async with storage.transaction(readonly=True) as tx:
            assert [entry.message for entry in await tx.daemon_log_list(DaemonLogList("c-1"))] == ["recent", "new"]
            assert await tx.daemon_log_list(DaemonLogList("c-2")) == []
            assert [entry.message for entry in await tx.job_log_list(JobLogList(job_id))] == ["old job log"]

    async def test_log_purge_deletes_old_occurrence_keys(self, storage: Storage) -> None:
        keys = [MOMENT + timedelta(hours=hour) for hour in range(3)]
        async with storage.transaction() as tx:
            assert await tx.occurrence_insert(OccurrenceInsert("daily", keys[0], None))
            assert await tx.occurrence_insert(OccurrenceInsert("hourly", keys[1], 3))
        await asyncio.sleep(0.5)
        async with storage.transaction() as tx:
            assert await tx.occurrence_insert(OccurrenceInsert("daily", keys[2], None))
        age = timedelta(milliseconds=300)
        async with storage.transaction() as tx:
            assert await tx.log_purge(LogPurge("recurring_occurrence", age, limit=1)) == 1
            assert await tx.log_purge(LogPurge("recurring_occurrence", age, limit=1)) == 1
            assert await tx.log_purge(LogPurge("recurring_occurrence", age, limit=1)) == 0
        async with storage.transaction() as tx:  # purged keys can be recorded again, the recent one not
            assert await tx.occurrence_insert(OccurrenceInsert("daily", keys[0], None))
            assert await tx.occurrence_insert(OccurrenceInsert("hourly", keys[1], None))
            assert not await tx.occurrence_insert(OccurrenceInsert("daily", keys[2], None))

    # ------------------------------------------------------------------ leases
    async def test_lease_has_one_holder_until_released(self, storage: Storage) -> None:
        assert await self.lease(storage, "maintenance-0", "a")
        assert not await self.lease(storage, "maintenance-0", "b")
        assert await self.lease(storage, "maintenance-0", "a")  # renewed by its holder
        assert await self.lease(storage, "maintenance-1", "b")  # another name, another lease
        assert not await self.lease(storage, "maintenance-0", "b", release=True)  # not b's to release
        assert not await self.lease(storage, "maintenance-0", "b")
        assert await self.lease(storage, "maintenance-0", "a", release=True)
        assert not await self.lease(storage, "maintenance-0", "a", release=True)
        assert await self.lease(storage, "maintenance-0", "b")
        assert not await self.lease(storage, "maintenance-0", "a")
        assert not await self.lease(storage, "maintenance-1", "a")
        async with storage.transaction() as tx:  # several in one transaction, as a maintenance pass takes one
            assert not await tx.lease_acquire(LeaseAcquire("maintenance-0", "c", LONG))
            assert not await tx.lease_acquire(LeaseAcquire("maintenance-1", "c", LONG))
            assert await tx.lease_acquire(LeaseAcquire("maintenance-2", "c", LONG))

    async def test_lease_expires_on_the_database_clock(self, storage: Storage) -> None:
        short = timedelta(milliseconds=500)
        assert await self.lease(storage, "cleanup", "a", short)
        assert not await self.lease(storage, "cleanup", "b")
        await asyncio.sleep(0.7)
        assert await self.lease(storage, "cleanup", "b")  # a's lease ran out: taken over
        assert not await self.lease(storage, "cleanup", "a", short)  # a lost it and cannot renew it
        assert not await self.lease(storage, "cleanup", "a", release=True)
        assert await self.lease(storage, "cleanup", "b", short)  # b renews, now for a short time
        await asyncio.sleep(0.7)
        assert await self.lease(storage, "cleanup", "b")  # an expired lease is still renewed by its holder
        assert not await self.lease(storage, "cleanup", "a")

    async def test_leases_are_isolated(self, storage: Storage, storage_factory: StorageFactory) -> None:
        other = storage_factory("hm_other_")
        await other.open()
        try:
            assert await self.lease(storage, "maintenance-0", "a")
            assert await self.lease(other, "maintenance-0", "b")
            assert not await self.lease(storage, "maintenance-0", "b")
            assert await self.lease(other, "maintenance-0", "b", release=True)
            assert not await self.lease(storage, "maintenance-0", "b")
        finally:
            await other.close()

    async def test_purge_and_logs_are_isolated(self, storage: Storage, storage_factory: StorageFactory) -> None:
        old = utc_now() - 2 * DAY
        other = storage_factory("hm_other_")
        await other.open()
        try:
            [mine] = await self.insert(storage, new_job(state="Succeeded", enqueue=False, elected_at=old))
            async with storage.transaction() as tx:
                await tx.job_log_insert([JobLogRow(mine, 20, "mine", created_at=old)])
            async with other.transaction() as tx:
                assert await tx.job_purge(JobPurge(("Succeeded",), DAY)) == 0
                assert await tx.log_purge(LogPurge("job_log", DAY)) == 0
            async with storage.transaction(readonly=True) as tx:
                assert [record.id for record in await tx.job_get_many([mine])] == [mine]
                assert [entry.message for entry in await tx.job_log_list(JobLogList(mine))] == ["mine"]
        finally:
            await other.close()
