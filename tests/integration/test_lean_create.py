"""Creating jobs when no handler observes their creation: the rows are built without electing each
job, and must be exactly the rows the full path (election, BackgroundJob, save) writes."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import inspect
import itertools
import json
import uuid
import weakref
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import hivemind_jobs as hm
from hivemind_jobs.core.invocation import Invocation, build_invocation
from hivemind_jobs.core.job import PropertyType
from hivemind_jobs.errors import ArgumentBindingError
from hivemind_jobs.lifecycle.records import NewJobs
from hivemind_jobs.storage.protocol import JobInsert, PropertyRow
from hivemind_jobs.testing.conformance.support import every_property_type, new_job, state_row
from tests import backends
from tests import sample_jobs as jobs

WHEN = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
ID = uuid.UUID("12345678-1234-5678-1234-567812345678")

#: creation options, each giving different rows (queue, priority, properties, middleware, initial state)
VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {},
    "placed": {
        "queue": "billing",
        "priority": hm.Priority.HIGH,
        "properties": {"tenant": "acme", "n": 5, "ratio": 1.5, "flag": True, "when": WHEN, "ref": ID},
        "retry": hm.RetryPolicy(max_retries=3),
        "middleware": [hm.Middleware(jobs.ExampleMiddleware, {"tag": "x"}, priority=2)],
    },
    "delay": {"delay": timedelta(minutes=5), "properties": {"tenant": "delayed"}},
    "delay_until": {"delay_until": WHEN},
    "idle": {"state": hm.Idle(reason="later")},
}


def stored(url: str, job_id: int, *, absolute_due: bool) -> dict[str, Any]:
    """What is stored for a job, without its id, execution id and times (those differ by nature)."""
    [job] = backends.raw(
        url,
        "SELECT queue, priority, execution_id, state_name, state_sequence, invocation, middleware, locked_by, "
        "created_at, modified_at FROM {job} WHERE id = ?",
        job_id,
    )
    queue, priority, execution_id, state_name, state_sequence, invocation, middleware, locked_by = job[:8]
    created, modified = job[8:]
    assert created == modified
    entries = backends.raw(
        url, "SELECT queue, priority, execution_id, execute_after, enqueued_at FROM {queue} WHERE job_id = ?", job_id
    )
    entry = None
    if entries:
        [(entry_queue, entry_priority, entry_execution, due, enqueued)] = entries
        assert entry_execution == execution_id  # the entry is the job's current execution
        assert enqueued == created  # one database clock for the whole insert
        entry = (entry_queue, entry_priority, due if absolute_due else due - enqueued)
    return {
        "job": (queue, priority, state_name, state_sequence, invocation, middleware, locked_by),
        "states": backends.raw(
            url, "SELECT sequence, name, reason, fields FROM {job_state} WHERE job_id = ? ORDER BY sequence", job_id
        ),
        "properties": backends.raw(
            url,
            "SELECT name, type, text_value, int_value, float_value, bool_value, datetime_value FROM {job_property} "
            "WHERE job_id = ? ORDER BY name",
            job_id,
        ),
        "queue": entry,
        "data": backends.raw(url, "SELECT name, value FROM {job_data} WHERE job_id = ?", job_id),
    }


def recorded_scripts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every script MariaDB's inserts send from now on, in order (each still sent)."""
    from hivemind_jobs.storage.mysql import backend as mysql

    sent: list[str] = []
    run_part = mysql._MySQLConnection._insert_part

    async def recorded(self: Any, script: str) -> Any:
        sent.append(script)
        return await run_part(self, script)

    monkeypatch.setattr(mysql._MySQLConnection, "_insert_part", recorded)
    return sent


async def create_three(client: hm.BackgroundJobClient) -> list[int]:
    """One job with create, two with create_many: the same calls every time."""
    first = await client.create(jobs.add, 1, b=3)
    rest = await client.create_many([hm.call(jobs.add, 2), hm.call(jobs.hello_world, message="hi")])
    return [first, *rest]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
async def test_the_lean_path_stores_what_the_full_path_stores(hive: hm.HiveMind, db_url: str, variant: str) -> None:
    client = hive.jobs.options(**VARIANTS[variant])
    lean = await create_three(client)
    saved: list[int] = []
    unsubscribe = hive.mediator.subscribe(hm.JobSaved, lambda event: saved.append(event.job.id))
    full = await create_three(client)
    unsubscribe()
    assert saved == full  # the handler made the full path run
    absolute = "delay_until" in VARIANTS[variant]
    for lean_id, full_id in zip(lean, full, strict=True):
        assert stored(db_url, lean_id, absolute_due=absolute) == stored(db_url, full_id, absolute_due=absolute)
    loaded = [await hive.jobs.get(job_id) for job_id in lean]
    assert [job.invocation.arguments for job in loaded] == [{"a": 1, "b": 3}, {"a": 2}, {"message": "hi"}]
    assert len({job.execution_id for job in loaded}) == 3


HandlerSetup = Callable[[hm.HiveMind, list[str]], Callable[[], None]]


def _on_election(hive: hm.HiveMind, seen: list[str]) -> Callable[[], None]:
    def elect(request: hm.StateElection) -> None:
        seen.append(request.job.invocation.display_name)

    return hive.mediator.add_request_handler(hm.StateElection, elect)


def _on_applied(hive: hm.HiveMind, seen: list[str]) -> Callable[[], None]:
    return hive.mediator.subscribe(hm.JobStateApplied, lambda event: seen.append(event.job.invocation.display_name))


def _on_saving(hive: hm.HiveMind, seen: list[str]) -> Callable[[], None]:
    return hive.mediator.subscribe(hm.JobSaving, lambda event: seen.append(event.job.invocation.display_name))


def _on_saved(hive: hm.HiveMind, seen: list[str]) -> Callable[[], None]:
    return hive.mediator.subscribe(hm.JobSaved, lambda event: seen.append(event.job.invocation.display_name))


