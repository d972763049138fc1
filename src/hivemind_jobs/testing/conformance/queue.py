"""Conformance of the queue operations: claim order, limits, skipped locks, due times and statistics."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from hivemind_jobs.storage.protocol import (
    ClaimedJob,
    ClaimStart,
    ClaimStarted,
    JobLimitSet,
    JobLockRelease,
    JobLogList,
    JobLogRow,
    JobRecord,
    QueueClaim,
    QueueClaimStart,
    QueuePause,
    QueuePointer,
    StartTemplates,
    StateRow,
    Storage,
    Transaction,
    UpdateOutcome,
)
from hivemind_jobs.testing.conformance.support import (
    ConformanceBase,
    every_property_type,
    new_job,
    state_row,
    utc_now,
)

__all__ = ["QueueConformance"]


#: the dialects of HiveMind's backends, whose claim commits with its own statements when asked
#: to (another backend may leave the commit to the transaction)
COMMITS_IN_CLAIM = ("postgresql", "mysql", "sqlite")
#: the dialects whose claim writes the starts itself when given templates (the jobs are adopted)
STARTS_IN_CLAIM = ("postgresql", "mysql")


class QueueConformance(ConformanceBase):
    """Due jobs are claimed in order, once, by one owner."""

    # ------------------------------------------------------------------ queue
    async def test_claim_order_groups_priority_due_time(self, storage: Storage) -> None:
        past = utc_now() - timedelta(minutes=1)
        ids = await self.insert(
            storage,
            new_job(queue="b", priority=2),  # 0
            new_job(queue="a", priority=3),  # 1
            new_job(queue="a", priority=0),  # 2
            new_job(queue="b", priority=0, execute_after=past),  # 3 - older due time than 2
            new_job(queue="c", priority=0),  # 4 - in a later group
            new_job(queue="a", priority=0, execute_after=utc_now() + timedelta(hours=1)),  # 5 - delayed
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

    async def test_claim_start_writes_the_started_state_under_the_claimed_lock(self, storage: Storage) -> None:
        ids = await self.insert(
            storage,
            new_job(priority=0),  # started
            new_job(priority=1),  # claimed, not started (start answers None)
            new_job(priority=2, state="Executing"),  # a stale entry of a job no longer Enqueued
            new_job(priority=3),  # beyond the limit
        )
        await self.get(storage, ids[3], "other")  # locked by someone else
        ids += await self.insert(storage, new_job(priority=4))
        seen: list[tuple[int, int, str]] = []
        new_execution = str(uuid.uuid4())
        started_at = utc_now()

        def start(entry: ClaimedJob, record: JobRecord) -> ClaimStart | None:
            seen.append((entry.job_id, record.states[-1].sequence, record.states[-1].name))
            assert record.locked_by == "colony-1" and record.lock_acquired
            if entry.job_id != ids[0]:
                return None
            return ClaimStart(new_execution, state_row(2, "Executing", {"drone": "d-1"}, elected_at=started_at))

        async with storage.transaction() as tx:
            claimed = await tx.queue_claim_start(QueueClaimStart((("global",),), 3, "colony-1", start))
        by_id = {entry.job_id: entry for entry in claimed}
        assert [entry.job_id for entry in claimed][:2] == [ids[0], ids[1]]
        assert seen == [(ids[0], 1, "Enqueued"), (ids[1], 1, "Enqueued")]
        assert by_id[ids[2]].record is None  # taken (its entry was stale), not locked
        started = await self.get(storage, ids[0])
        assert isinstance(started, JobRecord)
        assert started.execution_id == new_execution
        assert [(row.sequence, row.name) for row in started.states] == [
            (0, "Created"),
            (1, "Enqueued"),
            (2, "Executing"),
        ]
        assert json.loads(started.states[-1].fields) == {"drone": "d-1"}
        assert started.locked_by == "colony-1" and started.lock_heartbeat is not None
        untouched = await self.get(storage, ids[1])
        assert isinstance(untouched, JobRecord)
        assert untouched.locked_by == "colony-1"
        assert [row.name for row in untouched.states][-1] == "Enqueued"
        assert untouched.execution_id == by_id[ids[1]].execution_id
        stale = await self.get(storage, ids[2])
        assert isinstance(stale, JobRecord) and stale.locked_by is None
        # the started job's save is fenced by its new execution id from now on
        async with storage.transaction() as tx:
            result = await tx.job_update(self._update(started, "colony-1", release_lock=True))
        assert result.outcome is UpdateOutcome.SAVED
        # what is left: the job locked by someone else and the one beyond the limit
        assert await self.claim(storage, (("global",),), 10) == [ids[4]]

    async def test_claim_start_asked_to_commit_leaves_the_transaction_open_unless_every_job_started(
        self, storage: Storage
    ) -> None:
        ids = await self.insert(storage, new_job(), new_job(), new_job())

        def starter(declined: set[int]) -> Callable[[ClaimedJob, JobRecord], ClaimStart | None]:
            def start(entry: ClaimedJob, record: JobRecord) -> ClaimStart | None:
                if entry.job_id in declined:
                    return None
                return ClaimStart(str(uuid.uuid4()), state_row(2, "Executing", {}, elected_at=utc_now()))

            return start

        # a job the caller declines to start (it fails it next): the claim must not commit
        async with storage.transaction() as tx:
            tx.commit_after_next()
            claimed = await tx.queue_claim_start(QueueClaimStart((("global",),), 2, "colony-1", starter({ids[0]})))
            assert [entry.job_id for entry in claimed] == ids[:2]
            assert not tx.finished
            update = self._update(claimed[0].record, "colony-1", release_lock=True)
            assert (await tx.job_update(update)).outcome is UpdateOutcome.SAVED
        # every claimed job started: the claim may commit with its own writes (PostgreSQL's
        # pipeline, MySQL's script, SQLite's writer thread: HiveMind's backends do), and what it
        # wrote is there either way
        async with storage.transaction() as tx:
            tx.commit_after_next()
            [entry] = await tx.queue_claim_start(QueueClaimStart((("global",),), 5, "colony-1", starter(set())))
            assert entry.job_id == ids[2]
            assert tx.finished is (storage.capabilities.dialect in COMMITS_IN_CLAIM)
        for job_id, state in ((ids[0], "Enqueued"), (ids[1], "Executing"), (ids[2], "Executing")):
            record = await self.get(storage, job_id)
            assert isinstance(record, JobRecord) and record.states[-1].name == state, (job_id, record)
        assert await self.claim(storage, (("global",),), 10) == []  # the declined job is unlocked, dequeued

    @staticmethod
    def templated(count: int) -> StartTemplates:
        """Start templates whose fields are ``{"drone": "d-<i>", "due": <due time>}``."""
        return StartTemplates(
            [str(uuid.uuid4()) for _ in range(count)],
            [f'{{"drone":"d-{index}","due":"' for index in range(count)],
            ['"}'] * count,
        )

    async def templated_claim(
        self,
        tx: Transaction,
        groups: tuple[tuple[str, ...], ...],
        limit: int,
        *,
        declined: frozenset[int] = frozenset(),
    ) -> tuple[list[ClaimedJob], StartTemplates, dict[int, tuple[str, int, JobRecord]]]:
        """A claim that gives start templates; whichever way the backend starts a job (its claim
        statement, ``adopt``, or ``start``), it gets the same execution id and fields. Returns the
        claimed entries, the templates and, per started or declined job, how it was started
        ("adopt" or "start"), the template it took and its record as given."""
        templates = self.templated(limit)
        seen: dict[int, tuple[str, int, JobRecord]] = {}
        following = [0]

        def start(entry: ClaimedJob, record: JobRecord) -> ClaimStart | None:
            index = following[0]
            following[0] += 1
            seen[entry.job_id] = ("start", index, record)
            if entry.job_id in declined:
                return None
            due = entry.execute_after.astimezone(UTC).isoformat()
            fields = templates.fields_before[index] + due + templates.fields_after[index]
            state = StateRow(record.states[-1].sequence + 1, "Executing", utc_now(), None, fields)
            return ClaimStart(templates.execution_ids[index], state)

        def adopt(entry: ClaimedJob, record: JobRecord, started: ClaimStarted) -> bool:
            following[0] = started.index + 1
            seen[entry.job_id] = ("adopt", started.index, record)
            assert started.execution_id == templates.execution_ids[started.index]
            return entry.job_id not in declined

        claim = QueueClaimStart(groups, limit, "colony-1", start, lambda count: templates, adopt)
        return await tx.queue_claim_start(claim), templates, seen

    async def test_claim_start_with_templates_writes_what_they_say(self, storage: Storage) -> None:
        properties = every_property_type('h\u00e9llo "quoted"', 0.1, False)
        due = (utc_now() - timedelta(minutes=5)).replace(microsecond=0)  # isoformat without a fraction
        ids = await self.insert(
            storage,
            new_job(priority=1, properties=properties),
            new_job(priority=0, execute_after=due),
            new_job(priority=2),  # its entry goes stale: taken, not claimed
            new_job(priority=3),  # beyond the limit
        )
        record = await self.get(storage, ids[2], "user")
        async with storage.transaction() as tx:  # a new execution id, the old queue entry kept
            await tx.job_update(self._update(record, "user", execution_id=str(uuid.uuid4()), release_lock=True))
        async with storage.transaction() as tx:
            claimed, templates, seen = await self.templated_claim(tx, (("global",),), 3)
        assert [entry.job_id for entry in claimed] == [ids[1], ids[0]]
        way = "adopt" if storage.capabilities.dialect in STARTS_IN_CLAIM else "start"
        assert {job_id: (how, index) for job_id, (how, index, _) in seen.items()} == {
            ids[1]: (way, 0),
            ids[0]: (way, 1),
        }
        given = seen[ids[0]][2]  # the record as claimed: before the start, locked by the claimer
        assert [state.name for state in given.states] == ["Created", "Enqueued"]
        assert given.locked_by == "colony-1" and given.lock_acquired
        assert {row.name: row.value for row in given.properties} == {row.name: row.value for row in properties}
        assert given.invocation == json.dumps({"v": 1, "target": "tests.sample:work", "async": False, "args": {"n": 1}})
        for index, (job_id, entry) in enumerate(zip((ids[1], ids[0]), claimed, strict=True)):
            record = await self.get(storage, job_id)
            assert isinstance(record, JobRecord)
            assert record.execution_id == templates.execution_ids[index]
            history = [(row.sequence, row.name) for row in record.states]
            assert history == [(0, "Created"), (1, "Enqueued"), (2, "Executing")]
            fields = json.loads(record.states[-1].fields)
            assert fields["drone"] == f"d-{index}"
            assert datetime.fromisoformat(fields["due"]) == entry.execute_after
            assert record.locked_by == "colony-1" and record.lock_heartbeat is not None
            assert abs(record.states[-1].elected_at - utc_now()) < timedelta(minutes=1)
        assert claimed[0].execute_after == due
        # the started jobs are fenced by their new execution ids
        async with storage.transaction() as tx:
            update = self._update(await self.get(storage, ids[1]), "colony-1", release_lock=True)
            assert (await tx.job_update(update)).outcome is UpdateOutcome.SAVED
        assert await self.claim(storage, (("global",),), 10) == [ids[3]]  # the stale entry is gone
        stale = await self.get(storage, ids[2])
        assert isinstance(stale, JobRecord) and stale.locked_by is None and stale.states[-1].name == "Enqueued"

    async def test_claim_start_puts_back_a_job_its_caller_cannot_run(self, storage: Storage) -> None:
        ids = await self.insert(storage, new_job(priority=0), new_job(priority=1), new_job(priority=2))
        before = await self.get(storage, ids[1])
        assert isinstance(before, JobRecord)
        async with storage.transaction() as tx:
            claimed, templates, _ = await self.templated_claim(tx, (("global",),), 3, declined=frozenset({ids[1]}))
            assert [entry.job_id for entry in claimed] == ids
            # within the transaction the declined job is as it was, locked by the claimer
            update = self._update(
                claimed[1].record, "colony-1", release_lock=True, new_states=(state_row(2, "Failed", {}),)
            )
            assert (await tx.job_update(update)).outcome is UpdateOutcome.SAVED
        failed = await self.get(storage, ids[1])
        assert isinstance(failed, JobRecord)
        assert [row.name for row in failed.states] == ["Created", "Enqueued", "Failed"]  # never Executing
        assert failed.locked_by is None
        for index, job_id in ((0, ids[0]), (2, ids[2])):
            started = await self.get(storage, job_id)
            assert isinstance(started, JobRecord)
            assert started.execution_id == templates.execution_ids[index]
            assert [row.name for row in started.states][-1] == "Executing"
        assert await self.claim(storage, (("global",),), 10) == []

    async def test_claim_start_leaves_the_transaction_open_for_a_job_put_back_in_an_earlier_group(
        self, storage: Storage
    ) -> None:
        # the first group's job cannot run (its caller fails it next); the second group holds an
        # entry of a job that is not Enqueued besides a job that starts: however the backend claims
        # the second group, the claim must not commit before the caller's write
        [declined] = await self.insert(storage, new_job(queue="first"))
        started_id, other_id = await self.insert(
            storage, new_job(queue="second"), new_job(queue="second", state="Scheduled")
        )
        async with storage.transaction() as tx:
            tx.commit_after_next()
            claimed, _, _ = await self.templated_claim(tx, (("first",), ("second",)), 5, declined=frozenset({declined}))
            assert {declined, started_id} <= {entry.job_id for entry in claimed}
            assert not tx.finished
            [entry] = [entry for entry in claimed if entry.job_id == declined]
            update = self._update(entry.record, "colony-1", release_lock=True, new_states=(state_row(2, "Failed", {}),))
            assert (await tx.job_update(update)).outcome is UpdateOutcome.SAVED
        failed = await self.get(storage, declined)
        assert isinstance(failed, JobRecord) and [row.name for row in failed.states] == [
            "Created",
            "Enqueued",
            "Failed",
        ]
        started = await self.get(storage, started_id)
        assert isinstance(started, JobRecord) and started.states[-1].name == "Executing"
        other = await self.get(storage, other_id)
        assert isinstance(other, JobRecord) and other.states[-1].name == "Scheduled" and other.locked_by is None

    async def test_claim_start_as_the_last_operation_commits_with_it(self, storage: Storage) -> None:
        ids = await self.insert(storage, *(new_job(priority=priority) for priority in range(4)))
        # after another write: every claimed job started, so the claim may commit the transaction
        # with its own statement (PostgreSQL's pipeline, MySQL's script, SQLite's writer thread:
        # HiveMind's backends do), the earlier write with it
        async with storage.transaction() as tx:
            await tx.job_log_insert([JobLogRow(ids[3], 20, "written before the claim")])
            tx.commit_after_next()
            claimed, _, _ = await self.templated_claim(tx, (("global",),), 2)
            assert [entry.job_id for entry in claimed] == ids[:2]
            assert tx.finished is (storage.capabilities.dialect in COMMITS_IN_CLAIM)
        for job_id in ids[:2]:
            record = await self.get(storage, job_id)
            assert isinstance(record, JobRecord) and record.states[-1].name == "Executing"
        async with storage.transaction() as tx:
            [log] = await tx.job_log_list(JobLogList(ids[3]))
        assert log.message == "written before the claim"
        # a job its caller cannot run: put back in a transaction that stays open for the caller's
        # writes, which commit with the put-back
        async with storage.transaction() as tx:
            tx.commit_after_next()
            claimed, _, _ = await self.templated_claim(tx, (("global",),), 2, declined=frozenset({ids[2]}))
            assert [entry.job_id for entry in claimed] == ids[2:]
            assert not tx.finished
            update = self._update(
                claimed[0].record, "colony-1", release_lock=True, new_states=(state_row(2, "Failed", {}),)
            )
            assert (await tx.job_update(update)).outcome is UpdateOutcome.SAVED
        failed = await self.get(storage, ids[2])
        assert isinstance(failed, JobRecord) and failed.locked_by is None
        assert [row.name for row in failed.states] == ["Created", "Enqueued", "Failed"]  # never Executing
        started = await self.get(storage, ids[3])
        assert isinstance(started, JobRecord) and started.states[-1].name == "Executing"
        assert await self.claim(storage, (("global",),), 10) == []

    async def test_claim_start_with_templates_keeps_limits_in_a_later_group(self, storage: Storage) -> None:
        plain = await self.insert(storage, new_job(queue="a"), new_job(queue="a"))
        limited = await self.insert(storage, new_job(queue="b"), new_job(queue="b"))
        # an entry of a job that is not Enqueued any more: taken, neither started nor locked
        [executing] = await self.insert(storage, new_job(queue="c", state="Executing"))
        async with storage.transaction() as tx:
            assert await tx.job_limit_set([JobLimitSet(job_id, "k", 1, None, None, None) for job_id in limited]) == 2
        async with storage.transaction() as tx:
            claimed, templates, seen = await self.templated_claim(tx, (("a",), ("a", "b"), ("c",)), 5)
        # one of key k at a time; the job not Enqueued is returned without a record
        assert [(entry.job_id, entry.record is not None) for entry in claimed] == [
            (plain[0], True),
            (plain[1], True),
            (limited[0], True),
            (executing, False),
        ]
        assert executing not in seen
        if storage.capabilities.dialect in STARTS_IN_CLAIM:  # the claim started the plain jobs
            assert [seen[job_id][:2] for job_id in [*plain, limited[0]]] == [("adopt", 0), ("adopt", 1), ("start", 2)]
        for index, job_id in enumerate([*plain, limited[0]]):
            record = await self.get(storage, job_id)
            assert isinstance(record, JobRecord)
            assert record.execution_id == templates.execution_ids[index]
            assert json.loads(record.states[-1].fields)["drone"] == f"d-{index}"
        record = await self.get(storage, limited[1])
        assert isinstance(record, JobRecord) and record.states[-1].name == "Enqueued" and record.locked_by is None
        record = await self.get(storage, executing)
        assert isinstance(record, JobRecord) and record.states[-1].name == "Executing" and record.locked_by is None
        assert await self.claim(storage, (("c",),), 5) == []

    # ------------------------------------------------------------------ limits
    @staticmethod
    async def start_claim(storage: Storage, limit: int, owner: str = "colony-1", queue: str = "global") -> list[int]:
        """Claim and start (Executing) up to ``limit`` jobs of ``queue``."""

        def start(entry: ClaimedJob, record: JobRecord) -> ClaimStart | None:
            del entry, record
            return ClaimStart(str(uuid.uuid4()), state_row(2, "Executing", {}, elected_at=utc_now()))

        async with storage.transaction() as tx:
            claimed = await tx.queue_claim_start(QueueClaimStart(((queue,),), limit, owner, start))
        return [entry.job_id for entry in claimed]

    async def finish(self, storage: Storage, job_id: int, owner: str = "colony-1") -> None:
        record = await self.get(storage, job_id)
        assert isinstance(record, JobRecord)
        update = self._update(record, owner, release_lock=True, new_states=(state_row(3, "Succeeded", {}),))
        async with storage.transaction() as tx:
            assert (await tx.job_update(update)).outcome is UpdateOutcome.SAVED

    async def test_claims_keep_concurrency_limits(self, storage: Storage) -> None:
        ids = await self.insert(storage, *(new_job() for _ in range(6)))
        async with storage.transaction() as tx:
            limited = [JobLimitSet(job_id, "k", 2, None, None, None) for job_id in ids[:4]]
            found = await tx.job_limit_set([*limited, JobLimitSet(ids[5], "other", 1, None, None, None)])
        assert found == 5
        # all three of k fit as the claim reads them; under the key's lock only two may start
        assert await self.start_claim(storage, 3) == ids[:2]
        # k is full: its jobs are left out of the walk and do not hold the places of the others
        assert await self.start_claim(storage, 3) == ids[4:6]
        assert await self.start_claim(storage, 3) == []
        await self.finish(storage, ids[0])  # one of k ended: one more of k may start
        assert await self.start_claim(storage, 3) == [ids[2]]
        assert await self.start_claim(storage, 3) == []
        record = await self.get(storage, ids[3])
        assert isinstance(record, JobRecord) and record.states[-1].name == "Enqueued" and record.locked_by is None

    async def test_a_claim_counts_the_starts_of_a_concurrent_claim_of_its_key(self, storage: Storage) -> None:
        # in two queues: each claim reads (and locks) only its own queue's rows
        ids = await self.insert(storage, new_job(queue="a"), new_job(queue="b"))
        async with storage.transaction() as tx:
            assert await tx.job_limit_set([JobLimitSet(job_id, "one", 1, None, None, None) for job_id in ids]) == 2
        entered = asyncio.Event()

        def start(entry: ClaimedJob, record: JobRecord) -> ClaimStart | None:
            del entry, record
            return ClaimStart(str(uuid.uuid4()), state_row(2, "Executing", {}, elected_at=utc_now()))

        async with storage.transaction() as tx:
            first = await tx.queue_claim_start(QueueClaimStart((("a",),), 1, "colony-1", start))
            assert [entry.job_id for entry in first] == ids[:1]

            async def second_claim() -> list[int]:
                entered.set()
                return await self.start_claim(storage, 5, owner="colony-2", queue="b")

            second = asyncio.create_task(second_claim())
            await entered.wait()
            await asyncio.sleep(0.3)
            assert not second.done()  # it waits for this transaction (the key's lock, or the writer)
        assert await asyncio.wait_for(second, 10) == []  # and then counts the job this one started
        await self.finish(storage, ids[0])
        assert await self.start_claim(storage, 5, queue="b") == ids[1:]

    async def test_a_second_claim_in_one_transaction_takes_a_lower_key_only_if_free(self, storage: Storage) -> None:
        x, y, z = await self.insert(storage, new_job(queue="x"), new_job(queue="y"), new_job(queue="z"))
        async with storage.transaction() as tx:
            limits = [JobLimitSet(x, "a", 5, None, None, None), JobLimitSet(y, "b", 5, None, None, None)]
            assert await tx.job_limit_set([*limits, JobLimitSet(z, "a", 5, None, None, None)]) == 3
        # SQLite: a write transaction excludes every other one, so no other claim can hold "a"
        concurrent = storage.capabilities.dialect != "sqlite"
        async with contextlib.AsyncExitStack() as stack:
            if concurrent:  # another transaction holds key "a"
                other = await stack.enter_async_context(storage.transaction())
                assert [entry.job_id for entry in await self._start_in(other, "x")] == [x]
            async with storage.transaction() as tx:
                assert [entry.job_id for entry in await self._start_in(tx, "y")] == [y]  # holds "b"
                # "a" sorts below "b": waiting for it could deadlock with a claim that holds "a"
                # and waits for "b", so this claim takes it only if it is free
                second = await asyncio.wait_for(self._start_in(tx, "z"), 10)
                assert [entry.job_id for entry in second] == ([] if concurrent else [z])
        if concurrent:
            assert await self.start_claim(storage, 5, queue="z") == [z]  # free again

    @staticmethod
    async def _start_in(tx: Transaction, queue: str) -> list[ClaimedJob]:
        def start(entry: ClaimedJob, record: JobRecord) -> ClaimStart | None:
            del entry, record
            return ClaimStart(str(uuid.uuid4()), state_row(2, "Executing", {}, elected_at=utc_now()))

        return await tx.queue_claim_start(QueueClaimStart(((queue,),), 5, "colony-1", start))

    async def test_claims_keep_rate_limits(self, storage: Storage) -> None:
        ids = await self.insert(storage, *(new_job() for _ in range(5)))
        async with storage.transaction() as tx:
            hourly = [JobLimitSet(job_id, None, None, "hourly", 2, 3_600_000) for job_id in ids[:3]]
            quick = [JobLimitSet(job_id, None, None, "quick", 1, 300) for job_id in ids[3:]]
            assert await tx.job_limit_set([*hourly, *quick]) == 5
        assert await self.start_claim(storage, 10) == [ids[0], ids[1], ids[3]]
        for job_id in (ids[0], ids[1], ids[3]):
            await self.finish(storage, job_id)  # a rate limit counts starts, not running jobs
        assert await self.start_claim(storage, 10) == []
        await asyncio.sleep(0.45)  # the quick key's window has passed; the hourly one has not
        assert await self.start_claim(storage, 10) == [ids[4]]
        assert await self.start_claim(storage, 10) == []

    async def test_limits_of_missing_jobs_set_nothing(self, storage: Storage) -> None:
        [job_id] = await self.insert(storage, new_job())
        async with storage.transaction() as tx:
            assert await tx.job_limit_set([JobLimitSet(job_id + 1000, "k", 1, None, None, None)]) == 0
            assert await tx.job_limit_set([]) == 0
        assert await self.start_claim(storage, 5) == [job_id]

    async def test_queue_stats(self, storage: Storage) -> None:
        long_ago = utc_now() - timedelta(hours=2)
        await self.insert(
            storage,
            new_job(queue="q", priority=1),
            new_job(queue="q", priority=1, execute_after=long_ago),
            new_job(queue="q", priority=1, execute_after=utc_now() + timedelta(hours=1)),
            new_job(queue="r", priority=4),
            new_job(queue="s", priority=2, execute_after=utc_now() + timedelta(hours=1)),
        )
        async with storage.transaction(readonly=True) as tx:
            found = {(s.queue, s.priority): s for s in await tx.queue_stats()}
        assert {key: (s.ready, s.delayed) for key, s in found.items()} == {
            ("q", 1): (2, 1),
            ("r", 4): (1, 0),
            ("s", 2): (0, 1),
        }
        # the longest-waiting due entry; none when nothing is due yet
        oldest = found[("q", 1)].oldest_due
        assert oldest is not None and abs((oldest - long_ago).total_seconds()) < 0.001
        newest = found[("r", 4)].oldest_due
        assert newest is not None and utc_now() - newest < timedelta(minutes=1)
        assert found[("s", 2)].oldest_due is None

    async def test_queue_pause_resume_list(self, storage: Storage) -> None:
        before = utc_now() - timedelta(seconds=5)
        async with storage.transaction() as tx:
            assert await tx.queue_pause_list() == []
            assert await tx.queue_pause(QueuePause("reports", "month end"))
            assert await tx.queue_pause(QueuePause("b-queue"))
        async with storage.transaction() as tx:
            # pausing again keeps the first record
            assert not await tx.queue_pause(QueuePause("reports", "another reason"))
            # names compare exactly
            assert await tx.queue_pause(QueuePause("Reports"))
            assert await tx.queue_resume("Reports")
        async with storage.transaction(readonly=True) as tx:
            paused = await tx.queue_pause_list()
        assert [(item.queue, item.reason) for item in paused] == [("b-queue", None), ("reports", "month end")]
        assert all(before <= item.paused_at <= utc_now() + timedelta(seconds=5) for item in paused)
        assert all(item.paused_at.utcoffset() == timedelta(0) for item in paused)
        async with storage.transaction() as tx:
            assert await tx.queue_resume("reports")
            assert not await tx.queue_resume("reports")
            assert not await tx.queue_resume("never-paused")
        async with storage.transaction() as tx:
            assert [item.queue for item in await tx.queue_pause_list()] == ["b-queue"]
            await tx.rollback()
        # a pause rolled back leaves nothing
        async with storage.transaction() as tx:
            assert await tx.queue_pause(QueuePause("rolled-back"))
            await tx.rollback()
        async with storage.transaction(readonly=True) as tx:
            assert [item.queue for item in await tx.queue_pause_list()] == ["b-queue"]
