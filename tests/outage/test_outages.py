"""Database outages in the middle of a run: server restarts and killed connections.

A colony works through jobs while the server restarts (or its connections are killed). It must
reconnect (pool and, on PostgreSQL, LISTEN), keep going, and end with every job Succeeded. Jobs
that were in flight during the outage may run again (their locks expire and they are rescued);
no other job does. Each test prints how many extra runs there were.

These tests restart the machine's database servers: they must not run next to other tests that
use those servers (pytest runs them one at a time, as CI does).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest

import hivemind_jobs as hm
from hivemind_jobs.errors import HiveMindError
from tests import backends
from tests.outage import jobs

N = 240
DRONES = 8
ALLOW = hm.AllowList(modules=["tests.outage"])
#: PostgreSQL colonies poll this rarely in these tests: only NOTIFY (LISTEN) wakes them in time
LONG = timedelta(seconds=60)


@pytest.fixture(autouse=True)
def clear_runs() -> None:
    jobs.RUNS.clear()


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=120)


async def _wait_until(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if await check():
                return
        except (HiveMindError, OSError):
            pass  # the database is still down
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


async def run_through_outage(
    url: str, outage: Callable[[], Awaitable[None]], label: str, *, poll: timedelta = timedelta(milliseconds=200)
) -> None:
    options = hm.Options(lock_timeout=timedelta(seconds=3), retry=hm.RetryPolicy(max_retries=0))
    hive = hm.HiveMind(url, options=options)
    colony_options = hm.ColonyOptions(
        poll_interval=poll,
        lock_monitor_interval=timedelta(seconds=1),
        graceful_stop=timedelta(seconds=2),
        shutdown_write_timeout=timedelta(seconds=2),
    )
    async with hive:
        await hive.jobs.create_many(hm.call(jobs.tick, number) for number in range(N))
        colony = hive.colony(name="outage", allow=ALLOW, options=colony_options)
        colony.swarm("main", drones=DRONES)
        async with colony:

            async def quarter_done() -> bool:
                return len(jobs.RUNS) >= N // 4

            await _wait_until(quarter_done, 60, "a quarter of the jobs to run")
            done_before = len(jobs.RUNS)
            await outage()

            async def all_succeeded() -> bool:
                return await hive.jobs.count_by_state() == {"Succeeded": N}

            await _wait_until(all_succeeded, 120, "every job to succeed after the outage")

            # jobs enqueued by another process (here: another HiveMind, so no in-process wake-up)
            # after the outage start at once: the colony is woken again (PostgreSQL: LISTEN reconnected)
            started = time.monotonic()
            async with hm.HiveMind(url) as producer:
                await producer.jobs.create_many(hm.call(jobs.tick, number) for number in range(N, N + 20))

            async def late_ones_done() -> bool:
                return await hive.jobs.count_by_state() == {"Succeeded": N + 20}

            await _wait_until(late_ones_done, 20, "the jobs enqueued after the outage")
            late = time.monotonic() - started
    extra = sum(count - 1 for count in jobs.RUNS.values())
    print(
        f"{label}: {N} jobs Succeeded, {done_before} had run before the outage, extra runs: {extra}; "
        f"20 jobs enqueued afterwards done in {late:.2f} s (poll interval {poll.total_seconds():g} s)"
    )
    assert sorted(jobs.RUNS) == list(range(N + 20)), "every job ran"
    # only jobs in flight during the outage may run again (at most every drone's job, twice over
    # for the reconnect that happens while rescued jobs are picked up again)
    assert extra <= 2 * DRONES, f"{extra} extra runs for {DRONES} drones"


# ----------------------------------------------------------------------------- PostgreSQL


async def _pg_admin(sql: str, *params: object) -> list[tuple[object, ...]]:
    import psycopg

    async with await psycopg.AsyncConnection.connect(backends.PG_URL, autocommit=True) as connection:
        return await (await connection.execute(sql, params)).fetchall()


def _pg_cluster() -> list[str]:
    versions = sorted(path.name for path in Path("/etc/postgresql").iterdir())
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main"]


@pytest.mark.outage
async def test_postgres_connections_killed(postgres_url: str) -> None:
    schema = backends.url_schema(postgres_url)

    async def kill() -> None:
        # every connection of this test's storage (pool and LISTEN): they are tagged by application name
        killed = await _pg_admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", f"hm-{schema}"
        )
        assert killed, "no connection of the colony was found to kill"
        print(f"killed {len(killed)} PostgreSQL connections")

    await run_through_outage(f"{postgres_url}&application_name=hm-{schema}", kill, "pg_terminate_backend", poll=LONG)


@pytest.mark.outage
async def test_postgres_server_restart(postgres_url: str) -> None:
    async def restart() -> None:
        await asyncio.to_thread(_run, *_pg_cluster(), "restart")

    await run_through_outage(postgres_url, restart, "PostgreSQL restart", poll=LONG)


# ----------------------------------------------------------------------------- MariaDB


_UNKNOWN_THREAD = 1094  # ER_NO_SUCH_THREAD: KILL of a connection that has ended


async def _mysql_admin(sql: str, *params: object) -> list[tuple[object, ...]]:
    import aiomysql

    connection = await aiomysql.connect(autocommit=True, **backends.mysql_settings())
    try:
        async with connection.cursor() as cursor:
            await cursor.execute(sql, params or None)
            return list(await cursor.fetchall())
    finally:
        connection.close()


@pytest.mark.outage
async def test_mariadb_connections_killed(mariadb_url: str) -> None:
    database = backends.url_database(mariadb_url)

    async def kill() -> None:
        rows = await _mysql_admin(
            "SELECT id FROM information_schema.processlist WHERE db = %s AND id <> CONNECTION_ID()", database
        )
        assert rows, "no connection of the colony was found to kill"
        import pymysql

        killed = 0
        for (connection_id,) in rows:
            try:
                await _mysql_admin("KILL CONNECTION %s", int(str(connection_id)))
                killed += 1
            except pymysql.err.OperationalError as error:
                if error.args[0] != _UNKNOWN_THREAD:
                    raise
                # the connection closed between the process list and the kill (a change probe's)
        assert killed, "every connection of the colony ended before it could be killed"
        print(f"killed {killed} MariaDB connections")

    await run_through_outage(mariadb_url, kill, "KILL CONNECTION")


@pytest.mark.outage
async def test_mariadb_server_restart(mariadb_url: str) -> None:
    admin = shutil.which("mariadb-admin") or "mysqladmin"

    async def restart() -> None:
        await asyncio.to_thread(_run, admin, "-h", "127.0.0.1", "-u", "root", "shutdown")
        await asyncio.sleep(1.0)
        await asyncio.to_thread(backends.ensure_mariadb_running)

    await run_through_outage(mariadb_url, restart, "MariaDB stop/start")
