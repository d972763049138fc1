"""The blocking facade: the same names for code without an event loop."""

from __future__ import annotations

import asyncio

import pytest

import hivemind_jobs as hm
from tests import sample_jobs as jobs


def test_blocking_facade_mirrors_the_async_api(db_url: str) -> None:
    with hm.SyncHiveMind(db_url) as hive:
        job_id = hive.jobs.create(jobs.hello_world, "sync world")
        assert hive.jobs.get(job_id).invocation.arguments == {"message": "sync world"}
        with hive.jobs.get_with_lock(job_id, requester="me") as job:
            assert job.change_state(hm.Idle(reason="pause"))
            job.set_property("note", "synced")
            job.save()
        stored = hive.jobs.get(job_id)
        assert isinstance(stored.state, hm.Idle) and stored.properties == {"note": "synced"}
        with hive.transaction() as tx:
            parent = tx.jobs.create(jobs.do_stuff)
            tx.jobs.options(after=hm.After(parent)).create(jobs.do_stuff)
        with pytest.raises(ZeroDivisionError), hive.transaction() as tx:
            tx.jobs.create(jobs.do_stuff)
            tx.recurring.create_or_update("lost", hm.every(minutes=5), jobs.do_stuff)
            _ = 1 / 0
        assert hive.jobs.count_by_state() == {"Idle": 1, "Enqueued": 1, "Awaiting": 1}
        assert hive.recurring.try_get("lost") is None
        with hive.transaction() as tx:
            assert tx.recurring.create_or_update("kept", hm.every(minutes=5), jobs.do_stuff)
        assert hive.recurring.get("kept").state == "Enqueued"
        hive.jobs.set_data(job_id, "k", [1])
        assert hive.jobs.get_data(job_id, "k") == [1]
        hive.jobs.add_log(job_id, "hello")
        assert [entry.message for entry in hive.jobs.get_logs(job_id)] == ["hello"]
        assert hive.jobs.cancel(parent) is hm.CancelResult.CANCELLED
        with pytest.raises(hm.ArgumentBindingError):
            hive.jobs.create(jobs.add, "not an int")  # type: ignore[arg-type]


def test_environments_added_before_open(db_url: str) -> None:
    hive = hm.SyncHiveMind(db_url)
    other = hive.add_environment("other", db_url)  # a second environment: its own tables, same database
    with hive:
        job_id = other.jobs.create(jobs.do_stuff)
        assert hive.env("other").jobs.get(job_id).environment == "other"
    with pytest.raises(hm.StorageClosedError):
        _ = hive.jobs


async def test_refuses_inside_a_running_event_loop(db_url: str) -> None:
    hive = hm.SyncHiveMind(db_url)
    with pytest.raises(hm.SyncFacadeError, match="inside a running event loop"):
        hive.open()
    await asyncio.to_thread(hive.open)  # from a thread without a loop it works
    try:
        with pytest.raises(hm.SyncFacadeError, match="use the async API"):
            hive.jobs.create(jobs.do_stuff)
        job_id = await asyncio.to_thread(hive.jobs.create, jobs.do_stuff)
        assert job_id == 1
    finally:
        await asyncio.to_thread(hive.close)
