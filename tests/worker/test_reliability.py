"""Retries, cancellation of running jobs, graceful shutdown and rescue of expired locks."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import timedelta

import hivemind_jobs as hm
from hivemind_jobs.daemons import rescue_expired_locks
from tests.worker import jobs
from tests.worker.conftest import ALLOW, FAST, colony_of


async def _until(condition, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def _state_is(hive: hm.HiveMind, job_id: int, kind: type[hm.State]) -> bool:
    return isinstance((await hive.jobs.get(job_id)).state, kind)


async def test_retries_follow_the_policy_delays_and_are_counted(whive: hm.HiveMind) -> None:
    policy = hm.RetryPolicy(max_retries=3, delays=[timedelta(milliseconds=300), timedelta(milliseconds=600)])
    job_id = await whive.jobs.options(retry=policy).create(jobs.flaky, 2)
    async with colony_of(whive, drones=1):
        await _until(lambda: _state_is(whive, job_id, hm.Succeeded), timeout=8)
    job = await whive.jobs.get(job_id)
    assert job.state.result == 3  # type: ignore[attr-defined]
    assert job.get_property(hm.colony.RETRIES_PROPERTY) == 2
    names = [state.name for state in job.states]
    assert names == [
        "Created", "Enqueued", "Executing", "Failed", "Enqueued", "Executing", "Failed", "Enqueued", "Executing",
        "Succeeded",
    ]  # fmt: skip
    retry_enqueued = [state for state in job.states if isinstance(state, hm.Enqueued)][1:]
    assert [state.reason for state in retry_enqueued] == ["retry 1 of 3 in 0.3 s", "retry 2 of 3 in 0.6 s"]
    attempts = [moment for (_, _, moment) in jobs.RAN]
    assert attempts[1] - attempts[0] >= 0.3
    assert attempts[2] - attempts[1] >= 0.6


async def test_a_job_fails_for_good_when_retries_run_out(whive: hm.HiveMind) -> None:
    policy = hm.RetryPolicy(max_retries=1, delays=[timedelta(milliseconds=100)])
    job_id = await whive.jobs.options(retry=policy).create(jobs.flaky, 5)
    async with colony_of(whive, drones=1):
        await _until(
            lambda: _state_is(whive, job_id, hm.Failed) if len(jobs.RAN) >= 2 else asyncio.sleep(0, result=False),
            timeout=5,
        )
    job = await whive.jobs.get(job_id)
    assert isinstance(job.state, hm.Failed) and job.state.reason == "gave up after 1 retries"
    assert len(jobs.RAN) == 2


async def test_cancelling_a_running_async_job_reaches_its_drone(whive: hm.HiveMind) -> None:
    job_id = await whive.jobs.create(jobs.sleeper, 30.0)
    async with colony_of(whive, drones=1):
        await _until(lambda: _state_is(whive, job_id, hm.Executing))
        asked = time.monotonic()
        assert await whive.jobs.cancel(job_id, reason="no longer needed") is hm.CancelResult.REQUESTED
        await _until(lambda: _state_is(whive, job_id, hm.Idle))
        took = time.monotonic() - asked
    job = await whive.jobs.get(job_id)
    assert job.state.reason == "no longer needed" and job.locked_by is None
    assert took < 1.5
    assert ("slept", 30.0) not in jobs.RAN


async def test_deleting_a_running_sync_job_stops_it_cooperatively(whive: hm.HiveMind) -> None:
    job_id = await whive.jobs.create(jobs.sync_sleeper, 30.0)
    async with colony_of(whive, drones=1):
        await _until(lambda: _state_is(whive, job_id, hm.Executing))
        assert await whive.jobs.delete(job_id) is hm.DeleteResult.REQUESTED
        await _until(lambda: _state_is(whive, job_id, hm.Deleted))
    assert (await whive.jobs.get(job_id)).locked_by is None


async def test_graceful_stop_lets_short_jobs_finish_and_requeues_long_ones(whive: hm.HiveMind) -> None:
    short = await whive.jobs.create(jobs.sleeper, 0.3)
    long = await whive.jobs.create(jobs.sleeper, 30.0)
    colony = colony_of(whive, drones=2, graceful_stop=timedelta(seconds=1))
    async with colony:
        await _until(lambda: _state_is(whive, long, hm.Executing))
        await _until(lambda: _state_is(whive, short, hm.Executing))
        stop_asked = time.monotonic()
        colony.stop()
    stopped_in = time.monotonic() - stop_asked
    assert 0.9 <= stopped_in < 4
    assert isinstance((await whive.jobs.get(short)).state, hm.Succeeded)
    long_job = await whive.jobs.get(long)
    assert isinstance(long_job.state, hm.Enqueued) and "shutdown" in (long_job.state.reason or "")
    assert long_job.get_property(hm.colony.RETRIES_PROPERTY) is None
    assert long_job.locked_by is None
    assert colony.status == hm.ColonyStatus.STOPPED


async def _orphan(hive: hm.HiveMind, job_id: int) -> None:
    """Make ``job_id`` look like a job whose worker died while running it."""
    locked = await hive.jobs.try_lock(job_id, "dead-colony")
    assert locked is not None
    await locked.change_state(hm.Executing(colony="dead", swarm="main", drone="main.drone-1"))
    await locked.save(keep_lock=True)


async def test_the_lock_monitor_rescues_orphans_and_fails_poison_jobs(whive: hm.HiveMind) -> None:
    job_id = await whive.jobs.create(jobs.note, "orphan")
    rescued: list[tuple[int, str, bool, str]] = []
    whive.mediator.subscribe(
        hm.JobRescued, lambda event: rescued.append((event.job.id, event.colony, event.poison, event.job.state.name))
    )
    for rescue in range(1, 5):
        await _orphan(whive, job_id)
        assert await rescue_expired_locks(whive.env(), "monitor", max_rescues=3) == 0  # the lock is still fresh
        await asyncio.sleep(2.1)  # the environment's lock timeout is 2 s
        assert await rescue_expired_locks(whive.env(), "monitor", max_rescues=3) == 1
        job = await whive.jobs.get(job_id)
        assert job.get_property(hm.colony.RESCUES_PROPERTY) == rescue
        assert job.locked_by is None
        if rescue <= 3:
            assert isinstance(job.state, hm.Enqueued) and "rescued" in (job.state.reason or "")
        else:
            assert isinstance(job.state, hm.Failed) and (job.state.reason or "").startswith("poison")
    # one event per rescue, after it was written: three enqueued again, then the poison failure
    assert rescued == [(job_id, "dead", False, "Enqueued")] * 3 + [(job_id, "dead", True, "Failed")]


async def test_a_running_colony_rescues_and_reruns_an_orphan(whive: hm.HiveMind) -> None:
    job_id = await whive.jobs.create(jobs.note, "rescued")
    await _orphan(whive, job_id)
    colony = whive.colony(name="rescuer", allow=ALLOW, options=FAST)
    colony.swarm("main", drones=1)
    async with colony:
        await _until(lambda: _state_is(whive, job_id, hm.Succeeded), timeout=6)
    assert jobs.RAN == ["rescued"]
    assert colony.rescued == 1


async def test_shutdown_is_bounded_when_the_database_is_gone(whive: hm.HiveMind) -> None:
    job_id = await whive.jobs.create(jobs.sleeper, 30.0)
    colony = colony_of(whive, drones=1, graceful_stop=timedelta(milliseconds=300))
    colony.options = dataclasses.replace(colony.options, shutdown_write_timeout=timedelta(milliseconds=500))
    async with colony:
        await _until(lambda: _state_is(whive, job_id, hm.Executing))
        await whive.env().storage.close()  # every write from now on fails
        stop_asked = time.monotonic()
        colony.stop()
    took = time.monotonic() - stop_asked
    assert took < 0.3 + 0.5 * 3 + 1.5  # grace, then each bounded write step
    assert colony.status == hm.ColonyStatus.STOPPED
    await whive.env().storage.open()
    job = await whive.jobs.get(job_id)
    assert isinstance(job.state, hm.Executing) and job.locked_by == colony.id  # the lock monitor rescues it later
