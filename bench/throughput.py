#!/usr/bin/env python3
"""Job processing, job creation and latency of a colony next to the raw engine limit and peer libraries.

--backend sqlite (default), postgres or mysql (MySQL/MariaDB). Figures (medians of --reps repetitions,
default 1 because each one takes tens of seconds; the repetition loop is outermost). Every measurement
starts on empty tables: a fresh database file (SQLite), a fresh schema ``hmbench_<pid>_<k>`` in the
database of --pg-url, dropped with CASCADE afterwards (PostgreSQL), or a fresh database
``hmbench_<pid>_<k>`` next to the one of --mysql-url, dropped afterwards (MySQL); HiveMind creates its
tables there on open (``auto_migrate=true`` is always set).

- ``jobs_per_s``: one colony (one root swarm of --drones drones, the default "global" queue) works
  off --n no-op jobs that ``hive.jobs.create_many`` enqueued in calls of 1000 before it started; timed
  from the colony's start to the moment the n-th job body runs (``startup_s``: to the first one;
  ``stop_s``: from the n-th job to the end of the colony's stop). Every state change is stored, as by
  default.
- ``cpu_us_per_job``: CPU time (user + system, ``time.process_time()``: every thread of this process,
  the SQLite writer and reader threads included) that this process spent over the ``jobs_per_s``
  window, from just before the colony starts to the n-th job body, divided by --n; microseconds. The
  colony runs in this process and the jobs were enqueued before the window opened, so this is the
  worker side alone; the database server's own CPU (PostgreSQL, MySQL) is not in it.
- ``server_cpu_us_per_job``: the database server's CPU time over the same window (until the n-th job
  body) / --n: every process named ``postgres`` (PostgreSQL) or ``mariadbd`` / ``mysqld`` (MySQL) on
  this machine, read from /proc (its background workers included) and summed process by process
  (one that ended within the window is not counted at all); null for SQLite and for a server
  on another host (one not named localhost, 127.0.0.1 or ::1 in its URL). With ``cpu_us_per_job`` it
  tells whether the client or the server limits a run.
- ``enqueue_one_per_s``: --n-one ``await hive.jobs.create(noop, i)`` calls, one after the other (one
  job and one transaction per call), from start to the last call's return.
- ``bulk_enqueue_per_s``: --n-bulk jobs by ``await hive.jobs.create_many(...)`` in calls of 1000 jobs.
- ``enqueue_one_cpu_us``, ``bulk_cpu_us``: CPU time of this process (as ``cpu_us_per_job``) per job
  created over those two windows: the client's share of a create, steadier than the rates.
- ``p50_ms``, ``p90_ms``, ``p99_ms``, ``max_ms``: latency with the colony running and idle while a
  separate producer process (this script with the hidden --produce option, its own HiveMind on the
  same storage) calls ``hive.jobs.create(latency_job, time.time())`` at a steady --rate for
  --lat-seconds; latency = wall clock at the job body - wall clock just before the create call.
  ``producer_rate`` is the rate the producer achieved. How an idle colony notices another process's
  enqueue: SQLite through its change marker (a file check every 2 ms, ``ColonyOptions.
  change_check_interval``), PostgreSQL through LISTEN/NOTIFY (sent at the enqueue's commit), MySQL
  through its change probe (the highest job id, read at most every 10 ms while a fetcher is idle);
  all three poll every --poll-ms (± 20 % jitter) only as a fallback.
- ``raw_limit_per_s``: the engine's limit for the same work with no library on top: --n rows of
  ``(id, queue, priority, status, payload, attempts, created_at, started_at, finished_at)`` with an
  index for the ready rows, claimed --raw-batch rows at a time, then marked done in a second
  transaction (crash-safe: a claimed row is never lost), timed from the first claim to the last done.
  ``raw_limit_b1_per_s``: the same with batch size 1.

  - SQLite: stdlib sqlite3, WAL with synchronous=NORMAL, one loop: claim (``BEGIN IMMEDIATE``,
    ``UPDATE ... WHERE id IN (SELECT ... ORDER BY priority, id LIMIT b) RETURNING id``, ``COMMIT``),
    then done (``UPDATE ... SET status = 2``), each transaction run in one hop to a dedicated thread
    from asyncio - the limit of any asyncio library that keeps SQLite off the event loop.
  - PostgreSQL: psycopg 3 async, --raw-workers asyncio tasks in this process, each with its own
    autocommit connection (so every statement is one transaction). Claim: ``WITH picked AS (SELECT
    id ... WHERE status = 0 ORDER BY priority, id LIMIT b FOR UPDATE SKIP LOCKED) UPDATE ... SET
    status = 1, started_at = now(), attempts = attempts + 1 FROM picked ... RETURNING id, payload``;
    done: ``UPDATE ... SET status = 2, finished_at = now() WHERE id = ANY(ids)``. Partial index on
    (priority, id) WHERE status = 0; rows prefilled with one ``INSERT ... SELECT FROM
    generate_series``, then ``VACUUM ANALYZE``. A task stops when its claim finds nothing.
  - MySQL/MariaDB: aiomysql, --raw-workers asyncio tasks, each with its own autocommit connection in
    READ COMMITTED. Claim: ``BEGIN``, ``SELECT id ... WHERE status = 0 ORDER BY priority, id LIMIT b
    FOR UPDATE SKIP LOCKED``, ``UPDATE ... SET status = 1, started_at = NOW(6), attempts = attempts
    + 1 WHERE id IN (...)``, ``COMMIT``; done: ``UPDATE ... SET status = 2, finished_at = NOW(6)
    WHERE id IN (...)`` (autocommit). InnoDB table with KEY (status, priority, id); rows prefilled
    by multi-row INSERTs, then ``ANALYZE TABLE``.
- ``schema_limit_per_s``, ``schema_create_one_per_s``, ``schema_create_bulk_per_s``: the same three
  kinds of work **on HiveMind's own tables, writing the rows HiveMind must write** (every state change
  a history row, finishes fenced on lock holder, execution id and lock freshness), in hand-written
  driver-level SQL with the fewest round trips (one data-modifying statement per step on PostgreSQL,
  multi-statement scripts on MySQL, one hop to a writer thread per transaction on SQLite, except
  one-job creates, run on the calling thread): processing --n jobs created by
  HiveMind, claimed --raw-batch at a time by --raw-workers loops; creating --n-one jobs one per
  transaction; creating --n-bulk jobs in batches of 1000. What no library can beat on this schema;
  ``schema_limit_colony_per_s``: the same processing on one connection claiming --drones jobs at a
  time, as one colony claims for its drones: the limit of one colony process with no client work;
  ``bench/_schema_limits.py`` has the statements. ``schema_colony_server_cpu_us``: the database
  server's CPU per job over that one-connection run (as ``server_cpu_us_per_job``; null where that
  is), the server's share of the limit next to what the colony costs it. Each checks the tables
  afterwards. Skipped with
  ``rawschema`` (``raw`` skips the one-table limits above).
- Peers, each measured by the shared peer harness (../shared/bench/run_peer.py, phase ``process``,
  config ``default``, --n jobs, timed the same way as ``jobs_per_s``) in a subprocess with this
  interpreter; null (and the reason on stderr) if the library is not installed or the run fails.
  The harness is the first ``shared/bench/run_peer.py`` found in a folder above this script; set
  HIVEMIND_PEER_BENCH to use another copy.

  - ``huey_per_s`` (SQLite): Huey's SqliteHuey (1 worker thread); ``pip install -e '.[bench]'``.
  - ``pgqueuer_per_s`` and ``procrastinate_per_s`` (PostgreSQL): PgQueuer (batch 10) and
    Procrastinate (concurrency 1) in the public schema of the database of --pg-url (BENCH_PG_DSN);
    the harness's adapters empty their tables first and need asyncpg besides the library.
  - ``pgqueuer_enqueue_one_per_s`` (PostgreSQL): the harness's ``enqueue_one`` phase, --n-one
    ``await queries.enqueue("noop", payload)`` calls one after the other (one job and one transaction
    per call, on one asyncpg connection), from the first call to the last call's return; the
    counterpart of ``enqueue_one_per_s``. ``pgqueuer_bulk_per_s``: its ``enqueue_many`` phase,
    --n-bulk jobs by ``await queries.enqueue([...], [...], [...])`` in calls of 1000 jobs (the
    harness's --chunk, set to ours), the counterpart of ``bulk_enqueue_per_s``. Both on fresh
    PgQueuer tables, in a process of their own; skipped with ``enqueue``.
  - ``huey_cpu_us_per_job`` (SQLite), ``pgqueuer_cpu_us_per_job`` and
    ``pgqueuer_server_cpu_us_per_job`` (PostgreSQL): the peer's processing run once more (its
    adapter, --n jobs, in a process of this script's, started in the harness's folder), with the CPU
    time of that process and of the database server's processes from the worker's start to the n-th
    job, per job: the peer's counterparts of ``cpu_us_per_job`` and ``server_cpu_us_per_job``.
    Skipped with ``peercpu``.

``cpu_ceiling_per_s`` (and ``<peer>_cpu_ceiling_per_s``): os.cpu_count() * 1,000,000 / (cpu_us_per_job
+ server_cpu_us_per_job), the jobs per second this machine's cores would allow were every one of
them always busy with this run's CPU per job (the client's alone on SQLite): how far a rate is from
what its CPU per job permits here, whatever the overlap of client and server.

Ratios: ``jobs_vs_raw`` = jobs_per_s / raw_limit_per_s; ``jobs_vs_schema``, ``jobs_vs_schema_colony``,
``enqueue_one_vs_schema`` and ``bulk_vs_schema``: jobs_per_s, enqueue_one_per_s and
bulk_enqueue_per_s over their schema limits; ``jobs_vs_<peer>`` = jobs_per_s / <peer>_per_s for the
backend's peers; on PostgreSQL also ``enqueue_one_vs_pgqueuer`` = enqueue_one_per_s /
pgqueuer_enqueue_one_per_s and ``bulk_vs_pgqueuer`` = bulk_enqueue_per_s / pgqueuer_bulk_per_s. Skip
parts with --skip process,latency,enqueue,raw,rawschema,peers (or a single peer by name: huey,
pgqueuer, procrastinate); their figures are null.

Targets: every run ends with one line per target of its backend (the figure, the bound, PASS or FAIL;
``n/a`` when the figure or the peer figure it is compared with was not measured), and the JSON has
them under ``"targets"``: ``{"<figure> <op> <bound>": {"value", "bound", "pass"}}``.

  ============================  =========================  ============================  ==========
  figure                        SQLite                     PostgreSQL                    MariaDB
  ============================  =========================  ============================  ==========
  jobs_per_s                    >= 1.5*huey_per_s,         >= 1.5*pgqueuer_per_s,        >= 5000
                                >= 5000                    >= 15*procrastinate_per_s
  enqueue_one_per_s             >= 5000                    >= pgqueuer_enqueue_one_per_s >= 2000
  bulk_enqueue_per_s            >= 50000                   >= 50000                      >= 30000
  p50_ms / p99_ms               <= 3 / <= 15               <= 3 / <= 15                  <= 20 / <= 60
  cpu_us_per_job                <= 150                     <= 150                        <= 250
  ============================  =========================  ============================  ==========

A missed target does not change the exit status. A peer figure that comes out null because the peer
could not be measured (not installed, harness missing, its run failed) does: the run prints
everything, then exits with status 1, unless --skip names that peer (or ``peers``). The last line
printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from queue import SimpleQueue
from typing import Any
from urllib.parse import parse_qsl, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # job targets are stored as _jobs:<name>

import _jobs
import _schema_limits as own_schema
import hivemind_jobs as hm
from _runs import Runs
from _stores import (
    WAIT_TIMEOUT,
    Stores,
    add_store_arguments,
    bounded,
    check_store_arguments,
    make_colony,
    mysql_admin,
    mysql_connect_args,
    pg_admin,
    pg_conninfo,
    server_prepare,
    url_database,
)
from hivemind_jobs.storage.postgres.backend import _channel as pg_channel

SCRIPT = Path(__file__).resolve()

PEERS = {"sqlite": ("huey",), "postgres": ("pgqueuer", "procrastinate"), "mysql": ()}
#: what the shared harness's adapter of each peer imports
PEER_MODULES = {"huey": ("huey",), "pgqueuer": ("pgqueuer", "asyncpg"), "procrastinate": ("procrastinate", "asyncpg")}
PARTS = ("process", "latency", "enqueue", "raw", "rawschema", "peers", "huey", "pgqueuer", "procrastinate", "peercpu")
#: the peers whose CPU per job is measured next to their rate (Procrastinate's runs last minutes)
PEER_CPU = ("huey", "pgqueuer")
CHUNK = 1000


# ---------------------------------------------------------------- raw SQLite limit

RAW_SCHEMA = """
CREATE TABLE jobs(
  id INTEGER PRIMARY KEY,
  queue TEXT NOT NULL DEFAULT 'default',
  priority INTEGER NOT NULL DEFAULT 0,
  status INTEGER NOT NULL DEFAULT 0,
  payload TEXT NOT NULL,
  created_at REAL NOT NULL,
  started_at REAL,
  finished_at REAL
);
CREATE INDEX jobs_ready ON jobs(priority, id) WHERE status = 0;
"""
RAW_INSERT = "INSERT INTO jobs(queue, priority, payload, created_at) VALUES ('default', 0, ?, ?)"
RAW_CLAIM = (
    "UPDATE jobs SET status = 1, started_at = ? "
    "WHERE id IN (SELECT id FROM jobs WHERE status = 0 ORDER BY priority, id LIMIT ?) RETURNING id"
)


class HopThread:
    """One dedicated thread; ``await run(fn)`` runs ``fn`` there in one hop and returns its result."""

    def __init__(self) -> None:
        self._inbox: SimpleQueue[tuple[Callable[[], Any], asyncio.Future[Any]] | None] = SimpleQueue()
        self._thread = threading.Thread(target=self._work, daemon=True)
        self._loop = asyncio.get_running_loop()
        self._thread.start()

    def _work(self) -> None:
        while (item := self._inbox.get()) is not None:
            function, future = item
            try:
                result = function()
            except BaseException as error:
                self._loop.call_soon_threadsafe(future.set_exception, error)
            else:
                self._loop.call_soon_threadsafe(future.set_result, result)

    async def run(self, function: Callable[[], Any]) -> Any:
        future: asyncio.Future[Any] = self._loop.create_future()
        self._inbox.put((function, future))
        return await future

    def close(self) -> None:
        self._inbox.put(None)
        self._thread.join()


def raw_prefill(path: Path, n: int) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.executescript(RAW_SCHEMA)
    now = time.time()
    connection.execute("BEGIN IMMEDIATE")
    connection.executemany(RAW_INSERT, ((f'{{"i": {i}}}', now) for i in range(n)))
    connection.execute("COMMIT")
    connection.execute("ANALYZE")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return connection


async def raw_limit(path: Path, n: int, batch: int) -> float:
    """Claim ``batch`` rows, then mark them done, two transactions, each one hop to a dedicated thread."""
    connection = raw_prefill(path, n)
    hop = HopThread()

    def claim() -> list[int]:
        connection.execute("BEGIN IMMEDIATE")
        ids = [row[0] for row in connection.execute(RAW_CLAIM, (time.time(), batch))]
        connection.execute("COMMIT")
        return ids

    def complete(ids: list[int]) -> None:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(
            f"UPDATE jobs SET status = 2, finished_at = ? WHERE id IN ({','.join('?' * len(ids))})",
            (time.time(), *ids),
        )
        connection.execute("COMMIT")

    done = 0
    started = time.perf_counter()
    while ids := await hop.run(claim):
        # --- the no-op jobs run here ---
        await hop.run(lambda ids=ids: complete(ids))
        done += len(ids)
    elapsed = time.perf_counter() - started
    hop.close()
    connection.close()
    assert done == n, (done, n)
    return n / elapsed


# ---------------------------------------------------------------- raw PostgreSQL and MySQL limits


async def workers_until_empty(work: Callable[[int], Any], workers: int) -> tuple[int, float]:
    """Run ``work(i)`` for every worker at once; the jobs they did and the seconds until the last one ended."""
    started = time.perf_counter()
    counts = await asyncio.gather(*(work(i) for i in range(workers)))
    return sum(counts), time.perf_counter() - started


async def pg_raw_limit(url: str, schema: str, n: int, batch: int, workers: int) -> float:
    """Claim ``batch`` rows (SKIP LOCKED CTE + UPDATE RETURNING), then mark them done: two transactions."""
    import psycopg

    table = f'"{schema}".jobs'
    async with await pg_admin(url) as connection:
        await connection.execute(
            f"""CREATE TABLE {table}(
              id bigserial PRIMARY KEY,
              queue text NOT NULL DEFAULT 'default',
              priority int NOT NULL DEFAULT 0,
              status smallint NOT NULL DEFAULT 0,
              payload jsonb NOT NULL,
              attempts int NOT NULL DEFAULT 0,
              created_at timestamptz NOT NULL DEFAULT now(),
              started_at timestamptz,
              finished_at timestamptz)"""
        )
        await connection.execute(f"CREATE INDEX jobs_ready ON {table}(priority, id) WHERE status = 0")
        await connection.execute(
            f"INSERT INTO {table}(payload) SELECT jsonb_build_object('i', i) FROM generate_series(1, %s) AS i", (n,)
        )
        await connection.execute(f"VACUUM ANALYZE {table}")
    claim = (
        f"WITH picked AS (SELECT id FROM {table} WHERE status = 0 ORDER BY priority, id LIMIT %s "
        f"FOR UPDATE SKIP LOCKED) "
        f"UPDATE {table} AS j SET status = 1, started_at = now(), attempts = j.attempts + 1 "
        f"FROM picked WHERE j.id = picked.id RETURNING j.id, j.payload"
    )
    done = f"UPDATE {table} SET status = 2, finished_at = now() WHERE id = ANY(%s)"
    connections = [await psycopg.AsyncConnection.connect(pg_conninfo(url), autocommit=True) for _ in range(workers)]

    async def work(index: int) -> int:
        connection, count = connections[index], 0
        while True:
            rows = await (await connection.execute(claim, (batch,))).fetchall()
            if not rows:
                return count
            # --- the no-op jobs run here ---
            await connection.execute(done, ([row[0] for row in rows],))
            count += len(rows)

    try:
        count, elapsed = await workers_until_empty(work, workers)
    finally:
        for connection in connections:
            await connection.close()
    assert count == n, (count, n)
    return n / elapsed


async def mysql_raw_limit(url: str, database: str, n: int, batch: int, workers: int) -> float:
    """Claim ``batch`` rows (SELECT ... FOR UPDATE SKIP LOCKED + UPDATE, one transaction), then mark them done."""
    table = f"`{database}`.jobs"
    read_committed = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"
    connection = await mysql_admin(url, database)
    try:
        async with connection.cursor() as cursor:
            await cursor.execute(
                f"""CREATE TABLE {table}(
                  id BIGINT AUTO_INCREMENT PRIMARY KEY,
                  queue VARCHAR(64) NOT NULL DEFAULT 'default',
                  priority INT NOT NULL DEFAULT 0,
                  status TINYINT NOT NULL DEFAULT 0,
                  payload TEXT NOT NULL,
                  attempts INT NOT NULL DEFAULT 0,
                  created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
                  started_at DATETIME(6) NULL,
                  finished_at DATETIME(6) NULL,
                  KEY jobs_ready (status, priority, id)
                ) ENGINE=InnoDB"""
            )
            for start in range(0, n, CHUNK):
                values = ",".join(f"('{{\"i\": {i}}}')" for i in range(start, min(n, start + CHUNK)))
                await cursor.execute(f"INSERT INTO {table}(payload) VALUES {values}")
            await cursor.execute(f"ANALYZE TABLE {table}")
            await cursor.fetchall()
    finally:
        await connection.ensure_closed()
    claim = f"SELECT id FROM {table} WHERE status = 0 ORDER BY priority, id LIMIT %s FOR UPDATE SKIP LOCKED"
    connections = [await mysql_admin(url, database, init_command=read_committed) for _ in range(workers)]

    async def work(index: int) -> int:
        connection, count = connections[index], 0
        async with connection.cursor() as cursor:
            while True:
                await connection.begin()
                await cursor.execute(claim, (batch,))
                ids = ",".join(str(row[0]) for row in await cursor.fetchall())
                if not ids:
                    await connection.commit()
                    return count
                await cursor.execute(
                    f"UPDATE {table} SET status = 1, started_at = NOW(6), attempts = attempts + 1 WHERE id IN ({ids})"
                )
                await connection.commit()
                # --- the no-op jobs run here ---
                await cursor.execute(f"UPDATE {table} SET status = 2, finished_at = NOW(6) WHERE id IN ({ids})")
                count += ids.count(",") + 1

    try:
        count, elapsed = await workers_until_empty(work, workers)
    finally:
        for connection in connections:
            await connection.ensure_closed()
    assert count == n, (count, n)
    return n / elapsed


async def server_raw_limit(stores: Stores, args: argparse.Namespace, batch: int) -> float:
    async with stores.namespace() as name:
        if args.backend == "postgres":
            return await pg_raw_limit(args.pg_url, name, args.n, batch, args.raw_workers)
        return await mysql_raw_limit(args.mysql_url, name, args.n, batch, args.raw_workers)


# ---------------------------------------------------------------- raw limits of HiveMind's own schema


async def schema_limits(stores: Stores, args: argparse.Namespace) -> dict[str, float]:
    """``schema_limit_per_s``, ``schema_create_one_per_s`` and ``schema_create_bulk_per_s`` (see
    ``_schema_limits``), each on a fresh store whose tables HiveMind created."""
    noop, _ = job_functions(args.sync_jobs)
    figures: dict[str, float] = {}
    #: the processing limits: their batch and connections
    processing = {
        "schema_limit_per_s": (args.raw_batch, args.raw_workers),
        "schema_limit_colony_per_s": (args.drones, 1),
    }
    for name in (*processing, "schema_create_one_per_s", "schema_create_bulk_per_s"):
        async with stores.hive_url() as url:
            async with hm.HiveMind(url) as hive:  # the tables, and the jobs the processing limit works off
                if name in processing:
                    for start in range(0, args.n, CHUNK):
                        await hive.jobs.create_many(hm.call(noop, i) for i in range(start, min(args.n, start + CHUNK)))
            n, chunk = (args.n_one, 1) if name == "schema_create_one_per_s" else (args.n_bulk, CHUNK)
            batch, workers = processing.get(name, (0, 0))
            query = dict(parse_qsl(urlsplit(url).query))
            if args.backend == "sqlite":
                hop = HopThread()
                try:
                    path = url.removeprefix("sqlite:///")
                    if name in processing:
                        figures[name] = await own_schema.sqlite_schema_limit(path, hop, args.n, batch)
                    else:
                        figures[name] = await own_schema.sqlite_schema_create(path, hop, n, chunk)
                finally:
                    hop.close()
                continue
            # the server's CPU over the one-connection run, read before its connection closes (a
            # PostgreSQL backend's CPU leaves /proc with it)
            server_started = server_cpu(args) if name == "schema_limit_colony_per_s" else None
            used: list[float | None] = []

            def done(used: list[float | None] = used, started: dict[int, float] | None = server_started) -> None:
                used.append(server_cpu_since(args, started))

            if args.backend == "postgres":
                conninfo, namespace = pg_conninfo(args.pg_url), query["schema"]
                if name in processing:
                    figures[name] = await own_schema.pg_schema_limit(conninfo, namespace, args.n, batch, workers, done)
                else:
                    channel = pg_channel(namespace, own_schema.PREFIX)
                    figures[name] = await own_schema.pg_schema_create(conninfo, namespace, channel, n, chunk)
            else:
                connect, database = mysql_connect_args(args.mysql_url), url_database(url)
                if name in processing:
                    figures[name] = await own_schema.mysql_schema_limit(connect, database, args.n, batch, workers, done)
                else:
                    figures[name] = await own_schema.mysql_schema_create(connect, database, n, chunk)
            if used and used[0] is not None:
                figures["schema_colony_server_cpu_us"] = used[0] / args.n * 1e6
    return figures


# ---------------------------------------------------------------- HiveMind colony


def job_functions(sync_jobs: bool) -> tuple[Callable[[int], Any], Callable[[float], Any]]:
    if sync_jobs:
        return _jobs.noop_sync, _jobs.latency_job_sync
    return _jobs.noop, _jobs.latency_job


#: the database server's processes, by backend (every process of the name on this machine)
SERVER_PROCESSES = {"postgres": ("postgres",), "mysql": ("mariadbd", "mysqld")}


#: the host names of a server on this machine (an empty host: a Unix socket)
LOCAL_HOSTS = ("", "localhost", "127.0.0.1", "::1")


def ticks(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` so far, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu(args: argparse.Namespace) -> dict[int, float] | None:
    """CPU seconds (user + system) that each of the database server's processes on this machine has
    used so far, by pid, or None where there are none to read (SQLite, which runs in this process;
    a server on another host). Give it to :func:`server_cpu_since` at the end of a window."""
    names = SERVER_PROCESSES.get(args.backend)
    url = args.pg_url if args.backend == "postgres" else args.mysql_url
    if not names or (urlsplit(url).hostname or "") not in LOCAL_HOSTS:
        return None
    used: dict[int, float] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() in names:
                used[int(entry.name)] = ticks(int(entry.name))
        except OSError:  # ended meanwhile, or not ours to read
            continue
    return used or None


def server_cpu_since(args: argparse.Namespace, before: dict[int, float] | None) -> float | None:
    """The CPU seconds the server's processes used since :func:`server_cpu` gave ``before``: per
    process, so a PostgreSQL backend that ended meanwhile (its CPU leaves /proc with it) takes
    nothing away, and one started meanwhile counts from its start. A process that both started
    and ended within the window is missed: read before the measured connections close."""
    after = server_cpu(args)
    if before is None or after is None:
        return None
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


async def colony_process(url: str, args: argparse.Namespace) -> dict[str, float | None]:
    noop, _ = job_functions(args.sync_jobs)
    hive = hm.HiveMind(url)
    colony = make_colony(hive, args.drones, args.poll_ms)
    tracker = _jobs.TRACKER
    async with hive:
        for start in range(0, args.n, CHUNK):
            await hive.jobs.create_many(hm.call(noop, i) for i in range(start, min(args.n, start + CHUNK)))
        await asyncio.sleep(0.5)  # as the peer harness does between enqueueing and starting the worker
        tracker.arm(args.n, asyncio.get_running_loop())
        server_started = server_cpu(args)
        cpu_started = time.process_time()  # the enqueueing is done: from here on the process is the colony
        started = time.perf_counter()
        async with bounded("the colony run (start, all jobs, stop)"), colony:
            await tracker.wait(WAIT_TIMEOUT)
            server_used = server_cpu_since(args, server_started)
        stopped = time.perf_counter()
        assert tracker.first_at is not None
        assert tracker.last_at is not None
        assert tracker.last_cpu is not None
        states = await hive.jobs.count_by_state()
    if states != {"Succeeded": args.n}:
        print(f"warning: after the colony stopped the jobs are {states}", file=sys.stderr, flush=True)
    server = None if server_used is None else server_used / args.n * 1e6
    return {
        "jobs_per_s": args.n / (tracker.last_at - started),
        "cpu_us_per_job": (tracker.last_cpu - cpu_started) / args.n * 1e6,
        "server_cpu_us_per_job": server,
        "startup_s": tracker.first_at - started,
        "stop_s": stopped - tracker.last_at,
    }


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (the method of the peer harness), p in [0, 100]."""
    ordered = sorted(values)
    rank = min(len(ordered), max(1, int(p / 100 * len(ordered) + 0.999999)))
    return ordered[rank - 1]


