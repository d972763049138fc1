"""The three test backends: a fresh SQLite file, PostgreSQL schema or MariaDB database per test.

Server addresses come from ``HIVEMIND_TEST_PG_URL`` (default ``postgresql://root@127.0.0.1:5432/test``)
and ``HIVEMIND_TEST_MYSQL_URL`` (default ``mysql://root@127.0.0.1:3306/test``);
``HIVEMIND_TEST_BACKENDS`` (comma list, default ``sqlite,postgres,mariadb``) picks which run. A
server that cannot be reached skips its tests, except under ``CI=true``, where it fails them (see
DEVELOPERS.md for the start commands; ``scripts/ensure-servers`` starts both).
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

ALL = ("sqlite", "postgres", "mariadb")
PG_URL = os.environ.get("HIVEMIND_TEST_PG_URL", "postgresql://root@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("HIVEMIND_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
START = {
    "postgres": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "mariadb": "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
}


def selected() -> tuple[str, ...]:
    names = tuple(name.strip() for name in os.environ.get("HIVEMIND_TEST_BACKENDS", ",".join(ALL)).split(","))
    unknown = set(names) - set(ALL) - {""}
    if unknown:
        raise ValueError(f"HIVEMIND_TEST_BACKENDS: unknown backend(s) {sorted(unknown)}; known: {ALL}")
    return tuple(name for name in ALL if name in names)


def mysql_settings() -> dict[str, Any]:
    """Connection keywords (host, port, user, password) for pymysql / aiomysql."""
    parts = urlsplit(MYSQL_URL)
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": parts.username or "root",
        "password": parts.password or "",
    }


def url_schema(url: str) -> str:
    return parse_qs(urlsplit(url).query)["schema"][0]


def url_database(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


_IDENTIFIER = re.compile(r"hmt_[0-9a-f]{12}")


def _new_name() -> str:
    """A unique schema or database name; a plain identifier, safe to quote into DDL."""
    name = f"hmt_{uuid.uuid4().hex[:12]}"
    if not _IDENTIFIER.fullmatch(name):  # pragma: no cover - guards the DDL below
        raise ValueError(f"not a simple identifier: {name!r}")
    return name


@functools.cache
def _unreachable(backend: str) -> str | None:
    """Why the server cannot be used, or None (checked once per test session)."""
    try:
        if backend == "postgres":
            import psycopg

            psycopg.connect(PG_URL, connect_timeout=5).close()
        elif backend == "mariadb":
            import pymysql

            pymysql.connect(connect_timeout=5, **mysql_settings()).close()
    except Exception as error:
        return f"{backend} server unreachable ({error}); start it with: {START[backend]}"
    return None


def require(backend: str) -> None:
    """Skip (or under CI=true fail) the calling test when the backend's server is unreachable."""
    problem = _unreachable(backend) if backend != "sqlite" else None
    if problem is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(problem)
    pytest.skip(problem)


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A fresh, empty PostgreSQL schema, dropped (CASCADE) afterwards."""
    import psycopg

    name = _new_name()
    with psycopg.connect(PG_URL, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@contextmanager
def mariadb_database() -> Iterator[str]:
    """A fresh MariaDB database, dropped afterwards."""
    name = _new_name()
    _mysql_admin(f"CREATE DATABASE `{name}`")
    try:
        yield name
    finally:
        _mysql_admin(f"DROP DATABASE IF EXISTS `{name}`")  # a new connection: the server may have restarted


def _mysql_admin(sql: str) -> None:
    import pymysql

    connection = pymysql.connect(**mysql_settings())
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
    finally:
        connection.close()


@contextmanager
def database_url(backend: str, tmp_path: Path, *, auto_migrate: bool = True) -> Iterator[str]:
    """A URL of an empty database of ``backend`` for one test (cleaned up afterwards)."""
    require(backend)
    migrate = "auto_migrate=true" if auto_migrate else "auto_migrate=false"
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'hive.db'}"
    elif backend == "postgres":
        with postgres_schema() as schema:
            yield f"{PG_URL}?schema={schema}&{migrate}"
    elif backend == "mariadb":
        with mariadb_database() as database:
            parts = urlsplit(MYSQL_URL)
            yield f"{parts.scheme}://{parts.netloc}/{database}?{migrate}"
    else:
        raise ValueError(backend)


def ensure_mariadb_running(timeout: float = 60.0) -> None:
    """Start the machine's MariaDB if it is down and wait until it answers."""
    import pymysql

    subprocess.run(START["mariadb"].split(), check=False, capture_output=True, timeout=30)
    deadline = time.monotonic() + timeout
    while True:
        try:
            pymysql.connect(connect_timeout=2, **mysql_settings()).close()
            return
        except pymysql.Error:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def table(url: str, name: str, prefix: str = "hm_main_") -> str:
    """The quoted, qualified name of one of an environment's tables in ``url``'s database."""
    if url.startswith("sqlite"):
        return f'"{prefix}{name}"'
    if url.startswith("postgres"):
        return f'"{url_schema(url)}"."{prefix}{name}"'
    return f"`{url_database(url)}`.`{prefix}{name}`"


def raw(url: str, sql: str, *params: object) -> list[tuple[Any, ...]]:
    """Run one statement through a separate connection of its own (committed at once).

    ``sql`` uses ``?`` placeholders and ``{job}``-style table names (filled in by :func:`table`).
    """
    names = {key: table(url, key) for key in ("job", "job_state", "job_data", "queue", "job_property")}
    statement = sql.format(**names)
    if url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite:///").split("?")[0]) as connection:
            return connection.execute(statement, params).fetchall()
    statement = statement.replace("?", "%s")
    if url.startswith("postgres"):
        import psycopg

        with psycopg.connect(PG_URL, autocommit=True) as pg:
            cursor = pg.execute(statement, params)
            return cursor.fetchall() if cursor.description else []
    import pymysql

    mysql = pymysql.connect(autocommit=True, **mysql_settings())
    try:
        with mysql.cursor() as cursor:
            cursor.execute(statement, params)
            return list(cursor.fetchall())
    finally:
        mysql.close()


def count(url: str, table_name: str) -> int:
    return int(raw(url, f"SELECT COUNT(*) FROM {{{table_name}}}")[0][0])


@asynccontextmanager
async def server_storage(url: str, table_prefix: str) -> AsyncIterator[Any]:
    """A PostgreSQL or MariaDB storage (environment ``main``) opened on ``url``, closed afterwards
    (its pool's connections too)."""
    from hivemind_jobs.storage import open_storage
    from hivemind_jobs.storage.server.base import ServerStorage

    store = open_storage(url, environment="main", table_prefix=table_prefix)
    assert isinstance(store, ServerStorage)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def pooled(storage: Any) -> AsyncIterator[Any]:
    """A connection of a server storage's pool as the operations see it; whatever it left open is
    rolled back when it is handed back."""
    driver = storage.driver
    raw = await driver.acquire()
    try:
        yield driver.wrap(raw)
    finally:
        await driver.rollback(raw)
        await driver.release(raw, discard=False)
