#!/usr/bin/env python3
"""The query API on 1,000,000 jobs with properties: counts, property searches, deep keyset pages and
search-and-lock, next to one hand-written SQL statement for the same result.

``--backend postgres|mysql|sqlite``. Every run loads a fresh store: a schema ``hmquery_<pid>`` in
the database of --pg-url (dropped with CASCADE afterwards), a database ``hmquery_<pid>`` next to
the one of --mysql-url (dropped afterwards) or a new SQLite file in a temporary directory (removed
afterwards); --keep leaves it in place and prints its URL, --url measures an already loaded store
(and never drops it).

Loading. ``hm.HiveMind(url)`` is opened once so the library creates its own tables (migrations,
``auto_migrate=true`` on the servers). Creating a million jobs through ``jobs.create_many`` takes
many minutes per backend, so the jobs are bulk-loaded with raw SQL into those tables instead:
PostgreSQL binary ``COPY`` (psycopg ``cursor.copy``; the session sets ``session_replication_role =
replica`` when it may, which skips the foreign-key triggers the consistent rows do not need),
MySQL/MariaDB multi-row ``INSERT``s (executemany, statements of up to 4 MB, one transaction per
chunk, ``foreign_key_checks`` and ``unique_checks`` off for the session), SQLite ``executemany``
in one transaction. Then PostgreSQL ``VACUUM ANALYZE`` (index-only scans need the visibility
map), MariaDB ``ANALYZE TABLE``, SQLite ``ANALYZE``. The rows are the ones the library writes:
the same columns, types, invocation JSON, state-field JSON, typed property rows and a queue row
for every Enqueued job. That is checked on every load: one job of every kind of history is
created again through the public API (``jobs.options(queue=, priority=, properties=).create``,
then ``jobs.change_state`` with each later state as ``jobs.get`` read it back), and the rows the
library wrote for it must equal the loaded ones in every column but ids, times and execution
ids; those replayed jobs are deleted again. Then ``jobs.count_by_state()``, a tenant count and
the enqueued count of the locked queue must equal what was generated, and 200 jobs read back
with ``jobs.get`` must decode to known states.

The data (seeded, so every backend gets the same jobs): created_at spread over 8 weeks, ids in
creation order; queues global/mail/billing/reports/exports; mostly NORMAL priority. The newest
3 % are a backlog, 85 % of it still Enqueued; the rest ends Succeeded (89 %, 4 % of them after one
retry), Failed (8 %: half fatal, half created with ``retry=RetryPolicy(max_retries=2)`` and given
up after two retries, with ``exception_type`` of six kinds), Deleted (1.8 %) or Idle (1.2 %,
cancelled). Histories are Created -> Enqueued -> Executing -> Succeeded/Failed as a colony writes
them (Executing with colony, swarm and drone; Succeeded with duration, overhead and lead time;
retries as Failed -> Enqueued(delay_until) -> Executing ...). Properties: ``tenant`` (text, 100
tenants, skewed), ``amount`` (int, log-uniform over 1..10^8), ``urgent`` (bool, 7 % true) on every
job, ``due`` (datetime) on 40 %, ``hm.retries``/``hm.retry`` where the runtime sets them.

Figures (milliseconds, median of --runs timed calls after two warm-up calls, through ``hive.jobs``):

- ``count_by_state_ms``: ``jobs.count(hm.state == hm.Failed)``.
- ``property_eq_ms``: ``jobs.search(hm.prop("tenant") == "tenant-042", limit=100)`` (~0.8 % of jobs).
- ``property_range_ms``: ``jobs.search(hm.where(hm.prop("amount") >= a, hm.prop("amount") < b),
  limit=100)``, a and b the 50th and 51st percentile of the stored amounts (1 % of jobs).
- ``keyset_page_ms``: page 1,000 of 100 jobs ``order_by="-created"``: the pages before it are
  walked once with ``after=page.next_cursor``, then that page is fetched from its cursor.
- ``search_and_lock_ms``: ``jobs.search_and_lock(hm.where(hm.state == hm.Enqueued, hm.job.queue ==
  "mail"), limit=100)``; the locks are released (``await locked.release()``) untimed after each call.
- extras without a target: ``state_counts_all_ms`` (``jobs.count_by_state()``, a GROUP BY over
  every job), ``keyset_first_page_ms`` (page 1 of the same order), ``keyset_walk_s``.

Targets: each of the five at most 50 ms on PostgreSQL, 100 ms on MariaDB and SQLite.

Raw reference (``raw_<figure>_ms``, timed interleaved with the API calls, same count and medians):
one hand-written statement through the driver (psycopg async and aiomysql with autocommit
connections, stdlib sqlite3 on the calling thread) returning the same result: the same count, the
same 100 ids in the same order (checked) with the job table's columns. The API does more per
search: it reads the states and properties of the 100 jobs as well (three statements) and runs
in a transaction. Search-and-lock: ``UPDATE ... WHERE id IN (SELECT ... ORDER BY id LIMIT 100
FOR UPDATE SKIP LOCKED) RETURNING ...`` (PostgreSQL), ``SELECT ... FOR UPDATE SKIP LOCKED`` then
``UPDATE`` in one transaction (MariaDB), ``BEGIN IMMEDIATE``, ``UPDATE ... RETURNING``, ``COMMIT``
(SQLite); released untimed. ``<figure>_vs_raw`` = API median / raw median.

--explain prints the SQL the library's compiler produces for each measured call and its plan
(PostgreSQL ``EXPLAIN (ANALYZE, BUFFERS)``, MariaDB ``ANALYZE``, SQLite ``EXPLAIN QUERY PLAN``).
The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import dataclasses
import json
import os
import random
import sqlite3
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the jobs' stored target is _jobs:noop

import _jobs
import hivemind_jobs as hm
from _runs import Runs
from hivemind_jobs.core.clock import to_microseconds
from hivemind_jobs.query.order import decode_cursor, parse_order
from hivemind_jobs.storage.compiler import Compiled, compile_count, compile_search
from hivemind_jobs.storage.dialect import MYSQL, POSTGRES, SQLITE, Dialect
from hivemind_jobs.storage.sql import QueryBook, to_pyformat

BACKENDS = ("postgres", "mysql", "sqlite")
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_MYSQL_URL = "mysql://root@127.0.0.1:3306/test"
PREFIX = "hm_main_"  # the tables of the default environment "main"
TARGET_MS = {"postgres": 50.0, "mysql": 100.0, "sqlite": 100.0}
FIGURES = ("count_by_state_ms", "property_eq_ms", "property_range_ms", "keyset_page_ms", "search_and_lock_ms")
EXTRAS = ("state_counts_all_ms", "keyset_first_page_ms")
WARMUP = 2
PAGE = 100
KEYSET_PAGE = 1000
CHUNK = 20_000  # jobs generated and written at a time
CLEANUP_TRIES = 30
PG_OPTIONS = "-c jit=off -c TimeZone=UTC"  # as the library's own connections

# ---------------------------------------------------------------------------- the data set

US = 1_000_000
DAY_US = 86_400 * US
SPAN = timedelta(weeks=8)
BACKLOG = 0.03  # the newest 3 % of the jobs: mostly still Enqueued
SEED = 20260101
QUERY_TENANT = "tenant-042"
QUERY_QUEUE = "mail"
QUERY_STATE = hm.Failed
TENANTS = tuple(f"tenant-{rank:03d}" for rank in range(100))
QUEUES = (("global", 0.45), ("mail", 0.20), ("billing", 0.15), ("reports", 0.12), ("exports", 0.08))
PRIORITIES = tuple(
    (int(priority), share)
    for priority, share in (
        (hm.Priority.NORMAL, 0.72),
        (hm.Priority.HIGH, 0.14),
        (hm.Priority.LOW, 0.10),
        (hm.Priority.CRITICAL, 0.02),
        (hm.Priority.NONE, 0.02),
    )
)
#: kinds of history and their share outside the backlog (inside it, 85 % are "enqueued" first)
KINDS = (
    ("succeeded", 0.855),
    ("succeeded_after_retry", 0.035),
    ("failed_fatal", 0.04),
    ("failed_retried", 0.04),
    ("deleted", 0.01),
    ("deleted_failed", 0.008),
    ("idle", 0.012),
)
EXCEPTIONS = (
    ("builtins.TimeoutError", "timed out after 30 s", "app/mail.py", "send", "await smtp.send(message)"),
    ("httpx.ConnectError", "[Errno 111] Connection refused", "app/billing.py", "charge", "await client.post(url)"),
    ("app.billing.CardDeclined", "card declined: insufficient funds", "app/billing.py", "charge", "raise CardDeclined"),
    ("builtins.KeyError", "'customer_id'", "app/reports.py", "build", "customer = row['customer_id']"),
    ("builtins.ValueError", "invalid literal for int() with base 10: 'n/a'", "app/exports.py", "parse", "int(cell)"),
    ("asyncpg.exceptions.DeadlockDetectedError", "deadlock detected", "app/db.py", "save", "await conn.execute(sql)"),
)
COLONIES = ("jobs-1-4711", "jobs-2-4790", "jobs-3-5120")
DRONES = 32
RETRY = hm.RetryPolicy(max_retries=2)  # what the "failed_retried" jobs were created with
DEFAULT_MAX_RETRIES = hm.Options().retry.max_retries

JOB_COLUMNS = (
    "id",
    "queue",
    "priority",
    "execution_id",
    "state_name",
    "state_sequence",
    "state_elected_at",
    "invocation",
    "middleware",
    "function_name",
    "locked_by",
    "locked_at",
    "lock_heartbeat",
    "created_at",
    "modified_at",
)
STATE_COLUMNS = ("job_id", "sequence", "name", "elected_at", "reason", "fields")
PROPERTY_COLUMNS = ("job_id", "name", "type", "text_value", "int_value", "float_value", "bool_value", "datetime_value")
QUEUE_COLUMNS = ("job_id", "queue", "priority", "execute_after", "execution_id", "enqueued_at")
PG_TYPES = {
    "job": (
        "int8",
        "text",
        "int4",
        "text",
        "text",
        "int4",
        "timestamptz",
        "text",
        "text",
        "text",
        "text",
        "timestamptz",
        "timestamptz",
        "timestamptz",
        "timestamptz",
    ),
    "job_state": ("int8", "int4", "text", "timestamptz", "text", "text"),
    "job_property": ("int8", "text", "text", "text", "int8", "float8", "int2", "timestamptz"),
    "queue": ("int8", "text", "int4", "timestamptz", "text", "timestamptz"),
}
COLUMNS = {"job": JOB_COLUMNS, "job_state": STATE_COLUMNS, "job_property": PROPERTY_COLUMNS, "queue": QUEUE_COLUMNS}
#: the job table's columns the raw reference returns
RAW_JOB = "j.id, j.queue, j.priority, j.execution_id, j.state_name, j.state_sequence, j.state_elected_at, "
RAW_JOB += "j.invocation, j.middleware, j.locked_by, j.created_at, j.modified_at"

Row = tuple[Any, ...]
Stamp = Callable[[int], Any]


def _cumulative(pairs: Sequence[tuple[Any, float]]) -> tuple[tuple[Any, ...], list[float]]:
    total = sum(weight for _, weight in pairs)
    bounds: list[float] = []
    running = 0.0
    for _, weight in pairs:
        running += weight / total
        bounds.append(running)
    bounds[-1] = 1.0
    return tuple(value for value, _ in pairs), bounds


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _timedelta_json(microseconds: int) -> str:
    days, rest = divmod(microseconds, DAY_US)
    seconds, micros = divmod(rest, US)
    return f'{{"$hm":"timedelta","v":[{days},{seconds},{micros}]}}'


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NAIVE_EPOCH = EPOCH.replace(tzinfo=None)  # MySQL DATETIME(6) holds naive UTC


def _iso(microseconds: int) -> str:
    return (EPOCH + timedelta(microseconds=microseconds)).isoformat()


def _failed_fields(kind: int) -> str:
    exception_type, message, path, function, line = EXCEPTIONS[kind]
    name = exception_type.rpartition(".")[2]
    trace = (
        "Traceback (most recent call last):\n"
        f'  File "/srv/{path}", line {40 + 7 * kind}, in {function}\n'
        f"    {line}\n"
        f"{name}: {message}\n"
    )
    return _compact({"exception_type": exception_type, "message": message, "traceback": trace})


FAILED_FIELDS = tuple(_failed_fields(kind) for kind in range(len(EXCEPTIONS)))
EXECUTING_FIELDS = tuple(
    _compact({"colony": colony, "swarm": "main", "drone": f"main.drone-{drone + 1}"})
    for colony in COLONIES
    for drone in range(DRONES)
)


@dataclass
class Tally:
    """What was generated: current states, enqueued jobs per queue, jobs per tenant, and the first
    job of every kind of history."""

    states: Counter[str] = field(default_factory=Counter)
    enqueued: Counter[str] = field(default_factory=Counter)
    tenants: Counter[str] = field(default_factory=Counter)
    kinds: dict[str, int] = field(default_factory=dict)


@dataclass
class Chunk:
    job: list[Row] = field(default_factory=list)
    job_state: list[Row] = field(default_factory=list)
    job_property: list[Row] = field(default_factory=list)
    queue: list[Row] = field(default_factory=list)

    def tables(self) -> Iterator[tuple[str, list[Row]]]:
        yield "job", self.job
        yield "job_state", self.job_state
        yield "job_property", self.job_property
        yield "queue", self.queue


History = list[tuple[str, int, str | None, str]]


def _execute(history: History, rand: Callable[[], float], after: int) -> int:
    """Executing, a lead time after ``after``; its time."""
    at = after + int(10 ** (3.3 + rand() * 3.7))
    history.append(("Executing", at, None, EXECUTING_FIELDS[int(rand() * len(EXECUTING_FIELDS))]))
    return at


def _fail(history: History, rand: Callable[[], float], started: int, reason: str | None) -> int:
    finished = started + int(10 ** (3.7 + rand() * 3.6)) + 100 + int(rand() * 1900)
    history.append(("Failed", finished, reason, FAILED_FIELDS[int(rand() * len(FAILED_FIELDS))]))
    return finished


def _retry(history: History, rand: Callable[[], float], failed: int, number: int, of: int) -> int:
    """Enqueued again as the colony does after a failure (default backoff); the time it is due."""
    delay = 15.0 * 2 ** (number - 1) * (0.8 + 0.4 * rand())
    due = failed + int(delay * US)
    fields = f'{{"delay_until":{{"$hm":"datetime","v":"{_iso(due)}"}}}}'
    history.append(("Enqueued", failed + 50, f"retry {number} of {of} in {delay:.3g} s", fields))
    return due


def _succeed(history: History, rand: Callable[[], float], started: int, lead: int) -> int:
    duration = int(10 ** (3.7 + rand() * 3.6))
    overhead = 100 + int(rand() * 1900)
    finished = started + duration + overhead
    fields = (
        f'{{"duration":{_timedelta_json(duration)},"overhead":{_timedelta_json(overhead)},'
        f'"lead_time":{_timedelta_json(lead)}}}'
    )
    history.append(("Succeeded", finished, None, fields))
    return finished


def generate(n: int, end_us: int, stamp: Stamp, tally: Tally, *, chunk: int = CHUNK) -> Iterator[Chunk]:
    """The rows of ``n`` jobs (ids 1..n) in chunks; times are ``stamp(microseconds)``."""
    rng = random.Random(SEED)
    rand = rng.random
    bits = rng.getrandbits
    queues, queue_bounds = _cumulative(QUEUES)
    priorities, priority_bounds = _cumulative(PRIORITIES)
    kinds, kind_bounds = _cumulative(KINDS)
    tenants, tenant_bounds = _cumulative([(name, 1 / (rank + 1) ** 0.5) for rank, name in enumerate(TENANTS)])
    retry_policy = RETRY.to_json()
    span = int(SPAN.total_seconds() * US)
    start = end_us - span
    step = span / n
    backlog_from = n - int(n * BACKLOG)

    for base in range(0, n, chunk):
        out = Chunk()
        for index in range(base, min(n, base + chunk)):
            job_id = index + 1
            t0 = start + int((index + rand()) * step)
            enqueued_at = t0 + 30 + int(rand() * 60)
            created = enqueued_at + 200 + int(rand() * 400)
            queue = queues[bisect.bisect(queue_bounds, rand())]
            priority = priorities[bisect.bisect(priority_bounds, rand())]
            tenant = tenants[bisect.bisect(tenant_bounds, rand())]
            execution_id = str(uuid.UUID(int=bits(128), version=4))
            backlog = index >= backlog_from and rand() < 0.85
            kind = "enqueued" if backlog else kinds[bisect.bisect(kind_bounds, rand())]
            history: History = [("Created", t0, None, "{}"), ("Enqueued", enqueued_at, None, "{}")]
            properties: list[Row] = [
                (job_id, "tenant", "text", tenant, None, None, None, None),
                (job_id, "amount", "int", None, int(10 ** (rand() * 8)), None, None, None),
                (job_id, "urgent", "bool", None, None, None, 1 if rand() < 0.07 else 0, None),
            ]
            if rand() < 0.4:
                due = (t0 + int((1 + rand() * 29) * DAY_US)) // (60 * US) * (60 * US)
                properties.append((job_id, "due", "datetime", None, None, None, None, stamp(due)))
            now = created

            if kind == "succeeded":
                started = _execute(history, rand, created)
                now = _succeed(history, rand, started, started - created)
            elif kind == "succeeded_after_retry":
                failed = _fail(history, rand, _execute(history, rand, created), None)
                due_at = _retry(history, rand, failed, 1, DEFAULT_MAX_RETRIES)
                started = _execute(history, rand, due_at)
                now = _succeed(history, rand, started, started - due_at)
                properties.append((job_id, "hm.retries", "int", None, 1, None, None, None))
            elif kind == "failed_fatal":
                now = _fail(history, rand, _execute(history, rand, created), "fatal error: not retried")
            elif kind == "failed_retried":
                properties.append((job_id, "hm.retry", "text", retry_policy, None, None, None, None))
                failed = _fail(history, rand, _execute(history, rand, created), None)
                for number in range(1, RETRY.max_retries + 1):
                    due_at = _retry(history, rand, failed, number, RETRY.max_retries)
                    last = number == RETRY.max_retries
                    reason = f"gave up after {RETRY.max_retries} retries" if last else None
                    failed = _fail(history, rand, _execute(history, rand, due_at), reason)
                now = failed
                properties.append((job_id, "hm.retries", "int", None, RETRY.max_retries, None, None, None))
            elif kind == "deleted":
                now = created + int(rand() * 3 * DAY_US)
                history.append(("Deleted", now, "deleted", "{}"))
            elif kind == "deleted_failed":
                failed = _fail(history, rand, _execute(history, rand, created), "fatal error: not retried")
                now = failed + int(rand() * 3 * DAY_US)
                history.append(("Deleted", now, "deleted", "{}"))
            elif kind == "idle":
                now = created + int(rand() * 600 * US)
                history.append(("Idle", now, "cancelled", "{}"))

            name, elected, _, _ = history[-1]
            modified = created if kind == "enqueued" else now + 100 + int(rand() * 300)
            invocation = f'{{"v":1,"target":"_jobs:noop","async":true,"args":{{"number":{job_id}}}}}'
            sequence = len(history) - 1
            function = "_jobs:noop"
            row = (job_id, queue, priority, execution_id, name, sequence, stamp(elected), invocation, "[]", function)
            out.job.append((*row, None, None, None, stamp(created), stamp(modified)))
            out.job_state.extend(
                (job_id, sequence, state, stamp(at), reason, fields)
                for sequence, (state, at, reason, fields) in enumerate(history)
            )
            out.job_property.extend(properties)
            if kind == "enqueued":
                out.queue.append((job_id, queue, priority, stamp(created), execution_id, stamp(created)))
                tally.enqueued[queue] += 1
            tally.states[name] += 1
            tally.tenants[tenant] += 1
            tally.kinds.setdefault(kind, job_id)
        yield out


# ---------------------------------------------------------------------------- URLs


def url_with(url: str, *, database: str | None = None, **query: str) -> str:
    """``url`` with another database (its path) and/or some query parameters set."""
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    params.update(query)
    path = f"/{database}" if database is not None else parts.path
    return urlunsplit(parts._replace(path=path, query=urlencode(params)))


def backend_of(url: str) -> str:
    scheme = urlsplit(url).scheme
    if scheme in ("postgresql", "postgres"):
        return "postgres"
    if scheme in ("mysql", "mariadb"):
        return "mysql"
    if scheme == "sqlite":
        return "sqlite"
    raise SystemExit(f"--url: unknown scheme {scheme!r}")


# ---------------------------------------------------------------------------- stores


class Store:
    """One benchmark database: its HiveMind URL, a raw connection next to the library's, bulk
    writes, statistics, plans. Subclasses per backend."""

    backend = ""
    dialect_name: Any = ""
    quote = '"'

    def __init__(self, namespace: str | None) -> None:
        self.namespace = namespace
        self.book = QueryBook({}, PREFIX, namespace=namespace, quote=self.quote)

    # --- names and dialect
    def table(self, name: str) -> str:
        return self.book.table(name)

    def dialect(self) -> Dialect:
        return {"sqlite": SQLITE, "postgresql": POSTGRES, "mysql": MYSQL}[self.dialect_name]

    def bind_dt(self, value: datetime) -> Any:
        raise NotImplementedError

    def stamp(self, microseconds: int) -> Any:
        raise NotImplementedError

    def sql(self, text: str) -> str:
        """``:name`` placeholders as the driver wants them."""
        return to_pyformat(text)

    @property
    def hive_url(self) -> str:
        raise NotImplementedError

    # --- lifecycle (fresh stores only)
    async def create(self) -> None:
        raise NotImplementedError

    async def drop(self) -> None:
        raise NotImplementedError

    # --- the raw connection
    async def connect(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def engine(self) -> str:
        raise NotImplementedError

    async def fetchall(self, text: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        raise NotImplementedError

    async def execute(self, text: str, params: Mapping[str, Any] | None = None) -> None:
        raise NotImplementedError

    async def lock(self, queue: str, requester: str) -> list[Row]:
        """The raw search-and-lock: the first ``PAGE`` unlocked Enqueued jobs of ``queue`` by id."""
        raise NotImplementedError

    async def unlock(self, ids: Sequence[int]) -> None:
        marks = {f"r{index}": job_id for index, job_id in enumerate(ids)}
        await self.execute(
            f"UPDATE {self.table('job')} SET locked_by = NULL, locked_at = NULL, lock_heartbeat = NULL "
            f"WHERE id IN ({', '.join(':' + mark for mark in marks)})",
            marks,
        )

    # --- loading
    async def load(self, chunks: Iterator[Chunk], n: int) -> None:
        raise NotImplementedError

    async def after_load(self, last_id: int) -> None:
        """Whatever the store needs after rows with explicit ids (PostgreSQL: its identity)."""

    async def analyze(self) -> None:
        raise NotImplementedError

    async def explain(self, compiled: Compiled, *, writes: bool) -> list[str]:
        raise NotImplementedError


def insert_sql(store: Store, table: str, placeholder: str) -> str:
    columns = COLUMNS[table]
    return f"INSERT INTO {store.table(table)} ({', '.join(columns)}) VALUES ({', '.join([placeholder] * len(columns))})"


def progress(done: int, n: int, started: float) -> None:
    elapsed = time.perf_counter() - started
    print(f"  loaded {done:,} of {n:,} jobs in {elapsed:.0f} s", file=sys.stderr, flush=True)


class PgStore(Store):
    backend = "postgres"
    dialect_name = "postgresql"

    def __init__(self, base_url: str, namespace: str, *, fresh: bool) -> None:
        super().__init__(namespace)
        self.base_url = base_url
        self.fresh = fresh
        self.raw: Any = None

    @property
    def hive_url(self) -> str:
        if self.fresh:
            return url_with(self.base_url, schema=self.namespace or "public", auto_migrate="true")
        return self.base_url

    def conninfo(self) -> dict[str, Any]:
        parts = urlsplit(self.base_url)
        info: dict[str, Any] = {
            "host": parts.hostname or "127.0.0.1",
            "port": parts.port or 5432,
            "dbname": parts.path.lstrip("/"),
            "options": PG_OPTIONS,
        }
        if parts.username:
            info["user"] = unquote(parts.username)
        if parts.password:
            info["password"] = unquote(parts.password)
        return info

    async def _admin(self, statement: str) -> None:
        import psycopg

        async with await psycopg.AsyncConnection.connect(autocommit=True, **self.conninfo()) as connection:
            await connection.execute("SET lock_timeout = '60s'")
            await connection.execute(statement)

    async def create(self) -> None:
        await self._admin(f'CREATE SCHEMA "{self.namespace}"')

    async def drop(self) -> None:
        await self._admin(f'DROP SCHEMA IF EXISTS "{self.namespace}" CASCADE')

    def bind_dt(self, value: datetime) -> Any:
        return value

    def stamp(self, microseconds: int) -> Any:
        return EPOCH + timedelta(microseconds=microseconds)

    async def connect(self) -> None:
        import psycopg

        self.raw = await psycopg.AsyncConnection.connect(autocommit=True, **self.conninfo())

    async def close(self) -> None:
        if self.raw is not None:
            await self.raw.close()
            self.raw = None

    async def engine(self) -> str:
        return f"PostgreSQL {(await self.fetchall('SHOW server_version'))[0][0]}"

    async def fetchall(self, text: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        cursor = await self.raw.execute(self.sql(text), params)
        return list(await cursor.fetchall())

    async def execute(self, text: str, params: Mapping[str, Any] | None = None) -> None:
        await self.raw.execute(self.sql(text), params)

    async def lock(self, queue: str, requester: str) -> list[Row]:
        job = self.table("job")
        rows = await self.fetchall(
            f"UPDATE {job} j SET locked_by = :requester, locked_at = now(), lock_heartbeat = now() "
            f"WHERE j.id IN (SELECT id FROM {job} WHERE state_name = :state AND queue = :queue "
            f"AND locked_by IS NULL ORDER BY id LIMIT {PAGE} FOR UPDATE SKIP LOCKED) RETURNING {RAW_JOB}",
            {"requester": requester, "state": "Enqueued", "queue": queue},
        )
        return sorted(rows)

    async def load(self, chunks: Iterator[Chunk], n: int) -> None:
        import psycopg

        try:  # foreign-key triggers off for this session: the generated rows are consistent
            await self.raw.execute("SET session_replication_role = replica")
        except psycopg.Error as error:
            print(f"  (foreign keys checked while loading: {str(error).strip()})", file=sys.stderr, flush=True)
        started, done = time.perf_counter(), 0
        async with self.raw.cursor() as cursor:
            for chunk in chunks:
                async with self.raw.transaction():
                    for name, rows in chunk.tables():
                        if not rows:
                            continue
                        statement = f"COPY {self.table(name)} ({', '.join(COLUMNS[name])}) FROM STDIN (FORMAT BINARY)"
                        async with cursor.copy(statement) as copy:
                            copy.set_types(PG_TYPES[name])
                            for row in rows:
                                await copy.write_row(row)
                done += len(chunk.job)
                if done % 200_000 < CHUNK or done == n:
                    progress(done, n, started)
        with contextlib.suppress(psycopg.Error):
            await self.raw.execute("RESET session_replication_role")

    async def after_load(self, last_id: int) -> None:
        await self.fetchall(
            "SELECT setval(pg_get_serial_sequence(:table, 'id'), :last)", {"table": self.table("job"), "last": last_id}
        )

    async def analyze(self) -> None:
        for name in ("job", "job_state", "job_property", "queue"):
            await self.raw.execute(f"VACUUM (ANALYZE) {self.table(name)}")

    async def explain(self, compiled: Compiled, *, writes: bool) -> list[str]:
        async with self.raw.transaction(force_rollback=True):
            rows = await self.fetchall(f"EXPLAIN (ANALYZE, BUFFERS) {compiled.sql}", compiled.params)
        return [str(row[0]) for row in rows]


class MySQLStore(Store):
    backend = "mysql"
    dialect_name = "mysql"
    quote = "`"

    def __init__(self, base_url: str, namespace: str, *, fresh: bool) -> None:
        super().__init__(namespace)
        self.base_url = base_url
        self.fresh = fresh
        self.raw: Any = None

    @property
    def hive_url(self) -> str:
        if self.fresh:
            return url_with(self.base_url, database=self.namespace, auto_migrate="true")
        return self.base_url

    def connect_args(self) -> dict[str, Any]:
        parts = urlsplit(self.base_url)
        return {
            "host": parts.hostname or "127.0.0.1",
            "port": parts.port or 3306,
            "user": unquote(parts.username or "root"),
            "password": unquote(parts.password or ""),
            "charset": "utf8mb4",
        }

    async def _admin(self, statement: str) -> None:
        import aiomysql

        connection = await aiomysql.connect(**self.connect_args(), autocommit=True)
        try:
            async with connection.cursor() as cursor:
                await cursor.execute(statement)
        finally:
            connection.close()

    async def create(self) -> None:
        await self._admin(f"CREATE DATABASE `{self.namespace}`")

    async def drop(self) -> None:
        await self._admin(f"DROP DATABASE IF EXISTS `{self.namespace}`")

    def bind_dt(self, value: datetime) -> Any:
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value

    def stamp(self, microseconds: int) -> Any:
        return NAIVE_EPOCH + timedelta(microseconds=microseconds)

    async def connect(self) -> None:
        import aiomysql

        self.raw = await aiomysql.connect(
            **self.connect_args(),
            db=self.namespace,
            autocommit=True,
            init_command="SET time_zone = '+00:00'",
        )
        await self.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")  # as the library's sessions

    async def close(self) -> None:
        if self.raw is not None:
            self.raw.close()
            self.raw = None

    async def engine(self) -> str:
        version = str((await self.fetchall("SELECT VERSION()"))[0][0])
        return f"{'MariaDB' if 'mariadb' in version.lower() else 'MySQL'} {version}"

    async def fetchall(self, text: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        async with self.raw.cursor() as cursor:
            await cursor.execute(self.sql(text), params)
            return list(await cursor.fetchall())

    async def execute(self, text: str, params: Mapping[str, Any] | None = None) -> None:
        async with self.raw.cursor() as cursor:
            await cursor.execute(self.sql(text), params)

    async def lock(self, queue: str, requester: str) -> list[Row]:
        job = self.table("job")
        await self.raw.begin()
        try:
            rows = await self.fetchall(
                f"SELECT {RAW_JOB} FROM {job} j WHERE j.state_name = :state AND j.queue = :queue "
                f"AND j.locked_by IS NULL ORDER BY j.id LIMIT {PAGE} FOR UPDATE SKIP LOCKED",
                {"state": "Enqueued", "queue": queue},
            )
            if rows:
                marks = {f"r{index}": row[0] for index, row in enumerate(rows)}
                await self.execute(
                    f"UPDATE {job} SET locked_by = :requester, locked_at = NOW(6), lock_heartbeat = NOW(6) "
                    f"WHERE id IN ({', '.join(':' + mark for mark in marks)})",
                    {"requester": requester, **marks},
                )
            await self.raw.commit()
        except BaseException:
            await self.raw.rollback()
            raise
        return rows

    async def load(self, chunks: Iterator[Chunk], n: int) -> None:
        started, done = time.perf_counter(), 0
        await self.execute("SET SESSION foreign_key_checks = 0, unique_checks = 0")
        statements = {name: insert_sql(self, name, "%s") for name in COLUMNS}
        try:
            async with self.raw.cursor() as cursor:
                cursor.max_stmt_length = 4 * 1024 * 1024  # multi-row INSERTs of up to 4 MB
                for chunk in chunks:
                    await self.raw.begin()
                    for name, rows in chunk.tables():
                        if rows:
                            await cursor.executemany(statements[name], rows)
                    await self.raw.commit()
                    done += len(chunk.job)
                    if done % 200_000 < CHUNK or done == n:
                        progress(done, n, started)
        finally:
            await self.execute("SET SESSION foreign_key_checks = 1, unique_checks = 1")

    async def analyze(self) -> None:
        tables = ", ".join(self.table(name) for name in ("job", "job_state", "job_property", "queue"))
        await self.fetchall(f"ANALYZE TABLE {tables}")

    async def explain(self, compiled: Compiled, *, writes: bool) -> list[str]:
        await self.raw.begin()
        try:
            async with self.raw.cursor() as cursor:
                await cursor.execute(self.sql(f"ANALYZE {compiled.sql}"), compiled.params)
                names = [column[0] for column in cursor.description]
                rows = await cursor.fetchall()
        finally:
            await self.raw.rollback()
        lines = ["  ".join(names)]
        lines += ["  ".join("NULL" if value is None else str(value) for value in row) for row in rows]
        return lines


def remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


class SQLiteStore(Store):
    backend = "sqlite"
    dialect_name = "sqlite"

    def __init__(self, path: Path) -> None:
        super().__init__(None)
        self.path = path
        self.raw: sqlite3.Connection | None = None

    @property
    def hive_url(self) -> str:
        return f"sqlite:///{self.path}"

    async def create(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)

    async def drop(self) -> None:
        remove_database(self.path)

    def bind_dt(self, value: datetime) -> Any:
        return to_microseconds(value)

    def stamp(self, microseconds: int) -> Any:
        return microseconds

    def sql(self, text: str) -> str:
        return text

    @property
    def connection(self) -> sqlite3.Connection:
        assert self.raw is not None
        return self.raw

    async def connect(self) -> None:
        self.raw = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.raw.execute("PRAGMA busy_timeout = 30000")

    async def close(self) -> None:
        if self.raw is not None:
            self.raw.close()
            self.raw = None

    async def engine(self) -> str:
        return f"SQLite {sqlite3.sqlite_version}"

    async def fetchall(self, text: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        return list(self.connection.execute(text, params or {}).fetchall())

    async def execute(self, text: str, params: Mapping[str, Any] | None = None) -> None:
        self.connection.execute(text, params or {})

    async def lock(self, queue: str, requester: str) -> list[Row]:
        job = self.table("job")
        connection = self.connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            now = to_microseconds(datetime.now(UTC))
            rows = connection.execute(
                f"UPDATE {job} SET locked_by = :requester, locked_at = :now, lock_heartbeat = :now "
                f"WHERE id IN (SELECT id FROM {job} WHERE state_name = :state AND queue = :queue "
                f"AND locked_by IS NULL ORDER BY id LIMIT {PAGE}) RETURNING {RAW_JOB.replace('j.', '')}",
                {"requester": requester, "now": now, "state": "Enqueued", "queue": queue},
            ).fetchall()
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return sorted(rows)

    async def load(self, chunks: Iterator[Chunk], n: int) -> None:
        connection = self.connection
        started, done = time.perf_counter(), 0
        statements = {name: insert_sql(self, name, "?") for name in COLUMNS}
        connection.execute("PRAGMA cache_size = -1000000")  # 1 GB of page cache for this connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            for chunk in chunks:
                for name, rows in chunk.tables():
                    if rows:
                        connection.executemany(statements[name], rows)
                done += len(chunk.job)
                if done % 200_000 < CHUNK or done == n:
                    progress(done, n, started)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    async def analyze(self) -> None:
        self.connection.execute("ANALYZE")
        self.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    async def explain(self, compiled: Compiled, *, writes: bool) -> list[str]:
        rows = self.connection.execute(f"EXPLAIN QUERY PLAN {compiled.sql}", compiled.params).fetchall()
        depth: dict[int, int] = {0: 0}
        lines = []
        for node, parent, _, detail in rows:
            depth[node] = depth.get(parent, 0) + 1
            lines.append("  " * depth[node] + str(detail))
        return lines


def make_store(args: argparse.Namespace, runs: Runs) -> Store:
    name = f"hmquery_{os.getpid()}"
    if args.url is not None:
        if args.backend == "postgres":
            schema = dict(parse_qsl(urlsplit(args.url).query)).get("schema", "public")
            return PgStore(args.url, schema, fresh=False)
        if args.backend == "mysql":
            return MySQLStore(args.url, urlsplit(args.url).path.lstrip("/"), fresh=False)
        return SQLiteStore(Path(unquote(urlsplit(args.url).path)))
    if args.backend == "postgres":
        return PgStore(args.pg_url, name, fresh=True)
    if args.backend == "mysql":
        return MySQLStore(args.mysql_url, name, fresh=True)
    return SQLiteStore(runs.directory / f"{name}.db")


@contextlib.asynccontextmanager
async def fresh_store(store: Store, *, keep: bool) -> AsyncIterator[None]:
    """Create the store's schema/database/file; drop it on exit unless ``keep``."""
    await store.create()
    try:
        yield
    finally:
        await store.close()
        if keep:
            print(f"kept the loaded store: {store.hive_url}", file=sys.stderr, flush=True)
        else:
            for attempt in range(CLEANUP_TRIES):  # the server may be restarting
                try:
                    await store.drop()
                    break
                except Exception as error:
                    if attempt == CLEANUP_TRIES - 1:
                        print(f"could not drop {store.hive_url} ({error}); drop it by hand", file=sys.stderr)
                    else:
                        await asyncio.sleep(1.0)


