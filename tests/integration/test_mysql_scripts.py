"""MySQL / MariaDB pipelines: the statements of a ``pipeline()`` block (and of ``fetch_each``) go to
the server as one multi-statement script, one round trip, on HiveMind's own sessions; statement by
statement on an application's connection. A failing statement stops the script and fails the
transaction, which keeps nothing of it; the session stays usable."""

from __future__ import annotations

import importlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from hivemind_jobs.storage.mysql import backend as mysql
from hivemind_jobs.storage.server.base import ServerStorage
from hivemind_jobs.storage.sql import SQL
from tests import backends

Scripts = list[list[str]]


@pytest_asyncio.fixture
async def storage(mariadb_url: str, table: str) -> AsyncIterator[ServerStorage]:
    """The storage, closed (its sessions too) before the table is dropped."""
    async with backends.server_storage(mariadb_url, "hm_scripts_") as store:
        yield store


@pytest.fixture
def table(mariadb_url: str) -> Any:
    name = f"`{backends.url_database(mariadb_url)}`.pipe_{uuid.uuid4().hex[:12]}"
    backends.raw(mariadb_url, f"CREATE TABLE {name} (id INT PRIMARY KEY, label VARCHAR(40) NOT NULL)")
    yield name
    backends.raw(mariadb_url, f"DROP TABLE IF EXISTS {name}")


@pytest.fixture
def scripts(monkeypatch: pytest.MonkeyPatch) -> Scripts:
    """The statements of every script sent, in order."""
    sent: Scripts = []
    run = mysql._MySQLConnection._script

    async def recorded(self: Any, part: Any) -> None:
        sent.append([statement for statement, _ in part])
        await run(self, part)

    monkeypatch.setattr(mysql._MySQLConnection, "_script", recorded)
    return sent


@pytest_asyncio.fixture
async def session(storage: ServerStorage) -> AsyncIterator[Any]:
    """A pooled connection as the operations see it, rolled back and handed back afterwards."""
    async with backends.pooled(storage) as connection:
        yield connection


def insert(table: str) -> SQL:
    return SQL(f"INSERT INTO {table} (id, label) VALUES (%(id)s, %(label)s)")


def labels(url: str, table: str) -> list[tuple[Any, ...]]:
    return backends.raw(url, f"SELECT id, label FROM {table} ORDER BY id")


async def test_a_pipeline_is_one_script_read_after_the_block(session: Any, table: str, scripts: Scripts) -> None:
    async with session.pipeline():
        assert await session.execute(insert(table), {"id": 1, "label": "one"}) == 0  # not sent yet
        assert await session.executemany(insert(table), [{"id": 2, "label": "it's"}, {"id": 3, "label": "3"}]) == 0
        await session.execute(SQL(f"SELECT id FROM {table} FOR UPDATE -- rows not read"), {})
        await session.execute(SQL(f"UPDATE {table} SET label = %(label)s WHERE id = 3"), {"label": "three"})
        later = SQL(f"SELECT id, label FROM {table} WHERE id >= %(id)s ORDER BY id")
        read = await session.fetch_later(later, {"id": 2})
        assert scripts == []
    assert len(scripts) == 1 and len(scripts[0]) == 5  # the executemany is one multi-row INSERT
    assert await read() == [(2, "it's"), (3, "three")]


async def test_fetch_each_sends_its_writes_and_queries_as_one_script(
    session: Any, table: str, scripts: Scripts
) -> None:
    rows = await session.fetch_each(
        [
            (SQL(f"SELECT label FROM {table} WHERE id = %(id)s"), {"id": 1}),
            (SQL(f"SELECT COUNT(*) FROM {table}"), {}),
        ],
        writes=[(insert(table), {"id": 1, "label": "one"}), (insert(table), {"id": 2, "label": "two"})],
    )
    assert rows == [[("one",)], [(2,)]]
    assert [len(script) for script in scripts] == [4]
    assert session.pending is None


async def test_a_statement_that_reports_sends_what_is_queued_first(session: Any, table: str, scripts: Scripts) -> None:
    async with session.pipeline():
        await session.execute(insert(table), {"id": 1, "label": "one"})
        # a duplicate key: the queued insert ran before it, so the row is there to collide with
        assert await session.insert_if_absent(insert(table), {"id": 1, "label": "again"}) is False
        assert await session.fetchall(SQL(f"SELECT label FROM {table}")) == [("one",)]
        await session.execute(insert(table), {"id": 2, "label": "two"})
    assert [len(script) for script in scripts] == [1, 1]
    assert await session.fetchall(SQL(f"SELECT id FROM {table} ORDER BY id")) == [(1,), (2,)]


async def test_a_failing_statement_stops_the_script_and_keeps_nothing(
    storage: ServerStorage, mariadb_url: str, table: str, scripts: Scripts
) -> None:
    backends.raw(mariadb_url, f"INSERT INTO {table} (id, label) VALUES (5, 'before')")
    raw = await storage.driver.acquire()
    try:
        session = storage.driver.wrap(raw)
        with pytest.raises(mysql._INTEGRITY_ERRORS):
            async with session.pipeline():
                await session.execute(insert(table), {"id": 1, "label": "one"})
                await session.execute(insert(table), {"id": 5, "label": "duplicate"})
                await session.execute(insert(table), {"id": 6, "label": "never"})
        assert len(scripts) == 1 and session.pending is None
        await storage.driver.rollback(raw)
        # the session is in a clean state: the next statements run as usual
        assert await session.fetchall(SQL(f"SELECT id FROM {table} ORDER BY id")) == [(5,)]
        await storage.driver.rollback(raw)
    finally:
        await storage.driver.release(raw, discard=False)
    assert labels(mariadb_url, table) == [(5, "before")]


