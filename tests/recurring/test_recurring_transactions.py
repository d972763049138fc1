"""Recurring jobs written inside a transaction (``tx.recurring``), also on the application's own
connection: they commit or roll back with everything else, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import pytest

import hivemind_jobs as hm
from tests.integration.test_application_transaction import App, app  # noqa: F401  (fixture)
from tests.sample_jobs import add

EVERY_MINUTE = hm.cron("* * * * *")


class Rollback(Exception):
    pass


async def test_create_commits_and_rolls_back_with_the_transaction(hive: hm.HiveMind) -> None:
    with pytest.raises(Rollback):
        async with hive.transaction() as tx:
            assert await tx.recurring.create_or_update("lost", EVERY_MINUTE, add, 1, 2)
            await tx.jobs.create(add, 1, 2)
            # reads through the transaction see its own writes
            assert (await tx.recurring.get("lost")).state == "Enqueued"
            assert [job.id for job in await tx.recurring.list()] == ["lost"]
            raise Rollback
    assert await hive.recurring.try_get("lost") is None
    assert await hive.jobs.count() == 0

    async with hive.transaction() as tx:
        assert await tx.recurring.options(queue="reports").create_or_update("kept", EVERY_MINUTE, add, 1, 2)
        job_id = await tx.jobs.create(add, 3, 4)
    kept = await hive.recurring.get("kept")
    assert kept.queue == "reports" and (await hive.jobs.get(job_id)).state.name == "Enqueued"
    assert [event.name for event in await hive.recurring.history("kept", kind="state")] == ["Enqueued", "Scheduling"]


async def test_update_pause_resume_trigger_and_delete_in_a_transaction(hive: hm.HiveMind) -> None:
    await hive.recurring.create_or_update("report", EVERY_MINUTE, add, 1, 2)

    with pytest.raises(Rollback):
        async with hive.transaction() as tx:
            assert not await tx.recurring.options(priority="high").create_or_update(
                "report", hm.every(seconds=30), add, 5, 6
            )
            assert await tx.recurring.pause("report", reason="maintenance")
            occurrence = await tx.recurring.trigger("report")
            assert (await tx.jobs.get(occurrence)).get_property("hm.recurring_id") == "report"
            raise Rollback
    unchanged = await hive.recurring.get("report")
    assert (unchanged.state, unchanged.schedule, unchanged.priority) == ("Enqueued", EVERY_MINUTE, hm.Priority.NORMAL)
    assert unchanged.job_id is None and await hive.jobs.count() == 0

    async with hive.transaction() as tx:
        assert await tx.recurring.pause("report")
    assert (await hive.recurring.get("report")).state == "Idle"
    async with hive.transaction() as tx:
        assert await tx.recurring.resume("report")
        occurrence = await tx.recurring.trigger("report")
    job = await hive.recurring.get("report")
    assert job.state == "Executing" and job.job_id == occurrence and job.stats.runs == 1

    # an occurrence that has not started is cancelled in the same transaction as the delete
    with pytest.raises(Rollback):
        async with hive.transaction() as tx:
            assert await tx.recurring.delete("report")
            assert await tx.recurring.try_get("report") is None
            raise Rollback
    assert (await hive.recurring.get("report")).job_id == occurrence
    assert (await hive.jobs.get(occurrence)).state.name == "Enqueued"
    async with hive.transaction() as tx:
        assert await tx.recurring.delete("report")
    assert await hive.recurring.try_get("report") is None
    assert (await hive.jobs.get(occurrence)).state.name == "Idle"


async def test_a_running_occurrence_is_refused_inside_a_transaction(hive: hm.HiveMind) -> None:
    await hive.recurring.create_or_update("busy", EVERY_MINUTE, add, 1, 2)
    occurrence = await hive.recurring.trigger("busy")
    await hive.jobs.change_state(occurrence, hm.Executing(colony="test", swarm="main", drone="d1"))
    with pytest.raises(hm.TransactionError, match="cannot wait"):
        async with hive.transaction() as tx:
            await tx.recurring.create_or_update("busy", hm.every(seconds=30), add, 1, 2)
    with pytest.raises(hm.TransactionError, match="cannot wait"):
        async with hive.transaction() as tx:
            await tx.recurring.delete("busy")
    with pytest.raises(hm.TransactionError, match="run_pass"):
        async with hive.transaction() as tx:
            await tx.recurring.run_pass()
    job = await hive.recurring.get("busy")
    assert job.schedule == EVERY_MINUTE and job.job_id == occurrence


async def test_recurring_jobs_in_the_application_transaction(hive: hm.HiveMind, app: App) -> None:  # noqa: F811
    async with hive.transaction(connection=app.connection) as tx:
        await app.insert_order("first")
        await tx.recurring.create_or_update("with-app", EVERY_MINUTE, add, 1, 2)
    await app.rollback()
    assert await app.count_orders() == 0
    assert await hive.recurring.try_get("with-app") is None

    async with hive.transaction(connection=app.connection) as tx:
        await app.insert_order("second")
        await tx.recurring.create_or_update("with-app", EVERY_MINUTE, add, 1, 2)
    await app.commit()
    assert await app.count_orders() == 1
    assert (await hive.recurring.get("with-app")).state == "Enqueued"
