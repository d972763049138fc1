"""Conformance of the recurring-job operations: the compare-and-set row, its pages (all, due,
running), the once-only occurrence keys and the history of states and logs."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from hivemind_jobs.storage.protocol import (
    OccurrenceInsert,
    RecurringEventList,
    RecurringEventPrune,
    RecurringEventRecord,
    RecurringEventRow,
    RecurringGet,
    RecurringList,
    RecurringWrite,
    Storage,
)
from hivemind_jobs.testing.conformance.support import ConformanceBase, StorageFactory, utc_now

__all__ = ["RecurringConformance", "recurring_row"]

#: a moment with microseconds, far from any clock
MOMENT = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


def recurring_row(
    recurring_id: str,
    *,
    state: str = "Enqueued",
    reason: str | None = None,
    next_run: datetime | None = MOMENT,
    job_id: int | None = None,
    definition: dict[str, object] | None = None,
    stats: dict[str, object] | None = None,
    expected_version: int | None = None,
    expected_next_run: datetime | None = None,
) -> RecurringWrite:
    """A recurring job's row as the recurring engine would write it."""
    return RecurringWrite(
        id=recurring_id,
        definition=json.dumps(definition or {"schedule": "0 * * * *", "target": "tests.sample:work"}),
        state_name=state,
        state_reason=reason,
        next_run=next_run,
        job_id=job_id,
        stats=json.dumps(stats or {"runs": 0}),
        expected_version=expected_version,
        expected_next_run=expected_next_run,
    )


