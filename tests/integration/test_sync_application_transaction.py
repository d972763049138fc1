"""The blocking facade writes jobs in an application's own transaction on a sync driver
connection (psycopg's ``Connection``, PyMySQL, ``sqlite3``; what WSGI frameworks such as Django
hold): they commit and roll back with the application's data."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import hivemind_jobs as hm
from hivemind_jobs.errors import TransactionError
from tests import backends
from tests.sample_jobs import add


@dataclass
class SyncApp:
    connection: Any
    insert_order: Callable[[str], None]
    count_orders: Callable[[], int]


def _sqlite(url: str) -> Iterator[SyncApp]:
    path = url.removeprefix("sqlite:///")
    connection = sqlite3.connect(path, check_same_thread=False)  # the facade's loop thread writes on it
    connection.execute("CREATE TABLE IF NOT EXISTS app_order (name TEXT)")
    connection.commit()

    def count() -> int:
        with sqlite3.connect(path) as reader:
            return int(reader.execute("SELECT COUNT(*) FROM app_order").fetchone()[0])

    try:
        yield SyncApp(connection, lambda name: connection.execute("INSERT INTO app_order VALUES (?)", (name,)), count)
    finally:
        connection.close()


def _postgres(url: str) -> Iterator[SyncApp]:
    import psycopg

    table = f'"{backends.url_schema(url)}".app_order'
    connection = psycopg.Connection.connect(backends.PG_URL, cursor_factory=psycopg.ClientCursor)
    connection.execute(f"CREATE TABLE IF NOT EXISTS {table} (name TEXT)")
    connection.commit()

    def count() -> int:
        with psycopg.Connection.connect(backends.PG_URL) as reader:
            row = reader.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
            assert row is not None
            return int(row[0])

    try:
        yield SyncApp(connection, lambda name: connection.execute(f"INSERT INTO {table} VALUES (%s)", (name,)), count)
    finally:
        connection.close()


def _mariadb(url: str) -> Iterator[SyncApp]:
    import pymysql

    database = backends.url_database(url)
    connection = pymysql.connect(database=database, autocommit=False, **backends.mysql_settings())
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS app_order (name VARCHAR(100))")
    connection.commit()

    def insert(name: str) -> None:
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO app_order VALUES (%s)", (name,))

    def count() -> int:
        reader = pymysql.connect(database=database, autocommit=True, **backends.mysql_settings())
        try:
            with reader.cursor() as cursor:
                cursor.execute("SELECT COUNT(*) FROM app_order")
                row = cursor.fetchone()
                assert row is not None
                return int(row[0])
        finally:
            reader.close()

    try:
        yield SyncApp(connection, insert, count)
    finally:
        connection.close()


APPS = {"sqlite": _sqlite, "postgres": _postgres, "mariadb": _mariadb}


@pytest.fixture
def sync_hive(backend_url: str) -> Iterator[hm.SyncHiveMind]:
    with hm.SyncHiveMind(backend_url) as hive:
        yield hive


@pytest.fixture
def app(backend_name: str, backend_url: str, sync_hive: hm.SyncHiveMind) -> Iterator[SyncApp]:
    yield from APPS[backend_name](backend_url)


def test_jobs_commit_and_roll_back_with_the_application(sync_hive: hm.SyncHiveMind, app: SyncApp) -> None:
    with sync_hive.transaction(connection=app.connection) as tx:
        app.insert_order("lost")
        lost = [tx.jobs.create(add, n, n) for n in range(3)]  # several: the batch statements too
        lost.append(tx.jobs.options(queue="other", priority=hm.Priority.HIGH).create(add, 9, 9))
    app.connection.rollback()
    assert app.count_orders() == 0
    assert all(sync_hive.jobs.try_get(job_id) is None for job_id in lost)

    with sync_hive.transaction(connection=app.connection) as tx:
        app.insert_order("kept")
        kept = tx.jobs.create(add, 1, 2)
        child = tx.jobs.options(after=hm.After(kept)).create(add, 3, 4)
    assert sync_hive.jobs.try_get(kept) is None  # not before the application commits
    app.connection.commit()
    assert app.count_orders() == 1
    assert sync_hive.jobs.get(kept).state.name == "Enqueued"
    assert sync_hive.jobs.get(child).state.name == "Awaiting"
    assert sync_hive.jobs.count_by_state() == {"Enqueued": 1, "Awaiting": 1}


def test_an_autocommit_sync_connection_is_refused(backend_name: str, backend_url: str) -> None:
    if backend_name == "sqlite":
        connection: Any = sqlite3.connect(
            backend_url.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False
        )
    elif backend_name == "postgres":
        import psycopg

        connection = psycopg.Connection.connect(backends.PG_URL, autocommit=True)
    else:
        import pymysql

        connection = pymysql.connect(
            database=backends.url_database(backend_url), autocommit=True, **backends.mysql_settings()
        )
    try:
        with hm.SyncHiveMind(backend_url) as hive:
            with pytest.raises(TransactionError, match="autocommit"), hive.transaction(connection=connection) as tx:
                tx.jobs.create(add, 1, 2)
            assert hive.jobs.count_by_state() == {}
    finally:
        connection.close()
