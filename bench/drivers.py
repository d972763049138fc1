#!/usr/bin/env python3
"""Database drivers and their settings on HiveMind's own statements, without HiveMind on top.

--backend postgres: psycopg 3 (async) with several settings, and asyncpg; --backend mysql: aiomysql
and asyncmy. Each runs on tables HiveMind created (a fresh schema / database, dropped afterwards)
the statements of the project's ``storage/<backend>/sql/*.sql``, one connection, one transaction
after the other:

- ``insert``: one job per transaction, --n transactions (what ``jobs.create`` writes). PostgreSQL:
  the one statement ``job_insert`` (the job, its Created and Enqueued history rows, its queue entry
  and the NOTIFY) in autocommit, with the parameters HiveMind's backend builds for a create of
  ``_jobs.noop(i)``, as ``hive.jobs.create`` sends it; MySQL: ``job_insert`` (RETURNING id on
  PostgreSQL), ``job_state_insert``, ``queue_upsert`` and the COMMIT (the table-by-table path).
- ``claim``: (``queue_claim_prepare``), ``queue_claim_select`` of --batch entries, ``queue_take``,
  ``queue_lock_claimed``; until the queue is empty.
- ``complete``: ``job_fence_check_many``, then the batch's job updates and state rows
  (``job_update_set`` + ``job_state_insert_set`` over arrays on PostgreSQL, ``executemany`` of
  ``job_update`` + ``job_state_insert`` on MySQL); one transaction per claimed batch.

On PostgreSQL the same round also measures PgQueuer's ``enqueue_one`` (one ``Queries.enqueue`` call per
job on asyncpg, through ``../shared/bench/run_peer.py``; ``--skip-peer`` leaves it out): ``insert``'s
``per_s`` (1 / wall) of each variant next to it is what the driver allows a ``create`` one by one
against that peer, before anything HiveMind does around the statement.

Figures per transaction: ``client_us`` CPU of this process, ``server_us`` CPU of the server process
serving the connection (PostgreSQL only: from /proc/<pid>/stat, so the server must run on this
machine), ``wall_us``. Medians of --reps rounds, the variants interleaved in each. Variants:

- ``psycopg``: as HiveMind runs it (prepare_threshold 5, the default; text parameters except the
  array statements, sent ``%b`` binary; claim and fence reads pipelined as in the backend).
- ``psycopg_noprepare`` / ``psycopg_prepare0``: prepare_threshold None (never) / 0 (at once).
- ``psycopg_pipeline``: every transaction's statements in one pipeline (one round trip).
- ``asyncpg``: asyncpg (statements prepared and cached, binary protocol).
- ``aiomysql`` / ``asyncmy``: each with autocommit off, READ COMMITTED, as HiveMind's pool.

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hivemind_jobs as hm
import throughput
from _runs import Runs
from _stores import Stores, mysql_admin, mysql_connect_args, pg_admin, pg_conninfo, server_prepare, url_with
from hivemind_jobs.core.codec import Codec
from hivemind_jobs.core.invocation import build_invocation
from hivemind_jobs.core.states import Enqueued, final_state_names
from hivemind_jobs.lifecycle.records import NewJobs
from hivemind_jobs.storage.postgres.backend import _binary, _one_job
from hivemind_jobs.storage.sql import QueryBook, read_named_queries, to_pyformat

INVOCATION = '{"v":1,"target":"_jobs:noop","async":true,"args":{"number":12345}}'
EXECUTING = '{"colony":"bench","swarm":"main","drone":"main.drone-1"}'
_PARAM = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


def to_dollar(sql: str) -> tuple[str, list[str]]:
    """``:name`` placeholders as asyncpg's ``$n`` and the parameter names in order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    return _PARAM.sub(number, sql), names


