"""Conformance of schema handling, the database clock, transactions and environment isolation."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from hivemind_jobs.errors import TransactionError
from hivemind_jobs.storage.protocol import (
    DaemonLogList,
    DaemonLogRow,
    JobGet,
    JobLockRelease,
    JobLockTakeover,
    JobRecord,
    Storage,
    UpdateOutcome,
)
from hivemind_jobs.testing.conformance.support import (
    ConformanceBase,
    StorageFactory,
    colony_row,
    new_job,
    state_row,
    utc_now,
)

__all__ = ["TransactionConformance"]


class TransactionConformance(ConformanceBase):
    """Transactions commit, roll back and isolate; environments never see each other."""

    # ------------------------------------------------------------------ schema
    async def test_open_is_idempotent_and_reports_schema(self, storage: Storage) -> None:
        await storage.open()
        assert storage.info.schema_version >= 1
        assert storage.info.table_prefix == "hm_conf_"

    async def test_data_survives_reopen(self, storage_factory: StorageFactory) -> None:
        first = storage_factory("hm_reopen_")
        await first.open()
        [job_id] = await self.insert(first, new_job())
        await first.close()
        second = storage_factory("hm_reopen_")
        await second.open()
        try:
            async with second.transaction(readonly=True) as tx:
                record = await tx.job_get(JobGet(job_id))
            assert record is not None and record.id == job_id
        finally:
            await second.close()

    async def test_clock_is_utc_now(self, storage: Storage) -> None:
        async with storage.transaction(readonly=True) as tx:
            now = await tx.clock_now()
        assert now.tzinfo is not None and abs(now - utc_now()) < timedelta(seconds=5)

    # ------------------------------------------------------------------ transactions and isolation
    async def test_uncommitted_writes_are_invisible_then_committed(self, storage: Storage) -> None:
        async with storage.transaction() as tx:
            [row] = await tx.job_insert([new_job()])
            async with storage.transaction(readonly=True) as reader:
                assert await reader.job_get(JobGet(row.id)) is None
            assert await tx.job_get(JobGet(row.id)) is not None  # visible inside
        async with storage.transaction(readonly=True) as reader:
            assert await reader.job_get(JobGet(row.id)) is not None

    async def test_rollback_discards(self, storage: Storage) -> None:
        async with storage.transaction() as tx:
            [row] = await tx.job_insert([new_job()])
            await tx.rollback()
        with pytest.raises(RuntimeError):
            async with storage.transaction() as tx:
                [failed] = await tx.job_insert([new_job()])
                raise RuntimeError("boom")
        async with storage.transaction(readonly=True) as reader:
            assert await reader.job_get(JobGet(row.id)) is None
            assert await reader.job_get(JobGet(failed.id)) is None

    async def test_finished_transaction_refuses_work(self, storage: Storage) -> None:
        async with storage.transaction() as tx:
            await tx.job_insert([new_job()])
            await tx.commit()
            with pytest.raises(TransactionError):
                await tx.job_insert([new_job()])
            with pytest.raises(TransactionError):
                await tx.commit()

    async def test_commit_after_next_ends_only_with_a_final_next_operation(self, storage: Storage) -> None:
        """The hint may be ignored; a backend that takes it commits the next operation's work with
        it and refuses more, but never when the result asks for follow-up work."""
        [parent] = await self.insert(storage, new_job())
        [child] = await self.insert(storage, new_job(state="Awaiting", enqueue=False, awaiting_parent=parent))
        record = await self.get(storage, parent, "owner")

        async def visible(job_id: int) -> bool:
            async with storage.transaction(readonly=True) as reader:
                return await reader.job_get(JobGet(job_id)) is not None

        async with storage.transaction() as tx:
            tx.commit_after_next()
            lost = await tx.job_update(self._update(record, "intruder"))
            assert lost.outcome is UpdateOutcome.LOCK_LOST and not tx.finished  # not saved: goes on
            [second] = await tx.job_insert([new_job()])
            assert not tx.finished, "the hint covers the next operation only"
            assert not await visible(second.id)
        assert await visible(second.id)
        async with storage.transaction() as tx:
            tx.commit_after_next()
            moved = await tx.job_update(self._update(record, "owner", new_states=(state_row(2, "Succeeded"),)))
            assert moved.outcome is UpdateOutcome.SAVED and moved.children == (child,)
            assert not tx.finished  # children to release: goes on
            assert (await tx.job_lock_release(JobLockRelease(parent, "owner"))).released
        after = await self.get(storage, parent)
        assert isinstance(after, JobRecord) and after.locked_by is None and after.states[-1].name == "Succeeded"
        async with storage.transaction() as tx:
            tx.commit_after_next()
            [third] = await tx.job_insert([new_job()])
            if tx.finished:  # the hint was taken: committed already, and nothing more runs in it
                assert await visible(third.id)
                with pytest.raises(TransactionError):
                    await tx.job_get(JobGet(third.id))
            else:
                assert not await visible(third.id)
        assert await visible(third.id)

    async def test_environments_are_isolated(self, storage: Storage, storage_factory: StorageFactory) -> None:
        other = storage_factory("hm_other_")
        await other.open()
        try:
            my_job, their_job = new_job(queue="shared"), new_job(queue="shared")
            [mine] = await self.insert(storage, my_job)
            [theirs] = await self.insert(other, their_job)
            async with other.transaction(readonly=True) as tx:
                seen = await tx.job_get(JobGet(mine))  # ids may coincide; the row must be theirs
                assert seen is None or seen.execution_id == their_job.execution_id
            assert await self.claim(other, (("shared",),), 10) == [theirs]
            assert await self.claim(storage, (("shared",),), 10) == [mine]
            async with other.transaction(readonly=True) as tx:
                assert await tx.job_state_counts() == {"Enqueued": 1}
        finally:
            await other.close()

    async def test_colonies_and_lock_takeover_are_isolated(
        self, storage: Storage, storage_factory: StorageFactory
    ) -> None:
        other = storage_factory("hm_other_")
        await other.open()
        try:
            [job_id] = await self.insert(storage, new_job())
            await self.get(storage, job_id, "old")
            async with storage.transaction() as tx:
                await tx.colony_upsert(colony_row("shared", name="mine"))
                await tx.daemon_log_insert([DaemonLogRow("shared", "scheduler", 20, "mine")])
            await asyncio.sleep(0.4)
            stale = timedelta(milliseconds=200)
            async with other.transaction() as tx:
                assert await tx.colony_get("shared") is None
                assert await tx.colony_list() == []
                assert await tx.daemon_log_insert([DaemonLogRow("shared", "scheduler", 20, "theirs")]) == 0
                assert await tx.daemon_log_list(DaemonLogList("shared")) == []
                assert await tx.colony_delete_stale(stale) == []
                assert await tx.colony_delete(["shared"]) == 0
                assert await tx.job_lock_takeover(JobLockTakeover(stale, "monitor")) == []
                theirs = await tx.colony_upsert(colony_row("shared", name="theirs"))
            assert theirs.name == "theirs"
            async with storage.transaction(readonly=True) as tx:
                mine = await tx.colony_get("shared")
                logs = await tx.daemon_log_list(DaemonLogList("shared"))
                [record] = await tx.job_get_many([job_id])
            assert mine is not None and mine.name == "mine"
            assert [entry.message for entry in logs] == ["mine"]
            assert record.locked_by == "old"
            async with other.transaction(readonly=True) as tx:
                assert [colony.name for colony in await tx.colony_list()] == ["theirs"]
        finally:
            await other.close()