@pytest.mark.parametrize("setup", [_on_election, _on_applied, _on_saving, _on_saved], ids=lambda f: f.__name__[4:])
async def test_a_handler_sees_every_created_job(hive: hm.HiveMind, setup: HandlerSetup) -> None:
    seen: list[str] = []
    unsubscribe = setup(hive, seen)
    await hive.jobs.create(jobs.add, 1)
    async with hive.transaction() as tx:
        await tx.jobs.create(jobs.do_stuff)
    await hive.jobs.create_many([hm.call(jobs.hello_world, "a"), hm.call(jobs.add, 2)])
    names = ["tests.sample_jobs:add", "tests.sample_jobs:do_stuff", "tests.sample_jobs:hello_world"]
    assert seen == [names[0], names[1], names[2], names[0]]
    unsubscribe()
    await hive.jobs.create_many([hm.call(jobs.add, 3)])
    assert len(seen) == 4
    assert await hive.jobs.count() == 5


@pytest.mark.parametrize("setup", [_on_election, _on_saved], ids=lambda f: f.__name__[4:])
async def test_a_client_sees_a_handler_registered_after_its_lean_creates(
    hive: hm.HiveMind, setup: HandlerSetup
) -> None:
    """A client remembers that nobody observes creations only until a handler is registered or
    removed, on the environment's mediator or any other."""
    client = hive.jobs.options(queue="kept")
    await client.create(jobs.add, 1)  # nobody observes: the lean path, remembered
    seen: list[str] = []
    unsubscribe = setup(hive, seen)
    await client.create(jobs.add, 2)
    await client.create_many([hm.call(jobs.hello_world, "a")])
    assert seen == ["tests.sample_jobs:add", "tests.sample_jobs:hello_world"]
    unsubscribe()
    await client.create(jobs.add, 3)
    assert len(seen) == 2
    assert await hive.jobs.count() == 4


async def test_a_bad_call_in_a_batch_writes_nothing(hive: hm.HiveMind, db_url: str) -> None:
    with pytest.raises(ArgumentBindingError):
        await hive.jobs.create_many([hm.call(jobs.add, 1), hm.call(jobs.add)])  # type: ignore[call-arg]
    with pytest.raises(hm.LimitExceededError):
        await hive.jobs.create_many([hm.call(jobs.add, 1), hm.call(jobs.hello_world, "x" * 2_000_000)])
    with pytest.raises(hm.InvalidTransitionError):
        await hive.jobs.options(state=hm.SystemDeleted()).create_many([hm.call(jobs.add, 1)])
    assert backends.count(db_url, "job") == 0
    assert backends.count(db_url, "job_state") == 0
    assert backends.count(db_url, "queue") == 0


async def test_a_bad_call_late_in_a_large_batch_writes_nothing(hive: hm.HiveMind, db_url: str) -> None:
    """A bad call late in a batch writes nothing of it, whatever its size (a MariaDB batch this
    large goes as several scripts, in a transaction of its own built part by part), in a
    transaction of its own or in one that goes on after the error."""
    calls = [hm.call(jobs.add, n) for n in range(750)]
    calls[600] = hm.call(jobs.add)  # type: ignore[call-arg]
    with pytest.raises(ArgumentBindingError):
        await hive.jobs.create_many(calls)
    assert backends.count(db_url, "job") == 0
    assert backends.count(db_url, "job_state") == 0
    assert backends.count(db_url, "queue") == 0
    async with hive.transaction() as tx:  # in an open transaction: it stays usable, the batch is not in it
        first = await tx.jobs.create(jobs.add, 1)
        with pytest.raises(ArgumentBindingError):
            await tx.jobs.create_many(calls)
    assert backends.count(db_url, "job") == 1
    assert (await hive.jobs.get(first)).invocation.arguments == {"a": 1}


async def test_a_rolled_back_transaction_keeps_none_of_its_jobs(hive: hm.HiveMind, db_url: str) -> None:
    with pytest.raises(RuntimeError):
        async with hive.transaction() as tx:
            await tx.jobs.create(jobs.add, 1)
            await tx.jobs.create_many([hm.call(jobs.add, 2), hm.call(jobs.add, 3)])
            raise RuntimeError("undo")
    assert backends.count(db_url, "job") == 0
    async with hive.transaction() as tx:
        first = await tx.jobs.create(jobs.add, 1)
        more = await tx.jobs.create_many([hm.call(jobs.add, 2), hm.call(jobs.add, 3)])
    assert sorted([first, *more]) == [first, first + 1, first + 2]
    assert (await hive.jobs.count_by_state()) == {"Enqueued": 3}


async def test_batches_get_their_own_ids_in_order(hive: hm.HiveMind) -> None:
    ids = await hive.jobs.create_many([hm.call(jobs.add, n) for n in range(1200)])  # more than one MySQL insert
    assert len(set(ids)) == 1200
    for job_id, n in [(ids[0], 0), (ids[499], 499), (ids[500], 500), (ids[-1], 1199)]:
        assert (await hive.jobs.get(job_id)).invocation.arguments == {"a": n}


