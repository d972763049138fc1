"""Conformance of the job operations: insert, read, lock, save, heartbeat, take over, continuations,
data, logs and actions."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from hivemind_jobs.core.job import PropertyType
from hivemind_jobs.errors import StorageError
from hivemind_jobs.query.conditions import job as job_field
from hivemind_jobs.storage.protocol import (
    ContinuationLink,
    ContinuationMark,
    JobActionInsert,
    JobActionList,
    JobDataGet,
    JobDataItem,
    JobDataList,
    JobDataSet,
    JobGet,
    JobHeartbeat,
    JobInsert,
    JobLockRelease,
    JobLockTakeover,
    JobLogList,
    JobLogRow,
    JobRecord,
    JobSearch,
    JobStateHistogram,
    JobStateSince,
    JobUniqueRecord,
    JobUniqueSet,
    PropertyRow,
    QueueClaim,
    Storage,
    UpdateOutcome,
)
from hivemind_jobs.testing.conformance.support import (
    LONG,
    ConformanceBase,
    every_property_type,
    new_job,
    state_row,
    utc_now,
)

__all__ = ["JobConformance"]


class JobConformance(ConformanceBase):
    """Jobs are stored, read back, locked, saved under fencing and handed over."""

    # ------------------------------------------------------------------ jobs
    async def test_insert_and_read_back_everything(self, storage: Storage) -> None:
        properties = every_property_type("héllo", 2.5, True)
        job = new_job(queue="finalize", priority=1, properties=properties)
        [job_id] = await self.insert(storage, job)
        async with storage.transaction(readonly=True) as tx:
            record = await tx.job_get(JobGet(job_id))
        assert record is not None
        assert (record.id, record.queue, record.priority) == (job_id, "finalize", 1)
        assert record.execution_id == job.execution_id
        assert record.invocation == job.invocation and record.middleware == "[]"
        assert [state.name for state in record.states] == ["Created", "Enqueued"]
        assert [state.sequence for state in record.states] == [0, 1]
        values = {row.name: (row.type, row.value) for row in record.properties}
        assert values == {row.name: (row.type, row.value) for row in properties}
        assert isinstance(values["tenant"][1], uuid.UUID) and isinstance(values["bool"][1], bool)
        assert record.created_at.tzinfo is not None and abs(record.created_at - utc_now()) < timedelta(minutes=1)
        assert record.locked_by is None and not record.lock_acquired

    async def test_insert_many_keeps_order_and_unique_ids(self, storage: Storage) -> None:
        ids = await self.insert(storage, *(new_job(queue=f"q{i}") for i in range(5)))
        assert len(set(ids)) == 5 and ids == sorted(ids)
        async with storage.transaction(readonly=True) as tx:
            queues = [(await tx.job_get(JobGet(job_id))).queue for job_id in ids]  # type: ignore[union-attr]
        assert queues == [f"q{i}" for i in range(5)]

    async def test_a_job_inserted_locked_is_locked_from_its_creation(self, storage: Storage) -> None:
        for batch in ([new_job(lock_owner="holder")], [new_job(), new_job(lock_owner="holder"), new_job()]):
            ids = await self.insert(storage, *batch)
            async with storage.transaction(readonly=True) as tx:
                records = [await tx.job_get(JobGet(job_id)) for job_id in ids]
            for job, record in zip(batch, records, strict=True):
                assert record is not None
                if job.lock_owner is None:
                    assert (record.locked_by, record.locked_at, record.lock_heartbeat) == (None, None, None)
                else:  # locked on the database clock the insert read
                    assert record.locked_by == "holder"
                    assert record.locked_at == record.lock_heartbeat == record.created_at

    async def test_a_large_batch_stores_every_job_whole(self, storage: Storage) -> None:
        """A batch past the size at which a backend writes many rows per statement: each job with
        its own values, states, properties, lock, queue entry and parent link."""
        [parent] = await self.insert(storage, new_job(state="Idle", enqueue=False))
        later = utc_now() + timedelta(hours=2)
        batch = []
        for i in range(40):
            if i % 4 == 0:
                properties = every_property_type(f"text {i}", i + 0.5, i % 8 == 0)
                batch.append(new_job(queue=f"q{i}", priority=i % 5, properties=properties))
            elif i % 4 == 1:
                batch.append(new_job(queue="later", execute_after=later, function=f"tests.sample:work{i}"))
            elif i % 4 == 2:
                batch.append(new_job(queue="delayed", delay=timedelta(hours=1), lock_owner="holder"))
            else:
                batch.append(new_job(state="Awaiting", enqueue=False, awaiting_parent=parent))
        ids = await self.insert(storage, *batch)
        assert len(set(ids)) == 40 and ids == sorted(ids)
        async with storage.transaction(readonly=True) as tx:
            records = await tx.job_get_many(ids)
            stats = {s.queue: (s.ready, s.delayed) for s in await tx.queue_stats()}
            links = await tx.continuation_list(parent)
        for job, record in zip(batch, records, strict=True):
            assert (record.queue, record.priority, record.execution_id) == (job.queue, job.priority, job.execution_id)
            assert record.invocation == job.invocation
            assert [(state.sequence, state.name) for state in record.states] == [
                (state.sequence, state.name) for state in job.states
            ]
            assert {row.name: row.value for row in record.properties} == {row.name: row.value for row in job.properties}
            assert record.locked_by == job.lock_owner
        assert stats == {**{f"q{i}": (1, 0) for i in range(0, 40, 4)}, "later": (0, 10), "delayed": (0, 10)}
        assert sorted(links, key=lambda link: link.child_id) == [
            ContinuationLink(parent, child, None) for child in ids[3::4]
        ]

    async def test_a_batch_of_alike_jobs_gets_each_job_its_own_entry(self, storage: Storage) -> None:
        """A batch as ``create_many`` writes it: one tuple of states shared by every job and queue
        entries that differ only by the job's execution id (a backend may write those rows for the
        whole batch at once). Each job gets the history and an entry carrying its own execution id;
        a batch where one entry differs still gets every entry as given."""
        elected = utc_now() - timedelta(seconds=5)
        shared = (
            state_row(0, "Created", elected_at=elected),
            state_row(1, "Enqueued", {"queue": "alike"}, reason="batch", elected_at=elected),
        )

        def alike(queue: str = "alike", priority: int = 1, delay: timedelta | None = None) -> JobInsert:
            job = new_job(queue=queue, priority=priority, delay=delay)
            return dataclasses.replace(job, states=shared)

        batch = [alike() for _ in range(30)]
        ids = await self.insert(storage, *batch)
        async with storage.transaction(readonly=True) as tx:
            records = await tx.job_get_many(ids)
        for job, record in zip(batch, records, strict=True):
            assert record.execution_id == job.execution_id
            assert [(s.sequence, s.name, s.reason, json.loads(s.fields)) for s in record.states] == [
                (0, "Created", None, {}),
                (1, "Enqueued", "batch", {"queue": "alike"}),
            ]
            assert [abs(s.elected_at - elected) < timedelta(milliseconds=1) for s in record.states] == [True, True]
        async with storage.transaction() as tx:
            claimed = await tx.queue_claim(QueueClaim((("alike",),), 50, "drone"))
        assert sorted((entry.job_id, entry.execution_id, entry.priority) for entry in claimed) == [
            (job_id, job.execution_id, 1) for job_id, job in zip(ids, batch, strict=True)
        ]
        # the same states, one entry of another queue: every job still gets its own entry
        mixed = [alike("mixed") for _ in range(19)] + [alike("odd", priority=4)] + [alike("mixed")]
        mixed[5] = alike("mixed", delay=timedelta(hours=1))
        await self.insert(storage, *mixed)
        async with storage.transaction(readonly=True) as tx:
            stats = {(s.queue, s.priority): (s.ready, s.delayed) for s in await tx.queue_stats()}
        assert stats == {("mixed", 1): (19, 1), ("odd", 4): (1, 0)}
        # the same states and entries, jobs of other priorities, functions and lock owners
        varied = [alike("varied") for _ in range(20)]
        varied[2] = dataclasses.replace(varied[2], priority=0, function="tests.sample:other")
        varied[7] = dataclasses.replace(varied[7], lock_owner="holder", middleware='[{"type": "m"}]')
        ids = await self.insert(storage, *varied)
        async with storage.transaction(readonly=True) as tx:
            records = await tx.job_get_many(ids)
        assert [(r.queue, r.priority, r.execution_id, r.locked_by, r.middleware) for r in records] == [
            (job.queue, job.priority, job.execution_id, job.lock_owner, job.middleware) for job in varied
        ]
        assert [record.invocation for record in records] == [job.invocation for job in varied]
        async with storage.transaction(readonly=True) as tx:
            other = await tx.job_search(JobSearch(job_field.function == "tests.sample:other", None, 10, 0, None))
            assert [record.id for record in other] == [ids[2]]
            assert await tx.job_count(job_field.function == "tests.sample:work") == 19 + 21 + 30

    async def test_missing_job_is_none(self, storage: Storage) -> None:
        async with storage.transaction() as tx:
            assert await tx.job_get(JobGet(987654)) is None
            assert await tx.job_get(JobGet(987654, lock_requester="x")) is None

    async def test_lock_is_exclusive_and_reentrant(self, storage: Storage) -> None:
        [job_id] = await self.insert(storage, new_job())
        async with storage.transaction() as tx:
            first = await tx.job_get(JobGet(job_id, lock_requester="alice"))
            assert first is not None and first.lock_acquired and first.locked_by == "alice"
            assert first.locked_at is not None and first.lock_heartbeat is not None
            other = await tx.job_get(JobGet(job_id, lock_requester="bob"))
            assert other is not None and not other.lock_acquired and other.locked_by == "alice"
            again = await tx.job_get(JobGet(job_id, lock_requester="alice"))
            assert again is not None and again.lock_acquired
            assert not (await tx.job_lock_release(JobLockRelease(job_id, "bob"))).released
            assert (await tx.job_lock_release(JobLockRelease(job_id, "alice"))).released
            free = await tx.job_get(JobGet(job_id, lock_requester="bob"))
            assert free is not None and free.lock_acquired

    async def test_get_many_keeps_order_skips_missing_and_does_not_lock(self, storage: Storage) -> None:
        ids = await self.insert(
            storage,
            new_job(queue="a", properties=(PropertyRow("n", PropertyType.INT, 7),)),
            new_job(queue="b"),
            new_job(queue="c"),
        )
        await self.get(storage, ids[1], "alice")
        async with storage.transaction() as tx:
            assert await tx.job_get_many([]) == []
            records = await tx.job_get_many([ids[2], ids[0] + 1000, ids[0], ids[1]])
        assert [record.id for record in records] == [ids[2], ids[0], ids[1]]
        assert [record.queue for record in records] == ["c", "a", "b"]
        assert [state.name for state in records[1].states] == ["Created", "Enqueued"]
        assert {row.name: row.value for row in records[1].properties} == {"n": 7}
        assert [record.locked_by for record in records] == [None, None, "alice"]
        assert not any(record.lock_acquired for record in records)
        async with storage.transaction() as tx:
            free = await tx.job_get(JobGet(ids[2], lock_requester="bob"))
            held = await tx.job_get(JobGet(ids[1], lock_requester="bob"))
        assert free is not None and free.lock_acquired
        assert held is not None and not held.lock_acquired and held.locked_by == "alice"

    async def test_update_writes_states_properties_queue_and_releases(self, storage: Storage) -> None:
        [job_id] = await self.insert(
            storage,
            new_job(properties=(PropertyRow("keep", PropertyType.INT, 1), PropertyRow("drop", PropertyType.TEXT, "x"))),
        )
        record = await self.get(storage, job_id, "owner")
        new_execution = str(uuid.uuid4())
        update = self._update(
            record,
            "owner",
            execution_id=new_execution,
            queue="elsewhere",
            new_states=(state_row(2, "Idle", reason="parked"),),
            set_properties=(PropertyRow("keep", PropertyType.INT, 2), PropertyRow("new", PropertyType.BOOL, False)),
            removed_properties=("drop",),
            dequeue=True,
            release_lock=True,
        )
        async with storage.transaction() as tx:
            result = await tx.job_update(update)
        assert result.outcome is UpdateOutcome.SAVED and result.modified_at is not None
        after = await self.get(storage, job_id)

        assert isinstance(after, JobRecord)
        assert after.execution_id == new_execution and after.queue == "elsewhere"
        assert [(s.name, s.reason) for s in after.states][-1] == ("Idle", "parked")
        assert {p.name: p.value for p in after.properties} == {"keep": 2, "new": False}
        assert after.locked_by is None
        assert await self.claim(storage, (("global",), ("elsewhere",)), 10) == []

    async def test_update_is_fenced(self, storage: Storage) -> None:
        [job_id] = await self.insert(storage, new_job())
        record = await self.get(storage, job_id, "owner")
        async with storage.transaction() as tx:
            wrong_holder = await tx.job_update(self._update(record, "intruder"))
            wrong_execution = await tx.job_update(
                self._update(record, "owner", expected_execution_id=str(uuid.uuid4()))
            )
            missing = await tx.job_update(self._update(record, "owner", job_id=job_id + 1000))
        assert wrong_holder.outcome is UpdateOutcome.LOCK_LOST
        assert wrong_execution.outcome is UpdateOutcome.EXECUTION_CHANGED
        assert missing.outcome is UpdateOutcome.NOT_FOUND
        after = await self.get(storage, job_id)
        assert after is not None and after.states == record.states  # type: ignore[attr-defined]

    async def test_update_many_fences_each_save_on_its_own(self, storage: Storage) -> None:
        ids = await self.insert(storage, *(new_job() for _ in range(4)))
        records = [await self.get(storage, job_id, "owner") for job_id in ids]
        executing = (state_row(2, "Executing"),)
        moved = str(uuid.uuid4())
        updates = [
            self._update(records[0], "owner", new_states=executing),
            self._update(records[1], "owner", expected_execution_id=str(uuid.uuid4()), new_states=executing),
            self._update(records[2], "intruder", new_states=executing),
            self._update(records[3], "owner", execution_id=moved, new_states=executing, release_lock=True),
        ]
        async with storage.transaction() as tx:
            assert await tx.job_update_many([]) == []
            results = await tx.job_update_many(updates)
        assert [result.outcome for result in results] == [
            UpdateOutcome.SAVED,
            UpdateOutcome.EXECUTION_CHANGED,
            UpdateOutcome.LOCK_LOST,
            UpdateOutcome.SAVED,
        ]
        assert results[0].modified_at is not None and results[0].lock_heartbeat is not None
        async with storage.transaction(readonly=True) as tx:
            after = await tx.job_get_many(ids)
        assert [record.states[-1].name for record in after] == ["Executing", "Enqueued", "Enqueued", "Executing"]
        assert [record.locked_by for record in after] == ["owner", "owner", "owner", None]
        assert [record.execution_id for record in after] == [
            *(record.execution_id for record in records[:3]),  # type: ignore[attr-defined]
            moved,
        ]

    async def test_saves_that_end_runs_are_fenced_each_on_its_own(self, storage: Storage) -> None:
        """A batch of saves that each write one state and release the lock (what a colony writes
        for its outcomes, one statement on some backends): each passes or fails its own fence."""
        ids = await self.insert(storage, *(new_job() for _ in range(5)))
        [child] = await self.insert(storage, new_job(state="Awaiting", enqueue=False, awaiting_parent=ids[4]))
        records = [await self.get(storage, job_id, "owner") for job_id in ids[:3]]
        await self.get(storage, ids[3], "someone")
        records.append(await self.get(storage, ids[3]))
        records.append(await self.get(storage, ids[4], "owner"))
        await asyncio.sleep(0.15)
        async with storage.transaction() as tx:  # the first and the last stay fresh
            assert await tx.job_heartbeat(JobHeartbeat((ids[0], ids[4]), "owner", LONG)) == {ids[0], ids[4]}
        succeeded = (state_row(2, "Succeeded", {"result": 5}),)
        ends = [
            self._update(records[0], "owner", execution_id=str(uuid.uuid4()), new_states=succeeded, release_lock=True),
            self._update(records[1], "owner", expected_execution_id=str(uuid.uuid4()), new_states=succeeded),
            self._update(records[2], "owner", new_states=succeeded, lock_timeout=timedelta(milliseconds=50)),
            self._update(records[3], "owner", new_states=succeeded),  # locked by someone else
            self._update(records[4], "owner", execution_id=str(uuid.uuid4()), new_states=succeeded),
            self._update(records[0], "owner", job_id=ids[4] + 1000, new_states=succeeded),  # no such job
        ]
        ends = [dataclasses.replace(update, release_lock=True) for update in ends]
        async with storage.transaction() as tx:
            results = await tx.job_update_many(ends)
        assert [result.outcome for result in results] == [
            UpdateOutcome.SAVED,
            UpdateOutcome.EXECUTION_CHANGED,
            UpdateOutcome.LOCK_EXPIRED,
            UpdateOutcome.LOCK_LOST,
            UpdateOutcome.SAVED,
            UpdateOutcome.NOT_FOUND,
        ]
        assert results[0].modified_at is not None and results[0].lock_heartbeat is None
        assert results[4].children == (child,) and results[0].children == ()
        async with storage.transaction(readonly=True) as tx:
            after = {record.id: record for record in await tx.job_get_many(ids)}
        for index in (0, 4):
            record = after[ids[index]]
            assert [state.name for state in record.states] == ["Created", "Enqueued", "Succeeded"]
            assert json.loads(record.states[-1].fields) == {"result": 5}
            assert record.execution_id == ends[index].execution_id and record.locked_by is None
            assert record.modified_at == results[index].modified_at
        for index in (1, 2, 3):
            record = after[ids[index]]
            assert [state.name for state in record.states] == ["Created", "Enqueued"]
            assert record.execution_id == records[index].execution_id  # type: ignore[attr-defined]
            assert record.locked_by == ("someone" if index == 3 else "owner")

    async def test_expired_lock_cannot_save_or_heartbeat(self, storage: Storage) -> None:
        [job_id] = await self.insert(storage, new_job())
        record = await self.get(storage, job_id, "owner")
        await asyncio.sleep(0.15)
        short = timedelta(milliseconds=50)
        async with storage.transaction() as tx:
            result = await tx.job_update(self._update(record, "owner", lock_timeout=short))
            alive = await tx.job_heartbeat(JobHeartbeat((job_id,), "owner", short))
        assert result.outcome is UpdateOutcome.LOCK_EXPIRED
        assert alive == frozenset()

    async def test_heartbeat_renews_only_own_fresh_locks(self, storage: Storage) -> None:
        ids = await self.insert(storage, new_job(), new_job(), new_job())
        await self.get(storage, ids[0], "me")
        await self.get(storage, ids[1], "someone")
        before = await self.get(storage, ids[0])
        await asyncio.sleep(0.01)
        async with storage.transaction() as tx:
            alive = await tx.job_heartbeat(JobHeartbeat(tuple(ids), "me", LONG))
        assert alive == frozenset({ids[0]})
        after = await self.get(storage, ids[0])
        assert after.lock_heartbeat > before.lock_heartbeat  # type: ignore[attr-defined]

    async def test_lock_renewer_renews_only_own_fresh_locks_from_any_thread(self, storage: Storage) -> None:
        mine, theirs, expired = await self.insert(storage, new_job(), new_job(), new_job())
        renewer = storage.lock_renewer()
        try:
            # connected first, so that only the reads below stand between locking ``mine`` and renewing it
            assert await asyncio.to_thread(renewer.renew, JobHeartbeat((), "me", LONG), 5.0) == frozenset()
            await self.get(storage, expired, "me")
            await asyncio.sleep(0.8)
            await self.get(storage, theirs, "someone")
            await self.get(storage, mine, "me")
            before = await self.get(storage, mine)
            await asyncio.sleep(0.01)
            short = JobHeartbeat((mine, theirs, expired), "me", timedelta(milliseconds=600))
            assert await asyncio.to_thread(renewer.renew, short, 5.0) == frozenset({mine})
            after = await self.get(storage, mine)
            assert after.lock_heartbeat > before.lock_heartbeat  # type: ignore[attr-defined]
            # the same renewer again, from yet another thread
            assert await asyncio.to_thread(renewer.renew, JobHeartbeat((mine,), "me", LONG), 5.0) == {mine}
            clock = await asyncio.to_thread(renewer.clock_now)
            async with storage.transaction(readonly=True) as tx:
                database_now = await tx.clock_now()
            assert clock.tzinfo is not None and clock.utcoffset() == timedelta(0)
            assert abs(database_now - clock) < timedelta(seconds=5)
        finally:
            await asyncio.to_thread(renewer.close)
        async with storage.transaction(readonly=True) as tx:
            [record] = await tx.job_get_many([theirs])
        assert record.locked_by == "someone"

    async def test_lock_renewer_gives_up_within_its_deadline_then_reconnects(self, storage: Storage) -> None:
        [job_id] = await self.insert(storage, new_job())
        await self.get(storage, job_id, "me")
        renewer = storage.lock_renewer()
        heartbeat = JobHeartbeat((job_id,), "me", LONG)
        try:
            assert await asyncio.to_thread(renewer.renew, heartbeat, 5.0) == {job_id}
            async with storage.transaction() as tx:
                # this open transaction holds the job's row (or the file's write lock) until it ends
                assert await tx.job_heartbeat(heartbeat) == {job_id}
                started = time.monotonic()
                with pytest.raises(StorageError, match="renew job locks"):
                    await asyncio.to_thread(renewer.renew, heartbeat, 0.5)
                took = time.monotonic() - started
            assert took < 2.0, f"a renewal with a 0.5 s deadline took {took:.2f} s"
            assert await asyncio.to_thread(renewer.renew, heartbeat, 5.0) == {job_id}
        finally:
            await asyncio.to_thread(renewer.close)

    async def test_lock_takeover_takes_only_expired_locks(self, storage: Storage) -> None:
        stale = await self.insert(storage, new_job(), new_job(), new_job())
        fresh, free = await self.insert(storage, new_job(), new_job())
        for job_id in stale:
            await self.get(storage, job_id, "old")
        async with storage.transaction(readonly=True) as tx:
            before = await tx.job_get_many(stale)
        await asyncio.sleep(0.4)
        await self.get(storage, fresh, "busy")
        timeout = timedelta(milliseconds=200)
        async with storage.transaction() as tx:
            first = await tx.job_lock_takeover(JobLockTakeover(timeout, "monitor", limit=2))
        async with storage.transaction() as tx:
            second = await tx.job_lock_takeover(JobLockTakeover(timeout, "monitor"))
            third = await tx.job_lock_takeover(JobLockTakeover(timeout, "monitor"))
        assert len(first) == 2 and set(first) <= set(stale)
        assert sorted(first + second) == stale
        assert third == []  # taken locks get a fresh heartbeat
        async with storage.transaction(readonly=True) as tx:
            after = {record.id: record for record in await tx.job_get_many([*stale, fresh, free])}
        assert [after[job_id].locked_by for job_id in stale] == ["monitor"] * 3
        for old in before:
            assert old.lock_heartbeat is not None and after[old.id].lock_heartbeat is not None
            assert after[old.id].lock_heartbeat > old.lock_heartbeat  # type: ignore[operator]
        assert after[fresh].locked_by == "busy" and after[free].locked_by is None
        async with storage.transaction() as tx:
            by_old = await tx.job_update(self._update(before[0], "old"))
            by_new = await tx.job_update(self._update(before[0], "monitor", new_states=(state_row(2, "Failed"),)))
            released = await tx.job_lock_release(JobLockRelease(stale[1], "old"))
        assert by_old.outcome is UpdateOutcome.LOCK_LOST
        assert by_new.outcome is UpdateOutcome.SAVED
        assert not released.released

    async def test_state_counts(self, storage: Storage) -> None:
        await self.insert(storage, new_job(), new_job(), new_job(state="Idle", enqueue=False))
        async with storage.transaction(readonly=True) as tx:
            counts = await tx.job_state_counts()
        assert counts == {"Enqueued": 2, "Idle": 1}

    async def test_state_histogram(self, storage: Storage) -> None:
        since = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
        minute = timedelta(minutes=1)
        offsets = [timedelta(seconds=-1), timedelta(0), timedelta(seconds=59.999999), minute, 3 * minute + minute / 2]
        succeeded = [new_job(state="Succeeded", enqueue=False, elected_at=since + offset) for offset in offsets]
        await self.insert(storage, *succeeded, new_job(state="Failed", enqueue=False, elected_at=since))
        async with storage.transaction(readonly=True) as tx:
            histogram = await tx.job_state_histogram(JobStateHistogram("Succeeded", since, minute))
            failed = await tx.job_state_histogram(JobStateHistogram("Failed", since, timedelta(hours=1)))
            later = await tx.job_state_histogram(JobStateHistogram("Succeeded", since + 10 * minute, minute))
        # the one elected before ``since`` is not counted; each bucket starts at its own minute
        assert histogram == {0: 2, 1: 1, 3: 1}
        assert failed == {0: 1}
        assert later == {}

    async def test_state_by_queue_and_capped_counts(self, storage: Storage) -> None:
        since = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
        await self.insert(
            storage,
            *(new_job(queue="mail", state="Succeeded", enqueue=False, elected_at=since) for _ in range(3)),
            new_job(queue="mail", state="Succeeded", enqueue=False, elected_at=since - timedelta(seconds=1)),
            new_job(queue="reports", state="Succeeded", enqueue=False, elected_at=since + timedelta(hours=1)),
            new_job(queue="reports", state="Failed", enqueue=False, elected_at=since),
            new_job(queue="mail"),
        )
        async with storage.transaction(readonly=True) as tx:
            assert await tx.job_state_by_queue(JobStateSince("Succeeded", since)) == {"mail": 3, "reports": 1}
            assert await tx.job_state_by_queue(JobStateSince("Failed", since)) == {"reports": 1}
            assert await tx.job_state_by_queue(JobStateSince("Idle", since)) == {}
            # every state jobs are in, each counted up to the cap
            assert await tx.job_state_counts_capped(3) == {"Enqueued": 1, "Failed": 1, "Succeeded": 3}
            assert await tx.job_state_counts_capped(100) == {"Enqueued": 1, "Failed": 1, "Succeeded": 5}
            assert await tx.job_state_counts_capped(100) == await tx.job_state_counts()

    # ------------------------------------------------------------------ continuations
    async def test_continuation_links_fire_and_reset(self, storage: Storage) -> None:
        [parent] = await self.insert(storage, new_job())
        [child] = await self.insert(storage, new_job(state="Awaiting", enqueue=False, awaiting_parent=parent))
        async with storage.transaction() as tx:
            assert await tx.continuation_list(parent) == [ContinuationLink(parent, child, None)]
        record = await self.get(storage, parent, "owner")
        async with storage.transaction() as tx:
            moved = await tx.job_update(self._update(record, "owner", new_states=(state_row(2, "Succeeded"),)))
            unchanged = await tx.job_update(self._update(record, "owner"))
        assert moved.children == (child,)
        assert unchanged.children == ()  # no state change: nothing to trigger
        child_record = await self.get(storage, child, "holder")
        async with storage.transaction() as tx:
            await tx.continuation_mark([ContinuationMark(parent, child, fired_state="Succeeded")])
            released = await tx.job_lock_release(JobLockRelease(child, "holder"))
        assert released.fired == (ContinuationLink(parent, child, "Succeeded"),)
        assert child_record is not None
        async with storage.transaction() as tx:
            await tx.continuation_mark([ContinuationMark(parent, child, fired_state=None)])
            assert await tx.continuation_list(child) == [ContinuationLink(parent, child, None)]
            await tx.continuation_mark([ContinuationMark(parent, child, delete=True)])
            assert await tx.continuation_list(child) == []

    # ------------------------------------------------------------------ data, logs, actions
    async def test_job_data(self, storage: Storage) -> None:
        [job_id] = await self.insert(storage, new_job())
        async with storage.transaction() as tx:
            assert await tx.job_data_get(JobDataGet(job_id, "k")) is None
            assert await tx.job_data_set(JobDataSet(job_id, "k", '{"a":1}'))
            assert await tx.job_data_set(JobDataSet(job_id, "k", '{"a":2}'))
            assert not await tx.job_data_set(JobDataSet(job_id + 1000, "k", "1"))
        async with storage.transaction(readonly=True) as tx:
            assert await tx.job_data_get(JobDataGet(job_id, "k")) == '{"a":2}'

    async def test_job_data_list(self, storage: Storage) -> None:
        [job_id, other] = await self.insert(storage, new_job(), new_job())
        escaped, accented = '"\\u00e9t\\u00e9"', '"\u00e9t\u00e9"'
        values = {"b": escaped, "a": "[1,2,3]", "Z": accented, "c": "1"}
        async with storage.transaction() as tx:
            assert await tx.job_data_list(JobDataList(job_id)) == []
            for name, value in values.items():
                assert await tx.job_data_set(JobDataSet(job_id, name, value))
            assert await tx.job_data_set(JobDataSet(other, "x", "1"))
        async with storage.transaction(readonly=True) as tx:
            # names by code point; sizes in characters of the stored JSON
            listed = await tx.job_data_list(JobDataList(job_id))
            assert listed == [JobDataItem(name, len(values[name])) for name in ("Z", "a", "b", "c")]
            assert [item.size for item in listed] == [5, 7, 15, 1]
            assert await tx.job_data_list(JobDataList(job_id, limit=2)) == listed[:2]
            assert await tx.job_data_list(JobDataList(job_id + 1000)) == []

    async def test_job_logs(self, storage: Storage) -> None:
        [job_id] = await self.insert(storage, new_job())
        rows = [JobLogRow(job_id, level, f"m{level}", logger="l") for level in (10, 20, 30, 40)]
        async with storage.transaction() as tx:
            assert await tx.job_log_insert(rows) == 4
            assert await tx.job_log_insert([JobLogRow(job_id + 1000, 20, "lost")]) == 0
        async with storage.transaction(readonly=True) as tx:
            warnings = await tx.job_log_list(JobLogList(job_id, min_level=30))
            first_two = await tx.job_log_list(JobLogList(job_id, limit=2))
            rest = await tx.job_log_list(JobLogList(job_id, after_id=first_two[-1].id))
        assert [entry.message for entry in warnings] == ["m30", "m40"]
        assert [entry.message for entry in first_two + rest] == ["m10", "m20", "m30", "m40"]
        assert all(entry.created_at.tzinfo is not None for entry in rest)

    async def test_job_actions(self, storage: Storage) -> None:
        ids = await self.insert(storage, new_job(), new_job())
        async with storage.transaction() as tx:
            first = await tx.job_action_insert(JobActionInsert(ids[0], "exec-1", "stop", '{"state":"Idle"}', "me"))
            await tx.job_action_insert(JobActionInsert(ids[1], "exec-2", "stop", "{}", None))
            listed = await tx.job_action_list(JobActionList((ids[0],)))
            assert [(a.id, a.kind, a.payload, a.requested_by) for a in listed] == [
                (first, "stop", '{"state":"Idle"}', "me")
            ]
            assert await tx.job_action_delete([first]) == 1
            assert await tx.job_action_list(JobActionList((ids[0],))) == []
            assert len(await tx.job_action_list(JobActionList(tuple(ids)))) == 1

    # ------------------------------------------------------------------ unique keys
    async def test_unique_key_is_claimed_then_held_by_its_job(self, storage: Storage) -> None:
        [job_id] = await self.insert(storage, new_job())
        until = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
        async with storage.transaction() as tx:
            assert await tx.job_unique_claim("k") == JobUniqueRecord(None, (), None, None)  # free: inserted
            assert await tx.job_unique_set(JobUniqueSet("k", job_id, ("Enqueued", "Executing"), until))
            assert not await tx.job_unique_set(JobUniqueSet("other", job_id, (), None))  # never claimed
        async with storage.transaction() as tx:
            held = await tx.job_unique_claim("k")
            assert held == JobUniqueRecord(job_id, ("Enqueued", "Executing"), until, "Enqueued")
            assert await tx.job_unique_claim("K") == JobUniqueRecord(None, (), None, None)  # keys are exact
            assert await tx.job_unique_set(JobUniqueSet("k", job_id + 1000, (), None))  # taken over
        async with storage.transaction() as tx:
            # the holder no longer exists: no state
            assert await tx.job_unique_claim("k") == JobUniqueRecord(job_id + 1000, (), None, None)

    async def test_unique_claim_rolls_back_and_waits_for_the_claiming_transaction(self, storage: Storage) -> None:
        [job_id] = await self.insert(storage, new_job())
        with pytest.raises(RuntimeError):
            async with storage.transaction() as tx:
                assert (await tx.job_unique_claim("k")).job_id is None
                raise RuntimeError("roll back")
        async with storage.transaction() as tx:
            assert (await tx.job_unique_claim("k")).job_id is None  # the rolled back row is gone
            second = asyncio.ensure_future(self._claim(storage, "k"))
            await asyncio.sleep(0.2)
            assert not second.done(), "a claim did not wait for the transaction holding the key"
            assert await tx.job_unique_set(JobUniqueSet("k", job_id, ("Enqueued",), None))
        assert (await asyncio.wait_for(second, 10)).job_id == job_id

    @staticmethod
    async def _claim(storage: Storage, key: str) -> JobUniqueRecord:
        async with storage.transaction() as tx:
            return await tx.job_unique_claim(key)
