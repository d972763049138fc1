"""Swarms with ``execution="process"``: sync jobs run in child processes, in parallel and without
starving the event loop; a timed-out or crashed child is replaced and its job recorded Failed; logs
and job data of a child reach the job; a stop ends the children."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from click.testing import CliRunner

import hivemind_jobs as hm
from hivemind_jobs.cli.main import cli
from tests.processes import child_jobs

ALLOW = hm.AllowList(modules=["tests.processes"])
FAST = hm.ColonyOptions(
    poll_interval=timedelta(milliseconds=50),
    watch_interval=timedelta(milliseconds=100),
    graceful_stop=timedelta(milliseconds=500),
    state_sync_interval=timedelta(milliseconds=200),
)


@pytest_asyncio.fixture
async def phive(db_url: str) -> AsyncIterator[hm.HiveMind]:
    options = hm.Options(lock_timeout=timedelta(seconds=3), retry=hm.RetryPolicy(max_retries=0))
    async with hm.HiveMind(db_url, options=options) as hive:
        yield hive


def _colony(hive: hm.HiveMind, drones: int = 1, **options: object) -> hm.Colony:
    import dataclasses

    colony = hive.colony(name="processes", allow=ALLOW, options=dataclasses.replace(FAST, **options))  # type: ignore[arg-type]
    colony.swarm("cpu", drones=drones, execution="process")
    return colony


async def _until(condition: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


def _ended(hive: hm.HiveMind, *job_ids: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        for job_id in job_ids:
            if not isinstance((await hive.jobs.get(job_id)).state, hm.Succeeded | hm.Failed):
                return False
        return True

    return check


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_cpu_bound_jobs_run_in_parallel_processes_and_the_loop_stays_responsive(phive: hm.HiveMind) -> None:
    ids = [await phive.jobs.create(child_jobs.burn, 1.5) for _ in range(2)]
    gaps: list[float] = []

    async def tick() -> None:
        last = time.monotonic()
        for _ in range(100_000):
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    try:
        async with _colony(phive, drones=2):
            await _until(_ended(phive, *ids))
    finally:
        ticker.cancel()
    results = [(await phive.jobs.get(job_id)).state for job_id in ids]
    assert all(isinstance(state, hm.Succeeded) for state in results), results
    runs = [state.result for state in results]  # type: ignore[attr-defined]
    assert len({run["pid"] for run in runs} | {os.getpid()}) == 3  # two children, neither is this process
    assert max(run["start"] for run in runs) < min(run["end"] for run in runs)  # they ran at the same time
    assert max(gaps) < 0.75  # the loop was never held while they burned a core each


async def test_a_timed_out_job_has_its_process_killed_and_replaced(phive: hm.HiveMind) -> None:
    stuck = await phive.jobs.options(timeout=timedelta(milliseconds=500)).create(child_jobs.stuck, 60.0)
    after = await phive.jobs.create(child_jobs.pid_of)
    started = time.monotonic()
    async with _colony(phive):
        await _until(_ended(phive, stuck, after))
    took = time.monotonic() - started
    job = await phive.jobs.get(stuck)
    assert isinstance(job.state, hm.Failed) and job.state.exception_type == "builtins.TimeoutError"
    assert "JobProcessExited" in (job.state.traceback or "")
    [killed] = [
        int(entry.message.split()[1]) for entry in await phive.jobs.get_logs(stuck) if entry.message.startswith("pid ")
    ]
    assert not _alive(killed)
    next_pid = (await phive.jobs.get(after)).state.result  # type: ignore[attr-defined]
    assert next_pid != killed and next_pid != os.getpid()
    assert took < 20


async def test_logs_and_data_of_a_child_reach_the_job(phive: hm.HiveMind) -> None:
    job_id = await phive.jobs.create(child_jobs.talkative, "through the parent")
    async with _colony(phive):
        await _until(_ended(phive, job_id))
    state = (await phive.jobs.get(job_id)).state
    assert isinstance(state, hm.Succeeded), state
    result = state.result
    assert result["pid"] != os.getpid() and result["job"] == job_id and result["current"] is True
    assert result["echoed"] == {"value": "through the parent"} and result["missing"] == "none"
    assert await phive.jobs.get_data(job_id, "echo") == {"value": "through the parent"}
    messages = [entry.message for entry in await phive.jobs.get_logs(job_id)]
    assert f"hello from cpu.drone-1 in {result['pid']}" in messages


async def test_a_crashing_child_fails_its_job_and_is_replaced(phive: hm.HiveMind) -> None:
    crashed = await phive.jobs.create(child_jobs.crash, 7)
    failing = await phive.jobs.create(child_jobs.boom, "bad input")
    after = await phive.jobs.create(child_jobs.pid_of)
    async with _colony(phive):
        await _until(_ended(phive, crashed, failing, after))
    state = (await phive.jobs.get(crashed)).state
    assert isinstance(state, hm.Failed)
    assert state.exception_type == "hivemind_jobs.colony.processes.JobProcessExited"
    assert "exited with code 7" in (state.message or "")
    raised = (await phive.jobs.get(failing)).state
    assert isinstance(raised, hm.Failed) and raised.exception_type == "builtins.ValueError"
    assert raised.message == "bad input" and "in boom" in (raised.traceback or "")
    assert isinstance((await phive.jobs.get(after)).state, hm.Succeeded)


async def test_a_stop_kills_a_running_child_and_requeues_its_job(phive: hm.HiveMind) -> None:
    job_id = await phive.jobs.create(child_jobs.stuck, 60.0)
    colony = _colony(phive)
    async with colony:
        await _until(lambda: _has_pid_log(phive, job_id))
        stop_asked = time.monotonic()
        colony.stop()
    stopped_in = time.monotonic() - stop_asked
    [pid] = [
        int(entry.message.split()[1]) for entry in await phive.jobs.get_logs(job_id) if entry.message.startswith("pid ")
    ]
    assert not _alive(pid)
    job = await phive.jobs.get(job_id)
    assert isinstance(job.state, hm.Enqueued) and "shutdown" in (job.state.reason or "")
    assert job.locked_by is None
    assert stopped_in < 8


async def _has_pid_log(hive: hm.HiveMind, job_id: int) -> bool:
    return any(entry.message.startswith("pid ") for entry in await hive.jobs.get_logs(job_id))


async def test_a_cancel_request_reaches_the_child(phive: hm.HiveMind) -> None:
    job_id = await phive.jobs.create(child_jobs.cooperative, 60.0)
    async with _colony(phive):
        await _until(lambda: _has_pid_log(phive, job_id))
        assert await phive.jobs.cancel(job_id, reason="not needed") is hm.CancelResult.REQUESTED
        await _until(lambda: _state_is(phive, job_id, hm.Idle))
    [pid] = [
        int(entry.message.split()[1]) for entry in await phive.jobs.get_logs(job_id) if entry.message.startswith("pid ")
    ]
    job = await phive.jobs.get(job_id)
    assert job.state.reason == "not needed" and job.locked_by is None
    assert pid != os.getpid()


async def _state_is(hive: hm.HiveMind, job_id: int, kind: type[hm.State]) -> bool:
    return isinstance((await hive.jobs.get(job_id)).state, kind)


def test_the_worker_command_runs_a_swarm_in_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"process_app_{tmp_path.name}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            f"""
            import os

            import hivemind_jobs as hm

            hive = hm.HiveMind("sqlite:///{tmp_path / "cli.db"}")


            def pid_of() -> int:
                return os.getpid()
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    module = __import__(name)
    try:

        async def enqueue() -> list[int]:
            async with module.hive:
                return [await module.hive.jobs.create(module.pid_of) for _ in range(3)]

        ids = asyncio.run(enqueue())
        result = CliRunner().invoke(cli, ["worker", f"{name}:hive", "--swarm", "main:2@process,timeout=30", "--burst"])
        assert result.exit_code == 0, result.output

        async def results() -> list[object]:
            async with hm.HiveMind(f"sqlite:///{tmp_path / 'cli.db'}") as hive:
                return [(await hive.jobs.get(job_id)).state.result for job_id in ids]  # type: ignore[attr-defined]

        pids = asyncio.run(results())
        assert all(isinstance(pid, int) and pid != os.getpid() for pid in pids), pids
    finally:
        sys.modules.pop(name, None)