class Seen:
    """What a callback received, awaitable until there is enough of it."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._more = asyncio.Event()

    def add(self, item: Any = None) -> None:
        self.items.append(item)
        self._more.set()

    async def until(self, count: int, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.items) < count:
                self._more.clear()
                await self._more.wait()


async def test_local_fetchers_are_woken_after_the_commit(hive: hm.HiveMind) -> None:
    woken = Seen()
    remove = hive.env().add_wake_listener(woken.add)
    try:
        await hive.jobs.options(state=hm.Idle()).create(jobs.add, 3)  # not enqueued: nobody to wake
        await hive.jobs.options(queue="mail").create(jobs.add, 1)
        await hive.jobs.options(queue="bulk").create_many([hm.call(jobs.add, 2)])
        await woken.until(2)
    finally:
        remove()
    assert woken.items == [frozenset({"mail"}), frozenset({"bulk"})]


async def test_postgres_notifies_other_processes_at_commit(postgres_url: str) -> None:
    async with hm.HiveMind(postgres_url) as producer, hm.HiveMind(postgres_url) as listener:
        changes = Seen()
        listener.env().storage.subscribe_changes(changes.add)
        await changes.until(1)  # the listener reports its connection once
        async with producer.transaction() as tx:
            await tx.jobs.create(jobs.add, 1)
            with pytest.raises(TimeoutError):
                await changes.until(2, timeout=0.2)  # nothing before the commit
        await changes.until(2)
        await producer.jobs.create(jobs.add, 2)
        await changes.until(3)
        await producer.jobs.create_many([hm.call(jobs.add, n) for n in range(3)])
        await changes.until(4)


async def test_mysql_change_probe_reads_other_connections_new_jobs(mariadb_url: str) -> None:
    async with hm.HiveMind(mariadb_url) as producer, hm.HiveMind(mariadb_url) as prober:
        storage = prober.env().storage
        assert storage.change_marker() is None  # not probed yet
        assert await storage.probe_changes()
        assert storage.change_marker() == 0  # no job yet
        async with producer.transaction() as tx:
            await tx.jobs.create(jobs.add, 1)
            await storage.probe_changes()
            assert storage.change_marker() == 0  # nothing before the commit
        first = await producer.jobs.create(jobs.add, 2)
        await storage.probe_changes()
        assert storage.change_marker() == first
        [*_, last] = await producer.jobs.create_many([hm.call(jobs.add, n) for n in range(3)])
        await storage.probe_changes()
        assert storage.change_marker() == last
    assert await storage.probe_changes()  # closed: nothing to probe, the marker stays
    assert storage.change_marker() == last


def _two(a: int, b: str = "x", *, c: int = 0, d: str) -> None: ...


CALLS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((1,), {"d": "y"}),
    ((1, "b"), {"d": "y"}),
    ((), {"a": 1, "d": "y", "c": 2}),
    ((1,), {"d": "y", "b": "z"}),
    ((1,), {}),  # d missing
    ((1, "b", 3), {"d": "y"}),  # too many positionals
    ((1,), {"a": 1, "d": "y"}),  # a twice
    ((1,), {"d": "y", "e": 1}),  # unknown keyword
    ((), {"d": "y"}),  # a missing
]


@pytest.mark.parametrize(("args", "kwargs"), CALLS)
def test_argument_binding_agrees_with_the_signature(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    try:
        expected: dict[str, Any] | None = dict(inspect.signature(_two).bind(*args, **kwargs).arguments)
    except TypeError:
        expected = None
    if expected is None:
        with pytest.raises(ArgumentBindingError):
            build_invocation(_two, args, kwargs, hm.Codec(), (hm.JobContext,))
        return
    invocation = build_invocation(_two, args, kwargs, hm.Codec(), (hm.JobContext,))
    assert invocation.arguments == expected
    assert list(invocation.arguments) == list(expected)  # the stored JSON keeps the signature's order


def _kill_sessions(backend_name: str, url: str) -> None:
    """Kill every server session of this test's storage (its pooled connections go stale)."""
    if backend_name == "postgres":
        name = f"hm-{backends.url_schema(url)}"
        assert backends.raw(
            url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = ?", name
        )
        return
    database = backends.url_database(url)
    sessions = backends.raw(
        url, "SELECT id FROM information_schema.processlist WHERE db = ? AND id <> CONNECTION_ID()", database
    )
    assert sessions
    for (session,) in sessions:
        backends.raw(url, "KILL CONNECTION ?", int(session))


@pytest.mark.parametrize("backend_name", ["postgres", "mariadb"])
async def test_a_retried_insert_that_committed_before_its_answer_was_lost_is_not_repeated(
    backend_name: str, backend_url: str
) -> None:
    url = backend_url
    if backend_name == "postgres":
        url = f"{url}&application_name=hm-{backends.url_schema(url)}"
    async with hm.HiveMind(url) as hive:
        env = hive.env()
        new = NewJobs(
            queue="q", priority=hm.Priority.NORMAL, state=hm.Enqueued(), properties={}, middleware=(), codec=env.codec
        )
        stored = Invocation.from_json('{"v":1,"target":"tests.sample_jobs:do_stuff","async":false,"args":{}}')
        for count in (1, 3):
            rows = new.inserts([stored] * count, env.clock.now())
            async with env.storage.transaction() as tx:  # the attempt whose answer was lost
                first = await tx.job_insert(rows)
            _kill_sessions(backend_name, url)
            async with env.storage.transaction() as tx:  # the same insert again, on a dead connection
                tx.commit_after_next()
                again = await tx.job_insert(rows)
            assert [row.id for row in again] == [row.id for row in first]
        assert int(env.info.extras["retried"]) >= 2
        assert await hive.jobs.count() == 4
        assert backends.count(backend_url, "job_state") == 8


async def test_a_batch_of_large_calls_is_written_whole(hive: hm.HiveMind) -> None:
    text = "x" * 900_000  # five of them: more than one statement may carry on MySQL
    ids = await hive.jobs.create_many([hm.call(jobs.hello_world, f"{n}{text}") for n in range(5)])
    stored = [(await hive.jobs.get(job_id)).invocation.arguments["message"] for job_id in ids]
    assert [message[:1] for message in stored] == ["0", "1", "2", "3", "4"]
    assert all(len(message) == 900_001 for message in stored)
    assert (await hive.jobs.count_by_state()) == {"Enqueued": 5}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
