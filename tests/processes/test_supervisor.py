"""``hivemind worker --processes N``: a real supervisor process and its real colony processes.

The supervisor runs as ``python -m hivemind_jobs.cli worker tests.processes.supervisor_jobs:hive
--processes 2`` on a fresh SQLite file and PostgreSQL schema (graceful stop 1 s, shutdown timeout
2 s, lock timeout 2 s, the lock monitor every 0.5 s). Its output and its children's go to one log
file, shown when an assertion fails. The children's pids are read from ``/proc``.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from click.testing import CliRunner

import hivemind_jobs as hm
from hivemind_jobs.cli.main import cli
from hivemind_jobs.cli.supervisor import EXIT_ALLOWANCE
from tests import backends
from tests.processes import supervisor_jobs
from tests.processes.support import colony_running, wait_until

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads child processes from /proc")

REPO = Path(__file__).resolve().parents[2]
APP = "tests.processes.supervisor_jobs:hive"
LOCK_TIMEOUT = 2.0
GRACEFUL_STOP = 1.0
SHUTDOWN_TIMEOUT = 2.0
#: what a colony's stop may take; the supervisor kills a child EXIT_ALLOWANCE after it
BUDGET = GRACEFUL_STOP + SHUTDOWN_TIMEOUT
#: signal delivery, the interpreter's exit and the test's own polling on a loaded machine
MARGIN = 1.5


@pytest.fixture(params=[name for name in backends.selected() if name in ("sqlite", "postgres")])
def backend_name(request: pytest.FixtureRequest) -> str:
    """These tests start several processes each: SQLite and PostgreSQL (one server is enough here)."""
    name: str = request.param
    return name


def child_pids(parent: int) -> set[int]:
    """The processes whose parent is ``parent`` (from ``/proc``)."""
    pids: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # "pid (command) state ppid ...": the command may hold spaces and parentheses
        fields = stat.rpartition(")")[2].split()
        if int(fields[1]) == parent:
            pids.add(int(entry.name))
    return pids


def exists(pid: int) -> bool:
    """The process exists, also as a zombie nobody reaped."""
    return Path(f"/proc/{pid}").exists()


class Supervised:
    """One ``hivemind worker --processes N`` process."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.process: subprocess.Popen[bytes] | None = None
        self.log = tmp_path / "supervisor.log"
        #: every child pid seen, killed at cleanup if still there
        self.seen: set[int] = set()

    def start(
        self, url: str, name: str, *, processes: int = 2, drones: int = 1, extra: list[str] | None = None
    ) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env[supervisor_jobs.URL_ENV] = url
        env[supervisor_jobs.LOCK_TIMEOUT_ENV] = str(LOCK_TIMEOUT)
        command = [
            *(sys.executable, "-m", "hivemind_jobs.cli", "worker", APP),
            *("--processes", str(processes), "--name", name, "--drones", str(drones)),
            *("--allow", "tests.processes", "--poll-interval", "0.1", "--monitor-interval", "0.5"),
            *("--graceful-stop", str(GRACEFUL_STOP), "--shutdown-timeout", str(SHUTDOWN_TIMEOUT)),
            *(extra or []),
        ]
        with self.log.open("wb") as sink:
            self.process = subprocess.Popen(command, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT)
        return self.process

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def children(self) -> set[int]:
        found = child_pids(self.pid)
        self.seen |= found
        return found

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-8000:] if self.log.exists() else ""

    def signal(self, number: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    async def wait_for_exit(self, timeout: float) -> int:
        assert self.process is not None
        for _ in range(int(timeout / 0.02) + 1):
            code = self.process.poll()
            if code is not None:
                return code
            await asyncio.sleep(0.02)
        pytest.fail(f"the supervisor still runs {timeout:.0f} s after the stop signal\n{self.logs()}")

    def cleanup(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.children()
            self.process.kill()
        self.process.wait(timeout=10)
        for pid in self.seen:
            if exists(pid):
                for number in (signal.SIGCONT, signal.SIGKILL):
                    try:
                        os.kill(pid, number)
                    except ProcessLookupError:
                        break


@pytest.fixture
def supervised(tmp_path: Path) -> Iterator[Supervised]:
    started = Supervised(tmp_path)
    try:
        yield started
    finally:
        started.cleanup()


@pytest_asyncio.fixture
async def client(backend_url: str) -> AsyncIterator[hm.HiveMind]:
    async with hm.HiveMind(backend_url, options=hm.Options(lock_timeout=timedelta(seconds=LOCK_TIMEOUT))) as hive:
        yield hive


async def start_two(supervised: Supervised, client: hm.HiveMind, url: str, name: str) -> set[int]:
    """Start a supervisor of two colonies and wait until both run; their pids."""
    supervised.start(url, name)
    for colony in (f"{name}-1", f"{name}-2"):
        await wait_until(functools.partial(colony_running, client, colony), 30, f"{colony} runs", supervised)
    pids = supervised.children()
    assert len(pids) == 2, supervised.logs()
    running = {info.pid for info in await client.colonies.list() if info.status == "running"}
    assert running == pids  # the colonies are the supervisor's children
    return pids


def state_names(job: hm.BackgroundJob) -> list[str]:
    return [state.name for state in job.states]


@pytest.mark.timeout(90)
async def test_two_colonies_share_the_work_and_run_every_job_once(
    backend_url: str, client: hm.HiveMind, supervised: Supervised
) -> None:
    await start_two(supervised, client, backend_url, "share")
    total = 24
    ids = await client.jobs.create_many(hm.call(supervisor_jobs.where, 0.2) for _ in range(total))

    async def all_succeeded() -> bool:
        return await client.jobs.count_by_state() == {"Succeeded": total}

    await wait_until(all_succeeded, 40, f"all {total} jobs Succeeded", supervised, interval=0.2)
    ran_in: list[str] = []
    for job_id in ids:
        job = await client.jobs.get(job_id)
        assert isinstance(job.state, hm.Succeeded)
        executions = [state for state in job.states if isinstance(state, hm.Executing)]
        assert len(executions) == 1, state_names(job)  # run exactly once
        colony, _, pid = str(job.state.result).partition(" ")
        assert executions[0].colony == colony
        assert int(pid) in supervised.seen
        ran_in.append(colony)
    assert set(ran_in) == {"share-1", "share-2"}, ran_in  # both colonies took part

    supervised.signal(signal.SIGTERM)
    assert await supervised.wait_for_exit(BUDGET + EXIT_ALLOWANCE + 10) == 0, supervised.logs()


@pytest.mark.timeout(90)
async def test_sigterm_stops_every_colony_gracefully_within_the_stop_budget(
    tmp_path: Path, backend_url: str, client: hm.HiveMind, supervised: Supervised
) -> None:
    pids = await start_two(supervised, client, backend_url, "stop")
    # one job each (one drone each), far longer than the graceful stop
    markers = [tmp_path / f"held-{index}" for index in range(2)]
    ids = [await client.jobs.create(supervisor_jobs.hold_first_time, str(marker), 60.0) for marker in markers]

    async def both_executing() -> bool:
        states = [(await client.jobs.get(job_id)).state for job_id in ids]
        return all(isinstance(state, hm.Executing) for state in states) and all(m.exists() for m in markers)

    await wait_until(both_executing, 30, "both jobs run", supervised)
    holders = set()
    for job_id in ids:
        state = (await client.jobs.get(job_id)).state
        assert isinstance(state, hm.Executing)
        holders.add(state.colony)
    assert holders == {"stop-1", "stop-2"}

    asked = time.monotonic()
    supervised.signal(signal.SIGTERM)
    code = await supervised.wait_for_exit(BUDGET + EXIT_ALLOWANCE + 10)
    took = time.monotonic() - asked
    assert code == 0, supervised.logs()  # every colony stopped by itself: none had to be killed
    assert took < BUDGET + MARGIN, f"stopped in {took:.2f} s\n{supervised.logs()}"
    assert not [pid for pid in pids if exists(pid)], supervised.logs()  # no orphan, no zombie
    for job_id in ids:  # the colonies handed their interrupted jobs back
        job = await client.jobs.get(job_id)
        assert isinstance(job.state, hm.Enqueued), state_names(job)
        assert "shutdown" in (job.state.reason or ""), job.state
    assert "killing it" not in supervised.logs()


@pytest.mark.timeout(90)
async def test_a_colony_that_does_not_stop_is_killed_after_the_stop_budget(
    backend_url: str, client: hm.HiveMind, supervised: Supervised
) -> None:
    pids = await start_two(supervised, client, backend_url, "stuck")
    stuck = min(pids)
    # (on SQLite it may be stopped holding the file's write lock: the other colony's stop is bounded
    # by its budget all the same, well before the supervisor's kill)
    os.kill(stuck, signal.SIGSTOP)

    asked = time.monotonic()
    supervised.signal(signal.SIGTERM)
    code = await supervised.wait_for_exit(BUDGET + EXIT_ALLOWANCE + 10)
    took = time.monotonic() - asked
    assert code == 1, supervised.logs()  # not a clean stop: a colony was killed
    assert BUDGET + EXIT_ALLOWANCE - 0.1 <= took < BUDGET + EXIT_ALLOWANCE + MARGIN, f"{took:.2f} s"
    assert not [pid for pid in pids if exists(pid)], supervised.logs()
    logs = supervised.logs()
    assert f"(pid {stuck}) still runs" in logs and "killing it" in logs, logs
    assert "was killed by SIGKILL during the stop" in logs, logs


@pytest.mark.timeout(90)
async def test_a_killed_colony_is_replaced_and_its_job_rescued(
    tmp_path: Path, backend_url: str, client: hm.HiveMind, supervised: Supervised
) -> None:
    await start_two(supervised, client, backend_url, "crash")
    marker = tmp_path / "first-run"
    job_id = await client.jobs.create(supervisor_jobs.hold_first_time, str(marker), 60.0)

    async def executing() -> bool:
        return isinstance((await client.jobs.get(job_id)).state, hm.Executing) and marker.exists()

    await wait_until(executing, 30, "the job runs", supervised)
    state = (await client.jobs.get(job_id)).state
    assert isinstance(state, hm.Executing)
    victim_name, victim = state.colony, int(marker.read_text())
    assert victim in supervised.seen
    os.kill(victim, signal.SIGKILL)

    async def replaced() -> bool:
        return any(
            info.name == victim_name and info.status == "running" and info.pid != victim
            for info in await client.colonies.list()
        )

    await wait_until(replaced, 30, f"a new {victim_name} runs", supervised)
    children = supervised.children()
    assert victim not in children and len(children) == 2, supervised.logs()
    (newcomer,) = children - {
        info.pid for info in await client.colonies.list() if info.name != victim_name and info.status == "running"
    }
    assert f"(pid {victim}) was killed by SIGKILL; restarting it" in supervised.logs()

    async def succeeded() -> bool:
        return isinstance((await client.jobs.get(job_id)).state, hm.Succeeded)

    await wait_until(succeeded, LOCK_TIMEOUT + 20, "the killed colony's job is rescued", supervised)
    job = await client.jobs.get(job_id)
    assert isinstance(job.state, hm.Succeeded)
    assert not str(job.state.result).endswith(f" {victim}")  # the rescued run was another process's
    assert state_names(job).count("Executing") == 2, state_names(job)  # the lost run and the rescued one

    # the new colony works: enough short jobs that both colonies (one drone each) run some
    ids = await client.jobs.create_many(hm.call(supervisor_jobs.where, 0.2) for _ in range(16))

    async def all_succeeded() -> bool:
        states = [(await client.jobs.get(one)).state for one in ids]
        return all(isinstance(state, hm.Succeeded) for state in states)

    await wait_until(all_succeeded, 40, "the later jobs Succeeded", supervised, interval=0.2)
    results = set()
    for one in ids:
        state = (await client.jobs.get(one)).state
        assert isinstance(state, hm.Succeeded)
        results.add(str(state.result))
    assert f"{victim_name} {newcomer}" in results, results

    supervised.signal(signal.SIGTERM)
    assert await supervised.wait_for_exit(BUDGET + EXIT_ALLOWANCE + 10) == 0, supervised.logs()
    assert not exists(newcomer)


@pytest.mark.timeout(90)
async def test_burst_colonies_drain_the_work_and_the_supervisor_exits(
    backend_url: str, client: hm.HiveMind, supervised: Supervised
) -> None:
    total = 12
    await client.jobs.create_many(hm.call(supervisor_jobs.where, 0.05) for _ in range(total))
    process = supervised.start(backend_url, "burst", extra=["--burst"])
    assert await supervised.wait_for_exit(40) == 0, supervised.logs()
    assert process.returncode == 0
    assert await client.jobs.count_by_state() == {"Succeeded": total}
    logs = supervised.logs()
    assert logs.count("drained its work and exited") == 2, logs
    assert "restarting" not in logs, logs


def invoke_worker(*args: str) -> tuple[int, str]:
    """``hivemind worker`` in this process (what is refused before any process starts)."""
    result = CliRunner().invoke(cli, ["worker", *args])
    return result.exit_code, result.output


@pytest.mark.parametrize("count", ["0", "-2", "many"])
def test_processes_must_be_a_whole_number_of_one_or_more(count: str) -> None:
    code, output = invoke_worker(APP, "--processes", count)
    assert code == 2, output
    assert "Invalid value for '--processes'" in output, output


def test_a_configured_colony_object_is_refused_its_processes_would_share_its_name() -> None:
    code, output = invoke_worker("tests.processes.supervisor_jobs:STATIC_COLONY", "--processes", "2")
    assert code == 2, output
    assert "one configured Colony" in output and "HIVEMIND_WORKER_PROCESS" in output, output


def test_a_name_too_long_for_its_numbered_colonies_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(supervisor_jobs.URL_ENV, f"sqlite:///{tmp_path / 'never-opened.db'}")
    monkeypatch.setenv(supervisor_jobs.LOCK_TIMEOUT_ENV, str(LOCK_TIMEOUT))
    code, output = invoke_worker(APP, "--processes", "12", "--name", "n" * 62)
    assert code == 2, output
    assert "use at most 61 characters" in output, output
    code, output = invoke_worker(APP, "--processes", "2", "--swarm", "main:x")
    assert code == 2, output  # a setting every child would refuse is refused once, before any start
    assert "drones must be a number" in output, output
    assert not (tmp_path / "never-opened.db").exists()