# ---------------------------------------------------------------------------- load and verify


async def load(store: Store, n: int) -> tuple[Tally, dict[str, float]]:
    """Migrate through the library, bulk-load ``n`` jobs, check them, analyze; the phases' seconds."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    async with hm.HiveMind(store.hive_url):
        pass  # the library creates its tables
    seconds["migrate_s"] = time.perf_counter() - started
    await store.connect()
    tally = Tally()
    end_us = to_microseconds(datetime.now(UTC) - timedelta(minutes=10))
    print(f"loading {n:,} jobs into {store.hive_url}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    await store.load(generate(n, end_us, store.stamp, tally), n)
    await store.after_load(n)
    seconds["insert_s"] = time.perf_counter() - started
    started = time.perf_counter()
    replayed = await replay_kinds(store, tally)
    await delete_jobs(store, replayed)
    seconds["replay_check_s"] = time.perf_counter() - started
    started = time.perf_counter()
    await store.analyze()
    seconds["analyze_s"] = time.perf_counter() - started
    return tally, seconds


async def raw_job(store: Store, job_id: int) -> dict[str, list[Row]]:
    """The rows of one job, id columns left out, times as their types only (they differ)."""
    job = await store.fetchall(
        f"SELECT {', '.join(JOB_COLUMNS[1:])} FROM {store.table('job')} WHERE id = :id", {"id": job_id}
    )
    states = await store.fetchall(
        f"SELECT {', '.join(STATE_COLUMNS[1:])} FROM {store.table('job_state')} WHERE job_id = :id ORDER BY sequence",
        {"id": job_id},
    )
    properties = await store.fetchall(
        f"SELECT {', '.join(PROPERTY_COLUMNS[1:])} FROM {store.table('job_property')} WHERE job_id = :id ORDER BY name",
        {"id": job_id},
    )
    queue = await store.fetchall(
        f"SELECT {', '.join(QUEUE_COLUMNS[1:])} FROM {store.table('queue')} WHERE job_id = :id", {"id": job_id}
    )
    (execution_id,) = [row[2] for row in job]

    def shape(row: Row, times: set[int]) -> Row:
        return tuple(type(value).__name__ if index in times else value for index, value in enumerate(row))

    return {
        # queue, priority, (execution_id), state name/sequence, (elected), invocation, middleware, function,
        # locks, (times)
        "job": [shape(row, {2, 5, 12, 13}) for row in job],
        "job_state": [shape(row, {2}) for row in states],
        "job_property": [tuple(row) for row in properties],
        "queue": [(*shape(row, {2, 3, 4}), row[3] == execution_id) for row in queue],
    }


async def replay_kinds(store: Store, tally: Tally) -> list[int]:
    """Create one job of every generated kind again through the API and compare the rows the library
    wrote with the loaded ones; return the ids of the replayed jobs."""
    replayed: list[int] = []
    async with hm.HiveMind(store.hive_url) as hive:
        jobs = hive.jobs
        for kind, job_id in sorted(tally.kinds.items()):
            loaded = await jobs.get(job_id)
            client = jobs.options(queue=loaded.queue, priority=loaded.priority, properties=dict(loaded.properties))
            copy_id = await client.create(_jobs.noop, job_id)
            replayed.append(copy_id)
            for state in loaded.states[2:]:
                if isinstance(state, hm.UnknownState):
                    raise SystemExit(f"job {job_id} ({kind}): state {state!r} did not decode")
                if not await jobs.change_state(copy_id, dataclasses.replace(state)):
                    raise SystemExit(f"job {job_id} ({kind}): the API did not elect {state!r}")
            expected, written = await raw_job(store, job_id), await raw_job(store, copy_id)
            if expected != written:
                for table in expected:
                    if expected[table] != written[table]:
                        print(f"{table} of the loaded job {job_id} ({kind}):", file=sys.stderr)
                        print(f"  loaded : {expected[table]}\n  via API: {written[table]}", file=sys.stderr)
                raise SystemExit(f"the loaded rows of a {kind} job differ from what the library writes")
        print(f"  rows of {len(replayed)} kinds of job equal the library's own", file=sys.stderr, flush=True)
    return replayed


async def delete_jobs(store: Store, ids: Sequence[int]) -> None:
    if not ids:
        return
    marks = {f"r{index}": job_id for index, job_id in enumerate(ids)}
    listed = ", ".join(":" + mark for mark in marks)
    for table in ("job_state", "job_property", "job_data", "job_log", "job_action", "queue"):
        await store.execute(f"DELETE FROM {store.table(table)} WHERE job_id IN ({listed})", marks)
    await store.execute(
        f"DELETE FROM {store.table('job_continuation')} WHERE parent_id IN ({listed}) OR child_id IN ({listed})", marks
    )
    await store.execute(f"DELETE FROM {store.table('job')} WHERE id IN ({listed})", marks)


async def sanity(store: Store, hive: hm.HiveMind, tally: Tally | None, n: int) -> None:
    """API counts equal what was generated (or, for --url, raw counts); jobs decode."""
    jobs = hive.jobs
    states = await jobs.count_by_state()
    tenant = await jobs.count(hm.prop("tenant") == QUERY_TENANT)
    enqueued = await jobs.count(hm.where(hm.state == hm.Enqueued, hm.job.queue == QUERY_QUEUE))
    if tally is not None:
        expected = (dict(tally.states), tally.tenants[QUERY_TENANT], tally.enqueued[QUERY_QUEUE])
    else:
        rows = await store.fetchall(f"SELECT state_name, COUNT(*) FROM {store.table('job')} GROUP BY state_name")
        (raw_tenant,) = (
            await store.fetchall(
                f"SELECT COUNT(*) FROM {store.table('job_property')} WHERE name = :name AND text_value = :value",
                {"name": "tenant", "value": QUERY_TENANT},
            )
        )[0]
        (raw_enqueued,) = (
            await store.fetchall(
                f"SELECT COUNT(*) FROM {store.table('job')} WHERE state_name = :state AND queue = :queue",
                {"state": "Enqueued", "queue": QUERY_QUEUE},
            )
        )[0]
        expected = ({str(name): int(count) for name, count in rows}, int(raw_tenant), int(raw_enqueued))
    if (states, tenant, enqueued) != expected:
        raise SystemExit(f"sanity counts through the API {(states, tenant, enqueued)} differ from {expected}")
    (low, high) = (await store.fetchall(f"SELECT MIN(id), MAX(id) FROM {store.table('job')}"))[0]
    for job_id in random.Random(SEED).sample(range(int(low), int(high) + 1), min(n, 200)):
        loaded = await jobs.try_get(job_id)
        if loaded is None:
            continue
        if any(isinstance(state, hm.UnknownState) for state in loaded.states) or not loaded.properties:
            raise SystemExit(f"job {job_id} did not decode: {loaded.states} {loaded.properties}")
    print(f"  counts through the API agree: {states}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- measuring


@dataclass
class Measure:
    """One figure: the API call, its raw reference, their untimed clean-ups, and the compiled SQL."""

    name: str
    api: Callable[[], Awaitable[Any]]
    api_ids: Callable[[Any], list[int]]
    raw: Callable[[], Awaitable[Any]] | None = None
    raw_ids: Callable[[Any], list[int]] = lambda result: [int(row[0]) for row in result]
    api_after: Callable[[Any], Awaitable[None]] | None = None
    raw_after: Callable[[Any], Awaitable[None]] | None = None
    compiled: Compiled | None = None
    writes: bool = False


async def timed(
    call: Callable[[], Awaitable[Any]], after: Callable[[Any], Awaitable[None]] | None
) -> tuple[float, Any]:
    started = time.perf_counter()
    result = await call()
    elapsed = (time.perf_counter() - started) * 1000
    if after is not None:
        await after(result)
    return elapsed, result


async def measure(item: Measure, runs: Runs, repetitions: int) -> None:
    """Warm up, check the API and raw results agree, then time both, interleaved."""
    for _ in range(WARMUP):
        _, api_result = await timed(item.api, item.api_after)
        if item.raw is not None:
            _, raw_result = await timed(item.raw, item.raw_after)
    if item.raw is not None and item.api_ids(api_result) != item.raw_ids(raw_result):
        raise SystemExit(
            f"{item.name}: the API returned {item.api_ids(api_result)[:5]}..., "
            f"the raw SQL {item.raw_ids(raw_result)[:5]}..."
        )
    for _ in range(repetitions):
        elapsed, _ = await timed(item.api, item.api_after)
        runs.record(item.name, elapsed)
        if item.raw is not None:
            elapsed, _ = await timed(item.raw, item.raw_after)
            runs.record(f"raw_{item.name}", elapsed)
    print(f"  measured {item.name}", file=sys.stderr, flush=True)


def ids_of(page: Any) -> list[int]:
    return [job.id for job in page]


async def percentile_amount(store: Store, fraction: float, count: int) -> int:
    rows = await store.fetchall(
        f"SELECT int_value FROM {store.table('job_property')} WHERE name = :name AND int_value IS NOT NULL "
        "ORDER BY int_value LIMIT 1 OFFSET :skip",
        {"name": "amount", "skip": int(count * fraction)},
    )
    return int(rows[0][0])


async def measurements(
    store: Store, hive: hm.HiveMind, n: int, pages: int
) -> tuple[list[Measure], dict[str, Any], dict[str, float]]:
    """The measured calls, the query parameters they use, and the keyset walk's figures."""
    jobs = hive.jobs
    dialect = store.dialect()
    job, prop = store.table("job"), store.table("job_property")
    (amounts,) = (
        await store.fetchall(
            f"SELECT COUNT(*) FROM {prop} WHERE name = :name AND int_value IS NOT NULL", {"name": "amount"}
        )
    )[0]
    low, high = await percentile_amount(store, 0.50, int(amounts)), await percentile_amount(store, 0.51, int(amounts))
    by_state = hm.state == QUERY_STATE
    tenant = hm.prop("tenant") == QUERY_TENANT
    amount = hm.where(hm.prop("amount") >= low, hm.prop("amount") < high)
    ready = hm.where(hm.state == hm.Enqueued, hm.job.queue == QUERY_QUEUE)
    newest = parse_order("-created")
    requester = f"bench-raw-{os.getpid()}"

    def search_sql(condition: hm.Condition | None, **options: Any) -> Compiled:
        order = options.pop("order", parse_order("id"))
        return compile_search(dialect, store.table, condition, order, limit=PAGE, **options)

    def raw_property(where: str, params: dict[str, Any]) -> Callable[[], Awaitable[list[Row]]]:
        text = (
            f"SELECT {RAW_JOB} FROM {job} j JOIN {prop} p ON p.job_id = j.id "
            f"WHERE p.name = :name AND {where} ORDER BY p.job_id LIMIT {PAGE}"
        )
        return lambda: store.fetchall(text, params)

    started = time.perf_counter()
    cursor: str | None = None
    for _ in range(pages - 1):
        page = await jobs.search(order_by="-created", limit=PAGE, after=cursor)
        cursor = page.next_cursor
        if cursor is None:
            raise SystemExit(f"the keyset walk ended before page {pages}")
    walk = time.perf_counter() - started
    after = decode_cursor(newest, cursor) if cursor is not None else None
    if after is None:
        keyset_where, keyset_params = "", {}
    elif store.backend == "mysql":
        keyset_where = "WHERE j.created_at < :at OR (j.created_at = :at AND j.id < :id) "
        keyset_params = {"at": store.bind_dt(after[0]), "id": after[1]}
    else:
        keyset_where = "WHERE (j.created_at, j.id) < (:at, :id) "
        keyset_params = {"at": store.bind_dt(after[0]), "id": after[1]}
    keyset_sql = f"SELECT {RAW_JOB} FROM {job} j {keyset_where}ORDER BY j.created_at DESC, j.id DESC LIMIT {PAGE}"
    first_sql = f"SELECT {RAW_JOB} FROM {job} j ORDER BY j.created_at DESC, j.id DESC LIMIT {PAGE}"

    async def release(locked: Any) -> None:
        await locked.release()

    async def unlock(rows: list[Row]) -> None:
        await store.unlock([int(row[0]) for row in rows])

    async def count_rows(text: str, params: dict[str, Any]) -> list[Row]:
        return await store.fetchall(text, params)

    items = [
        Measure(
            "count_by_state_ms",
            lambda: jobs.count(by_state),
            lambda count: [int(count)],
            lambda: count_rows(f"SELECT COUNT(*) FROM {job} WHERE state_name = :state", {"state": "Failed"}),
            compiled=compile_count(dialect, store.table, by_state),
        ),
        Measure(
            "state_counts_all_ms",
            jobs.count_by_state,
            lambda counts: sorted(counts.values()),
            lambda: count_rows(f"SELECT state_name, COUNT(*) FROM {job} GROUP BY state_name", {}),
            raw_ids=lambda rows: sorted(int(row[1]) for row in rows),
        ),
        Measure(
            "property_eq_ms",
            lambda: jobs.search(tenant, limit=PAGE),
            ids_of,
            raw_property("p.text_value = :value", {"name": "tenant", "value": QUERY_TENANT}),
            compiled=search_sql(tenant),
        ),
        Measure(
            "property_range_ms",
            lambda: jobs.search(amount, limit=PAGE),
            ids_of,
            raw_property("p.int_value >= :low AND p.int_value < :high", {"name": "amount", "low": low, "high": high}),
            compiled=search_sql(amount),
        ),
        Measure(
            "keyset_page_ms",
            lambda: jobs.search(order_by="-created", limit=PAGE, after=cursor),
            ids_of,
            lambda: count_rows(keyset_sql, keyset_params),
            compiled=search_sql(None, order=newest, after=after),
        ),
        Measure(
            "keyset_first_page_ms",
            lambda: jobs.search(order_by="-created", limit=PAGE),
            ids_of,
            lambda: count_rows(first_sql, {}),
            compiled=search_sql(None, order=newest),
        ),
        Measure(
            "search_and_lock_ms",
            lambda: jobs.search_and_lock(ready, limit=PAGE),
            ids_of,
            lambda: store.lock(QUERY_QUEUE, requester),
            api_after=release,
            raw_after=unlock,
            compiled=search_sql(ready, lock=True),
            writes=True,
        ),
    ]
    parameters = {
        "state": QUERY_STATE.state_name,
        "tenant": QUERY_TENANT,
        "amount_range": [low, high],
        "queue": QUERY_QUEUE,
        "keyset_page": pages,
        "order_by": "-created",
    }
    return items, parameters, {"keyset_walk_s": walk, "keyset_walk_page_ms": walk * 1000 / max(1, pages - 1)}