class RecurringConformance(ConformanceBase):
    """Recurring jobs are written by compare-and-set, found when due, and keep a bounded history."""

    @staticmethod
    async def write(storage: Storage, *rows: RecurringWrite) -> list[bool]:
        async with storage.transaction() as tx:
            return [await tx.recurring_write(row) for row in rows]

    @staticmethod
    async def listed(storage: Storage, params: RecurringList) -> list[str]:
        async with storage.transaction() as tx:
            return [record.id for record in await tx.recurring_list(params)]

    @staticmethod
    async def events(storage: Storage, params: RecurringEventList) -> list[RecurringEventRecord]:
        async with storage.transaction(readonly=True) as tx:
            return await tx.recurring_event_list(params)

    # ------------------------------------------------------------------ the row
    async def test_recurring_write_inserts_once(self, storage: Storage) -> None:
        async with storage.transaction() as tx:
            assert await tx.recurring_get(RecurringGet("daily")) is None
            assert await tx.recurring_get(RecurringGet("daily", for_update=True)) is None
            stats: dict[str, object] = {"runs": 3, "last": "ok"}
            assert await tx.recurring_write(recurring_row("daily", reason="created", stats=stats))
            # the id is taken: refused without failing the transaction, the first row stays
            assert not await tx.recurring_write(recurring_row("daily", state="Idle", next_run=None))
            record = await tx.recurring_get(RecurringGet("daily"))
        assert record is not None
        assert (record.id, record.state_name, record.state_reason) == ("daily", "Enqueued", "created")
        assert record.next_run == MOMENT and record.job_id is None and record.version == 1
        assert json.loads(record.definition) == {"schedule": "0 * * * *", "target": "tests.sample:work"}
        assert json.loads(record.stats) == stats
        assert record.created_at == record.modified_at
        assert record.created_at.tzinfo is not None and abs(record.created_at - utc_now()) < timedelta(minutes=1)
        async with storage.transaction(readonly=True) as tx:
            assert await tx.recurring_get(RecurringGet("daily")) == record
            assert await tx.recurring_get(RecurringGet("Daily")) is None  # ids compare exactly

    async def test_recurring_write_compares_and_sets(self, storage: Storage) -> None:
        assert await self.write(storage, recurring_row("daily")) == [True]
        async with storage.transaction(readonly=True) as tx:
            first = await tx.recurring_get(RecurringGet("daily"))
        assert first is not None
        await asyncio.sleep(0.01)
        running = recurring_row(
            "daily", state="Executing", reason="triggered", next_run=None, job_id=2**40, expected_version=1
        )
        assert await self.write(storage, running) == [True]
        async with storage.transaction() as tx:
            second = await tx.recurring_get(RecurringGet("daily", for_update=True))
        assert second is not None
        assert (second.state_name, second.state_reason, second.next_run, second.job_id) == (
            "Executing",
            "triggered",
            None,
            2**40,
        )
        assert second.version == 2 and second.created_at == first.created_at
        assert second.modified_at > first.modified_at
        # a stale version, or a row that vanished, is not written
        stale = recurring_row("daily", state="Idle", expected_version=1)
        assert await self.write(storage, stale, recurring_row("gone", expected_version=1)) == [False, False]
        async with storage.transaction(readonly=True) as tx:
            assert await tx.recurring_get(RecurringGet("daily")) == second
            assert await tx.recurring_get(RecurringGet("gone")) is None
        # with expected_next_run the stored next run must match too (to the microsecond)
        scheduled = recurring_row("daily", next_run=MOMENT, expected_version=2)
        assert await self.write(storage, scheduled) == [True]
        almost = MOMENT + timedelta(microseconds=1)
        later = MOMENT + timedelta(days=1)
        wrong = recurring_row("daily", next_run=later, expected_version=3, expected_next_run=almost)
        right = recurring_row("daily", next_run=later, expected_version=3, expected_next_run=MOMENT)
        assert await self.write(storage, wrong, right) == [False, True]
        async with storage.transaction(readonly=True) as tx:
            third = await tx.recurring_get(RecurringGet("daily"))
        assert third is not None and third.version == 4 and third.next_run == later
        assert (third.state_name, third.job_id) == ("Enqueued", None)

    async def test_recurring_list_pages_by_id(self, storage: Storage) -> None:
        ids = ["b-weekly", "B-report", "a-daily", "c-hourly"]
        assert await self.write(storage, *(recurring_row(rid) for rid in ids)) == [True] * 4
        ordered = sorted(ids)  # code point order: "B-report" first
        assert await self.listed(storage, RecurringList()) == ordered
        assert await self.listed(storage, RecurringList(limit=2)) == ordered[:2]
        assert await self.listed(storage, RecurringList(after_id=ordered[1], limit=2)) == ordered[2:]
        assert await self.listed(storage, RecurringList(after_id=ordered[-1])) == []

    async def test_recurring_list_due_and_running(self, storage: Storage) -> None:
        async with storage.transaction(readonly=True) as tx:
            now = await tx.clock_now()
        past, soon, future = now - timedelta(minutes=1), now + timedelta(seconds=1), now + timedelta(hours=1)
        rows = [
            recurring_row("a-soon", next_run=soon),
            recurring_row("b-due", next_run=past),
            recurring_row("c-due-running", next_run=past, job_id=42),
            recurring_row("d-idle", state="Idle", next_run=past),
            recurring_row("e-never", next_run=None),
            recurring_row("f-executing", state="Executing", next_run=future, job_id=7),
            recurring_row("g-later", next_run=future),
        ]
        assert await self.write(storage, *rows) == [True] * len(rows)
        assert await self.listed(storage, RecurringList(due=True)) == ["b-due", "c-due-running"]
        assert await self.listed(storage, RecurringList(due=True, limit=1)) == ["b-due"]
        assert await self.listed(storage, RecurringList(due=True, after_id="b-due")) == ["c-due-running"]
        assert await self.listed(storage, RecurringList(running=True)) == ["c-due-running", "f-executing"]
        assert await self.listed(storage, RecurringList(running=True, after_id="c-due-running")) == ["f-executing"]
        assert await self.listed(storage, RecurringList(running=True, limit=1)) == ["c-due-running"]
        async with storage.transaction(readonly=True) as tx:
            await asyncio.sleep((soon - await tx.clock_now()).total_seconds() + 0.1)  # "a-soon" comes due
        assert await self.listed(storage, RecurringList(due=True)) == ["a-soon", "b-due", "c-due-running"]

    async def test_recurring_list_due_skips_rows_other_transactions_hold(self, storage: Storage) -> None:
        if storage.capabilities.single_writer:
            pytest.skip("one writer at a time: a second transaction waits for the first")
        past = MOMENT.replace(year=2020)
        assert await self.write(storage, recurring_row("a", next_run=past), recurring_row("b", next_run=past)) == [
            True,
            True,
        ]
        async with storage.transaction() as first:
            assert [record.id for record in await first.recurring_list(RecurringList(due=True, limit=1))] == ["a"]
            theirs = await asyncio.wait_for(self.listed(storage, RecurringList(due=True)), timeout=10)
        assert theirs == ["b"], "a due row another transaction holds was waited for or returned"

    async def test_recurring_delete_takes_its_history_but_not_its_occurrence_keys(self, storage: Storage) -> None:
        assert await self.write(storage, recurring_row("gone"), recurring_row("kept")) == [True, True]
        async with storage.transaction() as tx:
            await tx.recurring_event_insert(
                [RecurringEventRow("gone", "state", "Enqueued"), RecurringEventRow("kept", "log", "INFO", "kept")]
            )
            assert await tx.occurrence_insert(OccurrenceInsert("gone", MOMENT, 17))
        async with storage.transaction() as tx:
            assert await tx.recurring_delete("gone")
            assert not await tx.recurring_delete("gone")
            assert not await tx.recurring_delete("missing")
        async with storage.transaction() as tx:
            assert await tx.recurring_get(RecurringGet("gone")) is None
            assert [record.id for record in await tx.recurring_list(RecurringList())] == ["kept"]
            assert await tx.recurring_event_list(RecurringEventList("gone")) == []
            kept = await tx.recurring_event_list(RecurringEventList("kept"))
            assert not await tx.occurrence_insert(OccurrenceInsert("gone", MOMENT, None))
        assert [(event.kind, event.message) for event in kept] == [("log", "kept")]
        # the id is free again
        assert await self.write(storage, recurring_row("gone")) == [True]

    # ------------------------------------------------------------------ occurrence keys
    async def test_occurrence_is_recorded_once(self, storage: Storage) -> None:
        async with storage.transaction() as tx:
            assert await tx.occurrence_insert(OccurrenceInsert("daily", MOMENT, None))
            # recorded before: refused without failing the transaction
            assert not await tx.occurrence_insert(OccurrenceInsert("daily", MOMENT, 5))
            assert await tx.recurring_write(recurring_row("daily"))
        async with storage.transaction() as tx:
            assert not await tx.occurrence_insert(OccurrenceInsert("daily", MOMENT, None))
            assert await tx.occurrence_insert(OccurrenceInsert("daily", MOMENT + timedelta(microseconds=1), 6))
            assert await tx.occurrence_insert(OccurrenceInsert("Daily", MOMENT, None))
            assert await tx.occurrence_insert(OccurrenceInsert("hourly", MOMENT, 7))
        async with storage.transaction(readonly=True) as tx:
            assert await tx.recurring_get(RecurringGet("daily")) is not None  # the first transaction committed

    async def test_occurrence_keys_are_isolated(self, storage: Storage, storage_factory: StorageFactory) -> None:
        other = storage_factory("hm_other_")
        await other.open()
        try:
            for each in (storage, other):
                async with each.transaction() as tx:
                    assert await tx.occurrence_insert(OccurrenceInsert("daily", MOMENT, None))
                    assert await tx.recurring_write(recurring_row("daily"))
            async with other.transaction() as tx:
                assert await tx.recurring_delete("daily")
            async with storage.transaction(readonly=True) as tx:
                assert await tx.recurring_get(RecurringGet("daily")) is not None
        finally:
            await other.close()

    # ------------------------------------------------------------------ history
    async def test_recurring_events_newest_first(self, storage: Storage) -> None:
        rows = [
            RecurringEventRow("daily", "state", "Enqueued", None, json.dumps({"next_run": "2031-05-06T07:08:09"})),
            RecurringEventRow("daily", "log", "INFO", "started"),
            RecurringEventRow("daily", "state", "Executing", "triggered", json.dumps({"job_id": 12})),
            RecurringEventRow("daily", "log", "WARNING", "slow"),
        ]
        async with storage.transaction() as tx:
            assert await tx.recurring_event_insert(rows) == 4
            assert await tx.recurring_event_insert([]) == 0
            assert await tx.recurring_event_insert([RecurringEventRow("hourly", "log", "INFO", "other")]) == 1
        everything = await self.events(storage, RecurringEventList("daily"))
        assert [(e.recurring_id, e.kind, e.name, e.message) for e in everything] == [
            (row.recurring_id, row.kind, row.name, row.message) for row in reversed(rows)
        ]
        assert [json.loads(e.fields) for e in everything] == [json.loads(row.fields) for row in reversed(rows)]
        assert [e.id for e in everything] == sorted((e.id for e in everything), reverse=True)
        assert all(e.created_at.tzinfo is not None for e in everything)
        assert all(abs(e.created_at - utc_now()) < timedelta(minutes=1) for e in everything)
        states = await self.events(storage, RecurringEventList("daily", kind="state"))
        assert [e.name for e in states] == ["Executing", "Enqueued"]
        assert [e.name for e in await self.events(storage, RecurringEventList("daily", kind="log"))] == [
            "WARNING",
            "INFO",
        ]
        newest = await self.events(storage, RecurringEventList("daily", limit=1))
        older = await self.events(storage, RecurringEventList("daily", before_id=newest[0].id, limit=2))
        oldest = await self.events(storage, RecurringEventList("daily", before_id=older[-1].id))
        assert newest + older + oldest == everything and len(older) == 2
        page = await self.events(storage, RecurringEventList("daily", kind="state", before_id=everything[0].id))
        assert [e.name for e in page] == ["Executing", "Enqueued"]
        assert await self.events(storage, RecurringEventList("missing")) == []
        assert [e.message for e in await self.events(storage, RecurringEventList("hourly"))] == ["other"]

    async def test_recurring_event_prune_keeps_the_newest(self, storage: Storage) -> None:
        async with storage.transaction() as tx:
            await tx.recurring_event_insert([RecurringEventRow("daily", "state", f"S{i}") for i in range(5)])
            await tx.recurring_event_insert([RecurringEventRow("daily", "log", "INFO", f"m{i}") for i in range(3)])
            await tx.recurring_event_insert([RecurringEventRow("hourly", "state", f"S{i}") for i in range(3)])
        async with storage.transaction() as tx:
            assert await tx.recurring_event_prune(RecurringEventPrune("daily", "state", keep=2)) == 3
            assert await tx.recurring_event_prune(RecurringEventPrune("daily", "state", keep=2)) == 0
            assert await tx.recurring_event_prune(RecurringEventPrune("daily", "state", keep=10)) == 0
            assert await tx.recurring_event_prune(RecurringEventPrune("daily", "state")) == 0
            assert await tx.recurring_event_prune(RecurringEventPrune("missing", "state", keep=1)) == 0
        states = await self.events(storage, RecurringEventList("daily", kind="state"))
        assert [e.name for e in states] == ["S4", "S3"]
        assert len(await self.events(storage, RecurringEventList("daily", kind="log"))) == 3
        assert len(await self.events(storage, RecurringEventList("hourly"))) == 3

    async def test_recurring_event_prune_by_age_on_the_database_clock(self, storage: Storage) -> None:
        async with storage.transaction() as tx:
            await tx.recurring_event_insert([RecurringEventRow("daily", "state", f"old{i}") for i in range(2)])
            await tx.recurring_event_insert([RecurringEventRow("daily", "log", "INFO", "old log")])
        await asyncio.sleep(0.5)
        async with storage.transaction() as tx:
            await tx.recurring_event_insert([RecurringEventRow("daily", "state", f"new{i}") for i in range(3)])
        age = timedelta(milliseconds=300)
        async with storage.transaction() as tx:
            # keep the newest 4 (drops old0), then drop what is older than the age (old1): both apply
            assert await tx.recurring_event_prune(RecurringEventPrune("daily", "state", keep=4, older_than=age)) == 2
            assert await tx.recurring_event_prune(RecurringEventPrune("daily", "state", older_than=age)) == 0
        states = await self.events(storage, RecurringEventList("daily", kind="state"))
        assert [e.name for e in states] == ["new2", "new1", "new0"]
        assert [e.message for e in await self.events(storage, RecurringEventList("daily", kind="log"))] == ["old log"]
