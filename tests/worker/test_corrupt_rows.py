"""Stored jobs a worker must never run as stored: a target that walks out of the allowed modules,
and a call this build cannot decode. Neither runs, neither stalls the queue behind it, and the
undecodable job stays readable, deletable and requeueable.

Rows are corrupted with raw SQL on a separate connection, as another program (or an older or newer
build of HiveMind) could have written them.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
from pathlib import Path

import pytest

import hivemind_jobs as hm
from tests import backends
from tests.worker import jobs
from tests.worker.conftest import colony_of

# the allowed module (tests.worker) holds this name: a stored "tests.worker.test_corrupt_rows:os.system"
# resolves to os.system unless the resolved object itself is checked
assert os.system is not None

#: a burst run that does not end within this time is stuck (the claim retried forever)
BURST_TIMEOUT = 20.0

NOT_JSON = "{not json"
FUTURE_FORMAT = json.dumps({"v": 99, "target": "tests.worker.jobs:note", "async": False, "args": {"label": "B"}})


async def _burst(hive: hm.HiveMind, drones: int = 2) -> hm.Colony:
    colony = colony_of(hive, drones=drones)
    await asyncio.wait_for(colony.run(burst=True), timeout=BURST_TIMEOUT)
    return colony


def _set_column(url: str, job_id: int, column: str, text: str) -> None:
    assert column in ("invocation", "middleware")  # a column name, not a value: never from input
    backends.raw(url, f"UPDATE {{job}} SET {column} = ? WHERE id = ?", text, job_id)


def _column(url: str, job_id: int, column: str) -> str:
    assert column in ("invocation", "middleware")
    return str(backends.raw(url, f"SELECT {column} FROM {{job}} WHERE id = ?", job_id)[0][0])


# ----------------------------------------------------------------------------- the allow list


async def test_a_stored_target_walking_out_of_the_allowed_module_fails_and_never_runs(
    whive: hm.HiveMind, db_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "created-by-os-system"
    job_id = await whive.jobs.options(retry=hm.RetryPolicy(max_retries=5)).create(jobs.note, "legit")
    walked = {
        "v": 1,
        "target": f"{__name__}:os.system",
        "async": False,
        "args": {"command": f"touch {shlex.quote(str(marker))}"},
    }
    _set_column(db_url, job_id, "invocation", json.dumps(walked))
    after = await whive.jobs.create(jobs.note, "after")

    await _burst(whive)

    job = await whive.jobs.get(job_id)
    assert not marker.exists()
    assert isinstance(job.state, hm.Failed), job.state
    message = job.state.message or ""
    assert "not allowed" in message and "the module os" in message, message
    assert job.state.exception_type == "hivemind_jobs.errors.JobDefinitionError"
    assert job.state.reason == "fatal error: not retried"
    assert job.get_property(hm.colony.RETRIES_PROPERTY) is None
    assert [state.name for state in job.states].count("Executing") == 1
    assert isinstance((await whive.jobs.get(after)).state, hm.Succeeded)
    assert jobs.RAN == ["after"]


# ----------------------------------------------------------------------------- undecodable rows

CORRUPTIONS = [
    pytest.param("invocation", NOT_JSON, "stored invocation is not valid JSON", id="invocation-not-json"),
    pytest.param("invocation", FUTURE_FORMAT, "format version 99", id="invocation-future-version"),
    pytest.param("middleware", NOT_JSON, "stored middleware list is not valid JSON", id="middleware-not-json"),
    pytest.param("middleware", '[{"type": 5}]', "stored middleware entry 0 has no type", id="middleware-malformed"),
]


@pytest.mark.parametrize(("column", "stored", "problem"), CORRUPTIONS)
async def test_an_undecodable_job_fails_in_the_claim_and_the_others_run(
    whive: hm.HiveMind, db_url: str, column: str, stored: str, problem: str
) -> None:
    first = await whive.jobs.create(jobs.note, "A")
    broken = await whive.jobs.options(retry=hm.RetryPolicy(max_retries=5)).create(jobs.note, "B")
    last = await whive.jobs.create(jobs.note, "C")
    _set_column(db_url, broken, column, stored)

    colony = await _burst(whive, drones=1)  # one drone: C waits behind B

    assert sorted(jobs.RAN) == ["A", "C"]
    for job_id in (first, last):
        assert isinstance((await whive.jobs.get(job_id)).state, hm.Succeeded)
    job = await whive.jobs.get(broken)
    assert isinstance(job.state, hm.Failed), job.state
    assert problem in (job.state.reason or "") and problem in (job.state.message or "")
    assert job.state.exception_type == "hivemind_jobs.errors.SerializationError"
    assert [state.name for state in job.states] == ["Created", "Enqueued", "Failed"]  # never Executing
    assert job.get_property(hm.colony.RETRIES_PROPERTY) is None
    assert job.locked_by is None
    assert problem in (job.invocation.problem or "")
    assert colony.processed == 2
    assert _column(db_url, broken, column) == stored  # kept as it was stored


@pytest.mark.parametrize(("column", "stored", "problem"), CORRUPTIONS)
async def test_an_undecodable_job_stays_readable_requeueable_and_deletable(
    whive: hm.HiveMind, db_url: str, column: str, stored: str, problem: str
) -> None:
    broken = await whive.jobs.options(properties={"case": "broken"}).create(jobs.note, "B")
    _set_column(db_url, broken, column, stored)

    job = await whive.jobs.get(broken)
    assert isinstance(job.state, hm.Enqueued)
    assert problem in (job.invocation.problem or "")
    if column == "invocation":
        assert job.invocation.raw == stored
    page = await whive.jobs.search(hm.prop("case") == "broken")
    assert [found.id for found in page.jobs] == [broken]
    assert page.jobs[0].invocation.problem == job.invocation.problem

    # requeue by hand: lock, elect, save
    async with whive.jobs.get_with_lock(broken) as locked:
        assert await locked.change_state(hm.Enqueued(reason="by hand"))
        await locked.save()
    assert (await whive.jobs.get(broken)).state.reason == "by hand"
    await _burst(whive)
    assert isinstance((await whive.jobs.get(broken)).state, hm.Failed)

    result = await whive.jobs.requeue_where(hm.prop("case") == "broken")
    assert result.changed == 1
    assert isinstance((await whive.jobs.get(broken)).state, hm.Enqueued)
    assert await whive.jobs.change_state(broken, hm.Idle(reason="parked"))

    assert await whive.jobs.delete(broken) is hm.DeleteResult.DELETED
    deleted = await whive.jobs.get(broken)
    assert isinstance(deleted.state, hm.Deleted)
    assert _column(db_url, broken, column) == stored
    assert jobs.RAN == []


async def test_a_job_with_an_impossible_stored_priority_fails_in_the_claim(whive: hm.HiveMind, db_url: str) -> None:
    broken = await whive.jobs.create(jobs.note, "B")
    after = await whive.jobs.create(jobs.note, "C")
    backends.raw(db_url, "UPDATE {job} SET priority = ? WHERE id = ?", 99, broken)

    job = await whive.jobs.get(broken)
    assert "priority 99" in (job.invocation.problem or "")
    await _burst(whive, drones=1)

    assert jobs.RAN == ["C"] and isinstance((await whive.jobs.get(after)).state, hm.Succeeded)
    failed = (await whive.jobs.get(broken)).state
    assert isinstance(failed, hm.Failed) and "priority 99" in (failed.reason or "")
    assert await whive.jobs.delete(broken) is hm.DeleteResult.DELETED


async def test_the_lock_monitor_rescues_an_undecodable_job(whive: hm.HiveMind, db_url: str) -> None:
    """A job claimed by a worker that died (here: locked by a holder that never heartbeats) and
    then found undecodable is rescued like any other, and then failed by the next claim."""
    from hivemind_jobs.daemons.lock_monitor import rescue_expired_locks

    broken = await whive.jobs.create(jobs.note, "B")
    locked = await whive.jobs.try_lock(broken, requester="a-dead-worker")
    assert locked is not None
    _set_column(db_url, broken, "invocation", NOT_JSON)
    await asyncio.sleep(2.2)  # the hive's lock timeout is 2 s
    assert await rescue_expired_locks(whive.env(), "monitor", max_rescues=3) == 1
    assert (await whive.jobs.get(broken)).locked_by is None
    await _burst(whive)
    assert isinstance((await whive.jobs.get(broken)).state, hm.Failed)


async def test_a_continuation_of_an_undecodable_job_is_triggered(whive: hm.HiveMind, db_url: str) -> None:
    """A child whose own stored call is undecodable is still enqueued when its parent finishes,
    then fails in the claim; the parent's completion is not rolled back by it."""
    parent = await whive.jobs.create(jobs.note, "parent")
    child = await whive.jobs.options(after=hm.After(parent)).create(jobs.note, "child")
    _set_column(db_url, child, "invocation", NOT_JSON)
    await _burst(whive)
    assert jobs.RAN == ["parent"]
    assert isinstance((await whive.jobs.get(parent)).state, hm.Succeeded)
    child_job = await whive.jobs.get(child)
    assert [state.name for state in child_job.states] == ["Created", "Awaiting", "Enqueued", "Failed"]
