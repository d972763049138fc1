"""Jobs are searchable by function (``job.function``) on every backend, jobs stored before the
``function_name`` column get theirs from their stored invocation, and bad values are refused."""

from __future__ import annotations

import json
from importlib import resources

import pytest

import hivemind_jobs as hm
from hivemind_jobs.core.invocation import MAX_FUNCTION_NAME
from hivemind_jobs.storage.sql import split_statements
from tests import backends, sample_jobs
from tests.worker import jobs as worker_jobs

_MIGRATIONS = {
    "sqlite": ("hivemind_jobs.storage.sqlite", "0009_function.sql"),
    "postgres": ("hivemind_jobs.storage.postgres", "0008_function.sql"),
    "mariadb": ("hivemind_jobs.storage.mysql", "0008_function.sql"),
}


async def _ids(hive: hm.HiveMind, where: hm.Condition) -> list[int]:
    page = await hive.jobs.search(where)
    return [job.id for job in page.jobs]


async def test_search_by_function(hive: hm.HiveMind) -> None:
    add = await hive.jobs.create(sample_jobs.add, 1, 2)
    hello = await hive.jobs.create(sample_jobs.hello_world, "hi")
    greet = await hive.jobs.create(hm.instance(worker_jobs.Greeter).greet, "ada")
    assert await _ids(hive, hm.job.function == sample_jobs.add) == [add]
    assert await _ids(hive, hm.job.function == "tests.sample_jobs:hello_world") == [hello]
    assert await _ids(hive, hm.job.function == hm.instance(worker_jobs.Greeter).greet) == [greet]
    assert await _ids(hive, hm.job.function == "tests.worker.jobs:Greeter.greet") == [greet]
    assert await _ids(hive, hm.job.function.like("tests.sample_jobs:*")) == [add, hello]
    assert await _ids(hive, hm.job.function.in_([sample_jobs.add, "tests.worker.jobs:Greeter.greet"])) == [add, greet]
    many = await hive.jobs.create_many([hm.call(sample_jobs.add, n, n) for n in range(3)])
    assert await hive.jobs.count(hm.job.function == sample_jobs.add) == 1 + len(many)
    job = await hive.jobs.get(greet)
    assert job.invocation.function_name == "tests.worker.jobs:Greeter.greet"


def test_bad_function_values_are_query_errors() -> None:
    with pytest.raises(hm.QueryError, match="compares with 'module:qualname' text or a job function"):
        hm.job.function == (lambda: None)  # noqa: B015 - building the condition raises
    with pytest.raises(hm.QueryError, match="lone backslash"):
        hm.job.function.like("tests\\")
    with pytest.raises(hm.QueryError, match="None is not a value"):
        hm.job.function == None  # noqa: B015, E711


def _run_backfill(backend: str, url: str) -> None:
    """The UPDATE of the function migration, run again over the environment's jobs."""
    package, name = _MIGRATIONS[backend]
    text = resources.files(package).joinpath("migrations", name).read_text("utf-8")
    (update,) = (statement for statement in split_statements(text) if statement.startswith("UPDATE"))
    quoted = {"sqlite": '"{p}job"', "postgres": '"{p}job"', "mariadb": "`{p}job`"}[backend]
    statement = update.replace(quoted, backends.table(url, "job"))
    if backend == "sqlite":
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite:///").split("?")[0]) as connection:
            connection.execute(statement)
    elif backend == "postgres":
        import psycopg

        with psycopg.connect(backends.PG_URL, autocommit=True) as pg:
            pg.execute(statement.encode())  # bytes: no placeholder parsing of the pattern text
    else:
        import pymysql

        connection = pymysql.connect(autocommit=True, **backends.mysql_settings())
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement)
        finally:
            connection.close()


async def test_jobs_stored_before_the_column_get_their_function(
    hive: hm.HiveMind, backend_name: str, db_url: str
) -> None:
    add = await hive.jobs.create(sample_jobs.add, 1, 2)
    greet = await hive.jobs.create(hm.instance(worker_jobs.Greeter).greet, "ada")
    unreadable = await hive.jobs.create(sample_jobs.do_stuff)
    long_name = await hive.jobs.create(sample_jobs.do_stuff)
    # a method named in an argument must not be taken for the job's own
    tricky = await hive.jobs.create(sample_jobs.hello_world, '","method":"boom')
    backends.raw(db_url, "UPDATE {job} SET invocation = ? WHERE id = ?", "not json {", unreadable)
    target = "tests.sample_jobs:" + "x" * (MAX_FUNCTION_NAME + 50)
    document = {"v": 1, "target": target, "async": False, "args": {}}
    backends.raw(db_url, "UPDATE {job} SET invocation = ? WHERE id = ?", json.dumps(document), long_name)
    backends.raw(db_url, "UPDATE {job} SET function_name = ?", "")

    _run_backfill(backend_name, db_url)

    stored = dict(backends.raw(db_url, "SELECT id, function_name FROM {job}"))
    assert stored == {
        add: "tests.sample_jobs:add",
        greet: "tests.worker.jobs:Greeter.greet",
        unreadable: "",
        long_name: target[:MAX_FUNCTION_NAME],
        tricky: "tests.sample_jobs:hello_world",
    }
    assert await _ids(hive, hm.job.function == "tests.worker.jobs:Greeter.greet") == [greet]
