"""Job timeouts: a run that reaches its timeout is cancelled and fails with TimeoutError (then the
retry policy decides), a sync job that ignores its cancel keeps its lock until its thread returns,
and the job's timeout wins over its swarm's, which wins over the environment's."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import click
import pytest

import hivemind_jobs as hm
from hivemind_jobs.cli.worker import parse_swarm_settings
from hivemind_jobs.core.timeouts import TIMEOUT_PROPERTY
from tests.worker import jobs
from tests.worker.conftest import ALLOW, FAST

RETRY_ONCE = hm.RetryPolicy(max_retries=1, delays=[timedelta(0)])


async def _until(condition: Callable[[], Awaitable[bool]], timeout: float = 8.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


def _ended(hive: hm.HiveMind, job_id: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        state = (await hive.jobs.get(job_id)).state
        return isinstance(state, hm.Succeeded) or (isinstance(state, hm.Failed) and state.reason is not None)

    return check


def _colony(hive: hm.HiveMind, *, drones: int = 1, timeout: timedelta | None = None, **options: object) -> hm.Colony:
    colony = hive.colony(name="timeouts", allow=ALLOW, options=dataclasses.replace(FAST, **options))  # type: ignore[arg-type]
    colony.swarm("main", drones=drones, timeout=timeout)
    return colony


def _runs(label: str, job_id: int) -> list[tuple[float, float]]:
    return [(item[2], item[3]) for item in jobs.RAN if isinstance(item, tuple) and item[:2] == (label, job_id)]


async def test_an_async_job_is_cancelled_at_its_timeout_and_retried_by_policy(whive: hm.HiveMind) -> None:
    job_id = await whive.jobs.options(timeout=timedelta(milliseconds=300), retry=RETRY_ONCE).create(
        jobs.slow_first_time, 30.0
    )
    async with _colony(whive):
        await _until(_ended(whive, job_id))
    job = await whive.jobs.get(job_id)
    names = [state.name for state in job.states]
    assert names == ["Created", "Enqueued", "Executing", "Failed", "Enqueued", "Executing", "Succeeded"]
    failed = next(state for state in job.states if isinstance(state, hm.Failed))
    assert failed.exception_type == "builtins.TimeoutError"
    assert "timeout of 0.3 s" in (failed.message or "")
    assert job.get_property(hm.colony.RETRIES_PROPERTY) == 1
    first, second = _runs("async", job_id)
    assert 0.25 <= first[1] - first[0] < 3  # cancelled at its timeout, not after its 30 s
    assert second[0] >= first[1]
    logs = await whive.jobs.get_logs(job_id)
    assert any("reached its timeout of 0.3 s" in entry.message for entry in logs)


async def test_a_timed_out_job_stays_failed_when_the_policy_allows_no_retry(whive: hm.HiveMind) -> None:
    job_id = await whive.jobs.options(timeout=timedelta(milliseconds=200)).create(jobs.sleeper, 30.0)
    async with _colony(whive):
        await _until(_ended(whive, job_id))
    job = await whive.jobs.get(job_id)
    assert isinstance(job.state, hm.Failed) and job.state.exception_type == "builtins.TimeoutError"
    assert job.state.reason == "gave up after 0 retries"
    assert job.locked_by is None
    assert ("slept", 30.0) not in jobs.RAN


async def test_a_sync_job_is_asked_to_stop_and_cooperates(whive: hm.HiveMind) -> None:
    job_id = await whive.jobs.options(timeout=timedelta(milliseconds=300)).create(jobs.cooperative, 30.0)
    async with _colony(whive, timeout_grace=timedelta(seconds=5)) as colony:
        await _until(_ended(whive, job_id))
        swarm = colony.describe()["swarms"][0]
    job = await whive.jobs.get(job_id)
    assert isinstance(job.state, hm.Failed) and job.state.exception_type == "builtins.TimeoutError"
    assert "JobCancelled" in (job.state.traceback or "")  # what the job raised is the cause
    [(start, end)] = _runs("cooperative", job_id)
    assert 0.25 <= end - start < 2  # it stopped when asked, well before the grace period ended
    assert all(drone["name"] == "main.drone-1" for drone in swarm["drones"])  # its drone was not written off


async def test_a_sync_job_that_ignores_its_cancel_keeps_its_lock_until_its_thread_returns(whive: hm.HiveMind) -> None:
    # the job blocks 3 s, past its 0.3 s timeout, the 0.3 s grace period and the 2 s lock timeout
    job_id = await whive.jobs.options(timeout=timedelta(milliseconds=300), retry=RETRY_ONCE).create(
        jobs.stubborn_first_time, 3.0
    )
    other = await whive.jobs.options(queue="other").create(jobs.note, "other job")
    colony = whive.colony(
        name="timeouts", allow=ALLOW, options=dataclasses.replace(FAST, timeout_grace=timedelta(milliseconds=300))
    )
    colony.swarm("main", drones=1, queues=["other"])
    async with colony:
        # the swarm's only drone is written off after the grace period: a fresh one runs the other job
        await _until(_ended(whive, other))
        running = await whive.jobs.get(job_id)
        assert isinstance(running.state, hm.Executing) and running.locked_by == colony.id
        await _until(_ended(whive, job_id))
    job = await whive.jobs.get(job_id)
    names = [state.name for state in job.states]
    assert names == ["Created", "Enqueued", "Executing", "Failed", "Enqueued", "Executing", "Succeeded"]
    failed = next(state for state in job.states if isinstance(state, hm.Failed))
    assert failed.exception_type == "builtins.TimeoutError"
    executing = [state for state in job.states if isinstance(state, hm.Executing)]
    assert executing[0].drone == "main.drone-1"
    assert (await whive.jobs.get(other)).states[2].drone == "main.drone-2"  # type: ignore[attr-defined]
    first, second = _runs("stubborn", job_id)
    assert first[1] - first[0] >= 2.9  # it ran to its end: nothing could stop it
    assert second[0] >= first[1]  # the second run started only after the first one returned
    assert failed.elected_at is not None and executing[1].elected_at is not None
    assert executing[1].elected_at >= failed.elected_at
    assert job.get_property(hm.colony.RESCUES_PROPERTY) is None  # its lock never expired


async def test_a_job_that_ends_in_time_is_not_affected(whive: hm.HiveMind) -> None:
    job_id = await whive.jobs.options(timeout=timedelta(seconds=5)).create(jobs.add, 2, 3)
    async with _colony(whive):
        await _until(_ended(whive, job_id))
    job = await whive.jobs.get(job_id)
    assert isinstance(job.state, hm.Succeeded) and job.state.result == 5


async def test_the_job_timeout_wins_over_the_swarm_and_the_swarm_over_the_environment(whive: hm.HiveMind) -> None:
    whive.env().options = dataclasses.replace(whive.env().options, timeout=timedelta(milliseconds=300))
    by_environment = await whive.jobs.options(queue="plain").create(jobs.sleeper, 0.8)
    by_swarm = await whive.jobs.options(queue="patient").create(jobs.sleeper, 0.8)
    by_job = await whive.jobs.options(queue="patient", timeout=timedelta(milliseconds=300)).create(jobs.sleeper, 0.9)
    job_over_environment = await whive.jobs.options(queue="plain", timeout=timedelta(seconds=5)).create(
        jobs.sleeper, 0.7
    )
    sub_swarm = await whive.jobs.options(queue="inherits").create(jobs.sleeper, 0.6)
    colony = whive.colony(name="timeouts", allow=ALLOW, options=FAST)
    colony.swarm("plain", drones=2, queues=["plain"], work_on_global=False)
    patient = colony.swarm("patient", drones=2, queues=["patient"], timeout=timedelta(seconds=5))
    patient.swarm("child", drones=1, queues=["inherits"], dedicated=True)
    async with colony:
        for job_id in (by_environment, by_swarm, by_job, job_over_environment, sub_swarm):
            await _until(_ended(whive, job_id))
    states = {job_id: (await whive.jobs.get(job_id)).state for job_id in (by_environment, by_swarm, by_job)}
    assert isinstance(states[by_environment], hm.Failed)
    assert states[by_environment].exception_type == "builtins.TimeoutError"  # type: ignore[attr-defined]
    assert isinstance(states[by_swarm], hm.Succeeded)
    assert isinstance(states[by_job], hm.Failed)
    assert "timeout of 0.3 s" in (states[by_job].message or "")  # type: ignore[attr-defined]
    assert isinstance((await whive.jobs.get(job_over_environment)).state, hm.Succeeded)
    assert isinstance((await whive.jobs.get(sub_swarm)).state, hm.Succeeded)  # the child uses its parent's


async def test_every_create_path_stores_the_job_timeout(whive: hm.HiveMind) -> None:
    timed = whive.jobs.options(timeout=timedelta(seconds=90))
    lean = await timed.create(jobs.add, 1, 2)
    [many] = await timed.create_many([hm.call(jobs.add, 1, 2)])
    parent = await whive.jobs.create(jobs.add, 1, 1)
    awaiting = await timed.options(after=hm.After(parent)).create(jobs.add, 2, 2)  # the election path
    async with whive.transaction() as tx:
        in_transaction = await tx.jobs.options(timeout=timedelta(minutes=2)).create(jobs.add, 3, 3)
    plain = await whive.jobs.create(jobs.add, 1, 2)
    for job_id, seconds in ((lean, 90.0), (many, 90.0), (awaiting, 90.0), (in_transaction, 120.0)):
        assert (await whive.jobs.get(job_id)).get_property(TIMEOUT_PROPERTY) == seconds
    assert (await whive.jobs.get(plain)).get_property(TIMEOUT_PROPERTY) is None
    assert (await whive.jobs.get(plain)).properties == {}  # nothing stored for a job without one
    unset = await timed.options(timeout=None).create(jobs.add, 1, 2)
    assert (await whive.jobs.get(unset)).get_property(TIMEOUT_PROPERTY) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (timedelta(0), "must be positive"),
        (timedelta(seconds=-1), "must be positive"),
        (5, "must be a timedelta"),
        ("30s", "must be a timedelta"),
        (timedelta(days=400), "must be at most 366 days"),
    ],
)
def test_bad_timeouts_are_refused_with_a_clear_error(value: object, expected: str, tmp_path: Path) -> None:
    hive = hm.HiveMind(f"sqlite:///{tmp_path / 'unused.db'}")
    with pytest.raises(hm.ConfigurationError, match=expected):
        hive.jobs.options(timeout=value)  # type: ignore[arg-type]
    with pytest.raises(hm.ConfigurationError, match=f"Options.timeout {expected}"):
        hm.Options(timeout=value)  # type: ignore[arg-type]
    colony = hive.colony(name="refused")
    with pytest.raises(hm.ConfigurationError, match=f"swarm 'main': timeout {expected}"):
        colony.swarm("main", timeout=value)  # type: ignore[arg-type]
    with pytest.raises(hm.ConfigurationError, match="timeout_grace must be a positive timedelta"):
        hm.ColonyOptions(timeout_grace=timedelta(0))


def test_the_worker_command_reads_a_swarm_timeout() -> None:
    assert parse_swarm_settings("main:4:reports") == ("main:4:reports", {})
    assert parse_swarm_settings("main/child:2@timeout=1.5") == ("main/child:2", {"timeout": timedelta(seconds=1.5)})
    assert parse_swarm_settings("cpu:4:heavy@process,timeout=60") == (
        "cpu:4:heavy",
        {"execution": "process", "timeout": timedelta(seconds=60)},
    )
    for bad, message in [
        ("main:4@timeout=0", "more than 0 seconds"),
        ("main:4@timeout=x", "number of seconds"),
        ("main:4@timeout=nan", "more than 0 seconds"),
        ("main:4@processes", "unknown swarm setting"),
        ("main:4@timeout", "unknown swarm setting"),
    ]:
        with pytest.raises(click.BadParameter, match=message):
            parse_swarm_settings(bad)


async def test_an_async_job_that_swallows_its_cancel_loses_its_drone_and_fails_when_it_ends(
    whive: hm.HiveMind,
) -> None:
    job_id = await whive.jobs.options(timeout=timedelta(milliseconds=200)).create(jobs.deaf_sleeper, 1.5)
    other = await whive.jobs.create(jobs.note, "after")
    async with _colony(whive, timeout_grace=timedelta(milliseconds=200)):
        await _until(_ended(whive, other))
        assert isinstance((await whive.jobs.get(job_id)).state, hm.Executing)
        await _until(_ended(whive, job_id))
    job = await whive.jobs.get(job_id)
    assert isinstance(job.state, hm.Failed) and job.state.exception_type == "builtins.TimeoutError"
    assert (await whive.jobs.get(other)).states[2].drone == "main.drone-2"  # type: ignore[attr-defined]


async def test_every_occurrence_of_a_recurring_job_carries_its_timeout(whive: hm.HiveMind) -> None:
    recurring = whive.recurring.options(timeout=timedelta(seconds=45))
    await recurring.create_or_update("nightly", hm.cron("0 3 * * *"), jobs.add, 1, 2)
    occurrence = await whive.recurring.trigger("nightly")
    assert (await whive.jobs.get(occurrence)).get_property(TIMEOUT_PROPERTY) == 45.0
    with pytest.raises(hm.ConfigurationError, match="timeout must be positive"):
        whive.recurring.options(timeout=timedelta(0))
