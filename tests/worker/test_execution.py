"""Running jobs: results of sync and async jobs, context, logs, failures, what is not allowed."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import pytest

import hivemind_jobs as hm
from tests.worker import jobs
from tests.worker.conftest import ALLOW, FAST, colony_of


async def test_sync_async_and_instance_jobs_store_their_results(whive: hm.HiveMind) -> None:
    sync_id = await whive.jobs.create(jobs.add, 2, 3)
    async_id = await whive.jobs.create(jobs.async_note, "x")
    instance_id = await whive.jobs.create(hm.instance(jobs.Greeter).greet, "ada")
    colony = colony_of(whive)
    await colony.run(burst=True)
    results = {}
    for job_id in (sync_id, async_id, instance_id):
        job = await whive.jobs.get(job_id)
        assert isinstance(job.state, hm.Succeeded), job.state
        assert [state.name for state in job.states] == ["Created", "Enqueued", "Executing", "Succeeded"]
        assert job.state.duration is not None and job.state.duration >= timedelta(0)
        assert job.state.lead_time is not None and job.state.overhead is not None
        assert job.locked_by is None
        results[job_id] = job.state.result
    assert results == {sync_id: 5, async_id: "async x", instance_id: "hello ada"}
    assert colony.processed == 3 and colony.succeeded == 3


async def test_executing_state_names_colony_swarm_and_drone(whive: hm.HiveMind) -> None:
    job_id = await whive.jobs.create(jobs.with_context, "ctx")
    colony = colony_of(whive)
    await colony.run(burst=True)
    job = await whive.jobs.get(job_id)
    executing = job.states[2]
    assert isinstance(executing, hm.Executing)
    assert (executing.colony, executing.swarm) == ("test", "main")
    assert executing.drone is not None and executing.drone.startswith("main.drone-")
    assert job.state.result == {"colony": "test", "swarm": "main", "drone": executing.drone, "job": job_id}


async def test_a_running_job_reads_its_whole_history(whive: hm.HiveMind) -> None:
    job_id = await whive.jobs.create(jobs.state_history)
    await colony_of(whive).run(burst=True)
    job = await whive.jobs.get(job_id)
    assert job.state.result == [["Created", 0], ["Enqueued", 1], ["Executing", 2]]
    assert [(state.name, state.sequence) for state in job.states] == [
        ("Created", 0),
        ("Enqueued", 1),
        ("Executing", 2),
        ("Succeeded", 3),
    ]
    assert all(state.elected_at is not None for state in job.states)


async def test_job_logs_are_persisted_at_the_environment_level(whive: hm.HiveMind) -> None:
    job_id = await whive.jobs.create(jobs.with_context, "logs")
    await colony_of(whive).run(burst=True)
    logs = await whive.jobs.get_logs(job_id)
    messages = [(entry.level, entry.message) for entry in logs]
    assert (logging.INFO, "info from logs") in messages
    assert (logging.WARNING, "warning from logs") in messages
    assert all(entry.level >= logging.INFO for entry in logs)  # debug is below Options.job_log_level


async def test_properties_set_by_a_running_job_are_saved(whive: hm.HiveMind) -> None:
    job_id = await whive.jobs.create(jobs.async_with_context)
    await colony_of(whive).run(burst=True)
    job = await whive.jobs.get(job_id)
    assert job.get_property("seen") is True
    assert isinstance(job.state, hm.Succeeded)


async def test_failure_stores_type_message_and_traceback(whive: hm.HiveMind) -> None:
    job_id = await whive.jobs.create(jobs.boom, "it broke")
    colony = colony_of(whive)
    await colony.run(burst=True)
    job = await whive.jobs.get(job_id)
    assert isinstance(job.state, hm.Failed)
    assert job.state.exception_type == "builtins.ValueError"
    assert job.state.message == "it broke"
    assert job.state.traceback is not None and "raise ValueError(message)" in job.state.traceback
    assert colony.failed == 1


async def test_a_result_that_cannot_be_encoded_is_stored_as_its_repr(whive: hm.HiveMind) -> None:
    job_id = await whive.jobs.create(jobs.unencodable)
    await colony_of(whive).run(burst=True)
    job = await whive.jobs.get(job_id)
    assert isinstance(job.state, hm.Succeeded)
    assert isinstance(job.state.result, str) and "lock" in job.state.result.lower()
    warnings = [entry for entry in await whive.jobs.get_logs(job_id) if entry.level == logging.WARNING]
    assert any("repr" in entry.message for entry in warnings)


async def test_jobs_outside_the_allow_list_fail_clearly_without_retry(whive: hm.HiveMind) -> None:
    job_id = await whive.jobs.options(retry=hm.RetryPolicy(max_retries=5)).create(jobs.add, 1, 2)
    colony = whive.colony(name="strict", allow=hm.AllowList(modules=["somewhere.else"]), options=FAST)
    colony.swarm("main", drones=1)
    await colony.run(burst=True)
    job = await whive.jobs.get(job_id)
    assert isinstance(job.state, hm.Failed)
    assert "not allowed" in (job.state.message or "")
    assert job.get_property(hm.colony.RETRIES_PROPERTY) is None  # fatal: never retried
    assert job.state.reason == "fatal error: not retried"


async def test_a_handler_can_refuse_execution(whive: hm.HiveMind) -> None:
    """The seed's TenantPaymentEnforcer: Executing becomes Failed for a tenant that has not paid."""

    def enforce(request: hm.StateElection) -> hm.State | None:
        if isinstance(request.elected, hm.Executing) and request.job.get_property("tenant") == "unpaid":
            return hm.Failed(message="tenant has not paid", reason="payment required")
        return None

    remove = whive.mediator.add_request_handler(hm.StateElection, enforce)
    try:
        unpaid = await whive.jobs.options(properties={"tenant": "unpaid"}).create(jobs.note, "unpaid")
        paid = await whive.jobs.options(properties={"tenant": "paid"}).create(jobs.note, "paid")
        await colony_of(whive).run(burst=True)
    finally:
        remove()
    assert jobs.RAN == ["paid"]
    unpaid_job = await whive.jobs.get(unpaid)
    assert isinstance(unpaid_job.state, hm.Failed) and unpaid_job.state.message == "tenant has not paid"
    assert unpaid_job.locked_by is None
    assert isinstance((await whive.jobs.get(paid)).state, hm.Succeeded)