async def matches(hive: hm.HiveMind, parameters: dict[str, Any]) -> dict[str, int]:
    """How many jobs each measured condition matches (through the API)."""
    jobs = hive.jobs
    low, high = parameters["amount_range"]
    return {
        "state": await jobs.count(hm.state == QUERY_STATE),
        "tenant": await jobs.count(hm.prop("tenant") == QUERY_TENANT),
        "amount_range": await jobs.count(hm.where(hm.prop("amount") >= low, hm.prop("amount") < high)),
        "enqueued_in_queue": await jobs.count(hm.where(hm.state == hm.Enqueued, hm.job.queue == QUERY_QUEUE)),
    }


async def explain_all(store: Store, items: Sequence[Measure]) -> None:
    for item in items:
        if item.compiled is None:
            continue
        print(f"\n--- {item.name}: the compiler's SQL\n{item.compiled.sql}\n    params {item.compiled.params}")
        for line in await store.explain(item.compiled, writes=item.writes):
            print(f"    {line}")
    print()


# ---------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=BACKENDS, help="postgres, mysql (MySQL/MariaDB) or sqlite")
    parser.add_argument("--jobs", type=int, default=1_000_000, help="jobs to load (default 1,000,000)")
    parser.add_argument("--runs", type=int, default=15, help="timed calls per figure (default 15)")
    parser.add_argument("--keep", action="store_true", help="do not drop the loaded store; print its URL")
    parser.add_argument("--url", help="measure an already loaded store (a HiveMind URL); nothing is loaded or dropped")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL database for the fresh schema")
    parser.add_argument("--mysql-url", default=DEFAULT_MYSQL_URL, help="MySQL/MariaDB server for the fresh database")
    parser.add_argument("--explain", action="store_true", help="print the compiled SQL and plan of every figure")
    args = parser.parse_args()
    if args.url is not None:
        backend = backend_of(args.url)
        if args.backend is not None and args.backend != backend:
            parser.error(f"--url is a {backend} URL, not {args.backend}")
        args.backend = backend
    if args.backend is None:
        parser.error("--backend (or --url) is required")
    if args.jobs < 1 or args.runs < 1:
        parser.error("--jobs and --runs must be positive")
    return args