async def test_a_block_that_raises_sends_nothing(session: Any, mariadb_url: str, table: str, scripts: Scripts) -> None:
    with pytest.raises(RuntimeError, match="stopped"):
        async with session.pipeline():
            await session.execute(insert(table), {"id": 1, "label": "one"})
            raise RuntimeError("stopped")
    assert scripts == [] and session.pending is None
    assert await session.fetchall(SQL(f"SELECT COUNT(*) FROM {table}")) == [(0,)]


async def test_the_commit_goes_in_the_script_only_for_the_transactions_last_operation(
    storage: ServerStorage, mariadb_url: str, table: str, scripts: Scripts
) -> None:
    raw = await storage.driver.acquire()
    try:
        session = storage.driver.wrap(raw)
        async with session.pipeline():
            await session.execute(insert(table), {"id": 1, "label": "one"})
            assert await session.commit_in_pipeline() is False  # neither sole nor last
        assert not session.committed
        await storage.driver.rollback(raw)
        session.last = True
        async with session.pipeline():
            await session.execute(insert(table), {"id": 2, "label": "two"})
            assert await session.commit_in_pipeline() is True
            assert not session.committed  # not before the script ran
        assert session.committed
        assert scripts[-1][-1] == "COMMIT"
    finally:
        await storage.driver.release(raw, discard=False)
    assert labels(mariadb_url, table) == [(2, "two")]  # seen from another session: committed


async def test_a_connection_whose_script_committed_goes_back_to_the_pool(storage: ServerStorage, table: str) -> None:
    # the driver keeps the status of the script's last answer that had status bits: without
    # correcting it the session would look in a transaction and its pool would close it
    raw = await storage.driver.acquire()
    try:
        session = storage.driver.wrap(raw)
        session.last = True
        async with session.pipeline():
            await session.fetchall(SQL(f"SELECT id FROM {table} FOR UPDATE"))  # the transaction begins
            await session.execute(insert(table), {"id": 1, "label": "one"})
            assert await session.commit_in_pipeline() is True
        assert session.committed
        assert not raw.get_transaction_status()
    finally:
        await storage.driver.release(raw, discard=False)
    again = await storage.driver.acquire()
    try:
        assert again is raw and again.connected  # kept, not closed and replaced
    finally:
        await storage.driver.release(again, discard=False)


async def test_a_long_pipeline_goes_as_several_scripts_in_order(
    session: Any, table: str, scripts: Scripts, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mysql, "_INSERT_BYTES", 300)
    async with session.pipeline():
        for number in range(12):
            await session.execute(insert(table), {"id": number, "label": f"label {number}"})
        await session.execute(SQL(f"UPDATE {table} SET label = 'last' WHERE id = 11"), {})
        read = await session.fetch_later(SQL(f"SELECT label FROM {table} WHERE id IN (0, 11) ORDER BY id"), {})
    assert len(scripts) > 2 and sum(len(script) for script in scripts) == 14
    assert all(sum(len(statement) + 3 for statement in script) <= 300 for script in scripts if len(script) > 1)
    assert await read() == [("label 0",), ("last",)]


async def test_scripts_stay_within_a_quarter_of_the_servers_packet(
    session: Any, table: str, scripts: Scripts, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session.driver, "max_allowed_packet", 1200)  # as a server with a small packet says
    async with session.pipeline():
        for number in range(10):
            await session.execute(insert(table), {"id": number, "label": "x" * 30})
    assert len(scripts) > 2 and sum(len(script) for script in scripts) == 10
    assert all(sum(len(statement) + 3 for statement in script) <= 300 for script in scripts if len(script) > 1)
    assert await session.fetchall(SQL(f"SELECT COUNT(*) FROM {table}")) == [(10,)]


async def test_an_applications_connection_runs_statement_by_statement(
    storage: ServerStorage, mariadb_url: str, table: str, scripts: Scripts
) -> None:
    settings = {**backends.mysql_settings(), "db": backends.url_database(mariadb_url), "autocommit": False}
    raw = await importlib.import_module("aiomysql").connect(**settings)
    try:
        session = storage.driver.wrap(raw)
        session.external = True
        async with session.pipeline():
            assert await session.execute(insert(table), {"id": 1, "label": "one"}) == 1  # ran at once
            read = await session.fetch_later(SQL(f"SELECT label FROM {table}"), {})
        rows = await session.fetch_each(
            [(SQL(f"SELECT COUNT(*) FROM {table}"), {})], writes=[(insert(table), {"id": 2, "label": "two"})]
        )
        assert await read() == [("one",)] and rows == [[(2,)]]
        assert scripts == []
        await raw.rollback()
    finally:
        raw.close()