async def colony_latency(url: str, args: argparse.Namespace) -> dict[str, float]:
    n = int(args.rate * args.lat_seconds)
    hive = hm.HiveMind(url)
    colony = make_colony(hive, args.drones, args.poll_ms)
    tracker = _jobs.TRACKER
    async with hive:
        tracker.arm(n, asyncio.get_running_loop())
        async with bounded("the latency run (start, producer, all jobs, stop)"), colony:
            await asyncio.sleep(2.0)  # the colony is up and idle
            command = [sys.executable, str(SCRIPT), "--produce", url]
            command += ["--rate", str(args.rate), "--lat-seconds", str(args.lat_seconds)]
            if args.sync_jobs:
                command.append("--sync-jobs")
            producer = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
            try:
                async with asyncio.timeout(args.lat_seconds + 120):
                    output, _ = await producer.communicate()
            finally:
                if producer.returncode is None:
                    producer.kill()
                    await producer.wait()
            if producer.returncode != 0:
                raise RuntimeError(f"the producer process failed with exit code {producer.returncode}")
            await tracker.wait(WAIT_TIMEOUT)
    produced = json.loads(output.decode().strip().splitlines()[-1])
    milliseconds = [latency * 1000 for latency in tracker.latencies]
    return {
        "p50_ms": percentile(milliseconds, 50),
        "p90_ms": percentile(milliseconds, 90),
        "p99_ms": percentile(milliseconds, 99),
        "max_ms": max(milliseconds),
        "producer_rate": produced["achieved_rate"],
    }


