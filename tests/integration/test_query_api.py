"""The query API on every backend: search-and-lock, bulk operations, limits and clear errors."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import hivemind_jobs as hm
from tests.sample_jobs import do_stuff


async def _create(hive: hm.HiveMind, count: int, **properties: hm.PropertyValue) -> list[int]:
    return await hive.jobs.options(properties=properties).create_many(hm.call(do_stuff) for _ in range(count))


async def test_search_and_lock_hands_out_disjoint_jobs_and_releases_them(hive: hm.HiveMind) -> None:
    ids = await _create(hive, 6, kind="mail")
    jobs = hive.jobs
    first = await jobs.search_and_lock(hm.prop("kind") == "mail", limit=4, requester="first")
    second = await jobs.search_and_lock(hm.prop("kind") == "mail", limit=4, requester="second")
    assert [job.id for job in first] == ids[:4]
    assert [job.id for job in second] == ids[4:]  # the locked ones are not handed out again
    assert [job.is_locked for job in first] == [True] * 4 and (await jobs.get(ids[0])).locked_by == "first"
    assert await jobs.count(hm.prop("kind") == "mail") == 6  # locked jobs are still found by searches
    async with first:
        saved = first[0]
        saved.set_property("done", True)
        await saved.save()
    await second.release()
    assert [(await jobs.get(job_id)).locked_by for job_id in ids] == [None] * 6
    assert (await jobs.get(ids[0])).get_property("done") is True
    again = await jobs.search_and_lock(hm.prop("kind") == "mail", limit=1000)
    assert len(again) == 6
    await again.release()


@pytest.mark.parametrize("backend_name", ["postgres", "mariadb"])  # SQLite has one writer at a time
async def test_search_and_lock_skips_rows_another_transaction_is_locking(hive: hm.HiveMind) -> None:
    assert not hive.jobs.environment.storage.capabilities.single_writer
    ids = await _create(hive, 4)
    async with hive.transaction() as tx:
        mine = await tx.jobs.search_and_lock(limit=2, requester="in-transaction")
        assert [job.id for job in mine] == ids[:2]
        # not committed yet: another locker skips the two rows instead of waiting for them
        theirs = await asyncio.wait_for(hive.jobs.search_and_lock(limit=4, requester="outside"), timeout=10)
        assert [job.id for job in theirs] == ids[2:]
        await theirs.release()
        await mine.release()


async def test_bulk_operations_run_in_batches_and_go_through_the_state_machine(hive: hm.HiveMind) -> None:
    ids = await _create(hive, 7, tenant="acme")
    other = await _create(hive, 2, tenant="other")
    jobs = hive.jobs
    busy = await jobs.try_lock(ids[1], "someone-else")
    assert busy is not None
    result = await jobs.delete_where(hm.prop("tenant") == "acme", reason="tenant left", batch_size=2)
    assert result == hm.BulkResult(changed=6, unchanged=0, batches=3)
    deleted = await jobs.search(hm.state == hm.Deleted, limit=100)
    assert [job.id for job in deleted] == [ids[0], *ids[2:]]
    assert all(job.state.reason == "tenant left" for job in deleted)
    assert isinstance((await jobs.get(ids[1])).state, hm.Enqueued)  # locked by someone else: skipped
    await busy.release()
    assert (await jobs.delete_where(hm.prop("tenant") == "acme")) == hm.BulkResult(1, 6, 1)  # the rest are deleted

    moved = await jobs.requeue_where(hm.state == hm.Deleted, queue="again", priority=hm.Priority.HIGH)
    assert moved.changed == 7
    stats = {(stat.queue, stat.priority): stat.ready for stat in await jobs.queue_stats()}
    assert stats[("again", hm.Priority.HIGH)] == 7
    assert await jobs.count(hm.where(hm.job.queue == "again", hm.state == hm.Enqueued)) == 7

    tagged = await jobs.set_property_where(hm.job.queue == "again", "batch", 7, batch_size=3)
    assert tagged == hm.BulkResult(7, 0, 3)
    assert await jobs.count(hm.prop("batch") == 7) == 7
    assert (await jobs.set_property_where(hm.job.queue == "again", "batch", 7)).changed == 0  # already so
    assert (await jobs.set_property_where(hm.prop("batch").exists(), "batch", None)).changed == 7
    assert await jobs.count(hm.prop("batch").exists()) == 0

    idle = await jobs.change_state_where(hm.job.id.in_(other), hm.Idle(reason="paused"))
    assert idle.changed == 2
    assert [job.state.name for job in await jobs.search(hm.job.id.in_(other))] == ["Idle", "Idle"]
    assert (await jobs.delete_where(hm.job.id.in_([]))) == hm.BulkResult(0, 0, 0)


async def test_each_batch_of_a_bulk_operation_is_its_own_transaction(hive: hm.HiveMind) -> None:
    ids = await _create(hive, 6)
    poisoned = ids[3]

    def refuse(request: hm.StateElection) -> hm.State | None:
        if request.job.id == poisoned:
            raise RuntimeError("refused")
        return None

    remove = hive.mediator.add_request_handler(hm.StateElection, refuse)
    try:
        with pytest.raises(RuntimeError, match="refused"):
            await hive.jobs.delete_where(None, batch_size=2)
    finally:
        remove()
    states = [(await hive.jobs.get(job_id)).state.name for job_id in ids]
    # batches [0,1] committed; the batch [2,3] rolled back whole; [4,5] never reached
    assert states == ["Deleted", "Deleted", "Enqueued", "Enqueued", "Enqueued", "Enqueued"]
    assert [(await hive.jobs.get(job_id)).locked_by for job_id in ids] == [None] * 6


async def test_searches_see_the_jobs_of_their_own_transaction(hive: hm.HiveMind) -> None:
    async with hive.transaction() as tx:
        created = await tx.jobs.options(properties={"draft": True}).create(do_stuff)
        assert [job.id for job in await tx.jobs.search(hm.prop("draft") == True)] == [created]  # noqa: E712
        assert await tx.jobs.count(hm.prop("draft") == True) == 1  # noqa: E712
        await tx.rollback()
    assert await hive.jobs.count() == 0


async def test_queue_names_by_prefix_treat_wildcard_characters_literally(hive: hm.HiveMind) -> None:
    for queue in ("a_b", "axb", "a-c", "b"):
        await hive.jobs.options(queue=queue).create(do_stuff)
    assert await hive.jobs.queues() == ["a-c", "a_b", "axb", "b"]
    assert await hive.jobs.queues("a_") == ["a_b"]
    assert await hive.jobs.queues("a%") == []
    assert await hive.jobs.queues("c") == []


async def test_pages_and_cursors(hive: hm.HiveMind) -> None:
    ids = await _create(hive, 5)
    jobs = hive.jobs
    assert [job.id for job in await jobs.search(limit=2, page=3)] == ids[4:]
    first = await jobs.search(order_by="-id", limit=2)
    assert [job.id for job in first] == ids[:2:-1][:2] and first.next_cursor is not None
    second = await jobs.search(order_by="-id", limit=2, after=first.next_cursor)
    assert [job.id for job in second] == [ids[2], ids[1]]
    last = await jobs.search(order_by="-id", limit=2, after=second.next_cursor)
    assert [job.id for job in last] == [ids[0]] and last.next_cursor is None
    full_last = await jobs.search(order_by="id", limit=2, after=(await jobs.search(limit=3)).next_cursor)
    assert [job.id for job in full_last] == ids[3:] and full_last.next_cursor is None
    assert (await jobs.search(limit=5)).next_cursor is None
    assert (await jobs.search(limit=4)).next_cursor is not None
    with pytest.raises(hm.QueryError, match="belongs to order_by '-id'"):
        await jobs.search(order_by="created", after=first.next_cursor)
    with pytest.raises(hm.QueryError, match="not a cursor"):
        await jobs.search(after="definitely-not-a-cursor")
    with pytest.raises(hm.QueryError, match="either page= or after="):
        await jobs.search(page=2, after=first.next_cursor)
    with pytest.raises(hm.QueryError, match="has no cursor"):
        await jobs.search(order_by="property:x", after=first.next_cursor)
    assert (await jobs.search(order_by="property:x", limit=5)).next_cursor is None


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda jobs: jobs.search(limit=10_001), "limit must be a whole number from 1 to 10000"),
        (lambda jobs: jobs.search(limit=0), "limit must be"),
        (lambda jobs: jobs.search(limit=True), "limit must be"),
        (lambda jobs: jobs.search(page=0), "page must be"),
        (lambda jobs: jobs.search(page=20_000, limit=100), "continue from a cursor"),
        (lambda jobs: jobs.search(order_by="colour"), "cannot order by 'colour'"),
        (lambda jobs: jobs.search(order_by="property:no spaces"), "invalid property name"),
        (lambda jobs: jobs.search("state == Failed"), "expected a query"),  # type: ignore[arg-type]
        (lambda jobs: jobs.search_and_lock(limit=1001), "limit must be a whole number from 1 to 1000"),
        (lambda jobs: jobs.delete_where(None, batch_size=5000), "batch_size must be"),
        (lambda jobs: jobs.change_state_where(None, hm.Idle), "State instance"),  # type: ignore[arg-type]
        (lambda jobs: jobs.queues("a\x00"), "NUL"),
    ],
)
async def test_limits_and_bad_arguments_are_clear_errors(hive: hm.HiveMind, call: object, message: str) -> None:
    with pytest.raises(hm.QueryError, match=message):
        await call(hive.jobs)  # type: ignore[operator]


def test_conditions_are_checked_when_built() -> None:
    cases = [
        (lambda: hm.prop("no spaces") == 1, "invalid property name"),
        (lambda: hm.prop("x") == None, "None is not a value"),  # noqa: E711
        (lambda: hm.prop("x") == [1], "cannot compare with list"),
        (lambda: hm.prop("x") == float("nan"), "finite number"),
        (lambda: hm.prop("x") == 2**63, "64-bit"),
        (lambda: hm.prop("x") == "y" * 4001, "longer than 4000"),
        (lambda: hm.prop("x") == "\ud800", "not valid Unicode"),
        (lambda: hm.prop("x").in_(range(1001)), "at most 1000 values"),
        (lambda: hm.prop("x").in_([1, "1"]), "mixes value types"),
        (lambda: hm.prop("x").in_("abc"), "list of values"),
        (lambda: hm.prop("x").like("a\\"), "lone backslash"),
        (lambda: hm.job.created_at > datetime(2026, 1, 1), "naive datetime"),
        (lambda: hm.job.priority == "urgent", "invalid priority"),
        (lambda: hm.job.queue == 1, "compares with text"),
        (lambda: hm.state == "not a state!", "invalid state name"),
        (lambda: hm.state.field("no-dash") == "x", "Python identifier"),
        (lambda: hm.past_state(hm.prop("x") == 1), "past_state"),
        (lambda: hm.past_state(hm.past_state(hm.state == hm.Failed)), "cannot be nested"),
        (lambda: hm.where(*(hm.prop("x") == n for n in range(201))), "at most 200 conditions"),
        (lambda: hm.where("tenant"), "expected a query condition"),  # type: ignore[arg-type]
    ]
    for build, message in cases:
        with pytest.raises(hm.QueryError, match=message):
            build()
    with pytest.raises(hm.QueryError, match="no truth value"):
        bool(hm.prop("x") == 1)
    assert isinstance(hm.prop("when") > datetime.now(UTC), hm.Condition)


def test_the_blocking_facade_queries_too(tmp_path: Path) -> None:
    with hm.SyncHiveMind(f"sqlite:///{tmp_path / 'sync.db'}") as hive:
        ids = [hive.jobs.options(properties={"n": n}).create(do_stuff) for n in range(4)]
        assert hive.jobs.count(hm.prop("n") >= 2) == 2
        assert [job.id for job in hive.jobs.search(order_by="-property:n", limit=2)] == [ids[3], ids[2]]
        locked = hive.jobs.search_and_lock(hm.prop("n") < 2, limit=10)
        assert [job.id for job in locked] == ids[:2]
        for job in locked:
            job.release()
        assert hive.jobs.delete_where(hm.prop("n") == 0).changed == 1
        assert hive.jobs.queues() == ["global"]
        assert hive.jobs.count(hm.job.created_at > datetime.now(UTC) + timedelta(days=1)) == 0
