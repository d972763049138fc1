"""Rows naming arbitrary classes run nothing when jobs are read or run, on SQLite, PostgreSQL and MariaDB.

Anyone who can write to the job tables can store ``{"$hm": "enum", "c": "subprocess:Popen", "v":
["touch", FILE]}`` as a job's result, argument or data. Reading the job (``jobs.get``,
``jobs.search``, ``hivemind jobs show``) must return it with the value marked as
:class:`UndecodedValue`, and a worker must fail the job without running the command. Text with NUL
characters in arguments and job data is stored and read back unchanged on every backend.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

import hivemind_jobs as hm
from hivemind_jobs.core.codec import UndecodedValue
from tests import backends
from tests.cli.test_jobs_cli import ok
from tests.worker import jobs as worker_jobs
from tests.worker.conftest import ALLOW, FAST

T = TypeVar("T")
POPEN = "subprocess:Popen"


def popen(target: Path) -> dict[str, Any]:
    return {"$hm": "enum", "c": POPEN, "v": ["touch", str(target)]}


def run(url: str, work: Callable[[hm.HiveMind], Awaitable[T]], **options: Any) -> T:
    async def body() -> T:
        async with hm.HiveMind(url, **options) as hive:
            return await work(hive)

    return asyncio.run(body())


async def forge(hive: hm.HiveMind, url: str, target: Path, *, finished: bool) -> int:
    """A job of ``record(value: Any)`` whose stored argument, result and data name subprocess:Popen."""
    job_id = await hive.jobs.create(worker_jobs.record, "placeholder")
    ((text,),) = backends.raw(url, "SELECT invocation FROM {job} WHERE id = ?", job_id)
    document = json.loads(text)
    assert document["args"] == {"value": "placeholder"}
    document["args"]["value"] = popen(target)
    backends.raw(url, "UPDATE {job} SET invocation = ? WHERE id = ?", json.dumps(document), job_id)
    await hive.jobs.set_data(job_id, "forged", "placeholder")
    backends.raw(
        url,
        "UPDATE {job_data} SET value = ? WHERE job_id = ? AND name = ?",
        json.dumps({"list": [popen(target)]}),
        job_id,
        "forged",
    )
    if finished:
        assert await hive.jobs.change_state(job_id, hm.Succeeded(result="placeholder"))
        fields = json.dumps({"result": {"nested": [popen(target), {"$hm": "dataclass", "c": POPEN, "v": {}}]}})
        backends.raw(
            url, "UPDATE {job_state} SET fields = ? WHERE job_id = ? AND name = ?", fields, job_id, "Succeeded"
        )
    return job_id


def assert_nothing_ran(target: Path) -> None:
    time.sleep(0.2)  # a started process would need a moment to create the file
    assert not target.exists(), "reading a job ran the command a stored value named"


def assert_marked_result(job: hm.BackgroundJob, target: Path) -> None:
    state = job.state
    assert isinstance(state, hm.Succeeded), state
    first, second = state.result["nested"]
    assert isinstance(first, UndecodedValue) and isinstance(second, UndecodedValue)
    assert first.data == popen(target) and first.class_name == POPEN
    assert POPEN in first.reason and "register_type" in first.reason
    assert job.invocation.arguments == {"value": popen(target)}  # arguments are read as stored


async def test_reading_a_forged_job_runs_nothing_and_marks_the_values(db_url: str, tmp_path: Path) -> None:
    target = tmp_path / "created"
    async with hm.HiveMind(db_url) as hive:
        job_id = await forge(hive, db_url, target, finished=True)
        job = await hive.jobs.get(job_id)
        assert_nothing_ran(target)
        assert_marked_result(job, target)
        found = (await hive.jobs.search(hm.job.id == job_id)).jobs
        assert [job.id for job in found] == [job_id]
        assert_marked_result(found[0], target)
        data = await hive.jobs.get_data(job_id, "forged")
        assert isinstance(data["list"][0], UndecodedValue) and data["list"][0].class_name == POPEN
        hinted: Any = await hive.jobs.get_data(job_id, "forged", dict[str, list[int]])
        assert isinstance(hinted["list"][0], UndecodedValue)  # the hint does not name the class either
    assert_nothing_ran(target)


def test_hivemind_jobs_show_of_a_forged_job_runs_nothing(db_url: str, tmp_path: Path) -> None:
    target = tmp_path / "created"
    job_id = run(db_url, lambda hive: forge(hive, db_url, target, finished=True))
    text = ok("show", str(job_id), "--url", db_url).stdout
    assert_nothing_ran(target)
    assert "state:      Succeeded" in text and POPEN in text
    document = json.loads(ok("show", str(job_id), "--url", db_url, "--json").stdout)
    marked = document["state"]["fields"]["result"]["nested"][0]
    assert marked["data"] == popen(target) and POPEN in marked["reason"]
    assert document["invocation"]["args"] == {"value": popen(target)}
    ok("ls", "--url", db_url)
    assert_nothing_ran(target)


async def test_a_colony_fails_a_job_whose_any_argument_names_an_unregistered_class(db_url: str, tmp_path: Path) -> None:
    target = tmp_path / "created"
    options = hm.Options(retry=hm.RetryPolicy(max_retries=3))
    async with hm.HiveMind(db_url, options=options) as hive:
        job_id = await forge(hive, db_url, target, finished=False)
        colony = hive.colony(name="test", allow=ALLOW, options=FAST)
        colony.swarm("main", drones=1)
        await colony.run(burst=True)
        job = await hive.jobs.get(job_id)
    assert worker_jobs.RAN == []
    assert_nothing_ran(target)
    state = job.state
    assert isinstance(state, hm.Failed), state
    assert state.exception_type == "hivemind_jobs.errors.SerializationError"
    assert state.message is not None and POPEN in state.message and "argument 'value'" in state.message
    assert [state.name for state in job.states] == ["Created", "Enqueued", "Executing", "Failed"]  # not retried


@pytest.mark.parametrize(
    "value",
    ["a\x00b", "\x00", {"k\x00ey": ["\x00", ("t\x00",)]}, ["é\x00😀"]],
    ids=["inside", "alone", "key-and-items", "unicode"],
)
async def test_nul_characters_in_arguments_and_data_round_trip(db_url: str, value: Any) -> None:
    """NUL is stored as the JSON escape \\u0000 in text columns, which every backend keeps as it is."""
    worker_jobs.RAN.clear()
    async with hm.HiveMind(db_url) as hive:
        job_id = await hive.jobs.create(worker_jobs.record, value)
        stored = (await hive.jobs.get(job_id)).invocation.arguments["value"]
        assert hive.codec.decode(stored, Any, strict=True) == value
        await hive.jobs.set_data(job_id, "nul", value)
        assert await hive.jobs.get_data(job_id, "nul") == value
        colony = hive.colony(name="test", allow=ALLOW, options=FAST)
        colony.swarm("main", drones=1)
        await colony.run(burst=True)
        assert [value] == worker_jobs.RAN
        assert isinstance((await hive.jobs.get(job_id)).state, hm.Succeeded)
        found = (await hive.jobs.search(hm.job.id == job_id)).jobs
        assert [job.id for job in found] == [job_id]
    worker_jobs.RAN.clear()


@pytest.mark.parametrize("value", ["n\x00te", ["a", {"k\x00": "v"}]])
async def test_a_result_with_unstorable_text_is_stored_as_its_repr(db_url: str, value: Any) -> None:
    """NUL cannot be compared alike as state text on every backend: the job still succeeds (it ran),
    its result is kept as its repr and a WARNING job log says why; the colony does not stall."""
    async with hm.HiveMind(db_url) as hive:
        job_id = await hive.jobs.create(worker_jobs.echo_back, value)
        colony = hive.colony(name="test", allow=ALLOW, options=FAST)
        colony.swarm("main", drones=1)
        await asyncio.wait_for(colony.run(burst=True), timeout=30)
        job = await hive.jobs.get(job_id)
        assert isinstance(job.state, hm.Succeeded), job.state
        assert job.state.result == repr(value)
        logs = await hive.jobs.get_logs(job_id)
        assert any("stored as its repr" in entry.message and "NUL" in entry.message for entry in logs)


async def test_a_state_nested_deeper_than_the_parser_goes_still_reads(db_url: str) -> None:
    async with hm.HiveMind(db_url) as hive:
        job_id = await hive.jobs.create(worker_jobs.note, "deep")
        deep = '{"x":' * 100_000 + "1" + "}" * 100_000
        backends.raw(
            db_url, "UPDATE {job_state} SET fields = ? WHERE job_id = ? AND name = ?", deep, job_id, "Enqueued"
        )
        job = await hive.jobs.get(job_id)
        assert job.state.name == "Enqueued"  # read (its unreadable fields left out), not a RecursionError
        assert [found.id for found in (await hive.jobs.search(hm.state == hm.Enqueued)).jobs] == [job_id]
