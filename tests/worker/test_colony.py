"""Colony state, daemons and their restart policies, stale colonies, fail-closed locks."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

import hivemind_jobs as hm
from hivemind_jobs.storage.protocol import JobLockRelease
from tests.worker import jobs
from tests.worker.conftest import ALLOW, FAST, colony_of
from tests.worker.test_reliability import _state_is, _until


async def test_colony_state_is_readable_while_it_runs(whive: hm.HiveMind) -> None:
    job_id = await whive.jobs.create(jobs.sleeper, 1.0)
    colony = whive.colony(name="visible", allow=ALLOW, options=FAST)
    main = colony.swarm("main", drones=2, queues=["a"])
    main.swarm("sub", drones=1, queues=["b"])
    async with colony:
        assert colony.id.count(":") == 2 and colony.id.split(":")[1].isdigit()
        await _until(lambda: _state_is(whive, job_id, hm.Executing))
        await asyncio.sleep(0.4)  # at least one state sync while the job runs
        info = await whive.colonies.get(colony.id)
        assert info.name == "visible" and info.status == hm.ColonyStatus.RUNNING
        assert [swarm["name"] for swarm in info.swarms] == ["main", "main/sub"]
        busy = [drone for swarm in info.swarms for drone in swarm["drones"] if drone["job_id"] == job_id]
        assert len(busy) == 1
        assert {daemon["name"] for daemon in info.daemons} >= {"hm.lock-monitor", "hm.colony-state"}
        assert [c.id for c in await whive.colonies.list()] == [colony.id]
    stopped = await whive.colonies.get(colony.id)
    assert stopped.status == hm.ColonyStatus.STOPPED and stopped.state["processed"] == 1
    assert stopped.last_progress_at is not None
    with pytest.raises(hm.ColonyNotFoundError):
        await whive.colonies.get("nobody:1:x")


async def test_an_enqueue_elsewhere_starts_on_an_idle_colony_without_waiting_for_the_poll(
    whive: hm.HiveMind, db_url: str
) -> None:
    # another hive has its own in-process wake-ups: only the storage can tell this colony (PostgreSQL
    # notifies, SQLite's change marker moves, MySQL's change probe reads a higher job id)
    colony = colony_of(whive, poll_interval=timedelta(seconds=30))
    async with colony, hm.HiveMind(db_url) as producer:
        await _until(lambda: _idle(colony))
        job_id = await producer.jobs.create(jobs.note, "elsewhere")
        await _until(lambda: _state_is(whive, job_id, hm.Succeeded))
    assert jobs.RAN == ["elsewhere"]


async def _idle(colony: hm.Colony) -> bool:
    return all(runner.idle_since is not None for runner in colony._runtime.runners)


async def test_stale_colonies_are_removed(whive: hm.HiveMind) -> None:
    old = colony_of(whive)
    await old.run(burst=True)
    await asyncio.sleep(0.6)
    colony = colony_of(
        whive, stale_colony_after=timedelta(milliseconds=500), colony_cleanup_interval=timedelta(milliseconds=100)
    )
    async with colony:
        await _until(lambda: _gone(whive, old.id), timeout=3)
        assert await whive.colonies.try_get(colony.id) is not None


async def _gone(hive: hm.HiveMind, colony_id: str) -> bool:
    return await hive.colonies.try_get(colony_id) is None


async def test_daemons_start_by_priority_restart_by_policy_and_log(whive: hm.HiveMind) -> None:
    events: list[str] = []
    runs = {"flaky": 0, "once": 0}

    async def steady(ctx: hm.DaemonContext) -> None:
        events.append("steady started")
        while not await ctx.sleep(0.05):
            pass
        events.append("steady stopped")

    async def flaky(ctx: hm.DaemonContext) -> None:
        runs["flaky"] += 1
        events.append("flaky started")
        if runs["flaky"] < 3:
            raise RuntimeError(f"flaky failure {runs['flaky']}")
        await ctx.stopping.wait()

    async def once(ctx: hm.DaemonContext) -> None:
        runs["once"] += 1
        ctx.log.warning("once ran")

    colony = colony_of(whive)
    colony.daemon("steady", steady, priority=1)
    colony.daemon("flaky", flaky, priority=2, restart=hm.RestartPolicy.ON_FAILURE, restart_delay=0.05)
    colony.daemon("once", once, priority=3, restart=hm.RestartPolicy.NEVER)
    with pytest.raises(hm.ConfigurationError, match="reserved"):
        colony.daemon("hm.mine", steady)
    async with colony:
        await asyncio.sleep(0.5)
        info = await whive.colonies.get(colony.id)
    daemons = {daemon["name"]: daemon for daemon in info.daemons}
    assert events.index("steady started") < events.index("flaky started")
    assert runs == {"flaky": 3, "once": 1}
    assert daemons["flaky"]["restarts"] == 2 and daemons["flaky"]["status"] == "running"
    assert daemons["once"]["status"] == "finished"
    assert events[-1] == "steady stopped"  # stopped last: lowest priority
    logs = await whive.colonies.daemon_logs(colony.id)
    messages = [(entry.daemon, entry.message) for entry in logs]
    assert ("once", "once ran") in messages
    assert any(daemon == "flaky" and "flaky failure 1" in message for daemon, message in messages)
    only_once = await whive.colonies.daemon_logs(colony.id, daemon="once")
    assert {entry.daemon for entry in only_once} == {"once"}


async def test_a_drone_that_cannot_confirm_its_lock_stops_its_job_and_writes_nothing(whive: hm.HiveMind) -> None:
    job_id = await whive.jobs.create(jobs.sleeper, 30.0)
    colony = colony_of(whive, drones=1)
    async with colony:
        await _until(lambda: _state_is(whive, job_id, hm.Executing))
        # another holder takes the job over (as the lock monitor would after an expiry)
        stolen = await whive.jobs.get(job_id)
        assert stolen.locked_by == colony.id
        env = whive.env()
        async with env.storage.transaction() as tx:
            await tx.job_lock_release(JobLockRelease(job_id, colony.id))
        await _until(lambda: _no_running(colony), timeout=3)
    job = await whive.jobs.get(job_id)
    assert isinstance(job.state, hm.Executing)  # nothing was written by the drone that lost its lock
    assert ("slept", 30.0) not in jobs.RAN


async def _no_running(colony: hm.Colony) -> bool:
    return not colony.running_jobs


def test_colony_options_are_validated() -> None:
    with pytest.raises(hm.ConfigurationError, match="poll_interval"):
        hm.ColonyOptions(poll_interval=timedelta(0))
    with pytest.raises(hm.ConfigurationError, match="lock_safety"):
        hm.ColonyOptions(lock_safety=1.5)
    with pytest.raises(hm.ConfigurationError, match="drones"):
        hm.Swarm.define("x", drones=-1)
    with pytest.raises(hm.InvalidNameError):
        hm.Swarm.define("x", drones=1, queues=["bad queue"])
    assert FAST.heartbeat_every(timedelta(seconds=8)) == 2.0


def test_swarm_names_are_unique_across_the_colony(whive: hm.HiveMind) -> None:
    colony = colony_of(whive)  # has a root swarm "main"
    other = colony.swarm("other", drones=1)
    other.swarm("child", drones=1)
    for attempt in (lambda: colony.swarm("child"), lambda: other.swarm("main"), lambda: colony.swarm("other")):
        with pytest.raises(hm.ConfigurationError, match="unique"):
            attempt()
    assert [swarm.path for swarm in colony.swarms] == ["main", "other", "other/child"]