async def produce(url: str, args: argparse.Namespace) -> None:
    """The latency producer (a process of its own): one create call at a time, at a steady rate."""
    _, latency_job = job_functions(args.sync_jobs)
    n = int(args.rate * args.lat_seconds)
    interval = 1 / args.rate
    async with hm.HiveMind(url) as hive:
        jobs = hive.jobs
        started = time.perf_counter()
        for i in range(n):
            delay = started + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await jobs.create(latency_job, time.time())
        elapsed = time.perf_counter() - started
    print(json.dumps({"achieved_rate": n / elapsed, "n": n}), flush=True)


async def enqueue_one(url: str, args: argparse.Namespace) -> dict[str, float]:
    """``hive.jobs.create`` one job at a time, sequentially."""
    noop, _ = job_functions(args.sync_jobs)
    async with hm.HiveMind(url) as hive:
        jobs = hive.jobs
        started, cpu_started = time.perf_counter(), time.process_time()
        for i in range(args.n_one):
            await jobs.create(noop, i)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        states = await jobs.count_by_state()
    if states != {"Enqueued": args.n_one}:
        print(f"warning: after enqueueing one by one the jobs are {states}", file=sys.stderr, flush=True)
    return {"enqueue_one_per_s": args.n_one / elapsed, "enqueue_one_cpu_us": cpu / args.n_one * 1e6}


