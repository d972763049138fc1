"""``hivemind db status / upgrade / sql`` on SQLite, PostgreSQL and MariaDB.

Each server test works in a PostgreSQL schema or MariaDB database of its own, dropped afterwards.
A server that cannot be reached skips its tests, except under ``CI=true``, where it fails them.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner, Result

import hivemind_jobs as hm
from hivemind_jobs.cli.main import cli
from tests import backends

PG_URL = backends.PG_URL
MYSQL_URL = backends.MYSQL_URL
BACKENDS = backends.selected()  # HIVEMIND_TEST_BACKENDS
#: a password that must never appear in any output
SECRET = "s3cret-pw"


# ----------------------------------------------------------------------------- databases


_mysql_settings = backends.mysql_settings


def _pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as connection:
        connection.execute(sql)


def _mysql_admin(sql: str) -> None:
    import pymysql

    connection = pymysql.connect(autocommit=True, **_mysql_settings())
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
    finally:
        connection.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name not in BACKENDS:  # named by a parametrize of its own
        pytest.skip(f"{name} is not in HIVEMIND_TEST_BACKENDS")
    backends.require(name)  # skip, or under CI=true fail, when its server is unreachable
    return name


@pytest.fixture
def new_database(backend: str, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Makes empty databases of the test's backend (URLs without auto_migrate); drops them after."""
    cleanups: list[Callable[[], None]] = []

    def make() -> str:
        name = f"hm_cli_{uuid.uuid4().hex[:12]}"
        if backend == "sqlite":
            return f"sqlite:///{tmp_path / name}.db"
        if backend == "postgres":
            _pg_admin(f'CREATE SCHEMA "{name}"')
            cleanups.append(lambda: _pg_admin(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
            return f"{PG_URL}?schema={name}"
        _mysql_admin(f"CREATE DATABASE `{name}`")
        cleanups.append(lambda: _mysql_admin(f"DROP DATABASE IF EXISTS `{name}`"))
        parts = urlsplit(MYSQL_URL)
        return f"{parts.scheme}://{parts.netloc}/{name}"

    yield make
    for cleanup in reversed(cleanups):
        cleanup()


def run_script(url: str, script: str) -> None:
    """Run printed DDL the way a DBA would: the whole script on one connection of the database."""
    if url.startswith("sqlite"):
        connection = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            connection.executescript(script)
        finally:
            connection.close()
    elif url.startswith("postgres"):
        import psycopg

        with psycopg.connect(PG_URL) as pg:  # one transaction, committed on exit
            pg.execute(script.encode())
    else:
        import pymysql
        from pymysql.constants import CLIENT

        mysql = pymysql.connect(client_flag=CLIENT.MULTI_STATEMENTS, **_mysql_settings())
        try:
            with mysql.cursor() as cursor:
                cursor.execute(script)
                while cursor.nextset():
                    pass
            mysql.commit()
        finally:
            mysql.close()


# ----------------------------------------------------------------------------- helpers


def invoke(*args: str) -> Result:
    result = CliRunner().invoke(cli, ["db", *args])
    if result.exit_code not in (0, 1, 2) or (result.exception and not isinstance(result.exception, SystemExit)):
        raise AssertionError(f"hivemind db {shlex.join(args)} crashed:\n{result.output}") from result.exception
    return result


def greet(name: str) -> str:
    return f"hello {name}"


def open_hive(url: str) -> None:
    """Open a HiveMind on ``url`` (no auto_migrate) and use its tables."""

    async def work() -> None:
        async with hm.HiveMind(url) as hive:
            job_id = await hive.jobs.create(greet, "tables")
            assert (await hive.jobs.get(job_id)).queue == "global"

    asyncio.run(work())


def statements(ddl: str) -> list[str]:
    """The statements of printed DDL (comment lines dropped), each checked to end with ``;``."""
    body = "\n".join(line for line in ddl.splitlines() if not line.startswith("-- "))
    found = [part.strip() for part in re.split(r";\n", body + "\n") if part.strip()]
    assert found, ddl
    return found


def is_server(url: str) -> bool:
    return not url.startswith("sqlite")


# ----------------------------------------------------------------------------- the commands


def test_status_upgrade_status(new_database: Callable[[], str]) -> None:
    url = new_database()
    fresh = invoke("status", "--url", url)
    assert fresh.exit_code == 1, fresh.output
    assert "current version: 0" in fresh.stdout
    latest = int(re.search(r"latest version: +(\d+)", fresh.stdout)[1])  # type: ignore[index]
    pending = re.findall(r"^  (\d{4}_\w+)$", fresh.stdout, re.MULTILINE)
    assert latest >= 1 and len(pending) == latest and pending[0] == "0001_initial", fresh.stdout
    assert "pending: run `hivemind db upgrade`" in fresh.stdout
    as_json = invoke("status", "--url", url, "--json")
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout) == {
        "environment": "main",
        "table_prefix": "hm_main_",
        "url": url,
        "current": 0,
        "latest": latest,
        "pending": pending,
        "up_to_date": False,
    }

    if is_server(url):  # SQLite files are upgraded on open; servers wait for `hivemind db upgrade`
        with pytest.raises(hm.SchemaError, match="hivemind db upgrade"):
            open_hive(url)

    upgraded = invoke("upgrade", "--url", url)
    assert upgraded.exit_code == 0, upgraded.output
    assert re.findall(r"^applied (\S+)$", upgraded.stdout, re.MULTILINE) == pending
    assert f"now at schema version {latest}" in upgraded.stdout

    current = invoke("status", "--url", url)
    assert current.exit_code == 0, current.output
    assert f"current version: {latest}" in current.stdout and "up to date" in current.stdout
    assert "pending" not in current.stdout
    reported = json.loads(invoke("status", "--url", url, "--json").stdout)
    assert reported["current"] == reported["latest"] == latest and reported["pending"] == []
    assert reported["up_to_date"] is True

    again = invoke("upgrade", "--url", url)
    assert again.exit_code == 0 and "already up to date" in again.stdout and "applied" not in again.stdout
    open_hive(url)  # no auto_migrate in the URL: the upgraded tables are current


@pytest.mark.parametrize("backend", ["postgres", "mariadb"], indirect=True)  # SQLite is upgraded on open
def test_the_command_named_by_the_schema_error_works(new_database: Callable[[], str]) -> None:
    url = new_database()
    with pytest.raises(hm.SchemaError) as raised:
        open_hive(url)
    commands = re.findall(r"`(hivemind db [^`]*)`", str(raised.value))
    assert commands, str(raised.value)
    upgrade = shlex.split(commands[0])
    assert upgrade[:3] == ["hivemind", "db", "upgrade"], commands
    result = invoke(*upgrade[2:])
    assert result.exit_code == 0 and "applied 0001_initial" in result.stdout, result.output
    open_hive(url)


def test_printed_sql_sets_up_a_fresh_database(new_database: Callable[[], str]) -> None:
    url = new_database()
    printed = invoke("sql", "--url", url)
    assert printed.exit_code == 0 and printed.stderr == "", printed.output
    ddl = printed.stdout
    for line in ddl.splitlines():  # nothing but statements and comments on stdout
        assert not line.startswith(("environment", "applied", "Error")), line
    found = statements(ddl)
    assert any(re.match(r"CREATE TABLE (IF NOT EXISTS )?[\"`]hm_main_job[\"`] \(", s) for s in found), ddl
    assert all("CREATE TABLE" not in s or "hm_main_" in s for s in found)
    assert ddl.rstrip().endswith(";")

    run_script(url, ddl)
    if is_server(url):  # the script records the versions: HiveMind sees current tables
        status = invoke("status", "--url", url)
        assert status.exit_code == 0 and "up to date" in status.stdout, status.output
        open_hive(url)
    else:
        with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"hm_main_job", "hm_main_queue", "hm_main_colony"} <= tables

    latest = json.loads(invoke("status", "--url", url, "--json").stdout)["latest"]
    since_latest = invoke("sql", "--url", url, "--since", str(latest))
    assert since_latest.exit_code == 0 and 'hm_main_job" (' not in since_latest.stdout
    assert "hm_main_job` (" not in since_latest.stdout


