"""PostgreSQL round trips: HiveMind's own connections are in autocommit mode and send each
transaction's ``BEGIN`` with its first statement, so a create is one round trip, a transaction of
several statements one per statement plus its ``COMMIT``, and a claim (planner settings, claim,
``COMMIT``) one; what a transaction writes is still kept or lost as a whole.

Round trips are counted from libpq's protocol trace of the connections the storage hands out:
every round trip ends with the server's ``ReadyForQuery``."""

from __future__ import annotations

import itertools
import re
import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import Any, BinaryIO

import psycopg
import pytest
import pytest_asyncio

import hivemind_jobs as hm
from hivemind_jobs.errors import ArgumentBindingError
from hivemind_jobs.storage.postgres import backend as pg
from hivemind_jobs.storage.server.base import ServerStorage
from hivemind_jobs.storage.sql import SQL
from tests import backends
from tests.sample_jobs import add
from tests.worker import jobs as worker_jobs
from tests.worker.test_stepping import Stepper

#: a Parse message as traced: the statement's name, its text, the number and types of its parameters
_PARSED = re.compile(r' "[^"]*" "(.*)"(?: (?:\d+|NNNN))+$')


class Traces:
    """The protocol trace of every connection the storage acquired, in order, read once the
    connection is handed back (libpq writes a trace out when tracing ends)."""

    def __init__(self) -> None:
        self.files: list[BinaryIO] = []

    def start(self, raw: Any) -> None:
        trace = tempfile.TemporaryFile()  # noqa: SIM115 (closed by the fixture, after the test)
        self.files.append(trace)
        raw.pgconn.trace(trace.fileno())
        raw.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS | psycopg.pq.Trace.REGRESS_MODE)

    def lines(self) -> list[str]:
        found: list[str] = []
        for trace in self.files:
            trace.seek(0)
            found += trace.read().decode().splitlines()
        return found

    def trips(self) -> list[list[str]]:
        """Each round trip's statements, in the order sent: the (first line of the) text of those
        parsed (``Parse``) or run (``Query``); a round trip ends with the server's
        ``ReadyForQuery``."""
        trips: list[list[str]] = [[]]
        for line in self.lines():
            parts = line.split("\t")
            if len(parts) < 4:
                continue
            if parts[0] == "B" and parts[2] == "ReadyForQuery":
                trips.append([])
            elif parts[0] == "F" and parts[2] in ("Parse", "Query"):
                parsed = _PARSED.match(parts[3])
                trips[-1].append(parsed.group(1) if parsed and parts[2] == "Parse" else parts[3].strip(' "'))
        return trips[:-1]

    def forget(self) -> None:
        """Start afresh (every traced connection has been handed back)."""
        for trace in self.files:
            trace.close()
        self.files.clear()

    def statements(self) -> list[str]:
        return [statement for trip in self.trips() for statement in trip]


@pytest.fixture
def traces(monkeypatch: pytest.MonkeyPatch) -> Iterator[Traces]:
    """Every connection the PostgreSQL storage acquires is traced until it is released."""
    found = Traces()
    acquire, release = pg._PgDriver.acquire, pg._PgDriver.release

    async def traced_acquire(self: Any) -> Any:
        raw = await acquire(self)
        found.start(raw)
        return raw

    async def untraced_release(self: Any, raw: Any, *, discard: bool) -> None:
        if not raw.closed:
            raw.pgconn.untrace()
        await release(self, raw, discard=discard)

    monkeypatch.setattr(pg._PgDriver, "acquire", traced_acquire)
    monkeypatch.setattr(pg._PgDriver, "release", untraced_release)
    yield found
    for trace in found.files:
        trace.close()


@pytest_asyncio.fixture
async def pg_hive(postgres_url: str) -> AsyncIterator[hm.HiveMind]:
    async with hm.HiveMind(postgres_url) as hive:
        await hive.jobs.create(add, 0, 0)  # the statements are known to the connection from here on
        yield hive


async def test_a_create_is_one_round_trip_that_commits_itself(pg_hive: hm.HiveMind, traces: Traces) -> None:
    job_id = await pg_hive.jobs.create(add, 1, 2)
    trips = traces.trips()
    assert len(trips) == 1
    assert "BEGIN" not in trips[0] and "COMMIT" not in trips[0]
    job = await pg_hive.jobs.get(job_id)
    assert job is not None and job.state.name == "Enqueued"


async def test_a_transaction_sends_its_begin_with_its_first_statement(pg_hive: hm.HiveMind, traces: Traces) -> None:
    async with pg_hive.transaction() as tx:
        first = await tx.jobs.create(add, 1, 2)
        second = await tx.jobs.create(add, 3, 4)
    trips = traces.trips()
    assert len(trips) == 3, trips  # BEGIN with the first create, the second create, the COMMIT
    assert trips[0][0] == "BEGIN" and trips[1] == trips[0][1:]  # the same create statement
    assert trips[2] == ["COMMIT"]
    assert traces.statements().count("BEGIN") == 1
    for job_id in (first, second):
        job = await pg_hive.jobs.get(job_id)
        assert job is not None and job.state.name == "Enqueued"


