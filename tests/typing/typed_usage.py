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
