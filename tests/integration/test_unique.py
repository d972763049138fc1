"""Unique jobs on every backend: a second create answers the holder's id while the key is held."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

import hivemind_jobs as hm
from tests import backends
from tests import sample_jobs as jobs


async def test_a_second_create_answers_the_first_job(hive: hm.HiveMind) -> None:
    unique = hive.jobs.options(unique=hm.Unique())
    first = await unique.create(jobs.add, 1, b=3)
    assert await unique.create(jobs.add, 1, b=3) == first
    other = await unique.create(jobs.add, 2, b=3)  # other arguments: another key
    assert other != first
    assert await hive.jobs.create(jobs.add, 1, b=3) not in (first, other)  # without the option: no key
    assert await hive.jobs.count() == 3


async def test_a_finished_job_releases_its_key_unless_within_the_period(hive: hm.HiveMind) -> None:
    unique = hive.jobs.options(unique=hm.Unique())
    first = await unique.create(jobs.add, 1)
    assert await hive.jobs.change_state(first, hm.Succeeded(result=3))
    second = await unique.create(jobs.add, 1)
    assert second != first
    assert await unique.create(jobs.add, 1) == second

    period = hive.jobs.options(unique=hm.Unique(key="report", period=timedelta(hours=1)))
    held = await period.create(jobs.add, 5)
    assert await hive.jobs.change_state(held, hm.Succeeded(result=7))
    assert await period.create(jobs.add, 6) == held  # finished, but within the period


async def test_on_conflict_raise_names_the_holder(hive: hm.HiveMind) -> None:
    unique = hive.jobs.options(unique=hm.Unique(key="nightly", on_conflict="raise"))
    first = await unique.create(jobs.add, 1)
    with pytest.raises(hm.DuplicateJobError) as caught:
        await unique.create(jobs.add, 2)
    assert caught.value.job_id == first
    assert await hive.jobs.count() == 1


async def test_the_states_option_decides_when_the_key_is_held(hive: hm.HiveMind) -> None:
    unique = hive.jobs.options(unique=hm.Unique(key="sync-{a}", states=[hm.Enqueued]))
    first = await unique.create(jobs.add, 1)
    assert await unique.create(jobs.add, 1) == first
    assert await unique.create(jobs.add, 2) != first  # the key names the argument
    assert await hive.jobs.change_state(first, hm.Idle())  # not Enqueued: the key is free
    second = await unique.create(jobs.add, 1)
    assert second != first
    assert await unique.create(jobs.add, 1) == second


async def test_create_many_answers_holders_in_place(hive: hm.HiveMind) -> None:
    unique = hive.jobs.options(unique=hm.Unique())
    existing = await unique.create(jobs.add, 1)
    ids = await unique.create_many([hm.call(jobs.add, 2), hm.call(jobs.add, 1), hm.call(jobs.add, 2)])
    assert ids[1] == existing
    assert ids[2] == ids[0] != existing
    assert await hive.jobs.count() == 2


async def test_a_rolled_back_create_releases_the_key(hive: hm.HiveMind) -> None:
    class Rollback(Exception):
        pass

    with pytest.raises(Rollback):
        async with hive.transaction() as tx:
            created = await tx.jobs.options(unique=hm.Unique(key="k")).create(jobs.add, 1)
            assert await tx.jobs.options(unique=hm.Unique(key="k")).create(jobs.add, 2) == created
            raise Rollback
    assert await hive.jobs.count() == 0
    job_id = await hive.jobs.options(unique=hm.Unique(key="k")).create(jobs.add, 3)
    assert (await hive.jobs.get(job_id)).invocation.arguments == {"a": 3}


async def test_a_deleted_or_purged_job_releases_the_key(hive: hm.HiveMind, db_url: str) -> None:
    unique = hive.jobs.options(unique=hm.Unique(key="k"))
    first = await unique.create(jobs.add, 1)
    assert await hive.jobs.delete(first) == hm.DeleteResult.DELETED
    second = await unique.create(jobs.add, 1)
    assert second != first
    backends.raw(db_url, "DELETE FROM {queue} WHERE job_id = ?", second)
    backends.raw(db_url, "DELETE FROM {job_state} WHERE job_id = ?", second)
    backends.raw(db_url, "DELETE FROM {job} WHERE id = ?", second)  # gone without a state change
    third = await unique.create(jobs.add, 1)
    assert third not in (first, second)


async def test_the_election_path_honours_uniqueness(hive: hm.HiveMind) -> None:
    seen: list[int] = []
    unsubscribe = hive.mediator.subscribe(hm.JobSaved, lambda event: seen.append(event.job.id))
    unique = hive.jobs.options(unique=hm.Unique())
    first = await unique.create(jobs.add, 1)
    assert await unique.create(jobs.add, 1) == first
    assert await unique.create_many([hm.call(jobs.add, 1), hm.call(jobs.add, 4)]) == [first, first + 1]
    unsubscribe()
    assert seen == [first, first + 1]
    assert await hive.jobs.count() == 2


def test_bad_unique_options_are_refused() -> None:
    with pytest.raises(hm.ConfigurationError, match="period"):
        hm.Unique(period=timedelta(0))
    with pytest.raises(hm.ConfigurationError, match="on_conflict"):
        hm.Unique(on_conflict="replace")  # type: ignore[arg-type]
    with pytest.raises(hm.ConfigurationError, match="states"):
        hm.Unique(states=["NoSuchState"])


async def test_a_key_naming_an_unknown_argument_writes_nothing(hive: hm.HiveMind) -> None:
    with pytest.raises(hm.ConfigurationError, match="plain argument"):
        await hive.jobs.options(unique=hm.Unique(key="x-{nope}")).create(jobs.add, 1)
    assert await hive.jobs.count() == 0


async def test_concurrent_batches_sharing_keys_in_any_order_agree(hive: hm.HiveMind) -> None:
    unique = hive.jobs.options(unique=hm.Unique())
    calls = [hm.call(jobs.add, n) for n in range(6)]
    forward, backward = await asyncio.gather(unique.create_many(calls), unique.create_many(calls[::-1]))
    assert forward == backward[::-1]
    assert len(set(forward)) == 6
    assert await hive.jobs.count() == 6