async def test_a_failed_transaction_keeps_none_of_its_statements(pg_hive: hm.HiveMind, postgres_url: str) -> None:
    before = backends.count(postgres_url, "job")
    with pytest.raises(RuntimeError, match="changed my mind"):
        async with pg_hive.transaction() as tx:
            await tx.jobs.create(add, 1, 2)
            await tx.jobs.create(add, 3, 4)
            raise RuntimeError("changed my mind")
    assert backends.count(postgres_url, "job") == before
    # the connection went back to the pool outside any transaction: the next create commits on its own
    await pg_hive.jobs.create(add, 5, 6)
    assert backends.count(postgres_url, "job") == before + 1


@pytest.mark.parametrize("count", [1, 39, 40, 100, 127, 1000, 1001, 30_000])
def test_a_batch_s_parts_grow_from_a_small_first_one_to_a_cap(count: int) -> None:
    """The parts cover the batch once, in order; the first is the small one, each next part twice
    the one before until the cap (the last one may be shorter)."""
    bounds = pg._part_bounds(count)
    assert bounds[0][0] == 0 and bounds[-1][1] == count
    assert all(end == start for (_, end), (start, _) in itertools.pairwise(bounds))
    sizes = [end - start for start, end in bounds]
    assert sizes[0] == min(count, pg._FIRST_PART)
    whole = sizes[:-1]  # the last part is what is left
    assert all(size == min(2 * before, pg._LARGEST_PART) for before, size in itertools.pairwise(whole))
    assert max(sizes) <= pg._LARGEST_PART