class Flows:
    """The three transactions of one driver variant; ``run(sql_name, params)`` and friends are per driver."""

    def __init__(self, q: dict[str, Any], batch: int) -> None:
        self.q = q
        self.batch = batch
        self.now = datetime.now(UTC)

    def insert_params(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        execution = uuid.uuid4().hex
        job = {
            "queue": "global",
            "priority": 0,
            "execution_id": execution,
            "state_name": "Enqueued",
            "state_sequence": 1,
            "state_elected_at": self.now,
            "invocation": INVOCATION,
            "middleware": "[]",
            "function_name": "_jobs:noop",
            "lock_owner": None,
            "locked_at": None,
            "now": self.now,
        }
        state = {"sequence": 1, "name": "Enqueued", "elected_at": self.now, "reason": None, "fields": "{}"}
        queue = {
            "queue": "global",
            "priority": 0,
            "execute_after": self.now,
            "execution_id": execution,
            "now": self.now,
        }
        return job, state, queue

    @staticmethod
    def update_rows(rows: list[tuple[Any, ...]], now: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        updates = [
            {
                "job_id": row[0],
                "queue": "global",
                "priority": 0,
                "execution_id": uuid.uuid4().hex,
                "state_name": "Executing",
                "state_sequence": 2,
                "state_elected_at": now,
                "release_lock": False,
                "now": now,
            }
            for row in rows
        ]
        states = [
            {
                "job_id": row[0],
                "sequence": 2,
                "name": "Executing",
                "elected_at": now,
                "reason": None,
                "fields": EXECUTING,
            }
            for row in rows
        ]
        return updates, states


# ---------------------------------------------------------------- PostgreSQL


def pg_create_params() -> Callable[[], dict[str, Any]]:
    """A new call each time: the parameters of ``job_insert`` for a create of ``_jobs.noop(i)``, built
    by HiveMind's own code (the invocation, the rows of a job nobody observes, the backend's values)."""
    import _jobs

    codec = Codec()
    new = NewJobs(
        queue="global", priority=hm.Priority.NORMAL, state=Enqueued(), properties={}, middleware=[], codec=codec
    )
    numbers = itertools.count()

    def params() -> dict[str, Any]:
        invocation = build_invocation(_jobs.noop, (next(numbers),), {}, codec, ())
        (row,) = new.inserts((invocation,), datetime.now(UTC))
        return _one_job(row, "hivemind_bench")

    return params


def pg_book(schema: str, prefix: str) -> tuple[dict[str, str], dict[str, tuple[str, list[str]]]]:
    raw = read_named_queries("hivemind_jobs.storage.postgres")
    book = QueryBook(raw, prefix, namespace=schema)
    # asyncpg sends parameters untyped: a parameter only inside CASE ... ELSE would be text
    typed = {name: book[name].replace("ELSE :now END", "ELSE CAST(:now AS TIMESTAMPTZ) END") for name in book}
    return {name: to_pyformat(book[name]) for name in book}, {name: to_dollar(typed[name]) for name in book}


def binary(sql: str) -> str:
    return re.sub(r"%\(([a-z_0-9]+)\)s", r"%(\1)b", sql)


def columns(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {key: rows[0][key] if key == "now" else [row[key] for row in rows] for key in rows[0]}


def update_columns(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``job_update_set``'s parameters: the rows' columns, and what it notifies the finished on (as
    the backend's ``write_rows``)."""
    return {**columns(rows), "finished_channel": "hivemind_bench_finished", "final_states": final_state_names()}


async def psycopg_variant(
    conninfo: dict[str, Any], q: dict[str, str], batch: int, n: int, *, prepare: Any, pipeline_all: bool
) -> dict[str, dict[str, float]]:
    import psycopg

    connection = await psycopg.AsyncConnection.connect(**conninfo)
    if prepare != "default":
        connection.prepare_threshold = prepare
    pid = connection.info.backend_pid
    flows = Flows(q, batch)
    owner = "bench"

    create_params = pg_create_params()
    create = _binary(q["job_insert"])

    async def insert() -> None:  # as the backend runs a create: the one statement in autocommit
        params = create_params()
        await connection.set_autocommit(True)
        try:
            cursor = connection.cursor()
            await cursor.execute(create, params)
            await cursor.fetchall()
        finally:
            await connection.set_autocommit(False)

    async def claim() -> list[tuple[Any, ...]]:
        async with connection.transaction():
            async with connection.pipeline():
                await connection.execute(q["queue_claim_prepare"])
                cursor = await connection.execute(q["queue_claim_select"], {"queues": ["global"], "limit": batch})
            rows = await cursor.fetchall()
            if rows:
                ids = [row[0] for row in rows]
                if pipeline_all:
                    async with connection.pipeline():
                        await connection.execute(q["queue_take"], {"job_ids": ids})
                        await connection.execute(
                            q["queue_lock_claimed"], {"owner": owner, "now": flows.now, "job_ids": ids}
                        )
                else:
                    await connection.execute(q["queue_take"], {"job_ids": ids})
                    await connection.execute(
                        q["queue_lock_claimed"], {"owner": owner, "now": flows.now, "job_ids": ids}
                    )
        return rows

    async def complete(rows: list[tuple[Any, ...]]) -> None:
        updates, states = Flows.update_rows(rows, flows.now)
        async with connection.transaction():
            cursor = await connection.execute(q["job_fence_check_many"], {"job_ids": [row[0] for row in rows]})
            await cursor.fetchall()
            if pipeline_all:
                async with connection.pipeline():
                    await connection.execute(binary(q["job_update_set"]), update_columns(updates))
                    await connection.execute(binary(q["job_state_insert_set"]), columns(states))
            else:
                await connection.execute(binary(q["job_update_set"]), update_columns(updates))
                await connection.execute(binary(q["job_state_insert_set"]), columns(states))

    try:
        return await drive(insert, claim, complete, n, lambda: throughput.ticks(pid))
    finally:
        await connection.close()


async def asyncpg_variant(
    conninfo: dict[str, Any], d: dict[str, tuple[str, list[str]]], batch: int, n: int
) -> dict[str, dict[str, float]]:
    import asyncpg

    connection = await asyncpg.connect(
        host=conninfo["host"],
        port=conninfo["port"],
        user=conninfo.get("user"),
        password=conninfo.get("password"),
        database=conninfo["dbname"],
        server_settings={"TimeZone": "UTC", "jit": "off"},
    )
    pid = connection.get_server_pid()
    flows = Flows({}, batch)

    def args(name: str, params: dict[str, Any]) -> list[Any]:
        return [params[key] for key in d[name][1]]

    create_params = pg_create_params()

    async def insert() -> None:  # the one statement in autocommit (outside a transaction)
        await connection.fetch(d["job_insert"][0], *args("job_insert", create_params()))

    async def claim() -> list[tuple[Any, ...]]:
        async with connection.transaction():
            await connection.execute(d["queue_claim_prepare"][0])
            records = await connection.fetch(
                d["queue_claim_select"][0], *args("queue_claim_select", {"queues": ["global"], "limit": batch})
            )
            rows = [tuple(record) for record in records]
            if rows:
                ids = [row[0] for row in rows]
                await connection.execute(d["queue_take"][0], ids)
                await connection.execute(
                    d["queue_lock_claimed"][0],
                    *args("queue_lock_claimed", {"owner": "bench", "now": flows.now, "job_ids": ids}),
                )
        return rows

    async def complete(rows: list[tuple[Any, ...]]) -> None:
        updates, states = Flows.update_rows(rows, flows.now)
        async with connection.transaction():
            await connection.fetch(d["job_fence_check_many"][0], [row[0] for row in rows])
            await connection.execute(d["job_update_set"][0], *args("job_update_set", update_columns(updates)))
            await connection.execute(d["job_state_insert_set"][0], *args("job_state_insert_set", columns(states)))

    try:
        return await drive(insert, claim, complete, n, lambda: throughput.ticks(pid))
    finally:
        await connection.close()


# ---------------------------------------------------------------- MySQL / MariaDB


def expand(sql: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``IN %(ids)s`` with a tuple as ``IN (%(ids_0)s, ...)``: asyncmy binds no sequences (done for both drivers)."""
    for key, value in list(params.items()):
        if isinstance(value, tuple):
            names = [f"{key}_{i}" for i in range(len(value))]
            sql = sql.replace(f"%({key})s", "(" + ", ".join(f"%({name})s" for name in names) + ")")
            del params[key]
            params.update(zip(names, value, strict=True))
    return sql, params


async def mysql_variant(
    module: str, settings: dict[str, Any], database: str, q: dict[str, str], batch: int, n: int
) -> dict[str, dict[str, float]]:
    if module == "aiomysql":
        import aiomysql

        connection = await aiomysql.connect(db=database, autocommit=False, **settings)
    else:
        import asyncmy

        connection = await asyncmy.connect(database=database, autocommit=False, **settings)
    cursor = await connection.cursor() if module == "aiomysql" else connection.cursor()
    await cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    await cursor.execute("SET time_zone = '+00:00'")
    flows = Flows(q, batch)
    naive = flows.now.replace(tzinfo=None)
    flows.now = naive  # type: ignore[assignment]

    async def insert() -> None:
        job, state, queue = flows.insert_params()
        await cursor.execute(q["job_insert"], job)
        job_id = cursor.lastrowid
        await cursor.execute(q["job_state_insert"], {**state, "job_id": job_id})
        await cursor.execute(q["queue_upsert"], {**queue, "job_id": job_id})
        await connection.commit()

    async def claim() -> list[tuple[Any, ...]]:
        await cursor.execute(*expand(q["queue_claim_select"], {"queues": ("global",), "limit": batch}))
        rows = list(await cursor.fetchall())
        if rows:
            ids = tuple(row[0] for row in rows)
            await cursor.execute(*expand(q["queue_take"], {"job_ids": ids}))
            await cursor.execute(*expand(q["queue_lock_claimed"], {"owner": "bench", "now": naive, "job_ids": ids}))
        await connection.commit()
        return rows

    async def complete(rows: list[tuple[Any, ...]]) -> None:
        updates, states = Flows.update_rows(rows, naive)  # type: ignore[arg-type]
        await cursor.execute(*expand(q["job_fence_check_many"], {"job_ids": tuple(row[0] for row in rows)}))
        await cursor.fetchall()
        await cursor.executemany(q["job_update"], updates)
        await cursor.executemany(q["job_state_insert"], states)
        await connection.commit()

    try:
        return await drive(insert, claim, complete, n, None)
    finally:
        await cursor.close()
        connection.close()


# ---------------------------------------------------------------- measuring


async def drive(
    insert: Callable[[], Awaitable[None]],
    claim: Callable[[], Awaitable[list[tuple[Any, ...]]]],
    complete: Callable[[list[tuple[Any, ...]]], Awaitable[None]],
    n: int,
    server: Callable[[], float] | None,
) -> dict[str, dict[str, float]]:
    def clocks() -> tuple[float, float, float]:
        return time.process_time(), server() if server else 0.0, time.perf_counter()

    def per(start: tuple[float, float, float], count: int) -> dict[str, float]:
        end = clocks()
        figures = {"client_us": (end[0] - start[0]) / count * 1e6, "wall_us": (end[2] - start[2]) / count * 1e6}
        if server:
            figures["server_us"] = (end[1] - start[1]) / count * 1e6
        return figures

    for _ in range(20):  # warm up (prepared statements, caches); these jobs are claimed below too
        await insert()
    start = clocks()
    for _ in range(n):
        await insert()
    inserted = per(start, n)
    batches: list[list[tuple[Any, ...]]] = []
    start = clocks()
    while rows := await claim():
        batches.append(rows)
    claimed = per(start, len(batches))
    start = clocks()
    for rows in batches:
        await complete(rows)
    completed = per(start, len(batches))
    return {"insert": inserted, "claim": claimed, "complete": completed}


async def table_prefix(args: argparse.Namespace, url: str, namespace: str) -> str:
    async with hm.HiveMind(url):
        pass  # creates the tables
    if args.backend == "postgres":
        async with await pg_admin(args.pg_url) as connection:
            cursor = await connection.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_name LIKE %s",
                (namespace, "%\\_job"),
            )
            names = [row[0] for row in await cursor.fetchall()]
    else:
        connection = await mysql_admin(args.mysql_url)
        try:
            async with connection.cursor() as cursor:
                await cursor.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_name LIKE %s",
                    (namespace, "%\\_job"),
                )
                names = [row[0] for row in await cursor.fetchall()]
        finally:
            await connection.ensure_closed()
    # the job table is the shortest name ending in _job (others: ..._recurring_job, ...)
    return str(min(names, key=len)).removesuffix("job")


async def one_round(args: argparse.Namespace, stores: Stores, rep: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with stores.namespace() as namespace:
        if args.backend == "postgres":
            url = url_with(args.pg_url, schema=namespace, auto_migrate="true")
            prefix = await table_prefix(args, url, namespace)
            q, d = pg_book(namespace, prefix)
            conninfo = dict(psycopg_conninfo(args.pg_url))
            variants: dict[str, Callable[[], Awaitable[Any]]] = {
                "psycopg": lambda: psycopg_variant(
                    conninfo, q, args.batch, args.n, prepare="default", pipeline_all=False
                ),
                "psycopg_noprepare": lambda: psycopg_variant(
                    conninfo, q, args.batch, args.n, prepare=None, pipeline_all=False
                ),
                "psycopg_prepare0": lambda: psycopg_variant(
                    conninfo, q, args.batch, args.n, prepare=0, pipeline_all=False
                ),
                "psycopg_pipeline": lambda: psycopg_variant(
                    conninfo, q, args.batch, args.n, prepare="default", pipeline_all=True
                ),
                "asyncpg": lambda: asyncpg_variant(conninfo, d, args.batch, args.n),
            }
        else:
            url = url_with(args.mysql_url, database=namespace, auto_migrate="true")
            prefix = await table_prefix(args, url, namespace)
            raw = read_named_queries("hivemind_jobs.storage.mysql")
            book = QueryBook(raw, prefix, quote="`")
            q = {name: to_pyformat(book[name]) for name in book}
            settings = mysql_connect_args(args.mysql_url)
            settings.pop("db", None)
            settings.pop("database", None)
            variants = {
                name: (lambda name=name: mysql_variant(name, settings, namespace, q, args.batch, args.n))
                for name in ("aiomysql", "asyncmy")
            }
        names = list(variants) if rep % 2 == 0 else list(reversed(variants))
        for name in names:
            results[name] = await variants[name]()
    for flows in results.values():
        flows["insert"]["per_s"] = 1e6 / flows["insert"]["wall_us"]
    if args.backend == "postgres" and not args.skip_peer:
        missing = throughput.peer_missing("pgqueuer")
        if missing is not None:
            raise SystemExit(f"pgqueuer: {missing} (or --skip-peer)")
        # one statement per enqueue on asyncpg, the create's peer in throughput.py, in this round
        figures = await asyncio.to_thread(
            throughput.peer_run,
            "pgqueuer",
            stores.runs.directory,
            throughput.peer_environment("pgqueuer", stores.runs.directory, args),
            {"enqueue_one": "per_s"},
            1,
            args.n,
        )
        if figures["per_s"] is None:
            raise SystemExit("pgqueuer: no enqueue_one figure (see above)")
        results["pgqueuer"] = {"insert": {"per_s": figures["per_s"], "wall_us": 1e6 / figures["per_s"]}}
    return results


def psycopg_conninfo(url: str) -> dict[str, Any]:
    info = pg_conninfo(url)
    if isinstance(info, dict):
        return info
    import psycopg.conninfo

    parsed = psycopg.conninfo.conninfo_to_dict(info)
    parsed["port"] = int(parsed.get("port", 5432))
    return {**parsed, "options": "-c TimeZone=UTC -c jit=off"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=10, help="entries per claim and complete transaction")
    parser.add_argument(
        "--skip-peer", action="store_true", help="PostgreSQL: leave out PgQueuer's enqueue_one (measured by default)"
    )
    known, rest = parser.parse_known_args()
    sys.argv = [sys.argv[0], *rest]
    args = throughput.parse_args()  # --backend, --n, --reps, --pg-url, --mysql-url as throughput.py
    args.batch = known.batch
    args.skip_peer = known.skip_peer
    if args.backend == "sqlite":
        parser.error("--backend postgres or mysql")
    engine = asyncio.run(server_prepare(args))
    runs = Runs()
    stores = Stores(args, runs)
    rounds = []
    try:
        for rep in range(args.reps):
            rounds.append(asyncio.run(one_round(args, stores, rep)))
            print(f"rep {rep + 1}/{args.reps}: {json.dumps(rounds[-1])}", file=sys.stderr, flush=True)
    finally:
        runs.remove()
    medians: dict[str, Any] = {}
    for variant in rounds[0]:
        medians[variant] = {
            flow: {
                key: round(statistics.median(r[variant][flow][key] for r in rounds), 1)
                for key in rounds[0][variant][flow]
            }
            for flow in rounds[0][variant]
        }
    for variant, flows in medians.items():
        shown = ", ".join(
            f"{flow} {' / '.join(f'{v:,.1f} {k}' for k, v in figures.items())}" for flow, figures in flows.items()
        )
        print(f"  {variant:<18} {shown}")
    if "pgqueuer" in medians:
        peer = medians["pgqueuer"]["insert"]["per_s"]
        ratios = ", ".join(f"{v} {medians[v]['insert']['per_s'] / peer:.2f}" for v in medians if v != "pgqueuer")
        print(f"insert per_s / pgqueuer enqueue_one: {ratios}")
    print(
        json.dumps(
            {"backend": args.backend, "engine": engine, "n": args.n, "batch": args.batch, "reps": args.reps, **medians}
        )
    )


if __name__ == "__main__":
    main()
