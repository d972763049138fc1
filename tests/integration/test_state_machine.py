"""Elections, events and custom states."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest

import hivemind_jobs as hm
from tests import backends
from tests import sample_jobs as jobs

UNPAID = UUID(int=666)


class TenantPaymentEnforcer:
    """Fails the execution of jobs of tenants that have not paid their bill (the seed's example)."""

    priority = 0  # always run first

    def __call__(self, request: hm.StateElection) -> hm.State | None:
        tenant = request.job.get_property("TenantId")
        if isinstance(request.elected, hm.Executing) and isinstance(tenant, UUID) and not self.has_paid_bill(tenant):
            return hm.Failed(reason=f"Tenant <{tenant}> has not paid its bills so not allowing execution")
        return None

    @staticmethod
    def has_paid_bill(tenant: UUID) -> bool:
        return tenant != UNPAID


class UnderReview(hm.State):
    reviewer: str
    since: datetime
    notes: list[str] = dataclasses.field(default_factory=list)


async def test_tenant_payment_enforcer_fails_unpaid_executions(hive: hm.HiveMind) -> None:
    hive.mediator.add_request_handler(hm.StateElection, TenantPaymentEnforcer())
    unpaid = await hive.jobs.options(properties={"TenantId": UNPAID}).create(jobs.do_stuff)
    paid = await hive.jobs.options(properties={"TenantId": uuid4()}).create(jobs.do_stuff)
    results = {}
    for job_id in (unpaid, paid):
        async with hive.jobs.get_with_lock(job_id, requester="drone") as job:
            results[job_id] = await job.change_state(hm.Executing(colony="c", swarm="s", drone="d"))
            await job.save()
    assert results == {unpaid: False, paid: True}
    unpaid_job = await hive.jobs.get(unpaid)
    assert [s.name for s in unpaid_job.states] == ["Created", "Enqueued", "Executing", "Failed"]
    assert "has not paid" in (unpaid_job.state.reason or "")
    assert isinstance((await hive.jobs.get(paid)).state, hm.Executing)


async def test_applied_states_get_sequence_time_and_a_new_execution_id(hive: hm.HiveMind) -> None:
    job_id = await hive.jobs.create(jobs.do_stuff)
    before = await hive.jobs.get(job_id)
    await hive.jobs.change_state(job_id, hm.Idle())
    after = await hive.jobs.get(job_id)
    assert [s.sequence for s in after.states] == [0, 1, 2]
    assert all(s.elected_at is not None and s.elected_at.tzinfo is not None for s in after.states)
    assert after.execution_id != before.execution_id


async def test_election_loops_are_bounded(hive: hm.HiveMind) -> None:
    def ping_pong(request: hm.StateElection) -> hm.State:
        return hm.Idle() if isinstance(request.elected, hm.Enqueued) else hm.Enqueued()

    remove = hive.mediator.add_request_handler(hm.StateElection, ping_pong)
    with pytest.raises(hm.StateElectionLoopError, match="did not settle after 10 hops"):
        await hive.jobs.create(jobs.do_stuff)
    remove()
    assert await hive.jobs.count_by_state() == {}


async def test_handlers_may_redirect_and_see_the_transaction(hive: hm.HiveMind, db_url: str) -> None:
    seen: list[str] = []

    async def audit(event: hm.JobSaved) -> None:
        seen.append(f"saved:{event.job.state.name}:{event.is_creation}")
        if event.job.get_property("audit"):
            await event.jobs.set_data(event.job.id, "audited", True)  # in the same transaction

    def on_applied(event: hm.JobStateApplied) -> None:
        seen.append(f"applied:{event.state.name}")

    def before_save(event: hm.JobSaving) -> None:
        seen.append("saving")

    hive.mediator.subscribe(hm.JobSaved, audit)
    hive.mediator.subscribe(hm.JobStateApplied, on_applied)
    hive.mediator.subscribe(hm.JobSaving, before_save)
    job_id = await hive.jobs.options(properties={"audit": True}).create(jobs.do_stuff)
    assert seen == ["applied:Enqueued", "saving", "saved:Enqueued:True"]
    assert await hive.jobs.get_data(job_id, "audited") is True


async def test_a_failing_handler_rolls_everything_back(hive: hm.HiveMind, db_url: str) -> None:
    async def refuse(event: hm.JobSaved) -> None:
        await event.jobs.set_data(event.job.id, "written", 1)
        raise RuntimeError("handler refuses")

    hive.mediator.subscribe(hm.JobSaved, refuse)
    with pytest.raises(RuntimeError, match="handler refuses"):
        await hive.jobs.create(jobs.do_stuff)
    assert backends.count(db_url, "job") == 0
    assert backends.count(db_url, "job_data") == 0


async def test_environment_handlers_stay_in_their_environment(hive: hm.HiveMind, tmp_path: object) -> None:
    other = hive.add_environment("other", hive.env().info.url)
    await other.open()
    calls: list[str] = []
    other.mediator.subscribe(hm.JobSaved, lambda event: calls.append("other"))
    hive.mediator.subscribe(hm.JobSaved, lambda event: calls.append("global"))
    await hive.jobs.create(jobs.do_stuff)
    await other.jobs.create(jobs.do_stuff)
    assert calls == ["global", "other", "global"]


async def test_custom_states_are_persisted_and_restored(hive: hm.HiveMind) -> None:
    since = datetime(2031, 2, 3, tzinfo=UTC)
    job_id = await hive.jobs.options(
        state=UnderReview(reviewer="ann", since=since, notes=["a"], reason="check")
    ).create(jobs.do_stuff)
    job = await hive.jobs.get(job_id)
    assert isinstance(job.state, UnderReview)
    assert (job.state.reviewer, job.state.since, job.state.notes, job.state.reason) == ("ann", since, ["a"], "check")


async def test_unknown_stored_states_are_kept_readable(hive: hm.HiveMind, db_url: str) -> None:
    job_id = await hive.jobs.create(jobs.do_stuff)
    backends.raw(
        db_url,
        "UPDATE {job_state} SET name = ?, fields = ? WHERE job_id = ? AND sequence = 1",
        "FromTheFuture",
        '{"x": 1}',
        job_id,
    )
    job = await hive.jobs.get(job_id)
    assert isinstance(job.state, hm.UnknownState)
    assert job.state.name == "FromTheFuture" and job.state.raw_fields == {"x": 1}
    async with hive.jobs.get_with_lock(job_id) as locked:  # it can still be moved on
        await locked.change_state(hm.Enqueued())
        await locked.save()
    assert isinstance((await hive.jobs.get(job_id)).state, hm.Enqueued)


async def test_failed_state_keeps_exception_details(hive: hm.HiveMind) -> None:
    try:
        raise ValueError("bad input 42")
    except ValueError as error:
        failed = hm.Failed.from_exception(error)
    job_id = await hive.jobs.create(jobs.do_stuff)
    await hive.jobs.change_state(job_id, failed)
    state = (await hive.jobs.get(job_id)).state
    assert isinstance(state, hm.Failed)
    assert state.exception_type == "builtins.ValueError" and state.message == "bad input 42"
    assert state.traceback is not None and "bad input 42" in state.traceback
    assert state.exception is None  # the live exception is not persisted
