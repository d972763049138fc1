"""Concurrency and rate limits through the job client, on every backend: the limits each create
stores (keys filled from properties and arguments, defaults per function and per queue), limits
with unique jobs, bad keys refused before anything is written, and a colony that keeps them."""

from __future__ import annotations

from datetime import timedelta

import pytest

import hivemind_jobs as hm
from hivemind_jobs.core.throttle import JobLimits
from tests import backends
from tests import sample_jobs as jobs

LIMIT_COLUMNS = "SELECT id, limit_key, limit_max, rate_key, rate_max, rate_period FROM {job} ORDER BY id"


def stored(db_url: str) -> dict[int, tuple[object, ...]]:
    return {row[0]: tuple(row[1:]) for row in backends.raw(db_url, LIMIT_COLUMNS)}


async def test_each_create_stores_its_jobs_limits(hive: hm.HiveMind, db_url: str) -> None:
    tenant = hive.jobs.options(
        properties={"TenantId": 42},
        concurrency=hm.Limit(key="tenant:{TenantId}", max=2),
        rate_limit=hm.RateLimit(max=10, per=timedelta(minutes=1), key="{function}/{a}"),
    )
    one = await tenant.create(jobs.add, 1, b=3)
    many = await tenant.create_many([hm.call(jobs.add, 5), hm.call(jobs.add, 6)])
    per_function = await hive.jobs.options(concurrency=hm.Limit(max=1)).create(jobs.hello_world, "x")
    plain = await hive.jobs.create(jobs.add, 1)
    rows = stored(db_url)
    assert rows[one] == ("tenant:42", 2, "tests.sample_jobs:add/1", 10, 60_000)
    assert [rows[job_id][2] for job_id in many] == ["tests.sample_jobs:add/5", "tests.sample_jobs:add/6"]
    assert rows[per_function] == ("function:tests.sample_jobs:hello_world", 1, None, None, None)
    assert rows[plain] == (None, None, None, None, None)
    # none of it changes what a job is: it is Enqueued as usual
    assert await hive.jobs.count_by_state() == {"Enqueued": 5}


async def test_queue_limits_apply_to_jobs_without_their_own(db_url: str) -> None:
    options = hm.Options(
        queue_limits={
            "reports": hm.Limit(max=3),
            "mail": (hm.Limit(max=1, key="smtp"), hm.RateLimit(max=100, per=timedelta(seconds=1))),
        }
    )
    async with hm.HiveMind(db_url, options=options) as hive:
        report = await hive.jobs.options(queue="reports").create(jobs.add, 1)
        own = await hive.jobs.options(queue="reports", concurrency=hm.Limit(max=9, key="mine")).create(jobs.add, 2)
        mail = await hive.jobs.options(queue="mail").create(jobs.add, 3)
        other = await hive.jobs.options(queue="other").create(jobs.add, 4)
    rows = stored(db_url)
    assert rows[report] == ("queue:reports", 3, None, None, None)
    assert rows[own] == ("mine", 9, None, None, None)
    assert rows[mail] == ("smtp", 1, "queue:mail", 100, 1000)
    assert rows[other] == (None, None, None, None, None)


async def test_unique_and_limited_jobs_store_limits_once(hive: hm.HiveMind, db_url: str) -> None:
    both = hive.jobs.options(unique=hm.Unique(), concurrency=hm.Limit(max=1, key="k"))
    first = await both.create(jobs.add, 1)
    ids = await both.create_many([hm.call(jobs.add, 1), hm.call(jobs.add, 2)])
    assert ids[0] == first
    rows = stored(db_url)
    assert set(rows) == {first, ids[1]}
    assert rows[first] == rows[ids[1]] == ("k", 1, None, None, None)


