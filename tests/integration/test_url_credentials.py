"""Server URLs with percent-encoded credentials reach the servers decoded, and no password shows in
reprs, storage infos or the log records HiveMind writes about its storage.

A real PostgreSQL role and a real MariaDB user are created per test (unique names, dropped
afterwards) with a password holding every character a URL reserves.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

import hivemind_jobs as hm
from hivemind_jobs.storage.server.base import ServerStorage
from tests import backends, sample_jobs
from tests.conftest import _skip_unless_selected

#: every character a URL reserves, the percent sign and a space
PASSWORD = "p@ss:w/rd?#[]!$&'()*+,;=% x-" + uuid.uuid4().hex[:6]
ENCODED = quote(PASSWORD, safe="")


def _pg_admin(sql: Any, params: tuple[object, ...] = ()) -> None:
    import psycopg

    # a client-side cursor: CREATE ROLE ... PASSWORD takes no server-side parameter
    with psycopg.connect(backends.PG_URL, autocommit=True, cursor_factory=psycopg.ClientCursor) as connection:
        connection.execute(sql, params)


def _mysql_admin(sql: str, params: tuple[object, ...] = ()) -> None:
    import pymysql

    connection = pymysql.connect(autocommit=True, **backends.mysql_settings())
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
    finally:
        connection.close()


@pytest.fixture
def postgres_role() -> Iterator[tuple[str, str]]:
    """(role, schema): a login role with PASSWORD owning a fresh schema; both dropped afterwards."""
    from psycopg import sql

    _skip_unless_selected("postgres")
    backends.require("postgres")
    role = f"hmt_role_{uuid.uuid4().hex[:12]}"
    schema = f"hmt_{uuid.uuid4().hex[:12]}"
    database = sql.Identifier(backends.url_database(backends.PG_URL))
    _pg_admin(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(role)), (PASSWORD,))
    try:
        _pg_admin(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(sql.Identifier(schema), sql.Identifier(role)))
        # migrations run CREATE SCHEMA IF NOT EXISTS, which needs CREATE on the database
        _pg_admin(sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(database, sql.Identifier(role)))
        yield role, schema
    finally:
        _pg_admin(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        _pg_admin(sql.SQL("REVOKE ALL ON DATABASE {} FROM {}").format(database, sql.Identifier(role)))
        _pg_admin(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture
def mariadb_user() -> Iterator[tuple[str, str]]:
    """(user, database): a user IDENTIFIED BY PASSWORD with every privilege on a fresh database;
    both dropped afterwards."""
    _skip_unless_selected("mariadb")
    backends.require("mariadb")
    user = f"hmt_user_{uuid.uuid4().hex[:12]}"
    with backends.mariadb_database() as database:
        _mysql_admin("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, PASSWORD))
        try:
            # the database name is a generated plain identifier (see backends._new_name)
            _mysql_admin(f"GRANT ALL PRIVILEGES ON `{database}`.* TO %s@'%%'", (user,))
            yield user, database
        finally:
            _mysql_admin("DROP USER IF EXISTS %s@'%%'", (user,))


async def _create_and_read(url: str) -> hm.BackgroundJob:
    async with hm.HiveMind(url) as hive:
        job_id = await hive.jobs.create(sample_jobs.hello_world, "through a reserved password")
        return await hive.jobs.get(job_id)


async def test_postgres_role_with_a_reserved_password(postgres_role: tuple[str, str]) -> None:
    role, schema = postgres_role
    host = urlsplit(backends.PG_URL)
    url = f"postgresql://{role}:{ENCODED}@{host.hostname}:{host.port or 5432}/test?schema={schema}&auto_migrate=true"
    job = await _create_and_read(url)
    assert isinstance(job.state, hm.Enqueued)
    assert job.invocation.arguments == {"message": "through a reserved password"}

    # The server trusts 127.0.0.1, so connecting proves nothing about the password: check that the
    # decoded password is what the driver is given and what libpq used for the connection.
    hive = hm.HiveMind(url)
    storage: Any = hive.env().storage
    assert isinstance(storage, ServerStorage)
    driver: Any = storage.driver
    assert (driver.url.user, driver.url.password) == (role, PASSWORD)
    conninfo = driver.conninfo()
    assert (conninfo["user"], conninfo["password"]) == (role, PASSWORD)
    connection = await driver.connect()
    try:
        assert connection.info.password == PASSWORD
        assert connection.info.user == role
        row = await (await connection.execute("SELECT current_user")).fetchone()
        assert row == (role,)
    finally:
        await connection.close()
    # the tables are the role's own, in its schema
    owners = backends.raw(url, "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = ?", schema)
    assert owners == [(role,)]


async def test_mariadb_user_with_a_reserved_password(mariadb_user: tuple[str, str]) -> None:
    user, database = mariadb_user
    host = urlsplit(backends.MYSQL_URL)
    url = f"mysql://{user}:{ENCODED}@{host.hostname}:{host.port or 3306}/{database}?auto_migrate=true"
    job = await _create_and_read(url)
    assert isinstance(job.state, hm.Enqueued)
    assert job.invocation.arguments == {"message": "through a reserved password"}
    storage: Any = hm.HiveMind(url).env().storage
    assert storage.driver._connect_args()["password"] == PASSWORD

    # MariaDB checks the password: a wrong one is refused, and so is the encoded text taken literally
    for wrong in (quote(PASSWORD[:-1] + "!", safe=""), quote(ENCODED, safe="")):
        bad = f"mysql://{user}:{wrong}@{host.hostname}:{host.port or 3306}/{database}?auto_migrate=true"
        with pytest.raises(hm.StorageError, match="Access denied") as refused:
            await _create_and_read(bad)
        assert PASSWORD not in str(refused.value) and ENCODED not in str(refused.value)


def _with_password(url: str, password: str) -> str:
    """``url`` logging in as its user with ``password`` (percent-encoded)."""
    parts = urlsplit(url)
    netloc = f"{parts.username or 'root'}:{quote(password, safe='')}@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def test_storage_reprs_and_infos_show_no_password(db_url: str) -> None:
    secret = "Zx9-hunter2-secret"
    url = db_url if db_url.startswith("sqlite") else _with_password(db_url, secret)
    hive = hm.HiveMind(url)
    environment = hive.env()
    storage: Any = environment.storage
    shown = [repr(hive), repr(environment), repr(storage), repr(storage.info), environment.info.url]
    if isinstance(storage, ServerStorage):
        shown.append(repr(storage.driver.url))
        assert storage.driver.url.password == secret
        assert "***@" in storage.info.url
    else:
        assert storage.info.url == url
    assert all(secret not in text for text in shown), shown
    assert all(quote(secret) not in text for text in shown), shown


async def test_postgres_listener_log_shows_no_password(
    postgres_url: str, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """A LISTEN connection that fails with a driver error quoting the password is logged with ``***``."""
    secret = "Zx9-hunter2-secret"
    url = _with_password(postgres_url, secret)
    caplog.set_level(logging.WARNING, logger="hivemind_jobs.storage.postgres")
    async with hm.HiveMind(url) as hive:
        storage: Any = hive.env().storage
        # libpq quotes an option value it refuses: here the password itself
        driver_url = storage.driver.url
        storage.driver.url = dataclasses.replace(driver_url, options={**driver_url.options, "sslmode": secret})
        try:
            storage.change_marker()  # starts the listener
            for _ in range(100):
                if any("LISTEN connection failed" in record.getMessage() for record in caplog.records):
                    break
                await asyncio.sleep(0.05)
        finally:
            storage.driver.url = driver_url
    messages = [record.getMessage() for record in caplog.records if record.name.startswith("hivemind_jobs")]
    failed = [message for message in messages if "LISTEN connection failed" in message]
    assert failed, messages
    assert 'invalid sslmode value: "***"' in failed[0]
    assert all(secret not in message for message in messages)
