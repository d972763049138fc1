"""The storage conformance suite: every backend must pass it unchanged.

Subclass :class:`StorageConformance` in a test module and provide the ``storage_factory`` fixture:
a callable that returns a new, *unopened* storage for a given table prefix, all on one database::

    class TestMyBackend(StorageConformance):
        @pytest.fixture
        def storage_factory(self, tmp_path):
            return lambda prefix: MyStorage(..., table_prefix=prefix)

The suite talks to the storage only through :mod:`hivemind_jobs.storage.protocol`.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio

from hivemind_jobs.core.job import PropertyType
from hivemind_jobs.errors import StorageError, TransactionError
from hivemind_jobs.storage.protocol import (
    ColonyUpsert,
    ContinuationLink,
    ContinuationMark,
    DaemonLogList,
    DaemonLogRow,
    JobActionInsert,
    JobActionList,
    JobDataGet,
    JobDataSet,
    JobGet,
    JobHeartbeat,
    JobInsert,
    JobLockRelease,
    JobLockTakeover,
    JobLogList,
    JobLogRow,
    JobUpdate,
    PropertyRow,
    QueueClaim,
    QueuePointer,
    StateRow,
    Storage,
    UpdateOutcome,
)

__all__ = ["StorageConformance", "StorageFactory", "new_job"]

StorageFactory = Callable[[str], Storage]
LONG = timedelta(minutes=5)


def _now() -> datetime:
    return datetime.now(UTC)


def state_row(sequence: int, name: str, fields: dict[str, object] | None = None, reason: str | None = None) -> StateRow:
    return StateRow(sequence, name, _now(), reason, json.dumps(fields or {}))


def new_job(
    *,
    queue: str = "global",
    priority: int = 2,
    state: str = "Enqueued",
    enqueue: bool = True,
    execute_after: datetime | None = None,
    delay: timedelta | None = None,
    properties: tuple[PropertyRow, ...] = (),
    awaiting_parent: int | None = None,
    lock_owner: str | None = None,
) -> JobInsert:
    """A job row as the engine would insert it (Created, then ``state``)."""
    execution_id = str(uuid.uuid4())
    return JobInsert(
        queue=queue,
        priority=priority,
        execution_id=execution_id,
        invocation=json.dumps({"v": 1, "target": "tests.sample:work", "async": False, "args": {"n": 1}}),
        middleware="[]",
        states=(state_row(0, "Created"), state_row(1, state)),
        properties=properties,
        enqueue=QueuePointer(queue, priority, execution_id, execute_after, delay=delay) if enqueue else None,
        awaiting_parent=awaiting_parent,
        lock_owner=lock_owner,
    )


def colony_row(
    colony_id: str,
    *,
    name: str = "colony",
    status: str = "running",
    state: dict[str, object] | None = None,
    last_progress_at: datetime | None = None,
) -> ColonyUpsert:
    """A colony's state as a running colony would write it."""
    return ColonyUpsert(
        id=colony_id,
        name=name,
        host="host-1",
        pid=4242,
        status=status,
        state=json.dumps(state or {}),
        last_progress_at=last_progress_at,
    )


