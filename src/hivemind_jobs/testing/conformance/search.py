"""Conformance of the job queries: search (filter, order, offset and keyset pages, search-and-lock),
count and the distinct queue names."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hivemind_jobs.core.job import PropertyType
from hivemind_jobs.query.conditions import Condition, any_of, job, past_state, prop, state, where
from hivemind_jobs.query.order import Order
from hivemind_jobs.storage.protocol import (
    JobGet,
    JobLockRelease,
    JobQueues,
    JobSearch,
    PropertyRow,
    Storage,
    UpdateOutcome,
)
from hivemind_jobs.testing.conformance.support import ConformanceBase, StorageFactory, new_job, state_row

__all__ = ["SearchConformance"]


def _n(value: int) -> PropertyRow:
    return PropertyRow("n", PropertyType.INT, value)


_ACME = PropertyRow("tenant", PropertyType.TEXT, "acme")


class SearchConformance(ConformanceBase):
    """Searches find exactly the matching jobs, in the asked order, page after page."""

    async def _sample(self, storage: Storage) -> list[int]:
        """Five jobs: queue, priority, properties ``n``/``tenant`` and state differ."""
        return await self.insert(
            storage,
            new_job(queue="mail", priority=1, properties=(_n(3), _ACME)),  # 0
            new_job(queue="mail", priority=3, properties=(_n(1),)),  # 1
            new_job(queue="billing", priority=3, properties=(_n(2), _ACME)),  # 2
            new_job(queue="billing", priority=0),  # 3: no property
            new_job(queue="reports", priority=1, state="Idle", enqueue=False, properties=(_n(5),)),  # 4
        )

    @staticmethod
    async def search(
        storage: Storage,
        condition: Condition | None = None,
        order: Order | None = None,
        *,
        limit: int = 100,
        offset: int = 0,
        after: tuple[Any, int] | None = None,
    ) -> list[int]:
        async with storage.transaction(readonly=True) as tx:
            records = await tx.job_search(JobSearch(condition, order, limit, offset, after))
        return [record.id for record in records]

    async def test_search_filters_by_function(self, storage: Storage) -> None:
        ids = await self.insert(
            storage,
            new_job(function="myapp.mail:send"),
            new_job(function="myapp.mail:Mailer.deliver"),
            new_job(function="myapp.billing:charge"),
            new_job(function="myapp.mail:send"),
        )
        expected: list[tuple[Condition, list[int]]] = [
            (job.function == "myapp.mail:send", [ids[0], ids[3]]),
            (job.function.like("myapp.mail:*"), [*ids[0:2], ids[3]]),
            (job.function.like("*.deliver"), [ids[1]]),
            (job.function.in_(["myapp.billing:charge", "myapp.mail:Mailer.deliver"]), ids[1:3]),
            (job.function != "myapp.mail:send", ids[1:3]),
            (job.function > "myapp.c", [ids[0], ids[1], ids[3]]),
            (job.function == "myapp.mail:SEND", []),  # case-sensitive
        ]
        for condition, matching in expected:
            assert await self.search(storage, condition) == matching, f"job_search({condition!r})"
        async with storage.transaction(readonly=True) as tx:
            assert await tx.job_count(job.function.like("myapp.mail:*")) == 3

    async def test_search_filters_by_condition(self, storage: Storage) -> None:
        ids = await self._sample(storage)
        expected: list[tuple[Condition | None, list[int]]] = [
            (None, ids),
            (job.queue == "mail", ids[0:2]),
            (prop("tenant") == "acme", [ids[0], ids[2]]),
            (prop("n") >= 2, [ids[0], ids[2], ids[4]]),
            (where(job.queue == "billing", prop("n").exists()), [ids[2]]),
            (any_of(job.queue == "billing", prop("n") == 5), ids[2:5]),
            (~(prop("tenant") == "acme"), [ids[1], ids[3], ids[4]]),
            (state == "Idle", [ids[4]]),
            (job.priority.in_([0, 3]), ids[1:4]),
            (job.queue.like("*ing"), ids[2:4]),
            (job.queue == "nowhere", []),
        ]
        for condition, matching in expected:
            assert await self.search(storage, condition) == matching, f"job_search({condition!r})"

    async def test_search_returns_whole_unlocked_records(self, storage: Storage) -> None:
        ids = await self._sample(storage)
        await self.get(storage, ids[1], "holder")
        async with storage.transaction(readonly=True) as tx:
            found = await tx.job_search(JobSearch(job.queue == "mail"))
            read = await tx.job_get_many(ids[0:2])
        assert found == read
        assert {row.name: row.value for row in found[0].properties} == {"n": 3, "tenant": "acme"}
        assert [s.name for s in found[0].states] == ["Created", "Enqueued"]
        assert [record.locked_by for record in found] == [None, "holder"]
        assert not any(record.lock_acquired for record in found)

    async def test_search_orders_ties_by_id_and_puts_missing_properties_last(self, storage: Storage) -> None:
        ids = await self._sample(storage)
        # priorities 1, 3, 3, 0, 1; ties by id in the same direction
        assert await self.search(storage, order=Order("priority")) == [ids[3], ids[0], ids[4], ids[1], ids[2]]
        assert await self.search(storage, order=Order("priority", True)) == [ids[2], ids[1], ids[4], ids[0], ids[3]]
        assert await self.search(storage, order=Order("id", True)) == ids[::-1]
        assert await self.search(storage, order=Order("queue")) == [ids[2], ids[3], ids[0], ids[1], ids[4]]
        # n = 3, 1, 2, -, 5: jobs without the property come last either way
        by_n = Order("property", property_name="n")
        assert await self.search(storage, order=by_n) == [ids[1], ids[2], ids[0], ids[4], ids[3]]
        by_n_desc = Order("property", True, "n")
        assert await self.search(storage, order=by_n_desc) == [ids[4], ids[0], ids[2], ids[1], ids[3]]
        assert await self.search(storage, prop("n") < 3, by_n_desc) == [ids[2], ids[1]]

    async def test_search_pages_by_offset_and_limit(self, storage: Storage) -> None:
        ids = await self._sample(storage)
        assert await self.search(storage, limit=2) == ids[0:2]
        assert await self.search(storage, limit=2, offset=2) == ids[2:4]
        assert await self.search(storage, limit=2, offset=4) == ids[4:]
        assert await self.search(storage, limit=2, offset=5) == []
        by_queue = Order("queue", True)  # reports, mail (1, 0), billing (3, 2)
        assert await self.search(storage, order=by_queue, limit=3, offset=1) == [ids[1], ids[0], ids[3]]

    async def test_search_pages_by_keyset(self, storage: Storage) -> None:
        ids = await self._sample(storage)
        by_queue = Order("queue")  # billing (2, 3), mail (0, 1), reports (4)
        pages: list[list[int]] = []
        after: tuple[Any, int] | None = None
        for _ in range(len(ids) + 1):  # bounded: a keyset ignored would page forever
            page = await self.search(storage, order=by_queue, limit=2, after=after)
            if not page:
                break
            pages.append(page)
            [last] = await self._records(storage, page[-1:])
            after = (last.queue, last.id)
        assert pages == [[ids[2], ids[3]], [ids[0], ids[1]], [ids[4]]]
        descending = Order("queue", True)
        assert await self.search(storage, order=descending, after=("mail", ids[1])) == [ids[0], ids[3], ids[2]]
        assert await self.search(storage, order=Order(), after=(ids[1], ids[1])) == ids[2:]
        assert await self.search(storage, order=Order("id", True), after=(ids[1], ids[1])) == [ids[0]]
        high_first = Order("priority", True)  # 3 (2, 1), 1 (4, 0), 0 (3)
        assert await self.search(storage, order=high_first, after=(1, ids[4])) == [ids[0], ids[3]]
        # a datetime sort value: every job of one insert has the same created_at, so ties go by id
        records = await self._records(storage, ids)
        created = records[1].created_at
        assert await self.search(storage, order=Order("created_at"), after=(created, ids[1])) == ids[2:]
        condition = job.queue != "mail"
        assert await self.search(storage, condition, Order("created_at"), after=(created, ids[1])) == ids[2:]

    @staticmethod
    async def _records(storage: Storage, ids: list[int]) -> list[Any]:
        async with storage.transaction(readonly=True) as tx:
            return await tx.job_get_many(ids)

    async def test_search_and_lock_takes_only_unlocked_jobs(self, storage: Storage) -> None:
        ids = await self.insert(storage, *(new_job(queue="work") for _ in range(4)), new_job(queue="other"))
        await self.get(storage, ids[1], "someone")
        await self.get(storage, ids[2], "me")  # locked already, even by the requester: not taken again
        async with storage.transaction() as tx:
            first = await tx.job_search(JobSearch(job.queue == "work", Order(), limit=1, lock_requester="me"))
            rest = await tx.job_search(JobSearch(job.queue == "work", Order(), limit=10, lock_requester="me"))
            none_left = await tx.job_search(JobSearch(job.queue == "work", lock_requester="you"))
        assert [record.id for record in first] == [ids[0]]
        assert [record.id for record in rest] == [ids[3]]
        assert none_left == []
        for record in first + rest:
            assert record.lock_acquired and record.locked_by == "me"
            assert record.locked_at is not None and record.lock_heartbeat is not None
            assert [s.name for s in record.states] == ["Created", "Enqueued"]
        records = {record.id: record for record in await self._records(storage, ids)}
        assert [records[job_id].locked_by for job_id in ids] == ["me", "someone", "me", "me", None]
        async with storage.transaction() as tx:  # a lock taken by a search is a lock like any other
            saved = await tx.job_update(self._update(records[ids[0]], "me", new_states=(state_row(2, "Executing"),)))
            taken = await tx.job_get(JobGet(ids[3], lock_requester="someone"))
            released = await tx.job_lock_release(JobLockRelease(ids[3], "me"))
        assert saved.outcome is UpdateOutcome.SAVED
        assert taken is not None and not taken.lock_acquired
        assert released.released

    async def test_search_and_lock_skips_rows_other_transactions_hold(self, storage: Storage) -> None:
        if storage.capabilities.single_writer:
            pytest.skip("one writer at a time: a second locking search waits for the first transaction")
        ids = await self.insert(storage, new_job(), new_job(), new_job())
        async with storage.transaction() as first:
            mine = await first.job_search(JobSearch(None, Order(), limit=1, lock_requester="a"))
            assert [record.id for record in mine] == [ids[0]]

            async def second_search() -> list[int]:
                async with storage.transaction() as second:
                    found = await second.job_search(JobSearch(None, Order(), limit=10, lock_requester="b"))
                return [record.id for record in found]

            theirs = await asyncio.wait_for(second_search(), timeout=10)
        assert theirs == ids[1:], "the second search waited for or took a row the first transaction holds"
        records = await self._records(storage, ids)
        assert [record.locked_by for record in records] == ["a", "b", "b"]

    async def test_count(self, storage: Storage, storage_factory: StorageFactory) -> None:
        ids = await self._sample(storage)
        async with storage.transaction(readonly=True) as tx:
            assert await tx.job_count(None) == 5
            assert await tx.job_count(job.queue == "mail") == 2
            assert await tx.job_count(prop("tenant") == "acme") == 2
            assert await tx.job_count(state == "Idle") == 1
            assert await tx.job_count(past_state(state.name == "Created")) == 5
            assert await tx.job_count(past_state(state.name == "Enqueued")) == 0
            assert await tx.job_count(job.queue == "nowhere") == 0
            for condition in (prop("n") > 1, any_of(job.priority == 0, prop("n") == 1)):
                found = await tx.job_search(JobSearch(condition))
                assert await tx.job_count(condition) == len(found)
        record = await self.get(storage, ids[0], "me")
        async with storage.transaction() as tx:
            update = self._update(record, "me", new_states=(state_row(2, "Succeeded"),), release_lock=True)
            assert (await tx.job_update(update)).outcome is UpdateOutcome.SAVED
        async with storage.transaction(readonly=True) as tx:
            assert await tx.job_count(state == "Succeeded") == 1
            assert await tx.job_count(past_state(state.name == "Enqueued")) == 1
            assert await tx.job_count(None) == 5
        other = storage_factory("hm_other_")
        await other.open()
        try:
            async with other.transaction(readonly=True) as tx:
                assert await tx.job_count(None) == 0
                assert await tx.job_search(JobSearch()) == []
                assert await tx.job_queues(JobQueues()) == []
        finally:
            await other.close()

    async def test_queues_are_distinct_sorted_and_matched_by_literal_prefix(self, storage: Storage) -> None:
        names = ["mail_eu", "mailxus", "mail.us", "Mail_x", "billing", "reports", "mail_eu"]
        await self.insert(storage, *(new_job(queue=name) for name in names))

        async def queues(prefix: str | None = None, limit: int = 10_000) -> list[str]:
            async with storage.transaction(readonly=True) as tx:
                return await tx.job_queues(JobQueues(prefix, limit))

        # code point order, case-sensitive: "M" < "b" < "m"; "." < "_" < "x"
        assert await queues() == ["Mail_x", "billing", "mail.us", "mail_eu", "mailxus", "reports"]
        assert await queues("mail") == ["mail.us", "mail_eu", "mailxus"]
        assert await queues("mail_") == ["mail_eu"]  # "_" is a character, not a wildcard
        assert await queues("mail.") == ["mail.us"]
        assert await queues("Mail") == ["Mail_x"]
        for literal in ("%", "*", "mail%", "mail*", "\\", "m_il"):
            assert await queues(literal) == [], f"prefix {literal!r} is not a pattern"
        assert await queues("reports") == ["reports"]
        assert await queues("nothing") == []
        assert await queues(limit=2) == ["Mail_x", "billing"]
        assert await queues("mail", limit=1) == ["mail.us"]
