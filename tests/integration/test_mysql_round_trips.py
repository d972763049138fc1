"""MySQL / MariaDB round trips of a colony: the claim that starts its jobs is two (the walk, then
one script that reads the records, writes the starts and commits), a batch of outcomes two (the
fences with the continuation links, then the writes and the ``COMMIT``), and outcomes with
continuation links keep the continuations' work in their transaction.

Round trips are counted on the sessions the storage hands out: every statement or script a
session sends (``cursor.execute``), and every ``COMMIT`` or ``ROLLBACK`` sent on its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncmy
import pytest
import pytest_asyncio

import hivemind_jobs as hm
from hivemind_jobs.storage.mysql import backend as mysql
from tests.worker import jobs as worker_jobs
from tests.worker.test_stepping import Stepper


class Trips:
    """The round trips of HiveMind's own sessions, each as its statements (first words)."""

    def __init__(self) -> None:
        self.sent: list[list[str]] = []
        self.texts: list[str] = []

    def add(self, text: str) -> None:
        self.texts.append(text)
        self.sent.append([" ".join(statement.split()[:3]) for statement in text.split("\n;\n")])

    def forget(self) -> None:
        self.sent.clear()
        self.texts.clear()


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> Trips:
    found = Trips()

    class Counted(asyncmy.cursors.Cursor):  # type: ignore[misc]
        async def execute(self, query: str, args: Any = None) -> Any:
            found.add(query)
            return await super().execute(query, args)

    cursor_class = mysql._cursor_class
    commit, rollback = mysql._MySQLDriver.commit, mysql._MySQLDriver.rollback

    def counted_class(raw: Any) -> Any:
        return Counted if isinstance(raw, asyncmy.Connection) else cursor_class(raw)

    async def counted_commit(self: Any, raw: Any) -> None:
        found.add("COMMIT")
        await commit(self, raw)

    async def counted_rollback(self: Any, raw: Any) -> None:
        found.add("ROLLBACK")
        await rollback(self, raw)

    monkeypatch.setattr(mysql, "_cursor_class", counted_class)
    monkeypatch.setattr(mysql._MySQLDriver, "commit", counted_commit)
    monkeypatch.setattr(mysql._MySQLDriver, "rollback", counted_rollback)
    return found


@pytest_asyncio.fixture
async def my_hive(mariadb_url: str) -> AsyncIterator[hm.HiveMind]:
    async with hm.HiveMind(mariadb_url) as hive:
        yield hive


async def test_a_colony_claims_in_two_round_trips_and_writes_outcomes_in_two(
    my_hive: hm.HiveMind, trips: Trips
) -> None:
    ids = await my_hive.jobs.create_many([hm.call(worker_jobs.add, n, 1) for n in range(2)])
    stepper = Stepper(my_hive, ack_and_fetch=False)
    try:
        trips.forget()
        assert await stepper.fetcher.run_once() == 2
        claim = trips.sent
        assert len(claim) == 2, claim
        assert claim[0] == ["SELECT q.job_id, q.queue,"], claim  # the walk
        assert claim[1][-1] == "COMMIT", claim  # the records, the starts and the commit
        assert sum(statement.startswith("SELECT") for statement in claim[1]) == 2, claim
        await stepper.drones_done()
        trips.forget()
        assert await stepper.completer.run_once() == 2
        finish = trips.sent
        assert len(finish) == 2, finish
        assert finish[0][0].startswith("SELECT id, execution_id"), finish  # the fences, FOR UPDATE
        assert finish[0][1].startswith("SELECT parent_id, child_id"), finish  # the continuation links
        assert finish[1][-1] == "COMMIT", finish  # the saves and the commit
    finally:
        stepper.close()
    for job_id in ids:
        job = await my_hive.jobs.get(job_id)
        assert job is not None and isinstance(job.state, hm.Succeeded)
        assert [state.name for state in job.states] == ["Created", "Enqueued", "Executing", "Succeeded"]


async def test_outcomes_with_continuations_commit_after_the_continuations_work(
    my_hive: hm.HiveMind, trips: Trips
) -> None:
    parent = await my_hive.jobs.create(worker_jobs.add, 1, 2)
    child = await my_hive.jobs.options(after=hm.After(parent)).create(worker_jobs.add, 3, 4)
    stepper = Stepper(my_hive, ack_and_fetch=False)
    try:
        assert await stepper.fetcher.run_once() == 1
        await stepper.drones_done()
        trips.forget()
        assert await stepper.completer.run_once() == 1
        sent = trips.sent
        # the outcome's writes go without a COMMIT: the child's enqueue follows in the transaction,
        # which commits at the end
        assert "COMMIT" not in sent[1], sent
        assert sent[-1] == ["COMMIT"], sent
    finally:
        stepper.close()
    parent_job, child_job = await my_hive.jobs.get(parent), await my_hive.jobs.get(child)
    assert parent_job is not None and isinstance(parent_job.state, hm.Succeeded)
    assert child_job is not None and isinstance(child_job.state, hm.Enqueued)
