"""Checked by mypy in test_typing.py: lines with a trailing error comment must be reported, no others."""

from __future__ import annotations

import hivemind_jobs as hm
from tests.sample_jobs import ConsoleWriterJob, add, async_job, hello_world


async def usage(hive: hm.HiveMind, sync_hive: hm.SyncHiveMind) -> None:
    jobs = hive.jobs
    await jobs.create(add, 1, b=2)
    await jobs.create(add, "one")  # error: wrong type
    await jobs.create(add)  # error: missing argument
    await jobs.create(add, 1, 2, 3)  # error: too many arguments
    await jobs.create(async_job, "entity")  # the context parameter is injected, not passed
    await jobs.create(async_job, 42)  # error: wrong type after the injected context
    await jobs.create(hm.instance(ConsoleWriterJob).run, "text")
    await jobs.create(hm.instance(ConsoleWriterJob).run, 5)  # error: wrong type for an instance method
    await jobs.create(ConsoleWriterJob.static_run, 1)
    await jobs.create(ConsoleWriterJob.class_run, "1")  # error: wrong type for a class method
    await jobs.options(queue="finalize", priority=hm.Priority.HIGH).create(hello_world, "x")
    await jobs.create(hello_world, message="x", queue="finalize")  # error: options are not job arguments
    await jobs.create_many([hm.call(add, 1), hm.call(add, b=2, a=1)])
    hm.call(add, "x")  # error: wrong type in a bulk call
    job_id: int = sync_hive.jobs.create(hello_world, "x")
    sync_hive.jobs.create(hello_world, 3)  # error: the blocking facade is checked the same way
    text: str = await jobs.get_data(job_id, "name", str)
    number: int = await jobs.get_data(job_id, "name", str)  # error: the hint decides the result type
    print(text, number)
    ref = await jobs.create_ref(add, 1)
    total: int = await ref.result(timeout=5)
    wrong_total: str = await ref.result()  # error: the result is typed as the function returns
    await jobs.create_ref(add, "one")  # error: create_ref checks the arguments like create
    entity: str = await (await jobs.create_ref(async_job, "entity")).result()  # an async job's awaited result
    wrong_entity: int = await (await jobs.create_ref(async_job, "entity")).result()  # error: str, not int
    waited: int = await jobs.wait(job_id, int, timeout=1.5)
    wrong_waited: str = await jobs.wait(job_id, int)  # error: the hint decides the result type
    sync_total: int = sync_hive.jobs.create_ref(add, 1).result()
    wrong_sync_total: str = sync_hive.jobs.create_ref(add, 1).result()  # error: blocking handles are typed too
    await hive.recurring.create_or_update("nightly", hm.every(minutes=5), add, 1, b=2)
    await hive.recurring.create_or_update("nightly", hm.every(minutes=5), add, "one")  # error: wrong type
    await hive.recurring.create_or_update("nightly", hm.every(minutes=5), add)  # error: missing argument
    await hive.recurring.create_or_update("nightly", hm.every(minutes=5), async_job, "entity")
    sync_hive.recurring.create_or_update("nightly", hm.every(minutes=5), hello_world, 3)  # error: blocking too
    print(total, wrong_total, entity, wrong_entity, waited, wrong_waited, sync_total, wrong_sync_total)
