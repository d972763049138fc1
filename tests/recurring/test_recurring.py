"""Recurring jobs on every backend: create or update, the state machine, one run at a time, misfire
policies, pause/resume/trigger/delete, history retention, and exactly-once across colony processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import hivemind_jobs as hm
from tests.recurring import procs
from tests.sample_jobs import add

pytestmark = pytest.mark.timeout(600)


async def _finish(hive: hm.HiveMind, job_id: int, state: hm.State | None = None) -> None:
    """Play a worker: the occurrence ends (Succeeded unless told otherwise)."""
    jobs = hive.jobs
    await jobs.change_state(job_id, hm.Executing(colony="test", swarm="main", drone="d1"))
    await jobs.change_state(job_id, state or hm.Succeeded())


async def _wait_until_due(hive: hm.HiveMind, recurring_id: str) -> datetime:
    job = await hive.recurring.get(recurring_id)
    assert job.next_run is not None
    delay = (job.next_run - datetime.now(UTC)).total_seconds()
    await asyncio.sleep(max(0.0, delay) + 0.05)
    return job.next_run


async def test_create_update_read(hive: hm.HiveMind) -> None:
    recurring = hive.recurring
    schedule = hm.cron("*/5 * * * *", tz="Europe/Berlin")
    assert await recurring.options(queue="reports", properties={"tenant": "t1"}).create_or_update(
        "nightly.report", schedule, add, 3
    )
    job = await recurring.get("nightly.report")
    assert (job.state, job.queue, dict(job.properties), job.job_id) == ("Enqueued", "reports", {"tenant": "t1"}, None)
    assert job.next_run is not None and job.next_run > datetime.now(UTC) - timedelta(seconds=1)
    assert job.next_run.minute % 5 == 0 and job.next_run.second == 0
    assert job.schedule == schedule and job.display_name.endswith(":add")
    assert job.stats == hm.RecurringStats()

    updated = hm.every(seconds=30)
    assert not await recurring.options(priority="high").create_or_update("nightly.report", updated, add, 4)
    again = await recurring.get("nightly.report")
    assert again.schedule == updated and again.priority == hm.Priority.HIGH and again.queue == "global"
    assert again.version > job.version and again.created_at == job.created_at
    assert [item.id for item in await recurring.list()] == ["nightly.report"]
    assert await recurring.list(prefix="x") == []
    names = [event.name for event in await recurring.history("nightly.report", kind="state")]
    assert names[-2:] == ["Enqueued", "Scheduling"] and names[0] == "Enqueued"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: r.create_or_update("bad id!", hm.every(seconds=5), add, 1), "invalid recurring job id"),
        (lambda r: r.create_or_update("a", "* * * * *", add, 1), "hm.cron"),
        (lambda r: r.create_or_update("a", hm.every(seconds=5), add, "x"), "x"),
        (lambda r: r.options(misfire="sometimes").create_or_update("a", hm.every(seconds=5), add, 1), "misfire"),
        (lambda r: r.get("missing"), "no recurring job"),
        (lambda r: r.trigger("missing"), "no recurring job"),
    ],
)
async def test_bad_input_is_refused_and_nothing_is_written(hive: hm.HiveMind, call: object, message: str) -> None:
    with pytest.raises((hm.ConfigurationError, hm.JobDefinitionError, LookupError), match=message):
        await call(hive.recurring)  # type: ignore[operator]
    assert await hive.recurring.list() == []
    assert await hive.jobs.count() == 0


async def test_one_occurrence_at_a_time_and_stats(hive: hm.HiveMind) -> None:
    recurring = hive.recurring
    await recurring.options(properties={"kind": "tick"}).create_or_update("tick", hm.every(seconds=1), add, 1)
    scheduled = await _wait_until_due(hive, "tick")
    report = await recurring.run_pass()
    assert report.enqueued == 1
    job = await recurring.get("tick")
    assert job.state == "Executing" and job.job_id is not None
    occurrence = await hive.jobs.get(job.job_id)
    assert occurrence.state.name == "Enqueued"
    assert occurrence.properties["hm.recurring_id"] == "tick" and occurrence.properties["kind"] == "tick"
    assert occurrence.properties["hm.scheduled_at"] == scheduled

    await _wait_until_due(hive, "tick")  # the next occurrence is due while the first still waits
    report = await recurring.run_pass()
    assert (report.enqueued, report.completed) == (0, 0)
    assert await hive.jobs.count(hm.prop("hm.recurring_id") == "tick") == 1

    await _finish(hive, job.job_id)
    report = await recurring.run_pass()  # records the run, then enqueues the occurrence that waited
    assert (report.completed, report.enqueued) == (1, 1)
    after = await recurring.get("tick")
    assert after.stats.succeeded == 1 and after.stats.last_outcome == "Succeeded" and after.stats.runs == 2
    assert after.stats.last_completed is not None and after.stats.last_completed >= scheduled
    assert after.job_id not in (None, job.job_id) and after.state == "Executing"
    second = await hive.jobs.get(after.job_id)
    assert second.properties["hm.scheduled_at"] == after.stats.last_scheduled
    assert after.stats.last_scheduled == scheduled + timedelta(seconds=1)  # the next occurrence, not a later one


async def test_failed_runs_are_counted_and_scheduling_goes_on(hive: hm.HiveMind) -> None:
    recurring = hive.recurring
    await recurring.create_or_update("flaky", hm.every(seconds=1), add, 1)
    await _wait_until_due(hive, "flaky")
    await recurring.run_pass()
    job = await recurring.get("flaky")
    assert job.job_id is not None
    await _finish(hive, job.job_id, hm.Failed(exception_type="ValueError", message="boom"))
    await recurring.run_pass()
    job = await recurring.get("flaky")
    assert (job.state, job.stats.failed, job.stats.last_outcome) == ("Enqueued", 1, "Failed")


@pytest.mark.parametrize("policy", ["run_once", "skip", "fail", "idle"])
async def test_misfire_policies(hive: hm.HiveMind, policy: str) -> None:
    recurring = hive.recurring.options(misfire=policy, misfire_threshold=timedelta(milliseconds=500))
    await recurring.create_or_update("late", hm.every(seconds=1), add, 1)
    first = await _wait_until_due(hive, "late")
    await asyncio.sleep(3.2)  # no scheduler runs: about four occurrences are missed
    report = await hive.recurring.run_pass()
    # every second since the first due time is one occurrence (more when this machine was slow)
    elapsed = (datetime.now(UTC) - first).total_seconds()
    job = await hive.recurring.get("late")
    occurrences = (await hive.jobs.search(hm.prop("hm.recurring_id") == "late")).jobs
    stats = job.stats
    assert stats.misfired == 1
    missed = stats.skipped + len(occurrences)
    assert 3 <= missed <= elapsed + 2, (stats, elapsed)
    if policy == "run_once":
        assert report.enqueued == 1 and len(occurrences) == 1 and job.state == "Executing"
        assert occurrences[0].properties["hm.scheduled_at"] > first  # the latest missed one
    elif policy == "skip":
        assert report.skipped == 1 and occurrences == [] and job.state == "Enqueued"
    elif policy == "fail":
        assert report.failed == 1 and [o.state.name for o in occurrences] == ["Failed"]
        assert stats.failed == 1 and job.state == "Enqueued"
    else:
        assert report.paused == 1 and occurrences == [] and job.state == "Idle" and job.next_run is None
        assert job.state_reason is not None and "misfired" in job.state_reason
    if job.state == "Enqueued":
        assert job.next_run is not None and job.next_run > datetime.now(UTC) - timedelta(seconds=1)
    logs = await hive.recurring.history("late", kind="log")
    assert any("misfired" in (event.message or "") for event in logs)


async def test_pause_resume_trigger_delete(hive: hm.HiveMind) -> None:
    recurring = hive.recurring
    await recurring.create_or_update("ops", hm.cron("0 3 * * *", tz="America/New_York"), add, 1)
    for bad in ("a\x00b", "a\ud800", "x" * 4001):
        with pytest.raises(hm.ConfigurationError, match="pause reason"):
            await recurring.pause("ops", reason=bad)
    assert (await recurring.get("ops")).state == "Enqueued"
    assert await recurring.pause("ops", reason="maintenance window")
    assert not await recurring.pause("ops")
    paused = await recurring.get("ops")
    assert (paused.state, paused.state_reason, paused.next_run) == ("Idle", "maintenance window", None)
    assert (await recurring.run_pass()).enqueued == 0

    job_id = await recurring.trigger("ops")  # a paused job can still be run by hand
    assert (await hive.jobs.get(job_id)).state.name == "Enqueued"
    with pytest.raises(hm.ConfigurationError, match="one occurrence runs at a time"):
        await recurring.trigger("ops")
    await _finish(hive, job_id)
    await recurring.run_pass()
    assert (await recurring.get("ops")).state == "Idle"

    assert await recurring.resume("ops")
    resumed = await recurring.get("ops")
    assert resumed.state == "Enqueued" and resumed.next_run is not None and resumed.stats.runs == 1
    assert resumed.next_run.astimezone(hm.cron("0 3 * * *", tz="America/New_York").zone).hour == 3

    assert await recurring.delete("ops")
    assert not await recurring.delete("ops")
    assert await recurring.try_get("ops") is None and await recurring.history("ops") == []


async def test_update_waits_for_or_cancels_the_running_occurrence(hive: hm.HiveMind) -> None:
    recurring = hive.recurring
    await recurring.create_or_update("busy", hm.every(seconds=60), add, 1)
    job_id = await recurring.trigger("busy")
    await hive.jobs.change_state(job_id, hm.Executing(colony="test", swarm="main", drone="d1"))
    waiting = recurring.options(update_timeout=timedelta(milliseconds=600))
    with pytest.raises(hm.JobLockTimeoutError, match="did not end"):
        await waiting.create_or_update("busy", hm.every(seconds=30), add, 2)
    assert (await recurring.get("busy")).schedule == hm.every(seconds=60)

    async def finish_soon() -> None:
        await asyncio.sleep(0.3)
        await hive.jobs.change_state(job_id, hm.Succeeded())

    finisher = asyncio.create_task(finish_soon())
    assert not await recurring.options(update_timeout=timedelta(seconds=5)).create_or_update(
        "busy", hm.every(seconds=30), add, 2
    )
    await finisher
    job = await recurring.get("busy")
    assert job.schedule == hm.every(seconds=30) and job.stats.succeeded == 1 and job.job_id is None

    second = await recurring.trigger("busy")
    cancelling = recurring.options(on_running="cancel", update_timeout=timedelta(seconds=5))
    assert await cancelling.delete("busy")
    assert (await hive.jobs.get(second)).state.name == "Idle"


async def test_history_is_pruned_per_job(hive: hm.HiveMind) -> None:
    recurring = hive.recurring.options(keep_states=3)
    await recurring.create_or_update("short", hm.every(seconds=60), add, 1)
    for _ in range(3):
        job_id = await recurring.trigger("short")
        await _finish(hive, job_id)
        await recurring.run_pass()
    states = await recurring.history("short", kind="state")
    assert len(states) <= 4  # the newest three, plus the one written with the last prune
    assert (await recurring.get("short")).stats.runs == 3


# ----------------------------------------------------------------------------- colonies


def _spawn(url: str, side: str, offset: float, seconds: float) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.recurring.procs", url, side, str(offset), str(seconds)],
        env=env,
        stderr=subprocess.PIPE,
    )


OCCURRENCES = int(os.environ.get("HIVEMIND_RECURRING_OCCURRENCES", "15"))


@pytest.mark.parametrize("offsets", [(0, 0, 0, 0), (120, 0, 0, -120)], ids=["same-clock", "skewed-clock"])
async def test_four_colonies_run_every_occurrence_exactly_once(db_url: str, tmp_path: Path, offsets: tuple) -> None:
    side = str(tmp_path / "side.db")
    procs.create_side_table(side)
    async with hm.HiveMind(db_url) as hive:
        await hive.recurring.options(misfire_threshold=timedelta(seconds=30)).create_or_update(
            "every-second", hm.cron("* * * * * *"), procs.record_occurrence, side
        )
        start = (await hive.recurring.get("every-second")).next_run
        assert start is not None
        seconds = OCCURRENCES + 3
        workers = [_spawn(db_url, side, offset, seconds) for offset in offsets]
        errors = []
        for worker in workers:
            _, stderr = await asyncio.to_thread(worker.communicate, timeout=seconds + 120)
            if worker.returncode != 0:
                errors.append(stderr.decode()[-3000:])
        assert not errors, errors
        job = await hive.recurring.get("every-second")
        occurrences = (await hive.jobs.search(hm.prop("hm.recurring_id") == "every-second", limit=1000)).jobs
        outcomes = Counter(occurrence.state.name for occurrence in occurrences)
        failures = [
            (occurrence.properties["hm.scheduled_at"], occurrence.states[-1])
            for occurrence in occurrences
            if occurrence.state.name not in ("Succeeded", "Enqueued", "Executing")
        ]
    assert not failures, failures
    ran = procs.runs(side)
    counts = Counter(scheduled for _, scheduled in ran)
    duplicates = {when: n for when, n in counts.items() if n > 1}
    assert not duplicates, duplicates
    first = int(start.timestamp() * 1_000_000)
    times = sorted(counts)
    assert times[0] == first
    # every second from the first occurrence to the last one ran: none skipped
    assert times == list(range(first, times[-1] + 1, 1_000_000)), (times, outcomes, job.stats)
    assert len(times) >= OCCURRENCES
    assert job.stats.skipped == 0 and job.stats.misfired == 0
    # an occurrence enqueued just before the colonies stopped counts as a run without a side row
    assert len(times) <= job.stats.runs <= len(times) + 1


async def test_search_recurring_jobs(hive: hm.HiveMind) -> None:
    recurring = hive.recurring
    await recurring.options(properties={"team": "billing"}, priority="high").create_or_update(
        "billing.invoices", hm.every(minutes=5), add, 1
    )
    await recurring.options(properties={"team": "ops"}).create_or_update("ops.backup", hm.every(hours=1), add, 1)
    await recurring.create_or_update("ops.cleanup", hm.every(hours=2), add, 1)
    await recurring.pause("ops.cleanup")
    r = hm.recurring_job
    assert [job.id for job in await recurring.search(r.prop("team") == "billing")] == ["billing.invoices"]
    assert [job.id for job in await recurring.search(r.id.like("ops.*"))] == ["ops.backup", "ops.cleanup"]
    assert [job.id for job in await recurring.search(r.state == "Idle")] == ["ops.cleanup"]
    assert [job.id for job in await recurring.search(~r.prop("team").exists())] == ["ops.cleanup"]
    assert await recurring.count(r.priority == int(hm.Priority.HIGH)) == 1
    ordered = await recurring.search(order_by="next_run")
    assert [job.id for job in ordered] == ["billing.invoices", "ops.backup", "ops.cleanup"]  # paused: no next run
    with pytest.raises(hm.QueryError, match="cannot order"):
        await recurring.search(order_by="colour")
    with pytest.raises(hm.QueryError, match="recurring"):
        await recurring.search(hm.prop("team") == "ops")
    with pytest.raises(hm.QueryError, match=r"hive\.recurring\.search"):
        await hive.jobs.search(r.prop("team") == "ops")


async def test_colonies_down_then_back_misfire_decides(db_url: str, tmp_path: Path) -> None:
    """A per-second job; its only colony stops for five seconds and comes back: with run_once and
    a one-second threshold the latest missed occurrence runs once, the others are counted skipped."""
    side = str(tmp_path / "side.db")
    procs.create_side_table(side)
    async with hm.HiveMind(db_url) as hive:
        recurring = hive.recurring.options(misfire="run_once", misfire_threshold=timedelta(seconds=1))
        await recurring.create_or_update("per-second", hm.every(seconds=1), procs.record_occurrence, side)

        async def run_colony(seconds: float) -> None:
            colony = hive.colony(name="only", allow=hm.AllowList(modules=["tests.recurring"]), options=procs.FAST)
            colony.swarm("main", drones=2)
            task = asyncio.create_task(colony.run())
            await asyncio.sleep(seconds)
            colony.stop()
            await task

        await run_colony(3)
        before = (await hive.recurring.get("per-second")).stats
        await asyncio.sleep(5)  # every colony is down
        await run_colony(2)
        after = await hive.recurring.get("per-second")
        logs = [event.message or "" for event in await hive.recurring.history("per-second", kind="log")]
    assert before.misfired == 0 and before.skipped == 0 and before.succeeded >= 2
    assert after.stats.misfired == 1, after.stats
    assert 3 <= after.stats.skipped <= 6, after.stats
    assert any("policy run_once" in message for message in logs), logs
    counts = Counter(scheduled for _, scheduled in procs.runs(side))
    assert max(counts.values()) == 1  # nothing ran twice


def test_the_blocking_facade_has_recurring_jobs(sqlite_url: str) -> None:
    with hm.SyncHiveMind(sqlite_url) as blocking:
        recurring = blocking.recurring
        assert recurring.options(queue="sync").create_or_update("blocking", hm.every(hours=1), add, 1)
        assert recurring.get("blocking").queue == "sync"
        assert [job.id for job in recurring.search(hm.recurring_job.queue == "sync")] == ["blocking"]
        job_id = recurring.trigger("blocking")
        assert blocking.jobs.get(job_id).get_property("hm.recurring_id") == "blocking"
        assert recurring.pause("blocking") and recurring.resume("blocking")
        assert recurring.history("blocking", kind="state")[0].name == "Enqueued"
        assert recurring.delete("blocking") and recurring.try_get("blocking") is None
        assert blocking.jobs.get(job_id).state.name == "Idle"  # its occurrence had not started: cancelled


class Archived(hm.State, name="RecurringTestArchived", final=True):
    """A custom final state: it ends an occurrence like Succeeded does."""


async def test_a_custom_final_state_ends_the_run(hive: hm.HiveMind) -> None:
    recurring = hive.recurring
    await recurring.create_or_update("archiving", hm.every(hours=1), add, 1)
    job_id = await recurring.trigger("archiving")
    await hive.jobs.change_state(job_id, hm.Executing(colony="test", swarm="main", drone="d1"))
    assert (await recurring.run_pass()).completed == 0  # still running
    await hive.jobs.change_state(job_id, Archived())
    assert (await recurring.run_pass()).completed == 1
    job = await recurring.get("archiving")
    assert (job.job_id, job.stats.last_outcome, job.state) == (None, "RecurringTestArchived", "Enqueued")