async def run(args: argparse.Namespace, runs: Runs) -> dict[str, Any]:
    store = make_store(args, runs)
    summary: dict[str, Any] = {"backend": args.backend}
    fresh = args.url is None
    scope = fresh_store(store, keep=args.keep) if fresh else contextlib.nullcontext()
    async with scope:
        tally: Tally | None = None
        seconds: dict[str, float] = {}
        started = time.perf_counter()
        if fresh:
            tally, seconds = await load(store, args.jobs)
        else:
            await store.connect()
        load_s = time.perf_counter() - started
        summary["engine"] = await store.engine()
        try:
            async with hm.HiveMind(store.hive_url) as hive:
                n = await hive.jobs.count()
                await sanity(store, hive, tally, n)
                pages = max(1, min(KEYSET_PAGE, n // PAGE - 1))
                items, parameters, walk = await measurements(store, hive, n, pages)
                for item in items:
                    await measure(item, runs, args.runs)
                counts = await matches(hive, parameters)
                if args.explain:
                    await explain_all(store, items)
        finally:
            if not fresh:
                await store.close()
    summary.update(jobs=n, runs=args.runs)
    if fresh:
        summary["load_s"] = round(load_s, 1)
        summary.update({name: round(value, 1) for name, value in seconds.items()})
    summary["walk"] = walk
    summary["parameters"] = parameters
    summary["matches"] = counts
    if args.keep and fresh:
        summary["url"] = store.hive_url
    return summary


def report(args: argparse.Namespace, runs: Runs, summary: dict[str, Any]) -> None:
    medians = runs.medians()
    target = TARGET_MS[args.backend]
    walk = summary.pop("walk")
    print(
        f"{summary['engine']}, Python {sys.version.split()[0]}, {os.cpu_count()} cores; {summary['jobs']:,} jobs, "
        f"medians of {args.runs} timed calls after {WARMUP} warm-up calls"
    )
    if "load_s" in summary:
        phases = ", ".join(f"{name[:-2]} {summary[name]:.1f} s" for name in ("migrate_s", "insert_s"))
        phases += ", " + ", ".join(f"{name[:-2]} {summary[name]:.1f} s" for name in ("replay_check_s", "analyze_s"))
        print(f"load: {summary['load_s']:.1f} s ({phases})")
    parameters, counts = summary["parameters"], summary["matches"]
    print(
        f"queries: state {parameters['state']} ({counts['state']:,} jobs), tenant {parameters['tenant']!r} "
        f"({counts['tenant']:,}), amount in [{parameters['amount_range'][0]:,}, {parameters['amount_range'][1]:,}) "
        f"({counts['amount_range']:,}), Enqueued in {parameters['queue']!r} ({counts['enqueued_in_queue']:,}), "
        f"keyset page {parameters['keyset_page']:,} of order_by {parameters['order_by']!r}"
    )
    header = (
        f"  {'figure':<22} {'median':>9} {'min':>8} {'max':>8}  {'target':>7}  {'met':<4} {'raw':>8} {'api/raw':>8}"
    )
    print(header)
    missed = []
    figures: dict[str, Any] = {}
    for name in FIGURES + EXTRAS:
        values = runs.figures[name]
        median = medians[name]
        raw = medians.get(f"raw_{name}")
        ratio = median / raw if raw else None
        has_target = name in FIGURES
        met = median <= target if has_target else None
        if met is False:
            missed.append(name)
        print(
            f"  {name:<22} {median:>9.2f} {min(values):>8.2f} {max(values):>8.2f}  "
            f"{(f'{target:.0f}' if has_target else '-'):>7}  {('yes' if met else 'NO' if has_target else '-'):<4} "
            f"{(f'{raw:.2f}' if raw is not None else '-'):>8} {(f'{ratio:.2f}' if ratio is not None else '-'):>8}"
        )
        figures[name] = round(median, 2)
        if raw is not None:
            figures[f"raw_{name}"] = round(raw, 2)
            figures[f"{name}_vs_raw"] = round(median / raw, 2)
    print(
        f"  keyset walk to page {summary['parameters']['keyset_page']:,}: {walk['keyset_walk_s']:.1f} s "
        f"({walk['keyset_walk_page_ms']:.1f} ms a page)"
    )
    print(f"targets (<= {target:.0f} ms): {'all met' if not missed else 'missed by ' + ', '.join(missed)}")
    result = {name: figures[name] for name in FIGURES}
    result.update(
        backend=summary.pop("backend"),
        jobs=summary.pop("jobs"),
        load_s=summary.pop("load_s", None),
        target_ms=target,
        targets_met=not missed,
        missed=missed,
    )
    result.update({name: value for name, value in figures.items() if name not in FIGURES})
    result["keyset_walk_s"] = round(walk["keyset_walk_s"], 1)
    result.update(summary)
    print(json.dumps(result))


def main() -> None:
    args = parse_args()
    runs = Runs()
    try:
        summary = asyncio.run(run(args, runs))
    finally:
        if not (args.keep and args.backend == "sqlite" and args.url is None):
            runs.remove()
    report(args, runs, summary)


if __name__ == "__main__":
    main()
