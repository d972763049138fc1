"""Fetch order (priority, due time, swarm queue groups) and the middleware onion."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import hivemind_jobs as hm
from tests.worker import jobs
from tests.worker.conftest import ALLOW, FAST, colony_of


def test_queue_groups_follow_the_swarm_tree() -> None:
    root = hm.Swarm.define("root", drones=1, queues=["shared", ("urgent", 0), "plain"])
    child = root.swarm("child", queues=[("fast", 1), ("faster", 0), "own", "shared"])
    dedicated = root.swarm("solo", queues=["solo"], dedicated=True)
    grandchild = child.swarm("grand", queues=["leaf"])
    assert root.queue_groups() == (("urgent",), ("shared", "plain", "global"))
    assert child.queue_groups() == (("faster",), ("fast",), ("own", "shared"), ("urgent",), ("plain", "global"))
    assert dedicated.queue_groups() == (("solo",),)
    assert grandchild.queue_groups()[0] == ("leaf",)
    assert grandchild.queue_groups()[1:3] == (("faster",), ("fast",))
    assert child.path == "root/child" and grandchild.path == "root/child/grand"


async def test_priority_then_due_time_within_a_queue(whive: hm.HiveMind) -> None:
    for label, priority in [("low", hm.Priority.LOW), ("none", hm.Priority.NONE), ("critical", hm.Priority.CRITICAL)]:
        await whive.jobs.options(priority=priority).create(jobs.note, label)
    await whive.jobs.options(priority=hm.Priority.NORMAL).create(jobs.note, "normal-1")
    await whive.jobs.options(priority=hm.Priority.NORMAL).create(jobs.note, "normal-2")
    await colony_of(whive, drones=1).run(burst=True)
    assert jobs.RAN == ["critical", "normal-1", "normal-2", "low", "none"]


async def test_swarm_and_sub_swarm_queue_order(whive: hm.HiveMind) -> None:
    for queue in ["global", "plain", "urgent", "own"]:
        await whive.jobs.options(queue=queue).create(jobs.note, queue)
    colony = whive.colony(name="tree", allow=ALLOW, options=FAST)
    root = colony.swarm("root", drones=0, queues=[("urgent", 0), "plain"])
    root.swarm("child", drones=1, queues=["own"])
    await colony.run(burst=True)
    # own group, then the parent's prioritised group, then its plain group where due time decides
    assert jobs.RAN == ["own", "urgent", "global", "plain"]


async def test_delayed_jobs_never_start_early(whive: hm.HiveMind) -> None:
    job_id = await whive.jobs.options(delay=timedelta(milliseconds=800)).create(jobs.note, "late")
    await whive.jobs.create(jobs.note, "now")
    async with colony_of(whive):
        await asyncio.sleep(0.4)
        assert jobs.RAN == ["now"]
        for _ in range(60):
            if "late" in jobs.RAN:
                break
            await asyncio.sleep(0.05)
    job = await whive.jobs.get(job_id)
    assert isinstance(job.state, hm.Succeeded)
    enqueued = job.states[1]
    assert isinstance(enqueued, hm.Enqueued) and enqueued.delay == timedelta(milliseconds=800)
    assert enqueued.elected_at is not None and job.states[2].elected_at is not None
    assert job.states[2].elected_at >= enqueued.elected_at + enqueued.delay


async def test_an_enqueue_in_this_process_wakes_idle_drones(whive: hm.HiveMind) -> None:
    colony = whive.colony(name="wake", allow=ALLOW, options=hm.ColonyOptions(poll_interval=timedelta(seconds=30)))
    colony.swarm("main", drones=1)
    async with colony:
        await asyncio.sleep(0.2)  # the fetcher found nothing and sleeps for its 30 s poll
        job_id = await whive.jobs.create(jobs.note, "woken")
        for _ in range(40):
            if jobs.RAN:
                break
            await asyncio.sleep(0.05)
    assert jobs.RAN == ["woken"]
    assert isinstance((await whive.jobs.get(job_id)).state, hm.Succeeded)


async def test_middleware_runs_in_priority_order_around_the_job(whive: hm.HiveMind) -> None:
    job_id = await whive.jobs.options(
        middleware=[
            hm.Middleware(jobs.Tag, "last", priority=None),
            hm.Middleware(jobs.Tag, "second", priority=5),
            hm.Middleware(jobs.Tag, "first", priority=1),
        ]
    ).create(jobs.note, "job")
    colony = whive.colony(name="mw", allow=ALLOW, options=FAST)
    colony.swarm("main", drones=1, middleware=[hm.Middleware(jobs.Tag, "swarm", priority=0)])
    await colony.run(burst=True)
    assert jobs.RAN == [
        "swarm:before",
        "first:before",
        "second:before",
        "last:before",
        "job",
        "last:after",
        "second:after",
        "first:after",
        "swarm:after",
    ]
    assert (await whive.jobs.get(job_id)).state.result == "job"  # type: ignore[attr-defined]


async def test_middleware_can_skip_the_job_and_replace_the_result(whive: hm.HiveMind) -> None:
    skipped = await whive.jobs.options(middleware=[hm.Middleware(jobs.Skip)]).create(jobs.note, "never")
    replaced = await whive.jobs.options(middleware=[hm.Middleware(jobs.Tag, "replace")]).create(jobs.note, "ran")
    await colony_of(whive, drones=1).run(burst=True)
    assert "never" not in jobs.RAN and "ran" in jobs.RAN
    skipped_job = await whive.jobs.get(skipped)
    replaced_job = await whive.jobs.get(replaced)
    assert isinstance(skipped_job.state, hm.Succeeded) and skipped_job.state.result == "skipped by middleware"
    assert isinstance(replaced_job.state, hm.Succeeded) and replaced_job.state.result == "replaced"
