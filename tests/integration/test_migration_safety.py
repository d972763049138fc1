"""Migrations never leave half-created tables.

PostgreSQL and SQLite run every pending migration in one transaction (their DDL is
transactional): a migration failing half-way leaves no table behind. MySQL/MariaDB commit each DDL
statement at once, so there every statement is re-runnable and a version is recorded only after
all its statements: the next run completes a migration that stopped half-way.
"""

from __future__ import annotations

from pathlib import Path

import pymysql
import pytest

import hivemind_jobs as hm
from hivemind_jobs.storage.mysql.backend import applied_before
from hivemind_jobs.storage.sql import Migration, load_migrations, prefixed_names, read_named_queries, split_statements
from tests import backends
from tests.integration.test_environment_names import catalog
from tests.sample_jobs import do_stuff

_FAILING = "SELECT no_such_function_hivemind()"


def _package(url: str) -> str:
    if url.startswith("sqlite"):
        return "hivemind_jobs.storage.sqlite"
    return "hivemind_jobs.storage.postgres" if url.startswith("postgres") else "hivemind_jobs.storage.mysql"


def _failing_first_migration(package: str) -> list[Migration]:
    """The real migrations, with a failing statement half-way through the first one."""
    migrations = load_migrations(package)
    statements = split_statements(migrations[0].sql)
    half = len(statements) // 2
    sql = "".join(f"{statement};\n" for statement in [*statements[:half], _FAILING, *statements[half:]])
    return [Migration(1, migrations[0].name, sql), *migrations[1:]]


async def test_a_migration_failing_half_way(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    package = _package(db_url)
    failing = _failing_first_migration(package)
    monkeypatch.setattr("hivemind_jobs.storage.sqlite.backend.load_migrations", lambda _: failing)
    monkeypatch.setattr("hivemind_jobs.storage.server.base.load_migrations", lambda _: failing)
    with pytest.raises(hm.StorageError, match="no_such_function_hivemind"):
        await hm.HiveMind(db_url).open()

    left = catalog(db_url, "hm_main_")
    if db_url.startswith("mysql"):
        # DDL committed at once: the first half is there, without a version record
        assert "hm_main_job" in left and "hm_main_queue" not in left
        assert backends.raw(db_url, f"SELECT COUNT(*) FROM {backends.table(db_url, 'schema_version')}") == [(0,)]
    else:
        assert left == set()  # one transaction: not even the version table

    monkeypatch.undo()
    async with hm.HiveMind(db_url) as hive:  # the next run completes the schema
        assert hive.env().info.schema_version == len(load_migrations(package))
        job = await hive.jobs.create(do_stuff)
        assert (await hive.jobs.get(job)).state.name == "Enqueued"
    assert {f"hm_main_{name}" for name in prefixed_names(package)} <= catalog(db_url, "hm_main_")


def _mariadb(url: str) -> pymysql.Connection:  # type: ignore[type-arg]
    return pymysql.connect(autocommit=True, database=backends.url_database(url), **backends.mysql_settings())


def test_every_mariadb_migration_statement_runs_twice(mariadb_url: str) -> None:
    package = "hivemind_jobs.storage.mysql"
    connection = _mariadb(mariadb_url)
    try:
        with connection.cursor() as cursor:
            for migration in load_migrations(package):
                for statement in migration.statements("hm_main_"):
                    cursor.execute(statement)
                    try:
                        cursor.execute(statement)
                        error = None
                    except pymysql.Error as raised:
                        error = raised
                    # or, an ALTER TABLE, it says that it ran, and the migration runner skips it
                    assert error is None or applied_before(statement, error), (statement, error)
    finally:
        connection.close()
    assert {f"hm_main_{name}" for name in prefixed_names(package)} - {"hm_main_schema_version"} <= catalog(
        mariadb_url, "hm_main_"
    )


async def test_mariadb_migration_run_partly_by_hand_is_completed_on_open(mariadb_url: str, tmp_path: Path) -> None:
    package = "hivemind_jobs.storage.mysql"
    migrations = load_migrations(package)
    queries = read_named_queries(package)
    connection = _mariadb(mariadb_url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(queries["schema_version_create"].replace("{p}", "hm_main_"))
            for migration in migrations[:2]:
                for statement in migration.statements("hm_main_"):
                    cursor.execute(statement)
                cursor.execute(
                    "INSERT INTO hm_main_schema_version (version, name, applied_at) VALUES (%s, %s, UTC_TIMESTAMP(6))",
                    (migration.version, migration.name),
                )
            # the third migration stopped after its first two statements
            for statement in migrations[2].statements("hm_main_")[:2]:
                cursor.execute(statement)
    finally:
        connection.close()
    assert "hm_main_recurring_job" in catalog(mariadb_url, "hm_main_")
    assert "hm_main_recurring_event" not in catalog(mariadb_url, "hm_main_")

    async with hm.HiveMind(mariadb_url) as hive:
        assert hive.env().info.schema_version == len(migrations)
        await hive.jobs.create(do_stuff)
    assert {f"hm_main_{name}" for name in prefixed_names(package)} <= catalog(mariadb_url, "hm_main_")
    versions = backends.raw(mariadb_url, f"SELECT version FROM {backends.table(mariadb_url, 'schema_version')}")
    assert sorted(row[0] for row in versions) == list(range(1, len(migrations) + 1))


async def test_mariadb_migration_stopped_after_its_alter_table_is_completed_on_open(mariadb_url: str) -> None:
    package = "hivemind_jobs.storage.mysql"
    migrations = load_migrations(package)
    queries = read_named_queries(package)
    limits = next(migration for migration in migrations if migration.name == "limits")
    connection = _mariadb(mariadb_url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(queries["schema_version_create"].replace("{p}", "hm_main_"))
            for migration in migrations[: limits.version - 1]:
                for statement in migration.statements("hm_main_"):
                    cursor.execute(statement)
                cursor.execute(
                    "INSERT INTO hm_main_schema_version (version, name, applied_at) VALUES (%s, %s, UTC_TIMESTAMP(6))",
                    (migration.version, migration.name),
                )
            first = limits.statements("hm_main_")[0]
            assert first.startswith("ALTER TABLE")
            cursor.execute(first)  # the limits migration stopped right after its ALTER TABLE
    finally:
        connection.close()

    async with hm.HiveMind(mariadb_url) as hive:
        assert hive.env().info.schema_version == len(migrations)
        limited = hive.jobs.options(concurrency=hm.Limit(max=1, key="k"))
        job_id = await limited.create(do_stuff)
    rows = backends.raw(mariadb_url, "SELECT limit_key, limit_max FROM {job} WHERE id = ?", job_id)
    assert rows == [("k", 1)]
    assert {f"hm_main_{name}" for name in prefixed_names(package)} <= catalog(mariadb_url, "hm_main_")