async def test_mariadb_compound_statement_stores_what_the_script_stores(mariadb_url: str, variant: str) -> None:
    """On MariaDB a create is one compound statement (one result to read instead of one per
    statement); the rows are those of the plain multi-statement script, on its own and inside a
    larger transaction."""
    async with hm.HiveMind(mariadb_url) as hive:
        driver = hive.env().storage.driver  # type: ignore[attr-defined]
        assert driver.compound_statements  # read when the pool opened: the server is MariaDB
        client = hive.jobs.options(**VARIANTS[variant])
        compound = await create_three(client)
        async with hive.transaction() as tx:
            inside = await create_three(tx.jobs.options(**VARIANTS[variant]))
        driver.compound_statements = False
        script = await create_three(client)
    absolute = "delay_until" in VARIANTS[variant]
    for one, other, plain in zip(compound, inside, script, strict=True):
        expected = stored(mariadb_url, plain, absolute_due=absolute)
        assert stored(mariadb_url, one, absolute_due=absolute) == expected
        assert stored(mariadb_url, other, absolute_due=absolute) == expected
    assert len({*compound, *inside, *script}) == 9


async def test_mariadb_scripts_check_only_the_links_to_jobs_of_the_application(mariadb_url: str) -> None:
    """On MariaDB a create's rows naming its own new job skip the foreign-key check (that statement
    alone: the session still checks afterwards); a link to a parent is checked; and a batch whose
    ids turn out not consecutive still fails whole, in a strict session and in a lax one."""
    from hivemind_jobs.storage.mysql import backend as mysql

    async with hm.HiveMind(mariadb_url) as hive:
        storage = hive.env().storage
        driver = storage.driver  # type: ignore[attr-defined]
        q = storage.queries  # type: ignore[attr-defined]
        raw = await driver.acquire()
        try:

            async def run(script: str | None) -> None:
                assert script is not None
                async with raw.cursor() as cursor:
                    await cursor.execute(script)
                    while await cursor.nextset():
                        pass

            async def checks() -> int:
                async with raw.cursor() as cursor:
                    await cursor.execute("SELECT @@session.foreign_key_checks")
                    [(value,)] = await cursor.fetchall()
                    return int(value)

            shaped = new_job(queue="fk-own", properties=every_property_type("x", 1.5, True))
            script = mysql._insert_script(q, [shaped], raw, commit=True, compound=True)
            assert script is not None and script.count("foreign_key_checks = 0") == 3  # states, properties, entry
            await run(script)
            assert await checks() == 1

            orphan = new_job(queue="fk-orphan", state="Awaiting", enqueue=False, awaiting_parent=2**62)
            script = mysql._insert_script(q, [orphan], raw, commit=True, compound=True)
            with pytest.raises(mysql.asyncmy.errors.IntegrityError) as refused:
                await run(script)
            assert refused.value.args[0] == 1452  # ER_NO_REFERENCED_ROW_2: the parent is checked
            await raw.rollback()
            assert await checks() == 1

            for mode in ("STRICT_TRANS_TABLES", ""):  # ids that are not consecutive: every part fails
                async with raw.cursor() as cursor:
                    await cursor.execute(f"SET SESSION sql_mode = '{mode}', SESSION auto_increment_increment = 2")
                batch = [new_job(queue="fk-spread") for _ in range(3)]
                with pytest.raises(mysql.asyncmy.errors.MySQLError):
                    await run(mysql._insert_script(q, batch, raw, commit=True, compound=True))
                await raw.rollback()
        finally:
            await driver.release(raw, discard=True)
    counts = dict(backends.raw(mariadb_url, "SELECT queue, COUNT(*) FROM {job} GROUP BY queue"))
    assert counts == {"fk-own": 1}
    [(states, properties, entries)] = backends.raw(
        mariadb_url,
        "SELECT (SELECT COUNT(*) FROM {job_state}), (SELECT COUNT(*) FROM {job_property}), "
        "(SELECT COUNT(*) FROM {queue})",
    )
    assert (states, properties, entries) == (2, len(shaped.properties), 1)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
