"""``hivemind colonies`` on SQLite, PostgreSQL and MariaDB: a running colony with a busy drone, read
back as a tree and as JSON while its job runs."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import timedelta

import hivemind_jobs as hm
from tests.cli.support import Command

_COMMAND = Command("colonies")
invoke, ok, error = _COMMAND.invoke, _COMMAND.ok, _COMMAND.error


RELEASE = threading.Event()


async def hold(number: int) -> int:
    """Runs until the test releases it (a busy drone to look at)."""
    await asyncio.to_thread(RELEASE.wait, 30)
    return number


async def _with_running_colony(url: str) -> tuple[int, str, str]:
    """Run a colony (swarm main with 2 drones, sub-swarm main/sub with 1) holding one job; return
    the job id and what ``colonies --json`` and ``colonies`` printed meanwhile."""
    RELEASE.clear()
    options = hm.ColonyOptions(
        poll_interval=timedelta(milliseconds=50), state_sync_interval=timedelta(milliseconds=100)
    )
    async with hm.HiveMind(url) as hive:
        job_id = await hive.jobs.options(queue="other").create(hold, 7)  # only the sub-swarm takes it
        colony = hive.colony(name="cli-colony", allow=hm.AllowList(modules=[__name__]), options=options)
        root = colony.swarm("main", drones=2, queues=["global"])
        root.swarm("sub", drones=1, queues=["other"])
        try:
            async with colony:
                for _ in range(200):  # until the record shows every drone, one running the job
                    infos = await hive.colonies.list()
                    drones = [drone for info in infos for swarm in info.swarms for drone in swarm.get("drones", [])]
                    if len(drones) == 3 and any(drone.get("job_id") == job_id for drone in drones):
                        break
                    await asyncio.sleep(0.05)
                as_json = (await asyncio.to_thread(invoke, "--url", url, "--json")).stdout
                text = (await asyncio.to_thread(invoke, "--url", url)).stdout
                RELEASE.set()
        finally:
            RELEASE.set()
    return job_id, as_json, text


def test_colonies_shows_swarms_drones_and_the_job_a_drone_runs(db_url: str) -> None:
    job_id, as_json, text = asyncio.run(_with_running_colony(db_url))
    documents = json.loads(as_json)
    assert [item["name"] for item in documents] == ["cli-colony"]
    colony = documents[0]
    assert colony["status"] == "running" and colony["heartbeat_age_seconds"] < 30
    swarms = {swarm["name"]: swarm for swarm in colony["swarms"]}
    assert list(swarms) == ["main", "main/sub"]
    assert swarms["main"]["queues"] == [["global"]]
    assert swarms["main/sub"]["queues"] == [["other"], ["global"]]  # its own queue first, then its parent's
    busy = [drone for swarm in swarms.values() for drone in swarm["drones"] if drone["busy"]]
    assert [(drone["job_id"], drone["name"].split(".")[0]) for drone in busy] == [(job_id, "sub")]
    assert swarms["main"]["busy"] == 0 and swarms["main/sub"]["busy"] == 1
    assert {daemon["name"] for daemon in colony["daemons"]} >= {"hm.colony-state", "hm.lock-monitor"}

    lines = text.splitlines()
    assert lines[0].startswith(f"colony cli-colony ({colony['id']}) running on ")
    assert "heartbeat " in lines[0] and "0 jobs processed" in lines[0]
    assert any("swarm main  queues global  0/2 drones busy" in line for line in lines), text
    assert any("swarm sub  queues other | global  1/1 drone busy" in line for line in lines), text
    assert any(line.strip(" │├└─").endswith(f"busy: job {job_id}") for line in lines)
    assert lines[-1].startswith("1 colony; heartbeats as of ")


async def _create_tables(url: str) -> None:
    async with hm.HiveMind(url):
        pass


def test_colonies_after_a_burst_run_and_when_there_is_none(db_url: str) -> None:
    asyncio.run(_create_tables(db_url))
    assert ok("--url", db_url, "--json") == "[]\n"
    assert ok("--url", db_url) == "no colonies have reported in this environment\n"

    async def burst() -> None:
        RELEASE.set()
        async with hm.HiveMind(db_url) as hive:
            await hive.jobs.create_many([hm.call(hold, n) for n in range(3)])
            colony = hive.colony(name="burst", allow=hm.AllowList(modules=[__name__]))
            colony.swarm("main", drones=2, queues=["global"])
            await colony.run(burst=True)

    asyncio.run(burst())
    (colony,) = json.loads(ok("--url", db_url, "--json"))
    assert (colony["name"], colony["status"], colony["processed"], colony["succeeded"]) == ("burst", "stopped", 3, 3)
    assert colony["running"] == 0
    assert all(not drone["busy"] for swarm in colony["swarms"] for drone in swarm["drones"])
    text = ok("--url", db_url)
    assert "colony burst (" in text and " stopped on " in text and "3 jobs processed (3 succeeded, 0 failed)" in text


def test_colonies_needs_a_database() -> None:
    result = invoke()
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("Error: no database given: pass --url URL or --app module:attribute")
    assert result.stderr.count("\n") == 1
