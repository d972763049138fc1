"""8 processes create the same unique job at the same moment: exactly one job exists, and every
process got its id (on every backend)."""

from __future__ import annotations

import multiprocessing
import queue

import hivemind_jobs as hm
from tests.processes.unique_jobs import create_unique

PROCESSES = 8


async def test_eight_processes_create_one_unique_job(db_url: str) -> None:
    async with hm.HiveMind(db_url) as hive:  # the schema exists before the children start
        context = multiprocessing.get_context("spawn")
        barrier = context.Barrier(PROCESSES)
        results = context.Queue()
        children = [context.Process(target=create_unique, args=(db_url, barrier, results)) for _ in range(PROCESSES)]
        for child in children:
            child.start()
        answers = []
        try:
            for _ in range(PROCESSES):
                answers.append(results.get(timeout=120))
        except queue.Empty:
            answers.append(("error", "a child process gave no answer within 120 s"))
        finally:
            for child in children:
                child.join(timeout=30)
                if child.is_alive():
                    child.kill()
        assert [kind for kind, _ in answers] == ["ok"] * PROCESSES, answers
        ids = {job_id for _, job_id in answers}
        assert len(ids) == 1, answers
        assert await hive.jobs.count() == 1
        [job_id] = ids
        assert (await hive.jobs.get(job_id)).invocation.arguments == {"a": 40, "b": 2}