async def test_mariadb_batch_created_alike_reads_its_rows_back(
    mariadb_url: str, variant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On MariaDB the history rows and queue entries of a batch created alike are read back from
    its job rows (``INSERT ... SELECT``, each INSERT of job rows its own id range); they are the
    rows the batch gets written row by row."""
    from hivemind_jobs.storage.mysql import backend as mysql

    monkeypatch.setattr(mysql, "_INSERT_CHUNK", 3)  # seven jobs: three INSERTs of job rows
    sent = recorded_scripts(monkeypatch)
    calls = [hm.call(jobs.add, n, b=n) for n in range(7)]
    async with hm.HiveMind(mariadb_url) as hive:
        client = hive.jobs.options(**VARIANTS[variant])
        read_back = await client.create_many(calls)
        [script] = sent
        assert script.count("SELECT j.id") == 3 * (2 + (variant != "idle"))  # per range: 2 states, the entry
        monkeypatch.setattr(mysql, "_derived_rows", lambda *arguments: None)
        sent.clear()
        row_by_row = await client.create_many(calls)
        assert "SELECT j.id" not in sent[0]
    absolute = "delay_until" in VARIANTS[variant]
    for one, other in zip(read_back, row_by_row, strict=True):
        assert stored(mariadb_url, one, absolute_due=absolute) == stored(mariadb_url, other, absolute_due=absolute)


def test_mariadb_batch_is_read_back_only_when_created_alike() -> None:
    from hivemind_jobs.storage.mysql import backend as mysql

    q = {
        "job_insert": "INSERT INTO `d`.`p_job` (queue) VALUES (%(queue)s)",
        "job_state_insert": "INSERT INTO `d`.`p_job_state` (job_id, sequence, name, elected_at, reason, fields) "
        "VALUES (%(job_id)s, %(sequence)s, %(name)s, %(elected_at)s, %(reason)s, %(fields)s)",
        "queue_upsert": "INSERT INTO `d`.`p_queue` (job_id, queue, priority, execute_after, execution_id, enqueued_at) "
        "VALUES (%(job_id)s, %(queue)s, %(priority)s, %(execute_after)s, %(execution_id)s, %(now)s)",
    }

    class Escaping:
        def escape_string(self, value: str) -> str:
            return value.replace("'", "''")

    at = datetime(2030, 1, 2, tzinfo=UTC)

    def derived(batch: list[JobInsert]) -> list[str] | None:
        positions = [(0, index) for index in range(len(batch))]
        return mysql._derived_rows(q, batch, positions, ["@hm_f0"], mysql._Literals(Escaping()))

    alike = derived([new_job(elected_at=at), new_job(elected_at=at)])
    assert alike is not None and len(alike) == 4  # the states, their count, the entries, their count
    assert derived([new_job(elected_at=at), new_job(elected_at=at, state="Idle", enqueue=False)]) is None
    assert derived([new_job(elected_at=at), new_job(elected_at=at + timedelta(seconds=1))]) is None
    assert derived([new_job(elected_at=at), new_job(elected_at=at, execute_after=WHEN)]) is None
    assert derived([new_job(elected_at=at, delay=timedelta(seconds=5)), new_job(elected_at=at)]) is None
    other_queue = new_job(elected_at=at)
    other_queue = dataclasses.replace(other_queue, enqueue=dataclasses.replace(other_queue.enqueue, queue="elsewhere"))  # type: ignore[arg-type]
    assert derived([new_job(elected_at=at), other_queue]) is None
    no_entries = derived([new_job(elected_at=at, enqueue=False), new_job(elected_at=at, enqueue=False)])
    assert no_entries is not None and len(no_entries) == 2


async def test_mariadb_large_batch_goes_as_pipelined_scripts(mariadb_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch of several parts is sent as several scripts, each rendered while the server runs the
    one before: the jobs get their ids in order, one database clock, every row; inside a larger
    transaction a rollback keeps none; a part that fails leaves nothing of the batch."""
    from hivemind_jobs.storage.mysql import backend as mysql

    parts = mysql._PIPELINE_PART
    count = 2 * parts + 7
    run_part = mysql._MySQLConnection._insert_part
    sent = recorded_scripts(monkeypatch)
    async with hm.HiveMind(mariadb_url) as hive:
        client = hive.jobs.options(queue="bulk", properties={"tenant": "acme"})
        ids = await client.create_many([hm.call(jobs.add, n) for n in range(count)])
        assert len(sent) == 3 and sum(script.count("UTC_TIMESTAMP(6)") for script in sent) == 1
        assert "COMMIT" in sent[-1] and not any("COMMIT" in script for script in sent[:-1])
        assert ids == list(range(ids[0], ids[0] + count))
        [(jobs_written, clocks)] = backends.raw(
            mariadb_url, "SELECT COUNT(*), COUNT(DISTINCT created_at) FROM {job} WHERE queue = 'bulk'"
        )
        assert (jobs_written, clocks) == (count, 1)
        for table, per_job in (("job_state", 2), ("queue", 1), ("job_property", 1)):
            [(rows, distinct)] = backends.raw(
                mariadb_url,
                f"SELECT COUNT(*), COUNT(DISTINCT job_id) FROM {{{table}}} WHERE job_id BETWEEN ? AND ?",
                ids[0],
                ids[-1],
            )
            assert (rows, distinct) == (per_job * count, count), table
        loaded = await hive.jobs.get(ids[-1])
        assert loaded.invocation.arguments == {"a": count - 1} and loaded.properties == {"tenant": "acme"}

        sent.clear()
        with pytest.raises(RuntimeError, match="rolled back"):
            async with hive.transaction() as tx:
                await tx.jobs.options(queue="kept-none").create_many([hm.call(jobs.add, n) for n in range(count)])
                raise RuntimeError("rolled back")
        assert len(sent) == 3 and not any("COMMIT" in script for script in sent)

        async def second_fails(self: Any, script: str) -> Any:
            sent.append(script)
            if len(sent) == 2:
                raise mysql.asyncmy.errors.ProgrammingError(1064, "You have an error (simulated)")
            return await run_part(self, script)

        sent.clear()
        monkeypatch.setattr(mysql._MySQLConnection, "_insert_part", second_fails)
        with pytest.raises(hm.HiveMindError):
            await hive.jobs.options(queue="failed").create_many([hm.call(jobs.add, n) for n in range(count)])
        assert len(sent) == 2  # the third part is never sent
        monkeypatch.setattr(mysql._MySQLConnection, "_insert_part", run_part)
        await hive.jobs.create(jobs.add, 1)  # the pool is usable after the failure
    assert backends.raw(mariadb_url, "SELECT COUNT(*) FROM {job} WHERE queue IN ('kept-none', 'failed')") == [(0,)]


async def test_mariadb_batch_parts_are_checked_while_the_part_before_is_written(
    mariadb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a transaction of its own a large batch's calls are checked part by part, each part while
    the script of the one before it is at the server; a bad call in a later part rolls back the
    parts sent before it. In an application's transaction every call is checked first."""
    from hivemind_jobs.storage.mysql import backend as mysql

    parts = mysql._PIPELINE_PART
    events: list[str] = []
    run_part = mysql._MySQLConnection._insert_part
    check = hm.BackgroundJobClient._invocation

    async def recorded(self: Any, script: str) -> Any:
        events.append("sent")
        return await run_part(self, script)

    def checked(self: Any, function: Any, args: Any, kwargs: Any) -> Any:
        events.append("checked")
        return check(self, function, args, kwargs)

    monkeypatch.setattr(mysql._MySQLConnection, "_insert_part", recorded)
    monkeypatch.setattr(hm.BackgroundJobClient, "_invocation", checked)
    async with hm.HiveMind(mariadb_url) as hive:
        client = hive.jobs.options(queue="parts")
        count = 2 * parts + 7
        ids = await client.create_many(hm.call(jobs.add, n) for n in range(count))
        assert ids == list(range(ids[0], ids[0] + count))
        sent = [index for index, event in enumerate(events) if event == "sent"]
        assert sent == [parts, 2 * parts + 1, count + 2]  # each script sent before the next part is checked
        [(written, clocks)] = backends.raw(
            mariadb_url, "SELECT COUNT(*), COUNT(DISTINCT created_at) FROM {job} WHERE queue = 'parts'"
        )
        assert (written, clocks) == (count, 1)
        assert (await hive.jobs.get(ids[-1])).invocation.arguments == {"a": count - 1}

        calls = [hm.call(jobs.add, n) for n in range(count)]
        calls[2 * parts + 3] = hm.call(jobs.add)  # type: ignore[call-arg]
        events.clear()
        with pytest.raises(ArgumentBindingError):
            await hive.jobs.options(queue="bad").create_many(calls)
        assert events.count("sent") == 2 and events.count("checked") == 2 * parts + 4
        events.clear()
        async with hive.transaction() as tx:
            with pytest.raises(ArgumentBindingError):
                await tx.jobs.options(queue="bad").create_many(calls)
            assert "sent" not in events and events.count("checked") == 2 * parts + 4
            await tx.jobs.options(queue="kept").create(jobs.add, 1)
        assert await hive.jobs.create(jobs.add, 2) > ids[-1]  # the pool is usable after the failures
    assert backends.raw(
        mariadb_url, "SELECT queue, COUNT(*) FROM {job} WHERE queue IN ('bad', 'kept') GROUP BY queue"
    ) == [("kept", 1)]


async def test_mariadb_built_parts_with_large_calls_are_cut_to_fit(
    mariadb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A part built while the one before is written, whose calls are too large for one script
    together, goes as several scripts: every job is written whole, in order."""
    from hivemind_jobs.storage.mysql import backend as mysql

    scripts: list[int] = []
    run_part = mysql._MySQLConnection._insert_part

    async def recorded(self: Any, script: str) -> Any:
        scripts.append(len(script))
        return await run_part(self, script)

    monkeypatch.setattr(mysql._MySQLConnection, "_insert_part", recorded)
    big = "x" * 900_000
    calls = [hm.call(jobs.hello_world, f"{n}{big if n % 100 == 7 else ''}") for n in range(600)]
    async with hm.HiveMind(mariadb_url) as hive:
        ids = await hive.jobs.create_many(calls)
        assert ids == list(range(ids[0], ids[0] + 600))
        assert len(scripts) > 3 and max(scripts) < mysql._INSERT_BYTES
        for n in (6, 7, 8, 507, 599):
            message = (await hive.jobs.get(ids[n])).invocation.arguments["message"]
            assert message == f"{n}{big if n % 100 == 7 else ''}"
    assert backends.count(mariadb_url, "job") == 600 and backends.count(mariadb_url, "queue") == 600


def _one_job_variants() -> list[Callable[[], JobInsert]]:
    """Jobs of every shape a one-job script takes, each made anew (execution id, times) per call."""
    odd = 'he said "hi" \\ back\\slash, ünïcode 😀, \x01E\x01'

    def with_reason() -> JobInsert:
        job = new_job(state="Idle", enqueue=False)
        reason = dataclasses.replace(job.states[1], reason=odd, fields=json.dumps({"note": odd}))
        return dataclasses.replace(job, states=(job.states[0], reason), invocation=json.dumps({"v": 1, "args": odd}))

    return [
        new_job,
        lambda: new_job(lock_owner="holder"),
        lambda: new_job(queue="billing", priority=0, delay=timedelta(seconds=5)),
        lambda: new_job(execute_after=WHEN, properties=every_property_type(odd, 1.5, True)),
        lambda: new_job(state="Awaiting", enqueue=False, awaiting_parent=7),
        lambda: new_job(properties=(PropertyRow("mark", PropertyType.TEXT, "\x01E\x01"),)),  # looks like a mark
        lambda: new_job(properties=(PropertyRow("zero", PropertyType.FLOAT, 0.0),)),
        lambda: new_job(properties=(PropertyRow("zero", PropertyType.FLOAT, -0.0),)),  # an equal key, another literal
        with_reason,
    ]


#: creation options whose one-job create goes as PostgreSQL's plain statement (see job_insert_plain)
PLAIN_ON_POSTGRES = {
    "plain": {},
    "delay_until": {"delay_until": WHEN},
    "placed": {"queue": "billing", "priority": hm.Priority.HIGH},
    "reason": {"state": hm.Enqueued(reason="by hand")},
}


@pytest.mark.parametrize("variant", sorted(PLAIN_ON_POSTGRES))
async def test_postgres_plain_create_stores_what_job_insert_stores(
    postgres_url: str, variant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A common create goes as ``job_insert_plain``, about half of ``job_insert``'s parameters; its
    rows, queue entry and wake-up are exactly those of ``job_insert``, alone and in a transaction."""
    from hivemind_jobs.storage.postgres import backend as postgres

    plain_job = postgres._plain_job
    chosen: list[bool] = []

    def choose(job: JobInsert, channel: str) -> dict[str, Any] | None:
        values = plain_job(job, channel)
        chosen.append(values is not None)
        return values

    monkeypatch.setattr(postgres, "_plain_job", choose)
    async with hm.HiveMind(postgres_url) as producer, hm.HiveMind(postgres_url) as listener:
        changes = Seen()
        listener.env().storage.subscribe_changes(changes.add)
        await changes.until(1)
        client = producer.jobs.options(**PLAIN_ON_POSTGRES[variant])
        plain = await client.create(jobs.add, 1, b=3)
        async with producer.transaction() as tx:
            inside = await tx.jobs.options(**PLAIN_ON_POSTGRES[variant]).create(jobs.add, 1, b=3)
        assert chosen == [True, True]
        await changes.until(3)  # each woke the listener at its commit
        monkeypatch.setattr(postgres, "_plain_job", lambda job, channel: None)
        whole = await client.create(jobs.add, 1, b=3)
        await changes.until(4)
    absolute = variant == "delay_until"
    expected = stored(postgres_url, whole, absolute_due=absolute)
    assert stored(postgres_url, plain, absolute_due=absolute) == expected
    assert stored(postgres_url, inside, absolute_due=absolute) == expected
    assert expected["queue"] is not None


async def test_postgres_keeps_a_cursor_per_connection_for_statements_read_at_once(postgres_url: str) -> None:
    """HiveMind's own connections keep one cursor for statements whose rows are read at once; in
    pipeline mode and on an application's connection each statement gets a cursor of its own."""
    import psycopg

    from hivemind_jobs.storage.postgres import backend as postgres

    async with hm.HiveMind(postgres_url) as hive:
        driver = hive.env().storage.driver  # type: ignore[attr-defined]
        raw = await driver.acquire()
        try:
            first, again = driver.wrap(raw), driver.wrap(raw)
            kept = first._cursor()
            assert again._cursor() is kept  # the next transaction on this connection
            assert await first.fetchall("SELECT 1, 'a'") == [(1, "a")]
            assert await again.fetchall("SELECT 2, 'b'") == [(2, "b")]
            async with raw.pipeline():
                assert first._cursor() is not kept
            await raw.rollback()
            other = await driver.acquire()  # another connection: a cursor of its own
            try:
                assert other is not raw and driver.wrap(other)._cursor() is not kept
            finally:
                await driver.release(other, discard=False)
        finally:
            await driver.release(raw, discard=False)
        conninfo = driver.conninfo()
    async with await psycopg.AsyncConnection.connect(**conninfo) as application:
        wrapped = postgres._PgConnection(application, "channel")
        wrapped.external = True
        assert wrapped._cursor() is not wrapped._cursor()
    # a closed connection leaves with its cursor (the cursor refers to it; nothing else keeps them)
    closing = await postgres._OwnConnection.connect(**conninfo)
    reference = weakref.ref(closing)
    assert postgres._PgConnection(closing, "channel")._cursor() is closing.kept_cursor is not None
    await closing.close()
    del closing
    gc.collect()
    assert reference() is None


def test_postgres_plain_create_is_only_for_the_jobs_it_writes() -> None:
    """Anything ``job_insert_plain`` has no place for sends the job through ``job_insert``."""
    from hivemind_jobs.storage.postgres import backend as postgres

    at = datetime(2030, 1, 1, tzinfo=UTC)
    assert postgres._plain_job(new_job(elected_at=at), "c") is not None
    assert postgres._plain_job(new_job(elected_at=at, execute_after=WHEN), "c") is not None
    for job in (
        dataclasses.replace(  # its two states elected at two moments
            new_job(elected_at=at),
            states=(state_row(0, "Created", elected_at=at), state_row(1, "Enqueued", elected_at=WHEN)),
        ),
        new_job(elected_at=at, delay=timedelta(seconds=5)),
        new_job(elected_at=at, enqueue=False),
        new_job(elected_at=at, lock_owner="holder"),
        new_job(elected_at=at, awaiting_parent=7),
        new_job(elected_at=at, properties=every_property_type("x", 1.5, True)),
        dataclasses.replace(new_job(elected_at=at), states=new_job(elected_at=at).states[:1]),
    ):
        assert postgres._plain_job(job, "c") is None


#: creation options whose one-job create goes as MariaDB's prepared statement (see _plain_statement)
PLAIN_ON_MARIADB = {**PLAIN_ON_POSTGRES, "middleware": {"middleware": VARIANTS["placed"]["middleware"]}}


@pytest.mark.parametrize("variant", sorted(PLAIN_ON_MARIADB))
async def test_mariadb_plain_create_stores_what_the_script_stores(
    mariadb_url: str, variant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A common create on MariaDB is the EXECUTE of a statement prepared once per session; its rows
    are exactly those of the script, and a create inside a larger transaction is the script."""
    from hivemind_jobs.storage.mysql import backend as mysql

    plain_values = mysql._plain_values
    chosen: list[bool] = []

    def choose(job: JobInsert) -> Any:
        values = plain_values(job)
        chosen.append(values is not None)
        return values

    monkeypatch.setattr(mysql, "_plain_values", choose)
    async with hm.HiveMind(mariadb_url) as hive:
        client = hive.jobs.options(**PLAIN_ON_MARIADB[variant])
        plain = [await client.create(jobs.add, 1, b=3) for _ in range(2)]  # prepared, then executed
        async with hive.transaction() as tx:
            inside = await tx.jobs.options(**PLAIN_ON_MARIADB[variant]).create(jobs.add, 1, b=3)
            await tx.jobs.create(jobs.add, 2)
        assert chosen == [True, True]
        monkeypatch.setattr(mysql, "_plain_values", lambda job: None)
        whole = await client.create(jobs.add, 1, b=3)
    absolute = variant == "delay_until"
    expected = stored(mariadb_url, whole, absolute_due=absolute)
    for job_id in (*plain, inside):
        assert stored(mariadb_url, job_id, absolute_due=absolute) == expected
    assert expected["queue"] is not None


async def test_mariadb_plain_create_prepares_its_statement_once_per_session(
    mariadb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first common create of a session prepares the statement in the same round trip as its
    EXECUTE; the next ones only execute it; a session that lost it prepares it again, and the
    failed EXECUTE wrote nothing."""
    from hivemind_jobs.storage.mysql import backend as mysql

    scripts = recorded_scripts(monkeypatch)

    def sent() -> list[str]:
        return [script.split(" ", 1)[0] for script in scripts]

    async with hm.HiveMind(mariadb_url) as hive:
        first = await hive.jobs.create(jobs.add, 1)
        second = await hive.jobs.create(jobs.add, 2)
        assert sent() == ["EXECUTE", "PREPARE", "EXECUTE"]  # unknown on the new session, then prepared
        storage = hive.env().storage
        driver = storage.driver  # type: ignore[attr-defined]
        q = storage.queries  # type: ignore[attr-defined]
        name, _, _ = mysql._plain_statement(q["job_insert"], q["job_state_insert"], q["queue_upsert"])
        raw = await driver.acquire()  # the idle session the creates used
        try:
            async with raw.cursor() as cursor:
                await cursor.execute(f"DEALLOCATE PREPARE {name}")
        finally:
            await driver.release(raw, discard=False)
        scripts.clear()
        third = await hive.jobs.create(jobs.add, 3)
        assert sent() == ["EXECUTE", "PREPARE"]
        loaded = [await hive.jobs.get(job_id) for job_id in (first, second, third)]
    assert [job.invocation.arguments["a"] for job in loaded] == [1, 2, 3]
    assert [job_id - first for job_id in (second, third)] == [1, 2]
    assert backends.raw(mariadb_url, "SELECT COUNT(*) FROM {job}") == [(3,)]
    assert backends.raw(mariadb_url, "SELECT COUNT(*) FROM {job_state}") == [(6,)]


def test_mariadb_plain_create_is_only_for_the_jobs_it_writes() -> None:
    from hivemind_jobs.storage.mysql import backend as mysql

    at = datetime(2030, 1, 2, tzinfo=UTC)
    assert mysql._plain_values(new_job(elected_at=at)) is not None
    assert mysql._plain_values(new_job(elected_at=at, execute_after=WHEN)) is not None
    assert mysql._plain_values(new_job(elected_at=at, delay=timedelta(0))) is not None  # due now
    for job in (
        new_job(elected_at=at, enqueue=False),
        new_job(elected_at=at, delay=timedelta(seconds=5)),
        new_job(elected_at=at, lock_owner="holder"),
        new_job(elected_at=at, awaiting_parent=7),
        new_job(elected_at=at, properties=every_property_type("x", 1.5, True)),
        dataclasses.replace(new_job(elected_at=at), states=new_job(elected_at=at).states[:1]),
    ):
        assert mysql._plain_values(job) is None


async def test_mariadb_one_job_scripts_are_the_scripts_rendered_whole(mariadb_url: str) -> None:
    """A create's script is filled in from the one kept for a job created alike: it is exactly the
    script rendered whole, for every shape of job, the first time and the next."""
    from hivemind_jobs.storage.mysql import backend as mysql

    async with hm.HiveMind(mariadb_url) as hive:
        storage = hive.env().storage
        driver = storage.driver  # type: ignore[attr-defined]
        raw = await driver.acquire()
        try:
            q = storage.queries  # type: ignore[attr-defined]
            for make in _one_job_variants():
                for commit, compound, clock in itertools.product((True, False), repeat=3):
                    options = {"commit": commit, "compound": compound, "clock": clock}
                    for _ in range(3):  # rendered whole and kept, then filled in
                        job = make()
                        whole = mysql._script_of(q, [job], raw, **options)
                        assert whole is not None and job.execution_id in whole
                        assert mysql._insert_script(q, [job], raw, **options) == whole
        finally:
            await driver.release(raw, discard=False)


async def test_a_created_jobs_history_keeps_its_text_exactly(hive: hm.HiveMind, db_url: str) -> None:
    reason = 'he said "hi" \\ back\\slash, {braces}, ünïcode 😀, NULL'
    job_id = await hive.jobs.options(state=hm.Idle(reason=reason)).create(jobs.add, 1)
    [(name, stored_reason, fields)] = backends.raw(
        db_url, "SELECT name, reason, fields FROM {job_state} WHERE job_id = ? AND sequence = 1", job_id
    )
    assert (name, stored_reason) == ("Idle", reason)
    job = await hive.jobs.get(job_id)
    assert job.state.reason == reason and [state.name for state in job.states] == ["Created", "Idle"]
    assert json.loads(fields) == {}


async def test_mariadb_pipelined_batch_cancelled_midway_writes_nothing(
    mariadb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A create_many cancelled while a later part is at the server: no job of it is written, and
    the pool goes on working (the interrupted session is closed, not reused)."""
    from hivemind_jobs.storage.mysql import backend as mysql

    run_part = mysql._MySQLConnection._insert_part
    second_sent = asyncio.Event()
    parts = 0

    async def slow_second(self: Any, script: str) -> Any:
        nonlocal parts
        parts += 1
        if parts == 2:
            second_sent.set()
            await asyncio.sleep(30)  # the server would still be working on it
        return await run_part(self, script)

    monkeypatch.setattr(mysql._MySQLConnection, "_insert_part", slow_second)
    async with hm.HiveMind(mariadb_url) as hive:
        client = hive.jobs.options(queue="cancelled")
        task = asyncio.create_task(client.create_many([hm.call(jobs.add, n) for n in range(3 * mysql._PIPELINE_PART)]))
        await asyncio.wait_for(second_sent.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        monkeypatch.setattr(mysql._MySQLConnection, "_insert_part", run_part)
        ids = await hive.jobs.options(queue="after").create_many([hm.call(jobs.add, n) for n in range(600)])
        assert len(ids) == 600
    assert backends.raw(mariadb_url, "SELECT COUNT(*) FROM {job} WHERE queue = 'cancelled'") == [(0,)]
    assert backends.raw(mariadb_url, "SELECT COUNT(*) FROM {job} WHERE queue = 'after'") == [(600,)]