def test_printed_sqlite_sql_leaves_tables_hivemind_opens(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dba.db'}"
    run_script(url, invoke("sql", "--url", url).stdout)
    open_hive(url)


def test_env_and_prefix_name_the_tables(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'names.db'}"
    tenant = invoke("sql", "--url", url, "--env", "tenant")
    assert tenant.exit_code == 0 and '"hm_tenant_job"' in tenant.stdout and "hm_main_" not in tenant.stdout
    custom = invoke("sql", "--url", url, "--env", "tenant", "--prefix", "acme_")
    assert custom.exit_code == 0 and '"acme_job"' in custom.stdout and "hm_tenant_" not in custom.stdout
    upgraded = invoke("upgrade", "--url", url, "--prefix", "acme_")
    assert upgraded.exit_code == 0 and "tables acme_*" in upgraded.stdout
    assert invoke("status", "--url", url, "--prefix", "acme_").exit_code == 0
    assert invoke("status", "--url", url).exit_code == 1  # hm_main_* are still missing


@pytest.fixture
def app_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"db_cli_app_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            f"""
            import hivemind_jobs as hm

            hive = hm.HiveMind("sqlite:///{tmp_path / "app.db"}")
            hive.add_environment("reports", "sqlite:///{tmp_path / "reports.db"}", table_prefix="rep_")
            broken = 42
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    yield name
    sys.modules.pop(name, None)


def test_app_environments(app_module: str, tmp_path: Path) -> None:
    app = f"{app_module}:hive"
    before = invoke("status", "--app", app, "--json")
    assert before.exit_code == 1, before.output
    reports = [json.loads(line) for line in before.stdout.splitlines()]
    assert [(r["environment"], r["table_prefix"], r["current"]) for r in reports] == [
        ("main", "hm_main_", 0),
        ("reports", "rep_", 0),
    ]
    only = invoke("upgrade", "--app", app, "--env", "reports")
    assert only.exit_code == 0 and "environment 'reports' (tables rep_*)" in only.stdout
    assert invoke("status", "--app", app, "--env", "reports").exit_code == 0
    assert invoke("status", "--app", app).exit_code == 1  # main is still behind
    both = invoke("upgrade", "--app", app)
    assert both.exit_code == 0
    assert "applied 0001_initial" in both.stdout and "already up to date" in both.stdout
    after = invoke("status", "--app", app)
    assert after.exit_code == 0 and after.stdout.count("up to date") == 2
    ddl = invoke("sql", "--app", app)
    assert ddl.exit_code == 0 and '"hm_main_job"' in ddl.stdout and '"rep_job"' in ddl.stdout

    unknown_env = invoke("status", "--app", app, "--env", "ghost")
    assert unknown_env.exit_code == 2 and "no environment 'ghost'" in unknown_env.stderr
    not_a_hive = invoke("status", "--app", f"{app_module}:broken")
    assert not_a_hive.exit_code == 2 and "expected a HiveMind" in not_a_hive.stderr
    with_prefix = invoke("status", "--app", app, "--prefix", "x_")
    assert with_prefix.exit_code == 2 and "--prefix goes with --url" in with_prefix.stderr


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["status", "--url", "redis://localhost/0"], "no storage backend for 'redis' URLs"),
        (["upgrade", "--url", "hivemind.db"], "has no scheme"),
        (["status", "--url", "sqlite:///x.db", "--prefix", "x;drop"], "invalid table prefix 'x;drop'"),
        (["sql", "--url", "sqlite:///x.db", "--env", "a b"], "invalid environment name 'a b'"),
        (["status", "--url", f"postgresql://root:{SECRET}@127.0.0.1:1/test?connect_timeout=1"], "cannot connect"),
        (["upgrade", "--url", f"mysql://root:{SECRET}@127.0.0.1:1/test"], "cannot connect to MySQL at 127.0.0.1:1"),
        (["status", "--url", f"mysql://root:{SECRET}@127.0.0.1:port/test"], "invalid port"),
        (["status", "--url", "postgresql://root@127.0.0.1/test?schema=x;y"], "schema must be"),
        (["status", "--url", "postgresql://root@127.0.0.1/test?colour=red"], "unknown option(s) ['colour']"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr
    assert SECRET not in result.output and "Traceback" not in result.output


def test_a_sqlite_file_that_is_no_database(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_text("not a database " * 100)
    result = invoke("status", "--url", f"sqlite:///{garbage}")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "file is not a database" in result.stderr and str(garbage) in result.stderr


def test_usage_errors_exit_2() -> None:
    for command in ("status", "upgrade", "sql"):
        nothing = invoke(command)
        assert nothing.exit_code == 2 and nothing.stdout == ""
        assert nothing.stderr.startswith("Error: no database given: pass --url URL or --app module:attribute")
        assert nothing.stderr.count("\n") == 1
    assert invoke("upgrade", "--url", "sqlite:///x.db", "--app", "a:b").exit_code == 2
    assert invoke("sql", "--url", "sqlite:///x.db", "--since", "-1").exit_code == 2
    assert "Exit status" in invoke("status", "--help").stdout


def test_in_a_real_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'process.db'}"

    def hivemind(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hivemind_jobs", "db", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    fresh = hivemind("status", "--url", url)
    assert fresh.returncode == 1 and "0001_initial" in fresh.stdout and fresh.stderr == "", fresh
    assert hivemind("upgrade", "--url", url).returncode == 0
    assert hivemind("status", "--url", url).returncode == 0
    # the driver's pool logs every failed attempt: none of it reaches stderr, only the one line
    unreachable = hivemind("status", "--url", f"postgresql://root:{SECRET}@127.0.0.1:1/test?connect_timeout=1")
    assert unreachable.returncode == 2, unreachable
    assert unreachable.stderr.startswith("Error: cannot connect to PostgreSQL at 127.0.0.1:1/test")
    assert unreachable.stderr.count("\n") == 1 and SECRET not in unreachable.stderr + unreachable.stdout