async def test_a_large_batch_of_its_own_is_one_round_trip_built_part_by_part(
    pg_hive: hm.HiveMind, postgres_url: str, traces: Traces, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch in a transaction of its own goes as statements of growing parts in one pipeline
    (the first small, so the server starts at once): each part is sent before the calls of the
    next one are checked (the server writes one part while the next is built), with the BEGIN and
    the COMMIT in the same round trip and one creation time for all. A bad call in a later part
    rolls back the parts sent before it."""
    first, second = pg._FIRST_PART, 2 * pg._FIRST_PART
    count = first + second + 7
    assert pg._part_bounds(count) == [(0, first), (first, first + second), (first + second, count)]
    assert count >= pg._PARTS_FROM
    events: list[str] = []
    execute = psycopg.AsyncCursor.execute
    check = hm.BackgroundJobClient._invocation

    async def recorded(self: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
        done = await execute(self, query, params, **kwargs)
        if 'INSERT INTO "' in str(query) and "unnest" in str(query):
            events.append("sent")
        return done

    def checked(self: Any, function: Any, args: Any, kwargs: Any) -> Any:
        events.append("checked")
        return check(self, function, args, kwargs)

    monkeypatch.setattr(psycopg.AsyncCursor, "execute", recorded)
    monkeypatch.setattr(hm.BackgroundJobClient, "_invocation", checked)
    ids = await pg_hive.jobs.options(queue="parts").create_many(hm.call(add, n, 1) for n in range(count))
    trips = traces.trips()
    assert len(trips) == 1, trips
    assert trips[0][0] == "BEGIN" and trips[0][-1] == "COMMIT"
    sent = [index for index, event in enumerate(events) if event == "sent"]
    assert sent == [first, first + second + 1, count + 2]  # each part sent before the next one is checked
    assert ids == sorted(ids) and len(set(ids)) == count
    assert backends.raw(
        postgres_url, "SELECT COUNT(*), COUNT(DISTINCT created_at) FROM {job} WHERE queue = 'parts'"
    ) == [(count, 1)]
    assert backends.raw(postgres_url, "SELECT COUNT(*) FROM {queue} WHERE queue = 'parts'") == [(count,)]
    job = await pg_hive.jobs.get(ids[-1])
    assert job is not None and job.invocation.arguments == {"a": count - 1, "b": 1}

    calls = [hm.call(add, n, 1) for n in range(count)]
    calls[first + second + 3] = hm.call(add)  # type: ignore[call-arg]
    events.clear()
    with pytest.raises(ArgumentBindingError):
        await pg_hive.jobs.options(queue="bad").create_many(calls)
    assert events.count("sent") == 2 and events.count("checked") == first + second + 4
    assert backends.raw(postgres_url, "SELECT COUNT(*) FROM {job} WHERE queue = 'bad'") == [(0,)]
    assert backends.raw(postgres_url, "SELECT COUNT(*) FROM {job_state} WHERE job_id > ?", ids[-1]) == [(0,)]
    assert await pg_hive.jobs.create(add, 2, 3) > ids[-1]  # the connection is usable after the failure


@pytest_asyncio.fixture
async def storage(postgres_url: str) -> AsyncIterator[ServerStorage]:
    async with backends.server_storage(postgres_url, "hm_trips_") as store:
        yield store


async def test_a_claim_that_is_the_whole_transaction_is_one_round_trip(storage: ServerStorage, traces: Traces) -> None:
    setting = SQL("SELECT set_config('enable_sort', 'off', true)")
    async with backends.pooled(storage) as connection:
        connection.last = True
        rows = await connection.fetch_each(
            [(SQL("SELECT current_setting('enable_sort'), %(n)s * 2"), {"n": 21})], writes=[(setting, {})], commit=True
        )
        # the planner setting holds for the statement after it: one transaction up to the Sync
        assert rows == [[("off", 42)]]
        assert connection.committed
        assert connection.raw.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        # and no longer: committed with it
        assert await connection.fetchall(SQL("SELECT current_setting('enable_sort')")) == [("on",)]
    trips = traces.trips()
    assert trips[0] == [str(setting), "SELECT current_setting('enable_sort'), $1 * 2"]  # no BEGIN, no COMMIT
    assert trips[1] == ["BEGIN", "SELECT current_setting('enable_sort')"]  # what follows: a new transaction


async def test_a_claim_after_other_statements_commits_in_their_transaction(
    storage: ServerStorage, traces: Traces
) -> None:
    async with backends.pooled(storage) as connection:
        first = await connection.fetchall(SQL("SELECT txid_current()"))
        connection.last = True
        rows = await connection.fetch_each([(SQL("SELECT txid_current()"), {})], commit=True)
        assert rows == [first] and connection.committed
        assert connection.raw.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert traces.trips()[:2] == [["BEGIN", "SELECT txid_current()"], ["SELECT txid_current()", "COMMIT"]]


async def test_statements_before_the_commit_are_one_transaction(storage: ServerStorage, traces: Traces) -> None:
    async with backends.pooled(storage) as connection:
        first = await connection.fetchall(SQL("SELECT txid_current()"))
        assert connection.raw.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        assert await connection.fetchall(SQL("SELECT txid_current()")) == first
    assert traces.trips() == [["BEGIN", "SELECT txid_current()"], ["SELECT txid_current()"], ["ROLLBACK"]]


@pytest_asyncio.fixture
async def empty_hive(postgres_url: str) -> AsyncIterator[hm.HiveMind]:
    async with hm.HiveMind(postgres_url) as hive:
        yield hive


async def test_a_colony_claims_in_one_round_trip_and_writes_outcomes_in_one(
    empty_hive: hm.HiveMind, traces: Traces
) -> None:
    pg_hive = empty_hive
    ids = await pg_hive.jobs.create_many([hm.call(worker_jobs.add, n, 1) for n in range(2)])
    stepper = Stepper(pg_hive, ack_and_fetch=False)
    try:
        traces.forget()
        assert await stepper.fetcher.run_once() == 2
        claim = traces.trips()
        assert len(claim) == 1 and "BEGIN" not in claim[0] and "COMMIT" not in claim[0], claim
        await stepper.drones_done()
        traces.forget()
        assert await stepper.completer.run_once() == 2
        finish = traces.trips()
        assert len(finish) == 1 and "BEGIN" not in finish[0], finish  # the finish is the whole transaction
    finally:
        stepper.close()
    for job_id in ids:
        job = await pg_hive.jobs.get(job_id)
        assert job is not None and isinstance(job.state, hm.Succeeded)


async def test_outcomes_with_continuations_are_written_with_them_in_one_transaction(
    empty_hive: hm.HiveMind, traces: Traces
) -> None:
    pg_hive = empty_hive
    parent = await pg_hive.jobs.create(worker_jobs.add, 1, 2)
    child = await pg_hive.jobs.options(after=hm.After(parent)).create(worker_jobs.add, 3, 4)
    stepper = Stepper(pg_hive, ack_and_fetch=False)
    try:
        assert await stepper.fetcher.run_once() == 1
        await stepper.drones_done()
        traces.forget()
        assert await stepper.completer.run_once() == 1
        statements = traces.statements()
        # alone first, which writes nothing when the batch has continuation links; then in a
        # transaction with the continuation's work, committed at the end
        assert statements[1] == "BEGIN" and statements[-1] == "COMMIT", statements
    finally:
        stepper.close()
    parent_job, child_job = await pg_hive.jobs.get(parent), await pg_hive.jobs.get(child)
    assert parent_job is not None and isinstance(parent_job.state, hm.Succeeded)
    assert child_job is not None and isinstance(child_job.state, hm.Enqueued)
