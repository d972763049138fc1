"""Concurrency and rate limits across real colony processes, on every backend.

Four ``hivemind worker`` processes claim limited jobs from one database; each job logs its start
and end (wall clock) to a file. A job's logged run lies inside the time its state is Executing (it
starts after the claim committed, ends before its outcome is written), so overlaps counted from the
log never exceed the ones the claims allowed.
"""

from __future__ import annotations

import functools
import signal
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio

import hivemind_jobs as hm
from tests.processes import limit_jobs
from tests.processes.support import WorkerProcess, WorkerProcesses, colony_running, wait_until

APP = "tests.processes.limit_jobs:hive"
LOCK_TIMEOUT = 2.0
MONITOR_INTERVAL = 0.5


class Colonies(WorkerProcesses):
    """Worker processes on the test's database."""

    def __init__(self, tmp_path: Path, url: str) -> None:
        super().__init__(tmp_path, APP)
        self.url = url

    def start(self, name: str, drones: int = 4) -> WorkerProcess:
        env = {limit_jobs.URL_ENV: self.url, limit_jobs.LOCK_TIMEOUT_ENV: str(LOCK_TIMEOUT)}
        return self.launch(name, env, drones=drones)


@pytest.fixture
def colonies(tmp_path: Path, backend_url: str) -> Iterator[Colonies]:
    started = Colonies(tmp_path, backend_url)
    try:
        yield started
    finally:
        started.cleanup()


@pytest_asyncio.fixture
async def client(backend_url: str) -> AsyncIterator[hm.HiveMind]:
    async with hm.HiveMind(backend_url, options=limit_jobs.options(LOCK_TIMEOUT)) as hive:
        yield hive


def runs(log: Path) -> list[tuple[str, str, float, int]]:
    """The logged (event, tenant, time, pid) lines."""
    rows = []
    for line in log.read_text().splitlines():
        event, tenant, at, pid = line.split()
        rows.append((event, tenant, float(at), int(pid)))
    return rows


def most_at_once(rows: list[tuple[str, str, float, int]], tenant: str) -> int:
    """The most runs of ``tenant`` that overlapped (an end at the same instant as a start comes first)."""
    events = sorted((at, 0 if event == "end" else 1) for event, name, at, _ in rows if name == tenant)
    running = highest = 0
    for _, kind in events:
        running += 1 if kind else -1
        highest = max(highest, running)
    return highest


async def all_succeeded(client: hm.HiveMind, total: int) -> bool:
    return await client.jobs.count_by_state() == {"Succeeded": total}


@pytest.mark.timeout(120)
async def test_limits_hold_across_four_colonies(tmp_path: Path, client: hm.HiveMind, colonies: Colonies) -> None:
    log = str(tmp_path / "runs.log")
    for index in range(4):
        # two drones each: the four runs the limits allow at once (two of a, two of b) need at
        # least two colonies, so one colony cannot keep all of them to itself by refilling its
        # drones in the transactions that write its outcomes
        colonies.start(f"colony-{index}", drones=2)
    for index in range(4):
        name = f"colony-{index}"
        await wait_until(functools.partial(colony_running, client, name), 30, f"{name} runs", colonies)
    tenants = client.jobs.options(concurrency=hm.Limit(key="tenant:{tenant}", max=2))
    await tenants.create_many([hm.call(limit_jobs.work, log, tenant, 0.25) for tenant in "aab" * 8])
    api = client.jobs.options(rate_limit=hm.RateLimit(max=5, per=timedelta(seconds=1), key="api"))
    await api.create_many([hm.call(limit_jobs.work, log, "api", 0.0) for _ in range(15)])
    total = 24 + 15
    await wait_until(lambda: all_succeeded(client, total), 90, f"all {total} jobs Succeeded", colonies)
    assert colonies.stop_all() == [0, 0, 0, 0], colonies.logs()

    rows = runs(Path(log))
    assert len([row for row in rows if row[0] == "start"]) == total  # each job ran once
    # 8 drones, 16 jobs of tenant a: never more than two of them at once, but two at a time
    assert most_at_once(rows, "a") == 2, rows
    assert most_at_once(rows, "b") <= 2, rows
    assert len({pid for _, tenant, _, pid in rows if tenant in "ab"}) >= 2  # several colonies shared them
    # the rate limit: at most 5 starts of api in any window of a second (less a margin for the time
    # between a claim and the start of its job)
    starts = sorted(at for event, tenant, at, _ in rows if event == "start" and tenant == "api")
    window = 0.9
    busiest = max(sum(1 for other in starts if start <= other < start + window) for start in starts)
    assert busiest <= 5, starts
    assert starts[-1] - starts[0] >= 2 * window  # 15 starts at 5 a second need three windows


@pytest.mark.timeout(120)
async def test_a_sigkilled_colony_gives_its_limit_back_through_the_rescue(
    tmp_path: Path, client: hm.HiveMind, colonies: Colonies
) -> None:
    log = str(tmp_path / "runs.log")
    marker = tmp_path / "first-run"
    solo = client.jobs.options(concurrency=hm.Limit(key="solo", max=1))
    first = await solo.create(limit_jobs.long_first_time, log, "solo", str(marker), 60.0)
    colony_a = colonies.start("colony-a")

    async def first_running() -> bool:
        return isinstance((await client.jobs.get(first)).state, hm.Executing) and marker.exists()

    await wait_until(first_running, 30, "colony A runs the first job", colonies)
    second = await solo.create(limit_jobs.work, log, "solo", 0.0)
    colonies.start("colony-b")
    await wait_until(lambda: colony_running(client, "colony-b"), 30, "colony B runs", colonies)
    await wait_until(lambda: colony_running(client, "colony-a"), 30, "colony A runs", colonies)
    # both colonies have free drones, but the key's one place is taken
    await wait_until(lambda: _still_enqueued(client, second), 1.0, "", colonies, interval=1.0)
    assert isinstance((await client.jobs.get(second)).state, hm.Enqueued)

    killed_at = time.time()
    colony_a.process.kill()
    assert colony_a.process.wait(timeout=10) == -signal.SIGKILL

    async def both_succeeded() -> bool:
        states = [(await client.jobs.get(job_id)).state for job_id in (first, second)]
        return all(isinstance(state, hm.Succeeded) for state in states)

    await wait_until(both_succeeded, LOCK_TIMEOUT + MONITOR_INTERVAL + 10, "colony B runs both", colonies)
    rescued = await client.jobs.get(first)
    assert rescued.get_property("hm.rescues") == 1
    rows = runs(Path(log))
    on_b = [row for row in rows if row[3] != colony_a.pid]
    assert sorted(event for event, *_ in on_b) == ["end", "end", "start", "start"]
    assert all(at > killed_at for _, _, at, _ in on_b)  # nothing of the key ran while A held its place
    assert most_at_once(on_b, "solo") == 1


async def _still_enqueued(client: hm.HiveMind, job_id: int) -> bool:
    return isinstance((await client.jobs.get(job_id)).state, hm.Enqueued)
