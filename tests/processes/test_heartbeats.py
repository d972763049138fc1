"""Heartbeats with real worker processes: a job that blocks its event loop keeps its lock, and a
worker whose database traffic is silently dropped gives its jobs up before anyone else can run them.

Workers run as ``python -m hivemind_jobs.cli worker tests.processes.heartbeat_jobs:hive`` on a fresh
database of each backend; their output goes to a log file shown when an assertion fails.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import pytest_asyncio

import hivemind_jobs as hm
from tests.processes import heartbeat_jobs
from tests.processes.support import BlackholeProxy, WorkerProcess, WorkerProcesses, colony_running, wait_until

APP = "tests.processes.heartbeat_jobs:hive"
LOCK_TIMEOUT = 2.0
FAIL_AFTER = LOCK_TIMEOUT * 0.75  # ColonyOptions.lock_safety's default margin


class Workers(WorkerProcesses):
    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path, APP)

    def start(self, name: str, url: str, *, drones: int = 1) -> WorkerProcess:
        env = {heartbeat_jobs.URL_ENV: url, heartbeat_jobs.LOCK_TIMEOUT_ENV: str(LOCK_TIMEOUT)}
        return self.launch(name, env, drones=drones)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    started = Workers(tmp_path)
    try:
        yield started
    finally:
        started.cleanup()


@pytest_asyncio.fixture
async def client(backend_url: str) -> AsyncIterator[hm.HiveMind]:
    async with hm.HiveMind(backend_url, options=hm.Options(lock_timeout=timedelta(seconds=LOCK_TIMEOUT))) as hive:
        yield hive


@pytest.mark.timeout(120)
async def test_a_job_that_blocks_its_event_loop_keeps_its_lock_and_runs_once(
    tmp_path: Path, backend_url: str, client: hm.HiveMind, workers: Workers
) -> None:
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    worker_a = workers.start("worker-a", backend_url)
    worker_b = workers.start("worker-b", backend_url)
    for worker in (worker_a, worker_b):
        await wait_until(lambda w=worker: colony_running(client, w.name), 30, f"{worker.name} runs", workers)
    blocked_for = 3 * LOCK_TIMEOUT
    job_id = await client.jobs.create(heartbeat_jobs.block_loop, str(runs_dir), 1, blocked_for)

    async def succeeded() -> bool:
        return isinstance((await client.jobs.get(job_id)).state, hm.Succeeded)

    await wait_until(succeeded, blocked_for + 20, "the job succeeds", workers)
    await asyncio.sleep(LOCK_TIMEOUT)  # time for a wrong second run to start
    job = await client.jobs.get(job_id)
    names = [state.name for state in job.states]
    runs = heartbeat_jobs.read_runs(runs_dir)
    assert len(runs) == 1, (runs, workers.logs())
    [(pid, by_number)] = runs.items()
    assert [event for event, _ in by_number[1]] == ["start", "end"], (runs, workers.logs())
    assert names.count("Executing") == 1, (names, workers.logs())
    assert job.get_property("hm.rescues") is None, workers.logs()
    assert isinstance(job.state, hm.Succeeded)
    assert job.state.result == pid

    blocked = worker_a if worker_a.pid == pid else worker_b
    warnings = [
        line
        for line in blocked.output().splitlines()
        if "WARNING hivemind_jobs.colony" in line and "event loop has not run" in line
    ]
    assert len(warnings) == 1, blocked.output()  # one warning per stall
    assert f"job {job_id} (tests.processes.heartbeat_jobs:block_loop)" in warnings[0]
    assert "sync job" in warnings[0]
    for worker in (worker_a, worker_b):
        assert "could not be confirmed" not in worker.output()
        worker.process.send_signal(signal.SIGTERM)
    assert [worker_a.process.wait(timeout=20), worker_b.process.wait(timeout=20)] == [0, 0], workers.logs()


@pytest.fixture
def server_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(request.param)
    return url


@pytest.mark.timeout(120)
@pytest.mark.parametrize("server_url", ["postgres_url", "mariadb_url"], indirect=True, ids=["postgres", "mariadb"])
async def test_a_worker_whose_database_traffic_is_dropped_gives_its_jobs_up_before_they_are_rescued(
    tmp_path: Path, server_url: str, workers: Workers
) -> None:
    parts = urlsplit(server_url)
    assert parts.hostname is not None and parts.port is not None
    proxy = BlackholeProxy(parts.hostname, parts.port)
    proxied = server_url.replace(f":{parts.port}/", f":{proxy.port}/", 1)
    assert proxied != server_url
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    total = 3
    try:
        async with hm.HiveMind(server_url, options=hm.Options(lock_timeout=timedelta(seconds=LOCK_TIMEOUT))) as client:
            worker_a = workers.start("worker-a", proxied, drones=total)
            await wait_until(lambda: colony_running(client, "worker-a"), 30, "worker A runs", workers)
            ids = [
                await client.jobs.create(heartbeat_jobs.long_first_run, str(runs_dir), number, 30.0, 0.5)
                for number in range(total)
            ]

            async def a_runs_them() -> bool:
                states = [(await client.jobs.get(job_id)).state for job_id in ids]
                runs = heartbeat_jobs.read_runs(runs_dir).get(worker_a.pid, {})
                return (
                    all(isinstance(s, hm.Executing) and s.colony == "worker-a" for s in states) and len(runs) == total
                )

            await wait_until(a_runs_them, 30, "worker A runs every job", workers)
            worker_b = workers.start("worker-b", server_url, drones=total)
            await wait_until(lambda: colony_running(client, "worker-b"), 30, "worker B runs", workers)
            await asyncio.sleep(LOCK_TIMEOUT)  # A's heartbeats keep its locks meanwhile
            rescues = [(await client.jobs.get(job_id)).get_property("hm.rescues") for job_id in ids]
            assert rescues == [None] * total, workers.logs()

            proxy.blackhole()
            dropped_at = time.monotonic()

            async def b_finished_them() -> bool:
                states = [(await client.jobs.get(job_id)).state for job_id in ids]
                return all(isinstance(state, hm.Succeeded) for state in states)

            await wait_until(b_finished_them, 30, "worker B re-runs and finishes every job", workers)
            await asyncio.sleep(0.5)
            runs = heartbeat_jobs.read_runs(runs_dir)
            a_runs = runs.get(worker_a.pid, {})
            b_runs = runs.get(worker_b.pid, {})
            for number in range(total):
                a_events = a_runs.get(number, [])
                b_events = b_runs.get(number, [])
                assert [event for event, _ in b_events] == ["start", "end"], (runs, workers.logs())
                # A's run ended (cancelled) before B's run of the same job started: no overlap
                assert [event for event, _ in a_events] == ["start", "cancelled"], (runs, workers.logs())
                a_end = a_events[-1][1]
                b_start = b_events[0][1]
                assert a_end < b_start, (number, a_end - b_start, workers.logs())
                # and within the safety margin of A's last confirmed heartbeat, before its lock expired
                assert a_end - dropped_at < LOCK_TIMEOUT, (number, a_end - dropped_at, workers.logs())
            assert re.search(
                r"WARNING hivemind_jobs\.colony: job \d+: its lock could not be confirmed", worker_a.output()
            )
            for job_id in ids:
                job = await client.jobs.get(job_id)
                assert isinstance(job.state, hm.Succeeded) and job.state.result == worker_b.pid
                assert job.get_property("hm.rescues") == 1
            worker_b.process.send_signal(signal.SIGTERM)
            assert worker_b.process.wait(timeout=20) == 0, workers.logs()
    finally:
        proxy.close()
        workers.cleanup()  # A cannot stop cleanly without its database: it is killed
