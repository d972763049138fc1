"""The blocking facade: the same names for code without an event loop."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from datetime import timedelta

import pytest

import hivemind_jobs as hm
from hivemind_jobs.sync import SyncColonyClient, SyncLockedJobs
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
            hive.jobs.create(jobs.add, "not an int")  # type: ignore[call-overload]


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


def test_a_locked_job_reads_logs_and_reads_data_like_the_async_one(db_url: str) -> None:
    with hm.SyncHiveMind(db_url) as hive:
        job_id = hive.jobs.options(queue="mail", priority=hm.Priority.HIGH, properties={"tenant": "acme"}).create(
            jobs.hello_world, "locked"
        )
        with hive.jobs.get_with_lock(job_id, requester="reader") as job:
            assert (job.queue, job.priority) == ("mail", hm.Priority.HIGH)
            assert [state.name for state in job.states] == ["Created", "Enqueued"]
            assert job.invocation.arguments == {"message": "locked"}
            assert job.properties == {"tenant": "acme"}
            unchanged = job.has_unsaved_changes
            job.move(priority=hm.Priority.LOW)
            assert (unchanged, job.has_unsaved_changes) == (False, True)
            assert job.try_get_data("missing") is None
            assert job.try_get_data("missing", default="fallback") == "fallback"
            job.set_data("count", 3)
            assert job.try_get_data("count", int) == 3
            job.add_log("seen by the reader", level=logging.WARNING)
            job.save()
            assert not job.is_locked and not job.has_unsaved_changes
        [entry] = hive.jobs.get_logs(job_id)
        assert (entry.message, entry.level_name) == ("seen by the reader", "WARNING")
        assert hive.jobs.get(job_id).priority is hm.Priority.LOW


def test_job_options_take_a_retry_policy(db_url: str) -> None:
    policy = hm.RetryPolicy(max_retries=2, base_delay=timedelta(seconds=1))
    with hm.SyncHiveMind(db_url) as hive:
        retrying = hive.jobs.options(retry=policy)
        assert retrying.create_options.retry == policy
        job_id = retrying.create(jobs.do_stuff)
        assert hive.jobs.get(job_id).get_property("hm.retry") == policy.to_json()
        assert hive.jobs.options(retry=None).create_options.retry is None
        with pytest.raises(hm.ConfigurationError, match="RetryPolicy"):
            hive.jobs.options(retry=3)  # type: ignore[arg-type]


def test_recurring_options_are_the_async_ones(db_url: str) -> None:
    with hm.SyncHiveMind(db_url) as hive:
        nightly = hive.recurring.options(queue="nightly", paused=True, on_running="cancel", keep_states=5)
        assert nightly.create_or_update("report", hm.every(hours=1), jobs.add, 1)
        report = hive.recurring.get("report")
        assert (report.state, report.queue) == ("Idle", "nightly")
        assert report.settings.keep_states == 5
        with pytest.raises(hm.ConfigurationError, match="on_running"):
            hive.recurring.options(on_running="later")  # type: ignore[arg-type]
        assert hive.recurring.run_pass().enqueued == 0  # paused: nothing is due


def test_jobs_commit_and_roll_back_with_the_applications_own_connection(sqlite_url: str) -> None:
    path = sqlite_url.removeprefix("sqlite:///")
    with hm.SyncHiveMind(sqlite_url) as hive:
        # the facade's loop thread writes the jobs on it: the connection must allow other threads
        connection = sqlite3.connect(path, check_same_thread=False)
        try:
            connection.execute("CREATE TABLE app_order (name TEXT)")
            connection.commit()
            connection.execute("INSERT INTO app_order (name) VALUES ('kept')")
            with hive.transaction(connection=connection) as tx:
                assert tx.connection is connection
                active = tx.is_active
                kept = tx.jobs.create(jobs.add, 1, 2)
            assert (active, tx.is_active) == (True, False)
            assert hive.jobs.try_get(kept) is None  # not committed by the application yet
            connection.commit()
            assert hive.jobs.get(kept).state.name == "Enqueued"

            connection.execute("INSERT INTO app_order (name) VALUES ('lost')")
            with hive.env().transaction(connection=connection) as tx:
                lost = tx.jobs.create(jobs.add, 3, 4)
            connection.rollback()
            assert hive.jobs.try_get(lost) is None
            assert connection.execute("SELECT name FROM app_order").fetchall() == [("kept",)]
        finally:
            connection.close()


def test_search_and_lock_gives_a_list_whose_block_releases_the_locks(db_url: str) -> None:
    with hm.SyncHiveMind(db_url) as hive:
        ids = hive.jobs.create_many(hm.call(jobs.add, n) for n in range(3))
        with hive.jobs.search_and_lock(limit=10, requester="batch") as locked:
            assert isinstance(locked, SyncLockedJobs) and isinstance(locked, list)
            assert [job.id for job in locked] == ids and locked.jobs is locked
            assert locked.requester == "batch"
            assert hive.jobs.try_lock(ids[0], requester="other") is None
            locked[0].set_property("done", True)
            locked[0].save()
        assert not any(job.is_locked for job in locked)
        again = hive.jobs.try_lock(ids[1], requester="other")
        assert again is not None and again.holder == "other"
        again.release()
        assert hive.jobs.get(ids[0]).properties == {"done": True}


def test_the_hive_its_environments_and_colonies_block_too(db_url: str) -> None:
    hive = hm.SyncHiveMind(db_url)
    hive.open()
    try:
        assert hive.default_environment == "main" and list(hive.environments) == ["main"]
        assert (hive.codec, hive.clock, hive.activator) == (hive.hive.codec, hive.hive.clock, hive.hive.activator)
        env = hive.environments["main"]
        assert (env.name, env.info.url) == ("main", hive.hive.env().info.url)
        assert env.calendars is hive.hive.env().calendars and env.codec is hive.codec
        assert isinstance(env.colonies, SyncColonyClient) and isinstance(hive.colonies, SyncColonyClient)
        assert hive.colonies.list() == [] and hive.colonies.count() == 0
        assert hive.colonies.try_get("nowhere") is None
        with pytest.raises(hm.ColonyNotFoundError):
            env.colonies.get("nowhere")
        assert hive.colonies.delete_stale(timedelta(days=1)) == []
        with env.transaction() as tx:
            assert tx.environment.name == "main"
            job_id = tx.jobs.create(jobs.do_stuff)
        assert env.jobs.get(job_id).environment == "main"
        other = hive.add_environment("other", db_url)
        other.close()
        other.open()
        assert other.jobs.count() == 0
    finally:
        hive.close(timeout=30)
    hive.close()  # closing twice is harmless
    with pytest.raises(hm.StorageClosedError):
        _ = hive.environments
