"""Jobs written in the application's own transaction, on its own connection, commit or roll back
with the application's data - on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import importlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

import hivemind_jobs as hm
from hivemind_jobs.errors import ConfigurationError, TransactionError
from tests import backends
from tests.sample_jobs import add


@dataclass
class App:
    """An application connection (in a transaction) plus how to use and end it."""

    connection: object
    insert_order: Callable[[str], Awaitable[None]]
    commit: Callable[[], Awaitable[None]]
    rollback: Callable[[], Awaitable[None]]
    count_orders: Callable[[], Awaitable[int]]
    close: Callable[[], Awaitable[None]]


async def sqlite_app(url: str) -> App:
    path = url.removeprefix("sqlite:///")
    connection = sqlite3.connect(path)  # default isolation level: BEGIN before the first write
    connection.execute("CREATE TABLE IF NOT EXISTS app_order (name TEXT)")
    connection.commit()

    async def insert(name: str) -> None:
        connection.execute("INSERT INTO app_order (name) VALUES (?)", (name,))

    async def count() -> int:
        reader = sqlite3.connect(path)
        try:
            return int(reader.execute("SELECT COUNT(*) FROM app_order").fetchone()[0])
        finally:
            reader.close()

    async def commit() -> None:
        connection.commit()

    async def rollback() -> None:
        connection.rollback()

    async def close() -> None:
        connection.close()

    return App(connection, insert, commit, rollback, count, close)


async def postgres_app(url: str) -> App:
    import psycopg

    schema = backends.url_schema(url)
    connection = await psycopg.AsyncConnection.connect(backends.PG_URL)
    await connection.execute(f'CREATE TABLE IF NOT EXISTS "{schema}".app_order (name TEXT)')
    await connection.commit()

    async def insert(name: str) -> None:
        await connection.execute(f'INSERT INTO "{schema}".app_order (name) VALUES (%s)', (name,))

    async def count() -> int:
        async with await psycopg.AsyncConnection.connect(backends.PG_URL) as reader:
            row = await (await reader.execute(f'SELECT COUNT(*) FROM "{schema}".app_order')).fetchone()
            assert row is not None
            return int(row[0])

    return App(connection, insert, connection.commit, connection.rollback, count, connection.close)


async def mariadb_app(url: str, driver: str = "aiomysql") -> App:
    """The application on a connection of ``driver`` (aiomysql or asyncmy: the same calls)."""
    connect = importlib.import_module(driver).connect
    database = backends.url_database(url)
    settings = backends.mysql_settings()
    connection = await connect(db=database, autocommit=False, **settings)
    async with connection.cursor() as cursor:
        await cursor.execute("CREATE TABLE IF NOT EXISTS app_order (name VARCHAR(100))")
    await connection.commit()
    await connection.begin()

    async def insert(name: str) -> None:
        async with connection.cursor() as cursor:
            await cursor.execute("INSERT INTO app_order (name) VALUES (%s)", (name,))

    async def count() -> int:
        reader = await connect(db=database, autocommit=True, **settings)
        try:
            async with reader.cursor() as cursor:
                await cursor.execute("SELECT COUNT(*) FROM app_order")
                return int((await cursor.fetchone())[0])
        finally:
            reader.close()

    async def close() -> None:
        connection.close()

    return App(connection, insert, connection.commit, connection.rollback, count, close)


APPS = {"sqlite": sqlite_app, "postgres": postgres_app, "mariadb": mariadb_app}


@pytest_asyncio.fixture
async def app(backend_url: str, backend_name: str) -> AsyncIterator[App]:
    application = await APPS[backend_name](backend_url)
    try:
        yield application
    finally:
        await application.close()


async def test_jobs_commit_with_the_application(hive: hm.HiveMind, app: App) -> None:
    async with hive.transaction(connection=app.connection) as tx:
        await app.insert_order("first")
        job_id = await tx.jobs.create(add, 1, 2)
    # the application has not committed yet: nothing of it (or the job) is visible elsewhere
    assert await app.count_orders() == 0
    assert await hive.jobs.try_get(job_id) is None
    await app.commit()
    assert await app.count_orders() == 1
    job = await hive.jobs.get(job_id)
    assert job.state.name == "Enqueued"


async def test_jobs_roll_back_with_the_application(hive: hm.HiveMind, app: App) -> None:
    async with hive.transaction(connection=app.connection) as tx:
        await app.insert_order("lost")
        job_ids = [await tx.jobs.create(add, n, n) for n in range(3)]
    await app.rollback()
    assert await app.count_orders() == 0
    for job_id in job_ids:
        assert await hive.jobs.try_get(job_id) is None
    assert await hive.jobs.count_by_state() == {}


async def test_an_asyncmy_application_connection_commits_and_rolls_back(
    hive: hm.HiveMind, backend_name: str, backend_url: str
) -> None:
    if backend_name != "mariadb":
        pytest.skip("asyncmy is a MySQL/MariaDB driver")
    application = await mariadb_app(backend_url, "asyncmy")
    try:
        async with hive.transaction(connection=application.connection) as tx:
            await application.insert_order("lost")
            lost = await tx.jobs.create(add, 1, 2)
        await application.rollback()
        await application.connection.begin()  # type: ignore[attr-defined]
        async with hive.transaction(connection=application.connection) as tx:
            await application.insert_order("kept")
            kept = await tx.jobs.create(add, 3, 4)
        assert await hive.jobs.try_get(kept) is None
        await application.commit()
    finally:
        await application.close()
    assert await application.count_orders() == 1
    assert await hive.jobs.try_get(lost) is None
    assert (await hive.jobs.get(kept)).state.name == "Enqueued"


async def test_a_connection_of_another_kind_is_refused(hive: hm.HiveMind, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="runs on"):
        async with hive.transaction(connection=object()) as tx:
            await tx.jobs.create(add, 1, 2)


async def test_an_autocommit_connection_is_refused(hive: hm.HiveMind, backend_name: str, backend_url: str) -> None:
    if backend_name == "sqlite":
        connection: object = sqlite3.connect(backend_url.removeprefix("sqlite:///"), isolation_level=None)
    elif backend_name == "postgres":
        import psycopg

        connection = await psycopg.AsyncConnection.connect(backends.PG_URL, autocommit=True)
    else:
        import asyncmy

        connection = await asyncmy.connect(
            db=backends.url_database(backend_url), autocommit=True, **backends.mysql_settings()
        )
    try:
        with pytest.raises(TransactionError, match="autocommit"):
            async with hive.transaction(connection=connection) as tx:
                await tx.jobs.create(add, 1, 2)
    finally:
        result = connection.close()  # type: ignore[attr-defined]
        if result is not None:
            await result
    assert await hive.jobs.count_by_state() == {}
