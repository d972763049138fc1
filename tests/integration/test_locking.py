"""Locks: get-with-lock, try-lock, wait-for-lock, heartbeats, fenced saves, cancel and delete."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

import hivemind_jobs as hm
from hivemind_jobs.storage.protocol import JobActionList
from tests import backends
from tests import sample_jobs as jobs


async def test_get_with_lock_change_state_and_save(hive: hm.HiveMind) -> None:
    job_id = await hive.jobs.options(state=hm.Idle()).create(jobs.do_stuff)
    async with hive.jobs.get_with_lock(job_id, requester="SomeProcessId") as job:
        assert job.is_locked and job.holder == "SomeProcessId"
        assert (await hive.jobs.get(job_id)).locked_by == "SomeProcessId"
        assert await job.change_state(hm.Enqueued(reason="manually enqueued"))
        await job.save(keep_lock=False)
        assert not job.is_locked
    stored = await hive.jobs.get(job_id)
    assert isinstance(stored.state, hm.Enqueued) and stored.state.reason == "manually enqueued"
    assert stored.locked_by is None
    assert [(s.queue, s.ready) for s in await hive.jobs.queue_stats()] == [("global", 1)]


async def test_lock_is_exclusive(hive: hm.HiveMind) -> None:
    job_id = await hive.jobs.create(jobs.do_stuff)
    holder = await hive.jobs.get_with_lock(job_id, requester="a")
    with pytest.raises(hm.JobLockedError, match="locked by 'a'") as raised:
        await hive.jobs.get_with_lock(job_id, requester="b")
    assert raised.value.holder == "a"
    assert await hive.jobs.try_lock(job_id, "b") is None
    again = await hive.jobs.try_lock(job_id, "a")  # the same requester may lock again
    assert again is not None
    await holder.release()
    other = await hive.jobs.try_lock(job_id, "b")
    assert other is not None and other.holder == "b"
    await other.release()


async def test_missing_job_raises_not_found(hive: hm.HiveMind) -> None:
    with pytest.raises(hm.JobNotFoundError, match="does not exist in environment 'main'"):
        await hive.jobs.get(12345)
    assert await hive.jobs.try_get(12345) is None
    with pytest.raises(hm.JobNotFoundError):
        await hive.jobs.try_lock(12345)
    with pytest.raises(hm.ConfigurationError):
        await hive.jobs.get(0)


async def test_wait_for_lock_gets_the_lock_once_released(hive: hm.HiveMind) -> None:
    job_id = await hive.jobs.create(jobs.do_stuff)
    holder = await hive.jobs.get_with_lock(job_id, requester="first")

    async def release_soon() -> None:
        await asyncio.sleep(0.2)
        await holder.release()

    releaser = asyncio.create_task(release_soon())
    locked = await hive.jobs.wait_for_lock(job_id, "second", timeout=5, poll_interval=0.05)
    await releaser
    assert locked.holder == "second"
    with pytest.raises(hm.JobLockTimeoutError):
        await hive.jobs.wait_for_lock(job_id, "third", timeout=0.2, poll_interval=0.05)
    await locked.release()


async def test_properties_queue_and_priority_change_under_lock(hive: hm.HiveMind) -> None:
    job_id = await hive.jobs.options(properties={"keep": 1, "drop": "x"}).create(jobs.do_stuff)
    async with hive.jobs.get_with_lock(job_id) as job:
        job.set_property("keep", 2)
        job.set_property("added", True)
        job.remove_property("drop")
        job.move(queue="elsewhere", priority=hm.Priority.CRITICAL)
        await job.save()
    stored = await hive.jobs.get(job_id)
    assert stored.properties == {"keep": 2, "added": True}
    assert (stored.queue, stored.priority) == ("elsewhere", hm.Priority.CRITICAL)
    assert [(s.queue, s.priority) for s in await hive.jobs.queue_stats()] == [("elsewhere", 0)]


async def test_unsaved_changes_are_discarded_on_release(hive: hm.HiveMind, caplog: pytest.LogCaptureFixture) -> None:
    job_id = await hive.jobs.create(jobs.do_stuff)
    async with hive.jobs.get_with_lock(job_id) as job:
        job.set_property("lost", 1)
    assert "unsaved changes were discarded" in caplog.text
    assert (await hive.jobs.get(job_id)).properties == {}
    with pytest.raises(hm.JobLockReleasedError):
        job.set_property("after", 1)
    with pytest.raises(RuntimeError):
        async with hive.jobs.get_with_lock(job_id) as job:
            await job.change_state(hm.Idle())
            raise RuntimeError("abort")
    stored = await hive.jobs.get(job_id)
    assert isinstance(stored.state, hm.Enqueued) and stored.locked_by is None


async def test_save_keeping_the_lock_then_heartbeat(hive: hm.HiveMind) -> None:
    job_id = await hive.jobs.create(jobs.do_stuff)
    job = await hive.jobs.get_with_lock(job_id, requester="worker")
    job.set_property("step", 1)
    await job.save(keep_lock=True)
    assert job.is_locked and (await hive.jobs.get(job_id)).locked_by == "worker"
    await job.heartbeat()
    job.set_property("step", 2)
    await job.save()
    stored = await hive.jobs.get(job_id)
    assert stored.properties == {"step": 2} and stored.locked_by is None
    with pytest.raises(hm.JobLockReleasedError):
        await job.save()


async def test_expired_lock_cannot_save(db_url: str) -> None:
    options = hm.Options(lock_timeout=timedelta(seconds=1))
    async with hm.HiveMind(db_url, options=options) as hive:
        job_id = await hive.jobs.create(jobs.do_stuff)
        job = await hive.jobs.get_with_lock(job_id, requester="slow")
        await job.change_state(hm.Idle())
        await asyncio.sleep(1.2)
        with pytest.raises(hm.JobLockStaleError, match="expired"):
            await job.save()
        stored = await hive.jobs.get(job_id)
        assert isinstance(stored.state, hm.Enqueued)  # nothing was written
        with pytest.raises(hm.JobLockStaleError):
            await job.heartbeat()


async def test_a_lock_taken_over_cannot_save(hive: hm.HiveMind, db_url: str) -> None:
    job_id = await hive.jobs.create(jobs.do_stuff)
    job = await hive.jobs.get_with_lock(job_id, requester="old")
    backends.raw(db_url, "UPDATE {job} SET locked_by = ? WHERE id = ?", "monitor", job_id)  # as the lock monitor would
    await job.change_state(hm.Idle())
    with pytest.raises(hm.JobLockStaleError, match="no longer holds"):
        await job.save()


async def test_change_state_convenience(hive: hm.HiveMind) -> None:
    job_id = await hive.jobs.create(jobs.do_stuff)
    assert await hive.jobs.change_state(job_id, hm.Idle(reason="pause"))
    assert isinstance((await hive.jobs.get(job_id)).state, hm.Idle)
    holder = await hive.jobs.get_with_lock(job_id, "holder")
    with pytest.raises(hm.JobLockedError):
        await hive.jobs.change_state(job_id, hm.Enqueued())
    await holder.release()


async def test_cancel(hive: hm.HiveMind) -> None:
    waiting = await hive.jobs.create(jobs.do_stuff)
    assert await hive.jobs.cancel(waiting, reason="not needed") is hm.CancelResult.CANCELLED
    job = await hive.jobs.get(waiting)
    assert isinstance(job.state, hm.Idle) and job.state.reason == "not needed"
    assert await hive.jobs.queue_stats() == []
    assert await hive.jobs.cancel(waiting) is hm.CancelResult.NOT_CANCELLABLE

    running = await hive.jobs.create(jobs.do_stuff)
    drone = await hive.jobs.get_with_lock(running, requester="drone-1")
    await drone.change_state(hm.Executing(colony="c", swarm="s", drone="d"))
    await drone.save(keep_lock=True)
    assert await hive.jobs.cancel(running, reason="stop it") is hm.CancelResult.REQUESTED
    async with hive.env().storage.transaction(readonly=True) as tx:
        [action] = await tx.job_action_list(JobActionList((running,)))
    assert action.kind == "stop" and '"state": "Idle"' in action.payload and "stop it" in action.payload
    assert action.execution_id == str(drone.job.execution_id)


async def test_delete_is_soft_and_works_from_finished_states(hive: hm.HiveMind) -> None:
    job_id = await hive.jobs.options(state=hm.Succeeded(result=1)).create(jobs.do_stuff)
    assert await hive.jobs.delete(job_id, reason="cleanup") is hm.DeleteResult.DELETED
    job = await hive.jobs.get(job_id)
    assert isinstance(job.state, hm.Deleted) and job.state.reason == "cleanup"
    assert await hive.jobs.delete(job_id) is hm.DeleteResult.ALREADY_DELETED
    user_locked = await hive.jobs.options(state=hm.Idle()).create(jobs.do_stuff)
    holder = await hive.jobs.get_with_lock(user_locked, "user")
    with pytest.raises(hm.JobLockedError):
        await hive.jobs.delete(user_locked)
    await holder.release()