async def bulk_enqueue(url: str, args: argparse.Namespace) -> dict[str, float]:
    """``hive.jobs.create_many`` in calls of 1000 jobs."""
    noop, _ = job_functions(args.sync_jobs)
    async with hm.HiveMind(url) as hive:
        jobs = hive.jobs
        started, cpu_started = time.perf_counter(), time.process_time()
        for start in range(0, args.n_bulk, CHUNK):
            await jobs.create_many(hm.call(noop, i) for i in range(start, min(args.n_bulk, start + CHUNK)))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        states = await jobs.count_by_state()
    if states != {"Enqueued": args.n_bulk}:
        print(f"warning: after the bulk enqueue the jobs are {states}", file=sys.stderr, flush=True)
    return {"bulk_enqueue_per_s": args.n_bulk / elapsed, "bulk_cpu_us": cpu / args.n_bulk * 1e6}


async def on_fresh_store(
    stores: Stores, measure: Callable[[str, argparse.Namespace], Any], args: argparse.Namespace
) -> dict[str, float]:
    """``measure(url, args)`` on a fresh, empty store, removed afterwards."""
    async with stores.hive_url() as url:
        return await measure(url, args)  # type: ignore[no-any-return]


# ---------------------------------------------------------------- peers through the shared peer harness


def peer_bench_dir() -> Path:
    """The shared peer harness: $HIVEMIND_PEER_BENCH, else the first ``shared/bench`` above this script."""
    override = os.environ.get("HIVEMIND_PEER_BENCH")
    if override:
        return Path(override)
    for folder in SCRIPT.parents:
        if (folder / "shared" / "bench" / "run_peer.py").is_file():
            return folder / "shared" / "bench"
    return SCRIPT.parents[2] / "shared" / "bench"


