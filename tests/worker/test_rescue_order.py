"""A job rescued from an expired lock keeps its due time and priority, and max_rescues bounds its runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest_asyncio

import hivemind_jobs as hm
from hivemind_jobs.core.names import DEFAULT_QUEUE
from hivemind_jobs.daemons import rescue_expired_locks
from hivemind_jobs.lifecycle.machine import elect, save_locked_many
from hivemind_jobs.lifecycle.records import job_from_record
from hivemind_jobs.storage.protocol import QueueClaim, UpdateOutcome
from tests.worker import jobs
from tests.worker.conftest import colony_of

LOCK_TIMEOUT = timedelta(seconds=1)  # the smallest the options allow: expiring locks quickly
EXPIRED = LOCK_TIMEOUT.total_seconds() + 0.3
DEAD = "dead-worker:1:x"


@pytest_asyncio.fixture
async def rhive(db_url: str) -> AsyncIterator[hm.HiveMind]:
    options = hm.Options(lock_timeout=LOCK_TIMEOUT, retry=hm.RetryPolicy(max_retries=0))
    async with hm.HiveMind(db_url, options=options) as hive:
        yield hive


async def _claim_and_die(hive: hm.HiveMind, queue: str = DEFAULT_QUEUE) -> tuple[int, datetime] | None:
    """Claim the best due job of ``queue`` and move it to Executing the way a colony does, for a
    worker that then dies (never heartbeats): its lock expires after the lock timeout. Returns the
    job id and the due time of the entry it was claimed from (None: nothing was due)."""
    env = hive.env()
    async with env.jobs.unit_of_work() as scope:
        entries = await scope.tx.queue_claim(QueueClaim(((queue,),), 1, DEAD, with_records=True))
        if not entries:
            return None
        (entry,) = entries
        assert entry.record is not None
        job = job_from_record(entry.record, env.name, env.codec)
        executing = hm.Executing(colony="dead", swarm="main", drone="main.drone-1", due_at=entry.execute_after)
        assert await elect(job, executing, scope)
        (outcome,) = await save_locked_many([job], DEAD, scope, keep_lock=lambda _: True)
        assert outcome is UpdateOutcome.SAVED
    return entry.job_id, entry.execute_after


async def _rescue_one(hive: hm.HiveMind, max_rescues: int = 3) -> None:
    await asyncio.sleep(EXPIRED)
    assert await rescue_expired_locks(hive.env(), "monitor", max_rescues=max_rescues) == 1


async def test_a_rescued_job_runs_before_the_jobs_enqueued_since_it_was_due(rhive: hm.HiveMind) -> None:
    rescued = await rhive.jobs.create(jobs.note, "R")
    claimed = await _claim_and_die(rhive)
    assert claimed is not None and claimed[0] == rescued
    due = claimed[1]
    later = [await rhive.jobs.create(jobs.note, f"J{index}") for index in range(20)]
    await _rescue_one(rhive)

    job = await rhive.jobs.get(rescued)
    assert isinstance(job.state, hm.Enqueued) and job.locked_by is None
    assert job.state.delay_until == due  # due when it was first due, not at the rescue
    assert "rescue 1 of at most 3" in (job.state.reason or "")

    await colony_of(rhive, drones=1).run(burst=True)
    assert ["R", *(f"J{index}" for index in range(20))] == jobs.RAN
    for job_id in [rescued, *later]:
        assert isinstance((await rhive.jobs.get(job_id)).state, hm.Succeeded)


async def test_a_rescued_job_keeps_its_priority(rhive: hm.HiveMind) -> None:
    rescued = await rhive.jobs.options(priority=hm.Priority.LOW).create(jobs.note, "R")
    claimed = await _claim_and_die(rhive)
    assert claimed is not None and claimed[0] == rescued
    for index in range(5):
        await rhive.jobs.options(priority=hm.Priority.LOW).create(jobs.note, f"low{index}")
    for index in range(5):
        await rhive.jobs.options(priority=hm.Priority.HIGH).create(jobs.note, f"high{index}")
    await _rescue_one(rhive)

    job = await rhive.jobs.get(rescued)
    assert isinstance(job.state, hm.Enqueued) and job.priority is hm.Priority.LOW
    stats = {(stat.queue, stat.priority): stat.ready for stat in await rhive.jobs.queue_stats()}
    assert stats == {(DEFAULT_QUEUE, int(hm.Priority.HIGH)): 5, (DEFAULT_QUEUE, int(hm.Priority.LOW)): 6}

    await colony_of(rhive, drones=1).run(burst=True)
    # higher priorities still come first; among its own priority the rescued job is the oldest
    assert [*(f"high{index}" for index in range(5)), "R", *(f"low{index}" for index in range(5))] == jobs.RAN


async def test_a_job_whose_lock_keeps_expiring_runs_max_rescues_plus_one_times_then_fails_as_poison(
    rhive: hm.HiveMind,
) -> None:
    max_rescues = 2
    job_id = await rhive.jobs.create(jobs.note, "P")
    runs: list[datetime] = []
    for _ in range(max_rescues + 3):  # more chances than the documented number of runs
        claimed = await _claim_and_die(rhive)
        if claimed is None:
            break
        assert claimed[0] == job_id
        runs.append(claimed[1])
        await _rescue_one(rhive, max_rescues=max_rescues)
    assert len(runs) == max_rescues + 1
    assert len(set(runs)) == 1  # every rescue kept the first due time

    job = await rhive.jobs.get(job_id)
    assert isinstance(job.state, hm.Failed) and job.state.exception_type == "hivemind_jobs.PoisonJob"
    assert job.state.reason == "poison: lock expired in 3 runs, max_rescues=2 allows 3 runs"
    assert "runs at most 3 times" in (job.state.message or "")
    assert job.get_property(hm.colony.RESCUES_PROPERTY) == max_rescues + 1
    reasons = [state.reason or "" for state in job.states if isinstance(state, hm.Enqueued)][1:]
    assert [reason.split("(")[1] for reason in reasons] == [
        "rescue 1 of at most 2; expiry 3 fails it as poison)",
        "rescue 2 of at most 2; expiry 3 fails it as poison)",
    ]


async def test_max_rescues_zero_means_one_run(rhive: hm.HiveMind) -> None:
    job_id = await rhive.jobs.create(jobs.note, "once")
    assert await _claim_and_die(rhive) is not None
    await _rescue_one(rhive, max_rescues=0)
    job = await rhive.jobs.get(job_id)
    assert isinstance(job.state, hm.Failed)
    assert job.state.reason == "poison: lock expired in 1 run, max_rescues=0 allows 1 run"
    assert await _claim_and_die(rhive) is None


async def test_a_colony_records_the_due_time_it_claimed_a_job_at(rhive: hm.HiveMind) -> None:
    long_due = datetime.now().astimezone() - timedelta(hours=1)
    early = await rhive.jobs.options(delay_until=long_due).create(jobs.note, "early")
    now_due = await rhive.jobs.create(jobs.note, "now")
    await colony_of(rhive, drones=1).run(burst=True)
    assert jobs.RAN == ["early", "now"]

    (executing,) = [state for state in (await rhive.jobs.get(early)).states if isinstance(state, hm.Executing)]
    assert executing.due_at == long_due
    (executing,) = [state for state in (await rhive.jobs.get(now_due)).states if isinstance(state, hm.Executing)]
    assert executing.due_at is not None and executing.due_at > long_due


async def test_a_job_claimed_but_never_started_keeps_an_absolute_due_time(rhive: hm.HiveMind) -> None:
    long_due = datetime.now().astimezone() - timedelta(hours=1)
    job_id = await rhive.jobs.options(delay_until=long_due).create(jobs.note, "claimed")
    env = rhive.env()
    async with env.jobs.unit_of_work() as scope:  # claimed, and the claimer died before moving it to Executing
        assert len(await scope.tx.queue_claim(QueueClaim(((DEFAULT_QUEUE,),), 1, DEAD))) == 1
    await rhive.jobs.create(jobs.note, "later")
    await _rescue_one(rhive)
    job = await rhive.jobs.get(job_id)
    assert isinstance(job.state, hm.Enqueued) and job.state.delay_until == long_due
    await colony_of(rhive, drones=1).run(burst=True)
    assert jobs.RAN == ["claimed", "later"]