class StorageConformance:
    """Behaviour every storage backend must have."""

    pytestmark = [pytest.mark.asyncio]

    @pytest.fixture
    def storage_factory(self) -> StorageFactory:  # pragma: no cover - replaced by each backend
        raise NotImplementedError("provide a storage_factory fixture")

    @pytest_asyncio.fixture
    async def storage(self, storage_factory: StorageFactory) -> AsyncIterator[Storage]:
        storage = storage_factory("hm_conf_")
        await storage.open()
        try:
            yield storage
        finally:
            await storage.close()

    # ------------------------------------------------------------------ helpers
    @staticmethod
    async def insert(storage: Storage, *jobs: JobInsert) -> list[int]:
        async with storage.transaction() as tx:
            inserted = await tx.job_insert(list(jobs))
        return [row.id for row in inserted]

    @staticmethod
    async def get(storage: Storage, job_id: int, requester: str | None = None) -> object:
        async with storage.transaction(readonly=requester is None) as tx:
            return await tx.job_get(JobGet(job_id, lock_requester=requester))

    @staticmethod
    async def claim(
        storage: Storage, groups: tuple[tuple[str, ...], ...], limit: int, owner: str = "drone"
    ) -> list[int]:
        async with storage.transaction() as tx:
            return [job.job_id for job in await tx.queue_claim(QueueClaim(groups, limit, owner))]

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

    # ------------------------------------------------------------------ jobs
    async def test_insert_and_read_back_everything(self, storage: Storage) -> None:
        moment = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
        tenant = uuid.UUID("12345678-1234-5678-1234-567812345678")
        properties = (
            PropertyRow("text", PropertyType.TEXT, "héllo"),
            PropertyRow("int", PropertyType.INT, -(2**62)),
            PropertyRow("float", PropertyType.FLOAT, 2.5),
            PropertyRow("bool", PropertyType.BOOL, True),
            PropertyRow("when", PropertyType.DATETIME, moment),
            PropertyRow("tenant", PropertyType.UUID, tenant),
        )
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
        assert record.created_at.tzinfo is not None and abs(record.created_at - _now()) < timedelta(minutes=1)
        assert record.locked_by is None and not record.lock_acquired

    async def test_insert_many_keeps_order_and_unique_ids(self, storage: Storage) -> None:
        ids = await self.insert(storage, *(new_job(queue=f"q{i}") for i in range(5)))
        assert len(set(ids)) == 5 and ids == sorted(ids)
        async with storage.transaction(readonly=True) as tx:
            queues = [(await tx.job_get(JobGet(job_id))).queue for job_id in ids]  # type: ignore[union-attr]
        assert queues == [f"q{i}" for i in range(5)]

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

    def _update(self, record: object, holder: str, **changes: object) -> JobUpdate:
        from hivemind_jobs.storage.protocol import JobRecord

        assert isinstance(record, JobRecord)
        base: dict[str, object] = {
            "job_id": record.id,
            "holder": holder,
            "expected_execution_id": record.execution_id,
            "lock_timeout": LONG,
            "queue": record.queue,
            "priority": record.priority,
            "execution_id": record.execution_id,
        }
        base.update(changes)
        return JobUpdate(**base)  # type: ignore[arg-type]

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
        from hivemind_jobs.storage.protocol import JobRecord

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
        await self.get(storage, expired, "me")
        await asyncio.sleep(0.15)
        await self.get(storage, mine, "me")
        await self.get(storage, theirs, "someone")
        before = await self.get(storage, mine)
        renewer = storage.lock_renewer()
        try:
            assert await asyncio.to_thread(renewer.renew, JobHeartbeat((), "me", LONG), 5.0) == frozenset()
            await asyncio.sleep(0.01)
            short = JobHeartbeat((mine, theirs, expired), "me", timedelta(milliseconds=100))
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

    # ------------------------------------------------------------------ queue
    async def test_claim_order_groups_priority_due_time(self, storage: Storage) -> None:
        past = _now() - timedelta(minutes=1)
        ids = await self.insert(
            storage,
            new_job(queue="b", priority=2),  # 0
            new_job(queue="a", priority=3),  # 1
            new_job(queue="a", priority=0),  # 2
            new_job(queue="b", priority=0, execute_after=past),  # 3 - older due time than 2
            new_job(queue="c", priority=0),  # 4 - in a later group
            new_job(queue="a", priority=0, execute_after=_now() + timedelta(hours=1)),  # 5 - delayed
        )
        claimed = await self.claim(storage, (("a", "b"), ("c",)), 10)
        assert claimed == [ids[3], ids[2], ids[0], ids[1], ids[4]]
        assert await self.claim(storage, (("a", "b", "c"),), 10) == []  # claimed entries left the queue

    async def test_claim_respects_limit_and_locks_for_owner(self, storage: Storage) -> None:
        ids = await self.insert(storage, *(new_job() for _ in range(5)))
        first = await self.claim(storage, (("global",),), 2, owner="drone-1")
        assert first == ids[:2]
        record = await self.get(storage, ids[0])
        assert record.locked_by == "drone-1"  # type: ignore[attr-defined]
        assert [s.name for s in record.states][-1] == "Enqueued"  # type: ignore[attr-defined]
        rest = await self.claim(storage, (("global", "global"),), 10, owner="drone-2")
        assert rest == ids[2:]

    async def test_claim_skips_locked_jobs_and_drops_stale_entries(self, storage: Storage) -> None:
        ids = await self.insert(storage, new_job(), new_job(), new_job())
        await self.get(storage, ids[0], "user")  # locked by someone: skipped, stays queued
        record = await self.get(storage, ids[1], "user2")
        async with storage.transaction() as tx:  # new execution id but the old queue entry is kept
            await tx.job_update(self._update(record, "user2", execution_id=str(uuid.uuid4()), release_lock=True))
        assert await self.claim(storage, (("global",),), 10) == [ids[2]]
        async with storage.transaction() as tx:
            await tx.job_lock_release(JobLockRelease(ids[0], "user"))
        assert await self.claim(storage, (("global",),), 10) == [ids[0]]

    async def test_relative_delays_are_measured_on_the_database_clock(self, storage: Storage) -> None:
        delay = timedelta(milliseconds=400)
        soon, later, idle = await self.insert(
            storage,
            new_job(queue="d", delay=delay),
            new_job(queue="d", delay=timedelta(hours=1)),
            new_job(state="Idle", enqueue=False),
        )

        async def stats() -> dict[str, tuple[int, int]]:
            async with storage.transaction(readonly=True) as tx:
                return {s.queue: (s.ready, s.delayed) for s in await tx.queue_stats()}

        assert await stats() == {"d": (0, 2)}
        # a job only moved keeps its due time; a job without an entry gets one due after its delay
        moved, parked = await self.get(storage, later, "mover"), await self.get(storage, idle, "mover")
        async with storage.transaction() as tx:
            for record, queue in ((moved, "e"), (parked, "f")):
                execution_id = record.execution_id  # type: ignore[attr-defined]
                pointer = QueuePointer(queue, 2, execution_id, delay=timedelta(hours=1), keep_due=True)
                update = self._update(record, "mover", queue=queue, enqueue=pointer, release_lock=True)
                assert (await tx.job_update(update)).outcome is UpdateOutcome.SAVED
        assert await stats() == {"d": (0, 1), "e": (0, 1), "f": (0, 1)}
        assert await self.claim(storage, (("d", "e", "f"),), 10) == []
        await asyncio.sleep(0.5)
        async with storage.transaction() as tx:
            claimed = await tx.queue_claim(QueueClaim((("d", "e", "f"),), 10, "drone"))
        assert [job.job_id for job in claimed] == [soon]
        # both stamped by the database clock of the insert: exactly the delay apart
        assert claimed[0].execute_after - claimed[0].enqueued_at == delay

    async def test_queue_stats(self, storage: Storage) -> None:
        await self.insert(
            storage,
            new_job(queue="q", priority=1),
            new_job(queue="q", priority=1, execute_after=_now() + timedelta(hours=1)),
            new_job(queue="r", priority=4),
        )
        async with storage.transaction(readonly=True) as tx:
            stats = {(s.queue, s.priority): (s.ready, s.delayed) for s in await tx.queue_stats()}
        assert stats == {("q", 1): (1, 1), ("r", 4): (1, 0)}

    # ------------------------------------------------------------------ colonies and daemon logs
    async def test_colony_upsert_inserts_then_updates(self, storage: Storage) -> None:
        async with storage.transaction() as tx:
            assert await tx.colony_get("c-1") is None
            first = await tx.colony_upsert(colony_row("c-1", name="alpha", status="starting", state={"swarms": []}))
        assert (first.id, first.name, first.host, first.pid, first.status) == (
            "c-1",
            "alpha",
            "host-1",
            4242,
            "starting",
        )
        assert json.loads(first.state) == {"swarms": []} and first.last_progress_at is None
        for moment in (first.started_at, first.heartbeat):
            assert moment.tzinfo is not None and abs(moment - _now()) < timedelta(minutes=1)
        await asyncio.sleep(0.01)
        progress = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
        state: dict[str, object] = {"swarms": [{"name": "default", "drones": 4}], "counters": {"done": 7}}
        async with storage.transaction() as tx:
            second = await tx.colony_upsert(
                colony_row("c-1", name="alpha", status="running", state=state, last_progress_at=progress)
            )
        assert second.status == "running" and json.loads(second.state) == state
        assert second.last_progress_at == progress
        assert second.started_at == first.started_at and second.heartbeat > first.heartbeat
        async with storage.transaction(readonly=True) as tx:
            assert await tx.colony_get("c-1") == second
            assert await tx.colony_get("c-2") is None

    async def test_colony_list_and_delete(self, storage: Storage) -> None:
        names = {"c-1": "beta", "c-2": "alpha", "c-3": "gamma"}
        async with storage.transaction() as tx:
            for colony_id, name in names.items():
                await tx.colony_upsert(colony_row(colony_id, name=name))
        async with storage.transaction(readonly=True) as tx:
            listed = await tx.colony_list()
        assert sorted((colony.id, colony.name) for colony in listed) == sorted(names.items())
        async with storage.transaction() as tx:
            assert await tx.colony_delete(["c-2", "missing"]) == 1
            assert await tx.colony_delete([]) == 0
        async with storage.transaction(readonly=True) as tx:
            assert sorted(colony.id for colony in await tx.colony_list()) == ["c-1", "c-3"]
            assert await tx.colony_get("c-2") is None
            assert await tx.colony_get("c-1") is not None

    async def test_colony_delete_removes_its_daemon_logs(self, storage: Storage) -> None:
        async with storage.transaction() as tx:
            await tx.colony_upsert(colony_row("c-1"))
            await tx.colony_upsert(colony_row("c-2"))
            await tx.daemon_log_insert([DaemonLogRow("c-1", "scheduler", 20, f"m{i}") for i in range(3)])
            await tx.daemon_log_insert([DaemonLogRow("c-2", "scheduler", 20, "kept")])
        async with storage.transaction() as tx:
            deleted = await tx.colony_delete(["c-1"])
        async with storage.transaction(readonly=True) as tx:
            assert await tx.daemon_log_list(DaemonLogList("c-1")) == []
            assert [row.message for row in await tx.daemon_log_list(DaemonLogList("c-2"))] == ["kept"]
        assert deleted == 1, f"colony_delete counted {deleted} rows for one colony (its logs went with it)"

    async def test_colony_delete_stale_only_deletes_old_heartbeats(self, storage: Storage) -> None:
        async with storage.transaction() as tx:
            for colony_id in ("old", "refreshed"):
                await tx.colony_upsert(colony_row(colony_id))
            await tx.daemon_log_insert([DaemonLogRow("old", "scheduler", 20, "gone")])
        await asyncio.sleep(0.4)
        async with storage.transaction() as tx:
            await tx.colony_upsert(colony_row("refreshed"))
            await tx.colony_upsert(colony_row("new"))
            await tx.daemon_log_insert([DaemonLogRow("refreshed", "scheduler", 20, "kept")])
        async with storage.transaction() as tx:
            deleted = await tx.colony_delete_stale(timedelta(milliseconds=200))
            again = await tx.colony_delete_stale(timedelta(milliseconds=200))
        assert deleted == ["old"] and again == []
        async with storage.transaction(readonly=True) as tx:
            assert sorted(colony.id for colony in await tx.colony_list()) == ["new", "refreshed"]
            assert await tx.daemon_log_list(DaemonLogList("old")) == []
            assert [row.message for row in await tx.daemon_log_list(DaemonLogList("refreshed"))] == ["kept"]

    async def test_daemon_logs(self, storage: Storage) -> None:
        moment = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
        rows = [
            DaemonLogRow("c-1", daemon, level, f"{daemon}-{level}")
            for daemon, level in (
                ("scheduler", 10),
                ("monitor", 20),
                ("scheduler", 30),
                ("monitor", 40),
                ("scheduler", 50),
            )
        ]
        async with storage.transaction() as tx:
            await tx.colony_upsert(colony_row("c-1"))
            await tx.colony_upsert(colony_row("c-2"))
            assert await tx.daemon_log_insert(rows) == 5
            assert await tx.daemon_log_insert([]) == 0
            lost = DaemonLogRow("ghost", "scheduler", 20, "lost")
            dated = DaemonLogRow("c-2", "cleaner", 30, "dated", created_at=moment)
            assert await tx.daemon_log_insert([lost, dated, lost]) == 1
        async with storage.transaction(readonly=True) as tx:
            everything = await tx.daemon_log_list(DaemonLogList("c-1"))
            scheduler = await tx.daemon_log_list(DaemonLogList("c-1", daemon="scheduler"))
            first_two = await tx.daemon_log_list(DaemonLogList("c-1", limit=2))
            rest = await tx.daemon_log_list(DaemonLogList("c-1", after_id=first_two[-1].id))
            page = await tx.daemon_log_list(DaemonLogList("c-1", daemon="scheduler", after_id=scheduler[0].id, limit=1))
            other = await tx.daemon_log_list(DaemonLogList("c-2"))
            ghost = await tx.daemon_log_list(DaemonLogList("ghost"))
        assert [entry.message for entry in everything] == [row.message for row in rows]
        assert [(entry.colony_id, entry.daemon, entry.level) for entry in everything] == [
            (row.colony_id, row.daemon, row.level) for row in rows
        ]
        assert all(entry.created_at.tzinfo is not None for entry in everything)
        assert all(abs(entry.created_at - _now()) < timedelta(minutes=1) for entry in everything)
        assert [entry.message for entry in scheduler] == ["scheduler-10", "scheduler-30", "scheduler-50"]
        assert len(first_two) == 2 and first_two + rest == everything
        assert [entry.message for entry in page] == ["scheduler-30"]
        assert [(entry.daemon, entry.message, entry.created_at) for entry in other] == [("cleaner", "dated", moment)]
        assert ghost == []

    async def test_clock_is_utc_now(self, storage: Storage) -> None:
        async with storage.transaction(readonly=True) as tx:
            now = await tx.clock_now()
        assert now.tzinfo is not None and abs(now - _now()) < timedelta(seconds=5)

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