def peer_missing(peer: str) -> str | None:
    """Why ``peer`` cannot be measured, or None if it can."""
    for module in PEER_MODULES[peer]:
        if importlib.util.find_spec(module) is None:
            hint = "pip install -e '.[bench]'" if module == peer else f"pip install {module}"
            return f"{module} (needed by the {peer} adapter) is not installed in {sys.prefix}; install it with: {hint}"
    if not (peer_bench_dir() / "run_peer.py").is_file():
        return f"the peer harness is not at {peer_bench_dir()} (set HIVEMIND_PEER_BENCH to its folder)"
    return None


#: run_peer.py's phases, and the name under which it records each phase's rate (config ``default``)
PEER_PHASES = {
    "process": "{peer}[default].process",
    "enqueue_one": "{peer}.enqueue_one",
    "enqueue_many": "{peer}.enqueue_many",
}


def peer_run(
    peer: str, directory: Path, environment: dict[str, str], phases: dict[str, str], n: int, n_one: int = 1
) -> dict[str, float | None]:
    """Some phases of ``peer`` (config ``default``, one repetition) measured by run_peer.py.

    ``phases`` maps run_peer.py phases (``process``, ``enqueue_one``, ``enqueue_many``) to the names of
    their figures here; ``n`` is the jobs of ``process`` and ``enqueue_many`` (in calls of CHUNK),
    ``n_one`` those of ``enqueue_one``. A figure is None (with the reason on stderr) if the run failed.
    """
    failed: dict[str, float | None] = dict.fromkeys(phases.values())
    results = directory / f"{peer}-{'-'.join(phases)}-results.jsonl"
    environment = dict(os.environ, BENCH_RESULTS=str(results), **environment)
    skip = ",".join(phase for phase in (*PEER_PHASES, "latency") if phase not in phases)
    command = [sys.executable, "run_peer.py", "bench", "--adapter", peer, "--config", "default", "--reps", "1"]
    command += ["--n", str(n), "--n-one", str(n_one), "--chunk", str(CHUNK)]
    command += ["--skip", skip, "--timeout", str(WAIT_TIMEOUT)]
    try:
        completed = subprocess.run(
            command, cwd=peer_bench_dir(), env=environment, capture_output=True, text=True, timeout=WAIT_TIMEOUT + 300
        )
    except subprocess.TimeoutExpired:
        print(f"{peer}: run_peer.py did not finish within {WAIT_TIMEOUT + 300:.0f} s", file=sys.stderr, flush=True)
        return failed
    if completed.returncode != 0:
        print(f"{peer}: run_peer.py failed:\n{completed.stdout[-2000:]}\n{completed.stderr[-4000:]}", file=sys.stderr)
        return failed
    records = (
        [json.loads(line) for line in results.read_text().splitlines() if line.strip()] if results.exists() else []
    )
    figures: dict[str, float | None] = {}
    for phase, figure in phases.items():
        rates = [record["median"] for record in records if record["name"] == PEER_PHASES[phase].format(peer=peer)]
        if not rates:
            print(f"{peer}: run_peer.py recorded no {phase} figure:\n{completed.stdout[-2000:]}", file=sys.stderr)
        figures[figure] = rates[-1] if rates else None
    return figures


