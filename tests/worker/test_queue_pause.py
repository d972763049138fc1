"""Paused queues (stored, honoured by every colony) and paused swarms (one colony, at run time)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

import hivemind_jobs as hm
from tests.worker import jobs
from tests.worker.conftest import ALLOW, FAST, _options
from tests.worker.test_reliability import _state_is, _until


async def _states(hive: hm.HiveMind, ids: list[int]) -> list[str]:
    return [type((await hive.jobs.get(job_id)).state).__name__ for job_id in ids]


async def test_pause_resume_and_list_are_validated_and_idempotent(whive: hm.HiveMind) -> None:
    assert await whive.queues.paused() == []
    assert await whive.queues.pause("reports", reason="month end")
    assert not await whive.queues.pause("reports", reason="again")
    assert await whive.queues.is_paused("reports")
    assert not await whive.queues.is_paused("global")
    [paused] = await whive.queues.paused()
    assert (paused.queue, paused.reason) == ("reports", "month end")
    assert paused.paused_at.tzinfo is not None
    assert await whive.queues.resume("reports")
    assert not await whive.queues.resume("reports")
    assert await whive.queues.paused() == []
    with pytest.raises(hm.InvalidNameError, match="queue name"):
        await whive.queues.pause("no spaces")
    with pytest.raises(hm.InvalidNameError, match="queue name"):
        await whive.queues.resume("")
    with pytest.raises(hm.ConfigurationError, match="reason"):
        await whive.queues.pause("reports", reason="x" * 1001)
    assert await whive.queues.paused() == []


async def test_a_paused_queue_waits_in_order_while_other_queues_run(whive: hm.HiveMind, db_url: str) -> None:
    await whive.queues.pause("reports", reason="month end")
    ids = [await whive.jobs.options(queue="reports").create(jobs.note, f"r{index}") for index in (1, 2, 3)]
    first = await whive.jobs.options(queue="reports", priority=hm.Priority.HIGH).create(jobs.note, "r0")
    other = await whive.jobs.options(queue="other").create(jobs.note, "o1")
    stats = {(stat.queue, stat.priority): (stat.ready, stat.paused) for stat in await whive.jobs.queue_stats()}
    assert stats == {("other", 2): (1, False), ("reports", 1): (1, True), ("reports", 2): (3, True)}
    colony = whive.colony(name="pausing", allow=ALLOW, options=FAST)
    colony.swarm("main", drones=1, queues=["reports", "other"])
    async with colony, hm.HiveMind(db_url) as elsewhere:
        await _until(lambda: _state_is(whive, other, hm.Succeeded))
        await asyncio.sleep(0.4)  # eight poll intervals
        assert await _states(whive, [first, *ids]) == ["Enqueued"] * 4
        assert jobs.RAN == ["o1"]
        # resumed from another hive (as from another process): no in-process signal, the poll sees it
        assert await elsewhere.queues.resume("reports")
        await _until(lambda: _all_succeeded(whive, [first, *ids]))
    assert jobs.RAN == ["o1", "r0", "r1", "r2", "r3"]


async def test_a_pause_reaches_a_running_colony_within_its_poll_and_running_jobs_finish(
    whive: hm.HiveMind, db_url: str
) -> None:
    colony = whive.colony(name="pausing", allow=ALLOW, options=FAST)
    colony.swarm("main", drones=2, queues=["reports", "other"])
    async with colony, hm.HiveMind(db_url) as elsewhere:
        running = await whive.jobs.options(queue="reports").create(jobs.sleeper, 0.6)
        await _until(lambda: _state_is(whive, running, hm.Executing))
        await elsewhere.queues.pause("reports")
        await asyncio.sleep(0.2)  # four poll intervals
        waiting = await whive.jobs.options(queue="reports").create(jobs.note, "waiting")
        other = await whive.jobs.options(queue="other").create(jobs.note, "other")
        await _until(lambda: _all_succeeded(whive, [running, other]))
        await asyncio.sleep(0.3)
        assert await _states(whive, [waiting]) == ["Enqueued"]
        assert colony.describe()["swarms"][0]["queues"] == [["other", "global"]]
        await elsewhere.queues.resume("reports")
        await _until(lambda: _all_succeeded(whive, [waiting]))
        assert colony.describe()["swarms"][0]["queues"] == [["reports", "other", "global"]]


async def test_a_resume_in_this_process_starts_the_jobs_without_waiting_for_the_poll(whive: hm.HiveMind) -> None:
    colony = whive.colony(name="pausing", allow=ALLOW, options=_options(poll_interval=timedelta(seconds=30)))
    colony.swarm("main", drones=1, queues=["reports"])
    await whive.queues.pause("reports")
    job_id = await whive.jobs.options(queue="reports").create(jobs.note, "later")
    async with colony:
        await asyncio.sleep(0.3)
        assert await _states(whive, [job_id]) == ["Enqueued"]
        await whive.queues.resume("reports")
        await _until(lambda: _state_is(whive, job_id, hm.Succeeded), timeout=3)


async def test_a_paused_swarm_claims_nothing_in_this_colony_until_resumed(whive: hm.HiveMind) -> None:
    colony = whive.colony(name="swarms", allow=ALLOW, options=FAST)
    main = colony.swarm("main", drones=1, queues=["a"])
    main.swarm("sub", drones=1, queues=["b"], dedicated=True)
    with pytest.raises(hm.ConfigurationError, match="no swarm 'nope'"):
        colony.pause_swarm("nope")
    colony.pause_swarm("main/sub")
    assert colony.paused_swarms == {"main/sub"}
    async with colony:
        in_b = await whive.jobs.options(queue="b").create(jobs.note, "b")
        in_a = await whive.jobs.options(queue="a").create(jobs.note, "a")
        await _until(lambda: _state_is(whive, in_a, hm.Succeeded))
        await asyncio.sleep(0.3)
        assert await _states(whive, [in_b]) == ["Enqueued"]
        assert [swarm["paused"] for swarm in colony.describe()["swarms"]] == [False, True]
        colony.resume_swarm("main/sub")
        await _until(lambda: _state_is(whive, in_b, hm.Succeeded), timeout=3)
    assert colony.paused_swarms == frozenset()
    # stored pauses are not touched by a swarm's
    assert await whive.queues.paused() == []


async def test_the_sync_facade_pauses_and_resumes(db_url: str) -> None:
    def blocking() -> list[str]:
        with hm.SyncHiveMind(db_url) as hive:
            assert hive.queues.pause("reports", reason="why")
            names = [item.queue for item in hive.queues.paused()]
            assert hive.queues.resume("reports")
            return names

    assert await asyncio.to_thread(blocking) == ["reports"]


async def _all_succeeded(hive: hm.HiveMind, ids: list[int]) -> bool:
    return await _states(hive, ids) == ["Succeeded"] * len(ids)