async def test_children_can_be_started_by_a_forkserver(phive: hm.HiveMind) -> None:
    job_id = await phive.jobs.create(child_jobs.pid_of)
    async with _colony(phive, process_start_method="forkserver"):
        await _until(_ended(phive, job_id))
    state = (await phive.jobs.get(job_id)).state
    assert isinstance(state, hm.Succeeded) and state.result != os.getpid()


def test_bad_execution_settings_are_refused(tmp_path: Path) -> None:
    hive = hm.HiveMind(f"sqlite:///{tmp_path / 'unused.db'}")
    with pytest.raises(hm.ConfigurationError, match="execution must be 'thread' or 'process'"):
        hive.colony(name="refused").swarm("main", execution="processes")
    with pytest.raises(hm.ConfigurationError, match="process_start_method must be 'spawn' or 'forkserver'"):
        hm.ColonyOptions(process_start_method="fork")


def test_a_sub_swarm_runs_where_its_parent_does_unless_told(tmp_path: Path) -> None:
    colony = hm.HiveMind(f"sqlite:///{tmp_path / 'unused.db'}").colony(name="tree")
    parent = colony.swarm("cpu", execution="process", timeout=timedelta(seconds=30))
    child = parent.swarm("child")
    threaded = parent.swarm("threaded", execution="thread", timeout=timedelta(seconds=5))
    assert (parent.run_execution(), child.run_execution(), threaded.run_execution()) == ("process", "process", "thread")
    assert (child.run_timeout(), threaded.run_timeout()) == (timedelta(seconds=30), timedelta(seconds=5))
    assert colony.swarm("plain").run_execution() == "thread"
