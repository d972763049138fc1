"""Stopping real worker processes: a stop never lets a job run in two places, and a stop is bounded.

Workers run as ``python -m hivemind_jobs.cli worker tests.processes.stop_jobs:colony`` on a fresh
database of each backend (one drone, graceful stop 1 s, shutdown timeout 2 s, lock timeout 2 s);
every run of a job writes start/end lines with the system-wide monotonic clock to a file of its
process. Worker output goes to a log file shown when an assertion fails.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import pytest_asyncio

import hivemind_jobs as hm
from tests.processes import stop_jobs
from tests.processes.support import BlackholeProxy, WorkerProcess, WorkerProcesses, colony_running, wait_until

APP = "tests.processes.stop_jobs:colony"
LOCK_TIMEOUT = 2.0
GRACEFUL_STOP = 1.0
SHUTDOWN_TIMEOUT = 2.0
BUDGET = GRACEFUL_STOP + SHUTDOWN_TIMEOUT
#: process start-up of the interpreter's exit, signal delivery and the test's own polling
MARGIN = 1.5


Worker = WorkerProcess


class Workers(WorkerProcesses):
    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path, APP)

    def start(self, name: str, url: str, *, lock_timeout: float = LOCK_TIMEOUT) -> WorkerProcess:
        env = {
            stop_jobs.URL_ENV: url,
            stop_jobs.LOCK_TIMEOUT_ENV: str(lock_timeout),
            stop_jobs.GRACEFUL_STOP_ENV: str(GRACEFUL_STOP),
            stop_jobs.SHUTDOWN_TIMEOUT_ENV: str(SHUTDOWN_TIMEOUT),
            stop_jobs.NAME_ENV: name,
        }
        return self.launch(name, env, arguments=())  # the app's colony sets itself up


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


async def wait_for_exit(worker: Worker, timeout: float) -> tuple[int, float]:
    """The exit code and the monotonic time the exit was seen (no earlier than the real exit)."""
    deadline = time.monotonic() + timeout
    while worker.process.poll() is None:
        if time.monotonic() > deadline:
            pytest.fail(f"{worker.name} still runs {timeout:.0f} s after the stop signal\n{worker.output()[-5000:]}")
        await asyncio.sleep(0.02)
    return worker.process.returncode, time.monotonic()


def intervals(runs_dir: Path, pid: int, exited_at: float | None) -> list[tuple[float, float]]:
    """The runs of one process as (start, end); a run its process never ended (it exited meanwhile,
    taking the thread with it) ends when the exit was seen."""
    result: list[tuple[float, float]] = []
    start: float | None = None
    for owner, event, at in stop_jobs.read_runs(runs_dir):
        if owner != pid:
            continue
        if event == "start":
            start = at
        elif start is not None:
            result.append((start, at))
            start = None
    if start is not None:
        assert exited_at is not None, "a run of a live process has no end"
        result.append((start, exited_at))
    return result


@pytest.mark.timeout(120)
@pytest.mark.parametrize("signals", [1, 2], ids=["sigterm", "double-sigterm"])
@pytest.mark.parametrize(
    ("job", "seconds"),
    [
        # looks at ctx.cancelled every 0.5 s: it ends within the budget, its run goes back to the queue
        pytest.param(stop_jobs.cooperative, 3.0, id="cooperative"),
        # ignores the cancel and outlasts the whole budget: its thread still runs when the stop ends
        pytest.param(stop_jobs.uncooperative, BUDGET + 3.0, id="uncooperative"),
    ],
)
async def test_a_stopping_worker_never_runs_a_sync_job_next_to_another_worker(
    tmp_path: Path,
    backend_url: str,
    client: hm.HiveMind,
    workers: Workers,
    job: Callable[..., int],
    seconds: float,
    signals: int,
) -> None:
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    worker_a = workers.start("worker-a", backend_url)
    await wait_until(lambda: colony_running(client, "worker-a"), 30, "worker A runs", workers)
    job_id = await client.jobs.create(job, str(runs_dir), seconds)  # type: ignore[arg-type]

    async def a_runs_it() -> bool:
        return any(pid == worker_a.pid for pid, _, _ in stop_jobs.read_runs(runs_dir))

    await wait_until(a_runs_it, 30, "worker A runs the job", workers)
    worker_b = workers.start("worker-b", backend_url)  # runs throughout, ready to take the job
    await wait_until(lambda: colony_running(client, "worker-b"), 30, "worker B runs", workers)

    worker_a.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    if signals == 2:
        await asyncio.sleep(0.3)
        worker_a.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
    code, exited_at = await wait_for_exit(worker_a, 30)
    took = exited_at - signalled
    assert code == 0, workers.logs()
    if signals == 2:
        assert took < 1.5, (took, workers.logs())  # without waiting for the job's thread
    else:
        assert took < BUDGET + MARGIN, (took, workers.logs())

    async def succeeded() -> bool:
        return isinstance((await client.jobs.get(job_id)).state, hm.Succeeded)

    await wait_until(succeeded, seconds + LOCK_TIMEOUT + 20, "the job succeeds", workers)
    final = await client.jobs.get(job_id)
    assert isinstance(final.state, hm.Succeeded)
    assert final.state.result == worker_b.pid, workers.logs()
    a_runs = intervals(runs_dir, worker_a.pid, exited_at)
    b_runs = intervals(runs_dir, worker_b.pid, None)
    assert len(a_runs) == 1 and len(b_runs) == 1, (stop_jobs.read_runs(runs_dir), workers.logs())
    (_, a_end), (b_start, _) = a_runs[0], b_runs[0]
    assert a_end < b_start, (f"overlap of {a_end - b_start:.3f} s", stop_jobs.read_runs(runs_dir), workers.logs())
    names = [state.name for state in final.states]
    assert names.count("Executing") == 2, names
    reasons = [state.reason or "" for state in final.states if state.name == "Enqueued"]
    if job is stop_jobs.cooperative and signals == 1:
        # the thread honoured the cancel within the budget: back to the queue at once, no retry counted
        assert any("shutdown" in reason for reason in reasons), reasons
        assert final.get_property("hm.rescues") is None
    else:
        # the thread still ran when the stop ended: its lock was kept, and expired with the process
        assert not any("shutdown" in reason for reason in reasons), reasons
        assert final.get_property("hm.rescues") == 1
        assert "keep their locks" in worker_a.output(), workers.logs()
    assert final.get_property("hm.retries") is None
    worker_b.process.send_signal(signal.SIGTERM)
    code, _ = await wait_for_exit(worker_b, BUDGET + MARGIN)
    assert code == 0, workers.logs()


@pytest.mark.timeout(120)
async def test_a_stop_is_bounded_when_the_database_does_not_answer(
    tmp_path: Path, backend_name: str, backend_url: str, client: hm.HiveMind, workers: Workers
) -> None:
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    proxy: BlackholeProxy | None = None
    worker_url = backend_url
    if backend_name != "sqlite":
        parts = urlsplit(backend_url)
        assert parts.hostname is not None and parts.port is not None
        proxy = BlackholeProxy(parts.hostname, parts.port)
        worker_url = backend_url.replace(f":{parts.port}/", f":{proxy.port}/", 1)
        assert worker_url != backend_url
    holder: sqlite3.Connection | None = None
    try:
        # a long lock timeout: this is about the stop, not about giving jobs up for lost heartbeats
        worker = workers.start("worker-a", worker_url, lock_timeout=30.0)
        await wait_until(lambda: colony_running(client, "worker-a"), 30, "worker A runs", workers)
        await client.jobs.create(stop_jobs.cooperative, str(runs_dir), 60.0)

        async def runs_it() -> bool:
            return bool(stop_jobs.read_runs(runs_dir))

        await wait_until(runs_it, 30, "worker A runs the job", workers)
        if proxy is not None:
            proxy.blackhole()
        else:
            path = urlsplit(backend_url).path[1:]
            holder = sqlite3.connect(path, timeout=10, isolation_level=None)
            holder.execute("BEGIN EXCLUSIVE")  # every write of the worker now waits on the file's lock
        await asyncio.sleep(0.3)
        worker.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        code, exited_at = await wait_for_exit(worker, 60)
        took = exited_at - signalled
        assert code == 0, workers.logs()
        assert took < BUDGET + MARGIN, (took, workers.logs())
        assert [event for _, event, _ in stop_jobs.read_runs(runs_dir)] == ["start", "end"], workers.logs()
    finally:
        if holder is not None:
            holder.execute("ROLLBACK")
            holder.close()
        if proxy is not None:
            proxy.close()
