"""Environment names and table prefixes that clash in one database, and identifier lengths.

SQLite ignores case in table names and MySQL/MariaDB in constraint names, so ``TenantA`` and
``tenanta`` (the README's own example, lower-cased) would share one set of tables or half-create
the second. Both are refused before anything is created, in one process and across processes, on
every backend. The longest table prefix each backend accepts is derived from the longest name the
SQL files write after it, and it really migrates.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import hivemind_jobs as hm
from hivemind_jobs.core.names import TABLE_PREFIX_MAX, validate_table_prefix
from hivemind_jobs.storage.sql import (
    IDENTIFIER_LIMITS,
    load_migrations,
    max_table_prefix,
    owner_version,
    prefixed_names,
)
from tests import backends
from tests.sample_jobs import do_stuff

_PACKAGES = {
    "sqlite": "hivemind_jobs.storage.sqlite",
    "postgres": "hivemind_jobs.storage.postgres",
    "mariadb": "hivemind_jobs.storage.mysql",
}


def _backend(url: str) -> str:
    if url.startswith("sqlite"):
        return "sqlite"
    return "postgres" if url.startswith("postgres") else "mariadb"


def catalog(url: str, prefix: str) -> set[str]:
    """Names of the tables, indexes and constraints starting with ``prefix`` (exact case)."""
    if url.startswith("sqlite"):
        with sqlite3.connect(urlsplit(url).path[1:]) as connection:
            rows = connection.execute("SELECT name FROM sqlite_master").fetchall()
    elif url.startswith("postgres"):
        rows = backends.raw(
            url,
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ?",
            backends.url_schema(url),
        )
    else:
        database = backends.url_database(url)
        rows = backends.raw(
            url,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? UNION ALL "
            "SELECT constraint_name FROM information_schema.table_constraints WHERE constraint_schema = ? "
            "AND constraint_type = 'FOREIGN KEY' UNION ALL "
            "SELECT index_name FROM information_schema.statistics WHERE table_schema = ?",
            database,
            database,
            database,
        )
    return {str(row[0]) for row in rows if str(row[0]).startswith(prefix)}


def other_options(url: str) -> str:
    """The same database through a URL with other options (what a second setting would write)."""
    if url.startswith("sqlite"):
        return url
    return f"{url}&pool_size=3"


# ---------------------------------------------------------------------- one process
async def test_prefixes_differing_only_in_case_are_refused_in_one_process(db_url: str) -> None:
    hive = hm.HiveMind(db_url, environment="TenantA")
    with pytest.raises(hm.ConfigurationError) as refused:
        hive.add_environment("tenanta", other_options(db_url))
    message = str(refused.value)
    assert "'TenantA'" in message and "'tenanta'" in message and "differ only in case" in message
    assert "another name or another table_prefix" in message
    with pytest.raises(hm.ConfigurationError, match="differ only in case"):
        hive.add_environment("other", db_url, table_prefix="HM_TENANTA_")
    assert list(hive.environments) == ["TenantA"]

    hive.add_environment("tenanta", db_url, table_prefix="hm_tenanta2_")  # the fix the message names
    async with hive:
        first = await hive.env("TenantA").jobs.create(do_stuff)
        second = await hive.env("tenanta").jobs.create(do_stuff)
        assert await hive.env("TenantA").jobs.count_by_state() == {"Enqueued": 1}
        assert await hive.env("tenanta").jobs.count_by_state() == {"Enqueued": 1}
        assert (await hive.env("TenantA").jobs.get(first)).id == first
        assert (await hive.env("tenanta").jobs.get(second)).id == second


def test_case_variants_in_other_databases_are_fine(tmp_path: Path) -> None:
    hive = hm.HiveMind(f"sqlite:///{tmp_path / 'a.db'}", environment="TenantA")
    hive.add_environment("tenanta", f"sqlite:///{tmp_path / 'b.db'}")
    assert set(hive.environments) == {"TenantA", "tenanta"}


# ---------------------------------------------------------------------- across processes
async def test_case_variant_of_existing_tables_is_refused_before_anything_is_created(db_url: str) -> None:
    async with hm.HiveMind(db_url, environment="TenantA") as first:
        job = await first.jobs.create(do_stuff)
    before = catalog(db_url, "hm_")

    second = hm.HiveMind(db_url, environment="tenanta")  # another process, the other spelling
    with pytest.raises(hm.ConfigurationError) as refused:
        await second.open()
    message = str(refused.value)
    assert "'hm_tenanta_'" in message and "'tenanta'" in message and "'hm_TenantA_'" in message
    assert "Nothing was created" in message and "another name or another table_prefix" in message
    await second.close()
    assert catalog(db_url, "hm_tenanta_") == set()
    assert catalog(db_url, "hm_") == before

    async with hm.HiveMind(db_url, environment="TenantA") as again:  # the owner is untouched
        assert await again.jobs.count_by_state() == {"Enqueued": 1}
        assert (await again.jobs.get(job)).state.name == "Enqueued"


async def test_a_prefix_whose_tables_would_take_another_environments_names_is_refused(db_url: str) -> None:
    # "hm_a_recurring_" + "job" is "hm_a_" + "recurring_job": its job table is a's recurring table
    async with hm.HiveMind(db_url, environment="a"):
        pass
    before = catalog(db_url, "hm_")
    overlapping = hm.HiveMind(db_url, environment="a_recurring")
    with pytest.raises(hm.ConfigurationError, match="hm_a_recurring_job") as refused:
        await overlapping.open()
    assert "Nothing was created" in str(refused.value)
    await overlapping.close()
    assert catalog(db_url, "hm_") == before


async def test_the_owner_of_the_tables_is_recorded_and_compared(db_url: str) -> None:
    async with hm.HiveMind(db_url, environment="TenantA"):
        pass
    owner = backends.raw(db_url, f"SELECT environment, table_prefix FROM {_table(db_url, 'hm_TenantA_')}")
    assert owner == [("TenantA", "hm_TenantA_")]

    # a server that stores table names in lower case (lower_case_table_names=1) cannot tell the
    # two spellings apart by their names: the record tells them apart
    backends.raw(db_url, f"UPDATE {_table(db_url, 'hm_TenantA_')} SET environment = ?, table_prefix = ?", "x", "HM_X_")
    with pytest.raises(hm.ConfigurationError, match="belong to environment 'x' with table prefix 'HM_X_'"):
        async with hm.HiveMind(db_url, environment="TenantA"):
            pass


async def test_tables_from_before_the_owner_record_upgrade_and_are_claimed(db_url: str) -> None:
    async with hm.HiveMind(db_url, environment="TenantA") as hive:
        job = await hive.jobs.create(do_stuff)
    latest = _latest(db_url)
    owner = owner_version(load_migrations(_PACKAGES[_backend(db_url)]))
    # the tables the migrations after the owner record's create (extend when one is added), and
    # the columns the limits and function migrations add to the job table
    later = ["job_unique", "queue_pause", "limit_start"]
    postgres = db_url.startswith("postgres")
    # the function migration adds a column, no table; PostgreSQL's next one drops two foreign keys
    assert latest - owner == len(later) + 1 + postgres
    # the tables as the version before the owner record left them: none of those, fewer versions
    backends.raw(db_url, f"DROP TABLE {_table(db_url, 'hm_TenantA_')}")
    for name in later:
        backends.raw(db_url, f"DROP TABLE {backends.table(db_url, name, 'hm_TenantA_')}")
    job_table = backends.table(db_url, "job", "hm_TenantA_")
    if db_url.startswith("sqlite"):
        backends.raw(db_url, 'DROP INDEX "hm_TenantA_job_by_limit"')
    else:
        backends.raw(db_url, f"DROP TABLE {backends.table(db_url, 'limit_lock', 'hm_TenantA_')}")
    if db_url.startswith("mysql"):
        backends.raw(db_url, f"ALTER TABLE {job_table} DROP INDEX `hm_TenantA_job_by_function`")
    else:
        schema = "" if db_url.startswith("sqlite") else f'"{backends.url_schema(db_url)}".'
        backends.raw(db_url, f'DROP INDEX {schema}"hm_TenantA_job_by_function"')
    for column in ("limit_key", "limit_max", "rate_key", "rate_max", "rate_period", "function_name"):
        backends.raw(db_url, f"ALTER TABLE {job_table} DROP COLUMN {column}")
    if postgres:  # the foreign keys of the history and queue rows, as the first migration made them
        for name in ("job_state", "queue"):
            table = backends.table(db_url, name, "hm_TenantA_")
            backends.raw(db_url, f"ALTER TABLE {table} ADD FOREIGN KEY (job_id) REFERENCES {job_table} (id)")
    version_table = backends.table(db_url, "schema_version", "hm_TenantA_")
    backends.raw(db_url, f"DELETE FROM {version_table} WHERE version >= ?", owner)

    async with hm.HiveMind(db_url, environment="TenantA") as hive:
        assert hive.env().info.schema_version == latest
        assert (await hive.jobs.get(job)).state.name == "Enqueued"
        assert [found.id for found in await hive.jobs.search(hm.job.function == do_stuff)] == [job]  # filled in
    assert backends.raw(db_url, f"SELECT environment, table_prefix FROM {_table(db_url, 'hm_TenantA_')}") == [
        ("TenantA", "hm_TenantA_")
    ]
    if postgres:
        keys = "SELECT COUNT(*) FROM pg_constraint WHERE contype = 'f' AND conrelid = CAST(? AS regclass)"
        for name in ("job_state", "queue"):
            assert backends.raw(db_url, keys, backends.table(db_url, name, "hm_TenantA_")) == [(0,)], name
    with pytest.raises(hm.ConfigurationError, match="differ only in case"):
        await hm.HiveMind(db_url, environment="TENANTA").open()


def _table(url: str, prefix: str) -> str:
    return backends.table(url, "schema_owner", prefix)


def _latest(url: str) -> int:
    return len(load_migrations(_PACKAGES[_backend(url)]))


# ---------------------------------------------------------------------- identifier lengths
def _longest_prefix(backend: str) -> int:
    if backend == "sqlite":  # no identifier limit: the name pattern's own bound
        assert validate_table_prefix("p" * TABLE_PREFIX_MAX)
        return TABLE_PREFIX_MAX
    dialect = "postgresql" if backend == "postgres" else "mysql"
    return max_table_prefix(_PACKAGES[backend], dialect)


async def test_the_longest_accepted_prefix_migrates_and_one_more_is_refused(db_url: str) -> None:
    backend = _backend(db_url)
    longest = _longest_prefix(backend)
    if backend != "sqlite":
        limit = IDENTIFIER_LIMITS["postgresql" if backend == "postgres" else "mysql"]
        assert longest + len("recurring_occurrence_by_created") == limit
    prefix = "p" * (longest - 1) + "_"
    hive = hm.HiveMind(db_url, environment="long", table_prefix=prefix)
    async with hive:
        job = await hive.jobs.create(do_stuff)
        assert (await hive.jobs.get(job)).state.name == "Enqueued"
    # every name the SQL writes exists under its full name (PostgreSQL would cut longer ones silently)
    expected = {prefix + name for name in prefixed_names(_PACKAGES[backend])}
    assert expected <= catalog(db_url, prefix)

    too_long = "p" * longest + "_"
    with pytest.raises(hm.ConfigurationError, match=f"at most {longest} characters"):
        hive.add_environment("longer", db_url, table_prefix=too_long)
    assert catalog(db_url, too_long) == set()


async def test_the_default_prefix_of_the_longest_environment_name(db_url: str) -> None:
    name = "e" * 64
    backend = _backend(db_url)
    if backend == "sqlite":
        async with hm.HiveMind(db_url, environment=name) as hive:
            await hive.jobs.create(do_stuff)
            assert hive.env().info.table_prefix == f"hm_{name}_"
        return
    hive = hm.HiveMind(db_url)
    with pytest.raises(hm.ConfigurationError) as refused:
        hive.add_environment(name, db_url)
    message = str(refused.value)
    longest = _longest_prefix(backend)
    assert f"'hm_{name}_' (68 characters) is too long" in message
    assert f"table_prefix of at most {longest} characters" in message
    assert f"environment names of up to {longest - 4} characters" in message
    hive.add_environment(name, db_url, table_prefix="hm_long_")  # what the message says to do
    async with hive:
        await hive.env(name).jobs.create(do_stuff)