def peer_environment(peer: str, directory: Path, args: argparse.Namespace) -> dict[str, str]:
    """The shared harness's settings (see its common.py) for one peer run."""
    if peer == "huey":
        return {"BENCH_SQLITE_DIR": str(directory / "huey")}
    return {"BENCH_PG_DSN": pg_conninfo(args.pg_url)}


def peer_cpu(peer: str, environment: dict[str, str], args: argparse.Namespace) -> dict[str, float | None]:
    """``<peer>_cpu_us_per_job`` and ``<peer>_server_cpu_us_per_job``: the peer's processing run
    again (run_peer.py's ``process`` phase, --n jobs, in calls of CHUNK) in a process of this script's
    (:func:`peer_cpu_child`), with the CPU time of that process and of the database server over the
    window, as ``cpu_us_per_job`` and ``server_cpu_us_per_job`` are measured for the colony. None
    (and the reason on stderr) if the run failed."""
    names = (f"{peer}_cpu_us_per_job", f"{peer}_server_cpu_us_per_job")
    command = [sys.executable, str(SCRIPT), "--peer-cpu", peer, "--backend", args.backend, "--n", str(args.n)]
    command += ["--pg-url", args.pg_url]
    try:
        completed = subprocess.run(
            command,
            cwd=peer_bench_dir(),
            env=dict(os.environ, **environment),
            capture_output=True,
            text=True,
            timeout=WAIT_TIMEOUT + 300,
        )
    except subprocess.TimeoutExpired:
        print(f"{peer}: the CPU run did not finish within {WAIT_TIMEOUT + 300:.0f} s", file=sys.stderr, flush=True)
        return dict.fromkeys(names)
    if completed.returncode != 0:
        print(f"{peer}: the CPU run failed:\n{completed.stderr[-4000:]}", file=sys.stderr, flush=True)
        return dict.fromkeys(names)
    found = json.loads(completed.stdout.strip().splitlines()[-1])
    return dict(zip(names, (found["cpu_us_per_job"], found["server_cpu_us_per_job"]), strict=True))


async def peer_cpu_child(peer: str, args: argparse.Namespace) -> None:
    """The run of :func:`peer_cpu` (in the peer harness's folder, with its settings in the
    environment): the harness's own ``process`` phase, its tracker's arming (just before the worker
    starts) and its wait for the n-th job marking the window; prints one JSON line."""
    sys.path.insert(0, os.getcwd())
    import run_peer  # type: ignore[import-not-found]  # the shared harness
    from peers.base import TRACKER  # type: ignore[import-not-found]

    started: list[Any] = []
    used: list[float | None] = []
    arm, wait = TRACKER.arm, TRACKER.wait

    def armed(target: int, loop: asyncio.AbstractEventLoop | None = None) -> None:
        arm(target, loop)
        started[:] = [server_cpu(args), time.process_time()]  # the enqueueing is done

    async def waited(timeout: float) -> None:
        await wait(timeout)
        used.append(time.process_time() - started[1])  # before the worker stops and closes its connection
        used.append(server_cpu_since(args, started[0]))

    TRACKER.arm, TRACKER.wait = armed, waited
    phase = argparse.Namespace(n=args.n, chunk=CHUNK, timeout=WAIT_TIMEOUT)
    await run_peer.phase_process(run_peer.load(peer, "default"), phase)
    client, server = used
    assert client is not None
    figures = {"cpu_us_per_job": client / args.n * 1e6, "server_cpu_us_per_job": None}
    if server is not None:
        figures["server_cpu_us_per_job"] = server / args.n * 1e6
    print(json.dumps(figures), flush=True)