async def test_bad_limits_are_refused_before_anything_is_written(hive: hm.HiveMind) -> None:
    with pytest.raises(hm.ConfigurationError, match="names 'tenant'"):
        await hive.jobs.options(concurrency=hm.Limit(max=1, key="{tenant}")).create_many(
            [hm.call(jobs.add, 1), hm.call(jobs.add, 2)]
        )
    with pytest.raises(hm.ConfigurationError, match="must be 1 to 200 characters"):
        await hive.jobs.options(rate_limit=hm.RateLimit(max=1, key="{message}")).create(jobs.hello_world, "x" * 300)
    with pytest.raises(hm.ConfigurationError, match=r"concurrency must be hivemind_jobs\.Limit"):
        hive.jobs.options(concurrency=hm.RateLimit(max=1))  # type: ignore[arg-type]
    with pytest.raises(hm.ConfigurationError, match=r"rate_limit must be hivemind_jobs\.RateLimit"):
        hive.jobs.options(rate_limit=hm.Limit(max=1))  # type: ignore[arg-type]
    assert await hive.jobs.count() == 0


async def test_a_colony_keeps_the_limits_and_runs_the_rest(hive: hm.HiveMind) -> None:
    jobs.TRACKED.clear()
    limited = hive.jobs.options(concurrency=hm.Limit(max=2, key="slow"))
    slow = await limited.create_many([hm.call(jobs.tracked_sleep, "slow", 0.2) for _ in range(5)])
    free = await hive.jobs.create_many([hm.call(jobs.tracked_sleep, "free", 0.2) for _ in range(4)])
    colony = hive.colony(name="limits", allow=hm.AllowList(modules=["tests.sample_jobs"]))
    colony.swarm("main", drones=8)
    await colony.run(burst=True)
    for job_id in [*slow, *free]:
        assert isinstance((await hive.jobs.get(job_id)).state, hm.Succeeded)
    assert jobs.TRACKED["slow"][1] == 2  # two at a time, never three
    assert jobs.TRACKED["free"][1] == 4  # the limited jobs ahead in the queue held none of them back


def test_the_sync_facade_takes_the_same_options(tmp_path: object) -> None:
    with hm.SyncHiveMind(f"sqlite:///{tmp_path}/sync.db") as hive:
        job_id = hive.jobs.options(concurrency=hm.Limit(max=1, key="sync")).create(jobs.add, 1)
        assert hive.jobs.get(job_id).state.name == "Enqueued"
    rows = backends.raw(f"sqlite:///{tmp_path}/sync.db", "SELECT limit_key, limit_max FROM {job}")
    assert rows == [("sync", 1)]


async def test_recurring_occurrences_get_the_limits_of_their_recurring_job(db_url: str) -> None:
    options = hm.Options(queue_limits={"reports": hm.RateLimit(max=4, per=timedelta(hours=1))})
    async with hm.HiveMind(db_url, options=options) as hive:
        limited = hive.recurring.options(concurrency=hm.Limit(max=1, key="nightly-{a}"))
        assert await limited.create_or_update("nightly", hm.every(hours=1), jobs.add, 3)
        assert await hive.recurring.options(queue="reports").create_or_update("report", hm.every(hours=1), jobs.add, 4)
        assert await hive.recurring.create_or_update("plain", hm.every(hours=1), jobs.add, 5)
        nightly = await hive.recurring.trigger("nightly")
        report = await hive.recurring.trigger("report")
        plain = await hive.recurring.trigger("plain")
        # stored with the definition: read back, updated without limits, it has none
        assert (await hive.recurring.get("nightly")).definition.limits == JobLimits("nightly-3", 1)
        with pytest.raises(hm.ConfigurationError, match="names 'missing'"):
            await hive.recurring.options(concurrency=hm.Limit(max=1, key="{missing}")).create_or_update(
                "broken", hm.every(hours=1), jobs.add, 1
            )
        assert await hive.recurring.try_get("broken") is None
    rows = stored(db_url)
    assert rows[nightly] == ("nightly-3", 1, None, None, None)
    assert rows[report] == (None, None, "queue:reports", 4, 3_600_000)
    assert rows[plain] == (None, None, None, None, None)
