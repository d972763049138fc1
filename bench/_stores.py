"""Where the benchmark scripts here put their data: fresh, empty HiveMind stores on every backend.

A fresh database file (SQLite), a fresh schema ``hmbench_<pid>_<k>`` in the database of --pg-url,
dropped with CASCADE afterwards (PostgreSQL), or a fresh database ``hmbench_<pid>_<k>`` next to the
one of --mysql-url, dropped afterwards (MySQL/MariaDB). Also the URL helpers and admin connections
the scripts share, ``bounded`` (a hung measurement fails with a clear error instead of hanging) and
``make_colony``, the colony whose figures the scripts report.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import hivemind_jobs as hm
from _runs import Runs

BACKENDS = ("sqlite", "postgres", "mysql")
DEFAULT_PG_URL = "postgresql://root@127.0.0.1:5432/bench?auto_migrate=true"
DEFAULT_MYSQL_URL = "mysql://root@127.0.0.1:3306/bench?auto_migrate=true"
CLEANUP_TRIES = 30  # one a second: a fresh schema or database is dropped even across a server restart
LIBPQ_OPTIONS = ("connect_timeout", "sslmode", "application_name")  # what psycopg may get from --pg-url
WAIT_TIMEOUT = 600.0  # seconds a measurement may take before it is given up


def url_with(url: str, *, database: str | None = None, **query: str) -> str:
    """``url`` with another database (its path) and/or some query parameters set."""
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    params.update(query)
    path = f"/{database}" if database is not None else parts.path
    return urlunsplit(parts._replace(path=path, query=urlencode(params)))


def pg_conninfo(url: str, database: str | None = None) -> str:
    """A libpq URI for psycopg (and the peers) from a HiveMind PostgreSQL URL: its HiveMind options dropped."""
    parts = urlsplit(url)
    params = {key: value for key, value in parse_qsl(parts.query) if key in LIBPQ_OPTIONS}
    path = f"/{database}" if database is not None else parts.path
    return urlunsplit(("postgresql", parts.netloc, path, urlencode(params), ""))


def mysql_connect_args(url: str) -> dict[str, Any]:
    """aiomysql.connect() arguments (no database) from a HiveMind MySQL URL."""
    parts = urlsplit(url)
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
    }


def url_database(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    """--backend, --pg-url and --mysql-url, as every script that measures on fresh stores takes them."""
    parser.add_argument("--backend", default="sqlite", choices=BACKENDS)
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="HiveMind URL of the PostgreSQL database to use")
    parser.add_argument("--mysql-url", default=DEFAULT_MYSQL_URL, help="HiveMind URL of a MySQL/MariaDB database")


def check_store_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """A parser error when --pg-url or --mysql-url names no database."""
    for option, url in (("--pg-url", args.pg_url), ("--mysql-url", args.mysql_url)):
        if not url_database(url):
            parser.error(f"{option} names no database")


async def pg_admin(url: str, database: str | None = None) -> Any:
    import psycopg

    return await psycopg.AsyncConnection.connect(pg_conninfo(url, database), autocommit=True)


async def mysql_admin(url: str, database: str | None = None, **options: Any) -> Any:
    import aiomysql

    return await aiomysql.connect(**mysql_connect_args(url), db=database, autocommit=True, **options)


async def server_prepare(args: argparse.Namespace) -> str:
    """Create the database of --pg-url / --mysql-url if missing; return the server's name and version."""
    if args.backend == "postgres":
        database = url_database(args.pg_url)
        connection = await pg_admin(args.pg_url, "postgres")
        async with connection:
            cursor = await connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if await cursor.fetchone() is None:
                await connection.execute(f'CREATE DATABASE "{database}"')
                print(f"created the database {database!r}", file=sys.stderr, flush=True)
            row = await (await connection.execute("SHOW server_version")).fetchone()
        return f"PostgreSQL {row[0]}"
    connection = await mysql_admin(args.mysql_url)
    try:
        async with connection.cursor() as cursor:
            database = url_database(args.mysql_url)
            await cursor.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (database,))
            if not await cursor.fetchall():
                await cursor.execute(f"CREATE DATABASE `{database}`")
                print(f"created the database {database!r}", file=sys.stderr, flush=True)
            await cursor.execute("SELECT VERSION()")
            (version,) = await cursor.fetchone()
    finally:
        await connection.ensure_closed()
    return f"{'MariaDB' if 'mariadb' in version.lower() else 'MySQL'} {version}"


class Stores:
    """Fresh, empty storage for every measurement, removed afterwards."""

    def __init__(self, args: argparse.Namespace, runs: Runs) -> None:
        self.args = args
        self.runs = runs
        self._count = 0

    def _name(self) -> str:
        self._count += 1
        return f"hmbench_{os.getpid()}_{self._count}"

    @contextlib.asynccontextmanager
    async def namespace(self) -> AsyncIterator[str]:
        """A new PostgreSQL schema or MySQL database, dropped (with everything in it) on exit."""
        name = self._name()
        if self.args.backend == "postgres":
            create, drop = f'CREATE SCHEMA "{name}"', f'DROP SCHEMA IF EXISTS "{name}" CASCADE'
        else:
            create, drop = f"CREATE DATABASE `{name}`", f"DROP DATABASE IF EXISTS `{name}`"
        await self._admin(create)
        try:
            yield name
        finally:
            for attempt in range(CLEANUP_TRIES):  # the server may be restarting (or down for a moment)
                try:
                    await self._admin(drop)
                    break
                except Exception as error:
                    if attempt == CLEANUP_TRIES - 1:
                        print(f"could not drop {name} ({error}); drop it by hand", file=sys.stderr, flush=True)
                    else:
                        await asyncio.sleep(1.0)

    async def _admin(self, statement: str) -> None:
        if self.args.backend == "postgres":
            async with await pg_admin(self.args.pg_url) as connection:
                await connection.execute("SET lock_timeout = '60s'")
                await connection.execute(statement)
            return
        connection = await mysql_admin(self.args.mysql_url)
        try:
            async with connection.cursor() as cursor:
                await cursor.execute(statement)
        finally:
            await connection.ensure_closed()

    @contextlib.asynccontextmanager
    async def hive_url(self) -> AsyncIterator[str]:
        """The HiveMind storage URL of a fresh, empty store."""
        if self.args.backend == "sqlite":
            yield f"sqlite:///{self.runs.fresh()}"
            return
        async with self.namespace() as name:
            if self.args.backend == "postgres":
                yield url_with(self.args.pg_url, schema=name, auto_migrate="true")
            else:
                yield url_with(self.args.mysql_url, database=name, auto_migrate="true")


@contextlib.asynccontextmanager
async def bounded(what: str, seconds: float = WAIT_TIMEOUT + 60) -> AsyncIterator[None]:
    """Give up on a hung colony start, wait or stop with a clear error instead of hanging."""
    async with asyncio.timeout(seconds) as scope:
        try:
            yield
        finally:
            if scope.expired():
                print(f"{what} did not finish within {seconds:.0f} s", file=sys.stderr, flush=True)


def make_colony(hive: hm.HiveMind, drones: int, poll_ms: int) -> hm.Colony:
    """The measured colony: one root swarm of ``drones`` drones on the global (default) queue, the
    jobs of ``_jobs`` allowed, idle polls every ``poll_ms`` (a fallback where changes are notified)."""
    colony = hive.colony(
        name="bench",
        options=hm.ColonyOptions(poll_interval=timedelta(milliseconds=poll_ms)),
        allow=hm.AllowList(modules=["_jobs"]),
    )
    colony.swarm("main", drones=drones)
    return colony