# ---------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_store_arguments(parser)
    parser.add_argument("--reps", type=int, default=1, help="repetitions of every figure (default 1: they are long)")
    parser.add_argument("--n", type=int, default=20000, help="jobs processed by the colony, raw loop and peers")
    parser.add_argument("--n-one", type=int, default=5000, help="jobs created one by one (enqueue_one_per_s)")
    parser.add_argument("--n-bulk", type=int, default=20000, help="jobs created in calls of 1000 (bulk_enqueue_per_s)")
    parser.add_argument(
        "--drones",
        type=int,
        default=32,
        help="drones of the colony's root swarm (concurrent jobs; no-op jobs need many for big batches)",
    )
    parser.add_argument("--poll-ms", type=int, default=200, help="the colony's poll interval (ms)")
    parser.add_argument("--rate", type=float, default=200.0, help="jobs/s of the latency producer")
    parser.add_argument("--lat-seconds", type=float, default=10.0, help="how long the latency producer runs")
    parser.add_argument("--raw-batch", type=int, default=10, help="rows claimed per transaction by the raw loop")
    parser.add_argument(
        "--raw-workers", type=int, default=4, help="concurrent claim loops of the raw PostgreSQL/MySQL limit"
    )
    parser.add_argument("--sync-jobs", action="store_true", help="run synchronous job bodies (on the thread pool)")
    parser.add_argument("--skip", default="", help=f"comma list of parts not to measure: {','.join(PARTS)}")
    parser.add_argument("--produce", metavar="URL", help=argparse.SUPPRESS)  # the latency producer
    parser.add_argument("--peer-cpu", metavar="PEER", help=argparse.SUPPRESS)  # a peer's CPU run
    args = parser.parse_args()
    args.skip = set(filter(None, args.skip.split(",")))
    if unknown := args.skip - set(PARTS):
        parser.error(f"--skip: unknown parts {sorted(unknown)}; choose from {','.join(PARTS)}")
    numbers = (args.n, args.n_one, args.n_bulk, args.reps, args.rate, args.lat_seconds, args.raw_batch)
    if min(numbers) <= 0 or args.raw_workers < 1:
        parser.error(
            "--n, --n-one, --n-bulk, --reps, --raw-batch, --raw-workers, --rate and --lat-seconds must be positive"
        )
    check_store_arguments(parser, args)
    return args


#: The targets checked at the end of every run, per backend: (figure, ">=" or "<=", factor, reference).
#: The bound is ``factor`` times the figure ``reference`` of the same run, or ``factor`` itself when
#: ``reference`` is None. A target whose figure or reference was not measured is neither met nor missed.
TARGETS: dict[str, tuple[tuple[str, str, float, str | None], ...]] = {
    "sqlite": (
        ("jobs_per_s", ">=", 1.5, "huey_per_s"),
        ("jobs_per_s", ">=", 5000, None),
        ("enqueue_one_per_s", ">=", 5000, None),
        ("bulk_enqueue_per_s", ">=", 50000, None),
        ("p50_ms", "<=", 3, None),
        ("p99_ms", "<=", 15, None),
        ("cpu_us_per_job", "<=", 150, None),
    ),
    "postgres": (
        ("jobs_per_s", ">=", 1.5, "pgqueuer_per_s"),
        ("jobs_per_s", ">=", 15, "procrastinate_per_s"),
        ("enqueue_one_per_s", ">=", 1, "pgqueuer_enqueue_one_per_s"),
        ("bulk_enqueue_per_s", ">=", 50000, None),
        ("p50_ms", "<=", 3, None),
        ("p99_ms", "<=", 15, None),
        ("cpu_us_per_job", "<=", 150, None),
    ),
    "mysql": (
        ("jobs_per_s", ">=", 5000, None),
        ("enqueue_one_per_s", ">=", 2000, None),
        ("bulk_enqueue_per_s", ">=", 30000, None),
        ("p50_ms", "<=", 20, None),
        ("p99_ms", "<=", 60, None),
        ("cpu_us_per_job", "<=", 250, None),
    ),
}


