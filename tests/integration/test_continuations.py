"""Continuations: children wait for a parent and are released atomically with its transition."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest

import hivemind_jobs as hm
from tests import sample_jobs as jobs


class Reviewed(hm.State, final=True):
    by: str = "nobody"


async def state_of(hive: hm.HiveMind, job_id: int) -> hm.State:
    return (await hive.jobs.get(job_id)).state


async def run_to(hive: hm.HiveMind, job_id: int, *states: hm.State) -> None:
    """Drive a job through states under its lock, as a drone would."""
    async with hive.jobs.get_with_lock(job_id, requester="drone") as job:
        for state in states:
            await job.change_state(state)
            await job.save(keep_lock=True)


async def test_seed_chain_in_one_transaction(hive: hm.HiveMind) -> None:
    async with hive.transaction() as tx:
        first = await tx.jobs.create(jobs.do_stuff)
        second = await tx.jobs.options(after=hm.After(first, on=hm.Continue.SUCCEEDED)).create(jobs.do_stuff)
        third = await tx.jobs.options(after=hm.After(second, on=hm.Continue.ANY)).create(jobs.do_stuff)
        fourth = await tx.jobs.options(after=hm.After(third, on=hm.Continue.FINISHED)).create(jobs.do_stuff)
    assert isinstance(await state_of(hive, first), hm.Enqueued)
    for child in (second, third, fourth):
        assert isinstance(await state_of(hive, child), hm.Awaiting)
    await run_to(hive, first, hm.Executing(), hm.Succeeded(result="ok"))
    second_state = await state_of(hive, second)
    assert isinstance(second_state, hm.Enqueued) and second_state.reason == f"parent job {first} reached Succeeded"
    assert isinstance(await state_of(hive, third), hm.Awaiting)  # its parent is only Enqueued
    await run_to(hive, second, hm.Executing(), hm.Failed(message="boom"))
    assert isinstance(await state_of(hive, third), hm.Enqueued)  # ANY: whatever the outcome
    await run_to(hive, third, hm.Executing(), hm.Succeeded())
    assert isinstance(await state_of(hive, fourth), hm.Enqueued)


async def test_parent_already_in_a_matching_state_enqueues_at_once(hive: hm.HiveMind) -> None:
    parent = await hive.jobs.options(state=hm.Succeeded(result=1)).create(jobs.do_stuff)
    child = await hive.jobs.options(after=hm.After(parent)).create(jobs.do_stuff)
    job = await hive.jobs.get(child)
    assert [s.name for s in job.states] == ["Created", "Awaiting", "Enqueued"]
    assert [(s.queue, s.ready) for s in await hive.jobs.queue_stats()] == [("global", 1)]


@pytest.mark.parametrize(
    ("on", "parent_states", "expected"),
    [
        (hm.Continue.FAILED, [hm.Executing(), hm.Failed()], hm.Enqueued),
        (hm.Continue.FAILED, [hm.Executing(), hm.Succeeded()], hm.Awaiting),
        (hm.Continue.DELETED, [hm.Deleted()], hm.Enqueued),
        (hm.Continue.EXECUTING, [hm.Executing()], hm.Enqueued),
        (hm.Continue.FINISHED, [hm.Executing(), hm.Failed()], hm.Enqueued),
        (hm.Continue.ANY, [hm.Deleted()], hm.Enqueued),
        (hm.Continue.ANY, [hm.Executing(), hm.Idle()], hm.Awaiting),
        ("Reviewed", [Reviewed(by="ann")], hm.Enqueued),
        ([Reviewed, hm.Idle], [hm.Idle()], hm.Enqueued),
    ],
)
async def test_trigger_states(
    hive: hm.HiveMind, on: hm.Continue | str, parent_states: list[hm.State], expected: type[hm.State]
) -> None:
    parent = await hive.jobs.create(jobs.do_stuff)
    child = await hive.jobs.options(after=hm.After(parent, on=on)).create(jobs.do_stuff)
    # fresh state objects: the parameters are shared by every backend's run, and a state object
    # can be applied to one job only
    await run_to(hive, parent, *(copy.deepcopy(state) for state in parent_states))
    assert type(await state_of(hive, child)) is expected


async def test_delete_on_other_state(hive: hm.HiveMind) -> None:
    parent = await hive.jobs.create(jobs.do_stuff)
    child = await hive.jobs.options(
        after=hm.After(parent, on=hm.Continue.SUCCEEDED, delete_on_other_state=True)
    ).create(jobs.do_stuff)
    await run_to(hive, parent, hm.Executing())  # not final: the parent may still succeed
    assert isinstance(await state_of(hive, child), hm.Awaiting)
    await run_to(hive, parent, hm.Failed())
    state = await state_of(hive, child)
    assert isinstance(state, hm.Deleted) and "does not wait for" in (state.reason or "")
    finished = await hive.jobs.options(state=hm.Failed()).create(jobs.do_stuff)
    late = await hive.jobs.options(after=hm.After(finished, delete_on_other_state=True)).create(jobs.do_stuff)
    assert isinstance(await state_of(hive, late), hm.Deleted)  # decided at creation


async def test_delay_after_trigger(hive: hm.HiveMind) -> None:
    parent = await hive.jobs.create(jobs.do_stuff)
    child = await hive.jobs.options(after=hm.After(parent, delay=timedelta(minutes=10))).create(jobs.do_stuff)
    await run_to(hive, parent, hm.Executing(), hm.Succeeded())
    state = await state_of(hive, child)
    assert isinstance(state, hm.Enqueued) and state.delay_until is None
    assert state.delay == timedelta(minutes=10)  # relative: measured on the database clock
    assert [(s.ready, s.delayed) for s in await hive.jobs.queue_stats()] == [(0, 1)]


async def test_trigger_is_atomic_with_the_parent_transition(hive: hm.HiveMind) -> None:
    parent = await hive.jobs.create(jobs.do_stuff)
    child = await hive.jobs.options(after=hm.After(parent)).create(jobs.do_stuff)
    with pytest.raises(RuntimeError):
        async with hive.transaction() as tx:
            await tx.jobs.change_state(parent, hm.Succeeded())
            assert isinstance((await tx.jobs.get(child)).state, hm.Enqueued)  # inside: already released
            assert isinstance(await state_of(hive, child), hm.Awaiting)  # outside: nothing visible yet
            raise RuntimeError("roll back")
    assert isinstance(await state_of(hive, parent), hm.Enqueued)
    assert isinstance(await state_of(hive, child), hm.Awaiting)  # rolled back together
    await hive.jobs.change_state(parent, hm.Succeeded())
    assert isinstance(await state_of(hive, child), hm.Enqueued)


async def test_locked_child_is_released_when_its_lock_is(hive: hm.HiveMind) -> None:
    parent = await hive.jobs.create(jobs.do_stuff)
    child = await hive.jobs.options(after=hm.After(parent)).create(jobs.do_stuff)
    holder = await hive.jobs.get_with_lock(child, requester="someone")
    await hive.jobs.change_state(parent, hm.Succeeded())
    assert isinstance(await state_of(hive, child), hm.Awaiting)
    await holder.release()
    assert isinstance(await state_of(hive, child), hm.Enqueued)


async def test_cascade_through_several_levels(hive: hm.HiveMind) -> None:
    root = await hive.jobs.create(jobs.do_stuff)
    middle = await hive.jobs.options(after=hm.After(root, delete_on_other_state=True)).create(jobs.do_stuff)
    leaf = await hive.jobs.options(after=hm.After(middle, on=hm.Continue.DELETED)).create(jobs.do_stuff)
    await hive.jobs.change_state(root, hm.Failed(message="no"))
    assert isinstance(await state_of(hive, middle), hm.Deleted)
    assert isinstance(await state_of(hive, leaf), hm.Enqueued)


async def test_child_moved_on_by_hand_is_left_alone(hive: hm.HiveMind) -> None:
    parent = await hive.jobs.create(jobs.do_stuff)
    child = await hive.jobs.options(after=hm.After(parent)).create(jobs.do_stuff)
    await hive.jobs.change_state(child, hm.Idle(reason="not needed"))
    await hive.jobs.change_state(parent, hm.Succeeded())
    assert isinstance(await state_of(hive, child), hm.Idle)


async def test_a_job_cannot_wait_for_itself_or_a_missing_parent(hive: hm.HiveMind) -> None:
    job_id = await hive.jobs.create(jobs.do_stuff)
    async with hive.jobs.get_with_lock(job_id) as job:
        await job.change_state(hm.Awaiting(parent_id=job_id))
        with pytest.raises(hm.InvalidTransitionError, match="cannot wait for itself"):
            await job.save()
    with pytest.raises(hm.JobNotFoundError, match="999999"):
        await hive.jobs.options(after=hm.After(999999)).create(jobs.do_stuff)