async def test_a_continuation_runs_after_its_parent_succeeds(whive: hm.HiveMind) -> None:
    parent = await whive.jobs.create(jobs.note, "parent")
    child = await whive.jobs.options(after=hm.After(parent)).create(jobs.note, "child")
    await colony_of(whive).run(burst=True)
    assert jobs.RAN == ["parent", "child"]
    assert isinstance((await whive.jobs.get(child)).state, hm.Succeeded)


async def test_a_colony_without_swarm_or_allow_is_refused(whive: hm.HiveMind) -> None:
    colony = whive.colony(name="empty", allow=ALLOW)
    with pytest.raises(hm.ConfigurationError, match="no swarm"):
        await colony.run()
    with pytest.raises(hm.ConfigurationError, match="AllowList"):
        whive.colony(allow=["tests"])  # type: ignore[arg-type]
    with pytest.raises(hm.InvalidNameError):
        whive.colony(name="bad name; drop")


async def test_lifecycle_events_are_published(whive: hm.HiveMind) -> None:
    seen: list[object] = []
    statuses: list[str] = []
    whive.mediator.subscribe(hm.JobExecuting, lambda event: seen.append(("executing", event.context.job.id)))
    whive.mediator.subscribe(
        hm.JobExecuted, lambda event: seen.append(("executed", event.context.job.id, event.result, event.error))
    )
    whive.mediator.subscribe(hm.ColonyStatusChanged, lambda event: statuses.append(event.status))
    job_id = await whive.jobs.create(jobs.add, 20, 22)
    await colony_of(whive).run(burst=True)
    assert seen == [("executing", job_id), ("executed", job_id, 42, None)]
    assert statuses == ["starting", "running", "stopping", "stopped"]


async def test_lead_time_ends_when_the_job_starts(whive: hm.HiveMind) -> None:
    started = time.monotonic()
    job_id = await whive.jobs.create(jobs.sleeper, 0.5)
    await colony_of(whive).run(burst=True)
    elapsed = timedelta(seconds=time.monotonic() - started)
    state = (await whive.jobs.get(job_id)).state
    assert isinstance(state, hm.Succeeded) and state.lead_time is not None and state.duration is not None
    assert state.duration >= timedelta(milliseconds=500)
    # due -> started, then the run: both within the test's time however slow the colony's start;
    # a lead time that ran to the finish would count the 500 ms run twice
    assert state.lead_time + state.duration < elapsed + timedelta(milliseconds=100)
