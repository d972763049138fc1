"""A purge deletes a job's history and queue rows with it, on every backend (PostgreSQL deletes them
itself: its history and queue tables have no foreign key to cascade through)."""

from __future__ import annotations

from datetime import timedelta

import hivemind_jobs as hm
from hivemind_jobs.storage.protocol import JobPurge
from tests import backends
from tests import sample_jobs as jobs

ORPHANS = {
    "job_state": "SELECT COUNT(*) FROM {job_state} WHERE job_id NOT IN (SELECT id FROM {job})",
    "queue": "SELECT COUNT(*) FROM {queue} WHERE job_id NOT IN (SELECT id FROM {job})",
}


async def test_a_purge_leaves_no_history_or_queue_rows_of_its_jobs(backend_url: str) -> None:
    async with hm.HiveMind(backend_url) as hive:
        ids = await hive.jobs.create_many([hm.call(jobs.hello_world, str(n)) for n in range(4)])
        for job_id in ids[:3]:
            await hive.jobs.delete(job_id)
        # a queue entry left behind by a job that ended (a stale one) goes with its job too
        [stale] = backends.raw(backend_url, "SELECT execution_id FROM {job} WHERE id = ?", ids[0])
        backends.raw(
            backend_url,
            "INSERT INTO {queue} (job_id, queue, priority, execute_after, execution_id, enqueued_at) "
            "SELECT id, queue, priority, created_at, ?, created_at FROM {job} WHERE id = ?",
            stale[0],
            ids[0],
        )
        assert backends.count(backend_url, "job_state") == 4 * 2 + 3
        async with hive.env().storage.transaction() as tx:
            assert await tx.job_purge(JobPurge(("Deleted",), timedelta(0))) == 3
        assert await hive.jobs.count() == 1 and (await hive.jobs.get(ids[3])).id == ids[3]
    for table, sql in ORPHANS.items():
        assert backends.raw(backend_url, sql)[0][0] == 0, table
    assert backends.count(backend_url, "job_state") == 2  # the job left keeps its history
    assert backends.count(backend_url, "queue") == 1