def check_targets(backend: str, figures: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every target of ``backend`` against the run's ``figures``: its value, bound and whether it passed."""
    checked: dict[str, dict[str, Any]] = {}
    for name, comparison, factor, reference in TARGETS[backend]:
        label = f"{name} {comparison} {factor:g}" + (f"*{reference}" if reference else "")
        value = figures.get(name)
        bound = factor if reference is None else (factor * figures[reference] if figures.get(reference) else None)
        passed = None
        if value is not None and bound is not None:
            passed = value >= bound if comparison == ">=" else value <= bound
        checked[label] = {"value": value, "bound": None if bound is None else round(bound, 3), "pass": passed}
    return checked


def cpu_ceiling(medians: dict[str, float], prefix: str) -> float | None:
    """The jobs per second this machine's cores would run were each one always busy with
    ``<prefix>cpu_us_per_job`` (plus ``<prefix>server_cpu_us_per_job`` where the server's CPU was
    measured): os.cpu_count() seconds of CPU per second over the CPU of one job. None if not measured."""
    client = medians.get(f"{prefix}cpu_us_per_job")
    if not client:
        return None
    return round((os.cpu_count() or 1) * 1e6 / (client + (medians.get(f"{prefix}server_cpu_us_per_job") or 0.0)), 1)


def unit_of(name: str) -> str:
    if name.endswith("_per_s") or name == "producer_rate":
        return "/s"
    return "us" if name.endswith(("_us_per_job", "_cpu_us")) else name.rpartition("_")[2]


def main() -> None:
    args = parse_args()
    if args.produce is not None:
        asyncio.run(produce(args.produce, args))
        return
    if args.peer_cpu is not None:
        asyncio.run(peer_cpu_child(args.peer_cpu, args))
        return

    peers = [] if "peers" in args.skip else [peer for peer in PEERS[args.backend] if peer not in args.skip]
    #: the peer figures this run must measure: each one that comes out null fails the run
    expected = {f"{peer}_per_s": peer for peer in peers}
    if "pgqueuer" in peers and "enqueue" not in args.skip:
        expected.update(pgqueuer_enqueue_one_per_s="pgqueuer", pgqueuer_bulk_per_s="pgqueuer")
    measurable = []
    for peer in peers:
        if problem := peer_missing(peer):
            print(f"{peer} is not measured: {problem}", file=sys.stderr, flush=True)
        else:
            measurable.append(peer)
    engine = f"SQLite {sqlite3.sqlite_version}"
    if args.backend != "sqlite":
        engine = asyncio.run(server_prepare(args))

    runs = Runs()
    stores = Stores(args, runs)
    fresh, directory, results = runs.fresh, runs.directory, runs.figures

    def record(figures: dict[str, float | None]) -> None:
        for name, value in figures.items():
            runs.record(name, value)

    def measure(part: Callable[[str, argparse.Namespace], Any]) -> None:
        record(asyncio.run(on_fresh_store(stores, part, args)))

    try:
        for rep in range(args.reps):  # the repetition loop is outermost, as in the shared harness
            if "raw" not in args.skip:
                if args.backend == "sqlite":
                    record({"raw_limit_per_s": asyncio.run(raw_limit(fresh(), args.n, args.raw_batch))})
                    record({"raw_limit_b1_per_s": asyncio.run(raw_limit(fresh(), args.n, 1))})
                else:
                    record({"raw_limit_per_s": asyncio.run(server_raw_limit(stores, args, args.raw_batch))})
                    record({"raw_limit_b1_per_s": asyncio.run(server_raw_limit(stores, args, 1))})
            if "rawschema" not in args.skip:
                record(asyncio.run(schema_limits(stores, args)))
            if "process" not in args.skip:
                measure(colony_process)
            if "latency" not in args.skip:
                measure(colony_latency)
            if "enqueue" not in args.skip:
                measure(enqueue_one)
                measure(bulk_enqueue)
            for peer in measurable:
                peer_directory = directory / f"{peer}{rep + 1}"
                peer_directory.mkdir()
                environment = peer_environment(peer, peer_directory, args)
                record(peer_run(peer, peer_directory, environment, {"process": f"{peer}_per_s"}, args.n))
                if peer in PEER_CPU and "peercpu" not in args.skip:
                    record(peer_cpu(peer, environment, args))
                if peer == "pgqueuer" and "enqueue" not in args.skip:
                    phases = {"enqueue_one": "pgqueuer_enqueue_one_per_s", "enqueue_many": "pgqueuer_bulk_per_s"}
                    record(peer_run(peer, peer_directory, environment, phases, args.n_bulk, args.n_one))
            print(f"rep {rep + 1}/{args.reps} done", file=sys.stderr, flush=True)
    finally:
        runs.remove()

    medians = runs.medians()
    python = sys.version.split()[0]
    workers = f", raw workers={args.raw_workers}" if args.backend != "sqlite" else ""
    print(
        f"{engine}, Python {python}, {os.cpu_count()} cores, medians of {args.reps}; n={args.n}, "
        f"drones={args.drones}, poll={args.poll_ms} ms{workers}, {'sync' if args.sync_jobs else 'async'} jobs"
    )
    width = max(map(len, medians), default=0)
    for name, value in medians.items():
        spread = ", ".join(f"{v:,.1f}" for v in results[name])
        print(f"  {name:<{width}}  {value:>12,.1f} {unit_of(name):<3} ({spread})")

    def ratio(numerator: str, denominator: str) -> float | None:
        if numerator in medians and medians.get(denominator):
            return round(medians[numerator] / medians[denominator], 3)
        return None

    ratios = {"jobs_vs_raw": ratio("jobs_per_s", "raw_limit_per_s")}
    ratios["jobs_vs_schema"] = ratio("jobs_per_s", "schema_limit_per_s")
    ratios["jobs_vs_schema_colony"] = ratio("jobs_per_s", "schema_limit_colony_per_s")
    ratios["enqueue_one_vs_schema"] = ratio("enqueue_one_per_s", "schema_create_one_per_s")
    ratios["bulk_vs_schema"] = ratio("bulk_enqueue_per_s", "schema_create_bulk_per_s")
    ratios.update({f"jobs_vs_{peer}": ratio("jobs_per_s", f"{peer}_per_s") for peer in PEERS[args.backend]})
    described = [f"jobs_per_s / raw_limit_per_s (batch {args.raw_batch}) = {ratios['jobs_vs_raw']}"]
    described += [
        f"jobs_per_s / schema_limit_per_s = {ratios['jobs_vs_schema']}",
        f"jobs_per_s / schema_limit_colony_per_s = {ratios['jobs_vs_schema_colony']}",
        f"enqueue_one_per_s / schema_create_one_per_s = {ratios['enqueue_one_vs_schema']}",
        f"bulk_enqueue_per_s / schema_create_bulk_per_s = {ratios['bulk_vs_schema']}",
    ]
    described += [f"jobs_per_s / {peer}_per_s = {ratios[f'jobs_vs_{peer}']}" for peer in PEERS[args.backend]]
    names = ["jobs_per_s", "cpu_us_per_job", "server_cpu_us_per_job", "schema_colony_server_cpu_us"]
    names += ["startup_s", "stop_s"]
    names += ["enqueue_one_per_s", "bulk_enqueue_per_s"]
    names += ["enqueue_one_cpu_us", "bulk_cpu_us"]
    names += ["p50_ms", "p90_ms", "p99_ms", "max_ms", "producer_rate", "raw_limit_per_s", "raw_limit_b1_per_s"]
    names += ["schema_limit_per_s", "schema_limit_colony_per_s", "schema_create_one_per_s", "schema_create_bulk_per_s"]
    names += [f"{peer}_per_s" for peer in PEERS[args.backend]]
    cpu_peers = [peer for peer in PEERS[args.backend] if peer in PEER_CPU]
    names += [f"{peer}_{figure}" for peer in cpu_peers for figure in ("cpu_us_per_job", "server_cpu_us_per_job")]
    if args.backend == "postgres":
        names += ["pgqueuer_enqueue_one_per_s", "pgqueuer_bulk_per_s"]
        ratios["enqueue_one_vs_pgqueuer"] = ratio("enqueue_one_per_s", "pgqueuer_enqueue_one_per_s")
        ratios["bulk_vs_pgqueuer"] = ratio("bulk_enqueue_per_s", "pgqueuer_bulk_per_s")
        described += [
            f"enqueue_one_per_s / pgqueuer_enqueue_one_per_s = {ratios['enqueue_one_vs_pgqueuer']}",
            f"bulk_enqueue_per_s / pgqueuer_bulk_per_s = {ratios['bulk_vs_pgqueuer']}",
        ]
    # the rate this machine's cores allow for a job's CPU (client and server), were they always busy
    ceilings = {"cpu_ceiling_per_s": cpu_ceiling(medians, "")}
    ceilings.update({f"{peer}_cpu_ceiling_per_s": cpu_ceiling(medians, f"{peer}_") for peer in cpu_peers})
    described += [f"{name} = {value:,.0f}" for name, value in ceilings.items() if value is not None]
    print("ratios: " + ", ".join(described))
    summary: dict[str, Any] = {name: round(medians[name], 3) if name in medians else None for name in names}
    targets = check_targets(args.backend, summary)
    print("targets:")
    label_width = max(map(len, targets))
    for label, outcome in targets.items():
        verdict = {True: "PASS", False: "FAIL", None: "n/a (not measured)"}[outcome["pass"]]
        value = "-" if outcome["value"] is None else f"{outcome['value']:,.1f}"
        bound = "-" if outcome["bound"] is None else f"{outcome['bound']:,.1f}"
        print(f"  {label:<{label_width}}  {value:>12} vs {bound:>12}  {verdict}")
    summary.update(ratios)
    summary.update(ceilings)
    summary.update(
        backend=args.backend,
        engine=engine,
        n=args.n,
        n_one=args.n_one,
        n_bulk=args.n_bulk,
        reps=args.reps,
        drones=args.drones,
        poll_ms=args.poll_ms,
        rate=args.rate,
        lat_seconds=args.lat_seconds,
        raw_batch=args.raw_batch,
        raw_workers=args.raw_workers if args.backend != "sqlite" else 1,
        sync_jobs=args.sync_jobs,
        targets=targets,
    )
    missing = [name for name in expected if summary.get(name) is None]
    for name in missing:
        print(
            f"error: {name} is null: {expected[name]} could not be measured (the reason is above);"
            f" run with --skip {expected[name]} to leave it out",
            file=sys.stderr,
            flush=True,
        )
    print(json.dumps(summary), flush=True)
    if missing:
        sys.exit(1)


if __name__ == "__main__":
    main()
